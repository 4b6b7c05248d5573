//! The per-writer resolution cache: families, label strings and series
//! looked up in (or registered into) the segment once, then found by hash.
//!
//! The cache mirrors the segment's string table and series directory
//! incrementally (both only ever grow), so a lookup of a label set another
//! process registered is a hash probe, not a scan. Its memory is bounded by
//! the segment's capacities: a label set that lands in an overflow series
//! (a family at its cap, a full directory, a label value that does not
//! fit) is never remembered, so a flood of new values costs a few hash
//! probes each and no memory.

use super::family::{livekit_bounds, resolved_declared, Resolved};
use crate::error::{Error, Result};
use crate::schema::{Family, FamilyId};
use crate::segment::series::{
    add_string, alloc, label_ids, overflow_base, read_string, register, Region, Target, MAX_LABELS,
    OVERFLOW_ID, PUBLISHED,
};
use crate::segment::Segment;
use crate::sync::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, RwLock};

/// A resolved series: family, label values, value base.
type CachedSeries = (FamilyId, Box<[Box<str>]>, u32);

/// The segment's strings and series entries as far as this writer has
/// read them, plus the families it resolved.
#[derive(Debug, Default)]
struct Mirror {
    strings: HashMap<Box<str>, u32>,
    /// Strings below this index were read (or are in `string_holes`).
    strings_seen: usize,
    /// Claimed strings not yet published when last read.
    string_holes: Vec<usize>,
    /// (family index, label ids) → (value base, value count).
    entries: HashMap<(u16, [u32; MAX_LABELS]), (u32, usize)>,
    entries_seen: usize,
    entry_holes: Vec<usize>,
    families: HashMap<FamilyId, Resolved>,
}

/// A process's cache of resolved families, strings and series.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    mirror: Mutex<Mirror>,
    /// Keyed by a hash of (family, labels); collisions resolved by compare.
    series: RwLock<HashMap<u64, Vec<CachedSeries>>>,
}

fn key_hash(family: FamilyId, labels: &[&str]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    family.hash(&mut h);
    for l in labels {
        l.hash(&mut h);
    }
    h.finish()
}

impl Mirror {
    /// Reads the entries and strings published since the last sync.
    fn sync(&mut self, r: &Region<'_>) {
        // Entries, then strings (as readers do, SEGMENT.md §8): the strings
        // of every entry read are read too.
        let nd = (r.alloc[alloc::NEXT_SERIES].load(Ordering::Acquire) as usize).min(r.dir.len());
        let mut holes = std::mem::take(&mut self.entry_holes);
        holes.extend(self.entries_seen..nd);
        self.entries_seen = self.entries_seen.max(nd);
        for i in holes {
            let e = &r.dir[i];
            if e.w[0].load(Ordering::Acquire) != PUBLISHED {
                self.entry_holes.push(i);
                continue;
            }
            let w1 = e.w[1].load(Ordering::Relaxed);
            let nl = ((w1 >> 32) & 0xffff) as usize;
            if nl > MAX_LABELS {
                continue;
            }
            let ids = label_ids(e, nl);
            let base = e.w[2].load(Ordering::Relaxed);
            let n = ((w1 >> 16) & 0xffff) as usize;
            if let Ok(base) = u32::try_from(base) {
                self.entries
                    .entry(((w1 & 0xffff) as u16, ids))
                    .or_insert((base, n));
            }
        }
        let ns =
            (r.alloc[alloc::NEXT_STRING].load(Ordering::Acquire) as usize).min(r.strings.len());
        let mut holes = std::mem::take(&mut self.string_holes);
        holes.extend(self.strings_seen..ns);
        self.strings_seen = self.strings_seen.max(ns);
        for i in holes {
            match read_string(&r.strings[i]) {
                Some((b, len)) => {
                    if let Ok(s) = std::str::from_utf8(&b[..len]) {
                        self.strings.entry(s.into()).or_insert(i as u32);
                    }
                }
                None => self.string_holes.push(i),
            }
        }
    }

    /// The base of a published entry of `t` with these ids, if its fields
    /// fit the family and the value blocks.
    fn entry(&self, r: &Region<'_>, t: &Target, ids: &[u32]) -> Option<u32> {
        let mut key = [0u32; MAX_LABELS];
        key[..ids.len()].copy_from_slice(ids);
        let &(base, n) = self.entries.get(&(t.family.index(), key))?;
        (n == r.values_of(t.shape) && base as usize + n <= r.values_per_shard).then_some(base)
    }
}

