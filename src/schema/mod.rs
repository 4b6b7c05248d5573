//! What is counted: pure data, shared by every layer above.
//!
//! * [`Counter`] and [`Gauge`] — the indices of the fixed counters in a
//!   shard and of the gauges in a writer slot (segment ABI).
//! * [`Family`] and [`FAMILIES`] — every labeled metric family, with its
//!   name, type, labels and buckets; the segment stores a family's index.
//! * [`Direction`], [`TrackKind`], [`TrackSource`], [`ConnectionQuality`] —
//!   LiveKit's label enums and their label values.
//! * [`FamilySpec`] and [`FamilyId`] — families declared at run time and
//!   the id every series entry stores.

mod counters;
mod families;
mod labels;
pub(crate) mod native;
mod native_bounds;
pub(crate) mod spec;

pub use counters::{Counter, Gauge, COUNTERS};
pub use families::{Buckets, Family, FamilyDef, Kind, FAMILIES, LIVEKIT_FAMILIES, MAX_BUCKETS};
pub use labels::{ConnectionQuality, Direction, TrackKind, TrackSource};
pub use native::{
    DEFAULT_NATIVE_MAX, DEFAULT_NATIVE_MIN, DEFAULT_NATIVE_SCHEMA, DEFAULT_NATIVE_ZERO_THRESHOLD,
    MAX_NATIVE_SCHEMA, MAX_NATIVE_SPAN, MIN_NATIVE_SCHEMA,
};
pub use spec::{
    FamilyId, FamilySpec, DEFAULT_BUCKETS, DEFAULT_LIVEKIT_MAX_SERIES, DEFAULT_MAX_SERIES,
    MAX_DECLARED_BUCKETS, MAX_FAMILY_LABELS, MAX_HELP_BYTES, MAX_LABEL_NAME_BYTES, MAX_NAME_BYTES,
    MAX_UNIT_BYTES,
};
