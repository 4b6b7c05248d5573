//! The rseq write path loses nothing: more writer threads than CPUs,
//! several processes on one segment and a storm of signals, with exact
//! totals. A variant that stalls inside the critical section shows the
//! abort path firing (and still exact totals), and a control that adds per
//! CPU *without* rseq shows that this harness does catch lost updates.
//!
//! `harness = false`: the same binary is the parent (running the checks)
//! and, with `child ...` arguments, the writer processes it spawns.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod common;

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() {
    println!("0 passed, 0 failed (the rseq path exists on Linux x86-64 only)");
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn main() {
    linux::main();
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod linux {
    use nodestats::__testing::rseq_hooks as test_hooks;
    use nodestats::Counter;
    use nodestats::{
        Access, Direction, Error, Segment, SegmentOptions, Stats, Totals, TrackKind, WriteMode,
    };
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Barrier, Mutex};
    use std::time::Duration;

    /// What each writer does per iteration.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Work {
        /// The production calls: `record_packets` (pair), `record_rtcp`
        /// (three single adds) and `track_publish_attempt` (one add).
        Record,
        /// `record_packets` through a section that spins before its commit.
        Stalled,
        /// The control: per-CPU load, spin, store, without rseq.
        Unprotected,
    }

    impl Work {
        fn parse(s: &str) -> Work {
            match s {
                "record" => Work::Record,
                "stalled" => Work::Stalled,
                "unprotected" => Work::Unprotected,
                _ => panic!("unknown work {s}"),
            }
        }
        fn name(self) -> &'static str {
            match self {
                Work::Record => "record",
                Work::Stalled => "stalled",
                Work::Unprotected => "unprotected",
            }
        }
    }

    /// Busy-loop iterations inside the stalled section and the control's
    /// window (≈ 1 µs).
    const SPINS: u64 = 2_000;

    static SIGNALS: AtomicU64 = AtomicU64::new(0);

    extern "C" fn on_usr1(_: libc::c_int) {
        SIGNALS.fetch_add(1, Ordering::Relaxed);
    }

    fn install_handler() {
        // SAFETY: sigaction is plain old data (all-zero is valid); the
        // handler only does an atomic add, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_usr1 as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
    }

    /// Interval of each writer's own signal timer.
    const TIMER_INTERVAL: Duration = Duration::from_micros(50);

    /// A POSIX timer that sends SIGUSR1 to one thread every
    /// `TIMER_INTERVAL`: the timer interrupt lands while the thread runs,
    /// so its signals arrive inside critical sections, not only at the
    /// reschedules that already abort them.
    struct SignalTimer(libc::timer_t);

    impl SignalTimer {
        fn start(tid: libc::pid_t) -> SignalTimer {
            // SAFETY: sigevent and itimerspec are plain old data; the
            // timer id is written by timer_create before we use it.
            unsafe {
                let mut ev: libc::sigevent = std::mem::zeroed();
                ev.sigev_notify = libc::SIGEV_THREAD_ID;
                ev.sigev_signo = libc::SIGUSR1;
                ev.sigev_notify_thread_id = tid;
                let mut id: libc::timer_t = std::mem::zeroed();
                assert_eq!(
                    libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut id),
                    0
                );
                let every = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: TIMER_INTERVAL.as_nanos() as _,
                };
                let spec = libc::itimerspec {
                    it_interval: every,
                    it_value: every,
                };
                assert_eq!(libc::timer_settime(id, 0, &spec, std::ptr::null_mut()), 0);
                SignalTimer(id)
            }
        }
    }

    impl Drop for SignalTimer {
        fn drop(&mut self) {
            // SAFETY: the id came from timer_create and is deleted once.
            unsafe { libc::timer_delete(self.0) };
        }
    }

    /// Bytes per packet of writer `t` of process `p`: unique per writer.
    fn weight(p: u64, t: u64) -> u64 {
        1000 * p + t + 1
    }

    /// Runs `threads` writers of `work`, `iters` iterations each, while
    /// another thread sends SIGUSR1 to them as fast as it can. Returns the
    /// aborts counted by the stalled variant.
    fn run_writers(stats: &Stats, work: Work, p: u64, threads: u64, iters: u64) -> u64 {
        let tids = Mutex::new(Vec::new());
        let ready = Barrier::new(threads as usize + 1);
        let running = AtomicUsize::new(threads as usize);
        let aborts = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (tids, ready, running, aborts) = (&tids, &ready, &running, &aborts);
                s.spawn(move || {
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() };
                    tids.lock().unwrap().push(tid);
                    let timer = SignalTimer::start(tid);
                    ready.wait();
                    let w = weight(p, t);
                    let mut mine = 0;
                    for i in 0..iters {
                        match work {
                            Work::Record => {
                                stats.record_packets(Direction::Incoming, 1, w, i % 7 == 0);
                                stats.record_rtcp(Direction::Outgoing, 1, (i % 2) as u32, 1);
                                stats.track_publish_attempt(TrackKind::Video);
                            }
                            Work::Stalled => {
                                mine += test_hooks::record_packets_stalled(
                                    stats,
                                    Direction::Incoming,
                                    1,
                                    w,
                                    false,
                                    SPINS,
                                )
                                .expect("segment is in rseq mode");
                            }
                            Work::Unprotected => test_hooks::record_packets_unprotected(
                                stats,
                                Direction::Incoming,
                                1,
                                w,
                                false,
                                SPINS,
                            )
                            .expect("segment is in rseq mode"),
                        }
                    }
                    drop(timer);
                    aborts.fetch_add(mine, Ordering::Relaxed);
                    running.fetch_sub(1, Ordering::Release);
                });
            }
            ready.wait();
            let tids = tids.lock().unwrap().clone();
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() };
            while running.load(Ordering::Acquire) > 0 {
                for &tid in &tids {
                    // SAFETY: tgkill to a thread of our own process (a
                    // finished one gives ESRCH); SIGUSR1 has a no-op handler.
                    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
                }
                std::thread::yield_now();
            }
        });
        aborts.into_inner()
    }

    /// Expected totals of `procs` processes × `threads` writers.
    fn check_totals(seg: &Segment, work: Work, procs: u64, threads: u64, iters: u64) {
        let t = Totals::read(seg);
        let writers = procs * threads;
        let bytes: u64 = (0..procs)
            .flat_map(|p| (0..threads).map(move |t| weight(p, t)))
            .sum::<u64>();
        match work {
            Work::Record => {
                let retx = iters.div_ceil(7);
                assert_eq!(t.get(Counter::PacketsInInitial), writers * (iters - retx));
                assert_eq!(t.get(Counter::PacketsInRetransmit), writers * retx);
                assert_eq!(t.get(Counter::BytesInInitial), bytes * (iters - retx));
                assert_eq!(t.get(Counter::BytesInRetransmit), bytes * retx);
                assert_eq!(t.get(Counter::NackOut), writers * iters);
                assert_eq!(t.get(Counter::PliOut), writers * (iters / 2));
                assert_eq!(t.get(Counter::FirOut), writers * iters);
                assert_eq!(t.get(Counter::TrackPublishAttemptsVideo), writers * iters);
            }
            _ => {
                assert_eq!(t.get(Counter::PacketsInInitial), writers * iters, "packets");
                assert_eq!(t.get(Counter::BytesInInitial), bytes * iters, "bytes");
            }
        }
    }

    fn seg_name(tag: &str) -> String {
        format!("/nodestats-rseq-{}-{tag}", std::process::id())
    }

    fn spawn_writer(work: Work, name: &str, p: u64, threads: u64, iters: u64) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .args(["child", "writer", work.name(), name])
            .args([p, threads, iters].map(|v| v.to_string()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// What the writer processes of one run report.
    #[derive(Default)]
    struct Report {
        aborts: u64,
        signals: u64,
    }

    /// Parent and `children` child processes write one named rseq segment
    /// at once, `threads` writers each; returns the segment (unlinked,
    /// still mapped) and the summed reports.
    fn multiprocess(
        work: Work,
        tag: &str,
        children: u64,
        threads: u64,
        iters: u64,
    ) -> (Segment, Report) {
        let name = seg_name(tag);
        let _ = Segment::unlink(&name);
        let opts = SegmentOptions::new()
            .name(name.clone())
            .write_mode(WriteMode::Rseq);
        let stats = Stats::open(&opts).unwrap();
        assert_eq!(stats.segment().layout().write_mode, WriteMode::Rseq);
        let kids: Vec<Child> = (1..=children)
            .map(|p| spawn_writer(work, &name, p, threads, iters))
            .collect();
        let signals = SIGNALS.load(Ordering::Relaxed);
        let mut report = Report {
            aborts: run_writers(&stats, work, 0, threads, iters),
            signals: SIGNALS.load(Ordering::Relaxed) - signals,
        };
        for k in kids {
            let out = k.wait_with_output().unwrap();
            assert!(out.status.success(), "a writer process failed");
            let text = String::from_utf8(out.stdout).unwrap();
            let field = |key: &str| -> u64 {
                let v = text.lines().find_map(|l| l.strip_prefix(key));
                v.expect("child reports").trim().parse().unwrap()
            };
            report.aborts += field("aborts ");
            report.signals += field("signals ");
        }
        let seg = Segment::attach(&name, Access::ReadOnly).unwrap();
        Segment::unlink(&name).unwrap();
        (seg, report)
    }

    fn record_path_loses_nothing() {
        let (children, threads, iters) = (3, 4, 400_000);
        let (seg, r) = multiprocess(Work::Record, "record", children, threads, iters);
        check_totals(&seg, Work::Record, children + 1, threads, iters);
        println!(
            "  {} processes x {threads} threads x {iters} iterations, {} signals handled, totals exact",
            children + 1,
            r.signals
        );
    }

    fn stalled_sections_abort_and_lose_nothing() {
        let (children, threads, iters) = (2, 4, 40_000);
        let (seg, r) = multiprocess(Work::Stalled, "stalled", children, threads, iters);
        check_totals(&seg, Work::Stalled, children + 1, threads, iters);
        // Each call is two sections: packets, then bytes.
        let sections = 2 * (children + 1) * threads * iters;
        println!(
            "  {} aborts in {sections} stalled sections, {} signals handled, totals exact",
            r.aborts, r.signals
        );
        assert!(r.aborts > 0, "no abort was taken: the test proves nothing");
    }

    fn control_without_rseq_loses_updates() {
        let (children, threads, iters) = (2, 4, 5_000);
        let (seg, _) = multiprocess(Work::Unprotected, "control", children, threads, iters);
        let writers = (children + 1) * threads;
        let got = Totals::read(&seg).get(Counter::PacketsInInitial);
        let lost = writers * iters - got;
        println!("  control lost {lost} of {} packets", writers * iters);
        assert!(
            lost > 0,
            "the control lost nothing: this harness could not catch a lost update"
        );
    }

    /// With glibc's registration disabled, the explicit rseq mode registers
    /// every writer thread itself (and the default mode is atomic).
    fn threads_register_themselves_without_glibc() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["child", "unregistered"])
            .env("GLIBC_TUNABLES", "glibc.pthread.rseq=0")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn unregistered_child() {
        assert!(
            !nodestats::__testing::rseq_registered_by_glibc(),
            "the tunable did not disable glibc's rseq"
        );
        assert!(nodestats::__testing::rseq_supported());
        let dflt = Stats::anonymous().unwrap();
        assert_eq!(dflt.segment().layout().write_mode, WriteMode::Atomic);
        let stats = Stats::open(&SegmentOptions::new().write_mode(WriteMode::Rseq)).unwrap();
        let (threads, iters) = (8, 10_000);
        run_writers(&stats, Work::Record, 0, threads, iters);
        check_totals(stats.segment(), Work::Record, 1, threads, iters);
        let stalled = Stats::open(&SegmentOptions::new().write_mode(WriteMode::Rseq)).unwrap();
        let aborts = run_writers(&stalled, Work::Stalled, 0, threads, iters);
        check_totals(stalled.segment(), Work::Stalled, 1, threads, iters);
        println!("  self-registered threads: totals exact, {aborts} aborts");
    }

    fn mode_rules() {
        let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
        let possible = possible
            .trim()
            .rsplit(['-', ','])
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            + 1;
        // The default: rseq where glibc registers it.
        let dflt = Stats::anonymous().unwrap();
        let expect = if nodestats::__testing::rseq_registered_by_glibc() {
            WriteMode::Rseq
        } else {
            WriteMode::Atomic
        };
        assert_eq!(dflt.segment().layout().write_mode, expect);
        // Too few shards: an explicit request is refused, the default is atomic.
        if possible > 1 {
            let r = Segment::create(&SegmentOptions::new().shards(1).write_mode(WriteMode::Rseq));
            assert!(matches!(r, Err(Error::Config(_))), "{r:?}");
            let one = Segment::create(&SegmentOptions::new().shards(1)).unwrap();
            assert_eq!(one.layout().write_mode, WriteMode::Atomic);
        }
        // The environment overrides the default, and a typo is an error.
        for (v, want) in [
            ("atomic", "Ok(Atomic)"),
            ("rseq", "Ok(Rseq)"),
            ("lock", "Err"),
        ] {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["child", "mode"])
                .env("NODESTATS_WRITE_MODE", v)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.trim().starts_with(want),
                "NODESTATS_WRITE_MODE={v}: {text}"
            );
        }
        // A segment that claims rseq with a shard for fewer CPUs than this
        // machine can have is refused for writing, readable for collecting.
        if possible > 1 {
            let path =
                std::env::temp_dir().join(format!("nodestats-rseq-{}-hostile", std::process::id()));
            let name = path.to_str().unwrap().to_string();
            let _ = std::fs::remove_file(&path);
            let seg = Segment::create(
                &SegmentOptions::new()
                    .name(name.clone())
                    .shards(1)
                    .write_mode(WriteMode::Atomic),
            )
            .unwrap();
            drop(seg);
            {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.write_all_at(&1u64.to_le_bytes(), 8 * 8).unwrap();
            }
            let rw = Segment::attach(&name, Access::ReadWrite);
            assert!(matches!(rw, Err(Error::UnsupportedWriteMode(1))), "{rw:?}");
            let msg = rw.unwrap_err().to_string();
            assert!(msg.contains("atomic mode"), "{msg}");
            let ro = Segment::attach(&name, Access::ReadOnly).unwrap();
            assert_eq!(ro.layout().write_mode, WriteMode::Rseq);
            std::fs::remove_file(&path).unwrap();
        }
    }

    fn child_main(args: &[String]) {
        match args[0].as_str() {
            "writer" => {
                let work = Work::parse(&args[1]);
                let name = &args[2];
                let [p, threads, iters] =
                    [&args[3], &args[4], &args[5]].map(|a| a.parse::<u64>().unwrap());
                let stats = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
                assert_eq!(stats.segment().layout().write_mode, WriteMode::Rseq);
                let aborts = run_writers(&stats, work, p, threads, iters);
                println!("aborts {aborts}");
                println!("signals {}", SIGNALS.load(Ordering::Relaxed));
            }
            "unregistered" => unregistered_child(),
            "mode" => {
                let r = Segment::create(&SegmentOptions::new()).map(|s| s.layout().write_mode);
                println!(
                    "{}",
                    if let Err(e) = &r {
                        format!("Err {e}")
                    } else {
                        format!("{r:?}")
                    }
                );
            }
            other => panic!("unknown child mode {other}"),
        }
    }

    pub(super) fn main() {
        install_handler();
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.first().map(String::as_str) == Some("child") {
            child_main(&args[1..]);
            return;
        }
        // Under `cargo test`, the harness passes filters and flags; run all.
        let tests: [crate::common::Test<()>; 5] = [
            ("record_path_loses_nothing", |_| record_path_loses_nothing()),
            ("stalled_sections_abort_and_lose_nothing", |_| {
                stalled_sections_abort_and_lose_nothing()
            }),
            ("control_without_rseq_loses_updates", |_| {
                control_without_rseq_loses_updates()
            }),
            ("threads_register_themselves_without_glibc", |_| {
                threads_register_themselves_without_glibc()
            }),
            ("mode_rules", |_| mode_rules()),
        ];
        let failed = crate::common::run(&mut (), &tests);
        if failed > 0 {
            std::process::exit(1);
        }
    }
}
