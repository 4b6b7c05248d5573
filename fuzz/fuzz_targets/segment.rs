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

use libfuzzer_sys::fuzz_target;
use nodestats::prom::Exporter;
use nodestats::{
    series, Access, Collector, CollectorConfig, Direction, Family, Segment, SegmentOptions, Stats,
};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A file on tmpfs for this process's images.
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

/// A real segment (1 shard, 2 writer slots) with packets, gauges, a counter
/// series and a histogram series, as bytes.
fn valid() -> &'static [u8] {
    static V: OnceLock<Vec<u8>> = OnceLock::new();
    V.get_or_init(|| {
        let p = scratch().with_extension("seed");
        let _ = std::fs::remove_file(&p);
        let opts = SegmentOptions::new()
            .name(p.to_str().unwrap())
            .shards(1)
            .writer_slots(2);
        let w = Stats::open(&opts).unwrap();
        w.record_packets(Direction::Incoming, 10, 12_000, false);
        w.record_rtcp(Direction::Outgoing, 3, 1, 0);
        w.room_started();
        w.participant_added();
        w.series(Family::NackTotal, &["incoming", "FR"])
            .unwrap()
            .inc_by(4);
        w.series(Family::RttMs, &["outgoing", "CAMERA", "VIDEO", "x"])
            .unwrap()
            .observe(33.0);
        let bytes = std::fs::read(&p).unwrap();
        drop(w);
        std::fs::remove_file(&p).unwrap();
        bytes
    })
}

fn image(data: &[u8]) -> Vec<u8> {
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
    let (all, _) = series::read_all(&seg);
    assert!(all.iter().all(|s| s.labels.len() <= 8));
    let ex = Exporter::new(seg.clone(), "node", "SERVER").unwrap();
    ex.state().publish(&ns, c.anomalies());
    let text = ex.text();
    for line in text.lines() {
        assert!(
            line.starts_with('#') || line.starts_with("livekit_") || line.starts_with("nodestats_"),
            "bad exposition line {line:?}"
        );
    }
    ex.families();
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, image(data)).unwrap();
    let opts = SegmentOptions::new().init_wait(Duration::ZERO);
    if let Ok(seg) = Segment::attach_with(path.to_str().unwrap(), Access::ReadOnly, &opts) {
        collect_all(seg);
    }
});
