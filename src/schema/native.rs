//! Native (sparse exponential) histogram buckets: Prometheus' bucket
//! index of a value, computed from the value's bits, and the bounded span
//! of buckets a declared native family keeps per series (SEGMENT.md §8b).
//!
//! For schema `s` (−4 … 8) the bucket boundaries are the powers of
//! `base = 2^(2^-s)`; bucket `i` holds the values `v` with
//! `base^(i-1) < |v| ≤ base^i`. Prometheus (client_golang) finds `i` with
//! `frexp` and a binary search of the fraction among `2^(j/2^s)/2`,
//! `j < 2^s`. The index here is the same number, found without a float
//! `log` or a search: the exponent comes from the bits, and the fraction's
//! bucket from a table indexed by its top `s + 1` mantissa bits plus one
//! comparison (the boundaries are more than one table cell apart, so a
//! cell holds at most one). Bit-exact with the search (tested against it),
//! and about 5× cheaper than `log2` (`benches/README.md`).

use super::native_bounds::BOUNDS;
use std::sync::OnceLock;

/// Lowest schema Prometheus defines.
pub const MIN_NATIVE_SCHEMA: i8 = -4;
/// Highest schema Prometheus defines.
pub const MAX_NATIVE_SCHEMA: i8 = 8;
/// The schema of a native family whose spec names none: 8 buckets per
/// power of two, a relative error of at most 4.4 % per bucket.
pub const DEFAULT_NATIVE_SCHEMA: i8 = 3;
/// Zero threshold of a native family whose spec names none (client_golang's
/// default, 2⁻¹²⁸).
pub const DEFAULT_NATIVE_ZERO_THRESHOLD: f64 = 2.938735877055719e-39;
/// Lowest value a native family's buckets cover unless its spec says
/// otherwise: 2⁻¹⁰ (about 0.001).
pub const DEFAULT_NATIVE_MIN: f64 = 1.0 / 1024.0;
/// Highest value a native family's buckets cover unless its spec says
/// otherwise: 2³⁰ (about 1.07e9).
pub const DEFAULT_NATIVE_MAX: f64 = 1073741824.0;
/// Most buckets a native family keeps per sign and series.
pub const MAX_NATIVE_SPAN: u32 = 2048;

/// How a native family's series keep their buckets: the schema, the zero
/// threshold, and the span of bucket indices kept for each sign
/// (`lo … lo + span − 1`). A value whose bucket lies outside goes to the
/// outermost bucket of its sign and is counted as clamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct NativeLayout {
    pub(crate) schema: i8,
    pub(crate) lo: i32,
    pub(crate) span: u32,
    /// The zero threshold's bits (an `f64`, finite, ≥ 0).
    pub(crate) zero_bits: u64,
}

impl NativeLayout {
    /// The zero threshold.
    pub(crate) fn zero_threshold(&self) -> f64 {
        f64::from_bits(self.zero_bits)
    }

    /// Value words a series keeps for its native buckets: the zero bucket,
    /// the clamped count, then `span` positive and `span` negative buckets.
    pub(crate) fn words(&self) -> usize {
        2 + 2 * self.span as usize
    }

    /// Whether the layout is one a segment may hold (SEGMENT.md §8a): a
    /// schema Prometheus defines, a zero threshold finite and ≥ 0, a span
    /// of 1 … [`MAX_NATIVE_SPAN`] buckets, all of whose upper bounds are
    /// normal `f64`s (`lo` ≥ the index of 2⁻¹⁰²², the last index below the
    /// largest finite `f64`'s).
    pub(crate) fn check(&self) -> Result<(), String> {
        let s = self.schema;
        if !(MIN_NATIVE_SCHEMA..=MAX_NATIVE_SCHEMA).contains(&s) {
            return Err(format!(
                "native schema {s}: {MIN_NATIVE_SCHEMA} to {MAX_NATIVE_SCHEMA}"
            ));
        }
        let z = self.zero_threshold();
        if !(z.is_finite() && z >= 0.0) {
            return Err(format!(
                "native zero threshold {z}: finite and not negative"
            ));
        }
        if !(1..=MAX_NATIVE_SPAN).contains(&self.span) {
            return Err(format!(
                "native span of {} buckets at schema {s}: 1 to {MAX_NATIVE_SPAN}; narrow the range or lower the schema",
                self.span
            ));
        }
        let last = self.lo as i64 + self.span as i64 - 1;
        if (self.lo as i64) < bucket_index(s, f64::MIN_POSITIVE) as i64
            || last >= bucket_index(s, f64::MAX) as i64
        {
            return Err(format!(
                "native buckets {}..={last} at schema {s}: their bounds must be normal f64 values",
                self.lo
            ));
        }
        Ok(())
    }

