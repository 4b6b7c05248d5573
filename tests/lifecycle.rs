//! What operators do to a media server's segment (SEGMENT.md §4): a full
//! `/dev/shm`, a creator that died half-way, something else at the name.
//!
//! The tmpfs tests mount a small tmpfs and need root (or `CAP_SYS_ADMIN`);
//! without it they print why and skip. Work that could die of SIGBUS runs in
//! a child process (this test binary re-run on one test), so a fault shows as
//! a signal death instead of killing the test run.

mod common;

use common::{ShmName, TempDir};
use nodestats::HEADER_SIZE;
use nodestats::{Access, Collector, CollectorConfig, Direction, Error, Family, Segment};
use nodestats::{SegmentOptions, Stats};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

/// Byte of a segment file whose OFD lock a writer holds while it replaces
/// a stale file at the name: just below writer slot 0's lock byte (1 << 40).
const REPLACE_LOCK_BYTE: i64 = (1 << 40) - 1;

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn small(name: &str) -> SegmentOptions {
    SegmentOptions::new().name(name).shards(2).writer_slots(4)
}

fn no_system() -> CollectorConfig {
    CollectorConfig {
        system: None,
        ..CollectorConfig::default()
    }
}

fn packets_in(seg: Segment) -> u64 {
    let mut c = Collector::new(Arc::new(seg), no_system()).unwrap();
    c.update().packets_in
}

fn inode(p: &Path) -> (u64, u64) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.dev(), m.ino())
}

/// Runs `f` on its own thread and fails the test if it has not returned
/// within 5 s (the thread is left blocked; the test run still ends).
fn within_5s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("{what} blocked for 5 s"))
}

/// Re-runs this test binary on the one test `test` with `env` set.
fn run_child(test: &str, env: &[(&str, &str)]) -> ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .status()
        .unwrap()
}

/// A tmpfs of a given size mounted on a fresh directory; unmounted (and the
/// directory removed) on drop.
struct Tmpfs(TempDir);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = TempDir::new(&format!("life-{name}"));
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "none",
            ])
            .arg(dir.dir())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir)),
            Ok(o) => {
                println!(
                    "skipped: cannot mount a tmpfs ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.dir()).status();
    }
}

const CHILD_SEG: &str = "NODESTATS_LIFECYCLE_SEG";
const CHILD_SHARDS: &str = "NODESTATS_LIFECYCLE_SHARDS";
/// Non-empty: after opening, write and read every part of the segment.
const CHILD_TOUCH: &str = "NODESTATS_LIFECYCLE_TOUCH";
/// Exit code of the child when open reported `Error::NoSpace`.
const EXIT_NO_SPACE: i32 = 10;

/// The child of `a_full_tmpfs_is_an_error_at_open_never_a_sigbus`: opens
/// the segment and records, then (with `CHILD_TOUCH`) writes and reads every
/// part of it, as a busy writer and `nodestats show` would. A no-op unless
/// run by that test.
#[test]
fn child_opens_and_touches_everything() {
    let (Ok(seg), Ok(shards)) = (std::env::var(CHILD_SEG), std::env::var(CHILD_SHARDS)) else {
        return;
    };
    let opts = SegmentOptions::new()
        .name(seg.clone())
        .shards(shards.parse().unwrap())
        .writer_slots(4);
    let stats = match Stats::open(&opts) {
        Ok(s) => s,
        Err(Error::NoSpace { path, needed }) => {
            assert_eq!(path, seg);
            assert!(needed > 1 << 20, "needed {needed}");
            std::process::exit(EXIT_NO_SPACE);
        }
        Err(e) => panic!("open: {e}"),
    };
    stats.record_packets(Direction::Incoming, 1, 100, false);
    if std::env::var(CHILD_TOUCH).map_or(true, |t| t.is_empty()) {
        return;
    }
    for i in 0..300 {
        let country = format!("C{i}");
        stats
            .series(Family::NackTotal, &["incoming", &country])
            .unwrap()
            .inc_by(1);
    }
    let ro = Segment::attach(&seg, Access::ReadOnly).unwrap();
    assert!(packets_in(ro) >= 1);
    // Every page of the file, through a read-only mapping of our own.
    let f = File::open(&seg).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    // SAFETY: a fresh read-only shared mapping of `len` bytes of an open
    // file; it aliases no Rust object and is unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let mut sum = 0u64;
    for off in (0..len).step_by(4096) {
        // SAFETY: `off < len`, inside the mapping.
        sum += u64::from(unsafe { std::ptr::read_volatile(p.cast::<u8>().add(off)) });
    }
    // SAFETY: exactly what mmap returned.
    unsafe { libc::munmap(p, len) };
    println!("touched {} pages (byte sum {sum})", len / 4096);
}

