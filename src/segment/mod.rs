//! The shared-memory segment: creation, attachment, validation.
//!
//! A segment is one mapping: a header of 32 words at offset 0, then the
//! per-CPU shards, the writer slots, the thread rows and their state
//! words, and the labeled series, all addressed by offsets
//! recorded in the header. It is backed by
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
//! A process with write access can truncate the file after we mapped it.
//! Readers check the size before each read and, on Linux, a SIGBUS guard
//! turns a read that races the truncate into zeros and an error (see
//! `bus`); a writer's store that faults is completed in a private page
//! instead, and the segment reports itself shrunk until the writer's
//! `Stats::maintain` maps a whole segment over the same range (see
//! `successor` and `adopt`, SEGMENT.md §4a).
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

#[cfg(target_os = "linux")]
mod bus;
#[deny(unsafe_code)]
pub(crate) mod families;
mod file;
mod fork;
#[deny(unsafe_code)]
mod header;
#[cfg(all(test, loom))]
#[deny(unsafe_code)]
mod loom;
mod map;
#[deny(unsafe_code)]
pub(crate) mod rows;
#[deny(unsafe_code)]
pub(crate) mod series;
#[deny(unsafe_code)]
pub(crate) mod shard;
#[deny(unsafe_code)]
pub(crate) mod slots;

use crate::cpu::possible_cpus;
use crate::error::{Error, Result};
use crate::sync::AtomicU64;
pub use families::DEFAULT_FAMILIES;
use file::*;
pub use header::{
    Capacities, Layout, WriteMode, DEFAULT_ROW_SERIES_SLOTS, DEFAULT_SERIES, DEFAULT_STRINGS,
    DEFAULT_VALUES_PER_SHARD, HEADER_SIZE, LAYOUT_MAJOR, LAYOUT_MINOR, MAGIC,
};
use header::{HeaderFields, HEADER_WORDS};
use map::Mapping;
use shard::Shard;
use slots::{WriterSlot, ACTIVE};
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Byte offset, far past any segment's end, of writer slot 0's lock byte.
const LOCK_BASE: i64 = 1 << 40;
/// Byte offset of thread row 0's lock byte (past every slot's).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const ROW_LOCK_BASE: i64 = (1 << 40) + (1 << 20);
/// Largest file we are willing to map as a segment.
const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// Default number of writer slots (writer handles alive at once).
pub const DEFAULT_WRITER_SLOTS: usize = 128;
/// Default number of thread rows (thread writers alive at once).
pub const DEFAULT_THREAD_ROWS: usize = 256;
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
    thread_rows: usize,
    row_series_slots: usize,
    allow_foreign_owner: bool,
    init_wait: Duration,
    write_mode: Option<WriteMode>,
    capacities: Capacities,
    livekit_max_series: u32,
    maintain_every: Option<Duration>,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            name: None,
            mode: DEFAULT_MODE,
            shards: None,
            writer_slots: DEFAULT_WRITER_SLOTS,
            thread_rows: DEFAULT_THREAD_ROWS,
            row_series_slots: DEFAULT_ROW_SERIES_SLOTS,
            allow_foreign_owner: false,
            init_wait: DEFAULT_INIT_WAIT,
            write_mode: None,
            capacities: Capacities::default(),
            livekit_max_series: crate::schema::DEFAULT_LIVEKIT_MAX_SERIES,
            maintain_every: None,
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

    /// Number of thread rows of a new segment (default 256, at most 4096):
    /// how many thread writers ([`Stats::thread_writer`]) may be alive at
    /// once across every process. Rows are reused, so this bounds the live
    /// ones, not how many threads ever wrote.
    ///
    /// [`Stats::thread_writer`]: crate::Stats::thread_writer
    pub fn thread_rows(mut self, rows: usize) -> Self {
        self.thread_rows = rows;
        self
    }

    /// Series slots per thread row of a new segment (default
    /// [`DEFAULT_ROW_SERIES_SLOTS`], at most 1024; 16 bytes each per row):
    /// how many value words a thread writer's labeled series keep in its
    /// own row (SEGMENT.md §7a). A counter takes one, a histogram its
    /// bounds + 2, a native histogram its bounds + 4 + twice its span if
    /// they fit (its native buckets are added per CPU otherwise).
    pub fn thread_row_series_slots(mut self, slots: usize) -> Self {
        self.row_series_slots = slots;
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

    /// How many labeled series, label values, value words and declared
    /// families a new segment holds (default [`Capacities::default`]:
    /// 8192 series, 8192 label values, 16 384 value words per block, 128
    /// families). Segment memory grows with them: 64 bytes a series, 72 a
    /// label value, 8 a value word per value block, 2048 a family.
    pub fn capacities(mut self, caps: Capacities) -> Self {
        self.capacities = caps;
        self
    }

    /// The series cap of each of LiveKit's families in a new segment
    /// (default [`DEFAULT_LIVEKIT_MAX_SERIES`](crate::DEFAULT_LIVEKIT_MAX_SERIES);
    /// 0: none). Past it, new label sets of the family are recorded in its
    /// overflow series, so one family cannot fill the directory for all.
    pub fn livekit_max_series(mut self, n: u32) -> Self {
        self.livekit_max_series = n;
        self
    }

    /// Opt in to following the name without any call: a writer opened
    /// with these options ([`Stats::open`](crate::Stats::open)) starts a
    /// background thread (`nodestats-maintain`) that calls
    /// [`Stats::maintain`](crate::Stats::maintain) every `every` (100 ms
    /// is a good value) while any handle of the writer lives; it ends at
    /// its first tick after the last handle is dropped. Errors of a tick
    /// are ignored (the next one tries again). Zero turns it off (the
    /// default). Named segments only; a forked child has no such thread.
    pub fn maintain_every(mut self, every: Duration) -> Self {
        self.maintain_every = (!every.is_zero()).then_some(every);
        self
    }

    /// The interval of [`maintain_every`](Self::maintain_every), if on.
    pub fn maintain_every_ref(&self) -> Option<Duration> {
        self.maintain_every
    }

    /// The segment name, if any.
    pub fn name_ref(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// Whether a mapped segment is still the one at its name ([`Segment::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentStatus {
    /// Anonymous, or the file at the name is this mapping's and whole.
    Current,
    /// Another file is at the name now (the writer restarted and recreated
    /// the segment): this mapping is an orphan that nobody writes.
    Replaced,
    /// Nothing is at the name any more.
    Removed,
    /// The file is smaller than the mapping: reading past its end would
    /// fault, so readers must not read it. For a writer's mapping also:
    /// the file was truncated under it at some point (part of the mapping
    /// is private memory, see [`Segment::is_void`], or the header it was
    /// made with is gone), whatever its size now.
    Shrunk {
        /// Bytes the file has now.
        size: u64,
        /// Bytes the mapping covers.
        needed: u64,
    },
}

/// Read-write access for writers, read-only for collectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Map read-write; needed to record.
    ReadWrite,
    /// Map `PROT_READ`; enough to collect.
    ReadOnly,
}

