//! Protobuf form of [`NodeStats`] and [`NodeStatsRate`], wire-compatible
//! with `livekit.NodeStats` / `livekit.NodeStatsRate`, and of `livekit.Node`
//! (field numbers from `livekit_internal.proto`).
//!
//! The messages are `prost` derives written by hand (no build script, no
//! `protoc`): prost is the well-kept encoder and decoder, and the field
//! table below is the schema. Proto3 rules: fields at their default value
//! are not written. Floats are `float` on the wire (our `f64`s are
//! narrowed). `sys_packets_out` and `sys_packets_dropped` are `uint32` in
//! LiveKit's schema; we write their low 32 bits, which is what a LiveKit
//! decoder keeps of a wider varint. Fields LiveKit deprecated are not
//! declared (a decoder skips them), and our extra fields are not encoded.

use super::node_stats::{NodeStats, NodeStatsRate};
use prost::Message;

/// `livekit.NodeStats`, the fields LiveKit still fills.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NodeStatsPb {
    #[prost(int64, tag = "1")]
    pub(crate) started_at: i64,
    #[prost(int64, tag = "2")]
    pub(crate) updated_at: i64,
    #[prost(int32, tag = "3")]
    pub(crate) num_rooms: i32,
    #[prost(int32, tag = "4")]
    pub(crate) num_clients: i32,
    #[prost(int32, tag = "5")]
    pub(crate) num_tracks_in: i32,
    #[prost(int32, tag = "6")]
    pub(crate) num_tracks_out: i32,
    #[prost(uint64, tag = "7")]
    pub(crate) bytes_in: u64,
    #[prost(uint64, tag = "8")]
    pub(crate) bytes_out: u64,
    #[prost(uint64, tag = "9")]
    pub(crate) packets_in: u64,
    #[prost(uint64, tag = "10")]
    pub(crate) packets_out: u64,
    #[prost(uint64, tag = "11")]
    pub(crate) nack_total: u64,
    #[prost(float, tag = "14")]
    pub(crate) packets_in_per_sec: f32,
    #[prost(uint32, tag = "17")]
    pub(crate) num_cpus: u32,
    #[prost(float, tag = "18")]
    pub(crate) load_avg_last1min: f32,
    #[prost(float, tag = "19")]
    pub(crate) load_avg_last5min: f32,
    #[prost(float, tag = "20")]
    pub(crate) load_avg_last15min: f32,
    #[prost(float, tag = "21")]
    pub(crate) cpu_load: f32,
    #[prost(uint64, tag = "22")]
    pub(crate) retransmit_bytes_out: u64,
    #[prost(uint64, tag = "23")]
    pub(crate) retransmit_packets_out: u64,
    #[prost(uint64, tag = "26")]
    pub(crate) participant_signal_connected: u64,
    #[prost(uint32, tag = "28")]
    pub(crate) sys_packets_out: u32,
    #[prost(uint32, tag = "29")]
    pub(crate) sys_packets_dropped: u32,
    #[prost(uint64, tag = "34")]
    pub(crate) memory_total: u64,
    #[prost(uint64, tag = "35")]
    pub(crate) memory_used: u64,
    #[prost(int32, tag = "36")]
    pub(crate) num_track_publish_attempts: i32,
    #[prost(int32, tag = "38")]
    pub(crate) num_track_publish_success: i32,
    #[prost(int32, tag = "40")]
    pub(crate) num_track_subscribe_attempts: i32,
    #[prost(int32, tag = "42")]
    pub(crate) num_track_subscribe_success: i32,
    #[prost(uint64, tag = "44")]
    pub(crate) participant_rtc_connected: u64,
    #[prost(uint64, tag = "46")]
    pub(crate) participant_rtc_init: u64,
    #[prost(uint32, tag = "48")]
    pub(crate) forward_latency: u32,
    #[prost(uint32, tag = "49")]
    pub(crate) forward_jitter: u32,
    #[prost(message, repeated, tag = "50")]
    pub(crate) rates: Vec<NodeStatsRatePb>,
    #[prost(int32, tag = "51")]
    pub(crate) num_track_publish_cancels: i32,
    #[prost(int32, tag = "52")]
    pub(crate) num_track_subscribe_cancels: i32,
    #[prost(uint64, tag = "53")]
    pub(crate) participant_rtc_canceled: u64,
    #[prost(uint64, tag = "54")]
    pub(crate) participant_rtc_active: u64,
}

