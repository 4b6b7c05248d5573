//! Labeled series for writers: the per-writer resolution cache and the
//! [`SeriesHandle`] that records without lookup, lock or allocation.
//!
//! Resolving (the slow path) interns the label values and registers the
//! series in the segment's directory once (see the segment's series
//! protocol); the cache remembers the value base so that later calls with
//! the same labels only hash and take a read lock.

use super::adder::{Adder, BlockStride};
use super::writer::Writer;
use crate::schema::{Family, Kind, MAX_BUCKETS};
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering};
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

/// Precomputed bucket bounds of every family.
pub(crate) fn bounds(family: Family) -> &'static ([f64; MAX_BUCKETS], usize) {
    static TABLE: OnceLock<Vec<([f64; MAX_BUCKETS], usize)>> = OnceLock::new();
    &TABLE.get_or_init(|| {
        Family::ALL
            .iter()
            .map(|f| f.def().buckets.bounds())
            .collect()
    })[family as usize]
}

/// Where `value` goes in a histogram of `family`: the offset of its bucket
/// (the last, +Inf, past every bound) and of the sum word, from the
/// series' first value word.
#[inline]
pub(crate) fn histogram_offsets(family: Family, value: f64) -> (usize, usize) {
    let (b, nb) = bounds(family);
    let bucket = b[..*nb].iter().position(|&ub| value <= ub).unwrap_or(*nb);
    (bucket, nb + 1)
}

impl Adder<BlockStride> {
    /// Observes `value` in the histogram of `family` whose values start at
    /// `base`: one bucket add and the sum.
    #[inline]
    pub(crate) fn observe(&self, family: Family, base: usize, value: f64) {
        let (bucket, sum) = histogram_offsets(family, value);
        self.add(base + bucket, 1);
        add_f64(self.word(base + sum), value);
    }
}

/// Adds to this writer's word of a gauge series.
#[inline(always)]
fn gauge_add(w: NonNull<AtomicU64>, n: u64) {
    // SAFETY: the word is in the mapping kept alive by the handle's
    // segment, and belongs to the slot its owner keeps claimed.
    unsafe { w.as_ref() }.fetch_add(n, Ordering::Relaxed);
}

/// Adds to an `f64` stored as bits. The word is per CPU, so the loop
/// almost never retries.
#[inline]
fn add_f64(w: &AtomicU64, v: f64) {
    let mut cur = w.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(cur) + v).to_bits();
        match w.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(x) => cur = x,
        }
    }
}

/// How a handle writes: which calls do something, and where.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Per-CPU adds through the adder.
    Counter,
    /// Bucket and sum through the adder.
    Histogram,
    /// This writer's own word of the series (one per writer slot), so the
    /// value leaves with the writer.
    Gauge(NonNull<AtomicU64>),
}

/// A resolved series: record through it with no lookup, no lock and no
/// allocation, in the segment's write mode.
///
/// A gauge series' handle writes this writer's own part of the gauge
/// (it keeps the writer's slot claimed while it lives): when the writer
/// process dies, the part leaves the exported value with it.
#[derive(Clone, Debug)]
pub struct SeriesHandle {
    adder: Adder<BlockStride>,
    family: Family,
    mode: Mode,
    base: usize,
    segment: Arc<Segment>,
    /// The writer whose slot a gauge handle's word belongs to.
    _owner: Option<Arc<Writer>>,
}

// SAFETY: the adder and the gauge word point into the mapping owned by
// `segment`, which the handle keeps alive (and a gauge handle keeps its
// writer's slot claimed); the memory is only written through atomics or
// rseq sections, both sound from any thread.
unsafe impl Send for SeriesHandle {}
// SAFETY: as above.
unsafe impl Sync for SeriesHandle {}

impl SeriesHandle {
    /// A handle on the series at `base` of `family`, writing for `owner`.
    pub(crate) fn new(
        owner: &Arc<Writer>,
        adder: Adder<BlockStride>,
        family: Family,
        base: u32,
    ) -> Self {
        let segment = owner.segment.clone();
        let (mode, keep) = match family.def().kind {
            Kind::Histogram => (Mode::Histogram, None),
            Kind::Counter => (Mode::Counter, None),
            Kind::Gauge => match segment
                .series_region()
                .gauge_word(base as usize, owner.slot)
            {
                Some(w) => (Mode::Gauge(NonNull::from(w)), Some(owner.clone())),
                // Unreachable for a base the directory handed out; a handle
                // that records nothing is the safe answer.
                None => (Mode::Histogram, None),
            },
        };
        SeriesHandle {
            adder,
            family,
            mode,
            base: base as usize,
            segment,
            _owner: keep,
        }
    }

    /// The family this series belongs to.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Adds `n` to a counter series (or to this writer's part of a gauge;
    /// does nothing on a histogram).
    #[inline]
    pub fn inc_by(&self, n: u64) {
        match self.mode {
            Mode::Counter => self.adder.add(self.base, n),
            Mode::Gauge(w) => gauge_add(w, n),
            Mode::Histogram => {}
        }
    }

    /// Adds a signed delta to a gauge series (the sum over live writers is
    /// clamped at zero when exported; on a counter it adds the delta's
    /// two's complement; does nothing on a histogram).
    #[inline]
    pub fn add(&self, delta: i64) {
        match self.mode {
            Mode::Counter => self.adder.add(self.base, delta as u64),
            Mode::Gauge(w) => gauge_add(w, delta as u64),
            Mode::Histogram => {}
        }
    }

    /// Observes a value in a histogram series (does nothing on a counter or
    /// gauge: they have no buckets to write).
    #[inline]
    pub fn observe(&self, value: f64) {
        if let Mode::Histogram = self.mode {
            self.adder.observe(self.family, self.base, value);
        }
    }

    /// The index of the series' first value word.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// The segment this handle records into.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }
}
