//! LiveKit's recording functions that feed labeled families.
//!
//! Each method takes the label values as LiveKit's function does, resolves
//! the series through the per-process cache (a hash and a read lock on a
//! hit, no allocation) and records on the current CPU's shard. They never
//! fail: a series that cannot be registered lands in its family's overflow
//! series. For a per-packet path, resolve a [`SeriesHandle`](crate::SeriesHandle)
//! once with [`Stats::series`] instead.

use super::Stats;
use crate::schema::{ConnectionQuality, Direction, Family, TrackKind, TrackSource};
use std::time::Duration;

fn bool_label(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Small integers as label values without allocating.
fn int_label(buf: &mut [u8; 20], v: u64) -> &str {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

fn int_label_signed(buf: &mut [u8; 20], v: i64) -> &str {
    if v >= 0 {
        return int_label(buf, v as u64);
    }
    let n = int_label(buf, v.unsigned_abs()).len();
    let start = buf.len() - n - 1;
    buf[start] = b'-';
    std::str::from_utf8(&buf[start..]).unwrap_or("0")
}

/// LiveKit's recording calls: one method per call of LiveKit's telemetry
/// (`prometheus.IncrementPackets`, `RecordRTT`, `RoomStarted`, …), with the
/// same labels and buckets. Each resolves its labeled series through the
/// writer's cache (a hash probe), then records without a lock; for a
/// per-packet path, resolve a [`SeriesHandle`](crate::SeriesHandle) once.
impl Stats {
    /// The series' value base: cached, else registered; `None` only for a
    /// label-count mistake in this file (tests cover every call).
    fn base(&self, family: Family, labels: &[&str]) -> Option<u32> {
        let resolved = self
            .writer
            .cache
            .family(self.segment(), family.into())
            .ok()?;
        self.writer
            .cache
            .resolve(self.segment(), &resolved, labels)
            .ok()
    }

    fn count(&self, family: Family, labels: &[&str], n: u64) {
        if let Some(b) = self.base(family, labels) {
            self.series_adder().add(b as usize, n);
        }
    }

    fn gauge_add(&self, family: Family, labels: &[&str], delta: i64) {
        if let Some(b) = self.base(family, labels) {
            self.gauge_series_add(b, delta);
        }
    }

    fn observe(&self, family: Family, labels: &[&str], value: f64) {
        if let Some(b) = self.base(family, labels) {
            self.series_adder().observe(
                super::family::livekit_bounds_ref(family),
                None,
                b as usize,
                value,
            );
        }
    }

    /// Counts `n` of a stream report's `total` packets and observes the
    /// percentage (LiveKit's loss and out-of-order pairs).
    fn count_and_percent(&self, count: Family, percent: Family, l: &[&str], n: u32, total: u32) {
        if n > 0 {
            self.count(count, l, n as u64);
        }
        if total > 0 {
            self.observe(percent, l, n as f64 / total as f64 * 100.0);
        }
    }

    // ----- node.go -----

    /// A signal request was handled (`livekit_node_messages{signal,success,request}`).
    pub fn record_signal_request_success(&self) {
        self.count(Family::NodeMessages, &["signal", "success", "request"], 1);
    }

    /// A signal request failed.
    pub fn record_signal_request_failure(&self) {
        self.count(Family::NodeMessages, &["signal", "failure", "request"], 1);
    }

    /// A signal response was sent.
    pub fn record_signal_response_success(&self) {
        self.count(Family::NodeMessages, &["signal", "success", "response"], 1);
    }

    /// A signal response failed.
    pub fn record_signal_response_failure(&self) {
        self.count(Family::NodeMessages, &["signal", "failure", "response"], 1);
    }

    /// A service operation (`participant_join`, `offer`, …) succeeded.
    pub fn record_service_operation_success(&self, op: &str) {
        self.count(Family::NodeServiceOperation, &[op, "success", ""], 1);
    }

    /// A service operation failed with `error` (`send_response`, `create`, …).
    pub fn record_service_operation_error(&self, op: &str, error: &str) {
        self.count(Family::NodeServiceOperation, &[op, "error", error], 1);
    }

    /// A twirp request finished with an HTTP status family (`"200"`, `"4xx"`,
    /// `"5xx"`) and a twirp error code (`""` on success).
    pub fn record_twirp_request_status(
        &self,
        service: &str,
        method: &str,
        status: &str,
        code: &str,
    ) {
        self.count(
            Family::NodeTwirpRequestStatus,
            &[service, method, status, code],
            1,
        );
    }

    /// A twirp request's latency. Observed in fractional milliseconds
    /// (LiveKit truncates to whole ms, so sub-ms requests read 0).
    pub fn record_twirp_request_latency(
        &self,
        service: &str,
        method: &str,
        d: Duration,
        status: &str,
    ) {
        self.observe(
            Family::NodeTwirpRequestLatencyMs,
            &[service, method, status],
            ms(d),
        );
    }

    // ----- packets.go -----

    /// [`record_packets`](Stats::record_packets) with LiveKit's `country`
    /// label. An empty country is the fixed (fastest) path; any other value
    /// is a labeled series, counted in NodeStats all the same.
    pub fn record_packets_country(
        &self,
        country: &str,
        dir: Direction,
        packets: u64,
        bytes: u64,
        retransmit: bool,
    ) {
        if country.is_empty() {
            return self.record_packets(dir, packets, bytes, retransmit);
        }
        let t = if retransmit { "retransmit" } else { "initial" };
        self.count(Family::PacketTotal, &[dir.as_str(), t, country], packets);
        self.count(Family::PacketBytes, &[dir.as_str(), t, country], bytes);
    }

    /// [`record_rtcp`](Stats::record_rtcp) with LiveKit's `country` label.
    pub fn record_rtcp_country(
        &self,
        country: &str,
        dir: Direction,
        nack: u32,
        pli: u32,
        fir: u32,
    ) {
        if country.is_empty() {
            return self.record_rtcp(dir, nack, pli, fir);
        }
        let l = [dir.as_str(), country];
        if nack > 0 {
            self.count(Family::NackTotal, &l, nack as u64);
        }
        if pli > 0 {
            self.count(Family::PliTotal, &l, pli as u64);
        }
        if fir > 0 {
            self.count(Family::FirTotal, &l, fir as u64);
        }
    }

    /// Packet loss of one stream report: counts `lost` and observes the
    /// loss percentage.
    pub fn record_packet_loss(
        &self,
        country: &str,
        dir: Direction,
        source: TrackSource,
        kind: TrackKind,
        lost: u32,
        total: u32,
    ) {
        let l = [dir.as_str(), source.as_str(), kind.as_str(), country];
        self.count_and_percent(
            Family::PacketLossTotal,
            Family::PacketLossPercent,
            &l,
            lost,
            total,
        );
    }

    /// Out-of-order packets of one stream report.
    pub fn record_packet_out_of_order(
        &self,
        country: &str,
        dir: Direction,
        source: TrackSource,
        kind: TrackKind,
        ooo: u32,
        total: u32,
    ) {
        let l = [dir.as_str(), source.as_str(), kind.as_str(), country];
        self.count_and_percent(
            Family::PacketOutOfOrderTotal,
            Family::PacketOutOfOrderPercent,
            &l,
            ooo,
            total,
        );
    }

    /// Interarrival jitter of one stream report, µs (ignored when 0).
    pub fn record_jitter(
        &self,
        country: &str,
        dir: Direction,
        source: TrackSource,
        kind: TrackKind,
        jitter_us: u32,
    ) {
        if jitter_us > 0 {
            let l = [dir.as_str(), source.as_str(), kind.as_str(), country];
            self.observe(Family::JitterUs, &l, jitter_us as f64);
        }
    }

    /// Round-trip time of one stream report, ms (ignored when 0).
    pub fn record_rtt(
        &self,
        country: &str,
        dir: Direction,
        source: TrackSource,
        kind: TrackKind,
        rtt_ms: u32,
    ) {
        if rtt_ms > 0 {
            let l = [dir.as_str(), source.as_str(), kind.as_str(), country];
            self.observe(Family::RttMs, &l, rtt_ms as f64);
        }
    }

    /// One forwarding latency sample, ns (`livekit_forward_latency_ns`).
    pub fn record_forward_latency_sample(&self, ns: i64) {
        self.observe(Family::ForwardLatencyNs, &[], ns as f64);
    }

    // ----- rooms.go -----

    /// A room ended after `lifetime`: lowers `num_rooms` and observes
    /// `livekit_room_duration_seconds`.
    pub fn room_ended_after(&self, lifetime: Duration) {
        self.room_ended();
        self.observe(Family::RoomDurationSeconds, &[], lifetime.as_secs_f64());
    }

    /// A subscription failed with an error (the `error` label); a user error
    /// also counts as a cancel, as in LiveKit.
    pub fn track_subscribe_failure_error(&self, error: &str, user_error: bool) {
        if error.is_empty() {
            return self.track_subscribe_failure(user_error);
        }
        self.count(Family::TrackSubscribeCounter, &["failure", error], 1);
        if user_error {
            self.track_subscribe_cancels(1);
        }
    }

    /// Time to join a session.
    pub fn record_session_join_latency(&self, protocol_version: i32, d: Duration) {
        let mut b = [0u8; 20];
        let pv = int_label_signed(&mut b, protocol_version as i64);
        self.observe(Family::SessionJoinLatencyMs, &[pv], ms(d));
    }

    /// Time to start a session.
    pub fn record_session_start_time(&self, protocol_version: i32, warp: bool, d: Duration) {
        let mut b = [0u8; 20];
        let pv = int_label_signed(&mut b, protocol_version as i64);
        self.observe(Family::SessionStartTimeMs, &[pv, bool_label(warp)], ms(d));
    }

    /// A session's duration.
    pub fn record_session_duration(&self, protocol_version: i32, d: Duration) {
        let mut b = [0u8; 20];
        let pv = int_label_signed(&mut b, protocol_version as i64);
        self.observe(Family::SessionDurationMs, &[pv], ms(d));
    }

    /// Time to publish a track. `sdk` and `participant_kind` are LiveKit's
    /// enum names (`JS`, `SWIFT`, …; `STANDARD`, `AGENT`, …).
    #[allow(clippy::too_many_arguments)]
    pub fn record_publish_time(
        &self,
        country: &str,
        source: TrackSource,
        kind: TrackKind,
        d: Duration,
        sdk: &str,
        participant_kind: &str,
    ) {
        let l = [
            "publish",
            source.as_str(),
            kind.as_str(),
            country,
            sdk,
            participant_kind,
            "1",
        ];
        self.observe(Family::PubsubtimeMs, &l, ms(d));
    }

    /// Time to subscribe to `count` tracks.
    #[allow(clippy::too_many_arguments)]
    pub fn record_subscribe_time(
        &self,
        country: &str,
        source: TrackSource,
        kind: TrackKind,
        d: Duration,
        sdk: &str,
        participant_kind: &str,
        count: u32,
    ) {
        let mut b = [0u8; 20];
        let c = int_label(&mut b, count as u64);
        let l = [
            "subscribe",
            source.as_str(),
            kind.as_str(),
            country,
            sdk,
            participant_kind,
            c,
        ];
        self.observe(Family::PubsubtimeMs, &l, ms(d));
    }

    /// Time until a subscribed stream started.
    pub fn record_subscribe_stream_start_time(
        &self,
        country: &str,
        source: TrackSource,
        kind: TrackKind,
        d: Duration,
        sdk: &str,
        participant_kind: &str,
    ) {
        let l = [
            "subscribe-stream-start",
            source.as_str(),
            kind.as_str(),
            country,
            sdk,
            participant_kind,
            "1",
        ];
        self.observe(Family::PubsubtimeMs, &l, ms(d));
    }

    /// A peer connection reached `state` (`started`, `ice_connected`,
    /// `connected`, `fully_established`) on `transport` (`PUBLISHER`,
    /// `SUBSCRIBER`).
    pub fn record_peer_connection_state(&self, transport: &str, state: &str) {
        self.count(Family::PeerConnectionState, &[transport, state], 1);
    }

    // ----- quality.go, datapacket.go, debug.go -----

    /// A connection quality report.
    pub fn record_quality(&self, rating: ConnectionQuality, score: f32) {
        self.observe(Family::QualityRating, &[], rating as u32 as f64);
        self.observe(Family::QualityScore, &[], score as f64);
    }

    /// A data packet stream: `stream_type` is `text`, `bytes` or `unknown`;
    /// `mime_type` is reduced to its major type (`text`, `image`,
    /// `application`, `audio`, `video`, else `unknown`), lower-cased.
    pub fn record_data_packet_stream(
        &self,
        stream_type: &str,
        mime_type: &str,
        dest_count: u32,
        total_length: Option<u64>,
    ) {
        let st = match stream_type {
            "text" | "bytes" => stream_type,
            _ => "unknown",
        };
        let major = mime_type.split('/').next().unwrap_or("");
        let mt = ["text", "image", "application", "audio", "video"]
            .into_iter()
            .find(|m| major.eq_ignore_ascii_case(m))
            .unwrap_or("unknown");
        self.observe(
            Family::DatapacketStreamDestCount,
            &[st, mt],
            dest_count as f64,
        );
        if let Some(n) = total_length {
            self.observe(Family::DatapacketStreamBytes, &[st, mt], n as f64);
        }
    }

    /// Adds to a debug reference count.
    pub fn add_ref(&self, referrer: &str, n: i64) {
        self.gauge_add(Family::DebugRefCount, &[referrer], n);
    }

    // ----- webhook -----

    /// A webhook was delivered.
    pub fn webhook_dispatch_success(&self) {
        self.count(Family::WebhookDispatchTotal, &["success", ""], 1);
    }

    /// A webhook delivery failed.
    pub fn webhook_dispatch_failure(&self) {
        self.count(Family::WebhookDispatchTotal, &["failure", ""], 1);
    }

    /// A webhook was dropped (`overflow`, `age`, `queue is full`, …).
    pub fn webhook_dispatch_drop(&self, reason: &str) {
        self.count(Family::WebhookDispatchTotal, &["drop", reason], 1);
    }

    /// Webhook queue length after an enqueue.
    pub fn webhook_queue_length(&self, n: u32) {
        self.observe(Family::WebhookQueueLength, &[], n as f64);
    }

    // ----- psrpc -----

    /// A unary (`rpc`) or multi (`multirpc`) request completed.
    pub fn psrpc_request_time(
        &self,
        role: &str,
        kind: &str,
        service: &str,
        method: &str,
        d: Duration,
    ) {
        self.observe(
            Family::PsrpcRequestTimeMs,
            &[role, kind, service, method],
            ms(d),
        );
    }

    /// A stream message was sent.
    pub fn psrpc_stream_send_time(&self, role: &str, service: &str, method: &str, d: Duration) {
        self.observe(
            Family::PsrpcStreamSendTimeMs,
            &[role, service, method],
            ms(d),
        );
    }

    /// A stream message was received.
    pub fn psrpc_stream_received(&self, role: &str, service: &str, method: &str) {
        self.count(Family::PsrpcStreamReceiveTotal, &[role, service, method], 1);
    }

    /// A stream opened.
    pub fn psrpc_stream_opened(&self, role: &str, service: &str, method: &str) {
        self.gauge_add(Family::PsrpcStreamCount, &[role, service, method], 1);
    }

    /// A stream closed.
    pub fn psrpc_stream_closed(&self, role: &str, service: &str, method: &str) {
        self.gauge_add(Family::PsrpcStreamCount, &[role, service, method], -1);
    }

    /// An RPC error.
    pub fn psrpc_error(
        &self,
        role: &str,
        kind: &str,
        service: &str,
        method: &str,
        error_code: &str,
    ) {
        self.count(
            Family::PsrpcErrorTotal,
            &[role, kind, service, method, error_code],
            1,
        );
    }

    /// RPC payload bytes, `direction` is `rx` or `tx`.
    pub fn psrpc_bytes(
        &self,
        role: &str,
        kind: &str,
        service: &str,
        method: &str,
        direction: &str,
        n: u64,
    ) {
        self.count(
            Family::PsrpcBytesTotal,
            &[role, kind, service, method, direction],
            n,
        );
    }

    /// A request reached a server.
    pub fn psrpc_request_received(&self, service: &str, method: &str) {
        self.count(Family::PsrpcRequestsReceivedTotal, &[service, method], 1);
    }

    /// A request expired before a server claimed it.
    pub fn psrpc_request_expired(&self, service: &str, method: &str) {
        self.count(Family::PsrpcRequestsExpiredTotal, &[service, method], 1);
    }

    /// Time a request waited to be claimed.
    pub fn psrpc_claim_wait_time(&self, service: &str, method: &str, outcome: &str, d: Duration) {
        self.observe(
            Family::PsrpcClaimWaitTimeMs,
            &[service, method, outcome],
            ms(d),
        );
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn integer_labels_format_without_allocating() {
        let mut b = [0u8; 20];
        assert_eq!(int_label(&mut b, 0), "0");
        assert_eq!(int_label(&mut b, 1234), "1234");
        assert_eq!(int_label(&mut b, u64::MAX), "18446744073709551615");
        assert_eq!(int_label_signed(&mut b, -15), "-15");
        assert_eq!(int_label_signed(&mut b, 16), "16");
    }
}
