//! The status enum, the one `Error` → status `match`, and the panic boundary.

use crate::error::Error;
use std::cell::Cell;
use std::ffi::{c_char, c_int};
use std::panic::{self, AssertUnwindSafe};

/// What a setup function did. Values are fixed: a retired value stays
/// reserved and is never reused.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum nodestats_status {
    /// Success; out-parameters were written.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument is out of range: a bad segment name (empty, not UTF-8,
    /// too long), an unknown enum value, too many rate intervals.
    InvalidArgument = 2,
    /// The named segment does not exist: start a writer first.
    NotFound = 3,
    /// The segment already exists (`NODESTATS_DISPOSITION_CREATE`).
    AlreadyExists = 4,
    /// The segment file is smaller than its header, or than its header says.
    Truncated = 5,
    /// The file is not a nodestats segment (wrong magic).
    BadMagic = 6,
    /// The segment's layout major version is not the one this library reads.
    UnsupportedVersion = 7,
    /// The segment's creator never finished initialising it (it may have died).
    NotInitialized = 8,
    /// The header's segment size differs from the file's size.
    SizeMismatch = 9,
    /// A header field is out of range, misaligned or overlapping.
    BadLayout = 10,
    /// The segment is written in a mode this library cannot write.
    UnsupportedWriteMode = 11,
    /// The segment belongs to another user and that was not allowed.
    ForeignOwner = 12,
    /// Every writer slot of the segment is held by a live writer.
    NoWriterSlot = 13,
    /// The segment is attached read-only and cannot be written.
    ReadOnly = 14,
    /// A configuration value is not usable (shard count, slots, intervals).
    Config = 15,
    /// An operating-system call failed.
    Io = 16,
    /// The caller's buffer is too small; the needed size was reported.
    BufferTooSmall = 17,
    /// The library panicked; this is a bug. The handle stays usable.
    Panic = 18,
    /// The file system has no room for a new segment (`ENOSPC` when it is
    /// reserved at creation; `nodestats_last_os_error` says so).
    NoSpace = 19,
    /// Something other than a regular file (a FIFO, a directory, a device)
    /// is at the segment's name.
    NotRegularFile = 20,
    /// Every thread row of the segment is held by a live thread writer
    /// (`nodestats_thread_open`).
    NoThreadRow = 21,
    /// A family of this name exists with another kind, labels, buckets or
    /// unit (`nodestats_family_declare`), LiveKit's families included.
    FamilyConflict = 22,
    /// Every entry of the segment's family directory is taken.
    FamilyDirectoryFull = 23,
    /// Another live process is declaring the family and has not finished
    /// within the wait: try again.
    FamilyBusy = 24,
    /// No family of this name is known or declared in the segment
    /// (`nodestats_series_open` and friends).
    UnknownFamily = 25,
}

impl From<Error> for nodestats_status {
    fn from(e: Error) -> Self {
        nodestats_status::from(&e)
    }
}

thread_local! {
    /// What `nodestats_last_os_error` reports on this thread.
    static LAST_OS_ERROR: Cell<c_int> = const { Cell::new(0) };
}

/// The OS error number behind `e`, 0 if it is not an OS error.
fn os_error(e: &Error) -> c_int {
    match e {
        Error::Io { source, .. } => source.raw_os_error().unwrap_or(0),
        Error::NoSpace { .. } => libc::ENOSPC,
        _ => 0,
    }
}

impl From<&Error> for nodestats_status {
    /// The one mapping from [`Error`] to status. Exhaustive on purpose: a new
    /// error variant does not compile until it has a status. Also records
    /// the error's OS error number for `nodestats_last_os_error`.
    fn from(e: &Error) -> Self {
        use nodestats_status as S;
        let _ = LAST_OS_ERROR.try_with(|c| c.set(os_error(e)));
        match e {
            Error::Io { .. } => S::Io,
            Error::InvalidName(_) => S::InvalidArgument,
            Error::NotFound(_) => S::NotFound,
            Error::AlreadyExists(_) => S::AlreadyExists,
            Error::Truncated { .. } => S::Truncated,
            Error::BadMagic { .. } => S::BadMagic,
            Error::UnsupportedVersion { .. } => S::UnsupportedVersion,
            Error::NotInitialized => S::NotInitialized,
            Error::SizeMismatch { .. } => S::SizeMismatch,
            Error::BadLayout(_) => S::BadLayout,
            Error::UnsupportedWriteMode(_) => S::UnsupportedWriteMode,
            Error::ForeignOwner { .. } => S::ForeignOwner,
            Error::NoWriterSlot { .. } => S::NoWriterSlot,
            Error::NoThreadRow { .. } => S::NoThreadRow,
            Error::ReadOnly => S::ReadOnly,
            Error::Config(_) => S::Config,
            Error::FixedSeries { .. } => S::InvalidArgument,
            Error::NoSpace { .. } => S::NoSpace,
            Error::NotRegularFile(_) => S::NotRegularFile,
            Error::InvalidFamily(_) => S::InvalidArgument,
            Error::FamilyConflict { .. } => S::FamilyConflict,
            Error::FamilyDirectoryFull { .. } => S::FamilyDirectoryFull,
            Error::FamilyBusy(_) => S::FamilyBusy,
            Error::NoFamilyDirectory => S::UnsupportedVersion,
            Error::UnknownFamily(_) => S::UnknownFamily,
            Error::LabelCount { .. } => S::InvalidArgument,
        }
    }
}

/// A `nodestats_status` as C passes it back: any 32-bit value.
///
/// The header declares this parameter as `nodestats_status`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusArg(pub u32);

