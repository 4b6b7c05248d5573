//! The one error type of every setup path (open, attach, configure).
//!
//! The hot path has no error type: recording cannot fail.

use std::fmt;
use std::io;

/// Why a segment could not be created or attached, or a collector configured.
///
/// Every message says what was found and what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The segment name is not usable.
    InvalidName(String),
    /// The named segment does not exist.
    NotFound(String),
    /// A segment of that name already exists (on create-only).
    AlreadyExists(String),
    /// The file is smaller than a header, or smaller than its header says.
    Truncated {
        /// Bytes found.
        size: u64,
        /// Bytes needed.
        needed: u64,
    },
    /// The file does not start with the nodestats magic.
    BadMagic {
        /// The first eight bytes found.
        found: u64,
    },
    /// The header's layout major version is not the one this library reads.
    UnsupportedVersion {
        /// Major version found in the segment.
        found: u64,
        /// Major version this library reads.
        supported: u64,
    },
    /// The creator never finished initialising the segment (it may have died).
    NotInitialized,
    /// The header's segment size differs from the file's size.
    SizeMismatch {
        /// Size recorded in the header.
        header: u64,
        /// Size of the file.
        file: u64,
    },
    /// A header field is out of range, misaligned or overlaps another region.
    BadLayout(&'static str),
    /// The segment is written in a mode this writer cannot use.
    UnsupportedWriteMode(u64),
    /// The segment is owned by another user and that was not allowed.
    ForeignOwner {
        /// Owner of the segment.
        owner: u32,
        /// Our effective uid.
        us: u32,
    },
    /// Every writer slot of the segment is held by a live writer.
    NoWriterSlot {
        /// Number of slots in the segment.
        slots: u32,
    },
    /// Every thread row of the segment is held by a live thread writer.
    NoThreadRow {
        /// Number of rows in the segment.
        rows: u32,
    },
    /// The segment was attached read-only and cannot be written.
    ReadOnly,
    /// A configuration value is not usable.
    Config(String),
    /// A labeled series that the fixed counters and gauges already export
    /// (see [`Family::duplicates_fixed`](crate::Family::duplicates_fixed)).
    FixedSeries {
        /// The family's metric name.
        family: &'static str,
    },
    /// The file system holding a new segment has no room for all of it.
    /// Segments are reserved in full at creation, so this is the only
    /// place running out of space shows: never as a SIGBUS later.
    NoSpace {
        /// The segment's name.
        path: String,
        /// Bytes the segment needs.
        needed: u64,
    },
    /// Something other than a regular file (a FIFO, a directory, a device,
    /// a socket) is at the segment's name.
    NotRegularFile(String),
    /// A family declaration breaks Prometheus' naming rules or this
    /// library's limits (the message says which).
    InvalidFamily(String),
    /// A family of this name exists with another kind, labels, buckets or
    /// unit.
    FamilyConflict {
        /// The family as it exists.
        existing: String,
        /// The family as this declaration asked for it.
        requested: String,
    },
    /// Every entry of the segment's family directory is taken.
    FamilyDirectoryFull {
        /// Entries the directory holds.
        capacity: u32,
    },
    /// Another live declarer has held the family's entry unpublished past
    /// the wait: try again.
    FamilyBusy(String),
    /// The segment was made by a nodestats without a family directory
    /// (layout before 2.2): it cannot hold declared families.
    NoFamilyDirectory,
    /// No family of this name is known or declared in the segment.
    UnknownFamily(String),
    /// A series was opened with another number of label values than its
    /// family has label names.
    LabelCount {
        /// The family's metric name.
        family: String,
        /// Label names of the family.
        expected: usize,
        /// Label values given.
        got: usize,
    },
}

impl Error {
    pub(crate) fn io(context: &'static str, source: io::Error) -> Self {
        Error::Io { context, source }
    }

