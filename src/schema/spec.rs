//! Families declared at run time: what a declaration says ([`FamilySpec`])
//! and which family a series belongs to ([`FamilyId`]). Pure data and the
//! naming rules; the segment stores declared families in its family
//! directory.

use super::families::{Family, Kind, LIVEKIT_FAMILIES};
use super::native::{
    NativeLayout, DEFAULT_NATIVE_MAX, DEFAULT_NATIVE_MIN, DEFAULT_NATIVE_SCHEMA,
    DEFAULT_NATIVE_ZERO_THRESHOLD, MAX_NATIVE_SCHEMA, MIN_NATIVE_SCHEMA,
};
use std::fmt;

/// Most labels a family may have.
pub const MAX_FAMILY_LABELS: usize = 8;
/// Longest metric name of a declared family, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Longest help text of a declared family, in bytes.
pub const MAX_HELP_BYTES: usize = 864;
/// Longest unit of a declared family, in bytes.
pub const MAX_UNIT_BYTES: usize = 32;
/// Longest label name of a declared family, in bytes.
pub const MAX_LABEL_NAME_BYTES: usize = 64;
/// Most bucket bounds of a declared histogram (+Inf excluded).
pub const MAX_DECLARED_BUCKETS: usize = 48;
/// The series cap of a declared family whose spec leaves it at 0.
pub const DEFAULT_MAX_SERIES: u32 = 2000;
/// The series cap of each of LiveKit's families in a new segment: half the
/// default directory, as many series as a whole directory held before
/// families had caps, so LiveKit's NodeStats folds keep counting every
/// country they counted then.
pub const DEFAULT_LIVEKIT_MAX_SERIES: u32 = 4096;
/// Buckets of a declared histogram whose spec gives none: client_golang's
/// `DefBuckets` (seconds).
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The metric-name prefix kept for this library's own families.
pub(crate) const RESERVED_PREFIX: &str = "nodestats_";
/// Label names the exporter adds to every sample: no family may use them.
pub(crate) const CONST_LABELS: [&str; 2] = ["node_id", "node_type"];

/// Bit set in the [`FamilyId`] of every declared family.
pub(crate) const DECLARED_BIT: u16 = 0x8000;

/// Which family a series belongs to: one of LiveKit's [`Family`]s, or a
/// family declared at run time (see `Stats::declare`). The segment stores
/// this number in each series entry; a declared family's id names its
/// entry in the segment's family directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId(pub(crate) u16);

impl FamilyId {
    /// The id of declared family directory entry `k`.
    pub(crate) const fn declared(k: usize) -> FamilyId {
        FamilyId(DECLARED_BIT | k as u16)
    }

    /// The LiveKit family this is, if it is one.
    pub fn livekit(self) -> Option<Family> {
        Family::from_index(self.0 as usize)
    }

    /// The family directory entry of a declared family.
    pub(crate) fn directory_entry(self) -> Option<usize> {
        (self.0 & DECLARED_BIT != 0).then_some((self.0 & !DECLARED_BIT) as usize)
    }

    /// Whether the family was declared at run time (not one of LiveKit's).
    pub fn is_declared(self) -> bool {
        self.directory_entry().is_some()
    }

    /// The number stored in series entries (SEGMENT.md §8).
    pub fn index(self) -> u16 {
        self.0
    }

    /// The id stored as `index` in a series entry, if it can name a family
    /// (a LiveKit index or a declared one).
    pub(crate) fn from_index(index: u16) -> Option<FamilyId> {
        ((index as usize) < LIVEKIT_FAMILIES || index & DECLARED_BIT != 0)
            .then_some(FamilyId(index))
    }
}

impl From<Family> for FamilyId {
    fn from(f: Family) -> FamilyId {
        FamilyId(f as u16)
    }
}

impl PartialEq<Family> for FamilyId {
    fn eq(&self, f: &Family) -> bool {
        self.0 == *f as u16
    }
}