/// `livekit.NodeStatsRate`, the fields LiveKit still fills.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NodeStatsRatePb {
    #[prost(int64, tag = "1")]
    pub(crate) started_at: i64,
    #[prost(int64, tag = "2")]
    pub(crate) ended_at: i64,
    #[prost(int64, tag = "3")]
    pub(crate) duration: i64,
    #[prost(float, tag = "4")]
    pub(crate) track_publish_attempts: f32,
    #[prost(float, tag = "5")]
    pub(crate) track_publish_success: f32,
    #[prost(float, tag = "6")]
    pub(crate) track_subscribe_attempts: f32,
    #[prost(float, tag = "7")]
    pub(crate) track_subscribe_success: f32,
    #[prost(float, tag = "8")]
    pub(crate) bytes_in: f32,
    #[prost(float, tag = "9")]
    pub(crate) bytes_out: f32,
    #[prost(float, tag = "10")]
    pub(crate) packets_in: f32,
    #[prost(float, tag = "11")]
    pub(crate) packets_out: f32,
    #[prost(float, tag = "12")]
    pub(crate) nack_total: f32,
    #[prost(float, tag = "13")]
    pub(crate) sys_packets_out: f32,
    #[prost(float, tag = "14")]
    pub(crate) sys_packets_dropped: f32,
    #[prost(float, tag = "15")]
    pub(crate) retransmit_bytes_out: f32,
    #[prost(float, tag = "16")]
    pub(crate) retransmit_packets_out: f32,
    #[prost(float, tag = "17")]
    pub(crate) participant_signal_connected: f32,
    #[prost(float, tag = "18")]
    pub(crate) participant_rtc_connected: f32,
    #[prost(float, tag = "19")]
    pub(crate) participant_rtc_init: f32,
    #[prost(float, tag = "20")]
    pub(crate) cpu_load: f32,
    #[prost(float, tag = "21")]
    pub(crate) memory_load: f32,
    #[prost(float, tag = "22")]
    pub(crate) memory_used: f32,
    #[prost(float, tag = "23")]
    pub(crate) memory_total: f32,
    #[prost(float, tag = "24")]
    pub(crate) track_publish_cancels: f32,
    #[prost(float, tag = "25")]
    pub(crate) track_subscribe_cancels: f32,
    #[prost(float, tag = "26")]
    pub(crate) participant_rtc_canceled: f32,
    #[prost(float, tag = "27")]
    pub(crate) participant_rtc_active: f32,
    #[prost(float, tag = "28")]
    pub(crate) participant_signal_failed: f32,
    #[prost(float, tag = "29")]
    pub(crate) participant_signal_validation_failed: f32,
}

/// `livekit.Node`: one entry of the Redis hash `nodes`.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NodePb {
    #[prost(string, tag = "1")]
    pub(crate) id: String,
    #[prost(string, tag = "2")]
    pub(crate) ip: String,
    #[prost(uint32, tag = "3")]
    pub(crate) num_cpus: u32,
    #[prost(message, optional, tag = "4")]
    pub(crate) stats: Option<NodeStatsPb>,
    /// `livekit.NodeType` (0 = SERVER).
    #[prost(int32, tag = "5")]
    pub(crate) r#type: i32,
    /// `livekit.NodeState` (1 = SERVING).
    #[prost(int32, tag = "6")]
    pub(crate) state: i32,
    #[prost(string, tag = "7")]
    pub(crate) region: String,
}

