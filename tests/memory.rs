//! Segment memory follows use, not the number of possible CPUs: the size
//! of a named segment and what it holds resident (every page is reserved
//! at creation) after writers and scrapes, for 2, 64 and 256 shards (a
//! host with that many possible CPU ids; the count is forced). Prints the
//! numbers `benches/README.md` records; fails past 8 MiB at 256.

use nodestats::{
    Collector, CollectorConfig, Direction, Exporter, Family, Segment, SegmentOptions, Stats,
};
use std::os::unix::fs::MetadataExt;

const MIB: f64 = 1024.0 * 1024.0;

#[test]
fn segment_memory_for_2_64_and_256_possible_cpus() {
    let mut sizes = Vec::new();
    for shards in [2usize, 64, 256] {
        let name = format!("/nodestats-mem-{}-{shards}", std::process::id());
        let _ = Segment::unlink(&name);
        let stats = Stats::open(&SegmentOptions::new().name(&name).shards(shards)).unwrap();
        // Writers: per-CPU counters, a thread row, 1000 labeled series.
        stats.record_packets(Direction::Incoming, 10, 12_000, false);
        let thread = stats.thread_writer().unwrap();
        thread.record_packets(Direction::Outgoing, 5, 6_000, false);
        for i in 0..1000 {
            let country = format!("c{i}");
            stats
                .series(Family::NackTotal, &["incoming", &country])
                .unwrap()
                .inc_by(1);
        }
        let rtt = stats
            .series(Family::RttMs, &["outgoing", "CAMERA", "VIDEO", "SE"])
            .unwrap();
        rtt.observe(42.0);
        // Scrapes and a collector.
        let exporter = Exporter::new(stats.segment().clone(), "n", "SERVER").unwrap();
        let text = exporter.text();
        assert!(text.contains(r#"country="c999""#));
        let cfg = CollectorConfig {
            system: None,
            ..CollectorConfig::default()
        };
        let ns = Collector::attach(&name, cfg).unwrap().update();
        assert_eq!(ns.packets_in, 10);
        assert_eq!(ns.packets_out, 5);
        assert_eq!(ns.nack_total, 1000, "every labeled add counted");

        let meta = std::fs::metadata(format!("/dev/shm{name}")).unwrap();
        let (size, resident) = (meta.len(), meta.blocks() * 512);
        println!(
            "MEMORY {shards:>3} shards ({} value blocks): segment {:.2} MiB, resident {:.2} MiB",
            stats.segment().layout().value_blocks,
            size as f64 / MIB,
            resident as f64 / MIB
        );
        sizes.push((shards, size, resident));
        drop((thread, rtt, stats));
        Segment::unlink(&name).unwrap();
    }
    let (_, size, resident) = sizes[2];
    assert!(
        size <= 8 << 20 && resident <= 8 << 20,
        "256 possible CPUs: {size} bytes, {resident} resident (target 8 MiB)"
    );
    // Reserved in full at creation: resident is the whole segment.
    for (shards, size, resident) in sizes {
        assert!(
            resident >= size,
            "{shards} shards: {resident} resident of {size}"
        );
    }
}
