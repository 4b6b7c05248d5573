//! `nodestats serve` under load: 50 concurrent scrapers for 10 s on
//! loopback get no errors, and the exporter's resident memory stays flat
//! and under 30 MiB.

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

#[test]
fn fifty_concurrent_scrapers_for_ten_seconds() {
    let name = format!("/nodestats-load-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let stats = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    stats.record_packets(Direction::Incoming, 10, 1000, false);
    for i in 0..1000u64 {
        let c = format!("C{i}");
        stats
            .series(Family::NackTotal, &["incoming", &c])
            .unwrap()
            .inc_by(i);
    }
    let (mut child, addr) = common::serve(&name, &["--interval", "1"]);
    let pid = child.id();

    let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let start = Instant::now();
    let mut rss = Vec::new();
    std::thread::scope(|s| {
        for _ in 0..50 {
            s.spawn(|| {
                while start.elapsed() < Duration::from_secs(10) {
                    if scrape(&addr) {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        while start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(500));
            rss.push(rss_kib(pid));
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    Segment::unlink(&name).unwrap();
    let (ok, failed) = (ok.into_inner(), failed.into_inner());
    println!("scrapes: {ok} ok, {failed} failed; RSS KiB every 0.5 s: {rss:?}");
    assert_eq!(failed, 0, "{failed} failed scrapes");
    assert!(ok > 500, "only {ok} scrapes in 10 s");
    let max = *rss.iter().max().unwrap();
    assert!(max <= 30 * 1024, "exporter RSS reached {max} KiB");
    // Flat: after the first two seconds, no growth beyond a small margin.
    let settled = rss[4];
    let last = *rss.last().unwrap();
    assert!(
        last <= settled + settled / 5 + 1024,
        "RSS grew from {settled} to {last} KiB"
    );
}
