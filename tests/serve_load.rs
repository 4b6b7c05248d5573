//! `nodestats serve` under load: 50 concurrent scrapers for 10 s on
//! loopback get no errors, and the exporter's resident memory stays flat
//! and under 30 MiB. `NODESTATS_LOAD_SECS` runs it longer (default 10).

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

    let secs = std::env::var("NODESTATS_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10u64);
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
    let max = *rss.iter().max().unwrap();
    assert!(max <= 30 * 1024, "exporter RSS reached {max} KiB");
    // Flat: after the first two seconds, no growth beyond a small margin.
    // The end is the median of the last four samples, so one sample taken
    // mid-render does not decide it.
    let settled = rss[4];
    let mut tail = rss[rss.len() - 4..].to_vec();
    tail.sort_unstable();
    let last = tail[1];
    assert!(
        last <= settled + settled / 5 + 1024,
        "RSS grew from {settled} to {last} KiB"
    );
}
