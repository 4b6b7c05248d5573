//! SEGMENT.md §8 and §8a as a contract: a reader written from the spec
//! alone — header words, the family directory's control block and entries,
//! the name hash and probe sequence, series entries naming `0x8000 + k`,
//! label strings and the value blocks — finds every declared family and
//! its values in the raw bytes of a segment file, exactly as the library
//! wrote them. Nothing here calls the library's readers.

mod common;

use nodestats::{FamilySpec, SegmentOptions, Stats};

/// Little-endian u64 word at byte `at`.
fn w(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn text(b: &[u8], at: usize, len: usize) -> String {
    String::from_utf8(b[at..at + len].to_vec()).expect("UTF-8")
}

/// 64-bit FNV-1a, as §8a gives it.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &c in s.as_bytes() {
        h ^= c as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A declared family as §8a lays it out.
#[derive(Debug, PartialEq)]
struct Family {
    entry: usize,
    name: String,
    help: String,
    kind: u64,
    unit: String,
    labels: Vec<String>,
    bounds: Vec<f64>,
    max_series: u64,
    overflow_entry: u64,
}

fn families(b: &[u8]) -> Vec<Family> {
    let (offset, cap) = (w(b, 29 * 8) as usize, w(b, 30 * 8) as usize);
    assert!(cap > 0, "a 2.2 segment has a family directory");
    let mut out = Vec::new();
    for k in 0..cap {
        let e = offset + 1024 + 2048 * k;
        let state = w(b, e);
        if state & 0xff != 2 {
            continue;
        }
        let shape = w(b, e + 8);
        let (nl, nb) = (
            ((shape >> 8) & 0xff) as usize,
            ((shape >> 16) & 0xff) as usize,
        );
        let (name_len, unit_len) = (
            ((shape >> 32) & 0xff) as usize,
            ((shape >> 40) & 0xff) as usize,
        );
        let name = text(b, e + 64 * 8, name_len);
        // The state carries the top 40 bits of the name's hash, and the
        // entry lies on the name's probe sequence with no free entry
        // before it.
        let h = fnv1a(&name);
        assert_eq!(state >> 24, h >> 24, "hash bits of {name}");
        let home = (h % cap as u64) as usize;
        let mut p = home;
        while p != k {
            assert_ne!(
                w(b, offset + 1024 + 2048 * p),
                0,
                "free entry before {name}"
            );
            p = (p + 1) % cap;
        }
        let lens = w(b, e + 5 * 8);
        out.push(Family {
            entry: k,
            help: text(b, e + 148 * 8, w(b, e + 2 * 8) as usize),
            kind: shape & 0xff,
            unit: text(b, e + 80 * 8, unit_len),
            labels: (0..nl)
                .map(|i| text(b, e + (84 + 8 * i) * 8, ((lens >> (8 * i)) & 0xff) as usize))
                .collect(),
            bounds: (0..nb)
                .map(|i| f64::from_bits(w(b, e + (16 + i) * 8)))
                .collect(),
            max_series: w(b, e + 3 * 8),
            overflow_entry: w(b, e + 4 * 8),
            name,
        });
    }
    out
}

/// The label strings of §8's intern table.
fn string(b: &[u8], id: u32) -> String {
    let (series, cap) = (w(b, 16 * 8) as usize, w(b, 17 * 8) as usize);
    let at = series + 128 + 64 * cap + 72 * id as usize;
    let st = w(b, at);
    assert_eq!(st & 0xff, 2, "string {id} is published");
    text(b, at + 8, (st >> 8) as usize)
}

/// Every published series of family index `family`: label values and, per
/// value word, that word in every value block (§8).
fn series(b: &[u8], family: u64) -> Vec<(Vec<String>, Vec<Vec<u64>>)> {
    let series = w(b, 16 * 8) as usize;
    let cap = w(b, 17 * 8) as usize;
    let (values, vps) = (w(b, 19 * 8) as usize, w(b, 20 * 8) as usize);
    let blocks = w(b, 21 * 8) as usize;
    let n_series = (w(b, series) as usize).min(cap);
    let mut out = Vec::new();
    for j in 0..n_series {
        let e = series + 128 + 64 * j;
        let w1 = w(b, e + 8);
        if w(b, e) != 2 || w1 & 0xffff != family {
            continue;
        }
        let (n, nl) = (
            ((w1 >> 16) & 0xffff) as usize,
            ((w1 >> 32) & 0xffff) as usize,
        );
        let base = w(b, e + 16) as usize;
        let labels = (0..nl)
            .map(|k| {
                let word = w(b, e + (3 + k / 2) * 8);
                let id = if k % 2 == 0 {
                    word as u32
                } else {
                    (word >> 32) as u32
                };
                if id == u32::MAX {
                    "__overflow__".to_string()
                } else {
                    string(b, id)
                }
            })
            .collect();
        let words = (0..n)
            .map(|i| {
                (0..blocks)
                    .map(|blk| w(b, values + 8 * (vps * blk + base + i)))
                    .collect()
            })
            .collect();
        out.push((labels, words));
    }
    out
}

#[test]
fn a_reader_written_from_the_spec_finds_declared_families_and_their_values() {
    let dir = common::TempDir::new("spec-families");
    let path = dir.join("seg");
    let stats = Stats::open(&SegmentOptions::new().name(path.to_str().unwrap())).unwrap();
    let rooms = FamilySpec::counter("sfu_room_bytes_total", "Bytes forwarded, by room.")
        .labels(&["room", "media"])
        .max_series(3);
    let delay = FamilySpec::histogram(
        "sfu_forward_delay_seconds",
        "Forward delay.",
        &[0.001, 0.01],
    )
    .unit("seconds");
    let r = stats.declare(&rooms).unwrap();
    let d = stats.declare(&delay).unwrap();
    r.series(&["blue", "video"]).unwrap().inc_by(1200);
    r.series(&["blue", "video"]).unwrap().inc_by(34);
    r.series(&["green", "audio"]).unwrap().inc_by(7);
    for room in ["a", "b", "c"] {
        // Past the cap of 3: the overflow series.
        r.series(&[room, "x"]).unwrap().inc_by(1);
    }
    let h = d.series(&[]).unwrap();
    for v in [0.0005, 0.002, 0.003, 5.0] {
        h.observe(v);
    }

    let b = std::fs::read(&path).unwrap();
    assert_eq!((w(&b, 8), w(&b, 16)), (2, 3), "layout 2.3");
    let mut fams = families(&b);
    fams.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(fams.len(), 2, "{fams:?}");
    let (f_delay, f_rooms) = (&fams[0], &fams[1]);
    assert_eq!(
        (f_rooms.name.as_str(), f_rooms.help.as_str(), f_rooms.kind),
        ("sfu_room_bytes_total", "Bytes forwarded, by room.", 0)
    );
    assert_eq!(f_rooms.labels, ["room", "media"]);
    assert_eq!(f_rooms.max_series, 3);
    assert_eq!(
        (f_delay.kind, f_delay.unit.as_str(), f_delay.bounds.clone()),
        (2, "seconds", vec![0.001, 0.01])
    );
    assert_eq!(d.id().index() as usize, 0x8000 + f_delay.entry);

    // Counts add their words over the blocks as integers.
    let count = |words: &Vec<u64>| words.iter().fold(0u64, |a, v| a.wrapping_add(*v));
    let strs = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    // The counter family's series, by label strings; the overflow series
    // is the entry the family names.
    let mut got: Vec<(Vec<String>, u64)> = series(&b, 0x8000 + f_rooms.entry as u64)
        .into_iter()
        .map(|(l, words)| (l, count(&words[0])))
        .collect();
    got.sort();
    let want = vec![
        (strs(&["__overflow__", "__overflow__"]), 2),
        (strs(&["a", "x"]), 1),
        (strs(&["blue", "video"]), 1234),
        (strs(&["green", "audio"]), 7),
    ];
    assert_eq!(
        got, want,
        "three series fit the cap; two label sets overflowed"
    );
    let overflow = f_rooms.overflow_entry as usize;
    let e = w(&b, 16 * 8) as usize + 128 + 64 * overflow;
    assert_eq!(w(&b, e + 8) & 0xffff, 0x8000 + f_rooms.entry as u64);
    // Control block and entry words: the cap's overflow count.
    let fo = w(&b, 29 * 8) as usize;
    assert_eq!(w(&b, fo + 1024 + 2048 * f_rooms.entry + 7 * 8), 2);
    assert_eq!(w(&b, fo + 8), nodestats::DEFAULT_LIVEKIT_MAX_SERIES as u64);

    // The histogram: two bounds, +Inf, then the sum, whose per-block words
    // are f64 bits added as floats. (Its one series, without labels, is
    // the family's overflow entry.)
    let hist = series(&b, 0x8000 + f_delay.entry as u64);
    assert_eq!(hist.len(), 1, "{hist:?}");
    let (labels, words) = &hist[0];
    assert!(labels.is_empty());
    let buckets: Vec<u64> = words[..3].iter().map(count).collect();
    assert_eq!(buckets, [1, 2, 1]);
    let sum: f64 = words[3].iter().map(|w| f64::from_bits(*w)).sum();
    assert!(
        (sum - (0.0005 + 0.002 + 0.003 + 5.0)).abs() < 1e-12,
        "{sum}"
    );
}

/// SEGMENT.md lists the `exp` families' bounds as decimals; they are the
/// library's bounds, bit for bit.
#[test]
fn the_specs_exp_bounds_are_the_librarys() {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SEGMENT.md")).unwrap();
    let mut checked = 0;
    for f in nodestats::FAMILIES.iter() {
        let short = f.name.strip_prefix("livekit_").unwrap();
        let Some(line) = spec
            .lines()
            .find_map(|l| l.strip_prefix(&format!("- `{short}`: ")))
        else {
            continue;
        };
        let listed: Vec<u64> = line
            .split(", ")
            .map(|v| v.parse::<f64>().unwrap().to_bits())
            .collect();
        let (b, n) = f.buckets.bounds();
        let lib: Vec<u64> = b[..n].iter().map(|v| v.to_bits()).collect();
        assert_eq!(listed, lib, "{}", f.name);
        checked += 1;
    }
    assert_eq!(
        checked, 3,
        "SEGMENT.md lists the bounds of the three exp families"
    );
}
