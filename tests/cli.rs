//! The `nodestats` command line in real deployments: SIGTERM/SIGINT stop
//! every command promptly whatever it is blocked in (a FIFO at the segment
//! name hangs `open(2)`), `--allow-foreign-owner`, a warning for a
//! non-loopback `--listen`, and errors that name what they are about.

mod common;

use nodestats::{Segment, SegmentOptions, Stats};
use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn nodestats(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nodestats"));
    c.args(args).stdin(Stdio::null());
    c
}

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("nodestats-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mkfifo(path: &str) {
    let c = CString::new(path).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {path}"
    );
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
fn a_signal_stops_commands_blocked_on_a_fifo() {
    let dir = TempDir::new("fifo");
    let fifo = dir.path("segment");
    mkfifo(&fifo);
    for (args, sig) in [
        (
            vec!["serve", "--segment", &fifo, "--listen", "127.0.0.1:0"],
            libc::SIGTERM,
        ),
        (vec!["show", "--segment", &fifo], libc::SIGTERM),
        (vec!["show", "--segment", &fifo, "--json"], libc::SIGINT),
    ] {
        let mut child = nodestats(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it reach the blocking open(2).
        std::thread::sleep(Duration::from_millis(300));
        assert!(child.try_wait().unwrap().is_none(), "{args:?} exited early");
        let took = signal_and_wait(&mut child, sig, Duration::from_secs(2));
        println!("{args:?}: exited {took:?} after signal {sig}");
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

#[test]
fn allow_foreign_owner_lets_show_and_serve_attach() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: needs root to give the segment to another user");
        return;
    }
    let dir = TempDir::new("foreign");
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
    let dir = TempDir::new("notseg");
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
