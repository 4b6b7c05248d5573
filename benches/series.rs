//! Recording through a labeled series handle vs the fixed counters, in
//! both write modes: one counter (`SeriesHandle::inc_by` vs a fixed
//! single-counter call) and a histogram observation; and the thread
//! writer's form of the same series (`ThreadSeries`, plain adds to series
//! slots of the thread's row). Beside each, the same call on a series of a
//! family declared at run time (`Stats::declare`), which must cost the
//! same; and declaring a family and opening a series of it (slow path).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use nodestats::WriteMode;
use nodestats::{Family, FamilySpec, SegmentOptions, Stats};
use std::hint::black_box;
use std::time::{Duration, Instant};

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
        // The same shapes as declared families: a 2-label counter and a
        // 10-bound histogram.
        let counter = stats
            .declare(&FamilySpec::counter("sfu_nack_total", "").labels(&["direction", "room"]))
            .unwrap();
        let bounds = [
            50.0, 100.0, 150.0, 200.0, 250.0, 500.0, 750.0, 1000.0, 5000.0, 10000.0,
        ];
        let histogram = stats
            .declare(&FamilySpec::histogram("sfu_rtt_ms", "", &bounds).labels(&["room"]))
            .unwrap();
        let d_handle = counter.series(&["incoming", "DE"]).unwrap();
        let d_hist = histogram.series(&["DE"]).unwrap();
        // Which words share a 64-byte line decides what an observation
        // costs in atomic mode (a bucket add and the sum's CAS, one line or
        // two): say where each histogram's buckets start.
        let line = |h: &nodestats::SeriesHandle| nodestats::__testing::series_base(h) % 8;
        println!(
            "series: {name}: histogram words start at word {} (LiveKit's) and {} (declared) of a line",
            line(&hist),
            line(&d_hist)
        );
        g.bench_function(BenchmarkId::new("declared_series_handle", name), |b| {
            b.iter(|| d_handle.inc_by(black_box(1)))
        });
        g.bench_function(BenchmarkId::new("declared_histogram_observe", name), |b| {
            b.iter(|| d_hist.observe(black_box(120.0)))
        });
        let dt_handle = thread.series(&counter, &["incoming", "DE"]).unwrap();
        let dt_hist = thread.series(&histogram, &["DE"]).unwrap();
        assert!(dt_handle.in_row() && dt_hist.in_row());
        g.bench_function(BenchmarkId::new("declared_thread_series", name), |b| {
            b.iter(|| dt_handle.inc_by(black_box(1)))
        });
        g.bench_function(
            BenchmarkId::new("declared_thread_histogram_observe", name),
            |b| b.iter(|| dt_hist.observe(black_box(120.0))),
        );
    }
    g.finish();

    // Native histograms beside classic ones of the same family shape, in
    // both write modes and from a thread row, over 64 values spread across
    // 1 … 5000 ms (a constant would let the branch predictor learn the
    // bucket): classic (10 bounds), native only (schema 3, the default
    // span), and both. The rows have room for the native series (1024
    // slots), so the thread forms record wholly in the row.
    let vals: Vec<f64> = (0..64)
        .map(|i| 1.0 + (i * i * 37 % 4999) as f64 + 0.25)
        .collect();
    let mut g = c.benchmark_group("native_observe");
    for (name, mode) in &modes {
        let stats = Stats::open(
            &SegmentOptions::new()
                .write_mode(*mode)
                .thread_row_series_slots(1024)
                .capacities(nodestats::Capacities {
                    values_per_block: 1 << 15,
                    ..Default::default()
                }),
        )
        .unwrap();
        let bounds = [
            50.0, 100.0, 150.0, 200.0, 250.0, 500.0, 750.0, 1000.0, 5000.0, 10000.0,
        ];
        let specs = [
            ("classic", FamilySpec::histogram("sfu_a_ms", "", &bounds)),
            (
                "native",
                FamilySpec::histogram("sfu_b_ms", "", &[]).native(3),
            ),
            (
                "both",
                FamilySpec::histogram("sfu_c_ms", "", &bounds).native(3),
            ),
        ];
        let thread = stats.thread_writer().unwrap();
        for (what, spec) in &specs {
            let fam = stats.declare(spec).unwrap();
            let h = fam.series(&[]).unwrap();
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new(format!("{what}_observe"), name), |b| {
                b.iter(|| {
                    i = i.wrapping_add(1);
                    h.observe(black_box(vals[i & 63]))
                })
            });
            let before = nodestats::__testing::row_bindings(&thread);
            let t = thread.series(&fam, &[]).unwrap();
            let bound = nodestats::__testing::row_bindings(&thread) - before;
            assert!(
                t.in_row() && bound >= 12,
                "{what}: {bound} words in the row"
            );
            g.bench_function(
                BenchmarkId::new(format!("{what}_thread_observe"), name),
                |b| {
                    b.iter(|| {
                        i = i.wrapping_add(1);
                        t.observe(black_box(vals[i & 63]))
                    })
                },
            );
        }
    }
    g.finish();

    // Finding the native bucket: from the value's bits and a table (what
    // the writer does) vs a float log2 (what it does not do).
    let mut g = c.benchmark_group("native_index");
    for schema in [0i8, 3, 8] {
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("bits", schema), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                nodestats::__testing::native_index(black_box(schema), black_box(vals[i & 63]))
            })
        });
        g.bench_function(BenchmarkId::new("log2", schema), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let v: f64 = black_box(vals[i & 63]);
                (v.log2() * f64::from(1u32 << schema.max(0))).ceil() as i32 >> (-schema).max(0)
            })
        });
    }
    g.finish();

    // The slow path, on a directory at most half full: declaring a new
    // family (fresh segments, untimed, every 1000 declarations), the same
    // declaration again, and opening a new series of a family (a fresh
    // family every 1000 series, so none reaches its cap).
    let mut g = c.benchmark_group("declare");
    let caps = nodestats::Capacities {
        families: 2048,
        series: 65536,
        strings: 65536,
        values_per_block: 1 << 18,
    };
    let spec = |i: u64| {
        FamilySpec::counter(&format!("sfu_bench_{i}_total"), "A family.").labels(&["room"])
    };
    g.bench_function("new_family", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let stats = Stats::open(&SegmentOptions::new().capacities(caps)).unwrap();
                let specs: Vec<FamilySpec> = (0..(iters - done).min(1000)).map(spec).collect();
                let t = Instant::now();
                for sp in &specs {
                    black_box(stats.declare(sp).unwrap());
                }
                total += t.elapsed();
                done += specs.len() as u64;
            }
            total
        })
    });
    let stats = Stats::open(&SegmentOptions::new().capacities(caps)).unwrap();
    let again = spec(0);
    stats.declare(&again).unwrap();
    g.bench_function("same_family_again", |b| {
        b.iter(|| stats.declare(black_box(&again)).unwrap())
    });
    g.bench_function("open_new_series", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let stats = Stats::open(&SegmentOptions::new().capacities(caps)).unwrap();
                let fam = stats.declare(&spec(1)).unwrap();
                let rooms: Vec<String> = (0..(iters - done).min(1000))
                    .map(|r| format!("room-{r}"))
                    .collect();
                let t = Instant::now();
                for room in &rooms {
                    black_box(fam.series(&[room]).unwrap());
                }
                total += t.elapsed();
                done += rooms.len() as u64;
            }
            total
        })
    });
    // A family at its cap: every new label value goes to the overflow
    // series without being interned or remembered.
    let capped = stats
        .declare(
            &FamilySpec::counter("sfu_capped_total", "")
                .labels(&["room"])
                .max_series(10),
        )
        .unwrap();
    for r in 0..10 {
        capped.series(&[&format!("r{r}")]).unwrap().inc_by(1);
    }
    let mut next = 0u64;
    g.bench_function("open_series_past_the_cap", |b| {
        b.iter_custom(|iters| {
            let rooms: Vec<String> = (0..iters)
                .map(|_| {
                    next += 1;
                    format!("room-{next}")
                })
                .collect();
            let t = Instant::now();
            for room in &rooms {
                black_box(capped.series(&[room]).unwrap());
            }
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = series
}
criterion_main!(benches);
