//! The segment's backing file: names, opening without blocking, reserving
//! every byte at creation, building a new segment out of sight (a
//! [`Draft`]), and the `fcntl` byte locks that writer slots, thread rows
//! and replacements hold.

// Building out of sight, replacing and the probes are Linux's; elsewhere
// some of these imports go unused.
#![cfg_attr(not(target_os = "linux"), allow(unused_imports))]

use super::header::{HeaderFields, HEADER_SIZE, HEADER_WORDS};
use super::map::Mapping;
use super::{random_id, LOCK_BASE, MAX_SEGMENT_BYTES};
use crate::error::{Error, Result};
use crate::sync::AtomicU64;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Where a named segment lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Backing {
    /// POSIX shared memory, `/dev/shm/<name>` on Linux.
    Shm(CString),
    /// A regular file.
    Path(CString),
}

impl Backing {
    pub(super) fn parse(name: &str) -> Result<Self> {
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

    /// Opens the object at the name. Never blocks, whatever is there: a
    /// FIFO or a device opens at once (`O_NONBLOCK`) and never becomes our
    /// controlling terminal (`O_NOCTTY`); a symlink is refused.
    pub(super) fn open(&self, flags: libc::c_int, mode: u32) -> std::io::Result<OwnedFd> {
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
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

    /// Opens the existing segment file at the name (`flags`: `O_RDONLY` or
    /// `O_RDWR`), refusing anything but a regular file.
    pub(super) fn open_existing(
        &self,
        name: &str,
        flags: libc::c_int,
    ) -> Result<(File, std::fs::Metadata)> {
        let fd = self.open(flags, 0).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound(name.to_string()),
            // A directory opened for writing; a socket or a FIFO without a
            // reader.
            Some(libc::EISDIR | libc::ENXIO) => Error::NotRegularFile(name.to_string()),
            _ => Error::io("open segment", e),
        })?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| Error::io("stat segment", e))?;
        if !meta.file_type().is_file() {
            return Err(Error::NotRegularFile(name.to_string()));
        }
        Ok((file, meta))
    }

    /// The file-system path of the name: `/dev/shm/<name>` for a POSIX
    /// shared-memory name (where glibc and musl keep them).
    #[cfg(target_os = "linux")]
    pub(super) fn path(&self) -> CString {
        match self {
            Backing::Shm(n) => {
                let mut p = b"/dev/shm".to_vec();
                p.extend_from_slice(n.as_bytes());
                CString::new(p).expect("no NUL in a parsed name")
            }
            Backing::Path(p) => p.clone(),
        }
    }

    /// The directory of [`path`](Self::path) and the last component.
    #[cfg(target_os = "linux")]
    pub(super) fn dir_and_leaf(&self) -> (CString, Vec<u8>) {
        let p = self.path();
        let bytes = p.as_bytes();
        let (dir, leaf) = match bytes.iter().rposition(|&b| b == b'/') {
            Some(0) => (&b"/"[..], &bytes[1..]),
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (&b"."[..], bytes),
        };
        (
            CString::new(dir).expect("no NUL in a parsed name"),
            leaf.to_vec(),
        )
    }

    pub(super) fn unlink(&self) -> std::io::Result<()> {
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

/// Byte of a segment file whose lock (an OFD lock on Linux) a writer holds
/// while it replaces a stale file at the name: just below writer slot 0's.
#[cfg(target_os = "linux")]
pub(super) const REPLACE_LOCK: i64 = LOCK_BASE - 1;

/// Gives `file` all `len` bytes it will ever use, so that no later touch of
/// the mapping, by a writer or a reader, can find the file system full (a
/// sparse page of a full tmpfs faults with SIGBUS on first touch).
///
/// Linux: `posix_fallocate`. Where the file system does not support it, and
/// on other systems, the file is sized and every page written with zeros
/// (`pwrite`), which allocates it just as well. Where even that is refused
/// (a macOS shared-memory object takes neither), the segment stays sized by
/// `ftruncate` alone, and its pages are allocated on first touch.
pub(super) fn reserve(file: &File, len: usize, name: &str) -> Result<()> {
    let no_space = || Error::NoSpace {
        path: name.to_string(),
        needed: len as u64,
    };
    let fd = file.as_raw_fd();
    #[cfg(target_os = "linux")]
    {
        // SAFETY: fd is open for the life of `file`; no pointers.
        match unsafe { libc::posix_fallocate(fd, 0, len as libc::off_t) } {
            0 => return Ok(()),
            libc::ENOSPC => return Err(no_space()),
            libc::EOPNOTSUPP | libc::EINVAL => {}
            e => {
                return Err(Error::io(
                    "reserve segment",
                    std::io::Error::from_raw_os_error(e),
                ))
            }
        }
    }
    // SAFETY: as above.
    if unsafe { libc::ftruncate(fd, len as libc::off_t) } < 0 {
        return Err(Error::last_os("size segment"));
    }
    let page = [0u8; 4096];
    for off in (0..len).step_by(page.len()) {
        let n = page.len().min(len - off);
        // SAFETY: `page` is valid for reading `n <= page.len()` bytes.
        let r = unsafe { libc::pwrite(fd, page.as_ptr().cast(), n, off as libc::off_t) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOSPC) => Err(no_space()),
                _ if off == 0 => Ok(()),
                _ => Err(Error::io("reserve segment", e)),
            };
        }
    }
    Ok(())
}

