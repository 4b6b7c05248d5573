//! LiveKit's labeled recording functions (the [`Stats`](crate::Stats)
//! methods of `write/livekit.rs`) as C calls.
//!
//! Each call hashes its label values and looks the series up in a
//! per-process cache under a read lock; the first call with a new label set
//! registers the series in the segment (and allocates). That is fine for
//! per-request and per-report events; on a per-packet path open a series
//! handle once instead (`nodestats_series_open`). Like every recording
//! call, these return nothing and cannot fail: a NULL handle, a NULL or
//! non-UTF-8 string, or an unknown enum value makes the call a no-op, and a
//! panic inside is caught. Durations are `uint64_t` microseconds (observed
//! in the family's unit, fractional milliseconds for `_ms` families), except
//! `nodestats_room_ended_after`'s lifetime in seconds.

use super::types::{
    connection_quality, label_arg, nodestats_connection_quality, nodestats_track_source,
    track_source, DirectionArg, TrackKindArg,
};
use super::writer::{nodestats_t, stats};
use std::ffi::c_char;
use std::mem::MaybeUninit;
use std::time::Duration;

/// Runs a recording call, swallowing a panic: no unwinding crosses into C
/// and a void call has no status to report it in.
#[inline]
fn guarded(f: impl FnOnce()) {
    let _ = super::boundary::catch(|| {
        f();
        Ok(())
    });
}

/// `nodestats_t *s` and C strings to `&Stats` and `&str`s, returning from
/// the enclosing (void) function if any is NULL or not UTF-8; then runs
/// the body behind [`guarded`].
macro_rules! labeled {
    ($s:ident, [$($str:ident),* $(,)?], $body:expr) => {{
        // SAFETY: `s` is NULL or a live handle, per the caller's contract.
        let Some($s) = (unsafe { stats($s) }) else {
            return;
        };
        $(
            // SAFETY: each string is NULL or NUL-terminated, per the
            // caller's contract.
            let Some($str) = (unsafe { label_arg($str) }) else {
                return;
            };
        )*
        guarded(|| $body);
    }};
}

fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}

// ----- node.go -----

/// A signal request was handled:
/// `livekit_node_messages{type="signal",status="success",direction="request"}`.
/// Labeled call: hashes its labels and takes a read lock; not for
/// per-packet paths.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_signal_request_success(s: *mut nodestats_t) {
    labeled!(s, [], s.record_signal_request_success());
}

/// A signal request failed (`livekit_node_messages`). Labeled call.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_signal_request_failure(s: *mut nodestats_t) {
    labeled!(s, [], s.record_signal_request_failure());
}

/// A signal response was sent (`livekit_node_messages`). Labeled call.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_signal_response_success(s: *mut nodestats_t) {
    labeled!(s, [], s.record_signal_response_success());
}

/// A signal response failed (`livekit_node_messages`). Labeled call.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_signal_response_failure(s: *mut nodestats_t) {
    labeled!(s, [], s.record_signal_response_failure());
}

/// A service operation `op` (`participant_join`, `offer`, …) succeeded
/// (`livekit_node_service_operation`). Labeled call: a NULL or non-UTF-8
/// string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_service_operation_success(
    s: *mut nodestats_t,
    op: *const c_char,
) {
    labeled!(s, [op], s.record_service_operation_success(op));
}

/// A service operation `op` failed with `error` (`send_response`,
/// `create`, …). Labeled call: a NULL or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_service_operation_error(
    s: *mut nodestats_t,
    op: *const c_char,
    error: *const c_char,
) {
    labeled!(s, [op, error], s.record_service_operation_error(op, error));
}

/// A twirp request finished with HTTP status family `status` (`"200"`,
/// `"4xx"`, `"5xx"`) and twirp error `code` (`""` on success)
/// (`livekit_node_twirp_request_status`). Labeled call: a NULL or
/// non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_twirp_request_status(
    s: *mut nodestats_t,
    service: *const c_char,
    method: *const c_char,
    status: *const c_char,
    code: *const c_char,
) {
    labeled!(
        s,
        [service, method, status, code],
        s.record_twirp_request_status(service, method, status, code)
    );
}

