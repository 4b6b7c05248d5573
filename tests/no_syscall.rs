//! The record path makes no system call: a forked child enters seccomp
//! strict mode, where any system call other than read, write, exit and
//! sigreturn kills it, then records millions of times through the Rust API,
//! series handles and the C ABI, in both write modes, and leaves with a raw
//! `exit`. The parent checks that the child exited normally and that every
//! record reached the (shared) segment. A control child that makes one
//! `getppid` call in the same setting must be killed, so a pass means
//! something.
//!
//! Linux only (seccomp). `harness = false`: the children are forked from a
//! single-threaded process.

mod common;

#[cfg(target_os = "linux")]
mod linux {
    use nodestats::__testing::ffi::*;
    use nodestats::{
        Collector, CollectorConfig, Direction, Family, SegmentOptions, Stats, WriteMode,
    };
    use std::ptr;

    const ROUNDS: u64 = 1_000_000;
    const EVENTS: u64 = 10_000;

    /// How a child ended.
    #[derive(Debug, PartialEq, Eq)]
    enum End {
        Exited(i32),
        Signalled(i32),
    }

    /// Forks; the child enters seccomp strict mode, runs `work`, and exits
    /// with status 0 through the raw `exit` system call (strict mode allows
    /// it; `exit_group`, which `std::process::exit` uses, it does not).
    fn in_strict_child(work: impl FnOnce()) -> End {
        in_strict_child_after(|| (), |()| work())
    }

