//! Thread writers (`Stats::thread_writer`): rows are bounded and reused
//! with exact totals, a full table is an error at open, rows and per-CPU
//! shards add up in the collector and the exporter, and a forked child can
//! never write into its parent's rows.
//!
//! `harness = false`: the fork test forks a single-threaded process.

mod common;

use nodestats::{
    Collector, CollectorConfig, Direction, Error, Exporter, Family, Segment, SegmentOptions, Stats,
};

fn no_system() -> CollectorConfig {
    CollectorConfig {
        system: None,
        ..CollectorConfig::default()
    }
}

fn packets_in(stats: &Stats) -> (u64, u64) {
    let ns = Collector::new(stats.segment().clone(), no_system())
        .unwrap()
        .update();
    (ns.packets_in, ns.bytes_in)
}

/// 10 000 threads, four alive at a time, each open a thread writer,
/// record and exit, on a segment of four rows: every open succeeds (rows
/// are reused), totals are exact, and a fifth live writer is refused.
fn ten_thousand_threads_reuse_four_rows(named: bool) {
    let path = std::env::temp_dir().join(format!("nodestats-rows-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut opts = SegmentOptions::new().thread_rows(4);
    if named {
        opts = opts.name(path.to_str().unwrap().to_string());
    }
    let stats = Stats::open(&opts).unwrap();
    let mut used = std::collections::BTreeSet::new();
    for round in 0..2500u64 {
        let rows: Vec<usize> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4u64)
                .map(|k| {
                    let stats = &stats;
                    s.spawn(move || {
                        let t = stats.thread_writer().unwrap();
                        t.record_packets(Direction::Incoming, 1, round * 4 + k, false);
                        t.record_rtcp(Direction::Outgoing, 1, 0, 0);
                        t.row_index()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        used.extend(rows);
    }
    assert!(used.len() <= 4, "rows used: {used:?}");
    let n = 10_000u64;
    assert_eq!(packets_in(&stats), (n, n * (n - 1) / 2));
    // A full table is an error at open; a released row is claimable again.
    let held: Vec<_> = (0..4).map(|_| stats.thread_writer().unwrap()).collect();
    assert!(matches!(
        stats.thread_writer(),
        Err(Error::NoThreadRow { rows: 4 })
    ));
    drop(held);
    let t = stats.thread_writer().unwrap();
    t.record_packet(Direction::Incoming, 0, false);
    assert_eq!(packets_in(&stats).0, n + 1, "a reused row keeps its counts");
    drop(t);
    let _ = std::fs::remove_file(&path);
}

/// Thread writers, the per-CPU path and a second process's worth of
/// writers (a second attach of the named segment) record into one
/// segment: the collector and the exporter count every add once.
fn rows_and_shards_add_up() {
    let name = format!("/nodestats-rows-mix-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let a = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    let b = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    const N: u64 = 100_000;
    std::thread::scope(|s| {
        for stats in [&a, &b] {
            s.spawn(move || {
                let t = stats.thread_writer().unwrap();
                for _ in 0..N {
                    t.record_packets(Direction::Outgoing, 2, 3, true);
                }
            });
            s.spawn(move || {
                for _ in 0..N {
                    stats.record_packets(Direction::Outgoing, 2, 3, true);
                }
            });
        }
    });
    let ns = Collector::attach(&name, no_system()).unwrap().update();
    assert_eq!(
        (ns.packets_out, ns.bytes_out, ns.retransmit_packets_out),
        (8 * N, 12 * N, 8 * N)
    );
    let text = Exporter::new(a.segment().clone(), "n", "SERVER")
        .unwrap()
        .text();
    let want = format!(
        "livekit_packet_total{{country=\"\",direction=\"outgoing\",node_id=\"n\",node_type=\"SERVER\",transmission=\"retransmit\"}} {}",
        8 * N
    );
    assert!(text.lines().any(|l| l == want), "no `{want}` in the scrape");
    drop((a, b));
    Segment::unlink(&name).unwrap();
}

/// A forked child's inherited thread writer records nothing and releases
/// nothing; the child's own thread writer gets a row of its own; the
/// parent's writer keeps working. Both anonymous (MAP_SHARED) and named.
fn forked_child_never_writes_the_parents_row() {
    let path = std::env::temp_dir().join(format!("nodestats-rows-fork-{}", std::process::id()));
    for named in [false, true] {
        let _ = std::fs::remove_file(&path);
        let mut opts = SegmentOptions::new().thread_rows(2);
        if named {
            opts = opts.name(path.to_str().unwrap().to_string());
        }
        let stats = Stats::open(&opts).unwrap();
        let mine = stats.thread_writer().unwrap();
        mine.record_packets(Direction::Incoming, 1, 10, false);
        // SAFETY: single-threaded here (harness = false, scopes joined).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // The inherited handle: a no-op, its drop releases nothing.
            mine.record_packets(Direction::Incoming, 1_000, 1_000, false);
            let row = mine.row_index();
            drop(mine);
            let own = stats.thread_writer().unwrap();
            let ok = own.row_index() != row;
            own.record_packets(Direction::Incoming, 5, 50, false);
            std::mem::forget(own);
            // SAFETY: ends the child without running the parent's exit path.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        let mut status = 0;
        // SAFETY: our child; `status` is writable.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child: {status:#x}"
        );
        mine.record_packets(Direction::Incoming, 1, 10, false);
        assert_eq!(packets_in(&stats), (7, 70), "named: {named}");
        // The child is gone: its row is reusable; ours is still held.
        let again = stats.thread_writer().unwrap();
        assert_ne!(again.row_index(), mine.row_index());
        assert!(matches!(
            stats.thread_writer(),
            Err(Error::NoThreadRow { rows: 2 })
        ));
        drop((again, mine));
    }
    let _ = std::fs::remove_file(&path);
}

/// The value of the exported sample `name{labels}` (without the node
/// labels, which the test names "n"/"SERVER").
fn sample(text: &str, line_prefix: &str) -> f64 {
    let hits: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(line_prefix))
        .collect();
    assert_eq!(hits.len(), 1, "{line_prefix}: {hits:?}");
    hits[0].rsplit_once(' ').unwrap().1.parse().unwrap()
}

/// Thread series: 1 000 threads, four alive at a time on four rows, each
/// record a counter and a histogram series through their row (and the
/// per-CPU path beside them): every handle binds row slots (a reused row
/// keeps its bindings, or 1 000 threads would exhaust 64 slots), and the
/// exporter and NodeStats count every add once. A thread that opens more
/// series than its row has slots falls back to the per-CPU path with exact
/// totals, and a gauge always takes it.
fn thread_series_add_up_and_reuse_slots() {
    let stats = Stats::open(&SegmentOptions::new().thread_rows(4)).unwrap();
    const ROUNDS: u64 = 250;
    let nacks = ["incoming", "FR"];
    let rtt = ["outgoing", "MICROPHONE", "AUDIO", "DE"];
    for round in 0..ROUNDS {
        std::thread::scope(|s| {
            for k in 0..4u64 {
                let stats = &stats;
                s.spawn(move || {
                    let t = stats.thread_writer().unwrap();
                    let n = t.series(Family::NackTotal, &nacks).unwrap();
                    let h = t.series(Family::RttMs, &rtt).unwrap();
                    assert!(n.in_row() && h.in_row(), "round {round}: slots not reused");
                    n.inc_by(round * 4 + k);
                    n.add(1);
                    n.observe(1.0); // not a histogram: nothing
                    h.observe(10.0);
                    h.observe(60.0);
                    h.inc_by(5); // not a counter: nothing
                                 // The per-CPU path, on the same series.
                    stats.series(Family::NackTotal, &nacks).unwrap().inc_by(1);
                    stats.series(Family::RttMs, &rtt).unwrap().observe(20_000.0);
                });
            }
        });
    }
    let n = 4 * ROUNDS;
    let want_nacks = n * (n - 1) / 2 + 2 * n;
    let ns = Collector::new(stats.segment().clone(), no_system())
        .unwrap()
        .update();
    assert_eq!(
        ns.nack_total, want_nacks,
        "NodeStats folds the row slots in"
    );
    let text = Exporter::new(stats.segment().clone(), "n", "SERVER")
        .unwrap()
        .text();
    let node = "node_id=\"n\",node_type=\"SERVER\"";
    let nack_line = format!("livekit_nack_total{{country=\"FR\",direction=\"incoming\",{node}}}");
    assert_eq!(sample(&text, &nack_line), want_nacks as f64);
    let rtt_labels = format!(
        "country=\"DE\",direction=\"outgoing\",{node},source=\"MICROPHONE\",type=\"AUDIO\""
    );
    let bucket = |le: &str| {
        sample(
            &text,
            &format!("livekit_rtt_ms_bucket{{{rtt_labels},le=\"{le}\"}}"),
        )
    };
    assert_eq!(bucket("50"), n as f64);
    assert_eq!(bucket("100"), 2.0 * n as f64);
    assert_eq!(bucket("+Inf"), 3.0 * n as f64);
    assert_eq!(
        sample(&text, &format!("livekit_rtt_ms_sum{{{rtt_labels}}}")),
        20_070.0 * n as f64
    );

    // More series than slots: counters fit one per slot, the rest
    // record per CPU; a gauge never takes a slot; every count arrives.
    let t = stats.thread_writer().unwrap();
    let countries: Vec<String> = (0..100).map(|i| format!("X{i}")).collect();
    let handles: Vec<_> = countries
        .iter()
        .map(|c| {
            t.series(Family::PacketLossTotal, &["incoming", "CAMERA", "VIDEO", c])
                .unwrap()
        })
        .collect();
    // The row was used before (its NACK and RTT slots stay bound): the
    // first series take the free slots, the others fall back.
    let in_row = handles.iter().filter(|h| h.in_row()).count();
    assert!((40..64).contains(&in_row), "{in_row} of 100 in the row");
    assert!(handles[..in_row].iter().all(|h| h.in_row()));
    for (i, h) in handles.iter().enumerate() {
        h.inc_by(i as u64 + 1);
    }
    let g = t
        .series(Family::PsrpcStreamCount, &["server", "Svc", "M"])
        .unwrap();
    assert!(!g.in_row(), "gauges are per writer slot");
    g.add(5);
    g.add(-2);
    let text = Exporter::new(stats.segment().clone(), "n", "SERVER")
        .unwrap()
        .text();
    for (i, c) in countries.iter().enumerate() {
        let line = format!("livekit_packet_loss_total{{country=\"{c}\",direction=\"incoming\",{node},source=\"CAMERA\",type=\"VIDEO\"}}");
        assert_eq!(sample(&text, &line), (i + 1) as f64, "{c}");
    }
    let gauge = format!(
        "livekit_psrpc_stream_count{{method=\"M\",{node},role=\"server\",service=\"Svc\"}}"
    );
    assert_eq!(sample(&text, &gauge), 3.0);
}

/// A forked child's inherited thread series record nothing (they are the
/// parent's row slots); its own thread writer's series do.
fn forked_child_never_writes_the_parents_series() {
    let stats = Stats::open(&SegmentOptions::new().thread_rows(2)).unwrap();
    let mine = stats.thread_writer().unwrap();
    let labels = ["incoming", "FR"];
    let h = mine.series(Family::NackTotal, &labels).unwrap();
    assert!(h.in_row());
    h.inc_by(1);
    // SAFETY: single-threaded here (harness = false, scopes joined).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        h.inc_by(1_000);
        // Opening a series on the inherited writer binds nothing in the
        // parent's row (the parent may be binding its slots right now).
        let late = mine.series(Family::PliTotal, &labels).unwrap();
        late.inc_by(1_000);
        if late.in_row() {
            // SAFETY: ends the child without running the parent's exit path.
            unsafe { libc::_exit(4) };
        }
        let own = stats.thread_writer().unwrap();
        let o = own.series(Family::NackTotal, &labels).unwrap();
        o.inc_by(5);
        let ok = o.in_row();
        std::mem::forget(o);
        std::mem::forget(own);
        // SAFETY: ends the child without running the parent's exit path.
        unsafe { libc::_exit(if ok { 0 } else { 3 }) };
    }
    let mut status = 0;
    // SAFETY: our child; `status` is writable.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    h.inc_by(1);
    let ns = Collector::new(stats.segment().clone(), no_system())
        .unwrap()
        .update();
    assert_eq!(ns.nack_total, 7);
    let text = Exporter::new(stats.segment().clone(), "n", "SERVER")
        .unwrap()
        .text();
    let pli = "livekit_pli_total{country=\"FR\",direction=\"incoming\",node_id=\"n\",node_type=\"SERVER\"}";
    assert_eq!(sample(&text, pli), 0.0, "the child's late series recorded");
}

/// A C thread writer never closed (its thread ended without cleanup):
/// its counts stay, its row stays claimed while its process lives, and the
/// row is free again, counts intact, once the process has ended.
fn an_unclosed_c_thread_writer_holds_its_row_until_its_process_ends() {
    use nodestats::__testing::ffi::*;
    let name = common::ShmName::new("rows-unclosed");
    let opts = SegmentOptions::new().name(name.to_string()).thread_rows(1);
    let parent = Stats::open(&opts).unwrap();
    let c_name = std::ffi::CString::new(name.to_string()).unwrap();
    // SAFETY: this process is single-threaded here (harness = false); the
    // child only opens handles, spawns and joins a thread, and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut s = std::ptr::null_mut();
        // SAFETY: a NUL-terminated name and a writable out-pointer.
        if unsafe { nodestats_open(c_name.as_ptr(), &mut s) } != nodestats_status::Ok {
            // SAFETY: ends the child.
            unsafe { libc::_exit(2) };
        }
        let addr = s as usize;
        std::thread::spawn(move || {
            let mut t = std::ptr::null_mut();
            // SAFETY: a live writer handle; the thread writer is used on
            // this thread and, on purpose, never closed.
            unsafe {
                if nodestats_thread_open(addr as *mut nodestats_t, &mut t) == nodestats_status::Ok {
                    nodestats_thread_record_packets(t, DirectionArg(0), 7, 700, false);
                }
            }
        })
        .join()
        .unwrap();
        let mut t = std::ptr::null_mut();
        // SAFETY: a live writer handle and a writable out-pointer.
        let st = unsafe { nodestats_thread_open(s, &mut t) };
        // SAFETY: ends the child without running the parent's exit path.
        unsafe {
            libc::_exit(if st == nodestats_status::NoThreadRow {
                0
            } else {
                3
            })
        };
    }
    let mut status = 0;
    // SAFETY: our child; `status` is writable.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child could claim the row an unclosed thread writer holds (status {status})"
    );
    assert_eq!(
        packets_in(&parent),
        (7, 700),
        "the unclosed writer's counts"
    );
    let again = parent
        .thread_writer()
        .expect("the row is free once the child ended");
    again.record_packets(Direction::Incoming, 1, 100, false);
    assert_eq!(packets_in(&parent), (8, 800));
}

fn main() {
    let tests: &[common::Test<()>] = &[
        (
            "an_unclosed_c_thread_writer_holds_its_row_until_its_process_ends",
            |_| an_unclosed_c_thread_writer_holds_its_row_until_its_process_ends(),
        ),
        ("ten_thousand_threads_reuse_four_rows_anonymous", |_| {
            ten_thousand_threads_reuse_four_rows(false)
        }),
        ("ten_thousand_threads_reuse_four_rows_named", |_| {
            ten_thousand_threads_reuse_four_rows(true)
        }),
        ("rows_and_shards_add_up", |_| rows_and_shards_add_up()),
        ("forked_child_never_writes_the_parents_row", |_| {
            forked_child_never_writes_the_parents_row()
        }),
        ("thread_series_add_up_and_reuse_slots", |_| {
            thread_series_add_up_and_reuse_slots()
        }),
        ("forked_child_never_writes_the_parents_series", |_| {
            forked_child_never_writes_the_parents_series()
        }),
    ];
    if common::run(&mut (), tests) > 0 {
        std::process::exit(1);
    }
}
