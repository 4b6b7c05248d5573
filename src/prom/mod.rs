//! Prometheus export: LiveKit's metric families from the segment.
//!
//! * [`families`] — the table of every family LiveKit registers (names,
//!   types, labels, buckets) and its help text.
//! * [`Exporter`] — a `prometheus::core::Collector` that reads the segment
//!   at scrape time; register it in your own `Registry`, or call
//!   [`Exporter::text`].
//! * The recording functions for labeled families are methods of
//!   [`Stats`](crate::Stats) (`record_packet_loss`, `record_rtt`, …).

mod exporter;
pub mod families;
mod record;

pub use exporter::{Exporter, ExporterState};
pub use record::{ConnectionQuality, TrackSource};
