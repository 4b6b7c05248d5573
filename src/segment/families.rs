//! The family directory: families declared at run time, described in the
//! segment so that a reader in another process exports them without being
//! told (SEGMENT.md §8a).
//!
//! # Layout
//!
//! A control block (per-family series counts of LiveKit's families, the
//! count of refused declarations), then `family_capacity` entries of 2048
//! bytes. An entry holds a family's name, help, kind, unit, label names,
//! histogram bounds, series cap and the directory index of its overflow
//! series, plus two words that change: the series registered against the
//! cap and those that went to the overflow series.
//!
//! # Declaring (no cross-process lock)
//!
//! The directory is an open-addressed hash table keyed by the name's
//! FNV-1a hash. A declarer walks the probe sequence from `hash % capacity`:
//! a free entry is claimed by one compare-and-swap of its state word (which
//! carries 40 bits of the hash and who claimed it), described, and
//! published by storing the state last with Release; an entry with the same
//! hash that is published is compared by name and shape; one that is
//! claimed is waited for. Two declarers of one name therefore meet at the
//! same entry and the loser sees the winner's description: one family,
//! never two. A claim whose declarer died before publishing is taken over
//! once its writer slot is no longer held. Nothing is ever moved or freed.

use crate::error::{Error, Result};
use crate::schema::native::{upper_bound, NativeLayout};
use crate::schema::spec::NativeSpec;
use crate::schema::{
    Family, FamilyId, FamilySpec, Kind, LIVEKIT_FAMILIES, MAX_DECLARED_BUCKETS, MAX_FAMILY_LABELS,
    MAX_HELP_BYTES, MAX_LABEL_NAME_BYTES, MAX_NAME_BYTES, MAX_UNIT_BYTES,
};
use crate::sync::{AtomicU64, Ordering};

/// Bytes of the control block at the start of the family region.
pub(crate) const CONTROL_BYTES: usize = 1024;
/// Words of one family entry.
pub(crate) const ENTRY_WORDS: usize = 256;
/// Most declared families a segment may hold.
pub(crate) const MAX_FAMILIES: u64 = 4096;
/// Declared families a new segment holds unless told otherwise.
pub const DEFAULT_FAMILIES: usize = 128;

/// State tag of an entry being described by the declarer that claimed it.
pub(crate) const CLAIMED: u64 = 1;
/// State tag of a published entry (the value series entries use too).
pub(crate) const PUBLISHED: u64 = 2;

/// Words of the control block.
pub(crate) mod ctl {
    /// Declarations refused because every entry was taken.
    pub(crate) const REFUSED_FULL: usize = 0;
    /// The series cap of each LiveKit family (0: none).
    pub(crate) const LIVEKIT_MAX_SERIES: usize = 1;
    /// LiveKit family `f`'s series registered against the cap: word 8 + f.
    pub(crate) const LIVEKIT_COUNT: usize = 8;
    /// LiveKit family `f`'s series sent to its overflow series by the cap:
    /// word 64 + f.
    pub(crate) const LIVEKIT_OVERFLOWED: usize = 64;
}

/// Words of a family entry.
pub(crate) mod word {
    /// Tag (bits 0–7), claimer (8–23), name hash bits 24–63 (24–63).
    pub(crate) const STATE: usize = 0;
    /// Kind (bits 0–7), label count (8–15), bound count (16–23), name
    /// length (32–39), unit length (40–47).
    pub(crate) const SHAPE: usize = 1;
    pub(crate) const HELP_LEN: usize = 2;
    pub(crate) const MAX_SERIES: usize = 3;
    pub(crate) const OVERFLOW_ENTRY: usize = 4;
    /// Label name lengths, one byte each.
    pub(crate) const LABEL_LENS: usize = 5;
    /// Series registered against the cap (changes).
    pub(crate) const SERIES_COUNT: usize = 6;
    /// Series sent to the overflow series by the cap (changes).
    pub(crate) const SERIES_OVERFLOWED: usize = 7;
    /// Native buckets (layout 2.3): bit 0 native, bits 8–15 the schema
    /// (`i8`), bits 32–63 the span; 0 for a classic family.
    pub(crate) const NATIVE: usize = 8;
    /// The lowest native bucket index kept (`i32` in bits 0–31).
    pub(crate) const NATIVE_LO: usize = 9;
    /// The zero threshold, `f64` bits.
    pub(crate) const NATIVE_ZERO: usize = 10;
    pub(crate) const BOUNDS: usize = 16;
    pub(crate) const NAME: usize = 64;
    pub(crate) const UNIT: usize = 80;
    pub(crate) const LABELS: usize = 84;
    pub(crate) const HELP: usize = 148;
}

