//! The segment header: 32 little-endian `u64` words at offset 0.
//!
//! The header is read and written only through atomic word loads and
//! stores, so a header that another process scribbles on while we read it
//! is a wrong value, never undefined behaviour. Readers copy the words once
//! (`HeaderFields::load`), validate the copy, and use only the copy.

use super::families::{self, MAX_FAMILIES};
use super::series::{SeriesEntry, StringEntry, ALLOC_LINE_BYTES};
use super::shard::Shard;
use super::slots::WriterSlot;
use crate::error::{Error, Result};
use crate::schema::{COUNTERS, LIVEKIT_FAMILIES};
use crate::sync::{AtomicU64, Ordering};

/// First word of every segment: `"NODESTAT"` in little-endian byte order.
pub const MAGIC: u64 = u64::from_le_bytes(*b"NODESTAT");
/// Layout major version: readers refuse any other major.
pub const LAYOUT_MAJOR: u64 = 2;
/// Layout minor version: additive changes only; readers accept any minor.
pub const LAYOUT_MINOR: u64 = 3;
/// Words in the header.
pub(crate) const HEADER_WORDS: usize = 32;
/// Bytes in the header; the first region starts here.
pub const HEADER_SIZE: usize = HEADER_WORDS * 8;
/// Value of the init word once the creator has written everything else.
pub(crate) const INIT_READY: u64 = u64::from_le_bytes(*b"READY\0\0\x01");
/// Most shards a segment may declare.
pub(crate) const MAX_SHARDS: u64 = 4096;
/// Most writer slots a segment may declare.
pub(crate) const MAX_SLOTS: u64 = 4096;
/// Most thread rows a segment may declare.
pub(crate) const MAX_ROWS: u64 = 4096;
/// Most series slots a thread row may declare.
pub(crate) const MAX_ROW_SERIES_SLOTS: u64 = 1024;
/// Series slots of each thread row in a new segment unless
/// [`SegmentOptions::thread_row_series_slots`](crate::SegmentOptions::thread_row_series_slots)
/// says otherwise (see `segment::rows`): room for a few histograms and a
/// few dozen counters per thread writer, 1 KiB per row.
pub const DEFAULT_ROW_SERIES_SLOTS: usize = 64;
/// Alignment of every region.
pub(crate) const REGION_ALIGN: u64 = 128;
/// Most labeled series a segment may declare.
pub(crate) const MAX_SERIES: u64 = 1 << 16;
/// Most interned label strings a segment may declare.
pub(crate) const MAX_STRINGS: u64 = 1 << 16;
/// Most series values per shard a segment may declare.
pub(crate) const MAX_VALUES_PER_SHARD: u64 = 1 << 20;
/// Default labeled-series capacity.
pub const DEFAULT_SERIES: usize = 8192;
/// Default interned-string capacity.
pub const DEFAULT_STRINGS: usize = 8192;
/// Default series values per value block (grown to fit the overflow
/// series of a segment with many writer slots).
pub const DEFAULT_VALUES_PER_SHARD: usize = 16384;
/// Most labeled-series value blocks a new segment gets: one per shard up to
/// this many, then shared stripes (see `Layout::value_blocks`).
pub(crate) const MAX_VALUE_BLOCKS: usize = 16;

/// How writers add to shards. Fixed at creation and stored in the header:
/// a plain add and a locked add on one shard lose updates, so every writer
/// of a segment, in every process, adds the same way (or refuses to write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum WriteMode {
    /// `fetch_add(Relaxed)`: correct under migration, preemption and across
    /// processes, on every platform.
    Atomic = 0,
    /// A non-locked add inside a restartable sequence (Linux x86-64 only;
    /// see `rseq`): no lock prefix. Needs a shard for every possible
    /// CPU id. Readers older than this mode reject it with
    /// [`Error::UnsupportedWriteMode`].
    Rseq = 1,
}

impl WriteMode {
    fn from_word(w: u64) -> Option<Self> {
        match w {
            0 => Some(WriteMode::Atomic),
            1 => Some(WriteMode::Rseq),
            _ => None,
        }
    }
}

