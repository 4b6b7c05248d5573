//! [`Exporter`]: a `prometheus::core::Collector` that reads the segment at
//! scrape time and emits every LiveKit family plus our own.

use super::format::OpenMetricsCounters;
use super::native::NativeBuckets;
use super::text;
use crate::read::reader::Scrape;
use crate::read::{Anomalies, NodeStats, SeriesValue};
use crate::schema::native::{NativeLayout, CLAMPED_WORD, POSITIVE_WORD, ZERO_WORD};
use crate::schema::{Counter, Family, FamilyId, Gauge, Kind, COUNTERS, FAMILIES};
use crate::segment::series::OVERFLOW_LABEL;
use crate::segment::slots::GaugeTotals;
use crate::segment::{Segment, SegmentStatus};
use prometheus::core::{Collector as PromCollector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One family of our own: its description, and how a scrape fills it.
struct Own {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    points: fn(&OwnInput<'_>) -> Vec<Point>,
}

/// What our own families are filled from at a scrape.
struct OwnInput<'a> {
    layout: &'a crate::segment::Layout,
    gauges: &'a GaugeTotals,
    sstats: &'a crate::read::SeriesStats,
    anomalies: &'a Anomalies,
    ns: &'a NodeStats,
    current: bool,
    /// Per family: (name, series sent to its overflow series by its cap),
    /// declared families always, LiveKit's when not zero.
    overflow: &'a [(String, u64)],
    /// Per native family: (name, observations clamped into the edge of
    /// its bucket span).
    clamped: &'a [(String, u64)],
    declared: usize,
    refused: u64,
    corrupt_families: u64,
}

/// One point per (family name, value), labeled `family`.
fn per_family(values: &[(String, u64)]) -> Vec<Point> {
    values
        .iter()
        .map(|(f, n)| Point {
            values: vec![f.clone()],
            val: Val::Scalar(*n as f64),
        })
        .collect()
}

fn scalar(v: f64) -> Vec<Point> {
    vec![Point {
        values: Vec::new(),
        val: Val::Scalar(v),
    }]
}

fn optional(v: Option<u64>) -> Vec<Point> {
    v.map(|v| scalar(v as f64)).unwrap_or_default()
}

/// Families of our own: segment, collector and extra system statistics.
/// Each entry pairs a family with what fills it, so none can be dropped or
/// mismatched.
const OWN: &[Own] = &[
    Own {
        name: "nodestats_segment_info",
        help: "The segment being exported; its id changes when counters restart.",
        kind: Kind::Gauge,
        labels: &["segment_id"],
        points: |i| {
            vec![Point {
                values: vec![format!("{:032x}", i.layout.segment_id)],
                val: Val::Scalar(1.0),
            }]
        },
    },
    Own {
        name: "nodestats_segment_created_timestamp_seconds",
        help: "When the segment was created, Unix seconds.",
        kind: Kind::Gauge,
        labels: &[],
        points: |i| scalar(i.layout.created_unix_ns as f64 / 1e9),
    },
    Own {
        name: "nodestats_segment_shards",
        help: "Per-CPU shards in the segment.",
        kind: Kind::Gauge,
        labels: &[],
        points: |i| scalar(i.layout.shard_count as f64),
    },
    Own {
        name: "nodestats_live_writers",
        help: "Writer processes whose gauges are counted.",
        kind: Kind::Gauge,
        labels: &[],
        points: |i| scalar(i.gauges.live_writers as f64),
    },
    Own {
        name: "nodestats_dead_writer_slots",
        help: "Writer slots whose process died (their gauges are ignored).",
        kind: Kind::Gauge,
        labels: &[],
        points: |i| scalar(i.gauges.dead_writers as f64),
    },
    Own {
        name: "nodestats_series_registered",
        help: "Labeled series registered in the segment.",
        kind: Kind::Gauge,
        labels: &[],
        points: |i| scalar(i.sstats.registered as f64),
    },
    Own {
        name: "nodestats_series_overflowed_total",
        help: "Series that did not fit and were recorded in their family's overflow series.",
        kind: Kind::Counter,
        labels: &[],
        points: |i| scalar(i.sstats.series_overflowed as f64),
    },
    Own {
        name: "nodestats_series_overflow_total",
        help: "Label sets of a family recorded in its overflow series because the family reached its series cap.",
        kind: Kind::Counter,
        labels: &["family"],
        points: |i| per_family(i.overflow),
    },
    Own {
        name: "nodestats_native_clamped_total",
        help: "Observations of a native histogram family outside its bucket span, counted in the span's outermost bucket.",
        kind: Kind::Counter,
        labels: &["family"],
        points: |i| per_family(i.clamped),
    },
    Own {
        name: "nodestats_families_declared",
        help: "Families declared at run time in the segment's family directory.",
        kind: Kind::Gauge,
        labels: &[],
        points: |i| scalar(i.declared as f64),
    },
    Own {
        name: "nodestats_family_declarations_refused_total",
        help: "Family declarations refused because the segment's family directory was full.",
        kind: Kind::Counter,
        labels: &[],
        points: |i| scalar(i.refused as f64),
    },
    Own {
        name: "nodestats_family_corrupt_entries",
        help: "Family directory entries skipped because their description was out of range.",
        kind: Kind::Gauge,
        labels: &[],
        points: |i| scalar(i.corrupt_families as f64),
    },
    Own {
        name: "nodestats_label_values_overflowed_total",
        help: "Label values that did not fit in the intern table and were recorded as __overflow__.",
        kind: Kind::Counter,
        labels: &[],
        points: |i| scalar(i.sstats.strings_overflowed as f64),
    },
    Own {
        name: "nodestats_series_corrupt_entries",
        help: "Series entries skipped because their fields were out of range.",
        kind: Kind::Gauge,
        labels: &[],
        points: |i| scalar(i.sstats.corrupt_entries as f64),
    },
    Own {
        name: "nodestats_collector_resets_total",
        help: "Collector updates that saw a counter reset (a new segment, or a system counter that restarted).",
        kind: Kind::Counter,
        labels: &[],
        points: |i| scalar(i.anomalies.resets as f64),
    },
    Own {
        name: "nodestats_collector_decreases_total",
        help: "Collector updates that saw a segment counter go down within one segment (a bogus add; not turned into a rate).",
        kind: Kind::Counter,
        labels: &[],
        points: |i| scalar(i.anomalies.decreases as f64),
    },
    Own {
        name: "nodestats_collector_reattaches_total",
        help: "Times the collector re-attached to a new segment at the name (the writer restarted).",
        kind: Kind::Counter,
        labels: &[],
        points: |i| scalar(i.anomalies.reattaches as f64),
    },
    Own {
        name: "nodestats_segment_errors_total",
        help: "Collector updates that could not read the segment (its file shrank under the mapping).",
        kind: Kind::Counter,
        labels: &[],
        points: |i| scalar(i.anomalies.segment_errors as f64),
    },
    Own {
        name: "nodestats_segment_current",
        help: "1 while the segment exported is the one at its name and whole; 0 when it was replaced, removed or shrunk.",
        kind: Kind::Gauge,
        labels: &[],
        points: |i| scalar(i.current as u8 as f64),
    },
    Own {
        name: "nodestats_probe_errors_total",
        help: "System probe reads that failed.",
        kind: Kind::Counter,
        labels: &[],
        points: |i| scalar(i.anomalies.probe_errors as f64),
    },
    Own {
        name: "nodestats_cpus",
        help: "CPUs available to the node (fractional, from the cgroup quota).",
        kind: Kind::Gauge,
        labels: &[],
        points: |i| scalar(i.ns.num_cpus_exact),
    },
    Own {
        name: "nodestats_udp_rcvbuf_errors_total",
        help: "UDP datagrams dropped for a full receive buffer (Udp: RcvbufErrors).",
        kind: Kind::Counter,
        labels: &[],
        points: |i| optional(i.ns.udp_rcvbuf_errors),
    },
    Own {
        name: "nodestats_udp_in_errors_total",
        help: "UDP input errors (Udp: InErrors).",
        kind: Kind::Counter,
        labels: &[],
        points: |i| optional(i.ns.udp_in_errors),
    },
    Own {
        name: "nodestats_rx_dropped_total",
        help: "Packets dropped on receive by the network interfaces.",
        kind: Kind::Counter,
        labels: &[],
        points: |i| optional(i.ns.rx_dropped),
    },
];

/// What the node's collector last saw, shared with the exporter so that a
/// scrape never probes the system itself.
#[derive(Debug, Default)]
pub struct ExporterState {
    latest: Mutex<Option<(NodeStats, Anomalies)>>,
    sys_start: Mutex<Option<(u64, u64)>>,
    /// The collector's segment (it follows the name) and what it last found.
    segment: Mutex<Option<(Arc<Segment>, SegmentStatus)>>,
}

impl ExporterState {
    /// Records the collector's segment and its status after an update, so
    /// that scrapes read the segment the collector follows (a re-attach
    /// after a restart moves the exporter too).
    pub fn publish_segment(&self, segment: &Arc<Segment>, status: SegmentStatus) {
        *self.segment.lock().unwrap_or_else(|e| e.into_inner()) = Some((segment.clone(), status));
    }

    /// What the collector last found of its segment, once it published one.
    pub fn segment_status(&self) -> Option<SegmentStatus> {
        self.segment
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.1)
    }

    /// Records the latest update (call after each `Collector::update`).
    pub fn publish(&self, ns: &NodeStats, anomalies: Anomalies) {
        let mut start = self.sys_start.lock().unwrap_or_else(|e| e.into_inner());
        if start.is_none() {
            *start = Some((ns.sys_packets_out, ns.sys_packets_dropped));
        }
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some((ns.clone(), anomalies));
    }

    /// The latest published update.
    pub fn latest(&self) -> Option<NodeStats> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|l| l.0.clone())
    }
}

