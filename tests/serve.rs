//! `nodestats serve` over HTTP: the pages and their content types, the
//! error answers, HEAD, bodies, keep-alive and pipelining, gzip, the 503
//! of an overloaded server, idle and slow clients that must not delay
//! scrapes, a missing segment, and a prompt, clean stop on SIGTERM.

mod common;

use nodestats::{Direction, Segment, SegmentOptions, Stats};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sends `request` raw and returns everything until the server closes the
/// connection (ask for that with `Connection: close`).
fn exchange(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    String::from_utf8(out).expect("utf-8 response")
}

/// Reads one response from a kept-alive connection: the head, then as
/// many body bytes as Content-Length says (none for a HEAD request).
fn read_response(s: &mut TcpStream, head_request: bool) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("read head"), 1, "closed mid-head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).expect("utf-8 head");
    let len: usize = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0u8; if head_request { 0 } else { len }];
    s.read_exact(&mut body).expect("read body");
    head + &String::from_utf8(body).expect("utf-8 body")
}

fn get(addr: &str, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
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
    served_with(tag, &[])
}

fn served_with(tag: &str, extra: &[&str]) -> Served {
    let name = format!("/nodestats-serve-{tag}-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let stats = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    stats.record_packets(Direction::Incoming, 7, 700, false);
    stats.room_started();
    let args: Vec<&str> = ["--interval", "0.2"].iter().chain(extra).copied().collect();
    let (child, addr) = common::serve(&name, &args);
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
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{post}"
    );
    assert_eq!(header(&post, "allow"), Some("GET, HEAD"));
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

/// stdout and stderr lost their readers (a restarted log shipper):
/// `serve` prints its address and warnings into closed pipes, keeps
/// serving, and stops cleanly on SIGTERM, never by a panic (exit 101).
#[test]
fn lost_log_pipes_never_take_serve_down() {
    let name = common::ShmName::new("serve-lost-pipes");
    let stats = Stats::open(&SegmentOptions::new().name(name.to_string())).unwrap();
    stats.room_started();
    // Port 0 and a non-loopback warning would need a real address; the
    // address line on stdout and the shutdown path are what we exercise.
    let mut child = Command::new(common::nodestats_bin())
        .args([
            "serve",
            "--segment",
            &name,
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read ends before serve writes anything.
    drop(child.stdout.take());
    drop(child.stderr.take());
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "serve exited with its logs gone: {:?}",
        child.try_wait()
    );
    // SAFETY: signalling our own child process by pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "serve did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn a_missing_segment_is_a_clear_error() {
    let name = format!("/nodestats-serve-missing-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let out = Command::new(common::nodestats_bin())
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

#[test]
fn keep_alive_and_pipelining() {
    let s = served("pipeline");
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Three requests in one write: answered in order on the same connection.
    c.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let first = read_response(&mut c, false);
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert_eq!(body(&first), "ok\n");
    let second = read_response(&mut c, false);
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second:.200}");
    assert!(body(&second).contains("livekit_packet_total{"));
    let third = read_response(&mut c, false);
    assert!(third.starts_with("HTTP/1.1 404"), "{third}");
    // The connection is still usable afterwards.
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut c, false).starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn head_answers_headers_without_a_body() {
    let s = served("head");
    let g = get(&s.addr, "/healthz");
    let h = exchange(
        &s.addr,
        b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert_eq!(body(&h), "", "a HEAD answer has no body");
    assert_eq!(header(&h, "content-length"), header(&g, "content-length"));
    assert_eq!(header(&h, "content-type"), header(&g, "content-type"));
    // On a kept-alive connection the next answer follows the bare head.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let head = read_response(&mut c, true);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        header(&head, "content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    let next = read_response(&mut c, false);
    assert_eq!(body(&next), "ok\n", "{next}");
}

#[test]
fn a_request_with_a_body_gets_its_answer() {
    let s = served("body");
    // A body big enough that a server which does not read it resets the
    // connection when it closes, losing its answer.
    let payload = "x".repeat(32 * 1024);
    for (method, status) in [("GET", "200 OK"), ("POST", "405 Method Not Allowed")] {
        let r = exchange(
            &s.addr,
            format!(
                "{method} /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                payload.len()
            )
            .as_bytes(),
        );
        assert!(r.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{r:.200}");
    }
}

#[test]
fn gzip_when_the_scraper_asks_for_it() {
    let s = served("gzip");
    let ask = |enc: &str| -> Vec<u8> {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The header Prometheus sends.
        write!(
            c,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {enc}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        out
    };
    let raw = ask("gzip");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    assert_eq!(
        header(&head, "vary"),
        Some("accept-encoding, accept"),
        "{head}"
    );
    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
    assert_eq!(len, raw.len() - split);
    let mut text = String::new();
    flate2::read::GzDecoder::new(&raw[split..])
        .read_to_string(&mut text)
        .expect("a gzip body");
    assert!(text.lines().any(|l| l.starts_with("livekit_packet_total{")
        && l.contains("direction=\"incoming\"")
        && l.ends_with(" 7")));
    assert!(text.len() > len, "gzip did not shrink the page");

    // Refused (q=0) or not offered: plain text.
    for enc in ["gzip;q=0", "identity", "br"] {
        let plain = String::from_utf8(ask(enc)).unwrap();
        assert!(plain.starts_with("HTTP/1.1 200 OK\r\n"));
        assert_eq!(header(&plain, "content-encoding"), None, "{enc}");
        assert!(body(&plain).contains("livekit_packet_total{"));
    }
}

#[test]
fn an_overloaded_server_answers_503_over_http() {
    let s = served_with("busy", &["--max-connections", "4"]);
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&s.addr).unwrap())
        .collect();
    for c in &mut held {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert!(read_response(c, false).starts_with("HTTP/1.1 200"));
    }
    // Over the bound: a real answer, read to its end without a reset, with
    // the request's body read too.
    let busy = exchange(
        &s.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert!(
        busy.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{busy:.200}"
    );
    assert_eq!(header(&busy, "retry-after"), Some("1"));
    assert_eq!(header(&busy, "connection"), Some("close"));
    // The held connections keep working; once they go, scrapes do again.
    for c in &mut held {
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert!(read_response(c, false).starts_with("HTTP/1.1 200"));
    }
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(&s.addr, "/healthz");
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still busy: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Milliseconds of one fresh-connection scrape of /metrics.
fn scrape_ms(addr: &str) -> f64 {
    let t = Instant::now();
    let m = get(addr, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m:.200}");
    t.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn a_thousand_idle_or_slow_connections_do_not_delay_scrapes() {
    common::raise_nofile(4096);
    let s = served("idle");
    let before: Vec<f64> = (0..10).map(|_| scrape_ms(&s.addr)).collect();
    // Half say nothing; half send a request head a few bytes at a time.
    let mut conns: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&s.addr).expect("connect"))
        .collect();
    for c in conns.iter_mut().skip(500) {
        c.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let after: Vec<f64> = (0..10)
        .map(|i| {
            if i % 2 == 0 {
                for c in conns.iter_mut().skip(500) {
                    let _ = c.write_all(b"s");
                }
            }
            scrape_ms(&s.addr)
        })
        .collect();
    let delay = median(after.clone()) - median(before.clone());
    println!("scrape ms before: {before:.1?}, with 1000 idle/slow connections: {after:.1?}");
    assert!(
        delay < 100.0,
        "idle connections delayed scrapes by {delay:.1} ms"
    );
    let worst = after.iter().copied().fold(0.0, f64::max);
    assert!(worst < 1000.0, "a scrape took {worst:.1} ms");
}

#[test]
fn slow_and_idle_clients_are_cut_off_by_the_header_timeout() {
    common::raise_nofile(4096);
    let s = served("trickle");
    let mut conns: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(&s.addr).expect("connect"))
        .collect();
    // One after a full request: an idle kept-alive connection.
    conns[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    conns[0]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(read_response(&mut conns[0], false).starts_with("HTTP/1.1 200"));
    for c in &conns {
        c.set_nonblocking(true).unwrap();
    }
    // Half trickle a request head a byte every 200 ms; all must be closed
    // by the server within its header timeout (plus slack), while scrapes
    // stay fast.
    let t = Instant::now();
    let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut open = conns.len();
    let mut closed_at = vec![None; conns.len()];
    let mut worst_scrape = 0.0f64;
    let mut step = 0;
    while open > 0 && t.elapsed() < Duration::from_secs(15) {
        for (i, c) in conns.iter_mut().enumerate() {
            if closed_at[i].is_some() {
                continue;
            }
            if i % 2 == 1 {
                let b = head.get(step).copied().unwrap_or(b'y');
                let _ = c.write(&[b]);
            }
            let mut buf = [0u8; 512];
            match c.read(&mut buf) {
                Ok(0) => {}
                Ok(_) => continue, // an error answer (408) is fine; wait for the close
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(_) => {}
            }
            closed_at[i] = Some(t.elapsed());
            open -= 1;
        }
        worst_scrape = worst_scrape.max(scrape_ms(&s.addr));
        step += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = closed_at.iter().flatten().max().copied();
    println!("{open} left open; last closed after {last:?}; worst scrape {worst_scrape:.1} ms");
    assert_eq!(open, 0, "{open} slow or idle connections were never closed");
    assert!(last.unwrap() < Duration::from_secs(12));
    assert!(worst_scrape < 1000.0, "a scrape took {worst_scrape:.1} ms");
}

/// Polls `path` until `check` holds for the whole response, or panics
/// after `within`.
fn wait_for(addr: &str, path: &str, within: Duration, check: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + within;
    loop {
        let r = get(addr, path);
        if check(&r) {
            return r;
        }
        assert!(Instant::now() < end, "{path} never matched; last:\n{r}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_follows_the_segment_when_the_sfu_restarts() {
    let name = format!("/nodestats-serve-{}-restart", std::process::id());
    let _ = Segment::unlink(&name);
    let first = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    first.record_packets(Direction::Incoming, 7, 700, false);
    let (mut child, addr) = common::serve(&name, &["--interval", "0.5"]);
    let old = format!("{:032x}", first.segment().id());
    wait_for(&addr, "/metrics", Duration::from_secs(3), |r| {
        r.contains(&old)
    });
    assert!(get(&addr, "/healthz").starts_with("HTTP/1.1 200"));

    // The SFU restarts: the segment is removed and made anew.
    drop(first);
    Segment::unlink(&name).unwrap();
    let second = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    second.record_packets(Direction::Incoming, 3, 300, false);
    let new = format!("{:032x}", second.segment().id());
    let start = Instant::now();
    let r = wait_for(&addr, "/metrics", Duration::from_secs(3), |r| {
        r.contains(&new)
    });
    assert!(
        start.elapsed() <= Duration::from_millis(1000) + Duration::from_millis(200),
        "took {:?}: more than two update intervals",
        start.elapsed()
    );
    assert!(!r.contains(&old), "still exporting the orphaned mapping");
    assert!(
        r.contains("nodestats_collector_reattaches_total{")
            || r.contains("nodestats_collector_reattaches_total 1")
    );
    wait_for(&addr, "/stats", Duration::from_secs(2), |r| {
        r.contains("\"packets_in\": 3")
    });
    assert!(get(&addr, "/healthz").starts_with("HTTP/1.1 200"));

    // Removed and not back: health says so; back: healthy again.
    Segment::unlink(&name).unwrap();
    wait_for(&addr, "/healthz", Duration::from_secs(2), |r| {
        r.starts_with("HTTP/1.1 503") && r.contains("removed")
    });
    let third = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    wait_for(&addr, "/healthz", Duration::from_secs(2), |r| {
        r.starts_with("HTTP/1.1 200")
    });
    drop((second, third));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    Segment::unlink(&name).unwrap();
}

#[test]
fn serve_survives_a_segment_shrunk_under_it() {
    let dir = std::env::temp_dir().join(format!("nodestats-serve-{}-shrink", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("{}/seg", dir.display());
    let w = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    w.record_packets(Direction::Outgoing, 4, 400, false);
    let (mut child, addr) = common::serve(&name, &["--interval", "0.5"]);
    wait_for(&addr, "/healthz", Duration::from_secs(3), |r| {
        r.starts_with("HTTP/1.1 200")
    });
    // `truncate -s 4096` on the live segment.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&name)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let r = wait_for(&addr, "/healthz", Duration::from_secs(2), |r| {
        r.starts_with("HTTP/1.1 503")
    });
    assert!(r.contains("shrank"), "{r}");
    // Scrapes still answer (without the segment's series) and serve lives.
    let m = get(&addr, "/metrics");
    assert!(m.starts_with("HTTP/1.1 200"), "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("nodestats_segment_current{") && l.ends_with(" 0")),
        "{m}"
    );
    assert!(child.try_wait().unwrap().is_none(), "serve died");
    // A valid segment back at the name: re-attached, healthy.
    std::fs::remove_file(&name).unwrap();
    let again = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    again.record_packets(Direction::Outgoing, 1, 100, false);
    wait_for(&addr, "/healthz", Duration::from_secs(2), |r| {
        r.starts_with("HTTP/1.1 200")
    });
    drop((w, again));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
