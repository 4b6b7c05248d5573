//! OTLP push from `nodestats serve`: a receiver on loopback, built here on
//! the upstream OTLP message types, decodes every push and compares it with
//! `/metrics` (counters, gauges, histogram buckets, resource attributes,
//! headers, gzip, start times across a segment replacement). Then the
//! receiver hangs, answers 503 with `Retry-After`, and 400, while `/metrics`,
//! `/stats` and `/healthz` are timed, and the failures must show on
//! `/metrics`.

mod common;

use nodestats::{Direction, FamilySpec, Segment, SegmentOptions, Stats, TrackKind, TrackSource};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Ok,
    /// Reads the request and never answers.
    Hang,
    /// Answers this status, with `Retry-After` seconds if given.
    Status(u16, Option<u32>),
}

/// One request the receiver read.
struct Push {
    at: Instant,
    headers: HashMap<String, String>,
    request: ExportMetricsServiceRequest,
}

/// A loopback OTLP/HTTP receiver: every request is decoded and sent on a
/// channel, then answered as the mode says.
struct Receiver_ {
    addr: String,
    mode: Arc<Mutex<Mode>>,
    pushes: Receiver<Push>,
}

fn receiver() -> Receiver_ {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mode = Arc::new(Mutex::new(Mode::Ok));
    let (tx, rx) = mpsc::channel();
    let m = mode.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let (m, tx) = (m.clone(), tx.clone());
            std::thread::spawn(move || serve_conn(conn, m, tx));
        }
    });
    Receiver_ {
        addr,
        mode,
        pushes: rx,
    }
}

/// Reads requests off one connection until it closes (or the test ends).
fn serve_conn(conn: TcpStream, mode: Arc<Mutex<Mode>>, tx: Sender<Push>) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        assert!(line.starts_with("POST /v1/metrics HTTP/1.1"), "{line:?}");
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let len: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .expect("a gzip body");
            body = plain;
        }
        let request = ExportMetricsServiceRequest::decode(&body[..]).expect("a protobuf request");
        let at = Instant::now();
        let _ = tx.send(Push {
            at,
            headers,
            request,
        });
        let answer = *mode.lock().unwrap();
        match answer {
            Mode::Ok => {
                let _ = write!(w, "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n");
            }
            Mode::Hang => {
                // Hold the connection open, answer nothing.
                std::thread::sleep(Duration::from_secs(600));
                return;
            }
            Mode::Status(code, after) => {
                let after = after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
                let _ = write!(
                    w,
                    "HTTP/1.1 {code} Nope\r\n{after}Content-Length: 4\r\n\r\nnope"
                );
            }
        }
    }
}

/// A series key: name and sorted labels, const labels (node_id,
/// node_type) left out.
type Key = (String, Vec<(String, String)>);

/// Parses a Prometheus text page into series → value.
fn parse_text(page: &str) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        let (name, mut labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => {
                let mut labels = Vec::new();
                let mut rest = rest.strip_suffix('}').unwrap();
                while !rest.is_empty() {
                    let (k, after) = rest.split_once("=\"").unwrap();
                    let mut v = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next().unwrap() {
                            (_, '\\') => match chars.next().unwrap().1 {
                                'n' => v.push('\n'),
                                c => v.push(c),
                            },
                            (i, '"') => break i,
                            (_, c) => v.push(c),
                        }
                    };
                    labels.push((k.to_string(), v));
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (name.to_string(), labels)
            }
        };
        labels.retain(|(k, _)| k != "node_id" && k != "node_type");
        // `le` as a number, so 1e+06 and 1000000 agree.
        for l in labels.iter_mut().filter(|l| l.0 == "le") {
            l.1 = format!("{}", l.1.parse::<f64>().unwrap());
        }
        labels.sort();
        out.insert((name, labels), value);
    }
    out
}

fn string_value(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("attribute {} is not a string: {other:?}", kv.key),
    }
}

