//! Hostile segments: a proptest over segment images fed to everything a
//! collector runs on a segment it did not create — attach (header copy and
//! validation), `Collector::update`, `series::read_all` and
//! `Exporter::text` — plus bytes rewritten by another thread through a
//! separate read-write mapping while the collector reads through its
//! read-only one. Zero crashes, panics or hangs; every call is timed.
//!
//! Case counts: `PROPTEST_CASES` (default 2000) per strategy, from a fixed
//! seed (ChaCha, deterministic), so a CI run is reproducible. The totals
//! are printed as `hostile: N executions`.

mod common;

use common::TempDir;
use nodestats::__testing::read_all;
use nodestats::Exporter;
use nodestats::{Access, Collector, CollectorConfig, Family, Segment, SegmentOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

const MAGIC: u64 = u64::from_le_bytes(*b"NODESTAT");
const INIT_READY: u64 = u64::from_le_bytes(*b"READY\0\0\x01");
const SHARD_BYTES: u64 = 512;
const SLOT_BYTES: u64 = 256;
const ENTRY_BYTES: u64 = 64;
const STRING_BYTES: u64 = 72;
/// Slowest any one call may be (debug build, 2 shared cores).
const CALL_LIMIT: Duration = Duration::from_secs(1);

static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
/// Milliseconds since START at the last progress; a watchdog aborts the
/// process if a call hangs.
static PROGRESS_MS: AtomicU64 = AtomicU64::new(0);
static WATCHDOG: Once = Once::new();

fn start() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn progress() {
    PROGRESS_MS.store(start().elapsed().as_millis() as u64, Ordering::Relaxed);
}

fn watchdog() {
    WATCHDOG.call_once(|| {
        progress();
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = start().elapsed().as_millis() as u64;
            if now.saturating_sub(PROGRESS_MS.load(Ordering::Relaxed)) > 20_000 {
                eprintln!("hostile: no progress for 20 s: a collector call hangs");
                std::process::abort();
            }
        });
    });
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn runner() -> TestRunner {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// A scratch directory for one test's images, on tmpfs when there is one:
/// thousands of images are written.
fn dir() -> TempDir {
    TempDir::on_tmpfs("hostile")
}

fn no_system() -> CollectorConfig {
    CollectorConfig {
        system: None,
        ..CollectorConfig::default()
    }
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    let e = t.elapsed();
    assert!(e < CALL_LIMIT, "{what} took {e:?}");
    progress();
    r
}

/// Everything a collector does with a segment. Panics (caught by proptest
/// as a failure) on a panic, or a call slower than CALL_LIMIT.
fn collect_all(seg: Segment) {
    let seg = Arc::new(seg);
    let mut c = Collector::new(seg.clone(), no_system()).unwrap();
    let ns = timed("Collector::update", || c.update());
    timed("Collector::update (2nd)", || c.update());
    let (all, _) = timed("series::read_all", || read_all(&seg));
    for s in &all {
        assert!(s.labels.len() <= 8);
    }
    let ex = Exporter::new(seg.clone(), "node", "SERVER").unwrap();
    ex.state().publish(&ns, c.anomalies());
    let text = timed("Exporter::text", || ex.text());
    // Every line of the exposition is one line: hostile strings are escaped.
    for line in text.lines() {
        // A comment, or a metric name (declared families may have any
        // valid one) with labels and a value.
        let name = line.split(['{', ' ']).next().unwrap_or("");
        let ok_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
        assert!(
            line.starts_with('#') || (ok_name && line.contains(' ')),
            "bad exposition line {line:?}"
        );
    }
    timed("Exporter::families", || ex.families());
}

/// Writes `bytes` to a file and runs attach + collect on it.
fn run_image(path: &std::path::Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    EXECUTIONS.fetch_add(1, Ordering::Relaxed);
    std::fs::write(path, bytes).unwrap();
    let opts = SegmentOptions::new().init_wait(Duration::ZERO);
    let name = path.to_str().unwrap();
    let attached = timed("attach", || {
        Segment::attach_with(name, Access::ReadOnly, &opts)
    });
    if let Ok(seg) = attached {
        collect_all(seg);
    }
    Ok(())
}

/// A real segment with data in every region (1 shard, 2 slots).
fn valid_image() -> Vec<u8> {
    common::image::real_segment_image(&dir().join("valid"))
}

fn word(b: &[u8], w: usize) -> u64 {
    u64::from_le_bytes(b[w * 8..w * 8 + 8].try_into().unwrap())
}

fn put(b: &mut [u8], at: usize, v: u64) {
    if at + 8 <= b.len() {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
}

/// Values that break arithmetic or bounds.
fn hostile_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 127),
        Just(1 << 63),
        Just(u32::MAX as u64),
        Just(u32::MAX as u64 + 1),
        (0u64..64).prop_map(|k| k * 128),
        (0u64..4096),
        any::<u64>(),
    ]
}

