//! The recording API: what a media server calls per packet and per event.
//!
//! Every method here is infallible, allocation-free, lock-free and makes no
//! system call: counters add to the current CPU's shard through the one
//! per-CPU [`Adder`](super::adder), gauges add to this writer's slot. Clone
//! a [`Stats`] freely; clones share the writer slot.
//!
//! How a counter add is done depends on the segment's
//! [`WriteMode`](crate::WriteMode), read once when the handle is made: in
//! rseq mode a non-locked add inside a restartable sequence (one section
//! per counter), in atomic mode `fetch_add(Relaxed)`. Each call takes one
//! predictable branch on it.

use super::adder::{Adder, BlockStride, Rseq, ShardStride};
use super::writer::Writer;
use crate::cpu::CpuSource;
use crate::error::{Error, Result};
use crate::schema::{Counter, Direction, Gauge, TrackKind};
use crate::segment::slots::WriterSlot;
use crate::segment::{Segment, SegmentOptions};
use std::ptr::NonNull;
use std::sync::Arc;

/// A writer handle on a segment: the hot-path recording API.
///
/// ```
/// use nodestats::{Collector, Direction, Stats};
/// let stats = Stats::anonymous().unwrap();
/// // One recvmmsg batch: 32 packets, 38 400 bytes.
/// stats.record_packets(Direction::Incoming, 32, 38_400, false);
/// stats.record_rtcp(Direction::Outgoing, 1, 0, 0);
/// stats.room_started();
/// let ns = Collector::new(stats.segment().clone(), Default::default()).unwrap().update();
/// assert_eq!((ns.packets_in, ns.bytes_in, ns.nack_total, ns.num_rooms), (32, 38_400, 1, 1));
/// ```
#[derive(Clone, Debug)]
pub struct Stats {
    counters: Adder<ShardStride>,
    /// What the series adders of this handle are made from.
    cpu: CpuSource,
    rseq: Rseq,
    pub(crate) writer: Arc<Writer>,
}

