//! The `nodestats` command line in real deployments: SIGTERM/SIGINT stop
//! every command promptly whatever it is blocked in (a FIFO at the segment
//! name hangs `open(2)`), `--allow-foreign-owner`, a warning for a
//! non-loopback `--listen`, and errors that name what they are about.

mod common;

use common::TempDir;
use nodestats::{Segment, SegmentOptions, Stats};
use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn nodestats(args: &[&str]) -> Command {
    let mut c = Command::new(common::nodestats_bin());
    c.args(args).stdin(Stdio::null());
    c
}

fn mkfifo(path: &str) {
    let c = CString::new(path).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {path}");
}

/// Sends `sig` to `child` and returns how long it took to exit; panics
/// (after killing it) if that takes more than `limit`.
fn signal_and_wait(child: &mut Child, sig: libc::c_int, limit: Duration) -> Duration {
    let t = Instant::now();
    // SAFETY: signalling our own child process by pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    loop {
        if child.try_wait().unwrap().is_some() {
            return t.elapsed();
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not exit within {limit:?} of signal {sig}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_fifo_at_the_name_is_a_prompt_error_never_a_hang() {
    let dir = TempDir::new("cli-fifo");
    let fifo = dir.path("segment");
    mkfifo(&fifo);
    for args in [
        vec!["serve", "--segment", &fifo, "--listen", "127.0.0.1:0"],
        vec!["show", "--segment", &fifo],
        vec!["show", "--segment", &fifo, "--json"],
    ] {
        let mut child = nodestats(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(2) {
                // Still blocked: the hang this test is about. A signal
                // must at least end it.
                let took = signal_and_wait(&mut child, libc::SIGTERM, Duration::from_secs(2));
                panic!("{args:?} hung on the FIFO (ended {took:?} after SIGTERM)");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(!status.success(), "{args:?} succeeded on a FIFO");
        assert!(
            err.contains(&fifo) && err.contains("not a regular file"),
            "{args:?}: {err}"
        );
        println!("{args:?}: failed in {:?}: {}", start.elapsed(), err.trim());
    }
}

#[test]
fn a_signal_stops_demo_and_serve_promptly() {
    let name = format!("/nodestats-cli-stop-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let _stats = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();
    for (args, sig) in [
        (
            vec!["serve", "--segment", &name, "--listen", "127.0.0.1:0"],
            libc::SIGINT,
        ),
        (
            vec!["demo", "--duration", "0", "--listen", "127.0.0.1:0"],
            libc::SIGTERM,
        ),
    ] {
        let mut child = nodestats(&args).stdout(Stdio::piped()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "{args:?} printed nothing");
        // Keep reading what it prints, as a terminal would.
        let reader = std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        std::thread::sleep(Duration::from_millis(300));
        signal_and_wait(&mut child, sig, Duration::from_secs(2));
        let _ = reader.join();
        let status = child.wait().unwrap();
        assert!(status.success(), "{args:?}: {status}");
    }
    Segment::unlink(&name).unwrap();
}

/// By default the demo records into a named segment, says how to read it
/// from another shell, and removes it when it stops: on SIGTERM exactly as
/// on Ctrl-C (SIGINT).
#[test]
fn demo_shares_a_named_segment_and_removes_it_on_either_signal() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // Bounded, in case this test fails before it stops the demo.
        let mut child = nodestats(&["demo", "--duration", "30", "--listen", ""])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut command = None;
        for _ in 0..5 {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            if let Some((_, cmd)) = line.split_once("read it from another shell while this runs: ")
            {
                command = Some(cmd.trim().to_string());
                break;
            }
        }
        let command = command.expect("the demo names the command that reads its segment");
        let words: Vec<&str> = command.split_whitespace().collect();
        let name = format!("/nodestats-demo-{}", child.id());
        assert_eq!(
            words[1..],
            ["show", "--segment", name.as_str()],
            "{command}"
        );
        let shown = Command::new(words[0])
            .args(&words[1..])
            .arg("--json")
            .output()
            .unwrap();
        assert!(shown.status.success(), "{command}: {shown:?}");
        let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
        assert!(v["live_writers"].as_u64() >= Some(1), "{v}");
        let reader = std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        signal_and_wait(&mut child, sig, Duration::from_secs(2));
        let _ = reader.join();
        let status = child.wait().unwrap();
        assert!(status.success(), "signal {sig}: {status}");
        let file = std::path::Path::new("/dev/shm").join(&name[1..]);
        assert!(!file.exists(), "signal {sig}: the demo left {file:?}");
    }
}

/// The demo's rates are over the window `--rates` asks for, every row
/// while it runs (updates that come a little late do not stretch it by an
/// interval); the last row, taken when it stops, may cover up to one
/// interval more.
#[test]
fn demo_windows_are_what_rates_says() {
    let out = nodestats(&[
        "demo",
        "--duration",
        "5",
        "--interval",
        "0.25",
        "--rates",
        "1",
        "--listen",
        "",
    ])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let windows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" | ") && !l.contains("pkt/s"))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    let running = &windows[..windows.len().saturating_sub(1)];
    let full: Vec<&&str> = running.iter().filter(|w| !w.ends_with('*')).collect();
    assert!(full.len() >= 10, "too few full windows: {stdout}");
    assert!(full.iter().all(|w| **w == "1.0s"), "{stdout}");
}

#[test]
fn allow_foreign_owner_lets_show_and_serve_attach() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: needs root to give the segment to another user");
        return;
    }
    let dir = TempDir::new("cli-foreign");
    let path = dir.path("seg");
    let _stats = Stats::open(&SegmentOptions::new().name(path.clone())).unwrap();
    let c = CString::new(path.clone()).unwrap();
    // SAFETY: a valid NUL-terminated path; 65534 is "nobody".
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);

    let out = nodestats(&["show", "--segment", &path]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&path),
        "error does not name the segment: {err}"
    );
    assert!(err.contains("--allow-foreign-owner"), "no hint: {err}");

    let out = nodestats(&[
        "show",
        "--segment",
        &path,
        "--json",
        "--allow-foreign-owner",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(v.get("packets_in").is_some());

    let (mut child, _addr) = common::serve(&path, &["--allow-foreign-owner"]);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn listen_warnings_and_errors_name_the_address() {
    let name = format!("/nodestats-cli-listen-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let _stats = Stats::open(&SegmentOptions::new().name(name.clone())).unwrap();

    // An address in use: the error names it.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = nodestats(&["serve", "--segment", &name, "--listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr), "error does not name {addr}: {err}");

    // A bad --interval is about the flag, not a path; other errors name
    // the segment.
    let missing = format!("{name}-missing");
    let out = nodestats(&["show", "--segment", &missing])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&missing));
    let dir = TempDir::new("cli-notseg");
    let junk = dir.path("junk");
    std::fs::write(&junk, vec![0u8; 8192]).unwrap();
    let out = nodestats(&["show", "--segment", &junk]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&junk), "error does not name {junk}: {err}");

    // Listening on every interface works, with a warning on stderr.
    let mut child = nodestats(&["serve", "--segment", &name, "--listen", "0.0.0.0:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    signal_and_wait(&mut child, libc::SIGTERM, Duration::from_secs(2));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("warning") && err.contains("0.0.0.0"),
        "no warning for a non-loopback address: {err:?}"
    );
    Segment::unlink(&name).unwrap();
}

#[test]
fn demo_beside_a_real_writer_checks_only_its_own_adds_and_leaves_the_segment() {
    let name = format!("/nodestats-cli-{}-demo-shared", std::process::id());
    let _ = Segment::unlink(&name);
    let sfu = Stats::open(&SegmentOptions::new().name(&name)).unwrap();
    sfu.room_started();
    let id = sfu.segment().id();
    // The real writer keeps recording while the demo runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (sfu, stop) = (sfu.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sfu.record_packets(nodestats::Direction::Incoming, 10, 12_000, false);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let out = nodestats(&[
        "demo",
        "--segment",
        &name,
        "--duration",
        "2",
        "--interval",
        "0.5",
        "--workers",
        "2",
        "--rate",
        "5000",
        "--listen",
        "",
    ])
    .output()
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    busy.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed beside a real writer:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("attached to the existing segment"),
        "{stdout}"
    );
    assert!(stdout.contains("all landed"), "{stdout}");
    // The SFU's segment is still at its name, the same one.
    let again = Segment::attach(&name, nodestats::Access::ReadOnly).unwrap();
    assert_eq!(
        again.id(),
        id,
        "the demo replaced or removed the SFU's segment"
    );
    drop(sfu);
    Segment::unlink(&name).unwrap();
}

