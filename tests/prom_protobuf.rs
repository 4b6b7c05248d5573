//! The Prometheus protobuf exposition, decoded with the prost types
//! generated from the upstream `metrics.proto`: the page rendered back
//! into the text format must be the text page of the same snapshot, byte
//! for byte (every family, series, label and value, in order); and
//! `nodestats serve` answers Prometheus' protobuf Accept with it.

mod common;

use nodestats::__testing::format_go_g;
use nodestats::__testing::prom_pb::{MetricFamily, MetricType};
use nodestats::{Exporter, Format, SegmentOptions, Stats, Value};

use prost::Message;
use std::io::{Read, Write};
use std::time::Duration;

/// The length-delimited messages of a page.
fn decode(mut page: &[u8]) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    while !page.is_empty() {
        out.push(MetricFamily::decode_length_delimited(&mut page).expect("a MetricFamily"));
    }
    out
}

fn escape(s: &str, quote: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn value(v: f64) -> String {
    match v {
        v if v.is_nan() => "NaN".into(),
        v if v == f64::INFINITY => "+Inf".into(),
        v if v == f64::NEG_INFINITY => "-Inf".into(),
        v => format!("{v}"),
    }
}

/// Decoded families written as the text format 0.0.4: what the text page
/// must be if the protobuf page holds the same families.
fn as_text(fams: &[MetricFamily]) -> String {
    let mut out = String::new();
    for f in fams {
        let name = f.name();
        let typ = match f.r#type() {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            t => panic!("{name}: type {t:?}"),
        };
        out += &format!(
            "# HELP {name} {}\n# TYPE {name} {typ}\n",
            escape(f.help(), false)
        );
        for m in &f.metric {
            let line = |out: &mut String, suffix: &str, le: Option<String>, v: f64| {
                let mut pairs: Vec<String> = m
                    .label
                    .iter()
                    .map(|l| format!("{}=\"{}\"", l.name(), escape(l.value(), true)))
                    .collect();
                pairs.extend(le.map(|le| format!("le=\"{le}\"")));
                let labels = if pairs.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", pairs.join(","))
                };
                *out += &format!("{name}{suffix}{labels} {}\n", value(v));
            };
            let names: Vec<&str> = m.label.iter().map(|l| l.name()).collect();
            assert!(names.is_sorted(), "{name}: labels {names:?} not sorted");
            match f.r#type() {
                MetricType::Counter => {
                    assert!(m.gauge.is_none() && m.histogram.is_none());
                    line(&mut out, "", None, m.counter.as_ref().unwrap().value());
                }
                MetricType::Gauge => {
                    assert!(m.counter.is_none() && m.histogram.is_none());
                    line(&mut out, "", None, m.gauge.as_ref().unwrap().value());
                }
                _ => {
                    let h = m.histogram.as_ref().unwrap();
                    // Classic histograms only here: no native fields.
                    assert!(h.schema.is_none() && h.positive_span.is_empty(), "{name}");
                    for b in &h.bucket {
                        assert!(b.upper_bound().is_finite(), "{name}: +Inf bucket written");
                        let le = Some(format_go_g(b.upper_bound()));
                        line(&mut out, "_bucket", le, b.cumulative_count() as f64);
                    }
                    let count = h.sample_count() as f64;
                    line(&mut out, "_bucket", Some("+Inf".into()), count);
                    line(&mut out, "_sum", None, h.sample_sum());
                    line(&mut out, "_count", None, count);
                }
            }
        }
    }
    out
}