/// Word indices of the header fields. Pinned by a test: changing any of
/// them is a major layout change.
pub(crate) mod word {
    pub(crate) const MAGIC: usize = 0;
    pub(crate) const LAYOUT_MAJOR: usize = 1;
    pub(crate) const LAYOUT_MINOR: usize = 2;
    pub(crate) const HEADER_SIZE: usize = 3;
    pub(crate) const SEGMENT_SIZE: usize = 4;
    pub(crate) const SEGMENT_ID_LO: usize = 5;
    pub(crate) const SEGMENT_ID_HI: usize = 6;
    pub(crate) const CREATED_UNIX_NS: usize = 7;
    pub(crate) const WRITE_MODE: usize = 8;
    pub(crate) const SHARD_COUNT: usize = 9;
    pub(crate) const SHARD_STRIDE: usize = 10;
    pub(crate) const COUNTERS_PER_SHARD: usize = 11;
    pub(crate) const SHARDS_OFFSET: usize = 12;
    pub(crate) const SLOT_COUNT: usize = 13;
    pub(crate) const SLOT_STRIDE: usize = 14;
    pub(crate) const SLOTS_OFFSET: usize = 15;
    pub(crate) const SERIES_OFFSET: usize = 16;
    pub(crate) const SERIES_CAPACITY: usize = 17;
    pub(crate) const STRINGS_CAPACITY: usize = 18;
    pub(crate) const VALUES_OFFSET: usize = 19;
    pub(crate) const VALUES_PER_SHARD: usize = 20;
    /// Labeled-series value blocks; 0 (as written before this word was
    /// used) means one per shard.
    pub(crate) const VALUE_BLOCKS: usize = 21;
    // 22, 29 and 30 are reserved.
    pub(crate) const ROW_COUNT: usize = 23;
    pub(crate) const ROW_STRIDE: usize = 24;
    pub(crate) const ROWS_OFFSET: usize = 25;
    pub(crate) const ROW_STATES_OFFSET: usize = 26;
    /// Series slots per thread row (layout minor 1); 0, as written before
    /// this word was used, means rows have none.
    pub(crate) const ROW_SERIES_SLOTS: usize = 27;
    pub(crate) const ROW_SERIES_OFFSET: usize = 28;
    /// Offset of the family directory region (layout 2.2).
    pub(crate) const FAMILIES_OFFSET: usize = 29;
    /// Declared families the directory holds; 0 (older writers): none.
    pub(crate) const FAMILY_CAPACITY: usize = 30;
    pub(crate) const INIT_STATE: usize = 31;
}

/// A private copy of the header words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderFields {
    pub(crate) words: [u64; HEADER_WORDS],
}

/// The validated geometry of a segment, derived only from a checked copy of
/// its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Random id chosen at creation; a new id means every counter restarted.
    pub segment_id: u128,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_unix_ns: u64,
    /// Layout minor version of the creator.
    pub layout_minor: u64,
    /// How writers add.
    pub write_mode: WriteMode,
    /// Total bytes.
    pub segment_size: usize,
    /// Number of per-CPU shards (a power of two).
    pub shard_count: usize,
    /// Byte offset of the first shard.
    pub shards_offset: usize,
    /// Number of writer slots.
    pub slot_count: usize,
    /// Byte offset of the first writer slot.
    pub slots_offset: usize,
    /// Byte offset of the labeled-series region (allocation line,
    /// directory, interned strings).
    pub series_offset: usize,
    /// Labeled series the directory holds.
    pub series_capacity: usize,
    /// Label strings the intern table holds.
    pub strings_capacity: usize,
    /// Byte offset of the per-shard series values.
    pub values_offset: usize,
    /// Series values (u64 words) per shard.
    pub values_per_shard: usize,
    /// Labeled-series value blocks: one per shard while that is at most
    /// 16, so a writer adds to its CPU's own block (an rseq section on an
    /// rseq segment); past that, 16 blocks that CPUs share by `cpu & 15`,
    /// written with `fetch_add` in both modes. Memory then follows the
    /// labeled capacity, not the number of possible CPUs: 2 MiB of values
    /// with the default capacities on a 256-CPU host instead of 32 MiB.
    pub value_blocks: usize,
    /// Number of thread rows (rows of counters owned by one thread writer each).
    pub row_count: usize,
    /// Byte offset of the first thread row.
    pub rows_offset: usize,
    /// Byte offset of the row state words (one `u64` per row).
    pub row_states_offset: usize,
    /// Series slots per thread row (0: the segment's rows have none).
    pub row_series_slots: usize,
    /// Byte offset of the rows' series slots: per row, `row_series_slots`
    /// binding words, then as many value words.
    pub row_series_offset: usize,
    /// Byte offset of the family directory region (see SEGMENT.md §8a).
    pub families_offset: usize,
    /// Declared families the directory holds (0: the segment has no
    /// family directory).
    pub family_capacity: usize,
}

/// How much a new segment's labeled-series regions hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacities {
    /// Series directory entries (the 49 LiveKit overflow series included).
    pub series: usize,
    /// Interned label values.
    pub strings: usize,
    /// `u64` value words per value block (a power of two).
    pub values_per_block: usize,
    /// Declared families.
    pub families: usize,
}

impl Default for Capacities {
    fn default() -> Self {
        Capacities {
            series: DEFAULT_SERIES,
            strings: DEFAULT_STRINGS,
            values_per_block: DEFAULT_VALUES_PER_SHARD,
            families: families::DEFAULT_FAMILIES,
        }
    }
}

