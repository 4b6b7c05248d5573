//! The exporter against the reference: every LiveKit family with its name,
//! type, label names and buckets; exact values; registration in a
//! `prometheus::Registry`; a read-only exporter in front of a writer.

use nodestats::{Collector, ConnectionQuality, Exporter, TrackSource};
use nodestats::{Direction, Family, SegmentOptions, Stats, TrackKind};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

struct RefFamily {
    kind: String,
    labels: BTreeSet<String>,
    buckets: Vec<f64>,
}

/// Parses tests/data/livekit-families.tsv (a copy of the reference table).
fn reference() -> BTreeMap<String, RefFamily> {
    let text = include_str!("data/livekit-families.tsv");
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        // Drop parenthesised notes such as "(out, dropped)" before splitting.
        let mut labels_col = String::new();
        let mut depth = 0;
        for ch in cols[2].chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => labels_col.push(ch),
                _ => {}
            }
        }
        let labels = labels_col
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let b = cols.get(3).copied().unwrap_or("");
        let list = b
            .split(" = ")
            .last()
            .unwrap_or("")
            .split(" (")
            .next()
            .unwrap_or("");
        let buckets = list
            .split(',')
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .collect();
        out.insert(
            cols[0].to_string(),
            RefFamily {
                kind: cols[1].to_string(),
                labels,
                buckets,
            },
        );
    }
    out
}

/// Records into every family at least once.
fn record_everything(s: &Stats) {
    let (c, d, src, k) = (
        "US",
        Direction::Incoming,
        TrackSource::Camera,
        TrackKind::Video,
    );
    let ms = Duration::from_millis;
    s.record_signal_request_success();
    s.record_service_operation_error("offer", "create");
    s.record_twirp_request_status("RoomService", "ListRooms", "200", "");
    s.record_twirp_request_latency("RoomService", "ListRooms", ms(7), "200");
    s.record_packets(d, 1, 100, false);
    s.record_rtcp(d, 1, 1, 1);
    s.record_packet_loss(c, d, src, k, 5, 100);
    s.record_packet_out_of_order(c, d, src, k, 2, 100);
    s.record_jitter(c, d, src, k, 2000);
    s.record_rtt(c, d, src, k, 120);
    s.participant_signal_connected(1);
    s.connection_added(d);
    s.forward_latency(1000);
    s.forward_jitter(100);
    s.record_forward_latency_sample(80_000);
    s.room_started();
    s.room_ended_after(Duration::from_secs(42));
    s.participant_added();
    s.track_published(TrackKind::Audio);
    s.track_subscribe_success(TrackKind::Audio);
    s.track_publish_attempt(TrackKind::Video);
    s.track_subscribe_attempt();
    s.record_session_join_latency(16, ms(30));
    s.record_session_start_time(16, true, ms(300));
    s.record_session_duration(16, ms(60_000));
    s.record_publish_time(c, src, k, ms(400), "JS", "STANDARD");
    s.record_peer_connection_state("PUBLISHER", "connected");
    s.record_quality(ConnectionQuality::Good, 4.1);
    s.record_data_packet_stream("bytes", "image/png", 3, Some(5000));
    s.add_ref("test", 2);
    s.webhook_dispatch_success();
    s.webhook_queue_length(2);
    s.psrpc_request_time("client", "rpc", "S", "M", ms(12));
    s.psrpc_stream_send_time("server", "S", "M", ms(3));
    s.psrpc_stream_received("server", "S", "M");
    s.psrpc_stream_opened("server", "S", "M");
    s.psrpc_error("client", "rpc", "S", "M", "timeout");
    s.psrpc_bytes("client", "rpc", "S", "M", "rx", 64);
    s.psrpc_request_received("S", "M");
    s.psrpc_request_expired("S", "M");
    s.psrpc_claim_wait_time("S", "M", "claimed", ms(2));
}