#[test]
fn a_full_tmpfs_is_an_error_at_open_never_a_sigbus() {
    let Some(fs) = Tmpfs::mount("tmpfs", "3m") else {
        return;
    };
    let small = path_str(&fs.0.join("small"));
    let big = path_str(&fs.0.join("big"));
    let child = |seg: &str, shards: &str, touch: &str| {
        run_child(
            "child_opens_and_touches_everything",
            &[
                (CHILD_SEG, seg),
                (CHILD_SHARDS, shards),
                (CHILD_TOUCH, touch),
            ],
        )
    };
    let ok = |st: ExitStatus, what: &str, want: i32| {
        assert_eq!(
            st.signal(),
            None,
            "{what}: killed by signal {:?}",
            st.signal()
        );
        assert_eq!(st.code(), Some(want), "{what}: {st}");
    };
    // Two shards (about 2 MiB) fit in 3 MiB. Create it, then fill the file
    // system.
    ok(child(&small, "2", ""), "create the small segment", 0);
    {
        use std::io::Write;
        let mut filler = File::create(fs.0.join("filler")).unwrap();
        while filler.write_all(&[1u8; 16 << 10]).is_ok() {}
    }
    // A second writer and a reader of the existing segment, on a full
    // file system: nothing may fault for lack of space.
    ok(
        child(&small, "2", "1"),
        "use the small segment on a full tmpfs",
        0,
    );
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    // Sixteen shards (about 4 MiB) do not fit: an error at open, no file
    // left.
    ok(
        child(&big, "16", "1"),
        "create the big segment",
        EXIT_NO_SPACE,
    );
    let mut left: Vec<String> = std::fs::read_dir(fs.0.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["small"], "a failed creation leaves nothing behind");
}

fn unpublished_header(name: &str) -> Vec<u8> {
    let dir = TempDir::new(&format!("life-{name}"));
    let p = dir.join("seg");
    drop(Segment::create(&small(&path_str(&p))).unwrap());
    let mut b = std::fs::read(&p).unwrap();
    // The init word (the header's last) says "not ready".
    b[31 * 8..32 * 8].fill(0);
    b
}

/// A writer replaces what a creator that died half-way left at the name; a
/// read-only attach reports it and leaves it alone.
#[test]
fn a_dead_creators_half_made_segment_is_replaced_by_a_writer() {
    for (what, bytes) in [
        ("zero-filled", vec![0u8; 64 << 10]),
        ("empty", Vec::new()),
        ("unpublished header", unpublished_header("unpub-src")),
    ] {
        let dir = TempDir::new("life-stale");
        let p = dir.join("seg");
        let name = path_str(&p);
        std::fs::write(&p, &bytes).unwrap();
        let before = inode(&p);
        let ro = Segment::attach_with(
            &name,
            Access::ReadOnly,
            &SegmentOptions::new().init_wait(Duration::from_millis(20)),
        );
        assert!(
            matches!(
                ro,
                Err(Error::NotInitialized | Error::Truncated { size: 0, .. })
            ),
            "{what}: read-only attach gave {ro:?}"
        );
        assert_eq!(inode(&p), before, "{what}: a reader never replaces");
        let stats = Stats::open(&small(&name).init_wait(Duration::from_millis(50)))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_ne!(inode(&p), before, "{what}: replaced");
        stats.record_packets(Direction::Incoming, 3, 300, false);
        let ro = Segment::attach(&name, Access::ReadOnly).unwrap();
        assert_eq!(ro.id(), stats.segment().id(), "{what}");
        assert_eq!(packets_in(ro), 3, "{what}");
        assert_eq!(
            std::fs::read_dir(dir.dir()).unwrap().count(),
            1,
            "{what}: no temporary file left in {:?}",
            dir.dir()
        );
    }
}

