//! The writer handle: open, close, read, and the hot-path recording calls.

use super::boundary::nodestats_status;
use super::node_stats::nodestats_node_stats;
use super::types::{
    name_arg, nodestats_disposition, nodestats_options, DirectionArg, TrackKindArg,
};
use crate::read::{Collector, CollectorConfig};
use crate::segment::{Access, Segment, SegmentOptions};
use crate::write::Stats;
use std::ffi::c_char;
use std::sync::Arc;

/// A writer handle: the C face of a [`Stats`]. Opaque to C.
///
/// Made by `nodestats_open` or `nodestats_open_with`, freed by
/// `nodestats_close`. Any number of threads may record through one handle
/// at once. After `fork`, the child must not use or close the parent's
/// handle (it shares the parent's writer slot): open a new one.
#[derive(Debug)]
pub struct nodestats_t {
    pub(crate) stats: Stats,
}

/// The handle behind `s`, if any.
///
/// # Safety
/// `s` is NULL or a live handle from `nodestats_open*`.
#[inline(always)]
pub(crate) unsafe fn stats<'a>(s: *const nodestats_t) -> Option<&'a Stats> {
    // SAFETY: per the contract, `s` is NULL or points to a live
    // `nodestats_t` that nobody frees during the caller's call.
    unsafe { s.as_ref() }.map(|h| &h.stats)
}

/// Boxes `stats` into a handle and stores it in `*out`.
///
/// # Safety
/// `out` is non-NULL and valid for writing a pointer.
unsafe fn publish(stats: Stats, out: *mut *mut nodestats_t) {
    let handle = Box::into_raw(Box::new(nodestats_t { stats }));
    // SAFETY: per the contract; `write` does not read the old value.
    unsafe { out.write(handle) };
}

/// Creates the named segment or attaches to it read-write, then claims a
/// writer slot. `name` is `"/name"` (or `"name"`) for `/dev/shm/name`, a file
/// path containing `/`, or NULL for an anonymous segment of this process.
///
/// On success stores a new handle in `*out`; close it with
/// `nodestats_close`. An existing segment that is damaged, of another
/// layout version, owned by another user or full gives its status, and
/// `*out` is left untouched.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is valid for writing a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn nodestats_open(
    name: *const c_char,
    out: *mut *mut nodestats_t,
) -> nodestats_status {
    boundary!([out] {
        // SAFETY: `name` is NULL or NUL-terminated, per the contract.
        let name = unsafe { name_arg(name) }?;
        let mut opts = SegmentOptions::new();
        if let Some(name) = name {
            opts = opts.name(name);
        }
        let stats = Stats::open(&opts)?;
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { publish(stats, out) };
        Ok(())
    })
}

/// Fills `*opts` with the defaults: anonymous, create-or-attach, mode 0600,
/// one shard per possible CPU, 128 writer slots, 256 thread rows, 200 ms
/// init wait, own segments only, automatic write mode. A NULL `opts` is ignored.
///
/// # Safety
/// `opts` is NULL or valid for writing a `nodestats_options`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_options_init(opts: *mut nodestats_options) {
    if !opts.is_null() {
        // SAFETY: non-NULL and writable per the contract.
        unsafe { opts.write(nodestats_options::default()) };
    }
}

