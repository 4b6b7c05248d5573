//! The recording API: what a media server calls per packet and per event.
//!
//! Every method here is infallible, allocation-free, lock-free and makes no
//! system call: counters add to the current CPU's shard, gauges add to this
//! writer's slot. Clone a [`Stats`] freely; clones share the writer slot.
//!
//! How a counter add is done depends on the segment's
//! [`WriteMode`](crate::segment::WriteMode), read once when the handle is
//! made: in rseq mode a non-locked add inside a restartable sequence
//! ([`rseq`](crate::rseq); one section per counter), in atomic mode
//! `fetch_add(Relaxed)`. Each call takes one predictable branch on it.

use crate::collector::{Collector, CollectorConfig};
use crate::error::{Error, Result};
use crate::segment::{Segment, SegmentOptions};
use crate::shard::{Counter, CpuSource, Shard};
use crate::slots::{Gauge, WriterSlot};
use crate::sync::Ordering;
use std::ptr::NonNull;
use std::sync::Arc;

/// Direction of a packet or RTCP message, as seen from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Direction {
    /// Received by the server.
    Incoming = 0,
    /// Sent by the server.
    Outgoing = 1,
}

/// Kind of a media track (LiveKit's `TrackType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum TrackKind {
    /// Audio track.
    Audio = 0,
    /// Video track.
    Video = 1,
    /// Data track.
    Data = 2,
}

/// Owns the writer slot; released when the last clone of a [`Stats`] drops.
#[derive(Debug)]
struct Writer {
    segment: Arc<Segment>,
    slot: usize,
    /// The process that claimed the slot. A forked child inherits the
    /// handle and the slot's lock; dropping the handle there must not
    /// release the parent's slot (its gauges would vanish while the parent
    /// still runs).
    pid: u32,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if std::process::id() == self.pid {
            self.segment.release_slot(self.slot);
        }
    }
}

/// A writer handle on a segment: the hot-path recording API.
///
/// ```
/// use nodestats::{Direction, Stats};
/// let stats = Stats::anonymous().unwrap();
/// // One recvmmsg batch: 32 packets, 38 400 bytes.
/// stats.record_packets(Direction::Incoming, 32, 38_400, false);
/// stats.record_rtcp(Direction::Outgoing, 1, 0, 0);
/// stats.room_started();
/// let ns = stats.collector(Default::default()).unwrap().update();
/// assert_eq!((ns.packets_in, ns.bytes_in, ns.nack_total, ns.num_rooms), (32, 38_400, 1, 1));
/// ```
#[derive(Clone, Debug)]
pub struct Stats {
    shards: NonNull<Shard>,
    mask: usize,
    slot: NonNull<WriterSlot>,
    cpu: CpuSource,
    /// This thread's rseq area on an rseq-mode segment; `None` in atomic
    /// mode.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    rseq: Option<crate::rseq::Area>,
    writer: Arc<Writer>,
}

// SAFETY: the pointers point into the mapping owned (through `writer`) by an
// Arc<Segment> that lives as long as any clone; it is only accessed through
// atomics, so sharing and sending handles is sound.
unsafe impl Send for Stats {}
// SAFETY: as above.
unsafe impl Sync for Stats {}

impl Stats {
    /// A writer on a new anonymous segment (this process only).
    pub fn anonymous() -> Result<Stats> {
        Self::open(&SegmentOptions::new())
    }

    /// Creates the named segment or attaches to it read-write, then claims a
    /// writer slot. Without a name, creates an anonymous segment.
    pub fn open(opts: &SegmentOptions) -> Result<Stats> {
        Self::from_segment(Arc::new(Segment::open(opts)?))
    }

