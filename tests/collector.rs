//! Collector behaviour: configs, rates on an injected clock, resets,
//! gauges, JSON.

use nodestats::{Collector, CollectorConfig, Direction, Error, Stats, Timestamp, TrackKind};
use std::sync::Arc;
use std::time::Duration;

fn at(ms: u64) -> Timestamp {
    Timestamp {
        monotonic: Duration::from_millis(ms),
        unix: Duration::from_secs(1_700_000_000) + Duration::from_millis(ms),
    }
}

fn config(update_ms: u64, intervals: &[u64]) -> CollectorConfig {
    CollectorConfig {
        update_interval: Duration::from_millis(update_ms),
        rate_intervals: intervals.iter().map(|&s| Duration::from_secs(s)).collect(),
        started_at: Some(1_699_999_000),
        system: None,
    }
}

#[test]
fn odd_configs_are_clear_errors_not_panics() {
    let stats = Stats::anonymous().unwrap();
    let mk = |c: CollectorConfig| Collector::new(stats.segment().clone(), c);
    let e = mk(config(0, &[10])).unwrap_err();
    assert!(
        matches!(&e, Error::Config(m) if m.contains("update interval")),
        "{e}"
    );
    let e = mk(config(2000, &[])).unwrap_err();
    assert!(
        matches!(&e, Error::Config(m) if m.contains("rate interval")),
        "{e}"
    );
    let mut c = config(2000, &[10]);
    c.rate_intervals.push(Duration::ZERO);
    assert!(matches!(mk(c), Err(Error::Config(_))));
    let e = mk(config(1, &[86_400 * 7])).unwrap_err();
    assert!(
        matches!(&e, Error::Config(m) if m.contains("history")),
        "{e}"
    );
    // Sub-second intervals are fine (LiveKit truncates them to 0 s).
    let mut c = config(100, &[]);
    c.rate_intervals = vec![Duration::from_millis(500)];
    assert!(mk(c).is_ok());
}

#[test]
fn rates_follow_livekit_windows_on_the_monotonic_clock() {
    let stats = Stats::anonymous().unwrap();
    let mut c = Collector::new(stats.segment().clone(), config(2000, &[10, 4])).unwrap();
    // 1000 packets of 100 bytes every 2 s.
    let mut last = None;
    for i in 0..=7u64 {
        if i > 0 {
            stats.record_packets(Direction::Incoming, 1000, 100_000, false);
        }
        last = Some(c.update_at(at(i * 2000)));
    }
    let ns = last.unwrap();
    assert_eq!(ns.packets_in, 7000);
    assert_eq!(ns.started_at, 1_699_999_000);
    assert_eq!(ns.updated_at, 1_700_000_014);
    assert_eq!(ns.rates.len(), 2, "one rate per interval, in config order");
    let (r10, r4) = (&ns.rates[0], &ns.rates[1]);
    assert_eq!(
        (r10.interval_seconds, r10.window_seconds, r10.duration),
        (10.0, 10.0, 10)
    );
    assert!(r10.complete);
    assert_eq!(r10.packets_in, 500.0);
    assert_eq!(r10.bytes_in, 50_000.0);
    assert_eq!(
        (r10.started_at, r10.ended_at),
        (1_700_000_004, 1_700_000_014)
    );
    assert_eq!((r4.window_seconds, r4.packets_in), (4.0, 500.0));
}

#[test]
fn early_rates_are_partial_and_say_so() {
    let stats = Stats::anonymous().unwrap();
    let mut c = Collector::new(stats.segment().clone(), config(2000, &[10])).unwrap();
    assert!(
        c.update_at(at(0)).rates.is_empty(),
        "one sample spans no time"
    );
    stats.record_packets(Direction::Outgoing, 300, 3000, false);
    let ns = c.update_at(at(3000));
    assert_eq!(ns.rates.len(), 1);
    let r = &ns.rates[0];
    assert!(!r.complete);
    assert_eq!((r.window_seconds, r.packets_out), (3.0, 100.0));
}

