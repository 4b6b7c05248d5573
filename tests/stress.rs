//! Stress: more threads than CPUs in several processes under a signal
//! storm, writers SIGKILLed at random points (while recording, while
//! creating a segment, while registering series), and a collector that
//! must never hang or crash meanwhile.
//!
//! `harness = false`: the binary is the parent and, with `child ...`
//! arguments, the processes it spawns. Randomness is seeded (printed), so
//! a failure can be replayed with `NODESTATS_STRESS_SEED`.

mod common;

use common::{ShmName, TempDir};
use nodestats::__testing::read_all;
use nodestats::Exporter;
use nodestats::{
    Access, Collector, CollectorConfig, Direction, Error, Family, Segment, SegmentOptions, Stats,
};
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Slowest a collector call may be while writers hammer the segment.
const CALL_LIMIT: Duration = Duration::from_secs(1);

// ----------------------------------------------------------------- children

extern "C" fn noop(_: libc::c_int) {}

fn install_sigusr1() {
    // SAFETY: a zeroed sigaction with a plain handler and SA_RESTART is
    // valid; the handler does nothing, so it is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = noop as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

fn say(out: &mut impl Write, b: &[u8]) {
    out.write_all(b).unwrap();
    out.flush().unwrap();
}

fn child_main(args: &[String]) {
    install_sigusr1();
    let mut out = std::io::stdout().lock();
    let name = args[1].clone();
    let opts = SegmentOptions::new().name(name.clone());
    match args[0].as_str() {
        // THREADS threads record N packets each (plus gauges up and down
        // and a labeled series) under the parent's signal storm.
        "storm" => {
            let threads: u64 = args[2].parse().unwrap();
            let n: u64 = args[3].parse().unwrap();
            let stats = Stats::open(&opts).unwrap();
            let nack = stats
                .series(Family::NackTotal, &["incoming", "SE"])
                .unwrap();
            say(&mut out, b"R");
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (stats, nack) = (&stats, &nack);
                    s.spawn(move || {
                        for i in 0..n {
                            stats.record_packets(Direction::Incoming, 1, t + 1, false);
                            if i % 64 == 0 {
                                stats.room_started();
                                nack.inc_by(1);
                                stats.participant_added();
                                stats.participant_removed();
                                stats.room_ended();
                            }
                        }
                    });
                }
            });
        }
        // Record one packet, acknowledge it, forever (until SIGKILL);
        // keeps a room open so the gauge must vanish with the process.
        "acker" => {
            let stats = Stats::open(&opts).unwrap();
            stats.room_started();
            stats.participant_added();
            say(&mut out, b"R");
            loop {
                stats.record_packets(Direction::Outgoing, 1, 10, false);
                say(&mut out, b"a");
            }
        }
        // Two threads, each with a thread writer (a row of its own) and a
        // thread series in that row, plus the per-CPU path: record one
        // packet through each and one NACK through the series, acknowledge,
        // forever (until SIGKILL).
        "row-acker" => {
            let stats = Stats::open(&opts).unwrap();
            let (ready, go) = (std::sync::Barrier::new(3), std::sync::Barrier::new(3));
            std::thread::scope(|s| {
                for _ in 0..2 {
                    let (stats, ready, go) = (&stats, &ready, &go);
                    s.spawn(move || {
                        let t = stats.thread_writer().unwrap();
                        let nack = t.series(Family::NackTotal, &["outgoing", "SE"]).unwrap();
                        assert!(nack.in_row());
                        ready.wait();
                        go.wait();
                        loop {
                            t.record_packets(Direction::Outgoing, 1, 10, false);
                            nack.inc_by(1);
                            stats.record_packets(Direction::Incoming, 1, 10, false);
                            say(&mut std::io::stdout().lock(), b"a");
                        }
                    });
                }
                ready.wait();
                say(&mut out, b"R");
                // The threads share stdout for their acknowledgements.
                drop(out);
                go.wait();
            });
        }
        // Register a new series (new label string, new directory entry),
        // count into it, acknowledge, forever.
        "registrar" => {
            let tag: String = args[2].clone();
            let stats = Stats::open(&opts).unwrap();
            say(&mut out, b"R");
            for k in 0u64.. {
                let country = format!("{tag}{k}");
                let h = stats
                    .series(Family::NackTotal, &["outgoing", &country])
                    .unwrap();
                h.inc_by(1);
                say(&mut out, b"a");
            }
        }
        // Create (and unlink) fresh segments in a loop, forever.
        "creator" => {
            say(&mut out, b"R");
            for k in 0u64.. {
                let p = format!("{name}/seg-{k}");
                let s = Segment::create(&SegmentOptions::new().name(p.clone()).shards(2)).unwrap();
                drop(s);
                std::fs::remove_file(&p).unwrap();
                say(&mut out, b"a");
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

// ------------------------------------------------------------------- parent

/// A tiny deterministic PRNG (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("NODESTATS_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2024)
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.arg("child").args(args).stdout(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// Reads the child's "R" (it has its SIGUSR1 handler and its segment).
fn wait_ready(c: &mut Child) {
    let mut b = [0u8; 1];
    c.stdout.as_mut().unwrap().read_exact(&mut b).unwrap();
    assert_eq!(&b, b"R");
}

fn sigkill(c: &mut Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
}

/// Kills the child after `delay`, then counts the acknowledgements it
/// wrote before dying (the pipe is drained to EOF).
fn kill_after_and_count(mut c: Child, delay: Duration) -> u64 {
    let mut out = c.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        out.read_to_end(&mut all).unwrap();
        all.iter().filter(|&&b| b == b'a').count() as u64
    });
    std::thread::sleep(delay);
    sigkill(&mut c);
    let status = c.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "the child died by itself: {status:?}"
    );
    reader.join().unwrap()
}

