//! The Prometheus text exposition format (version 0.0.4), written straight
//! into a `String`: a family's `# HELP`/`# TYPE` header and its samples,
//! with help and label values escaped as the format wants. The `le` label
//! values come to it already formatted (Go's `%g`, as client_golang prints
//! them).

use crate::schema::Kind;
use std::fmt::Write;

/// Writes `# HELP` and `# TYPE` for a family.
pub(crate) fn family_header(out: &mut String, name: &str, help: &str, kind: Kind) {
    let kind = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
    };
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape(out, help, false);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// Writes one sample line: `name` + `suffix`, the label pairs (already
/// sorted) and `le` if given, then the value.
pub(crate) fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    pairs: &[(&str, &str)],
    le: Option<&str>,
    v: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !pairs.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (n, val) in pairs.iter().copied().chain(le.map(|l| ("le", l))) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(n);
            out.push_str("=\"");
            escape(out, val, true);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", Display(v));
}

/// Prometheus' rendering of a sample value.
struct Display(f64);

impl std::fmt::Display for Display {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            write!(f, "{v}")
        }
    }
}

/// Escapes help text (`\` and newline) or a label value (also `"`).
pub(super) fn escape(out: &mut String, s: &str, quote: bool) {
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}
