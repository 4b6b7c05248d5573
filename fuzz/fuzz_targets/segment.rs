//! Coverage-guided fuzzing of everything a collector does with a segment it
//! did not create: attach (header copy and validation), two collector
//! updates, reading every labeled series, and a Prometheus scrape.
//!
//! The first input byte picks how the rest becomes a segment image:
//! * even: the rest is the image, byte for byte;
//! * odd: the rest is a list of 12-byte patches (`u32` offset, `u64` value,
//!   little-endian) applied to a real segment with data in every region,
//!   so the fuzzer starts past the magic and explores hostile values in
//!   well-formed structure. Bit 1 also truncates the image at the first
//!   patch's value.
//!
//! Run: `cargo +nightly fuzz run segment -- -max_total_time=60` (from the
//! repository root; `.ci/run` does a bounded pass).

#![no_main]

#[path = "../../tests/common/image.rs"]
mod image;

use libfuzzer_sys::fuzz_target;
use nodestats::Exporter;
use nodestats::__testing::read_all;
use nodestats::{Access, Collector, CollectorConfig, Segment, SegmentOptions};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A file on tmpfs for this process's images, written and removed again
/// for each input.
fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("nodestats-fuzz-{}", std::process::id()))
    })
}

/// The real segment the patches apply to, built once.
fn valid() -> &'static [u8] {
    static V: OnceLock<Vec<u8>> = OnceLock::new();
    V.get_or_init(|| image::real_segment_image(&scratch().with_extension("seed")))
}

fn to_image(data: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = data.split_first() else {
        return Vec::new();
    };
    if mode & 1 == 0 {
        return rest.to_vec();
    }
    let mut img = valid().to_vec();
    let len = img.len();
    for (i, p) in rest.chunks_exact(12).enumerate() {
        let at = u32::from_le_bytes(p[..4].try_into().unwrap()) as usize % len;
        let v = u64::from_le_bytes(p[4..].try_into().unwrap());
        if i == 0 && mode & 2 != 0 {
            img.truncate(v as usize % (len + 1));
            continue;
        }
        // Aligned words hit fields; unaligned ones straddle them.
        let end = (at + 8).min(img.len());
        if at < end {
            img[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
        }
    }
    img
}

fn collect_all(seg: Segment) {
    let seg = Arc::new(seg);
    let config = CollectorConfig {
        system: None,
        ..CollectorConfig::default()
    };
    let mut c = Collector::new(seg.clone(), config).unwrap();
    let ns = c.update();
    c.update();
    let (all, _) = read_all(&seg);
    assert!(all.iter().all(|s| s.labels.len() <= 8));
    let ex = Exporter::new(seg.clone(), "node", "SERVER").unwrap();
    ex.state().publish(&ns, c.anomalies());
    let text = ex.text();
    for line in text.lines() {
        // A comment, or a metric name (declared families may have any
        // valid one) with labels and a value.
        let name = line.split(['{', ' ']).next().unwrap_or("");
        let ok_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
        assert!(
            line.starts_with('#') || (ok_name && line.contains(' ')),
            "bad exposition line {line:?}"
        );
    }
    ex.families();
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, to_image(data)).unwrap();
    let opts = SegmentOptions::new().init_wait(Duration::ZERO);
    let attached = Segment::attach_with(path.to_str().unwrap(), Access::ReadOnly, &opts);
    // libFuzzer ends the process without running destructors: remove the
    // image now, so no run leaves one behind (a mapping outlives its name).
    std::fs::remove_file(path).unwrap();
    if let Ok(seg) = attached {
        collect_all(seg);
    }
});