/// Runs `f`, turning a panic into [`nodestats_status::Panic`]. The body of
/// [`boundary!`].
pub(crate) fn catch(f: impl FnOnce() -> Result<(), nodestats_status>) -> nodestats_status {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => nodestats_status::Ok,
        Ok(Err(status)) => status,
        Err(_) => nodestats_status::Panic,
    }
}

/// A static, NUL-terminated description of `status`; never NULL. Values
/// this library does not define give `"unknown status"`.
#[no_mangle]
pub extern "C" fn nodestats_status_str(status: StatusArg) -> *const c_char {
    let s: &'static [u8] = match status.0 {
        0 => b"ok\0",
        1 => b"a required pointer argument is NULL\0",
        2 => b"invalid argument (segment name, enum value or count out of range)\0",
        3 => b"segment not found: start a writer first\0",
        4 => b"segment already exists\0",
        5 => b"segment file is truncated\0",
        6 => b"not a nodestats segment (bad magic)\0",
        7 => b"unsupported segment layout version\0",
        8 => b"segment was never fully initialised\0",
        9 => b"segment size differs from its header\0",
        10 => b"corrupt segment header (bad layout)\0",
        11 => b"unsupported segment write mode\0",
        12 => b"segment is owned by another user\0",
        13 => b"no free writer slot in the segment\0",
        14 => b"segment is attached read-only\0",
        15 => b"invalid configuration\0",
        16 => b"operating-system error\0",
        17 => b"buffer too small\0",
        18 => b"internal panic (a bug in nodestats)\0",
        19 => b"no space for the segment on its file system\0",
        20 => b"not a regular file at the segment's name\0",
        21 => b"no free thread row in the segment\0",
        22 => b"a family of this name exists with another kind, labels, buckets or unit\0",
        23 => b"the segment's family directory is full\0",
        24 => b"the family is being declared by another process: try again\0",
        25 => b"no family of this name is declared in the segment\0",
        _ => b"unknown status\0",
    };
    s.as_ptr().cast()
}

/// The operating-system error number (`errno`) behind the last setup call
/// on this thread that failed with `NODESTATS_STATUS_IO` or
/// `NODESTATS_STATUS_NO_SPACE` (`ENOSPC`); 0 if that call failed with
/// another status, or if no call on this thread has failed that way.
/// Successful calls, `NULL_ARGUMENT` and `PANIC` leave it unchanged.
// Exported to C by `#[no_mangle]`; the Rust re-export belongs in
// `ffi/mod.rs` (being reorganised as this lands), hence the allow.
#[allow(unreachable_pub)]
#[no_mangle]
pub extern "C" fn nodestats_last_os_error() -> c_int {
    LAST_OS_ERROR.try_with(Cell::get).unwrap_or(0)
}

/// The library's version, `"MAJOR.MINOR.PATCH"` (static, never NULL).
/// Compare with `NODESTATS_VERSION` to detect a header/library mismatch.
#[no_mangle]
pub extern "C" fn nodestats_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_status_has_its_own_string() {
        let mut seen = std::collections::HashSet::new();
        for v in 0..=nodestats_status::UnknownFamily as u32 {
            // SAFETY: nodestats_status_str returns a static NUL-terminated string.
            let s = unsafe { CStr::from_ptr(nodestats_status_str(StatusArg(v))) };
            assert_ne!(s.to_bytes(), b"unknown status", "status {v}");
            assert!(seen.insert(s.to_owned()), "status {v} repeats {s:?}");
        }
        for v in [26, 1000, u32::MAX] {
            // SAFETY: as above.
            let s = unsafe { CStr::from_ptr(nodestats_status_str(StatusArg(v))) };
            assert_eq!(s.to_bytes(), b"unknown status");
        }
    }

    #[test]
    fn errors_map_to_their_status() {
        use nodestats_status as S;
        let cases = [
            (Error::NotInitialized, S::NotInitialized),
            (Error::ReadOnly, S::ReadOnly),
            (Error::Config("x".into()), S::Config),
            (Error::InvalidName("".into()), S::InvalidArgument),
            (Error::NoWriterSlot { slots: 1 }, S::NoWriterSlot),
            (Error::NoThreadRow { rows: 1 }, S::NoThreadRow),
            (Error::InvalidFamily("x".into()), S::InvalidArgument),
            (
                Error::FamilyConflict {
                    existing: "a".into(),
                    requested: "b".into(),
                },
                S::FamilyConflict,
            ),
            (
                Error::FamilyDirectoryFull { capacity: 1 },
                S::FamilyDirectoryFull,
            ),
            (Error::FamilyBusy("x".into()), S::FamilyBusy),
            (Error::UnknownFamily("x".into()), S::UnknownFamily),
            (std::io::Error::other("x").into(), S::Io),
        ];
        for (e, s) in cases {
            assert_eq!(nodestats_status::from(e), s);
        }
    }

    #[test]
    fn os_errors_are_kept_for_the_thread() {
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        let _ = nodestats_status::from(Error::io("open segment", io));
        assert_eq!(nodestats_last_os_error(), libc::EACCES);
        std::thread::spawn(|| assert_eq!(nodestats_last_os_error(), 0))
            .join()
            .unwrap();
        let no_space = Error::NoSpace {
            path: "/x".into(),
            needed: 1,
        };
        assert_eq!(nodestats_status::from(no_space), nodestats_status::NoSpace);
        assert_eq!(nodestats_last_os_error(), libc::ENOSPC);
        let _ = nodestats_status::from(Error::NotFound("/x".into()));
        assert_eq!(nodestats_last_os_error(), 0);
    }

    #[test]
    fn a_panic_becomes_a_status() {
        let s = catch(|| panic!("expected panic: testing the boundary"));
        assert_eq!(s, nodestats_status::Panic);
    }
}