#[test]
fn demo_never_unlinks_a_segment_another_writer_joined() {
    let name = format!("/nodestats-cli-{}-demo-joined", std::process::id());
    let _ = Segment::unlink(&name);
    let mut demo = nodestats(&[
        "demo",
        "--segment",
        &name,
        "--duration",
        "2",
        "--interval",
        "0.5",
        "--listen",
        "",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    // Join the segment the demo created, and hold it past the demo's end.
    let start = Instant::now();
    let joined = loop {
        // Attach only: the demo must be the one that created it.
        match Segment::attach(&name, nodestats::Access::ReadWrite)
            .and_then(|seg| Stats::from_segment(std::sync::Arc::new(seg)))
        {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("could not join the demo's segment: {e}"),
        }
    };
    joined.room_started();
    let status = demo.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut demo.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "{stdout}");
    assert!(
        stdout.contains("left") && stdout.contains("in place"),
        "{stdout}"
    );
    let still = Segment::attach(&name, nodestats::Access::ReadOnly).unwrap();
    assert_eq!(
        still.id(),
        joined.segment().id(),
        "the demo orphaned a live writer"
    );
    drop(joined);
    Segment::unlink(&name).unwrap();
}

/// `nodestats show | head`: a reader that goes away early ends `show`
/// quietly (exit 0), never with a panic (exit 101).
#[test]
fn show_into_a_closed_pipe_ends_quietly() {
    let name = common::ShmName::new("cli-show-closed-pipe");
    let stats = Stats::open(&SegmentOptions::new().name(name.to_string())).unwrap();
    stats.room_started();
    for args in [
        vec!["show", "--segment", &name],
        vec!["show", "--segment", &name, "--json"],
        vec!["show", "--segment", &name, "--metrics"],
    ] {
        let mut child = nodestats(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before show prints anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} into a closed pipe: {:?}, stderr {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
