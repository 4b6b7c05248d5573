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

use crate::error::{Error, Result};
use crate::prom::families::{Family, Kind, LIVEKIT_FAMILIES, MAX_BUCKETS};
use crate::segment::Segment;
use crate::shard::CpuSource;
use crate::sync::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Bytes of the allocation line at the start of the series region.
pub(crate) const ALLOC_LINE_BYTES: usize = 128;
/// Longest label value kept; longer values overflow.
pub const MAX_LABEL_BYTES: usize = 64;
/// Most labels a family may have.
pub const MAX_LABELS: usize = 8;
/// The label value shown for values that did not fit.
pub const OVERFLOW_LABEL: &str = "__overflow__";
/// String id standing for [`OVERFLOW_LABEL`].
const OVERFLOW_ID: u32 = u32::MAX;

const PUBLISHED: u64 = 2;

mod alloc {
    pub(super) const NEXT_SERIES: usize = 0;
    pub(super) const NEXT_STRING: usize = 1;
    pub(super) const NEXT_VALUE: usize = 2;
    pub(super) const STRINGS_OVERFLOWED: usize = 3;
    pub(super) const SERIES_OVERFLOWED: usize = 4;
}

/// One directory entry: state, family and value count, value base, label
/// string ids (two per word).
#[repr(C)]
#[derive(Debug)]
pub struct SeriesEntry {
    pub(crate) w: [AtomicU64; 8],
}

/// One interned label string: state and length, then up to 64 bytes.
#[repr(C)]
#[derive(Debug)]
pub struct StringEntry {
    pub(crate) w: [AtomicU64; 9],
}

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<SeriesEntry>() == 64);
    assert!(size_of::<StringEntry>() == 72);
};

/// The series region of a mapped segment.
pub(crate) struct Region<'a> {
    pub(crate) alloc: &'a [AtomicU64; 16],
    pub(crate) dir: &'a [SeriesEntry],
    pub(crate) strings: &'a [StringEntry],
    /// Every shard's value block, `values_per_shard` words each.
    pub(crate) values: &'a [AtomicU64],
    pub(crate) values_per_shard: usize,
}

impl Region<'_> {
    fn value_sum(&self, index: usize) -> u64 {
        let mut sum = 0u64;
        let mut i = index;
        while i < self.values.len() {
            sum = sum.wrapping_add(self.values[i].load(Ordering::Relaxed));
            i += self.values_per_shard;
        }
        sum
    }
}

/// Writes the per-family overflow series into a new segment's directory.
/// Runs before the segment is published, so nothing races with it.
pub(crate) fn init_region(r: &Region<'_>) -> Result<()> {
    let mut base = 0usize;
    for (i, f) in Family::ALL.iter().enumerate() {
        let n = f.def().value_count();
        let labels = [OVERFLOW_ID; MAX_LABELS];
        write_entry(
            &r.dir[i],
            *f,
            n,
            base as u64,
            &labels[..f.def().labels.len()],
        );
        base += n;
    }
    if LIVEKIT_FAMILIES > r.dir.len() || base > r.values_per_shard {
        return Err(Error::Config(
            "series capacity too small for the overflow series".into(),
        ));
    }
    r.alloc[alloc::NEXT_SERIES].store(LIVEKIT_FAMILIES as u64, Ordering::Relaxed);
    r.alloc[alloc::NEXT_VALUE].store(base as u64, Ordering::Relaxed);
    Ok(())
}