// ------------------------------------------------------------ random bytes

#[test]
fn random_bytes() {
    watchdog();
    let scratch = dir();
    let p = scratch.join("random");
    let strat = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1024),
        // A valid magic and init word on random bytes reaches validation.
        (
            proptest::collection::vec(any::<u8>(), 256..4096),
            any::<bool>()
        )
            .prop_map(|(mut b, ready)| {
                put(&mut b, 0, MAGIC);
                put(&mut b, 8, 2);
                if ready {
                    put(&mut b, 31 * 8, INIT_READY);
                }
                b
            }),
    ];
    runner().run(&strat, |b| run_image(&p, &b)).unwrap();
    println!(
        "hostile random_bytes: {} executions so far",
        EXECUTIONS.load(Ordering::Relaxed)
    );
}

// ------------------------------------------- valid header, hostile fields

#[test]
fn valid_header_hostile_fields() {
    watchdog();
    let good = valid_image();
    let scratch = dir();
    let p = scratch.join("fields");
    let strat = proptest::collection::vec((0usize..32, hostile_u64()), 1..5);
    runner()
        .run(&strat, |edits| {
            let mut b = good.clone();
            for (w, v) in edits {
                put(&mut b, w * 8, v);
            }
            run_image(&p, &b)
        })
        .unwrap();
    println!(
        "hostile valid_header_hostile_fields: {} executions so far",
        EXECUTIONS.load(Ordering::Relaxed)
    );
}

// ------------------------------------------- hostile family directories

/// Hostile words in the family directory of a real segment with declared
/// families and their series: state words, shapes, lengths, bounds,
/// names, overflow entries and caps. Readers skip and count what is out
/// of range; nothing crashes, panics or hangs.
#[test]
fn hostile_family_directory() {
    watchdog();
    let d = dir();
    let good = common::image::real_segment_image(&d.join("valid"));
    let families_offset = word(&good, 29) as usize;
    let cap = word(&good, 30) as usize;
    assert!(cap > 0, "the image has a family directory");
    let region_words = (1024 + 2048 * cap) / 8;
    let p = d.join("families");
    // The entries that hold the image's families (each at its name's
    // home entry).
    let used: Vec<usize> = (0..cap)
        .filter(|k| word(&good, (families_offset + 1024 + 2048 * k) / 8) != 0)
        .collect();
    assert_eq!(used.len(), 2, "the image declares two families");
    // Mostly those entries' fixed words, then their strings and bounds,
    // sometimes anywhere in the region.
    let at = prop_oneof![
        (proptest::sample::select(used.clone()), 0usize..20).prop_map(|(e, w)| 128 + 256 * e + w),
        (proptest::sample::select(used), 0usize..256).prop_map(|(e, w)| 128 + 256 * e + w),
        0usize..region_words,
    ];
    let strat = proptest::collection::vec((at, hostile_u64()), 1..6);
    runner()
        .run(&strat, |edits| {
            let mut b = good.clone();
            for (w, v) in edits {
                put(&mut b, families_offset + w * 8, v);
            }
            run_image(&p, &b)
        })
        .unwrap();
    println!(
        "hostile hostile_family_directory: {} executions so far",
        EXECUTIONS.load(Ordering::Relaxed)
    );
}

// ------------------------- self-consistent geometry, hostile region contents

#[derive(Clone, Debug)]
struct Geometry {
    shards: u64,
    slots: u64,
    series_cap: u64,
    strings_cap: u64,
    vps: u64,
    rows: u64,
    order: [usize; 6],
    gaps: [u64; 6],
}

