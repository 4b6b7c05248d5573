//! `NodeStats` and `NodeStatsRate`: LiveKit's node statistics messages.
//!
//! Field names are the protobuf field names of `livekit.NodeStats` and
//! `livekit.NodeStatsRate`, so the JSON form (`serde_json`) reads like
//! LiveKit's. Fields LiveKit marks deprecated and no longer fills are left
//! out. Floating-point values are `f64` here (LiveKit's `float` loses the low
//! bits of byte counts); the protobuf encoding narrows them to `float`.
//! Fields after the LiveKit ones are ours and say so in their docs.

use serde::{Deserialize, Serialize};

/// One node's statistics at one update: cumulative counters, current gauges,
/// system readings and one [`NodeStatsRate`] per configured rate interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    /// When the collector started, Unix seconds.
    pub started_at: i64,
    /// When this update was taken, Unix seconds.
    pub updated_at: i64,
    /// Rooms open on live writers.
    pub num_rooms: i32,
    /// Participants connected on live writers.
    pub num_clients: i32,
    /// Published tracks live on this node.
    pub num_tracks_in: i32,
    /// Subscribed tracks live on this node.
    pub num_tracks_out: i32,
    /// Track publish attempts (cumulative).
    pub num_track_publish_attempts: i32,
    /// Successful track publications (cumulative).
    pub num_track_publish_success: i32,
    /// Canceled track publications (cumulative).
    pub num_track_publish_cancels: i32,
    /// Track subscribe attempts (cumulative).
    pub num_track_subscribe_attempts: i32,
    /// Successful subscriptions (cumulative).
    pub num_track_subscribe_success: i32,
    /// Canceled subscriptions, including user-error failures (cumulative).
    pub num_track_subscribe_cancels: i32,
    /// Bytes received, including retransmits.
    pub bytes_in: u64,
    /// Bytes sent, including retransmits.
    pub bytes_out: u64,
    /// Packets received, including retransmits.
    pub packets_in: u64,
    /// Packets sent, including retransmits.
    pub packets_out: u64,
    /// NACKs of both directions.
    pub nack_total: u64,
    /// LiveKit's `packets_in_per_sec` (#14), the one per-second field of
    /// the message it never marked deprecated. LiveKit never sets it and
    /// neither does the collector (0); kept so a value written by another
    /// encoder round-trips.
    #[serde(default)]
    pub packets_in_per_sec: f64,
    /// CPUs available to the node, truncated as LiveKit does (`uint32` of
    /// the CPU count; see `num_cpus_exact` for the fraction).
    pub num_cpus: u32,
    /// Load average, 1 minute.
    pub load_avg_last1min: f64,
    /// Load average, 5 minutes.
    pub load_avg_last5min: f64,
    /// Load average, 15 minutes.
    pub load_avg_last15min: f64,
    /// CPU load in 0..=1 over the last collector interval.
    pub cpu_load: f64,
    /// Memory limit, bytes.
    pub memory_total: u64,
    /// Memory in use, bytes.
    pub memory_used: u64,
    /// Packets sent by the system (64-bit here; the protobuf field is 32-bit).
    pub sys_packets_out: u64,
    /// Packets dropped by the system (64-bit here; the protobuf field is 32-bit).
    pub sys_packets_dropped: u64,
    /// Retransmitted bytes sent.
    pub retransmit_bytes_out: u64,
    /// Retransmitted packets sent.
    pub retransmit_packets_out: u64,
    /// Participants whose signal connection was established.
    pub participant_signal_connected: u64,
    /// Participants whose RTC session connected.
    pub participant_rtc_connected: u64,
    /// Participants whose RTC session was initialised.
    pub participant_rtc_init: u64,
    /// Participants that left before becoming active.
    pub participant_rtc_canceled: u64,
    /// Participants that became active.
    pub participant_rtc_active: u64,
    /// Mean forwarding latency, ns.
    pub forward_latency: u32,
    /// Forwarding jitter, ns.
    pub forward_jitter: u32,
    /// One entry per configured rate interval, in configuration order.
    pub rates: Vec<NodeStatsRate>,

    /// Ours: exact (fractional) CPU count behind `num_cpus`.
    #[serde(default)]
    pub num_cpus_exact: f64,
    /// Ours: UDP receive-buffer errors (`Udp: RcvbufErrors`), when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_rcvbuf_errors: Option<u64>,
    /// Ours: UDP input errors (`Udp: InErrors`), when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_in_errors: Option<u64>,
    /// Ours: interface receive drops, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_dropped: Option<u64>,
    /// Ours: the segment's random id (hex); a new id means counters restarted.
    #[serde(default)]
    pub segment_id: String,
    /// Ours: writer processes whose gauges are counted.
    #[serde(default)]
    pub live_writers: u32,
}

