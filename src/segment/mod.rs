//! The shared-memory segment: creation, attachment, validation.
//!
//! A segment is one mapping: a [header] of 32 words at offset 0,
//! then the per-CPU [`Shard`]s, then the [`WriterSlot`]s, all addressed by
//! offsets recorded in the header. It is backed by
//!
//! * a named POSIX shared-memory object (`"/name"`, i.e. `/dev/shm/name`),
//! * a file (any name containing a `/` after the first character, e.g.
//!   `./stats.seg` or `/run/sfu/stats.seg`), or
//! * anonymous shared memory, visible to this process only (no name).
//!
//! Named segments are created with `O_CREAT|O_EXCL|O_NOFOLLOW` and mode 0600
//! unless told otherwise; their size is fixed at creation. Attaching treats
//! the file as untrusted input: the header is copied once, checked with
//! checked arithmetic against the file size and this library's layout, and
//! only the checked copy is used. Every kind of damage has its own
//! [`Error`]. Collectors attach read-only (`PROT_READ`) and never write.
//!
//! What validation cannot prevent: a process with write access that
//! truncates the file after we mapped it makes later reads fault (SIGBUS).
//! Give write access only to the writers you trust.
//!
//! # Safety
//!
//! This module turns a mapping into references. The invariants:
//! * The mapping is at least `HEADER_SIZE` bytes, page-aligned, and lives
//!   as long as the [`Segment`]; every reference into it borrows the
//!   segment (or is held by a handle that keeps an `Arc<Segment>`).
//! * Regions are built only from a [`Layout`] that `validate` checked (or
//!   that `Layout::new` made): every offset 128-aligned, every region
//!   inside the mapping, no two overlapping, all arithmetic checked.
//! * Shared memory is only ever accessed through atomics (or, in rseq mode,
//!   the rseq sections' single aligned read-modify-write), so a value
//!   another process scribbles is a wrong number, never undefined behaviour.
//! * System calls (`shm_open`, `open`, `fcntl`, `fchmod`, `ftruncate`,
//!   `mmap`) get NUL-terminated names and descriptors that outlive the call.

#[deny(unsafe_code)]
mod header;
#[cfg(all(test, loom))]
#[deny(unsafe_code)]
mod loom;
mod map;
#[deny(unsafe_code)]
pub(crate) mod series;
#[deny(unsafe_code)]
pub(crate) mod shard;
#[deny(unsafe_code)]
pub(crate) mod slots;

use crate::cpu::possible_cpus;
use crate::error::{Error, Result};
use crate::sync::AtomicU64;
use header::{HeaderFields, HEADER_WORDS};
pub use header::{Layout, WriteMode, HEADER_SIZE, LAYOUT_MAJOR, LAYOUT_MINOR, MAGIC};
use map::Mapping;
use shard::Shard;
use slots::{WriterSlot, ACTIVE};
use std::ffi::CString;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Byte offset, far past any segment's end, of writer slot 0's lock byte.
const LOCK_BASE: i64 = 1 << 40;
/// Largest file we are willing to map as a segment.
const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// Default number of writer slots (writer handles alive at once).
pub const DEFAULT_WRITER_SLOTS: usize = 128;
/// Default permission bits of a named segment.
pub const DEFAULT_MODE: u32 = 0o600;
/// Default time an attach waits for a concurrent creator to finish.
pub const DEFAULT_INIT_WAIT: Duration = Duration::from_millis(200);

/// How to create a segment (and, with [`Segment::open`], how to attach if it
/// already exists).
#[derive(Clone, Debug)]
pub struct SegmentOptions {
    name: Option<String>,
    mode: u32,
    shards: Option<usize>,
    writer_slots: usize,
    allow_foreign_owner: bool,
    init_wait: Duration,
    write_mode: Option<WriteMode>,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            name: None,
            mode: DEFAULT_MODE,
            shards: None,
            writer_slots: DEFAULT_WRITER_SLOTS,
            allow_foreign_owner: false,
            init_wait: DEFAULT_INIT_WAIT,
            write_mode: None,
        }
    }
}

