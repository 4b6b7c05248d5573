//! `nodestats serve` over HTTP: the pages and their content types, the
//! error answers, silent clients that must not starve scrapes, a missing
//! segment, and a prompt, clean stop on SIGTERM.

mod common;

use nodestats::{Direction, Segment, SegmentOptions, Stats};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sends `request` raw and returns the whole response (the server closes
/// every connection after one answer).
fn exchange(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    String::from_utf8(out).expect("utf-8 response")
}

fn get(addr: &str, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    let head = resp.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

struct Served {
    // Kept open: a writer's gauges (rooms) count only while it lives.
    _stats: Stats,
    child: std::process::Child,
    addr: String,
    name: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Segment::unlink(&self.name);
    }
}

fn served(tag: &str) -> Served {
    let name = format!("/nodestats-serve-{tag}-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let stats = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    stats.record_packets(Direction::Incoming, 7, 700, false);
    stats.room_started();
    let (child, addr) = common::serve(&name, &["--interval", "0.2"]);
    Served {
        _stats: stats,
        child,
        addr,
        name,
    }
}

#[test]
fn pages_have_their_content_types_and_values() {
    let s = served("pages");
    let m = get(&s.addr, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m:.200}");
    assert_eq!(
        header(&m, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let len: usize = header(&m, "content-length").unwrap().parse().unwrap();
    assert_eq!(len, body(&m).len());
    assert!(
        body(&m)
            .lines()
            .any(|l| l.starts_with("livekit_packet_total{")
                && l.contains("direction=\"incoming\"")
                && l.ends_with(" 7")),
        "no incoming packet count of 7 in /metrics"
    );

    // /stats answers 503 until the first collector update, then JSON.
    let deadline = Instant::now() + Duration::from_secs(5);
    let st = loop {
        let r = get(&s.addr, "/stats");
        if r.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(st.starts_with("HTTP/1.1 200 OK\r\n"), "{st:.200}");
    assert_eq!(header(&st, "content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(body(&st)).expect("JSON");
    assert_eq!(v["packets_in"], 7);
    assert_eq!(v["bytes_in"], 700);
    assert_eq!(v["num_rooms"], 1);

    let h = get(&s.addr, "/healthz");
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert_eq!(body(&h), "ok\n");
    // A query string does not change the page.
    assert!(get(&s.addr, "/healthz?x=1").starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn bad_requests_get_clear_answers() {
    let s = served("bad");
    assert!(get(&s.addr, "/nope").starts_with("HTTP/1.1 404 Not Found\r\n"));
    let post = exchange(
        &s.addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{post}"
    );
    let mut huge = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..400 {
        huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(40)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let r = exchange(&s.addr, &huge);
    assert!(
        r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{r:.100}"
    );
    // The server is still fine afterwards.
    assert!(get(&s.addr, "/healthz").starts_with("HTTP/1.1 200"));
}

#[test]
fn silent_clients_do_not_starve_scrapes() {
    let s = served("silent");
    // More silent connections than the server has workers.
    let mut silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(&s.addr).expect("connect"))
        .collect();
    let t = Instant::now();
    let m = get(&s.addr, "/metrics");
    let waited = t.elapsed();
    assert!(m.starts_with("HTTP/1.1 200 OK\r\n"));
    // Each silent client holds a worker for at most the 2 s head deadline,
    // and they are served in parallel.
    assert!(
        waited < Duration::from_secs(6),
        "a scrape behind silent clients took {waited:?}"
    );
    // The server closes every silent connection by itself.
    for c in &mut silent {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 16];
        let t = Instant::now();
        assert_eq!(c.read(&mut b).expect("closed, not timed out"), 0);
        assert!(t.elapsed() < Duration::from_secs(9));
    }
}

#[test]
fn sigterm_stops_promptly_and_cleanly() {
    let mut s = served("stop");
    assert!(get(&s.addr, "/healthz").starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    // SAFETY: signalling our own child process by pid.
    assert_eq!(unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) }, 0);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "serve did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(&s.addr).is_err(), "still listening");
}

#[test]
fn a_missing_segment_is_a_clear_error() {
    let name = format!("/nodestats-serve-missing-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let out = Command::new(env!("CARGO_BIN_EXE_nodestats"))
        .args(["serve", "--segment", &name, "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&name) || err.to_lowercase().contains("no such"),
        "unclear error: {err}"
    );
}