fn no_system() -> CollectorConfig {
    CollectorConfig {
        system: None,
        ..CollectorConfig::default()
    }
}

#[derive(Default)]
struct CallStats {
    calls: AtomicU64,
    max_us: AtomicU64,
}

impl CallStats {
    fn time<T>(&self, what: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        let e = t.elapsed();
        assert!(e < CALL_LIMIT, "{what} took {e:?}");
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.max_us
            .fetch_max(e.as_micros() as u64, Ordering::Relaxed);
        r
    }
}

/// A collector thread on a read-only attach: update, read_all and the
/// Prometheus text in a loop until `stop`; counters must never go down.
fn collector_thread(
    name: String,
    stop: Arc<AtomicBool>,
    calls: Arc<CallStats>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = Collector::attach(&name, no_system()).unwrap();
        let ex = Exporter::new(c.segment().clone(), "stress", "SERVER").unwrap();
        let (mut last_in, mut last_out) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let ns = calls.time("Collector::update", || c.update());
            assert!(
                ns.packets_in >= last_in && ns.packets_out >= last_out,
                "a counter went down"
            );
            (last_in, last_out) = (ns.packets_in, ns.packets_out);
            ex.state().publish(&ns, c.anomalies());
            calls.time("Exporter::text", || ex.text());
            calls.time("series::read_all", || read_all(c.segment()));
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

fn shm_name(tag: &str) -> ShmName {
    ShmName::new(&format!("stress-{tag}"))
}

/// The NACK series of direction `dir`, with the family's overflow series
/// (every label `__overflow__`: series past the family's cap or the
/// directory), and the corrupt entries seen.
fn nack_sum(seg: &Segment, dir: &str) -> (u64, u64) {
    let (all, st) = read_all(seg);
    let v = all
        .iter()
        .filter(|s| {
            s.family == Family::NackTotal
                && (s.labels[0] == dir || s.labels.iter().all(|l| l == "__overflow__"))
        })
        .map(|s| s.value)
        .sum();
    (v, st.corrupt_entries)
}

/// PROCS processes x THREADS threads (12 threads on 2 CPUs) record while
/// the parent sends SIGUSR1 as fast as it can to every child and collects:
/// exact totals, in each write mode this machine supports.
fn signal_storm_exact_totals(log: &mut Vec<String>) {
    const PROCS: u64 = 3;
    const THREADS: u64 = 4;
    const N: u64 = 5_000_000;
    let modes: Vec<&str> = if nodestats::__testing::rseq_supported() {
        vec!["atomic", "rseq"]
    } else {
        vec!["atomic"]
    };
    for mode in modes {
        let shm = shm_name(&format!("storm-{mode}"));
        let name = shm.to_string();
        let creator = Stats::open(&SegmentOptions::new().name(name.clone()).write_mode(
            if mode == "rseq" {
                nodestats::WriteMode::Rseq
            } else {
                nodestats::WriteMode::Atomic
            },
        ))
        .unwrap();
        let mut children: Vec<Child> = (0..PROCS)
            .map(|_| spawn(&["storm", &name, &THREADS.to_string(), &N.to_string()], &[]))
            .collect();
        for c in &mut children {
            wait_ready(c);
        }
        let pids: Vec<i32> = children.iter().map(|c| c.id() as i32).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(CallStats::default());
        let col = collector_thread(name.clone(), stop.clone(), calls.clone());
        let sent = Arc::new(AtomicU64::new(0));
        let storm = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for &p in &pids {
                        // SAFETY: kill(2); a child that already exited is
                        // a zombie until waited for, so the pid is ours.
                        if unsafe { libc::kill(p, libc::SIGUSR1) } == 0 {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::yield_now();
                }
            })
        };
        let t = Instant::now();
        for mut c in children {
            assert!(c.wait().unwrap().success(), "a storm writer failed");
        }
        let elapsed = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        storm.join().unwrap();
        col.join().unwrap();
        let ro = Segment::attach(&name, Access::ReadOnly).unwrap();
        let ns = Collector::new(Arc::new(ro), no_system()).unwrap().update();
        let total = PROCS * THREADS * N;
        assert_eq!(ns.packets_in, total, "{mode}: lost or doubled packets");
        assert_eq!(
            ns.bytes_in,
            PROCS * N * (1..=THREADS).sum::<u64>(),
            "{mode}: bytes"
        );
        assert_eq!((ns.num_rooms, ns.num_clients), (0, 0));
        let (nacks, corrupt) = nack_sum(creator.segment(), "incoming");
        assert_eq!(nacks, PROCS * THREADS * N.div_ceil(64), "{mode}: series");
        assert_eq!(corrupt, 0);
        drop(creator);
        log.push(format!(
            "signal storm ({mode}): {PROCS} processes x {THREADS} threads, {} packets + {} series adds + {} gauge changes, {} SIGUSR1 sent, {:.1?}; collector {} calls, slowest {} us; lost 0",
            total,
            nacks,
            4 * nacks,
            sent.load(Ordering::Relaxed),
            elapsed,
            calls.calls.load(Ordering::Relaxed),
            calls.max_us.load(Ordering::Relaxed)
        ));
    }
}

