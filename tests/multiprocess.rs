//! Several processes on one named segment: exact totals, concurrent
//! creation, and the gauges of a SIGKILLed writer disappearing.
//!
//! `harness = false`: the same binary is the parent (running the checks)
//! and, with `child ...` arguments, the writer processes it spawns.

mod common;

use nodestats::{Collector, CollectorConfig, Direction, Segment, SegmentOptions, Stats};
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

const THREADS: u64 = 2;

fn child_main(args: &[String]) {
    let name = &args[1];
    let opts = SegmentOptions::new().name(name.clone());
    match args[0].as_str() {
        // Record `n` packets of `id + 1` bytes from THREADS threads.
        "writer" => {
            let id: u64 = args[2].parse().unwrap();
            let n: u64 = args[3].parse().unwrap();
            let stats = Stats::open(&opts).unwrap();
            std::thread::scope(|s| {
                for _ in 0..THREADS {
                    s.spawn(|| {
                        for _ in 0..n / THREADS {
                            stats.record_packets(Direction::Incoming, 1, id + 1, false);
                        }
                    });
                }
            });
            stats.room_started();
            stats.room_ended();
        }
        // Record, raise gauges, say so, then wait to be killed.
        "holder" => {
            let n: u64 = args[2].parse().unwrap();
            let stats = Stats::open(&opts).unwrap();
            stats.record_packets(Direction::Outgoing, n, n * 10, false);
            for _ in 0..3 {
                stats.room_started();
            }
            stats.participant_added();
            // Labeled gauges: through the LiveKit call and through a handle.
            stats.psrpc_stream_opened("server", "Signal", "Relay");
            stats.add_ref("room", 2);
            let handle = stats
                .series(nodestats::Family::DebugRefCount, &["track"])
                .unwrap();
            handle.add(5);
            std::mem::forget(handle);
            common::ready_then_wait()
        }
        // Raise 3 rooms, fork a helper that keeps the inherited handle and
        // also opens its own (one participant), then wait to be killed.
        "forking-holder" => {
            let stats = Stats::open(&opts).unwrap();
            for _ in 0..3 {
                stats.room_started();
            }
            // SAFETY: this process has one thread; the child only opens a
            // handle, records, prints and sleeps.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                let own = Stats::open(&opts).unwrap();
                own.participant_added();
                println!("helper {}", std::process::id());
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    // The inherited handle stays alive in the helper.
                    std::hint::black_box(&stats);
                }
            }
            common::ready_then_wait()
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn seg_name(tag: &str) -> String {
    format!("/nodestats-mp-{}-{tag}", std::process::id())
}

fn collector(name: &str) -> Collector {
    let cfg = CollectorConfig {
        system: None,
        ..CollectorConfig::default()
    };
    Collector::attach(name, cfg).unwrap()
}

fn exact_totals_from_several_processes() {
    let name = seg_name("totals");
    let _ = Segment::unlink(&name);
    let procs: u64 = 4;
    let n: u64 = 100_000;
    // Every child races to create the segment: one creates, the rest attach.
    let children: Vec<Child> = (0..procs)
        .map(|id| common::spawn_child(&["writer", &name, &id.to_string(), &n.to_string()]))
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a writer failed");
    }
    let ns = collector(&name).update();
    assert_eq!(ns.packets_in, procs * n);
    assert_eq!(ns.bytes_in, (1..=procs).map(|i| i * n).sum::<u64>());
    assert_eq!(ns.num_rooms, 0);
    Segment::unlink(&name).unwrap();
}