/// name -> (type, label names, le values) from Prometheus text.
fn parse(text: &str) -> BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            let (n, t) = (p.next().unwrap(), p.next().unwrap());
            out.insert(
                n.to_string(),
                (t.to_string(), BTreeSet::new(), BTreeSet::new()),
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, labels) = match line.split_once('{') {
            Some((n, rest)) => (n, rest.split_once('}').unwrap().0),
            None => (line.split(' ').next().unwrap(), ""),
        };
        let fam = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| out.contains_key(*f)))
            .unwrap_or(name);
        let entry = out
            .get_mut(fam)
            .unwrap_or_else(|| panic!("series {name} before its TYPE"));
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").unwrap();
            match k {
                "le" => {
                    entry.2.insert(v.trim_end_matches('"').to_string());
                }
                "node_id" | "node_type" => {}
                _ => {
                    entry.1.insert(k.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn every_livekit_family_matches_the_reference() {
    let stats = Stats::anonymous().unwrap();
    record_everything(&stats);
    let exporter = Exporter::new(stats.segment().clone(), "ND_test", "SERVER").unwrap();
    // livekit_node_packet_total comes from the collector's system reading.
    let mut collector = Collector::new(stats.segment().clone(), Default::default()).unwrap();
    exporter
        .state()
        .publish(&collector.update(), collector.anomalies());
    let text = exporter.text();
    let got = parse(&text);
    let want = reference();
    assert_eq!(want.len(), 49);
    for (name, r) in &want {
        let (kind, labels, les) = got
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the scrape"));
        assert_eq!(kind, &r.kind, "{name} type");
        assert_eq!(labels, &r.labels, "{name} labels");
        if r.kind == "histogram" {
            let mut le: Vec<f64> = les
                .iter()
                .filter(|v| *v != "+Inf")
                .map(|v| v.parse().unwrap())
                .collect();
            le.sort_by(|a, b| a.partial_cmp(b).unwrap());
            assert_eq!(le.len(), r.buckets.len(), "{name} bucket count");
            for (a, b) in le.iter().zip(&r.buckets) {
                assert!(
                    (a - b).abs() <= 0.01 * b.abs().max(1.0) / 100.0 + 0.006,
                    "{name}: {a} vs {b}"
                );
            }
            assert!(les.contains("+Inf"));
        }
    }
    // The const labels are on every LiveKit series.
    for line in text.lines().filter(|l| l.starts_with("livekit_")) {
        assert!(
            line.contains("node_id=\"ND_test\"") && line.contains("node_type=\"SERVER\""),
            "{line}"
        );
    }
    // And the table the code uses agrees with the reference too.
    for f in Family::ALL {
        let d = f.def();
        let r = &want[d.name];
        assert_eq!(
            d.labels
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>(),
            r.labels
        );
    }
}

#[test]
fn values_are_exact() {
    let stats = Stats::anonymous().unwrap();
    stats.record_packets(Direction::Incoming, 7, 700, false);
    stats.record_packets_country("DE", Direction::Incoming, 3, 300, false);
    for v in [10.0, 60.0, 60.0, 999.0, 20_000.0] {
        stats.record_rtt(
            "DE",
            Direction::Outgoing,
            TrackSource::Microphone,
            TrackKind::Audio,
            v as u32,
        );
    }
    stats.room_started();
    stats.room_started();
    stats.room_ended_after(Duration::from_secs(7));
    let text = Exporter::new(stats.segment().clone(), "n", "SERVER")
        .unwrap()
        .text();
    let has = |s: &str| assert!(text.lines().any(|l| l == s), "missing line {s}\n{text}");
    has(
        r#"livekit_packet_total{country="",direction="incoming",node_id="n",node_type="SERVER",transmission="initial"} 7"#,
    );
    has(
        r#"livekit_packet_total{country="DE",direction="incoming",node_id="n",node_type="SERVER",transmission="initial"} 3"#,
    );
    has(
        r#"livekit_packet_bytes{country="DE",direction="incoming",node_id="n",node_type="SERVER",transmission="initial"} 300"#,
    );
    let rtt = r#"country="DE",direction="outgoing",node_id="n",node_type="SERVER",source="MICROPHONE",type="AUDIO""#;
    has(&format!("livekit_rtt_ms_bucket{{{rtt},le=\"50\"}} 1"));
    has(&format!("livekit_rtt_ms_bucket{{{rtt},le=\"100\"}} 3"));
    has(&format!("livekit_rtt_ms_bucket{{{rtt},le=\"1000\"}} 4"));
    has(&format!("livekit_rtt_ms_bucket{{{rtt},le=\"+Inf\"}} 5"));
    has(&format!("livekit_rtt_ms_sum{{{rtt}}} 21129"));
    has(&format!("livekit_rtt_ms_count{{{rtt}}} 5"));
    has(r#"livekit_room_total{node_id="n",node_type="SERVER"} 1"#);
    // NodeStats counts the country series too.
    let ns = Collector::new(stats.segment().clone(), Default::default())
        .unwrap()
        .update();
    assert_eq!((ns.packets_in, ns.bytes_in), (10, 1000));
}

#[test]
fn registers_in_a_user_registry() {
    let stats = Stats::anonymous().unwrap();
    stats.record_rtcp(Direction::Outgoing, 2, 0, 0);
    let exporter = Exporter::new(stats.segment().clone(), "n", "SERVER").unwrap();
    let registry = prometheus::Registry::new();
    registry.register(Box::new(exporter)).unwrap();
    let families = registry.gather();
    let nack = families
        .iter()
        .find(|f| f.name() == "livekit_nack_total")
        .unwrap();
    assert_eq!(nack.get_metric().len(), 2);
    let own = families
        .iter()
        .find(|f| f.name() == "nodestats_segment_shards")
        .unwrap();
    assert!(own.get_metric()[0].get_gauge().get_value() >= 1.0);
}

#[test]
fn a_read_only_exporter_sees_another_handles_series() {
    let path = std::env::temp_dir().join(format!("nodestats-prom-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let name = path.to_str().unwrap().to_string();
    let writer = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    let h = writer
        .series(
            Family::PsrpcErrorTotal,
            &["client", "rpc", "S", "M", "timeout"],
        )
        .unwrap();
    h.inc_by(41);
    writer.psrpc_error("client", "rpc", "S", "M", "timeout");
    let ro = nodestats::Segment::attach(&name, nodestats::Access::ReadOnly).unwrap();
    let text = Exporter::new(std::sync::Arc::new(ro), "n", "SERVER")
        .unwrap()
        .text();
    assert!(
        text.lines()
            .any(|l| l.starts_with("livekit_psrpc_error_total{")
                && l.contains("error_code=\"timeout\"")
                && l.ends_with(" 42")),
        "{text}"
    );
    nodestats::Segment::unlink(&name).unwrap();
}

#[test]
fn direct_text_equals_the_prometheus_crates_encoder() {
    let stats = Stats::anonymous().unwrap();
    record_everything(&stats);
    stats.record_twirp_request_status("Svc", "Method", "5xx", "quote\"back\\slash\nnewline");
    let exporter = Exporter::new(stats.segment().clone(), "ND_x", "SERVER").unwrap();
    let mut families = exporter.families();
    families.retain(|f| !f.get_metric().is_empty());
    let mut want = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&families, &mut want)
        .unwrap();
    let got = exporter.text();
    assert_eq!(got.lines().count(), want.lines().count());
    // The prometheus crate prints `le` with Rust's `Display` (`1000000`);
    // the exporter prints it as client_golang does (`1e+06`). The bound
    // itself must be the same f64.
    let split_le = |l: &str| -> (String, Option<f64>) {
        match l.split_once(",le=\"") {
            Some((head, rest)) => {
                let (le, tail) = rest.split_once('"').unwrap();
                let v = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (format!("{head}{tail}"), Some(v))
            }
            None => (l.to_string(), None),
        }
    };
    for (a, b) in got.lines().zip(want.lines()) {
        let ((a_rest, a_le), (b_rest, b_le)) = (split_le(a), split_le(b));
        assert_eq!(a_rest, b_rest);
        assert_eq!(a_le.map(f64::to_bits), b_le.map(f64::to_bits), "{a}");
    }
}

#[test]
fn a_series_that_duplicates_a_fixed_series_is_refused() {
    let stats = Stats::anonymous().unwrap();
    stats.record_packets(Direction::Incoming, 5, 500, false);
    for (family, labels) in [
        (Family::PacketTotal, &["incoming", "initial", ""][..]),
        (Family::NackTotal, &["outgoing", ""][..]),
        (Family::RoomTotal, &[][..]),
        (Family::TrackSubscribeCounter, &["failure", ""][..]),
    ] {
        let got = stats.series(family, labels);
        assert!(
            matches!(got, Err(nodestats::Error::FixedSeries { .. })),
            "{family:?} {labels:?}: {got:?}"
        );
    }
    // The same family with a country is a labeled series of its own.
    stats
        .series(Family::PacketTotal, &["incoming", "initial", "SE"])
        .unwrap()
        .inc_by(2);
    stats.track_subscribe_failure_error("", false);
    stats.room_started();
    let text = Exporter::new(stats.segment().clone(), "n", "SERVER")
        .unwrap()
        .text();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let unique: BTreeSet<&str> = lines
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().0)
        .collect();
    assert_eq!(unique.len(), lines.len(), "a label set printed twice");
    let has = |s: &str| assert!(lines.contains(&s), "missing {s}");
    has(
        r#"livekit_packet_total{country="",direction="incoming",node_id="n",node_type="SERVER",transmission="initial"} 5"#,
    );
    has(
        r#"livekit_packet_total{country="SE",direction="incoming",node_id="n",node_type="SERVER",transmission="initial"} 2"#,
    );
    has(
        r#"livekit_track_subscribe_counter{error="",node_id="n",node_type="SERVER",state="failure"} 1"#,
    );
    has(r#"livekit_room_total{node_id="n",node_type="SERVER"} 1"#);
    let ns = Collector::new(stats.segment().clone(), Default::default())
        .unwrap()
        .update();
    assert_eq!(ns.packets_in, 7, "NodeStats counts every country once");
}

/// client_golang exports an unlabeled family from the moment it is
/// registered (a histogram with zero count, sum and buckets): every
/// unlabeled LiveKit family is in the first scrape of an empty segment.
#[test]
fn every_unlabeled_livekit_family_is_there_from_the_start() {
    let stats = Stats::anonymous().unwrap();
    let text = Exporter::new(stats.segment().clone(), "n", "SERVER")
        .unwrap()
        .text();
    let got = parse(&text);
    let unlabeled: Vec<(String, RefFamily)> = reference()
        .into_iter()
        .filter(|(_, r)| r.labels.is_empty())
        .collect();
    assert!(unlabeled.len() >= 9, "{}", unlabeled.len());
    let consts = r#"node_id="n",node_type="SERVER""#;
    let has = |s: &str| assert!(text.lines().any(|l| l == s), "missing line {s}\n{text}");
    for (name, r) in &unlabeled {
        assert!(
            got.contains_key(name),
            "{name} missing from the first scrape"
        );
        if r.kind == "histogram" {
            has(&format!("{name}_bucket{{{consts},le=\"+Inf\"}} 0"));
            has(&format!("{name}_sum{{{consts}}} 0"));
            has(&format!("{name}_count{{{consts}}} 0"));
            let buckets = text
                .lines()
                .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
                .inspect(|l| assert!(l.ends_with("} 0"), "{l}"))
                .count();
            assert_eq!(buckets, r.buckets.len() + 1, "{name}");
        } else {
            has(&format!("{name}{{{consts}}} 0"));
        }
    }
    // The room duration of a room that ended lands in the same series.
    stats.room_started();
    stats.room_ended_after(Duration::from_secs(7));
    let text = Exporter::new(stats.segment().clone(), "n", "SERVER")
        .unwrap()
        .text();
    for line in [
        format!("livekit_room_duration_seconds_count{{{consts}}} 1"),
        format!("livekit_room_duration_seconds_sum{{{consts}}} 7"),
        format!("livekit_room_duration_seconds_bucket{{{consts},le=\"10\"}} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
    assert_eq!(
        text.matches("livekit_room_duration_seconds_count").count(),
        1
    );
}