    /// The layout of values `min … max` at `schema` (checked by
    /// `FamilySpec::validate`).
    pub(crate) fn of(schema: i8, zero_threshold: f64, min: f64, max: f64) -> NativeLayout {
        let lo = bucket_index(schema, min);
        let hi = bucket_index(schema, max);
        NativeLayout {
            schema,
            lo,
            span: (hi as i64 - lo as i64 + 1).clamp(1, u32::MAX as i64) as u32,
            zero_bits: zero_threshold.to_bits(),
        }
    }
}

/// Where an observation goes in a series' native words (see
/// [`NativeLayout::words`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucketer {
    layout: NativeLayout,
    zero: f64,
    table: Option<&'static Table>,
}

/// Word of the zero bucket, from the first native word.
pub(crate) const ZERO_WORD: usize = 0;
/// Word of the clamped count, from the first native word.
pub(crate) const CLAMPED_WORD: usize = 1;
/// First positive bucket word, from the first native word.
pub(crate) const POSITIVE_WORD: usize = 2;

impl Bucketer {
    pub(crate) fn new(layout: NativeLayout) -> Bucketer {
        Bucketer {
            layout,
            zero: layout.zero_threshold(),
            table: (layout.schema > 0).then(|| table(layout.schema)),
        }
    }

    #[cfg(test)]
    pub(crate) fn layout(&self) -> &NativeLayout {
        &self.layout
    }

    /// Native words per series (see [`NativeLayout::words`]).
    pub(crate) fn words(&self) -> usize {
        self.layout.words()
    }

    /// The native word `v` counts in (from the first native word), and
    /// whether it was clamped into the span's edge; `None` for NaN, which
    /// Prometheus counts in no native bucket (only in count and sum).
    #[inline]
    pub(crate) fn word(&self, v: f64) -> Option<(usize, bool)> {
        let a = v.abs();
        if a <= self.zero {
            return Some((ZERO_WORD, false));
        }
        if a.is_nan() {
            return None;
        }
        let span = self.layout.span as usize;
        let first = POSITIVE_WORD + if v < 0.0 { span } else { 0 };
        // ±Inf: past every bucket.
        let i = if a.is_infinite() {
            i32::MAX
        } else {
            index_of(self.layout.schema, self.table, a)
        };
        let off = i as i64 - self.layout.lo as i64;
        if off < 0 {
            Some((first, true))
        } else if off as usize >= span {
            Some((first + span - 1, true))
        } else {
            Some((first + off as usize, false))
        }
    }
}

/// The bucket-finding table of one schema `s > 0`: the boundaries'
/// mantissas, and per cell of `2^(s+1)` equal mantissa cells, how many
/// boundaries lie below the cell.
#[derive(Debug)]
pub(crate) struct Table {
    /// `bound[j]` = the 52 mantissa bits of `2^(j/2^s)` (correctly
    /// rounded), j < 2^s, then 2^52 as a sentinel.
    bound: Vec<u64>,
    /// `below[c]` = boundaries `j` with `bound[j] < c·2^(52−s−1)`.
    below: Vec<u16>,
}

/// The table of schema `s` (1 … 8), built once.
fn table(s: i8) -> &'static Table {
    static TABLES: [OnceLock<Table>; 8] = [const { OnceLock::new() }; 8];
    TABLES[(s - 1) as usize].get_or_init(|| {
        let n = 1usize << s;
        let mut bound: Vec<u64> = (0..n)
            .map(|j| boundary(s, j).to_bits() & ((1 << 52) - 1))
            .collect();
        bound.push(1 << 52);
        let shift = 52 - (s as u32 + 1);
        let below = (0..2 * n)
            .map(|c| bound.iter().filter(|&&b| b < (c as u64) << shift).count() as u16)
            .collect();
        Table { bound, below }
    })
}

