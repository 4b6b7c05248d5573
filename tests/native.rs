//! Native (sparse exponential) histograms: declared, recorded per CPU and
//! from thread rows, read back by a reader that attached by name, with
//! zero, negative, NaN, infinite and out-of-span observations handled as
//! Prometheus defines them (SEGMENT.md §8b).

mod common;

use common::ShmName;
use nodestats::{Capacities, Exporter, FamilySpec, Format, Segment, SegmentOptions, Stats, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Prometheus' bucket of `v > 0` at schema 3, by the definition (the
/// smallest `i` with `v ≤ 2^(i/8)`), for values away from boundaries.
fn bucket3(v: f64) -> i32 {
    (v.log2() * 8.0).ceil() as i32
}

fn options(name: &str) -> SegmentOptions {
    SegmentOptions::new().name(name).capacities(Capacities {
        values_per_block: 1 << 16,
        ..Capacities::default()
    })
}

fn delay_spec() -> FamilySpec {
    FamilySpec::histogram("sfu_forward_delay_ms", "Forwarding delay.", &[])
        .labels(&["room"])
        .unit("ms")
        .native(3)
        .native_range(0.01, 1e5)
}

/// The native buckets of series `room` of `sfu_forward_delay_ms` in a
/// snapshot: (count, sum, zero, positive, negative, clamped).
type Read = (u64, f64, u64, BTreeMap<i32, u64>, BTreeMap<i32, u64>, u64);

fn read(segment: &Arc<Segment>, family: &str, room: &str) -> Read {
    let e = Exporter::new(segment.clone(), "n1", "SFU").unwrap();
    let snap = e.snapshot();
    let fam = snap
        .families()
        .find(|f| f.name() == family)
        .expect("family exported");
    let s = fam
        .series()
        .find(|s| s.label_values() == [room.to_string()])
        .expect("series exported");
    match s.value() {
        Value::Histogram {
            count, sum, native, ..
        } => {
            let n = native.expect("native buckets");
            (
                count,
                sum,
                n.zero_count(),
                n.positive().iter().copied().collect(),
                n.negative().iter().copied().collect(),
                n.clamped(),
            )
        }
        v => panic!("not a histogram: {v:?}"),
    }
}

#[test]
fn native_buckets_are_recorded_per_cpu_and_from_thread_rows() {
    let shm = ShmName::new("native");
    let stats = Stats::open(&options(&shm)).unwrap();
    let fam = stats.declare(&delay_spec()).unwrap();
    let h = fam.series(&["a"]).unwrap();
    let mut want_pos: BTreeMap<i32, u64> = BTreeMap::new();
    let mut want_neg: BTreeMap<i32, u64> = BTreeMap::new();
    let values = [0.3, 1.5, 1.5, 7.0, 42.0, 250.0, 1234.5];
    for &v in &values {
        h.observe(v);
        *want_pos.entry(bucket3(v)).or_default() += 1;
    }
    // From a thread row: the classic part in the row, native per CPU.
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let t = stats.thread_writer().unwrap();
            let ts = t.series(fam.id(), &["a"]).unwrap();
            assert!(ts.in_row());
            for _ in 0..3 {
                ts.observe(7.0);
            }
        });
    });
    *want_pos.entry(bucket3(7.0)).or_default() += 3;
    // Zero bucket, negatives, NaN (count only), out of span (clamped).
    h.observe(0.0);
    h.observe(-3.0);
    *want_neg.entry(bucket3(3.0)).or_default() += 1;
    h.observe(f64::NAN);
    h.observe(1e9);
    h.observe(0.001);
    let lo = bucket3(0.01);
    let hi = (1e5f64.log2() * 8.0).ceil() as i32;
    *want_pos.entry(hi).or_default() += 1;
    *want_pos.entry(lo).or_default() += 1;

    // A reader that attached by name and was told nothing.
    let reader = Arc::new(Segment::open(&SegmentOptions::new().name(&*shm)).unwrap());
    let (count, got_sum, zero, pos, neg, clamped) = read(&reader, "sfu_forward_delay_ms", "a");
    assert_eq!(
        count,
        values.len() as u64 + 3 + 5,
        "NaN counts in the count"
    );
    assert!(got_sum.is_nan(), "NaN makes the sum NaN, as in Prometheus");
    assert_eq!(zero, 1);
    assert_eq!(pos, want_pos);
    assert_eq!(neg, want_neg);
    assert_eq!(clamped, 2);

    let text = String::from_utf8(
        Exporter::new(reader, "n1", "SFU")
            .unwrap()
            .write(Format::Text),
    )
    .unwrap();
    assert!(text.contains("nodestats_native_clamped_total{family=\"sfu_forward_delay_ms\",node_id=\"n1\",node_type=\"SFU\"} 2"), "{text}");
    // Text has no native buckets: a native-only histogram shows +Inf.
    assert!(text.contains("sfu_forward_delay_ms_bucket{node_id=\"n1\",node_type=\"SFU\",room=\"a\",le=\"+Inf\"} 15"), "{text}");
}