impl SegmentOptions {
    /// Anonymous, 0600, one shard per possible CPU, 128 writer slots.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the segment: `"/name"` (or `"name"`) for `/dev/shm/name`, or a
    /// file path containing `/`. No name means anonymous.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Permission bits for a new named segment (default 0600).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Number of shards, a power of two (default: the next power of two ≥
    /// the CPUs this machine can ever have). Rseq mode needs at least one
    /// shard per possible CPU; with fewer, the default mode is atomic.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Number of writer slots (default 128).
    pub fn writer_slots(mut self, slots: usize) -> Self {
        self.writer_slots = slots;
        self
    }

    /// Accept an existing segment owned by another user (refused by default).
    pub fn allow_foreign_owner(mut self, allow: bool) -> Self {
        self.allow_foreign_owner = allow;
        self
    }

    /// How long attaching waits for a concurrent creator to finish.
    pub fn init_wait(mut self, wait: Duration) -> Self {
        self.init_wait = wait;
        self
    }

    /// How writers of a new segment add (attaching uses the segment's own
    /// mode). Default: the environment variable `NODESTATS_WRITE_MODE`
    /// (`atomic` or `rseq`) if set; else [`WriteMode::Rseq`] where glibc
    /// registers rseq for its threads (Linux x86-64, glibc ≥ 2.35) and the
    /// segment has a shard for every possible CPU, [`WriteMode::Atomic`]
    /// otherwise. An explicit rseq request (here or in the environment)
    /// that cannot be met is an error, never a silent downgrade.
    pub fn write_mode(mut self, mode: WriteMode) -> Self {
        self.write_mode = Some(mode);
        self
    }

    /// The segment name, if any.
    pub fn name_ref(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// Read-write access for writers, read-only for collectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Map read-write; needed to record.
    ReadWrite,
    /// Map `PROT_READ`; enough to collect.
    ReadOnly,
}

/// Where a named segment lives.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Backing {
    /// POSIX shared memory, `/dev/shm/<name>` on Linux.
    Shm(CString),
    /// A regular file.
    Path(CString),
}

impl Backing {
    fn parse(name: &str) -> Result<Self> {
        let bad = || Error::InvalidName(name.to_string());
        if name.is_empty() || name.contains('\0') {
            return Err(bad());
        }
        let rest = name.strip_prefix('/').unwrap_or(name);
        if !rest.contains('/') {
            if rest.is_empty() || rest == "." || rest == ".." || rest.len() > 250 {
                return Err(bad());
            }
            return CString::new(format!("/{rest}"))
                .map(Backing::Shm)
                .map_err(|_| bad());
        }
        CString::new(name).map(Backing::Path).map_err(|_| bad())
    }