fn geometry() -> impl Strategy<Value = Geometry> {
    (
        prop_oneof![Just(1u64), Just(2), Just(4)],
        1u64..6,
        // At least one entry per family: the first 49 are the overflow series.
        49u64..160,
        1u64..60,
        (4u32..10).prop_map(|k| 1u64 << k), // 16..512, a power of two
        1u64..20,
        Just([0usize, 1, 2, 3, 4, 5]).prop_shuffle(),
        [0u64..3, 0u64..3, 0u64..3, 0u64..3, 0u64..3, 0u64..3],
    )
        .prop_map(
            |(shards, slots, series_cap, strings_cap, vps, rows, order, gaps)| Geometry {
                shards,
                slots,
                series_cap,
                strings_cap,
                vps,
                rows,
                order,
                gaps,
            },
        )
}

/// One directory entry: (state, family index, value count, label count,
/// base, label ids).
type Entry = (u64, u64, u64, u64, u64, [u32; 8]);

fn entry(vps: u64, strings: u64) -> impl Strategy<Value = Entry> {
    (
        prop_oneof![8 => Just(2u64), 1 => any::<u64>(), 1 => Just(0)],
        prop_oneof![8 => 0u64..49, 1 => 49u64..0x10000],
        prop_oneof![8 => Just(u64::MAX), 2 => 0u64..0x10000], // MAX = the family's own
        prop_oneof![8 => Just(u64::MAX), 2 => 0u64..0x10000],
        prop_oneof![8 => 0..vps + 1, 1 => Just(u64::MAX - 3), 1 => any::<u64>()],
        proptest::array::uniform8(prop_oneof![
            8 => 0..strings as u32 + 3,
            1 => Just(u32::MAX),
            1 => any::<u32>(),
        ]),
    )
}

/// One string: (state word, 64 bytes), with lengths past the maximum and
/// bytes that are not UTF-8 or that need escaping.
fn string() -> impl Strategy<Value = (u64, Vec<u8>)> {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 64),
        proptest::collection::vec(
            prop_oneof![
                Just(b'"'),
                Just(b'\\'),
                Just(b'\n'),
                Just(b'{'),
                Just(b'a'),
                Just(0xff),
                Just(0xc3)
            ],
            64
        ),
    ];
    let len = prop_oneof![4 => 0u64..=64, 1 => 65u64..300, 1 => Just(u64::MAX >> 8)];
    let state = prop_oneof![8 => Just(2u64), 1 => any::<u8>().prop_map(u64::from)];
    (state, len, bytes).prop_map(|(st, len, b)| (st | len << 8, b))
}

#[derive(Clone, Debug)]
struct Contents {
    next_series: u64,
    next_string: u64,
    entries: Vec<Entry>,
    strings: Vec<(u64, Vec<u8>)>,
    slot_words: Vec<(usize, u64)>,
    shard_words: Vec<(usize, u64)>,
    value_words: Vec<(usize, u64)>,
    /// Thread-row counter words, then row state words.
    row_words: Vec<(usize, u64)>,
    state_words: Vec<(usize, u64)>,
}

fn contents(g: &Geometry) -> impl Strategy<Value = Contents> {
    (
        prop_oneof![0..g.series_cap + 4, Just(u64::MAX), any::<u64>()],
        prop_oneof![0..g.strings_cap + 4, Just(u64::MAX), any::<u64>()],
        proptest::collection::vec(
            entry(g.vps, g.strings_cap),
            0..(g.series_cap as usize).min(60),
        ),
        proptest::collection::vec(string(), 0..(g.strings_cap as usize).min(20)),
        proptest::collection::vec((0usize..(g.slots as usize * 32), hostile_u64()), 0..20),
        proptest::collection::vec((0usize..(g.shards as usize * 64), any::<u64>()), 0..10),
        proptest::collection::vec((0usize..(g.shards * g.vps) as usize, any::<u64>()), 0..30),
        (
            proptest::collection::vec((0usize..(g.rows as usize * 64), any::<u64>()), 0..10),
            proptest::collection::vec((0usize..g.rows as usize, hostile_u64()), 0..5),
        ),
    )
        .prop_map(
            |(ns, nst, entries, strings, slot_words, shard_words, value_words, (rw, sw))| {
                Contents {
                    next_series: ns,
                    next_string: nst,
                    entries,
                    strings,
                    slot_words,
                    shard_words,
                    value_words,
                    row_words: rw,
                    state_words: sw,
                }
            },
        )
}

