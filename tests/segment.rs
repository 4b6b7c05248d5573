//! Creating, attaching and refusing segments on real files.

mod common;

use common::{ShmName, TempDir};
use nodestats::{Access, Collector, Direction, Error, Segment, SegmentOptions, Stats};
use nodestats::{HEADER_SIZE, LAYOUT_MAJOR, MAGIC};
use std::os::unix::fs::PermissionsExt;

fn path_str(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_string()
}

fn valid_bytes(name: &str) -> Vec<u8> {
    let dir = TempDir::new(&format!("seg-{name}"));
    let p = dir.join("seg");
    let opts = SegmentOptions::new()
        .name(path_str(&p))
        .shards(2)
        .writer_slots(2);
    drop(Segment::create(&opts).unwrap());
    std::fs::read(&p).unwrap()
}

/// Attaches to a file holding `bytes`; the file is gone when this returns
/// (a segment stays mapped).
fn attach_bytes(name: &str, bytes: &[u8]) -> Result<Segment, Error> {
    let dir = TempDir::new(&format!("seg-{name}"));
    let p = dir.join("seg");
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    Segment::attach_with(
        &path_str(&p),
        Access::ReadOnly,
        &SegmentOptions::new().init_wait(std::time::Duration::from_millis(20)),
    )
}

