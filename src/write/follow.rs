//! Following the name: [`Stats::maintain`] moves a writer, and every handle
//! made from it, to the segment now at its name.
//!
//! Handles keep pointers into one address range, the writer's mapping.
//! Moving maps the new segment's file over that range in one
//! `mmap(MAP_FIXED)` (same geometry required), so the per-CPU counters need
//! nothing else: their offsets are the same in every segment of one
//! geometry. What is indexed differently in the new segment is
//! re-established first, in the new segment, then re-pointed:
//!
//! * the writer slot (gauges): claimed anew, the gauges re-added there;
//!   `Writer` holds the slot pointer every clone reads;
//! * labeled series: registered again (declared families declared again),
//!   each handle's `SeriesCell` given its new base and gauge word;
//! * thread rows: claimed anew for every live thread writer, with the
//!   series slots its thread series use bound to the same series again; a
//!   thread writer's cell is re-pointed at its new row.
//!
//! Counts recorded into the old segment stay there (collectors of the new
//! one see a writer that restarted). Adds in flight on other threads while
//! the range is switched land in the old file or the new one; a thread
//! writer's plain load-add-store that straddles the switch can store its
//! old word's value plus the add into its row of the new segment (see
//! `Stats::maintain`).

// Following the name is Linux's (MAP_FIXED over a file, /dev/shm paths);
// elsewhere `maintain` only reports the status.
#![cfg_attr(not(target_os = "linux"), allow(unused_imports, unused_mut, dead_code))]

use super::cache::Cache;
use super::declared::Writer as Declaring;
use super::stats::Stats;
use super::thread::{aim, point, point_at};
use super::writer::{SeriesCell, Writer};
use crate::error::{Error, Result};
use crate::schema::{FamilyId, Gauge, Kind};
use crate::segment::families::declare;
use crate::segment::slots::{WriterSlot, GAUGES, GAUGE_BASE};
use crate::segment::SegmentStatus;
use crate::sync::Ordering;
use std::ptr;
use std::sync::Arc;
use std::time::Instant;

/// A series handle's cell and where its series is in the new segment.
struct Moved {
    cell: Arc<SeriesCell>,
    base: usize,
    kind: Kind,
    /// A gauge's value in this writer's old word.
    gauge_value: u64,
}

impl Stats {
    /// Whether this writer's segment is still the one at its name, and
    /// whole ([`Segment::status`](crate::Segment::status)); `Shrunk` also
    /// while part of the mapping is private memory after a truncate (see
    /// [`Segment::is_void`](crate::Segment::is_void)). Not a hot-path
    /// call: it makes system calls, and waits for a [`maintain`](Self::maintain)
    /// in progress on another thread (the watcher's) to finish, so that
    /// `Current` means every handle of this writer, gauges included,
    /// records into the segment at the name.
    pub fn status(&self) -> Result<SegmentStatus> {
        let _moved = self.writer.follow();
        self.segment().status()
    }

    /// Follows the segment's name: for an SFU's housekeeping timer (every
    /// 100 ms, say), and safe to call while other threads record.
    ///
    /// When the segment at the name is still the one this handle maps, and
    /// whole, this is two `stat`s and returns
    /// [`SegmentStatus::Current`]. When the name was removed, or another
    /// segment put there (a restarted peer, an operator), or the file
    /// shrunk under the mapping (a truncate: recording went on into private
    /// memory, see [`Segment::is_void`](crate::Segment::is_void)), it moves this handle — and every
    /// handle made from it: its clones, thread writers, series and thread
    /// series, declared families — to the segment at the name, creating
    /// it with the options this handle was opened with if nothing is there
    /// (or in place of its own shrunk file), and returns what it found
    /// (`Replaced`, `Removed`, `Shrunk`). From then on everything recorded
    /// through them reaches that segment; the handles stay valid.
    ///
    /// * The new segment must have this one's geometry (shards, writer
    ///   slots, thread rows, capacities): else [`Error::Config`] and nothing
    ///   changes.
    /// * Counts recorded into the old segment are not carried over:
    ///   collectors of the new segment see this writer start from zero, as
    ///   after a restart. Gauges (rooms, participants, tracks, connections,
    ///   labeled gauges) are re-added in the new segment from this writer's
    ///   values; after a truncate the old values are gone (the file's pages
    ///   were), so only changes made since count.
    /// * Declared families are declared again; a thread writer for which
    ///   the new segment has no free row records nowhere until dropped; a
    ///   thread series whose series slots are taken in the new row records
    ///   nothing.
    /// * Recording calls that race the switch on other threads land in the
    ///   old segment or the new one. A thread writer's add (a plain load and
    ///   store) interrupted exactly between its load and its store by the
    ///   switch stores its old word plus the add into its new row.
    ///
    /// Never blocks for long: at most `init_wait` (at least 1 s) when a
    /// half-made segment of another process is at the name. Fails with the
    /// error of opening the segment at the name (then call again later);
    /// anonymous segments are always current.
    ///
    /// [`SegmentOptions::maintain_every`](crate::SegmentOptions::maintain_every)
    /// has a background thread call it.
    pub fn maintain(&self) -> Result<SegmentStatus> {
        self.writer.maintain()
    }
}

