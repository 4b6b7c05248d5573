//! Go's float arithmetic and formatting, reproduced bit for bit where
//! LiveKit's output depends on them.
//!
//! * [`go_pow`] is Go's `math.Pow` as it runs on amd64: Go does not call the
//!   C library; it splits `y` with `Modf`, computes `x^frac(y)` as
//!   `Exp(frac·Log(x))` with Go's own assembly `Exp` and `Log`, and `x^int(y)`
//!   by repeated squaring of `Frexp`'s mantissa. Its last bit differs from a
//!   correctly rounded `pow`, and client_golang's `ExponentialBucketsRange`
//!   shows it: LiveKit's `livekit_session_start_time_ms` has a bucket
//!   `999.999999999999` where `f64::powf` gives `1000.0000000000002`.
//! * [`exponential_buckets_range`] is client_golang's function of that name.
//! * [`format_go_g`] is `strconv.FormatFloat(v, 'g', -1, 64)`, the form
//!   client_golang prints `le` labels in (`1e+06`, `2.097152e+06`, `0.005`).
//!   [`format_go`] gives the other shortest forms (`'e'`, `'f'`, 32-bit) that
//!   protojson uses.
//!
//! Everything here is pure and allocation-free except the `String`s
//! returned by the formatters.

/// Go's `math.Pow(x, y)` (amd64), bit for bit, special cases included.
pub(crate) fn go_pow(x: f64, y: f64) -> f64 {
    pow(x, y, USE_FMA)
}

/// `math.Pow` with `Exp`'s FMA path on or off.
fn pow(x: f64, y: f64, fma: bool) -> f64 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if y == 1.0 {
        return x;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 {
        return if y < 0.0 {
            if is_odd_int(y) {
                f64::INFINITY.copysign(x)
            } else {
                f64::INFINITY
            }
        } else if is_odd_int(y) {
            x
        } else {
            0.0
        };
    }
    if y.is_infinite() {
        return if x == -1.0 {
            1.0
        } else if (x.abs() < 1.0) == (y > 0.0) {
            0.0
        } else {
            f64::INFINITY
        };
    }
    if x.is_infinite() {
        if x < 0.0 {
            return pow(1.0 / x, -y, fma); // Pow(-0, -y)
        }
        return if y < 0.0 { 0.0 } else { f64::INFINITY };
    }
    if y == 0.5 {
        return x.sqrt();
    }
    if y == -0.5 {
        return 1.0 / x.sqrt();
    }

    let (mut yi, mut yf) = modf(y.abs());
    if yf != 0.0 && x < 0.0 {
        return f64::NAN;
    }
    if yi >= TWO_63 {
        // A large even integer: overflow or underflow for every x but -1.
        return if x == -1.0 {
            1.0
        } else if (x.abs() < 1.0) == (y > 0.0) {
            0.0
        } else {
            f64::INFINITY
        };
    }

    // The answer is a1 · 2^ae.
    let mut a1 = 1.0;
    let mut ae: i64 = 0;
    if yf != 0.0 {
        if yf > 0.5 {
            yf -= 1.0;
            yi += 1.0;
        }
        a1 = exp_amd64(yf * log_amd64(x), fma);
    }
    // x^yi by squaring the mantissa, keeping powers of two apart in xe.
    let (mut x1, xe) = frexp(x);
    let mut xe = i64::from(xe);
    let mut i = yi as i64;
    while i != 0 {
        if !(-(1 << 12)..=(1 << 12)).contains(&xe) {
            // ae is past any f64 exponent already: Ldexp gives 0 or Inf.
            ae += xe;
            break;
        }
        if i & 1 == 1 {
            a1 *= x1;
            ae += xe;
        }
        x1 *= x1;
        xe <<= 1;
        if x1 < 0.5 {
            x1 += x1;
            xe -= 1;
        }
        i >>= 1;
    }
    if y < 0.0 {
        a1 = 1.0 / a1;
        ae = -ae;
    }
    ldexp(a1, ae)
}

/// client_golang's `ExponentialBucketsRange(min, max, count)`: `count`
/// bounds from `min` to (about) `max`, bound `i` being
/// `min · Pow(growth, i)` with `growth = Pow(max/min, 1/(count-1))`, both
/// with Go's [`go_pow`]. Empty where client_golang panics (`count < 1` or
/// `min <= 0`).
pub fn exponential_buckets_range(min: f64, max: f64, count: usize) -> Vec<f64> {
    let mut out = vec![0.0; count];
    let n = exponential_buckets_range_into(min, max, &mut out);
    out.truncate(n);
    out
}