#[test]
fn protobuf_page_holds_the_text_page() {
    let stats = Stats::open(&SegmentOptions::new()).unwrap();
    common::record_mixed(&stats);
    let e = Exporter::new(stats.segment().clone(), "ND_pb \"x\"", "SERVER").unwrap();
    let mut snapshot = e.snapshot();
    // Series added to a snapshot (as serve adds its own) are in both.
    snapshot.add_counter("extra_pushes_total", "Pushes.", &[("result", "ok")], 3.0);
    snapshot.add_gauge("extra_up", "Up.", &[], 1.0);
    let text = snapshot.text();
    let page = snapshot.write(Format::Protobuf);
    let fams = decode(&page);
    assert_eq!(as_text(&fams), text);

    // What the comparison covered: every kind, const and own labels,
    // classic histograms with their bounds, the added families.
    let names: Vec<&str> = fams.iter().map(|f| f.name()).collect();
    for want in [
        "livekit_packet_total",
        "livekit_room_total",
        "livekit_rtt_ms",
        "sfu_forwarded_bytes_total",
        "sfu_temperature_celsius",
        "sfu_forward_delay_seconds",
        "nodestats_segment_current",
        "extra_pushes_total",
        "extra_up",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let delay = fams
        .iter()
        .find(|f| f.name() == "sfu_forward_delay_seconds")
        .unwrap();
    let h = delay.metric[0].histogram.as_ref().unwrap();
    let cum: Vec<(f64, u64)> = h
        .bucket
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect();
    assert_eq!(cum, [(0.0005, 1), (0.001, 2), (0.01, 3), (1e6, 4)]);
    assert_eq!(h.sample_count(), 5);
    let labels: Vec<(&str, &str)> = delay.metric[0]
        .label
        .iter()
        .map(|l| (l.name(), l.value()))
        .collect();
    assert_eq!(
        labels,
        [
            ("codec", "VP8"),
            ("node_id", "ND_pb \"x\""),
            ("node_type", "SERVER")
        ]
    );
    // Every histogram of the snapshot is classic here (the comparison
    // above rejects native fields).
    assert!(snapshot.families().all(|f| f.series().all(|s| !matches!(
        s.value(),
        Value::Histogram {
            native: Some(_),
            ..
        }
    ))));
    // The exporter writes the same page from a fresh read.
    assert_eq!(decode(&e.write(Format::Protobuf)).len(), fams.len() - 2);
}

/// Sends `GET /metrics` with this Accept header; returns the head
/// (lower-cased) and the body bytes.
fn get(addr: &str, accept: &str) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..at]).to_ascii_lowercase();
    (head, resp[at + 4..].to_vec())
}

#[test]
fn serve_answers_prometheus_protobuf_accept() {
    let name = common::ShmName::new("pb");
    let stats = Stats::open(&SegmentOptions::new().name(name.to_string())).unwrap();
    common::record_mixed(&stats);
    // An OTLP endpoint nobody answers: serve adds the pusher's families.
    let otlp = format!("http://127.0.0.1:{}/v1/metrics", common::free_port());
    let (child, addr) = common::serve(
        &name,
        &[
            "--interval",
            "0.2",
            "--otlp-endpoint",
            &otlp,
            "--otlp-interval",
            "60",
        ],
    );
    let _serve = common::Kill(child);
    // Prometheus 3.x's Accept with native histograms enabled.
    let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    // serve starts the pusher after it listens, and its families change
    // as pushes fail: retry until a protobuf page and the text page after
    // it show the same families.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (names, text_names) = loop {
        // (The head is lower-cased.)
        let (head, body) = get(&addr, accept);
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(
            head.contains("content-type: application/vnd.google.protobuf; proto=io.prometheus.client.metricfamily; encoding=delimited"),
            "{head}"
        );
        assert!(head.contains("vary: accept-encoding, accept"), "{head}");
        let names: Vec<String> = decode(&body).iter().map(|f| f.name().to_string()).collect();
        let (head, text) = get(&addr, "text/plain;version=0.0.4");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        let text = String::from_utf8(text).unwrap();
        let text_names: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
        let done = names == text_names && names.iter().any(|n| n == "nodestats_otlp_exports_total");
        if done || std::time::Instant::now() > deadline {
            break (names, text_names);
        }
        std::thread::sleep(Duration::from_millis(150));
    };
    for want in [
        "livekit_packet_total",
        "sfu_forward_delay_seconds",
        // serve's own families.
        "nodestats_segment_current",
        "nodestats_otlp_exports_total",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    // The text page names the same families, in the same order.
    assert_eq!(names, text_names);
}
