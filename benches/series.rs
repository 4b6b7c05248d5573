//! Recording through a labeled series handle vs the fixed counters, in
//! both write modes: one counter (`SeriesHandle::inc_by` vs a fixed
//! single-counter call) and a histogram observation; and the thread
//! writer's form of the same series (`ThreadSeries`, plain adds to series
//! slots of the thread's row).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use nodestats::WriteMode;
use nodestats::{Family, SegmentOptions, Stats};
use std::hint::black_box;
use std::time::Duration;

fn series(c: &mut Criterion) {
    let mut modes = vec![("atomic", WriteMode::Atomic)];
    if nodestats::__testing::rseq_supported() {
        modes.insert(0, ("rseq", WriteMode::Rseq));
    }
    let mut g = c.benchmark_group("one_counter");
    for (name, mode) in &modes {
        let stats = Stats::open(&SegmentOptions::new().write_mode(*mode)).unwrap();
        let handle = stats
            .series(Family::NackTotal, &["incoming", "DE"])
            .unwrap();
        let hist = stats
            .series(Family::RttMs, &["outgoing", "CAMERA", "VIDEO", "DE"])
            .unwrap();
        g.bench_function(BenchmarkId::new("fixed", name), |b| {
            b.iter(|| stats.participant_signal_connected(black_box(1)))
        });
        g.bench_function(BenchmarkId::new("series_handle", name), |b| {
            b.iter(|| handle.inc_by(black_box(1)))
        });
        g.bench_function(BenchmarkId::new("histogram_observe", name), |b| {
            b.iter(|| hist.observe(black_box(120.0)))
        });
        let thread = stats.thread_writer().unwrap();
        let t_handle = thread
            .series(Family::NackTotal, &["incoming", "DE"])
            .unwrap();
        let t_hist = thread
            .series(Family::RttMs, &["outgoing", "CAMERA", "VIDEO", "DE"])
            .unwrap();
        assert!(t_handle.in_row() && t_hist.in_row());
        g.bench_function(BenchmarkId::new("thread_series", name), |b| {
            b.iter(|| t_handle.inc_by(black_box(1)))
        });
        g.bench_function(BenchmarkId::new("thread_histogram_observe", name), |b| {
            b.iter(|| t_hist.observe(black_box(120.0)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = series
}
criterion_main!(benches);
