//! Access control: who may create, attach and write a segment, and where
//! the exporter listens. Each claim is a test: named segments are mode
//! 0600 by default, a symlink at the name is refused (SEGMENT.md §4),
//! collectors map read-only and never write, a segment owned by another
//! user is refused unless allowed, and the exporter listens on loopback by
//! default.

mod common;

use common::{ShmName, TempDir};
use nodestats::Exporter;
use nodestats::{
    Access, Collector, CollectorConfig, Direction, Error, Segment, SegmentOptions, Stats,
};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn no_system() -> CollectorConfig {
    CollectorConfig {
        system: None,
        ..CollectorConfig::default()
    }
}

/// The permissions and start address of the mapping of `path` in this
/// process (from /proc/self/maps), e.g. ("r--s", 0x7f..).
fn mappings_of(path: &Path) -> Vec<(String, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let want = std::fs::canonicalize(path).unwrap();
    maps.lines()
        .filter(|l| l.ends_with(want.to_str().unwrap()))
        .map(|l| {
            let mut f = l.split_whitespace();
            let range = f.next().unwrap();
            let perms = f.next().unwrap().to_string();
            let start = usize::from_str_radix(range.split('-').next().unwrap(), 16).unwrap();
            (perms, start)
        })
        .collect()
}

#[test]
fn named_segments_are_0600_by_default_files_and_shm() {
    let dir = TempDir::new("access-mode");
    let p = dir.join("seg");
    let _a = Segment::create(&SegmentOptions::new().name(s(&p)).shards(1)).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    let name = ShmName::new("access");
    let _b = Segment::create(&SegmentOptions::new().name(&*name).shards(1)).unwrap();
    let shm = Path::new("/dev/shm").join(&name[1..]);
    assert_eq!(std::fs::metadata(&shm).unwrap().mode() & 0o777, 0o600);
    Segment::unlink(&name).unwrap();
    // An explicit mode is honoured exactly (the umask cannot widen or
    // narrow it).
    let q = dir.join("seg640");
    let _c = Segment::create(&SegmentOptions::new().name(s(&q)).shards(1).mode(0o640)).unwrap();
    assert_eq!(std::fs::metadata(&q).unwrap().mode() & 0o777, 0o640);
}