/// Opens a writer as `*opts` says: create, attach or either, with the
/// geometry and permissions of a new segment. See `nodestats_open`.
///
/// # Safety
/// `opts` points to an initialised `nodestats_options` whose `name` is NULL
/// or a NUL-terminated string; `out` is valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn nodestats_open_with(
    opts: *const nodestats_options,
    out: *mut *mut nodestats_t,
) -> nodestats_status {
    boundary!([opts, out] {
        // SAFETY: `opts` is non-NULL (checked), initialised, and its name is
        // NULL or NUL-terminated, per the contract.
        let (opts, disposition) = unsafe { (*opts).segment_options() }?;
        let stats = match (disposition, opts.name_ref()) {
            (nodestats_disposition::CreateOrAttach, _) => Stats::open(&opts)?,
            (nodestats_disposition::Create, _) => {
                Stats::with_options(Arc::new(Segment::create(&opts)?), opts.clone())?
            }
            (nodestats_disposition::Attach, None) => {
                return Err(nodestats_status::InvalidArgument)
            }
            (nodestats_disposition::Attach, Some(name)) => {
                let seg = Arc::new(Segment::attach_with(name, Access::ReadWrite, &opts)?);
                // What `nodestats_maintain` creates again: this segment's
                // geometry.
                let again = match opts.maintain_every_ref() {
                    Some(every) => seg.options().maintain_every(every),
                    None => seg.options(),
                };
                Stats::with_options(seg, again)?
            }
        };
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { publish(stats, out) };
        Ok(())
    })
}

/// Releases the handle's writer slot (its gauges stop counting) and frees
/// it. Counters it recorded stay in the segment. NULL is a no-op.
///
/// # Safety
/// `s` is NULL or a live handle from `nodestats_open*` that no other thread
/// is using; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn nodestats_close(s: *mut nodestats_t) {
    if s.is_null() {
        return;
    }
    let _ = boundary!([] {
        // SAFETY: a live handle made by Box::into_raw in `publish`, owned by
        // the caller, who gives it up here.
        drop(unsafe { Box::from_raw(s) });
        Ok(())
    });
}

/// Removes a named segment. Handles already open keep working; later opens
/// create a new segment (a collector sees a counter reset).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn nodestats_segment_unlink(name: *const c_char) -> nodestats_status {
    boundary!([name] {
        // SAFETY: non-NULL (checked) and NUL-terminated per the contract.
        let name = unsafe { name_arg(name) }?.ok_or(nodestats_status::NullArgument)?;
        Segment::unlink(name)?;
        Ok(())
    })
}

/// Whether a writer's segment is still the one at its name
/// (`nodestats_segment_status`). Values are fixed.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nodestats_segment_state {
    /// The file at the name is the one this handle maps, whole, and
    /// everything recorded reaches it (also: an anonymous segment).
    Current = 0,
    /// Another segment is at the name now (a restarted peer or an operator
    /// made a new one): what this handle records reaches no collector that
    /// opens the name. `nodestats_maintain` moves the handle there.
    Replaced = 1,
    /// Nothing is at the name any more (removed by `rm`, systemd's
    /// `RemoveIPC`, `nodestats_segment_unlink`): recording reaches only
    /// collectors already attached. `nodestats_maintain` creates the
    /// segment again.
    Removed = 2,
    /// The file was truncated under the mapping: recording goes on, into
    /// private memory that no collector sees (the pages that faulted; see
    /// `nodestats_maintain`), also after the file has been grown again.
    Shrunk = 3,
    /// `s` was NULL, or asking failed (`nodestats_last_os_error` may say
    /// why).
    Unknown = 4,
}

/// Whether the handle's segment is still the one at its name, and whole.
/// Not a hot-path call: an `fstat` of the mapped file and an `open` and
/// `fstat` of the name. Safe to call from any thread while others record;
/// waits for a `nodestats_maintain` in progress on another thread (the
/// watcher's) to finish, so that CURRENT means the move is complete.
///
/// A handle whose file was truncated never dies of it: the recording calls
/// that touch a page past the file's new end fault once, the page is
/// replaced by private zero memory, and the call completes there; from
/// then on this returns `NODESTATS_SEGMENT_STATE_SHRUNK` until
/// `nodestats_maintain` moves the handle to a whole segment.
///
/// # Safety
/// `s` is NULL or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_segment_status(
    s: *const nodestats_t,
) -> nodestats_segment_state {
    use crate::segment::SegmentStatus as S;
    use nodestats_segment_state as N;
    // SAFETY: NULL or a live handle, per the contract.
    let Some(stats) = (unsafe { stats(s) }) else {
        return N::Unknown;
    };
    let asked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stats.status()));
    match asked {
        Ok(Ok(S::Current)) => N::Current,
        Ok(Ok(S::Replaced)) => N::Replaced,
        Ok(Ok(S::Removed)) => N::Removed,
        Ok(Ok(S::Shrunk { .. })) => N::Shrunk,
        Ok(Err(e)) => {
            let _ = nodestats_status::from(&e);
            N::Unknown
        }
        Err(_) => N::Unknown,
    }
}