/// A twirp request took `duration_us` microseconds
/// (`livekit_node_twirp_request_latency_ms`, observed in fractional ms).
/// Labeled call: a NULL or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_twirp_request_latency(
    s: *mut nodestats_t,
    service: *const c_char,
    method: *const c_char,
    duration_us: u64,
    status: *const c_char,
) {
    labeled!(
        s,
        [service, method, status],
        s.record_twirp_request_latency(service, method, micros(duration_us), status)
    );
}

// ----- packets.go -----

/// `nodestats_record_packets` with LiveKit's `country` label
/// (`livekit_packet_total`, `livekit_packet_bytes`). An empty country is
/// the fixed, lock-free path; any other is a labeled series, counted in
/// NodeStats all the same. Labeled call (for a non-empty country): a NULL
/// or non-UTF-8 country or an unknown `dir` makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; `country`
/// is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_packets_country(
    s: *mut nodestats_t,
    country: *const c_char,
    dir: DirectionArg,
    packets: u64,
    bytes: u64,
    retransmit: bool,
) {
    let Some(dir) = dir.get() else { return };
    labeled!(
        s,
        [country],
        s.record_packets_country(country, dir, packets, bytes, retransmit)
    );
}

/// `nodestats_record_rtcp` with LiveKit's `country` label
/// (`livekit_nack_total`, `livekit_pli_total`, `livekit_fir_total`). An
/// empty country is the fixed path. Labeled call: a NULL or non-UTF-8
/// country or an unknown `dir` makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; `country`
/// is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_rtcp_country(
    s: *mut nodestats_t,
    country: *const c_char,
    dir: DirectionArg,
    nack: u32,
    pli: u32,
    fir: u32,
) {
    let Some(dir) = dir.get() else { return };
    labeled!(
        s,
        [country],
        s.record_rtcp_country(country, dir, nack, pli, fir)
    );
}

/// Packet loss of one stream report: counts `lost`
/// (`livekit_packet_loss_total`, when > 0) and observes `lost / total` in
/// percent (`livekit_packet_loss_percent`, when `total` > 0). Labeled call:
/// a NULL or non-UTF-8 string or an unknown enum value makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; `country`
/// is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_packet_loss(
    s: *mut nodestats_t,
    country: *const c_char,
    dir: DirectionArg,
    source: MaybeUninit<nodestats_track_source>,
    kind: TrackKindArg,
    lost: u32,
    total: u32,
) {
    let (Some(dir), Some(source), Some(kind)) = (dir.get(), track_source(source), kind.get())
    else {
        return;
    };
    labeled!(
        s,
        [country],
        s.record_packet_loss(country, dir, source, kind, lost, total)
    );
}

/// Out-of-order packets of one stream report
/// (`livekit_packet_out_of_order_total` when > 0,
/// `livekit_packet_out_of_order_percent` when `total` > 0). Labeled call:
/// a NULL or non-UTF-8 string or an unknown enum value makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; `country`
/// is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_packet_out_of_order(
    s: *mut nodestats_t,
    country: *const c_char,
    dir: DirectionArg,
    source: MaybeUninit<nodestats_track_source>,
    kind: TrackKindArg,
    out_of_order: u32,
    total: u32,
) {
    let (Some(dir), Some(source), Some(kind)) = (dir.get(), track_source(source), kind.get())
    else {
        return;
    };
    labeled!(
        s,
        [country],
        s.record_packet_out_of_order(country, dir, source, kind, out_of_order, total)
    );
}

/// Interarrival jitter of one stream report, µs (`livekit_jitter_us`;
/// 0 is ignored). Labeled call: a NULL or non-UTF-8 string or an unknown
/// enum value makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; `country`
/// is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_jitter(
    s: *mut nodestats_t,
    country: *const c_char,
    dir: DirectionArg,
    source: MaybeUninit<nodestats_track_source>,
    kind: TrackKindArg,
    jitter_us: u32,
) {
    let (Some(dir), Some(source), Some(kind)) = (dir.get(), track_source(source), kind.get())
    else {
        return;
    };
    labeled!(
        s,
        [country],
        s.record_jitter(country, dir, source, kind, jitter_us)
    );
}

/// Round-trip time of one stream report, ms (`livekit_rtt_ms`; 0 is
/// ignored). Labeled call: a NULL or non-UTF-8 string or an unknown enum
/// value makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; `country`
/// is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_rtt(
    s: *mut nodestats_t,
    country: *const c_char,
    dir: DirectionArg,
    source: MaybeUninit<nodestats_track_source>,
    kind: TrackKindArg,
    rtt_ms: u32,
) {
    let (Some(dir), Some(source), Some(kind)) = (dir.get(), track_source(source), kind.get())
    else {
        return;
    };
    labeled!(
        s,
        [country],
        s.record_rtt(country, dir, source, kind, rtt_ms)
    );
}

