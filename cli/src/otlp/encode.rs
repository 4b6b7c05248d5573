//! A [`Snapshot`] as an OTLP `ExportMetricsServiceRequest`, with the
//! upstream message types: counters as cumulative monotonic sums, gauges
//! as gauges, histograms as cumulative explicit-bucket histograms. The
//! const labels (`node_id`, `node_type`) are resource attributes, so data
//! points carry only each family's own labels.

use nodestats::{FamilyView, Kind, NativeView, Snapshot, Value};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// A string attribute.
pub(crate) fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// The request for `snapshot`, taken at `now_ns` (Unix nanoseconds), from
/// a node described by `resource` (attribute pairs). Every point starts at
/// the segment's creation (clamped to `now_ns`): a replaced segment, whose
/// counters restarted, starts a new cumulative stream.
pub(crate) fn request(
    snapshot: &Snapshot,
    resource: &[(String, String)],
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    let start = snapshot.segment_created_unix_ns().min(now_ns);
    let mut metrics = Vec::new();
    for fam in snapshot.families() {
        let names: Vec<&str> = fam.label_names().collect();
        let attributes = |values: &[String]| -> Vec<KeyValue> {
            names.iter().zip(values).map(|(k, v)| attr(k, v)).collect()
        };
        let number = |values: &[String], v: number_data_point::Value| NumberDataPoint {
            attributes: attributes(values),
            start_time_unix_nano: start,
            time_unix_nano: now_ns,
            value: Some(v),
            ..Default::default()
        };
        let data = match fam.kind() {
            Kind::Counter => metric::Data::Sum(Sum {
                data_points: fam
                    .series()
                    .filter_map(|s| match s.value() {
                        Value::Scalar(v) => Some(number(
                            s.label_values(),
                            number_data_point::Value::AsInt(v as i64),
                        )),
                        _ => None,
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            }),
            Kind::Gauge => metric::Data::Gauge(Gauge {
                data_points: fam
                    .series()
                    .filter_map(|s| match s.value() {
                        Value::Scalar(v) => Some(number(
                            s.label_values(),
                            number_data_point::Value::AsDouble(v),
                        )),
                        _ => None,
                    })
                    .collect(),
            }),
            // A native family (its series all have native buckets) is an
            // exponential histogram; its classic buckets, if any, are left
            // out (an OTLP metric has one kind).
            Kind::Histogram if is_native(&fam) => {
                metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: fam
                        .series()
                        .filter_map(|s| match s.value() {
                            Value::Histogram {
                                count,
                                sum,
                                native: Some(n),
                                ..
                            } => Some(ExponentialHistogramDataPoint {
                                attributes: attributes(s.label_values()),
                                start_time_unix_nano: start,
                                time_unix_nano: now_ns,
                                ..exponential(&native_parts(n), count, sum)
                            }),
                            _ => None,
                        })
                        .collect(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                })
            }
            Kind::Histogram => metric::Data::Histogram(Histogram {
                data_points: fam
                    .series()
                    .filter_map(|s| match s.value() {
                        Value::Histogram {
                            buckets,
                            count,
                            sum,
                            ..
                        } => Some(HistogramDataPoint {
                            attributes: attributes(s.label_values()),
                            start_time_unix_nano: start,
                            time_unix_nano: now_ns,
                            count,
                            sum: Some(sum),
                            bucket_counts: buckets.to_vec(),
                            explicit_bounds: fam.bounds().to_vec(),
                            ..Default::default()
                        }),
                        _ => None,
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            }),
        };
        metrics.push(Metric {
            name: fam.name().to_string(),
            description: fam.help().to_string(),
            unit: fam.unit().to_string(),
            metadata: Vec::new(),
            data: Some(data),
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| attr(k, v)).collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "nodestats".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Whether `fam` is a native histogram family.
fn is_native(fam: &FamilyView<'_>) -> bool {
    fam.series().any(|s| {
        matches!(
            s.value(),
            Value::Histogram {
                native: Some(_),
                ..
            }
        )
    })
}

/// Native buckets as plain parts.
struct Native<'a> {
    schema: i8,
    zero_threshold: f64,
    zero_count: u64,
    positive: &'a [(i32, u64)],
    negative: &'a [(i32, u64)],
}

fn native_parts(n: NativeView<'_>) -> Native<'_> {
    Native {
        schema: n.schema(),
        zero_threshold: n.zero_threshold(),
        zero_count: n.zero_count(),
        positive: n.positive(),
        negative: n.negative(),
    }
}

/// An exponential-histogram point (without attributes and times) from
/// native buckets: OTLP's scale is the schema (lowered if the buckets are
/// too wide to hold densely), its indices Prometheus' minus one. The sum
/// is left out when there are negative observations, as OTLP asks.
fn exponential(n: &Native<'_>, count: u64, sum: f64) -> ExponentialHistogramDataPoint {
    let schema = i32::from(n.schema);
    let (mut positive, scale) = dense(n.positive, schema, schema);
    let (negative, neg_scale) = dense(n.negative, schema, scale);
    if neg_scale < scale {
        positive = dense(n.positive, schema, neg_scale).0;
    }
    ExponentialHistogramDataPoint {
        count,
        sum: n.negative.is_empty().then_some(sum),
        scale: neg_scale.min(scale),
        zero_count: n.zero_count,
        positive: Some(positive),
        negative: Some(negative),
        zero_threshold: n.zero_threshold,
        ..Default::default()
    }
}

/// The request body for `snapshot`: the request's protobuf bytes, gzipped
/// if `gzip` (compression of a `Vec` cannot fail).
pub(crate) fn body(
    snapshot: &Snapshot,
    resource: &[(String, String)],
    now_ns: u64,
    gzip: bool,
) -> Vec<u8> {
    use prost::Message;
    let bytes = request(snapshot, resource, now_ns).encode_to_vec();
    if !gzip {
        return bytes;
    }
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut z, &bytes)
        .and_then(|()| z.finish())
        .unwrap_or(bytes)
}

/// Most buckets one side of an exponential histogram point may hold
/// densely; a wider span is downscaled (two buckets merge into one per
/// step) until it fits.
const MAX_DENSE: i64 = 4096;

/// One side of a native histogram, sparse with Prometheus' indices
/// (bucket `i` covers `(base^(i-1), base^i]`) at `scale`, as OTLP's dense
/// buckets (bucket `k` covers `(base^k, base^(k+1)]`, so `k = i - 1`),
/// lowered to `at_most` and further until the span fits [`MAX_DENSE`].
/// Returns the buckets and the scale they are at.
pub(crate) fn dense(
    sparse: &[(i32, u64)],
    scale: i32,
    at_most: i32,
) -> (
    opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
    i32,
) {
    use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
    let mut idx: Vec<(i64, u64)> = sparse.iter().map(|&(i, c)| (i64::from(i) - 1, c)).collect();
    let mut scale = scale;
    let span = |v: &[(i64, u64)]| match (v.iter().map(|x| x.0).min(), v.iter().map(|x| x.0).max()) {
        (Some(lo), Some(hi)) => hi - lo + 1,
        _ => 0,
    };
    while scale > at_most || span(&idx) > MAX_DENSE {
        for x in idx.iter_mut() {
            x.0 >>= 1;
        }
        scale -= 1;
    }
    let Some(lo) = idx.iter().map(|x| x.0).min() else {
        return (Buckets::default(), scale);
    };
    let mut counts = vec![0u64; span(&idx) as usize];
    for (k, c) in idx {
        let at = &mut counts[(k - lo) as usize];
        *at = at.saturating_add(c);
    }
    (
        Buckets {
            offset: lo as i32,
            bucket_counts: counts,
        },
        scale,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_buckets_become_dense_otlp_buckets() {
        // Prometheus index 1 at schema 0 is (1, 2]; OTLP's index 0 is too.
        let (b, scale) = dense(&[(1, 3), (2, 1), (5, 2)], 0, 0);
        assert_eq!(scale, 0);
        assert_eq!(b.offset, 0);
        assert_eq!(b.bucket_counts, vec![3, 1, 0, 0, 2]);
        let (b, _) = dense(&[(-3, 1), (0, 4)], 3, 3);
        assert_eq!((b.offset, b.bucket_counts), (-4, vec![1, 0, 0, 4]));
        let (b, scale) = dense(&[], 2, 2);
        assert_eq!((b.offset, b.bucket_counts.len(), scale), (0, 0, 2));
        // A span too wide to hold densely merges pairs of buckets per step,
        // keeping every count.
        let (b, scale) = dense(&[(-10_000, 1), (10_000, 2)], 8, 8);
        assert!(b.bucket_counts.len() as i64 <= MAX_DENSE);
        assert_eq!(scale, 5);
        assert_eq!(b.bucket_counts.iter().sum::<u64>(), 3);
        assert_eq!(b.offset, (-10_001i64 >> 3) as i32);
        assert_eq!(*b.bucket_counts.last().unwrap(), 2);
        // Lowered to a given scale: (1, 2] and (2, 4] at scale 0 are both
        // in (1, 4] at scale -1 (OTLP index 0).
        let (b, scale) = dense(&[(1, 3), (2, 1)], 0, -1);
        assert_eq!((b.offset, b.bucket_counts, scale), (0, vec![4], -1));
    }

    #[test]
    fn native_histogram_point() {
        // Schema 3: 0.5 is in Prometheus bucket -8 ((2^(-9/8), 2^-1]),
        // OTLP bucket -9; 3.0 in 13 ((2^(12/8), 2^(13/8)]), OTLP 12.
        let n = Native {
            schema: 3,
            zero_threshold: 1e-9,
            zero_count: 2,
            positive: &[(-8, 1), (13, 4)],
            negative: &[],
        };
        let p = exponential(&n, 7, 12.5);
        assert_eq!(
            (p.scale, p.count, p.sum, p.zero_count),
            (3, 7, Some(12.5), 2)
        );
        assert_eq!(p.zero_threshold, 1e-9);
        let pos = p.positive.unwrap();
        assert_eq!(pos.offset, -9);
        assert_eq!(pos.bucket_counts.len(), 22);
        assert_eq!((pos.bucket_counts[0], pos.bucket_counts[21]), (1, 4));
        let base = 2f64.powf(2f64.powi(-3));
        assert!(base.powi(-9) < 0.5 && 0.5 <= base.powi(-8));
        assert!(base.powi(12) < 3.0 && 3.0 <= base.powi(13));
        assert!(p.negative.unwrap().bucket_counts.is_empty());
        // Negative observations: no sum; both sides at one scale even when
        // one must be lowered.
        let n = Native {
            negative: &[(-5000, 1), (5000, 1)],
            ..n
        };
        let p = exponential(&n, 9, -1.0);
        assert_eq!(p.sum, None);
        assert!(p.scale < 3);
        let (pos, neg) = (p.positive.unwrap(), p.negative.unwrap());
        assert_eq!(pos.bucket_counts.iter().sum::<u64>(), 5);
        assert_eq!(neg.bucket_counts.iter().sum::<u64>(), 2);
        assert_eq!(pos.offset, -10 >> (3 - p.scale));
    }
}