fn set_word(bytes: &mut [u8], w: usize, v: u64) {
    bytes[w * 8..w * 8 + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn created_0600_exclusive_and_attachable() {
    let dir = TempDir::new("seg-create");
    let p = dir.join("seg");
    let name = path_str(&p);
    let opts = SegmentOptions::new().name(name.clone());
    let seg = Segment::create(&opts).unwrap();
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(matches!(
        Segment::create(&opts),
        Err(Error::AlreadyExists(_))
    ));
    let ro = Segment::attach(&name, Access::ReadOnly).unwrap();
    assert_eq!(ro.id(), seg.id());
    assert!(!ro.is_writable());
    assert!(matches!(
        Stats::from_segment(std::sync::Arc::new(ro)),
        Err(Error::ReadOnly)
    ));
    Segment::unlink(&name).unwrap();
    assert!(matches!(
        Segment::attach(&name, Access::ReadOnly),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn an_explicit_mode_is_applied_despite_the_umask() {
    let dir = TempDir::new("seg-mode");
    let p = dir.join("seg");
    let _seg = Segment::create(&SegmentOptions::new().name(path_str(&p)).mode(0o660)).unwrap();
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o660
    );
}

#[test]
fn a_symlink_at_the_name_is_refused() {
    let dir = TempDir::new("seg-symlink");
    let p = dir.join("seg");
    let target = p.with_file_name("target");
    std::fs::write(&target, b"x").unwrap();
    std::os::unix::fs::symlink(&target, &p).unwrap();
    let create = Segment::create(&SegmentOptions::new().name(path_str(&p)));
    assert!(matches!(create, Err(Error::AlreadyExists(_))), "{create:?}");
    let attach = Segment::attach(&path_str(&p), Access::ReadOnly);
    assert!(matches!(attach, Err(Error::Io { .. })), "{attach:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"x", "target untouched");
}

#[test]
fn shm_names_work() {
    let name = ShmName::new("seg-shm");
    let stats = Stats::open(&SegmentOptions::new().name(&*name)).unwrap();
    stats.record_packets(Direction::Incoming, 3, 300, false);
    let ro = Segment::attach(&name, Access::ReadOnly).unwrap();
    let t = nodestats::Totals::read(&ro);
    assert_eq!(t.get(nodestats::Counter::PacketsInInitial), 3);
    Segment::unlink(&name).unwrap();
}

#[test]
fn truncated_files_are_refused() {
    let good = valid_bytes("trunc-src");
    for len in [0, 7, HEADER_SIZE - 1] {
        let r = attach_bytes("trunc", &good[..len]);
        assert!(
            matches!(r, Err(Error::Truncated { .. })),
            "len {len}: {r:?}"
        );
    }
    // A whole header but a cut-off body: the header's size disagrees.
    let r = attach_bytes("trunc-body", &good[..good.len() - 512]);
    assert!(matches!(r, Err(Error::SizeMismatch { .. })), "{r:?}");
}

#[test]
fn garbage_is_bad_magic() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(matches!(
        attach_bytes("garbage", &garbage),
        Err(Error::BadMagic { .. })
    ));
}

#[test]
fn another_major_version_is_refused() {
    let mut b = valid_bytes("ver-src");
    set_word(&mut b, 1, LAYOUT_MAJOR + 1);
    let r = attach_bytes("ver", &b);
    assert!(
        matches!(
            r,
            Err(Error::UnsupportedVersion {
                found: 3,
                supported: 2
            })
        ),
        "{r:?}"
    );
    // A layout-1 segment (no thread rows) is refused too.
    set_word(&mut b, 1, 1);
    assert!(matches!(
        attach_bytes("ver1", &b),
        Err(Error::UnsupportedVersion {
            found: 1,
            supported: 2
        })
    ));
}

#[test]
fn an_unfinished_initialisation_is_reported() {
    let mut b = valid_bytes("init-src");
    set_word(&mut b, 31, 0);
    assert!(matches!(
        attach_bytes("init", &b),
        Err(Error::NotInitialized)
    ));
    // Sized but never written (creator died right after ftruncate).
    let zeros = vec![0u8; b.len()];
    assert!(matches!(
        attach_bytes("init-zero", &zeros),
        Err(Error::NotInitialized)
    ));
}

#[test]
fn hostile_offsets_are_refused() {
    let good = valid_bytes("hostile-src");
    assert_eq!(u64::from_le_bytes(good[..8].try_into().unwrap()), MAGIC);
    for (w, v) in [
        (12, 0u64),
        (12, u64::MAX - 127),
        (15, 128),
        (9, 1 << 20),
        (13, 1 << 30),
    ] {
        let mut b = good.clone();
        set_word(&mut b, w, v);
        let r = attach_bytes("hostile", &b);
        assert!(
            matches!(r, Err(Error::BadLayout(_))),
            "word {w} = {v:#x}: {r:?}"
        );
    }
}

#[test]
fn a_directory_or_bad_name_is_an_error() {
    let dir = TempDir::new("seg-dir");
    let r = Segment::attach(&format!("{}/", dir.dir().display()), Access::ReadOnly);
    assert!(r.is_err());
    assert!(matches!(
        Segment::attach("", Access::ReadOnly),
        Err(Error::InvalidName(_))
    ));
}

#[test]
fn open_attaches_to_an_existing_segment() {
    let dir = TempDir::new("seg-open");
    let p = dir.join("seg");
    let opts = SegmentOptions::new().name(path_str(&p));
    let a = Stats::open(&opts).unwrap();
    let b = Stats::open(&opts).unwrap();
    assert_eq!(a.segment().id(), b.segment().id());
    assert_ne!(
        a.writer_slot(),
        b.writer_slot(),
        "each handle claims its own slot"
    );
    a.record_packets(Direction::Outgoing, 1, 10, false);
    b.record_packets(Direction::Outgoing, 2, 20, false);
    let ns = Collector::new(a.segment().clone(), Default::default())
        .unwrap()
        .update();
    assert_eq!((ns.packets_out, ns.bytes_out), (3, 30));
}

#[test]
fn writer_slots_run_out_with_a_clear_error() {
    let dir = TempDir::new("seg-slots");
    let p = dir.join("seg");
    let opts = SegmentOptions::new().name(path_str(&p)).writer_slots(2);
    let _a = Stats::open(&opts).unwrap();
    let b = Stats::open(&opts).unwrap();
    assert!(matches!(
        Stats::open(&opts),
        Err(Error::NoWriterSlot { slots: 2 })
    ));
    drop(b);
    assert!(Stats::open(&opts).is_ok(), "a released slot is reused");
}
