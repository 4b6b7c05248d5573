//! Enums and option structs of the C API, and the validated reading of raw
//! enum values coming from C.

use super::boundary::nodestats_status;
use crate::read::CollectorConfig;
use crate::schema::{ConnectionQuality, TrackSource};
use crate::schema::{Direction, TrackKind};
use crate::segment::{
    SegmentOptions, WriteMode, DEFAULT_INIT_WAIT, DEFAULT_MODE, DEFAULT_THREAD_ROWS,
    DEFAULT_WRITER_SLOTS,
};
use crate::sys::SystemConfig;
use std::ffi::{c_char, CStr};
use std::mem::MaybeUninit;
use std::time::Duration;

/// Most rate intervals a `nodestats_collector_options` can hold.
pub const NODESTATS_MAX_RATE_INTERVALS: usize = 8;

/// Direction of a packet, RTCP message or connection, as seen from the server.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nodestats_direction {
    /// Received by the server.
    Incoming = 0,
    /// Sent by the server.
    Outgoing = 1,
}

/// Kind of a media track.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nodestats_track_kind {
    /// Audio track.
    Audio = 0,
    /// Video track.
    Video = 1,
    /// Data track.
    Data = 2,
}

// Functions take the two enums below as `MaybeUninit<E>`: the header
// shows the enum type (cbindgen unwraps `MaybeUninit`, so no rename is
// needed in cbindgen.toml), while Rust reads the raw `uint32_t` and
// validates it (`track_source`, `connection_quality`), because a C enum can
// hold any integer and an invalid Rust enum value would be undefined
// behaviour. Same ABI as the `*Arg` wrappers: `MaybeUninit<E>` is
// `repr(transparent)` over a `repr(u32)` enum.

/// Source of a track (LiveKit's `TrackSource`): the `source` label.
/// Unknown values make a recording call a no-op.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nodestats_track_source {
    /// `UNKNOWN`.
    Unknown = 0,
    /// `CAMERA`.
    Camera = 1,
    /// `MICROPHONE`.
    Microphone = 2,
    /// `SCREEN_SHARE`.
    ScreenShare = 3,
    /// `SCREEN_SHARE_AUDIO`.
    ScreenShareAudio = 4,
}

/// Connection quality rating (LiveKit's `ConnectionQuality`), observed in
/// `livekit_quality_rating`. Unknown values make a recording call a no-op.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nodestats_connection_quality {
    /// Poor (observed as 0).
    Poor = 0,
    /// Good (1).
    Good = 1,
    /// Excellent (2).
    Excellent = 2,
    /// Lost (3: only the +Inf bucket holds it, as in LiveKit).
    Lost = 3,
}

/// The raw value C passed for a `uint32_t`-based enum parameter.
///
/// # Safety
/// `E` is a `#[repr(u32)]` enum and `v` was passed from C as a `uint32_t`
/// (so its four bytes are initialised, whatever their value).
#[inline(always)]
unsafe fn raw_u32<E>(v: MaybeUninit<E>) -> u32 {
    const { assert!(size_of::<E>() == size_of::<u32>()) };
    // SAFETY: same size (checked at compile time) and initialised bytes,
    // per the contract; any bit pattern is a valid u32.
    unsafe { v.as_ptr().cast::<u32>().read_unaligned() }
}

/// The track source C passed, or `None` for a value it made up.
#[inline(always)]
pub(crate) fn track_source(v: MaybeUninit<nodestats_track_source>) -> Option<TrackSource> {
    // SAFETY: nodestats_track_source is repr(u32); C passes a uint32_t.
    match unsafe { raw_u32(v) } {
        0 => Some(TrackSource::Unknown),
        1 => Some(TrackSource::Camera),
        2 => Some(TrackSource::Microphone),
        3 => Some(TrackSource::ScreenShare),
        4 => Some(TrackSource::ScreenShareAudio),
        _ => None,
    }
}

/// The quality rating C passed, or `None` for a value it made up.
#[inline(always)]
pub(crate) fn connection_quality(
    v: MaybeUninit<nodestats_connection_quality>,
) -> Option<ConnectionQuality> {
    // SAFETY: nodestats_connection_quality is repr(u32); C passes a uint32_t.
    match unsafe { raw_u32(v) } {
        0 => Some(ConnectionQuality::Poor),
        1 => Some(ConnectionQuality::Good),
        2 => Some(ConnectionQuality::Excellent),
        3 => Some(ConnectionQuality::Lost),
        _ => None,
    }
}