/// [`exponential_buckets_range`] with `out.len()` as the count, written
/// into `out` without allocating; returns how many bounds were written
/// (0 where client_golang panics, else `out.len()`).
pub(crate) fn exponential_buckets_range_into(min: f64, max: f64, out: &mut [f64]) -> usize {
    if out.is_empty() || min.is_nan() || min <= 0.0 {
        return 0;
    }
    let growth = go_pow(max / min, 1.0 / (out.len() as f64 - 1.0));
    for (i, o) in out.iter_mut().enumerate() {
        *o = min * go_pow(growth, i as f64);
    }
    out.len()
}

/// `strconv.FormatFloat(v, 'g', -1, 64)`: the shortest decimal that reads
/// back as `v`, in `%e` form when its exponent is below -4 or at least 6
/// (two-digit exponent at least: `1e+06`, `1e-05`), else plain (`524288`,
/// `0.005`); `NaN`, `+Inf`, `-Inf`.
pub fn format_go_g(v: f64) -> String {
    format_go(v, 'g', 64)
}

/// `strconv.FormatFloat(v, fmt, -1, bits)` for `fmt` in `'e'`, `'f'`,
/// `'g'` and `bits` 32 or 64 (32 first narrows `v` to `f32`, as Go does).
/// Any other `fmt` is treated as `'g'`.
pub(crate) fn format_go(v: f64, fmt: char, bits: u32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let d = Digits::shortest(v, bits == 32);
    let mut out = String::with_capacity(d.nd() + 8);
    match fmt {
        'e' => d.write_e(&mut out, d.nd().saturating_sub(1)),
        'f' => d.write_f(&mut out, (d.nd() as i32 - d.dp).max(0) as usize),
        _ => {
            // Shortest %g picks %e when the exponent is < -4 or >= 6.
            let exp = d.dp - 1;
            if d.nd() > 0 && !(-4..6).contains(&exp) {
                d.write_e(&mut out, d.nd() - 1);
            } else {
                d.write_f(&mut out, (d.nd() as i32 - d.dp).max(0) as usize);
            }
        }
    }
    out
}

/// A finite value as `0.d₁d₂… × 10^dp` with the fewest digits that read
/// back as the same float, as Go's Ryū picks them: of the shortest, the
/// correctly rounded one, ties to even.
struct Digits {
    neg: bool,
    /// ASCII digits, no leading or trailing zeros; empty for zero.
    d: Vec<u8>,
    /// Decimal point position.
    dp: i32,
}

impl Digits {
    fn shortest(v: f64, f32_precision: bool) -> Digits {
        // `{:e}` is Rust's shortest round-trip form, `d.ddde±x`: the right
        // length, and the closest such decimal, but ties round up where Go
        // rounds to even (972.80767822265625 is `…563` in Rust, `…562` in
        // Go). `{:.Ne}` rounds exactly with ties to even, so at the same
        // length it gives Go's digits whenever they still read back as `v`.
        let s = if f32_precision {
            go_shortest(v as f32)
        } else {
            go_shortest(v)
        };
        let (neg, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.as_str()),
        };
        let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let mut d: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        while d.last() == Some(&b'0') {
            d.pop();
        }
        if d.is_empty() {
            return Digits { neg, d, dp: 0 };
        }
        Digits {
            neg,
            d,
            dp: exp + 1,
        }
    }

    fn nd(&self) -> usize {
        self.d.len()
    }

    /// Go's `fmtE`: `d.ddd` with `prec` digits after the point, `e`, sign
    /// and at least two exponent digits.
    fn write_e(&self, out: &mut String, prec: usize) {
        if self.neg {
            out.push('-');
        }
        out.push(self.d.first().map_or('0', |&c| c as char));
        if prec > 0 {
            out.push('.');
            for i in 1..=prec {
                out.push(self.d.get(i).map_or('0', |&c| c as char));
            }
        }
        out.push('e');
        let exp = if self.d.is_empty() { 0 } else { self.dp - 1 };
        out.push(if exp < 0 { '-' } else { '+' });
        let exp = exp.unsigned_abs();
        if exp < 10 {
            out.push('0');
        }
        out.push_str(&exp.to_string());
    }

    /// Go's `fmtF`: the integer part (zero-padded), then `prec` fraction
    /// digits.
    fn write_f(&self, out: &mut String, prec: usize) {
        if self.neg {
            out.push('-');
        }
        if self.dp > 0 {
            let dp = self.dp as usize;
            for i in 0..dp {
                out.push(self.d.get(i).map_or('0', |&c| c as char));
            }
        } else {
            out.push('0');
        }
        if prec > 0 {
            out.push('.');
            for i in 1..=prec as i64 {
                let j = i64::from(self.dp) + i - 1;
                let c = usize::try_from(j).ok().and_then(|j| self.d.get(j));
                out.push(c.map_or('0', |&c| c as char));
            }
        }
    }
}

