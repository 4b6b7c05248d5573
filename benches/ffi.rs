//! `record_packets` through the C ABI vs the Rust call, one thread, in one
//! criterion group so the difference comes from one run.
//!
//! * `rust`: `Stats::record_packets`, inlined into the loop.
//! * `c_abi`: `nodestats_record_packets` through an `extern "C"` function
//!   pointer hidden from the optimiser: what a C caller pays (call, NULL
//!   check, enum check, dereference, the same two relaxed adds).

use criterion::{criterion_group, criterion_main, Criterion};
use nodestats::__testing::ffi::{
    nodestats_close, nodestats_direction, nodestats_open, nodestats_record_packets,
    nodestats_status, nodestats_t, DirectionArg,
};
use nodestats::{Direction, Stats};
use std::hint::black_box;
use std::ptr;
use std::time::Duration;

type RecordPackets = unsafe extern "C" fn(*mut nodestats_t, DirectionArg, u64, u64, bool);

fn record_packets_ffi(c: &mut Criterion) {
    let stats = Stats::anonymous().unwrap();
    let mut handle = ptr::null_mut();
    // SAFETY: NULL name (anonymous segment); `handle` is writable.
    let st = unsafe { nodestats_open(ptr::null(), &mut handle) };
    assert_eq!(st, nodestats_status::Ok);
    let record: RecordPackets = black_box(nodestats_record_packets);
    let incoming = DirectionArg(nodestats_direction::Incoming as u32);

    let mut g = c.benchmark_group("record_packets_ffi");
    g.bench_function("rust", |b| {
        b.iter(|| stats.record_packets(Direction::Incoming, black_box(1), black_box(1200), false))
    });
    g.bench_function("c_abi", |b| {
        b.iter(|| {
            // SAFETY: `handle` is live until nodestats_close below.
            unsafe { record(handle, incoming, black_box(1), black_box(1200), false) }
        })
    });
    g.finish();
    // SAFETY: live, and not used afterwards.
    unsafe { nodestats_close(handle) };
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = record_packets_ffi
}
criterion_main!(benches);