fn build(g: &Geometry, c: &Contents) -> Vec<u8> {
    let series_bytes =
        (128 + g.series_cap * ENTRY_BYTES + g.strings_cap * STRING_BYTES).div_ceil(128) * 128;
    let sizes = [
        g.shards * SHARD_BYTES,
        g.slots * SLOT_BYTES,
        series_bytes,
        g.shards * g.vps * 8,
        g.rows * SHARD_BYTES,
        g.rows * 8,
    ];
    let mut offsets = [0u64; 6];
    let mut at = 256u64;
    for (k, &r) in g.order.iter().enumerate() {
        at += g.gaps[k] * 128;
        offsets[r] = at;
        at += sizes[r].div_ceil(128) * 128;
    }
    let size = at;
    let mut b = vec![0u8; size as usize];
    let hdr = [
        (0, MAGIC),
        (1, 2),
        (2, 7), // a newer minor: accepted
        (3, 256),
        (4, size),
        (5, 0xfeed),
        (6, 0xbeef),
        (7, 1),
        (8, 0),
        (9, g.shards),
        (10, SHARD_BYTES),
        (11, 64),
        (12, offsets[0]),
        (13, g.slots),
        (14, SLOT_BYTES),
        (15, offsets[1]),
        (16, offsets[2]),
        (17, g.series_cap),
        (18, g.strings_cap),
        (19, offsets[3]),
        (20, g.vps),
        (23, g.rows),
        (24, SHARD_BYTES),
        (25, offsets[4]),
        (26, offsets[5]),
        (31, INIT_READY),
    ];
    for (w, v) in hdr {
        put(&mut b, w * 8, v);
    }
    let series = offsets[2] as usize;
    put(&mut b, series, c.next_series);
    put(&mut b, series + 8, c.next_string);
    put(&mut b, series + 24, 3);
    put(&mut b, series + 32, 5);
    let fams = Family::ALL;
    for (i, &(st, f, n, nl, base, ids)) in c.entries.iter().enumerate() {
        let e = series + 128 + i * ENTRY_BYTES as usize;
        let (n, nl) = match fams.get(f as usize) {
            Some(fam) => (
                if n == u64::MAX {
                    fam.def().value_count() as u64
                } else {
                    n
                },
                if nl == u64::MAX {
                    fam.def().labels.len() as u64
                } else {
                    nl
                },
            ),
            None => (n & 0xffff, nl & 0xffff),
        };
        put(&mut b, e, st);
        put(&mut b, e + 8, f | n << 16 | nl << 32);
        put(&mut b, e + 16, base);
        for k in 0..4 {
            put(
                &mut b,
                e + 24 + k * 8,
                ids[2 * k] as u64 | (ids[2 * k + 1] as u64) << 32,
            );
        }
    }
    let strings = series + 128 + (g.series_cap * ENTRY_BYTES) as usize;
    for (i, (st, bytes)) in c.strings.iter().enumerate() {
        let e = strings + i * STRING_BYTES as usize;
        put(&mut b, e, *st);
        b[e + 8..e + 72].copy_from_slice(bytes);
    }
    for &(w, v) in &c.slot_words {
        put(&mut b, offsets[1] as usize + w * 8, v);
    }
    for &(w, v) in &c.shard_words {
        put(&mut b, offsets[0] as usize + w * 8, v);
    }
    for &(w, v) in &c.value_words {
        put(&mut b, offsets[3] as usize + w * 8, v);
    }
    for &(w, v) in &c.row_words {
        put(&mut b, offsets[4] as usize + w * 8, v);
    }
    for &(w, v) in &c.state_words {
        put(&mut b, offsets[5] as usize + w * 8, v);
    }
    b
}