/// `v` in `d.ddde±x` form with Go's shortest digits (see
/// [`Digits::shortest`]).
fn go_shortest<T>(v: T) -> String
where
    T: std::fmt::LowerExp + std::str::FromStr + PartialEq + Copy,
{
    let shortest = format!("{v:e}");
    let n = shortest
        .bytes()
        .take_while(|&b| b != b'e')
        .filter(u8::is_ascii_digit)
        .count();
    let even = format!("{:.*e}", n.saturating_sub(1), v);
    if even.parse::<T>().is_ok_and(|back| back == v) {
        even
    } else {
        shortest
    }
}

const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// Go on amd64 takes `Exp`'s fused multiply-add path when the CPU has
/// AVX and FMA, which every x86-64 server of the last decade has; LiveKit's
/// published bucket bounds come from that path.
const USE_FMA: bool = true;

/// Go's `isOddInt`.
fn is_odd_int(x: f64) -> bool {
    let (xi, xf) = modf(x.abs());
    // Go converts with int64(xi); beyond 2^63 the value is even anyway.
    xf == 0.0 && xi < TWO_63 && (xi as i64) & 1 == 1
}

/// Go's `Modf` for finite `f >= 0` (the only use here).
fn modf(f: f64) -> (f64, f64) {
    let int = f.trunc();
    (int, f - int)
}

const SHIFT: u32 = 52;
const MASK: u64 = 0x7ff;
const BIAS: i64 = 1023;
const SMALLEST_NORMAL: f64 = f64::MIN_POSITIVE;

/// Go's `normalize`: a subnormal scaled up by 2^52.
fn normalize(x: f64) -> (f64, i64) {
    if x.abs() < SMALLEST_NORMAL {
        (x * (1u64 << 52) as f64, -52)
    } else {
        (x, 0)
    }
}

/// Go's `Frexp`: `f = frac · 2^exp` with `frac` in [0.5, 1).
fn frexp(f: f64) -> (f64, i32) {
    if f == 0.0 || f.is_infinite() || f.is_nan() {
        return (f, 0);
    }
    let (f, e) = normalize(f);
    let mut x = f.to_bits();
    let exp = e + ((x >> SHIFT) & MASK) as i64 - BIAS + 1;
    x &= !(MASK << SHIFT);
    x |= ((BIAS - 1) as u64) << SHIFT;
    (f64::from_bits(x), exp as i32)
}

/// Go's `Ldexp`: `frac · 2^exp`, rounding once into the subnormals.
fn ldexp(frac: f64, exp: i64) -> f64 {
    if frac == 0.0 || frac.is_infinite() || frac.is_nan() {
        return frac;
    }
    let (frac, e) = normalize(frac);
    let mut exp = exp.saturating_add(e);
    let mut x = frac.to_bits();
    exp = exp.saturating_add(((x >> SHIFT) & MASK) as i64 - BIAS);
    if exp < -1075 {
        return 0.0f64.copysign(frac);
    }
    if exp > 1023 {
        return f64::INFINITY.copysign(frac);
    }
    let mut m = 1.0;
    if exp < -1022 {
        exp += 53;
        m = 1.0 / (1u64 << 53) as f64;
    }
    x &= !(MASK << SHIFT);
    x |= ((exp + BIAS) as u64) << SHIFT;
    m * f64::from_bits(x)
}