/// What `nodestats_open_with` does when the named segment does or does not
/// exist.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nodestats_disposition {
    /// Create the segment, or attach read-write if it exists (the default).
    CreateOrAttach = 0,
    /// Create the segment; `NODESTATS_STATUS_ALREADY_EXISTS` if it exists.
    Create = 1,
    /// Attach read-write to an existing segment; `NODESTATS_STATUS_NOT_FOUND`
    /// if there is none.
    Attach = 2,
}

/// How writers of a new segment add to its shards (attaching always uses
/// the segment's own mode).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nodestats_write_mode {
    /// `NODESTATS_WRITE_MODE` from the environment if set, else rseq where
    /// the platform supports it, else atomic (the default).
    Auto = 0,
    /// Locked `fetch_add`: works everywhere.
    Atomic = 1,
    /// Non-locked adds in a restartable sequence (Linux x86-64, glibc ≥
    /// 2.35); opening fails if it cannot be had.
    Rseq = 2,
}

/// A `nodestats_write_mode` as C stores it: any 32-bit value. The header
/// declares it as `nodestats_write_mode`; unknown values are rejected with
/// `NODESTATS_STATUS_INVALID_ARGUMENT`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteModeArg(pub u32);

impl WriteModeArg {
    pub(crate) fn get(self) -> Result<Option<WriteMode>, nodestats_status> {
        match self.0 {
            0 => Ok(None),
            1 => Ok(Some(WriteMode::Atomic)),
            2 => Ok(Some(WriteMode::Rseq)),
            _ => Err(nodestats_status::InvalidArgument),
        }
    }
}

/// A `nodestats_direction` as C passes it: any 32-bit value. The header
/// declares it as `nodestats_direction`; unknown values are ignored.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectionArg(pub u32);

impl DirectionArg {
    /// The direction, or `None` for a value C made up.
    #[inline(always)]
    pub(crate) fn get(self) -> Option<Direction> {
        match self.0 {
            0 => Some(Direction::Incoming),
            1 => Some(Direction::Outgoing),
            _ => None,
        }
    }
}

/// A `nodestats_track_kind` as C passes it: any 32-bit value. The header
/// declares it as `nodestats_track_kind`; unknown values are ignored.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackKindArg(pub u32);

impl TrackKindArg {
    /// The kind, or `None` for a value C made up.
    #[inline(always)]
    pub(crate) fn get(self) -> Option<TrackKind> {
        match self.0 {
            0 => Some(TrackKind::Audio),
            1 => Some(TrackKind::Video),
            2 => Some(TrackKind::Data),
            _ => None,
        }
    }
}

/// A `nodestats_disposition` as C stores it: any 32-bit value. The header
/// declares it as `nodestats_disposition`; unknown values are rejected with
/// `NODESTATS_STATUS_INVALID_ARGUMENT`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispositionArg(pub u32);

impl DispositionArg {
    pub(crate) fn get(self) -> Result<nodestats_disposition, nodestats_status> {
        match self.0 {
            0 => Ok(nodestats_disposition::CreateOrAttach),
            1 => Ok(nodestats_disposition::Create),
            2 => Ok(nodestats_disposition::Attach),
            _ => Err(nodestats_status::InvalidArgument),
        }
    }
}

/// How `nodestats_open_with` creates or attaches a segment. Fill it with
/// `nodestats_options_init`, then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nodestats_options {
    /// `"/name"` (or `"name"`) for `/dev/shm/name`, a file path containing
    /// `/`, or NULL for an anonymous segment of this process only. Default
    /// NULL. Copied during the call.
    pub name: *const c_char,
    /// Create, attach, or either (default `NODESTATS_DISPOSITION_CREATE_OR_ATTACH`).
    pub disposition: DispositionArg,
    /// Permission bits of a new named segment (default 0600).
    pub mode: u32,
    /// Shards of a new segment, a power of two; 0 means one per possible
    /// CPU, rounded up (default 0).
    pub shards: u32,
    /// Writer slots of a new segment: writer handles alive at once
    /// (default 128).
    pub writer_slots: u32,
    /// How long attaching waits for a concurrent creator, in ms (default
    /// 200; create-or-attach waits at least 1000).
    pub init_wait_ms: u32,
    /// Accept an existing segment owned by another user (default false).
    pub allow_foreign_owner: bool,
    /// How writers of a new segment add (default `NODESTATS_WRITE_MODE_AUTO`).
    pub write_mode: WriteModeArg,
    /// Thread rows of a new segment: thread writers (`nodestats_thread_open`)
    /// alive at once, 1 to 4096 (default 256).
    pub thread_rows: u32,
    /// Opt in to following the segment's name without any call: when not 0,
    /// the handle starts a background thread that calls
    /// `nodestats_maintain` every this many ms (100 is a good value) until
    /// the handle is closed, ignoring errors (the next tick tries again).
    /// Named segments only. Default 0: call `nodestats_maintain` yourself.
    pub maintain_interval_ms: u32,
}