/// One family entry.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct FamilyEntry {
    pub(crate) w: [AtomicU64; ENTRY_WORDS],
}

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<FamilyEntry>() == 2048);
    assert!(word::BOUNDS + MAX_DECLARED_BUCKETS <= word::NAME);
    assert!(word::NAME + MAX_NAME_BYTES / 8 == word::UNIT);
    assert!(word::UNIT + MAX_UNIT_BYTES / 8 == word::LABELS);
    assert!(word::LABELS + MAX_FAMILY_LABELS * MAX_LABEL_NAME_BYTES / 8 == word::HELP);
    assert!(word::HELP + MAX_HELP_BYTES / 8 == ENTRY_WORDS);
    assert!(ctl::LIVEKIT_OVERFLOWED + LIVEKIT_FAMILIES <= CONTROL_BYTES / 8);
};

/// Bytes of a family region with `capacity` entries.
pub(crate) fn region_bytes(capacity: u64) -> Option<u64> {
    capacity
        .checked_mul(size_of::<FamilyEntry>() as u64)?
        .checked_add(CONTROL_BYTES as u64)
}

/// The family region of a mapped segment (absent in segments made before
/// layout 2.2).
#[derive(Clone, Copy)]
pub(crate) struct FamilyRegion<'a> {
    pub(crate) control: &'a [AtomicU64],
    pub(crate) entries: &'a [FamilyEntry],
}

/// A published, valid declared family as a reader sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Declared {
    pub(crate) spec: FamilySpec,
    /// Directory index of the family's overflow series.
    pub(crate) overflow_entry: u32,
}

/// The 64-bit FNV-1a hash of a family name (SEGMENT.md §8a).
pub(crate) fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The hash bits a state word carries.
fn hash_tag(h: u64) -> u64 {
    h >> 24
}

pub(crate) fn state(tag: u64, claimer: u64, h: u64) -> u64 {
    tag | (claimer & 0xffff) << 8 | hash_tag(h) << 24
}

/// Stores `bytes` zero-padded into the first words of `words` (Relaxed):
/// only the words the bytes reach, since readers read no further.
fn write_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (k, w) in words.iter().take(bytes.len().div_ceil(8)).enumerate() {
        let mut b = [0u8; 8];
        let from = (8 * k).min(bytes.len());
        let to = (8 * k + 8).min(bytes.len());
        b[..to - from].copy_from_slice(&bytes[from..to]);
        w.store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
}