/// Exports a segment in Prometheus form. Register it in your own
/// `prometheus::Registry`; every scrape reads the segment afresh.
#[derive(Debug)]
pub struct Exporter {
    segment: Arc<Segment>,
    pub(super) const_labels: Vec<(String, String)>,
    descs: Vec<Desc>,
    state: Arc<ExporterState>,
    pub(super) om_counters: OpenMetricsCounters,
}

impl Exporter {
    /// An exporter for `segment` with LiveKit's const labels `node_id` and
    /// `node_type` on every series.
    pub fn new(segment: Arc<Segment>, node_id: &str, node_type: &str) -> crate::Result<Self> {
        let mut const_labels = vec![
            ("node_id".to_string(), node_id.to_string()),
            ("node_type".to_string(), node_type.to_string()),
        ];
        const_labels.sort();
        let cl: HashMap<String, String> = const_labels.iter().cloned().collect();
        let mut descs = Vec::new();
        let own = OWN.iter().map(|o| (o.name, o.help, o.labels));
        for (name, help, labels) in FAMILIES
            .iter()
            .map(|f| (f.name, f.help, f.labels))
            .chain(own)
        {
            let d = Desc::new(
                name.to_string(),
                help.to_string(),
                labels.iter().map(|s| s.to_string()).collect(),
                cl.clone(),
            )
            .map_err(|e| crate::Error::Config(format!("metric {name}: {e}")))?;
            descs.push(d);
        }
        Ok(Exporter {
            segment,
            const_labels,
            descs,
            state: Arc::new(ExporterState::default()),
            om_counters: OpenMetricsCounters::default(),
        })
    }