#[test]
fn racing_replacers_end_on_one_segment() {
    const N: usize = 8;
    let dir = TempDir::new("life-race");
    let p = dir.join("seg");
    let name = path_str(&p);
    std::fs::write(&p, vec![0u8; 64 << 10]).unwrap();
    let barrier = Arc::new(Barrier::new(N));
    let writers: Vec<_> = (0..N)
        .map(|_| {
            let (name, barrier) = (name.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let opts = small(&name)
                    .writer_slots(N)
                    .init_wait(Duration::from_millis(20));
                let s = Stats::open(&opts).unwrap();
                s.record_packets(Direction::Incoming, 1, 1, false);
                s
            })
        })
        .collect();
    let writers: Vec<Stats> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    let id = writers[0].segment().id();
    for w in &writers {
        assert_eq!(w.segment().id(), id, "every writer on one segment");
    }
    let ro = Segment::attach(&name, Access::ReadOnly).unwrap();
    assert_eq!(ro.id(), id, "and it is the one at the name");
    assert_eq!(packets_in(ro), N as u64, "no writer recorded elsewhere");
}

/// While another writer holds the replace lock of a stale file, nobody else
/// replaces it: they wait, and report it if the lock is not let go.
#[test]
fn a_replacement_in_progress_is_not_overtaken() {
    let dir = TempDir::new("life-locked");
    let p = dir.join("seg");
    let name = path_str(&p);
    std::fs::write(&p, vec![0u8; 64 << 10]).unwrap();
    let before = inode(&p);
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = REPLACE_LOCK_BYTE;
    fl.l_len = 1;
    // SAFETY: a valid fd and a valid flock that outlives the call.
    let r = unsafe { libc::fcntl(holder.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    let r = Stats::open(&small(&name).init_wait(Duration::from_millis(100)));
    assert!(matches!(r, Err(Error::NotInitialized)), "{r:?}");
    assert_eq!(inode(&p), before, "not replaced under a held lock");
    drop(holder);
    Stats::open(&small(&name).init_wait(Duration::from_millis(20))).unwrap();
    assert_ne!(inode(&p), before);
}

/// A creator, however slow, never shows a half-made segment at the name,
/// so nobody ever mistakes it for a dead one.
#[test]
fn a_half_made_segment_never_appears_at_the_name() {
    let shm = ShmName::new("life-halfmade");
    let name = shm.to_string();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (name, stop) = (name.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut seen, mut half, mut other) = (0u32, 0u32, Vec::new());
            let opts = SegmentOptions::new().init_wait(Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match Segment::attach_with(&name, Access::ReadOnly, &opts) {
                    Ok(_) => seen += 1,
                    Err(Error::NotFound(_)) => {}
                    Err(Error::NotInitialized | Error::Truncated { .. }) => half += 1,
                    Err(e) => other.push(e.to_string()),
                }
            }
            (seen, half, other)
        })
    };
    for _ in 0..300 {
        let seg = Segment::create(&SegmentOptions::new().name(name.clone()).shards(4)).unwrap();
        drop(seg);
        Segment::unlink(&name).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, half, other) = watcher.join().unwrap();
    println!("watcher attached {seen} times");
    assert_eq!(half, 0, "attaches that saw a half-made segment");
    assert!(other.is_empty(), "other errors: {other:?}");
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path that outlives the call.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// Attaching read-only and opening read-write both refuse `name` with
/// `NotRegularFile(name)`, without blocking.
fn refused_as_not_regular(name: &str, what: &str) {
    let n = name.to_string();
    let ro = within_5s(&format!("read-only attach to a {what}"), move || {
        Segment::attach(&n, Access::ReadOnly)
    });
    assert!(
        matches!(&ro, Err(Error::NotRegularFile(p)) if p == name),
        "{what}: read-only attach gave {ro:?}"
    );
    let n = name.to_string();
    let rw = within_5s(&format!("open of a {what}"), move || {
        Stats::open(&small(&n)).map(drop)
    });
    assert!(
        matches!(&rw, Err(Error::NotRegularFile(p)) if p == name),
        "{what}: open gave {rw:?}"
    );
    let msg = rw.unwrap_err().to_string();
    assert!(msg.contains(name), "the message names the path: {msg}");
}