#[test]
fn hostile_geometry_directory_and_strings() {
    watchdog();
    let scratch = dir();
    let p = scratch.join("geometry");
    let strat = geometry().prop_flat_map(|g| {
        let c = contents(&g);
        (Just(g), c)
    });
    let attached = AtomicUsize::new(0);
    runner()
        .run(&strat, |(g, c)| {
            let b = build(&g, &c);
            // The geometry is valid by construction: attach must succeed.
            std::fs::write(&p, &b).unwrap();
            let seg = Segment::attach_with(
                p.to_str().unwrap(),
                Access::ReadOnly,
                &SegmentOptions::new().init_wait(Duration::ZERO),
            );
            prop_assert!(seg.is_ok(), "{g:?}: {seg:?}");
            attached.fetch_add(1, Ordering::Relaxed);
            drop(seg);
            run_image(&p, &b)
        })
        .unwrap();
    assert_eq!(attached.load(Ordering::Relaxed), cases() as usize);
    println!(
        "hostile hostile_geometry_directory_and_strings: {} executions so far",
        EXECUTIONS.load(Ordering::Relaxed)
    );
}

// ---------------------------------- bytes mutated while the collector reads

/// A second thread maps the segment file read-write on its own and
/// rewrites words all over it (header included, never the size) while this
/// thread attaches read-only and collects, again and again.
#[test]
fn bytes_mutated_while_the_collector_reads() {
    watchdog();
    let good = valid_image();
    let scratch = dir();
    let p = scratch.join("mutated");
    std::fs::write(&p, &good).unwrap();
    let len = good.len();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared mapping of our own file, accessed only through
    // atomics below; unmapped at the end of the test.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    let base = base as usize;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let rounds = cases() as usize;
    let mutator = {
        let (stop, writes) = (stop.clone(), writes.clone());
        let good = good.clone();
        std::thread::spawn(move || {
            let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
            let words = len / 8;
            let at = |i: usize| {
                // SAFETY: i < words; the mapping is 8-aligned and alive
                // until after this thread is joined.
                unsafe { &*((base + i * 8) as *const AtomicU64) }
            };
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if n % 256 == 0 {
                    // Heal: back to the valid image so attaches get through.
                    for i in 0..words {
                        at(i).store(word(&good, i), Ordering::Relaxed);
                    }
                    continue;
                }
                let r = rng.next_u64();
                // Mostly the header, the alloc line, the directory and the
                // strings; sometimes anywhere.
                // The header only in the last writes before each heal, so
                // that most attaches get through to the collector code.
                let i = match r % 16 {
                    _ if n % 256 >= 248 => (r >> 8) as usize % 32,
                    0..=11 => {
                        let series = word(&good, 16) as usize / 8;
                        series + (r >> 8) as usize % (16 + 8 * 200 + 9 * 50)
                    }
                    _ => 32 + (r >> 8) as usize % (words - 32),
                };
                if i == 4 || i >= words {
                    continue; // the size word: keep the file attachable at times
                }
                let v = match (r >> 40) % 6 {
                    0 => 0,
                    1 => u64::MAX,
                    2 => rng.next_u64(),
                    3 => rng.next_u64() % 300,
                    4 => 2 | (rng.next_u64() % 100) << 8,
                    _ => word(&good, i) ^ (1 << (rng.next_u64() % 64)),
                };
                at(i).store(v, Ordering::Relaxed);
                writes.fetch_add(1, Ordering::Relaxed);
                if n % 16 == 0 {
                    // Let the collector read between bursts of writes.
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        })
    };
    let name = p.to_str().unwrap().to_string();
    let opts = SegmentOptions::new().init_wait(Duration::ZERO);
    let mut attached = 0usize;
    let t = Instant::now();
    for _ in 0..rounds {
        EXECUTIONS.fetch_add(1, Ordering::Relaxed);
        let r = timed("attach", || {
            Segment::attach_with(&name, Access::ReadOnly, &opts)
        });
        if let Ok(seg) = r {
            attached += 1;
            collect_all(seg);
        }
    }
    stop.store(true, Ordering::Relaxed);
    mutator.join().unwrap();
    // SAFETY: the mutator thread is gone; nothing else uses this mapping.
    unsafe { libc::munmap(base as *mut libc::c_void, len) };
    println!(
        "hostile bytes_mutated_while_the_collector_reads: {rounds} rounds ({attached} attached and collected) against {} concurrent word writes in {:.1?}; {} executions so far",
        writes.load(Ordering::Relaxed),
        t.elapsed(),
        EXECUTIONS.load(Ordering::Relaxed)
    );
    assert!(
        attached > 0,
        "the mutated segment never attached: the test reached no collector code"
    );
}