    /// How counters whose name does not end in `_total` are written in
    /// OpenMetrics (see [`OpenMetricsCounters`]).
    pub fn openmetrics_counters(mut self, how: OpenMetricsCounters) -> Self {
        self.om_counters = how;
        self
    }

    /// Shared state to feed with collector updates (system and collector
    /// families come from it).
    pub fn state(&self) -> Arc<ExporterState> {
        self.state.clone()
    }

    /// The segment exported.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// Every family as protobuf structs (what `prometheus::Registry`
    /// gathers).
    pub fn families(&self) -> Vec<MetricFamily> {
        self.read()
            .0
            .into_iter()
            .map(|f| f.to_proto(&self.const_labels))
            .collect()
    }

    /// One read of the segment (and of the latest collector update) as
    /// families of points, and the layout of the segment read.
    pub(super) fn read(&self) -> (Vec<Fam>, crate::segment::Layout) {
        let published = self
            .state
            .segment
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (segment, status) = published.unwrap_or((self.segment.clone(), SegmentStatus::Current));
        // A file shrunk under the mapping must not be read (a fault); the
        // scrape then exports only what it knows without it.
        let (readable, scrape) = match crate::read::reader::guarded(&segment, Scrape::read) {
            Ok(s) => (true, s),
            Err(_) => (false, Scrape::unreadable()),
        };
        let Scrape {
            counters,
            gauges,
            series,
            series_stats: sstats,
            families: declared,
        } = scrape;
        let latest = self
            .state
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let sys_start = *self
            .state
            .sys_start
            .lock()
            .unwrap_or_else(|e| e.into_inner());

        let mut out: Vec<Fam> = FAMILIES
            .iter()
            .map(|d| {
                let (b, n) = d.buckets.bounds();
                let bounds = match d.kind {
                    Kind::Histogram => b[..n].to_vec(),
                    _ => Vec::new(),
                };
                Fam::new(
                    d.name.into(),
                    d.help.into(),
                    d.kind,
                    d.labels.iter().map(|l| (*l).into()).collect(),
                    bounds,
                )
            })
            .collect();
        for (f, fam) in Family::ALL.iter().zip(out.iter_mut()).filter(|_| readable) {
            fam.points = fixed(
                *f,
                &counters,
                &gauges,
                latest.as_ref().map(|l| &l.0),
                sys_start,
            );
        }
        // Declared families follow LiveKit's, in directory order.
        let mut slot_of: HashMap<FamilyId, usize> = HashMap::new();
        let mut overflow: Vec<(String, u64)> = Vec::new();
        for f in Family::ALL {
            let n = declared.livekit_overflowed[f as usize];
            if n > 0 {
                overflow.push((f.def().name.to_string(), n));
            }
        }
        for d in &declared.valid {
            slot_of.insert(d.id, out.len());
            overflow.push((d.spec.name.clone(), d.overflowed));
            let spec = &d.spec;
            let mut fam = Fam::new(
                spec.name.clone().into(),
                spec.help.clone().into(),
                spec.kind,
                spec.labels.iter().map(|l| l.clone().into()).collect(),
                match spec.kind {
                    Kind::Histogram => spec.effective_buckets().to_vec(),
                    _ => Vec::new(),
                },
            );
            fam.unit = spec.unit.clone().into();
            fam.native = spec.native_layout();
            out.push(fam);
        }
        // read_all already merged series among themselves; only the fixed
        // points can share their labels.
        let fixed_len: Vec<usize> = out.iter().map(|f| f.points.len()).collect();
        for s in series {
            let empty = s.value == 0 && s.buckets.iter().all(|&b| b == 0);
            if empty && s.labels.iter().all(|l| l == OVERFLOW_LABEL) {
                continue;
            }
            let at = match s.family.livekit() {
                Some(f) => f as usize,
                None => match slot_of.get(&s.family) {
                    Some(&i) => i,
                    None => continue,
                },
            };
            let fam = &mut out[at];
            // A native histogram's native words follow its classic counts.
            let mut s = s;
            let native = fam.native.map(|l| {
                let n = native_buckets(
                    &l,
                    &s.buckets[(fam.bounds.len() + 1).min(s.buckets.len())..],
                );
                s.buckets.truncate(fam.bounds.len() + 1);
                n
            });
            // A series whose labels equal a fixed series (e.g. country ""
            // through a handle) is the same sample: add it in, never print
            // a label set twice.
            let n_fixed = fixed_len[at];
            match fam.points[..n_fixed]
                .iter_mut()
                .find(|p| p.values == s.labels)
            {
                Some(p) => p.val.merge(fam.kind, &s, native),
                None => {
                    let val = match fam.kind {
                        Kind::Histogram => Val::Hist(s.buckets, s.sum, native),
                        Kind::Gauge => Val::Scalar((s.value as i64).max(0) as f64),
                        Kind::Counter => Val::Scalar(s.value as f64),
                    };
                    fam.points.push(Point {
                        values: s.labels,
                        val,
                    });
                }
            }
        }

        // client_golang exports an unlabeled family from its registration
        // on (a histogram as zero buckets, sum and count), so LiveKit's
        // unlabeled families are there before their first observation.
        for fam in out[..Family::ALL.len()]
            .iter_mut()
            .filter(|f| readable && f.labels.is_empty() && f.points.is_empty())
        {
            let val = match fam.kind {
                Kind::Histogram => Val::Hist(vec![0; fam.bounds.len() + 1], 0.0, None),
                Kind::Counter | Kind::Gauge => Val::Scalar(0.0),
            };
            fam.points.push(Point {
                values: Vec::new(),
                val,
            });
        }

        // Each native family's clamped observations: its series' (merged
        // series add their counts).
        let clamped: Vec<(String, u64)> = out
            .iter()
            .filter(|f| f.native.is_some())
            .map(|f| {
                let n = f.points.iter().fold(0u64, |a, p| match &p.val {
                    Val::Hist(_, _, Some(n)) => a.saturating_add(n.clamped),
                    _ => a,
                });
                (f.name.to_string(), n)
            })
            .collect();
        let (ns, anomalies) = latest.unwrap_or_default();
        let input = OwnInput {
            layout: segment.layout(),
            gauges: &gauges,
            sstats: &sstats,
            anomalies: &anomalies,
            ns: &ns,
            current: readable && status == SegmentStatus::Current,
            overflow: &overflow,
            clamped: &clamped,
            declared: declared.valid.len(),
            refused: declared.refused,
            corrupt_families: declared.corrupt,
        };
        for o in OWN {
            let mut fam = Fam::new(
                o.name.into(),
                o.help.into(),
                o.kind,
                o.labels.iter().map(|l| (*l).into()).collect(),
                Vec::new(),
            );
            fam.points = (o.points)(&input);
            out.push(fam);
        }
        (out, *segment.layout())
    }
}