impl Writer {
    /// See [`Stats::maintain`].
    pub(crate) fn maintain(&self) -> Result<SegmentStatus> {
        let w = self;
        let seg = &w.segment;
        if seg.name().is_none() {
            return Ok(SegmentStatus::Current);
        }
        if std::process::id() != w.pid {
            return Err(Error::Config(
                "this writer was inherited across fork: open one in the child".into(),
            ));
        }
        let mut follow = w.follow();
        #[cfg(target_os = "linux")]
        {
            if seg.is_current()? {
                return Ok(SegmentStatus::Current);
            }
            if seg.writers.load(Ordering::Relaxed) > 1 {
                return Err(Error::Config(
                    "another writer (Stats::from_segment) shares this mapping: maintain needs a writer that opened its segment itself (Stats::open)".into(),
                ));
            }
            let found = match seg.status()? {
                // The mapping has private pages, the file is whole.
                SegmentStatus::Current => SegmentStatus::Shrunk {
                    size: seg.layout().segment_size as u64,
                    needed: seg.layout().segment_size as u64,
                },
                s => s,
            };
            let next = seg.successor(&w.opts)?;
            let slot = next.claim_slot()?;
            // Declared families, then every live series handle's series.
            let mut renamed = Vec::new();
            for (id, spec) in &follow.declared {
                let new = match next.family_region() {
                    Some(region) => declare(
                        &region,
                        spec,
                        &Declaring {
                            seg: &next,
                            slot,
                            started: Instant::now(),
                        },
                    )?,
                    None => return Err(Error::NoFamilyDirectory),
                };
                renamed.push((*id, new));
            }
            let now = |f: FamilyId| {
                renamed
                    .iter()
                    .find(|(old, _)| *old == f)
                    .map_or(f, |(_, new)| *new)
            };
            let cache = Cache::default();
            let mut moved = Vec::new();
            follow.cells.retain(|e| e.cell.strong_count() > 0);
            for e in &mut follow.cells {
                let Some(cell) = e.cell.upgrade() else {
                    continue;
                };
                e.family = now(e.family);
                let resolved = cache.family(&next, e.family)?;
                let labels: Vec<&str> = e.labels.iter().map(|s| &**s).collect();
                let base = cache.resolve(&next, &resolved, &labels)? as usize;
                let old_word = cell.gauge.load(Ordering::Relaxed);
                moved.push(Moved {
                    base,
                    kind: resolved.target.shape.kind,
                    // SAFETY: a non-null gauge word is in this writer's
                    // mapping, which `seg` keeps.
                    gauge_value: unsafe { old_word.as_ref() }
                        .map_or(0, |w| w.load(Ordering::Relaxed)),
                    cell,
                });
            }
            // Thread writers: a row each, its thread series' slots bound
            // to the same series (at their new bases).
            let mut rows = Vec::new();
            for t in &follow.threads {
                let claim = next.claim_row().ok();
                let mut series_ok = true;
                if let Some(c) = &claim {
                    let words = next.row_series_of(c.row);
                    let slots = words.len() / 2;
                    for (first, n, cell) in &t.bindings {
                        let base = cell.upgrade().and_then(|cell| {
                            moved
                                .iter()
                                .find(|m| Arc::ptr_eq(&m.cell, &cell))
                                .map(|m| m.base as u64)
                        });
                        let Some(base) = base else { continue };
                        let Some(run) = words.get(..slots).and_then(|b| b.get(*first..first + n))
                        else {
                            series_ok = false;
                            continue;
                        };
                        for (k, b) in run.iter().enumerate() {
                            let want = base + 1 + k as u64;
                            match b.compare_exchange(0, want, Ordering::AcqRel, Ordering::Acquire) {
                                Ok(_) => {}
                                Err(have) if have == want => {}
                                Err(_) => series_ok = false,
                            }
                        }
                    }
                }
                rows.push((claim, series_ok));
            }

            // Park: gauges go to private memory, thread writers to the
            // dump row, series to their new bases (in the old file, until
            // the switch), gauge series nowhere.
            let old_slot = w.slot();
            let undo: Vec<_> = follow
                .threads
                .iter()
                // SAFETY: live thread writers' cells.
                .map(|t| unsafe { aim(t.cell.cast()) })
                .collect();
            let undo_cells: Vec<_> = moved
                .iter()
                .map(|m| {
                    (
                        m.cell.base.load(Ordering::Relaxed),
                        m.cell.gauge.load(Ordering::Relaxed),
                    )
                })
                .collect();
            w.set_slot(usize::MAX, &w.parked);
            for t in &follow.threads {
                // SAFETY: a live thread writer's cell; the dump row lives
                // as long as the writer, which the thread writer holds.
                unsafe { point_at(t.cell.cast(), &*w.dump, ptr::null_mut()) };
            }
            for m in &moved {
                m.cell.gauge.store(ptr::null_mut(), Ordering::Relaxed);
                m.cell.base.store(m.base, Ordering::Relaxed);
            }
            let old_gauges = copy(&seg.slots()[old_slot]);

            // The switch.
            if let Err(e) = seg.adopt(next) {
                // Nothing moved: point everything back.
                w.set_slot(old_slot, &seg.slots()[old_slot]);
                for (t, (counters, series)) in follow.threads.iter().zip(undo) {
                    // SAFETY: as above; the rows are the old ones, still mapped.
                    unsafe { point_at(t.cell.cast(), counters, series) };
                }
                for (m, (base, gauge)) in moved.iter().zip(undo_cells) {
                    m.cell.base.store(base, Ordering::Relaxed);
                    m.cell.gauge.store(gauge, Ordering::Relaxed);
                }
                return Err(e);
            }

            // Re-point everything at the new segment, now in our range.
            let new_slot = &seg.slots()[slot];
            for (k, v) in merged(&old_gauges, &w.parked).into_iter().enumerate() {
                let word = &new_slot.words[GAUGE_BASE + k];
                if is_set_gauge(k) {
                    word.store(v, Ordering::Relaxed);
                } else {
                    word.fetch_add(v, Ordering::Relaxed);
                }
            }
            w.set_slot(slot, new_slot);
            for g in &w.parked.words {
                g.store(0, Ordering::Relaxed);
            }
            let region = seg.series_region();
            for m in &moved {
                if m.kind == Kind::Gauge {
                    if let Some(word) = region.gauge_word(m.base, slot) {
                        word.fetch_add(m.gauge_value, Ordering::Relaxed);
                        m.cell
                            .gauge
                            .store(ptr::from_ref(word).cast_mut(), Ordering::Relaxed);
                    }
                }
            }
            for (t, (claim, series_ok)) in follow.threads.iter_mut().zip(rows) {
                match &claim {
                    // SAFETY: a live cell; the row is in our mapping.
                    Some(c) => unsafe {
                        point(t.cell.cast(), seg, c.row);
                        if !series_ok {
                            point_at(
                                t.cell.cast(),
                                ptr::from_ref(&seg.rows()[c.row].counters),
                                ptr::null_mut(),
                            );
                        }
                    },
                    None => t.bindings.clear(),
                }
                // The old claim's lock goes with its description; its
                // state word was in the old file.
                t.claim = claim;
            }
            for (id, _) in &mut follow.declared {
                *id = now(*id);
            }
            // Handles made before keep the id they had: map it to now's.
            for (old, new) in renamed {
                let mut known = false;
                for r in follow.renamed.iter_mut().filter(|r| r.1 == old) {
                    r.1 = new;
                    known = true;
                }
                if !known && old != new {
                    follow.renamed.push((old, new));
                }
            }
            w.cache.replace_with(cache);
            Ok(found)
        }
        #[cfg(not(target_os = "linux"))]
        {
            drop(follow);
            seg.status()
        }
    }
}

/// Gauges set (not added): the forwarding latency and jitter.
fn is_set_gauge(k: usize) -> bool {
    k == Gauge::ForwardLatencyNs as usize || k == Gauge::ForwardJitterNs as usize
}

fn copy(slot: &WriterSlot) -> [u64; GAUGES] {
    std::array::from_fn(|k| slot.words[GAUGE_BASE + k].load(Ordering::Relaxed))
}

/// The old slot's gauges with what was recorded while parked: added,
/// except the set ones (the parked value where it was set) and the set
/// bits (or-ed).
fn merged(old: &[u64; GAUGES], parked: &WriterSlot) -> [u64; GAUGES] {
    let p = copy(parked);
    let set = Gauge::ForwardSet as usize;
    std::array::from_fn(|k| {
        if k == set {
            old[k] | p[k]
        } else if k == Gauge::ForwardLatencyNs as usize {
            if p[set] & 1 != 0 {
                p[k]
            } else {
                old[k]
            }
        } else if k == Gauge::ForwardJitterNs as usize {
            if p[set] & 2 != 0 {
                p[k]
            } else {
                old[k]
            }
        } else {
            old[k].wrapping_add(p[k])
        }
    })
}