    /// A writer on an already mapped segment (it must be writable).
    ///
    /// On an rseq-mode segment this fails with
    /// [`Error::UnsupportedWriteMode`] unless this process can write it with
    /// rseq (see [`rseq`](crate::rseq)); it registers the calling thread
    /// for rseq if glibc did not.
    pub fn from_segment(segment: Arc<Segment>) -> Result<Stats> {
        if !segment.is_writable() {
            return Err(Error::ReadOnly);
        }
        let mode = segment.layout().write_mode;
        crate::rseq::check_writer(mode, segment.layout().shard_count)?;
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        let rseq = match mode {
            crate::segment::WriteMode::Atomic => None,
            crate::segment::WriteMode::Rseq => Some(
                crate::rseq::Area::for_writer()
                    .map_err(|_| Error::UnsupportedWriteMode(mode as u64))?,
            ),
        };
        let slot = segment.claim_slot()?;
        let shards = NonNull::from(&segment.shards()[0]);
        let slot_ptr = NonNull::from(&segment.slots()[slot]);
        let mask = segment.layout().shard_count - 1;
        Ok(Stats {
            shards,
            mask,
            slot: slot_ptr,
            cpu: CpuSource::detect(),
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            rseq,
            writer: Arc::new(Writer {
                segment,
                slot,
                pid: std::process::id(),
            }),
        })
    }

