//! One Prometheus scrape (`Exporter::text`) of every family with 1000 live
//! labeled series (800 counters, 200 histograms) on top of the fixed ones;
//! and of 50 families declared at run time with 200 series each (10 000
//! series: 40 counter families, 10 histogram families of 8 bounds) in
//! every format side by side: text, OpenMetrics, protobuf.

#[path = "common/declared.rs"]
mod declared;

use criterion::{criterion_group, criterion_main, Criterion};
use nodestats::{Direction, Family, Stats, TrackKind};
use nodestats::{Exporter, TrackSource};
use std::time::Duration;

fn scrape(c: &mut Criterion) {
    let stats = Stats::anonymous().unwrap();
    for i in 0..800 {
        let country = format!("C{i}");
        stats
            .series(
                Family::PacketLossTotal,
                &["incoming", "CAMERA", "VIDEO", &country],
            )
            .unwrap()
            .inc_by(i);
    }
    for i in 0..200 {
        let country = format!("C{i}");
        stats.record_rtt(
            &country,
            Direction::Outgoing,
            TrackSource::Camera,
            TrackKind::Video,
            10 + i,
        );
    }
    let exporter = Exporter::new(stats.segment().clone(), "ND_bench", "SERVER").unwrap();
    let text = exporter.text();
    assert!(
        text.lines()
            .filter(|l| l.starts_with("livekit_packet_loss_total{"))
            .count()
            >= 800
    );
    let mut g = c.benchmark_group("scrape");
    g.bench_function("text_1000_series", |b| b.iter(|| exporter.text()));

    // 50 declared families x 200 series (benches/common/declared.rs).
    let stats = declared::fifty_families_of_200();
    let exporter = Exporter::new(stats.segment().clone(), "ND_bench", "SERVER").unwrap();
    let text = exporter.text();
    let samples = text
        .lines()
        .filter(|l| l.starts_with("sfu_family_"))
        .count();
    assert_eq!(
        samples,
        40 * 200 + 10 * 200 * (declared::BOUNDS.len() + 3),
        "every series exported"
    );
    let over: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("=\"__overflow__\""))
        .collect();
    assert!(over.is_empty(), "series overflowed: {over:?}");
    println!(
        "scrape: 50 declared families x 200 series, segment {} bytes",
        stats.segment().layout().segment_size
    );
    g.bench_function("text_50_declared_families_x_200", |b| {
        b.iter(|| exporter.text())
    });
    // The protobuf page holds every family of the text page.
    let pb = exporter.write(nodestats::Format::Protobuf);
    let mut rest = &pb[..];
    let mut families = 0;
    while !rest.is_empty() {
        use prost::Message;
        nodestats::__testing::prom_pb::MetricFamily::decode_length_delimited(&mut rest).unwrap();
        families += 1;
    }
    assert_eq!(families, text.matches("# TYPE ").count());
    println!(
        "scrape: text {} bytes, protobuf {} bytes",
        text.len(),
        pb.len()
    );
    g.bench_function("protobuf_50_declared_families_x_200", |b| {
        b.iter(|| exporter.write(nodestats::Format::Protobuf))
    });
    g.bench_function("openmetrics_50_declared_families_x_200", |b| {
        b.iter(|| exporter.write(nodestats::Format::OpenMetrics))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = scrape
}
criterion_main!(benches);
