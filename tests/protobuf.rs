//! `NodeStats::encode_protobuf` decoded by an independent decoder: prost
//! messages declared here from the reference field table
//! (`livekit-nodestats-fields.tsv`: every field, deprecated ones included).

#![allow(dead_code)]

use nodestats::{Collector, CollectorConfig, Direction, Stats, Timestamp, TrackKind};
use prost::Message;
use std::time::Duration;

#[derive(Clone, PartialEq, prost::Message)]
struct NodeStatsPb {
    #[prost(int64, tag = "1")]
    started_at: i64,
    #[prost(int64, tag = "2")]
    updated_at: i64,
    #[prost(int32, tag = "3")]
    num_rooms: i32,
    #[prost(int32, tag = "4")]
    num_clients: i32,
    #[prost(int32, tag = "5")]
    num_tracks_in: i32,
    #[prost(int32, tag = "6")]
    num_tracks_out: i32,
    #[prost(int32, tag = "36")]
    num_track_publish_attempts: i32,
    #[prost(float, tag = "37")]
    track_publish_attempts_per_sec: f32,
    #[prost(int32, tag = "38")]
    num_track_publish_success: i32,
    #[prost(float, tag = "39")]
    track_publish_success_per_sec: f32,
    #[prost(int32, tag = "51")]
    num_track_publish_cancels: i32,
    #[prost(int32, tag = "40")]
    num_track_subscribe_attempts: i32,
    #[prost(float, tag = "41")]
    track_subscribe_attempts_per_sec: f32,
    #[prost(int32, tag = "42")]
    num_track_subscribe_success: i32,
    #[prost(float, tag = "43")]
    track_subscribe_success_per_sec: f32,
    #[prost(int32, tag = "52")]
    num_track_subscribe_cancels: i32,
    #[prost(uint64, tag = "7")]
    bytes_in: u64,
    #[prost(uint64, tag = "8")]
    bytes_out: u64,
    #[prost(uint64, tag = "9")]
    packets_in: u64,
    #[prost(uint64, tag = "10")]
    packets_out: u64,
    #[prost(uint64, tag = "11")]
    nack_total: u64,
    #[prost(float, tag = "12")]
    bytes_in_per_sec: f32,
    #[prost(float, tag = "13")]
    bytes_out_per_sec: f32,
    #[prost(float, tag = "14")]
    packets_in_per_sec: f32,
    #[prost(float, tag = "15")]
    packets_out_per_sec: f32,
    #[prost(float, tag = "16")]
    nack_per_sec: f32,
    #[prost(uint32, tag = "17")]
    num_cpus: u32,
    #[prost(float, tag = "18")]
    load_avg_last1min: f32,
    #[prost(float, tag = "19")]
    load_avg_last5min: f32,
    #[prost(float, tag = "20")]
    load_avg_last15min: f32,
    #[prost(float, tag = "21")]
    cpu_load: f32,
    #[prost(float, tag = "33")]
    memory_load: f32,
    #[prost(uint64, tag = "34")]
    memory_total: u64,
    #[prost(uint64, tag = "35")]
    memory_used: u64,
    #[prost(uint32, tag = "28")]
    sys_packets_out: u32,
    #[prost(uint32, tag = "29")]
    sys_packets_dropped: u32,
    #[prost(float, tag = "30")]
    sys_packets_out_per_sec: f32,
    #[prost(float, tag = "31")]
    sys_packets_dropped_per_sec: f32,
    #[prost(float, tag = "32")]
    sys_packets_dropped_pct_per_sec: f32,
    #[prost(uint64, tag = "22")]
    retransmit_bytes_out: u64,
    #[prost(uint64, tag = "23")]
    retransmit_packets_out: u64,
    #[prost(float, tag = "24")]
    retransmit_bytes_out_per_sec: f32,
    #[prost(float, tag = "25")]
    retransmit_packets_out_per_sec: f32,
    #[prost(uint64, tag = "26")]
    participant_signal_connected: u64,
    #[prost(float, tag = "27")]
    participant_signal_connected_per_sec: f32,
    #[prost(uint64, tag = "55")]
    participant_signal_failed: u64,
    #[prost(uint64, tag = "56")]
    participant_signal_validation_failed: u64,
    #[prost(uint64, tag = "44")]
    participant_rtc_connected: u64,
    #[prost(float, tag = "45")]
    participant_rtc_connected_per_sec: f32,
    #[prost(uint64, tag = "46")]
    participant_rtc_init: u64,
    #[prost(float, tag = "47")]
    participant_rtc_init_per_sec: f32,
    #[prost(uint64, tag = "53")]
    participant_rtc_canceled: u64,
    #[prost(uint64, tag = "54")]
    participant_rtc_active: u64,
    #[prost(uint32, tag = "48")]
    forward_latency: u32,
    #[prost(uint32, tag = "49")]
    forward_jitter: u32,
    #[prost(message, repeated, tag = "50")]
    rates: Vec<NodeStatsRatePb>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NodeStatsRatePb {
    #[prost(int64, tag = "1")]
    started_at: i64,
    #[prost(int64, tag = "2")]
    ended_at: i64,
    #[prost(int64, tag = "3")]
    duration: i64,
    #[prost(float, tag = "4")]
    track_publish_attempts: f32,
    #[prost(float, tag = "5")]
    track_publish_success: f32,
    #[prost(float, tag = "24")]
    track_publish_cancels: f32,
    #[prost(float, tag = "6")]
    track_subscribe_attempts: f32,
    #[prost(float, tag = "7")]
    track_subscribe_success: f32,
    #[prost(float, tag = "25")]
    track_subscribe_cancels: f32,
    #[prost(float, tag = "8")]
    bytes_in: f32,
    #[prost(float, tag = "9")]
    bytes_out: f32,
    #[prost(float, tag = "10")]
    packets_in: f32,
    #[prost(float, tag = "11")]
    packets_out: f32,
    #[prost(float, tag = "12")]
    nack_total: f32,
    #[prost(float, tag = "13")]
    sys_packets_out: f32,
    #[prost(float, tag = "14")]
    sys_packets_dropped: f32,
    #[prost(float, tag = "15")]
    retransmit_bytes_out: f32,
    #[prost(float, tag = "16")]
    retransmit_packets_out: f32,
    #[prost(float, tag = "17")]
    participant_signal_connected: f32,
    #[prost(float, tag = "28")]
    participant_signal_failed: f32,
    #[prost(float, tag = "29")]
    participant_signal_validation_failed: f32,
    #[prost(float, tag = "18")]
    participant_rtc_connected: f32,
    #[prost(float, tag = "19")]
    participant_rtc_init: f32,
    #[prost(float, tag = "26")]
    participant_rtc_canceled: f32,
    #[prost(float, tag = "27")]
    participant_rtc_active: f32,
    #[prost(float, tag = "20")]
    cpu_load: f32,
    #[prost(float, tag = "21")]
    memory_load: f32,
    #[prost(float, tag = "22")]
    memory_used: f32,
    #[prost(float, tag = "23")]
    memory_total: f32,
}

#[test]
fn protobuf_bytes_decode_as_livekit_node_stats() {
    let stats = Stats::anonymous().unwrap();
    let config = CollectorConfig {
        system: None,
        update_interval: Duration::from_secs(1),
        rate_intervals: vec![Duration::from_secs(2), Duration::from_secs(4)],
        started_at: Some(1_700_000_000),
    };
    let mut c = Collector::new(stats.segment().clone(), config).unwrap();
    let at = |s: u64| Timestamp {
        monotonic: Duration::from_secs(s),
        unix: Duration::from_secs(1_700_000_100 + s),
    };
    c.update_at(at(0));
    stats.record_packets(Direction::Incoming, 1000, 1_200_000, false);
    stats.record_packets(Direction::Outgoing, 30, 36_000, true);
    stats.record_rtcp(Direction::Incoming, 7, 0, 0);
    stats.room_started();
    stats.participant_added();
    stats.participant_added();
    stats.track_published(TrackKind::Video);
    stats.track_publish_attempt(TrackKind::Video);
    stats.track_publish_cancels(TrackKind::Audio, 2);
    stats.track_subscribe_success(TrackKind::Audio);
    stats.participant_rtc_active(3, false);
    stats.participant_rtc_canceled(1, true);
    stats.forward_latency(123_456);
    c.update_at(at(2));
    let mut ns = c.update_at(at(4));
    ns.load_avg_last1min = 0.75;
    ns.cpu_load = 0.5;
    ns.memory_used = 1 << 33;
    ns.memory_total = 1 << 34;
    ns.sys_packets_out = (1 << 32) + 5;
    ns.num_cpus = 3;
    ns.num_rooms = -1; // negative int32s survive the round trip
    let bytes = ns.encode_protobuf();
    let pb = NodeStatsPb::decode(bytes.as_slice()).unwrap();
    assert_eq!(pb.started_at, 1_700_000_000);
    assert_eq!(pb.updated_at, 1_700_000_104);
    assert_eq!(pb.num_rooms, -1);
    assert_eq!(
        (pb.num_clients, pb.num_tracks_in, pb.num_tracks_out),
        (2, 1, 1)
    );
    assert_eq!((pb.bytes_in, pb.packets_in), (1_200_000, 1000));
    assert_eq!((pb.bytes_out, pb.packets_out), (36_000, 30));
    assert_eq!(
        (pb.retransmit_bytes_out, pb.retransmit_packets_out),
        (36_000, 30)
    );
    assert_eq!(pb.nack_total, 7);
    assert_eq!(pb.num_cpus, 3);
    assert_eq!((pb.load_avg_last1min, pb.cpu_load), (0.75, 0.5));
    assert_eq!((pb.memory_used, pb.memory_total), (1 << 33, 1 << 34));
    assert_eq!(
        pb.sys_packets_out, 5,
        "low 32 bits, as LiveKit's uint32 keeps"
    );
    assert_eq!(
        (pb.num_track_publish_attempts, pb.num_track_publish_cancels),
        (1, 2)
    );
    assert_eq!(pb.num_track_subscribe_success, 1);
    assert_eq!(
        (pb.participant_rtc_active, pb.participant_rtc_canceled),
        (3, 1)
    );
    assert_eq!(pb.forward_latency, 123_456);
    assert_eq!(
        pb.participant_signal_failed, 0,
        "deprecated fields stay unset"
    );
    assert_eq!(pb.bytes_in_per_sec, 0.0);
    assert_eq!(pb.rates.len(), 2);
    let (r2, r4) = (&pb.rates[0], &pb.rates[1]);
    assert_eq!(
        (r2.started_at, r2.ended_at, r2.duration),
        (1_700_000_102, 1_700_000_104, 2)
    );
    assert_eq!(r2.packets_in, 0.0, "nothing arrived in the last 2 s");
    assert_eq!(
        (r4.duration, r4.packets_in, r4.bytes_in),
        (4, 250.0, 300_000.0)
    );
    assert_eq!(r4.nack_total, 1.75);
    assert_eq!(r4.track_publish_cancels, 0.5);
    // And the encoding is what prost itself would write for the same values.
    assert_eq!(bytes, pb.encode_to_vec());
}
