//! `NodeStats` and `NodeStatsRate` as plain C structs.

use crate::read::{NodeStats, NodeStatsRate};
use std::ffi::c_char;

/// Value of an optional counter the system could not provide.
pub const NODESTATS_UNAVAILABLE: u64 = u64::MAX;

/// Size of `nodestats_node_stats.segment_id`: 32 hex digits and a NUL.
pub const NODESTATS_SEGMENT_ID_SIZE: usize = 33;

/// One node's statistics: cumulative counters, current gauges and system
/// readings. Field names and meanings are those of LiveKit's `NodeStats`
/// (see the Rust `NodeStats` docs); the rates come separately, as
/// `nodestats_node_stats_rate`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nodestats_node_stats {
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
    /// CPUs available to the node, truncated as LiveKit does (0 without
    /// system probes; `num_cpus_exact` keeps the fraction).
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
    /// Packets sent by the system.
    pub sys_packets_out: u64,
    /// Packets dropped by the system.
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
    /// Exact (fractional) CPU count behind `num_cpus`.
    pub num_cpus_exact: f64,
    /// UDP receive-buffer errors, or `NODESTATS_UNAVAILABLE`.
    pub udp_rcvbuf_errors: u64,
    /// UDP input errors, or `NODESTATS_UNAVAILABLE`.
    pub udp_in_errors: u64,
    /// Interface receive drops, or `NODESTATS_UNAVAILABLE`.
    pub rx_dropped: u64,
    /// The segment's random id, 32 lowercase hex digits, NUL-terminated; a
    /// new id means every counter restarted.
    pub segment_id: [c_char; NODESTATS_SEGMENT_ID_SIZE],
    /// Writer processes whose gauges are counted.
    pub live_writers: u32,
}

impl From<&NodeStats> for nodestats_node_stats {
    fn from(ns: &NodeStats) -> Self {
        // Destructured without `..`: a new NodeStats field does not compile
        // until it is either mapped here or deliberately skipped.
        let NodeStats {
            started_at,
            updated_at,
            num_rooms,
            num_clients,
            num_tracks_in,
            num_tracks_out,
            num_track_publish_attempts,
            num_track_publish_success,
            num_track_publish_cancels,
            num_track_subscribe_attempts,
            num_track_subscribe_success,
            num_track_subscribe_cancels,
            bytes_in,
            bytes_out,
            packets_in,
            packets_out,
            nack_total,
            num_cpus,
            load_avg_last1min,
            load_avg_last5min,
            load_avg_last15min,
            cpu_load,
            memory_total,
            memory_used,
            sys_packets_out,
            sys_packets_dropped,
            retransmit_bytes_out,
            retransmit_packets_out,
            participant_signal_connected,
            participant_rtc_connected,
            participant_rtc_init,
            participant_rtc_canceled,
            participant_rtc_active,
            forward_latency,
            forward_jitter,
            rates: _,
            // Never set by LiveKit or the collector (always 0): only
            // carried so protobuf written elsewhere round-trips.
            packets_in_per_sec: _,
            num_cpus_exact,
            udp_rcvbuf_errors,
            udp_in_errors,
            rx_dropped,
            segment_id,
            live_writers,
        } = ns;
        let mut id = [0 as c_char; NODESTATS_SEGMENT_ID_SIZE];
        for (d, s) in id[..NODESTATS_SEGMENT_ID_SIZE - 1]
            .iter_mut()
            .zip(segment_id.bytes().filter(|b| *b != 0))
        {
            *d = s as c_char;
        }
        let opt = |v: &Option<u64>| v.unwrap_or(NODESTATS_UNAVAILABLE);
        nodestats_node_stats {
            started_at: *started_at,
            updated_at: *updated_at,
            num_rooms: *num_rooms,
            num_clients: *num_clients,
            num_tracks_in: *num_tracks_in,
            num_tracks_out: *num_tracks_out,
            num_track_publish_attempts: *num_track_publish_attempts,
            num_track_publish_success: *num_track_publish_success,
            num_track_publish_cancels: *num_track_publish_cancels,
            num_track_subscribe_attempts: *num_track_subscribe_attempts,
            num_track_subscribe_success: *num_track_subscribe_success,
            num_track_subscribe_cancels: *num_track_subscribe_cancels,
            bytes_in: *bytes_in,
            bytes_out: *bytes_out,
            packets_in: *packets_in,
            packets_out: *packets_out,
            nack_total: *nack_total,
            num_cpus: *num_cpus,
            load_avg_last1min: *load_avg_last1min,
            load_avg_last5min: *load_avg_last5min,
            load_avg_last15min: *load_avg_last15min,
            cpu_load: *cpu_load,
            memory_total: *memory_total,
            memory_used: *memory_used,
            sys_packets_out: *sys_packets_out,
            sys_packets_dropped: *sys_packets_dropped,
            retransmit_bytes_out: *retransmit_bytes_out,
            retransmit_packets_out: *retransmit_packets_out,
            participant_signal_connected: *participant_signal_connected,
            participant_rtc_connected: *participant_rtc_connected,
            participant_rtc_init: *participant_rtc_init,
            participant_rtc_canceled: *participant_rtc_canceled,
            participant_rtc_active: *participant_rtc_active,
            forward_latency: *forward_latency,
            forward_jitter: *forward_jitter,
            num_cpus_exact: *num_cpus_exact,
            udp_rcvbuf_errors: opt(udp_rcvbuf_errors),
            udp_in_errors: opt(udp_in_errors),
            rx_dropped: opt(rx_dropped),
            segment_id: id,
            live_writers: *live_writers,
        }
    }
}