/// Go's amd64 assembly `Log` (FreeBSD's `e_log.c` algorithm, reduced with
/// the raw exponent bits; note the `f1 <= √2/2` test of its `CMPSD`).
// The constants are Go's literals, digit for digit, so they can be checked
// against its source; they round to the intended f64s.
#[allow(clippy::excessive_precision, clippy::approx_constant)]
fn log_amd64(x: f64) -> f64 {
    const HSQRT2: f64 = 7.07106781186547524401e-01;
    const LN2HI: f64 = 6.93147180369123816490e-01;
    const LN2LO: f64 = 1.90821492927058770002e-10;
    const L1: f64 = 6.666666666666735130e-01;
    const L2: f64 = 3.999999999940941908e-01;
    const L3: f64 = 2.857142874366239149e-01;
    const L4: f64 = 2.222219843214978396e-01;
    const L5: f64 = 1.818357216161805012e-01;
    const L6: f64 = 1.531383769920937332e-01;
    const L7: f64 = 1.479819860511658591e-01;
    let bits = x.to_bits();
    if bits & !(1 << 63) == 0 {
        return f64::NEG_INFINITY;
    }
    if (bits as i64) < 0 {
        return f64::from_bits(0x7ff8_0000_0000_0001);
    }
    if bits >= 0x7ff0_0000_0000_0000 {
        return x;
    }
    let f1 = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3fe0_0000_0000_0000);
    let k = (((bits >> 52) & 0x7ff) as i32 - 0x3fe) as f64;
    let adjust = if HSQRT2 < f1 { 0.0 } else { 1.0 };
    let k = k - adjust;
    let f = f1 * (adjust + 1.0) - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L1 + s4 * (L3 + s4 * (L5 + s4 * L7)));
    let t2 = s4 * (L2 + s4 * (L4 + s4 * L6));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2HI - ((hfsq - (s * (hfsq + r) + k * LN2LO)) - f)
}

