//! Every metric family LiveKit's `prometheus.Init` registers (49), with
//! the same names, types, variable labels and buckets, plus our own.
//!
//! The table is the single source of truth: recording functions name a
//! [`Family`], the segment stores its index, and the exporter reads names,
//! help, labels and buckets from here.

/// Metric type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter.
    Counter,
    /// Up-and-down value.
    Gauge,
    /// Bucketed distribution with sum and count.
    Histogram,
}

/// Bucket upper bounds of a histogram family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Buckets {
    /// Explicit upper bounds.
    List(&'static [f64]),
    /// `n` bounds spaced geometrically from `min` to `max` inclusive,
    /// bit-identical to client_golang's `ExponentialBucketsRange` (Go's
    /// `math.Pow`, reproduced in `gofloat`).
    ExpRange(f64, f64, usize),
}

/// Most buckets any family has (+Inf excluded).
pub const MAX_BUCKETS: usize = 15;

impl Buckets {
    /// The upper bounds, ascending, +Inf excluded.
    pub fn bounds(&self) -> ([f64; MAX_BUCKETS], usize) {
        let mut out = [0.0; MAX_BUCKETS];
        match *self {
            Buckets::List(l) => {
                out[..l.len()].copy_from_slice(l);
                (out, l.len())
            }
            Buckets::ExpRange(min, max, n) => {
                let n = n.min(MAX_BUCKETS);
                let n = crate::gofloat::exponential_buckets_range_into(min, max, &mut out[..n]);
                (out, n)
            }
        }
    }
}

/// One metric family.
#[derive(Clone, Copy, Debug)]
pub struct FamilyDef {
    /// Full metric name.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Metric type.
    pub kind: Kind,
    /// Variable label names, in order.
    pub labels: &'static [&'static str],
    /// Buckets (histograms only).
    pub buckets: Buckets,
}

impl FamilyDef {
    /// Values a series of this family occupies per shard: one for counters
    /// and gauges; buckets, +Inf and the sum for histograms.
    pub fn value_count(&self) -> usize {
        match self.kind {
            Kind::Histogram => self.buckets.bounds().1 + 2,
            _ => 1,
        }
    }
}

/// A metric family, by LiveKit's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
#[allow(missing_docs)]
pub enum Family {
    /// `livekit_node_messages`
    NodeMessages = 0,
    /// `livekit_node_service_operation`
    NodeServiceOperation = 1,
    /// `livekit_node_twirp_request_status`
    NodeTwirpRequestStatus = 2,
    /// `livekit_node_twirp_request_latency_ms`
    NodeTwirpRequestLatencyMs = 3,
    /// `livekit_node_packet_total`
    NodePacketTotal = 4,
    /// `livekit_packet_total`
    PacketTotal = 5,
    /// `livekit_packet_bytes`
    PacketBytes = 6,
    /// `livekit_nack_total`
    NackTotal = 7,
    /// `livekit_pli_total`
    PliTotal = 8,
    /// `livekit_fir_total`
    FirTotal = 9,
    /// `livekit_packet_loss_total`
    PacketLossTotal = 10,
    /// `livekit_packet_loss_percent`
    PacketLossPercent = 11,
    /// `livekit_packet_out_of_order_total`
    PacketOutOfOrderTotal = 12,
    /// `livekit_packet_out_of_order_percent`
    PacketOutOfOrderPercent = 13,
    /// `livekit_jitter_us`
    JitterUs = 14,
    /// `livekit_rtt_ms`
    RttMs = 15,
    /// `livekit_participant_join_total`
    ParticipantJoinTotal = 16,
    /// `livekit_connection_total`
    ConnectionTotal = 17,
    /// `livekit_forward_latency`
    ForwardLatency = 18,
    /// `livekit_forward_jitter`
    ForwardJitter = 19,
    /// `livekit_forward_latency_ns`
    ForwardLatencyNs = 20,
    /// `livekit_room_total`
    RoomTotal = 21,
    /// `livekit_room_duration_seconds`
    RoomDurationSeconds = 22,
    /// `livekit_participant_total`
    ParticipantTotal = 23,
    /// `livekit_track_published_total`
    TrackPublishedTotal = 24,
    /// `livekit_track_subscribed_total`
    TrackSubscribedTotal = 25,
    /// `livekit_track_publish_counter`
    TrackPublishCounter = 26,
    /// `livekit_track_subscribe_counter`
    TrackSubscribeCounter = 27,
    /// `livekit_session_join_latency_ms`
    SessionJoinLatencyMs = 28,
    /// `livekit_session_start_time_ms`
    SessionStartTimeMs = 29,
    /// `livekit_session_duration_ms`
    SessionDurationMs = 30,
    /// `livekit_pubsubtime_ms`
    PubsubtimeMs = 31,
    /// `livekit_peer_connection_state`
    PeerConnectionState = 32,
    /// `livekit_quality_rating`
    QualityRating = 33,
    /// `livekit_quality_score`
    QualityScore = 34,
    /// `livekit_datapacket_stream_dest_count`
    DatapacketStreamDestCount = 35,
    /// `livekit_datapacket_stream_bytes`
    DatapacketStreamBytes = 36,
    /// `livekit_debug_ref_count`
    DebugRefCount = 37,
    /// `livekit_webhook_dispatch_total`
    WebhookDispatchTotal = 38,
    /// `livekit_webhook_queue_length`
    WebhookQueueLength = 39,
    /// `livekit_psrpc_request_time_ms`
    PsrpcRequestTimeMs = 40,
    /// `livekit_psrpc_stream_send_time_ms`
    PsrpcStreamSendTimeMs = 41,
    /// `livekit_psrpc_stream_receive_total`
    PsrpcStreamReceiveTotal = 42,
    /// `livekit_psrpc_stream_count`
    PsrpcStreamCount = 43,
    /// `livekit_psrpc_error_total`
    PsrpcErrorTotal = 44,
    /// `livekit_psrpc_bytes_total`
    PsrpcBytesTotal = 45,
    /// `livekit_psrpc_requests_received_total`
    PsrpcRequestsReceivedTotal = 46,
    /// `livekit_psrpc_requests_expired_total`
    PsrpcRequestsExpiredTotal = 47,
    /// `livekit_psrpc_claim_wait_time_ms`
    PsrpcClaimWaitTimeMs = 48,
}

