//! loom models of the segment's concurrency protocols, run on the real
//! code through the crate's sync shim (`--cfg loom` swaps
//! `core::sync::atomic` for loom's model-checked atomics) on heap-backed
//! storage: shard adds vs sums, header publication vs attach, series
//! registration vs the reader, writer-slot claim / takeover / release vs
//! the collector, thread-row claim / release / reuse and single-writer adds
//! vs the collector.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release --lib loom -- --test-threads=2
//! ```
//!
//! Each model comes with a deliberately broken variant of the code it
//! checks, which must fail under the same model: proof that the model can
//! see the bug it is there for. Raw word access builds those variants.

use super::families::{self, Declarer, FamilyRegion, HeapFamilies};
use super::header::{self, HeaderFields, Layout, WriteMode, HEADER_WORDS, INIT_READY};
use super::series::{self, Region, SeriesEntry, Shape, StringEntry, PUBLISHED};
use super::shard::Shard;
use super::slots::{GaugeTotals, WriterSlot, GAUGES, GAUGE_BASE};
use crate::error::{Error, Result};
use crate::schema::{Counter, Family, FamilyId, FamilySpec, Gauge, COUNTERS};
use loom::sync::atomic::AtomicU64;
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

/// Index of the header's init word.
const INIT_WORD: usize = header::word::INIT_STATE;
/// Slot state values.
const SLOT_FREE: u64 = super::slots::FREE;
/// Slot state: claimed, being zeroed.
const SLOT_CLAIMING: u64 = super::slots::CLAIMING;
/// Slot state: active.
const SLOT_ACTIVE: u64 = super::slots::ACTIVE;

/// A zeroed heap shard.
fn new_shard() -> Shard {
    Shard::new()
}

/// The hot path's atomic-mode add.
fn shard_add(s: &Shard, c: Counter, n: u64) {
    s.add(c, n)
}

/// One counter word (for broken variants).
fn shard_word(s: &Shard, c: Counter) -> &AtomicU64 {
    &s.counters[c as usize]
}

/// The collector's sum.
fn sum_all(shards: &[Shard]) -> [u64; COUNTERS] {
    super::shard::sum_all(shards)
}

/// A small valid layout (1 shard, 1 slot, minimal series region).
fn small_layout() -> Layout {
    Layout::new(1, 1, 1, 0x1234_5678_9abc_def0, 42, WriteMode::Atomic).expect("layout")
}

/// Zeroed heap header words (a freshly sized segment).
fn new_header() -> [AtomicU64; HEADER_WORDS] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// The words `publish` writes for `layout` (init word not ready).
fn header_values(layout: &Layout) -> [u64; HEADER_WORDS] {
    layout.to_fields().words
}

/// The creator's `HeaderFields::publish`.
fn publish(layout: &Layout, words: &[AtomicU64; HEADER_WORDS]) {
    layout.to_fields().publish(words)
}

/// An attacher's `HeaderFields::load` + `validate`.
fn load_and_validate(words: &[AtomicU64; HEADER_WORDS], file_size: u64) -> Result<Layout> {
    HeaderFields::load(words).validate(file_size)
}

/// A free heap writer slot.
fn new_slot() -> WriterSlot {
    WriterSlot::new()
}

/// One word of a slot (for setting up a dead writer and broken variants).
fn slot_word(s: &WriterSlot, i: usize) -> &AtomicU64 {
    &s.words[i]
}

/// `WriterSlot::try_claim_free`.
fn try_claim_free(s: &WriterSlot) -> bool {
    s.try_claim_free()
}

/// `WriterSlot::activate`.
fn activate(s: &WriterSlot, pid: u64) {
    s.activate(pid, 0, || {})
}

/// `WriterSlot::release`.
fn release(s: &WriterSlot) {
    s.release()
}

/// `WriterSlot::add`.
fn gauge_add(s: &WriterSlot, g: Gauge, d: i64) {
    s.add(g, d)
}

/// `WriterSlot::read_gauges`.
fn read_gauges(s: &WriterSlot) -> Option<(u64, [i64; GAUGES])> {
    s.read_gauges()
}

/// `slots::merge` with every writer alive.
fn merge(slots: &[WriterSlot]) -> GaugeTotals {
    super::slots::merge(slots, |_| true)
}

/// A heap-backed labeled-series region.
#[derive(Debug)]
struct HeapRegion {
    alloc: [AtomicU64; 16],
    dir: Vec<SeriesEntry>,
    strings: Vec<StringEntry>,
    values: Vec<AtomicU64>,
    values_per_shard: usize,
}