/// A mapped, validated segment.
///
/// Writers record through a [`Stats`](crate::Stats) handle on a read-write
/// segment; collectors read any segment. All access to the mapping is
/// atomic, so any number of threads and processes may share it.
#[derive(Debug)]
pub struct Segment {
    /// Keeps a read-only mapping's faults from killing the process (see
    /// `bus`). Declared before `map`: unregistered before the unmap.
    #[cfg(target_os = "linux")]
    bus_guard: Option<bus::Guard>,
    map: Mapping,
    layout: Layout,
    name: Option<String>,
    /// The file behind the mapping: replaced as a whole when a writer
    /// follows its name to a new segment (`Stats::maintain`).
    files: RwLock<Files>,
    writable: bool,
    /// The process that mapped it: in a forked child, `file` no longer
    /// holds locks (see `fork`), so nothing may be claimed through it.
    pid: u32,
    /// The mapping's fault count (see `bus`) when the file now behind it
    /// was mapped: more faults than this mean part of a writer's mapping
    /// is private memory (void).
    void_base: AtomicUsize,
    /// Writer handles (`Stats` and their clones count once) made on this
    /// mapping: `Stats::maintain` moves one writer's indices, so it refuses
    /// a mapping two writers share.
    pub(crate) writers: AtomicUsize,
}

/// The open file descriptions of a named segment.
#[derive(Debug, Default)]
struct Files {
    /// Keeps forked children from holding this writer's locks (see
    /// `fork`); writable named segments only. Declared before `file`: it
    /// is unregistered before the descriptor closes.
    fork_guard: Option<fork::Guard>,
    /// The segment file: for a writer, a description of its own that
    /// nothing maps, on which its slot locks live; for a reader, the one
    /// it mapped.
    file: Option<File>,
    /// A separate read-only open file description for asking whether slot
    /// locks are held (a description never conflicts with its own locks).
    probe: Option<File>,
    /// The id of the segment in the file (see [`Segment::id`]).
    id: u128,
}

impl Files {
    /// The description to `fstat`: the probe, else the file.
    fn stat_file(&self) -> Option<&File> {
        self.probe.as_ref().or(self.file.as_ref())
    }
}