    /// As [`in_strict_child`], with `setup` run in the child before it
    /// enters strict mode (system calls allowed there).
    fn in_strict_child_after<T>(setup: impl FnOnce() -> T, work: impl FnOnce(T)) -> End {
        // SAFETY: the process is single-threaded (harness = false), so the
        // child may run any code; it allocates nothing before it exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let state = setup();
            // SAFETY: prctl with these arguments only changes this
            // thread's system-call filter.
            let r = unsafe {
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_STRICT as libc::c_ulong,
                    0,
                    0,
                    0,
                )
            };
            if r != 0 {
                // SAFETY: _exit is always safe to call.
                unsafe { libc::_exit(99) };
            }
            work(state);
            // SAFETY: SYS_exit ends this (only) thread and so the process.
            unsafe { libc::syscall(libc::SYS_exit, 0) };
            unreachable!();
        }
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is writable.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
        if libc::WIFEXITED(status) {
            End::Exited(libc::WEXITSTATUS(status))
        } else {
            End::Signalled(libc::WTERMSIG(status))
        }
    }

    fn modes() -> Vec<WriteMode> {
        let mut m = vec![WriteMode::Atomic];
        if nodestats::__testing::rseq_supported() {
            m.push(WriteMode::Rseq);
        }
        m
    }

    fn expect_clean(end: End, what: &str) {
        assert_eq!(
            end,
            End::Exited(0),
            "{what}: the child was killed (SIGKILL = a system call under seccomp strict mode; \
             exit 99 = seccomp unavailable)"
        );
    }

    pub(super) fn rust_api_makes_no_system_call() {
        let path = std::env::temp_dir().join(format!("nodestats-nosys-{}", std::process::id()));
        for mode in modes() {
            for named in [false, true] {
                let _ = std::fs::remove_file(&path);
                let mut opts = SegmentOptions::new().write_mode(mode);
                if named {
                    opts = opts.name(path.to_str().unwrap().to_string());
                }
                let stats = Stats::open(&opts).unwrap();
                let counter = stats
                    .series(Family::NackTotal, &["incoming", "DE"])
                    .unwrap();
                let hist = stats
                    .series(Family::RttMs, &["outgoing", "CAMERA", "VIDEO", "DE"])
                    .unwrap();
                let declared = stats
                    .declare(
                        &nodestats::FamilySpec::histogram("sfu_delay_seconds", "", &[0.001, 0.01])
                            .labels(&["room"]),
                    )
                    .unwrap()
                    .series(&["blue"])
                    .unwrap();
                let native = stats
                    .declare(&nodestats::FamilySpec::histogram("sfu_rtt_ms", "", &[]).native(3))
                    .unwrap()
                    .series(&[])
                    .unwrap();
                let rooms = stats
                    .declare(&nodestats::FamilySpec::gauge("sfu_rooms", ""))
                    .unwrap()
                    .series(&[])
                    .unwrap();
                let end = in_strict_child(|| {
                    for i in 0..ROUNDS {
                        crate::common::record_packet_round(&stats, i);
                        counter.inc_by(1);
                        declared.observe(0.002);
                        native.observe((i % 300) as f64 - 1.5);
                    }
                    for _ in 0..EVENTS {
                        crate::common::record_event_round(&stats);
                        hist.observe(12.5);
                        rooms.add(1);
                    }
                });
                expect_clean(end, &format!("Rust API, {mode:?}, named: {named}"));
                // The child's records are in the shared segment.
                let ns = Collector::new(stats.segment().clone(), CollectorConfig::default())
                    .unwrap()
                    .update();
                assert_eq!(ns.packets_in, 32 * ROUNDS, "{mode:?}");
                assert_eq!(ns.packets_out, ROUNDS, "{mode:?}");
                // NACKs from `record_rtcp` and from the labeled NACK series.
                assert_eq!(ns.nack_total, 2 * ROUNDS, "{mode:?}");
                assert_eq!(ns.num_track_publish_attempts as u64, EVENTS, "{mode:?}");
                let text = nodestats::Exporter::new(stats.segment().clone(), "n", "SERVER")
                    .unwrap()
                    .text();
                let rtt_count = format!(
                    "livekit_rtt_ms_count{{country=\"DE\",direction=\"outgoing\",\
                     node_id=\"n\",node_type=\"SERVER\",source=\"CAMERA\",type=\"VIDEO\"}} {EVENTS}"
                );
                assert!(
                    text.lines().any(|l| l == rtt_count),
                    "{mode:?}: no `{rtt_count}` in the scrape"
                );
                let delay_count = format!(
                    "sfu_delay_seconds_count{{node_id=\"n\",node_type=\"SERVER\",room=\"blue\"}} {ROUNDS}"
                );
                assert!(
                    text.lines().any(|l| l == delay_count),
                    "{mode:?}: no `{delay_count}` in the scrape"
                );
                println!("  Rust API, {mode:?}, named {named}: child exited cleanly, totals exact");
            }
        }
        let _ = std::fs::remove_file(&path);
    }

    pub(super) fn c_abi_makes_no_system_call() {
        const IN: DirectionArg = DirectionArg(nodestats_direction::Incoming as u32);
        const OUT: DirectionArg = DirectionArg(nodestats_direction::Outgoing as u32);
        const VIDEO: TrackKindArg = TrackKindArg(nodestats_track_kind::Video as u32);
        for mode in modes() {
            let mut opts = std::mem::MaybeUninit::<nodestats_options>::uninit();
            let mut s = ptr::null_mut();
            let mut h = ptr::null_mut();
            let labels = [c"incoming".as_ptr(), c"DE".as_ptr()];
            // SAFETY: options_init fills the struct; its name is NULL
            // (anonymous, MAP_SHARED, so shared with the child); `s` and
            // `h` are writable; the strings are NUL-terminated.
            unsafe {
                nodestats_options_init(opts.as_mut_ptr());
                let mut opts = opts.assume_init();
                opts.write_mode = WriteModeArg(mode as u32);
                assert_eq!(nodestats_open_with(&opts, &mut s), nodestats_status::Ok);
                assert_eq!(
                    nodestats_series_open(
                        s,
                        c"livekit_nack_total".as_ptr(),
                        labels.as_ptr(),
                        2,
                        &mut h
                    ),
                    nodestats_status::Ok
                );
            }
            let end = in_strict_child(|| {
                for i in 0..ROUNDS {
                    // SAFETY: `s` and `h` are live handles.
                    unsafe {
                        nodestats_record_packets(s, IN, 32, 38_400, false);
                        nodestats_record_packet(s, OUT, 1200, i % 16 == 0);
                        nodestats_record_rtcp(s, IN, 1, 1, 1);
                        nodestats_series_inc_by(h, 1);
                    }
                }
                for _ in 0..EVENTS {
                    // SAFETY: `s` is a live handle.
                    unsafe {
                        nodestats_room_started(s);
                        nodestats_participant_added(s);
                        nodestats_participant_rtc_init(s, 1);
                        nodestats_track_publish_attempt(s, VIDEO);
                        nodestats_track_subscribe_success(s, VIDEO);
                        nodestats_connection_added(s, OUT);
                        nodestats_forward_latency(s, 1000);
                        nodestats_room_ended(s);
                    }
                }
            });
            expect_clean(end, &format!("C ABI, {mode:?}"));
            let mut ns = std::mem::MaybeUninit::uninit();
            // SAFETY: `s` is live; `ns` is writable and written on OK.
            let ns = unsafe {
                assert_eq!(nodestats_read(s, ns.as_mut_ptr()), nodestats_status::Ok);
                ns.assume_init()
            };
            assert_eq!(ns.packets_in, 32 * ROUNDS, "{mode:?}");
            assert_eq!(ns.packets_out, ROUNDS, "{mode:?}");
            // NACKs from `record_rtcp` and from the labeled NACK series.
            assert_eq!(ns.nack_total, 2 * ROUNDS, "{mode:?}");
            // SAFETY: live handles, not used afterwards.
            unsafe {
                nodestats_series_close(h);
                nodestats_close(s);
            }
            println!("  C ABI, {mode:?}: child exited cleanly, totals exact");
        }
    }

    /// A child opens its own thread writers (Rust and C) before strict
    /// mode, then records millions of times through them — and through
    /// the thread writers it inherited from the parent, which must be
    /// no-ops (they are the parent's rows).
    pub(super) fn thread_writer_makes_no_system_call() {
        const IN: DirectionArg = DirectionArg(nodestats_direction::Incoming as u32);
        let path = std::env::temp_dir().join(format!("nodestats-nosys-t-{}", std::process::id()));
        for named in [false, true] {
            let _ = std::fs::remove_file(&path);
            let mut opts = SegmentOptions::new();
            if named {
                opts = opts.name(path.to_str().unwrap().to_string());
            }
            let stats = Stats::open(&opts).unwrap();
            // The C handle: the same named segment, or an anonymous one of
            // its own.
            let cname = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
            let mut copts = std::mem::MaybeUninit::<nodestats_options>::uninit();
            let mut handle = ptr::null_mut();
            // SAFETY: options_init fills the struct; the name outlives the
            // call; `handle` is writable.
            unsafe {
                nodestats_options_init(copts.as_mut_ptr());
                let mut copts = copts.assume_init();
                if named {
                    copts.name = cname.as_ptr();
                }
                assert_eq!(
                    nodestats_open_with(&copts, &mut handle),
                    nodestats_status::Ok
                );
            }
            let fr = ["incoming", "FR"];
            let family = std::ffi::CString::new("livekit_nack_total").unwrap();
            let c_fr: Vec<std::ffi::CString> = fr
                .iter()
                .map(|l| std::ffi::CString::new(*l).unwrap())
                .collect();
            let c_fr: Vec<*const std::ffi::c_char> = c_fr.iter().map(|l| l.as_ptr()).collect();
            // Thread series, C and Rust: `t` on thread writer `t`.
            let c_series = |t| {
                let mut h = ptr::null_mut();
                // SAFETY: a live thread writer of this thread; NUL-terminated
                // strings; `h` is writable.
                let st = unsafe {
                    nodestats_thread_series_open(t, family.as_ptr(), c_fr.as_ptr(), 2, &mut h)
                };
                (h, st)
            };
            let inherited = stats.thread_writer().unwrap();
            let inherited_series = inherited.series(Family::NackTotal, &fr).unwrap();
            let mut c_inherited = ptr::null_mut();
            // SAFETY: `handle` is live; `c_inherited` is writable.
            let st = unsafe { nodestats_thread_open(handle, &mut c_inherited) };
            assert_eq!(st, nodestats_status::Ok);
            let (c_inherited_series, st) = c_series(c_inherited);
            assert_eq!(st, nodestats_status::Ok);
            let end = in_strict_child_after(
                || {
                    let mut c = ptr::null_mut();
                    // SAFETY: `handle` is live; `c` is writable.
                    let st = unsafe { nodestats_thread_open(handle, &mut c) };
                    let (cs, st2) = c_series(c);
                    // The child never drops it: its series may borrow it
                    // for good.
                    let own: &'static _ = Box::leak(Box::new(stats.thread_writer().unwrap()));
                    let own_series = own.series(Family::NackTotal, &fr).unwrap();
                    let ok = st == nodestats_status::Ok
                        && st2 == nodestats_status::Ok
                        && own_series.in_row();
                    (own, own_series, c, cs, ok)
                },
                |(own, own_series, c, cs, ok)| {
                    if !ok {
                        return;
                    }
                    for _ in 0..ROUNDS {
                        own.record_packets(Direction::Incoming, 1, 1200, false);
                        own.record_rtcp(Direction::Incoming, 1, 0, 0);
                        own_series.inc_by(1);
                        inherited.record_packets(Direction::Incoming, 1000, 1, false);
                        inherited_series.inc_by(1000);
                        // SAFETY: live thread writers and series of this
                        // thread (the inherited ones read as no row here).
                        unsafe {
                            nodestats_thread_record_packets(c, IN, 1, 1200, false);
                            nodestats_thread_record_rtcp(c, IN, 1, 0, 0);
                            nodestats_thread_series_inc_by(cs, 1);
                            nodestats_thread_record_packets(c_inherited, IN, 1000, 1, false);
                            nodestats_thread_series_inc_by(c_inherited_series, 1000);
                            nodestats_thread_forward_latency(c, 1000);
                        }
                    }
                    std::mem::forget(own_series);
                },
            );
            expect_clean(end, &format!("thread writer, named: {named}"));
            let ns = Collector::new(stats.segment().clone(), CollectorConfig::default())
                .unwrap()
                .update();
            let mut c_ns = std::mem::MaybeUninit::uninit();
            // SAFETY: `handle` is live; `c_ns` is writable and written on OK.
            let c_ns = unsafe {
                assert_eq!(
                    nodestats_read(handle, c_ns.as_mut_ptr()),
                    nodestats_status::Ok
                );
                c_ns.assume_init()
            };
            let (rust, c) = if named {
                (2 * ROUNDS, 2 * ROUNDS)
            } else {
                (ROUNDS, ROUNDS)
            };
            assert_eq!(
                (ns.packets_in, c_ns.packets_in),
                (rust, c),
                "named: {named}: inherited handles wrote, or records were lost"
            );
            // The rows' NACKs and as many through the thread series.
            assert_eq!(
                (ns.nack_total, c_ns.nack_total),
                (2 * rust, 2 * c),
                "named: {named}"
            );
            drop(inherited_series);
            // SAFETY: live handles, not used afterwards.
            unsafe {
                nodestats_thread_series_close(c_inherited_series);
                nodestats_thread_close(c_inherited);
                nodestats_close(handle);
            }
            drop(inherited);
            println!("  thread writer, named {named}: child exited cleanly, inherited handles inert, totals exact");
        }
        let _ = std::fs::remove_file(&path);
    }

    pub(super) fn control_a_system_call_is_caught() {
        let stats = Stats::open(&SegmentOptions::new()).unwrap();
        let end = in_strict_child(|| {
            stats.record_packets(Direction::Incoming, 1, 1200, false);
            // SAFETY: getppid has no preconditions; here it is the one
            // system call the harness must catch.
            unsafe { libc::syscall(libc::SYS_getppid) };
            stats.record_packets(Direction::Incoming, 1, 1200, false);
        });
        assert_eq!(
            end,
            End::Signalled(libc::SIGKILL),
            "the control made a system call and was not killed: the harness proves nothing"
        );
        let ns = Collector::new(stats.segment().clone(), CollectorConfig::default())
            .unwrap()
            .update();
        assert_eq!(
            ns.packets_in, 1,
            "the record before the system call landed, the one after did not"
        );
        println!("  control: killed by SIGKILL at its getppid call");
    }
}

#[cfg(target_os = "linux")]
fn main() {
    let tests: &[common::Test<()>] = &[
        ("rust_api_makes_no_system_call", |_| {
            linux::rust_api_makes_no_system_call()
        }),
        ("c_abi_makes_no_system_call", |_| {
            linux::c_abi_makes_no_system_call()
        }),
        ("thread_writer_makes_no_system_call", |_| {
            linux::thread_writer_makes_no_system_call()
        }),
        ("control_a_system_call_is_caught", |_| {
            linux::control_a_system_call_is_caught()
        }),
    ];
    if common::run(&mut (), tests) > 0 {
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("no_syscall: seccomp is Linux-only; nothing to run here");
}