/// A family to declare: name, help, kind, unit, label names, histogram
/// bounds and a series cap. Build one with [`counter`](Self::counter),
/// [`gauge`](Self::gauge) or [`histogram`](Self::histogram), then the
/// optional setters.
///
/// ```
/// use nodestats::FamilySpec;
/// let spec = FamilySpec::counter("sfu_room_bytes_total", "Bytes forwarded per room.")
///     .labels(&["room"])
///     .unit("bytes")
///     .max_series(500);
/// # let _ = spec;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FamilySpec {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) kind: Kind,
    pub(crate) unit: String,
    pub(crate) labels: Vec<String>,
    pub(crate) buckets: Vec<f64>,
    pub(crate) max_series: u32,
    pub(crate) native: Option<NativeSpec>,
}

/// The native buckets a histogram spec asks for: schema, zero threshold
/// and the range of values its buckets cover.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct NativeSpec {
    pub(crate) schema: i8,
    pub(crate) zero_threshold: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Default for NativeSpec {
    fn default() -> Self {
        NativeSpec {
            schema: DEFAULT_NATIVE_SCHEMA,
            zero_threshold: DEFAULT_NATIVE_ZERO_THRESHOLD,
            min: DEFAULT_NATIVE_MIN,
            max: DEFAULT_NATIVE_MAX,
        }
    }
}

impl FamilySpec {
    fn new(name: &str, help: &str, kind: Kind) -> Self {
        FamilySpec {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            unit: String::new(),
            labels: Vec::new(),
            buckets: Vec::new(),
            max_series: 0,
            native: None,
        }
    }

    /// A counter family.
    pub fn counter(name: &str, help: &str) -> Self {
        Self::new(name, help, Kind::Counter)
    }

    /// A gauge family: each writer process's part leaves with it.
    pub fn gauge(name: &str, help: &str) -> Self {
        Self::new(name, help, Kind::Gauge)
    }

    /// A histogram family with these upper bounds (strictly increasing,
    /// finite; +Inf is implied). An empty list means [`DEFAULT_BUCKETS`].
    pub fn histogram(name: &str, help: &str, buckets: &[f64]) -> Self {
        FamilySpec {
            buckets: buckets.to_vec(),
            ..Self::new(name, help, Kind::Histogram)
        }
    }

