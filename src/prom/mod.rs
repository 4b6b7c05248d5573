//! Prometheus export: LiveKit's metric families from the segment.
//!
//! * [`Exporter`] — a `prometheus::core::Collector` that reads the segment
//!   at scrape time (through the same reader as the collector); register it
//!   in your own `Registry`, or call [`Exporter::write`] /
//!   [`Exporter::text`].
//! * [`Snapshot`] — one read of the segment as families of series, the
//!   model every format is written from.
//! * [`Format`] — the exposition formats and the choice among them from an
//!   `Accept` header; one module per format: `text` (0.0.4),
//!   `openmetrics` (OpenMetrics 1.0) and `protobuf` (the Prometheus
//!   protobuf exposition, prost types generated from `proto/`).
//!
//! The family table (names, types, labels, buckets) is
//! [`FAMILIES`](crate::FAMILIES); the recording functions for labeled
//! families are methods of [`Stats`](crate::Stats) (`record_packet_loss`,
//! `record_rtt`, …).

pub(crate) mod exporter;
mod format;
pub(crate) mod native;
mod openmetrics;
pub(crate) mod protobuf;
mod snapshot;
mod text;

pub(crate) use exporter::{Exporter, ExporterState};
pub use format::{Format, OpenMetricsCounters};
pub use snapshot::{FamilyView, NativeView, SeriesView, Snapshot, Value};
