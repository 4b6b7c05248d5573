//! Readers and writers survive a segment file shrunk under their mapping.
//!
//! Touching a page of a shared file mapping past the file's end raises
//! SIGBUS. Readers check the file's size before each read, but a truncate
//! can land between the check and the read; a writer's recording calls
//! check nothing (they make no system call). A SIGBUS handler closes both
//! holes: a fault inside a registered mapping is answered by mapping a
//! private zero page over the faulting page — read-only for a collector's
//! mapping, read-write for a writer's — so the faulting load or store is
//! re-executed and completes in private memory, and the mapping is marked
//! *faulted* (a count). A reader compares the count before and after its
//! read and reports the read as failed; a writer's segment reports itself
//! void ([`Segment::status`](super::Segment::status) says `Shrunk`) until
//! `Stats::maintain` maps a whole segment over the range again. What a
//! writer records into such a page reaches no collector.
//!
//! A fault anywhere else goes to the handler that was there before (or, if
//! there was none, the default action, as if we were never installed).
//!
//! The handler touches only atomics and makes two system calls (`mmap`,
//! and `sigaction` to fall back): nothing that can deadlock or allocate.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Most mappings guarded at once (a process rarely has more than a few
/// collectors and writers).
const SLOTS: usize = 128;

struct Range {
    start: AtomicUsize,
    end: AtomicUsize,
    faults: AtomicUsize,
    /// A writer's read-write mapping: faults get read-write pages.
    writable: AtomicBool,
    /// A writer's: a descriptor of the file mapped now (-1: none). A fault
    /// on a page the file covers again (the mapping was just switched to a
    /// whole file, or the file regrown) is retried, not voided.
    fd: AtomicI32,
}

static RANGES: [Range; SLOTS] = [const {
    Range {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        faults: AtomicUsize::new(0),
        writable: AtomicBool::new(false),
        fd: AtomicI32::new(-1),
    }
}; SLOTS];

/// The SIGBUS action that was in place before ours.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// A registered mapping; unregistered on drop.
#[derive(Debug)]
pub(crate) struct Guard {
    index: usize,
}

impl Guard {
    /// Registers `[start, start + len)` (a writer's read-write mapping if
    /// `writable`), installing the handler on first use; `None` if the
    /// registry is full (the mapping is then unguarded).
    pub(crate) fn new(start: *const u8, len: usize, writable: bool) -> Option<Guard> {
        install();
        let (start, end) = (start as usize, start as usize + len);
        let index = RANGES.iter().position(|r| {
            r.end
                .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        let r = &RANGES[index];
        r.faults.store(0, Ordering::Relaxed);
        r.writable.store(writable, Ordering::Relaxed);
        r.fd.store(-1, Ordering::Relaxed);
        r.start.store(start, Ordering::Relaxed);
        r.end.store(end, Ordering::Release);
        Some(Guard { index })
    }

    /// Accesses of the mapping that faulted (and found a private zero
    /// page) so far: a reader compares it before and after its read; a
    /// writer's segment is void while it exceeds the count at the last
    /// remap.
    pub(crate) fn faults(&self) -> usize {
        RANGES[self.index].faults.load(Ordering::Acquire)
    }
}

impl Guard {
    /// Tells the handler which file a writer's mapping shows now (`fd`
    /// stays open while registered: the segment closes it after the guard
    /// is dropped, or after a later `set_file`).
    pub(crate) fn set_file(&self, fd: i32) {
        RANGES[self.index].fd.store(fd, Ordering::Release);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let r = &RANGES[self.index];
        r.start.store(0, Ordering::Relaxed);
        r.end.store(0, Ordering::Release);
    }
}

fn install() {
    PREVIOUS.get_or_init(|| {
        // SAFETY: sigaction with valid, zero-initialised structs; the
        // handler only uses async-signal-safe operations (see `on_sigbus`).
        unsafe {
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_sigbus as *const () as usize;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut ours.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGBUS, &ours, &mut old);
            old
        }
    });
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for r in &RANGES {
        let end = r.end.load(Ordering::Acquire);
        let start = r.start.load(Ordering::Relaxed);
        if end != 0 && end != usize::MAX && (start..end).contains(&addr) {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
            let at = addr & !(page - 1);
            let fd = r.fd.load(Ordering::Acquire);
            if fd >= 0 {
                // SAFETY: all-zero is a valid `stat`.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: fstat is async-signal-safe; `st` is ours; the
                // descriptor stays open while it is registered.
                let got = unsafe { libc::fstat(fd, &mut st) };
                if got == 0 && st.st_size as u64 >= (at - start + page) as u64 {
                    // The file covers the page now: retry the access.
                    return;
                }
            }
            let prot = if r.writable.load(Ordering::Relaxed) {
                libc::PROT_READ | libc::PROT_WRITE
            } else {
                libc::PROT_READ
            };
            // SAFETY: the page lies inside a mapping we own (registered and
            // not yet unmapped: the guard is dropped before the mapping);
            // replacing it with a private zero page only changes what this
            // process sees of a file that is already gone there (all access
            // to it is atomic, so the zeros are valid values).
            let p = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    prot,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                r.faults.fetch_add(1, Ordering::AcqRel);
                return;
            }
        }
    }
    // Not ours: what would have happened without us.
    let Some(old) = PREVIOUS.get() else {
        return;
    };
    if old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN {
        // SAFETY: restores the default action; returning re-executes the
        // faulting instruction, which then takes the default (core dump).
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
        }
    } else if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed for exactly this.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(old.sa_sigaction) };
        f(sig, info, ctx);
    } else {
        // SAFETY: as above, a plain handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(old.sa_sigaction) };
        f(sig);
    }
}