/// Whether `file` is what a creator that died half-way leaves: empty (it
/// died before sizing), or a header whose init word was never published.
/// Anything else, garbage included, is not ours to replace.
#[cfg(target_os = "linux")]
pub(super) fn is_stale(file: &File) -> Result<bool> {
    let size = file
        .metadata()
        .map_err(|e| Error::io("stat segment", e))?
        .len();
    if size == 0 {
        return Ok(true);
    }
    if size < HEADER_SIZE as u64 || size > MAX_SEGMENT_BYTES {
        return Ok(false);
    }
    let map = Mapping::file(file.as_fd(), HEADER_SIZE, false)?;
    // SAFETY: the mapping is HEADER_SIZE bytes, page-aligned, and only
    // accessed atomically.
    let words = unsafe { &*(map.as_ptr() as *const [AtomicU64; HEADER_WORDS]) };
    Ok(matches!(
        HeaderFields::load(words).validate(size),
        Err(Error::NotInitialized)
    ))
}

/// Whether `file` is the object at `path` now (same device and inode).
#[cfg(target_os = "linux")]
pub(super) fn is_at(file: &File, path: &CString) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let ours = file.metadata().map_err(|e| Error::io("stat segment", e))?;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(m.dev() == ours.dev() && m.ino() == ours.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("stat segment", e)),
    }
}

/// A second, read-only open file description of `file` (whose slot locks
/// it can then query): see [`reopen`].
pub(super) fn reopen_read_only(file: &File, backing: &Backing, name: &str) -> Result<File> {
    reopen(file, backing, name, libc::O_RDONLY)
}