/// One forwarding latency sample, ns (`livekit_forward_latency_ns`).
/// Labeled call (no labels: a cache lookup and a read lock).
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_forward_latency_sample(s: *mut nodestats_t, ns: i64) {
    labeled!(s, [], s.record_forward_latency_sample(ns));
}

// ----- rooms.go -----

/// A room ended after `lifetime_seconds`: lowers `num_rooms` (as
/// `nodestats_room_ended`) and observes `livekit_room_duration_seconds`.
/// A negative or NaN lifetime is observed as 0, an infinite one as the
/// largest duration. Labeled call.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_room_ended_after(s: *mut nodestats_t, lifetime_seconds: f64) {
    let lifetime = if lifetime_seconds > 0.0 {
        Duration::try_from_secs_f64(lifetime_seconds).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    };
    labeled!(s, [], s.room_ended_after(lifetime));
}

/// A subscription failed with `error` (`livekit_track_subscribe_counter`
/// `{state="failure",error=...}`); a user error also counts as a cancel.
/// An empty `error` is the fixed series: the same as
/// `nodestats_track_subscribe_failure`. Labeled call: a NULL or non-UTF-8
/// string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; `error` is
/// NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_subscribe_failure_error(
    s: *mut nodestats_t,
    error: *const c_char,
    user_error: bool,
) {
    // The fixed counters already export {state="failure",error=""}: a
    // labeled series with the same labels would be a duplicate sample.
    labeled!(
        s,
        [error],
        if error.is_empty() {
            s.track_subscribe_failure(user_error)
        } else {
            s.track_subscribe_failure_error(error, user_error)
        }
    );
}

/// Time to join a session, µs (`livekit_session_join_latency_ms`).
/// Labeled call.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_session_join_latency(
    s: *mut nodestats_t,
    protocol_version: i32,
    duration_us: u64,
) {
    labeled!(
        s,
        [],
        s.record_session_join_latency(protocol_version, micros(duration_us))
    );
}

/// Time to start a session, µs (`livekit_session_start_time_ms`). Labeled
/// call.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_session_start_time(
    s: *mut nodestats_t,
    protocol_version: i32,
    warp: bool,
    duration_us: u64,
) {
    labeled!(
        s,
        [],
        s.record_session_start_time(protocol_version, warp, micros(duration_us))
    );
}

/// A session's duration, µs (`livekit_session_duration_ms`). Labeled call.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_session_duration(
    s: *mut nodestats_t,
    protocol_version: i32,
    duration_us: u64,
) {
    labeled!(
        s,
        [],
        s.record_session_duration(protocol_version, micros(duration_us))
    );
}

/// Time to publish a track, µs (`livekit_pubsubtime_ms{kind="publish"}`).
/// `sdk` and `participant_kind` are LiveKit's enum names (`JS`, `SWIFT`, …;
/// `STANDARD`, `AGENT`, …). Labeled call: a NULL or non-UTF-8 string or an
/// unknown enum value makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_publish_time(
    s: *mut nodestats_t,
    country: *const c_char,
    source: MaybeUninit<nodestats_track_source>,
    kind: TrackKindArg,
    duration_us: u64,
    sdk: *const c_char,
    participant_kind: *const c_char,
) {
    let (Some(source), Some(kind)) = (track_source(source), kind.get()) else {
        return;
    };
    labeled!(
        s,
        [country, sdk, participant_kind],
        s.record_publish_time(
            country,
            source,
            kind,
            micros(duration_us),
            sdk,
            participant_kind
        )
    );
}

/// Time to subscribe to `count` tracks, µs
/// (`livekit_pubsubtime_ms{kind="subscribe"}`). Labeled call: a NULL or
/// non-UTF-8 string or an unknown enum value makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_subscribe_time(
    s: *mut nodestats_t,
    country: *const c_char,
    source: MaybeUninit<nodestats_track_source>,
    kind: TrackKindArg,
    duration_us: u64,
    sdk: *const c_char,
    participant_kind: *const c_char,
    count: u32,
) {
    let (Some(source), Some(kind)) = (track_source(source), kind.get()) else {
        return;
    };
    labeled!(
        s,
        [country, sdk, participant_kind],
        s.record_subscribe_time(
            country,
            source,
            kind,
            micros(duration_us),
            sdk,
            participant_kind,
            count
        )
    );
}