/// `2^(j/2^s)` for `1 ≤ s ≤ 8`, `j < 2^s`, in `[1, 2)`, correctly rounded
/// (from the table in `native_bounds.rs`).
pub(crate) fn boundary(s: i8, j: usize) -> f64 {
    f64::from_bits(BOUNDS[(1usize << s) - 2 + j])
}

/// Prometheus' bucket index of a finite `a > 0` at schema `s`.
pub(crate) fn bucket_index(s: i8, a: f64) -> i32 {
    index_of(s, (s > 0).then(|| table(s)), a)
}

/// As [`bucket_index`], with the schema's table at hand.
#[inline(always)]
fn index_of(s: i8, table: Option<&Table>, a: f64) -> i32 {
    let mut bits = a.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i32;
    if e == 0 {
        // Subnormal: scale into the normal range first.
        bits = (a * f64::from_bits(0x43f0_0000_0000_0000)).to_bits(); // 2^64
        e = ((bits >> 52) & 0x7ff) as i32 - 64;
    }
    let m = bits & ((1 << 52) - 1);
    // frexp: a = frac · 2^exp, frac in [0.5, 1), frac = (1 + m/2^52) / 2.
    let exp = e - 1022;
    match table {
        Some(t) => {
            let shift = 52 - (s as u32 + 1);
            let c = (m >> shift) as usize;
            let mut j = t.below[c] as usize;
            if t.bound[j] < m {
                j += 1;
            }
            j as i32 + (exp - 1) * (1 << s)
        }
        None => {
            // A power of two is the upper bound of the bucket below.
            let key = exp - (m == 0) as i32;
            let sh = -s as u32;
            (key + (1 << sh) - 1) >> sh
        }
    }
}

/// The upper bound of bucket `i` at schema `s`: `2^(i/2^s)`, exactly the
/// value whose [`bucket_index`] is `i` and no larger.
pub(crate) fn upper_bound(s: i8, i: i32) -> f64 {
    if s <= 0 {
        let e = (i as i64) << (-s as u32);
        return pow2(e);
    }
    let n = 1i64 << s;
    let (q, j) = ((i as i64).div_euclid(n), (i as i64).rem_euclid(n));
    boundary(s, j as usize) * pow2(q)
}