/// A new open file description of `file`: through `/proc/self/fd` where
/// mounted, which is the same file whatever happens to the name; else by
/// the name. Writers hold their slot locks on such a description rather
/// than on the one they mapped: a mapping keeps its description alive, and
/// with it any lock on it, for as long as any process (a forked child
/// included) maps it.
pub(super) fn reopen(
    file: &File,
    backing: &Backing,
    name: &str,
    flags: libc::c_int,
) -> Result<File> {
    #[cfg(target_os = "linux")]
    {
        let proc = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .expect("no NUL in a number");
        let all = flags | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
        // SAFETY: a NUL-terminated path that outlives the call.
        let fd = unsafe { libc::open(proc.as_ptr(), all) };
        if fd >= 0 {
            // SAFETY: fd was just returned by the kernel and is owned by no one else.
            return Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    match backing.open_existing(name, flags) {
        Ok((f, _)) => Ok(f),
        Err(Error::Io { source, .. }) => Err(Error::io("reopen segment", source)),
        Err(e) => Err(e),
    }
}

/// One step of a bounded wait for another process: spin and yield a few
/// times (a creator that is nearly done), then sleep 2 ms per step.
pub(super) fn pause(backoff: &crossbeam_utils::Backoff) {
    if backoff.is_completed() {
        std::thread::sleep(Duration::from_millis(2));
    } else {
        backoff.snooze();
    }
}

/// A new segment file being built where no one looks for segments: an
/// unnamed `O_TMPFILE` in the name's directory, or where the file system
/// has none, a hidden temporary name there (`.<name>.<pid>.<random>`,
/// removed on drop). It gets the name only complete, by `link` (a new
/// segment) or `rename` (replacing a stale one), so a creator that dies
/// half-way leaves nothing at the name, and with `O_TMPFILE` nothing at all.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(super) struct Draft {
    pub(super) file: File,
    /// The draft's temporary name, while it has one.
    pub(super) temp: Option<CString>,
    pub(super) dir: CString,
    pub(super) leaf: Vec<u8>,
    /// The segment's size, for [`Error::NoSpace`].
    pub(super) needed: u64,
}

#[cfg(target_os = "linux")]
impl Draft {
    pub(super) fn new(backing: &Backing, mode: u32, name: &str, needed: u64) -> Result<Draft> {
        let (dir, leaf) = backing.dir_and_leaf();
        if leaf.is_empty() {
            return Err(Error::InvalidName(name.to_string()));
        }
        let flags = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;
        // SAFETY: a NUL-terminated path that outlives the call.
        let fd = unsafe { libc::open(dir.as_ptr(), flags, mode as libc::c_uint) };
        let draft = if fd >= 0 {
            Draft {
                // SAFETY: fd was just returned by the kernel, owned by no one else.
                file: File::from(unsafe { OwnedFd::from_raw_fd(fd) }),
                temp: None,
                dir,
                leaf,
                needed,
            }
        } else {
            let e = std::io::Error::last_os_error();
            if !matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) {
                return Err(Draft::error(e, name, needed));
            }
            Draft::named(dir, leaf, mode, name, needed)?
        };
        // The umask may have cleared bits that were asked for.
        // SAFETY: fd is open; fchmod takes no pointers.
        if unsafe { libc::fchmod(draft.file.as_raw_fd(), mode as libc::mode_t) } < 0 {
            return Err(Error::last_os("set segment mode"));
        }
        Ok(draft)
    }

    pub(super) fn error(e: std::io::Error, name: &str, needed: u64) -> Error {
        match e.raw_os_error() {
            Some(libc::ENOSPC) => Error::NoSpace {
                path: name.to_string(),
                needed,
            },
            _ => Error::io("create segment", e),
        }
    }

    /// A fresh hidden name next to the final one.
    pub(super) fn temp_name(dir: &CString, leaf: &[u8]) -> CString {
        let mut p = dir.as_bytes().to_vec();
        p.extend_from_slice(b"/.");
        p.extend_from_slice(leaf);
        let tail = format!(".{}.{:016x}", std::process::id(), random_id() as u64);
        p.extend_from_slice(tail.as_bytes());
        CString::new(p).expect("no NUL in a parsed name")
    }

    /// A draft under a hidden temporary name, for file systems without
    /// `O_TMPFILE`.
    pub(super) fn named(
        dir: CString,
        leaf: Vec<u8>,
        mode: u32,
        name: &str,
        needed: u64,
    ) -> Result<Draft> {
        loop {
            let t = Draft::temp_name(&dir, &leaf);
            let flags =
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            // SAFETY: a NUL-terminated path that outlives the call.
            let fd = unsafe { libc::open(t.as_ptr(), flags, mode as libc::c_uint) };
            if fd >= 0 {
                return Ok(Draft {
                    // SAFETY: fd was just returned by the kernel, owned by no one else.
                    file: File::from(unsafe { OwnedFd::from_raw_fd(fd) }),
                    temp: Some(t),
                    dir,
                    leaf,
                    needed,
                });
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(Draft::error(e, name, needed));
            }
        }
    }

    /// Gives the draft the name `path` unless something is there already
    /// (then false).
    pub(super) fn link_to(&mut self, path: &CString, name: &str) -> Result<bool> {
        let r = match &self.temp {
            // SAFETY: NUL-terminated paths that outlive the call.
            Some(t) => unsafe { libc::link(t.as_ptr(), path.as_ptr()) },
            None => self.link_unnamed(path),
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EEXIST) => Ok(false),
                _ => Err(Draft::error(e, name, self.needed)),
            };
        }
        Ok(true)
    }

    /// `linkat` of the unnamed file to `path`: through `/proc/self/fd`,
    /// else `AT_EMPTY_PATH` (which older kernels allow only with
    /// `CAP_DAC_READ_SEARCH`).
    pub(super) fn link_unnamed(&self, path: &CString) -> libc::c_int {
        let fd = self.file.as_raw_fd();
        let proc = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number");
        // SAFETY: NUL-terminated paths that outlive the call.
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc.as_ptr(),
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT) {
            return r;
        }
        // SAFETY: as above; the empty path is NUL-terminated.
        unsafe {
            libc::linkat(
                fd,
                c"".as_ptr(),
                libc::AT_FDCWD,
                path.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        }
    }

    /// Atomically puts the draft at `path`, replacing what is there.
    pub(super) fn rename_to(&mut self, path: &CString, name: &str) -> Result<()> {
        while self.temp.is_none() {
            let t = Draft::temp_name(&self.dir, &self.leaf);
            if self.link_to(&t, name)? {
                self.temp = Some(t);
            }
        }
        let t = self.temp.as_ref().expect("named above");
        // SAFETY: NUL-terminated paths that outlive the call.
        if unsafe { libc::rename(t.as_ptr(), path.as_ptr()) } < 0 {
            return Err(Error::last_os("replace stale segment"));
        }
        self.temp = None;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
impl Drop for Draft {
    fn drop(&mut self) {
        if let Some(t) = &self.temp {
            // SAFETY: a NUL-terminated path that outlives the call.
            unsafe { libc::unlink(t.as_ptr()) };
        }
    }
}

#[derive(Clone, Copy)]
pub(super) enum LockOp {
    TryLock,
    Unlock,
    IsHeld,
}

/// Takes, drops or tests the lock byte of writer slot `i`.
pub(super) fn lock(f: &File, i: usize, op: LockOp) -> Result<bool> {
    lock_byte(f, LOCK_BASE + i as i64, op)
}

/// Tries to take the write lock on byte `at` of `f`.
#[cfg(target_os = "linux")]
pub(super) fn try_lock_byte(f: &File, at: i64) -> Result<bool> {
    lock_byte(f, at, LockOp::TryLock)
}

/// Drops this open file description's lock on byte `at` of `f`.
#[cfg(target_os = "linux")]
pub(super) fn unlock_byte(f: &File, at: i64) -> Result<()> {
    lock_byte(f, at, LockOp::Unlock).map(drop)
}

/// Takes, drops or tests the write lock on byte `at` of `f`: an OFD lock
/// on Linux (it belongs to this open file description and goes with it),
/// a POSIX record lock elsewhere. The one place that speaks `fcntl` locks.
pub(super) fn lock_byte(f: &File, at: i64, op: LockOp) -> Result<bool> {
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = match op {
        LockOp::Unlock => libc::F_UNLCK,
        _ => libc::F_WRLCK,
    } as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = at as libc::off_t;
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
            _ => Err(Error::io("segment lock", e)),
        };
    }
    Ok(match op {
        // `l_type` and `F_UNLCK` are `c_short` on some systems, `c_int` on others.
        LockOp::IsHeld => i64::from(fl.l_type) != i64::from(libc::F_UNLCK),
        _ => true,
    })
}