/// A value of one series.
pub(crate) enum Val {
    Scalar(f64),
    /// Non-cumulative classic bucket counts (+Inf last; only the +Inf
    /// word, its NaN observations, for a native histogram without classic
    /// bounds), the sum, and the native buckets of a native histogram.
    Hist(Vec<u64>, f64, Option<NativeBuckets>),
}

impl Val {
    /// Adds a series with the same labels (and its native buckets, read
    /// with its family's native layout) into this value.
    fn merge(&mut self, kind: Kind, s: &SeriesValue, native: Option<NativeBuckets>) {
        match self {
            Val::Scalar(v) if kind == Kind::Gauge => *v = (*v + s.value as i64 as f64).max(0.0),
            Val::Scalar(v) => *v += s.value as f64,
            Val::Hist(buckets, sum, mine) => {
                for (b, x) in buckets.iter_mut().zip(&s.buckets) {
                    *b = b.saturating_add(*x);
                }
                *sum += s.sum;
                match (mine, native) {
                    (Some(a), Some(b)) => a.merge(&b),
                    (a @ None, b) => *a = b,
                    (Some(_), None) => {}
                }
            }
        }
    }
}

/// One series: its variable label values and value.
pub(super) struct Point {
    pub(super) values: Vec<String>,
    pub(super) val: Val,
}

