//! [`Snapshot`]: one read of the segment as families of series, the one
//! model every output format is written from (text 0.0.4, OpenMetrics,
//! protobuf, and in `nodestats serve` OTLP), with a read-only view for outputs that
//! live outside the library; and the [`Exporter`]'s methods that make and
//! write one.

use super::exporter::{hist_count, Exporter, Fam, Point, Val};
use super::format::OpenMetricsCounters;
use super::native::NativeBuckets;
use super::{openmetrics, protobuf, Format};
use crate::schema::Kind;
use std::borrow::Cow;
use std::fmt;

/// One read of the segment: every family (LiveKit's, the declared ones,
/// ours) with its series, the const labels, and which segment was read.
///
/// Made by [`Exporter::snapshot`](crate::Exporter::snapshot). Write it in
/// any [`Format`], add series of your own first
/// ([`add_counter`](Self::add_counter), [`add_gauge`](Self::add_gauge)),
/// or walk it with [`families`](Self::families).
pub struct Snapshot {
    fams: Vec<Fam>,
    consts: Vec<(String, String)>,
    segment_id: u128,
    created_unix_ns: u64,
    om_counters: OpenMetricsCounters,
}

impl Snapshot {
    pub(super) fn new(
        fams: Vec<Fam>,
        consts: Vec<(String, String)>,
        segment_id: u128,
        created_unix_ns: u64,
        om_counters: OpenMetricsCounters,
    ) -> Self {
        Snapshot {
            fams,
            consts,
            segment_id,
            created_unix_ns,
            om_counters,
        }
    }

    /// The id of the segment read: a new id means every counter restarted.
    pub fn segment_id(&self) -> u128 {
        self.segment_id
    }

    /// When the segment read was created, Unix nanoseconds (the start of
    /// every counter in it).
    pub fn segment_created_unix_ns(&self) -> u64 {
        self.created_unix_ns
    }

    /// The const labels on every series (`node_id`, `node_type`), sorted
    /// by name.
    pub fn const_labels(&self) -> &[(String, String)] {
        &self.consts
    }

    /// The families with at least one series, in the order they are
    /// written.
    pub fn families(&self) -> impl Iterator<Item = FamilyView<'_>> + '_ {
        self.fams
            .iter()
            .filter(|f| !f.points.is_empty())
            .map(|fam| FamilyView { fam })
    }

    /// Adds a counter series (`labels` are its own label pairs; the const
    /// labels are added) to the family `name`, made with this help and
    /// these label names on its first series.
    pub fn add_counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.add(name, help, Kind::Counter, labels, value);
    }

    /// [`add_counter`](Self::add_counter) for a gauge.
    pub fn add_gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.add(name, help, Kind::Gauge, labels, value);
    }

    fn add(&mut self, name: &str, help: &str, kind: Kind, labels: &[(&str, &str)], v: f64) {
        let at = match self.fams.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.fams.push(Fam::new(
                    Cow::Owned(name.to_string()),
                    Cow::Owned(help.to_string()),
                    kind,
                    labels.iter().map(|l| Cow::Owned(l.0.to_string())).collect(),
                    Vec::new(),
                ));
                self.fams.len() - 1
            }
        };
        let fam = &mut self.fams[at];
        let values = fam
            .labels
            .iter()
            .map(|n| {
                let found = labels.iter().find(|l| l.0 == n);
                found.map_or_else(String::new, |l| l.1.to_string())
            })
            .collect();
        fam.points.push(Point {
            values,
            val: Val::Scalar(v),
        });
    }

    /// The families in the Prometheus text format 0.0.4 (what
    /// [`Exporter::text`](crate::Exporter::text) returns).
    pub fn text(&self) -> String {
        let points: usize = self
            .fams
            .iter()
            .map(|f| f.points.len() * (f.bounds.len() + 3))
            .sum();
        let mut out = String::with_capacity(4096 + points * 160);
        for f in self.fams.iter().filter(|f| !f.points.is_empty()) {
            f.write_text(&self.consts, &mut out);
        }
        out
    }

    /// The families in `format`.
    pub fn write(&self, format: Format) -> Vec<u8> {
        match format {
            Format::Text => self.text().into_bytes(),
            Format::OpenMetrics => {
                openmetrics::write(&self.fams, &self.consts, self.om_counters).into_bytes()
            }
            Format::Protobuf => protobuf::write(&self.fams, &self.consts),
        }
    }
}

impl Exporter {
    /// Every family in the Prometheus text format (version 0.0.4), written
    /// directly from one read of the segment. Families with no series yet
    /// are left out, as a registry does.
    pub fn text(&self) -> String {
        self.snapshot().text()
    }

    /// Every family in `format`, from one read of the segment: the body of
    /// a scrape answered with [`Format::content_type`].
    pub fn write(&self, format: Format) -> Vec<u8> {
        self.snapshot().write(format)
    }

