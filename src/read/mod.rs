//! Readers: one reader of a segment, and what is built on it.
//!
//! * `reader` — the one place that reads shards, live writers' slots and
//!   labeled series; the collector and the Prometheus exporter both use it.
//! * [`Collector`] — keeps a bounded history and turns readings into
//!   [`NodeStats`] with [rates](rate).
//! * [`NodeStats`] / [`NodeStatsRate`] — LiveKit's record, with its JSON
//!   and protobuf encodings.

mod collector;
mod node_stats;
pub(crate) mod proto;
pub mod rate;
pub(crate) mod reader;
pub(crate) mod series;

mod livekit_time;
mod protojson;
pub use collector::{Anomalies, Collector, CollectorConfig, Timestamp, Totals, MAX_HISTORY};
pub use node_stats::{NodeStats, NodeStatsRate};
pub use series::{SeriesStats, SeriesValue};