    fn open(&self, flags: libc::c_int, mode: u32) -> std::io::Result<OwnedFd> {
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: the names are NUL-terminated CStrings that outlive the call.
        let fd = unsafe {
            match self {
                // Apple declares shm_open variadic: the mode travels promoted.
                #[cfg(target_vendor = "apple")]
                Backing::Shm(n) => libc::shm_open(n.as_ptr(), flags, mode as libc::c_uint),
                #[cfg(not(target_vendor = "apple"))]
                Backing::Shm(n) => libc::shm_open(n.as_ptr(), flags, mode as libc::mode_t),
                Backing::Path(p) => libc::open(p.as_ptr(), flags, mode as libc::c_uint),
            }
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by the kernel and is owned by no one else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn unlink(&self) -> std::io::Result<()> {
        // SAFETY: NUL-terminated names that outlive the call.
        let r = unsafe {
            match self {
                Backing::Shm(n) => libc::shm_unlink(n.as_ptr()),
                Backing::Path(p) => libc::unlink(p.as_ptr()),
            }
        };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// A mapped, validated segment.
///
/// Writers record through a [`Stats`](crate::Stats) handle on a read-write
/// segment; collectors read any segment. All access to the mapping is
/// atomic, so any number of threads and processes may share it.
#[derive(Debug)]
pub struct Segment {
    map: Mapping,
    layout: Layout,
    name: Option<String>,
    /// The descriptor the mapping came from; writers' slot locks live on it.
    file: Option<File>,
    /// A separate read-only open file description for asking whether slot
    /// locks are held (a description never conflicts with its own locks).
    probe: Option<File>,
    writable: bool,
}

impl Segment {
    /// Creates a new segment. A named one must not exist yet.
    pub fn create(opts: &SegmentOptions) -> Result<Segment> {
        let shards = match opts.shards {
            Some(n) => n,
            None => possible_cpus().next_power_of_two(),
        };
        let layout = Layout::new(
            shards,
            opts.writer_slots,
            random_id(),
            unix_ns(),
            resolve_write_mode(opts.write_mode, shards)?,
        )?;
        let Some(name) = &opts.name else {
            let map = Mapping::anonymous(layout.segment_size)?;
            let seg = Segment {
                map,
                layout,
                name: None,
                file: None,
                probe: None,
                writable: true,
            };
            series::init_region(&seg.series_region())?;
            layout.to_fields().publish(seg.header_words());
            return Ok(seg);
        };
        let backing = Backing::parse(name)?;
        let fd = backing
            .open(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, opts.mode)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EEXIST) => Error::AlreadyExists(name.clone()),
                _ => Error::io("create segment", e),
            })?;
        let made = (|| {
            // The umask may have cleared bits that were asked for.
            // SAFETY: fd is open; fchmod/ftruncate take no pointers.
            if unsafe { libc::fchmod(fd.as_raw_fd(), opts.mode as libc::mode_t) } < 0 {
                return Err(Error::last_os("set segment mode"));
            }
            // SAFETY: as above.
            if unsafe { libc::ftruncate(fd.as_raw_fd(), layout.segment_size as libc::off_t) } < 0 {
                return Err(Error::last_os("size segment"));
            }
            let map = Mapping::file(fd.as_fd(), layout.segment_size, true)?;
            let probe = backing
                .open(libc::O_RDONLY, 0)
                .map_err(|e| Error::io("open segment for liveness checks", e))?;
            let seg = Segment {
                map,
                layout,
                name: Some(name.clone()),
                file: Some(File::from(fd)),
                probe: Some(File::from(probe)),
                writable: true,
            };
            series::init_region(&seg.series_region())?;
            layout.to_fields().publish(seg.header_words());
            Ok(seg)
        })();
        if made.is_err() {
            let _ = backing.unlink();
        }
        made
    }

    /// Creates the named segment, or attaches read-write if it exists.
    /// Without a name, creates an anonymous segment.
    pub fn open(opts: &SegmentOptions) -> Result<Segment> {
        match Self::create(opts) {
            Err(Error::AlreadyExists(name)) => {
                let wait = opts.init_wait.max(Duration::from_secs(1));
                Self::attach_with(&name, Access::ReadWrite, &opts.clone().init_wait(wait))
            }
            other => other,
        }
    }

    /// Attaches to an existing named segment.
    pub fn attach(name: &str, access: Access) -> Result<Segment> {
        Self::attach_with(name, access, &SegmentOptions::default())
    }

    /// Attaches with options (`allow_foreign_owner`, `init_wait`).
    ///
    /// A segment that is still being created is waited for up to
    /// `init_wait`; after that its state is reported as an error.
    pub fn attach_with(name: &str, access: Access, opts: &SegmentOptions) -> Result<Segment> {
        let backing = Backing::parse(name)?;
        let deadline = Instant::now() + opts.init_wait;
        loop {
            match Self::attach_once(name, &backing, access, opts) {
                Err(e @ (Error::NotInitialized | Error::Truncated { .. })) => {
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                other => return other,
            }
        }
    }

    fn attach_once(
        name: &str,
        backing: &Backing,
        access: Access,
        opts: &SegmentOptions,
    ) -> Result<Segment> {
        let writable = access == Access::ReadWrite;
        let flags = if writable {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        let fd = backing.open(flags, 0).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound(name.to_string()),
            _ => Error::io("open segment", e),
        })?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| Error::io("stat segment", e))?;
        if !meta.file_type().is_file() {
            return Err(Error::BadLayout("segment is not a regular file"));
        }
        {
            use std::os::unix::fs::MetadataExt;
            // SAFETY: geteuid has no preconditions.
            let us = unsafe { libc::geteuid() };
            if meta.uid() != us && !opts.allow_foreign_owner {
                return Err(Error::ForeignOwner {
                    owner: meta.uid(),
                    us,
                });
            }
        }
        let size = meta.len();
        if size < HEADER_SIZE as u64 {
            return Err(Error::Truncated {
                size,
                needed: HEADER_SIZE as u64,
            });
        }
        if size > MAX_SEGMENT_BYTES {
            return Err(Error::BadLayout("file is larger than any valid segment"));
        }
        let map = Mapping::file(file.as_fd(), size as usize, writable)?;
        // SAFETY: the mapping is at least HEADER_SIZE bytes, page-aligned, and
        // only accessed atomically.
        let words = unsafe { &*(map.as_ptr() as *const [AtomicU64; HEADER_WORDS]) };
        let layout = HeaderFields::load(words).validate(size)?;
        if writable {
            check_writer(layout.write_mode, layout.shard_count)?;
        }
        let probe = backing
            .open(libc::O_RDONLY, 0)
            .map_err(|e| Error::io("open segment for liveness checks", e))?;
        Ok(Segment {
            map,
            layout,
            name: Some(name.to_string()),
            file: Some(file),
            probe: Some(File::from(probe)),
            writable,
        })
    }