/// Number of LiveKit families.
pub const LIVEKIT_FAMILIES: usize = 49;

impl Family {
    /// Every family, in registration order.
    pub const ALL: [Family; LIVEKIT_FAMILIES] = [
        Family::NodeMessages,
        Family::NodeServiceOperation,
        Family::NodeTwirpRequestStatus,
        Family::NodeTwirpRequestLatencyMs,
        Family::NodePacketTotal,
        Family::PacketTotal,
        Family::PacketBytes,
        Family::NackTotal,
        Family::PliTotal,
        Family::FirTotal,
        Family::PacketLossTotal,
        Family::PacketLossPercent,
        Family::PacketOutOfOrderTotal,
        Family::PacketOutOfOrderPercent,
        Family::JitterUs,
        Family::RttMs,
        Family::ParticipantJoinTotal,
        Family::ConnectionTotal,
        Family::ForwardLatency,
        Family::ForwardJitter,
        Family::ForwardLatencyNs,
        Family::RoomTotal,
        Family::RoomDurationSeconds,
        Family::ParticipantTotal,
        Family::TrackPublishedTotal,
        Family::TrackSubscribedTotal,
        Family::TrackPublishCounter,
        Family::TrackSubscribeCounter,
        Family::SessionJoinLatencyMs,
        Family::SessionStartTimeMs,
        Family::SessionDurationMs,
        Family::PubsubtimeMs,
        Family::PeerConnectionState,
        Family::QualityRating,
        Family::QualityScore,
        Family::DatapacketStreamDestCount,
        Family::DatapacketStreamBytes,
        Family::DebugRefCount,
        Family::WebhookDispatchTotal,
        Family::WebhookQueueLength,
        Family::PsrpcRequestTimeMs,
        Family::PsrpcStreamSendTimeMs,
        Family::PsrpcStreamReceiveTotal,
        Family::PsrpcStreamCount,
        Family::PsrpcErrorTotal,
        Family::PsrpcBytesTotal,
        Family::PsrpcRequestsReceivedTotal,
        Family::PsrpcRequestsExpiredTotal,
        Family::PsrpcClaimWaitTimeMs,
    ];