/// The first `len` bytes of `words` as UTF-8, if they fit and are.
fn read_str(words: &[AtomicU64], len: usize) -> Option<String> {
    if len > words.len() * 8 {
        return None;
    }
    let mut out = Vec::with_capacity(len + 8);
    for w in words.iter().take(len.div_ceil(8)) {
        out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    out.truncate(len);
    String::from_utf8(out).ok()
}

fn kind_word(k: Kind) -> u64 {
    match k {
        Kind::Counter => 0,
        Kind::Gauge => 1,
        Kind::Histogram => 2,
    }
}

impl FamilyRegion<'_> {
    /// The family declared at entry `k`, if it is published and valid.
    pub(crate) fn read(&self, k: usize) -> Option<Declared> {
        read_entry(self.entries.get(k)?)
    }

    /// Every published entry: `(k, Some(family))` when it is valid, `(k,
    /// None)` when its description is out of range (a reader skips and
    /// counts it). A later entry with the name of an earlier one is
    /// invalid too: the directory never holds a name twice.
    pub(crate) fn scan(&self) -> Vec<(usize, Option<Declared>)> {
        let mut out = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (k, e) in self.entries.iter().enumerate() {
            if e.w[word::STATE].load(Ordering::Acquire) & 0xff != PUBLISHED {
                continue;
            }
            let d = read_entry(e).filter(|d| names.insert(d.spec.name.clone()));
            out.push((k, d));
        }
        out
    }

    /// The word counting `family`'s series against its cap, and the word
    /// counting the label sets its cap sent to the overflow series: control
    /// words 8 + f and 64 + f for LiveKit family f, words 6 and 7 of a
    /// declared family's entry.
    fn cap_words(&self, family: FamilyId) -> Option<(&AtomicU64, &AtomicU64)> {
        match (family.livekit(), family.directory_entry()) {
            (Some(f), _) => Some((
                self.control.get(ctl::LIVEKIT_COUNT + f as usize)?,
                self.control.get(ctl::LIVEKIT_OVERFLOWED + f as usize)?,
            )),
            (_, Some(k)) => self
                .entries
                .get(k)
                .map(|e| (&e.w[word::SERIES_COUNT], &e.w[word::SERIES_OVERFLOWED])),
            _ => None,
        }
    }

    /// Whether a new series of `family` may be registered under its cap
    /// (counting it if so). Families without a cap always may.
    pub(crate) fn admit(&self, family: FamilyId, max_series: u64) -> bool {
        match self.cap_words(family) {
            Some((count, _)) if max_series > 0 => {
                count.fetch_add(1, Ordering::Relaxed) < max_series
            }
            _ => true,
        }
    }

    /// Whether `family` has reached its cap (a cheap check before
    /// interning label values for a series that would overflow anyway).
    pub(crate) fn full(&self, family: FamilyId, max_series: u64) -> bool {
        self.cap_words(family)
            .is_some_and(|(c, _)| max_series > 0 && c.load(Ordering::Relaxed) >= max_series)
    }

    /// Counts one series of `family` sent to its overflow series by the cap.
    pub(crate) fn count_overflow(&self, family: FamilyId) {
        if let Some((_, w)) = self.cap_words(family) {
            w.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Series of `family` sent to its overflow series by its cap.
    pub(crate) fn overflowed(&self, family: FamilyId) -> u64 {
        self.cap_words(family)
            .map_or(0, |(_, w)| w.load(Ordering::Relaxed))
    }

    /// The entries of `name`'s probe sequence: from its home entry on, each
    /// at most once.
    fn probe(&self, h: u64) -> impl Iterator<Item = usize> {
        let cap = self.entries.len();
        let home = if cap == 0 {
            0
        } else {
            (h % cap as u64) as usize
        };
        (0..cap).map(move |step| (home + step) % cap)
    }

    /// The declared family called `name`, if one is published: found along
    /// its probe sequence before the first free entry (§8a).
    pub(crate) fn find(&self, name: &str) -> Option<FamilyId> {
        let h = name_hash(name);
        for k in self.probe(h) {
            let st = self.entries[k].w[word::STATE].load(Ordering::Acquire);
            if st == 0 {
                return None;
            }
            if st >> 24 == hash_tag(h) && self.read(k).is_some_and(|d| d.spec.name == name) {
                return Some(FamilyId::declared(k));
            }
        }
        None
    }

    /// The series cap of LiveKit's families (0: none).
    pub(crate) fn livekit_max_series(&self) -> u64 {
        self.control
            .get(ctl::LIVEKIT_MAX_SERIES)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }

    /// Declarations refused because the directory was full.
    pub(crate) fn refused_full(&self) -> u64 {
        self.control
            .get(ctl::REFUSED_FULL)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }
}

/// Describes `spec` in `e` (Relaxed: the state word publishes it). Words
/// past the lengths and counts are not written: readers never read them.
pub(crate) fn write_desc(e: &FamilyEntry, spec: &FamilySpec, overflow_entry: u32) {
    let bounds = match spec.kind {
        Kind::Histogram => spec.effective_buckets(),
        _ => &[],
    };
    e.w[word::SHAPE].store(
        kind_word(spec.kind)
            | (spec.labels.len() as u64) << 8
            | (bounds.len() as u64) << 16
            | (spec.name.len() as u64) << 32
            | (spec.unit.len() as u64) << 40,
        Ordering::Relaxed,
    );
    e.w[word::HELP_LEN].store(spec.help.len() as u64, Ordering::Relaxed);
    e.w[word::MAX_SERIES].store(spec.effective_max_series() as u64, Ordering::Relaxed);
    e.w[word::OVERFLOW_ENTRY].store(overflow_entry as u64, Ordering::Relaxed);
    let lens = spec
        .labels
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, l)| acc | (l.len() as u64) << (8 * i));
    e.w[word::LABEL_LENS].store(lens, Ordering::Relaxed);
    for (b, v) in e.w[word::BOUNDS..word::NAME].iter().zip(bounds) {
        b.store(v.to_bits(), Ordering::Relaxed);
    }
    let (native, lo, zero) = match spec.native_layout() {
        Some(l) => (
            1 | (l.schema as u8 as u64) << 8 | (l.span as u64) << 32,
            l.lo as u32 as u64,
            l.zero_bits,
        ),
        None => (0, 0, 0),
    };
    e.w[word::NATIVE].store(native, Ordering::Relaxed);
    e.w[word::NATIVE_LO].store(lo, Ordering::Relaxed);
    e.w[word::NATIVE_ZERO].store(zero, Ordering::Relaxed);
    write_bytes(&e.w[word::NAME..word::UNIT], spec.name.as_bytes());
    write_bytes(&e.w[word::UNIT..word::LABELS], spec.unit.as_bytes());
    const PER_LABEL: usize = MAX_LABEL_NAME_BYTES / 8;
    for (i, l) in spec.labels.iter().enumerate().take(MAX_FAMILY_LABELS) {
        let at = word::LABELS + i * PER_LABEL;
        write_bytes(&e.w[at..at + PER_LABEL], l.as_bytes());
    }
    write_bytes(&e.w[word::HELP..], spec.help.as_bytes());
}