impl HeapRegion {
    /// `series` directory entries, `strings` strings, one shard of
    /// `values_per_shard` values; allocation counters at zero.
    fn new(series: usize, strings: usize, values_per_shard: usize) -> Self {
        HeapRegion {
            alloc: std::array::from_fn(|_| AtomicU64::new(0)),
            dir: (0..series)
                .map(|_| SeriesEntry {
                    w: std::array::from_fn(|_| AtomicU64::new(0)),
                })
                .collect(),
            strings: (0..strings)
                .map(|_| StringEntry {
                    w: std::array::from_fn(|_| AtomicU64::new(0)),
                })
                .collect(),
            values: (0..values_per_shard).map(|_| AtomicU64::new(0)).collect(),
            values_per_shard,
        }
    }

    fn region(&self) -> Region<'_> {
        Region {
            alloc: &self.alloc,
            dir: &self.dir,
            strings: &self.strings,
            values: &self.values,
            values_per_shard: self.values_per_shard,
            writer_slots: 1,
            row_series: &[],
            row_series_slots: 0,
            families: None,
        }
    }

    /// `series::register`: claims an entry and a value range, writes and
    /// publishes the entry; returns the value base.
    fn register(&self, family: Family, ids: &[u32]) -> u32 {
        let r = self.region();
        series::register(&r, &r.livekit_target(family), ids).map_or(u32::MAX, |b| b.0)
    }

    /// `series::write_entry` into directory entry `i`.
    fn write_entry(&self, i: usize, family: Family, base: u64, ids: &[u32]) {
        series::write_entry(
            &self.dir[i],
            family.into(),
            self.region().values_of(Shape::livekit(family)),
            base,
            ids,
        )
    }

    /// `series::read_entry` of directory entry `i`: family, value count,
    /// base and label ids.
    fn read_entry(&self, i: usize) -> Option<(Family, usize, usize, Vec<u32>)> {
        let r = self.region();
        series::read_entry(&r, &series::Shapes::livekit_only(), &r.dir[i])
            .and_then(|e| Some((e.family.livekit()?, e.n, e.base, e.ids().to_vec())))
    }

    /// `series::add_string`.
    fn add_string(&self, s: &str) -> u32 {
        series::add_string(&self.region(), s)
    }

    /// `series::read_string` of string `i`, as bytes.
    fn read_string(&self, i: usize) -> Option<Vec<u8>> {
        series::read_string(&self.strings[i]).map(|(b, len)| b[..len].to_vec())
    }

    /// Word `k` of directory entry `i`.
    fn entry_word(&self, i: usize, k: usize) -> &AtomicU64 {
        &self.dir[i].w[k]
    }

    /// Word `k` of string `i`.
    fn string_word(&self, i: usize, k: usize) -> &AtomicU64 {
        &self.strings[i].w[k]
    }
}

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

// ---------------------------------------------------------------- (e) rows

type Claim = fn(&[AtomicU64], u32) -> Option<(usize, u64)>;
type ReleaseFn = fn(&AtomicU64, u64) -> bool;

/// One thread writer's life: claim the row (two tries), check that nobody
/// else holds it, add `n` with the single-writer add, give it back.
fn row_writer(
    states: &[AtomicU64],
    row: &Shard,
    holders: &AtomicU64,
    pid: u32,
    n: u64,
    claim: Claim,
    release: ReleaseFn,
) -> u64 {
    for _ in 0..2 {
        if let Some((i, held)) = claim(states, pid) {
            assert_eq!(i, 0);
            assert_eq!(holders.fetch_add(1, Relaxed), 0, "two owners of one row");
            super::rows::add(&row.counters[Counter::PacketsInInitial as usize], n);
            holders.fetch_sub(1, Relaxed);
            assert!(release(&states[0], held), "release of a row we hold");
            return n;
        }
        thread::yield_now();
    }
    0
}

/// Two thread writers of one process share a one-row table: each claims
/// it (the second may find it held), adds, and releases, while the
/// collector sums. The row is never held twice, the reuser keeps adding to
/// the counts it found (no lost update across the hand-off), sums never go
/// down, and the final sum is exactly what the writers that got the row
/// added.
fn rows_model(claim: Claim, release: ReleaseFn) {
    let states = Arc::new([AtomicU64::new(super::rows::FREE)]);
    let row = Arc::new(new_shard());
    let holders = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = [5u64, 7]
        .into_iter()
        .map(|n| {
            let (s, r, h) = (states.clone(), row.clone(), holders.clone());
            thread::spawn(move || row_writer(&s[..], &r, &h, 1, n, claim, release))
        })
        .collect();
    thread::yield_now();
    let first = super::rows::sum_all(std::slice::from_ref(&*row))[0];
    let second = super::rows::sum_all(std::slice::from_ref(&*row))[0];
    assert!(second >= first, "sum went down");
    let added: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(added > 0, "a free row could not be claimed");
    let last = super::rows::sum_all(std::slice::from_ref(&*row))[0];
    assert_eq!(last, added, "lost update across a row hand-off");
    assert_eq!(
        super::rows::owner(states[0].load(Relaxed)),
        0,
        "row left held"
    );
}