/// Follows the segment's name; made for an SFU's housekeeping timer (call
/// it every 100 ms or so, from any thread, while other threads record).
///
/// When the segment at the name is the one the handle maps, and whole,
/// this costs an `fstat` and a `stat` and does nothing. When the name was
/// removed, another segment was put there, or the file was truncated
/// (`nodestats_segment_status` is not `CURRENT`), it moves the handle — and
/// every handle made from it: thread writers, series, thread series,
/// declared families — to the segment at the name, creating it (with the
/// options the handle was opened with) if nothing is there or in place of
/// the handle's own truncated file. All those handles stay valid and from
/// then on record into that segment; no recording call gets slower.
///
/// What is lost: counts recorded into the old segment are not carried over
/// (collectors of the new segment see this writer start from zero, as after
/// a restart). The writer's gauges (rooms, participants, tracks,
/// connections, forwarding latency, labeled gauges) are re-added in the new
/// segment, except that after a truncate only the changes made since the
/// truncate remain (the file's pages are gone). A thread writer for which
/// the new segment has no free row records nowhere until closed.
///
/// Returns `NODESTATS_STATUS_OK` when the handle writes the segment at the
/// name. `NODESTATS_STATUS_CONFIG` when the segment now at the name has
/// another geometry (shards, slots, rows, capacities) — nothing changes;
/// open a new handle on it. Any status of `nodestats_open` when the
/// segment at the name cannot be opened or created — nothing changes; call
/// again later. Blocks at most the open's init wait (at least 1 s), and only
/// when another process's half-made segment is at the name. After `fork`,
/// only a handle opened in the child may be maintained there.
///
/// # Safety
/// `s` is NULL or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_maintain(s: *mut nodestats_t) -> nodestats_status {
    boundary!([s] {
        // SAFETY: `s` is non-NULL (checked) and live per the contract.
        let stats = unsafe { &(*s).stats };
        stats.maintain()?;
        Ok(())
    })
}

/// Reads the merged counters and gauges of the handle's segment now into
/// `*out`: every writer's counters, live writers' gauges. System fields and
/// rates are left zero (use a collector for those). `*out` is untouched on
/// error.
///
/// # Safety
/// `s` is a live handle; `out` is valid for writing a `nodestats_node_stats`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_read(
    s: *const nodestats_t,
    out: *mut nodestats_node_stats,
) -> nodestats_status {
    boundary!([s, out] {
        // SAFETY: `s` is non-NULL (checked) and live per the contract.
        let stats = unsafe { &(*s).stats };
        let config = CollectorConfig {
            system: None,
            ..CollectorConfig::default()
        };
        let ns = Collector::new(stats.segment().clone(), config)?.update();
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { out.write(nodestats_node_stats::from(&ns)) };
        Ok(())
    })
}

/// Stores the index of the handle's writer slot in `*out`.
///
/// # Safety
/// `s` is a live handle; `out` is valid for writing a `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_writer_slot(
    s: *const nodestats_t,
    out: *mut u32,
) -> nodestats_status {
    boundary!([s, out] {
        // SAFETY: `s` is non-NULL (checked) and live per the contract.
        let slot = unsafe { &(*s).stats }.writer_slot();
        let slot = u32::try_from(slot).map_err(|_| nodestats_status::BadLayout)?;
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { out.write(slot) };
        Ok(())
    })
}