#[test]
fn history_is_bounded() {
    let stats = Stats::anonymous().unwrap();
    let mut c = Collector::new(stats.segment().clone(), config(1000, &[5])).unwrap();
    for i in 0..1000 {
        c.update_at(at(i * 1000));
    }
    assert_eq!(c.history_len(), 12, "2 × ceil(5 s / 1 s) + 2");
}

#[test]
fn a_new_segment_is_a_reset_not_a_wrapped_rate() {
    let a = Stats::anonymous().unwrap();
    let b = Stats::anonymous().unwrap();
    a.record_packets(Direction::Incoming, 1_000_000, 1, false);
    let mut c = Collector::new(a.segment().clone(), config(1000, &[2])).unwrap();
    c.update_at(at(0));
    a.record_packets(Direction::Incoming, 1000, 1, false);
    c.update_at(at(1000));
    // The server restarted: a fresh segment with fewer packets.
    c.set_segment(b.segment().clone());
    b.record_packets(Direction::Incoming, 500, 1, false);
    let ns = c.update_at(at(2000));
    let r = &ns.rates[0];
    assert_eq!(r.packets_in, (1000.0 + 500.0) / 2.0);
    assert_eq!(r.resets, 1);
    assert_eq!(c.anomalies().resets, 1);
}

#[test]
fn gauges_track_lifecycles_and_never_go_negative() {
    let stats = Stats::anonymous().unwrap();
    let mut c = Collector::new(stats.segment().clone(), config(1000, &[10])).unwrap();
    stats.room_started();
    stats.room_started();
    stats.participant_added();
    stats.track_published(TrackKind::Audio);
    stats.track_published(TrackKind::Video);
    stats.track_subscribe_success(TrackKind::Video);
    let ns = c.update_at(at(0));
    assert_eq!(
        (
            ns.num_rooms,
            ns.num_clients,
            ns.num_tracks_in,
            ns.num_tracks_out
        ),
        (2, 1, 2, 1)
    );
    assert_eq!(ns.num_track_subscribe_success, 1);
    // Unbalanced calls (LiveKit #2333/#2649) clamp at zero.
    for _ in 0..3 {
        stats.room_ended();
        stats.participant_removed();
        stats.track_unsubscribed(TrackKind::Video);
    }
    let ns = c.update_at(at(1000));
    assert_eq!((ns.num_rooms, ns.num_clients, ns.num_tracks_out), (0, 0, 0));
    assert_eq!(ns.num_tracks_in, 2);
}

#[test]
fn every_nodestats_counter_is_fed() {
    let stats = Stats::anonymous().unwrap();
    let mut c = Collector::new(stats.segment().clone(), config(1000, &[10])).unwrap();
    stats.record_packets(Direction::Incoming, 10, 1000, false);
    stats.record_packets(Direction::Incoming, 1, 100, true);
    stats.record_packets(Direction::Outgoing, 20, 2000, false);
    stats.record_packets(Direction::Outgoing, 2, 200, true);
    stats.record_rtcp(Direction::Incoming, 3, 1, 1);
    stats.record_rtcp(Direction::Outgoing, 4, 0, 0);
    stats.participant_signal_connected(5);
    stats.participant_rtc_init(6);
    stats.participant_rtc_connected(7);
    stats.participant_rtc_active(8, false);
    stats.participant_rtc_active(1, true);
    stats.participant_rtc_canceled(9, false);
    stats.track_publish_attempt(TrackKind::Audio);
    stats.track_publish_attempt(TrackKind::Video);
    stats.track_publish_success(TrackKind::Data);
    stats.track_publish_cancels(TrackKind::Video, 4);
    stats.track_subscribe_attempt();
    stats.track_subscribe_cancels(2);
    stats.track_subscribe_failure(true);
    stats.track_subscribe_failure(false);
    stats.forward_latency(1234);
    stats.forward_jitter(56);
    let ns = c.update_at(at(0));
    assert_eq!((ns.packets_in, ns.bytes_in), (11, 1100));
    assert_eq!((ns.packets_out, ns.bytes_out), (22, 2200));
    assert_eq!(
        (ns.retransmit_packets_out, ns.retransmit_bytes_out),
        (2, 200)
    );
    assert_eq!(ns.nack_total, 7, "NACKs of both directions");
    assert_eq!(ns.participant_signal_connected, 5);
    assert_eq!(ns.participant_rtc_init, 6);
    assert_eq!(ns.participant_rtc_connected, 7);
    assert_eq!(ns.participant_rtc_active, 9);
    assert_eq!(ns.participant_rtc_canceled, 9);
    assert_eq!(ns.num_track_publish_attempts, 2);
    assert_eq!(ns.num_track_publish_success, 1);
    assert_eq!(ns.num_track_publish_cancels, 4);
    assert_eq!(ns.num_track_subscribe_attempts, 1);
    assert_eq!(
        ns.num_track_subscribe_cancels, 3,
        "2 cancels + 1 user-error failure"
    );
    assert_eq!((ns.forward_latency, ns.forward_jitter), (1234, 56));
    assert_eq!(ns.live_writers, 1);
}

