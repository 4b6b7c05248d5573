//! SEGMENT.md Appendix A, generated from the code: which NodeStats fields
//! and which `/metrics` samples each fixed counter and gauge feeds.
//!
//! The map is found by experiment, not copied from the readers: in a
//! segment file, one counter (or gauge) at a time is set to a value through
//! the file's bytes (SEGMENT.md §6, §7), and a fresh collector and exporter
//! read it; every NodeStats field and every `livekit_` sample that is not
//! zero comes from that counter. The test renders the table and fails if
//! SEGMENT.md's differs; `NODESTATS_BLESS=1` writes it instead.

mod common;

use nodestats::{
    Collector, CollectorConfig, Counter, Exporter, Gauge, Segment, SegmentOptions, Stats, COUNTERS,
};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// `(index, name)` of every fixed counter; the compiler checks the names.
macro_rules! named {
    ($ty:ident: $($n:ident),* $(,)?) => {
        [$(($ty::$n as usize, stringify!($n))),*]
    };
}

const COUNTER_NAMES: [(usize, &str); 51] = named![Counter:
    PacketsInInitial, BytesInInitial, PacketsInRetransmit, BytesInRetransmit,
    PacketsOutInitial, BytesOutInitial, PacketsOutRetransmit, BytesOutRetransmit,
    NackIn, NackOut, PliIn, PliOut, FirIn, FirOut,
    ParticipantSignalConnected, ParticipantJoinFailed, ParticipantJoinValidationFailed,
    ParticipantJoinUpgradeFailed, ParticipantJoinWriteInitialResponseFailed,
    ParticipantRtcInit, ParticipantRtcConnected, ParticipantRtcActive, ParticipantRtcActiveWarp,
    ParticipantRtcCanceled, ParticipantRtcCanceledWarp, ParticipantRtcSuccess,
    ParticipantRtcSuccessWarp, ParticipantRtcFailure, ParticipantRtcFailureWarp,
    TrackPublishAttemptsAudio, TrackPublishAttemptsVideo, TrackPublishAttemptsData,
    TrackPublishSuccessAudio, TrackPublishSuccessVideo, TrackPublishSuccessData,
    TrackPublishCancelsAudio, TrackPublishCancelsVideo, TrackPublishCancelsData,
    TrackSubscribeAttempts, TrackSubscribeSuccess, TrackSubscribeCancels,
    TrackSubscribeFailures, TrackSubscribeUserErrors,
    RoomsStarted, RoomsEnded, ParticipantsAdded, ParticipantsRemoved,
    TracksPublished, TracksUnpublished, TracksSubscribed, TracksUnsubscribed,
];

const GAUGE_NAMES: [(usize, &str); 13] = named![Gauge:
    Rooms, Participants, TracksPublishedAudio, TracksPublishedVideo, TracksPublishedData,
    TracksSubscribedAudio, TracksSubscribedVideo, TracksSubscribedData,
    ConnectionsIncoming, ConnectionsOutgoing, ForwardLatencyNs, ForwardJitterNs, ForwardSet,
];

fn word(b: &[u8], w: usize) -> usize {
    u64::from_le_bytes(b[8 * w..8 * w + 8].try_into().unwrap()) as usize
}

/// What one reading shows: the NodeStats fields that are not zero (by
/// their JSON names) and the `livekit_` samples that are not zero
/// (without the exporter's `node_id` and `node_type` labels).
fn nonzero(name: &str, seg: &Arc<Segment>) -> (Vec<String>, Vec<String>) {
    let cfg = CollectorConfig {
        system: None,
        ..CollectorConfig::default()
    };
    let ns = Collector::attach(name, cfg).unwrap().update();
    let json = serde_json::to_value(&ns).unwrap();
    let ignore = [
        "started_at",
        "updated_at",
        "segment_id",
        "live_writers",
        "rates",
    ];
    let fields = json
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| !ignore.contains(&k.as_str()) && v.as_f64().is_some_and(|x| x != 0.0))
        .map(|(k, _)| k.clone())
        .collect();
    let text = Exporter::new(seg.clone(), "n", "SERVER").unwrap().text();
    let samples = text
        .lines()
        .filter(|l| l.starts_with("livekit_") && !l.ends_with(" 0"))
        .map(|l| {
            let sample = l.rsplit_once(' ').unwrap().0;
            let Some((metric, labels)) = sample.split_once('{') else {
                return sample.to_string();
            };
            let kept: Vec<&str> = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|p| !p.starts_with("node_id=") && !p.starts_with("node_type="))
                .collect();
            match kept.is_empty() {
                true => metric.to_string(),
                false => format!("{metric}{{{}}}", kept.join(",")),
            }
        })
        .collect();
    (fields, samples)
}