#[test]
fn a_fifo_at_the_name_is_an_error_not_a_hang() {
    let dir = TempDir::new("life-fifo");
    let p = dir.join("seg");
    mkfifo(&p);
    refused_as_not_regular(&path_str(&p), "FIFO");
    let name = ShmName::new("life-fifo");
    let shm = Path::new("/dev/shm").join(&name[1..]);
    mkfifo(&shm);
    refused_as_not_regular(&name, "FIFO in /dev/shm");
    assert!(std::fs::symlink_metadata(&shm)
        .unwrap()
        .file_type()
        .is_fifo());
    std::fs::remove_file(&shm).unwrap();
}

#[test]
fn a_directory_or_device_at_the_name_is_an_error() {
    let dir = TempDir::new("life-dir");
    let p = dir.join("seg");
    std::fs::create_dir(&p).unwrap();
    refused_as_not_regular(&path_str(&p), "directory");
    refused_as_not_regular("/dev/null", "character device");
}

#[test]
fn a_header_sized_file_is_not_a_segment_to_replace() {
    // Garbage is somebody else's file: even a writer leaves it alone.
    let dir = TempDir::new("life-garbage");
    let p = dir.join("seg");
    let name = path_str(&p);
    std::fs::write(&p, vec![0x5au8; HEADER_SIZE]).unwrap();
    let r = Stats::open(&small(&name).init_wait(Duration::from_millis(20)));
    assert!(matches!(r, Err(Error::BadMagic { .. })), "{r:?}");
    assert_eq!(std::fs::read(&p).unwrap(), vec![0x5au8; HEADER_SIZE]);
}

// ----- the writer's side: truncates absorbed, the name followed -----

/// Shrinks the file at `path` to `len` bytes, as `truncate -s` does.
fn truncate(path: &str, len: u64) {
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) {
        let _ = f.set_len(len);
    }
}

fn shm_path(name: &str) -> String {
    format!("/dev/shm{name}")
}

fn collect_at(name: &str) -> nodestats::NodeStats {
    let seg = Segment::attach(name, Access::ReadOnly).unwrap();
    Collector::new(Arc::new(seg), no_system()).unwrap().update()
}

const CHILD_TRUNCATES: &str = "NODESTATS_TEST_TRUNCATES";

