//! Exact totals with more writer threads than CPUs.

use nodestats::{Collector, Direction, SegmentOptions, Stats, Totals, WriteMode};
use std::sync::{Arc, Barrier};

#[test]
fn more_threads_than_cpus_lose_nothing() {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = (4 * cpus).max(8);
    let per_thread: u64 = 200_000;
    // Fewer shards than CPUs forces threads on different CPUs onto one shard:
    // only atomic mode allows that. The default is rseq where available.
    let atomic = |n| {
        SegmentOptions::new()
            .shards(n)
            .write_mode(WriteMode::Atomic)
    };
    for (shards, opts) in [
        (1usize, atomic(1)),
        (64, atomic(64)),
        (64, SegmentOptions::new().shards(64)),
    ] {
        let stats = Stats::open(&opts).unwrap();
        let shards = format!("{shards}, {:?}", stats.segment().layout().write_mode);
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let (s, b) = (stats.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    for i in 0..per_thread {
                        s.record_packets(Direction::Incoming, 1, t + 1, i % 7 == 0);
                        s.record_rtcp(Direction::Outgoing, 1, (i % 2) as u32, 0);
                        if i % 1000 == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let ns = Collector::new(stats.segment().clone(), Default::default())
            .unwrap()
            .update();
        let n = threads as u64 * per_thread;
        assert_eq!(ns.packets_in, n, "shards={shards}");
        let bytes: u64 = (1..=threads as u64).map(|t| t * per_thread).sum();
        assert_eq!(ns.bytes_in, bytes, "shards={shards}");
        assert_eq!(ns.nack_total, n, "shards={shards}");
        let t = Totals::read(stats.segment());
        let retx = threads as u64 * per_thread.div_ceil(7);
        assert_eq!(t.get(nodestats::Counter::PacketsInRetransmit), retx);
        assert_eq!(t.get(nodestats::Counter::PliOut), n / 2);
    }
}

#[test]
fn concurrent_sums_never_decrease() {
    let stats = Stats::anonymous().unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (s, d) = (stats.clone(), done.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !d.load(std::sync::atomic::Ordering::Relaxed) {
                    s.record_packets(Direction::Outgoing, 1, 100, false);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut last = 0;
    for _ in 0..2000 {
        let now = Totals::read(stats.segment()).get(nodestats::Counter::PacketsOutInitial);
        assert!(now >= last, "sum went from {last} to {now}");
        last = now;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let written: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    let fin = Totals::read(stats.segment());
    assert_eq!(fin.get(nodestats::Counter::PacketsOutInitial), written);
    assert_eq!(fin.get(nodestats::Counter::BytesOutInitial), written * 100);
}
