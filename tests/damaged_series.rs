//! A series entry whose labels cannot be trusted (a label id past the
//! string table, or a string that is not UTF-8) is skipped by every reader,
//! as SEGMENT.md §8 says: NodeStats (`show`, `/stats`) must not count
//! country traffic that `/metrics` drops as corrupt.

mod common;

use nodestats::{
    Access, Counter, Direction, Exporter, Family, Segment, SegmentOptions, Stats, Totals,
};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

fn word(b: &[u8], w: usize) -> u64 {
    u64::from_le_bytes(b[8 * w..8 * w + 8].try_into().unwrap())
}

/// A directory entry: index, family, label ids.
type Entry = (usize, u64, Vec<u32>);

/// The directory entries past the overflow series, and the offsets of the
/// directory and the string table, from the raw bytes of the segment file
/// at `path` (SEGMENT.md §3, §8).
fn entries(path: &std::path::Path) -> (Vec<Entry>, usize, usize) {
    let b = std::fs::read(path).unwrap();
    let (series, cap) = (word(&b, 16) as usize, word(&b, 17) as usize);
    let dir = series + 128;
    let n = (u64::from_le_bytes(b[series..series + 8].try_into().unwrap()) as usize).min(cap);
    let mut out = Vec::new();
    for j in 49..n {
        let e = dir + 64 * j;
        let w1 = u64::from_le_bytes(b[e + 8..e + 16].try_into().unwrap());
        let nl = ((w1 >> 32) & 0xffff) as usize;
        let ids = (0..nl)
            .map(|k| {
                let w = u64::from_le_bytes(
                    b[e + 24 + 8 * (k / 2)..e + 32 + 8 * (k / 2)]
                        .try_into()
                        .unwrap(),
                );
                (w >> (32 * (k % 2))) as u32
            })
            .collect();
        out.push((j, w1 & 0xffff, ids));
    }
    (out, dir, dir + 64 * cap)
}

/// Incoming initial packets, bytes and incoming NACKs as NodeStats counts
/// them and as `/metrics` does (every country's sample, the fixed one
/// included).
fn both_views(seg: &Arc<Segment>) -> ([u64; 3], [u64; 3]) {
    let t = Totals::read(seg);
    let nodestats = [
        t.get(Counter::PacketsInInitial),
        t.get(Counter::BytesInInitial),
        t.get(Counter::NackIn),
    ];
    let mut metrics = [0u64; 3];
    let text = Exporter::new(seg.clone(), "n", "SERVER").unwrap().text();
    for line in text.lines() {
        let i = if line.starts_with("livekit_packet_total{") {
            0
        } else if line.starts_with("livekit_packet_bytes{") {
            1
        } else if line.starts_with("livekit_nack_total{") {
            2
        } else {
            continue;
        };
        if !line.contains(r#"direction="incoming""#)
            || (i < 2 && !line.contains(r#"transmission="initial""#))
        {
            continue;
        }
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        metrics[i] += v as u64;
    }
    (nodestats, metrics)
}

#[test]
fn nodestats_skips_the_country_series_the_exporter_skips() {
    let dir = common::TempDir::new("damaged-series");
    let path = dir.join("seg");
    let name = path.to_str().unwrap();
    let stats = Stats::open(&SegmentOptions::new().name(name)).unwrap();
    stats.record_packets(Direction::Incoming, 1, 100, false);
    for (country, k) in [("SE", 1u64), ("DE", 10), ("FR", 100)] {
        stats.record_packets_country(country, Direction::Incoming, 5 * k, 6000 * k, false);
        stats.record_rtcp_country(country, Direction::Incoming, 2 * k as u32, 0, 0);
    }
    let seg = Arc::new(Segment::attach(name, Access::ReadOnly).unwrap());
    assert_eq!(both_views(&seg), ([556, 666_100, 222], [556, 666_100, 222]));

    // Damage: every DE entry names a string past the table's end, and the
    // FR string's bytes stop being UTF-8.
    let (ents, dir_at, strings) = entries(&path);
    let b = std::fs::read(&path).unwrap();
    let string_of = |id: u32| {
        let at = strings + 72 * id as usize;
        let len = (word(&b[at..], 0) >> 8) as usize;
        b[at + 8..at + 8 + len].to_vec()
    };
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let media = [Family::PacketTotal, Family::PacketBytes, Family::NackTotal];
    let mut damaged = 0;
    for (j, family, ids) in &ents {
        if !media.iter().any(|f| *f as u64 == *family) {
            continue;
        }
        let country = *ids.last().unwrap();
        let e = dir_at + 64 * j;
        let label_word = 3 + (ids.len() - 1) / 2;
        let shift = 32 * ((ids.len() - 1) % 2);
        if string_of(country) == b"DE" {
            let old = word(&b[e..], label_word);
            let new = (old & !(0xffff_ffffu64 << shift)) | (60_000u64 << shift);
            file.write_all_at(&new.to_le_bytes(), (e + 8 * label_word) as u64)
                .unwrap();
            damaged += 1;
        } else if string_of(country) == b"FR" {
            let at = strings + 72 * country as usize + 8;
            file.write_all_at(&[0xff], at as u64).unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 6, "DE's and FR's three entries each");
    let (nodestats, metrics) = both_views(&seg);
    assert_eq!(metrics, [6, 6_100, 2], "the exporter keeps only SE's");
    assert_eq!(nodestats, metrics, "NodeStats agrees with /metrics");
}
