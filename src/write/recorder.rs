//! A [`metrics::Recorder`] backed by a segment (feature `metrics`): a Rust
//! SFU's existing `metrics::counter!("sfu_x_total", "room" => r)` calls
//! land in shared memory, where `nodestats serve` (or any reader) exports
//! them without being told about them.
//!
//! Each metric name becomes a declared family the first time it is used;
//! its label names are the call's label keys, sorted (so call sites may
//! give them in any order). `describe_*` gives a family its help and unit,
//! if it comes before the first use. Counters and histograms are exact;
//! gauges are integers in the segment (a fractional gauge value is
//! rounded), and, like every gauge of nodestats, a process's part of a
//! gauge leaves with the process.
//!
//! Resolved handles are kept per key, so a `Counter` obtained once records
//! with no lookup, and a macro call at a call site costs one hash lookup
//! (the facade asks the recorder on every macro call).

use super::declared::DeclaredFamily;
use super::series::SeriesHandle;
use super::stats::Stats;
use crate::error::{Error, Result};
use crate::schema::{FamilySpec, Kind};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
    SharedString, Unit,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A `metrics` recorder writing into a nodestats segment. Install it with
/// [`metrics::set_global_recorder`] (or use it with
/// [`metrics::with_local_recorder`]).
///
/// ```
/// # fn main() -> nodestats::Result<()> {
/// use nodestats::{MetricsRecorder, Stats};
/// let stats = Stats::anonymous()?;
/// let recorder = MetricsRecorder::new(stats.clone()).histogram_buckets("sfu_delay_seconds", &[0.001, 0.01]);
/// metrics::with_local_recorder(&recorder, || {
///     metrics::describe_counter!("sfu_room_bytes_total", metrics::Unit::Bytes, "Bytes per room.");
///     metrics::counter!("sfu_room_bytes_total", "room" => "blue").increment(1200);
///     metrics::histogram!("sfu_delay_seconds").record(0.002);
/// });
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MetricsRecorder {
    stats: Stats,
    /// Help and unit by metric name, from `describe_*`.
    described: Mutex<HashMap<String, (String, Option<Unit>)>>,
    /// Histogram bounds by metric name (others get the defaults).
    buckets: HashMap<String, Vec<f64>>,
    default_buckets: Vec<f64>,
    max_series: u32,
    counters: RwLock<HashMap<Key, Counter>>,
    gauges: RwLock<HashMap<Key, Gauge>>,
    histograms: RwLock<HashMap<Key, Histogram>>,
    /// Families declared, by metric name (a failed declaration is kept as
    /// its error, so that the facade's calls on it do nothing, cheaply).
    families: Mutex<HashMap<String, std::result::Result<DeclaredFamily, String>>>,
}

impl MetricsRecorder {
    /// A recorder writing through `stats`, with client_golang's default
    /// histogram buckets and the default series cap.
    pub fn new(stats: Stats) -> Self {
        MetricsRecorder {
            stats,
            described: Mutex::default(),
            buckets: HashMap::new(),
            default_buckets: crate::schema::DEFAULT_BUCKETS.to_vec(),
            max_series: 0,
            counters: RwLock::default(),
            gauges: RwLock::default(),
            histograms: RwLock::default(),
            families: Mutex::default(),
        }
    }

    /// The bucket bounds of histogram `name`.
    pub fn histogram_buckets(mut self, name: &str, bounds: &[f64]) -> Self {
        self.buckets.insert(name.to_string(), bounds.to_vec());
        self
    }

    /// The bucket bounds of every histogram not given its own.
    pub fn default_buckets(mut self, bounds: &[f64]) -> Self {
        self.default_buckets = bounds.to_vec();
        self
    }

    /// The series cap of every family this recorder declares (0: the
    /// default).
    pub fn max_series(mut self, n: u32) -> Self {
        self.max_series = n;
        self
    }

