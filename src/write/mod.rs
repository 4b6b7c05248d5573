//! Writers: the recording API and everything it needs.
//!
//! * [`Stats`] — a writer handle: fixed counters per CPU, gauges in this
//!   writer's slot, and LiveKit's labeled recording calls.
//! * [`SeriesHandle`] — a resolved labeled series, recorded without lookup.
//! * `adder` — the one per-CPU adder that fixed counters and series
//!   handles share (rseq sections or relaxed `fetch_add`).
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

mod adder;
#[deny(unsafe_code)]
mod livekit;
mod series;
mod stats;

pub use series::SeriesHandle;
pub use stats::Stats;
