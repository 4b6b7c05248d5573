//! The C hot path never allocates: a counting global allocator watches a
//! million `nodestats_record_packets` calls, a million
//! `nodestats_series_inc_by` and `nodestats_series_observe` calls, and every
//! other hot-path export, made through the C ABI.

mod common;

use nodestats::__testing::ffi::*;
use std::ffi::CStr;
use std::ptr;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

use common::allocs;

const IN: DirectionArg = DirectionArg(nodestats_direction::Incoming as u32);
const OUT: DirectionArg = DirectionArg(nodestats_direction::Outgoing as u32);
const VIDEO: TrackKindArg = TrackKindArg(nodestats_track_kind::Video as u32);

/// Opens a writer on `name` (NULL: anonymous) through the C ABI.
fn open(name: *const std::ffi::c_char) -> *mut nodestats_t {
    let mut s = ptr::null_mut();
    // SAFETY: `name` is NULL or a NUL-terminated literal; `s` is writable.
    let st = unsafe { nodestats_open(name, &mut s) };
    assert_eq!(st, nodestats_status::Ok);
    s
}

fn read(s: *mut nodestats_t) -> nodestats_node_stats {
    let mut ns = std::mem::MaybeUninit::uninit();
    // SAFETY: `s` is a live handle; `ns` is writable.
    let st = unsafe { nodestats_read(s, ns.as_mut_ptr()) };
    assert_eq!(st, nodestats_status::Ok);
    // SAFETY: nodestats_read returned OK, so it wrote `ns`.
    unsafe { ns.assume_init() }
}

