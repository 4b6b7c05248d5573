//! Per-CPU shards and the hot path.
//!
//! A shard is one CPU's row of counters. Every writer, in any thread of any
//! process, adds to the shard of the CPU it runs on, in the segment's
//! [`WriteMode`](crate::segment::WriteMode):
//!
//! * **atomic**: `fetch_add(Relaxed)`. Threads migrate between reading the
//!   CPU number and the add, so two CPUs' writers can meet on one shard: the
//!   locked add keeps that correct, it only costs a shared cache line for a
//!   moment.
//! * **rseq** (Linux x86-64): a plain add inside a restartable sequence
//!   that the kernel aborts on preemption, migration or signal, so only the
//!   thread running on CPU `i` ever writes shard `i` (see [`crate::rseq`]).
//!
//! Counters are ownerless: when a writer dies, what it added stays in the
//! sum.
//!
//! # Why 128-byte alignment
//!
//! On x86-64 the adjacent-line prefetcher pulls cache lines in pairs, so two
//! CPUs writing to neighbouring 64-byte lines still contend; some Arm cores
//! have 128-byte lines. Each shard therefore starts on a 128-byte boundary
//! and is a whole number of 128-byte blocks. A packet's packets and bytes
//! counters sit next to each other in the first block, so one record touches
//! one line.

use crate::sync::{AtomicU64, Ordering};

/// Counters in one shard.
pub const COUNTERS: usize = 64;

/// One CPU's counters: `COUNTERS` words, 128-byte aligned.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct Shard {
    pub(crate) counters: [AtomicU64; COUNTERS],
}

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<Shard>() == COUNTERS * 8);
    assert!(align_of::<Shard>() == 128);
    assert!(size_of::<Shard>() % 128 == 0);
};

impl Shard {
    /// A zeroed shard (heap storage for tests and models).
    #[cfg(any(test, loom))]
    pub(crate) fn new() -> Self {
        Shard {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Adds `n` to counter `c` with `fetch_add` (heap storage for tests;
    /// `Stats` picks the add of the segment's write mode).
    #[cfg(any(test, loom))]
    pub(crate) fn add(&self, c: Counter, n: u64) {
        self.counters[c as usize].fetch_add(n, Ordering::Relaxed);
    }
}

/// Sums every counter over `shards` in one pass.
pub(crate) fn sum_all(shards: &[Shard]) -> [u64; COUNTERS] {
    let mut out = [0u64; COUNTERS];
    for s in shards {
        for (o, c) in out.iter_mut().zip(s.counters.iter()) {
            *o = o.wrapping_add(c.load(Ordering::Relaxed));
        }
    }
    out
}

/// Index of every counter in a shard. Part of the segment ABI: values never
/// change within a layout major version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
#[allow(missing_docs)]
pub enum Counter {
    // First 128-byte block: per-packet counters. Packets and bytes of one
    // (direction, transmission) pair are adjacent.
    PacketsInInitial = 0,
    BytesInInitial = 1,
    PacketsInRetransmit = 2,
    BytesInRetransmit = 3,
    PacketsOutInitial = 4,
    BytesOutInitial = 5,
    PacketsOutRetransmit = 6,
    BytesOutRetransmit = 7,
    NackIn = 8,
    NackOut = 9,
    PliIn = 10,
    PliOut = 11,
    FirIn = 12,
    FirOut = 13,
    // Second block: the participant join funnel.
    ParticipantSignalConnected = 16,
    ParticipantJoinFailed = 17,
    ParticipantJoinValidationFailed = 18,
    ParticipantJoinUpgradeFailed = 19,
    ParticipantJoinWriteInitialResponseFailed = 20,
    ParticipantRtcInit = 21,
    ParticipantRtcConnected = 22,
    ParticipantRtcActive = 23,
    ParticipantRtcActiveWarp = 24,
    ParticipantRtcCanceled = 25,
    ParticipantRtcCanceledWarp = 26,
    ParticipantRtcSuccess = 27,
    ParticipantRtcSuccessWarp = 28,
    ParticipantRtcFailure = 29,
    ParticipantRtcFailureWarp = 30,
    // Third block: tracks, by kind where LiveKit labels them by kind.
    TrackPublishAttemptsAudio = 32,
    TrackPublishAttemptsVideo = 33,
    TrackPublishAttemptsData = 34,
    TrackPublishSuccessAudio = 35,
    TrackPublishSuccessVideo = 36,
    TrackPublishSuccessData = 37,
    TrackPublishCancelsAudio = 38,
    TrackPublishCancelsVideo = 39,
    TrackPublishCancelsData = 40,
    TrackSubscribeAttempts = 41,
    TrackSubscribeSuccess = 42,
    TrackSubscribeCancels = 43,
    TrackSubscribeFailures = 44,
    TrackSubscribeUserErrors = 45,
    // Fourth block: lifecycle totals behind the gauges.
    RoomsStarted = 48,
    RoomsEnded = 49,
    ParticipantsAdded = 50,
    ParticipantsRemoved = 51,
    TracksPublished = 52,
    TracksUnpublished = 53,
    TracksSubscribed = 54,
    TracksUnsubscribed = 55,
}

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

    #[test]
    fn sum_adds_every_shard() {
        let shards: Vec<Shard> = (0..8).map(|_| Shard::new()).collect();
        for (i, s) in shards.iter().enumerate() {
            s.add(Counter::BytesOutInitial, i as u64 + 1);
        }
        let sums = sum_all(&shards);
        assert_eq!(sums[Counter::BytesOutInitial as usize], 36);
        assert_eq!(sums[Counter::BytesInInitial as usize], 0);
    }
}