    /// The label names, in the order label values are given.
    pub fn labels(mut self, names: &[&str]) -> Self {
        self.labels = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The unit (OpenMetrics `# UNIT`), e.g. `"seconds"` or `"bytes"`.
    pub fn unit(mut self, unit: &str) -> Self {
        self.unit = unit.to_string();
        self
    }

    /// The most series the family may have; later label sets are recorded
    /// in its overflow series (every label `__overflow__`). 0 means
    /// [`DEFAULT_MAX_SERIES`].
    pub fn max_series(mut self, n: u32) -> Self {
        self.max_series = n;
        self
    }

    /// Makes a histogram family native (sparse exponential buckets, as
    /// Prometheus' native histograms and OpenTelemetry's exponential ones)
    /// at `schema` (−4 … 8; [`DEFAULT_NATIVE_SCHEMA`] is 3: bucket
    /// boundaries are powers of `2^(2^-schema)`). Classic bounds given to
    /// [`histogram`](Self::histogram) are kept beside the native buckets;
    /// none (an empty list) means none, not the defaults.
    ///
    /// Each series keeps the buckets from [`DEFAULT_NATIVE_MIN`] to
    /// [`DEFAULT_NATIVE_MAX`] unless [`native_range`](Self::native_range)
    /// says otherwise, for positive and for negative values; an
    /// observation outside goes to the outermost bucket and is counted
    /// (`nodestats_native_clamped_total`). Memory: 8 bytes per value block
    /// for each of `2·span + 4 + bounds` words, where `span` is the number
    /// of buckets between the range's ends (321 at schema 3 with the
    /// default range).
    ///
    /// ```
    /// use nodestats::FamilySpec;
    /// let spec = FamilySpec::histogram("sfu_forward_delay_seconds", "Forwarding delay.", &[])
    ///     .native(3)
    ///     .native_range(1e-6, 10.0);
    /// assert_eq!(spec.native_schema(), Some(3));
    /// ```
    pub fn native(mut self, schema: i8) -> Self {
        self.native = Some(NativeSpec {
            schema,
            ..self.native.unwrap_or_default()
        });
        self
    }

    /// The range of absolute values the native buckets cover (`0 < min ≤
    /// max`, finite); makes the family native at the default schema if it
    /// was not.
    pub fn native_range(mut self, min: f64, max: f64) -> Self {
        self.native = Some(NativeSpec {
            min,
            max,
            ..self.native.unwrap_or_default()
        });
        self
    }

    /// Observations with `|v| ≤ threshold` go to the zero bucket (default
    /// [`DEFAULT_NATIVE_ZERO_THRESHOLD`]); makes the family native at the
    /// default schema if it was not.
    pub fn native_zero_threshold(mut self, threshold: f64) -> Self {
        self.native = Some(NativeSpec {
            zero_threshold: threshold,
            ..self.native.unwrap_or_default()
        });
        self
    }

    /// The native schema, if the family is native.
    pub fn native_schema(&self) -> Option<i8> {
        self.native.map(|n| n.schema)
    }

    /// How the family's series keep native buckets (`None`: classic only).
    pub(crate) fn native_layout(&self) -> Option<NativeLayout> {
        self.native
            .map(|n| NativeLayout::of(n.schema, n.zero_threshold, n.min, n.max))
    }

    /// The metric name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The series cap in force (the default for 0).
    pub fn effective_max_series(&self) -> u32 {
        match self.max_series {
            0 => DEFAULT_MAX_SERIES,
            n => n,
        }
    }

    /// The histogram bounds in force (the default for none).
    pub fn effective_buckets(&self) -> &[f64] {
        match (self.kind, self.buckets.is_empty()) {
            (Kind::Histogram, true) if self.native.is_none() => &DEFAULT_BUCKETS,
            _ => &self.buckets,
        }
    }

    /// Checks the spec against Prometheus' naming rules and this library's
    /// limits; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        check_metric_name(&self.name)?;
        if self.name.starts_with(RESERVED_PREFIX) {
            return Err(format!(
                "metric name {:?}: the prefix {RESERVED_PREFIX:?} is kept for nodestats' own metrics",
                self.name
            ));
        }
        if self.help.len() > MAX_HELP_BYTES {
            return Err(format!(
                "help text of {:?} is {} bytes, more than {MAX_HELP_BYTES}",
                self.name,
                self.help.len()
            ));
        }
        if self.unit.len() > MAX_UNIT_BYTES
            || !self
                .unit
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "unit {:?} of {:?}: at most {MAX_UNIT_BYTES} bytes of [a-zA-Z0-9_]",
                self.unit, self.name
            ));
        }
        if self.labels.len() > MAX_FAMILY_LABELS {
            return Err(format!(
                "{:?} has {} labels, more than {MAX_FAMILY_LABELS}",
                self.name,
                self.labels.len()
            ));
        }
        for (i, l) in self.labels.iter().enumerate() {
            check_label_name(l)?;
            if self.kind == Kind::Histogram && l == "le" {
                return Err(format!(
                    "histogram {:?} may not have a label \"le\"",
                    self.name
                ));
            }
            if CONST_LABELS.contains(&l.as_str()) {
                return Err(format!(
                    "label {l:?} of {:?}: the exporter adds it to every sample",
                    self.name
                ));
            }
            if self.labels[..i].contains(l) {
                return Err(format!("label {l:?} appears twice in {:?}", self.name));
            }
        }
        if let Some(n) = self.native {
            check_native(&self.name, self.kind, &n)?;
        }
        match self.kind {
            Kind::Histogram => {
                check_buckets(&self.name, self.effective_buckets(), self.native.is_some())
            }
            _ if !self.buckets.is_empty() => Err(format!(
                "{:?} is not a histogram but has buckets",
                self.name
            )),
            _ => Ok(()),
        }
    }

    /// The spec's shape as words a message can show: kind, labels,
    /// buckets, unit.
    pub(crate) fn describe(&self) -> String {
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let mut s = format!("{kind} {}{{{}}}", self.name, self.labels.join(","));
        if self.kind == Kind::Histogram {
            s += &format!(" buckets {:?}", self.effective_buckets());
        }
        if let (Some(n), Some(l)) = (self.native, self.native_layout()) {
            s += &format!(
                " native schema {} zero threshold {:e} buckets {}..={}",
                n.schema,
                n.zero_threshold,
                l.lo,
                l.lo as i64 + l.span as i64 - 1
            );
        }
        if !self.unit.is_empty() {
            s += &format!(" unit {:?}", self.unit);
        }
        s
    }

    /// Whether `other` declares the same family: same name, kind, labels,
    /// bounds and unit (help and the series cap may differ: the first
    /// declaration's stand).
    pub(crate) fn same_shape(&self, other: &FamilySpec) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.labels == other.labels
            && self.unit == other.unit
            && self
                .effective_buckets()
                .iter()
                .map(|b| b.to_bits())
                .eq(other.effective_buckets().iter().map(|b| b.to_bits()))
            && self.native_layout() == other.native_layout()
    }

    /// The spec of a LiveKit family, to compare a declaration with.
    pub(crate) fn of_livekit(f: Family) -> FamilySpec {
        let def = f.def();
        let (bounds, nb) = def.buckets.bounds();
        FamilySpec {
            name: def.name.to_string(),
            help: def.help.to_string(),
            kind: def.kind,
            unit: String::new(),
            labels: def.labels.iter().map(|s| s.to_string()).collect(),
            buckets: match def.kind {
                Kind::Histogram => bounds[..nb].to_vec(),
                _ => Vec::new(),
            },
            max_series: 0,
            native: None,
        }
    }
}