pub(crate) fn write_entry(e: &SeriesEntry, f: Family, n: usize, base: u64, ids: &[u32]) {
    e.w[1].store(
        f as u64 | (n as u64) << 16 | (ids.len() as u64) << 32,
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

/// A resolved series: family, label values, value base.
type CachedSeries = (Family, Vec<String>, u32);

/// A process's cache of resolved strings and series, so each is looked up
/// in the segment once.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    strings: Mutex<HashMap<String, u32>>,
    /// Keyed by a hash of (family, labels); collisions resolved by compare.
    series: RwLock<HashMap<u64, Vec<CachedSeries>>>,
}

fn key_hash(family: Family, labels: &[&str]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    family.hash(&mut h);
    for l in labels {
        l.hash(&mut h);
    }
    h.finish()
}

impl Cache {
    /// The value base of the series, registering it if needed.
    pub(crate) fn resolve(&self, seg: &Segment, family: Family, labels: &[&str]) -> Result<u32> {
        let def = family.def();
        if labels.len() != def.labels.len() {
            return Err(Error::Config(format!(
                "{} takes {} label values ({}), got {}",
                def.name,
                def.labels.len(),
                def.labels.join(", "),
                labels.len()
            )));
        }
        if !seg.is_writable() {
            return Err(Error::ReadOnly);
        }
        let key = key_hash(family, labels);
        if let Some(base) = self.lookup(key, family, labels) {
            return Ok(base);
        }
        let r = seg.series_region();
        let mut ids = [0u32; MAX_LABELS];
        for (id, l) in ids.iter_mut().zip(labels) {
            *id = self.intern(&r, l);
        }
        let ids = &ids[..labels.len()];
        let base = find_entry(&r, family, ids)
            .or_else(|| register(&r, family, ids))
            .ok_or(Error::BadLayout(
                "the series region is full and its overflow series is damaged",
            ))?;
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_default().push((
            family,
            labels.iter().map(|s| s.to_string()).collect(),
            base,
        ));
        Ok(base)
    }

    /// A cached series, without allocating.
    pub(crate) fn lookup(&self, key: u64, family: Family, labels: &[&str]) -> Option<u32> {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        map.get(&key)?
            .iter()
            .find(|(f, l, _)| {
                *f == family && l.iter().map(String::as_str).eq(labels.iter().copied())
            })
            .map(|e| e.2)
    }

    fn intern(&self, r: &Region<'_>, s: &str) -> u32 {
        let mut map = self.strings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = map.get(s) {
            return id;
        }
        let id = find_string(r, s).unwrap_or_else(|| add_string(r, s));
        map.insert(s.to_string(), id);
        id
    }
}

fn find_string(r: &Region<'_>, s: &str) -> Option<u32> {
    let n = (r.alloc[alloc::NEXT_STRING].load(Ordering::Acquire) as usize).min(r.strings.len());
    (0..n)
        .find(|&i| read_string(&r.strings[i]).is_some_and(|(b, len)| &b[..len] == s.as_bytes()))
        .map(|i| i as u32)
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

/// A published entry's family, value count, base and label ids, if its
/// fields are in range for `r`.
pub(crate) fn read_entry(
    r: &Region<'_>,
    e: &SeriesEntry,
) -> Option<(Family, usize, usize, [u32; MAX_LABELS], usize)> {
    if e.w[0].load(Ordering::Acquire) != PUBLISHED {
        return None;
    }
    let w1 = e.w[1].load(Ordering::Relaxed);
    let family = Family::from_index((w1 & 0xffff) as usize)?;
    let n = ((w1 >> 16) & 0xffff) as usize;
    let nl = ((w1 >> 32) & 0xffff) as usize;
    let base = e.w[2].load(Ordering::Relaxed);
    let def = family.def();
    if n != def.value_count()
        || nl != def.labels.len()
        || base.checked_add(n as u64)? > r.values_per_shard as u64
    {
        return None;
    }
    let mut ids = [0u32; MAX_LABELS];
    for (k, id) in ids.iter_mut().enumerate().take(nl) {
        let w = e.w[3 + k / 2].load(Ordering::Relaxed);
        *id = if k % 2 == 0 {
            w as u32
        } else {
            (w >> 32) as u32
        };
    }
    Some((family, n, base as usize, ids, nl))
}

fn find_entry(r: &Region<'_>, family: Family, ids: &[u32]) -> Option<u32> {
    let n = (r.alloc[alloc::NEXT_SERIES].load(Ordering::Acquire) as usize).min(r.dir.len());
    (LIVEKIT_FAMILIES..n).find_map(|i| {
        let (f, _, base, got, nl) = read_entry(r, &r.dir[i])?;
        (f == family && &got[..nl] == ids).then_some(base as u32)
    })
}

/// Registers a series and returns its value base: a new entry, or the
/// family's overflow series when the directory or the values are full.
/// `None` only for a segment whose overflow entry is missing or damaged:
/// no base is ever returned whose values do not fit the value block.
pub(crate) fn register(r: &Region<'_>, family: Family, ids: &[u32]) -> Option<u32> {
    let overflow = || {
        r.alloc[alloc::SERIES_OVERFLOWED].fetch_add(1, Ordering::Relaxed);
        r.dir
            .get(family as usize)
            .and_then(|e| read_entry(r, e))
            .filter(|e| e.0 == family)
            .map(|e| e.2 as u32)
    };
    let n = family.def().value_count() as u64;
    let i = r.alloc[alloc::NEXT_SERIES].fetch_add(1, Ordering::AcqRel) as usize;
    let Some(e) = r.dir.get(i) else {
        return overflow();
    };
    let base = r.alloc[alloc::NEXT_VALUE].fetch_add(n, Ordering::AcqRel);
    if base
        .checked_add(n)
        .is_none_or(|end| end > r.values_per_shard as u64)
    {
        // The claimed entry stays unpublished: readers skip it.
        return overflow();
    }
    write_entry(e, family, n as usize, base, ids);
    Some(base as u32)
}

/// Precomputed bucket bounds of every family.
fn bounds(family: Family) -> &'static ([f64; MAX_BUCKETS], usize) {
    static TABLE: OnceLock<Vec<([f64; MAX_BUCKETS], usize)>> = OnceLock::new();
    &TABLE.get_or_init(|| {
        Family::ALL
            .iter()
            .map(|f| f.def().buckets.bounds())
            .collect()
    })[family as usize]
}

/// Where and how a writer adds to series values: the current CPU's value
/// block, in the segment's write mode (rseq sections on an rseq segment,
/// `fetch_add` otherwise — one mode per segment, so no word ever sees both).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Adder {
    values: NonNull<AtomicU64>,
    values_per_shard: usize,
    /// log2 of the block stride in bytes (`values_per_shard * 8`), for the
    /// rseq sections.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    shift: u32,
    mask: usize,
    cpu: CpuSource,
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    rseq: Option<crate::rseq::Area>,
}

