//! `nodestats serve` under load: 50 concurrent scrapers for 10 s on
//! loopback get no errors, and the exporter's resident memory stays flat
//! and under 30 MiB; the same with 1000 idle or slow connections held open
//! (reopened as the server's header timeout closes them) while 10
//! scrapers run. `NODESTATS_LOAD_SECS` runs them longer (default 10).

mod common;

use nodestats::{Direction, Family, Segment, SegmentOptions, Stats};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn scrape(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut body = Vec::new();
    s.read_to_end(&mut body).is_ok()
        && body.starts_with(b"HTTP/1.1 200 OK")
        && body.windows(21).any(|w| w == b"livekit_packet_total{")
}

fn load_secs() -> u64 {
    std::env::var("NODESTATS_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10u64)
}

/// A segment with 1000 labeled series, like a busy node's.
fn busy_segment(name: &str) -> Stats {
    let _ = Segment::unlink(name);
    let stats = Stats::open(&SegmentOptions::new().name(name.to_string())).unwrap();
    stats.record_packets(Direction::Incoming, 10, 1000, false);
    for i in 0..1000u64 {
        let c = format!("C{i}");
        stats
            .series(Family::NackTotal, &["incoming", &c])
            .unwrap()
            .inc_by(i);
    }
    stats
}

/// Flat: after sample `settle` (samples are 0.5 s apart), no growth
/// beyond a small margin. The end is the median of the last four samples,
/// so one sample taken mid-render does not decide it.
fn assert_flat(rss: &[u64], settle: usize) {
    let max = *rss.iter().max().unwrap();
    assert!(max <= 30 * 1024, "exporter RSS reached {max} KiB");
    let settled = rss[settle];
    let mut tail = rss[rss.len() - 4..].to_vec();
    tail.sort_unstable();
    let last = tail[1];
    assert!(
        last <= settled + settled / 5 + 1024,
        "RSS grew from {settled} to {last} KiB"
    );
}

#[test]
fn fifty_concurrent_scrapers_for_ten_seconds() {
    let name = format!("/nodestats-load-{}", std::process::id());
    let _stats = busy_segment(&name);
    let (mut child, addr) = common::serve(&name, &["--interval", "1"]);
    let pid = child.id();

    let secs = load_secs();
    let run = Duration::from_secs(secs);
    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let start = Instant::now();
    let mut rss = Vec::new();
    std::thread::scope(|s| {
        for _ in 0..50 {
            s.spawn(|| {
                while start.elapsed() < run {
                    if scrape(&addr) {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        while start.elapsed() < run {
            std::thread::sleep(Duration::from_millis(500));
            rss.push(rss_kib(pid));
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    Segment::unlink(&name).unwrap();
    let (ok, failed) = (ok.into_inner(), failed.into_inner());
    println!("{secs} s: {ok} scrapes ok, {failed} failed; RSS KiB every 0.5 s: {rss:?}");
    assert_eq!(failed, 0, "{failed} failed scrapes");
    assert!(ok > 50 * secs, "only {ok} scrapes in {secs} s");
    // After the first two seconds.
    assert_flat(&rss, 4);
}

/// Opens a connection that is idle (`slow == false`) or has sent the
/// start of a request head and stops there.
fn idle_conn(addr: &str, slow: bool) -> TcpStream {
    let mut c = TcpStream::connect(addr).expect("connect");
    if slow {
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
    }
    c.set_nonblocking(true).unwrap();
    c
}

#[test]
fn a_thousand_idle_connections_for_ten_seconds() {
    common::raise_nofile(4096);
    let name = format!("/nodestats-load-idle-{}", std::process::id());
    let _stats = busy_segment(&name);
    let (mut child, addr) = common::serve(&name, &["--interval", "1"]);
    let pid = child.id();
    let secs = load_secs();
    let run = Duration::from_secs(secs);
    let mut conns: Vec<TcpStream> = (0..1000).map(|i| idle_conn(&addr, i % 2 == 1)).collect();
    let (ok, failed, reopened) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let worst_us = AtomicU64::new(0);
    let start = Instant::now();
    let mut rss = Vec::new();
    std::thread::scope(|s| {
        for _ in 0..10 {
            s.spawn(|| {
                while start.elapsed() < run {
                    let t = Instant::now();
                    if scrape(&addr) {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    worst_us.fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
            });
        }
        // Keep 1000 open: reopen what the server's header timeout closes.
        s.spawn(|| {
            while start.elapsed() < run {
                for (i, c) in conns.iter_mut().enumerate() {
                    let mut b = [0u8; 256];
                    let closed = match c.read(&mut b) {
                        Ok(_) => true,
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                    };
                    if closed {
                        *c = idle_conn(&addr, i % 2 == 1);
                        reopened.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        while start.elapsed() < run {
            std::thread::sleep(Duration::from_millis(500));
            rss.push(rss_kib(pid));
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    Segment::unlink(&name).unwrap();
    let (ok, failed) = (ok.into_inner(), failed.into_inner());
    let worst_ms = worst_us.into_inner() as f64 / 1e3;
    println!(
        "{secs} s with 1000 idle/slow connections ({} reopened): {ok} scrapes ok, {failed} failed, worst {worst_ms:.1} ms; RSS KiB every 0.5 s: {rss:?}",
        reopened.into_inner()
    );
    assert_eq!(failed, 0, "{failed} failed scrapes");
    assert!(ok > 10 * secs, "only {ok} scrapes in {secs} s");
    // What idle connections could do wrong is make a scrape wait for one
    // of them: behind a connection's 5 s header timeout, or forever. A
    // scrape slower than that bound is such a wait; one merely slowed by a
    // busy machine (1.1 s was seen with other builds running) is not, so
    // the bound is the header timeout, not a speed.
    assert!(
        worst_ms < 4000.0,
        "a scrape took {worst_ms:.1} ms: it waited behind an idle connection"
    );
    // After the first round of header timeouts (5 s) has closed and
    // reopened every connection. Until then part of the slow connections'
    // buffers (16 KiB each, hyper's) is allocated but not yet touched, so
    // RSS climbs towards the live heap, which stays flat (~14.6 MiB live
    // with 500 slow + 500 idle connections, measured with a counting
    // allocator): over 30 s RSS went 13.7, 17.3, 18.6, 19.4, 19.6, 19.7 MiB
    // at 5 s steps.
    assert!(
        secs >= 8,
        "NODESTATS_LOAD_SECS must be at least 8 for this test"
    );
    assert_flat(&rss, 11);
}
