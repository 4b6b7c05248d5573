//! Forked children do not inherit a writer's liveness.
//!
//! A writer's slot is held by an open-file-description lock on the segment
//! file. `fork` copies the descriptor table, so a child shares the parent's
//! open file description, and with it the lock: as long as any forked
//! helper lives, the parent looks alive, and a dead parent's rooms stay
//! counted. In every child, the descriptors of this process's writable
//! segments are therefore pointed at `/dev/null` (`dup3` over the same
//! number, so no number is freed for reuse under a live `File`) by a
//! `pthread_atfork` child handler: the child keeps its mappings (and can
//! still add counters through an inherited handle), but holds no lock. A
//! child that wants gauges of its own opens its own handle, and only those
//! count while it lives.
//!
//! The registry is a fixed array of atomics, the only kind of state an
//! atfork child handler may touch; the handler makes only async-signal-safe
//! calls (`open`, `dup3`, `close`). A process with more writable named
//! segments open at once than the registry holds leaves the excess
//! unguarded (a forked child then keeps those alive, as before).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

/// Most writable named segments guarded at once.
const SLOTS: usize = 256;

static FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
static INSTALL: Once = Once::new();

/// Keeps one descriptor in the registry; unregisters it on drop.
#[derive(Debug)]
pub(crate) struct Guard {
    index: usize,
}

impl Guard {
    /// Registers `fd` (a writable segment's lock-holding descriptor), or
    /// `None` when the registry is full.
    pub(crate) fn new(fd: RawFd) -> Option<Guard> {
        #[cfg(target_os = "linux")]
        INSTALL.call_once(|| {
            // SAFETY: registers a handler that only runs async-signal-safe
            // code in the child (see `in_child`); no other precondition.
            unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        });
        #[cfg(not(target_os = "linux"))]
        INSTALL.call_once(|| {});
        FDS.iter()
            .position(|f| {
                f.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .map(|index| Guard { index })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        FDS[self.index].store(-1, Ordering::Release);
    }
}

/// The atfork child handler: every registered descriptor now refers to
/// `/dev/null`, so the child drops its share of the parent's locks.
#[cfg(target_os = "linux")]
extern "C" fn in_child() {
    // SAFETY: open, dup3 and close are async-signal-safe; the path is a
    // NUL-terminated literal; the descriptors are plain integers (a stale
    // one, unregistered concurrently by another thread of the parent, is
    // at worst replaced by /dev/null in this child alone).
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if null < 0 {
            return;
        }
        for f in &FDS {
            let fd = f.load(Ordering::Acquire);
            if fd >= 0 {
                libc::dup3(null, fd, libc::O_CLOEXEC);
            }
        }
        libc::close(null);
    }
}