    /// Removes a named segment. Attached handles keep working; new attaches
    /// fail with [`Error::NotFound`].
    pub fn unlink(name: &str) -> Result<()> {
        Backing::parse(name)?
            .unlink()
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => Error::NotFound(name.to_string()),
                _ => Error::io("unlink segment", e),
            })
    }

    /// The validated geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The random id chosen at creation.
    pub fn id(&self) -> u128 {
        self.layout.segment_id
    }

    /// The name, for named segments.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether the mapping is writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    pub(crate) fn header_words(&self) -> &[AtomicU64; HEADER_WORDS] {
        // SAFETY: every mapping is at least HEADER_SIZE bytes (checked before
        // mapping, or sized by us), page-aligned, and accessed only atomically.
        unsafe { &*(self.map.as_ptr() as *const [AtomicU64; HEADER_WORDS]) }
    }

    /// The per-CPU shards.
    pub(crate) fn shards(&self) -> &[Shard] {
        // SAFETY: validate() checked that shards_offset is 128-aligned and
        // that shard_count * size_of::<Shard>() bytes from it lie inside the
        // mapping (len == segment_size); the memory is only accessed through
        // the atomics inside Shard, which accept any bit pattern.
        unsafe {
            debug_assert!(
                self.layout.shards_offset + self.layout.shard_count * size_of::<Shard>()
                    <= self.map.len()
            );
            std::slice::from_raw_parts(
                self.map.as_ptr().add(self.layout.shards_offset) as *const Shard,
                self.layout.shard_count,
            )
        }
    }

    /// The writer slots.
    pub(crate) fn slots(&self) -> &[WriterSlot] {
        // SAFETY: as for shards(), for the slot region.
        unsafe {
            debug_assert!(
                self.layout.slots_offset + self.layout.slot_count * size_of::<WriterSlot>()
                    <= self.map.len()
            );
            std::slice::from_raw_parts(
                self.map.as_ptr().add(self.layout.slots_offset) as *const WriterSlot,
                self.layout.slot_count,
            )
        }
    }

    /// The labeled-series region.
    pub(crate) fn series_region(&self) -> series::Region<'_> {
        use series::{SeriesEntry, StringEntry, ALLOC_LINE_BYTES};
        let l = &self.layout;
        let base = self.map.as_ptr();
        debug_assert!(l.values_offset + l.shard_count * l.values_per_shard * 8 <= self.map.len());
        // SAFETY: validate() (or Layout::new for our own segments) checked
        // that the series region [series_offset, + series_region_bytes) and
        // the values region [values_offset, + shard_count * values_per_shard
        // * 8) are 128-aligned and inside the mapping; the alloc line,
        // directory and string table are laid out in that order inside the
        // series region. All of it is accessed only through atomics.
        unsafe {
            let series = base.add(l.series_offset);
            let dir = series.add(ALLOC_LINE_BYTES);
            let strings = dir.add(l.series_capacity * size_of::<SeriesEntry>());
            series::Region {
                alloc: &*(series as *const [AtomicU64; 16]),
                dir: std::slice::from_raw_parts(dir as *const SeriesEntry, l.series_capacity),
                strings: std::slice::from_raw_parts(
                    strings as *const StringEntry,
                    l.strings_capacity,
                ),
                values: std::slice::from_raw_parts(
                    base.add(l.values_offset) as *const AtomicU64,
                    l.shard_count * l.values_per_shard,
                ),
                values_per_shard: l.values_per_shard,
            }
        }
    }

    /// Claims a writer slot for this handle and activates it.
    pub(crate) fn claim_slot(&self) -> Result<usize> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        let pid = std::process::id() as u64;
        let slots = self.slots();
        for (i, slot) in slots.iter().enumerate() {
            let claimed = match &self.file {
                None => slot.try_claim_free(),
                Some(f) => lock(f, i, LockOp::TryLock)? && !held_by_this_process(slot),
            };
            if claimed {
                slot.activate(pid, unix_ns());
                return Ok(i);
            }
        }
        Err(Error::NoWriterSlot {
            slots: slots.len() as u32,
        })
    }

    /// Releases a slot claimed by [`claim_slot`](Self::claim_slot).
    pub(crate) fn release_slot(&self, i: usize) {
        if let Some(slot) = self.slots().get(i) {
            slot.release();
            if let Some(f) = &self.file {
                let _ = lock(f, i, LockOp::Unlock);
            }
        }
    }

    /// Whether the writer holding slot `i` is alive. Only meaningful for a
    /// slot whose state is active.
    pub(crate) fn slot_alive(&self, i: usize) -> bool {
        match &self.probe {
            None => true,
            // An error asking is not evidence of death: keep the gauges.
            Some(p) => {
                self.slots().get(i).is_some_and(held_by_this_process)
                    || lock(p, i, LockOp::IsHeld).unwrap_or(true)
            }
        }
    }

    /// Refuses to write this segment unless every add of this process
    /// would be correct (see [`WriteMode`]).
    pub(crate) fn check_writer(&self) -> Result<()> {
        check_writer(self.layout.write_mode, self.layout.shard_count)
    }

    /// Number of slots whose state is active (live or dead).
    pub fn active_slots(&self) -> usize {
        self.slots().iter().filter(|s| s.state() == ACTIVE).count()
    }
}

