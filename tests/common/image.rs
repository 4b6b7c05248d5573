//! A real segment as bytes, for the hostile-segment tests and the fuzz
//! target (`fuzz/` includes this file by path) to start from.

use nodestats::{Direction, Family, SegmentOptions, Stats};
use std::path::Path;

/// Creates a segment at `path` (1 shard, 2 writer slots) with data in every
/// region — packets, RTCP, room and participant gauges, a counter series
/// and a histogram series — and returns its bytes. The writer's slot stays
/// marked active in the image while its lock does not come along: to a
/// reader of the copy it is a dead writer. `path` is removed afterwards.
pub fn real_segment_image(path: &Path) -> Vec<u8> {
    let _ = std::fs::remove_file(path);
    let opts = SegmentOptions::new()
        .name(path.to_str().expect("a UTF-8 path"))
        .shards(1)
        .writer_slots(2);
    let w = Stats::open(&opts).unwrap();
    w.record_packets(Direction::Incoming, 10, 12_000, false);
    w.record_rtcp(Direction::Outgoing, 3, 1, 0);
    w.room_started();
    w.participant_added();
    w.series(Family::NackTotal, &["incoming", "FR"])
        .unwrap()
        .inc_by(4);
    w.series(Family::RttMs, &["outgoing", "CAMERA", "VIDEO", "x"])
        .unwrap()
        .observe(33.0);
    let bytes = std::fs::read(path).unwrap();
    drop(w);
    std::fs::remove_file(path).unwrap();
    bytes
}