/// The child of `truncates_never_kill_a_writer`: four threads record
/// through every path (per-CPU counters, gauges, a thread row, a series, a
/// thread series) while the main thread truncates the segment to 0 bytes
/// 200 times, calling `maintain` between truncates. Exits 0 only if it saw
/// the void reported and ends with the segment at the name current.
#[test]
fn child_records_through_truncates() {
    let Ok(name) = std::env::var(CHILD_TRUNCATES) else {
        return;
    };
    let stats = Stats::open(&small(&name).thread_rows(8)).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for k in 0..4 {
        let (stats, stop) = (stats.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let t = stats.thread_writer().unwrap();
            let nack = stats
                .series(Family::NackTotal, &["incoming", "FR"])
                .unwrap();
            let rtt = t
                .series(Family::RttMs, &["outgoing", "MICROPHONE", "AUDIO", "FR"])
                .unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                stats.record_packets(Direction::Incoming, 1, 100, false);
                t.record_packets(Direction::Outgoing, 1, 100, false);
                nack.inc_by(1);
                rtt.observe(10.0);
                if k == 0 && n % 64 == 0 {
                    stats.room_started();
                    stats.room_ended();
                }
                n += 1;
            }
            n
        }));
    }
    let path = shm_path(&name);
    let (mut void_seen, mut followed) = (0, 0);
    for _ in 0..200 {
        truncate(&path, 0);
        std::thread::sleep(Duration::from_millis(1));
        if stats.segment().is_void() {
            void_seen += 1;
        }
        match stats.segment().status().unwrap() {
            nodestats::SegmentStatus::Shrunk { .. } => {}
            s => panic!("after a truncate the status is {s:?}"),
        }
        match stats.maintain() {
            Ok(nodestats::SegmentStatus::Current) => {}
            Ok(_) => followed += 1,
            Err(e) => panic!("maintain: {e}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let recorded: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(recorded > 0);
    // A fault absorbed just as the last switch happened may have voided a
    // page of the new mapping: the next maintain sees it and follows again.
    let mut extra = 0;
    while stats.maintain().unwrap() != nodestats::SegmentStatus::Current {
        extra += 1;
        assert!(extra < 3, "maintain keeps finding a changed segment");
    }
    assert!(!stats.segment().is_void());
    // Everything now reaches the segment at the name.
    stats.room_started();
    let t = stats.thread_writer().unwrap();
    t.record_packets(Direction::Outgoing, 7, 700, false);
    stats.record_packets(Direction::Incoming, 5, 500, false);
    let ns = collect_at(&name);
    assert!(ns.packets_in >= 5 && ns.packets_out >= 7, "{ns:?}");
    assert_eq!(ns.num_rooms, 1);
    println!("void seen {void_seen}, followed {followed}, recorded {recorded}");
    assert!(followed >= 150, "followed {followed} of 200 truncates");
    std::process::exit(0);
}

#[test]
fn truncates_never_kill_a_writer() {
    let name = ShmName::new("trunc-writer");
    let st = run_child(
        "child_records_through_truncates",
        &[(CHILD_TRUNCATES, &name)],
    );
    assert_eq!(st.signal(), None, "the writer died of a signal: {st:?}");
    assert!(st.success(), "{st:?}");
}

#[test]
fn a_truncated_writer_records_into_the_void_and_says_so() {
    let name = ShmName::new("void");
    let stats = Stats::open(&small(&name)).unwrap();
    stats.room_started();
    assert_eq!(
        stats.segment().status().unwrap(),
        nodestats::SegmentStatus::Current
    );
    assert_eq!(stats.maintain().unwrap(), nodestats::SegmentStatus::Current);
    truncate(&shm_path(&name), 0);
    // Each of these would be a SIGBUS without the guard.
    stats.record_packets(Direction::Incoming, 3, 300, false);
    stats.participant_added();
    assert!(stats.segment().is_void());
    assert!(stats.segment().void_faults() >= 1);
    assert!(matches!(
        stats.segment().status().unwrap(),
        nodestats::SegmentStatus::Shrunk { size: 0, .. }
    ));
    // maintain puts a new segment in place of the shrunk one.
    assert!(matches!(
        stats.maintain().unwrap(),
        nodestats::SegmentStatus::Shrunk { .. }
    ));
    assert_eq!(
        stats.segment().status().unwrap(),
        nodestats::SegmentStatus::Current
    );
    assert!(!stats.segment().is_void());
    stats.record_packets(Direction::Incoming, 2, 200, false);
    let ns = collect_at(&name);
    assert_eq!(
        ns.packets_in, 2,
        "counts before the switch are not carried over"
    );
    // The gauges recorded into the void page since the truncate count;
    // the room from before is gone with the file's pages.
    assert_eq!(ns.num_clients, 1);
}

#[test]
fn maintain_follows_a_replaced_segment_with_every_handle() {
    let name = ShmName::new("follow");
    let opts = small(&name).thread_rows(8);
    let stats = Stats::open(&opts).unwrap();
    let rooms = stats
        .declare(
            &nodestats::FamilySpec::counter("sfu_room_bytes_total", "Bytes per room.")
                .labels(&["room"]),
        )
        .unwrap();
    let blue = rooms.series(&["blue"]).unwrap();
    let transports = stats
        .declare(
            &nodestats::FamilySpec::gauge("sfu_transports", "Open transports.").labels(&["kind"]),
        )
        .unwrap();
    let udp = transports.series(&["udp"]).unwrap();
    udp.add(7);
    let nack = stats
        .series(Family::NackTotal, &["incoming", "FR"])
        .unwrap();
    let t = stats.thread_writer().unwrap();
    let t_nack = t.series(Family::NackTotal, &["outgoing", "DE"]).unwrap();
    assert!(t_nack.in_row());
    stats.room_started();
    stats.room_started();
    stats.participant_added();
    stats.forward_latency(1234);
    blue.inc_by(1);
    // A restarted peer: the name removed, a new segment made there, with a
    // writer of its own that registers other series first (so bases and
    // slot differ).
    Segment::unlink(&name).unwrap();
    let peer = Stats::open(&opts).unwrap();
    peer.series(Family::NackTotal, &["incoming", "US"])
        .unwrap()
        .inc_by(100);
    peer.declare(&nodestats::FamilySpec::gauge("sfu_other", "Other.").labels(&["x"]))
        .unwrap();
    peer.room_started();
    assert_eq!(
        stats.segment().status().unwrap(),
        nodestats::SegmentStatus::Replaced
    );
    assert_eq!(
        stats.maintain().unwrap(),
        nodestats::SegmentStatus::Replaced
    );
    assert_eq!(
        stats.segment().status().unwrap(),
        nodestats::SegmentStatus::Current
    );
    assert_eq!(stats.maintain().unwrap(), nodestats::SegmentStatus::Current);
    assert_ne!(stats.writer_slot(), peer.writer_slot());
    // Every handle made before now records into the new segment.
    stats.record_packets(Direction::Incoming, 10, 1000, false);
    t.record_packets(Direction::Outgoing, 20, 2000, false);
    nack.inc_by(3);
    t_nack.inc_by(4);
    blue.inc_by(5);
    rooms.series(&["red"]).unwrap().inc_by(6);
    udp.add(1);
    let ns = collect_at(&name);
    assert_eq!((ns.packets_in, ns.packets_out), (10, 20));
    // Gauges re-established: two rooms of ours and the peer's.
    assert_eq!(ns.num_rooms, 3);
    assert_eq!(ns.num_clients, 1);
    assert_eq!(ns.forward_latency, 1234);
    let text = {
        let seg = Arc::new(Segment::attach(&name, Access::ReadOnly).unwrap());
        nodestats::Exporter::new(seg, "n", "SFU").unwrap().text()
    };
    for want in [
        "sfu_transports{kind=\"udp\",node_id=\"n\",node_type=\"SFU\"} 8",
        "sfu_room_bytes_total{node_id=\"n\",node_type=\"SFU\",room=\"blue\"} 5",
        "sfu_room_bytes_total{node_id=\"n\",node_type=\"SFU\",room=\"red\"} 6",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    let nack_line = |dir: &str, c: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("livekit_nack_total{")
                    && l.contains(&format!("direction=\"{dir}\""))
                    && l.contains(&format!("\"{c}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
    };
    assert_eq!(nack_line("incoming", "FR").as_deref(), Some("3"), "{text}");
    assert_eq!(nack_line("outgoing", "DE").as_deref(), Some("4"), "{text}");
    assert_eq!(
        nack_line("incoming", "US").as_deref(),
        Some("100"),
        "{text}"
    );
    drop(t_nack);
    drop(t);
}

#[test]
fn maintain_creates_the_segment_again_when_the_name_is_gone() {
    let name = ShmName::new("recreate");
    let stats = Stats::open(&small(&name)).unwrap();
    stats.participant_added();
    Segment::unlink(&name).unwrap();
    stats.record_packets(Direction::Incoming, 1, 1, false);
    assert_eq!(
        stats.segment().status().unwrap(),
        nodestats::SegmentStatus::Removed
    );
    assert_eq!(stats.maintain().unwrap(), nodestats::SegmentStatus::Removed);
    stats.record_packets(Direction::Incoming, 4, 4, false);
    let ns = collect_at(&name);
    assert_eq!((ns.packets_in, ns.num_clients), (4, 1));
}

#[test]
fn maintain_refuses_a_segment_of_another_geometry() {
    let name = ShmName::new("geometry");
    let stats = Stats::open(&small(&name)).unwrap();
    Segment::unlink(&name).unwrap();
    let _other = Stats::open(&small(&name).writer_slots(8)).unwrap();
    assert!(matches!(stats.maintain(), Err(Error::Config(_))));
    // Nothing changed: still the orphan, still recording.
    stats.record_packets(Direction::Incoming, 1, 1, false);
    assert_eq!(
        stats.segment().status().unwrap(),
        nodestats::SegmentStatus::Replaced
    );
}

/// `maintain` racing everything else a writer does on other threads: new
/// thread writers, new series, recording. After each replacement the
/// writer follows; at the end, what handles record reaches the segment at
/// the name exactly.
#[test]
fn maintain_races_new_handles_and_recording() {
    let name = ShmName::new("race");
    let opts = small(&name).thread_rows(16);
    let stats = Stats::open(&opts).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for k in 0..3 {
        let (stats, stop) = (stats.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = stats.thread_writer().unwrap();
                let c = format!("c{k}-{}", i % 50);
                let s = t.series(Family::NackTotal, &["incoming", &c]).unwrap();
                let g = stats.series(Family::PliTotal, &["incoming", &c]).unwrap();
                for _ in 0..100 {
                    t.record_packets(Direction::Incoming, 1, 1, false);
                    s.inc_by(1);
                    g.inc_by(1);
                    stats.participant_added();
                    stats.participant_removed();
                }
                i += 1;
            }
        }));
    }
    let mut followed = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(2));
        let _ = Segment::unlink(&name);
        let peer = Stats::open(&opts).unwrap();
        if stats.maintain().unwrap() != nodestats::SegmentStatus::Current {
            followed += 1;
        }
        drop(peer);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(followed, 40);
    assert_eq!(stats.maintain().unwrap(), nodestats::SegmentStatus::Current);
    let before = collect_at(&name);
    assert_eq!(before.num_clients, 0, "gauges balanced: {before:?}");
    let t = stats.thread_writer().unwrap();
    let s = t.series(Family::NackTotal, &["outgoing", "ZZ"]).unwrap();
    t.record_packets(Direction::Outgoing, 9, 9, false);
    s.inc_by(5);
    stats.room_started();
    let after = collect_at(&name);
    assert_eq!(after.packets_out - before.packets_out, 9);
    assert_eq!(after.num_rooms, 1);
    let seg = Arc::new(Segment::attach(&name, Access::ReadOnly).unwrap());
    let text = nodestats::Exporter::new(seg, "n", "SFU").unwrap().text();
    assert!(
        text.lines().any(|l| l.starts_with("livekit_nack_total{")
            && l.contains("\"ZZ\"")
            && l.ends_with(" 5")),
        "{text}"
    );
}