/// Runs `kills` children in `mode` on segment `name`, two at a time (so
/// kills land while another writer records), each SIGKILLed 0-30 ms after
/// it is ready; returns the increments they acknowledged in all.
fn kill_children_in_two_lanes(rng: &mut Rng, mode: &str, name: &str, kills: usize) -> u64 {
    let acked = Mutex::new(0u64);
    std::thread::scope(|s| {
        for lane in 0..2 {
            let mut r = Rng(rng.next() ^ lane);
            let acked = &acked;
            s.spawn(move || {
                for _ in 0..kills / 2 {
                    let mut c = spawn(&[mode, name], &[]);
                    wait_ready(&mut c);
                    let delay = Duration::from_micros(r.below(30_000));
                    let n = kill_after_and_count(c, delay);
                    *acked.lock().unwrap() += n;
                }
            });
        }
    });
    acked.into_inner().unwrap()
}

/// Writers SIGKILLed at random points while recording: every acknowledged
/// increment is counted (and at most one unacknowledged one per kill), the
/// gauges of the dead vanish, and a collector runs throughout.
fn killed_writers_keep_acknowledged_counts(rng: &mut Rng, log: &mut Vec<String>) {
    const KILLS: usize = 24;
    let shm = shm_name("ack");
    let name = shm.to_string();
    let survivor = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    survivor.room_started();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(CallStats::default());
    let col = collector_thread(name.clone(), stop.clone(), calls.clone());
    let acked = kill_children_in_two_lanes(rng, "acker", &name, KILLS);
    stop.store(true, Ordering::Relaxed);
    col.join().unwrap();
    let mut c = Collector::attach(&name, no_system()).unwrap();
    let ns = c.update();
    assert!(
        ns.packets_out >= acked && ns.packets_out <= acked + KILLS as u64,
        "acknowledged {acked}, counted {} (at most one in flight per kill)",
        ns.packets_out
    );
    // Packets and bytes are two adds (two rseq sections, or two locked
    // adds): a kill between them leaves a call's packets without its bytes,
    // at most once per kill, never the reverse and never a double add.
    assert!(
        ns.bytes_out <= 10 * ns.packets_out
            && ns.bytes_out >= 10 * ns.packets_out.saturating_sub(KILLS as u64),
        "bytes {} for {} packets",
        ns.bytes_out,
        ns.packets_out
    );
    assert_eq!(
        (ns.num_rooms, ns.num_clients, ns.live_writers),
        (1, 0, 1),
        "only the survivor's room counts"
    );
    drop(survivor);
    log.push(format!(
        "SIGKILL while recording: {KILLS} writers killed at random 0-30 ms, {acked} acknowledged increments, {} counted (in flight at a kill: {}); dead writers' gauges gone; collector {} calls, slowest {} us",
        ns.packets_out,
        ns.packets_out - acked,
        calls.calls.load(Ordering::Relaxed),
        calls.max_us.load(Ordering::Relaxed)
    ));
}

