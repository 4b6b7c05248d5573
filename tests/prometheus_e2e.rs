//! End to end with the real thing: `nodestats serve` in front of a named
//! segment, `promtool check metrics` on its page, and a Prometheus server
//! on loopback scraping it; Prometheus' HTTP API must return exactly what
//! was recorded, over the OpenMetrics it negotiates by default and over
//! the protobuf exposition it asks for first with native histograms
//! enabled. Needs `prometheus`
//! and `promtool` (Debian package `prometheus`; `scripts/test.sh` installs
//! it) and fails without them.

mod common;

use nodestats::{Direction, FamilySpec, Segment, SegmentOptions, Stats};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Metric names whose promtool lint warnings come from LiveKit's own names
/// (kept for parity: `_total` gauges, counters without `_total`, `_count`
/// gauges, `_ms`/`_us`/`_ns` units, `counter` in a name).
const INHERITED: &[&str] = &[
    "livekit_connection_total",
    "livekit_debug_ref_count",
    "livekit_forward_latency_ns",
    "livekit_jitter_us",
    "livekit_node_messages",
    "livekit_node_packet_total",
    "livekit_node_service_operation",
    "livekit_node_twirp_request_latency_ms",
    "livekit_node_twirp_request_status",
    "livekit_packet_bytes",
    "livekit_participant_total",
    "livekit_peer_connection_state",
    "livekit_psrpc_claim_wait_time_ms",
    "livekit_psrpc_request_time_ms",
    "livekit_psrpc_stream_count",
    "livekit_psrpc_stream_send_time_ms",
    "livekit_pubsubtime_ms",
    "livekit_room_total",
    "livekit_rtt_ms",
    "livekit_session_duration_ms",
    "livekit_session_join_latency_ms",
    "livekit_session_start_time_ms",
    "livekit_track_publish_counter",
    "livekit_track_published_total",
    "livekit_track_subscribe_counter",
    "livekit_track_subscribed_total",
];

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert!(
        !found.is_empty(),
        "{name} not found: install the Debian package `prometheus` (scripts/test.sh does)"
    );
    found
}

/// The single value Prometheus returns for `query`, if any.
fn query(prom: &str, q: &str) -> Option<String> {
    let body = http_get(prom, &format!("/api/v1/query?query={}", encode(q)))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let r = v["data"]["result"].as_array()?;
    (r.len() == 1).then(|| r[0]["value"][1].as_str().unwrap_or("").to_string())
}

#[test]
fn prometheus_scrapes_exact_values() {
    let (prometheus, promtool) = (tool("prometheus"), tool("promtool"));
    let name = format!("/nodestats-e2e-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let stats = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    record(&stats);

    let (child, addr) = common::serve(&name, &["--interval", "1", "--node-id", "ND_e2e"]);
    let serve = common::Kill(child);

    // promtool: no errors, and lint warnings only for LiveKit's own names.
    let page = http_get(&addr, "/metrics").expect("GET /metrics");
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "promtool failed ({code:?}): {report}"
    );
    for l in report.lines().filter(|l| !l.trim().is_empty()) {
        let metric = l.split_whitespace().next().unwrap_or("");
        assert!(
            INHERITED.contains(&metric),
            "promtool complains about our own naming: {l}"
        );
    }
    assert!(http_get(&addr, "/healthz").is_some());
    let stats_json: serde_json::Value =
        serde_json::from_str(&http_get(&addr, "/stats").unwrap()).unwrap();
    assert_eq!(stats_json["packets_in"], 12_345);
    assert_eq!(stats_json["num_rooms"], 1);

    let prom = Prometheus::start(&prometheus, &addr, &[]);
    // The text formats' `le` is kept as written (Go's `%g`, as LiveKit).
    wait_for_values(&prom.addr, "100");
    // Prometheus asks for OpenMetrics first, and got it: LiveKit's counter
    // without `_total` kept its name (the values above) as type `unknown`,
    // where the text format would have said `counter`.
    wait_for_type(&prom.addr, "livekit_packet_bytes", "unknown");
    assert_eq!(
        metadata(&prom.addr, "livekit_room_total").as_deref(),
        Some("gauge")
    );
    drop(prom);
    drop(serve);
    Segment::unlink(&name).unwrap();
}