/// Per-second rates over one window of the collector's history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatsRate {
    /// Start of the window, Unix seconds: `ended_at - duration`.
    pub started_at: i64,
    /// End of the window (the update's time), Unix seconds.
    pub ended_at: i64,
    /// Window length, whole seconds: `window_seconds` rounded, at least 1.
    pub duration: i64,
    /// Track publish attempts per second.
    pub track_publish_attempts: f64,
    /// Successful publications per second.
    pub track_publish_success: f64,
    /// Canceled publications per second.
    pub track_publish_cancels: f64,
    /// Subscribe attempts per second.
    pub track_subscribe_attempts: f64,
    /// Successful subscriptions per second.
    pub track_subscribe_success: f64,
    /// Canceled subscriptions per second.
    pub track_subscribe_cancels: f64,
    /// Bytes received per second.
    pub bytes_in: f64,
    /// Bytes sent per second.
    pub bytes_out: f64,
    /// Packets received per second.
    pub packets_in: f64,
    /// Packets sent per second.
    pub packets_out: f64,
    /// NACKs per second.
    pub nack_total: f64,
    /// System packets sent per second.
    pub sys_packets_out: f64,
    /// System packets dropped per second.
    pub sys_packets_dropped: f64,
    /// Retransmitted bytes per second.
    pub retransmit_bytes_out: f64,
    /// Retransmitted packets per second.
    pub retransmit_packets_out: f64,
    /// Signal connections per second.
    pub participant_signal_connected: f64,
    /// Failed signal connections per second (#28). LiveKit computes it from
    /// a NodeStats field it no longer fills, so it is always 0 from LiveKit
    /// and from the collector; kept so a value a Go writer sets round-trips.
    #[serde(default)]
    pub participant_signal_failed: f64,
    /// Signal connections refused by validation per second (#29); like
    /// `participant_signal_failed`.
    #[serde(default)]
    pub participant_signal_validation_failed: f64,
    /// RTC connections per second.
    pub participant_rtc_connected: f64,
    /// RTC inits per second.
    pub participant_rtc_init: f64,
    /// RTC cancels per second.
    pub participant_rtc_canceled: f64,
    /// Participants becoming active per second.
    pub participant_rtc_active: f64,
    /// Time-weighted mean CPU load.
    pub cpu_load: f64,
    /// Time-weighted mean of memory used / total.
    pub memory_load: f64,
    /// Time-weighted mean memory used, bytes.
    pub memory_used: f64,
    /// Time-weighted mean memory total, bytes.
    pub memory_total: f64,

    /// Ours: the configured interval this rate stands for, seconds.
    #[serde(default)]
    pub interval_seconds: f64,
    /// Ours: the real window, seconds, from the monotonic clock.
    #[serde(default)]
    pub window_seconds: f64,
    /// Ours: false while the history is still shorter than the interval
    /// (the rate is then over the whole history, `window_seconds` long).
    #[serde(default)]
    pub complete: bool,
    /// Ours: counter resets (new segment, counter decrease) inside the window.
    #[serde(default)]
    pub resets: u32,
}