/// Thread writers of processes SIGKILLed at random points while recording
/// (two per process, two processes at a time, into a table of only four
/// rows): every acknowledged increment is counted, a dead process's rows are
/// reused by the next process without losing their counts, and afterwards
/// every row can be claimed again.
fn killed_thread_writers_rows_reused(rng: &mut Rng, log: &mut Vec<String>) {
    const KILLS: usize = 24;
    const ROWS: usize = 4;
    let shm = shm_name("rows");
    let name = shm.to_string();
    let survivor =
        Stats::open(&SegmentOptions::new().name(name.clone()).thread_rows(ROWS)).unwrap();
    let acked = kill_children_in_two_lanes(rng, "row-acker", &name, KILLS);
    // Every child is dead: all rows can be claimed, and keep their counts.
    let mine: Vec<_> = (0..ROWS)
        .map(|_| survivor.thread_writer().unwrap())
        .collect();
    assert!(matches!(
        survivor.thread_writer(),
        Err(Error::NoThreadRow { rows }) if rows == ROWS as u32
    ));
    for t in &mine {
        t.record_packets(Direction::Outgoing, 1, 10, false);
    }
    let ns = Collector::attach(&name, no_system()).unwrap().update();
    let rows_counted = ns.packets_out - ROWS as u64;
    // Each acknowledgement follows one row add and one shard add; at most
    // two threads per kill were between an add and its acknowledgement.
    let in_flight = 2 * KILLS as u64;
    assert!(
        rows_counted >= acked && rows_counted <= acked + in_flight,
        "acknowledged {acked}, counted {rows_counted} through thread rows"
    );
    assert!(ns.packets_in >= acked && ns.packets_in <= acked + in_flight);
    assert!(
        ns.nack_total >= acked && ns.nack_total <= acked + in_flight,
        "acknowledged {acked}, counted {} through thread series",
        ns.nack_total
    );
    // The series' slots were bound by dead processes and stay bound: the
    // survivor's thread writers find them.
    for t in &mine {
        assert!(t
            .series(Family::NackTotal, &["outgoing", "SE"])
            .unwrap()
            .in_row());
    }
    // Packets and bytes are two stores: a kill between them leaves one
    // call's packets without its bytes, at most once per killed thread.
    assert!(
        ns.bytes_out <= 10 * ns.packets_out
            && ns.bytes_out >= 10 * ns.packets_out.saturating_sub(in_flight),
        "bytes {} for {} packets",
        ns.bytes_out,
        ns.packets_out
    );
    drop(mine);
    drop(survivor);
    log.push(format!(
        "SIGKILL with thread writers: {KILLS} processes x 2 thread writers killed at random 0-30 ms into {ROWS} rows, {acked} acknowledged, {rows_counted} counted through rows, {} through shards, {} through thread series; every row reusable afterwards",
        ns.packets_in, ns.nack_total
    ));
}