fn attrs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    let mut v: Vec<_> = kvs
        .iter()
        .map(|kv| (kv.key.clone(), string_value(kv)))
        .collect();
    v.sort();
    v
}

/// What a push says, in the text page's terms: series → value, and
/// every point's start time.
fn flatten(req: &ExportMetricsServiceRequest) -> (BTreeMap<Key, f64>, Vec<u64>) {
    let mut out = BTreeMap::new();
    let mut starts = Vec::new();
    assert_eq!(req.resource_metrics.len(), 1);
    let rm = &req.resource_metrics[0];
    assert_eq!(rm.scope_metrics.len(), 1);
    for m in &rm.scope_metrics[0].metrics {
        match m.data.as_ref().unwrap() {
            metric::Data::Sum(s) => {
                assert!(
                    s.is_monotonic && s.aggregation_temporality == 2,
                    "{}",
                    m.name
                );
                for p in &s.data_points {
                    starts.push(p.start_time_unix_nano);
                    let v = match p.value.unwrap() {
                        number_data_point::Value::AsInt(i) => i as f64,
                        number_data_point::Value::AsDouble(d) => d,
                    };
                    out.insert((m.name.clone(), attrs(&p.attributes)), v);
                }
            }
            metric::Data::Gauge(g) => {
                for p in &g.data_points {
                    let v = match p.value.unwrap() {
                        number_data_point::Value::AsInt(i) => i as f64,
                        number_data_point::Value::AsDouble(d) => d,
                    };
                    out.insert((m.name.clone(), attrs(&p.attributes)), v);
                }
            }
            metric::Data::Histogram(h) => {
                assert_eq!(h.aggregation_temporality, 2, "{}", m.name);
                for p in &h.data_points {
                    starts.push(p.start_time_unix_nano);
                    let a = attrs(&p.attributes);
                    assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
                    let mut cum = 0u64;
                    for (i, c) in p.bucket_counts.iter().enumerate() {
                        cum += c;
                        let le = p.explicit_bounds.get(i).copied().unwrap_or(f64::INFINITY);
                        let mut l = a.clone();
                        l.push(("le".into(), format!("{le}")));
                        l.sort();
                        out.insert((format!("{}_bucket", m.name), l), cum as f64);
                    }
                    assert_eq!(cum, p.count);
                    out.insert((format!("{}_count", m.name), a.clone()), p.count as f64);
                    out.insert((format!("{}_sum", m.name), a), p.sum.unwrap());
                }
            }
            other => panic!("{}: unexpected {other:?}", m.name),
        }
    }
    (out, starts)
}

/// The body of `GET path`, and how long it took.
fn timed_get(addr: &str, path: &str) -> (String, Duration) {
    let t = Instant::now();
    let body = common::http_body(addr, path);
    (body, t.elapsed())
}

/// Series whose values move on their own between two reads.
fn stable(key: &Key) -> bool {
    (key.0.starts_with("livekit_") && !key.0.starts_with("livekit_node_packet_total"))
        || key.0.starts_with("sfu_")
}

fn record(stats: &Stats, scale: u64) {
    stats.record_packets(Direction::Incoming, 100 * scale, 120_000 * scale, false);
    stats.record_packets(Direction::Outgoing, 7 * scale, 8_400 * scale, true);
    for rtt in [10, 60, 60, 999] {
        stats.record_rtt(
            "DE",
            Direction::Outgoing,
            TrackSource::Camera,
            TrackKind::Video,
            rtt * scale as u32,
        );
    }
    stats.room_started();
    let bytes = stats
        .declare(
            &FamilySpec::counter("sfu_forwarded_bytes_total", "Bytes forwarded.")
                .unit("bytes")
                .labels(&["room"]),
        )
        .unwrap();
    bytes.series(&["a"]).unwrap().inc_by(1000 * scale);
    bytes.series(&["b \"q\""]).unwrap().inc_by(3 * scale);
    let depth = stats
        .declare(&FamilySpec::gauge("sfu_queue_depth", "Queued packets."))
        .unwrap();
    depth.series(&[]).unwrap().add(4 * scale as i64);
    let delay = stats
        .declare(
            &FamilySpec::histogram("sfu_delay_seconds", "Delay.", &[0.001, 0.01, 0.1])
                .unit("seconds"),
        )
        .unwrap();
    let h = delay.series(&[]).unwrap();
    for v in [0.0005, 0.005, 0.05, 0.5] {
        for _ in 0..scale {
            h.observe(v);
        }
    }
}