/// Bytes of the labeled-series region for the given capacities.
pub(crate) fn series_region_bytes(series: u64, strings: u64) -> Option<u64> {
    let dir = series.checked_mul(size_of::<SeriesEntry>() as u64)?;
    let str_ = strings.checked_mul(size_of::<StringEntry>() as u64)?;
    let n = (ALLOC_LINE_BYTES as u64)
        .checked_add(dir)?
        .checked_add(str_)?;
    Some(n.div_ceil(REGION_ALIGN) * REGION_ALIGN)
}

/// Bytes of the row state table for `rows` rows (at most [`MAX_ROWS`]): one
/// word each, padded to whole 128-byte lines.
pub(crate) const fn row_states_bytes(rows: u64) -> u64 {
    (rows * 8).div_ceil(REGION_ALIGN) * REGION_ALIGN
}

impl Layout {
    /// The geometry of a new segment with `shard_count` shards,
    /// `slot_count` writer slots and `row_count` thread rows.
    #[cfg(test)]
    pub(crate) fn new(
        shard_count: usize,
        slot_count: usize,
        row_count: usize,
        segment_id: u128,
        created_unix_ns: u64,
        write_mode: WriteMode,
    ) -> Result<Self> {
        Self::with_capacities(
            shard_count,
            slot_count,
            row_count,
            segment_id,
            created_unix_ns,
            write_mode,
            Capacities::default(),
            DEFAULT_ROW_SERIES_SLOTS,
        )
    }

    /// [`new`](Self::new) with the given labeled-series capacities and
    /// series slots per thread row.
    // Every argument is one header field a creator chooses.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn with_capacities(
        shard_count: usize,
        slot_count: usize,
        row_count: usize,
        segment_id: u128,
        created_unix_ns: u64,
        write_mode: WriteMode,
        caps: Capacities,
        row_series_slots: usize,
    ) -> Result<Self> {
        if row_series_slots as u64 > MAX_ROW_SERIES_SLOTS {
            return Err(Error::Config(format!(
                "{row_series_slots} series slots per thread row: at most {MAX_ROW_SERIES_SLOTS}"
            )));
        }
        if !shard_count.is_power_of_two() || shard_count as u64 > MAX_SHARDS {
            return Err(Error::Config(format!(
                "shard count {shard_count} must be a power of two between 1 and {MAX_SHARDS}"
            )));
        }
        if slot_count == 0 || slot_count as u64 > MAX_SLOTS {
            return Err(Error::Config(format!(
                "writer slot count {slot_count} must be between 1 and {MAX_SLOTS}"
            )));
        }
        if row_count == 0 || row_count as u64 > MAX_ROWS {
            return Err(Error::Config(format!(
                "thread row count {row_count} must be between 1 and {MAX_ROWS}"
            )));
        }
        let shards_offset = HEADER_SIZE;
        let slots_offset = shards_offset + shard_count * size_of::<Shard>();
        let rows_offset = slots_offset + slot_count * size_of::<WriterSlot>();
        let row_states_offset = rows_offset + row_count * size_of::<Shard>();
        let series_offset = row_states_offset + row_states_bytes(row_count as u64) as usize;
        // The overflow series take room first: a gauge series has one word
        // per writer slot. Leave at least as much again for real series.
        let overflow: usize = crate::schema::Family::ALL
            .iter()
            .map(|f| match f.def().kind {
                crate::schema::Kind::Gauge => slot_count,
                _ => f.def().value_count(),
            })
            .sum();
        if !(LIVEKIT_FAMILIES as u64 + 1..=MAX_SERIES).contains(&(caps.series as u64))
            || !(1..=MAX_STRINGS).contains(&(caps.strings as u64))
            || !(16..=MAX_VALUES_PER_SHARD).contains(&(caps.values_per_block as u64))
            || !caps.values_per_block.is_power_of_two()
            || !(1..=MAX_FAMILIES).contains(&(caps.families as u64))
        {
            return Err(Error::Config(format!(
                "capacities {caps:?}: series {} to {MAX_SERIES}, strings 1 to {MAX_STRINGS}, values per block a power of two from 16 to {MAX_VALUES_PER_SHARD}, families 1 to {MAX_FAMILIES}",
                LIVEKIT_FAMILIES + 1
            )));
        }
        let (series_capacity, strings_capacity, values_per_shard) = (
            caps.series,
            caps.strings,
            caps.values_per_block
                .max((2 * overflow).next_power_of_two()),
        );
        if values_per_shard as u64 > MAX_VALUES_PER_SHARD {
            return Err(Error::Config(format!(
                "{slot_count} writer slots need more series values per block than {MAX_VALUES_PER_SHARD}"
            )));
        }
        let values_offset = series_offset
            + series_region_bytes(series_capacity as u64, strings_capacity as u64)
                .ok_or(Error::BadLayout("series region overflows"))? as usize;
        let value_blocks = shard_count.min(MAX_VALUE_BLOCKS);
        let row_series_offset = values_offset + value_blocks * values_per_shard * 8;
        let families_offset = row_series_offset + row_count * row_series_slots * 16;
        let family_capacity = caps.families;
        let segment_size = families_offset
            + families::region_bytes(family_capacity as u64)
                .ok_or(Error::BadLayout("family region overflows"))? as usize;
        Ok(Layout {
            segment_id,
            created_unix_ns,
            layout_minor: LAYOUT_MINOR,
            write_mode,
            segment_size,
            shard_count,
            shards_offset,
            slot_count,
            slots_offset,
            series_offset,
            series_capacity,
            strings_capacity,
            values_offset,
            values_per_shard,
            value_blocks,
            row_count,
            rows_offset,
            row_states_offset,
            row_series_slots,
            row_series_offset,
            families_offset,
            family_capacity,
        })
    }

    /// The header words describing this layout (init word not yet ready).
    pub(crate) fn to_fields(self) -> HeaderFields {
        let mut w = [0u64; HEADER_WORDS];
        w[word::MAGIC] = MAGIC;
        w[word::LAYOUT_MAJOR] = LAYOUT_MAJOR;
        w[word::LAYOUT_MINOR] = self.layout_minor;
        w[word::HEADER_SIZE] = HEADER_SIZE as u64;
        w[word::SEGMENT_SIZE] = self.segment_size as u64;
        w[word::SEGMENT_ID_LO] = self.segment_id as u64;
        w[word::SEGMENT_ID_HI] = (self.segment_id >> 64) as u64;
        w[word::CREATED_UNIX_NS] = self.created_unix_ns;
        w[word::WRITE_MODE] = self.write_mode as u64;
        w[word::SHARD_COUNT] = self.shard_count as u64;
        w[word::SHARD_STRIDE] = size_of::<Shard>() as u64;
        w[word::COUNTERS_PER_SHARD] = COUNTERS as u64;
        w[word::SHARDS_OFFSET] = self.shards_offset as u64;
        w[word::SLOT_COUNT] = self.slot_count as u64;
        w[word::SLOT_STRIDE] = size_of::<WriterSlot>() as u64;
        w[word::SLOTS_OFFSET] = self.slots_offset as u64;
        w[word::SERIES_OFFSET] = self.series_offset as u64;
        w[word::SERIES_CAPACITY] = self.series_capacity as u64;
        w[word::STRINGS_CAPACITY] = self.strings_capacity as u64;
        w[word::VALUES_OFFSET] = self.values_offset as u64;
        w[word::VALUES_PER_SHARD] = self.values_per_shard as u64;
        w[word::VALUE_BLOCKS] = self.value_blocks as u64;
        w[word::ROW_COUNT] = self.row_count as u64;
        w[word::ROW_STRIDE] = size_of::<Shard>() as u64;
        w[word::ROWS_OFFSET] = self.rows_offset as u64;
        w[word::ROW_STATES_OFFSET] = self.row_states_offset as u64;
        w[word::ROW_SERIES_SLOTS] = self.row_series_slots as u64;
        w[word::ROW_SERIES_OFFSET] = self.row_series_offset as u64;
        w[word::FAMILIES_OFFSET] = self.families_offset as u64;
        w[word::FAMILY_CAPACITY] = self.family_capacity as u64;
        HeaderFields { words: w }
    }
}

