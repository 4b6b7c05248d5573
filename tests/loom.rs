//! loom models of the concurrency protocols, run on the real code through
//! the crate's sync shim (`--cfg loom` swaps `core::sync::atomic` for
//! loom's model-checked atomics; `nodestats::__loom` gives heap-backed
//! storage and calls the same functions the mapping uses).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release --test loom -- --test-threads=2
//! ```
//!
//! Each model comes with a deliberately broken variant of the code it
//! checks, which must fail under the same model: proof that the model can
//! see the bug it is there for.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use nodestats::__loom::*;
use nodestats::Error;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Explores every execution of `f` (preemption bound 2 unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise) and returns how many there were.
fn explore(name: &str, f: impl Fn() + Sync + Send + 'static) -> usize {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    let start = std::time::Instant::now();
    b.check(move || {
        c.fetch_add(1, Relaxed);
        f()
    });
    let n = count.load(Relaxed);
    println!(
        "loom {name}: {n} executions, all passed ({:.1?})",
        start.elapsed()
    );
    n
}

/// Runs a model that must fail; returns the executions it took loom to
/// find the failure.
fn must_fail(name: &str, f: impl Fn() + Sync + Send + 'static) -> usize {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(2);
        }
        b.check(move || {
            c.fetch_add(1, Relaxed);
            f()
        });
    }));
    let n = count.load(Relaxed);
    assert!(
        r.is_err(),
        "broken variant {name} passed {n} executions: the model cannot see its bug"
    );
    println!("loom {name} (broken on purpose): caught after {n} executions");
    n
}

// ---------------------------------------------------------------- (a) shards

type Add = fn(&Shard, Counter, u64);

/// Two writers that migrated onto the same shard add to it (and one to
/// its own shard) while a collector sums twice: no add is lost, and a later
/// sum is never below an earlier one.
fn shards_model(add: Add) {
    let shards = Arc::new([new_shard(), new_shard()]);
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let s = shards.clone();
            thread::spawn(move || {
                add(&s[0], Counter::PacketsInInitial, 1);
                add(&s[t], Counter::BytesInInitial, 100);
            })
        })
        .collect();
    let first = sum_all(&shards[..]);
    let second = sum_all(&shards[..]);
    for c in [Counter::PacketsInInitial, Counter::BytesInInitial] {
        assert!(second[c as usize] >= first[c as usize], "sum went down");
    }
    for w in writers {
        w.join().unwrap();
    }
    let last = sum_all(&shards[..]);
    assert_eq!(last[Counter::PacketsInInitial as usize], 2, "lost update");
    assert_eq!(last[Counter::BytesInInitial as usize], 200, "lost update");
    assert!(last.iter().zip(second).all(|(l, s)| *l >= s));
}

#[test]
fn a_concurrent_adds_and_sums() {
    explore("shards: fetch_add vs sum_all", || shards_model(shard_add));
}

#[test]
fn a_broken_load_then_store_add_is_caught() {
    must_fail("shards: load-then-store add", || {
        shards_model(|s, c, n| {
            let w = shard_word(s, c);
            let v = w.load(Relaxed);
            w.store(v + n, Relaxed);
        })
    });
}

// ---------------------------------------------------------------- (b) header

type Publish = fn(&Layout, &[AtomicU64; HEADER_WORDS]);

/// A creator publishes the header while an attacher loads and validates
/// it: the attacher sees NotInitialized or the whole header, never a
/// half-initialised one.
fn header_model(publish: Publish) {
    let layout = small_layout();
    let size = layout.segment_size as u64;
    let words = Arc::new(new_header());
    let w = words.clone();
    let creator = thread::spawn(move || publish(&small_layout(), &w));
    match load_and_validate(&words, size) {
        Ok(l) => assert_eq!(l, layout, "attached to a different header"),
        Err(Error::NotInitialized) => {}
        Err(e) => panic!("attacher saw a half-initialised header: {e}"),
    }
    creator.join().unwrap();
    assert_eq!(load_and_validate(&words, size).unwrap(), layout);
}

#[test]
fn b_header_publication_vs_attach() {
    explore("header: publish vs load+validate", || {
        header_model(|l, w| publish(l, w))
    });
}

