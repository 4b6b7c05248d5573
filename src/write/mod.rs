//! Writers: the recording API and everything it needs.
//!
//! * [`Stats`] — a writer handle: fixed counters per CPU, gauges in this
//!   writer's slot, and LiveKit's labeled recording calls.
//! * [`ThreadStats`] — a thread writer: a row of counters in the segment
//!   that only its thread writes, with plain loads and stores (for
//!   long-lived, pinned worker threads; see `thread` for when to use which).
//! * [`SeriesHandle`] — a resolved labeled series, recorded without lookup.
//! * `adder` — the one per-CPU adder that fixed counters and series
//!   handles share (rseq sections or relaxed `fetch_add`).
//! * `follow` — [`Stats::maintain`]: moving a writer and every handle made
//!   from it to the segment now at its name.
//!
//! Writers never import the read side.
//!
//! # Safety
//!
//! Writer handles hold raw pointers into the segment's mapping (the shard
//! array, their writer slot, the series value blocks). They are sound
//! because every handle keeps an `Arc<Segment>` that owns the mapping, every
//! index is masked or bounded by the validated layout before it is added to
//! a pointer, and the memory is only written through atomics or rseq
//! sections (see `rseq`), in the one mode the segment was created with.
//! `maintain` maps another file over the same range only after checking it
//! has the same geometry (every offset and bound the same), so the
//! pointers stay in bounds; what is indexed per writer (slot, rows, series
//! bases) is read through the writer's cells, which it re-points.
//!
//! A thread writer's row is the exception to "only through atomics or
//! rseq" in spirit only: it is written with relaxed atomic loads and stores
//! by its one owner. Its row pointer lives in a cell of a private
//! `mmap`ed page marked wipe-on-fork; cells are handed out once at a time
//! (an atomic flag per cell) and read only by the owning thread, so a
//! forked child reads a null row instead of its parent's.

// In the order `Stats`' documentation shows its methods: opening and
// recording, then declared families and series, then thread writers, and
// LiveKit's recording calls last.
mod stats;

#[deny(unsafe_code)]
mod declared;

mod series;

pub(crate) mod thread;

#[deny(unsafe_code)]
mod livekit;

mod adder;
#[deny(unsafe_code)]
mod cache;
#[deny(unsafe_code)]
mod family;
mod follow;
#[cfg(feature = "metrics")]
#[deny(unsafe_code)]
mod recorder;
mod writer;

pub use declared::DeclaredFamily;
#[cfg(feature = "metrics")]
pub use recorder::MetricsRecorder;
pub use series::SeriesHandle;
pub use stats::Stats;
pub use thread::{ThreadSeries, ThreadStats};