impl Segment {
    /// Creates a new segment. A named one must not exist yet.
    ///
    /// The whole segment is reserved on its file system first, so a full
    /// `/dev/shm` is [`Error::NoSpace`] here and never a SIGBUS later. On
    /// Linux it is built unnamed and gets the name only when complete, so a
    /// creator that dies half-way leaves nothing behind; elsewhere it is
    /// built in place and removed if creation fails.
    pub fn create(opts: &SegmentOptions) -> Result<Segment> {
        let layout = Self::new_layout(opts)?;
        let Some(name) = &opts.name else {
            let map = Mapping::anonymous(layout.segment_size)?;
            let seg = Segment {
                #[cfg(target_os = "linux")]
                bus_guard: None,
                map,
                layout,
                name: None,
                files: RwLock::default(),
                writable: true,
                pid: std::process::id(),
                void_base: AtomicUsize::new(0),
                writers: AtomicUsize::new(0),
            };
            seg.init_regions(opts.livekit_max_series)?;
            layout.to_fields().publish(seg.header_words());
            return Ok(seg);
        };
        let backing = Backing::parse(name)?;
        #[cfg(target_os = "linux")]
        {
            let path = backing.path();
            let exists = {
                use std::os::unix::ffi::OsStrExt;
                let p = std::path::Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
                std::fs::symlink_metadata(p).is_ok()
            };
            // Cheap early answer; `link` below is the one that decides.
            if exists {
                return Err(Error::AlreadyExists(name.clone()));
            }
            let (mut draft, seg) = Self::build(name, &backing, layout, opts)?;
            if !draft.link_to(&path, name)? {
                return Err(Error::AlreadyExists(name.clone()));
            }
            Self::with_probe(seg, &backing)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let fd = backing
                .open(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, opts.mode)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::EEXIST) => Error::AlreadyExists(name.clone()),
                    _ => Error::io("create segment", e),
                })?;
            let made = (|| {
                // The umask may have cleared bits that were asked for.
                // SAFETY: fd is open; fchmod takes no pointers.
                if unsafe { libc::fchmod(fd.as_raw_fd(), opts.mode as libc::mode_t) } < 0 {
                    return Err(Error::last_os("set segment mode"));
                }
                let seg = Self::fill(File::from(fd), name, layout, opts.livekit_max_series)?;
                Self::with_probe(seg, &backing)
            })();
            if made.is_err() {
                let _ = backing.unlink();
            }
            made
        }
    }

    /// The geometry of a new segment made with `opts`.
    fn new_layout(opts: &SegmentOptions) -> Result<Layout> {
        let shards = match opts.shards {
            Some(n) => n,
            None => possible_cpus().next_power_of_two(),
        };
        Layout::with_capacities(
            shards,
            opts.writer_slots,
            opts.thread_rows,
            random_id(),
            unix_ns(),
            resolve_write_mode(opts.write_mode, shards)?,
            opts.capacities,
            opts.row_series_slots,
        )
    }

    /// Reserves `file`, maps it and publishes a new segment in it. The
    /// result has no probe yet ([`with_probe`](Self::with_probe)).
    fn fill(file: File, name: &str, layout: Layout, livekit_max_series: u32) -> Result<Segment> {
        reserve(&file, layout.segment_size, name)?;
        let map = Mapping::file(file.as_fd(), layout.segment_size, true)?;
        let seg = Segment {
            #[cfg(target_os = "linux")]
            bus_guard: bus::Guard::new(map.as_ptr(), map.len(), true),
            map,
            layout,
            name: Some(name.to_string()),
            files: RwLock::new(Files {
                file: Some(file),
                ..Files::default()
            }),
            writable: true,
            pid: std::process::id(),
            void_base: AtomicUsize::new(0),
            writers: AtomicUsize::new(0),
        };
        seg.init_regions(livekit_max_series)?;
        layout.to_fields().publish(seg.header_words());
        Ok(seg)
    }

    /// A complete new segment in a [`Draft`] that nobody can see yet.
    #[cfg(target_os = "linux")]
    fn build(
        name: &str,
        backing: &Backing,
        layout: Layout,
        opts: &SegmentOptions,
    ) -> Result<(Draft, Segment)> {
        let draft = Draft::new(backing, opts.mode, name, layout.segment_size as u64)?;
        let file = draft
            .file
            .try_clone()
            .map_err(|e| Error::io("create segment", e))?;
        let seg = Self::fill(file, name, layout, opts.livekit_max_series)?;
        Ok((draft, seg))
    }

    fn with_probe(mut seg: Segment, backing: &Backing) -> Result<Segment> {
        let name = seg.name.as_deref().expect("a named segment has a name");
        let files = seg.files.get_mut().unwrap_or_else(|e| e.into_inner());
        let file = files.file.as_ref().expect("a named segment has a file");
        files.probe = Some(reopen_read_only(file, backing, name)?);
        let locks = reopen(file, backing, name, libc::O_RDWR)?;
        files.fork_guard = fork::Guard::new(locks.as_raw_fd());
        files.file = Some(locks);
        if let Some(p) = &seg.files().probe {
            seg.guard_file(p);
        }
        Ok(seg)
    }

    /// Creates the named segment, or attaches read-write if it exists.
    /// Without a name, creates an anonymous segment.
    ///
    /// On Linux, what a creator that died half-way left at the name (an
    /// empty file, or a header never published) is replaced once
    /// `init_wait` (at least 1 s) has passed: under a lock on that file,
    /// after checking it is still at the name and still unfinished, a new
    /// segment is renamed over it. Writers racing to do the same end on
    /// the same new segment; files that are anything else are never
    /// replaced.
    pub fn open(opts: &SegmentOptions) -> Result<Segment> {
        match Self::create(opts) {
            Err(Error::AlreadyExists(name)) => {
                let wait = opts.init_wait.max(Duration::from_secs(1));
                let opts = opts.clone().init_wait(wait);
                match Self::attach_with(&name, Access::ReadWrite, &opts) {
                    #[cfg(target_os = "linux")]
                    Err(Error::NotInitialized | Error::Truncated { size: 0, .. }) => {
                        Self::replace_stale(&name, &opts)
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// Attaches to the segment at `name` read-write, replacing it first if
    /// it is a dead creator's unfinished one (see [`open`](Self::open)).
    #[cfg(target_os = "linux")]
    fn replace_stale(name: &str, opts: &SegmentOptions) -> Result<Segment> {
        let backing = Backing::parse(name)?;
        let path = backing.path();
        let deadline = Instant::now() + opts.init_wait;
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            match Self::attach_once(name, &backing, Access::ReadWrite, opts) {
                Err(Error::NotInitialized | Error::Truncated { size: 0, .. }) => {}
                Err(Error::NotFound(_)) => match Self::create(opts) {
                    Err(Error::AlreadyExists(_)) => continue,
                    other => return other,
                },
                other => return other,
            }
            let (file, _) = backing.open_existing(name, libc::O_RDWR)?;
            // Whoever holds the lock is replacing this file; once it is
            // let go, the file is no longer at the name and we attach the
            // new one on the next round.
            if try_lock_byte(&file, REPLACE_LOCK)? && is_at(&file, &path)? && is_stale(&file)? {
                let layout = Self::new_layout(opts)?;
                let (mut draft, seg) = Self::build(name, &backing, layout, opts)?;
                draft.rename_to(&path, name)?;
                return Self::with_probe(seg, &backing);
            }
            drop(file);
            if Instant::now() >= deadline {
                return Err(Error::NotInitialized);
            }
            pause(&backoff);
        }
    }

    /// Attaches to an existing named segment.
    pub fn attach(name: &str, access: Access) -> Result<Segment> {
        Self::attach_with(name, access, &SegmentOptions::default())
    }

    /// Attaches with options (`allow_foreign_owner`, `init_wait`).
    ///
    /// A segment that is still being created is waited for up to
    /// `init_wait`; after that its state is reported as an error. Never
    /// blocks on what is at the name: anything but a regular file is
    /// [`Error::NotRegularFile`].
    pub fn attach_with(name: &str, access: Access, opts: &SegmentOptions) -> Result<Segment> {
        let backing = Backing::parse(name)?;
        let deadline = Instant::now() + opts.init_wait;
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            match Self::attach_once(name, &backing, access, opts) {
                Err(e @ (Error::NotInitialized | Error::Truncated { .. })) => {
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    pause(&backoff);
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
        let (file, meta) = backing.open_existing(name, flags)?;
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
        let probe = reopen_read_only(&file, backing, name)?;
        // A writer's locks live on a description nobody maps (see `reopen`).
        let file = if writable {
            reopen(&file, backing, name, libc::O_RDWR)?
        } else {
            file
        };
        let seg = Segment {
            #[cfg(target_os = "linux")]
            bus_guard: bus::Guard::new(map.as_ptr(), map.len(), writable),
            map,
            layout,
            name: Some(name.to_string()),
            files: RwLock::new(Files {
                probe: Some(probe),
                fork_guard: if writable {
                    fork::Guard::new(file.as_raw_fd())
                } else {
                    None
                },
                file: Some(file),
                id: layout.segment_id,
            }),
            writable,
            pid: std::process::id(),
            void_base: AtomicUsize::new(0),
            writers: AtomicUsize::new(0),
        };
        if let Some(p) = &seg.files().probe {
            seg.guard_file(p);
        }
        Ok(seg)
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

    /// Whether this mapping is still the segment at its name, and whole.
    ///
    /// A slow-path check (two `stat`s and an `open`), for collectors before
    /// each read and for writers that want to know whether their segment
    /// was removed or replaced (the SFU restarted, or an operator removed
    /// it); a writer follows the name with
    /// [`Stats::maintain`](crate::Stats::maintain). Anonymous segments are
    /// always [`SegmentStatus::Current`].
    pub fn status(&self) -> Result<SegmentStatus> {
        let files = self.files();
        let (Some(file), Some(name)) = (files.stat_file(), &self.name) else {
            return Ok(SegmentStatus::Current);
        };
        let ours = file.metadata().map_err(|e| Error::io("stat segment", e))?;
        let needed = self.map.len() as u64;
        if ours.len() < needed || self.is_void() || !self.header_intact(&files) {
            return Ok(SegmentStatus::Shrunk {
                size: ours.len(),
                needed,
            });
        }
        use std::os::unix::fs::MetadataExt;
        match Backing::parse(name)?.open_existing(name, libc::O_RDONLY) {
            Ok((_, at_name)) if at_name.dev() == ours.dev() && at_name.ino() == ours.ino() => {
                Ok(SegmentStatus::Current)
            }
            Ok(_) | Err(Error::NotRegularFile(_)) => Ok(SegmentStatus::Replaced),
            Err(Error::NotFound(_)) => Ok(SegmentStatus::Removed),
            Err(e) => Err(e),
        }
    }

    /// How many accesses of this mapping have faulted on a file shrunk
    /// under it and found a private zero page instead (see `bus`); a reader
    /// compares it before and after a read, and discards a read during
    /// which it grew.
    pub(crate) fn faults(&self) -> usize {
        #[cfg(target_os = "linux")]
        return self.bus_guard.as_ref().map_or(0, |g| g.faults());
        #[cfg(not(target_os = "linux"))]
        return 0;
    }

    /// Fails with [`Error::SizeMismatch`] if the file was shrunk under the
    /// mapping: reading past its end would fault. Readers call it before
    /// each read (a `fstat`).
    pub(crate) fn check_size(&self) -> Result<()> {
        let files = self.files();
        let Some(file) = files.stat_file() else {
            return Ok(());
        };
        let size = file
            .metadata()
            .map_err(|e| Error::io("stat segment", e))?
            .len();
        let needed = self.map.len() as u64;
        if size < needed {
            return Err(Error::SizeMismatch {
                header: needed,
                file: size,
            });
        }
        Ok(())
    }

    /// Whether a writer's mapping still shows the header it was made with
    /// (a file truncated and grown again reads zeros there). Readers'
    /// mappings: always (they check the size before each read instead).
    fn header_intact(&self, files: &Files) -> bool {
        if !self.writable || self.name.is_none() {
            return true;
        }
        let w = self.header_words();
        let id = match files.id {
            0 => self.layout.segment_id,
            id => id,
        };
        let lo = w[header::word::SEGMENT_ID_LO].load(Ordering::Relaxed);
        let hi = w[header::word::SEGMENT_ID_HI].load(Ordering::Relaxed);
        w[header::word::MAGIC].load(Ordering::Relaxed) == MAGIC
            && (u128::from(hi) << 64 | u128::from(lo)) == id
    }

    /// Tells the SIGBUS guard of a writer's mapping which file it shows.
    fn guard_file(&self, _file: &File) {
        #[cfg(target_os = "linux")]
        if let (true, Some(g)) = (self.writable, &self.bus_guard) {
            g.set_file(_file.as_raw_fd());
        }
    }

    /// The file descriptions, for reading.
    fn files(&self) -> RwLockReadGuard<'_, Files> {
        self.files.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether part of this (writer's) mapping is private memory since the
    /// file behind it was shrunk (see `bus`): what is recorded there
    /// reaches no collector until `Stats::maintain` maps a segment again.
    pub fn is_void(&self) -> bool {
        self.writable && self.faults() > self.void_base.load(Ordering::Acquire)
    }

    /// Faults absorbed in this writer's mapping since the file behind it
    /// was mapped: recording calls whose page had gone (each fault is one
    /// page of the mapping turned private; later adds to that page fault no
    /// more, so this counts pages, not lost adds).
    pub fn void_faults(&self) -> usize {
        self.faults()
            .saturating_sub(self.void_base.load(Ordering::Acquire))
    }

    /// Options that create a segment of this one's geometry at its name
    /// (what `Stats::maintain` uses for a writer made from a segment
    /// rather than from options).
    pub(crate) fn options(&self) -> SegmentOptions {
        let l = &self.layout;
        let mut o = SegmentOptions::new()
            .shards(l.shard_count)
            .writer_slots(l.slot_count)
            .thread_rows(l.row_count)
            .thread_row_series_slots(l.row_series_slots)
            .write_mode(l.write_mode)
            .capacities(Capacities {
                series: l.series_capacity,
                strings: l.strings_capacity,
                values_per_block: l.values_per_shard,
                families: l.family_capacity,
            });
        if let Some(n) = &self.name {
            o = o.name(n.clone());
        }
        if let Some(f) = self.files().stat_file() {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = f.metadata() {
                o = o.mode(m.permissions().mode() & 0o7777);
            }
        }
        o
    }

    /// Whether the segment at the name is still this mapping's file,
    /// whole, and the mapping has no private pages: one `fstat` and one
    /// `stat` of the name (`Stats::maintain`'s check when nothing changed).
    #[cfg(target_os = "linux")]
    pub(crate) fn is_current(&self) -> Result<bool> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::MetadataExt;
        let files = self.files();
        let (Some(file), Some(name)) = (files.stat_file(), &self.name) else {
            return Ok(true);
        };
        if self.is_void() || !self.header_intact(&files) {
            return Ok(false);
        }
        let ours = file.metadata().map_err(|e| Error::io("stat segment", e))?;
        if ours.len() < self.map.len() as u64 {
            return Ok(false);
        }
        let path = Backing::parse(name)?.path();
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
        Ok(match std::fs::symlink_metadata(path) {
            Ok(m) => m.dev() == ours.dev() && m.ino() == ours.ino(),
            Err(_) => false,
        })
    }

    /// The segment a writer of this one should move to: the one at the
    /// name now (attached read-write, or created with `opts` if nothing is
    /// there; this mapping's own file, shrunk or voided, is replaced by a
    /// new one under the replace lock). Fails unless it has this one's
    /// geometry, since every handle keeps its offsets.
    #[cfg(target_os = "linux")]
    pub(crate) fn successor(&self, opts: &SegmentOptions) -> Result<Segment> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::MetadataExt;
        let name = self.name.as_deref().ok_or(Error::Config(
            "an anonymous segment has no name to follow".into(),
        ))?;
        self.check_not_inherited()?;
        let backing = Backing::parse(name)?;
        let path = backing.path();
        let opts = opts.clone().name(name);
        let ours = {
            let files = self.files();
            let f = files
                .stat_file()
                .ok_or(Error::Config("a named segment has a file".into()))?;
            f.metadata().map_err(|e| Error::io("stat segment", e))?
        };
        let deadline = Instant::now() + opts.init_wait;
        let backoff = crossbeam_utils::Backoff::new();
        let next = loop {
            let at = {
                let p = std::path::Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
                std::fs::symlink_metadata(p).ok()
            };
            let our_file = at
                .as_ref()
                .is_some_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino());
            if !our_file {
                break Segment::open(&opts)?;
            }
            // Our own file is still at the name: whole again and intact
            // (a truncate was undone, or our mapping took faults), map it
            // anew; shrunk or emptied, put a new segment in its place.
            match Self::attach_once(name, &backing, Access::ReadWrite, &opts) {
                Ok(seg) if seg.layout.segment_id == self.id() => break seg,
                _ => {}
            }
            match backing.open_existing(name, libc::O_RDWR) {
                Ok((file, _))
                    if try_lock_byte(&file, REPLACE_LOCK)?
                        && is_at(&file, &path)?
                        && file.metadata().map(|m| m.ino()).ok() == Some(ours.ino()) =>
                {
                    let layout = Self::new_layout(&opts)?;
                    let (mut draft, seg) = Self::build(name, &backing, layout, &opts)?;
                    draft.rename_to(&path, name)?;
                    break Self::with_probe(seg, &backing)?;
                }
                // Someone else is replacing it, or it went: look again.
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(Error::NotInitialized);
            }
            pause(&backoff);
        };
        let same = |l: &Layout| Layout {
            segment_id: 0,
            created_unix_ns: 0,
            ..*l
        };
        if same(&next.layout) != same(&self.layout) || next.map.len() != self.map.len() {
            return Err(Error::Config(format!(
                "the segment now at {name} has another geometry (shards, slots, rows or capacities) than the one this writer mapped; open a new writer on it"
            )));
        }
        Ok(next)
    }

    /// Maps `next`'s file over this mapping (one `mmap(MAP_FIXED)`) and
    /// takes its file descriptions: from now on every pointer into this
    /// mapping reaches `next`'s file. `next` must come from
    /// [`successor`](Self::successor) (same geometry); what it claimed
    /// (slots, rows) stays claimed, through the descriptions taken here.
    #[cfg(target_os = "linux")]
    pub(crate) fn adopt(&self, next: Segment) -> Result<()> {
        let mut next = next;
        let taken = std::mem::take(next.files.get_mut().unwrap_or_else(|e| e.into_inner()));
        {
            let fd = taken
                .file
                .as_ref()
                .ok_or(Error::Config("a named segment has a file".into()))?;
            // Before the switch: a fault of the old mapping absorbed after
            // this counts as void (a spare re-attach by the next maintain),
            // one absorbed in the new mapping always does.
            let base = self.void_base.swap(self.faults(), Ordering::AcqRel);
            if let Err(e) = self.map.remap_file(fd.as_fd()) {
                self.void_base.store(base, Ordering::Release);
                return Err(e);
            }
            self.guard_file(taken.probe.as_ref().unwrap_or(fd));
        }
        let old = std::mem::replace(
            &mut *self.files.write().unwrap_or_else(|e| e.into_inner()),
            Files {
                id: next.layout.segment_id,
                ..taken
            },
        );
        drop(old);
        drop(next);
        Ok(())
    }

    /// The validated geometry.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The random id chosen at creation (of the segment this mapping
    /// shows now: a writer's `maintain` may have moved it to a new one).
    pub fn id(&self) -> u128 {
        match self.files().id {
            0 => self.layout.segment_id,
            id => id,
        }
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

    /// The thread rows.
    pub(crate) fn rows(&self) -> &[rows::Row] {
        // SAFETY: as for shards(), for the row region (validate() checked
        // rows_offset and row_count * size_of::<Row>() against the mapping).
        unsafe {
            debug_assert!(
                self.layout.rows_offset + self.layout.row_count * size_of::<rows::Row>()
                    <= self.map.len()
            );
            std::slice::from_raw_parts(
                self.map.as_ptr().add(self.layout.rows_offset) as *const rows::Row,
                self.layout.row_count,
            )
        }
    }

    /// The thread rows' state words.
    pub(crate) fn row_states(&self) -> &[AtomicU64] {
        // SAFETY: validate() checked that row_states_bytes(row_count) >=
        // row_count * 8 bytes from the 128-aligned row_states_offset lie
        // inside the mapping; accessed only atomically.
        unsafe {
            debug_assert!(
                self.layout.row_states_offset + self.layout.row_count * 8 <= self.map.len()
            );
            std::slice::from_raw_parts(
                self.map.as_ptr().add(self.layout.row_states_offset) as *const AtomicU64,
                self.layout.row_count,
            )
        }
    }

    /// The thread rows' series slots: per row, `row_series_slots` binding
    /// words, then as many value words (empty for segments made before rows
    /// had them).
    pub(crate) fn row_series(&self) -> &[AtomicU64] {
        let l = &self.layout;
        // SAFETY: validate() checked that row_count * row_series_slots * 16
        // bytes from the 128-aligned row_series_offset lie inside the
        // mapping (or that there are none); accessed only atomically.
        unsafe {
            let words = l.row_count * l.row_series_slots * 2;
            debug_assert!(l.row_series_offset + words * 8 <= self.map.len());
            std::slice::from_raw_parts(
                self.map.as_ptr().add(l.row_series_offset) as *const AtomicU64,
                words,
            )
        }
    }

    /// Row `row`'s series slots (see [`row_series`](Self::row_series)).
    pub(crate) fn row_series_of(&self, row: usize) -> &[AtomicU64] {
        let n = self.layout.row_series_slots * 2;
        row.checked_mul(n)
            .and_then(|a| self.row_series().get(a..a.checked_add(n)?))
            .unwrap_or(&[])
    }

    /// Claims a thread row for one thread writer (see [`rows`]).
    ///
    /// Named segments (Linux): the claim holds the row's lock byte
    /// (`ROW_LOCK_BASE + row`) on a new open file description of its own,
    /// so the kernel frees it when the owner closes it or dies, and two
    /// handles of one process exclude each other like two processes do. A
    /// row whose lock can be taken is free or belonged to a dead writer;
    /// under the lock its state word is compare-and-swapped to this
    /// process. Anonymous segments (and named ones elsewhere): the
    /// compare-and-swap alone, taking over rows whose owner process is gone.
    pub(crate) fn claim_row(&self) -> Result<RowClaim> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        let pid = std::process::id();
        let states = self.row_states();
        let full = || Error::NoThreadRow {
            rows: states.len() as u32,
        };
        #[cfg(target_os = "linux")]
        if let (Some(file), Some(name)) = (&self.files().file, &self.name) {
            // From the probe: in a forked child `file` is /dev/null (see
            // `fork`), the probe is still the segment file.
            let own = reopen(
                self.files().probe.as_ref().unwrap_or(file),
                &Backing::parse(name)?,
                name,
                libc::O_RDWR,
            )?;
            for (i, state) in states.iter().enumerate() {
                let at = ROW_LOCK_BASE + i as i64;
                if !try_lock_byte(&own, at)? {
                    continue;
                }
                // Under the lock nobody else may change the state: load it
                // now (a releaser stores FREE before it unlocks).
                let seen = state.load(std::sync::atomic::Ordering::Relaxed);
                if let Some(held) = rows::try_claim(state, seen, pid) {
                    return Ok(RowClaim {
                        row: i,
                        held,
                        _fork_guard: fork::Guard::new(own.as_raw_fd()),
                        lock: Some(own),
                    });
                }
                unlock_byte(&own, at)?;
            }
            return Err(full());
        }
        let (row, held) =
            rows::claim_first(states, pid, |owner| !process_alive(owner)).ok_or_else(full)?;
        Ok(RowClaim {
            row,
            held,
            lock: None,
            _fork_guard: None,
        })
    }

    /// Releases a row claimed by [`claim_row`](Self::claim_row): state back
    /// to FREE (Release), then the lock byte is let go. Its counts stay.
    pub(crate) fn release_row(&self, claim: RowClaim) {
        if let Some(state) = self.row_states().get(claim.row) {
            rows::release(state, claim.held);
        }
        #[cfg(target_os = "linux")]
        if let Some(own) = &claim.lock {
            // Explicitly, not by closing: a forked child may share this
            // open file description and would keep the lock held.
            let _ = unlock_byte(own, ROW_LOCK_BASE + claim.row as i64);
        }
    }

    /// The labeled-series region.
    pub(crate) fn series_region(&self) -> series::Region<'_> {
        use series::{SeriesEntry, StringEntry, ALLOC_LINE_BYTES};
        let l = &self.layout;
        let base = self.map.as_ptr();
        debug_assert!(l.values_offset + l.value_blocks * l.values_per_shard * 8 <= self.map.len());
        // SAFETY: validate() (or Layout::with_capacities for our own segments) checked
        // that the series region [series_offset, + series_region_bytes) and
        // the values region [values_offset, + value_blocks * values_per_shard
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
                    l.value_blocks * l.values_per_shard,
                ),
                values_per_shard: l.values_per_shard,
                writer_slots: l.slot_count,
                row_series: self.row_series(),
                row_series_slots: l.row_series_slots,
                families: self.family_region(),
            }
        }
    }

    /// Writes what a new segment holds before it is published: the LiveKit
    /// families' overflow series and the family directory's control block.
    fn init_regions(&self, livekit_max_series: u32) -> Result<()> {
        series::init_region(&self.series_region())?;
        if let Some(f) = self.family_region() {
            families::init_region(&f, livekit_max_series as u64);
        }
        Ok(())
    }

    /// The family directory region, if the segment has one (layout 2.2).
    pub(crate) fn family_region(&self) -> Option<families::FamilyRegion<'_>> {
        use families::{FamilyEntry, CONTROL_BYTES};
        let l = &self.layout;
        if l.family_capacity == 0 {
            return None;
        }
        debug_assert!(
            l.families_offset + CONTROL_BYTES + l.family_capacity * size_of::<FamilyEntry>()
                <= self.map.len()
        );
        // SAFETY: validate() (or Layout::with_capacities for our own
        // segments) checked that the 128-aligned family region of
        // CONTROL_BYTES + family_capacity * 2048 bytes lies inside the
        // mapping; the control block and the entries are laid out in that
        // order; all of it is accessed only through atomics.
        unsafe {
            let base = self.map.as_ptr().add(l.families_offset);
            Some(families::FamilyRegion {
                control: std::slice::from_raw_parts(base as *const AtomicU64, CONTROL_BYTES / 8),
                entries: std::slice::from_raw_parts(
                    base.add(CONTROL_BYTES) as *const FamilyEntry,
                    l.family_capacity,
                ),
            })
        }
    }

    /// Claims a writer slot for this handle and activates it.
    pub(crate) fn claim_slot(&self) -> Result<usize> {
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        self.check_not_inherited()?;
        let pid = std::process::id() as u64;
        let slots = self.slots();
        let files = self.files();
        for (i, slot) in slots.iter().enumerate() {
            let claimed = match &files.file {
                None => slot.try_claim_free(),
                Some(f) => lock(f, i, LockOp::TryLock)? && !held_by_this_process(slot),
            };
            if claimed {
                let region = self.series_region();
                slot.activate(pid, unix_ns(), || region.zero_slot_gauges(i));
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
            if let Some(f) = &self.files().file {
                let _ = lock(f, i, LockOp::Unlock);
            }
        }
    }

    /// Whether the writer holding slot `i` is alive. Only meaningful for a
    /// slot whose state is active.
    pub(crate) fn slot_alive(&self, i: usize) -> bool {
        match &self.files().probe {
            None => true,
            // An error asking is not evidence of death: keep the gauges.
            Some(p) => {
                self.slots().get(i).is_some_and(held_by_this_process)
                    || lock(p, i, LockOp::IsHeld).unwrap_or(true)
            }
        }
    }

    /// Refuses to claim a writer slot through a segment handle inherited
    /// across `fork`: the child's copy of the lock descriptor was pointed
    /// at `/dev/null` so that it never keeps the parent's locks.
    fn check_not_inherited(&self) -> Result<()> {
        if self.files().file.is_some() && std::process::id() != self.pid {
            return Err(Error::Config(
                "this segment handle was inherited across fork: open a handle of its own in the child (Stats::open / nodestats_open)".into(),
            ));
        }
        Ok(())
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

/// A claimed thread row: which, the state word it holds, and the open file
/// description holding its lock byte (named segments on Linux).
#[derive(Debug)]
pub(crate) struct RowClaim {
    pub(crate) row: usize,
    held: u64,
    /// Keeps a forked child from holding the row's lock (see `fork`).
    /// Declared before `lock`: unregistered before the descriptor closes.
    _fork_guard: Option<fork::Guard>,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    lock: Option<File>,
}

/// Whether process `pid` exists (`kill(pid, 0)`; a process we may not
/// signal exists too). A reused pid looks alive: its row is then kept, never
/// wrongly taken.
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
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
    use std::ffi::CString;

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