/// Time until a subscribed stream started, µs
/// (`livekit_pubsubtime_ms{kind="subscribe-stream-start"}`). Labeled call:
/// a NULL or non-UTF-8 string or an unknown enum value makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_subscribe_stream_start_time(
    s: *mut nodestats_t,
    country: *const c_char,
    source: MaybeUninit<nodestats_track_source>,
    kind: TrackKindArg,
    duration_us: u64,
    sdk: *const c_char,
    participant_kind: *const c_char,
) {
    let (Some(source), Some(kind)) = (track_source(source), kind.get()) else {
        return;
    };
    labeled!(
        s,
        [country, sdk, participant_kind],
        s.record_subscribe_stream_start_time(
            country,
            source,
            kind,
            micros(duration_us),
            sdk,
            participant_kind
        )
    );
}

/// A peer connection reached `state` (`started`, `ice_connected`,
/// `connected`, `fully_established`) on `transport` (`PUBLISHER`,
/// `SUBSCRIBER`) (`livekit_peer_connection_state`). Labeled call: a NULL
/// or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_peer_connection_state(
    s: *mut nodestats_t,
    transport: *const c_char,
    state: *const c_char,
) {
    labeled!(
        s,
        [transport, state],
        s.record_peer_connection_state(transport, state)
    );
}

// ----- quality.go, datapacket.go, debug.go -----

/// A connection quality report (`livekit_quality_rating`,
/// `livekit_quality_score`). Labeled call: an unknown `rating` makes it a
/// no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_quality(
    s: *mut nodestats_t,
    rating: MaybeUninit<nodestats_connection_quality>,
    score: f32,
) {
    let Some(rating) = connection_quality(rating) else {
        return;
    };
    labeled!(s, [], s.record_quality(rating, score));
}

/// A data packet stream (`livekit_datapacket_stream_dest_count`, and
/// `livekit_datapacket_stream_bytes` unless `total_length` is
/// `NODESTATS_UNAVAILABLE`, which means absent). `stream_type` is `text`,
/// `bytes` or anything else for `unknown`; `mime_type` is reduced to its
/// major type. Labeled call: a NULL or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_data_packet_stream(
    s: *mut nodestats_t,
    stream_type: *const c_char,
    mime_type: *const c_char,
    dest_count: u32,
    total_length: u64,
) {
    let total_length = (total_length != super::NODESTATS_UNAVAILABLE).then_some(total_length);
    labeled!(
        s,
        [stream_type, mime_type],
        s.record_data_packet_stream(stream_type, mime_type, dest_count, total_length)
    );
}

/// Adds `n` (may be negative) to the debug reference count of `referrer`
/// (`livekit_debug_ref_count`, a gauge) — not a reference count of the
/// handle. Labeled call: a NULL or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; `referrer`
/// is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_add_ref(s: *mut nodestats_t, referrer: *const c_char, n: i64) {
    labeled!(s, [referrer], s.add_ref(referrer, n));
}

// ----- webhook -----

/// A webhook was delivered (`livekit_webhook_dispatch_total`). Labeled call.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_webhook_dispatch_success(s: *mut nodestats_t) {
    labeled!(s, [], s.webhook_dispatch_success());
}

/// A webhook delivery failed (`livekit_webhook_dispatch_total`). Labeled
/// call.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_webhook_dispatch_failure(s: *mut nodestats_t) {
    labeled!(s, [], s.webhook_dispatch_failure());
}

/// A webhook was dropped for `reason` (`overflow`, `age`, `queue is full`,
/// …). Labeled call: a NULL or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; `reason` is
/// NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_webhook_dispatch_drop(
    s: *mut nodestats_t,
    reason: *const c_char,
) {
    labeled!(s, [reason], s.webhook_dispatch_drop(reason));
}

/// Webhook queue length after an enqueue (`livekit_webhook_queue_length`).
/// Labeled call.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_webhook_queue_length(s: *mut nodestats_t, n: u32) {
    labeled!(s, [], s.webhook_queue_length(n));
}

// ----- psrpc -----

