//! One full `SystemProbe::sample()` on the live machine.

use criterion::{criterion_group, criterion_main, Criterion};
use nodestats::sys::{SystemConfig, SystemProbe};
use std::hint::black_box;

fn sample(c: &mut Criterion) {
    let mut probe = SystemProbe::new(SystemConfig::default());
    probe.sample();
    c.bench_function("system_probe_sample", |b| {
        b.iter(|| black_box(probe.sample()))
    });
}

criterion_group!(benches, sample);
criterion_main!(benches);