/// Go's amd64 assembly `Exp` (Shibata's method: reduce by k·ln2 in two
/// parts, divide by 16, a Taylor polynomial, square back four times as
/// `t(t+2)`), with or without its fused multiply-add path.
#[allow(clippy::excessive_precision, clippy::approx_constant)]
fn exp_amd64(x: f64, fma: bool) -> f64 {
    const LOG2E: f64 = 1.4426950408889634073599246810018920;
    const LN2U: f64 = 0.69314718055966295651160180568695068359375;
    const LN2L: f64 = 0.28235290563031577122588448175013436025525412068e-12;
    const OVERFLOW: f64 = 7.09782712893384e+02;
    const C: [f64; 7] = [
        2.4801587301587301587e-5,
        1.9841269841269841270e-4,
        1.3888888888888888889e-3,
        8.3333333333333333333e-3,
        4.1666666666666666667e-2,
        1.6666666666666666667e-1,
        0.5,
    ];
    let bits = x.to_bits();
    if bits & !(1 << 63) >= 0x7ff0_0000_0000_0000 {
        return if bits == 0xfff0_0000_0000_0000 {
            0.0
        } else {
            x
        };
    }
    if x > OVERFLOW {
        return f64::INFINITY;
    }
    // CVTSD2SL: round to nearest even; out of range gives i32::MIN.
    let t = (LOG2E * x).round_ties_even();
    let mut bx = if (-2_147_483_648.0..2_147_483_648.0).contains(&t) {
        t as i32
    } else {
        i32::MIN
    };
    let k = f64::from(bx);
    let mut x = x;
    if fma {
        x = (-k).mul_add(LN2U, x);
        x = (-k).mul_add(LN2L, x);
        x *= 0.0625;
        let mut p = C[0];
        for c in &C[1..] {
            p = p.mul_add(x, *c);
        }
        p = p.mul_add(x, 1.0);
        x *= p;
        for _ in 0..3 {
            x *= x + 2.0;
        }
        x = x.mul_add(x + 2.0, 1.0);
    } else {
        x -= k * LN2U;
        x -= k * LN2L;
        x *= 0.0625;
        let mut p = C[0];
        for c in &C[1..] {
            p = p * x + c;
        }
        p = p * x + 1.0;
        x *= p;
        for _ in 0..4 {
            x *= 2.0 + x;
        }
        x += 1.0;
    }
    bx = bx.wrapping_add(0x3ff);
    if bx <= 0 {
        if bx < -52 {
            return 0.0;
        }
        x *= f64::from_bits(((bx + 0x3fe) as u64) << 52);
        bx = 1;
    } else if bx >= 0x7ff {
        return f64::INFINITY;
    }
    x * f64::from_bits((bx as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LiveKit's `le` strings (a copy of the reference JSON).
    fn le_strings() -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(include_str!("../tests/data/livekit-le-strings.json")).unwrap()
    }

    fn strings(v: &serde_json::Value) -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn exponential_ranges_reproduce_livekits_le_strings() {
        let want = le_strings();
        for (name, min, max) in [
            ("livekit_session_join_latency_ms", 10.0, 10_000.0),
            ("livekit_session_start_time_ms", 100.0, 10_000.0),
            (
                "livekit_session_duration_ms",
                100.0,
                4.0 * 60.0 * 60.0 * 1000.0,
            ),
        ] {
            let got: Vec<String> = exponential_buckets_range(min, max, 15)
                .into_iter()
                .map(format_go_g)
                .collect();
            assert_eq!(got, strings(&want[name]), "{name}");
            // Go's Exp without FMA gives the same bounds here.
            let growth = pow(max / min, 1.0 / 14.0, false);
            let no_fma: Vec<String> = (0..15)
                .map(|i| format_go_g(min * pow(growth, i as f64, false)))
                .collect();
            assert_eq!(no_fma, got, "{name} without FMA");
        }
    }

    #[test]
    // Shows the C library's pow on this platform; miri's float functions
    // are not the platform's (it adds its own rounding noise).
    #[cfg_attr(miri, ignore)]
    fn powf_is_not_gos_pow() {
        let growth = go_pow(100.0, 1.0 / 14.0);
        assert_eq!(format_go_g(100.0 * go_pow(growth, 7.0)), "999.999999999999");
        let c = (100.0f64).powf(1.0 / 14.0);
        assert_eq!(format_go_g(100.0 * c.powi(7)), "1000.0000000000002");
    }

    #[test]
    fn listed_bounds_print_like_livekits() {
        // The families whose bounds are listed: the same f64s, Go-formatted.
        for (name, les) in le_strings() {
            for s in strings(&les) {
                let v: f64 = s.parse().unwrap();
                assert_eq!(format_go_g(v), s, "{name}");
            }
        }
    }

    #[test]
    fn format_go_g_matches_strconv() {
        // Expected strings from Go's strconv.FormatFloat(v, 'g', -1, 64).
        for (v, want) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (0.1, "0.1"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (1.5e-7, "1.5e-07"),
            (123456.0, "123456"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (-1e6, "-1e+06"),
            (2097152.0, "2.097152e+06"),
            (33554432.0, "3.3554432e+07"),
            (1e21, "1e+21"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (1e100, "1e+100"),
            (1e-100, "1e-100"),
            (123.456, "123.456"),
            (-0.75, "-0.75"),
            (100.0 / 3.0, "33.333333333333336"),
            (0.1 + 0.2, "0.30000000000000004"),
            (9007199254740993.0, "9.007199254740992e+15"),
            // An exact tie at the shortest length: Go rounds to even.
            (972.807_678_222_656_3, "972.8076782226562"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(format_go_g(v), want, "{v:e}");
        }
    }

    #[test]
    fn format_go_other_forms() {
        // strconv.FormatFloat(v, fmt, -1, bits).
        for (v, fmt, bits, want) in [
            (1e21, 'e', 64, "1e+21"),
            (1.5e-7, 'e', 64, "1.5e-07"),
            (0.0, 'e', 64, "0e+00"),
            (1234.5, 'f', 64, "1234.5"),
            (1e21, 'f', 64, "1000000000000000000000"),
            (1.5e-7, 'f', 64, "0.00000015"),
            (0.1, 'f', 32, "0.1"),
            (0.1, 'g', 32, "0.1"),
            (16777217.0, 'f', 32, "16777216"),
            (3.4028234663852886e38, 'e', 32, "3.4028235e+38"),
            (1e-7, 'e', 32, "1e-07"),
            (-0.0, 'f', 32, "-0"),
            (29166.8125, 'f', 32, "29166.812"),
        ] {
            assert_eq!(format_go(v, fmt, bits), want, "{v:e} {fmt} {bits}");
        }
    }

    #[test]
    fn pow_special_cases_follow_go() {
        let inf = f64::INFINITY;
        assert_eq!(go_pow(f64::NAN, 0.0), 1.0);
        assert_eq!(go_pow(1.0, f64::NAN), 1.0);
        assert!(go_pow(f64::NAN, 2.0).is_nan());
        assert_eq!(go_pow(-0.0, -3.0), -inf);
        assert_eq!(go_pow(0.0, -2.0), inf);
        assert_eq!(go_pow(-0.0, 3.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(go_pow(-1.0, inf), 1.0);
        assert_eq!(go_pow(0.5, inf), 0.0);
        assert_eq!(go_pow(2.0, -inf), 0.0);
        assert_eq!(go_pow(-inf, 3.0), -inf);
        assert_eq!(go_pow(-inf, -3.0).to_bits(), (-0.0f64).to_bits());
        assert!(go_pow(-2.0, 0.5).is_nan());
        assert!(go_pow(-2.0, 1.5).is_nan());
        assert_eq!(go_pow(2.0, 1e300), inf);
        assert_eq!(go_pow(2.0, -1e300), 0.0);
        assert_eq!(go_pow(2.0, 1024.0), inf);
        assert_eq!(go_pow(2.0, -1074.0), 5e-324);
        assert_eq!(go_pow(-2.0, 3.0), -8.0);
        assert_eq!(go_pow(4.0, 0.5), 2.0);
    }
}
