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
//! ## The public API, by what you do with it
//! * **Open and record** — [`Stats`] ([`Stats::open`], [`Stats::anonymous`],
//!   [`SegmentOptions`]), [`Direction`], [`TrackKind`]; per thread:
//!   [`ThreadStats`] ([`Stats::thread_writer`]).
//! * **Labeled series and your own metrics** — [`Stats::series`] →
//!   [`SeriesHandle`], [`ThreadStats::series`] → [`ThreadSeries`];
//!   [`Stats::declare`] with a [`FamilySpec`] → [`DeclaredFamily`];
//!   [`FamilyId`]; LiveKit's 49 [`Family`]s and their [`FAMILIES`] table;
//!   `MetricsRecorder` (feature `metrics`) for the `metrics` facade.
//! * **LiveKit's recording calls** — the `Stats::record_*`, `room_*`,
//!   `participant_*`, `track_*`… methods, one per LiveKit telemetry call.
//! * **Read** — [`Collector`] ([`CollectorConfig`], [`NodeStats`],
//!   [`NodeStatsRate`], [`Anomalies`]; rates in [`read::rate`]), [`Totals`]
//!   for raw sums, system probes in [`sys`].
//! * **Export** — [`Exporter`] (a `prometheus` collector and text encoder),
//!   [`ExporterState`]; [`Format`] (text 0.0.4, OpenMetrics; negotiated
//!   from `Accept`) and [`OpenMetricsCounters`]; [`Snapshot`] with
//!   [`FamilyView`], [`SeriesView`], [`Value`] and [`NativeView`] (one read, in any format
//!   or walked); `cluster` (feature `cluster`): the Redis node registry.
//! * **The segment** — [`Segment`], [`Layout`], [`Capacities`],
//!   [`WriteMode`], [`SegmentStatus`], [`Access`], the layout constants
//!   ([`MAGIC`], [`LAYOUT_MAJOR`], …); its bytes are specified in
//!   `SEGMENT.md`.
//! * **Errors** — [`Error`], [`Result`].
//! * **C** — `include/nodestats.h` (the `ffi` module is the C ABI, not a
//!   Rust API).
//!
//! Inside, the code is layered, lowest first, and nothing imports a layer
//! above it (`tests/layering.rs` checks it): the schema of what is counted;
//! the platform (current CPU, restartable sequences); the segment (the
//! storage ABI and its protocols, with loom models); writers and readers;
//! the exporter; the node registry; the C ABI and the binary.

// The API's own lints; those every target keeps are in Cargo.toml's
// [lints] (unsafe_op_in_unsafe_fn, rust_2018_idioms,
// clippy::undocumented_unsafe_blocks).
#![deny(missing_docs, unsafe_code)]
#![warn(missing_debug_implementations, unreachable_pub)]

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
#[cfg_attr(not(any(test, feature = "testing")), allow(unused_imports))]
mod prom;
pub mod read;
#[allow(unsafe_code)]
mod rseq;
mod schema;
#[allow(unsafe_code)]
mod segment;
mod sync;
pub mod sys;
#[allow(unsafe_code)]
mod write;

#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod __testing;

pub use error::{Error, Result};
pub use prom::exporter::{Exporter, ExporterState};
pub use prom::{FamilyView, Format, NativeView, OpenMetricsCounters, SeriesView, Snapshot, Value};
pub use read::collector::{Anomalies, Collector, CollectorConfig, Timestamp, Totals, MAX_HISTORY};
pub use read::node_stats::{NodeStats, NodeStatsRate};
pub use schema::{
    Buckets, ConnectionQuality, Counter, Direction, Family, FamilyDef, FamilyId, FamilySpec, Gauge,
    Kind, TrackKind, TrackSource, COUNTERS, DEFAULT_BUCKETS, DEFAULT_LIVEKIT_MAX_SERIES,
    DEFAULT_MAX_SERIES, DEFAULT_NATIVE_MAX, DEFAULT_NATIVE_MIN, DEFAULT_NATIVE_SCHEMA,
    DEFAULT_NATIVE_ZERO_THRESHOLD, FAMILIES, LIVEKIT_FAMILIES, MAX_BUCKETS, MAX_DECLARED_BUCKETS,
    MAX_FAMILY_LABELS, MAX_HELP_BYTES, MAX_LABEL_NAME_BYTES, MAX_NAME_BYTES, MAX_NATIVE_SCHEMA,
    MAX_NATIVE_SPAN, MAX_UNIT_BYTES, MIN_NATIVE_SCHEMA,
};
pub use segment::slots::GaugeTotals;
pub use segment::{
    Access, Capacities, Layout, Segment, SegmentOptions, SegmentStatus, WriteMode,
    DEFAULT_FAMILIES, DEFAULT_INIT_WAIT, DEFAULT_MODE, DEFAULT_ROW_SERIES_SLOTS, DEFAULT_SERIES,
    DEFAULT_STRINGS, DEFAULT_THREAD_ROWS, DEFAULT_VALUES_PER_SHARD, DEFAULT_WRITER_SLOTS,
    HEADER_SIZE, LAYOUT_MAJOR, LAYOUT_MINOR, MAGIC,
};
#[cfg(feature = "metrics")]
pub use write::MetricsRecorder;
pub use write::{DeclaredFamily, SeriesHandle, Stats, ThreadSeries, ThreadStats};