fn claim_first(states: &[AtomicU64], pid: u32) -> Option<(usize, u64)> {
    super::rows::claim_first(states, pid, |_| false)
}

#[test]
fn e_row_claim_release_reuse_vs_sum() {
    explore("rows: claim_first+add+release vs sum_all", || {
        rows_model(claim_first, super::rows::release)
    });
}

#[test]
fn e_broken_relaxed_release_is_caught() {
    must_fail("rows: release with a Relaxed store", || {
        rows_model(claim_first, |state, held| {
            state.store(held & !(u32::MAX as u64), Relaxed);
            true
        })
    });
}

#[test]
fn e_broken_claim_without_cas_is_caught() {
    must_fail("rows: claim by load-then-store", || {
        rows_model(
            |states, pid| {
                let seen = states[0].load(Acquire);
                if super::rows::owner(seen) != 0 {
                    return None;
                }
                let held = (seen & !(u32::MAX as u64)) + (1 << 32) + pid as u64;
                states[0].store(held, Relaxed);
                Some((0, held))
            },
            super::rows::release,
        )
    });
}

type RowAdd = fn(&AtomicU64, u64);

/// The row's owner adds packets and bytes while the collector sums; a
/// second writer runs `other` on the same row (nothing, for the real
/// protocol). The sums are never below an earlier sum and the final sum
/// is exact.
fn row_add_model(add: RowAdd, second_writer: bool) {
    let row = Arc::new(new_shard());
    let (p, b) = (
        Counter::PacketsInInitial as usize,
        Counter::BytesInInitial as usize,
    );
    let writers: Vec<_> = (0..1 + second_writer as u64)
        .map(|_| {
            let r = row.clone();
            thread::spawn(move || {
                add(&r.counters[p], 1);
                add(&r.counters[b], 1200);
            })
        })
        .collect();
    // Without a yield here loom never schedules the writers before the
    // sums (one execution); with it, every interleaving.
    thread::yield_now();
    let first = super::rows::sum_all(std::slice::from_ref(&*row));
    let second = super::rows::sum_all(std::slice::from_ref(&*row));
    assert!(
        second[p] >= first[p] && second[b] >= first[b],
        "sum went down"
    );
    let n = writers.len() as u64;
    for w in writers {
        w.join().unwrap();
    }
    let last = super::rows::sum_all(std::slice::from_ref(&*row));
    assert_eq!((last[p], last[b]), (n, 1200 * n), "lost update");
}

#[test]
fn e_single_writer_add_vs_sum() {
    explore("rows: single-writer add vs sum_all", || {
        row_add_model(super::rows::add, false)
    });
}

#[test]
fn e_broken_two_writers_on_one_row_is_caught() {
    // What a forked child recording through its parent's row would do.
    must_fail("rows: two writers on one row", || {
        row_add_model(super::rows::add, true)
    });
}

// ------------------------------------------------------ (f) row series slots

type Bind = fn(&[AtomicU64], usize, u64, usize) -> Option<usize>;

/// What a reader sees of a row's series slots: (value of index 3, value of
/// index 7), summed over the slots bound to each.
fn slot_sums(words: &[AtomicU64]) -> (u64, u64) {
    let (mut x, mut y) = (0, 0);
    super::rows::bound_slots(words, 2, 16, |i, v| match i {
        3 => x += v,
        7 => y += v,
        other => panic!("a slot bound to value {other}, which nobody recorded"),
    });
    (x, y)
}