/// Records `packets` packets totalling `bytes` bytes: a whole
/// `recvmmsg`/`sendmmsg` batch in one call. Retransmits count in the
/// direction's totals and in `retransmit_*`.
///
/// What to count: media packets (RTP; RTCP too if you want it in the
/// totals, as LiveKit's TURN path does), `bytes` being the whole packet as
/// it travels in one UDP datagram — the UDP payload: RTP header, header
/// extensions, payload and padding; not the IP and UDP headers; for SRTP
/// the encrypted packet with its authentication tag. These calls feed
/// `packets_in/out`, `bytes_in/out`, `retransmit_*` and
/// `livekit_packet_total`/`livekit_packet_bytes` with an empty `country`;
/// so do series of `livekit_packet_total`/`livekit_packet_bytes` (and
/// NACK/PLI/FIR series) opened with a non-empty `country`, and
/// `nodestats_record_packets_country`. Record each packet through one of
/// them, never two, or it is counted twice. Series of declared families
/// feed nothing but themselves.
///
/// Hot path: no lock, no allocation, no system call, cannot fail. A NULL
/// handle or an unknown `dir` makes it a no-op.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_packets(
    s: *mut nodestats_t,
    dir: DirectionArg,
    packets: u64,
    bytes: u64,
    retransmit: bool,
) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(dir)) = (unsafe { stats(s) }, dir.get()) {
        s.record_packets(dir, packets, bytes, retransmit);
    }
}

/// Records one packet of `bytes` bytes (see `nodestats_record_packets`). Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_packet(
    s: *mut nodestats_t,
    dir: DirectionArg,
    bytes: u64,
    retransmit: bool,
) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(dir)) = (unsafe { stats(s) }, dir.get()) {
        s.record_packet(dir, bytes, retransmit);
    }
}

/// Records RTCP feedback: NACKs, PLIs and FIRs. NACKs of both directions
/// feed `nack_total`. Hot path.
///
/// Each count is of feedback *messages*: `nack` is the number of RTCP
/// transport-layer NACK messages (however many sequence numbers each one
/// asks for), `pli` and `fir` the PLI and FIR messages. Count the
/// sequence numbers asked for, if you want them, in a declared family of
/// your own.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_record_rtcp(
    s: *mut nodestats_t,
    dir: DirectionArg,
    nack: u32,
    pli: u32,
    fir: u32,
) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(dir)) = (unsafe { stats(s) }, dir.get()) {
        s.record_rtcp(dir, nack, pli, fir);
    }
}

/// Participants whose signal connection was established. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_signal_connected(s: *mut nodestats_t, n: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_signal_connected(n);
    }
}

/// Joins that failed at signalling. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_join_failed(s: *mut nodestats_t, n: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_join_failed(n);
    }
}

/// Joins rejected by validation. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_join_validation_failed(s: *mut nodestats_t, n: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_join_validation_failed(n);
    }
}

/// Joins whose websocket upgrade failed. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_join_upgrade_failed(s: *mut nodestats_t, n: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_join_upgrade_failed(n);
    }
}

/// Joins whose initial response could not be written. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_join_write_initial_response_failed(
    s: *mut nodestats_t,
    n: u32,
) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_join_write_initial_response_failed(n);
    }
}

/// Participants whose RTC session was initialised. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_rtc_init(s: *mut nodestats_t, n: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_rtc_init(n);
    }
}

/// Participants whose RTC session connected. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_rtc_connected(s: *mut nodestats_t, n: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_rtc_connected(n);
    }
}

/// Participants that became active. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_rtc_active(s: *mut nodestats_t, n: u32, warp: bool) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_rtc_active(n, warp);
    }
}

/// Participants that left before becoming active. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_rtc_canceled(
    s: *mut nodestats_t,
    n: u64,
    warp: bool,
) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_rtc_canceled(n, warp);
    }
}