    /// The family's definition.
    pub fn def(self) -> &'static FamilyDef {
        &FAMILIES[self as usize]
    }

    /// The family with the given metric name (e.g. `livekit_rtt_ms`).
    pub fn from_name(name: &str) -> Option<Family> {
        Self::ALL.into_iter().find(|f| f.def().name == name)
    }

    /// The family with index `i`, if any.
    pub fn from_index(i: usize) -> Option<Family> {
        Self::ALL.get(i).copied()
    }

    /// Whether the series of this family with these label values is one
    /// that the fixed counters and gauges already export: every series of
    /// the families they own outright, an empty `country` in the per-packet
    /// families, an empty `error` in `livekit_track_subscribe_counter`. A
    /// labeled series with those labels would print the same sample twice,
    /// so it is refused (in Rust and in C alike); record it through the
    /// fixed call instead.
    pub fn duplicates_fixed(self, labels: &[&str]) -> bool {
        use Family as F;
        match self {
            F::NodePacketTotal
            | F::ParticipantJoinTotal
            | F::ConnectionTotal
            | F::ForwardLatency
            | F::ForwardJitter
            | F::RoomTotal
            | F::ParticipantTotal
            | F::TrackPublishedTotal
            | F::TrackSubscribedTotal
            | F::TrackPublishCounter => true,
            F::PacketTotal | F::PacketBytes | F::NackTotal | F::PliTotal | F::FirTotal => {
                labels.last().is_some_and(|country| country.is_empty())
            }
            F::TrackSubscribeCounter => labels.get(1).is_some_and(|error| error.is_empty()),
            _ => false,
        }
    }
}