#[test]
fn json_uses_protobuf_field_names() {
    let stats = Stats::anonymous().unwrap();
    let mut c = Collector::new(stats.segment().clone(), config(1000, &[1])).unwrap();
    stats.record_packets(Direction::Outgoing, 2, 20, false);
    c.update_at(at(0));
    let ns = c.update_at(at(1000));
    let v: serde_json::Value = serde_json::to_value(&ns).unwrap();
    for key in [
        "started_at",
        "updated_at",
        "num_rooms",
        "num_clients",
        "num_tracks_in",
        "num_tracks_out",
        "packets_in",
        "bytes_out",
        "nack_total",
        "retransmit_bytes_out",
        "num_track_publish_attempts",
        "participant_rtc_active",
        "load_avg_last1min",
        "sys_packets_dropped",
        "forward_latency",
        "rates",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["packets_out"], 2);
    assert_eq!(v["rates"][0]["packets_out"], 0.0);
    assert_eq!(v["rates"][0]["duration"], 1);
    let back: nodestats::NodeStats = serde_json::from_value(v).unwrap();
    assert_eq!(back, ns);
}

#[test]
fn a_read_only_collector_in_the_same_process_sees_the_writer() {
    let path = std::env::temp_dir().join(format!("nodestats-coll-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let name = path.to_str().unwrap().to_string();
    let stats = Stats::open(&nodestats::SegmentOptions::new().name(name.clone())).unwrap();
    stats.room_started();
    stats.record_packets(Direction::Incoming, 4, 40, false);
    let mut c = Collector::attach(&name, config(1000, &[10])).unwrap();
    let ns = c.update_at(at(0));
    assert_eq!((ns.num_rooms, ns.packets_in, ns.live_writers), (1, 4, 1));
    drop(stats);
    let ns = c.update_at(at(1000));
    assert_eq!(
        (ns.num_rooms, ns.packets_in, ns.live_writers),
        (0, 4, 0),
        "counters stay, gauges go"
    );
    let _ = Arc::clone(c.segment());
    nodestats::Segment::unlink(&name).unwrap();
}

/// A failed update because the file shrank is reported as a shrunk
/// segment by `segment_status`, however the shrink and the update
/// interleave: the exporter's health reads the status first. The file is
/// truncated while updates run back to back, so the truncation often lands
/// inside an update (after its segment check), not only between two.
#[test]
fn a_shrink_during_an_update_is_a_shrunk_status() {
    use nodestats::{SegmentOptions, SegmentStatus};
    let dir = std::env::temp_dir().join(format!("nodestats-shrink-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{}/seg", dir.display());
    let no_system = CollectorConfig {
        system: None,
        ..CollectorConfig::default()
    };
    for round in 0..20u64 {
        let _ = std::fs::remove_file(&name);
        let w = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
        w.record_packets(Direction::Incoming, 1, 100, false);
        let mut c = Collector::attach(&name, no_system.clone()).unwrap();
        let path = name.clone();
        let cutter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_micros(200 + 97 * round));
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(4096)
                .unwrap();
        });
        let err = loop {
            if let Err(e) = c.try_update() {
                break e;
            }
        };
        cutter.join().unwrap();
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err:?}");
        assert!(
            matches!(c.segment_status(), SegmentStatus::Shrunk { .. }),
            "round {round}: the update failed on a shrunk file, the status says {:?}",
            c.segment_status()
        );
        drop(w);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