    /// The segment this handle writes to.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.writer.segment
    }

    /// The writer slot this handle's gauges live in.
    pub fn writer_slot(&self) -> usize {
        self.writer.slot
    }

    /// A collector reading this handle's segment.
    pub fn collector(&self, config: CollectorConfig) -> Result<Collector> {
        Collector::new(self.writer.segment.clone(), config)
    }

    #[inline(always)]
    fn shard(&self) -> &Shard {
        let i = self.cpu.current() & self.mask;
        // SAFETY: mask = shard_count - 1 with shard_count a power of two, so
        // i < shard_count, and the shard array lives as long as `writer`.
        unsafe { &*self.shards.as_ptr().add(i) }
    }

    #[inline(always)]
    fn gauges(&self) -> &WriterSlot {
        // SAFETY: the slot lives as long as `writer`, which we hold.
        unsafe { self.slot.as_ref() }
    }

    /// Adds `n` to counter index `i` of the current CPU's shard.
    #[inline(always)]
    fn add_at(&self, i: usize, n: u64) {
        debug_assert!(i < crate::shard::COUNTERS);
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if let Some(area) = self.rseq {
            // SAFETY: `i` < COUNTERS, so the counter lies in shard 0 of the
            // segment's shard array, which lives as long as `writer`; it
            // has `mask + 1` shards, every one covered by `(cpu & mask) <<
            // SHARD_SHIFT`. The segment is in rseq mode, so every writer of
            // its shards uses rseq, and `check_writer` saw a shard for every
            // possible CPU. `area` came from `Area::for_writer`.
            unsafe { area.add(self.counter_ptr(i), self.mask, n) };
            return;
        }
        self.shard().counters[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds `a` to counter index `i` and `b` to `i + 1`, each exactly once
    /// (two rseq sections, or two `fetch_add`s); a reader may see the first
    /// before the second.
    #[inline(always)]
    fn add_pair_at(&self, i: usize, a: u64, b: u64) {
        debug_assert!(i + 1 < crate::shard::COUNTERS);
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if let Some(area) = self.rseq {
            // SAFETY: as in `add_at`, for the counters `i` and `i + 1`.
            unsafe { area.add_pair(self.counter_ptr(i), self.mask, a, b) };
            return;
        }
        self.add_pair_atomic(i, a, b);
    }

    /// The atomic-mode half of [`add_pair_at`](Self::add_pair_at), out of
    /// line: its CPU lookup may call `sched_getcpu`, and inlined, that call
    /// makes every caller save registers, the rseq path included (the C
    /// call `nodestats_record_packets` went from ≈ 3.9 to ≈ 2.9 ns). Two
    /// locked adds dwarf the extra call.
    #[inline(never)]
    fn add_pair_atomic(&self, i: usize, a: u64, b: u64) {
        let shard = self.shard();
        shard.counters[i].fetch_add(a, Ordering::Relaxed);
        shard.counters[i + 1].fetch_add(b, Ordering::Relaxed);
    }

    /// Address of counter `i` in shard 0, as the rseq sections want it.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[inline(always)]
    fn counter_ptr(&self, i: usize) -> *mut u64 {
        // SAFETY: callers pass i < COUNTERS, inside shard 0. The counters
        // are atomics (UnsafeCell), so writing through the pointer is
        // allowed.
        unsafe { self.shards.as_ptr().cast::<u64>().add(i) }
    }

    /// The rseq area, shard base and mask, for the test hooks.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    pub(crate) fn rseq_parts(&self) -> Option<(crate::rseq::Area, *mut u64, usize)> {
        Some((self.rseq?, self.counter_ptr(0), self.mask))
    }

    #[inline(always)]
    fn add(&self, c: Counter, n: u64) {
        self.add_at(c as usize, n);
    }

    /// Adds to the `kind` member of a per-kind counter triple (audio, video,
    /// data are adjacent in the shard).
    #[inline(always)]
    fn add_kind(&self, audio: Counter, kind: TrackKind, n: u64) {
        self.add_at(audio as usize + kind as usize, n);
    }

    /// Adds to the `kind` member of a per-kind gauge triple.
    #[inline(always)]
    fn gauge_kind(&self, audio: Gauge, kind: TrackKind, delta: i64) {
        self.gauges()
            .add_index(audio as usize + kind as usize, delta);
    }

    // ----- media (per packet or per batch) -----

    /// Records `packets` packets totalling `bytes` bytes in one call — a
    /// whole `recvmmsg`/`sendmmsg` batch at once.
    ///
    /// Retransmits count in the direction's totals (`packets_out`,
    /// `bytes_out`) and also in `retransmit_*`. Hot path, on one cache line
    /// of the current CPU's shard: in rseq mode two restartable sequences,
    /// one non-locked add each (≈ 1.7–1.9 ns), in atomic mode two relaxed
    /// `fetch_add`s (≈ 5–9 ns, by CPU). A reader may see the packets of a
    /// call before its bytes.
    #[inline]
    pub fn record_packets(&self, dir: Direction, packets: u64, bytes: u64, retransmit: bool) {
        let base = (dir as usize) * 4 + (retransmit as usize) * 2;
        self.add_pair_at(base, packets, bytes);
    }

    /// Records one packet of `bytes` bytes.
    #[inline]
    pub fn record_packet(&self, dir: Direction, bytes: u64, retransmit: bool) {
        self.record_packets(dir, 1, bytes, retransmit);
    }

    /// Records RTCP feedback: NACKs, PLIs and FIRs. NACKs of both directions
    /// feed `nack_total`.
    #[inline]
    pub fn record_rtcp(&self, dir: Direction, nack: u32, pli: u32, fir: u32) {
        let d = dir as usize;
        if nack > 0 {
            self.add_at(Counter::NackIn as usize + d, nack as u64);
        }
        if pli > 0 {
            self.add_at(Counter::PliIn as usize + d, pli as u64);
        }
        if fir > 0 {
            self.add_at(Counter::FirIn as usize + d, fir as u64);
        }
    }

    // ----- participant join funnel -----

    /// Participants whose signal connection was established
    /// (`participant_signal_connected`).
    #[inline]
    pub fn participant_signal_connected(&self, n: u32) {
        self.add(Counter::ParticipantSignalConnected, n as u64);
    }

    /// Joins that failed at signalling.
    #[inline]
    pub fn participant_join_failed(&self, n: u32) {
        self.add(Counter::ParticipantJoinFailed, n as u64);
    }

    /// Joins rejected by validation.
    #[inline]
    pub fn participant_join_validation_failed(&self, n: u32) {
        self.add(Counter::ParticipantJoinValidationFailed, n as u64);
    }

    /// Joins whose websocket upgrade failed.
    #[inline]
    pub fn participant_join_upgrade_failed(&self, n: u32) {
        self.add(Counter::ParticipantJoinUpgradeFailed, n as u64);
    }

    /// Joins whose initial response could not be written.
    #[inline]
    pub fn participant_join_write_initial_response_failed(&self, n: u32) {
        self.add(Counter::ParticipantJoinWriteInitialResponseFailed, n as u64);
    }

    /// Participants whose RTC session was initialised (`participant_rtc_init`).
    #[inline]
    pub fn participant_rtc_init(&self, n: u32) {
        self.add(Counter::ParticipantRtcInit, n as u64);
    }

    /// Participants whose RTC session connected (`participant_rtc_connected`).
    #[inline]
    pub fn participant_rtc_connected(&self, n: u32) {
        self.add(Counter::ParticipantRtcConnected, n as u64);
    }

    /// Participants that became active (`participant_rtc_active`).
    #[inline]
    pub fn participant_rtc_active(&self, n: u32, warp: bool) {
        let c = if warp {
            Counter::ParticipantRtcActiveWarp
        } else {
            Counter::ParticipantRtcActive
        };
        self.add(c, n as u64);
    }

    /// Participants that left before becoming active (`participant_rtc_canceled`).
    #[inline]
    pub fn participant_rtc_canceled(&self, n: u64, warp: bool) {
        let c = if warp {
            Counter::ParticipantRtcCanceledWarp
        } else {
            Counter::ParticipantRtcCanceled
        };
        self.add(c, n);
    }

    /// RTC sessions that succeeded.
    #[inline]
    pub fn participant_rtc_success(&self, n: u64, warp: bool) {
        let c = if warp {
            Counter::ParticipantRtcSuccessWarp
        } else {
            Counter::ParticipantRtcSuccess
        };
        self.add(c, n);
    }

    /// RTC sessions that failed.
    #[inline]
    pub fn participant_rtc_failure(&self, n: u64, warp: bool) {
        let c = if warp {
            Counter::ParticipantRtcFailureWarp
        } else {
            Counter::ParticipantRtcFailure
        };
        self.add(c, n);
    }

    // ----- tracks -----

    /// A client tried to publish a track.
    #[inline]
    pub fn track_publish_attempt(&self, kind: TrackKind) {
        self.add_kind(Counter::TrackPublishAttemptsAudio, kind, 1);
    }

    /// A track was published successfully.
    #[inline]
    pub fn track_publish_success(&self, kind: TrackKind) {
        self.add_kind(Counter::TrackPublishSuccessAudio, kind, 1);
    }

    /// Publications canceled. Takes an unsigned count: a negative cancel
    /// count cannot be expressed (LiveKit panics on one).
    #[inline]
    pub fn track_publish_cancels(&self, kind: TrackKind, n: u32) {
        self.add_kind(Counter::TrackPublishCancelsAudio, kind, n as u64);
    }

    /// A published track is now live: raises `num_tracks_in`.
    #[inline]
    pub fn track_published(&self, kind: TrackKind) {
        self.add(Counter::TracksPublished, 1);
        self.gauge_kind(Gauge::TracksPublishedAudio, kind, 1);
    }

    /// A published track ended: lowers `num_tracks_in`.
    #[inline]
    pub fn track_unpublished(&self, kind: TrackKind) {
        self.add(Counter::TracksUnpublished, 1);
        self.gauge_kind(Gauge::TracksPublishedAudio, kind, -1);
    }

    /// A client tried to subscribe to a track.
    #[inline]
    pub fn track_subscribe_attempt(&self) {
        self.add(Counter::TrackSubscribeAttempts, 1);
    }

    /// A subscription succeeded: counts a success and raises `num_tracks_out`.
    #[inline]
    pub fn track_subscribe_success(&self, kind: TrackKind) {
        self.add(Counter::TrackSubscribeSuccess, 1);
        self.add(Counter::TracksSubscribed, 1);
        self.gauge_kind(Gauge::TracksSubscribedAudio, kind, 1);
    }

    /// A subscription ended: lowers `num_tracks_out`.
    #[inline]
    pub fn track_unsubscribed(&self, kind: TrackKind) {
        self.add(Counter::TracksUnsubscribed, 1);
        self.gauge_kind(Gauge::TracksSubscribedAudio, kind, -1);
    }

    /// A subscription failed. A user error (e.g. no permission) also counts
    /// as a cancel, as in LiveKit.
    #[inline]
    pub fn track_subscribe_failure(&self, user_error: bool) {
        self.add(Counter::TrackSubscribeFailures, 1);
        if user_error {
            self.add(Counter::TrackSubscribeUserErrors, 1);
            self.add(Counter::TrackSubscribeCancels, 1);
        }
    }

    /// Subscriptions canceled.
    #[inline]
    pub fn track_subscribe_cancels(&self, n: u32) {
        self.add(Counter::TrackSubscribeCancels, n as u64);
    }

    // ----- rooms and participants -----

    /// A room started on this node: raises `num_rooms`.
    #[inline]
    pub fn room_started(&self) {
        self.add(Counter::RoomsStarted, 1);
        self.gauges().add(Gauge::Rooms, 1);
    }

    /// A room ended: lowers `num_rooms`.
    #[inline]
    pub fn room_ended(&self) {
        self.add(Counter::RoomsEnded, 1);
        self.gauges().add(Gauge::Rooms, -1);
    }

    /// A participant joined a room on this node: raises `num_clients`.
    #[inline]
    pub fn participant_added(&self) {
        self.add(Counter::ParticipantsAdded, 1);
        self.gauges().add(Gauge::Participants, 1);
    }

    /// A participant left: lowers `num_clients`.
    #[inline]
    pub fn participant_removed(&self) {
        self.add(Counter::ParticipantsRemoved, 1);
        self.gauges().add(Gauge::Participants, -1);
    }

    /// A transport connection opened.
    #[inline]
    pub fn connection_added(&self, dir: Direction) {
        self.gauges().add(connection_gauge(dir), 1);
    }

    /// A transport connection closed.
    #[inline]
    pub fn connection_removed(&self, dir: Direction) {
        self.gauges().add(connection_gauge(dir), -1);
    }

    // ----- forwarding -----

    /// Mean forwarding latency over the last report window, in ns
    /// (`forward_latency`; LiveKit's `RecordForwardLatency`).
    #[inline]
    pub fn forward_latency(&self, ns: u32) {
        self.gauges().set(Gauge::ForwardLatencyNs, ns as u64);
        self.gauges().or(Gauge::ForwardSet, 1);
    }

    /// Standard deviation of forwarding latency, in ns (`forward_jitter`).
    #[inline]
    pub fn forward_jitter(&self, ns: u32) {
        self.gauges().set(Gauge::ForwardJitterNs, ns as u64);
        self.gauges().or(Gauge::ForwardSet, 2);
    }
}

#[inline(always)]
fn connection_gauge(dir: Direction) -> Gauge {
    match dir {
        Direction::Incoming => Gauge::ConnectionsIncoming,
        Direction::Outgoing => Gauge::ConnectionsOutgoing,
    }
}

impl Stats {
    /// Resolves a labeled series of `family` to a handle (slow path:
    /// interns the label values and registers the series once; later calls
    /// with the same labels hit a per-process cache). Recording through the
    /// handle is lock-free and allocation-free.
    pub fn series(&self, family: crate::Family, labels: &[&str]) -> Result<crate::SeriesHandle> {
        let seg = self.segment();
        let base = seg.series_cache().resolve(seg, family, labels)?;
        Ok(crate::SeriesHandle::new(
            seg.clone(),
            self.series_adder(),
            family,
            base,
        ))
    }

    /// Adds to this handle's segment's series values in its write mode.
    #[inline]
    pub(crate) fn series_adder(&self) -> crate::series::Adder {
        crate::series::Adder::new(
            self.segment(),
            self.cpu,
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            self.rseq,
        )
    }
}