impl HeaderFields {
    /// Copies the header words out of shared memory, init word first with
    /// Acquire so that everything the creator wrote before it is visible.
    pub(crate) fn load(words: &[AtomicU64; HEADER_WORDS]) -> Self {
        let mut w = [0u64; HEADER_WORDS];
        w[word::INIT_STATE] = words[word::INIT_STATE].load(Ordering::Acquire);
        if w[word::INIT_STATE] != INIT_READY {
            // Not published yet: the other words may be half-written, and
            // `validate` needs only the magic to tell "not yet" from "not a
            // segment". (Reading no more also keeps the loom model of this
            // protocol from exploring 2^30 stale-word combinations.)
            w[word::MAGIC] = words[word::MAGIC].load(Ordering::Relaxed);
            return HeaderFields { words: w };
        }
        for (i, slot) in w.iter_mut().enumerate() {
            if i != word::INIT_STATE {
                *slot = words[i].load(Ordering::Relaxed);
            }
        }
        HeaderFields { words: w }
    }

    /// Writes every word but the init word, then publishes the init word with
    /// Release: an attacher that sees it ready sees the whole header.
    pub(crate) fn publish(&self, words: &[AtomicU64; HEADER_WORDS]) {
        for (i, w) in self.words.iter().enumerate() {
            if i != word::INIT_STATE {
                words[i].store(*w, Ordering::Relaxed);
            }
        }
        words[word::INIT_STATE].store(INIT_READY, Ordering::Release);
    }