/// One family ready to export.
pub(super) struct Fam {
    pub(super) name: Cow<'static, str>,
    pub(super) help: Cow<'static, str>,
    pub(super) kind: Kind,
    /// The declared unit (OpenMetrics `# UNIT`, OTLP's `unit`); empty if
    /// none.
    pub(super) unit: Cow<'static, str>,
    pub(super) labels: Vec<Cow<'static, str>>,
    /// Histogram bounds, +Inf excluded (empty otherwise).
    pub(super) bounds: Vec<f64>,
    /// A native histogram family's native layout.
    pub(super) native: Option<NativeLayout>,
    pub(super) points: Vec<Point>,
}

impl Fam {
    pub(super) fn new(
        name: Cow<'static, str>,
        help: Cow<'static, str>,
        kind: Kind,
        labels: Vec<Cow<'static, str>>,
        bounds: Vec<f64>,
    ) -> Self {
        Fam {
            name,
            help,
            kind,
            unit: Cow::Borrowed(""),
            labels,
            bounds,
            native: None,
            points: Vec::new(),
        }
    }

    /// Label pairs of `p`, const labels included, sorted by name.
    pub(super) fn pairs<'a>(
        &'a self,
        consts: &'a [(String, String)],
        p: &'a Point,
    ) -> Vec<(&'a str, &'a str)> {
        let mut v: Vec<(&str, &str)> = consts
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(
                self.labels
                    .iter()
                    .map(|l| &**l)
                    .zip(p.values.iter().map(String::as_str)),
            )
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    pub(super) fn write_text(&self, consts: &[(String, String)], out: &mut String) {
        text::family_header(out, &self.name, &self.help, self.kind);
        let line = |out: &mut String, suffix: &str, pairs: &[(&str, &str)], le, v| {
            text::sample(out, &self.name, suffix, pairs, le, v)
        };
        // `le` as client_golang prints it (Go's shortest `%g`: `1e+06`).
        let les: Vec<String> = self
            .bounds
            .iter()
            .map(|b| crate::gofloat::format_go_g(*b))
            .collect();
        for p in &self.points {
            let pairs = self.pairs(consts, p);
            match &p.val {
                Val::Scalar(v) => line(out, "", &pairs, None, *v),
                Val::Hist(buckets, sum, native) => {
                    let mut cum = 0u64;
                    for (le, c) in les.iter().zip(buckets) {
                        cum = cum.saturating_add(*c);
                        line(out, "_bucket", &pairs, Some(le), cum as f64);
                    }
                    let count = hist_count(&self.bounds, buckets, native.as_ref());
                    line(out, "_bucket", &pairs, Some("+Inf"), count as f64);
                    line(out, "_sum", &pairs, None, *sum);
                    line(out, "_count", &pairs, None, count as f64);
                }
            }
        }
    }

    fn to_proto(&self, consts: &[(String, String)]) -> MetricFamily {
        let metrics = self
            .points
            .iter()
            .map(|p| {
                let labels = self
                    .pairs(consts, p)
                    .into_iter()
                    .map(|(n, v)| {
                        let mut lp = proto::LabelPair::default();
                        lp.set_name(n.to_string());
                        lp.set_value(v.to_string());
                        lp
                    })
                    .collect();
                let mut m = proto::Metric::from_label(labels);
                match (&p.val, self.kind) {
                    (Val::Scalar(v), Kind::Counter) => {
                        let mut c = proto::Counter::default();
                        c.set_value(*v);
                        m.set_counter(c);
                    }
                    (Val::Scalar(v), _) => {
                        let mut g = proto::Gauge::default();
                        g.set_value(*v);
                        m.set_gauge(g);
                    }
                    (Val::Hist(buckets, sum, _), _) => {
                        let nb = self.bounds.len();
                        let mut h = proto::Histogram::default();
                        let mut cum = 0u64;
                        let mut bs = Vec::with_capacity(nb);
                        for (ub, c) in self.bounds.iter().zip(buckets) {
                            cum = cum.saturating_add(*c);
                            let mut b = proto::Bucket::default();
                            b.set_upper_bound(*ub);
                            b.set_cumulative_count(cum);
                            bs.push(b);
                        }
                        cum = cum.saturating_add(buckets.get(nb).copied().unwrap_or(0));
                        h.set_bucket(bs);
                        h.set_sample_count(cum);
                        h.set_sample_sum(*sum);
                        m.set_histogram(h);
                    }
                }
                m
            })
            .collect();
        family(&self.name, &self.help, self.kind, metrics)
    }
}