/// RTC sessions that succeeded. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_rtc_success(
    s: *mut nodestats_t,
    n: u64,
    warp: bool,
) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_rtc_success(n, warp);
    }
}

/// RTC sessions that failed. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_rtc_failure(
    s: *mut nodestats_t,
    n: u64,
    warp: bool,
) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_rtc_failure(n, warp);
    }
}

/// A client tried to publish a track. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_publish_attempt(s: *mut nodestats_t, kind: TrackKindArg) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(kind)) = (unsafe { stats(s) }, kind.get()) {
        s.track_publish_attempt(kind);
    }
}

/// A track was published successfully. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_publish_success(s: *mut nodestats_t, kind: TrackKindArg) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(kind)) = (unsafe { stats(s) }, kind.get()) {
        s.track_publish_success(kind);
    }
}

/// Publications canceled. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_publish_cancels(
    s: *mut nodestats_t,
    kind: TrackKindArg,
    n: u32,
) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(kind)) = (unsafe { stats(s) }, kind.get()) {
        s.track_publish_cancels(kind, n);
    }
}

/// A published track is now live: raises `num_tracks_in`. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_published(s: *mut nodestats_t, kind: TrackKindArg) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(kind)) = (unsafe { stats(s) }, kind.get()) {
        s.track_published(kind);
    }
}

/// A published track ended: lowers `num_tracks_in`. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_unpublished(s: *mut nodestats_t, kind: TrackKindArg) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(kind)) = (unsafe { stats(s) }, kind.get()) {
        s.track_unpublished(kind);
    }
}

/// A client tried to subscribe to a track. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_subscribe_attempt(s: *mut nodestats_t) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.track_subscribe_attempt();
    }
}

/// A subscription succeeded: counts a success and raises `num_tracks_out`. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_subscribe_success(
    s: *mut nodestats_t,
    kind: TrackKindArg,
) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(kind)) = (unsafe { stats(s) }, kind.get()) {
        s.track_subscribe_success(kind);
    }
}

/// A subscription ended: lowers `num_tracks_out`. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_unsubscribed(s: *mut nodestats_t, kind: TrackKindArg) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(kind)) = (unsafe { stats(s) }, kind.get()) {
        s.track_unsubscribed(kind);
    }
}

/// A subscription failed; a user error (e.g. no permission) also counts
/// as a cancel. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_subscribe_failure(s: *mut nodestats_t, user_error: bool) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.track_subscribe_failure(user_error);
    }
}

/// Subscriptions canceled. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_track_subscribe_cancels(s: *mut nodestats_t, n: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.track_subscribe_cancels(n);
    }
}

/// A room started on this node: raises `num_rooms`. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_room_started(s: *mut nodestats_t) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.room_started();
    }
}

/// A room ended: lowers `num_rooms`. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_room_ended(s: *mut nodestats_t) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.room_ended();
    }
}

/// A participant joined a room on this node: raises `num_clients`. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_added(s: *mut nodestats_t) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_added();
    }
}

/// A participant left: lowers `num_clients`. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_participant_removed(s: *mut nodestats_t) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.participant_removed();
    }
}

/// A transport connection opened. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_connection_added(s: *mut nodestats_t, dir: DirectionArg) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(dir)) = (unsafe { stats(s) }, dir.get()) {
        s.connection_added(dir);
    }
}

/// A transport connection closed. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_connection_removed(s: *mut nodestats_t, dir: DirectionArg) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(s), Some(dir)) = (unsafe { stats(s) }, dir.get()) {
        s.connection_removed(dir);
    }
}

/// Mean forwarding latency over the last report window, ns. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_forward_latency(s: *mut nodestats_t, ns: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.forward_latency(ns);
    }
}

/// Standard deviation of forwarding latency, ns. Hot path.
///
/// # Safety
/// `s` is NULL (no-op) or a live handle from `nodestats_open*`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_forward_jitter(s: *mut nodestats_t, ns: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { stats(s) } {
        s.forward_jitter(ns);
    }
}