/// A unary (`kind` `rpc`) or multi (`multirpc`) request completed after
/// `duration_us` µs (`livekit_psrpc_request_time_ms`). Labeled call: a
/// NULL or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_psrpc_request_time(
    s: *mut nodestats_t,
    role: *const c_char,
    kind: *const c_char,
    service: *const c_char,
    method: *const c_char,
    duration_us: u64,
) {
    labeled!(
        s,
        [role, kind, service, method],
        s.psrpc_request_time(role, kind, service, method, micros(duration_us))
    );
}

/// A stream message was sent in `duration_us` µs
/// (`livekit_psrpc_stream_send_time_ms`). Labeled call: a NULL or
/// non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_psrpc_stream_send_time(
    s: *mut nodestats_t,
    role: *const c_char,
    service: *const c_char,
    method: *const c_char,
    duration_us: u64,
) {
    labeled!(
        s,
        [role, service, method],
        s.psrpc_stream_send_time(role, service, method, micros(duration_us))
    );
}

/// A stream message was received (`livekit_psrpc_stream_receive_total`).
/// Labeled call: a NULL or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_psrpc_stream_received(
    s: *mut nodestats_t,
    role: *const c_char,
    service: *const c_char,
    method: *const c_char,
) {
    labeled!(
        s,
        [role, service, method],
        s.psrpc_stream_received(role, service, method)
    );
}

/// A stream opened: raises `livekit_psrpc_stream_count`. Labeled call: a
/// NULL or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_psrpc_stream_opened(
    s: *mut nodestats_t,
    role: *const c_char,
    service: *const c_char,
    method: *const c_char,
) {
    labeled!(
        s,
        [role, service, method],
        s.psrpc_stream_opened(role, service, method)
    );
}

/// A stream closed: lowers `livekit_psrpc_stream_count`. Labeled call: a
/// NULL or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_psrpc_stream_closed(
    s: *mut nodestats_t,
    role: *const c_char,
    service: *const c_char,
    method: *const c_char,
) {
    labeled!(
        s,
        [role, service, method],
        s.psrpc_stream_closed(role, service, method)
    );
}

/// An RPC error (`livekit_psrpc_error_total`). Labeled call: a NULL or
/// non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_psrpc_error(
    s: *mut nodestats_t,
    role: *const c_char,
    kind: *const c_char,
    service: *const c_char,
    method: *const c_char,
    error_code: *const c_char,
) {
    labeled!(
        s,
        [role, kind, service, method, error_code],
        s.psrpc_error(role, kind, service, method, error_code)
    );
}

/// `n` RPC payload bytes; `direction` is `rx` or `tx`
/// (`livekit_psrpc_bytes_total`). Labeled call: a NULL or non-UTF-8 string
/// makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_psrpc_bytes(
    s: *mut nodestats_t,
    role: *const c_char,
    kind: *const c_char,
    service: *const c_char,
    method: *const c_char,
    direction: *const c_char,
    n: u64,
) {
    labeled!(
        s,
        [role, kind, service, method, direction],
        s.psrpc_bytes(role, kind, service, method, direction, n)
    );
}

/// A request reached a server (`livekit_psrpc_requests_received_total`).
/// Labeled call: a NULL or non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_psrpc_request_received(
    s: *mut nodestats_t,
    service: *const c_char,
    method: *const c_char,
) {
    labeled!(
        s,
        [service, method],
        s.psrpc_request_received(service, method)
    );
}

/// A request expired before a server claimed it
/// (`livekit_psrpc_requests_expired_total`). Labeled call: a NULL or
/// non-UTF-8 string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_psrpc_request_expired(
    s: *mut nodestats_t,
    service: *const c_char,
    method: *const c_char,
) {
    labeled!(
        s,
        [service, method],
        s.psrpc_request_expired(service, method)
    );
}

/// A request waited `duration_us` µs to be claimed, with `outcome`
/// (`livekit_psrpc_claim_wait_time_ms`). Labeled call: a NULL or non-UTF-8
/// string makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`; every
/// string is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nodestats_psrpc_claim_wait_time(
    s: *mut nodestats_t,
    service: *const c_char,
    method: *const c_char,
    outcome: *const c_char,
    duration_us: u64,
) {
    labeled!(
        s,
        [service, method, outcome],
        s.psrpc_claim_wait_time(service, method, outcome, micros(duration_us))
    );
}