impl From<&NodeStatsRate> for NodeStatsRatePb {
    fn from(r: &NodeStatsRate) -> Self {
        // Every field is named: a new NodeStatsRate field does not compile
        // until it is encoded here or marked as ours only (`: _`).
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
            participant_signal_failed,
            participant_signal_validation_failed,
            participant_rtc_connected,
            participant_rtc_init,
            participant_rtc_canceled,
            participant_rtc_active,
            cpu_load,
            memory_load,
            memory_used,
            memory_total,
            interval_seconds: _,
            window_seconds: _,
            complete: _,
            resets: _,
        } = r;
        NodeStatsRatePb {
            started_at: (*started_at),
            ended_at: (*ended_at),
            duration: (*duration),
            track_publish_attempts: (*track_publish_attempts) as f32,
            track_publish_success: (*track_publish_success) as f32,
            track_subscribe_attempts: (*track_subscribe_attempts) as f32,
            track_subscribe_success: (*track_subscribe_success) as f32,
            bytes_in: (*bytes_in) as f32,
            bytes_out: (*bytes_out) as f32,
            packets_in: (*packets_in) as f32,
            packets_out: (*packets_out) as f32,
            nack_total: (*nack_total) as f32,
            sys_packets_out: (*sys_packets_out) as f32,
            sys_packets_dropped: (*sys_packets_dropped) as f32,
            retransmit_bytes_out: (*retransmit_bytes_out) as f32,
            retransmit_packets_out: (*retransmit_packets_out) as f32,
            participant_signal_connected: (*participant_signal_connected) as f32,
            participant_rtc_connected: (*participant_rtc_connected) as f32,
            participant_rtc_init: (*participant_rtc_init) as f32,
            cpu_load: (*cpu_load) as f32,
            memory_load: (*memory_load) as f32,
            memory_used: (*memory_used) as f32,
            memory_total: (*memory_total) as f32,
            track_publish_cancels: (*track_publish_cancels) as f32,
            track_subscribe_cancels: (*track_subscribe_cancels) as f32,
            participant_rtc_canceled: (*participant_rtc_canceled) as f32,
            participant_rtc_active: (*participant_rtc_active) as f32,
            participant_signal_failed: (*participant_signal_failed) as f32,
            participant_signal_validation_failed: (*participant_signal_validation_failed) as f32,
        }
    }
}

impl From<NodeStatsRatePb> for NodeStatsRate {
    fn from(r: NodeStatsRatePb) -> Self {
        NodeStatsRate {
            started_at: r.started_at,
            ended_at: r.ended_at,
            duration: r.duration,
            track_publish_attempts: r.track_publish_attempts.into(),
            track_publish_success: r.track_publish_success.into(),
            track_publish_cancels: r.track_publish_cancels.into(),
            track_subscribe_attempts: r.track_subscribe_attempts.into(),
            track_subscribe_success: r.track_subscribe_success.into(),
            track_subscribe_cancels: r.track_subscribe_cancels.into(),
            bytes_in: r.bytes_in.into(),
            bytes_out: r.bytes_out.into(),
            packets_in: r.packets_in.into(),
            packets_out: r.packets_out.into(),
            nack_total: r.nack_total.into(),
            sys_packets_out: r.sys_packets_out.into(),
            sys_packets_dropped: r.sys_packets_dropped.into(),
            retransmit_bytes_out: r.retransmit_bytes_out.into(),
            retransmit_packets_out: r.retransmit_packets_out.into(),
            participant_signal_connected: r.participant_signal_connected.into(),
            participant_signal_failed: r.participant_signal_failed.into(),
            participant_signal_validation_failed: r.participant_signal_validation_failed.into(),
            participant_rtc_connected: r.participant_rtc_connected.into(),
            participant_rtc_init: r.participant_rtc_init.into(),
            participant_rtc_canceled: r.participant_rtc_canceled.into(),
            participant_rtc_active: r.participant_rtc_active.into(),
            cpu_load: r.cpu_load.into(),
            memory_load: r.memory_load.into(),
            memory_used: r.memory_used.into(),
            memory_total: r.memory_total.into(),
            // The wire does not say which interval a rate stands for; its
            // duration is the best we know.
            interval_seconds: r.duration as f64,
            window_seconds: r.duration as f64,
            complete: true,
            resets: 0,
        }
    }
}