#[test]
fn b_broken_init_word_first_is_caught() {
    must_fail("header: init word stored before the fields", || {
        header_model(|l, words| {
            words[INIT_WORD].store(INIT_READY, Release);
            for (i, v) in header_values(l).iter().enumerate() {
                if i != INIT_WORD {
                    words[i].store(*v, Relaxed);
                }
            }
        })
    });
}

#[test]
fn b_broken_relaxed_init_word_is_caught() {
    must_fail("header: init word stored last but Relaxed", || {
        header_model(|l, words| {
            for (i, v) in header_values(l).iter().enumerate() {
                if i != INIT_WORD {
                    words[i].store(*v, Relaxed);
                }
            }
            words[INIT_WORD].store(INIT_READY, Relaxed);
        })
    });
}

// ---------------------------------------------------------------- (c) series

type Register = fn(&HeapRegion) -> u32;

/// A writer interns two label strings and registers a series naming them
/// while a reader reads the directory and the strings as `read_all` does:
/// a published entry is never half-written (so never skipped as corrupt),
/// and the strings it names are published too.
fn series_model(register: Register) {
    let r = Arc::new(HeapRegion::new(2, 2, 16));
    let w = r.clone();
    let writer = thread::spawn(move || register(&w));
    let expect_str = |i: usize, s: Option<Vec<u8>>| {
        if let Some(s) = s {
            let want: &[u8] = [b"incoming".as_slice(), b"US".as_slice()][i];
            assert_eq!(s, want, "half-written string {i}");
        }
    };
    let published = r.entry_word(0, 0).load(Acquire) == PUBLISHED;
    match r.read_entry(0) {
        Some((f, n, base, ids)) => {
            assert_eq!(
                (f, n, base, ids.clone()),
                (Family::NackTotal, 1, 0, vec![0, 1])
            );
            for id in ids {
                let s = r.read_string(id as usize);
                assert!(s.is_some(), "entry names an unpublished string");
                expect_str(id as usize, s);
            }
        }
        None => assert!(!published, "a published entry was read as corrupt"),
    }
    for i in 0..2 {
        expect_str(i, r.read_string(i));
    }
    assert_eq!(writer.join().unwrap(), 0);
    assert!(r.read_entry(0).is_some());
}

fn register_nack(r: &HeapRegion) -> u32 {
    let a = r.add_string("incoming");
    let b = r.add_string("US");
    r.register(Family::NackTotal, &[a, b])
}

#[test]
fn c_series_registration_vs_reader() {
    explore(
        "series: add_string+register vs read_entry/read_string",
        || series_model(register_nack),
    );
}

#[test]
fn c_broken_entry_state_first_is_caught() {
    must_fail("series: entry state published before its fields", || {
        series_model(|r| {
            let a = r.add_string("incoming");
            let b = r.add_string("US");
            r.entry_word(0, 0).store(PUBLISHED, Release);
            r.write_entry(0, Family::NackTotal, 0, &[a, b]);
            0
        })
    });
}

#[test]
fn c_broken_string_state_first_is_caught() {
    must_fail("series: string state published before its bytes", || {
        series_model(|r| {
            // String 0, "incoming" (8 bytes), state (PUBLISHED | len << 8)
            // first; string 1, "US", in the right order.
            r.string_word(0, 0).store(PUBLISHED | 8 << 8, Release);
            r.string_word(0, 1)
                .store(u64::from_le_bytes(*b"incoming"), Relaxed);
            r.string_word(1, 1)
                .store(u64::from(u16::from_le_bytes(*b"US")), Relaxed);
            r.string_word(1, 0).store(PUBLISHED | 2 << 8, Release);
            r.register(Family::NackTotal, &[0, 1])
        })
    });
}

// ---------------------------------------------------------------- (d) slots

/// Two writers race to claim one free slot (the anonymous-segment claim)
/// while the collector merges: exactly one wins, and the collector sees no
/// writer or the winner's gauges, whole.
#[test]
fn d_slot_claim_vs_merge() {
    explore("slots: try_claim_free+activate vs merge", || {
        let slots = Arc::new([new_slot()]);
        let writers: Vec<_> = (0..2)
            .map(|t| {
                let s = slots.clone();
                thread::spawn(move || {
                    let won = try_claim_free(&s[0]);
                    if won {
                        activate(&s[0], t);
                        gauge_add(&s[0], Gauge::Rooms, 1);
                    }
                    won
                })
            })
            .collect();
        let m = merge(&slots[..]);
        let rooms = m.values[Gauge::Rooms as usize];
        assert!(m.live_writers <= 1 && rooms <= 1 && (rooms == 0 || m.live_writers == 1));
        let wins = writers
            .into_iter()
            .map(|w| w.join().unwrap() as u32)
            .sum::<u32>();
        assert_eq!(wins, 1, "a free slot is claimed exactly once");
        let m = merge(&slots[..]);
        assert_eq!((m.live_writers, m.values[Gauge::Rooms as usize]), (1, 1));
    });
}

