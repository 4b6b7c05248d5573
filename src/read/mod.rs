//! Readers: one reader of a segment, and what is built on it.
//!
//! * `reader` — the one place that reads shards, live writers' slots and
//!   labeled series; the collector and the Prometheus exporter both use it.
//! * [`Collector`] — keeps a bounded history and turns readings into
//!   [`NodeStats`] with [rates](rate).
//! * [`NodeStats`] / [`NodeStatsRate`] — LiveKit's record, with its JSON
//!   and protobuf encodings.

pub(crate) mod collector;
pub(crate) mod node_stats;
pub(crate) mod proto;
pub mod rate;
pub(crate) mod reader;
pub(crate) mod series;

mod livekit_time;
mod protojson;
// Their public path is the crate root (`nodestats::Collector`, …); these
// are the crate's own short paths.
#[allow(unused_imports)]
pub(crate) use collector::{Anomalies, Collector, CollectorConfig, Timestamp, Totals, MAX_HISTORY};
pub(crate) use node_stats::{NodeStats, NodeStatsRate};
pub(crate) use series::{SeriesStats, SeriesValue};
