//! Writer slots: the gauges of each attached writer process.
//!
//! Counters are ownerless, but a gauge (rooms open, participants connected)
//! must vanish when the process that raised it dies. Each writer handle
//! therefore claims a slot and keeps its gauges there. For a named segment
//! the claim is an open-file-description (OFD) lock on one byte of the
//! segment file, far past its end: the kernel drops the lock when the
//! process dies, however it dies, and a collector can ask whether the lock
//! is still held (`F_OFD_GETLK`) through a read-only descriptor. A writer
//! whose lock is gone is dead: the collector ignores its gauges, and the next
//! writer to claim the slot zeroes them.
//!
//! Gauges are signed, stored as two's-complement `u64` and changed with
//! wrapping `fetch_add`. The sum over live slots is clamped at zero, so an
//! unbalanced decrement can never report a negative room count.

use crate::schema::Gauge;
use crate::sync::{AtomicU64, Ordering};

/// Words in one writer slot.
#[cfg(not(loom))]
pub(crate) const SLOT_WORDS: usize = 32;
/// Under loom: just enough words for every [`Gauge`], so the model explores
/// 2^13 rather than 2^28 stale-value combinations per interleaving.
#[cfg(loom)]
pub(crate) const SLOT_WORDS: usize = GAUGE_BASE + 13;
/// Words before the gauges.
pub(crate) const GAUGE_BASE: usize = 4;
/// Gauges a slot can hold.
pub(crate) const GAUGES: usize = SLOT_WORDS - GAUGE_BASE;

/// Slot is unclaimed.
pub(crate) const FREE: u64 = 0;
/// A writer holds the lock and is zeroing the gauges.
pub(crate) const CLAIMING: u64 = 1;
/// A writer holds the slot; its gauges count while its lock is held.
pub(crate) const ACTIVE: u64 = 2;

mod w {
    pub(super) const STATE: usize = 0;
    pub(super) const INCARNATION: usize = 1;
    pub(super) const PID: usize = 2;
    pub(super) const CLAIMED_UNIX_NS: usize = 3;
}

/// One writer's slot: state, incarnation, pid, claim time, then gauges.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct WriterSlot {
    pub(crate) words: [AtomicU64; SLOT_WORDS],
}

#[cfg(not(loom))]
const _: () = assert!(size_of::<WriterSlot>() == 256);

