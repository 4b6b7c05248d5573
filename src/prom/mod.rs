//! Prometheus export: LiveKit's metric families from the segment.
//!
//! * [`Exporter`] — a `prometheus::core::Collector` that reads the segment
//!   at scrape time (through the same reader as the collector); register it
//!   in your own `Registry`, or call [`Exporter::text`].
//! * `text` — the Prometheus text format encoder the exporter writes with.
//!
//! The family table (names, types, labels, buckets) is
//! [`FAMILIES`](crate::FAMILIES); the recording functions for labeled
//! families are methods of [`Stats`](crate::Stats) (`record_packet_loss`,
//! `record_rtt`, …).

pub(crate) mod exporter;
pub(crate) mod native;
mod text;

pub(crate) use exporter::{Exporter, ExporterState};
