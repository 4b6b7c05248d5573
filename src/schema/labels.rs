//! LiveKit's label enums and their label values.

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

impl Direction {
    /// LiveKit's label value: `incoming` or `outgoing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }
}

impl TrackKind {
    /// LiveKit's label value (`TrackType.String()`): `AUDIO`, `VIDEO`, `DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Audio => "AUDIO",
            TrackKind::Video => "VIDEO",
            TrackKind::Data => "DATA",
        }
    }
}

/// Source of a track (LiveKit's `TrackSource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum TrackSource {
    /// Unknown source.
    Unknown = 0,
    /// Camera.
    Camera = 1,
    /// Microphone.
    Microphone = 2,
    /// Screen share video.
    ScreenShare = 3,
    /// Screen share audio.
    ScreenShareAudio = 4,
}

impl TrackSource {
    /// LiveKit's label value (`TrackSource.String()`).
    pub fn as_str(self) -> &'static str {
        match self {
            TrackSource::Unknown => "UNKNOWN",
            TrackSource::Camera => "CAMERA",
            TrackSource::Microphone => "MICROPHONE",
            TrackSource::ScreenShare => "SCREEN_SHARE",
            TrackSource::ScreenShareAudio => "SCREEN_SHARE_AUDIO",
        }
    }
}

/// Connection quality rating (LiveKit's `ConnectionQuality`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ConnectionQuality {
    /// Poor.
    Poor = 0,
    /// Good.
    Good = 1,
    /// Excellent.
    Excellent = 2,
    /// Lost (observed as 3, which only the +Inf bucket holds, as in LiveKit).
    Lost = 3,
}
