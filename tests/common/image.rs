//! A real segment as bytes, for the hostile-segment tests and the fuzz
//! target (`fuzz/` includes this file by path) to start from.

use nodestats::{Capacities, Direction, Family, FamilySpec, SegmentOptions, Stats};
use std::path::Path;

/// Creates a segment at `path` (1 shard, 2 writer slots, small series and
/// family capacities) with data in every region — packets, RTCP, room and
/// participant gauges, a counter series and a histogram series, and two
/// declared families (a labeled counter and a histogram) with a series
/// each — and returns its bytes. The writer's slot stays
/// marked active in the image while its lock does not come along: to a
/// reader of the copy it is a dead writer. `path` is removed afterwards.
pub fn real_segment_image(path: &Path) -> Vec<u8> {
    let _ = std::fs::remove_file(path);
    let opts = SegmentOptions::new()
        .name(path.to_str().expect("a UTF-8 path"))
        .shards(1)
        .writer_slots(2)
        .capacities(Capacities {
            series: 256,
            strings: 256,
            values_per_block: 1024,
            families: 8,
        });
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
    let rooms = FamilySpec::counter("sfu_room_bytes_total", "Bytes per room.")
        .labels(&["room"])
        .max_series(4);
    w.declare(&rooms)
        .unwrap()
        .series(&["blue"])
        .unwrap()
        .inc_by(1200);
    let delay =
        FamilySpec::histogram("sfu_delay_seconds", "Delay.", &[0.001, 0.01]).unit("seconds");
    w.declare(&delay)
        .unwrap()
        .series(&[])
        .unwrap()
        .observe(0.002);
    let bytes = std::fs::read(path).unwrap();
    drop(w);
    std::fs::remove_file(path).unwrap();
    bytes
}