fn gauges_of_a_killed_writer_disappear() {
    let name = seg_name("kill");
    let _ = Segment::unlink(&name);
    let survivor = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    survivor.room_started();
    let mut child = common::spawn_child(&["holder", &name, "5000"]);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let mut c = collector(&name);
    let ns = c.update();
    assert_eq!((ns.num_rooms, ns.num_clients, ns.live_writers), (4, 1, 2));
    // The survivor holds labeled gauges too.
    survivor.psrpc_stream_opened("server", "Signal", "Relay");
    survivor.add_ref("room", 1);
    let exporter = nodestats::Exporter::new(c.segment().clone(), "n", "SERVER").unwrap();
    let gauge = |text: &str, series: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(series))
            .map(|l| l.rsplit_once(' ').unwrap().1.to_string())
            .unwrap_or_else(|| "absent".into())
    };
    let stream = r#"livekit_psrpc_stream_count{method="Relay",node_id="n",node_type="SERVER",role="server",service="Signal"}"#;
    let room_ref = r#"livekit_debug_ref_count{node_id="n",node_type="SERVER",referrer="room"}"#;
    let track_ref = r#"livekit_debug_ref_count{node_id="n",node_type="SERVER",referrer="track"}"#;
    let text = exporter.text();
    assert_eq!(gauge(&text, stream), "2");
    assert_eq!(gauge(&text, room_ref), "3");
    assert_eq!(gauge(&text, track_ref), "5");
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    child.wait().unwrap();
    let text = exporter.text();
    assert_eq!(gauge(&text, stream), "1", "the dead writer's streams left");
    assert_eq!(gauge(&text, room_ref), "1");
    assert_eq!(
        gauge(&text, track_ref),
        "0",
        "the dead writer's handle left"
    );
    let ns = c.update();
    assert_eq!(ns.num_rooms, 1, "only the survivor's room is left");
    assert_eq!(ns.num_clients, 0);
    assert_eq!(ns.live_writers, 1);
    assert_eq!(ns.packets_out, 5000, "the dead writer's counters stay");
    assert_eq!(ns.bytes_out, 50_000);
    // A new writer takes the dead writer's slot over and starts from zero.
    let again = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    again.participant_added();
    let ns = c.update();
    assert_eq!((ns.num_rooms, ns.num_clients, ns.live_writers), (1, 1, 2));
    again.psrpc_stream_opened("server", "Signal", "Relay");
    assert_eq!(
        gauge(&exporter.text(), stream),
        "2",
        "the new writer starts from zero, not from the dead one's value"
    );
    Segment::unlink(&name).unwrap();
}

fn a_forked_helper_does_not_keep_a_dead_parents_gauges() {
    let name = seg_name("forkhelper");
    let _ = Segment::unlink(&name);
    let mut parent = common::spawn_child(&["forking-holder", &name]);
    let mut out = BufReader::new(parent.stdout.take().unwrap());
    let (mut helper, mut line) = (0i32, String::new());
    for _ in 0..2 {
        line.clear();
        out.read_line(&mut line).unwrap();
        if let Some(pid) = line.trim().strip_prefix("helper ") {
            helper = pid.parse().unwrap();
        }
    }
    assert!(helper > 0, "no helper pid");
    let mut c = collector(&name);
    let ns = c.update();
    assert_eq!((ns.num_rooms, ns.num_clients, ns.live_writers), (3, 1, 2));
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(parent.id() as i32, libc::SIGKILL) }, 0);
    parent.wait().unwrap();
    let ns = c.update();
    // SAFETY: kill(2) on the helper the child forked (our grandchild).
    unsafe { libc::kill(helper, libc::SIGKILL) };
    assert_eq!(
        (ns.num_rooms, ns.num_clients, ns.live_writers),
        (0, 1, 1),
        "the helper's inherited descriptor kept the dead parent's rooms"
    );
    Segment::unlink(&name).unwrap();
}

fn a_forked_child_dropping_its_copy_keeps_the_parents_gauges() {
    let name = seg_name("fork");
    let _ = Segment::unlink(&name);
    let stats = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    stats.room_started();
    stats.participant_added();
    // SAFETY: this test binary runs its checks on the main thread with no
    // other threads alive; the child only drops the handle and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        drop(stats);
        // SAFETY: ends the child without running the parent's atexit work.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let ns = collector(&name).update();
    assert_eq!((ns.num_rooms, ns.num_clients, ns.live_writers), (1, 1, 1));
    stats.room_ended();
    assert_eq!(
        collector(&name).update().num_rooms,
        0,
        "the parent still owns its slot"
    );
    drop(stats);
    Segment::unlink(&name).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        child_main(&args[1..]);
        return;
    }
    // Under `cargo test`, the harness passes filters and flags; run all.
    let tests: [common::Test<()>; 4] = [
        (
            "a_forked_helper_does_not_keep_a_dead_parents_gauges",
            |_| a_forked_helper_does_not_keep_a_dead_parents_gauges(),
        ),
        (
            "a_forked_child_dropping_its_copy_keeps_the_parents_gauges",
            |_| a_forked_child_dropping_its_copy_keeps_the_parents_gauges(),
        ),
        ("exact_totals_from_several_processes", |_| {
            exact_totals_from_several_processes()
        }),
        ("gauges_of_a_killed_writer_disappear", |_| {
            gauges_of_a_killed_writer_disappear()
        }),
    ];
    if common::run(&mut (), &tests) > 0 {
        std::process::exit(1);
    }
}
