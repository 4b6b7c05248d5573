//! [`Exporter`]: a `prometheus::core::Collector` that reads the segment at
//! scrape time and emits every LiveKit family plus our own.

use crate::collector::Anomalies;
use crate::node_stats::NodeStats;
use crate::prom::families::{Family, FamilyDef, Kind, FAMILIES};
use crate::segment::Segment;
use crate::series::{self, SeriesValue};
use crate::shard::{self, Counter, COUNTERS};
use crate::slots::{self, Gauge, GaugeTotals};
use prometheus::core::{Collector as PromCollector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Families of our own: segment, collector and extra system statistics.
const OWN: &[(&str, &str, Kind, &[&str])] = &[
    (
        "nodestats_segment_info",
        "The segment being exported; its id changes when counters restart.",
        Kind::Gauge,
        &["segment_id"],
    ),
    (
        "nodestats_segment_created_timestamp_seconds",
        "When the segment was created, Unix seconds.",
        Kind::Gauge,
        &[],
    ),
    (
        "nodestats_segment_shards",
        "Per-CPU shards in the segment.",
        Kind::Gauge,
        &[],
    ),
    (
        "nodestats_live_writers",
        "Writer processes whose gauges are counted.",
        Kind::Gauge,
        &[],
    ),
    (
        "nodestats_dead_writer_slots",
        "Writer slots whose process died (their gauges are ignored).",
        Kind::Gauge,
        &[],
    ),
    (
        "nodestats_series_registered",
        "Labeled series registered in the segment.",
        Kind::Gauge,
        &[],
    ),
    (
        "nodestats_series_overflowed_total",
        "Series that did not fit and were recorded in their family's overflow series.",
        Kind::Counter,
        &[],
    ),
    (
        "nodestats_label_values_overflowed_total",
        "Label values that did not fit in the intern table and were recorded as __overflow__.",
        Kind::Counter,
        &[],
    ),
    (
        "nodestats_series_corrupt_entries",
        "Series entries skipped because their fields were out of range.",
        Kind::Gauge,
        &[],
    ),
    (
        "nodestats_collector_resets_total",
        "Collector updates that saw a counter reset (new segment or a decrease).",
        Kind::Counter,
        &[],
    ),
    (
        "nodestats_probe_errors_total",
        "System probe reads that failed.",
        Kind::Counter,
        &[],
    ),
    (
        "nodestats_cpus",
        "CPUs available to the node (fractional, from the cgroup quota).",
        Kind::Gauge,
        &[],
    ),
    (
        "nodestats_udp_rcvbuf_errors_total",
        "UDP datagrams dropped for a full receive buffer (Udp: RcvbufErrors).",
        Kind::Counter,
        &[],
    ),
    (
        "nodestats_udp_in_errors_total",
        "UDP input errors (Udp: InErrors).",
        Kind::Counter,
        &[],
    ),
    (
        "nodestats_rx_dropped_total",
        "Packets dropped on receive by the network interfaces.",
        Kind::Counter,
        &[],
    ),
];

/// What the node's collector last saw, shared with the exporter so that a
/// scrape never probes the system itself.
#[derive(Debug, Default)]
pub struct ExporterState {
    latest: Mutex<Option<(NodeStats, Anomalies)>>,
    sys_start: Mutex<Option<(u64, u64)>>,
}

impl ExporterState {
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
    const_labels: Vec<(String, String)>,
    descs: Vec<Desc>,
    state: Arc<ExporterState>,
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
        let own = OWN.iter().map(|(n, h, _, l)| (*n, *h, *l));
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
        })
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

    /// Every family in the Prometheus text format (a registry of its own).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut families = self.families();
        // Families with no series yet are left out, as a registry does.
        families.retain(|f| !f.get_metric().is_empty());
        let enc = prometheus::TextEncoder::new();
        if let Err(e) = enc.encode_utf8(&families, &mut out) {
            out = format!("# encoding failed: {e}\n");
        }
        out
    }

    fn labels(&self, names: &[&str], values: &[&str]) -> Vec<proto::LabelPair> {
        let mut v: Vec<proto::LabelPair> = self
            .const_labels
            .iter()
            .map(|(n, val)| (n.as_str(), val.as_str()))
            .chain(names.iter().copied().zip(values.iter().copied()))
            .map(|(n, val)| {
                let mut p = proto::LabelPair::default();
                p.set_name(n.to_string());
                p.set_value(val.to_string());
                p
            })
            .collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    fn scalar(&self, kind: Kind, names: &[&str], values: &[&str], v: f64) -> proto::Metric {
        let mut m = proto::Metric::from_label(self.labels(names, values));
        match kind {
            Kind::Counter => {
                let mut c = proto::Counter::default();
                c.set_value(v);
                m.set_counter(c);
            }
            _ => {
                let mut g = proto::Gauge::default();
                g.set_value(v);
                m.set_gauge(g);
            }
        }
        m
    }

    fn histogram(&self, def: &FamilyDef, s: &SeriesValue) -> proto::Metric {
        let names = def.labels;
        let values: Vec<&str> = s.labels.iter().map(String::as_str).collect();
        let mut m = proto::Metric::from_label(self.labels(names, &values));
        let (bounds, nb) = def.buckets.bounds();
        let mut h = proto::Histogram::default();
        let mut cum = 0u64;
        let mut buckets = Vec::with_capacity(nb);
        for (ub, c) in bounds[..nb].iter().zip(&s.buckets) {
            cum += c;
            let mut b = proto::Bucket::default();
            b.set_upper_bound(*ub);
            b.set_cumulative_count(cum);
            buckets.push(b);
        }
        cum += s.buckets.get(nb).copied().unwrap_or(0);
        h.set_bucket(buckets);
        h.set_sample_count(cum);
        h.set_sample_sum(s.sum);
        m.set_histogram(h);
        m
    }

    /// Builds every family from one read of the segment.
    pub fn families(&self) -> Vec<MetricFamily> {
        let counters = shard::sum_all(self.segment.shards());
        let gauges = slots::merge(self.segment.slots(), |i| self.segment.slot_alive(i));
        let (series, sstats) = series::read_all(&self.segment);
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

        let mut out = Vec::with_capacity(FAMILIES.len() + OWN.len());
        for f in Family::ALL {
            let def = f.def();
            let mut metrics = self.fixed(
                f,
                &counters,
                &gauges,
                latest.as_ref().map(|l| &l.0),
                sys_start,
            );
            for s in series.iter().filter(|s| s.family == f) {
                let is_overflow = s.labels.iter().all(|l| l == series::OVERFLOW_LABEL);
                let empty = s.value == 0 && s.buckets.iter().all(|&b| b == 0);
                if is_overflow && empty {
                    continue;
                }
                let values: Vec<&str> = s.labels.iter().map(String::as_str).collect();
                metrics.push(match def.kind {
                    Kind::Histogram => self.histogram(def, s),
                    Kind::Gauge => self.scalar(
                        Kind::Gauge,
                        def.labels,
                        &values,
                        (s.value as i64).max(0) as f64,
                    ),
                    Kind::Counter => {
                        self.scalar(Kind::Counter, def.labels, &values, s.value as f64)
                    }
                });
            }
            out.push(family(def.name, def.help, def.kind, metrics));
        }

        let (ns, anomalies) = latest.unwrap_or_default();
        let l = self.segment.layout();
        let own_values: [Vec<(Vec<String>, f64)>; 15] = [
            vec![(vec![format!("{:032x}", l.segment_id)], 1.0)],
            vec![(vec![], l.created_unix_ns as f64 / 1e9)],
            vec![(vec![], l.shard_count as f64)],
            vec![(vec![], gauges.live_writers as f64)],
            vec![(vec![], gauges.dead_writers as f64)],
            vec![(vec![], sstats.registered as f64)],
            vec![(vec![], sstats.series_overflowed as f64)],
            vec![(vec![], sstats.strings_overflowed as f64)],
            vec![(vec![], sstats.corrupt_entries as f64)],
            vec![(vec![], anomalies.resets as f64)],
            vec![(vec![], anomalies.probe_errors as f64)],
            vec![(vec![], ns.num_cpus_exact)],
            ns.udp_rcvbuf_errors
                .map(|v| (vec![], v as f64))
                .into_iter()
                .collect(),
            ns.udp_in_errors
                .map(|v| (vec![], v as f64))
                .into_iter()
                .collect(),
            ns.rx_dropped
                .map(|v| (vec![], v as f64))
                .into_iter()
                .collect(),
        ];
        for ((name, help, kind, labels), vals) in OWN.iter().zip(own_values) {
            let metrics = vals
                .iter()
                .map(|(lv, v)| {
                    let lv: Vec<&str> = lv.iter().map(String::as_str).collect();
                    self.scalar(*kind, labels, &lv, *v)
                })
                .collect();
            out.push(family(name, help, *kind, metrics));
        }
        out
    }

    /// Series of `f` that come from the fixed counters and gauges.
    fn fixed(
        &self,
        f: Family,
        c: &[u64; COUNTERS],
        g: &GaugeTotals,
        ns: Option<&NodeStats>,
        sys_start: Option<(u64, u64)>,
    ) -> Vec<proto::Metric> {
        use Counter as C;
        let def = f.def();
        let v = |k: C| c[k as usize] as f64;
        let gv = |k: Gauge| g.values[k as usize] as f64;
        let m = |vals: &[&str], x: f64| self.scalar(def.kind, def.labels, vals, x);
        match f {
            Family::PacketTotal | Family::PacketBytes => {
                let o = (f == Family::PacketBytes) as usize;
                let at = |i: usize| c[i + o] as f64;
                vec![
                    m(
                        &["incoming", "initial", ""],
                        at(C::PacketsInInitial as usize),
                    ),
                    m(
                        &["incoming", "retransmit", ""],
                        at(C::PacketsInRetransmit as usize),
                    ),
                    m(
                        &["outgoing", "initial", ""],
                        at(C::PacketsOutInitial as usize),
                    ),
                    m(
                        &["outgoing", "retransmit", ""],
                        at(C::PacketsOutRetransmit as usize),
                    ),
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
