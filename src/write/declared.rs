//! Families declared at run time: [`Stats::declare`] writes a family into
//! the segment's family directory (or finds it there), and
//! [`DeclaredFamily`] opens its series.

use super::series::SeriesHandle;
use super::stats::Stats;
use crate::error::{Error, Result};
use crate::schema::{FamilyId, FamilySpec};
use crate::segment::families::{declare, Declarer};
use crate::segment::series::{add_entry, Shape, OVERFLOW_ID};
use crate::segment::Segment;
use std::time::{Duration, Instant};

/// How long a declaration waits for another live process's unfinished
/// claim of the same entry (describing takes microseconds; this is for a
/// declarer descheduled on a loaded machine) before it gives up as busy.
/// A dead declarer's claim is taken over at once.
const CLAIM_WAIT: Duration = Duration::from_secs(5);

/// A family declared in a segment: open its series by label values. Made
/// by [`Stats::declare`]; cheap to clone.
///
/// ```
/// use nodestats::{FamilySpec, Stats};
/// let stats = Stats::anonymous().unwrap();
/// let rooms = stats
///     .declare(&FamilySpec::counter("sfu_room_bytes_total", "Bytes forwarded per room.").labels(&["room"]))
///     .unwrap();
/// rooms.series(&["blue"]).unwrap().inc_by(1200);
/// ```
#[derive(Clone, Debug)]
pub struct DeclaredFamily {
    stats: Stats,
    id: FamilyId,
    spec: FamilySpec,
}

impl DeclaredFamily {
    /// The family's id: pass it to [`Stats::series`] or
    /// [`ThreadStats::series`](crate::ThreadStats::series).
    pub fn id(&self) -> FamilyId {
        self.id
    }

    /// The declaration this handle was made from.
    pub fn spec(&self) -> &FamilySpec {
        &self.spec
    }

    /// The series with these label values (slow path; see
    /// [`Stats::series`]).
    pub fn series(&self, labels: &[&str]) -> Result<SeriesHandle> {
        self.stats.series(self.id, labels)
    }
}

impl From<&DeclaredFamily> for FamilyId {
    fn from(f: &DeclaredFamily) -> FamilyId {
        f.id
    }
}

/// What the family directory asks of a declaring writer: the segment it
/// declares in and its writer slot there.
pub(crate) struct Writer<'a> {
    pub(crate) seg: &'a Segment,
    pub(crate) slot: usize,
    pub(crate) started: Instant,
}

impl Declarer for Writer<'_> {
    fn claimer(&self) -> u64 {
        self.slot as u64 + 1
    }

    fn claimer_dead(&self, claimer: u64) -> bool {
        let seg = self.seg;
        match claimer.checked_sub(1) {
            // A claim made without a writer slot: nobody can tell.
            None => false,
            Some(slot) => {
                let slot = slot as usize;
                slot >= seg.slots().len()
                    || seg.slots()[slot].state() != crate::segment::slots::ACTIVE
                    || !seg.slot_alive(slot)
            }
        }
    }

    fn overflow_series(&self, family: FamilyId, spec: &FamilySpec) -> Result<u32> {
        let r = self.seg.series_region();
        let shape = Shape::of(spec);
        let ids = [OVERFLOW_ID; crate::schema::MAX_FAMILY_LABELS];
        add_entry(&r, family, shape, &ids[..shape.labels])
            .map(|(i, _)| i as u32)
            .ok_or(Error::Config(format!(
                "no room in the segment's series directory or values for the overflow series of {}",
                spec.name
            )))
    }

    fn pause(&self, _waited: u32) -> bool {
        if self.started.elapsed() >= CLAIM_WAIT {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
        true
    }
}

