//! What operators do to a media server, done to the library: the SFU
//! restarts (its segment is removed and recreated), an operator shrinks
//! the segment file under a live mapping, a writer adds a bogus value.
//! Collectors and the exporter must follow, report and never fault.

use nodestats::{
    Collector, CollectorConfig, Direction, Error, Exporter, SegmentOptions, SegmentStatus, Stats,
};
use std::sync::Arc;
use std::time::Duration;

fn config() -> CollectorConfig {
    CollectorConfig {
        update_interval: Duration::from_millis(100),
        rate_intervals: vec![Duration::from_secs(1)],
        system: None,
        ..CollectorConfig::default()
    }
}

fn shm_name(tag: &str) -> String {
    format!("/nodestats-ops-{}-{tag}", std::process::id())
}

/// A path-backed segment name in a fresh directory (so the test can
/// truncate the file).
fn path_name(tag: &str) -> (tempdir::Dir, String) {
    let dir = tempdir::Dir::new(tag);
    let name = format!("{}/seg", dir.0.display());
    (dir, name)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let p =
                std::env::temp_dir().join(format!("nodestats-ops-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[test]
fn the_collector_follows_the_name_when_the_writer_restarts() {
    let name = shm_name("restart");
    let _ = nodestats::Segment::unlink(&name);
    let first = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    first.record_packets(Direction::Incoming, 1000, 1_200_000, false);
    let mut c = Collector::attach(&name, config()).unwrap();
    let exporter = Exporter::new(c.segment().clone(), "n", "SERVER").unwrap();
    let state = exporter.state();
    let ns = c.try_update().unwrap();
    assert_eq!(ns.packets_in, 1000);
    let old_id = first.segment().id();

    // The SFU restarts: its segment is removed and made anew.
    drop(first);
    nodestats::Segment::unlink(&name).unwrap();
    let second = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    second.record_packets(Direction::Incoming, 10, 12_000, false);
    std::thread::sleep(Duration::from_millis(100));

    let ns = c.try_update().unwrap();
    assert_ne!(second.segment().id(), old_id);
    assert_eq!(c.segment().id(), second.segment().id(), "re-attached");
    assert_eq!(
        ns.packets_in, 10,
        "the new segment's counters, not the orphan's"
    );
    assert_eq!(ns.segment_id, format!("{:032x}", second.segment().id()));
    assert_eq!(c.anomalies().reattaches, 1);
    assert_eq!(c.segment_status(), SegmentStatus::Current);
    let r = &ns.rates[0];
    assert!(
        r.packets_in >= 0.0 && r.packets_in <= 10.0 / 0.1,
        "a restart is a reset, never a wrapped or negative rate: {}",
        r.packets_in
    );
    assert_eq!(r.resets, 1);

    // The exporter reads what the collector follows.
    state.publish_segment(c.segment(), c.segment_status());
    state.publish(&ns, c.anomalies());
    let text = exporter.text();
    assert!(
        text.contains(&format!("{:032x}", second.segment().id())),
        "{text}"
    );
    assert_eq!(metric(&text, "nodestats_segment_current"), 1.0);
    assert_eq!(metric(&text, "nodestats_collector_reattaches_total"), 1.0);
    nodestats::Segment::unlink(&name).unwrap();
}

#[test]
fn a_removed_segment_is_reported_until_one_is_back_at_the_name() {
    let name = shm_name("removed");
    let _ = nodestats::Segment::unlink(&name);
    let w = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    w.room_started();
    let mut c = Collector::attach(&name, config()).unwrap();
    c.try_update().unwrap();
    nodestats::Segment::unlink(&name).unwrap();
    // The orphaned mapping is whole: still read, but flagged.
    let ns = c.try_update().unwrap();
    assert_eq!(ns.num_rooms, 1);
    assert_eq!(c.segment_status(), SegmentStatus::Removed);
    assert_eq!(
        w.segment().status().unwrap(),
        SegmentStatus::Removed,
        "the writer can ask"
    );
    let back = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    let ns = c.try_update().unwrap();
    assert_eq!(c.segment_status(), SegmentStatus::Current);
    assert_eq!(c.segment().id(), back.segment().id());
    assert_eq!(ns.num_rooms, 0);
    assert_eq!(w.segment().status().unwrap(), SegmentStatus::Replaced);
    nodestats::Segment::unlink(&name).unwrap();
}

#[test]
fn a_segment_shrunk_under_the_mapping_is_an_error_not_a_fault() {
    let (_dir, name) = path_name("shrunk");
    let w = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    w.record_packets(Direction::Outgoing, 5, 500, false);
    let mut c = Collector::attach(&name, config()).unwrap();
    let exporter = Exporter::new(c.segment().clone(), "n", "SERVER").unwrap();
    assert_eq!(c.try_update().unwrap().packets_out, 5);

    // `truncate -s 4096` on the live segment.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&name)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let got = c.try_update();
    assert!(
        matches!(got, Err(Error::SizeMismatch { file: 4096, .. })),
        "{got:?}"
    );
    assert!(matches!(
        c.segment_status(),
        SegmentStatus::Shrunk { size: 4096, .. }
    ));
    // The infallible update repeats the last one instead of faulting.
    assert_eq!(c.update().packets_out, 5);
    assert_eq!(c.anomalies().segment_errors, 2);
    // A scrape of the shrunk segment exports no segment series, and says so.
    exporter
        .state()
        .publish_segment(c.segment(), c.segment_status());
    let text = exporter.text();
    assert_eq!(metric(&text, "nodestats_segment_current"), 0.0);
    assert!(!text.contains("livekit_packet_total{"), "{text}");

    // A valid segment back at the name: the collector re-attaches.
    std::fs::remove_file(&name).unwrap();
    let again = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    again.record_packets(Direction::Outgoing, 2, 200, false);
    let ns = c.try_update().unwrap();
    assert_eq!(ns.packets_out, 2);
    assert_eq!(c.segment_status(), SegmentStatus::Current);
}

#[test]
fn a_counter_that_goes_down_is_an_anomaly_not_a_spike() {
    let stats = Stats::anonymous().unwrap();
    let mut c = Collector::new(stats.segment().clone(), config()).unwrap();
    stats.record_packets(Direction::Incoming, 1_000_000, 1_000_000_000, false);
    c.update();
    std::thread::sleep(Duration::from_millis(100));
    // A failed recv() returned -1 and the SFU counted it as a length.
    stats.record_packets(Direction::Incoming, 0, u64::MAX, false);
    std::thread::sleep(Duration::from_millis(100));
    let ns = c.update();
    let r = &ns.rates[0];
    assert!(
        r.bytes_in < 1e3,
        "the decrease must not turn into the counter's whole lifetime: {} B/s",
        r.bytes_in
    );
    assert_eq!(r.resets, 0);
    assert_eq!(c.anomalies().decreases, 1);
    assert_eq!(c.anomalies().resets, 0);
    let _ = Arc::clone(stats.segment());
}

#[test]
fn a_read_racing_a_truncate_reads_zeros_never_faults() {
    let (_dir, name) = path_name("race");
    let w = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    w.record_packets(Direction::Outgoing, 5, 500, false);
    w.room_started();
    let ro = nodestats::Segment::attach(&name, nodestats::Access::ReadOnly).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&name)
        .unwrap()
        .set_len(4096)
        .unwrap();
    // `Totals::read` checks nothing first: the read lands on pages past
    // the file's end, exactly what a truncate between a collector's size
    // check and its read does. It must read zeros, not kill the process.
    let t = nodestats::Totals::read(&ro);
    // The shards sit in the first page, which the file still has; the
    // slots and series past it read as zeros.
    assert_eq!(t.get(nodestats::Counter::PacketsOutInitial), 5);
    // And a collector on that mapping reports the shrink.
    let mut c = Collector::new(Arc::new(ro), config()).unwrap();
    assert!(matches!(c.try_update(), Err(Error::SizeMismatch { .. })));
}