/// Whether slot `s` is active and was claimed by this process. Only
/// needed where slot locks are POSIX record locks (`F_SETLK`), which belong
/// to the process: they never conflict with the process's own locks, and
/// `F_GETLK` reports its own locks as absent. Linux uses open-file-
/// description locks, which conflict between handles and report them, so
/// there this is false at once (no `getpid` on the collector's path).
fn held_by_this_process(s: &WriterSlot) -> bool {
    !cfg!(target_os = "linux") && s.state() == ACTIVE && s.pid() == u64::from(std::process::id())
}

#[derive(Clone, Copy)]
enum LockOp {
    TryLock,
    Unlock,
    IsHeld,
}

/// Takes, drops or tests the lock byte of writer slot `i`.
fn lock(f: &File, i: usize, op: LockOp) -> Result<bool> {
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = match op {
        LockOp::Unlock => libc::F_UNLCK,
        _ => libc::F_WRLCK,
    } as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = (LOCK_BASE + i as i64) as libc::off_t;
    fl.l_len = 1;
    #[cfg(target_os = "linux")]
    let (set, get) = (libc::F_OFD_SETLK, libc::F_OFD_GETLK);
    #[cfg(not(target_os = "linux"))]
    let (set, get) = (libc::F_SETLK, libc::F_GETLK);
    let cmd = match op {
        LockOp::IsHeld => get,
        _ => set,
    };
    // SAFETY: fd is open for the life of `f`; `fl` is a valid flock that
    // outlives the call.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return match (op, e.raw_os_error()) {
            (LockOp::TryLock, Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
            _ => Err(Error::io("segment slot lock", e)),
        };
    }
    Ok(match op {
        // `l_type` and `F_UNLCK` are `c_short` on some systems, `c_int` on others.
        LockOp::IsHeld => i64::from(fl.l_type) != i64::from(libc::F_UNLCK),
        _ => true,
    })
}

