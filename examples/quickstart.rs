//! The README's Rust quick start, compiled by `cargo test --all-targets`
//! and runnable with `cargo run --example quickstart`.

use nodestats::{CollectorConfig, Direction, Segment, SegmentOptions, Stats, TrackKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("/sfu-quickstart-{}", std::process::id());

    // Writers: open (create or attach) a named segment. "/sfu" is /dev/shm/sfu;
    // a path with a '/' in it is a file; no name is an in-process segment.
    let stats = Stats::open(&SegmentOptions::new().name(name.clone()))?;

    // Per recvmmsg batch: packets and bytes in one call.
    stats.record_packets(Direction::Incoming, 32, 38_400, false);
    stats.record_packets(Direction::Outgoing, 1, 1200, true); // a retransmit
    stats.record_rtcp(Direction::Incoming, 2, 0, 0); // NACKs, PLIs, FIRs
    stats.room_started();
    stats.participant_added();
    stats.track_published(TrackKind::Video);

    // Collector (any process): read-only attach, update every 2 s.
    let mut collector = nodestats::Collector::attach(&name, CollectorConfig::default())?;
    let ns = collector.update();
    println!("{}", serde_json::to_string(&ns)?); // protobuf field names

    // Rates need two updates (one per interval, 10 s by default):
    std::thread::sleep(std::time::Duration::from_secs(2));
    stats.record_packets(Direction::Incoming, 64, 76_800, false);
    let ns = collector.update();
    println!(
        "{} B/s in over {:.1} s",
        ns.rates[0].bytes_in, ns.rates[0].window_seconds
    );

    Segment::unlink(&name)?;
    Ok(())
}
