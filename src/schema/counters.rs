//! Indices of the fixed counters (in every shard) and gauges (in every
//! writer slot). Both are part of the segment ABI: values never change
//! within a layout major version.

use crate::schema::Direction;

/// Counters in one shard.
pub const COUNTERS: usize = 64;

/// Index of every counter in a shard. Part of the segment ABI: values never
/// change within a layout major version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
#[allow(missing_docs)]
pub enum Counter {
    // First 128-byte block: per-packet counters. Packets and bytes of one
    // (direction, transmission) pair are adjacent.
    PacketsInInitial = 0,
    BytesInInitial = 1,
    PacketsInRetransmit = 2,
    BytesInRetransmit = 3,
    PacketsOutInitial = 4,
    BytesOutInitial = 5,
    PacketsOutRetransmit = 6,
    BytesOutRetransmit = 7,
    NackIn = 8,
    NackOut = 9,
    PliIn = 10,
    PliOut = 11,
    FirIn = 12,
    FirOut = 13,
    // Second block: the participant join funnel.
    ParticipantSignalConnected = 16,
    ParticipantJoinFailed = 17,
    ParticipantJoinValidationFailed = 18,
    ParticipantJoinUpgradeFailed = 19,
    ParticipantJoinWriteInitialResponseFailed = 20,
    ParticipantRtcInit = 21,
    ParticipantRtcConnected = 22,
    ParticipantRtcActive = 23,
    ParticipantRtcActiveWarp = 24,
    ParticipantRtcCanceled = 25,
    ParticipantRtcCanceledWarp = 26,
    ParticipantRtcSuccess = 27,
    ParticipantRtcSuccessWarp = 28,
    ParticipantRtcFailure = 29,
    ParticipantRtcFailureWarp = 30,
    // Third block: tracks, by kind where LiveKit labels them by kind.
    TrackPublishAttemptsAudio = 32,
    TrackPublishAttemptsVideo = 33,
    TrackPublishAttemptsData = 34,
    TrackPublishSuccessAudio = 35,
    TrackPublishSuccessVideo = 36,
    TrackPublishSuccessData = 37,
    TrackPublishCancelsAudio = 38,
    TrackPublishCancelsVideo = 39,
    TrackPublishCancelsData = 40,
    TrackSubscribeAttempts = 41,
    TrackSubscribeSuccess = 42,
    TrackSubscribeCancels = 43,
    TrackSubscribeFailures = 44,
    TrackSubscribeUserErrors = 45,
    // Fourth block: lifecycle totals behind the gauges.
    RoomsStarted = 48,
    RoomsEnded = 49,
    ParticipantsAdded = 50,
    ParticipantsRemoved = 51,
    TracksPublished = 52,
    TracksUnpublished = 53,
    TracksSubscribed = 54,
    TracksUnsubscribed = 55,
}

impl Counter {
    /// The packets counter of one (direction, transmission) pair; its bytes
    /// counter is the next index. The one place that knows the packet block's
    /// order: `direction * 4 + retransmit * 2`.
    #[inline(always)]
    pub const fn packets(dir: Direction, retransmit: bool) -> usize {
        (dir as usize) * 4 + (retransmit as usize) * 2
    }
}

/// Index of every gauge in a slot. Part of the segment ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
#[allow(missing_docs)]
pub enum Gauge {
    Rooms = 0,
    Participants = 1,
    TracksPublishedAudio = 2,
    TracksPublishedVideo = 3,
    TracksPublishedData = 4,
    TracksSubscribedAudio = 5,
    TracksSubscribedVideo = 6,
    TracksSubscribedData = 7,
    ConnectionsIncoming = 8,
    ConnectionsOutgoing = 9,
    /// Last `forward_latency` set by this writer, ns (a set, not an add).
    ForwardLatencyNs = 10,
    /// Last `forward_jitter` set by this writer, ns.
    ForwardJitterNs = 11,
    /// Bit 0: latency was set; bit 1: jitter was set.
    ForwardSet = 12,
}
