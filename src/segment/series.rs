//! Labeled series in the segment: counters, gauges and histograms
//! identified by a [`Family`] and label values.
//!
//! # Layout
//!
//! The series region starts with one allocation line (next series, next
//! string, next value, overflow counts), then a directory of
//! [`SeriesEntry`]s and an intern table of [`StringEntry`]s. Each series
//! owns `value_count` consecutive words in every shard's value block, so
//! recording is a relaxed add on the current CPU's block, exactly like the
//! fixed counters.
//!
//! # Registration and publication
//!
//! Registration is the slow path and may run in many processes at once. A
//! writer claims a directory entry (or a string) with one `fetch_add` on the
//! allocation counter, writes it, and publishes it by storing its state word
//! last with Release; readers skip entries that are not published. Two
//! processes may register the same series (or intern the same string)
//! concurrently: each gets its own entry, and the reader merges entries
//! with equal family and label *strings*, summing their values. No
//! cross-process lock is needed and nothing is ever moved or freed.
//!
//! # Bounded cardinality
//!
//! Label values go into a fixed-size intern table. A value that does not
//! fit (table full, or longer than [`MAX_LABEL_BYTES`]) is recorded under
//! the label value [`OVERFLOW_LABEL`] and counted; when the directory or
//! the value blocks are full, a series lands in its family's pre-registered
//! overflow series (every label [`OVERFLOW_LABEL`]) and is counted. The
//! number of series can never grow past the capacities fixed at creation.

use super::families::{Declared, FamilyRegion};
use crate::error::{Error, Result};
use crate::schema::native::NativeLayout;
use crate::schema::{Family, FamilyId, Kind, LIVEKIT_FAMILIES};
use crate::sync::{AtomicU64, Ordering};

/// Bytes of the allocation line at the start of the series region.
pub(crate) const ALLOC_LINE_BYTES: usize = 128;
/// Longest label value kept; longer values overflow.
pub(crate) const MAX_LABEL_BYTES: usize = 64;
/// Most labels a family may have.
pub(crate) const MAX_LABELS: usize = crate::schema::MAX_FAMILY_LABELS;
/// The label value shown for values that did not fit.
pub(crate) const OVERFLOW_LABEL: &str = "__overflow__";
/// String id standing for [`OVERFLOW_LABEL`].
pub(crate) const OVERFLOW_ID: u32 = u32::MAX;

pub(crate) const PUBLISHED: u64 = 2;

pub(crate) mod alloc {
    pub(crate) const NEXT_SERIES: usize = 0;
    pub(crate) const NEXT_STRING: usize = 1;
    pub(crate) const NEXT_VALUE: usize = 2;
    pub(crate) const STRINGS_OVERFLOWED: usize = 3;
    pub(crate) const SERIES_OVERFLOWED: usize = 4;
}

/// One directory entry: state, family and value count, value base, label
/// string ids (two per word).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct SeriesEntry {
    pub(crate) w: [AtomicU64; 8],
}

/// One interned label string: state and length, then up to 64 bytes.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct StringEntry {
    pub(crate) w: [AtomicU64; 9],
}

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<SeriesEntry>() == 64);
    assert!(size_of::<StringEntry>() == 72);
};

/// What the series layer needs to know of a family: its kind, how many
/// labels it has and how many bucket bounds (histograms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) kind: Kind,
    pub(crate) labels: usize,
    pub(crate) bounds: usize,
    /// The native buckets of a native histogram family (§8b).
    pub(crate) native: Option<NativeLayout>,
}

impl Shape {
    /// The shape of one of LiveKit's families.
    pub(crate) fn livekit(f: Family) -> Shape {
        let def = f.def();
        Shape {
            kind: def.kind,
            labels: def.labels.len(),
            bounds: match def.kind {
                Kind::Histogram => def.buckets.bounds().1,
                _ => 0,
            },
            native: None,
        }
    }

