//! Helpers shared by the integration tests: a counting allocator, a runner
//! for the `harness = false` tests, rounds of hot-path calls, starting
//! `nodestats serve`, and scratch directories and segment names that are
//! removed when the test ends, whether it passes or panics.
//! Each test binary uses only some of them.
#![allow(dead_code)]

pub mod image;
pub mod sfu;

use nodestats::{Direction, FamilySpec, Segment, Stats, TrackKind, TrackSource};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// A global allocator that counts this thread's allocations. Install it
/// with `#[global_allocator] static GLOBAL: common::Counting = common::Counting;`.
pub struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only adds a thread-local count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

/// Allocations made by this thread so far.
pub fn allocs() -> u64 {
    ALLOCS.with(|a| a.get())
}

/// Round `i` of the per-packet hot path: a 32-packet batch in, one packet
/// out (every 16th a retransmit), one NACK, PLI and FIR in. Adds 32 to
/// `packets_in`, 1 to `packets_out` and 1 to `nack_total`.
pub fn record_packet_round(stats: &Stats, i: u64) {
    stats.record_packets(Direction::Incoming, 32, 38_400, false);
    stats.record_packet(Direction::Outgoing, 1200, i % 16 == 0);
    stats.record_rtcp(Direction::Incoming, 1, 1, 1);
}

/// One round of the per-event hot path: rooms, participants, the join
/// funnel, tracks, forwarding and connections. Adds 1 to
/// `num_track_publish_attempts`; the room gauge ends where it started.
pub fn record_event_round(stats: &Stats) {
    stats.room_started();
    stats.participant_added();
    stats.participant_signal_connected(1);
    stats.participant_rtc_active(1, true);
    stats.track_publish_attempt(TrackKind::Video);
    stats.track_published(TrackKind::Audio);
    stats.track_subscribe_success(TrackKind::Data);
    stats.track_unsubscribed(TrackKind::Data);
    stats.forward_latency(1000);
    stats.forward_jitter(100);
    stats.connection_added(Direction::Incoming);
    stats.room_ended();
}

/// Four round-trip times from country `DE`, outgoing camera video: 10,
/// 60, 60 and 999 ms, each times `scale`.
pub fn record_rtts(stats: &Stats, scale: u32) {
    for rtt in [10, 60, 60, 999] {
        stats.record_rtt(
            "DE",
            Direction::Outgoing,
            TrackSource::Camera,
            TrackKind::Video,
            rtt * scale,
        );
    }
}

/// A named test taking a shared context.
pub type Test<C> = (&'static str, fn(&mut C));

/// Runs named tests in order, each behind `catch_unwind`, printing
/// `test NAME ... ok` lines and the closing `N passed, M failed` line;
/// returns how many failed.
pub fn run<C>(ctx: &mut C, tests: &[Test<C>]) -> usize {
    let mut failed = 0;
    for (name, f) in tests {
        let t = Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ctx))) {
            Ok(()) => println!("test {name} ... ok ({:.1?})", t.elapsed()),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{} passed, {failed} failed", tests.len() - failed);
    failed
}