// SAFETY: the pointers point into the mapping owned (through `writer`) by an
// Arc<Segment> that lives as long as any clone; it is only accessed through
// atomics or rseq sections, so sharing and sending handles is sound.
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
        Self::with_options(Arc::new(Segment::open(opts)?), opts.clone())
    }

    /// A writer on an already mapped segment (it must be writable).
    ///
    /// On an rseq-mode segment this fails with
    /// [`Error::UnsupportedWriteMode`] unless this process can write it with
    /// rseq; it registers the calling thread for rseq if glibc did not.
    pub fn from_segment(segment: Arc<Segment>) -> Result<Stats> {
        let opts = segment.options();
        Self::with_options(segment, opts)
    }

    /// A writer on `segment`, which `maintain` creates again with `opts`.
    pub(crate) fn with_options(segment: Arc<Segment>, opts: SegmentOptions) -> Result<Stats> {
        if !segment.is_writable() {
            return Err(Error::ReadOnly);
        }
        let mode = segment.layout().write_mode;
        segment.check_writer()?;
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        let rseq = match mode {
            crate::WriteMode::Atomic => None,
            crate::WriteMode::Rseq => Some(
                crate::rseq::Area::for_writer()
                    .map_err(|_| Error::UnsupportedWriteMode(mode as u64))?,
            ),
        };
        #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
        let rseq: Rseq = {
            let _ = mode;
            None
        };
        let slot = segment.claim_slot()?;
        let cpu = CpuSource::detect();
        let shards = segment.shards();
        // SAFETY: the shard array is `shard_count` (a power of two) shards of
        // COUNTERS words, kept mapped by `segment`, which the handle holds;
        // `check_writer` saw a shard for every possible CPU in rseq mode and
        // the area came from `for_writer`.
        let counters = unsafe {
            Adder::new(
                NonNull::from(&shards[0].counters[0]),
                ShardStride,
                shards.len(),
                cpu,
                rseq,
            )
        };
        let every = opts
            .maintain_every_ref()
            .filter(|_| segment.name().is_some());
        let stats = Stats {
            counters,
            cpu,
            rseq,
            writer: Arc::new(Writer::new(segment, slot, opts)),
        };
        if let Some(every) = every {
            super::writer::watch(&stats.writer, every)?;
        }
        Ok(stats)
    }

    /// The segment this handle writes to.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.writer.segment
    }

    /// The writer slot this handle's gauges live in.
    pub fn writer_slot(&self) -> usize {
        self.writer.slot()
    }

    #[inline(always)]
    fn gauges(&self) -> &WriterSlot {
        self.writer.gauges()
    }

    /// The fixed counters' adder (test support: the rseq parts).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn counters(&self) -> &Adder<ShardStride> {
        &self.counters
    }

    #[inline(always)]
    fn add(&self, c: Counter, n: u64) {
        self.counters.add(c as usize, n);
    }

    /// Adds to the `kind` member of a per-kind counter triple (audio, video,
    /// data are adjacent in the shard).
    #[inline(always)]
    fn add_kind(&self, audio: Counter, kind: TrackKind, n: u64) {
        self.counters.add(audio as usize + kind as usize, n);
    }

    /// Adds to the `kind` member of a per-kind gauge triple.
    #[inline(always)]
    fn gauge_kind(&self, audio: Gauge, kind: TrackKind, delta: i64) {
        self.gauges()
            .add_index(audio as usize + kind as usize, delta);
    }

    /// Adds `delta` to this writer's part of the gauge series at `base`.
    #[inline]
    pub(crate) fn gauge_series_add(&self, base: u32, delta: i64) {
        if let Some(w) = self
            .segment()
            .series_region()
            .gauge_word(base as usize, self.writer.slot())
        {
            w.fetch_add(delta as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Adds to this handle's segment's series values in its write mode.
    #[inline]
    pub(crate) fn series_adder(&self) -> Adder<BlockStride> {
        let r = self.segment().series_region();
        let l = self.segment().layout();
        // Rseq sections need a block of their own for every possible CPU id;
        // blocks that CPUs share (many-CPU hosts) take `fetch_add` from
        // every writer, in both modes, so no word ever sees both.
        let rseq = if l.value_blocks == l.shard_count {
            self.rseq
        } else {
            Default::default()
        };
        // SAFETY: the value region is `value_blocks` blocks (a power of two)
        // of `values_per_shard` words (a power of two, validated), kept
        // mapped by the segment this handle holds; the rseq area, if any, is
        // this handle's, for a segment in rseq mode whose value blocks cover
        // as many CPU ids as its shards, all of them.
        unsafe {
            Adder::new(
                NonNull::from(&r.values[0]),
                BlockStride::new(r.values_per_shard),
                l.value_blocks,
                self.cpu,
                rseq,
            )
        }
    }

    // ----- media (per packet or per batch) -----

    /// Records `packets` packets totalling `bytes` bytes in one call — a
    /// whole `recvmmsg`/`sendmmsg` batch at once.
    ///
    /// Retransmits count in the direction's totals (`packets_out`,
    /// `bytes_out`) and also in `retransmit_*`. Hot path, on one cache line
    /// of the current CPU's shard: in rseq mode two restartable sequences,
    /// one non-locked add each, in atomic mode two relaxed `fetch_add`s
    /// (costs: `benches/README.md`). A reader may see the packets of a call
    /// before its bytes.
    #[inline]
    pub fn record_packets(&self, dir: Direction, packets: u64, bytes: u64, retransmit: bool) {
        self.counters
            .add_pair(Counter::packets(dir, retransmit), packets, bytes);
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
            self.counters.add(Counter::NackIn as usize + d, nack as u64);
        }
        if pli > 0 {
            self.counters.add(Counter::PliIn as usize + d, pli as u64);
        }
        if fir > 0 {
            self.counters.add(Counter::FirIn as usize + d, fir as u64);
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