/// `2^e` as an `f64` (0 or +Inf past the range).
fn pow2(e: i64) -> f64 {
    if e > 1023 {
        f64::INFINITY
    } else if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else if e >= -1074 {
        f64::from_bits(1u64 << (e + 1074))
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: client_golang's frexp and binary search.
    fn reference(s: i8, a: f64) -> i32 {
        // frexp by repeated scaling: slow and obviously right.
        let (mut frac, mut exp) = (a, 0i32);
        while frac >= 1.0 {
            frac /= 2.0;
            exp += 1;
        }
        while frac < 0.5 {
            frac *= 2.0;
            exp -= 1;
        }
        if s > 0 {
            let n = 1usize << s;
            let bounds: Vec<f64> = (0..n).map(|j| boundary(s, j) / 2.0).collect();
            let j = bounds.partition_point(|&b| b < frac);
            j as i32 + (exp - 1) * n as i32
        } else {
            let mut key = exp;
            if frac == 0.5 {
                key -= 1;
            }
            let off = (1 << -s) - 1;
            (key + off) >> -s
        }
    }

    fn values() -> Vec<f64> {
        let mut v = vec![
            1.0,
            2.0,
            0.5,
            3.0,
            1e-300,
            5e-324,
            2.2250738585072014e-308,
            f64::MAX,
            1e9,
            123.456,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        // Miri runs this a thousand times slower: fewer random values there.
        let random = if cfg!(miri) { 200 } else { 20_000 };
        for _ in 0..random {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Finite positives across the whole exponent range.
            let f = f64::from_bits(x & 0x7fef_ffff_ffff_ffff);
            if f > 0.0 {
                v.push(f);
            }
        }
        for s in 1..=8i8 {
            for j in (0..(1usize << s)).step_by(if cfg!(miri) { 17 } else { 1 }) {
                let b = boundary(s, j);
                v.extend([
                    b,
                    f64::from_bits(b.to_bits() + 1),
                    f64::from_bits(b.to_bits() - 1),
                ]);
                v.extend([b * 1024.0, b / 4096.0]);
            }
        }
        v
    }

    #[test]
    fn the_index_is_the_search_bit_for_bit() {
        let v = values();
        for s in MIN_NATIVE_SCHEMA..=MAX_NATIVE_SCHEMA {
            for &a in &v {
                assert_eq!(bucket_index(s, a), reference(s, a), "schema {s}, {a:e}");
            }
        }
    }

    #[test]
    fn boundaries_are_correctly_rounded() {
        let data = include_str!("../../tests/data/native-bounds.txt");
        let mut seen = 0;
        for line in data.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (s, j) = (f[0].parse::<i8>().unwrap(), f[1].parse::<usize>().unwrap());
            let bits = u64::from_str_radix(f[2], 16).unwrap();
            assert_eq!(boundary(s, j).to_bits(), bits, "2^({j}/2^{s})");
            // What glibc's exp2 gives too (not Miri's, which adds error).
            #[cfg(not(miri))]
            assert_eq!((j as f64 / f64::from(1u32 << s)).exp2().to_bits(), bits);
            seen += 1;
        }
        assert_eq!(seen, 510);
    }

    #[test]
    fn upper_bounds_end_their_buckets() {
        for s in MIN_NATIVE_SCHEMA..=MAX_NATIVE_SCHEMA {
            for i in [-300, -81, -1, 0, 1, 7, 8, 9, 240, 2000] {
                let ub = upper_bound(s, i);
                if ub == 0.0 || ub.is_infinite() {
                    continue;
                }
                assert_eq!(bucket_index(s, ub), i, "schema {s} bucket {i}");
                let next = f64::from_bits(ub.to_bits() + 1);
                assert_eq!(bucket_index(s, next), i + 1, "schema {s} past bucket {i}");
            }
        }
        assert_eq!(bucket_index(3, 1.0), 0);
        assert_eq!(bucket_index(3, 2.0), 8);
        assert_eq!(bucket_index(0, 4.0), 2);
        assert_eq!(bucket_index(-2, 16.0), 1, "base 16");
        assert_eq!(bucket_index(-2, 17.0), 2);
    }

    #[test]
    fn observations_land_in_span_zero_or_edge() {
        let b = Bucketer::new(NativeLayout::of(3, 0.5, 1.0, 16.0));
        let l = *b.layout();
        assert_eq!((l.lo, l.span), (0, 33));
        assert_eq!(b.word(0.25), Some((ZERO_WORD, false)));
        assert_eq!(b.word(-0.5), Some((ZERO_WORD, false)), "|v| ≤ threshold");
        assert_eq!(b.word(1.0), Some((POSITIVE_WORD, false)));
        assert_eq!(b.word(2.0), Some((POSITIVE_WORD + 8, false)));
        assert_eq!(b.word(-2.0), Some((POSITIVE_WORD + 33 + 8, false)));
        assert_eq!(b.word(0.75), Some((POSITIVE_WORD, true)), "below the span");
        assert_eq!(b.word(1e6), Some((POSITIVE_WORD + 32, true)), "above");
        assert_eq!(b.word(f64::INFINITY), Some((POSITIVE_WORD + 32, true)));
        assert_eq!(b.word(f64::NEG_INFINITY), Some((POSITIVE_WORD + 65, true)));
        assert_eq!(b.word(f64::NAN), None);
        assert_eq!(l.words(), 68);
    }

    #[test]
    fn default_layout_size() {
        let l = NativeLayout::of(
            DEFAULT_NATIVE_SCHEMA,
            DEFAULT_NATIVE_ZERO_THRESHOLD,
            DEFAULT_NATIVE_MIN,
            DEFAULT_NATIVE_MAX,
        );
        assert_eq!((l.lo, l.span), (-80, 321));
        assert_eq!(DEFAULT_NATIVE_ZERO_THRESHOLD, pow2(-128));
        assert_eq!(pow2(-128).to_bits(), ((1023 - 128) as u64) << 52);
    }
}