    /// The shape of a declared family.
    pub(crate) fn of(spec: &crate::schema::FamilySpec) -> Shape {
        Shape {
            kind: spec.kind,
            labels: spec.labels.len(),
            bounds: match spec.kind {
                Kind::Histogram => spec.effective_buckets().len(),
                _ => 0,
            },
            native: spec.native_layout(),
        }
    }
}

/// The shapes of the families a region's entries may name: LiveKit's, and
/// the declared ones that are published and valid.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shapes {
    declared: Vec<Option<Shape>>,
}

impl Shapes {
    /// The shapes of LiveKit's families and of the valid families of a
    /// directory of `capacity` entries, scanned by `FamilyRegion::scan`.
    pub(crate) fn of_scan(capacity: usize, scan: &[(usize, Option<Declared>)]) -> Shapes {
        let mut declared = vec![None; capacity];
        for (k, d) in scan {
            if let Some(slot) = declared.get_mut(*k) {
                *slot = d.as_ref().map(|d| Shape::of(&d.spec));
            }
        }
        Shapes { declared }
    }

    /// LiveKit's families only (entries of declared families do not read).
    pub(crate) fn livekit_only() -> Shapes {
        Shapes::default()
    }

    /// The shape of `family`, if it is known.
    pub(crate) fn get(&self, family: FamilyId) -> Option<Shape> {
        match (family.livekit(), family.directory_entry()) {
            (Some(f), _) => Some(Shape::livekit(f)),
            (_, Some(k)) => self.declared.get(k).copied().flatten(),
            _ => None,
        }
    }
}

/// Where a series of one family is registered: its family, shape, the
/// directory index of its overflow series and its series cap (0: none).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    pub(crate) family: FamilyId,
    pub(crate) shape: Shape,
    pub(crate) overflow_entry: usize,
    pub(crate) max_series: u64,
}

/// A published entry whose fields are in range.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) family: FamilyId,
    pub(crate) shape: Shape,
    /// Value words the series owns in each block.
    pub(crate) n: usize,
    pub(crate) base: usize,
    pub(crate) ids: [u32; MAX_LABELS],
    pub(crate) nl: usize,
}

impl Entry {
    /// The label string ids.
    pub(crate) fn ids(&self) -> &[u32] {
        &self.ids[..self.nl]
    }
}

/// The series region of a mapped segment.
pub(crate) struct Region<'a> {
    pub(crate) alloc: &'a [AtomicU64; 16],
    pub(crate) dir: &'a [SeriesEntry],
    pub(crate) strings: &'a [StringEntry],
    /// Every value block, `values_per_shard` words each (one per shard, or
    /// shared stripes on hosts with many CPUs; see `Layout::value_blocks`).
    pub(crate) values: &'a [AtomicU64],
    pub(crate) values_per_shard: usize,
    /// Writer slots of the segment: the words of a gauge series.
    pub(crate) writer_slots: usize,
    /// The thread rows' series slots (see `rows`): per row,
    /// `row_series_slots` bindings, then as many values.
    pub(crate) row_series: &'a [AtomicU64],
    pub(crate) row_series_slots: usize,
    /// The family directory (segments of layout 2.2 and later).
    pub(crate) families: Option<FamilyRegion<'a>>,
}