fn code(items: &[String]) -> String {
    if items.is_empty() {
        return "—".to_string();
    }
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The appendix as the code behaves.
fn appendix() -> String {
    let dir = common::TempDir::new("spec-fixed-map");
    let path = dir.join("seg");
    let name = path.to_str().unwrap();
    let stats = Stats::open(&SegmentOptions::new().name(name).shards(2)).unwrap();
    let seg = Arc::new(Segment::attach(name, nodestats::Access::ReadOnly).unwrap());
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let b = std::fs::read(&path).unwrap();
    let (shards, slots) = (word(&b, 12), word(&b, 15));
    let slot = slots + 256 * stats.writer_slot();
    let put = |at: usize, v: u64| file.write_all_at(&v.to_le_bytes(), at as u64).unwrap();

    let mut out = String::new();
    out.push_str("| Counter | NodeStats fields | `/metrics` samples |\n|---|---|---|\n");
    let names: BTreeMap<usize, &str> = COUNTER_NAMES.iter().copied().collect();
    assert_eq!(names.len(), 51, "every counter named once");
    for i in 0..COUNTERS {
        // Shard 1, so that nothing depends on which shard a writer used.
        put(shards + 512 + 8 * i, 7);
        let (fields, samples) = nonzero(name, &seg);
        put(shards + 512 + 8 * i, 0);
        match names.get(&i) {
            Some(n) => out.push_str(&format!(
                "| {i} `{n}` | {} | {} |\n",
                code(&fields),
                code(&samples)
            )),
            None => assert!(
                fields.is_empty() && samples.is_empty(),
                "unused counter {i} feeds {fields:?} {samples:?}"
            ),
        }
    }
    out.push_str(
        "\n| Gauge (slot word) | NodeStats fields | `/metrics` samples |\n|---|---|---|\n",
    );
    for (g, n) in GAUGE_NAMES {
        // Latency and jitter count only with their bit of gauge 12 set.
        let flag = match g {
            10 => 1,
            11 => 2,
            _ => 0,
        };
        put(slot + 8 * (4 + g), 7);
        put(slot + 8 * 16, flag);
        let (fields, samples) = nonzero(name, &seg);
        put(slot + 8 * (4 + g), 0);
        put(slot + 8 * 16, 0);
        let note = match g {
            10 | 11 => format!(" (with bit {} of gauge 12)", flag - 1),
            12 => " (flags: bit 0 latency set, bit 1 jitter set)".to_string(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "| {g} `{n}` ({}){note} | {} | {} |\n",
            4 + g,
            code(&fields),
            code(&samples)
        ));
    }
    drop(stats);
    out
}

const BEGIN: &str = "<!-- BEGIN generated by tests/spec_fixed_map.rs -->\n";
const END: &str = "<!-- END generated -->\n";

#[test]
fn segment_md_appendix_a_is_what_the_readers_do() {
    let table = appendix();
    let spec_path = concat!(env!("CARGO_MANIFEST_DIR"), "/SEGMENT.md");
    let spec = std::fs::read_to_string(spec_path).unwrap();
    let (Some(a), Some(z)) = (spec.find(BEGIN), spec.find(END)) else {
        panic!("SEGMENT.md has no generated Appendix A block");
    };
    let current = &spec[a + BEGIN.len()..z];
    if std::env::var_os("NODESTATS_BLESS").is_some() {
        let new = format!("{}{BEGIN}{table}{}", &spec[..a], &spec[z..]);
        std::fs::write(spec_path, new).unwrap();
        return;
    }
    assert_eq!(
        current, table,
        "SEGMENT.md Appendix A differs from what the readers do; rerun with NODESTATS_BLESS=1 and review the diff"
    );
}