    /// The families that could not be declared, with why (a name used
    /// with two label sets or kinds, an invalid name, a full directory).
    pub fn errors(&self) -> Vec<(String, String)> {
        let f = self.families.lock().unwrap_or_else(|e| e.into_inner());
        f.iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| (n.clone(), e.clone())))
            .collect()
    }

    /// The series of `key` in a family of `kind`.
    fn series(&self, key: &Key, kind: Kind) -> Result<SeriesHandle> {
        let mut labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        labels.sort_by(|a, b| a.0.cmp(b.0));
        let name = key.name();
        let family = {
            let mut fams = self.families.lock().unwrap_or_else(|e| e.into_inner());
            fams.entry(name.to_string())
                .or_insert_with(|| {
                    let names: Vec<&str> = labels.iter().map(|l| l.0).collect();
                    self.stats
                        .declare(&self.spec(name, kind, &names))
                        .map_err(|e| e.to_string())
                })
                .clone()
                .map_err(Error::InvalidFamily)?
        };
        if family.spec().kind() != kind {
            return Err(Error::InvalidFamily(format!(
                "{name} is a {:?}, used as a {kind:?}",
                family.spec().kind()
            )));
        }
        let values: Vec<&str> = labels.iter().map(|l| l.1).collect();
        family.series(&values)
    }

    fn spec(&self, name: &str, kind: Kind, labels: &[&str]) -> FamilySpec {
        let described = self.described.lock().unwrap_or_else(|e| e.into_inner());
        let (help, unit) = described
            .get(name)
            .map(|(h, u)| (h.as_str(), u.map(unit_name)))
            .unwrap_or(("", None));
        let spec = match kind {
            Kind::Counter => FamilySpec::counter(name, help),
            Kind::Gauge => FamilySpec::gauge(name, help),
            Kind::Histogram => FamilySpec::histogram(
                name,
                help,
                self.buckets.get(name).unwrap_or(&self.default_buckets),
            ),
        };
        spec.labels(labels)
            .unit(unit.unwrap_or(""))
            .max_series(self.max_series)
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        let mut d = self.described.lock().unwrap_or_else(|e| e.into_inner());
        d.insert(key.as_str().to_string(), (help.to_string(), unit));
    }
}

/// The OpenMetrics unit word of a `metrics` unit.
fn unit_name(u: Unit) -> &'static str {
    match u {
        Unit::Count => "",
        Unit::Percent => "percent",
        Unit::Seconds => "seconds",
        Unit::Milliseconds => "milliseconds",
        Unit::Microseconds => "microseconds",
        Unit::Nanoseconds => "nanoseconds",
        Unit::Tebibytes => "tebibytes",
        Unit::Gibibytes => "gibibytes",
        Unit::Mebibytes => "mebibytes",
        Unit::Kibibytes => "kibibytes",
        Unit::Bytes => "bytes",
        Unit::TerabitsPerSecond => "terabits_per_second",
        Unit::GigabitsPerSecond => "gigabits_per_second",
        Unit::MegabitsPerSecond => "megabits_per_second",
        Unit::KilobitsPerSecond => "kilobits_per_second",
        Unit::BitsPerSecond => "bits_per_second",
        Unit::CountPerSecond => "per_second",
    }
}

/// A counter series behind the facade's `Counter`.
struct CounterSeries(SeriesHandle);

impl CounterFn for CounterSeries {
    fn increment(&self, value: u64) {
        self.0.inc_by(value);
    }

    /// Ignored: a counter in the segment is the sum of every process's
    /// increments, which no one process can set.
    fn absolute(&self, _value: u64) {}
}

/// A gauge series: this process's part of the gauge, as an integer.
struct GaugeSeries {
    series: SeriesHandle,
    /// What this handle has added in all (what `set` moves from).
    value: AtomicI64,
}

impl GaugeSeries {
    fn add(&self, delta: i64) {
        self.value.fetch_add(delta, Ordering::Relaxed);
        self.series.add(delta);
    }
}

impl GaugeFn for GaugeSeries {
    fn increment(&self, value: f64) {
        self.add(value.round() as i64);
    }

    fn decrement(&self, value: f64) {
        self.add(-(value.round() as i64));
    }