    /// One read of the segment (and of the latest collector update): the
    /// families to write in any format, to add series of your own to, or
    /// to convert into another model (`nodestats serve` pushes it as OTLP).
    pub fn snapshot(&self) -> Snapshot {
        let (fams, layout) = self.read();
        Snapshot::new(
            fams,
            self.const_labels.clone(),
            layout.segment_id,
            layout.created_unix_ns,
            self.om_counters,
        )
    }
}

/// A family of a [`Snapshot`].
#[derive(Clone, Copy)]
pub struct FamilyView<'a> {
    fam: &'a Fam,
}

impl<'a> FamilyView<'a> {
    /// The family's name (as the text format writes it).
    pub fn name(&self) -> &'a str {
        &self.fam.name
    }

    /// Its help text.
    pub fn help(&self) -> &'a str {
        &self.fam.help
    }

    /// Counter, gauge or histogram.
    pub fn kind(&self) -> Kind {
        self.fam.kind
    }

    /// Its declared unit; empty if none.
    pub fn unit(&self) -> &'a str {
        &self.fam.unit
    }

    /// A histogram's bucket upper bounds, `+Inf` excluded (empty for
    /// other kinds).
    pub fn bounds(&self) -> &'a [f64] {
        &self.fam.bounds
    }

    /// Its own label names (the const labels are the snapshot's).
    pub fn label_names(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.fam.labels.iter().map(|l| &**l)
    }

    /// Its series.
    pub fn series(&self) -> impl Iterator<Item = SeriesView<'a>> + 'a {
        let bounds = &self.fam.bounds[..];
        self.fam
            .points
            .iter()
            .map(move |point| SeriesView { point, bounds })
    }
}

/// A series of a [`FamilyView`].
#[derive(Clone, Copy)]
pub struct SeriesView<'a> {
    point: &'a Point,
    /// Its family's histogram bounds.
    bounds: &'a [f64],
}

impl<'a> SeriesView<'a> {
    /// Its label values, one per [`FamilyView::label_names`], in order.
    pub fn label_values(&self) -> &'a [String] {
        &self.point.values
    }

    /// Its value.
    pub fn value(&self) -> Value<'a> {
        match &self.point.val {
            Val::Scalar(v) => Value::Scalar(*v),
            Val::Hist(buckets, sum, native) => Value::Histogram {
                buckets: &buckets[..buckets.len().min(self.bounds.len() + 1)],
                count: hist_count(self.bounds, buckets, native.as_ref()),
                sum: *sum,
                native: native.as_ref().map(|n| NativeView { n }),
            },
        }
    }
}

/// The value of a series.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// A counter's or gauge's value.
    Scalar(f64),
    /// A histogram.
    Histogram {
        /// Classic per-bucket (not cumulative) counts, one per
        /// [`FamilyView::bounds`] and the `+Inf` bucket last (a native
        /// histogram declared without classic bounds has only that one,
        /// which holds its NaN observations: the others are in `native`).
        buckets: &'a [u64],
        /// Observations in all.
        count: u64,
        /// Sum of the observations.
        sum: f64,
        /// The native (exponential) buckets of a native histogram.
        native: Option<NativeView<'a>>,
    },
}

/// The native buckets of a histogram series: Prometheus' sparse
/// exponential buckets.
#[derive(Clone, Copy, PartialEq)]
pub struct NativeView<'a> {
    n: &'a NativeBuckets,
}

impl<'a> NativeView<'a> {
    /// The schema, −4 … 8: bucket boundaries are powers of
    /// `2^(2^-schema)`.
    pub fn schema(&self) -> i8 {
        self.n.schema
    }

    /// Observations with `|v| ≤ zero_threshold` are in the zero bucket.
    pub fn zero_threshold(&self) -> f64 {
        self.n.zero_threshold
    }

    /// The zero bucket's count.
    pub fn zero_count(&self) -> u64 {
        self.n.zero_count
    }

    /// Positive buckets as (index, count), ascending by index, non-zero
    /// counts only, not cumulative. Bucket `i` covers `(base^(i-1),
    /// base^i]` with `base = 2^(2^-schema)` (Prometheus' convention;
    /// OpenTelemetry's index is `i - 1`).
    pub fn positive(&self) -> &'a [(i32, u64)] {
        &self.n.positive
    }

    /// Negative buckets, as [`positive`](Self::positive) for `|v|`.
    pub fn negative(&self) -> &'a [(i32, u64)] {
        &self.n.negative
    }

    /// Observations outside the series' bucket span, counted in its
    /// outermost bucket (already in the buckets).
    pub fn clamped(&self) -> u64 {
        self.n.clamped
    }
}

impl fmt::Debug for NativeView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeView")
            .field("schema", &self.schema())
            .field("zero_count", &self.zero_count())
            .field("positive", &self.positive())
            .field("negative", &self.negative())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("segment_id", &format_args!("{:032x}", self.segment_id))
            .field("families", &self.families().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for FamilyView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FamilyView")
            .field("name", &self.name())
            .field("kind", &self.kind())
            .field("series", &self.fam.points.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SeriesView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeriesView")
            .field("label_values", &self.label_values())
            .field("value", &self.value())
            .finish()
    }
}