impl Cache {
    /// What this writer knows of `family`, reading a declared family's
    /// description from the segment the first time.
    pub(crate) fn family(&self, seg: &Segment, family: FamilyId) -> Result<Resolved> {
        let mut m = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = m.families.get(&family) {
            return Ok(r.clone());
        }
        let resolved = match (family.livekit(), family.directory_entry()) {
            (Some(f), _) => Resolved {
                target: seg.series_region().livekit_target(f),
                bounds: livekit_bounds(f),
                name: f.def().name.into(),
            },
            (_, Some(k)) => {
                let d = seg
                    .family_region()
                    .and_then(|r| r.read(k))
                    .ok_or_else(|| Error::UnknownFamily(format!("#{}", family.index())))?;
                resolved_declared(family, &d.spec, d.overflow_entry as usize)
            }
            _ => return Err(Error::UnknownFamily(format!("#{}", family.index()))),
        };
        m.families.insert(family, resolved.clone());
        Ok(resolved)
    }

    /// The family called `name`: one of LiveKit's, or one declared in the
    /// segment by any process.
    pub(crate) fn family_named(&self, seg: &Segment, name: &str) -> Result<FamilyId> {
        if let Some(f) = Family::from_name(name) {
            return Ok(f.into());
        }
        seg.family_region()
            .and_then(|r| r.find(name))
            .ok_or_else(|| Error::UnknownFamily(name.to_string()))
    }

    /// The value base of the series, registering it if needed.
    pub(crate) fn resolve(&self, seg: &Segment, family: &Resolved, labels: &[&str]) -> Result<u32> {
        let t = &family.target;
        if labels.len() != t.shape.labels {
            return Err(Error::LabelCount {
                family: family.name.to_string(),
                expected: t.shape.labels,
                got: labels.len(),
            });
        }
        if !seg.is_writable() {
            return Err(Error::ReadOnly);
        }
        let key = key_hash(t.family, labels);
        if let Some(base) = self.lookup(key, t.family, labels) {
            return Ok(base);
        }
        let r = seg.series_region();
        let damaged = Error::BadLayout("the family's overflow series is missing or damaged");
        let mut m = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        m.sync(&r);
        let mut ids = [0u32; MAX_LABELS];
        let known = labels
            .iter()
            .zip(ids.iter_mut())
            .all(|(l, id)| m.strings.get(*l).map(|&i| *id = i).is_some());
        let ids = &mut ids[..labels.len()];
        if known {
            if let Some(base) = m.entry(&r, t, ids) {
                // Remembered under the mirror's lock, so that a writer's
                // move to a new segment (`replace_with`) never finds an
                // old segment's base remembered after it.
                self.remember(key, t.family, labels, base);
                return Ok(base);
            }
        }
        // A family at its cap: no label value interned, nothing remembered.
        if r.families.is_some_and(|f| f.full(t.family, t.max_series)) {
            if let Some(f) = &r.families {
                f.count_overflow(t.family);
            }
            return overflow_base(&r, t).ok_or(damaged);
        }
        for (l, id) in labels.iter().zip(ids.iter_mut()) {
            if let Some(&i) = m.strings.get(*l) {
                *id = i;
                continue;
            }
            *id = add_string(&r, l);
            if *id != OVERFLOW_ID {
                m.strings.insert((*l).into(), *id);
            }
        }
        // Another process may have registered it meanwhile.
        m.sync(&r);
        if let Some(base) = m.entry(&r, t, ids) {
            self.remember(key, t.family, labels, base);
            return Ok(base);
        }
        let (base, own) = register(&r, t, ids).ok_or(damaged)?;
        if own && !ids.contains(&OVERFLOW_ID) {
            self.remember(key, t.family, labels, base);
        }
        drop(m);
        Ok(base)
    }

    fn remember(&self, key: u64, family: FamilyId, labels: &[&str], base: u32) {
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_default().push((
            family,
            labels.iter().map(|s| (*s).into()).collect(),
            base,
        ));
    }

    /// A cached series, without allocating.
    pub(crate) fn lookup(&self, key: u64, family: FamilyId, labels: &[&str]) -> Option<u32> {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        map.get(&key)?
            .iter()
            .find(|(f, l, _)| *f == family && l.iter().map(|s| &**s).eq(labels.iter().copied()))
            .map(|e| e.2)
    }

    /// Takes `other`'s contents (a cache of the segment this writer moved
    /// to), dropping what this one knew.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn replace_with(&self, other: Cache) {
        let Cache { mirror, series } = other;
        *self.mirror.lock().unwrap_or_else(|e| e.into_inner()) =
            mirror.into_inner().unwrap_or_else(|e| e.into_inner());
        *self.series.write().unwrap_or_else(|e| e.into_inner()) =
            series.into_inner().unwrap_or_else(|e| e.into_inner());
    }

    /// Label sets remembered (tests bound the cache's memory with it).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn remembered(&self) -> usize {
        let series: usize = self
            .series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(Vec::len)
            .sum();
        let m = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        series + m.strings.len() + m.entries.len()
    }
}