/// Two thread writers own a one-row table in turn (claim, bind, add,
/// release): the first records series X (value index 3) five times, the
/// second series Y (index 7) seven times, each binding a slot of the row's
/// two. The collector reads the slots meanwhile. A reused row never hands
/// the first owner's counts to the second's series: X's sum never goes
/// down, no slot is ever seen bound to anything else, and the final sums
/// are exact.
fn row_series_model(bind: Bind) {
    let states = Arc::new([AtomicU64::new(super::rows::FREE)]);
    let words: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
    let writers: Vec<_> = [(3u64, 5u64), (7, 7)]
        .into_iter()
        .map(|(base, n)| {
            let (s, w) = (states.clone(), words.clone());
            thread::spawn(move || {
                for _ in 0..2 {
                    if let Some((_, held)) = claim_first(&s[..], 1) {
                        let slot = bind(&w, 2, base, 1).expect("a free slot");
                        super::rows::add(&w[2 + slot], n);
                        assert!(super::rows::release(&s[0], held));
                        return (base, n);
                    }
                    thread::yield_now();
                }
                (base, 0)
            })
        })
        .collect();
    thread::yield_now();
    let first = slot_sums(&words);
    let second = slot_sums(&words);
    assert!(
        second.0 >= first.0 && second.1 >= first.1,
        "a sum went down"
    );
    let mut want = (0, 0);
    for w in writers {
        match w.join().unwrap() {
            (3, n) => want.0 += n,
            (_, n) => want.1 += n,
        }
    }
    assert_eq!(
        slot_sums(&words),
        want,
        "counts lost or moved to another series"
    );
}

#[test]
fn f_row_series_bind_add_reuse_vs_read() {
    explore(
        "row series: bind_run+add across a row hand-off vs reads",
        || row_series_model(super::rows::bind_run),
    );
}

#[test]
fn f_broken_rebinding_a_bound_slot_is_caught() {
    // A new owner that takes the first slot without looking at what it is
    // bound to: the previous owner's counts move to the new series.
    must_fail("row series: bind the first slot, bound or not", || {
        row_series_model(|words, _slots, base, _n| {
            words[0].store(base + 1, Release);
            Some(0)
        })
    });
}

// ------------------------------------------------------ (g) family directory

/// A declarer that never gives up waiting (loom explores the waits) and
/// whose overflow series is directory entry 7.
struct ModelDeclarer(u64);

impl Declarer for ModelDeclarer {
    fn claimer(&self) -> u64 {
        self.0
    }
    fn claimer_dead(&self, _: u64) -> bool {
        false
    }
    fn overflow_series(&self, _: FamilyId, _: &FamilySpec) -> Result<u32> {
        Ok(7)
    }
    fn pause(&self, _: u32) -> bool {
        thread::yield_now();
        true
    }
}

type Declare = fn(&FamilyRegion<'_>, &FamilySpec, u64) -> Result<FamilyId>;

fn spec() -> FamilySpec {
    FamilySpec::counter("c", "").labels(&["l"]).max_series(5)
}

/// Two processes declare the same family at once while a reader scans the
/// directory: both get the same entry, exactly one entry holds the name,
/// and the reader sees the family whole or not at all.
fn families_model(declare: Declare) {
    let h = Arc::new(HeapFamilies::new(2));
    let racers: Vec<_> = [1u64, 2]
        .into_iter()
        .map(|me| {
            let h = h.clone();
            thread::spawn(move || declare(&h.region(), &spec(), me).expect("declared"))
        })
        .collect();
    for (_, d) in h.region().scan() {
        let d = d.expect("a published entry read as damaged");
        assert_eq!(d.spec, spec(), "a half-described family");
        assert_eq!(d.overflow_entry, 7);
    }
    let ids: Vec<FamilyId> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(ids[0], ids[1], "one name, two families");
    let all = h.region().scan();
    assert_eq!(all.len(), 1, "the name is in the directory twice");
    assert_eq!(all[0].1.as_ref().map(|d| &d.spec), Some(&spec()));
}

#[test]
fn g_family_declarations_race_with_the_reader() {
    explore("families: two declarers of one name vs scan", || {
        families_model(|r, s, me| families::declare(r, s, &ModelDeclarer(me)))
    });
}

#[test]
fn g_broken_state_before_description_is_caught() {
    must_fail("families: state published before the description", || {
        families_model(|r, s, me| {
            let hash = families::name_hash(&s.name);
            let k = (hash % r.entries.len() as u64) as usize;
            let e = &r.entries[k];
            let claim = families::state(families::CLAIMED, me, hash);
            match e.w[0].compare_exchange(0, claim, AcqRel, Acquire) {
                Ok(_) => {
                    e.w[0].store(families::state(PUBLISHED, 0, hash), Release);
                    families::write_desc(e, s, 7);
                }
                Err(_) => {
                    while e.w[0].load(Acquire) & 0xff != PUBLISHED {
                        thread::yield_now();
                    }
                }
            }
            Ok(FamilyId::declared(k))
        })
    });
}
