//! Thread writers (`Stats::thread_writer`): rows are bounded and reused
//! with exact totals, a full table is an error at open, rows and per-CPU
//! shards add up in the collector and the exporter, and a forked child can
//! never write into its parent's rows.
//!
//! `harness = false`: the fork test forks a single-threaded process.

mod common;

use nodestats::{
    Collector, CollectorConfig, Direction, Error, Exporter, Segment, SegmentOptions, Stats,
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

fn main() {
    let tests: &[common::Test<()>] = &[
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
    ];
    if common::run(&mut (), tests) > 0 {
        std::process::exit(1);
    }
}
