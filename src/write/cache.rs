//! The per-writer resolution cache: label strings and series looked up in
//! (or registered into) the segment once, then found by hash.

use crate::error::{Error, Result};
use crate::schema::Family;
use crate::segment::series::{add_string, find_entry, find_string, register, Region, MAX_LABELS};
use crate::segment::Segment;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, RwLock};

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
