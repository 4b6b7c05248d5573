//! Load averages from `proc/loadavg`.

use super::read::read_required;
use std::path::Path;

/// Reads the 1, 5 and 15 minute load averages.
pub(crate) fn read_loadavg(path: &Path, buf: &mut String, errors: &mut u64) -> Option<[f64; 3]> {
    if !read_required(path, buf, errors) {
        return None;
    }
    let parsed = parse_loadavg(buf);
    if parsed.is_none() {
        *errors += 1;
    }
    parsed
}

/// Parses `"0.52 0.58 0.59 1/467 12345"`.
// Ours, not procfs's `LoadAverage`: that one stores `f32`, so the kernel's
// "0.52" comes back as 0.5199999809265137 (the fixtures expect 0.52), it also
// requires the `running/total` and last-pid fields we do not use, and it is
// slower (figures: benches/README.md).
pub(crate) fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_ascii_whitespace();
    let mut out = [0.0; 3];
    for slot in &mut out {
        let v: f64 = it.next()?.parse().ok()?;
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        *slot = v;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::parse_loadavg;

    #[test]
    fn forms() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/467 12345\n"),
            Some([0.52, 0.58, 0.59])
        );
        assert_eq!(parse_loadavg("0.52 0.58"), None);
        assert_eq!(parse_loadavg("0.52 x 0.59"), None);
        assert_eq!(parse_loadavg("NaN 1 1"), None);
        assert_eq!(parse_loadavg("-1 1 1"), None);
    }
}
