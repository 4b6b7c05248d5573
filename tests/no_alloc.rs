//! The record path never allocates: a counting global allocator watches a
//! million records of every hot-path call, the thread writer's included.

mod common;

use nodestats::{Collector, Direction, Family, FamilySpec, SegmentOptions, Stats, WriteMode};

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

use common::allocs;

#[test]
fn recording_allocates_nothing() {
    let name = std::env::temp_dir().join(format!("nodestats-noalloc-{}", std::process::id()));
    let _ = std::fs::remove_file(&name);
    // The default mode (rseq where available) and atomic mode.
    for opts in [
        SegmentOptions::new(),
        SegmentOptions::new().name(name.to_str().unwrap().to_string()),
        SegmentOptions::new().write_mode(WriteMode::Atomic),
    ] {
        let stats = Stats::open(&opts).unwrap();
        let thread = stats.thread_writer().unwrap();
        let nacks = thread
            .series(Family::NackTotal, &["incoming", "FR"])
            .unwrap();
        let rtt = thread
            .series(Family::RttMs, &["outgoing", "MICROPHONE", "AUDIO", "FR"])
            .unwrap();
        let gauge = thread
            .series(Family::PsrpcStreamCount, &["server", "Svc", "M"])
            .unwrap();
        assert!(nacks.in_row() && rtt.in_row() && !gauge.in_row());
        // Declared families, per-CPU and in the row.
        let rooms = stats
            .declare(&FamilySpec::counter("sfu_room_packets_total", "").labels(&["room"]))
            .unwrap();
        let delay = stats
            .declare(&FamilySpec::histogram(
                "sfu_delay_seconds",
                "",
                &[0.001, 0.01],
            ))
            .unwrap();
        let transports = stats
            .declare(&FamilySpec::gauge("sfu_transports", "").labels(&["protocol"]))
            .unwrap();
        let d_room = rooms.series(&["blue"]).unwrap();
        let d_delay = delay.series(&[]).unwrap();
        let d_gauge = transports.series(&["udp"]).unwrap();
        let t_room = thread.series(&rooms, &["blue"]).unwrap();
        let t_delay = thread.series(&delay, &[]).unwrap();
        assert!(t_room.in_row() && t_delay.in_row());
        // A native histogram (every branch: buckets, zero, negative, NaN,
        // clamped), per CPU and from the row.
        let native = stats
            .declare(&FamilySpec::histogram("sfu_rtt_native_ms", "", &[10.0]).native(3))
            .unwrap();
        let n_cpu = native.series(&[]).unwrap();
        let n_row = thread.series(&native, &[]).unwrap();
        let odd = [0.0, -4.0, f64::NAN, 1e12, f64::INFINITY];
        // Warm up: first use of a thread-local or lazy path may allocate.
        stats.record_packets(Direction::Incoming, 1, 1, false);
        let before = allocs();
        for i in 0..1_000_000u64 {
            common::record_packet_round(&stats, i);
            thread.record_packets(Direction::Incoming, 1, 1200, false);
            thread.record_packet(Direction::Outgoing, 1200, i % 16 == 0);
            thread.record_rtcp(Direction::Incoming, 1, 1, 1);
            nacks.inc_by(1);
            rtt.observe((i % 200) as f64);
            gauge.add(if i % 2 == 0 { 1 } else { -1 });
            d_room.inc_by(1);
            t_room.inc_by(1);
            d_delay.observe(0.002);
            t_delay.observe(0.0005);
            d_gauge.add(if i % 2 == 0 { 1 } else { -1 });
            n_cpu.observe((i % 200) as f64 + 0.5);
            n_row.observe(odd[(i % 5) as usize]);
        }
        for _ in 0..10_000 {
            thread.forward_latency(1000);
            thread.forward_jitter(10);
        }
        for _ in 0..10_000 {
            common::record_event_round(&stats);
        }
        let during = allocs() - before;
        assert_eq!(during, 0, "{during} allocations on the record path");
        // The counter works: the collector allocates (it builds a NodeStats).
        let ns = Collector::new(stats.segment().clone(), Default::default())
            .unwrap()
            .update();
        assert!(allocs() > before);
        assert_eq!(ns.packets_in, 1 + 32_000_000 + 1_000_000);
        // Per-CPU rounds, the row and the thread series: 1M NACKs each.
        assert_eq!(ns.nack_total, 3_000_000);
        let (all, _) = nodestats::__testing::read_all(stats.segment());
        let room = all
            .iter()
            .find(|s| s.family == rooms.id() && s.labels[0] == "blue")
            .unwrap();
        assert_eq!(room.value, 2_000_000, "declared counter, both paths");
        let d = all.iter().find(|s| s.family == delay.id()).unwrap();
        assert_eq!(
            d.buckets,
            vec![1_000_000, 1_000_000, 0],
            "declared histogram"
        );
        let n = all.iter().find(|s| s.family == native.id()).unwrap();
        // 1 bound, +Inf, then zero, clamped, the spans (§8b).
        assert_eq!(
            n.buckets[..4],
            [50_000 + 400_000, 950_000 + 600_000, 200_000, 400_000]
        );
    }
    let _ = std::fs::remove_file(&name);
}
