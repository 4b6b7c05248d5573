//! The CPU one OTLP push costs `nodestats serve` (the target: ≤ 20 ms for
//! 10 000 series): a snapshot of 50 declared families × 200 series (40
//! counter families, 10 histogram families of 8 bounds) encoded as an
//! `ExportMetricsServiceRequest`, plain and gzipped, and the encoding
//! alone. The encoder is serve's own module, compiled in here.
//!
//! Measured in the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall
//! time: the target is CPU per interval, and a shared machine's wall clock
//! counts the time other processes ran.

#[allow(dead_code, unused_imports)]
#[path = "../src/otlp/encode.rs"]
mod encode;

#[path = "../../benches/common/declared.rs"]
mod declared;

use criterion::{criterion_group, criterion_main, Criterion};
use nodestats::Exporter;
use std::time::Duration;

fn otlp(c: &mut Criterion) {
    let stats = declared::fifty_families_of_200();
    let exporter = Exporter::new(stats.segment().clone(), "ND_bench", "SERVER").unwrap();
    let resource = vec![
        ("service.name".to_string(), "nodestats".to_string()),
        ("service.instance.id".to_string(), "ND_bench".to_string()),
    ];
    let now = 1_700_000_000_000_000_000;
    let snapshot = exporter.snapshot();
    let request = encode::request(&snapshot, &resource, now);
    let points: usize = request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .filter(|m| m.name.starts_with("sfu_family_"))
        .map(|m| match m.data.as_ref().unwrap() {
            opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s) => s.data_points.len(),
            opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(h) => {
                h.data_points.len()
            }
            _ => 0,
        })
        .sum();
    assert_eq!(points, 10_000, "every series pushed");
    println!(
        "otlp: 10 000 series, {} bytes, {} bytes gzipped",
        encode::body(&snapshot, &resource, now, false).len(),
        encode::body(&snapshot, &resource, now, true).len()
    );

    let mut g = c.benchmark_group("otlp_cpu");
    g.bench_function("push_body_10000_series", |b| {
        b.iter_custom(|n| {
            cpu(n, || {
                encode::body(&exporter.snapshot(), &resource, now, false)
            })
        })
    });
    g.bench_function("push_body_10000_series_gzip", |b| {
        b.iter_custom(|n| {
            cpu(n, || {
                encode::body(&exporter.snapshot(), &resource, now, true)
            })
        })
    });
    g.bench_function("snapshot_only_10000_series", |b| {
        b.iter_custom(|n| cpu(n, || exporter.snapshot()))
    });
    g.bench_function("encode_only_10000_series", |b| {
        b.iter_custom(|n| cpu(n, || encode::body(&snapshot, &resource, now, false)))
    });
    g.finish();
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The CPU time `n` runs of `f` take on this thread.
fn cpu<T>(n: u64, mut f: impl FnMut() -> T) -> Duration {
    let start = thread_cpu();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    thread_cpu() - start
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = otlp
}
criterion_main!(benches);
