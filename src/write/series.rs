//! The [`SeriesHandle`]: a resolved labeled series that records without
//! lookup, lock or allocation — counters and histogram buckets through the
//! per-CPU adder (SEGMENT.md §8, Values), a histogram's sum by
//! compare-and-swap, a gauge in this writer's own word of block 0.
//!
//! Resolving a series (the slow path: interning label values, registering
//! the series, remembering its value base) is the per-writer cache's job,
//! in `cache.rs`; a handle is what it returns.

use super::adder::{Adder, BlockStride};
use super::family::Resolved;
use super::writer::{CellEntry, Follow, SeriesCell, Writer};
use crate::schema::native::{Bucketer, CLAMPED_WORD};
use crate::schema::{FamilyId, Kind};
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering};
use std::sync::atomic::{AtomicPtr, AtomicUsize};
use std::sync::Arc;

impl Adder<BlockStride> {
    /// Observes `value` in the histogram with `bounds` (and `native`
    /// buckets) whose values start at `base`: its bucket adds
    /// ([`observe_words`]) and the sum.
    #[inline]
    pub(crate) fn observe(
        &self,
        bounds: &[f64],
        native: Option<&Bucketer>,
        base: usize,
        value: f64,
    ) {
        let sum = observe_words(bounds, native, value, |o| self.add(base + o, 1));
        add_f64(self.word(base + sum), value);
    }
}

/// Observes `value` in a histogram with `bounds` (and `native` buckets):
/// calls `add(offset)` for every count word to add 1 to, and returns the
/// sum word's offset, all from the series' first value word (SEGMENT.md
/// §8, §8b). Classic: its bucket. Native with classic bounds: its bucket,
/// then the native bucket (and the clamped count when the bucket lay
/// outside the span). Native only: the native bucket, or for NaN (which
/// no native bucket holds) the +Inf word, which then counts NaN alone.
#[inline(always)]
pub(crate) fn observe_words(
    bounds: &[f64],
    native: Option<&Bucketer>,
    value: f64,
    mut add: impl FnMut(usize),
) -> usize {
    let nb = bounds.len();
    let hit = native.and_then(|n| n.word(value));
    // The classic bucket (+Inf past every bound, and NaN), unless a native
    // bucket holds the value and there are no bounds.
    if nb > 0 || hit.is_none() {
        add(bounds.iter().position(|&ub| value <= ub).unwrap_or(nb));
    }
    if let Some((w, clamped)) = hit {
        add(nb + 2 + w);
        if clamped {
            add(nb + 2 + CLAMPED_WORD);
        }
    }
    nb + 1
}

