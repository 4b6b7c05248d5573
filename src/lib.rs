//! # nodestats
//!
//! Per-packet counters for media servers (SFUs), shared between threads and
//! processes through a memory segment, merged into LiveKit-compatible
//! [`NodeStats`] with rates and exported to Prometheus.
//!
//! ```text
//!  writers: any threads, any processes          collector (same or other process)
//!  Stats::record_packets(..)  ── shard[cpu] += n ──▶  Collector::update() ─▶ NodeStats { .., rates }
//!  nodestats_record_packets(..)   (no lock, no alloc,     sum shards, live writers' gauges,
//!                                  no syscall, no fail)   system probes, rate windows
//! ```
//!
//! * **Counters** live in per-CPU, 128-byte-aligned shards of a
//!   [`Segment`]: each add goes to the current CPU's cache line, so writers
//!   on different CPUs never contend — a non-locked add inside a
//!   restartable sequence on Linux x86-64, a relaxed atomic add elsewhere;
//!   the segment's [`WriteMode`] says which. Counters are ownerless — what
//!   a writer added stays after it dies.
//! * **Thread rows**: a long-lived worker thread can instead claim a row
//!   of its own in the segment ([`Stats::thread_writer`] → [`ThreadStats`])
//!   and add with plain loads and stores — no lock prefix, no rseq, on
//!   every architecture; readers add rows and shards together.
//! * **Gauges** (rooms, clients, tracks) live in per-writer slots and
//!   vanish with the writer process, and never report below zero.
//! * The **[`Collector`]** sums shards, reads the system, keeps a bounded
//!   history and computes [rates](read::rate) on the monotonic clock,
//!   treating a counter decrease or a new segment as a reset.
//! * The **[`Exporter`]** serves every LiveKit metric family from the same
//!   segment to Prometheus.
//!
//! ```
//! use nodestats::{Collector, CollectorConfig, Direction, SegmentOptions, Stats};
//! # fn main() -> nodestats::Result<()> {
//! // A writer on an anonymous (in-process) segment; give a name such as
//! // "/sfu-stats" to share it with other processes.
//! let stats = Stats::open(&SegmentOptions::new())?;
//! stats.room_started();
//! stats.participant_added();
//! stats.record_packets(Direction::Incoming, 32, 32 * 1200, false);
//! stats.record_packets(Direction::Outgoing, 2, 2 * 1200, true); // retransmits
//!
//! let mut collector = Collector::new(stats.segment().clone(), CollectorConfig::default())?;
//! let ns = collector.update();
//! assert_eq!(ns.packets_in, 32);
//! assert_eq!((ns.packets_out, ns.retransmit_packets_out), (2, 2));
//! assert_eq!((ns.num_rooms, ns.num_clients), (1, 1));
//! println!("{}", serde_json::to_string(&ns).unwrap());
//! # Ok(()) }
//! ```
//!
//! ## Layers, lowest first
//! Nothing imports a layer above it (CI checks it: `tests/layering.rs`).
//! * `schema`, `gofloat` — what is counted: [`Counter`], [`Gauge`], [`Family`], the
//!   label enums; Go's float math and formatting, so bounds and labels are
//!   LiveKit's to the bit. Pure data and pure functions.
//! * `cpu`, `rseq` — platform: which CPU am I on; restartable sequences.
//! * [`segment`] — the storage ABI (`SEGMENT.md`) and its concurrency
//!   protocols: header, mapping, locks, shards, writer slots, thread rows,
//!   series directory.
//! * `write` — [`Stats`], the one per-CPU adder, [`ThreadStats`],
//!   [`SeriesHandle`], [`ThreadSeries`].
//! * [`read`] — the one reader, the [`Collector`], [rates](read::rate),
//!   [`NodeStats`].
//! * [`sys`] — CPU, memory, load and network probes.
//! * [`prom`] — the [`Exporter`] and its text encoder.
//! * `cluster` — (feature `cluster`) the LiveKit-compatible Redis node
//!   registry: publish, list, sweep and select nodes.
//! * `ffi` — the C ABI (`include/nodestats.h`).

#![deny(missing_docs, unsafe_op_in_unsafe_fn, unsafe_code)]
#![warn(
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    clippy::undocumented_unsafe_blocks
)]

#[cfg(feature = "cluster")]
pub mod cluster;
#[allow(unsafe_code)]
mod cpu;
mod error;
// The exported functions are C symbols, not Rust API: the module is
// private, and only the test door (`__testing::ffi`) re-exports its items.
#[allow(unsafe_code)]
#[cfg_attr(
    not(any(test, feature = "testing")),
    allow(unused_imports, unreachable_pub, dead_code)
)]
mod ffi;
#[cfg_attr(not(any(test, feature = "testing")), allow(unreachable_pub, dead_code))]
mod gofloat;
pub mod prom;
pub mod read;
#[allow(unsafe_code)]
mod rseq;
mod schema;
#[allow(unsafe_code)]
pub mod segment;
mod sync;
pub mod sys;
#[allow(unsafe_code)]
mod write;

#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod __testing;

pub use error::{Error, Result};
pub use prom::{Exporter, ExporterState};
pub use read::{
    Anomalies, Collector, CollectorConfig, NodeStats, NodeStatsRate, SeriesStats, SeriesValue,
    Timestamp, Totals,
};
pub use schema::{
    Buckets, ConnectionQuality, Counter, Direction, Family, FamilyDef, FamilyId, FamilySpec, Gauge,
    Kind, TrackKind, TrackSource, COUNTERS, DEFAULT_BUCKETS, DEFAULT_LIVEKIT_MAX_SERIES,
    DEFAULT_MAX_SERIES, FAMILIES, LIVEKIT_FAMILIES, MAX_BUCKETS, MAX_DECLARED_BUCKETS,
    MAX_FAMILY_LABELS, MAX_HELP_BYTES, MAX_LABEL_NAME_BYTES, MAX_NAME_BYTES, MAX_UNIT_BYTES,
};
pub use segment::slots::GaugeTotals;
pub use segment::{Access, Capacities, Layout, Segment, SegmentOptions, SegmentStatus, WriteMode};
#[cfg(feature = "metrics")]
pub use write::MetricsRecorder;
pub use write::{DeclaredFamily, SeriesHandle, Stats, ThreadSeries, ThreadStats};