/// Writers SIGKILLed while registering labeled series (new strings and
/// directory entries): nothing acknowledged is lost, no entry is ever
/// half-published (corrupt), and reads stay bounded.
fn killed_during_registration(rng: &mut Rng, log: &mut Vec<String>) {
    const KILLS: usize = 16;
    let shm = shm_name("reg");
    let name = shm.to_string();
    let creator = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(CallStats::default());
    let col = collector_thread(name.clone(), stop.clone(), calls.clone());
    let mut acked = 0;
    for k in 0..KILLS {
        let mut c = spawn(&["registrar", &name, &format!("k{k}-")], &[]);
        wait_ready(&mut c);
        acked += kill_after_and_count(c, Duration::from_micros(rng.below(20_000)));
    }
    stop.store(true, Ordering::Relaxed);
    col.join().unwrap();
    let (sum, corrupt) = nack_sum(creator.segment(), "outgoing");
    let (_, st) = read_all(creator.segment());
    assert!(
        sum >= acked && sum <= acked + KILLS as u64,
        "acknowledged {acked}, counted {sum}"
    );
    assert_eq!(
        corrupt, 0,
        "a killed registration left a half-published entry"
    );
    drop(creator);
    log.push(format!(
        "SIGKILL while registering series: {KILLS} writers killed at random 0-20 ms, {} series registered, {acked} acknowledged adds, {sum} counted, {} strings / {} series overflowed, corrupt entries 0; collector {} calls, slowest {} us",
        st.registered,
        st.strings_overflowed,
        st.series_overflowed,
        calls.calls.load(Ordering::Relaxed),
        calls.max_us.load(Ordering::Relaxed)
    ));
}

/// Creators SIGKILLed at random points of segment creation: whatever they
/// leave attaches, or fails fast with NotInitialized / Truncated.
fn killed_during_creation(rng: &mut Rng, log: &mut Vec<String>) {
    const KILLS: usize = 40;
    let scratch = TempDir::new("stress-create");
    let dir = scratch.dir();
    let dir_s = dir.to_str().unwrap().to_string();
    let (mut complete, mut not_init, mut truncated, mut none) = (0, 0, 0, 0);
    let mut created = 0u64;
    let mut slowest = Duration::ZERO;
    for _ in 0..KILLS {
        let mut c = spawn(&["creator", &dir_s], &[]);
        wait_ready(&mut c);
        created += kill_after_and_count(c, Duration::from_micros(rng.below(15_000)));
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        if left.is_empty() {
            none += 1;
        }
        for p in left {
            let t = Instant::now();
            let r = Segment::attach_with(
                p.to_str().unwrap(),
                Access::ReadOnly,
                &SegmentOptions::new().init_wait(Duration::from_millis(50)),
            );
            let e = t.elapsed();
            slowest = slowest.max(e);
            assert!(
                e < CALL_LIMIT,
                "attach to a half-created segment took {e:?}"
            );
            match r {
                Ok(seg) => {
                    complete += 1;
                    let mut c = Collector::new(Arc::new(seg), no_system()).unwrap();
                    c.update();
                }
                Err(Error::NotInitialized) => not_init += 1,
                Err(Error::Truncated { .. }) => truncated += 1,
                Err(e) => panic!("half-created segment gave {e:?}"),
            }
            std::fs::remove_file(&p).unwrap();
        }
    }
    // Creation makes an unnamed O_TMPFILE and links it when it is whole, so
    // a kill inside it leaves nothing ("nothing" below); what is left at a
    // name was killed after the link. Every child died by SIGKILL (checked
    // above) in a loop that does nothing but create: the kills landed.
    assert!(created > 0, "the creators never finished a creation");
    log.push(format!(
        "SIGKILL while creating: {KILLS} creators killed at random 0-15 ms; {created} creations finished before the kills; left {truncated} Truncated, {not_init} NotInitialized, {complete} complete, {none} nothing; slowest attach {slowest:?}; no hang, no other error"
    ));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        child_main(&args[1..]);
        return;
    }
    let seed = seed();
    println!("stress: seed {seed} (NODESTATS_STRESS_SEED)");
    type Ctx = (Rng, Vec<String>);
    let tests: [common::Test<Ctx>; 5] = [
        ("signal_storm_exact_totals", |c| {
            signal_storm_exact_totals(&mut c.1)
        }),
        ("killed_writers_keep_acknowledged_counts", |c| {
            killed_writers_keep_acknowledged_counts(&mut c.0, &mut c.1)
        }),
        ("killed_thread_writers_rows_reused", |c| {
            killed_thread_writers_rows_reused(&mut c.0, &mut c.1)
        }),
        ("killed_during_registration", |c| {
            killed_during_registration(&mut c.0, &mut c.1)
        }),
        ("killed_during_creation", |c| {
            killed_during_creation(&mut c.0, &mut c.1)
        }),
    ];
    let mut ctx: Ctx = (Rng(seed), Vec::new());
    let failed = common::run(&mut ctx, &tests);
    let log = ctx.1;
    for l in &log {
        println!("stress: {l}");
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
