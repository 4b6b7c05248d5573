//! `record_packets` (packets + bytes) on our per-CPU shards vs the peers,
//! at 1..=N threads, in one criterion run.
//!
//! * `nodestats`: `Stats::record_packets`, two relaxed adds on the current
//!   CPU's shard.
//! * `shared_atomic`: two `fetch_add`s on one shared pair of `AtomicU64`s —
//!   LiveKit's Go counters (`go.uber.org/atomic` globals).
//! * `prometheus_vec`: `IntCounterVec::with_label_values(..).inc_by` for
//!   packets and for bytes — LiveKit's per-call label lookup.
//!
//! Multi-threaded cases report wall time per call per thread: all threads
//! run `iters` calls at once, so aggregate throughput = threads / time.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use nodestats::{Direction, Stats};
use prometheus::{IntCounterVec, Opts};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

#[repr(align(128))]
struct Shared {
    packets: AtomicU64,
    bytes: AtomicU64,
}

/// Runs `f(iters)` on `threads` threads started together; returns the
/// longest thread's time.
fn parallel<F: Fn(u64) + Sync>(threads: usize, iters: u64, f: F) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t = Instant::now();
                    f(iters);
                    t.elapsed()
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap_or_default()
    })
}

fn record_packets(c: &mut Criterion) {
    let max_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stats = Stats::anonymous().unwrap();
    let shared = Shared {
        packets: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let labels = ["direction", "transmission", "country"];
    let pkts = IntCounterVec::new(Opts::new("livekit_packet_total", "packets"), &labels).unwrap();
    let bytes = IntCounterVec::new(Opts::new("livekit_packet_bytes", "bytes"), &labels).unwrap();

    let mut g = c.benchmark_group("record_packets");
    for threads in 1..=max_threads {
        g.bench_with_input(BenchmarkId::new("nodestats", threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                parallel(t, iters, |n| {
                    for _ in 0..n {
                        stats.record_packets(
                            Direction::Incoming,
                            black_box(1),
                            black_box(1200),
                            false,
                        );
                    }
                })
            })
        });
        g.bench_with_input(
            BenchmarkId::new("shared_atomic", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(t, iters, |n| {
                        for _ in 0..n {
                            shared.packets.fetch_add(black_box(1), Ordering::Relaxed);
                            shared.bytes.fetch_add(black_box(1200), Ordering::Relaxed);
                        }
                    })
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("prometheus_vec", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    parallel(t, iters, |n| {
                        for _ in 0..n {
                            let l = black_box(["incoming", "initial", ""]);
                            pkts.with_label_values(&l).inc_by(1);
                            bytes.with_label_values(&l).inc_by(1200);
                        }
                    })
                })
            },
        );
    }
    g.finish();
}

/// A gauge up and down (`participant_added` + `participant_removed`):
/// two counter adds on the CPU's shard and two `fetch_add`s on the
/// writer's slot, which the handle finds through its writer (the slot
/// moves when `Stats::maintain` follows the name).
fn gauges(c: &mut Criterion) {
    let stats = Stats::anonymous().unwrap();
    c.bench_function("gauge/participant_added_removed", |b| {
        b.iter(|| {
            stats.participant_added();
            stats.participant_removed();
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = record_packets, gauges
}
criterion_main!(benches);
