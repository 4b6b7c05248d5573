//! Which CPU am I on: the shard index of the calling thread.
//!
//! Platform only: this module knows nothing of segments or recording. The
//! source is decided once when a writer handle is made (never on the hot
//! path): glibc's registered rseq area (`cpu_id`, a plain load), else
//! `sched_getcpu()` (the vDSO on Linux), else a per-thread index assigned
//! round-robin. Callers mask the answer to their shard count.
//!
//! # Safety
//!
//! The only `unsafe` here are calls to `sched_getcpu()` and `sysconf()`,
//! which have no preconditions, and the rseq `cpu_id` read, which is
//! `rseq::Area`'s (a relaxed atomic load from this thread's live area).

use std::sync::atomic::Ordering;

/// Where the shard index comes from on this thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CpuSource {
    /// glibc's registered rseq area: `cpu_id` at `thread pointer + offset + 4`.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    Rseq(crate::rseq::Area),
    /// `sched_getcpu()` (the vDSO on Linux, no system call).
    #[cfg(target_os = "linux")]
    Getcpu,
    /// A per-thread index assigned round-robin.
    Hashed,
}

impl CpuSource {
    /// The best source on this platform, decided once at open time (never on
    /// the hot path).
    pub(crate) fn detect() -> Self {
        if std::env::var_os("NODESTATS_CPU_SOURCE").is_some_and(|v| v == "hashed") {
            return CpuSource::Hashed;
        }
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if let Some(area) = crate::rseq::glibc_registered_area() {
            let src = CpuSource::Rseq(area);
            // The registration must be live on this thread, and agree with
            // the kernel's answer (both may change between calls only by
            // migration, which is rare; one retry covers it).
            for _ in 0..2 {
                // SAFETY: sched_getcpu has no preconditions.
                let k = unsafe { libc::sched_getcpu() };
                if let Some(c) = src.rseq_cpu() {
                    if c as i32 == k {
                        return src;
                    }
                }
            }
        }
        #[cfg(target_os = "linux")]
        {
            // SAFETY: sched_getcpu has no preconditions.
            if unsafe { libc::sched_getcpu() } >= 0 {
                return CpuSource::Getcpu;
            }
        }
        CpuSource::Hashed
    }

    /// The current CPU (or thread index); callers mask it to a shard.
    #[inline(always)]
    pub(crate) fn current(self) -> usize {
        match self {
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            CpuSource::Rseq(_) => match self.rseq_cpu() {
                Some(c) => c as usize,
                None => getcpu_or_hashed(),
            },
            #[cfg(target_os = "linux")]
            CpuSource::Getcpu => getcpu_or_hashed(),
            CpuSource::Hashed => thread_index(),
        }
    }

    /// `cpu_id` from this thread's rseq area, or `None` if the thread has no
    /// live registration (glibc leaves a negative value there).
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[inline(always)]
    fn rseq_cpu(self) -> Option<u32> {
        let CpuSource::Rseq(area) = self else {
            return None;
        };
        let cpu = area.cpu_id();
        (cpu >= 0).then_some(cpu as u32)
    }
}

#[cfg(target_os = "linux")]
#[inline]
fn getcpu_or_hashed() -> usize {
    // SAFETY: sched_getcpu has no preconditions; glibc serves it from the vDSO.
    let c = unsafe { libc::sched_getcpu() };
    if c >= 0 {
        c as usize
    } else {
        thread_index()
    }
}

/// A stable per-thread index, assigned round-robin on first use.
#[inline]
fn thread_index() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let v = i.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, Ordering::Relaxed);
        i.set(v);
        v
    })
}

/// Number of CPU ids the machine can ever have (`possible` CPUs), so that
/// shard count can cover them all.
pub(crate) fn possible_cpus() -> usize {
    #[cfg(target_os = "linux")]
    if let Ok(s) = std::fs::read_to_string("/sys/devices/system/cpu/possible") {
        if let Some(n) = max_cpu_in_list(s.trim()) {
            return n + 1;
        }
    }
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Highest CPU id in a kernel CPU list such as `0-3,8-11`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn max_cpu_in_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.split(',') {
        let v = part.rsplit('-').next()?.trim().parse::<usize>().ok()?;
        max = Some(max.map_or(v, |m: usize| m.max(v)));
    }
    max
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cpu_list_parses() {
        assert_eq!(max_cpu_in_list("0"), Some(0));
        assert_eq!(max_cpu_in_list("0-1"), Some(1));
        assert_eq!(max_cpu_in_list("0-3,8-11"), Some(11));
        assert_eq!(max_cpu_in_list("0,2,5"), Some(5));
        assert_eq!(max_cpu_in_list("x"), None);
        assert_eq!(max_cpu_in_list(""), None);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn current_cpu_is_in_range() {
        let src = CpuSource::detect();
        let n = possible_cpus();
        for _ in 0..1000 {
            let c = src.current();
            if !matches!(src, CpuSource::Hashed) {
                assert!(c < n, "cpu {c} >= possible {n}");
            }
        }
    }

    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn rseq_cpu_matches_the_kernel() {
        let src = CpuSource::detect();
        if let CpuSource::Rseq(_) = src {
            let mut agree = 0;
            for _ in 0..1000 {
                let a = src.current() as i32;
                // SAFETY: no preconditions.
                let b = unsafe { libc::sched_getcpu() };
                agree += (a == b) as u32;
            }
            // Migration between the two reads is possible but rare.
            assert!(
                agree > 900,
                "rseq cpu_id agreed with sched_getcpu only {agree}/1000 times"
            );
        } else {
            assert!(
                crate::rseq::glibc_registered_area().is_none(),
                "glibc registers rseq but detect() did not use it"
            );
        }
    }
}