impl From<&NodeStats> for NodeStatsPb {
    fn from(s: &NodeStats) -> Self {
        // Every field is named: a new NodeStats field does not compile
        // until it is encoded here or marked as ours only (`: _`).
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
            packets_in_per_sec,
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
            rates,
            num_cpus_exact: _,
            udp_rcvbuf_errors: _,
            udp_in_errors: _,
            rx_dropped: _,
            segment_id: _,
            live_writers: _,
        } = s;
        NodeStatsPb {
            started_at: (*started_at),
            updated_at: (*updated_at),
            num_rooms: (*num_rooms),
            num_clients: (*num_clients),
            num_tracks_in: (*num_tracks_in),
            num_tracks_out: (*num_tracks_out),
            bytes_in: (*bytes_in),
            bytes_out: (*bytes_out),
            packets_in: (*packets_in),
            packets_out: (*packets_out),
            nack_total: (*nack_total),
            packets_in_per_sec: (*packets_in_per_sec) as f32,
            num_cpus: (*num_cpus),
            load_avg_last1min: (*load_avg_last1min) as f32,
            load_avg_last5min: (*load_avg_last5min) as f32,
            load_avg_last15min: (*load_avg_last15min) as f32,
            cpu_load: (*cpu_load) as f32,
            retransmit_bytes_out: (*retransmit_bytes_out),
            retransmit_packets_out: (*retransmit_packets_out),
            participant_signal_connected: (*participant_signal_connected),
            // Low 32 bits: LiveKit's field is uint32.
            sys_packets_out: (*sys_packets_out) as u32,
            sys_packets_dropped: (*sys_packets_dropped) as u32,
            memory_total: (*memory_total),
            memory_used: (*memory_used),
            num_track_publish_attempts: (*num_track_publish_attempts),
            num_track_publish_success: (*num_track_publish_success),
            num_track_subscribe_attempts: (*num_track_subscribe_attempts),
            num_track_subscribe_success: (*num_track_subscribe_success),
            participant_rtc_connected: (*participant_rtc_connected),
            participant_rtc_init: (*participant_rtc_init),
            forward_latency: (*forward_latency),
            forward_jitter: (*forward_jitter),
            rates: rates.iter().map(NodeStatsRatePb::from).collect(),
            num_track_publish_cancels: (*num_track_publish_cancels),
            num_track_subscribe_cancels: (*num_track_subscribe_cancels),
            participant_rtc_canceled: (*participant_rtc_canceled),
            participant_rtc_active: (*participant_rtc_active),
        }
    }
}