/// Adds to this writer's word of a gauge series (none: nothing).
#[inline(always)]
fn gauge_add(cell: &SeriesCell, n: u64) {
    // SAFETY: a non-null word is in the mapping kept alive by the handle's
    // segment, and belongs to the slot its owner keeps claimed (`maintain`
    // moves both together).
    if let Some(w) = unsafe { cell.gauge.load(Ordering::Relaxed).as_ref() } {
        w.fetch_add(n, Ordering::Relaxed);
    }
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
    /// value leaves with the writer: the cell's `gauge`.
    Gauge,
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
    family: FamilyId,
    /// Histogram bounds (empty for counters and gauges).
    bounds: Arc<[f64]>,
    /// A native histogram's buckets (§8b).
    native: Option<Bucketer>,
    mode: Mode,
    /// Where the series is now (`Stats::maintain` moves it).
    cell: Arc<SeriesCell>,
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
        follow: &mut Follow,
        adder: Adder<BlockStride>,
        family: &Resolved,
        labels: &[&str],
        base: u32,
    ) -> Self {
        let segment = owner.segment.clone();
        let (mode, keep) = match family.target.shape.kind {
            Kind::Histogram => (Mode::Histogram, None),
            Kind::Counter => (Mode::Counter, None),
            Kind::Gauge => (Mode::Gauge, Some(owner.clone())),
        };
        let fam = family.target.family;
        let cell = {
            let found = follow.cells.iter().find_map(|e| {
                (e.family == fam && e.labels.iter().map(|s| &**s).eq(labels.iter().copied()))
                    .then(|| e.cell.upgrade())
                    .flatten()
            });
            match found {
                Some(c) => c,
                None => {
                    let c = Arc::new(SeriesCell {
                        base: AtomicUsize::new(base as usize),
                        gauge: AtomicPtr::new(match mode {
                            // None only for a base the directory did not
                            // hand out: a handle that records nothing.
                            Mode::Gauge => segment
                                .series_region()
                                .gauge_word(base as usize, owner.slot())
                                .map_or(std::ptr::null_mut(), |w| std::ptr::from_ref(w).cast_mut()),
                            _ => std::ptr::null_mut(),
                        }),
                    });
                    // Forget handles dropped since (keeps the list bounded
                    // by the live ones).
                    if follow.cells.len() >= 64 && follow.cells.len().is_power_of_two() {
                        follow.cells.retain(|e| e.cell.strong_count() > 0);
                    }
                    follow.cells.push(CellEntry {
                        family: fam,
                        labels: labels.iter().map(|l| (*l).into()).collect(),
                        cell: Arc::downgrade(&c),
                    });
                    c
                }
            }
        };
        SeriesHandle {
            adder,
            family: fam,
            bounds: family.bounds.clone(),
            native: family.target.shape.native.map(Bucketer::new),
            mode,
            cell,
            segment,
            _owner: keep,
        }
    }

    #[inline(always)]
    fn base_now(&self) -> usize {
        self.cell.base.load(Ordering::Relaxed)
    }

    /// The family this series belongs to.
    pub fn family(&self) -> FamilyId {
        self.family
    }

    /// The kind of the series' family.
    pub fn kind(&self) -> Kind {
        match self.mode {
            Mode::Counter => Kind::Counter,
            Mode::Histogram => Kind::Histogram,
            Mode::Gauge => Kind::Gauge,
        }
    }

    /// The histogram bounds (empty for counters and gauges).
    pub(crate) fn bounds(&self) -> &Arc<[f64]> {
        &self.bounds
    }

    /// Adds `n` to a counter series (or to this writer's part of a gauge;
    /// does nothing on a histogram).
    #[inline]
    pub fn inc_by(&self, n: u64) {
        match self.mode {
            Mode::Counter => self.adder.add(self.base_now(), n),
            Mode::Gauge => gauge_add(&self.cell, n),
            Mode::Histogram => {}
        }
    }

    /// Adds a signed delta to a gauge series (the sum over live writers is
    /// clamped at zero when exported; on a counter it adds the delta's
    /// two's complement; does nothing on a histogram).
    #[inline]
    pub fn add(&self, delta: i64) {
        match self.mode {
            Mode::Counter => self.adder.add(self.base_now(), delta as u64),
            Mode::Gauge => gauge_add(&self.cell, delta as u64),
            Mode::Histogram => {}
        }
    }

    /// Observes a value in a histogram series (does nothing on a counter or
    /// gauge: they have no buckets to write). A native histogram also
    /// counts it in its native bucket, found from the value's bits.
    #[inline]
    pub fn observe(&self, value: f64) {
        if let Mode::Histogram = self.mode {
            self.adder
                .observe(&self.bounds, self.native.as_ref(), self.base_now(), value);
        }
    }

    /// Adds `n` to value word `offset` of the series, per CPU.
    #[inline(always)]
    pub(crate) fn add_word(&self, offset: usize, n: u64) {
        self.adder.add(self.base_now() + offset, n);
    }

    /// A native histogram's buckets.
    pub(crate) fn native(&self) -> Option<&Bucketer> {
        self.native.as_ref()
    }

    /// The index of the series' first value word.
    pub(crate) fn base(&self) -> usize {
        self.base_now()
    }

    /// Where the series is now.
    pub(crate) fn cell(&self) -> &Arc<SeriesCell> {
        &self.cell
    }

    /// The segment this handle records into.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }
}