    pub(crate) fn last_os(context: &'static str) -> Self {
        Error::io(context, io::Error::last_os_error())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::InvalidFamily(m) => write!(f, "invalid family: {m}"),
            Error::LabelCount {
                family,
                expected,
                got,
            } => write!(
                f,
                "{family} takes {expected} label values, in the order of its label names; got {got}"
            ),
            Error::FamilyConflict { existing, requested } => write!(
                f,
                "family conflict: {existing} exists; {requested} was declared (declare the same kind, labels, buckets and unit, or use another name)"
            ),
            Error::FamilyDirectoryFull { capacity } => write!(
                f,
                "the segment's family directory is full ({capacity} families): create the segment with a larger family capacity"
            ),
            Error::FamilyBusy(n) => write!(
                f,
                "family {n:?} is being declared by another live process that has not finished: try again"
            ),
            Error::NoFamilyDirectory => write!(
                f,
                "the segment has no family directory (made before layout 2.2): recreate it with this nodestats to declare families"
            ),
            Error::UnknownFamily(n) => write!(
                f,
                "no family {n:?}: declare it first (any process attached to the segment may)"
            ),
            Error::InvalidName(n) => write!(
                f,
                "invalid segment name {n:?}: use \"/name\" for /dev/shm or a file path containing '/'"
            ),
            Error::NotFound(n) => write!(f, "segment {n:?} does not exist: start a writer first"),
            Error::AlreadyExists(n) => {
                write!(f, "segment {n:?} already exists: attach to it or remove it")
            }
            Error::Truncated { size, needed } => write!(
                f,
                "segment is truncated: {size} bytes, at least {needed} needed (remove it and let a writer recreate it)"
            ),
            Error::BadMagic { found } => write!(
                f,
                "not a nodestats segment (magic {found:#018x}); check the name"
            ),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "segment layout version {found} is not supported (this library reads version {supported}); use a matching nodestats build"
            ),
            Error::NotInitialized => write!(
                f,
                "segment was never fully initialised (its creator may have died); remove it and let a writer recreate it"
            ),
            Error::SizeMismatch { header, file } => write!(
                f,
                "segment header says {header} bytes but the file has {file}; it was resized or corrupted"
            ),
            Error::BadLayout(what) => write!(f, "corrupt segment header: {what}"),
            Error::UnsupportedWriteMode(1) => write!(
                f,
                "segment write mode 1 (rseq) cannot be written by this process: it needs Linux x86-64, glibc >= 2.35, rseq registration for the writing thread and a shard for every possible CPU id; attach read-only, or recreate the segment in atomic mode (SegmentOptions::write_mode or NODESTATS_WRITE_MODE=atomic)"
            ),
            Error::UnsupportedWriteMode(m) => write!(
                f,
                "segment write mode {m} is not supported by this library version; use a matching nodestats build"
            ),
            Error::ForeignOwner { owner, us } => write!(
                f,
                "segment is owned by uid {owner}, not by us (uid {us}); allow foreign owners explicitly if this is intended"
            ),
            Error::NoWriterSlot { slots } => write!(
                f,
                "all {slots} writer slots are held by live writers; create the segment with more slots"
            ),
            Error::NoThreadRow { rows } => write!(
                f,
                "all {rows} thread rows are held by live thread writers; close thread writers of threads that are done, use the per-CPU Stats calls for short-lived threads, or create the segment with more thread rows"
            ),
            Error::ReadOnly => write!(f, "segment is attached read-only"),
            Error::Config(msg) => write!(f, "invalid configuration: {msg}"),
            Error::FixedSeries { family } => write!(
                f,
                "this {family} series is exported by the fixed counters already; record it through the fixed call (e.g. record_packets for an empty country)"
            ),
            Error::NoSpace { path, needed } => write!(
                f,
                "no space for segment {path:?}: it needs {needed} bytes; free space on its file system (for /dev/shm: remove stale segments or enlarge the tmpfs) or use fewer shards or slots"
            ),
            Error::NotRegularFile(path) => write!(
                f,
                "{path:?} is not a regular file (a FIFO, directory, device or socket); remove it or choose another segment name"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(source: io::Error) -> Self {
        Error::io("i/o", source)
    }
}

/// Shorthand for results of setup paths.
pub type Result<T> = std::result::Result<T, Error>;
