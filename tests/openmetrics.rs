//! OpenMetrics 1.0: the library's writer and `nodestats serve`'s
//! negotiation, read back by a strict OpenMetrics parser (Python
//! `prometheus_client.openmetrics.parser`, which `scripts/test.sh`
//! installs; these tests fail without it), over LiveKit's families,
//! declared families with units, histograms and label values that need
//! escaping. Every series name must be the one the text format gives.

mod common;

use nodestats::{Exporter, Format, OpenMetricsCounters, SegmentOptions, Stats};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the strict parser over `page`; returns what it read, one line per
/// sample as `type unit|name{labels} value` (labels sorted), or its
/// complaint.
fn try_parse(page: &str) -> Result<BTreeSet<String>, String> {
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = sys.stdin.buffer.read().decode("utf-8")
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        labels = ",".join("%s=%r" % kv for kv in sorted(s.labels.items()))
        print("%s %s|%s{%s} %r" % (fam.type, fam.unit or "-", s.name, labels, float(s.value)))
"#;
    // NODESTATS_PYTHON picks another interpreter (e.g. Debian's, with its
    // older python3-prometheus-client).
    let python = std::env::var("NODESTATS_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test.sh installs it with prometheus_client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect())
}

/// [`try_parse`], panicking with the parser's complaint.
fn strict_parse(page: &str) -> BTreeSet<String> {
    try_parse(page).unwrap_or_else(|e| {
        panic!(
            "the OpenMetrics parser rejected the page (install prometheus_client with pip if it is missing):\n{e}\n--- page ---\n{page}"
        )
    })
}

/// Sample names of a text or OpenMetrics page.
fn sample_names(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

fn line_of<'a>(parsed: &'a BTreeSet<String>, prefix: &str) -> &'a str {
    parsed
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {parsed:#?}"))
}

#[test]
fn strict_parser_reads_every_family() {
    let stats = Stats::open(&SegmentOptions::new()).unwrap();
    common::record_mixed(&stats);
    let e = Exporter::new(stats.segment().clone(), "ND_om \"x\"", "SERVER").unwrap();
    let text = e.text();
    let om = String::from_utf8(e.write(Format::OpenMetrics)).unwrap();
    assert_eq!(e.write(Format::Text), text.as_bytes());
    assert!(om.ends_with("\n# EOF\n"), "{om}");
    assert_eq!(om.matches("# EOF").count(), 1);

    // Every series name is the text format's.
    assert_eq!(sample_names(&om), sample_names(&text));

    let parsed = strict_parse(&om);
    // The parser is strict: the text format, or our page cut short, fail.
    assert!(try_parse(&text).is_err());
    assert!(try_parse(om.strip_suffix("# EOF\n").unwrap()).is_err());
    assert!(try_parse(&om.replace(
        "# TYPE livekit_packet_bytes unknown",
        "# TYPE livekit_packet_bytes counter"
    ))
    .is_err());
    // Counters named `_total` are OpenMetrics counters; the others
    // (LiveKit's `livekit_packet_bytes`) are `unknown` under their name.
    line_of(&parsed, "counter -|livekit_packet_total{");
    line_of(&parsed, "unknown -|livekit_packet_bytes{");
    line_of(&parsed, "unknown -|sfu_keyframes{");
    line_of(&parsed, "gauge -|livekit_room_total{");
    line_of(&parsed, "histogram -|livekit_rtt_ms_bucket{");
    // Units where the name ends with them; none where it does not.
    assert!(line_of(&parsed, "counter bytes|sfu_forwarded_bytes_total{")
        .contains("room='a \"quoted\" room'"));
    assert!(line_of(&parsed, "counter bytes|sfu_forwarded_bytes_total{")
        .contains("node_id='ND_om \"x\"'"));
    parsed
        .iter()
        .find(|l| l.contains("room='back\\\\slash\\nnewline'") && l.ends_with(" 7.0"))
        .unwrap_or_else(|| panic!("escaped label lost: {parsed:#?}"));
    parsed
        .iter()
        .find(|l| l.contains("room='ünïcødé ✓'") && l.ends_with(" 1.0"))
        .unwrap_or_else(|| panic!("UTF-8 label lost: {parsed:#?}"));
    assert!(line_of(&parsed, "gauge celsius|sfu_temperature_celsius{").ends_with(" 41.0"));
    line_of(&parsed, "gauge -|sfu_queue_depth{");
    assert!(!om.contains("# UNIT sfu_queue_depth"));
    // The histogram, cumulative, count and sum.
    let h = |suffix: &str| {
        line_of(
            &parsed,
            &format!("histogram seconds|sfu_forward_delay_seconds{suffix}"),
        )
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
    };
    assert_eq!(h("_count{"), "5.0");
    assert!(parsed
        .iter()
        .any(|l| l.contains("_bucket{") && l.contains("le='0.001'") && l.ends_with(" 2.0")));
    assert!(parsed
        .iter()
        .any(|l| l.contains("sfu_forward_delay_seconds_bucket{")
            && l.contains("le='+Inf'")
            && l.ends_with(" 5.0")));
    assert_eq!(
        h("_sum{").parse::<f64>().unwrap(),
        0.0001 + 0.0007 + 0.002 + 5.0 + 2e6
    );
    // Help with a quote, a backslash and a newline.
    assert!(
        om.contains("# HELP sfu_forwarded_bytes Bytes \\\"forwarded\\\"\\\\\\nper room.\n"),
        "{om}"
    );

    // Opting in to `_total` renames the other counters, still strict.
    let e = e.openmetrics_counters(OpenMetricsCounters::Total);
    let om = String::from_utf8(e.write(Format::OpenMetrics)).unwrap();
    let parsed = strict_parse(&om);
    line_of(&parsed, "counter -|livekit_packet_bytes_total{");
    line_of(&parsed, "counter -|sfu_keyframes_total{");
}

/// Sends `GET /metrics` with this Accept header; returns the head and body.
fn get(addr: &str, accept: Option<&str>) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn serve_negotiates_openmetrics() {
    let name = common::ShmName::new("om");
    let stats = Stats::open(&SegmentOptions::new().name(name.to_string())).unwrap();
    common::record_mixed(&stats);
    let (child, addr) = common::serve(&name, &["--interval", "0.2"]);
    let _serve = common::Kill(child);

    // After the collector's first update, the system families are there.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (head, text) = loop {
        let (head, text) = get(&addr, None);
        if text.contains("livekit_node_packet_total{") || std::time::Instant::now() > deadline {
            break (head, text);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert!(!text.contains("# EOF"));
    // What Prometheus 2.x and 3.x send by default.
    for accept in [
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    ] {
        let (head, om) = get(&addr, Some(accept));
        assert!(
            head.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
            "{head}"
        );
        assert!(head.contains("vary: accept-encoding, accept"), "{head}");
        let parsed = strict_parse(&om);
        line_of(&parsed, "counter bytes|sfu_forwarded_bytes_total{");
        line_of(&parsed, "unknown -|livekit_packet_bytes{");
        // serve's own families are in it too, before `# EOF`.
        line_of(&parsed, "gauge -|nodestats_segment_current{");
        assert_eq!(sample_names(&om), sample_names(&text));
    }
    let (head, _) = get(&addr, Some("text/plain;version=0.0.4"));
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
}