/// Refuses to write a segment in `mode` with `shard_count` shards unless
/// every add of this process would be correct: rseq needs rseq support and
/// a shard for every possible CPU id (a CPU id masked onto another CPU's
/// shard would race with it).
fn check_writer(mode: WriteMode, shard_count: usize) -> Result<()> {
    match mode {
        WriteMode::Atomic => Ok(()),
        WriteMode::Rseq if crate::rseq::supported() && shard_count >= possible_cpus() => Ok(()),
        WriteMode::Rseq => Err(Error::UnsupportedWriteMode(WriteMode::Rseq as u64)),
    }
}

/// The write mode of a new segment with `shards` shards: the explicit
/// choice, else `NODESTATS_WRITE_MODE`, else rseq where it is free to set up
/// and the shards cover every possible CPU.
fn resolve_write_mode(explicit: Option<WriteMode>, shards: usize) -> Result<WriteMode> {
    let chosen = match explicit {
        Some(m) => Some(m),
        None => match std::env::var("NODESTATS_WRITE_MODE") {
            Ok(v) => Some(match v.trim().to_ascii_lowercase().as_str() {
                "atomic" => WriteMode::Atomic,
                "rseq" => WriteMode::Rseq,
                _ => {
                    return Err(Error::Config(format!(
                        "NODESTATS_WRITE_MODE={v:?}: use \"atomic\" or \"rseq\""
                    )))
                }
            }),
            Err(_) => None,
        },
    };
    match chosen {
        Some(WriteMode::Rseq) => {
            let possible = possible_cpus();
            if shards < possible {
                return Err(Error::Config(format!(
                    "rseq write mode needs a shard for every possible CPU id: {shards} shards < {possible} CPUs; use more shards or atomic mode"
                )));
            }
            if !crate::rseq::supported() {
                return Err(Error::Config(
                    "rseq write mode needs Linux x86-64 with glibc >= 2.35; use atomic mode"
                        .to_string(),
                ));
            }
            Ok(WriteMode::Rseq)
        }
        Some(WriteMode::Atomic) => Ok(WriteMode::Atomic),
        None if crate::rseq::registered_by_glibc() && shards >= possible_cpus() => {
            Ok(WriteMode::Rseq)
        }
        None => Ok(WriteMode::Atomic),
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// 128 random bits from the standard library's OS-seeded hasher keys.
fn random_id() -> u128 {
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u64(unix_ns());
        h.write_u32(std::process::id());
        h.finish()
    };
    (word(1) as u128) << 64 | word(2) as u128
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(
            Backing::parse("/x").unwrap(),
            Backing::Shm(CString::new("/x").unwrap())
        );
        assert_eq!(
            Backing::parse("x").unwrap(),
            Backing::Shm(CString::new("/x").unwrap())
        );
        assert_eq!(
            Backing::parse("./a/b").unwrap(),
            Backing::Path(CString::new("./a/b").unwrap())
        );
        for bad in ["", "/", "a\0b", "/..", "."] {
            assert!(
                matches!(Backing::parse(bad), Err(Error::InvalidName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn random_ids_differ() {
        assert_ne!(random_id(), random_id());
    }
}
