//! A writer's ownership of its slot: what every clone of a [`Stats`]
//! (super::Stats) and every gauge series handle shares.

use super::cache::Cache;
use crate::segment::Segment;
use std::sync::Arc;

/// Owns the writer slot and this writer's series cache; the slot is
/// released when the last clone of a [`Stats`] drops.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) segment: Arc<Segment>,
    pub(crate) slot: usize,
    /// The process that claimed the slot. A forked child inherits the
    /// handle and the slot's lock; dropping the handle there must not
    /// release the parent's slot (its gauges would vanish while the parent
    /// still runs).
    pub(crate) pid: u32,
    /// This writer's resolved label strings and series.
    pub(crate) cache: Cache,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if std::process::id() == self.pid {
            self.segment.release_slot(self.slot);
        }
    }
}
