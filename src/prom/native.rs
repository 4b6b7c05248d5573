//! The exporter's model of a native (sparse exponential) histogram: what
//! every exposition (protobuf, OTLP) reads of a native series. Count and
//! sum stay in the histogram value beside it, as for classic buckets.

/// The native buckets of one histogram series, as read from the segment
/// and merged over CPUs, thread rows and duplicate entries.
///
/// Bucket `i` of schema `s` covers `(base^(i-1), base^i]` with
/// `base = 2^(2^-s)` (Prometheus' rule); a negative bucket `i` covers the
/// same range of `|v|` for `v < 0`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct NativeBuckets {
    /// The schema, −4 … 8.
    pub schema: i8,
    /// Observations with `|v| ≤ zero_threshold` went to the zero bucket.
    pub zero_threshold: f64,
    /// The zero bucket's count.
    pub zero_count: u64,
    /// Positive buckets: (bucket index, count — NOT cumulative), ascending
    /// by index, only buckets with a count.
    pub positive: Vec<(i32, u64)>,
    /// Negative buckets, as `positive` (index of `|v|`).
    pub negative: Vec<(i32, u64)>,
    /// Observations outside the series' bucket span, counted in its
    /// outermost bucket (already included in `positive`/`negative`).
    pub clamped: u64,
}

impl NativeBuckets {
    /// Every observation in these buckets: zero, positive and negative.
    pub(crate) fn count(&self) -> u64 {
        let side = |v: &[(i32, u64)]| v.iter().fold(0u64, |a, b| a.saturating_add(b.1));
        self.zero_count
            .saturating_add(side(&self.positive))
            .saturating_add(side(&self.negative))
    }

    /// Adds `other` (same schema and threshold) into this one.
    pub(crate) fn merge(&mut self, other: &NativeBuckets) {
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        self.clamped = self.clamped.saturating_add(other.clamped);
        merge_side(&mut self.positive, &other.positive);
        merge_side(&mut self.negative, &other.negative);
    }
}

/// Adds the sparse buckets `b` into `a`, keeping `a` ascending.
fn merge_side(a: &mut Vec<(i32, u64)>, b: &[(i32, u64)]) {
    for &(i, c) in b {
        match a.binary_search_by_key(&i, |x| x.0) {
            Ok(k) => a[k].1 = a[k].1.saturating_add(c),
            Err(k) => a.insert(k, (i, c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_bucket_by_bucket_and_keeps_order() {
        let mut a = NativeBuckets {
            schema: 3,
            zero_count: 1,
            positive: vec![(-2, 1), (5, 2)],
            negative: vec![(0, 4)],
            ..Default::default()
        };
        let b = NativeBuckets {
            schema: 3,
            zero_count: 2,
            positive: vec![(1, 3), (5, 1)],
            negative: vec![(-1, 1)],
            clamped: 1,
            ..Default::default()
        };
        a.merge(&b);
        assert_eq!(a.positive, vec![(-2, 1), (1, 3), (5, 3)]);
        assert_eq!(a.negative, vec![(-1, 1), (0, 4)]);
        assert_eq!((a.zero_count, a.clamped, a.count()), (3, 1, 3 + 7 + 5));
    }
}