impl Default for nodestats_options {
    fn default() -> Self {
        nodestats_options {
            name: std::ptr::null(),
            disposition: DispositionArg(nodestats_disposition::CreateOrAttach as u32),
            mode: DEFAULT_MODE,
            shards: 0,
            writer_slots: DEFAULT_WRITER_SLOTS as u32,
            init_wait_ms: millis(DEFAULT_INIT_WAIT),
            allow_foreign_owner: false,
            write_mode: WriteModeArg(nodestats_write_mode::Auto as u32),
            thread_rows: DEFAULT_THREAD_ROWS as u32,
            maintain_interval_ms: 0,
        }
    }
}

/// Reads a segment name from C: NULL is `None`; anything but UTF-8 is
/// rejected.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn name_arg<'a>(
    name: *const c_char,
) -> Result<Option<&'a str>, nodestats_status> {
    if name.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, and NUL-terminated and live per the contract.
    let name = unsafe { CStr::from_ptr(name) };
    name.to_str()
        .map(Some)
        .map_err(|_| nodestats_status::InvalidArgument)
}

/// Reads a label value from C for a void recording function: `None` for
/// NULL or anything but UTF-8 (the call is then a no-op). Does not
/// allocate.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string valid for the call.
#[inline]
pub(crate) unsafe fn label_arg<'a>(s: *const c_char) -> Option<&'a str> {
    if s.is_null() {
        return None;
    }
    // SAFETY: non-NULL, and NUL-terminated and live per the contract.
    unsafe { CStr::from_ptr(s) }.to_str().ok()
}

impl nodestats_options {
    /// The Rust options and disposition these stand for.
    ///
    /// # Safety
    /// `self.name` is NULL or a NUL-terminated string valid for the call.
    pub(crate) unsafe fn segment_options(
        &self,
    ) -> Result<(SegmentOptions, nodestats_disposition), nodestats_status> {
        let disposition = self.disposition.get()?;
        let mut o = SegmentOptions::new()
            .mode(self.mode)
            .writer_slots(self.writer_slots as usize)
            .thread_rows(self.thread_rows as usize)
            .init_wait(Duration::from_millis(self.init_wait_ms.into()))
            .allow_foreign_owner(self.allow_foreign_owner)
            .maintain_every(Duration::from_millis(self.maintain_interval_ms.into()));
        if self.shards != 0 {
            o = o.shards(self.shards as usize);
        }
        if let Some(mode) = self.write_mode.get()? {
            o = o.write_mode(mode);
        }
        // SAFETY: forwarded from this function's contract.
        if let Some(name) = unsafe { name_arg(self.name) }? {
            o = o.name(name);
        }
        Ok((o, disposition))
    }
}

/// How a collector updates and which rates it computes. Fill it with
/// `nodestats_collector_options_init`, then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nodestats_collector_options {
    /// Time between updates, ms (default 2000). The collector does not
    /// sleep: this sizes its history. Must be > 0.
    pub update_interval_ms: u32,
    /// Number of entries used in `rate_intervals_ms`, 1 to
    /// `NODESTATS_MAX_RATE_INTERVALS` (default 1).
    pub rate_interval_count: u32,
    /// Rate windows, ms, in the order rates are reported (default `{10000}`).
    pub rate_intervals_ms: [u32; NODESTATS_MAX_RATE_INTERVALS],
    /// Read CPU, memory, load and network from the system (default true);
    /// false leaves those fields zero.
    pub system_probes: bool,
    /// CPUs reserved for this node, overriding the cgroup quota; 0 means
    /// none (default 0).
    pub cpu_count_override: f64,
    /// Accept a segment owned by another user (default false; used by
    /// `nodestats_collector_open` only).
    pub allow_foreign_owner: bool,
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl Default for nodestats_collector_options {
    fn default() -> Self {
        let d = CollectorConfig::default();
        let mut rate_intervals_ms = [0; NODESTATS_MAX_RATE_INTERVALS];
        let n = d.rate_intervals.len().min(NODESTATS_MAX_RATE_INTERVALS);
        for (slot, r) in rate_intervals_ms.iter_mut().zip(&d.rate_intervals) {
            *slot = millis(*r);
        }
        nodestats_collector_options {
            update_interval_ms: millis(d.update_interval),
            rate_interval_count: n as u32,
            rate_intervals_ms,
            system_probes: d.system.is_some(),
            cpu_count_override: 0.0,
            allow_foreign_owner: false,
        }
    }
}

