//! Hooks for the loom models in `tests/loom.rs`, compiled only under
//! `--cfg loom`: heap-backed storage for shards, writer slots, the header
//! and the labeled-series region, and thin wrappers that call the real
//! protocol functions (the same code the mapping uses in production).
//! Raw word access lets the models build deliberately broken variants.

use crate::error::Result;
use crate::segment::header::{self, HeaderFields};
pub use crate::segment::header::{Layout, WriteMode, HEADER_WORDS, INIT_READY};
use crate::series::{self, Region};
pub use crate::series::{SeriesEntry, StringEntry};
pub use crate::shard::{Counter, Shard, COUNTERS};
pub use crate::slots::{Gauge, GaugeTotals, WriterSlot, GAUGES};
pub use crate::Family;
pub use loom::sync::atomic::AtomicU64;

/// Index of the header's init word.
pub const INIT_WORD: usize = header::word::INIT_STATE;
/// State word value of a published series entry or string.
pub const PUBLISHED: u64 = 2;
/// Index of the first gauge word in a writer slot.
pub const GAUGE_BASE: usize = 4;
/// Slot state values.
pub const SLOT_FREE: u64 = crate::slots::FREE;
/// Slot state: claimed, being zeroed.
pub const SLOT_CLAIMING: u64 = crate::slots::CLAIMING;
/// Slot state: active.
pub const SLOT_ACTIVE: u64 = crate::slots::ACTIVE;

/// A zeroed heap shard.
pub fn new_shard() -> Shard {
    Shard::new()
}

/// The hot path's atomic-mode add.
pub fn shard_add(s: &Shard, c: Counter, n: u64) {
    s.add(c, n)
}

/// One counter word (for broken variants).
pub fn shard_word(s: &Shard, c: Counter) -> &AtomicU64 {
    &s.counters[c as usize]
}

/// The collector's sum.
pub fn sum_all(shards: &[Shard]) -> [u64; COUNTERS] {
    crate::shard::sum_all(shards)
}

/// A small valid layout (1 shard, 1 slot, minimal series region).
pub fn small_layout() -> Layout {
    Layout::new(1, 1, 0x1234_5678_9abc_def0, 42, WriteMode::Atomic).expect("layout")
}

/// Zeroed heap header words (a freshly sized segment).
pub fn new_header() -> [AtomicU64; HEADER_WORDS] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// The words `publish` writes for `layout` (init word not ready).
pub fn header_values(layout: &Layout) -> [u64; HEADER_WORDS] {
    layout.to_fields().words
}

/// The creator's `HeaderFields::publish`.
pub fn publish(layout: &Layout, words: &[AtomicU64; HEADER_WORDS]) {
    layout.to_fields().publish(words)
}

/// An attacher's `HeaderFields::load` + `validate`.
pub fn load_and_validate(words: &[AtomicU64; HEADER_WORDS], file_size: u64) -> Result<Layout> {
    HeaderFields::load(words).validate(file_size)
}

/// A free heap writer slot.
pub fn new_slot() -> WriterSlot {
    WriterSlot::new()
}

/// One word of a slot (for setting up a dead writer and broken variants).
pub fn slot_word(s: &WriterSlot, i: usize) -> &AtomicU64 {
    &s.words[i]
}

/// `WriterSlot::try_claim_free`.
pub fn try_claim_free(s: &WriterSlot) -> bool {
    s.try_claim_free()
}

/// `WriterSlot::activate`.
pub fn activate(s: &WriterSlot, pid: u64) {
    s.activate(pid, 0)
}

/// `WriterSlot::release`.
pub fn release(s: &WriterSlot) {
    s.release()
}

/// `WriterSlot::add`.
pub fn gauge_add(s: &WriterSlot, g: Gauge, d: i64) {
    s.add(g, d)
}

/// `WriterSlot::read_gauges`.
pub fn read_gauges(s: &WriterSlot) -> Option<(u64, [i64; GAUGES])> {
    s.read_gauges()
}

/// `slots::merge` with every writer alive.
pub fn merge(slots: &[WriterSlot]) -> GaugeTotals {
    crate::slots::merge(slots, |_| true)
}

/// A heap-backed labeled-series region.
#[derive(Debug)]
pub struct HeapRegion {
    alloc: [AtomicU64; 16],
    dir: Vec<SeriesEntry>,
    strings: Vec<StringEntry>,
    values: Vec<AtomicU64>,
    values_per_shard: usize,
}

impl HeapRegion {
    /// `series` directory entries, `strings` strings, one shard of
    /// `values_per_shard` values; allocation counters at zero.
    pub fn new(series: usize, strings: usize, values_per_shard: usize) -> Self {
        HeapRegion {
            alloc: std::array::from_fn(|_| AtomicU64::new(0)),
            dir: (0..series)
                .map(|_| SeriesEntry {
                    w: std::array::from_fn(|_| AtomicU64::new(0)),
                })
                .collect(),
            strings: (0..strings)
                .map(|_| StringEntry {
                    w: std::array::from_fn(|_| AtomicU64::new(0)),
                })
                .collect(),
            values: (0..values_per_shard).map(|_| AtomicU64::new(0)).collect(),
            values_per_shard,
        }
    }

    fn region(&self) -> Region<'_> {
        Region {
            alloc: &self.alloc,
            dir: &self.dir,
            strings: &self.strings,
            values: &self.values,
            values_per_shard: self.values_per_shard,
        }
    }

    /// `series::register`: claims an entry and a value range, writes and
    /// publishes the entry; returns the value base.
    pub fn register(&self, family: Family, ids: &[u32]) -> u32 {
        series::register(&self.region(), family, ids).unwrap_or(u32::MAX)
    }

    /// `series::write_entry` into directory entry `i`.
    pub fn write_entry(&self, i: usize, family: Family, base: u64, ids: &[u32]) {
        series::write_entry(&self.dir[i], family, family.def().value_count(), base, ids)
    }

    /// `series::read_entry` of directory entry `i`: family, value count,
    /// base and label ids.
    pub fn read_entry(&self, i: usize) -> Option<(Family, usize, usize, Vec<u32>)> {
        let r = self.region();
        series::read_entry(&r, &r.dir[i]).map(|(f, n, b, ids, nl)| (f, n, b, ids[..nl].to_vec()))
    }

    /// `series::add_string`.
    pub fn add_string(&self, s: &str) -> u32 {
        series::add_string(&self.region(), s)
    }

    /// `series::read_string` of string `i`, as bytes.
    pub fn read_string(&self, i: usize) -> Option<Vec<u8>> {
        series::read_string(&self.strings[i]).map(|(b, len)| b[..len].to_vec())
    }

    /// Word `k` of directory entry `i`.
    pub fn entry_word(&self, i: usize, k: usize) -> &AtomicU64 {
        &self.dir[i].w[k]
    }

    /// Word `k` of string `i`.
    pub fn string_word(&self, i: usize, k: usize) -> &AtomicU64 {
        &self.strings[i].w[k]
    }
}