#[test]
fn a_symlink_planted_at_a_shm_name_is_refused() {
    let name = ShmName::new("access-link");
    let link = Path::new("/dev/shm").join(&name[1..]);
    let dir = TempDir::new("access-link-target");
    let target = dir.join("victim");
    std::fs::write(&target, b"precious").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let opts = SegmentOptions::new().name(&*name).shards(1);
    assert!(matches!(
        Segment::create(&opts),
        Err(Error::AlreadyExists(_))
    ));
    assert!(Segment::attach(&name, Access::ReadOnly).is_err());
    assert!(
        Stats::open(&opts).is_err(),
        "open must not follow it either"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    std::fs::remove_file(&link).unwrap();
}

#[test]
fn collectors_map_read_only_and_never_write() {
    let dir = TempDir::new("access-ro");
    let p = dir.join("seg");
    let name = s(&p);
    {
        let w = Stats::open(&SegmentOptions::new().name(name.clone()).shards(2)).unwrap();
        w.record_packets(Direction::Incoming, 5, 500, false);
        w.room_started();
        w.series(nodestats::Family::NackTotal, &["incoming", "FR"])
            .unwrap()
            .inc_by(3);
        // The writer's handle is dropped: its slot is released, nothing
        // will write the file from here on.
    }
    let before = std::fs::read(&p).unwrap();
    let mtime = std::fs::metadata(&p).unwrap().mtime_nsec();
    let mtime_s = std::fs::metadata(&p).unwrap().mtime();
    std::thread::sleep(Duration::from_millis(20));

    let mut c = Collector::attach(&name, no_system()).unwrap();
    assert!(!c.segment().is_writable());
    let maps = mappings_of(&p);
    assert!(!maps.is_empty(), "segment mapping not found");
    for (perms, _) in &maps {
        assert!(perms.starts_with("r-"), "collector mapping is {perms}");
    }
    let ex = Exporter::new(c.segment().clone(), "n", "SERVER").unwrap();
    for _ in 0..20 {
        let ns = c.update();
        assert_eq!(ns.packets_in, 5);
        ex.state().publish(&ns, c.anomalies());
        assert!(ex.text().contains("livekit_nack_total"));
    }
    // Recording through a read-only segment is refused, not attempted.
    assert!(matches!(
        Stats::from_segment(c.segment().clone()),
        Err(Error::ReadOnly)
    ));

    // A write through the collector's mapping faults: a forked child tries.
    let (_, addr) = maps[0];
    // SAFETY: fork in a test; the child only performs one volatile store
    // (which must fault) and then _exit, both async-signal-safe.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: deliberately writes to a PROT_READ page: the kernel
        // must deliver SIGSEGV before the store takes effect.
        unsafe {
            std::ptr::write_volatile((addr + 64) as *mut u64, 0xdead_beef);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
        "a write through the read-only mapping did not fault (status {status:#x})"
    );

    drop(ex);
    drop(c);
    assert_eq!(
        std::fs::read(&p).unwrap(),
        before,
        "the collector changed bytes"
    );
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!(
        (m.mtime(), m.mtime_nsec()),
        (mtime_s, mtime),
        "mtime changed"
    );
}

#[test]
fn a_foreign_owner_is_refused_unless_allowed() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: chown to another user needs root");
        return;
    }
    let dir = TempDir::new("access-foreign");
    let p = dir.join("seg");
    let name = s(&p);
    drop(Segment::create(&SegmentOptions::new().name(name.clone()).shards(1)).unwrap());
    std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    for access in [Access::ReadOnly, Access::ReadWrite] {
        let r = Segment::attach(&name, access);
        assert!(
            matches!(
                r,
                Err(Error::ForeignOwner {
                    owner: 65534,
                    us: 0
                })
            ),
            "{access:?}: {r:?}"
        );
    }
    assert!(matches!(
        Collector::attach(&name, no_system()),
        Err(Error::ForeignOwner { .. })
    ));
    assert!(matches!(
        Stats::open(&SegmentOptions::new().name(name.clone()).shards(1)),
        Err(Error::ForeignOwner { .. })
    ));
    let allow = SegmentOptions::new().allow_foreign_owner(true);
    let ro = Segment::attach_with(&name, Access::ReadOnly, &allow).unwrap();
    assert!(!ro.is_writable());
    let rw = Segment::attach_with(&name, Access::ReadWrite, &allow).unwrap();
    let w = Stats::from_segment(Arc::new(rw)).unwrap();
    w.record_packets(Direction::Outgoing, 1, 10, false);
    assert_eq!(nodestats::Totals::read(&ro).counters[4], 1);
}

#[test]
fn the_exporter_listens_on_loopback_by_default() {
    let exe = common::nodestats_bin();
    let help = Command::new(&exe)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("[default: 127.0.0.1:9898]"),
        "serve --help:\n{help}"
    );
    // Start it with no --listen and read the address it prints.
    let dir = TempDir::new("access-serve");
    let p = dir.join("seg");
    let _w = Stats::open(&SegmentOptions::new().name(s(&p)).shards(1)).unwrap();
    let mut child = Command::new(exe)
        .args(["serve", "--segment", &s(&p)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    let _ = child.kill();
    let status = child.wait().unwrap();
    if line.is_empty() {
        // Port 9898 taken by something else on this machine: the error
        // must still name the loopback address it tried.
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            err.contains("listen") || err.contains("Address"),
            "serve exited ({status:?}) with: {err}"
        );
        return;
    }
    assert!(
        line.contains("http://127.0.0.1:9898/metrics"),
        "serve printed: {line}"
    );
}