/// Definitions, indexed by [`Family`].
pub static FAMILIES: [FamilyDef; LIVEKIT_FAMILIES] = [
    FamilyDef {
        name: "livekit_node_messages",
        help: HELP[Family::NodeMessages as usize],
        kind: Kind::Counter,
        labels: &["type", "status", "direction"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_node_service_operation",
        help: HELP[Family::NodeServiceOperation as usize],
        kind: Kind::Counter,
        labels: &["type", "status", "error_type"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_node_twirp_request_status",
        help: HELP[Family::NodeTwirpRequestStatus as usize],
        kind: Kind::Counter,
        labels: &["service", "method", "status", "code"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_node_twirp_request_latency_ms",
        help: HELP[Family::NodeTwirpRequestLatencyMs as usize],
        kind: Kind::Histogram,
        labels: &["service", "method", "status"],
        buckets: Buckets::List(&[
            5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
            60000.0,
        ]),
    },
    FamilyDef {
        name: "livekit_node_packet_total",
        help: HELP[Family::NodePacketTotal as usize],
        kind: Kind::Gauge,
        labels: &["type"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_packet_total",
        help: HELP[Family::PacketTotal as usize],
        kind: Kind::Counter,
        labels: &["direction", "transmission", "country"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_packet_bytes",
        help: HELP[Family::PacketBytes as usize],
        kind: Kind::Counter,
        labels: &["direction", "transmission", "country"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_nack_total",
        help: HELP[Family::NackTotal as usize],
        kind: Kind::Counter,
        labels: &["direction", "country"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_pli_total",
        help: HELP[Family::PliTotal as usize],
        kind: Kind::Counter,
        labels: &["direction", "country"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_fir_total",
        help: HELP[Family::FirTotal as usize],
        kind: Kind::Counter,
        labels: &["direction", "country"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_packet_loss_total",
        help: HELP[Family::PacketLossTotal as usize],
        kind: Kind::Counter,
        labels: &["direction", "source", "type", "country"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_packet_loss_percent",
        help: HELP[Family::PacketLossPercent as usize],
        kind: Kind::Histogram,
        labels: &["direction", "source", "type", "country"],
        buckets: Buckets::List(&[0.0, 0.1, 0.3, 0.5, 0.7, 1.0, 5.0, 10.0, 40.0, 100.0]),
    },
    FamilyDef {
        name: "livekit_packet_out_of_order_total",
        help: HELP[Family::PacketOutOfOrderTotal as usize],
        kind: Kind::Counter,
        labels: &["direction", "source", "type", "country"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_packet_out_of_order_percent",
        help: HELP[Family::PacketOutOfOrderPercent as usize],
        kind: Kind::Histogram,
        labels: &["direction", "source", "type", "country"],
        buckets: Buckets::List(&[0.0, 0.1, 0.3, 0.5, 0.7, 1.0, 5.0, 10.0, 40.0, 100.0]),
    },
    FamilyDef {
        name: "livekit_jitter_us",
        help: HELP[Family::JitterUs as usize],
        kind: Kind::Histogram,
        labels: &["direction", "source", "type", "country"],
        buckets: Buckets::List(&[
            1000.0, 10000.0, 30000.0, 50000.0, 70000.0, 100000.0, 300000.0, 600000.0, 1000000.0,
        ]),
    },
    FamilyDef {
        name: "livekit_rtt_ms",
        help: HELP[Family::RttMs as usize],
        kind: Kind::Histogram,
        labels: &["direction", "source", "type", "country"],
        buckets: Buckets::List(&[
            50.0, 100.0, 150.0, 200.0, 250.0, 500.0, 750.0, 1000.0, 5000.0, 10000.0,
        ]),
    },
    FamilyDef {
        name: "livekit_participant_join_total",
        help: HELP[Family::ParticipantJoinTotal as usize],
        kind: Kind::Counter,
        labels: &["state", "warp"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_connection_total",
        help: HELP[Family::ConnectionTotal as usize],
        kind: Kind::Gauge,
        labels: &["kind"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_forward_latency",
        help: HELP[Family::ForwardLatency as usize],
        kind: Kind::Gauge,
        labels: &[],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_forward_jitter",
        help: HELP[Family::ForwardJitter as usize],
        kind: Kind::Gauge,
        labels: &[],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_forward_latency_ns",
        help: HELP[Family::ForwardLatencyNs as usize],
        kind: Kind::Histogram,
        labels: &[],
        buckets: Buckets::List(&[
            50000.0, 100000.0, 250000.0, 500000.0, 1000000.0, 2000000.0, 3000000.0, 5000000.0,
            10000000.0, 20000000.0,
        ]),
    },
    FamilyDef {
        name: "livekit_room_total",
        help: HELP[Family::RoomTotal as usize],
        kind: Kind::Gauge,
        labels: &[],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_room_duration_seconds",
        help: HELP[Family::RoomDurationSeconds as usize],
        kind: Kind::Histogram,
        labels: &[],
        buckets: Buckets::List(&[
            5.0, 10.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 18000.0, 36000.0,
        ]),
    },
    FamilyDef {
        name: "livekit_participant_total",
        help: HELP[Family::ParticipantTotal as usize],
        kind: Kind::Gauge,
        labels: &[],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_track_published_total",
        help: HELP[Family::TrackPublishedTotal as usize],
        kind: Kind::Gauge,
        labels: &["kind"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_track_subscribed_total",
        help: HELP[Family::TrackSubscribedTotal as usize],
        kind: Kind::Gauge,
        labels: &["kind"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_track_publish_counter",
        help: HELP[Family::TrackPublishCounter as usize],
        kind: Kind::Counter,
        labels: &["kind", "state"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_track_subscribe_counter",
        help: HELP[Family::TrackSubscribeCounter as usize],
        kind: Kind::Counter,
        labels: &["state", "error"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_session_join_latency_ms",
        help: HELP[Family::SessionJoinLatencyMs as usize],
        kind: Kind::Histogram,
        labels: &["protocol_version"],
        buckets: Buckets::ExpRange(10.0, 10000.0, 15),
    },
    FamilyDef {
        name: "livekit_session_start_time_ms",
        help: HELP[Family::SessionStartTimeMs as usize],
        kind: Kind::Histogram,
        labels: &["protocol_version", "warp"],
        buckets: Buckets::ExpRange(100.0, 10000.0, 15),
    },
    FamilyDef {
        name: "livekit_session_duration_ms",
        help: HELP[Family::SessionDurationMs as usize],
        kind: Kind::Histogram,
        labels: &["protocol_version"],
        buckets: Buckets::ExpRange(100.0, 14400000.0, 15),
    },
    FamilyDef {
        name: "livekit_pubsubtime_ms",
        help: HELP[Family::PubsubtimeMs as usize],
        kind: Kind::Histogram,
        labels: &[
            "direction",
            "source",
            "type",
            "country",
            "sdk",
            "kind",
            "count",
        ],
        buckets: Buckets::List(&[100.0, 200.0, 500.0, 700.0, 1000.0, 5000.0, 10000.0]),
    },
    FamilyDef {
        name: "livekit_peer_connection_state",
        help: HELP[Family::PeerConnectionState as usize],
        kind: Kind::Counter,
        labels: &["transport", "state"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_quality_rating",
        help: HELP[Family::QualityRating as usize],
        kind: Kind::Histogram,
        labels: &[],
        buckets: Buckets::List(&[0.0, 1.0, 2.0]),
    },
    FamilyDef {
        name: "livekit_quality_score",
        help: HELP[Family::QualityScore as usize],
        kind: Kind::Histogram,
        labels: &[],
        buckets: Buckets::List(&[1.0, 2.0, 2.5, 3.0, 3.25, 3.5, 3.75, 4.0, 4.25, 4.5]),
    },
    FamilyDef {
        name: "livekit_datapacket_stream_dest_count",
        help: HELP[Family::DatapacketStreamDestCount as usize],
        kind: Kind::Histogram,
        labels: &["type", "mime_type"],
        buckets: Buckets::List(&[1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 15.0, 25.0, 50.0]),
    },
    FamilyDef {
        name: "livekit_datapacket_stream_bytes",
        help: HELP[Family::DatapacketStreamBytes as usize],
        kind: Kind::Histogram,
        labels: &["type", "mime_type"],
        buckets: Buckets::List(&[
            128.0, 512.0, 2048.0, 8192.0, 32768.0, 131072.0, 524288.0, 2097152.0, 8388608.0,
            33554432.0,
        ]),
    },
    FamilyDef {
        name: "livekit_debug_ref_count",
        help: HELP[Family::DebugRefCount as usize],
        kind: Kind::Gauge,
        labels: &["referrer"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_webhook_dispatch_total",
        help: HELP[Family::WebhookDispatchTotal as usize],
        kind: Kind::Counter,
        labels: &["status", "reason"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_webhook_queue_length",
        help: HELP[Family::WebhookQueueLength as usize],
        kind: Kind::Histogram,
        labels: &[],
        buckets: Buckets::List(&[1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 40.0, 80.0]),
    },
    FamilyDef {
        name: "livekit_psrpc_request_time_ms",
        help: HELP[Family::PsrpcRequestTimeMs as usize],
        kind: Kind::Histogram,
        labels: &["role", "kind", "service", "method"],
        buckets: Buckets::List(&[
            10.0, 50.0, 100.0, 300.0, 500.0, 1000.0, 1500.0, 2000.0, 5000.0, 10000.0,
        ]),
    },
    FamilyDef {
        name: "livekit_psrpc_stream_send_time_ms",
        help: HELP[Family::PsrpcStreamSendTimeMs as usize],
        kind: Kind::Histogram,
        labels: &["role", "service", "method"],
        buckets: Buckets::List(&[
            10.0, 50.0, 100.0, 300.0, 500.0, 1000.0, 1500.0, 2000.0, 5000.0, 10000.0,
        ]),
    },
    FamilyDef {
        name: "livekit_psrpc_stream_receive_total",
        help: HELP[Family::PsrpcStreamReceiveTotal as usize],
        kind: Kind::Counter,
        labels: &["role", "service", "method"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_psrpc_stream_count",
        help: HELP[Family::PsrpcStreamCount as usize],
        kind: Kind::Gauge,
        labels: &["role", "service", "method"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_psrpc_error_total",
        help: HELP[Family::PsrpcErrorTotal as usize],
        kind: Kind::Counter,
        labels: &["role", "kind", "service", "method", "error_code"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_psrpc_bytes_total",
        help: HELP[Family::PsrpcBytesTotal as usize],
        kind: Kind::Counter,
        labels: &["role", "kind", "service", "method", "direction"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_psrpc_requests_received_total",
        help: HELP[Family::PsrpcRequestsReceivedTotal as usize],
        kind: Kind::Counter,
        labels: &["service", "method"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_psrpc_requests_expired_total",
        help: HELP[Family::PsrpcRequestsExpiredTotal as usize],
        kind: Kind::Counter,
        labels: &["service", "method"],
        buckets: Buckets::List(&[]),
    },
    FamilyDef {
        name: "livekit_psrpc_claim_wait_time_ms",
        help: HELP[Family::PsrpcClaimWaitTimeMs as usize],
        kind: Kind::Histogram,
        labels: &["service", "method", "outcome"],
        buckets: Buckets::List(&[
            1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 3000.0,
        ]),
    },
];

/// Help text, indexed by [`Family`] (LiveKit leaves all but one empty).
const HELP: [&str; LIVEKIT_FAMILIES] = [
    "Signal messages handled, by type, status and direction.",
    "Service operations (participant join, peer connection, offer, answer) by status and error type.",
    "Twirp API requests by service, method, HTTP status family and twirp error code.",
    "Twirp API request latency in milliseconds.",
    "System level packet count. Count starts at 0 when service is first started.",
    "RTP/RTCP packets by direction, transmission (initial or retransmit) and country.",
    "Bytes of packets by direction, transmission and country.",
    "RTCP NACKs by direction and country.",
    "RTCP picture loss indications by direction and country.",
    "RTCP full intra requests by direction and country.",
    "Packets lost, by direction, track source, track type and country.",
    "Packet loss percentage per report, by direction, track source, track type and country.",
    "Out-of-order packets, by direction, track source, track type and country.",
    "Out-of-order percentage per report, by direction, track source, track type and country.",
    "Interarrival jitter in microseconds, by direction, track source, track type and country.",
    "Round-trip time in milliseconds, by direction, track source, track type and country.",
    "Participant join funnel: signal and RTC states reached.",
    "Open transport connections by kind (incoming or outgoing).",
    "Mean forwarding latency over the report window, nanoseconds.",
    "Standard deviation of forwarding latency over the report window, nanoseconds.",
    "Forwarding latency samples, nanoseconds.",
    "Rooms open on this node.",
    "Room lifetime in seconds, observed when a room ends.",
    "Participants connected to this node.",
    "Published tracks live on this node, by kind.",
    "Subscribed tracks live on this node, by kind.",
    "Track publications by kind and state (attempt, success, cancel).",
    "Track subscriptions by state (attempt, success, failure, cancel) and error.",
    "Time to join a session in milliseconds, by protocol version.",
    "Time to start a session in milliseconds, by protocol version and warp.",
    "Session duration in milliseconds, by protocol version.",
    "Time to publish or subscribe in milliseconds, by direction, source, type, country, SDK, participant kind and count.",
    "Peer connection state transitions by transport and state.",
    "Connection quality ratings (0 poor, 1 good, 2 excellent, 3 lost).",
    "Connection quality scores (MOS-like, 1 to 5).",
    "Destinations per data packet stream, by stream type and MIME major type.",
    "Total bytes per data packet stream, by stream type and MIME major type.",
    "Debug reference counts by referrer.",
    "Webhook dispatches by status and drop reason.",
    "Webhook queue length after each enqueue.",
    "PSRPC request time in milliseconds, by role, kind, service and method.",
    "PSRPC stream send time in milliseconds, by role, service and method.",
    "PSRPC stream messages received, by role, service and method.",
    "Open PSRPC streams, by role, service and method.",
    "PSRPC errors by role, kind, service, method and error code.",
    "PSRPC bytes by role, kind, service, method and direction (rx or tx).",
    "PSRPC requests received, by service and method.",
    "PSRPC requests expired before being claimed, by service and method.",
    "PSRPC claim wait time in milliseconds, by service, method and outcome.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_ranges_match_client_golang() {
        let (b, n) = Family::SessionJoinLatencyMs.def().buckets.bounds();
        assert_eq!(n, 15);
        assert!((b[0] - 10.0).abs() < 1e-9 && (b[14] - 10000.0).abs() < 1e-6);
        assert!((b[1] - 16.378937).abs() < 1e-4, "{}", b[1]);
        let (b, _) = Family::SessionDurationMs.def().buckets.bounds();
        assert!((b[14] - 14_400_000.0).abs() < 1e-3);
        assert!((b[5] - 6954.6).abs() < 0.1, "{}", b[5]);
    }

    #[test]
    fn families_are_found_by_name() {
        assert_eq!(Family::from_name("livekit_rtt_ms"), Some(Family::RttMs));
        assert_eq!(Family::from_name("livekit_rtt"), None);
    }

    #[test]
    fn the_table_is_complete_and_consistent() {
        assert_eq!(FAMILIES.len(), 49);
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
            let d = f.def();
            assert!(d.name.starts_with("livekit_") && !d.help.is_empty());
            let (b, n) = d.buckets.bounds();
            assert_eq!(d.kind == Kind::Histogram, n > 0, "{}", d.name);
            assert!(
                b[..n].windows(2).all(|w| w[0] < w[1]),
                "{} buckets ascend",
                d.name
            );
        }
    }
}