    fn set(&self, value: f64) {
        let target = value.round() as i64;
        let old = self.value.swap(target, Ordering::Relaxed);
        self.series.add(target.wrapping_sub(old));
    }
}

/// A histogram series.
struct HistogramSeries(SeriesHandle);

impl HistogramFn for HistogramSeries {
    fn record(&self, value: f64) {
        self.0.observe(value);
    }
}

/// The handle cached for `key`, made by `make` the first time.
fn cached<T: Clone>(map: &RwLock<HashMap<Key, T>>, key: &Key, make: impl FnOnce() -> T) -> T {
    if let Some(h) = map.read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return h.clone();
    }
    let mut w = map.write().unwrap_or_else(|e| e.into_inner());
    w.entry(key.clone()).or_insert_with(make).clone()
}

impl metrics::Recorder for MetricsRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(key, unit, help);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(key, unit, help);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(key, unit, help);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        cached(&self.counters, key, || {
            match self.series(key, Kind::Counter) {
                Ok(s) => Counter::from_arc(Arc::new(CounterSeries(s))),
                Err(_) => Counter::noop(),
            }
        })
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        cached(&self.gauges, key, || match self.series(key, Kind::Gauge) {
            Ok(series) => Gauge::from_arc(Arc::new(GaugeSeries {
                series,
                value: AtomicI64::new(0),
            })),
            Err(_) => Gauge::noop(),
        })
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        cached(&self.histograms, key, || {
            match self.series(key, Kind::Histogram) {
                Ok(s) => Histogram::from_arc(Arc::new(HistogramSeries(s))),
                Err(_) => Histogram::noop(),
            }
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::read::series::read_all;

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn facade_calls_land_in_declared_families() {
        let stats = Stats::anonymous().unwrap();
        let rec = MetricsRecorder::new(stats.clone())
            .histogram_buckets("sfu_delay_seconds", &[0.001, 0.01]);
        metrics::with_local_recorder(&rec, || {
            metrics::describe_counter!("sfu_bytes_total", Unit::Bytes, "Bytes forwarded.");
            for _ in 0..3 {
                metrics::counter!("sfu_bytes_total", "room" => "blue", "dir" => "in")
                    .increment(100);
            }
            // The same labels in another order are the same series.
            metrics::counter!("sfu_bytes_total", "dir" => "in", "room" => "blue").increment(1);
            let g = metrics::gauge!("sfu_transports", "protocol" => "udp");
            g.increment(3.0);
            g.decrement(1.0);
            g.set(7.0);
            metrics::histogram!("sfu_delay_seconds").record(0.002);
            metrics::histogram!("sfu_delay_seconds").record(5.0);
            // A name used as another kind records nothing and is reported.
            metrics::gauge!("sfu_bytes_total", "dir" => "in", "room" => "x").increment(9.0);
        });
        let (all, _) = read_all(stats.segment());
        let bytes = stats.family("sfu_bytes_total").unwrap();
        let s = all
            .iter()
            .find(|s| s.family == bytes && s.labels[0] == "in")
            .unwrap();
        assert_eq!(
            (s.labels.clone(), s.value),
            (vec!["in".to_string(), "blue".to_string()], 301)
        );
        assert!(!all.iter().any(|s| s.family == bytes && s.labels[1] == "x"));
        let spec = crate::__testing::declared_families(stats.segment())
            .into_iter()
            .find(|f| f.name() == "sfu_bytes_total")
            .unwrap();
        assert_eq!(
            (spec.help.as_str(), spec.unit.as_str()),
            ("Bytes forwarded.", "bytes")
        );
        let t = stats.family("sfu_transports").unwrap();
        let udp = all
            .iter()
            .find(|s| s.family == t && s.labels[0] == "udp")
            .unwrap();
        assert_eq!(udp.value, 7);
        let d = stats.family("sfu_delay_seconds").unwrap();
        let h = all.iter().find(|s| s.family == d).unwrap();
        assert_eq!(h.buckets, vec![0, 1, 1]);
        assert!(rec.errors().is_empty(), "{:?}", rec.errors());
    }
}