/// The family described in `e` if it is published and every field is in
/// range: names by Prometheus' rules, bounds finite and increasing.
pub(crate) fn read_entry(e: &FamilyEntry) -> Option<Declared> {
    if e.w[word::STATE].load(Ordering::Acquire) & 0xff != PUBLISHED {
        return None;
    }
    let shape = e.w[word::SHAPE].load(Ordering::Relaxed);
    let kind = match shape & 0xff {
        0 => Kind::Counter,
        1 => Kind::Gauge,
        2 => Kind::Histogram,
        _ => return None,
    };
    let nl = ((shape >> 8) & 0xff) as usize;
    let nb = ((shape >> 16) & 0xff) as usize;
    let name_len = ((shape >> 32) & 0xff) as usize;
    let unit_len = ((shape >> 40) & 0xff) as usize;
    let help_len = e.w[word::HELP_LEN].load(Ordering::Relaxed);
    let native_word = e.w[word::NATIVE].load(Ordering::Relaxed);
    let native = match native_word {
        0 => None,
        w if w & 1 == 0 || w & 0xffff_00fe != 0 => return None,
        w => {
            let lo_word = e.w[word::NATIVE_LO].load(Ordering::Relaxed);
            if lo_word >> 32 != 0 {
                return None;
            }
            let layout = NativeLayout {
                schema: (w >> 8) as u8 as i8,
                lo: lo_word as u32 as i32,
                span: (w >> 32) as u32,
                zero_bits: e.w[word::NATIVE_ZERO].load(Ordering::Relaxed),
            };
            layout.check().ok()?;
            // Normal upper bounds: the range names exactly this span.
            Some(NativeSpec {
                schema: layout.schema,
                zero_threshold: layout.zero_threshold(),
                min: upper_bound(layout.schema, layout.lo),
                max: upper_bound(layout.schema, layout.lo + (layout.span - 1) as i32),
            })
        }
    };
    if nl > MAX_FAMILY_LABELS
        || nb > MAX_DECLARED_BUCKETS
        || (kind == Kind::Histogram) != (nb > 0 || native.is_some())
        || name_len > MAX_NAME_BYTES
        || unit_len > MAX_UNIT_BYTES
        || help_len > MAX_HELP_BYTES as u64
    {
        return None;
    }
    let name = read_str(&e.w[word::NAME..word::UNIT], name_len)?;
    let unit = read_str(&e.w[word::UNIT..word::LABELS], unit_len)?;
    let help = read_str(&e.w[word::HELP..], help_len as usize)?;
    let lens = e.w[word::LABEL_LENS].load(Ordering::Relaxed);
    const PER_LABEL: usize = MAX_LABEL_NAME_BYTES / 8;
    let mut labels = Vec::with_capacity(nl);
    for i in 0..nl {
        let at = word::LABELS + i * PER_LABEL;
        let l = read_str(
            &e.w[at..at + PER_LABEL],
            ((lens >> (8 * i)) & 0xff) as usize,
        )?;
        labels.push(l);
    }
    let buckets: Vec<f64> = e.w[word::BOUNDS..word::BOUNDS + nb]
        .iter()
        .map(|w| f64::from_bits(w.load(Ordering::Relaxed)))
        .collect();
    let max_series = u32::try_from(e.w[word::MAX_SERIES].load(Ordering::Relaxed))
        .ok()
        .filter(|&n| n >= 1)?;
    let overflow_entry = u32::try_from(e.w[word::OVERFLOW_ENTRY].load(Ordering::Relaxed)).ok()?;
    let spec = FamilySpec {
        name,
        help,
        kind,
        unit,
        labels,
        buckets,
        max_series,
        native,
    };
    // Everything a declaration checks (names, labels, bounds, lengths)
    // holds for what readers export.
    spec.validate().ok()?;
    Some(Declared {
        spec,
        overflow_entry,
    })
}