impl From<NodeStatsPb> for NodeStats {
    fn from(s: NodeStatsPb) -> Self {
        NodeStats {
            started_at: s.started_at,
            updated_at: s.updated_at,
            num_rooms: s.num_rooms,
            num_clients: s.num_clients,
            num_tracks_in: s.num_tracks_in,
            num_tracks_out: s.num_tracks_out,
            num_track_publish_attempts: s.num_track_publish_attempts,
            num_track_publish_success: s.num_track_publish_success,
            num_track_publish_cancels: s.num_track_publish_cancels,
            num_track_subscribe_attempts: s.num_track_subscribe_attempts,
            num_track_subscribe_success: s.num_track_subscribe_success,
            num_track_subscribe_cancels: s.num_track_subscribe_cancels,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            packets_in: s.packets_in,
            packets_out: s.packets_out,
            nack_total: s.nack_total,
            packets_in_per_sec: s.packets_in_per_sec.into(),
            num_cpus: s.num_cpus,
            load_avg_last1min: s.load_avg_last1min.into(),
            load_avg_last5min: s.load_avg_last5min.into(),
            load_avg_last15min: s.load_avg_last15min.into(),
            cpu_load: s.cpu_load.into(),
            memory_total: s.memory_total,
            memory_used: s.memory_used,
            sys_packets_out: s.sys_packets_out.into(),
            sys_packets_dropped: s.sys_packets_dropped.into(),
            retransmit_bytes_out: s.retransmit_bytes_out,
            retransmit_packets_out: s.retransmit_packets_out,
            participant_signal_connected: s.participant_signal_connected,
            participant_rtc_connected: s.participant_rtc_connected,
            participant_rtc_init: s.participant_rtc_init,
            participant_rtc_canceled: s.participant_rtc_canceled,
            participant_rtc_active: s.participant_rtc_active,
            forward_latency: s.forward_latency,
            forward_jitter: s.forward_jitter,
            rates: s.rates.into_iter().map(NodeStatsRate::from).collect(),
            num_cpus_exact: s.num_cpus.into(),
            ..NodeStats::default()
        }
    }
}

impl NodeStatsRate {
    /// The protobuf bytes of this rate (`livekit.NodeStatsRate`).
    pub fn encode_protobuf(&self) -> Vec<u8> {
        NodeStatsRatePb::from(self).encode_to_vec()
    }

    /// Decodes a `livekit.NodeStatsRate`. Unknown and deprecated fields are
    /// skipped; our own fields say the window is `duration` seconds long.
    pub fn decode_protobuf(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        NodeStatsRatePb::decode(bytes).map(Self::from)
    }
}

impl NodeStats {
    /// The protobuf bytes of this update (`livekit.NodeStats`), rates
    /// included.
    pub fn encode_protobuf(&self) -> Vec<u8> {
        NodeStatsPb::from(self).encode_to_vec()
    }