#[test]
fn prometheus_with_native_histograms_scrapes_protobuf() {
    let prometheus = tool("prometheus");
    // Unlinked when the test ends, passed or failed.
    let name = common::ShmName::new("e2e-pb");
    let stats = Stats::open(&SegmentOptions::new().name(name.to_string())).unwrap();
    record(&stats);
    // A native histogram (schema 3, no classic buckets) with known values:
    // 10, 11, … 109 ms, ten times each, and one of each edge case.
    let rtt = stats
        .declare(
            &FamilySpec::histogram("sfu_rtt_ms", "Round-trip time to peers.", &[])
                .unit("ms")
                .native(3),
        )
        .unwrap()
        .series(&[])
        .unwrap();
    for i in 0..1000 {
        rtt.observe(f64::from(10 + i % 100));
    }
    let (child, addr) = common::serve(&name, &["--interval", "1", "--node-id", "ND_e2e"]);
    let serve = common::Kill(child);
    // Native histograms enabled: Prometheus asks for protobuf first.
    let prom = Prometheus::start(&prometheus, &addr, &["--enable-feature=native-histograms"]);
    // From protobuf's double bound Prometheus makes the `le` label itself,
    // in OpenMetrics' float form.
    wait_for_values(&prom.addr, "100.0");
    // The protobuf page types LiveKit's counter without `_total` as the
    // counter it is (OpenMetrics would have said `unknown`): protobuf it was.
    wait_for_type(&prom.addr, "livekit_packet_bytes", "counter");
    // Prometheus stored the native histogram: its count and sum exactly,
    // and quantiles within the schema's error. At schema 3 a bucket spans
    // a factor 2^(1/8), so an interpolated quantile is within 9.05 % of
    // the true one.
    let deadline = Instant::now() + Duration::from_secs(90);
    let scalar = |q: &str| query(&prom.addr, q).and_then(|v| v.parse::<f64>().ok());
    while scalar("histogram_count(sfu_rtt_ms)") != Some(1000.0) {
        assert!(
            Instant::now() < deadline,
            "no native histogram in Prometheus: {:?}",
            query(&prom.addr, "sfu_rtt_ms")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(scalar("histogram_sum(sfu_rtt_ms)"), Some(59_500.0));
    let error = 2f64.powf(1.0 / 8.0) - 1.0;
    for (q, truth) in [(0.5, 59.5), (0.9, 99.5), (0.99, 108.5)] {
        let got = scalar(&format!("histogram_quantile({q}, sfu_rtt_ms)")).unwrap();
        println!("native p{}: {got} ms, true {truth} ms", q * 100.0);
        assert!(
            (got / truth - 1.0).abs() <= error,
            "p{}: {got}, true {truth}, schema 3 allows {:.2} %",
            q * 100.0,
            error * 100.0
        );
    }
    // Text keeps the classic view (only +Inf) for the same series.
    let text = http_get(&addr, "/metrics").unwrap();
    assert!(
        text.contains(
            "sfu_rtt_ms_bucket{node_id=\"ND_e2e\",node_type=\"SERVER\",le=\"+Inf\"} 1000"
        ),
        "{text}"
    );
    drop(prom);
    drop(serve);
}

/// What both tests record.
fn record(stats: &Stats) {
    stats.record_packets(Direction::Incoming, 12_345, 12_345 * 1000, false);
    common::record_rtts(stats, 1);
    stats.room_started();
}

/// A Prometheus server on loopback scraping `target` every second, killed
/// and its data removed when dropped.
struct Prometheus {
    addr: String,
    dir: std::path::PathBuf,
    child: common::Kill,
}

impl Prometheus {
    fn start(prometheus: &str, target: &str, flags: &[&str]) -> Prometheus {
        let port = common::free_port();
        let dir = std::env::temp_dir().join(format!("nodestats-e2e-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: nodestats\n    static_configs:\n      - targets: ['{target}']\n"),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Prometheus {
            addr,
            dir,
            child: common::Kill(child),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // The child first (fields drop after this), so the directory is
        // not written to as it goes.
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until Prometheus at `prom` returns exactly what [`record`]
/// recorded; `le100` is how it labels the classic bucket of bound 100.
fn wait_for_values(prom: &str, le100: &str) {
    let bucket =
        format!(r#"livekit_rtt_ms_bucket{{country="DE",direction="outgoing",le="{le100}"}}"#);
    let checks = [
        (
            r#"livekit_packet_total{direction="incoming",transmission="initial",country="",node_id="ND_e2e"}"#,
            "12345",
        ),
        (
            r#"livekit_packet_bytes{direction="incoming",transmission="initial",country=""}"#,
            "12345000",
        ),
        (
            r#"livekit_rtt_ms_count{country="DE",direction="outgoing"}"#,
            "4",
        ),
        (
            r#"livekit_rtt_ms_sum{country="DE",direction="outgoing"}"#,
            "1129",
        ),
        (bucket.as_str(), "3"),
        (r#"livekit_room_total{node_type="SERVER"}"#, "1"),
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let last: Vec<Option<String>> = checks.iter().map(|(q, _)| query(prom, q)).collect();
        if checks
            .iter()
            .zip(&last)
            .all(|((_, want), got)| got.as_deref() == Some(*want))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned the recorded values: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The type Prometheus at `prom` keeps for `metric`.
fn metadata(prom: &str, metric: &str) -> Option<String> {
    let body = http_get(prom, &format!("/api/v1/metadata?metric={metric}"))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"][metric][0]["type"].as_str().map(str::to_string)
}

/// Waits until Prometheus at `prom` keeps `metric` as type `want`.
fn wait_for_type(prom: &str, metric: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while metadata(prom, metric).as_deref() != Some(want) {
        assert!(
            Instant::now() < deadline,
            "{metric} metadata: {:?}",
            metadata(prom, metric)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