impl nodestats_collector_options {
    /// The Rust configuration these stand for (validated later, by the
    /// collector).
    pub(crate) fn collector_config(&self) -> Result<CollectorConfig, nodestats_status> {
        let n = self.rate_interval_count as usize;
        if n > NODESTATS_MAX_RATE_INTERVALS {
            return Err(nodestats_status::InvalidArgument);
        }
        let ms = |v: u32| Duration::from_millis(v.into());
        let system = self.system_probes.then(|| SystemConfig {
            cpu_count_override: (self.cpu_count_override > 0.0).then_some(self.cpu_count_override),
            ..SystemConfig::default()
        });
        Ok(CollectorConfig {
            update_interval: ms(self.update_interval_ms),
            rate_intervals: self.rate_intervals_ms[..n].iter().map(|&v| ms(v)).collect(),
            started_at: None,
            system,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_enum_values_are_checked() {
        assert_eq!(DirectionArg(1).get(), Some(Direction::Outgoing));
        assert_eq!(DirectionArg(2).get(), None);
        assert_eq!(TrackKindArg(2).get(), Some(TrackKind::Data));
        assert_eq!(TrackKindArg(u32::MAX).get(), None);
        assert_eq!(
            DispositionArg(3).get(),
            Err(nodestats_status::InvalidArgument)
        );
    }

    /// What C passing `v` for the enum parameter looks like to Rust.
    fn raw<E>(v: u32) -> MaybeUninit<E> {
        let mut m = MaybeUninit::<E>::uninit();
        // SAFETY: E is a repr(u32) enum (callers), so the write fits.
        unsafe { m.as_mut_ptr().cast::<u32>().write(v) };
        m
    }

    #[test]
    fn raw_source_and_quality_values_are_checked() {
        for (v, want) in [
            (0, TrackSource::Unknown),
            (1, TrackSource::Camera),
            (2, TrackSource::Microphone),
            (3, TrackSource::ScreenShare),
            (4, TrackSource::ScreenShareAudio),
        ] {
            assert_eq!(track_source(raw(v)), Some(want));
            assert_eq!(want as u32, v);
        }
        for v in [5, 99, u32::MAX] {
            assert_eq!(track_source(raw(v)), None);
            assert_eq!(connection_quality(raw(v)), None);
        }
        for (v, want) in [
            (0, ConnectionQuality::Poor),
            (1, ConnectionQuality::Good),
            (2, ConnectionQuality::Excellent),
            (3, ConnectionQuality::Lost),
        ] {
            assert_eq!(connection_quality(raw(v)), Some(want));
            assert_eq!(want as u32, v);
        }
        assert_eq!(
            nodestats_track_source::ScreenShareAudio as u32,
            TrackSource::ScreenShareAudio as u32
        );
        assert_eq!(
            nodestats_connection_quality::Lost as u32,
            ConnectionQuality::Lost as u32
        );
    }

    #[test]
    fn enum_values_match_the_rust_enums() {
        assert_eq!(
            nodestats_direction::Outgoing as u32,
            Direction::Outgoing as u32
        );
        assert_eq!(nodestats_track_kind::Data as u32, TrackKind::Data as u32);
        assert_eq!(
            DirectionArg(nodestats_direction::Incoming as u32).get(),
            Some(Direction::Incoming)
        );
        assert_eq!(
            TrackKindArg(nodestats_track_kind::Video as u32).get(),
            Some(TrackKind::Video)
        );
    }

    #[test]
    fn default_collector_options_round_trip() {
        let c = nodestats_collector_options::default()
            .collector_config()
            .unwrap();
        let d = CollectorConfig::default();
        assert_eq!(c.update_interval, d.update_interval);
        assert_eq!(c.rate_intervals, d.rate_intervals);
        assert_eq!(c.system.is_some(), d.system.is_some());
        let bad = nodestats_collector_options {
            rate_interval_count: NODESTATS_MAX_RATE_INTERVALS as u32 + 1,
            ..Default::default()
        };
        assert_eq!(
            bad.collector_config().err(),
            Some(nodestats_status::InvalidArgument)
        );
    }
}
