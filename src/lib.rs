//! # nodestats
//!
//! Per-packet counters for media servers (SFUs), shared between threads and
//! processes through a memory segment, merged into LiveKit-compatible
//! [`NodeStats`] with rates.
//!
//! ```text
//!  writers: any threads, any processes          collector (same or other process)
//!  Stats::record_packets(..)  ── shard[cpu] += n ──▶  Collector::update() ─▶ NodeStats { .., rates }
//!  nodestats_record_packets(..)   (no lock, no alloc,     sum shards, live writers' gauges,
//!                                  no syscall, no fail)   system probes, rate windows
//! ```
//!
//! * **Counters** live in per-CPU, 128-byte-aligned [shards](shard) of a
//!   [segment]: each add goes to the current CPU's cache line, so writers
//!   on different CPUs never contend — a non-locked add inside a
//!   restartable sequence ([`rseq`]) on Linux x86-64, a relaxed atomic add
//!   elsewhere; the segment's [`WriteMode`] says which. Counters are
//!   ownerless — what a writer added stays after it dies.
//! * **Gauges** (rooms, clients, tracks) live in per-writer [slots]
//!   and vanish with the writer process, and never report below zero.
//! * The **[collector]** sums shards, reads the system, keeps a bounded
//!   history and computes [rates](rate) on the monotonic clock, treating a
//!   counter decrease or a new segment as a reset.
//!
//! ```
//! use nodestats::{CollectorConfig, Direction, SegmentOptions, Stats};
//! # fn main() -> nodestats::Result<()> {
//! // A writer on an anonymous (in-process) segment; give a name such as
//! // "/sfu-stats" to share it with other processes.
//! let stats = Stats::open(&SegmentOptions::new())?;
//! stats.room_started();
//! stats.participant_added();
//! stats.record_packets(Direction::Incoming, 32, 32 * 1200, false);
//! stats.record_packets(Direction::Outgoing, 2, 2 * 1200, true); // retransmits
//!
//! let mut collector = stats.collector(CollectorConfig::default())?;
//! let ns = collector.update();
//! assert_eq!(ns.packets_in, 32);
//! assert_eq!((ns.packets_out, ns.retransmit_packets_out), (2, 2));
//! assert_eq!((ns.num_rooms, ns.num_clients), (1, 1));
//! println!("{}", serde_json::to_string(&ns).unwrap());
//! # Ok(()) }
//! ```
//!
//! ## Modules
//! * [`segment`] — mapping, header, validation, writer slots' locks.
//! * [`shard`] — per-CPU storage and the hot path's CPU lookup.
//! * [`rseq`] — the restartable-sequence write path (Linux x86-64).
//! * [`slots`] — per-writer gauges and dead-writer handling.
//! * [`stats`] — the recording API ([`Stats`]).
//! * [`collector`] and [`rate`] — [`NodeStats`] and its math.
//! * [`sys`] — CPU, memory, load and network probes.

#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations, rust_2018_idioms, unreachable_pub)]

#[cfg(loom)]
#[doc(hidden)]
pub mod __loom;
pub mod cluster;
pub mod collector;
pub mod error;
pub mod ffi;
pub mod node_stats;
pub mod prom;
mod proto;
pub mod rate;
pub mod rseq;
pub mod segment;
pub mod series;
pub mod shard;
pub mod slots;
pub mod stats;
mod sync;
pub mod sys;

pub use collector::{Collector, CollectorConfig, Timestamp, Totals};
pub use error::{Error, Result};
pub use node_stats::{NodeStats, NodeStatsRate};
pub use prom::families::Family;
pub use segment::{Access, Segment, SegmentOptions, WriteMode};
pub use series::SeriesHandle;
pub use stats::{Direction, Stats, TrackKind};