#[test]
fn classic_bounds_are_kept_beside_native_buckets() {
    let stats = Stats::open(&SegmentOptions::new().capacities(Capacities {
        values_per_block: 1 << 16,
        ..Capacities::default()
    }))
    .unwrap();
    let spec = FamilySpec::histogram("sfu_rtt_ms", "RTT.", &[10.0, 100.0]).native(0);
    let fam = stats.declare(&spec).unwrap();
    let h = fam.series(&[]).unwrap();
    for v in [5.0, 50.0, 50.0, 500.0, 3.0] {
        h.observe(v);
    }
    let e = Exporter::new(stats.segment().clone(), "n", "SFU").unwrap();
    let snap = e.snapshot();
    let s = snap
        .families()
        .find(|f| f.name() == "sfu_rtt_ms")
        .unwrap()
        .series()
        .next()
        .unwrap();
    let Value::Histogram {
        buckets,
        count,
        sum,
        native,
    } = s.value()
    else {
        panic!()
    };
    assert_eq!((buckets, count, sum), (&[2u64, 2, 1][..], 5, 608.0));
    let n = native.unwrap();
    assert_eq!(n.schema(), 0);
    // Schema 0: bucket i is (2^(i-1), 2^i].
    assert_eq!(n.positive(), &[(2, 1), (3, 1), (6, 2), (9, 1)]);
}

#[test]
fn native_shape_is_part_of_the_family() {
    let stats = Stats::anonymous().unwrap();
    let a = stats.declare(&delay_spec()).unwrap();
    // The same range in other words (same buckets) is the same family.
    let same = delay_spec().native_range(0.0100001, 99_999.0);
    assert_eq!(stats.declare(&same).unwrap().id(), a.id());
    for other in [
        delay_spec().native(4),
        delay_spec().native_range(0.001, 1e5),
        delay_spec().native_zero_threshold(0.5),
    ] {
        let e = stats.declare(&other).unwrap_err();
        assert!(e.to_string().contains("native"), "{e}");
    }
    for bad in [
        FamilySpec::histogram("h", "", &[]).native(9),
        FamilySpec::histogram("h", "", &[]).native(-5),
        FamilySpec::histogram("h", "", &[]).native_range(0.0, 1.0),
        FamilySpec::histogram("h", "", &[]).native_range(2.0, 1.0),
        FamilySpec::histogram("h", "", &[])
            .native(8)
            .native_range(1e-9, 1e9),
        FamilySpec::histogram("h", "", &[]).native_zero_threshold(f64::NAN),
        FamilySpec::counter("c", "").native(3),
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        assert!(stats.declare(&bad).is_err());
    }
    // Without `native`, an empty bound list still means the defaults.
    assert_eq!(
        FamilySpec::histogram("h", "", &[])
            .effective_buckets()
            .len(),
        11
    );
    assert!(FamilySpec::histogram("h", "", &[])
        .native(3)
        .effective_buckets()
        .is_empty());
}

#[test]
fn native_series_follow_the_name_after_maintain() {
    use nodestats::SegmentStatus;
    let shm = ShmName::new("native-maintain");
    let stats = Stats::open(&options(&shm)).unwrap();
    let fam = stats.declare(&delay_spec()).unwrap();
    let h = fam.series(&["a"]).unwrap();
    let t = stats.thread_writer().unwrap();
    let ts = t.series(fam.id(), &["a"]).unwrap();
    h.observe(3.0);
    ts.observe(3.0);
    Segment::unlink(&shm).unwrap();
    assert_eq!(stats.maintain().unwrap(), SegmentStatus::Removed);
    // The same handles now record into the new segment at the name.
    h.observe(5.0);
    ts.observe(-5.0);
    let reader = Arc::new(Segment::open(&SegmentOptions::new().name(&*shm)).unwrap());
    let (count, sum, _, pos, neg, _) = read(&reader, "sfu_forward_delay_ms", "a");
    assert_eq!((count, sum), (2, 0.0));
    assert_eq!(pos, BTreeMap::from([(bucket3(5.0), 1)]));
    assert_eq!(neg, BTreeMap::from([(bucket3(5.0), 1)]));
}