/// Per-second rates over one window of the collector's history (LiveKit's
/// `NodeStatsRate`, plus the fields after `memory_total`, which are ours).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nodestats_node_stats_rate {
    /// Start of the window, Unix seconds.
    pub started_at: i64,
    /// End of the window, Unix seconds.
    pub ended_at: i64,
    /// Window length, whole seconds.
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
    /// The configured interval this rate stands for, seconds.
    pub interval_seconds: f64,
    /// The real window, seconds, from the monotonic clock.
    pub window_seconds: f64,
    /// False while the history is shorter than the interval.
    pub complete: bool,
    /// Counter resets (new segment, counter decrease) inside the window.
    pub resets: u32,
}

impl From<&NodeStatsRate> for nodestats_node_stats_rate {
    fn from(r: &NodeStatsRate) -> Self {
        // Destructured without `..`, as for NodeStats.
        let NodeStatsRate {
            started_at,
            ended_at,
            duration,
            track_publish_attempts,
            track_publish_success,
            track_publish_cancels,
            track_subscribe_attempts,
            track_subscribe_success,
            track_subscribe_cancels,
            bytes_in,
            bytes_out,
            packets_in,
            packets_out,
            nack_total,
            sys_packets_out,
            sys_packets_dropped,
            retransmit_bytes_out,
            retransmit_packets_out,
            participant_signal_connected,
            // Always 0 from LiveKit and the collector (see NodeStatsRate).
            participant_signal_failed: _,
            participant_signal_validation_failed: _,
            participant_rtc_connected,
            participant_rtc_init,
            participant_rtc_canceled,
            participant_rtc_active,
            cpu_load,
            memory_load,
            memory_used,
            memory_total,
            interval_seconds,
            window_seconds,
            complete,
            resets,
        } = *r;
        nodestats_node_stats_rate {
            started_at,
            ended_at,
            duration,
            track_publish_attempts,
            track_publish_success,
            track_publish_cancels,
            track_subscribe_attempts,
            track_subscribe_success,
            track_subscribe_cancels,
            bytes_in,
            bytes_out,
            packets_in,
            packets_out,
            nack_total,
            sys_packets_out,
            sys_packets_dropped,
            retransmit_bytes_out,
            retransmit_packets_out,
            participant_signal_connected,
            participant_rtc_connected,
            participant_rtc_init,
            participant_rtc_canceled,
            participant_rtc_active,
            cpu_load,
            memory_load,
            memory_used,
            memory_total,
            interval_seconds,
            window_seconds,
            complete,
            resets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_stats_convert_with_ids_and_unavailable_values() {
        let ns = NodeStats {
            packets_in: 7,
            num_rooms: 2,
            udp_in_errors: Some(3),
            segment_id: "0123456789abcdef0123456789abcdef".into(),
            ..Default::default()
        };
        let c = nodestats_node_stats::from(&ns);
        assert_eq!((c.packets_in, c.num_rooms), (7, 2));
        assert_eq!((c.udp_in_errors, c.rx_dropped), (3, NODESTATS_UNAVAILABLE));
        // SAFETY: the id array is NUL-terminated (its last byte is never written).
        let id = unsafe { std::ffi::CStr::from_ptr(c.segment_id.as_ptr()) };
        assert_eq!(id.to_str().unwrap(), ns.segment_id);
    }
}
