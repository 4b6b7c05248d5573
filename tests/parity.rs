//! Scrapes match LiveKit's byte for byte where Go's float code shows:
//! every histogram family's `le` labels, in order, equal the strings
//! client_golang prints for LiveKit (`tests/data/livekit-le-strings.json`,
//! a copy of the reference), including the three `ExponentialBucketsRange`
//! families whose bounds depend on Go's `math.Pow`.

use nodestats::{Exporter, Kind};
use nodestats::{Family, Stats};
use std::collections::BTreeMap;

fn reference() -> BTreeMap<String, Vec<String>> {
    serde_json::from_str(include_str!("data/livekit-le-strings.json")).unwrap()
}

/// family name -> the `le` values of each of its series, in scrape order.
fn scraped_les(text: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    let mut current: Option<(String, String)> = None; // (family, other labels)
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once("_bucket{") else {
            continue;
        };
        let labels = rest.rsplit_once('}').unwrap().0;
        let (others, le) = labels.rsplit_once(",le=\"").unwrap();
        let le = le.strip_suffix('"').unwrap().to_string();
        let key = (name.to_string(), others.to_string());
        let series = out.entry(name.to_string()).or_default();
        if current.as_ref() != Some(&key) {
            series.push(Vec::new());
            current = Some(key);
        }
        series.last_mut().unwrap().push(le);
    }
    out
}

#[test]
fn every_histograms_le_strings_equal_livekits() {
    let stats = Stats::anonymous().unwrap();
    let histograms: Vec<Family> = Family::ALL
        .into_iter()
        .filter(|f| f.def().kind == Kind::Histogram)
        .collect();
    for (i, f) in histograms.iter().enumerate() {
        let labels: Vec<String> = (0..f.def().labels.len())
            .map(|j| format!("v{i}_{j}"))
            .collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let h = stats.series(*f, &labels).unwrap();
        h.observe(1.0);
        h.observe(1e12);
    }
    let text = Exporter::new(stats.segment().clone(), "ND_parity", "SERVER")
        .unwrap()
        .text();
    let got = scraped_les(&text);
    let want = reference();
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the histogram families"
    );
    for (name, les) in &want {
        let mut expected = les.clone();
        expected.push("+Inf".to_string());
        for series in &got[name] {
            assert_eq!(series, &expected, "{name}");
        }
    }
}

#[test]
fn exponential_range_bounds_are_bit_identical() {
    // What LiveKit's ExponentialBucketsRange definitions compute with Go.
    for (f, min, max) in [
        (Family::SessionJoinLatencyMs, 10.0, 10_000.0),
        (Family::SessionStartTimeMs, 100.0, 10_000.0),
        (Family::SessionDurationMs, 100.0, 4.0 * 60.0 * 60.0 * 1000.0),
    ] {
        let (bounds, n) = f.def().buckets.bounds();
        let go = nodestats::__testing::exponential_buckets_range(min, max, 15);
        let bits = |v: &[f64]| v.iter().map(|b| b.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&bounds[..n]), bits(&go), "{}", f.def().name);
        let strings: Vec<String> = go
            .iter()
            .map(|b| nodestats::__testing::format_go_g(*b))
            .collect();
        assert_eq!(strings, reference()[f.def().name], "{}", f.def().name);
    }
}