/// A histogram's count: the sum of its classic buckets, +Inf included
/// (every observation counts there, NaN too), or for a native histogram
/// without classic bounds its native buckets and the +Inf word, which
/// counts its NaN observations alone (SEGMENT.md §8b).
pub(super) fn hist_count(bounds: &[f64], buckets: &[u64], native: Option<&NativeBuckets>) -> u64 {
    let classic = buckets
        .iter()
        .take(bounds.len() + 1)
        .fold(0u64, |a, b| a.saturating_add(*b));
    match native {
        Some(n) if bounds.is_empty() => classic.saturating_add(n.count()),
        _ => classic,
    }
}

/// The native buckets of a series from its native words (§8b): the zero
/// bucket, the clamped count, then the positive and negative spans.
fn native_buckets(l: &NativeLayout, words: &[u64]) -> NativeBuckets {
    let at = |i: usize| words.get(i).copied().unwrap_or(0);
    let span = l.span as usize;
    let side = |first: usize| -> Vec<(i32, u64)> {
        (0..span)
            .filter(|&k| at(first + k) != 0)
            .map(|k| (l.lo.saturating_add(k as i32), at(first + k)))
            .collect()
    };
    NativeBuckets {
        schema: l.schema,
        zero_threshold: l.zero_threshold(),
        zero_count: at(ZERO_WORD),
        positive: side(POSITIVE_WORD),
        negative: side(POSITIVE_WORD + span),
        clamped: at(CLAMPED_WORD),
    }
}