/// Labeled series and families declared at run time.
impl Stats {
    /// Declares a family of this segment (slow path, any process): writes
    /// its description into the segment's family directory, so every reader
    /// exports it, or finds it there if any process declared it before.
    ///
    /// Errors: [`Error::InvalidFamily`] for a spec that breaks Prometheus'
    /// naming rules or the limits (see [`FamilySpec::validate`]);
    /// [`Error::FamilyConflict`] when the name exists with another kind,
    /// labels, buckets or unit (LiveKit's families included; declaring
    /// one of those with its own shape returns it);
    /// [`Error::FamilyDirectoryFull`]; [`Error::FamilyBusy`] when another
    /// live process holds the family's entry unfinished; [`Error::NoFamilyDirectory`]
    /// on a segment made before layout 2.2.
    pub fn declare(&self, spec: &FamilySpec) -> Result<DeclaredFamily> {
        // Held until the family is remembered: `maintain` declares again.
        let mut follow = self.writer.follow();
        // A writer's segment is writable (its slot was claimed). The family
        // directory's protocol checks the spec and LiveKit's names itself;
        // a segment without a directory still knows LiveKit's families.
        let id = match self.segment().family_region() {
            Some(region) => {
                let d = Writer {
                    seg: self.segment(),
                    slot: self.writer.slot(),
                    started: Instant::now(),
                };
                declare(&region, spec, &d)?
            }
            None => {
                spec.validate().map_err(Error::InvalidFamily)?;
                crate::segment::families::livekit_match(spec)
                    .unwrap_or(Err(Error::NoFamilyDirectory))?
            }
        };
        if !id.is_declared() || follow.declared.iter().any(|(d, _)| *d == id) {
            // One of LiveKit's, or declared by this writer before.
        } else {
            follow.declared.push((id, spec.clone()));
        }
        drop(follow);
        Ok(DeclaredFamily {
            stats: self.clone(),
            id,
            spec: spec.clone(),
        })
    }

    /// The family called `name` in this segment: one of LiveKit's or one
    /// any process declared ([`Error::UnknownFamily`] otherwise).
    pub fn family(&self, name: &str) -> Result<FamilyId> {
        self.writer.cache.family_named(self.segment(), name)
    }

    /// How many label values a series of `family` takes.
    pub(crate) fn family_labels(&self, family: FamilyId) -> Result<usize> {
        Ok(self
            .writer
            .cache
            .family(self.segment(), family)?
            .target
            .shape
            .labels)
    }

    /// The series of the family called `name` with these label values:
    /// [`family`](Self::family), then [`series`](Self::series).
    pub fn series_named(&self, name: &str, labels: &[&str]) -> Result<SeriesHandle> {
        self.series(self.family(name)?, labels)
    }

    /// Resolves a labeled series to a handle (slow path: interns the label
    /// values and registers the series once; later calls with the same
    /// labels hit a per-writer cache). Recording through the handle is
    /// lock-free and allocation-free. `family` is one of LiveKit's
    /// [`Family`](crate::Family)s or a declared family's
    /// [`FamilyId`].
    ///
    /// A labeled series whose labels name a fixed counter of the same
    /// family (for example `livekit_packet_total{direction, transmission}`,
    /// which [`record_packets`](Self::record_packets) counts) is refused
    /// with [`Error::FixedSeries`]: record it through the fixed call
    /// instead. A family past its series cap, a label value that does not
    /// fit and a full directory all record into the family's overflow
    /// series (every label `__overflow__`): opening never fails for lack
    /// of room.
    pub fn series(&self, family: impl Into<FamilyId>, labels: &[&str]) -> Result<SeriesHandle> {
        // Held until the handle is registered: `maintain` moves series.
        let mut follow = self.writer.follow();
        let family = follow.family_now(family.into());
        if let Some(f) = family.livekit() {
            if f.duplicates_fixed(labels) {
                return Err(Error::FixedSeries {
                    family: f.def().name,
                });
            }
        }
        let resolved = self.writer.cache.family(self.segment(), family)?;
        let base = self
            .writer
            .cache
            .resolve(self.segment(), &resolved, labels)?;
        Ok(SeriesHandle::new(
            &self.writer,
            &mut follow,
            self.series_adder(),
            &resolved,
            labels,
            base,
        ))
    }
}
