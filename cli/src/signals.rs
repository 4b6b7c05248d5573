//! SIGINT/SIGTERM: a prompt stop whatever the program is blocked in.
//!
//! The first signal sets a flag every loop polls, interrupts the blocking
//! system call it lands in (the handler is installed without `SA_RESTART`,
//! which glibc's `signal()` would set, so `open(2)` on a FIFO or a
//! `poll(2)` returns `EINTR` instead of resuming), and arms a one-second
//! `alarm(2)`: a clean stop has that long, then the process exits with
//! status 128 + signal without waiting for code that does not return. A
//! second signal exits at once.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

/// Seconds a clean stop may take after the first signal.
const GRACE_SECS: libc::c_uint = 1;

/// Set by the first SIGINT/SIGTERM; every loop polls it.
static STOP: AtomicBool = AtomicBool::new(false);
/// The signal that asked us to stop, for the exit status.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop(sig: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
    SIGNAL.store(sig, Ordering::SeqCst);
    // SAFETY: alarm is async-signal-safe.
    unsafe { libc::alarm(GRACE_SECS) };
}

extern "C" fn on_alarm(_: libc::c_int) {
    let sig = SIGNAL.load(Ordering::SeqCst);
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + sig) };
}

/// Installs the handlers. Call once, before starting threads.
pub(crate) fn install() {
    for (sig, handler) in [
        (libc::SIGINT, on_stop as extern "C" fn(libc::c_int)),
        (libc::SIGTERM, on_stop),
        (libc::SIGALRM, on_alarm),
    ] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value; the handlers only touch atomics and call async-signal-safe
        // functions, and live for the whole program.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as libc::sighandler_t;
            sa.sa_flags = 0;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether a stop signal arrived.
pub(crate) fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// The signal that stopped us, if any.
pub(crate) fn stop_signal() -> Option<i32> {
    stopped().then(|| SIGNAL.load(Ordering::SeqCst))
}

/// Sleeps up to `d`, waking early on a stop signal.
pub(crate) fn sleep_unless_stopped(d: Duration) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !stopped() {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}