/// Starts `nodestats serve` on the segment with a free loopback port and
/// the extra arguments; returns the child and the address it printed.
pub fn serve(segment: &str, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(nodestats_bin())
        .args(["serve", "--segment", segment, "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start nodestats serve");
    let addr = printed_address(&mut child).unwrap_or_else(|line| panic!("no address in {line:?}"));
    (child, addr)
}

/// The address `serve` prints on its first line of stdout (`... on
/// http://<addr>/metrics ...`), or the line if it has none.
pub fn printed_address(child: &mut Child) -> Result<String, String> {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("serve's first line");
    line.split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .map(str::to_string)
        .ok_or(line)
}

/// Kills and reaps a child (a `serve`, a Prometheus) when dropped, so
/// that none outlives its test, passed or panicked.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Records into LiveKit's families and declared ones for the format
/// tests (units, a unit that
/// is not the name's suffix, histograms, labels that need escaping).
pub fn record_mixed(stats: &Stats) {
    stats.record_packets(Direction::Incoming, 10, 12_000, false);
    stats.record_packets(Direction::Outgoing, 3, 3_600, true);
    stats.record_rtt(
        "DE",
        Direction::Outgoing,
        TrackSource::Camera,
        TrackKind::Video,
        60,
    );
    stats.room_started();
    stats.track_published(TrackKind::Video);
    let bytes = stats
        .declare(
            &FamilySpec::counter(
                "sfu_forwarded_bytes_total",
                "Bytes \"forwarded\"\\\nper room.",
            )
            .unit("bytes")
            .labels(&["room"]),
        )
        .unwrap();
    bytes.series(&["a \"quoted\" room"]).unwrap().inc_by(100);
    bytes.series(&["back\\slash\nnewline"]).unwrap().inc_by(7);
    bytes.series(&["ünïcødé ✓"]).unwrap().inc_by(1);
    let temp = stats
        .declare(
            &FamilySpec::gauge("sfu_temperature_celsius", "Board temperature.").unit("celsius"),
        )
        .unwrap();
    temp.series(&[]).unwrap().add(41);
    let delay = stats
        .declare(
            &FamilySpec::histogram(
                "sfu_forward_delay_seconds",
                "Forwarding delay.",
                &[0.0005, 0.001, 0.01, 1e6],
            )
            .unit("seconds")
            .labels(&["codec"]),
        )
        .unwrap();
    let h = delay.series(&["VP8"]).unwrap();
    for v in [0.0001, 0.0007, 0.002, 5.0, 2e6] {
        h.observe(v);
    }
    // A unit the name does not end with: no `# UNIT` (OpenMetrics forbids it).
    let odd = stats
        .declare(&FamilySpec::gauge("sfu_queue_depth", "Queued packets.").unit("packets"))
        .unwrap();
    odd.series(&[]).unwrap().add(3);
    // A counter without `_total`, like LiveKit's `livekit_packet_bytes`.
    let plain = stats
        .declare(&FamilySpec::counter(
            "sfu_keyframes",
            "Keyframes requested.",
        ))
        .unwrap();
    plain.series(&[]).unwrap().inc_by(5);
}

/// Raises this process's soft limit on open files to at least `n` (within
/// the hard limit), for tests that hold many sockets. Children inherit it.
pub fn raise_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < n as libc::rlim_t {
            lim.rlim_cur = (n as libc::rlim_t).min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The body of `GET path` from the HTTP server at `addr` (one request,
/// `Connection: close`; the body as text, headers dropped).
pub fn http_body(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// A child's last words: says `ready` on stdout (what the parent waits
/// for), then waits to be killed.
pub fn ready_then_wait() -> ! {
    println!("ready");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Runs this test binary again as `child ARGS...` (the `harness = false`
/// tests' writer processes), its stdout piped.
pub fn spawn_child(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().expect("this test binary"))
        .arg("child")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a child")
}

/// A fresh directory of one test's own, `nodestats-<tag>-<pid>-<n>` (`n`
/// counts the directories this process made, so tests running at once never
/// share one), removed with everything in it when dropped: at the end of the
/// test, and while a failing test unwinds.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Under the temp dir (`$TMPDIR`, else `/tmp`).
    pub fn new(tag: &str) -> TempDir {
        TempDir::under(&std::env::temp_dir(), tag)
    }

    /// On tmpfs (`/dev/shm`) when there is one, else under the temp dir:
    /// for tests that write thousands of files.
    pub fn on_tmpfs(tag: &str) -> TempDir {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            TempDir::under(shm, tag)
        } else {
            TempDir::new(tag)
        }
    }

    fn under(base: &Path, tag: &str) -> TempDir {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("nodestats-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {dir:?}: {e}"));
        TempDir(dir)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `name` inside the directory, as a segment name (a UTF-8 path).
    pub fn path(&self, name: &str) -> String {
        self.join(name)
            .to_str()
            .expect("a UTF-8 temp dir")
            .to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `/dev/shm` segment name of one test's own, `/nodestats-<tag>-<pid>`,
/// free when made and unlinked when dropped (at the end of the test, and
/// while a failing test unwinds).
pub struct ShmName(String);

impl ShmName {
    pub fn new(tag: &str) -> ShmName {
        let name = format!("/nodestats-{tag}-{}", std::process::id());
        let _ = Segment::unlink(&name);
        ShmName(name)
    }
}

impl std::ops::Deref for ShmName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

/// The `nodestats` binary of this build (package `nodestats-cli`), in the
/// target directory the tests run from. `cargo test` builds only its test
/// harness, not the binary: `scripts/test.sh` runs `cargo build -p
/// nodestats-cli` first (so must anyone running one test by hand after a
/// change to `cli/`).
pub fn nodestats_bin() -> std::path::PathBuf {
    // A test binary is target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("this test binary");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("nodestats"))
        .expect("target/<profile>/");
    assert!(
        bin.is_file(),
        "no {}: run `cargo build -p nodestats-cli` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A loopback TCP port free a moment ago, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}