/// What [`declare`] needs from the segment besides the family region.
pub(crate) trait Declarer {
    /// Who claims entries (this process's writer slot + 1, or 0).
    fn claimer(&self) -> u64;
    /// Whether the declarer that put `claimer` into a claim is gone.
    fn claimer_dead(&self, claimer: u64) -> bool;
    /// Registers the overflow series of the family being declared at
    /// entry `k`; its directory index.
    fn overflow_series(&self, family: FamilyId, spec: &FamilySpec) -> Result<u32>;
    /// Waits a little for a claim to be published; false once it should
    /// stop waiting.
    fn pause(&self, waited: u32) -> bool;
}

/// Declares `spec` in `r` (see the module docs): its id, the id of the
/// family already declared under the name if the shape is the same, or
/// an error naming both definitions if it is not.
pub(crate) fn declare(
    r: &FamilyRegion<'_>,
    spec: &FamilySpec,
    d: &impl Declarer,
) -> Result<FamilyId> {
    spec.validate().map_err(Error::InvalidFamily)?;
    if let Some(lk) = livekit_match(spec) {
        return lk;
    }
    let h = name_hash(&spec.name);
    let conflict = |existing: &FamilySpec| Error::FamilyConflict {
        existing: existing.describe(),
        requested: spec.describe(),
    };
    for k in r.probe(h) {
        let e = &r.entries[k];
        let mut waited = 0u32;
        loop {
            let st = e.w[word::STATE].load(Ordering::Acquire);
            if st == 0 {
                let mine = state(CLAIMED, d.claimer(), h);
                if e.w[word::STATE]
                    .compare_exchange(0, mine, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return describe(e, k, spec, h, d);
                }
                continue;
            }
            if st >> 24 != hash_tag(h) {
                break;
            }
            match st & 0xff {
                PUBLISHED => {
                    let Some(found) = read_entry(e) else {
                        // A damaged entry: not ours to use or to repair.
                        break;
                    };
                    if found.spec.name != spec.name {
                        break;
                    }
                    return if found.spec.same_shape(spec) {
                        Ok(FamilyId::declared(k))
                    } else {
                        Err(conflict(&found.spec))
                    };
                }
                CLAIMED => {
                    // A dead declarer's claim is taken over at once; a live
                    // one's is waited for, up to the declarer's patience.
                    let claimer = (st >> 8) & 0xffff;
                    if d.claimer_dead(claimer) {
                        let mine = state(CLAIMED, d.claimer(), h);
                        if e.w[word::STATE]
                            .compare_exchange(st, mine, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                        {
                            return describe(e, k, spec, h, d);
                        }
                        continue;
                    }
                    if d.pause(waited) {
                        waited += 1;
                        continue;
                    }
                    return Err(Error::FamilyBusy(spec.name.clone()));
                }
                _ => break,
            }
        }
    }
    if let Some(w) = r.control.get(ctl::REFUSED_FULL) {
        w.fetch_add(1, Ordering::Relaxed);
    }
    Err(Error::FamilyDirectoryFull {
        capacity: r.entries.len() as u32,
    })
}

/// Describes and publishes a claimed entry `k`. A failure leaves the claim
/// standing (nobody uses an unpublished entry); the next declarer of the
/// name waits for it, then takes it over.
fn describe(
    e: &FamilyEntry,
    k: usize,
    spec: &FamilySpec,
    h: u64,
    d: &impl Declarer,
) -> Result<FamilyId> {
    let id = FamilyId::declared(k);
    let overflow = d.overflow_series(id, spec)?;
    write_desc(e, spec, overflow);
    e.w[word::STATE].store(state(PUBLISHED, 0, h), Ordering::Release);
    Ok(id)
}

/// Writes the control block of a new segment: LiveKit's families' cap.
pub(crate) fn init_region(r: &FamilyRegion<'_>, livekit_max_series: u64) {
    if let Some(w) = r.control.get(ctl::LIVEKIT_MAX_SERIES) {
        w.store(livekit_max_series, Ordering::Relaxed);
    }
}

/// The LiveKit family of this name, checked against a declaration.
pub(crate) fn livekit_match(spec: &FamilySpec) -> Option<Result<FamilyId>> {
    let f = Family::from_name(&spec.name)?;
    let lk = FamilySpec::of_livekit(f);
    Some(if lk.same_shape(spec) {
        Ok(f.into())
    } else {
        Err(Error::FamilyConflict {
            existing: lk.describe(),
            requested: spec.describe(),
        })
    })
}

/// A zeroed family region on the heap, for unit tests and loom models.
#[cfg(test)]
pub(crate) struct HeapFamilies {
    pub(crate) control: Vec<AtomicU64>,
    pub(crate) entries: Vec<FamilyEntry>,
}

#[cfg(test)]
impl HeapFamilies {
    /// A control block and `cap` entries.
    pub(crate) fn new(cap: usize) -> Self {
        HeapFamilies {
            control: (0..CONTROL_BYTES / 8).map(|_| AtomicU64::new(0)).collect(),
            entries: (0..cap)
                .map(|_| FamilyEntry {
                    w: std::array::from_fn(|_| AtomicU64::new(0)),
                })
                .collect(),
        }
    }

    pub(crate) fn region(&self) -> FamilyRegion<'_> {
        FamilyRegion {
            control: &self.control,
            entries: &self.entries,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Me {
        dead: bool,
        overflow: Cell<u32>,
    }

    impl Declarer for Me {
        fn claimer(&self) -> u64 {
            7
        }
        fn claimer_dead(&self, _: u64) -> bool {
            self.dead
        }
        fn overflow_series(&self, _: FamilyId, _: &FamilySpec) -> Result<u32> {
            self.overflow.set(self.overflow.get() + 1);
            Ok(100 + self.overflow.get())
        }
        fn pause(&self, waited: u32) -> bool {
            waited < 3
        }
    }

    fn me() -> Me {
        Me {
            dead: false,
            overflow: Cell::new(0),
        }
    }

    #[test]
    fn declared_families_read_back_exactly() {
        let h = HeapFamilies::new(8);
        let spec = FamilySpec::histogram("sfu_delay_seconds", "Forward delay.", &[0.001, 0.5])
            .labels(&["room", "media"])
            .unit("seconds")
            .max_series(10);
        let id = declare(&h.region(), &spec, &me()).unwrap();
        let k = id.directory_entry().unwrap();
        let got = h.region().read(k).unwrap();
        assert_eq!(got.spec, spec);
        assert_eq!(got.overflow_entry, 101);
        // Again, with other help and cap: the same family.
        let again = FamilySpec::histogram("sfu_delay_seconds", "x", &[0.001, 0.5])
            .labels(&["room", "media"])
            .unit("seconds");
        assert_eq!(declare(&h.region(), &again, &me()).unwrap(), id);
        // Another shape under the name: a conflict naming both.
        let other = FamilySpec::counter("sfu_delay_seconds", "x").labels(&["room"]);
        match declare(&h.region(), &other, &me()) {
            Err(Error::FamilyConflict {
                existing,
                requested,
            }) => {
                assert!(existing.contains("histogram"), "{existing}");
                assert!(requested.contains("counter"), "{requested}");
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn a_full_directory_refuses_and_counts() {
        let h = HeapFamilies::new(3);
        for i in 0..3 {
            declare(
                &h.region(),
                &FamilySpec::counter(&format!("c{i}"), ""),
                &me(),
            )
            .unwrap();
        }
        let r = declare(&h.region(), &FamilySpec::counter("c9", ""), &me());
        assert!(
            matches!(r, Err(Error::FamilyDirectoryFull { capacity: 3 })),
            "{r:?}"
        );
        assert_eq!(h.region().refused_full(), 1);
        // Families already there are still found.
        assert!(declare(&h.region(), &FamilySpec::counter("c1", ""), &me()).is_ok());
        assert_eq!(h.region().scan().len(), 3);
    }

    #[test]
    fn a_dead_claim_is_taken_over_a_live_one_is_busy() {
        let h = HeapFamilies::new(4);
        let spec = FamilySpec::counter("sfu_x_total", "");
        let hash = name_hash(&spec.name);
        let k = (hash % 4) as usize;
        h.entries[k].w[0].store(state(CLAIMED, 3, hash), Ordering::Relaxed);
        let r = declare(&h.region(), &spec, &me());
        assert!(matches!(r, Err(Error::FamilyBusy(_))), "{r:?}");
        assert!(h.region().scan().is_empty());
        let dead = Me {
            dead: true,
            overflow: Cell::new(0),
        };
        assert_eq!(
            declare(&h.region(), &spec, &dead).unwrap(),
            FamilyId::declared(k)
        );
        assert_eq!(h.region().read(k).unwrap().spec.name, "sfu_x_total");
    }

    #[test]
    fn damaged_entries_are_not_read() {
        let h = HeapFamilies::new(4);
        let id = declare(
            &h.region(),
            &FamilySpec::histogram("h", "", &[1.0, 2.0]).labels(&["a"]),
            &me(),
        )
        .unwrap();
        let k = id.directory_entry().unwrap();
        let e = &h.entries[k];
        let good: Vec<u64> = e.w.iter().map(|w| w.load(Ordering::Relaxed)).collect();
        let restore = || {
            for (w, v) in e.w.iter().zip(&good) {
                w.store(*v, Ordering::Relaxed);
            }
        };
        let damage: [(usize, u64); 10] = [
            (word::MAX_SERIES, 0),                            // no cap written
            (word::MAX_SERIES, u64::MAX),                     // not a u32
            (word::SHAPE, good[word::SHAPE] | 0xff),          // kind 255
            (word::SHAPE, good[word::SHAPE] | 0xff << 8),     // 255 labels
            (word::SHAPE, good[word::SHAPE] & !(0xff << 16)), // histogram, no bounds
            (word::HELP_LEN, 1 << 40),
            (word::BOUNDS + 1, 0.5f64.to_bits()), // decreasing
            (word::BOUNDS, f64::NAN.to_bits()),
            (word::NAME, u64::from_le_bytes(*b"9\0\0\0\0\0\0\0")), // bad name
            (word::LABELS, u64::from_le_bytes(*b"9\0\0\0\0\0\0\0")),
        ];
        for (w, v) in damage {
            e.w[w].store(v, Ordering::Relaxed);
            assert_eq!(h.region().read(k), None, "word {w} = {v:#x}");
            assert_eq!(h.region().scan(), vec![(k, None)]);
            restore();
        }
        assert!(h.region().read(k).is_some());
    }

    #[test]
    fn native_families_read_back_and_damaged_native_words_are_not_read() {
        let h = HeapFamilies::new(4);
        let spec = FamilySpec::histogram("sfu_delay_ms", "d", &[])
            .native(2)
            .native_range(0.5, 300.0)
            .native_zero_threshold(0.01);
        let k = declare(&h.region(), &spec, &me())
            .unwrap()
            .directory_entry()
            .unwrap();
        let got = h.region().read(k).unwrap().spec;
        assert!(got.same_shape(&spec), "{got:?}");
        assert_eq!(got.native_layout(), spec.native_layout());
        let l = spec.native_layout().unwrap();
        // Index of 0.5 at schema 2 is -4, of 300 is 33 (2^(33/4) ≈ 304.4).
        assert_eq!((l.schema, l.lo, l.span), (2, -4, 38));
        let e = &h.entries[k];
        let good: Vec<u64> = e.w.iter().map(|w| w.load(Ordering::Relaxed)).collect();
        assert_eq!(good[word::NATIVE], 1 | 2 << 8 | 38 << 32);
        assert_eq!(good[word::NATIVE_LO], (-4i32) as u32 as u64);
        let native = |schema: i8, span: u64| 1 | (schema as u8 as u64) << 8 | span << 32;
        let damage: [(usize, u64); 9] = [
            (word::NATIVE, good[word::NATIVE] & !1), // bits without the flag
            (word::NATIVE, good[word::NATIVE] | 1 << 20), // a reserved bit
            (word::NATIVE, native(9, 38)),           // schema 9
            (word::NATIVE, native(-5, 38)),          // schema -5
            (word::NATIVE, native(2, 0)),            // no span
            (word::NATIVE, native(2, 2049)),         // too wide
            (word::NATIVE_LO, 1 << 32),              // high bits
            (word::NATIVE_LO, (-4090i32) as u32 as u64), // below 2^-1022
            (word::NATIVE_ZERO, f64::INFINITY.to_bits()),
        ];
        for (w, v) in damage {
            e.w[w].store(v, Ordering::Relaxed);
            assert_eq!(h.region().read(k), None, "word {w} = {v:#x}");
            for (w, v) in e.w.iter().zip(&good) {
                w.store(*v, Ordering::Relaxed);
            }
        }
        assert!(h.region().read(k).is_some());
        // A classic histogram's native words are 0 and a native one without
        // bounds is valid: dropping the flag makes it a histogram without
        // bounds, which is corrupt.
        e.w[word::NATIVE].store(0, Ordering::Relaxed);
        assert_eq!(h.region().read(k), None);
    }

    #[test]
    fn livekit_names_keep_their_shape() {
        let same = FamilySpec::of_livekit(Family::NackTotal);
        assert_eq!(
            livekit_match(&same).unwrap().unwrap(),
            FamilyId::from(Family::NackTotal)
        );
        let other = FamilySpec::counter("livekit_nack_total", "").labels(&["room"]);
        assert!(matches!(
            livekit_match(&other),
            Some(Err(Error::FamilyConflict { .. }))
        ));
        assert!(livekit_match(&FamilySpec::counter("sfu_x", "")).is_none());
    }
}