impl Adder {
    /// An adder for `seg`'s value blocks. `rseq` is the writer's area when
    /// the segment is in rseq mode.
    pub(crate) fn new(
        seg: &Segment,
        cpu: CpuSource,
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))] rseq: Option<crate::rseq::Area>,
    ) -> Self {
        let r = seg.series_region();
        Adder {
            values: NonNull::from(&r.values[0]),
            values_per_shard: r.values_per_shard,
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            shift: (r.values_per_shard * 8).trailing_zeros(),
            mask: seg.layout().shard_count - 1,
            cpu,
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            rseq,
        }
    }

    /// Word `index` of the current CPU's block (for the histogram sum,
    /// which every writer updates with compare-and-swap in both modes).
    #[inline(always)]
    fn word(&self, index: usize) -> &AtomicU64 {
        let shard = self.cpu.current() & self.mask;
        // SAFETY: shard < shard_count and index < values_per_shard (callers
        // pass a series base plus an offset below its value count, checked
        // at registration), so the word is inside the values region, which
        // the caller's segment keeps mapped while the adder is used.
        unsafe {
            &*self
                .values
                .as_ptr()
                .add(shard * self.values_per_shard + index)
        }
    }

    /// Adds `n` to word `index` of the current CPU's block.
    #[inline(always)]
    pub(crate) fn add(&self, index: usize, n: u64) {
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if let Some(area) = self.rseq {
            // SAFETY: `values + index` is word `index` of block 0; blocks are
            // `values_per_shard * 8` bytes apart, a power of two (validated),
            // so `(cpu & mask) << shift` reaches block `cpu & mask`, inside
            // the region for every cpu. The segment is in rseq mode and every
            // writer of series values adds through an adder, with shards for
            // every possible CPU (`check_writer`).
            unsafe {
                area.add_strided(
                    self.values.as_ptr().add(index) as *mut u64,
                    self.mask,
                    self.shift,
                    n,
                )
            };
            return;
        }
        self.word(index).fetch_add(n, Ordering::Relaxed);
    }

    /// Observes `value` in the histogram of `family` whose values start at
    /// `base`: one bucket add and the sum.
    #[inline]
    pub(crate) fn observe(&self, family: Family, base: usize, value: f64) {
        let (b, nb) = bounds(family);
        let bucket = b[..*nb].iter().position(|&ub| value <= ub).unwrap_or(*nb);
        self.add(base + bucket, 1);
        add_f64(self.word(base + nb + 1), value);
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

/// A resolved series: record through it with no lookup, no lock and no
/// allocation, in the segment's write mode.
#[derive(Clone, Debug)]
pub struct SeriesHandle {
    adder: Adder,
    family: Family,
    /// Whether the family is a histogram: decides which calls may write,
    /// so no call reaches past the series' own words.
    histogram: bool,
    base: usize,
    segment: Arc<Segment>,
}

// SAFETY: the adder points into the mapping owned by `segment`, which the
// handle keeps alive; the memory is only written through atomics or rseq
// sections, both sound from any thread.
unsafe impl Send for SeriesHandle {}
// SAFETY: as above.
unsafe impl Sync for SeriesHandle {}

impl SeriesHandle {
    pub(crate) fn new(segment: Arc<Segment>, adder: Adder, family: Family, base: u32) -> Self {
        SeriesHandle {
            adder,
            family,
            histogram: family.def().kind == Kind::Histogram,
            base: base as usize,
            segment,
        }
    }

    /// The family this series belongs to.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Adds `n` to a counter series (does nothing on a histogram).
    #[inline]
    pub fn inc_by(&self, n: u64) {
        if !self.histogram {
            self.adder.add(self.base, n);
        }
    }

    /// Adds a signed delta to a gauge series (the sum is clamped at zero
    /// when exported; does nothing on a histogram).
    #[inline]
    pub fn add(&self, delta: i64) {
        if !self.histogram {
            self.adder.add(self.base, delta as u64);
        }
    }

    /// Observes a value in a histogram series (does nothing on a counter or
    /// gauge: they have no buckets to write).
    #[inline]
    pub fn observe(&self, value: f64) {
        if self.histogram {
            self.adder.observe(self.family, self.base, value);
        }
    }

    /// The segment this handle records into.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }
}

/// Adds the country-labeled media series (packets, bytes, NACK/PLI/FIR)
/// into the fixed counters, so NodeStats counts every country. Reads only
/// those families' entries and no strings but the direction and
/// transmission labels; allocates nothing.
pub(crate) fn fold_media(seg: &Segment, counters: &mut [u64; crate::shard::COUNTERS]) {
    use crate::shard::Counter as C;
    let r = seg.series_region();
    let n = (r.alloc[alloc::NEXT_SERIES].load(Ordering::Acquire) as usize).min(r.dir.len());
    let class = |id: u32| -> Option<usize> {
        let (b, len) = read_string(r.strings.get(id as usize)?)?;
        match &b[..len] {
            b"incoming" | b"initial" => Some(0),
            b"outgoing" | b"retransmit" => Some(1),
            _ => None,
        }
    };
    for e in &r.dir[..n] {
        let Some((family, _, base, ids, _)) = read_entry(&r, e) else {
            continue;
        };
        let target = match family {
            Family::PacketTotal | Family::PacketBytes => {
                let (Some(d), Some(t)) = (class(ids[0]), class(ids[1])) else {
                    continue;
                };
                d * 4 + t * 2 + (family == Family::PacketBytes) as usize
            }
            Family::NackTotal | Family::PliTotal | Family::FirTotal => {
                let Some(d) = class(ids[0]) else {
                    continue;
                };
                let first = match family {
                    Family::NackTotal => C::NackIn,
                    Family::PliTotal => C::PliIn,
                    _ => C::FirIn,
                };
                first as usize + d
            }
            _ => continue,
        };
        counters[target] = counters[target].wrapping_add(r.value_sum(base));
    }
}

/// A merged series read from the segment.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesValue {
    /// Family.
    pub family: Family,
    /// Label values, in the family's label order.
    pub labels: Vec<String>,
    /// Counter or gauge value (gauges as two's-complement `i64` bits).
    pub value: u64,
    /// Histogram bucket counts (non-cumulative, +Inf last).
    pub buckets: Vec<u64>,
    /// Histogram sum.
    pub sum: f64,
}

