//! The OpenMetrics 1.0 text format, from the same families as the text
//! 0.0.4 writer: `# TYPE`, `# UNIT`, `# HELP` per family, counters'
//! samples with `_total`, histograms' `_bucket`/`_count`/`_sum`, and
//! `# EOF` last. No `_created` samples and no timestamps: Prometheus would
//! store `_created` lines as series of their own, and every series name
//! must be the one the text format gives.

use super::exporter::{hist_count, Fam, Val};
use super::format::OpenMetricsCounters;
use super::text;
use crate::schema::Kind;
use std::collections::HashSet;

/// How one family is written: its OpenMetrics name and type, and the
/// suffix its (scalar) samples get.
struct Shape<'a> {
    name: &'a str,
    typ: &'static str,
    suffix: &'static str,
}

/// Every family with series, in OpenMetrics, ending with `# EOF`.
pub(super) fn write(fams: &[Fam], consts: &[(String, String)], how: OpenMetricsCounters) -> String {
    let live = || fams.iter().filter(|f| !f.points.is_empty());
    // Every sample name of the text format (and a histogram's `_created`),
    // which a counter's OpenMetrics name must not take.
    let mut taken: HashSet<String> = HashSet::new();
    for f in live() {
        taken.insert(f.name.to_string());
        if f.kind == Kind::Histogram {
            for s in ["_bucket", "_count", "_sum", "_created"] {
                taken.insert(format!("{}{s}", f.name));
            }
        }
    }
    let points: usize = live().map(|f| f.points.len() * (f.bounds.len() + 3)).sum();
    let mut out = String::with_capacity(4096 + points * 160);
    for f in live() {
        let shape = shape(f, how, &taken);
        out.push_str("# TYPE ");
        out.push_str(shape.name);
        out.push(' ');
        out.push_str(shape.typ);
        out.push('\n');
        if !f.unit.is_empty()
            && shape
                .name
                .strip_suffix(&*f.unit)
                .is_some_and(|n| n.ends_with('_'))
        {
            out.push_str("# UNIT ");
            out.push_str(shape.name);
            out.push(' ');
            out.push_str(&f.unit);
            out.push('\n');
        }
        out.push_str("# HELP ");
        out.push_str(shape.name);
        out.push(' ');
        text::escape(&mut out, &f.help, true);
        out.push('\n');
        let les: Vec<String> = f
            .bounds
            .iter()
            .map(|b| crate::gofloat::format_go_g(*b))
            .collect();
        for p in &f.points {
            let pairs = f.pairs(consts, p);
            match &p.val {
                Val::Scalar(v) => {
                    text::sample(&mut out, shape.name, shape.suffix, &pairs, None, *v)
                }
                Val::Hist(buckets, sum, native) => {
                    let line = |out: &mut String, suffix, le, v| {
                        text::sample(out, shape.name, suffix, &pairs, le, v)
                    };
                    // OpenMetrics 1.0 has no native buckets: the classic
                    // ones (if declared) and the count, as the text has.
                    let mut cum = 0u64;
                    for (le, c) in les.iter().zip(buckets) {
                        cum = cum.saturating_add(*c);
                        line(&mut out, "_bucket", Some(le), cum as f64);
                    }
                    let count = hist_count(&f.bounds, buckets, native.as_ref());
                    line(&mut out, "_bucket", Some("+Inf"), count as f64);
                    line(&mut out, "_count", None, count as f64);
                    line(&mut out, "_sum", None, *sum);
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// How `f` is written. A counter named `x_total` is the OpenMetrics
/// counter `x`; one named otherwise follows `how`. A counter whose
/// OpenMetrics names would clash with another family's sample names is
/// written as `unknown` under its own name.
fn shape<'a>(f: &'a Fam, how: OpenMetricsCounters, taken: &HashSet<String>) -> Shape<'a> {
    let own = |typ| Shape {
        name: &f.name,
        typ,
        suffix: "",
    };
    match f.kind {
        Kind::Gauge => own("gauge"),
        Kind::Histogram => own("histogram"),
        Kind::Counter => {
            let base = match f.name.strip_suffix("_total") {
                Some(base) => Some(base),
                None if how == OpenMetricsCounters::Total
                    && !taken.contains(&format!("{}_total", f.name)) =>
                {
                    Some(&*f.name)
                }
                None => None,
            };
            match base {
                Some(base)
                    if (base == f.name || !taken.contains(base))
                        && !taken.contains(&format!("{base}_created")) =>
                {
                    Shape {
                        name: base,
                        typ: "counter",
                        suffix: "_total",
                    }
                }
                _ => own("unknown"),
            }
        }
    }
}
