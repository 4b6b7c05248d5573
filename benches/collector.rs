//! One collector update (merge every shard and writer slot, compute rates)
//! at 64 shards, without and with the system probes.

use criterion::{criterion_group, criterion_main, Criterion};
use nodestats::{Collector, CollectorConfig, Direction, SegmentOptions, Stats};
use std::time::Duration;

fn update(c: &mut Criterion) {
    let config = CollectorConfig {
        system: None,
        update_interval: Duration::from_secs(2),
        rate_intervals: vec![Duration::from_secs(10), Duration::from_secs(60)],
        ..CollectorConfig::default()
    };
    let mut g = c.benchmark_group("collector_update");
    // In-process (anonymous) segment: no liveness checks needed.
    let stats = Stats::open(&SegmentOptions::new().shards(64)).unwrap();
    stats.record_packets(Direction::Incoming, 1, 1200, false);
    stats.room_started();
    let mut col = Collector::new(stats.segment().clone(), config.clone()).unwrap();
    g.bench_function("anonymous_64_shards", |b| b.iter(|| col.update()));

    // The same with every system probe (cgroup CPU and memory, loadavg,
    // /proc/net/dev, /proc/net/snmp) read on each update.
    let mut with_sys = Collector::new(
        stats.segment().clone(),
        CollectorConfig {
            system: Some(Default::default()),
            ..config.clone()
        },
    )
    .unwrap();
    g.bench_function("anonymous_64_shards_with_system_probes", |b| {
        b.iter(|| with_sys.update())
    });

    // Named segment with 4 live writers: one lock probe per active slot.
    let path = std::env::temp_dir().join(format!("nodestats-bench-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let opts = SegmentOptions::new()
        .name(path.to_str().unwrap())
        .shards(64);
    let writers: Vec<Stats> = (0..4).map(|_| Stats::open(&opts).unwrap()).collect();
    writers[0].room_started();
    let mut col = Collector::new(writers[0].segment().clone(), config).unwrap();
    g.bench_function("named_64_shards_4_writers", |b| b.iter(|| col.update()));
    g.finish();
    drop(writers);
    let _ = std::fs::remove_file(&path);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = update
}
criterion_main!(benches);
