//! A writer's ownership of its slot: what every clone of a [`Stats`]
//! (super::Stats) and every gauge series handle shares, and what
//! `Stats::maintain` needs to move them all to a new segment at the name.

// What `maintain` uses is Linux's (see `follow`).
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use super::cache::Cache;
use crate::schema::{FamilyId, FamilySpec, COUNTERS};
use crate::segment::slots::WriterSlot;
use crate::segment::{RowClaim, Segment, SegmentOptions};
use crate::sync::AtomicU64;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Owns the writer slot and this writer's series cache; the slot is
/// released when the last clone of a [`Stats`](super::Stats) drops.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) segment: Arc<Segment>,
    /// The writer slot's index; changes only in `maintain`.
    slot: AtomicUsize,
    /// The writer slot the gauges go to (in `segment`'s mapping); changes
    /// only in `maintain`.
    slot_ptr: AtomicPtr<WriterSlot>,
    /// The process that claimed the slot. A forked child inherits the
    /// handle and the slot's lock; dropping the handle there must not
    /// release the parent's slot (its gauges would vanish while the parent
    /// still runs).
    pub(crate) pid: u32,
    /// This writer's resolved label strings and series.
    pub(crate) cache: Cache,
    /// How the segment was opened: `maintain` creates it again with these.
    pub(crate) opts: SegmentOptions,
    /// What `maintain` re-establishes in a new segment; also its lock.
    pub(crate) follow: Mutex<Follow>,
    /// Where gauges go while `maintain` moves the slot (private, read by
    /// `maintain` alone).
    pub(crate) parked: Box<WriterSlot>,
    /// A row of counters nobody reads: where a thread writer records after
    /// `maintain` found no free row for it in the new segment (the thread
    /// writer holds this writer, so the row outlives it).
    pub(crate) dump: Box<[AtomicU64; COUNTERS]>,
}

/// The handles made from a writer that point into its segment by index.
#[derive(Debug, Default)]
pub(crate) struct Follow {
    /// Live thread writers: their cells and row claims.
    pub(crate) threads: Vec<ThreadEntry>,
    /// Series handles' cells, by family and label values.
    pub(crate) cells: Vec<CellEntry>,
    /// Families this writer declared, with the id each had.
    pub(crate) declared: Vec<(FamilyId, FamilySpec)>,
    /// A declared family's id in the first segment → its id now, where
    /// they differ.
    pub(crate) renamed: Vec<(FamilyId, FamilyId)>,
    pub(crate) next_thread: u64,
}

/// A live thread writer as `maintain` sees it.
#[derive(Debug)]
pub(crate) struct ThreadEntry {
    pub(crate) id: u64,
    /// The thread writer's cell (a `thread::RowCell`, kept opaque here).
    pub(crate) cell: NonNull<u8>,
    /// The row held (`None`: the new segment had no free row; the cell
    /// points at the writer's `dump`).
    pub(crate) claim: Option<RowClaim>,
    /// The row's series slots this writer's thread series record into:
    /// first slot, slot count, and the series.
    pub(crate) bindings: Vec<(usize, usize, Weak<SeriesCell>)>,
}

/// A series handle's cell, with what resolves it again.
#[derive(Debug)]
pub(crate) struct CellEntry {
    pub(crate) family: FamilyId,
    pub(crate) labels: Box<[Box<str>]>,
    pub(crate) cell: Weak<SeriesCell>,
}

/// Where a series handle records: read on every record (one relaxed load),
/// written by `maintain`.
#[derive(Debug)]
pub(crate) struct SeriesCell {
    /// The series' first value word.
    pub(crate) base: AtomicUsize,
    /// A gauge series: this writer's word of it (null: none).
    pub(crate) gauge: AtomicPtr<AtomicU64>,
}

// SAFETY: the cell pointers are only dereferenced by the thread that owns
// the cell, or by `maintain` under the `follow` lock to store atomics.
unsafe impl Send for ThreadEntry {}

impl Writer {
    pub(crate) fn new(segment: Arc<Segment>, slot: usize, opts: SegmentOptions) -> Writer {
        segment.writers.fetch_add(1, Ordering::Relaxed);
        let ptr = std::ptr::from_ref(&segment.slots()[slot]).cast_mut();
        Writer {
            segment,
            slot: AtomicUsize::new(slot),
            slot_ptr: AtomicPtr::new(ptr),
            pid: std::process::id(),
            cache: Cache::default(),
            opts,
            follow: Mutex::default(),
            parked: Box::new(WriterSlot::new()),
            dump: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// The writer slot's index.
    pub(crate) fn slot(&self) -> usize {
        self.slot.load(Ordering::Relaxed)
    }

    /// The writer slot the gauges go to.
    #[inline(always)]
    pub(crate) fn gauges(&self) -> &WriterSlot {
        // SAFETY: the pointer is to a slot in the segment's mapping (kept
        // by `segment`) or to `parked`, both living as long as `self`.
        unsafe { &*self.slot_ptr.load(Ordering::Relaxed) }
    }

    /// Points the gauges at `slot` (a slot of the mapping, or `parked`).
    pub(crate) fn set_slot(&self, index: usize, slot: &WriterSlot) {
        self.slot.store(index, Ordering::Relaxed);
        self.slot_ptr
            .store(std::ptr::from_ref(slot).cast_mut(), Ordering::Release);
    }

    pub(crate) fn follow(&self) -> MutexGuard<'_, Follow> {
        self.follow.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Follow {
    /// The id a declared family has in the segment now.
    pub(crate) fn family_now(&self, family: FamilyId) -> FamilyId {
        if !family.is_declared() {
            return family;
        }
        self.renamed
            .iter()
            .find(|(old, _)| *old == family)
            .map_or(family, |(_, new)| *new)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.segment.writers.fetch_sub(1, Ordering::Relaxed);
        if std::process::id() == self.pid {
            self.segment.release_slot(self.slot());
        }
    }
}

/// Starts the thread that calls `maintain` on `writer` every `every` while
/// any handle of it lives ([`SegmentOptions::maintain_every`]). It holds
/// the writer only during a call, and ends at the first tick after the
/// last handle went.
///
/// [`SegmentOptions::maintain_every`]: crate::SegmentOptions::maintain_every
pub(crate) fn watch(writer: &Arc<Writer>, every: std::time::Duration) -> crate::error::Result<()> {
    let weak = Arc::downgrade(writer);
    std::thread::Builder::new()
        .name("nodestats-maintain".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(w) = weak.upgrade() else { return };
            // Errors are transient by nature (the name is being changed
            // under us): the next tick tries again.
            let _ = w.maintain();
        })
        .map(drop)
        .map_err(|e| crate::error::Error::io("start the maintain thread", e))
}