impl fmt::Display for FamilySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, not starting with
/// `__`, at most [`MAX_NAME_BYTES`].
fn check_metric_name(name: &str) -> Result<(), String> {
    let ok_first = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b':';
    let ok = |b: u8| ok_first(b) || b.is_ascii_digit();
    let b = name.as_bytes();
    if b.is_empty()
        || b.len() > MAX_NAME_BYTES
        || !ok_first(b[0])
        || !b.iter().all(|&c| ok(c))
        || name.starts_with("__")
    {
        return Err(format!(
            "metric name {name:?}: 1 to {MAX_NAME_BYTES} bytes of [a-zA-Z0-9_:], not starting with a digit or \"__\""
        ));
    }
    Ok(())
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with
/// `__`, at most [`MAX_LABEL_NAME_BYTES`].
fn check_label_name(name: &str) -> Result<(), String> {
    let ok_first = |b: u8| b.is_ascii_alphabetic() || b == b'_';
    let b = name.as_bytes();
    if b.is_empty()
        || b.len() > MAX_LABEL_NAME_BYTES
        || !ok_first(b[0])
        || !b.iter().all(|&c| ok_first(c) || c.is_ascii_digit())
        || name.starts_with("__")
    {
        return Err(format!(
            "label name {name:?}: 1 to {MAX_LABEL_NAME_BYTES} bytes of [a-zA-Z0-9_], not starting with a digit or \"__\""
        ));
    }
    Ok(())
}

/// Histogram bounds: 1 (0 for a native histogram) to
/// [`MAX_DECLARED_BUCKETS`], finite, strictly increasing.
fn check_buckets(name: &str, b: &[f64], native: bool) -> Result<(), String> {
    if (b.is_empty() && !native) || b.len() > MAX_DECLARED_BUCKETS {
        return Err(format!(
            "histogram {name:?} has {} bounds: 1 to {MAX_DECLARED_BUCKETS}",
            b.len()
        ));
    }
    if !b.iter().all(|v| v.is_finite()) || !b.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!(
            "histogram {name:?}: bounds must be finite and strictly increasing, got {b:?}"
        ));
    }
    Ok(())
}

