//! The one door to internals for this crate's tests, benches and fuzz
//! target. Compiled only with the `testing` feature (which the crate's own
//! dev-dependency turns on) or under `cfg(test)`: a release build of the
//! library contains none of it. Not part of the API.
//!
//! # Safety
//!
//! The rseq hooks below use a writer handle's own rseq parts exactly as
//! `Stats::record_packets` does; the control reads and writes one shard
//! pair inside the live shard array.

pub use crate::read::series::{SeriesStats, SeriesValue};
use crate::Segment;

/// The C ABI's functions and types as Rust items.
pub mod ffi {
    pub use crate::ffi::*;
}

pub use crate::gofloat::{exponential_buckets_range, format_go_g};

/// Every published series of `seg`, merged, as the exporter reads them.
pub fn read_all(seg: &Segment) -> (Vec<SeriesValue>, SeriesStats) {
    crate::read::series::read_all(seg)
}

/// Whether this process can write an rseq segment.
pub fn rseq_supported() -> bool {
    crate::rseq::supported()
}

/// Whether glibc registered rseq for this process's threads.
pub fn rseq_registered_by_glibc() -> bool {
    crate::rseq::registered_by_glibc()
}

/// The rseq section with a stall inside it, and the same per-CPU add
/// without rseq (the control that must lose updates).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod rseq_hooks {
    use crate::{Counter, Direction, Stats};
    use core::sync::atomic::{AtomicU64, Ordering};

    /// `record_packets` through the same two rseq sections, each spinning
    /// `spins` iterations between choosing the shard and its commit.
    /// Returns the aborts taken, or `None` if the segment is not in rseq
    /// mode.
    pub fn record_packets_stalled(
        stats: &Stats,
        dir: Direction,
        packets: u64,
        bytes: u64,
        retransmit: bool,
        spins: u64,
    ) -> Option<u64> {
        let (area, base, mask) = stats.counters().rseq_parts()?;
        let i = Counter::packets(dir, retransmit);
        // SAFETY: `rseq_parts` gives the rseq-mode handle's own area, shard
        // 0's counter 0 and mask, exactly what `Stats::record_packets`
        // passes to its sections; `i + 1` < COUNTERS.
        Some(unsafe {
            area.add_stalled(base.add(i), mask, packets, spins)
                + area.add_stalled(base.add(i + 1), mask, bytes, spins)
        })
    }

    /// The control: reads the CPU, then adds to that CPU's shard with a
    /// separate load and store (no lock, no rseq), spinning `spins`
    /// iterations in between. Loses updates when a thread is preempted or
    /// migrated in the window. `None` if the segment is not in rseq mode.
    pub fn record_packets_unprotected(
        stats: &Stats,
        dir: Direction,
        packets: u64,
        bytes: u64,
        retransmit: bool,
        spins: u64,
    ) -> Option<()> {
        let (area, base, mask) = stats.counters().rseq_parts()?;
        let cpu = area.current_cpu()? & mask;
        let words = cpu * crate::schema::COUNTERS + Counter::packets(dir, retransmit);
        // SAFETY: cpu <= mask, so the pair lies in shard `cpu` of the live
        // shard array; counters are AtomicU64, which any u64 pointer into
        // them may be viewed as.
        let (p, b) = unsafe {
            let w = base.add(words);
            (&*(w as *const AtomicU64), &*(w.add(1) as *const AtomicU64))
        };
        let (old_p, old_b) = (p.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
        for i in 0..spins {
            std::hint::black_box(i);
        }
        p.store(old_p.wrapping_add(packets), Ordering::Relaxed);
        b.store(old_b.wrapping_add(bytes), Ordering::Relaxed);
        Some(())
    }
}

/// Label sets, strings and entries a writer's resolution cache holds (its
/// memory is bounded by the segment's capacities).
pub fn cache_remembered(stats: &crate::Stats) -> usize {
    stats.writer.cache.remembered()
}

/// The valid declared families of `seg`'s family directory.
pub fn declared_families(seg: &Segment) -> Vec<crate::FamilySpec> {
    seg.family_region()
        .map(|r| {
            r.scan()
                .into_iter()
                .filter_map(|(_, d)| d.map(|d| d.spec))
                .collect()
        })
        .unwrap_or_default()
}

/// The index of a series handle's first value word (benches place series
/// on cache lines with it).
pub fn series_base(h: &crate::SeriesHandle) -> usize {
    h.base()
}

/// Prometheus' native bucket index of a finite `v > 0` at `schema`, as the
/// writer finds it (benches compare it with a float `log2`).
pub fn native_index(schema: i8, v: f64) -> i32 {
    crate::schema::native::bucket_index(schema, v)
}

/// Series slots bound in a thread writer's row.
pub fn row_bindings(t: &crate::ThreadStats) -> usize {
    let seg = t.stats().segment();
    let words = seg.row_series_of(t.row_index());
    let slots = words.len() / 2;
    words[..slots]
        .iter()
        .take_while(|w| w.load(std::sync::atomic::Ordering::Acquire) != 0)
        .count()
}

/// The prost types of the Prometheus protobuf exposition
/// (`io.prometheus.client`, generated from `proto/`), to decode
/// [`Format::Protobuf`](crate::Format::Protobuf) pages with.
pub mod prom_pb {
    pub use crate::prom::protobuf::io::prometheus::client::*;
}