    /// Checks the copy against the file size and the compiled-in layout.
    /// Each kind of damage gives its own error.
    pub(crate) fn validate(&self, file_size: u64) -> Result<Layout> {
        let w = &self.words;
        let magic = w[word::MAGIC];
        let init = w[word::INIT_STATE];
        if magic != MAGIC {
            // A creator writes the magic before the init word; an all-zero
            // header is one whose creator has not got that far.
            if magic == 0 && init == 0 {
                return Err(Error::NotInitialized);
            }
            return Err(Error::BadMagic { found: magic });
        }
        if init != INIT_READY {
            return Err(Error::NotInitialized);
        }
        if w[word::LAYOUT_MAJOR] != LAYOUT_MAJOR {
            return Err(Error::UnsupportedVersion {
                found: w[word::LAYOUT_MAJOR],
                supported: LAYOUT_MAJOR,
            });
        }
        if w[word::HEADER_SIZE] < HEADER_SIZE as u64 || w[word::HEADER_SIZE] % REGION_ALIGN != 0 {
            return Err(Error::BadLayout(
                "header size is smaller than the header or misaligned",
            ));
        }
        let segment_size = w[word::SEGMENT_SIZE];
        if segment_size != file_size {
            return Err(Error::SizeMismatch {
                header: segment_size,
                file: file_size,
            });
        }
        let write_mode = WriteMode::from_word(w[word::WRITE_MODE])
            .ok_or(Error::UnsupportedWriteMode(w[word::WRITE_MODE]))?;
        if w[word::SHARD_STRIDE] != size_of::<Shard>() as u64 {
            return Err(Error::BadLayout(
                "shard stride differs from this library's shard",
            ));
        }
        if w[word::COUNTERS_PER_SHARD] != COUNTERS as u64 {
            return Err(Error::BadLayout(
                "counters per shard differ from this library's",
            ));
        }
        if w[word::SLOT_STRIDE] != size_of::<WriterSlot>() as u64 {
            return Err(Error::BadLayout(
                "writer slot stride differs from this library's",
            ));
        }
        if w[word::ROW_STRIDE] != size_of::<Shard>() as u64 {
            return Err(Error::BadLayout(
                "thread row stride differs from this library's shard",
            ));
        }
        let shard_count = w[word::SHARD_COUNT];
        if shard_count == 0 || shard_count > MAX_SHARDS || !shard_count.is_power_of_two() {
            return Err(Error::BadLayout(
                "shard count is not a power of two in range",
            ));
        }
        let slot_count = w[word::SLOT_COUNT];
        if slot_count == 0 || slot_count > MAX_SLOTS {
            return Err(Error::BadLayout("writer slot count out of range"));
        }
        let header_end = w[word::HEADER_SIZE];
        let shards = region(
            w[word::SHARDS_OFFSET],
            shard_count,
            w[word::SHARD_STRIDE],
            header_end,
            segment_size,
        )
        .ok_or(Error::BadLayout(
            "shard region is misaligned or outside the segment",
        ))?;
        let slots = region(
            w[word::SLOTS_OFFSET],
            slot_count,
            w[word::SLOT_STRIDE],
            header_end,
            segment_size,
        )
        .ok_or(Error::BadLayout(
            "writer slot region is misaligned or outside the segment",
        ))?;
        let series_cap = w[word::SERIES_CAPACITY];
        let strings_cap = w[word::STRINGS_CAPACITY];
        // The first LIVEKIT_FAMILIES entries are the families' overflow series.
        if series_cap < LIVEKIT_FAMILIES as u64
            || series_cap > MAX_SERIES
            || strings_cap == 0
            || strings_cap > MAX_STRINGS
        {
            return Err(Error::BadLayout("series or string capacity out of range"));
        }
        let vps = w[word::VALUES_PER_SHARD];
        if !(16..=MAX_VALUES_PER_SHARD).contains(&vps) || !vps.is_power_of_two() {
            return Err(Error::BadLayout(
                "series values per shard is not a power of two in range",
            ));
        }
        let series_bytes = series_region_bytes(series_cap, strings_cap)
            .ok_or(Error::BadLayout("series region overflows"))?;
        let series = region(
            w[word::SERIES_OFFSET],
            1,
            series_bytes,
            header_end,
            segment_size,
        )
        .ok_or(Error::BadLayout(
            "series region is misaligned or outside the segment",
        ))?;
        let value_blocks = match w[word::VALUE_BLOCKS] {
            0 => shard_count,
            n => n,
        };
        if !value_blocks.is_power_of_two() || value_blocks > shard_count {
            return Err(Error::BadLayout(
                "value block count is not a power of two up to the shard count",
            ));
        }
        let values = region(
            w[word::VALUES_OFFSET],
            value_blocks,
            vps * 8,
            header_end,
            segment_size,
        )
        .ok_or(Error::BadLayout(
            "series values region is misaligned or outside the segment",
        ))?;
        let row_count = w[word::ROW_COUNT];
        if row_count == 0 || row_count > MAX_ROWS {
            return Err(Error::BadLayout("thread row count out of range"));
        }
        let rows = region(
            w[word::ROWS_OFFSET],
            row_count,
            w[word::ROW_STRIDE],
            header_end,
            segment_size,
        )
        .ok_or(Error::BadLayout(
            "thread row region is misaligned or outside the segment",
        ))?;
        let row_states = region(
            w[word::ROW_STATES_OFFSET],
            1,
            row_states_bytes(row_count),
            header_end,
            segment_size,
        )
        .ok_or(Error::BadLayout(
            "row state region is misaligned or outside the segment",
        ))?;
        let row_series_slots = w[word::ROW_SERIES_SLOTS];
        if row_series_slots > MAX_ROW_SERIES_SLOTS {
            return Err(Error::BadLayout("row series slot count out of range"));
        }
        let row_series = match row_series_slots {
            // Written before rows had series slots: an empty region.
            0 => (segment_size, segment_size),
            n => region(
                w[word::ROW_SERIES_OFFSET],
                row_count,
                n * 16,
                header_end,
                segment_size,
            )
            .ok_or(Error::BadLayout(
                "row series region is misaligned or outside the segment",
            ))?,
        };
        let family_capacity = w[word::FAMILY_CAPACITY];
        if family_capacity > MAX_FAMILIES {
            return Err(Error::BadLayout("family capacity out of range"));
        }
        let families = match family_capacity {
            // Written before the family directory: an empty region.
            0 => (segment_size, segment_size),
            n => region(
                w[word::FAMILIES_OFFSET],
                1,
                families::region_bytes(n).ok_or(Error::BadLayout("family region overflows"))?,
                header_end,
                segment_size,
            )
            .ok_or(Error::BadLayout(
                "family region is misaligned or outside the segment",
            ))?,
        };
        let regions = [
            shards, slots, series, values, rows, row_states, row_series, families,
        ];
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                if a.0 < b.1 && b.0 < a.1 {
                    return Err(Error::BadLayout("segment regions overlap"));
                }
            }
        }
        let segment_size = usize::try_from(segment_size)
            .map_err(|_| Error::BadLayout("segment size does not fit in memory"))?;
        Ok(Layout {
            segment_id: (w[word::SEGMENT_ID_HI] as u128) << 64 | w[word::SEGMENT_ID_LO] as u128,
            created_unix_ns: w[word::CREATED_UNIX_NS],
            layout_minor: w[word::LAYOUT_MINOR],
            write_mode,
            segment_size,
            shard_count: shard_count as usize,
            shards_offset: shards.0 as usize,
            slot_count: slot_count as usize,
            slots_offset: slots.0 as usize,
            series_offset: series.0 as usize,
            series_capacity: series_cap as usize,
            strings_capacity: strings_cap as usize,
            values_offset: values.0 as usize,
            values_per_shard: vps as usize,
            value_blocks: value_blocks as usize,
            row_count: row_count as usize,
            rows_offset: rows.0 as usize,
            row_states_offset: row_states.0 as usize,
            row_series_slots: row_series_slots as usize,
            row_series_offset: row_series.0 as usize,
            families_offset: families.0 as usize,
            family_capacity: family_capacity as usize,
        })
    }
}