/// A native spec: on a histogram, a range `0 < min ≤ max` (finite) whose
/// layout a segment may hold (`NativeLayout::check`).
fn check_native(name: &str, kind: Kind, n: &NativeSpec) -> Result<(), String> {
    if kind != Kind::Histogram {
        return Err(format!(
            "{name:?} is not a histogram but has native buckets"
        ));
    }
    if !(MIN_NATIVE_SCHEMA..=MAX_NATIVE_SCHEMA).contains(&n.schema) {
        return Err(format!(
            "native schema {} of {name:?}: {MIN_NATIVE_SCHEMA} to {MAX_NATIVE_SCHEMA}",
            n.schema
        ));
    }
    if !(n.min.is_finite() && n.max.is_finite() && n.min > 0.0 && n.min <= n.max) {
        return Err(format!(
            "native range {}..{} of {name:?}: finite, 0 < min <= max",
            n.min, n.max
        ));
    }
    NativeLayout::of(n.schema, n.zero_threshold, n.min, n.max)
        .check()
        .map_err(|e| format!("{e} (range {}..{} of {name:?})", n.min, n.max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_rules() {
        for ok in ["a", "sfu_x_total", "a:b", "_x", "X9"] {
            assert!(check_metric_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "9a", "__x", "a-b", "a b", "é", &"x".repeat(129)] {
            assert!(check_metric_name(bad).is_err(), "{bad}");
        }
        for ok in ["room", "_r", "r9"] {
            assert!(check_label_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "9", "__name__", "a:b", "a-b", &"l".repeat(65)] {
            assert!(check_label_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn specs_are_checked() {
        let ok = FamilySpec::histogram("sfu_delay_seconds", "d", &[0.001, 0.01]).labels(&["room"]);
        assert!(ok.validate().is_ok());
        let bad = [
            FamilySpec::histogram("h", "", &[1.0, 1.0]),
            FamilySpec::histogram("h", "", &[1.0, f64::NAN]),
            FamilySpec::histogram("h", "", &[f64::INFINITY]),
            FamilySpec::histogram("h", "", &[2.0, 1.0]),
            FamilySpec::histogram("h", "", &[1.0]).labels(&["le"]),
            FamilySpec::counter("c", "").labels(&["a", "a"]),
            FamilySpec::counter("c", "").labels(&["node_id"]),
            FamilySpec::counter("c", "").labels(&["a", "b", "c", "d", "e", "f", "g", "h", "i"]),
            FamilySpec::counter("nodestats_x", ""),
            FamilySpec::counter("c", "").unit("a b"),
            FamilySpec::counter("c", &"h".repeat(MAX_HELP_BYTES + 1)),
            FamilySpec::gauge("g", "").labels(&["__x"]),
            FamilySpec {
                buckets: vec![1.0],
                ..FamilySpec::counter("c", "")
            },
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
        // A histogram with no bounds gets client_golang's defaults.
        let d = FamilySpec::histogram("h", "", &[]);
        assert!(d.validate().is_ok());
        assert_eq!(d.effective_buckets(), &DEFAULT_BUCKETS);
    }

    #[test]
    fn shapes_compare_without_help_or_cap() {
        let a = FamilySpec::counter("c", "one").labels(&["x"]);
        assert!(a.same_shape(&FamilySpec::counter("c", "two").labels(&["x"]).max_series(3)));
        assert!(!a.same_shape(&FamilySpec::gauge("c", "one").labels(&["x"])));
        assert!(!a.same_shape(&FamilySpec::counter("c", "one").labels(&["y"])));
        assert!(!a.same_shape(&FamilySpec::counter("c", "one").labels(&["x"]).unit("bytes")));
    }

    #[test]
    fn ids_tell_livekit_from_declared() {
        let lk = FamilyId::from(Family::RttMs);
        assert_eq!(lk.livekit(), Some(Family::RttMs));
        assert!(lk == Family::RttMs && !lk.is_declared());
        let d = FamilyId::declared(5);
        assert_eq!((d.directory_entry(), d.livekit()), (Some(5), None));
        assert_eq!(FamilyId::from_index(49), None);
        assert_eq!(FamilyId::from_index(0x8003), Some(FamilyId::declared(3)));
    }
}