/// Waits (up to a generous deadline) for a push matching `/metrics` on
/// every stable series; returns it.
fn matching_push(rx: &Receiver_, serve: &str, what: &str) -> Push {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        let Ok(push) = rx.pushes.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        let text = parse_text(&common::http_body(serve, "/metrics"));
        let (otlp, _) = flatten(&push.request);
        let want: BTreeMap<_, _> = text.iter().filter(|(k, _)| stable(k)).collect();
        let got: BTreeMap<_, _> = otlp.iter().filter(|(k, _)| stable(k)).collect();
        if want == got && !want.is_empty() {
            // Every family of the page is in the push (values of our own
            // families move between the two reads).
            let names = |m: &BTreeMap<Key, f64>| {
                m.keys()
                    .map(|k| k.0.clone())
                    .filter(|n| !n.starts_with("nodestats_otlp_last"))
                    .collect::<std::collections::BTreeSet<_>>()
            };
            assert_eq!(names(&otlp), names(&text));
            return push;
        }
        last = format!("want {want:#?}\ngot {got:#?}");
    }
    panic!("no push matched /metrics ({what}):\n{last}");
}

fn metric_value(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn pushes_match_metrics_and_failures_never_touch_scrapes() {
    let name = common::ShmName::new("otlp");
    let stats = Stats::open(&SegmentOptions::new().name(name.to_string())).unwrap();
    record(&stats, 1);
    let rx = receiver();

    let mut cmd = std::process::Command::new(common::nodestats_bin());
    cmd.args(["serve", "--segment", &name, "--listen", "127.0.0.1:0"])
        .args(["--interval", "0.2", "--node-id", "ND_otlp"])
        .args(["--otlp-interval", "0.5", "--otlp-timeout", "2"])
        .args(["--otlp-compression", "gzip"])
        .env_remove("OTEL_SERVICE_NAME")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", rx.addr))
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s%20ecret")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test,service.name=sfu-edge",
        )
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _serve = common::Kill(child);
    let serve = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();

    // Values, resource, headers, gzip.
    let push = matching_push(&rx, &serve, "first segment");
    assert_eq!(push.headers["content-type"], "application/x-protobuf");
    assert_eq!(push.headers["content-encoding"], "gzip");
    assert_eq!(push.headers["x-api-key"], "s ecret");
    let resource = attrs(
        &push.request.resource_metrics[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes,
    );
    for want in [
        ("service.name", "sfu-edge"),
        ("service.instance.id", "ND_otlp"),
        ("node_id", "ND_otlp"),
        ("node_type", "SERVER"),
        ("deployment.environment", "test"),
    ] {
        assert!(
            resource.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {resource:?}"
        );
    }
    let units: HashMap<&str, &str> = push.request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.unit.as_str()))
        .collect();
    assert_eq!(units["sfu_delay_seconds"], "seconds");
    assert_eq!(units["sfu_forwarded_bytes_total"], "bytes");
    // Every cumulative point starts when the segment was created.
    let page = common::http_body(&serve, "/metrics");
    let created = metric_value(&page, "nodestats_segment_created_timestamp_seconds").unwrap();
    let (_, starts) = flatten(&push.request);
    let start = starts[0];
    assert!(starts.iter().all(|&s| s == start));
    assert!(
        (start as f64 / 1e9 - created).abs() < 0.01,
        "start {start} vs created {created}"
    );

    // The SFU restarts: a new segment at the name, new counts, new start.
    drop(stats);
    std::thread::sleep(Duration::from_millis(20));
    Segment::unlink(&name).unwrap();
    let stats = Stats::open(&SegmentOptions::new().name(name.to_string())).unwrap();
    record(&stats, 3);
    let push = matching_push(&rx, &serve, "replaced segment");
    let (values, starts) = flatten(&push.request);
    assert!(starts.iter().all(|&s| s == starts[0]) && starts[0] > start);
    assert_eq!(
        values[&(
            "sfu_forwarded_bytes_total".to_string(),
            vec![("room".to_string(), "a".to_string())]
        )],
        3000.0
    );

    // The receiver hangs: scrapes stay fast, the failure is exported.
    *rx.mode.lock().unwrap() = Mode::Hang;
    let mut times = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(6) {
        for path in ["/metrics", "/stats", "/healthz"] {
            let (body, took) = timed_get(&serve, path);
            assert!(!body.is_empty(), "{path}: empty answer");
            times.push(took);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    times.sort();
    let p99 = times[times.len() * 99 / 100];
    assert!(
        p99 < Duration::from_secs(1),
        "p99 of {} scrapes while the receiver hangs: {p99:?}",
        times.len()
    );
    let page = common::http_body(&serve, "/metrics");
    assert!(
        metric_value(&page, "nodestats_otlp_exports_total{node_id=\"ND_otlp\",node_type=\"SERVER\",result=\"error\"}")
            .unwrap()
            >= 1.0,
        "{page}"
    );
    assert!(
        page.contains("nodestats_otlp_last_error_info{error=\"no answer within 2 s\""),
        "{page}"
    );
    assert!(
        metric_value(&page, "nodestats_otlp_dropped_total{node_id=\"ND_otlp\",node_type=\"SERVER\",reason=\"stale\"}")
            .unwrap()
            >= 1.0,
        "{page}"
    );

    // 503 with Retry-After: 3 s: retries wait for it (pushes every 0.5 s
    // otherwise), the snapshots it holds back are dropped as stale.
    *rx.mode.lock().unwrap() = Mode::Status(503, Some(3));
    while rx.pushes.try_recv().is_ok() {}
    let mut at = Vec::new();
    while at.len() < 3 {
        let p = rx
            .pushes
            .recv_timeout(Duration::from_secs(60))
            .expect("pushes go on after a 503");
        at.push(p.at);
    }
    // The first may have been a request under way when the mode changed.
    let gap = at[2] - at[1];
    assert!(
        gap >= Duration::from_millis(2500),
        "retried after {gap:?}, Retry-After was 3 s"
    );
    let page = common::http_body(&serve, "/metrics");
    assert!(
        metric_value(&page, "nodestats_otlp_exports_total{node_id=\"ND_otlp\",node_type=\"SERVER\",result=\"retryable\"}")
            .unwrap()
            >= 2.0,
        "{page}"
    );
    assert!(
        page.contains("nodestats_otlp_last_error_info{error=\"HTTP 503 Service Unavailable\""),
        "{page}"
    );

    // 400: not retried, dropped and counted.
    *rx.mode.lock().unwrap() = Mode::Status(400, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = common::http_body(&serve, "/metrics");
        let rejected = metric_value(&page, "nodestats_otlp_dropped_total{node_id=\"ND_otlp\",node_type=\"SERVER\",reason=\"rejected\"}").unwrap();
        let requests = metric_value(&page, "nodestats_otlp_exports_total{node_id=\"ND_otlp\",node_type=\"SERVER\",result=\"rejected\"}").unwrap();
        if rejected >= 2.0 && requests >= 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "400s not counted: {page}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The receiver is back: pushes match /metrics again, the error clears.
    *rx.mode.lock().unwrap() = Mode::Ok;
    matching_push(&rx, &serve, "after the failures");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = common::http_body(&serve, "/metrics");
        if !page.contains("nodestats_otlp_last_error_info")
            && page.contains("nodestats_otlp_last_success_timestamp_seconds")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the error stays: {page}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stats);
}