/// `[offset, offset + count * stride)` if it is aligned, after the header and
/// inside the segment, with every step checked for overflow.
fn region(offset: u64, count: u64, stride: u64, header_end: u64, size: u64) -> Option<(u64, u64)> {
    if offset % REGION_ALIGN != 0 || offset < header_end {
        return None;
    }
    let end = count.checked_mul(stride)?.checked_add(offset)?;
    (end <= size).then_some((offset, end))
}

// The header is exactly its words, and the regions it describes are made of
// whole 128-byte lines.
const _: () = assert!(HEADER_SIZE == 256);
const _: () = assert!(size_of::<Shard>() % REGION_ALIGN as usize == 0);
#[cfg(not(loom))]
const _: () = assert!(size_of::<WriterSlot>() == super::slots::SLOT_WORDS * 8);

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The layout is an ABI: this test fails on any change to it, as a
    /// reminder to bump LAYOUT_MAJOR (or MINOR for additive changes).
    #[test]
    fn layout_is_pinned() {
        assert_eq!(LAYOUT_MAJOR, 2);
        assert_eq!(LAYOUT_MINOR, 3);
        assert_eq!(MAGIC.to_le_bytes(), *b"NODESTAT");
        assert_eq!(HEADER_SIZE, 256);
        assert_eq!(size_of::<Shard>(), 512);
        assert_eq!(align_of::<Shard>(), 128);
        assert_eq!(size_of::<WriterSlot>(), 256);
        assert_eq!(align_of::<WriterSlot>(), 128);
        let words = [
            word::MAGIC,
            word::LAYOUT_MAJOR,
            word::LAYOUT_MINOR,
            word::HEADER_SIZE,
            word::SEGMENT_SIZE,
            word::SEGMENT_ID_LO,
            word::SEGMENT_ID_HI,
            word::CREATED_UNIX_NS,
            word::WRITE_MODE,
            word::SHARD_COUNT,
            word::SHARD_STRIDE,
            word::COUNTERS_PER_SHARD,
            word::SHARDS_OFFSET,
            word::SLOT_COUNT,
            word::SLOT_STRIDE,
            word::SLOTS_OFFSET,
            word::SERIES_OFFSET,
            word::SERIES_CAPACITY,
            word::STRINGS_CAPACITY,
            word::VALUES_OFFSET,
            word::VALUES_PER_SHARD,
            word::ROW_COUNT,
            word::ROW_STRIDE,
            word::ROWS_OFFSET,
            word::ROW_STATES_OFFSET,
            word::ROW_SERIES_SLOTS,
            word::ROW_SERIES_OFFSET,
            word::FAMILIES_OFFSET,
            word::FAMILY_CAPACITY,
            word::INIT_STATE,
        ];
        assert_eq!(
            words,
            [
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 23, 24,
                25, 26, 27, 28, 29, 30, 31
            ]
        );
        let l = Layout::new(64, 128, 256, 1, 2, WriteMode::Atomic).unwrap();
        assert_eq!(l.shards_offset, 256);
        assert_eq!(l.slots_offset, 256 + 64 * 512);
        assert_eq!(l.rows_offset, 256 + 64 * 512 + 128 * 256);
        assert_eq!(l.row_states_offset, l.rows_offset + 256 * 512);
        assert_eq!(row_states_bytes(256), 256 * 8);
        assert_eq!(row_states_bytes(3), 128);
        assert_eq!(l.series_offset, l.row_states_offset + 256 * 8);
        let f = l.to_fields();
        assert_eq!(f.words[21], 16, "64 shards share 16 value blocks");
        assert_eq!(f.words[22], 0, "word 22 stays reserved");
        assert_eq!(f.words[29..31], [l.families_offset as u64, 128]);
        assert_eq!(f.words[27], 64, "64 series slots per row");
        assert_eq!(l.row_series_offset, l.values_offset + 16 * 16384 * 8);
        assert_eq!(size_of::<SeriesEntry>(), 64);
        assert_eq!(size_of::<StringEntry>(), 72);
        assert_eq!(ALLOC_LINE_BYTES, 128);
        assert_eq!(
            l.values_offset,
            l.series_offset + 128 + 8192 * 64 + 8192 * 72
        );
        assert_eq!(l.families_offset, l.row_series_offset + 256 * 64 * 16);
        assert_eq!(l.segment_size, l.families_offset + 1024 + 128 * 2048);
        assert_eq!(size_of::<families::FamilyEntry>(), 2048);
        // SEGMENT.md §12, the worked example.
        let w = Layout::new(2, 128, 256, 0, 0, WriteMode::Atomic).unwrap();
        assert_eq!(
            (w.rows_offset, w.row_states_offset, w.series_offset),
            (34_048, 165_120, 167_168)
        );
        assert_eq!(
            (w.values_offset, w.row_series_offset),
            (1_281_408, 1_543_552)
        );
        assert_eq!(w.families_offset, 1_805_696);
        assert_eq!(w.segment_size, 2_068_864);
    }

    fn valid() -> (HeaderFields, u64) {
        let l = Layout::new(4, 8, 3, 0xabc, 5, WriteMode::Atomic).unwrap();
        let mut f = l.to_fields();
        f.words[word::INIT_STATE] = INIT_READY;
        (f, l.segment_size as u64)
    }

    #[test]
    fn a_valid_header_round_trips() {
        let (f, size) = valid();
        let l = f.validate(size).unwrap();
        assert_eq!((l.shard_count, l.slot_count, l.segment_id), (4, 8, 0xabc));
        assert_eq!(l.row_count, 3);
        assert_eq!(
            l,
            Layout::new(4, 8, 3, 0xabc, 5, WriteMode::Atomic).unwrap()
        );
    }

    #[test]
    fn write_modes_round_trip() {
        assert_eq!((WriteMode::Atomic as u64, WriteMode::Rseq as u64), (0, 1));
        let (mut f, size) = valid();
        assert_eq!(f.validate(size).unwrap().write_mode, WriteMode::Atomic);
        f.words[word::WRITE_MODE] = 1;
        assert_eq!(f.validate(size).unwrap().write_mode, WriteMode::Rseq);
    }

    #[test]
    fn every_kind_of_damage_has_its_error() {
        let (f, size) = valid();
        let bad = |w: usize, v: u64| {
            let mut g = f;
            g.words[w] = v;
            g.validate(size)
        };
        assert!(matches!(
            bad(word::MAGIC, 0x1234),
            Err(Error::BadMagic { found: 0x1234 })
        ));
        assert!(matches!(
            bad(word::INIT_STATE, 0),
            Err(Error::NotInitialized)
        ));
        assert!(matches!(
            bad(word::LAYOUT_MAJOR, 1),
            Err(Error::UnsupportedVersion {
                found: 1,
                supported: 2
            })
        ));
        assert!(matches!(
            bad(word::SEGMENT_SIZE, size + 1),
            Err(Error::SizeMismatch { .. })
        ));
        assert!(matches!(
            bad(word::WRITE_MODE, 9),
            Err(Error::UnsupportedWriteMode(9))
        ));
        for (w, v) in [
            (word::HEADER_SIZE, 8),
            (word::SHARD_STRIDE, 64),
            (word::COUNTERS_PER_SHARD, 7),
            (word::SLOT_STRIDE, 8),
            (word::SHARD_COUNT, 3),
            (word::SHARD_COUNT, 0),
            (word::SHARD_COUNT, 1 << 40),
            (word::SLOT_COUNT, 0),
            (word::SLOT_COUNT, u64::MAX),
            (word::SHARDS_OFFSET, 0),
            (word::SHARDS_OFFSET, 300),
            (word::SHARDS_OFFSET, u64::MAX - 127),
            (word::SLOTS_OFFSET, size),
            (word::SLOTS_OFFSET, 256),
            (word::SERIES_CAPACITY, 0),
            (word::SERIES_CAPACITY, 48),
            (word::STRINGS_CAPACITY, 1 << 40),
            (word::VALUES_PER_SHARD, 17),
            (word::VALUES_PER_SHARD, 48),
            (word::VALUES_PER_SHARD, 0),
            (word::VALUE_BLOCKS, 3),
            (word::VALUE_BLOCKS, 1 << 20),
            (word::VALUE_BLOCKS, u64::MAX),
            (word::SERIES_OFFSET, 256),
            (word::VALUES_OFFSET, size - 8),
            (word::VALUES_OFFSET, u64::MAX - 127),
            (word::ROW_COUNT, 0),
            (word::ROW_COUNT, MAX_ROWS + 1),
            (word::ROW_COUNT, u64::MAX),
            (word::ROW_STRIDE, 256),
            (word::ROWS_OFFSET, 0),
            (word::ROWS_OFFSET, 300),
            (word::ROWS_OFFSET, 256),
            (word::ROWS_OFFSET, size),
            (word::ROWS_OFFSET, u64::MAX - 127),
            (word::ROW_STATES_OFFSET, 256),
            (word::ROW_STATES_OFFSET, size - 8),
            (word::ROW_STATES_OFFSET, u64::MAX - 127),
            (word::ROW_SERIES_SLOTS, MAX_ROW_SERIES_SLOTS + 1),
            (word::ROW_SERIES_SLOTS, u64::MAX),
            (word::ROW_SERIES_SLOTS, 1 << 20),
            (word::ROW_SERIES_OFFSET, 256),
            (word::ROW_SERIES_OFFSET, 300),
            (word::ROW_SERIES_OFFSET, size - 128),
            (word::ROW_SERIES_OFFSET, u64::MAX - 127),
            (word::FAMILY_CAPACITY, MAX_FAMILIES + 1),
            (word::FAMILY_CAPACITY, u64::MAX),
            (word::FAMILIES_OFFSET, 256),
            (word::FAMILIES_OFFSET, 300),
            (word::FAMILIES_OFFSET, size - 128),
            (word::FAMILIES_OFFSET, u64::MAX - 127),
        ] {
            assert!(
                matches!(bad(w, v), Err(Error::BadLayout(_))),
                "word {w} = {v}: {:?}",
                bad(w, v)
            );
        }
        // A zeroed header is a creator that has not written it yet.
        let zero = HeaderFields {
            words: [0; HEADER_WORDS],
        };
        assert!(matches!(zero.validate(size), Err(Error::NotInitialized)));
    }

    #[test]
    fn odd_geometries_are_config_errors() {
        assert!(matches!(
            Layout::new(3, 8, 1, 0, 0, WriteMode::Atomic),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Layout::new(8192, 8, 1, 0, 0, WriteMode::Atomic),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Layout::new(8, 0, 1, 0, 0, WriteMode::Atomic),
            Err(Error::Config(_))
        ));
        for rows in [0, MAX_ROWS as usize + 1] {
            assert!(matches!(
                Layout::new(8, 8, rows, 0, 0, WriteMode::Atomic),
                Err(Error::Config(_))
            ));
        }
    }
}
