//! The one reader of a segment: shard and thread-row sums, live writers'
//! gauges and the labeled series. The collector ([`Totals`](super::Totals)) and the
//! exporter ([`Scrape`]) both start from these functions, so a segment is
//! aggregated one way only.
//!
//! Every read is a sum of relaxed loads, not a snapshot: an add that races
//! with the read is counted now or in the next read, never lost.

use super::series::{read_all_with, SeriesStats, SeriesValue};
use crate::error::{Error, Result};
use crate::schema::{FamilyId, FamilySpec, COUNTERS, LIVEKIT_FAMILIES};
use crate::segment::families::{Declared, FamilyRegion};
use crate::segment::rows;
use crate::segment::series::Shapes;
use crate::segment::shard::sum_all;
use crate::segment::slots::{merge, GaugeTotals};
use crate::segment::Segment;

/// Runs `read` on `seg` unless its file shrank under the mapping before or
/// during the read (a read of a shrunk file faults into zero pages, see
/// `segment::bus`): then the error that says so, and whatever `read` got
/// is dropped. The collector and the exporter read only through it.
pub(crate) fn guarded<T>(seg: &Segment, read: impl FnOnce(&Segment) -> T) -> Result<T> {
    seg.check_size()?;
    let faults = seg.faults();
    let got = read(seg);
    if seg.faults() != faults {
        return Err(seg.check_size().err().unwrap_or(Error::BadLayout(
            "the segment file shrank while it was read",
        )));
    }
    Ok(got)
}

/// The fixed counters summed over every shard and every thread row (live,
/// released or dead: counters are ownerless), indexed by
/// [`Counter`](crate::Counter).
pub(crate) fn shard_sums(seg: &Segment) -> [u64; COUNTERS] {
    let mut sums = sum_all(seg.shards());
    for (s, r) in sums.iter_mut().zip(rows::sum_all(seg.rows())) {
        *s = s.wrapping_add(r);
    }
    sums
}

/// The gauges of the writers that are alive, clamped at zero.
pub(crate) fn live_gauges(seg: &Segment) -> GaugeTotals {
    merge(seg.slots(), |i| seg.slot_alive(i))
}

/// Everything a scrape exports from the segment itself.
#[derive(Debug)]
pub(crate) struct Scrape {
    /// Shard sums: the fixed series (labeled series are separate).
    pub(crate) counters: [u64; COUNTERS],
    /// Live writers' gauges.
    pub(crate) gauges: GaugeTotals,
    /// Every published series, merged by label strings.
    pub(crate) series: Vec<SeriesValue>,
    /// What reading the series found besides them.
    pub(crate) series_stats: SeriesStats,
    /// The declared families and their overflow counts.
    pub(crate) families: DeclaredFamilies,
}

/// A declared family as a scrape exports it.
#[derive(Debug)]
pub(crate) struct DeclaredView {
    pub(crate) id: FamilyId,
    pub(crate) spec: FamilySpec,
    /// Label sets sent to the overflow series by the family's cap.
    pub(crate) overflowed: u64,
}

/// What the family directory holds, read once per scrape.
#[derive(Debug)]
pub(crate) struct DeclaredFamilies {
    /// Published, valid families, in directory order.
    pub(crate) valid: Vec<DeclaredView>,
    /// Published entries whose description is out of range (skipped).
    pub(crate) corrupt: u64,
    /// Declarations refused because the directory was full.
    pub(crate) refused: u64,
    /// Per LiveKit family: label sets sent to its overflow series by the
    /// cap.
    pub(crate) livekit_overflowed: [u64; LIVEKIT_FAMILIES],
}

impl DeclaredFamilies {
    fn none() -> Self {
        DeclaredFamilies {
            valid: Vec::new(),
            corrupt: 0,
            refused: 0,
            livekit_overflowed: [0; LIVEKIT_FAMILIES],
        }
    }

    /// What `scan` (of `r`, the segment's family directory) found, with
    /// the overflow counts.
    fn of_scan(r: &FamilyRegion<'_>, scan: Vec<(usize, Option<Declared>)>) -> Self {
        let mut out = Self::none();
        for (k, d) in scan {
            match d {
                Some(d) => {
                    let id = FamilyId::declared(k);
                    out.valid.push(DeclaredView {
                        id,
                        overflowed: r.overflowed(id),
                        spec: d.spec,
                    });
                }
                None => out.corrupt += 1,
            }
        }
        out.refused = r.refused_full();
        for f in crate::schema::Family::ALL {
            out.livekit_overflowed[f as usize] = r.overflowed(f.into());
        }
        out
    }
}

impl Scrape {
    /// What a scrape exports of a segment it must not read: nothing.
    pub(crate) fn unreadable() -> Scrape {
        Scrape {
            counters: [0; COUNTERS],
            gauges: GaugeTotals::default(),
            series: Vec::new(),
            series_stats: SeriesStats::default(),
            families: DeclaredFamilies::none(),
        }
    }

    /// Reads the segment now.
    pub(crate) fn read(seg: &Segment) -> Scrape {
        // The fixed gauges and the labeled ones both ask whether a slot's
        // writer lives (an fcntl each): ask once per slot per scrape.
        let mut known: Vec<Option<bool>> = vec![None; seg.slots().len()];
        let mut alive = |i: usize| *known[i].get_or_insert_with(|| seg.slot_alive(i));
        let gauges = merge(seg.slots(), &mut alive);
        // The family directory, read once: the series' shapes and the
        // declared families exported both come from it.
        let (shapes, families) = match seg.family_region() {
            Some(r) => {
                let scan = r.scan();
                let shapes = Shapes::of_scan(r.entries.len(), &scan);
                (shapes, DeclaredFamilies::of_scan(&r, scan))
            }
            None => (Shapes::livekit_only(), DeclaredFamilies::none()),
        };
        let (series, series_stats) = read_all_with(seg, &shapes, &mut alive);
        Scrape {
            counters: shard_sums(seg),
            gauges,
            series,
            series_stats,
            families,
        }
    }
}