impl Region<'_> {
    /// Words a series of this shape owns in each value block: a gauge
    /// series owns one per writer slot (its writers' values live in block
    /// 0, so a dead writer's part can be left out), a histogram its
    /// buckets, +Inf and the sum (then a native one's native words, §8b),
    /// a counter one.
    pub(crate) fn values_of(&self, shape: Shape) -> usize {
        match shape.kind {
            Kind::Gauge => self.writer_slots,
            Kind::Histogram => shape.bounds + 2 + shape.native.map_or(0, |n| n.words()),
            Kind::Counter => 1,
        }
    }

    /// The shapes of every family the directory may name, read now.
    pub(crate) fn shapes(&self) -> Shapes {
        match &self.families {
            Some(f) => Shapes::of_scan(f.entries.len(), &f.scan()),
            None => Shapes::default(),
        }
    }

    /// Where series of LiveKit family `f` are registered.
    pub(crate) fn livekit_target(&self, f: Family) -> Target {
        Target {
            family: f.into(),
            shape: Shape::livekit(f),
            overflow_entry: f as usize,
            max_series: self.families.map_or(0, |r| r.livekit_max_series()),
        }
    }

    /// The word of gauge series `base` that writer slot `slot` adds to.
    pub(crate) fn gauge_word(&self, base: usize, slot: usize) -> Option<&AtomicU64> {
        (slot < self.writer_slots)
            .then(|| self.values.get(base + slot))
            .flatten()
    }

    /// Zeroes writer slot `slot`'s word of every published gauge series: a
    /// claim does it before the slot turns ACTIVE, so a new writer never
    /// inherits a dead one's labeled gauges.
    pub(crate) fn zero_slot_gauges(&self, slot: usize) {
        let n =
            (self.alloc[alloc::NEXT_SERIES].load(Ordering::Acquire) as usize).min(self.dir.len());
        let shapes = self.shapes();
        for e in &self.dir[..n] {
            if let Some(e) = read_entry(self, &shapes, e) {
                if e.shape.kind == Kind::Gauge {
                    if let Some(w) = self.gauge_word(e.base, slot) {
                        w.store(0, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// What the thread rows' bound series slots hold: the parts of labeled
    /// values that thread writers recorded, indexed by value index (read
    /// once; looked up per series by binary search).
    pub(crate) fn row_values(&self) -> RowValues {
        let mut parts = Vec::new();
        let per_row = 2 * self.row_series_slots;
        if per_row > 0 {
            for row in self.row_series.chunks_exact(per_row) {
                super::rows::bound_slots(
                    row,
                    self.row_series_slots,
                    self.values_per_shard,
                    |i, v| parts.push((i, v)),
                );
            }
        }
        // Stable: a value's parts stay in row order, so float sums add up
        // the same way on every read.
        parts.sort_by_key(|&(i, _)| i);
        RowValues(parts)
    }

    /// The sum of value `index` over the value blocks only (thread rows'
    /// parts not included: see [`row_values`](Self::row_values)).
    pub(crate) fn value_sum(&self, index: usize) -> u64 {
        let mut sum = 0u64;
        let mut i = index;
        while i < self.values.len() {
            sum = sum.wrapping_add(self.values[i].load(Ordering::Relaxed));
            i += self.values_per_shard;
        }
        sum
    }
}

/// The thread rows' parts of labeled values, `(value index, word)` sorted
/// by index (see [`Region::row_values`]).
pub(crate) struct RowValues(Vec<(usize, u64)>);

impl RowValues {
    /// The words bound to value `index`, one per slot bound to it.
    fn parts(&self, index: usize) -> impl Iterator<Item = u64> + '_ {
        let from = self.0.partition_point(|&(i, _)| i < index);
        self.0[from..]
            .iter()
            .take_while(move |&&(i, _)| i == index)
            .map(|&(_, v)| v)
    }

    /// What the rows hold of a count (counter or bucket) word: the wrapping
    /// sum of its parts.
    pub(crate) fn count(&self, index: usize) -> u64 {
        self.parts(index).fold(0, u64::wrapping_add)
    }

    /// What the rows hold of a histogram's sum word: its parts as `f64`.
    pub(crate) fn float_sum(&self, index: usize) -> f64 {
        self.parts(index).map(f64::from_bits).sum()
    }
}

/// Writes the per-family overflow series into a new segment's directory.
/// Runs before the segment is published, so nothing races with it.
pub(crate) fn init_region(r: &Region<'_>) -> Result<()> {
    let needed: usize = Family::ALL
        .iter()
        .map(|f| r.values_of(Shape::livekit(*f)))
        .sum();
    if LIVEKIT_FAMILIES > r.dir.len() || needed > r.values_per_shard {
        return Err(Error::Config(
            "series capacity too small for the overflow series".into(),
        ));
    }
    let mut base = 0usize;
    for (i, f) in Family::ALL.iter().enumerate() {
        let shape = Shape::livekit(*f);
        let n = r.values_of(shape);
        let labels = [OVERFLOW_ID; MAX_LABELS];
        write_entry(
            &r.dir[i],
            (*f).into(),
            n,
            base as u64,
            &labels[..shape.labels],
        );
        base += n;
    }
    r.alloc[alloc::NEXT_SERIES].store(LIVEKIT_FAMILIES as u64, Ordering::Relaxed);
    r.alloc[alloc::NEXT_VALUE].store(base as u64, Ordering::Relaxed);
    Ok(())
}

pub(crate) fn write_entry(e: &SeriesEntry, f: FamilyId, n: usize, base: u64, ids: &[u32]) {
    e.w[1].store(
        f.index() as u64 | (n as u64) << 16 | (ids.len() as u64) << 32,
        Ordering::Relaxed,
    );
    e.w[2].store(base, Ordering::Relaxed);
    for (k, pair) in ids.chunks(2).enumerate() {
        let lo = pair[0] as u64;
        let hi = pair.get(1).map_or(0, |&v| v as u64);
        e.w[3 + k].store(lo | hi << 32, Ordering::Relaxed);
    }
    e.w[0].store(PUBLISHED, Ordering::Release);
}

pub(crate) fn add_string(r: &Region<'_>, s: &str) -> u32 {
    if s.len() > MAX_LABEL_BYTES {
        r.alloc[alloc::STRINGS_OVERFLOWED].fetch_add(1, Ordering::Relaxed);
        return OVERFLOW_ID;
    }
    let i = r.alloc[alloc::NEXT_STRING].fetch_add(1, Ordering::AcqRel) as usize;
    let Some(e) = r.strings.get(i) else {
        r.alloc[alloc::STRINGS_OVERFLOWED].fetch_add(1, Ordering::Relaxed);
        return OVERFLOW_ID;
    };
    let mut buf = [0u8; MAX_LABEL_BYTES];
    buf[..s.len()].copy_from_slice(s.as_bytes());
    for (k, chunk) in buf.chunks(8).enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        e.w[1 + k].store(word, Ordering::Relaxed);
    }
    e.w[0].store(PUBLISHED | (s.len() as u64) << 8, Ordering::Release);
    i as u32
}

/// A published string's bytes and length.
pub(crate) fn read_string(e: &StringEntry) -> Option<([u8; MAX_LABEL_BYTES], usize)> {
    let st = e.w[0].load(Ordering::Acquire);
    if st & 0xff != PUBLISHED {
        return None;
    }
    let len = (st >> 8) as usize;
    if len > MAX_LABEL_BYTES {
        return None;
    }
    let mut buf = [0u8; MAX_LABEL_BYTES];
    for (k, chunk) in buf.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&e.w[1 + k].load(Ordering::Relaxed).to_le_bytes());
    }
    Some((buf, len))
}

/// The first `nl` (at most [`MAX_LABELS`]) label string ids of entry `e`
/// (Relaxed loads), the rest 0.
pub(crate) fn label_ids(e: &SeriesEntry, nl: usize) -> [u32; MAX_LABELS] {
    let mut ids = [0u32; MAX_LABELS];
    for (k, id) in ids.iter_mut().enumerate().take(nl) {
        let w = e.w[3 + k / 2].load(Ordering::Relaxed);
        *id = if k % 2 == 0 {
            w as u32
        } else {
            (w >> 32) as u32
        };
    }
    ids
}

/// A published entry's family, shape, value count, base and label ids, if
/// its family is known to `shapes` and its fields are in range for `r`.
pub(crate) fn read_entry(r: &Region<'_>, shapes: &Shapes, e: &SeriesEntry) -> Option<Entry> {
    if e.w[0].load(Ordering::Acquire) != PUBLISHED {
        return None;
    }
    let w1 = e.w[1].load(Ordering::Relaxed);
    let family = FamilyId::from_index((w1 & 0xffff) as u16)?;
    let shape = shapes.get(family)?;
    let n = ((w1 >> 16) & 0xffff) as usize;
    let nl = ((w1 >> 32) & 0xffff) as usize;
    let base = e.w[2].load(Ordering::Relaxed);
    if n != r.values_of(shape)
        || nl != shape.labels
        || base.checked_add(n as u64)? > r.values_per_shard as u64
    {
        return None;
    }
    let ids = label_ids(e, nl);
    Some(Entry {
        family,
        shape,
        n,
        base: base as usize,
        ids,
        nl,
    })
}

impl Shapes {
    /// The shapes of LiveKit's families and of `t`'s.
    pub(crate) fn one(t: &Target) -> Shapes {
        let mut declared = Vec::new();
        if let Some(k) = t.family.directory_entry() {
            declared = vec![None; k + 1];
            declared[k] = Some(t.shape);
        }
        Shapes { declared }
    }
}

/// Claims and publishes a new entry of `family` with these label ids: its
/// directory index and value base, or `None` when the directory or the
/// values are full (a claimed entry then stays unpublished forever).
pub(crate) fn add_entry(
    r: &Region<'_>,
    family: FamilyId,
    shape: Shape,
    ids: &[u32],
) -> Option<(usize, u32)> {
    let n = r.values_of(shape) as u64;
    let i = r.alloc[alloc::NEXT_SERIES].fetch_add(1, Ordering::AcqRel) as usize;
    let e = r.dir.get(i)?;
    let base = r.alloc[alloc::NEXT_VALUE].fetch_add(n, Ordering::AcqRel);
    if base
        .checked_add(n)
        .is_none_or(|end| end > r.values_per_shard as u64)
    {
        return None;
    }
    write_entry(e, family, n as usize, base, ids);
    Some((i, base as u32))
}

/// The value base of `t`'s family's overflow series, counting one series
/// sent there. `None` if that entry is missing or damaged.
pub(crate) fn overflow_base(r: &Region<'_>, t: &Target) -> Option<u32> {
    r.alloc[alloc::SERIES_OVERFLOWED].fetch_add(1, Ordering::Relaxed);
    let shapes = Shapes::one(t);
    r.dir
        .get(t.overflow_entry)
        .and_then(|e| read_entry(r, &shapes, e))
        .filter(|e| e.family == t.family && e.ids().iter().all(|&id| id == OVERFLOW_ID))
        .map(|e| e.base as u32)
}

/// Registers a series and returns its value base and whether it is an
/// entry of its own: a new entry (`true`), or the family's overflow series
/// (`false`) when the family is at its cap or the directory or the values
/// are full. `None` only for a segment whose overflow entry is missing or
/// damaged: no base is ever returned whose values do not fit the value
/// block.
pub(crate) fn register(r: &Region<'_>, t: &Target, ids: &[u32]) -> Option<(u32, bool)> {
    if let Some(f) = &r.families {
        if !f.admit(t.family, t.max_series) {
            f.count_overflow(t.family);
            return overflow_base(r, t).map(|b| (b, false));
        }
    }
    match add_entry(r, t.family, t.shape, ids) {
        Some((_, base)) => Some((base, true)),
        None => overflow_base(r, t).map(|b| (b, false)),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::read::series::read_all;
    use crate::{SegmentOptions, Stats};

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn series_merge_across_handles_and_processes_by_label_strings() {
        let stats = Stats::anonymous().unwrap();
        let h = stats
            .series(
                Family::PacketLossTotal,
                &["incoming", "CAMERA", "VIDEO", "US"],
            )
            .unwrap();
        h.inc_by(3);
        let again = stats
            .series(
                Family::PacketLossTotal,
                &["incoming", "CAMERA", "VIDEO", "US"],
            )
            .unwrap();
        again.inc_by(4);
        // A second registration of the same labels (as another process
        // would make) is merged by the reader.
        let r = stats.segment().series_region();
        let ids: Vec<u32> = ["incoming", "CAMERA", "VIDEO", "US"]
            .iter()
            .map(|s| add_string(&r, s))
            .collect();
        let t = r.livekit_target(Family::PacketLossTotal);
        let (base, own) = register(&r, &t, &ids).unwrap();
        assert!(own);
        r.values[base as usize].fetch_add(10, Ordering::Relaxed);
        let (all, st) = read_all(stats.segment());
        let loss: Vec<_> = all
            .iter()
            .filter(|s| s.family == Family::PacketLossTotal && s.labels[3] == "US")
            .collect();
        assert_eq!(loss.len(), 1);
        assert_eq!(loss[0].value, 17);
        assert_eq!(st.corrupt_entries, 0);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn histograms_bucket_and_sum() {
        let stats = Stats::anonymous().unwrap();
        let h = stats
            .series(Family::RttMs, &["outgoing", "MICROPHONE", "AUDIO", ""])
            .unwrap();
        for v in [10.0, 50.0, 60.0, 20_000.0] {
            h.observe(v);
        }
        let (all, _) = read_all(stats.segment());
        let s = all
            .iter()
            .find(|s| s.family == Family::RttMs && s.labels[0] == "outgoing")
            .unwrap();
        assert_eq!(s.buckets.len(), 11, "10 bounds + Inf");
        assert_eq!((s.buckets[0], s.buckets[1], s.buckets[10]), (2, 1, 1));
        assert_eq!(s.sum, 20_120.0);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn cardinality_is_bounded_by_the_intern_table() {
        let caps = crate::Capacities {
            strings: 300,
            ..Default::default()
        };
        let stats = Stats::open(
            &SegmentOptions::new()
                .shards(1)
                .capacities(caps)
                .livekit_max_series(0),
        )
        .unwrap();
        let cap = stats.segment().layout().strings_capacity;
        for i in 0..cap + 50 {
            let country = format!("c{i}");
            let h = stats
                .series(Family::NackTotal, &["incoming", &country])
                .unwrap();
            h.inc_by(1);
        }
        let long = "x".repeat(MAX_LABEL_BYTES + 1);
        stats
            .series(Family::NackTotal, &["outgoing", &long])
            .unwrap()
            .inc_by(1);
        let (all, st) = read_all(stats.segment());
        let nacks: Vec<_> = all
            .iter()
            .filter(|s| s.family == Family::NackTotal)
            .collect();
        let total: u64 = nacks.iter().map(|s| s.value).sum();
        assert_eq!(total, cap as u64 + 51, "nothing lost");
        assert!(nacks.len() <= cap + 3, "{} series", nacks.len());
        let over = nacks
            .iter()
            .find(|s| s.labels == ["incoming", OVERFLOW_LABEL])
            .unwrap();
        assert!(over.value >= 50);
        assert!(st.strings_overflowed >= 51, "{st:?}");
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn a_family_at_its_cap_overflows_and_leaves_room_for_others() {
        let stats = Stats::open(&SegmentOptions::new().shards(1).livekit_max_series(5)).unwrap();
        for i in 0..20 {
            let c = format!("c{i}");
            stats
                .series(Family::NackTotal, &["incoming", &c])
                .unwrap()
                .inc_by(1);
        }
        // Another family is not starved by the first.
        stats
            .series(Family::PliTotal, &["incoming", "c0"])
            .unwrap()
            .inc_by(7);
        let (all, st) = read_all(stats.segment());
        let nacks: Vec<_> = all
            .iter()
            .filter(|s| s.family == Family::NackTotal)
            .collect();
        assert_eq!(nacks.len(), 6, "5 series and the overflow series");
        assert_eq!(
            nacks.iter().map(|s| s.value).sum::<u64>(),
            20,
            "nothing lost"
        );
        let over = nacks
            .iter()
            .find(|s| s.labels.iter().all(|l| l == OVERFLOW_LABEL))
            .unwrap();
        assert_eq!(over.value, 15);
        assert_eq!(st.series_overflowed, 15);
        let f = stats.segment().family_region().unwrap();
        assert_eq!(f.overflowed(Family::NackTotal.into()), 15);
        assert!(all
            .iter()
            .any(|s| s.family == Family::PliTotal && s.value == 7 && s.labels[1] == "c0"));
        // Label values of the overflowing family were not interned.
        let strings =
            stats.segment().series_region().alloc[alloc::NEXT_STRING].load(Ordering::Relaxed);
        assert!(strings <= 6, "{strings} strings interned");
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn calls_of_the_wrong_kind_write_nothing() {
        let stats = Stats::open(&SegmentOptions::new().shards(1)).unwrap();
        let counter = stats.series(Family::FirTotal, &["incoming", "XX"]).unwrap();
        let hist = stats.series(Family::QualityScore, &[]).unwrap();
        let r = stats.segment().series_region();
        let before: Vec<u64> = r.values.iter().map(|v| v.load(Ordering::Relaxed)).collect();
        counter.observe(3.0);
        hist.inc_by(5);
        hist.add(-1);
        let after: Vec<u64> = r.values.iter().map(|v| v.load(Ordering::Relaxed)).collect();
        assert_eq!(before, after);
        counter.inc_by(2);
        hist.observe(4.0);
        let (all, _) = read_all(stats.segment());
        let c = all
            .iter()
            .find(|s| s.family == Family::FirTotal && s.labels[1] == "XX")
            .unwrap();
        assert_eq!(c.value, 2);
        let h = all
            .iter()
            .find(|s| s.family == Family::QualityScore && s.labels.is_empty())
            .unwrap();
        assert_eq!((h.buckets.iter().sum::<u64>(), h.sum), (1, 4.0));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn a_full_directory_with_a_damaged_overflow_entry_is_an_error() {
        let stats = Stats::anonymous().unwrap();
        let r = stats.segment().series_region();
        // Directory full: the next series goes to the overflow series...
        r.alloc[alloc::NEXT_SERIES].store(u64::MAX - 1, Ordering::Relaxed);
        let h = stats
            .series(Family::RttMs, &["incoming", "CAMERA", "VIDEO", "A"])
            .unwrap();
        h.observe(1.0);
        // ...unless another process rewrote that entry as another family.
        let e = &r.dir[Family::JitterUs as usize];
        let w1 = e.w[1].load(Ordering::Relaxed);
        e.w[1].store(
            (w1 & !0xffff) | Family::QualityRating as u64,
            Ordering::Relaxed,
        );
        let before: Vec<u64> = r.values.iter().map(|v| v.load(Ordering::Relaxed)).collect();
        let got = stats.series(Family::JitterUs, &["incoming", "CAMERA", "VIDEO", "B"]);
        assert!(matches!(got, Err(Error::BadLayout(_))), "{got:?}");
        let after: Vec<u64> = r.values.iter().map(|v| v.load(Ordering::Relaxed)).collect();
        assert_eq!(before, after);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn wrong_label_counts_are_errors() {
        let stats = Stats::anonymous().unwrap();
        assert!(matches!(
            stats.series(Family::NackTotal, &["incoming"]),
            Err(Error::LabelCount {
                expected: 2,
                got: 1,
                ..
            })
        ));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn corrupt_entries_are_skipped_and_counted() {
        let stats = Stats::anonymous().unwrap();
        stats
            .series(Family::FirTotal, &["incoming", "XX"])
            .unwrap()
            .inc_by(1);
        let r = stats.segment().series_region();
        let i = r.alloc[alloc::NEXT_SERIES].load(Ordering::Relaxed) as usize - 1;
        r.dir[i].w[2].store(u64::MAX - 1, Ordering::Relaxed);
        let (all, st) = read_all(stats.segment());
        assert_eq!(st.corrupt_entries, 1);
        assert!(!all
            .iter()
            .any(|s| s.family == Family::FirTotal && s.value > 0));
    }
}