#[test]
fn a_million_c_record_packets_allocate_nothing() {
    let path = std::env::temp_dir().join(format!("nodestats-ffi-alloc-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let named = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    for name in [ptr::null(), named.as_ptr()] {
        let s = open(name);
        // Warm up: the first call on a thread may initialise lazy state.
        // SAFETY: `s` is a live handle.
        unsafe { nodestats_record_packets(s, IN, 1, 1, false) };
        let before = allocs();
        for i in 0..1_000_000u64 {
            // SAFETY: `s` is a live handle.
            unsafe { nodestats_record_packets(s, IN, 1, 1200 + (i & 7), i % 16 == 0) };
        }
        assert_eq!(allocs() - before, 0, "nodestats_record_packets allocated");
        assert_eq!(read(s).packets_in, 1_000_001);
        // SAFETY: `s` is live and not used afterwards.
        unsafe { nodestats_close(s) };
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn every_c_hot_path_call_allocates_nothing() {
    let s = open(ptr::null());
    let round = || {
        // SAFETY: `s` is a live handle for the whole closure's use; NULL
        // handles are allowed and ignored.
        unsafe {
            nodestats_record_packets(s, OUT, 2, 2400, true);
            nodestats_record_packet(s, IN, 1200, false);
            nodestats_record_rtcp(s, OUT, 1, 1, 1);
            nodestats_participant_signal_connected(s, 1);
            nodestats_participant_join_failed(s, 1);
            nodestats_participant_join_validation_failed(s, 1);
            nodestats_participant_join_upgrade_failed(s, 1);
            nodestats_participant_join_write_initial_response_failed(s, 1);
            nodestats_participant_rtc_init(s, 1);
            nodestats_participant_rtc_connected(s, 1);
            nodestats_participant_rtc_active(s, 1, true);
            nodestats_participant_rtc_canceled(s, 1, false);
            nodestats_participant_rtc_success(s, 1, false);
            nodestats_participant_rtc_failure(s, 1, true);
            nodestats_track_publish_attempt(s, VIDEO);
            nodestats_track_publish_success(s, VIDEO);
            nodestats_track_publish_cancels(s, VIDEO, 1);
            nodestats_track_published(s, VIDEO);
            nodestats_track_unpublished(s, VIDEO);
            nodestats_track_subscribe_attempt(s);
            nodestats_track_subscribe_success(s, VIDEO);
            nodestats_track_unsubscribed(s, VIDEO);
            nodestats_track_subscribe_failure(s, true);
            nodestats_track_subscribe_cancels(s, 1);
            nodestats_room_started(s);
            nodestats_room_ended(s);
            nodestats_participant_added(s);
            nodestats_participant_removed(s);
            nodestats_connection_added(s, IN);
            nodestats_connection_removed(s, IN);
            nodestats_forward_latency(s, 1000);
            nodestats_forward_jitter(s, 100);
            nodestats_record_packets(s, DirectionArg(7), 1, 1, false);
            nodestats_track_published(s, TrackKindArg(7));
            nodestats_record_packets(ptr::null_mut(), IN, 1, 1, false);
        }
    };
    round();
    let before = allocs();
    for _ in 0..10_000 {
        round();
    }
    assert_eq!(allocs() - before, 0, "a hot-path export allocated");
    let ns = read(s);
    assert_eq!(
        (ns.packets_out, ns.retransmit_packets_out),
        (20_002, 20_002)
    );
    assert_eq!(
        (ns.num_rooms, ns.num_tracks_in, ns.num_tracks_out),
        (0, 0, 0)
    );
    // SAFETY: `s` is live and not used afterwards.
    unsafe { nodestats_close(s) };
}

/// Opens a series handle through the C ABI.
fn series(s: *mut nodestats_t, family: &CStr, labels: &[&CStr]) -> *mut nodestats_series_t {
    let ptrs: Vec<*const std::ffi::c_char> = labels.iter().map(|l| l.as_ptr()).collect();
    let mut h = ptr::null_mut();
    // SAFETY: `s` is live; the strings are NUL-terminated; `h` is writable.
    let st =
        unsafe { nodestats_series_open(s, family.as_ptr(), ptrs.as_ptr(), ptrs.len(), &mut h) };
    assert_eq!(st, nodestats_status::Ok);
    h
}

/// The exporter's text of the segment of `s`.
fn prometheus(s: *mut nodestats_t) -> String {
    let mut e = ptr::null_mut();
    // SAFETY: `s` is live; the strings are NUL-terminated; `e` is writable.
    let st = unsafe { nodestats_exporter_open(s, c"n".as_ptr(), c"t".as_ptr(), &mut e) };
    assert_eq!(st, nodestats_status::Ok);
    let mut len = 0;
    // SAFETY: `e` is live; a NULL buffer with cap 0 asks for the size.
    let st = unsafe { nodestats_exporter_text(e, ptr::null_mut(), 0, &mut len) };
    assert_eq!(st, nodestats_status::BufferTooSmall);
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is writable for `len` bytes.
    let st = unsafe { nodestats_exporter_text(e, buf.as_mut_ptr().cast(), len, &mut len) };
    assert_eq!(st, nodestats_status::Ok);
    buf.truncate(len);
    // SAFETY: `e` is live and not used afterwards.
    unsafe { nodestats_exporter_close(e) };
    String::from_utf8(buf).unwrap()
}

#[test]
fn a_million_c_series_inc_by_and_observe_allocate_nothing() {
    let path =
        std::env::temp_dir().join(format!("nodestats-ffi-alloc-series-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let named = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    for name in [ptr::null(), named.as_ptr()] {
        let s = open(name);
        let loss = series(
            s,
            c"livekit_packet_loss_total",
            &[c"incoming", c"CAMERA", c"VIDEO", c"US"],
        );
        let rtt = series(
            s,
            c"livekit_rtt_ms",
            &[c"outgoing", c"MICROPHONE", c"AUDIO", c"US"],
        );
        let refs = series(s, c"livekit_debug_ref_count", &[c"alloc"]);
        // Warm up: the first calls may initialise lazy state (bucket table).
        // SAFETY: the handles are live.
        unsafe {
            nodestats_series_inc_by(loss, 1);
            nodestats_series_observe(rtt, 1.0);
            nodestats_series_add(refs, 1);
        }
        let before = allocs();
        for i in 0..1_000_000u64 {
            // SAFETY: the handles are live; NULL and wrong-kind calls are
            // allowed and ignored.
            unsafe {
                nodestats_series_inc_by(loss, 1);
                nodestats_series_observe(rtt, (i % 300) as f64);
                if i % 1000 == 0 {
                    nodestats_series_add(refs, 1);
                    nodestats_series_inc_by(rtt, 1);
                    nodestats_series_observe(loss, 1.0);
                    nodestats_series_inc_by(ptr::null(), 1);
                    nodestats_series_observe(ptr::null(), 1.0);
                }
            }
        }
        assert_eq!(
            allocs() - before,
            0,
            "nodestats_series_inc_by or nodestats_series_observe allocated"
        );
        let text = prometheus(s);
        let has = |line: &str| text.lines().any(|l| l == line);
        let node = "node_id=\"n\",node_type=\"t\"";
        assert!(has(&format!(
            "livekit_packet_loss_total{{country=\"US\",direction=\"incoming\",{node},source=\"CAMERA\",type=\"VIDEO\"}} 1000001"
        )));
        assert!(has(&format!(
            "livekit_rtt_ms_count{{country=\"US\",direction=\"outgoing\",{node},source=\"MICROPHONE\",type=\"AUDIO\"}} 1000001"
        )));
        assert!(has(&format!(
            "livekit_debug_ref_count{{{node},referrer=\"alloc\"}} 1001"
        )));
        // SAFETY: the handles are live and not used afterwards.
        unsafe {
            nodestats_series_close(loss);
            nodestats_series_close(rtt);
            nodestats_series_close(refs);
            nodestats_close(s);
        }
    }
    let _ = std::fs::remove_file(&path);
}