    /// Decodes a `livekit.NodeStats` (ours or a LiveKit server's). Unknown
    /// and deprecated fields are skipped, our own fields stay at their
    /// defaults (`num_cpus_exact` is `num_cpus`). Bad bytes are an error,
    /// never a panic.
    pub fn decode_protobuf(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        NodeStatsPb::decode(bytes).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeStats {
        NodeStats {
            started_at: 1_700_000_000,
            updated_at: 1_700_000_010,
            num_rooms: -1,
            num_clients: 3,
            bytes_in: 1 << 40,
            num_cpus: 4,
            num_cpus_exact: 4.0,
            load_avg_last1min: 0.5,
            cpu_load: 0.25,
            sys_packets_out: 7,
            forward_latency: 99,
            num_track_subscribe_cancels: 2,
            participant_rtc_active: 5,
            rates: vec![NodeStatsRate {
                started_at: 1_700_000_000,
                ended_at: 1_700_000_010,
                duration: 10,
                bytes_in: 1500.0,
                nack_total: 0.5,
                participant_rtc_active: 0.25,
                interval_seconds: 10.0,
                window_seconds: 10.0,
                complete: true,
                ..NodeStatsRate::default()
            }],
            ..NodeStats::default()
        }
    }

    #[test]
    fn wire_bytes_are_the_hand_checked_ones() {
        let ns = NodeStats {
            num_rooms: -1,
            cpu_load: 0.5,
            ..NodeStats::default()
        };
        let b = ns.encode_protobuf();
        // Key 3 << 3 | 0, then -1 as a 10-byte sign-extended varint.
        assert_eq!(b[0], 3 << 3);
        assert_eq!(
            &b[1..11],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        // Key 21 << 3 | 5 = 173 is a two-byte varint, then 0.5f32.
        assert_eq!(&b[11..], &[0xad, 0x01, 0, 0, 0, 0x3f]);
        assert!(
            NodeStats::default().encode_protobuf().is_empty(),
            "defaults are not written"
        );
    }

    #[test]
    fn decoding_gives_back_what_was_encoded() {
        let ns = sample();
        assert_eq!(
            NodeStats::decode_protobuf(&ns.encode_protobuf()).unwrap(),
            ns
        );
        let r = &ns.rates[0];
        assert_eq!(
            NodeStatsRate::decode_protobuf(&r.encode_protobuf()).unwrap(),
            *r
        );
    }

    /// Every field LiveKit has not deprecated, as a Go encoder writes it
    /// alone (value 1), survives decoding and encoding again, byte for
    /// byte: in `NodeStats`, in `NodeStatsRate`, and in a rate inside
    /// `NodeStats.rates`. The table is the reference one.
    #[test]
    fn every_livekit_field_round_trips() {
        let table = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/livekit-nodestats-fields.tsv"
        ));
        let varint = |mut v: u64, out: &mut Vec<u8>| loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        };
        let (mut checked, mut lost) = (0, Vec::new());
        for line in table.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split('\t').collect();
            let (message, name, number, ty) = (cols[0], cols[1], cols[2], cols[3]);
            if cols.get(4) == Some(&"deprecated") || ty.starts_with("NodeStatsRate") {
                continue;
            }
            let number: u64 = number.parse().unwrap();
            let mut one = Vec::new();
            if ty == "float" {
                varint(number << 3 | 5, &mut one);
                one.extend_from_slice(&1.0f32.to_le_bytes());
            } else {
                varint(number << 3, &mut one);
                one.push(1);
            }
            match message {
                "NodeStats" => {
                    let back = NodeStats::decode_protobuf(&one).unwrap().encode_protobuf();
                    if back != one {
                        lost.push(format!("NodeStats.{name} (#{number})"));
                    }
                }
                "NodeStatsRate" => {
                    let back = NodeStatsRate::decode_protobuf(&one)
                        .unwrap()
                        .encode_protobuf();
                    if back != one {
                        lost.push(format!("NodeStatsRate.{name} (#{number})"));
                    }
                    let mut nested = vec![0x92, 0x03];
                    varint(one.len() as u64, &mut nested);
                    nested.extend_from_slice(&one);
                    let back = NodeStats::decode_protobuf(&nested)
                        .unwrap()
                        .encode_protobuf();
                    if back != nested {
                        lost.push(format!("NodeStats.rates[0].{name} (#{number})"));
                    }
                }
                other => panic!("unknown message {other}"),
            }
            checked += 1;
        }
        assert!(checked >= 60, "only {checked} fields in the table");
        assert!(lost.is_empty(), "lost in a round trip: {lost:?}");
    }

    #[test]
    fn sys_packets_keep_their_low_32_bits() {
        let ns = NodeStats {
            sys_packets_out: (1 << 32) + 5,
            ..NodeStats::default()
        };
        let back = NodeStats::decode_protobuf(&ns.encode_protobuf()).unwrap();
        assert_eq!(back.sys_packets_out, 5);
    }

    #[test]
    fn bad_bytes_are_an_error_not_a_panic() {
        assert!(NodeStats::decode_protobuf(&[0xff]).is_err());
        assert!(NodeStats::decode_protobuf(&[0x0a, 0x05, 1]).is_err());
        assert!(NodeStats::decode_protobuf(b"definitely not protobuf").is_err());
        // A nested rate that is cut short.
        assert!(NodeStats::decode_protobuf(&[0x92, 0x03, 0x04, 0x08]).is_err());
    }

    #[test]
    fn node_messages_carry_their_stats() {
        let node = NodePb {
            id: "ND_a".into(),
            ip: "10.0.0.1".into(),
            num_cpus: 4,
            stats: Some(NodeStatsPb::from(&sample())),
            r#type: 0,
            state: 1,
            region: "eu".into(),
        };
        let back = NodePb::decode(node.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, node);
        assert_eq!(NodeStats::from(back.stats.unwrap()), sample());
    }
}