/// Series of `f` that come from the fixed counters, the writer gauges and
/// the collector's system reading.
fn fixed(
    f: Family,
    c: &[u64; COUNTERS],
    g: &GaugeTotals,
    ns: Option<&NodeStats>,
    sys_start: Option<(u64, u64)>,
) -> Vec<Point> {
    use Counter as C;
    let v = |k: C| c[k as usize] as f64;
    let gv = |k: Gauge| g.values[k as usize] as f64;
    let m = |vals: &[&str], x: f64| Point {
        values: vals.iter().map(|s| s.to_string()).collect(),
        val: Val::Scalar(x),
    };
    match f {
        Family::PacketTotal | Family::PacketBytes => {
            let o = (f == Family::PacketBytes) as usize;
            let at = |k: C| c[k as usize + o] as f64;
            vec![
                m(&["incoming", "initial", ""], at(C::PacketsInInitial)),
                m(&["incoming", "retransmit", ""], at(C::PacketsInRetransmit)),
                m(&["outgoing", "initial", ""], at(C::PacketsOutInitial)),
                m(&["outgoing", "retransmit", ""], at(C::PacketsOutRetransmit)),
            ]
        }
        Family::NackTotal => vec![
            m(&["incoming", ""], v(C::NackIn)),
            m(&["outgoing", ""], v(C::NackOut)),
        ],
        Family::PliTotal => vec![
            m(&["incoming", ""], v(C::PliIn)),
            m(&["outgoing", ""], v(C::PliOut)),
        ],
        Family::FirTotal => vec![
            m(&["incoming", ""], v(C::FirIn)),
            m(&["outgoing", ""], v(C::FirOut)),
        ],
        Family::ParticipantJoinTotal => {
            let mut out = vec![
                m(&["signal_connected", ""], v(C::ParticipantSignalConnected)),
                m(&["signal_failed", ""], v(C::ParticipantJoinFailed)),
                m(
                    &["signal_validation_failed", ""],
                    v(C::ParticipantJoinValidationFailed),
                ),
                m(
                    &["signal_upgrade_failed", ""],
                    v(C::ParticipantJoinUpgradeFailed),
                ),
                m(
                    &["signal_write_initial_response_failed", ""],
                    v(C::ParticipantJoinWriteInitialResponseFailed),
                ),
                m(&["rtc_init", ""], v(C::ParticipantRtcInit)),
                m(&["rtc_connected", ""], v(C::ParticipantRtcConnected)),
            ];
            for (state, plain, warp) in [
                (
                    "rtc_active",
                    C::ParticipantRtcActive,
                    C::ParticipantRtcActiveWarp,
                ),
                (
                    "rtc_canceled",
                    C::ParticipantRtcCanceled,
                    C::ParticipantRtcCanceledWarp,
                ),
                (
                    "rtc_success",
                    C::ParticipantRtcSuccess,
                    C::ParticipantRtcSuccessWarp,
                ),
                (
                    "rtc_failure",
                    C::ParticipantRtcFailure,
                    C::ParticipantRtcFailureWarp,
                ),
            ] {
                out.push(m(&[state, "false"], v(plain)));
                out.push(m(&[state, "true"], v(warp)));
            }
            out
        }
        Family::ConnectionTotal => vec![
            m(&["incoming"], gv(Gauge::ConnectionsIncoming)),
            m(&["outgoing"], gv(Gauge::ConnectionsOutgoing)),
        ],
        Family::ForwardLatency => vec![m(&[], g.forward_latency_ns as f64)],
        Family::ForwardJitter => vec![m(&[], g.forward_jitter_ns as f64)],
        Family::RoomTotal => vec![m(&[], gv(Gauge::Rooms))],
        Family::ParticipantTotal => vec![m(&[], gv(Gauge::Participants))],
        Family::TrackPublishedTotal => vec![
            m(&["AUDIO"], gv(Gauge::TracksPublishedAudio)),
            m(&["VIDEO"], gv(Gauge::TracksPublishedVideo)),
            m(&["DATA"], gv(Gauge::TracksPublishedData)),
        ],
        Family::TrackSubscribedTotal => vec![
            m(&["AUDIO"], gv(Gauge::TracksSubscribedAudio)),
            m(&["VIDEO"], gv(Gauge::TracksSubscribedVideo)),
            m(&["DATA"], gv(Gauge::TracksSubscribedData)),
        ],
        Family::TrackPublishCounter => {
            let mut out = Vec::new();
            for (i, kind) in ["AUDIO", "VIDEO", "DATA"].iter().enumerate() {
                out.push(m(
                    &[kind, "attempt"],
                    c[C::TrackPublishAttemptsAudio as usize + i] as f64,
                ));
                out.push(m(
                    &[kind, "success"],
                    c[C::TrackPublishSuccessAudio as usize + i] as f64,
                ));
                out.push(m(
                    &[kind, "cancel"],
                    c[C::TrackPublishCancelsAudio as usize + i] as f64,
                ));
            }
            out
        }
        Family::TrackSubscribeCounter => vec![
            m(&["attempt", ""], v(C::TrackSubscribeAttempts)),
            m(&["success", ""], v(C::TrackSubscribeSuccess)),
            m(&["failure", ""], v(C::TrackSubscribeFailures)),
            m(&["cancel", ""], v(C::TrackSubscribeCancels)),
        ],
        Family::NodePacketTotal => match (ns, sys_start) {
            (Some(ns), Some((out0, drop0))) => vec![
                m(&["out"], ns.sys_packets_out.saturating_sub(out0) as f64),
                m(
                    &["dropped"],
                    ns.sys_packets_dropped.saturating_sub(drop0) as f64,
                ),
            ],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn family(name: &str, help: &str, kind: Kind, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(name.to_string());
    mf.set_help(help.to_string());
    mf.set_field_type(match kind {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
        Kind::Histogram => MetricType::HISTOGRAM,
    });
    mf.set_metric(metrics);
    mf
}

impl PromCollector for Exporter {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families()
    }
}