/// `SegmentOptions::maintain_every`: a background thread follows the name
/// with no call from the writer.
#[test]
fn the_opt_in_watcher_follows_the_name_by_itself() {
    let name = ShmName::new("watcher");
    let opts = small(&name);
    let stats = Stats::open(&opts.clone().maintain_every(Duration::from_millis(10))).unwrap();
    stats.room_started();
    Segment::unlink(&name).unwrap();
    let peer = Stats::open(&opts).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stats.status().unwrap() != nodestats::SegmentStatus::Current {
        assert!(std::time::Instant::now() < deadline, "never followed");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_ne!(stats.writer_slot(), peer.writer_slot());
    stats.record_packets(Direction::Incoming, 3, 3, false);
    let ns = collect_at(&name);
    assert_eq!((ns.packets_in, ns.num_rooms), (3, 1));
}

/// `truncate -s 0` then `truncate -s <size>`: the file is whole again but
/// its header is gone (zeros), so no collector can read it. The writer's
/// status says so, and maintain puts a new segment in its place.
#[test]
fn a_truncated_and_regrown_segment_is_replaced_by_maintain() {
    let name = ShmName::new("regrown");
    let stats = Stats::open(&small(&name)).unwrap();
    let path = shm_path(&name);
    let size = std::fs::metadata(&path).unwrap().len();
    truncate(&path, 0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(size)
        .unwrap();
    stats.record_packets(Direction::Incoming, 1, 1, false);
    assert!(matches!(
        Segment::attach(&name, Access::ReadOnly),
        Err(Error::BadMagic { .. } | Error::NotInitialized)
    ));
    assert!(matches!(
        stats.status().unwrap(),
        nodestats::SegmentStatus::Shrunk { .. }
    ));
    assert!(matches!(
        stats.maintain().unwrap(),
        nodestats::SegmentStatus::Shrunk { .. }
    ));
    assert_eq!(stats.status().unwrap(), nodestats::SegmentStatus::Current);
    stats.record_packets(Direction::Incoming, 6, 6, false);
    assert_eq!(collect_at(&name).packets_in, 6);
}