type Activate = fn(&WriterSlot, u64);

/// A slot whose writer died (rooms 7, participants 5) is taken over (the
/// OFD-lock claim path: `activate` over an ACTIVE slot) while the collector
/// reads it: it sees the dead writer's gauges whole (old incarnation), the
/// new writer's (zeroed, then rooms +1), or nothing — never a mix.
fn takeover_model(activate_fn: Activate) {
    let slot = Arc::new(new_slot());
    activate(&slot, 1);
    gauge_add(&slot, Gauge::Rooms, 7);
    gauge_add(&slot, Gauge::Participants, 5);
    let s = slot.clone();
    let writer = thread::spawn(move || {
        activate_fn(&s, 2);
        gauge_add(&s, Gauge::Rooms, 1);
    });
    let (rooms, parts) = (Gauge::Rooms as usize, Gauge::Participants as usize);
    match read_gauges(&slot) {
        None => {}
        Some((1, g)) => assert_eq!((g[rooms], g[parts]), (7, 5), "old incarnation, mixed"),
        Some((2, g)) => assert!(g[rooms] <= 1 && g[parts] == 0, "new incarnation, stale"),
        Some((i, _)) => panic!("incarnation {i}"),
    }
    writer.join().unwrap();
    let (inc, g) = read_gauges(&slot).unwrap();
    assert_eq!((inc, g[rooms], g[parts]), (2, 1, 0));
}

#[test]
fn d_slot_takeover_vs_read_gauges() {
    explore("slots: activate over a dead writer vs read_gauges", || {
        takeover_model(activate)
    });
}

#[test]
fn d_broken_activate_without_fence_is_caught() {
    // `activate` as it was before this suite: CLAIMING stored Relaxed with
    // no Release fence before the gauges are zeroed.
    must_fail("slots: activate with no fence after CLAIMING", || {
        takeover_model(|s, pid| {
            slot_word(s, 0).store(SLOT_CLAIMING, Relaxed);
            for i in GAUGE_BASE..GAUGE_BASE + GAUGES {
                slot_word(s, i).store(0, Relaxed);
            }
            slot_word(s, 1).fetch_add(1, Relaxed);
            slot_word(s, 2).store(pid, Relaxed);
            slot_word(s, 3).store(0, Relaxed);
            slot_word(s, 0).store(SLOT_ACTIVE, Release);
        })
    });
}

#[test]
fn d_broken_activate_active_first_is_caught() {
    must_fail(
        "slots: ACTIVE published before the gauges are zeroed",
        || {
            takeover_model(|s, pid| {
                slot_word(s, 1).fetch_add(1, Relaxed);
                slot_word(s, 2).store(pid, Relaxed);
                slot_word(s, 0).store(SLOT_ACTIVE, Release);
                for i in GAUGE_BASE..GAUGE_BASE + GAUGES {
                    slot_word(s, i).store(0, Relaxed);
                }
            })
        },
    );
}

/// A writer releases its slot while the collector reads it: the collector
/// sees the gauges whole or not at all.
#[test]
fn d_slot_release_vs_read_gauges() {
    explore("slots: release vs read_gauges", || {
        let slot = Arc::new(new_slot());
        activate(&slot, 1);
        gauge_add(&slot, Gauge::Rooms, 3);
        gauge_add(&slot, Gauge::Participants, 3);
        let s = slot.clone();
        let writer = thread::spawn(move || release(&s));
        if let Some((inc, g)) = read_gauges(&slot) {
            let (r, p) = (g[Gauge::Rooms as usize], g[Gauge::Participants as usize]);
            assert_eq!((inc, r, p), (1, 3, 3), "a half-released slot counted");
        }
        writer.join().unwrap();
        assert!(read_gauges(&slot).is_none());
        assert_eq!(merge(std::slice::from_ref(&*slot)).live_writers, 0);
    });
}