impl WriterSlot {
    /// A free slot in ordinary memory (where a writer's gauges wait while
    /// it moves to a new segment; tests and models).
    pub(crate) fn new() -> Self {
        WriterSlot {
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Adds a signed delta to gauge `g`.
    #[inline]
    pub(crate) fn add(&self, g: Gauge, delta: i64) {
        self.words[GAUGE_BASE + g as usize].fetch_add(delta as u64, Ordering::Relaxed);
    }

    /// Adds a signed delta to the gauge at index `i` (< [`GAUGES`]).
    #[inline]
    pub(crate) fn add_index(&self, i: usize, delta: i64) {
        self.words[GAUGE_BASE + i].fetch_add(delta as u64, Ordering::Relaxed);
    }

    /// Sets gauge `g`.
    #[inline]
    pub(crate) fn set(&self, g: Gauge, v: u64) {
        self.words[GAUGE_BASE + g as usize].store(v, Ordering::Relaxed);
    }

    /// Sets bits in gauge `g`.
    #[inline]
    pub(crate) fn or(&self, g: Gauge, bits: u64) {
        self.words[GAUGE_BASE + g as usize].fetch_or(bits, Ordering::Relaxed);
    }

    pub(crate) fn state(&self) -> u64 {
        self.words[w::STATE].load(Ordering::Acquire)
    }

    /// The pid the slot's writer recorded when it claimed the slot.
    pub(crate) fn pid(&self) -> u64 {
        self.words[w::PID].load(Ordering::Relaxed)
    }

    pub(crate) fn incarnation(&self) -> u64 {
        self.words[w::INCARNATION].load(Ordering::Acquire)
    }

    /// Moves a free slot to CLAIMING (anonymous segments, where the CAS is the
    /// claim). Returns false if another writer holds it.
    pub(crate) fn try_claim_free(&self) -> bool {
        self.words[w::STATE]
            .compare_exchange(FREE, CLAIMING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Completes a claim: zeroes whatever a dead predecessor left, bumps the
    /// incarnation and publishes ACTIVE last. The caller holds the claim
    /// (the slot lock, or a successful [`try_claim_free`](Self::try_claim_free)).
    ///
    /// `zero_more` zeroes what else the slot owns (its labeled gauges); it
    /// runs in the same window as the gauges, after CLAIMING is visible and
    /// before ACTIVE is.
    pub(crate) fn activate(&self, pid: u64, now_unix_ns: u64, zero_more: impl FnOnce()) {
        self.words[w::STATE].store(CLAIMING, Ordering::Relaxed);
        // A reader that sees any of the stores below must also see CLAIMING
        // when it re-checks the state (pairs with the Acquire fence in
        // `read_gauges`); without it, loom finds a read of the old
        // incarnation with half its gauges zeroed.
        crate::sync::fence(Ordering::Release);
        for g in &self.words[GAUGE_BASE..] {
            g.store(0, Ordering::Relaxed);
        }
        zero_more();
        self.words[w::INCARNATION].fetch_add(1, Ordering::Relaxed);
        self.words[w::PID].store(pid, Ordering::Relaxed);
        self.words[w::CLAIMED_UNIX_NS].store(now_unix_ns, Ordering::Relaxed);
        self.words[w::STATE].store(ACTIVE, Ordering::Release);
    }

    /// Gives the slot up: its gauges stop counting at once.
    pub(crate) fn release(&self) {
        self.words[w::STATE].store(CLAIMING, Ordering::Relaxed);
        // As in `activate`: no half-zeroed slot may pass `read_gauges`.
        crate::sync::fence(Ordering::Release);
        for g in &self.words[GAUGE_BASE..] {
            g.store(0, Ordering::Relaxed);
        }
        self.words[w::STATE].store(FREE, Ordering::Release);
    }

    /// Reads the gauges of an ACTIVE slot, or `None` if the slot is not
    /// active or changed hands while being read.
    pub(crate) fn read_gauges(&self) -> Option<(u64, [i64; GAUGES])> {
        let inc = self.incarnation();
        if self.state() != ACTIVE {
            return None;
        }
        let mut g = [0i64; GAUGES];
        for (o, w) in g.iter_mut().zip(&self.words[GAUGE_BASE..]) {
            *o = w.load(Ordering::Relaxed) as i64;
        }
        crate::sync::fence(Ordering::Acquire);
        (self.state() == ACTIVE && self.incarnation() == inc).then_some((inc, g))
    }
}

/// Merged gauges of the live writers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GaugeTotals {
    /// Sum over live writers, clamped at zero, indexed by [`Gauge`].
    pub values: [u64; GAUGES],
    /// Writers whose slot counted.
    pub live_writers: u32,
    /// Slots marked active whose writer is gone.
    pub dead_writers: u32,
    /// Forward latency, ns: mean over live writers that set it.
    pub forward_latency_ns: u64,
    /// Forward jitter, ns: mean over live writers that set it.
    pub forward_jitter_ns: u64,
}

/// Sums the gauges of the slots for which `alive(index)` holds.
pub(crate) fn merge(slots: &[WriterSlot], mut alive: impl FnMut(usize) -> bool) -> GaugeTotals {
    let mut sums = [0i64; GAUGES];
    let mut out = GaugeTotals::default();
    let (mut lat, mut lat_n, mut jit, mut jit_n) = (0u128, 0u64, 0u128, 0u64);
    for (i, slot) in slots.iter().enumerate() {
        let Some((_, g)) = slot.read_gauges() else {
            continue;
        };
        if !alive(i) {
            out.dead_writers += 1;
            continue;
        }
        out.live_writers += 1;
        for (s, v) in sums.iter_mut().zip(g) {
            *s = s.wrapping_add(v);
        }
        let set = g[Gauge::ForwardSet as usize];
        if set & 1 != 0 {
            lat += g[Gauge::ForwardLatencyNs as usize] as u64 as u128;
            lat_n += 1;
        }
        if set & 2 != 0 {
            jit += g[Gauge::ForwardJitterNs as usize] as u64 as u128;
            jit_n += 1;
        }
    }
    for (o, s) in out.values.iter_mut().zip(sums) {
        *o = s.max(0) as u64;
    }
    out.forward_latency_ns = if lat_n > 0 {
        (lat / lat_n as u128) as u64
    } else {
        0
    };
    out.forward_jitter_ns = if jit_n > 0 {
        (jit / jit_n as u128) as u64
    } else {
        0
    };
    out
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn gauges_of_live_slots_sum_and_clamp() {
        let slots: Vec<WriterSlot> = (0..3).map(|_| WriterSlot::new()).collect();
        slots[0].activate(1, 0, || {});
        slots[1].activate(2, 0, || {});
        slots[0].add(Gauge::Rooms, 3);
        slots[1].add(Gauge::Rooms, -1);
        slots[1].add(Gauge::Participants, -5);
        let t = merge(&slots, |_| true);
        assert_eq!(t.values[Gauge::Rooms as usize], 2);
        assert_eq!(
            t.values[Gauge::Participants as usize],
            0,
            "negative sum clamps to 0"
        );
        assert_eq!(t.live_writers, 2);
        // Slot 0's writer dies: only slot 1 counts.
        let t = merge(&slots, |i| i != 0);
        assert_eq!(t.values[Gauge::Rooms as usize], 0);
        assert_eq!(t.dead_writers, 1);
    }

    #[test]
    fn claim_zeroes_what_a_dead_writer_left() {
        let s = WriterSlot::new();
        s.activate(1, 0, || {});
        s.add(Gauge::Rooms, 7);
        let inc = s.incarnation();
        s.activate(2, 0, || {});
        assert_eq!(s.read_gauges().unwrap().1[Gauge::Rooms as usize], 0);
        assert_eq!(s.incarnation(), inc + 1);
        s.release();
        assert!(s.read_gauges().is_none());
        assert!(s.try_claim_free());
        assert!(!s.try_claim_free());
    }

    #[test]
    fn forward_latency_is_mean_of_writers_that_set_it() {
        let slots: Vec<WriterSlot> = (0..3).map(|_| WriterSlot::new()).collect();
        for s in &slots {
            s.activate(1, 0, || {});
        }
        slots[0].set(Gauge::ForwardLatencyNs, 100);
        slots[0].or(Gauge::ForwardSet, 1);
        slots[1].set(Gauge::ForwardLatencyNs, 300);
        slots[1].or(Gauge::ForwardSet, 1);
        let t = merge(&slots, |_| true);
        assert_eq!(t.forward_latency_ns, 200);
        assert_eq!(t.forward_jitter_ns, 0);
    }
}