/// What the reader found besides the series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeriesStats {
    /// Label values that did not fit in the intern table.
    pub strings_overflowed: u64,
    /// Series that did not fit and went to their family's overflow series.
    pub series_overflowed: u64,
    /// Published entries with out-of-range fields (skipped).
    pub corrupt_entries: u64,
    /// Series registered.
    pub registered: u64,
}

/// Reads and merges every published series. Every index and length comes
/// from the validated layout; entries with out-of-range fields are skipped
/// and counted.
pub fn read_all(seg: &Segment) -> (Vec<SeriesValue>, SeriesStats) {
    let r = seg.series_region();
    let mut stats = SeriesStats {
        strings_overflowed: r.alloc[alloc::STRINGS_OVERFLOWED].load(Ordering::Relaxed),
        series_overflowed: r.alloc[alloc::SERIES_OVERFLOWED].load(Ordering::Relaxed),
        ..SeriesStats::default()
    };
    let n_strings =
        (r.alloc[alloc::NEXT_STRING].load(Ordering::Acquire) as usize).min(r.strings.len());
    let strings: Vec<Option<String>> = (0..n_strings)
        .map(|i| {
            read_string(&r.strings[i])
                .and_then(|(b, len)| String::from_utf8(b[..len].to_vec()).ok())
        })
        .collect();
    let n_series = (r.alloc[alloc::NEXT_SERIES].load(Ordering::Acquire) as usize).min(r.dir.len());
    stats.registered = n_series.saturating_sub(LIVEKIT_FAMILIES) as u64;
    let mut merged: HashMap<(Family, Vec<String>), SeriesValue> = HashMap::new();
    for e in &r.dir[..n_series] {
        if e.w[0].load(Ordering::Acquire) != PUBLISHED {
            continue;
        }
        let Some((family, n, base, ids, nl)) = read_entry(&r, e) else {
            stats.corrupt_entries += 1;
            continue;
        };
        let labels: Option<Vec<String>> = ids[..nl]
            .iter()
            .map(|&id| match id {
                OVERFLOW_ID => Some(OVERFLOW_LABEL.to_string()),
                _ => strings.get(id as usize).cloned().flatten(),
            })
            .collect();
        let Some(labels) = labels else {
            stats.corrupt_entries += 1;
            continue;
        };
        let sums: Vec<u64> = (0..n).map(|k| r.value_sum(base + k)).collect();
        let slot = merged
            .entry((family, labels.clone()))
            .or_insert_with(|| SeriesValue {
                family,
                labels,
                value: 0,
                buckets: Vec::new(),
                sum: 0.0,
            });
        if family.def().kind == Kind::Histogram {
            let nb = n - 1;
            if slot.buckets.is_empty() {
                slot.buckets = vec![0; nb];
            }
            for (b, v) in slot.buckets.iter_mut().zip(&sums[..nb]) {
                *b = b.wrapping_add(*v);
            }
            // Per-shard sums are f64 bits: add them as floats.
            let mut s = 0.0;
            let mut i = base + nb;
            while i < r.values.len() {
                s += f64::from_bits(r.values[i].load(Ordering::Relaxed));
                i += r.values_per_shard;
            }
            slot.sum += s;
        } else {
            slot.value = slot.value.wrapping_add(sums[0]);
        }
    }
    let mut out: Vec<SeriesValue> = merged.into_values().collect();
    out.sort_by(|a, b| (a.family as u16, &a.labels).cmp(&(b.family as u16, &b.labels)));
    (out, stats)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
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
        let base = register(&r, Family::PacketLossTotal, &ids).unwrap();
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
        let stats = Stats::open(&SegmentOptions::new().shards(1)).unwrap();
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
    fn wrong_label_counts_are_config_errors() {
        let stats = Stats::anonymous().unwrap();
        assert!(matches!(
            stats.series(Family::NackTotal, &["incoming"]),
            Err(Error::Config(_))
        ));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn corrupt_entries_are_skipped_and_counted() {
        let stats = Stats::anonymous().unwrap();
        stats
            .series(Family::FirTotal, &["incoming", ""])
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
