//! SEGMENT.md as a contract, both ways.
//!
//! * `spec::read` is a reader written from SEGMENT.md alone: it validates
//!   the header as §10 says, sums shards and thread rows (§6, §7a), merges
//!   live writers' gauges (§7), reads the family directory (§8a) and the
//!   labeled series with their value blocks and row slots (§8, §7a),
//!   native histograms' words (§8b), and
//!   folds the media series into the counters (§8 step 5). It imports
//!   nothing of the crate; LiveKit's family table it takes from SEGMENT.md's
//!   own table, parsed at run time.
//! * `golden::image` is a writer written from SEGMENT.md alone: it builds
//!   `tests/data/golden-2.2.seg`, a small segment with known values in every
//!   region (two shards, a live and a dead writer, an owned and a free
//!   thread row with series slots, LiveKit and declared series, a series
//!   registered twice, a label value interned twice, an entry claimed and
//!   never published, histograms in blocks and overflow series). The
//!   committed file must be what it builds, byte for byte; run with
//!   `NODESTATS_BLESS=1` to write it after a deliberate change.
//!
//! The tests read the golden image and live segments written by the crate
//! with varied options (more than 16 shards, thread rows and thread
//! series, declared families, several writers) with both the spec reader
//! and the crate's readers (`Totals`, the series reader, the exporter) and
//! compare every value; on the golden image also `nodestats show --json`,
//! against the NodeStats fields SEGMENT.md Appendix A derives. Where they disagree, SEGMENT.md is wrong or the
//! code is: the spec is the contract.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;
use std::path::Path;

/// SEGMENT.md, read at run time.
fn spec_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SEGMENT.md")).unwrap()
}

/// Little-endian `u64` word at byte `at`.
fn w(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

const COUNTER: u8 = 0;
const GAUGE: u8 = 1;
const HISTOGRAM: u8 = 2;
const OVERFLOW: u32 = u32::MAX;

/// One row of §8's table of LiveKit's families.
#[derive(Clone, Debug)]
struct LiveKit {
    name: String,
    kind: u8,
    labels: Vec<String>,
    bounds: Vec<f64>,
}

impl LiveKit {
    /// §8: a counter has one value word, a gauge one per writer slot, a
    /// histogram its bounds + 2.
    fn values(&self, slots: usize) -> usize {
        match self.kind {
            COUNTER => 1,
            GAUGE => slots,
            _ => self.bounds.len() + 2,
        }
    }
}

/// §8's family table, with the `exp` bounds from the list under it. Checks
/// the table against itself: value counts and consecutive bases for 128
/// slots.
fn livekit_families(spec: &str) -> Vec<LiveKit> {
    let mut lines = spec
        .lines()
        .skip_while(|l| !l.starts_with("| # | Name | K |"));
    lines.next().expect("§8's family table");
    lines.next();
    let mut out = Vec::new();
    let mut base = 0;
    for line in lines.take_while(|l| l.starts_with('|')) {
        let c: Vec<&str> = line.split('|').map(str::trim).collect();
        let short = c[2].trim_matches('`');
        let kind = match c[3] {
            "C" => COUNTER,
            "G" => GAUGE,
            "H" => HISTOGRAM,
            k => panic!("kind {k}"),
        };
        let labels = match c[4] {
            "—" => Vec::new(),
            l => l.split(' ').map(String::from).collect(),
        };
        let bounds: Vec<f64> = if c[7].starts_with("exp(") {
            let prefix = format!("- `{short}`: ");
            let list = spec
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("exact bounds of {short}"));
            list.split(", ").map(|v| v.parse().unwrap()).collect()
        } else {
            c[7].split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect()
        };
        let f = LiveKit {
            name: format!("livekit_{short}"),
            kind,
            labels,
            bounds,
        };
        let n: usize = c[5].split(' ').next().unwrap().parse().unwrap();
        assert_eq!(n, f.values(128), "§8 table: n of {short}");
        assert_eq!(
            c[6].parse::<usize>().unwrap(),
            base,
            "§8 table: base of {short}"
        );
        assert_eq!(c[1].parse::<usize>().unwrap(), out.len(), "§8 table: index");
        base += n;
        out.push(f);
    }
    assert_eq!(out.len(), 49, "LiveKit's 49 families");
    out
}

/// 64-bit FNV-1a (§8a).
fn fnv1a(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &c in s {
        h ^= c as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// A value as both readers report it: counters and gauges (gauges as
/// two's-complement bits), or histogram buckets (non-cumulative, +Inf last)
/// and sum.
#[derive(Clone, Debug)]
enum Val {
    Scalar(u64),
    Hist(Vec<u64>, f64),
}

impl PartialEq for Val {
    fn eq(&self, o: &Val) -> bool {
        match (self, o) {
            (Val::Scalar(a), Val::Scalar(b)) => a == b,
            // The order in which per-block sums are added is not specified.
            (Val::Hist(a, x), Val::Hist(b, y)) => {
                a == b
                    && ((x.is_nan() && y.is_nan())
                        || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0))
            }
            _ => false,
        }
    }
}

/// A declared family as §8a describes it.
#[derive(Clone, Debug, PartialEq)]
struct Declared {
    entry: usize,
    name: String,
    help: String,
    kind: u8,
    unit: String,
    labels: Vec<String>,
    bounds: Vec<f64>,
    cap: u64,
    overflow_entry: u64,
    count: u64,
    overflowed: u64,
    /// §8b: (schema, lo, span, zero threshold) of a native histogram.
    native: Option<(i8, i32, u64, f64)>,
}

/// §8b's bucket index of a finite `a > 0`, written from the text: frexp,
/// then the schema's rule (`B_j` from tests/data/native-bounds.txt).
fn native_index(s: i8, a: f64) -> i64 {
    let (mut f, mut e) = (a, 0i64);
    while f >= 1.0 {
        f /= 2.0;
        e += 1;
    }
    while f < 0.5 {
        f *= 2.0;
        e -= 1;
    }
    if s <= 0 {
        let k = e - (f == 0.5) as i64;
        let d = 1i64 << -s;
        return (k + d - 1).div_euclid(d);
    }
    let data = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/native-bounds.txt"
    ))
    .unwrap();
    let b: Vec<f64> = data
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c[0] == s.to_string())
        .map(|c| f64::from_bits(u64::from_str_radix(c[2], 16).unwrap()))
        .collect();
    let j = b.iter().position(|&bj| f <= bj / 2.0).unwrap_or(b.len());
    j as i64 + (e - 1) * (1i64 << s)
}

/// Everything a reader gets out of a segment.
#[derive(Debug, PartialEq)]
struct View {
    /// Shards + rows + the media series folded in (§8 step 5).
    counters: [u64; 64],
    /// Merged gauges of live writers, clamped at 0 (§7).
    gauges: [u64; 28],
    live_writers: u32,
    dead_writers: u32,
    forward_latency: u64,
    forward_jitter: u64,
    /// Series merged by (family name, label values).
    series: BTreeMap<(String, Vec<String>), Val>,
    strings_overflowed: u64,
    series_overflowed: u64,
    corrupt_entries: u64,
    /// Valid declared families in directory order.
    families: Vec<Declared>,
    refused: u64,
}

/// The reader written from SEGMENT.md.
mod spec {
    use super::*;

    /// §3: the header fields a reader uses.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Layout {
        pub(super) shard_count: usize,
        pub(super) shards: usize,
        pub(super) slot_count: usize,
        pub(super) slots: usize,
        pub(super) series: usize,
        pub(super) series_cap: usize,
        pub(super) strings_cap: usize,
        pub(super) values: usize,
        pub(super) vps: usize,
        pub(super) blocks: usize,
        pub(super) row_count: usize,
        pub(super) rows: usize,
        pub(super) row_series_slots: usize,
        pub(super) row_series: usize,
        pub(super) families: usize,
        pub(super) family_cap: usize,
    }

    const READY: u64 = 0x0100005944414552;
    const MAGIC: u64 = 0x5441545345444F4E;

    fn roundup128(x: u64) -> Option<u64> {
        x.checked_add(127).map(|v| v / 128 * 128)
    }

    /// §3's region check: `[offset, offset + count × stride)`.
    fn region(off: u64, count: u64, stride: u64, header: u64, size: u64) -> Option<(u64, u64)> {
        if off % 128 != 0 || off < header {
            return None;
        }
        let end = count.checked_mul(stride)?.checked_add(off)?;
        (end <= size).then_some((off, end))
    }

    /// §10 steps 2–3, in order; the error names the failing check.
    pub(super) fn validate(b: &[u8]) -> Result<Layout, String> {
        let size = b.len() as u64;
        if size < 256 {
            return Err("truncated".into());
        }
        let h = |i: usize| w(b, 8 * i);
        let bad = |what: &str| Err(format!("bad layout: {what}"));
        if h(0) != MAGIC {
            return Err(match h(0) == 0 && h(31) == 0 {
                true => "not initialized".into(),
                false => "bad magic".into(),
            });
        }
        if h(31) != READY {
            return Err("not initialized".into());
        }
        if h(1) != 2 {
            return Err("unsupported version".into());
        }
        let header = h(3);
        if header < 256 || header % 128 != 0 {
            return bad("header size");
        }
        if h(4) != size {
            return Err("size mismatch".into());
        }
        if h(8) > 1 {
            return Err("unsupported write mode".into());
        }
        if h(10) != 512 || h(11) != 64 || h(14) != 256 || h(24) != 512 {
            return bad("strides");
        }
        let shard_count = h(9);
        if !(1..=4096).contains(&shard_count) || !shard_count.is_power_of_two() {
            return bad("shard count");
        }
        let slot_count = h(13);
        if !(1..=4096).contains(&slot_count) {
            return bad("slot count");
        }
        let shards = region(h(12), shard_count, 512, header, size).ok_or("bad layout: shards")?;
        let slots = region(h(15), slot_count, 256, header, size).ok_or("bad layout: slots")?;
        let (series_cap, strings_cap) = (h(17), h(18));
        if !(49..=65536).contains(&series_cap) || !(1..=65536).contains(&strings_cap) {
            return bad("capacities");
        }
        let vps = h(20);
        if !(16..=1 << 20).contains(&vps) || !vps.is_power_of_two() {
            return bad("values per shard");
        }
        let series_bytes = roundup128(128 + 64 * series_cap + 72 * strings_cap).unwrap();
        let series = region(h(16), 1, series_bytes, header, size).ok_or("bad layout: series")?;
        let blocks = match h(21) {
            0 => shard_count,
            n => n,
        };
        if !blocks.is_power_of_two() || blocks > shard_count {
            return bad("value blocks");
        }
        let values = region(h(19), blocks, vps * 8, header, size).ok_or("bad layout: values")?;
        let row_count = h(23);
        if !(1..=4096).contains(&row_count) {
            return bad("row count");
        }
        let rows = region(h(25), row_count, 512, header, size).ok_or("bad layout: rows")?;
        let states = region(h(26), 1, roundup128(row_count * 8).unwrap(), header, size)
            .ok_or("bad layout: row states")?;
        let rss = h(27);
        if rss > 1024 {
            return bad("row series slots");
        }
        let row_series = match rss {
            0 => (size, size),
            n => region(h(28), row_count, n * 16, header, size).ok_or("bad layout: row series")?,
        };
        let family_cap = h(30);
        if family_cap > 4096 {
            return bad("family capacity");
        }
        let families = match family_cap {
            0 => (size, size),
            n => region(h(29), 1, 1024 + 2048 * n, header, size).ok_or("bad layout: families")?,
        };
        let all = [
            shards, slots, series, values, rows, states, row_series, families,
        ];
        for (i, a) in all.iter().enumerate() {
            for c in &all[i + 1..] {
                if a.0 < c.1 && c.0 < a.1 {
                    return bad("overlap");
                }
            }
        }
        Ok(Layout {
            shard_count: shard_count as usize,
            shards: shards.0 as usize,
            slot_count: slot_count as usize,
            slots: slots.0 as usize,
            series: series.0 as usize,
            series_cap: series_cap as usize,
            strings_cap: strings_cap as usize,
            values: values.0 as usize,
            vps: vps as usize,
            blocks: blocks as usize,
            row_count: row_count as usize,
            rows: rows.0 as usize,
            row_series_slots: rss as usize,
            row_series: row_series.0 as usize,
            families: families.0 as usize,
            family_cap: family_cap as usize,
        })
    }

    fn is_metric_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }

    fn is_label_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
    }

    fn text(b: &[u8], at: usize, len: usize) -> Option<String> {
        String::from_utf8(b[at..at + len].to_vec()).ok()
    }

    /// §8a Reading: the valid published entries, and how many are corrupt.
    fn families(b: &[u8], l: &Layout) -> (Vec<Declared>, u64) {
        let mut out: Vec<Declared> = Vec::new();
        let mut corrupt = 0;
        for k in 0..l.family_cap {
            let e = l.families + 1024 + 2048 * k;
            if w(b, e) & 0xff != 2 {
                continue;
            }
            match entry(b, e, k) {
                Some(f) if !out.iter().any(|o| o.name == f.name) => out.push(f),
                _ => corrupt += 1,
            }
        }
        (out, corrupt)
    }

    fn entry(b: &[u8], e: usize, k: usize) -> Option<Declared> {
        let word = |i: usize| w(b, e + 8 * i);
        let shape = word(1);
        let kind = (shape & 0xff) as u8;
        let nl = ((shape >> 8) & 0xff) as usize;
        let nb = ((shape >> 16) & 0xff) as usize;
        let name_len = ((shape >> 32) & 0xff) as usize;
        let unit_len = ((shape >> 40) & 0xff) as usize;
        let help_len = word(2) as usize;
        // §8a word 8 (§8b): 0, or flag, schema and span with every other
        // bit 0; words 9-10 then.
        let native = match word(8) {
            0 => None,
            n => {
                let (schema, span, lo) = ((n >> 8) as u8 as i8, n >> 32, word(9) as u32 as i32);
                let z = f64::from_bits(word(10));
                if n & 1 == 0
                    || n & 0xffff_00fe != 0
                    || word(9) >> 32 != 0
                    || kind != HISTOGRAM
                    || !(-4..=8).contains(&schema)
                    || !(1..=2048).contains(&span)
                    || (lo as i64) < native_index(schema, f64::MIN_POSITIVE)
                    || lo as i64 + span as i64 > native_index(schema, f64::MAX)
                    || !(z.is_finite() && z >= 0.0)
                {
                    return None;
                }
                Some((schema, lo, span, z))
            }
        };
        if kind > 2
            || nl > 8
            || nb > 48
            || (kind == HISTOGRAM && native.is_none() && nb == 0)
            || (kind != HISTOGRAM && nb > 0)
            || !(1..=128).contains(&name_len)
            || unit_len > 32
            || help_len > 864
            || !(1..1 << 32).contains(&word(3))
            || word(4) >= 1 << 32
        {
            return None;
        }
        let name = text(b, e + 64 * 8, name_len)?;
        if !is_metric_name(&name) || name.starts_with("__") || name.starts_with("nodestats_") {
            return None;
        }
        let mut labels = Vec::new();
        for i in 0..nl {
            let len = ((word(5) >> (8 * i)) & 0xff) as usize;
            if len > 64 {
                return None;
            }
            let l = text(b, e + (84 + 8 * i) * 8, len)?;
            if !is_label_name(&l)
                || l.starts_with("__")
                || l == "node_id"
                || l == "node_type"
                || (kind == HISTOGRAM && l == "le")
                || labels.contains(&l)
            {
                return None;
            }
            labels.push(l);
        }
        let bounds: Vec<f64> = (0..nb).map(|i| f64::from_bits(word(16 + i))).collect();
        if bounds.iter().any(|v| !v.is_finite()) || bounds.windows(2).any(|p| p[0] >= p[1]) {
            return None;
        }
        let unit = text(b, e + 80 * 8, unit_len)?;
        if !unit.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return None;
        }
        Some(Declared {
            entry: k,
            name,
            help: text(b, e + 148 * 8, help_len)?,
            kind,
            unit,
            labels,
            bounds,
            cap: word(3),
            overflow_entry: word(4),
            count: word(6),
            overflowed: word(7),
            native,
        })
    }

    /// §7, Read and Merge. `alive(i)`: does slot `i`'s lock byte show a
    /// live writer.
    fn gauges(b: &[u8], l: &Layout, alive: &dyn Fn(usize) -> bool, v: &mut View) -> Vec<usize> {
        let mut sums = [0i64; 28];
        let (mut lat, mut lat_n, mut jit, mut jit_n) = (0u128, 0u128, 0u128, 0u128);
        let mut live = Vec::new();
        for i in 0..l.slot_count {
            let s = l.slots + 256 * i;
            if w(b, s) != 2 {
                continue;
            }
            if !alive(i) {
                v.dead_writers += 1;
                continue;
            }
            v.live_writers += 1;
            live.push(i);
            let g = |k: usize| w(b, s + 8 * (4 + k));
            for (k, sum) in sums.iter_mut().enumerate() {
                *sum = sum.wrapping_add(g(k) as i64);
            }
            if g(12) & 1 != 0 {
                lat += g(10) as u128;
                lat_n += 1;
            }
            if g(12) & 2 != 0 {
                jit += g(11) as u128;
                jit_n += 1;
            }
        }
        for (o, s) in v.gauges.iter_mut().zip(sums) {
            *o = s.max(0) as u64;
        }
        v.forward_latency = lat.checked_div(lat_n).unwrap_or(0) as u64;
        v.forward_jitter = jit.checked_div(jit_n).unwrap_or(0) as u64;
        live
    }

    /// A series entry's shape as §8 step 3 checks it: name, kind, label
    /// count, value count.
    struct Shape {
        name: String,
        kind: u8,
        labels: usize,
        values: usize,
        /// The histogram sum's word (§8, §8b).
        sum_word: usize,
        livekit: Option<usize>,
    }

    pub(super) fn read(b: &[u8], alive: &dyn Fn(usize) -> bool) -> Result<View, String> {
        let l = validate(b)?;
        let lk = livekit_families(&spec_text());
        let mut v = View {
            counters: [0; 64],
            gauges: [0; 28],
            live_writers: 0,
            dead_writers: 0,
            forward_latency: 0,
            forward_jitter: 0,
            series: BTreeMap::new(),
            strings_overflowed: 0,
            series_overflowed: 0,
            corrupt_entries: 0,
            families: Vec::new(),
            refused: 0,
        };
        // §6 and §7a: every shard and every row, whatever its state.
        for k in 0..l.shard_count {
            for (i, c) in v.counters.iter_mut().enumerate() {
                *c = c.wrapping_add(w(b, l.shards + 512 * k + 8 * i));
            }
        }
        for r in 0..l.row_count {
            for (i, c) in v.counters.iter_mut().enumerate() {
                *c = c.wrapping_add(w(b, l.rows + 512 * r + 8 * i));
            }
        }
        let live = gauges(b, &l, alive, &mut v);
        let (families, _) = families(b, &l);
        if l.family_cap > 0 {
            v.refused = w(b, l.families);
        }
        // §7a: what the rows' series slots add to value word `b - 1`.
        let mut in_rows: HashMap<usize, Vec<u64>> = HashMap::new();
        let k = l.row_series_slots;
        for r in 0..l.row_count {
            let at = l.row_series + 16 * k * r;
            for s in 0..k {
                let binding = w(b, at + 8 * s) as usize;
                if binding == 0 {
                    break;
                }
                if binding - 1 < l.vps {
                    in_rows
                        .entry(binding - 1)
                        .or_default()
                        .push(w(b, at + 8 * (k + s)));
                }
            }
        }
        // §8, Reading series.
        let alloc = |i: usize| w(b, l.series + 8 * i);
        v.strings_overflowed = alloc(3);
        v.series_overflowed = alloc(4);
        let nd = (alloc(0) as usize).min(l.series_cap);
        let ns = (alloc(1) as usize).min(l.strings_cap);
        let strings = l.series + 128 + 64 * l.series_cap;
        let string = |id: u32| -> Option<String> {
            if id as usize >= ns {
                return None;
            }
            let at = strings + 72 * id as usize;
            let st = w(b, at);
            let len = (st >> 8) as usize;
            if st & 0xff != 2 || len > 64 {
                return None;
            }
            String::from_utf8(b[at + 8..at + 8 + len].to_vec()).ok()
        };
        let word =
            |base: usize, i: usize, block: usize| w(b, l.values + 8 * (l.vps * block + base + i));
        for j in 0..nd {
            let e = l.series + 128 + 64 * j;
            if w(b, e) != 2 {
                continue;
            }
            let w1 = w(b, e + 8);
            let family = (w1 & 0xffff) as usize;
            let (n, nl) = (
                ((w1 >> 16) & 0xffff) as usize,
                ((w1 >> 32) & 0xffff) as usize,
            );
            let base = w(b, e + 16);
            let shape = if family < 49 {
                let f = &lk[family];
                Some(Shape {
                    name: f.name.clone(),
                    kind: f.kind,
                    labels: f.labels.len(),
                    values: f.values(l.slot_count),
                    sum_word: f.bounds.len() + 1,
                    livekit: Some(family),
                })
            } else {
                families
                    .iter()
                    .find(|f| 0x8000 + f.entry == family)
                    .map(|f| Shape {
                        name: f.name.clone(),
                        kind: f.kind,
                        labels: f.labels.len(),
                        values: match (f.kind, f.native) {
                            (COUNTER, _) => 1,
                            (GAUGE, _) => l.slot_count,
                            (_, Some((_, _, span, _))) => f.bounds.len() + 4 + 2 * span as usize,
                            _ => f.bounds.len() + 2,
                        },
                        sum_word: f.bounds.len() + 1,
                        livekit: None,
                    })
            };
            let Some(shape) = shape.filter(|s| {
                s.values == n
                    && s.labels == nl
                    && base
                        .checked_add(n as u64)
                        .is_some_and(|end| end <= l.vps as u64)
            }) else {
                v.corrupt_entries += 1;
                continue;
            };
            let base = base as usize;
            let ids: Vec<u32> = (0..nl)
                .map(|i| (w(b, e + 8 * (3 + i / 2)) >> (32 * (i % 2))) as u32)
                .collect();
            let labels: Option<Vec<String>> = ids
                .iter()
                .map(|&id| match id {
                    OVERFLOW => Some("__overflow__".to_string()),
                    id => string(id),
                })
                .collect();
            let Some(labels) = labels else {
                v.corrupt_entries += 1;
                continue;
            };
            let int_sum = |i: usize| {
                let blocks = (0..l.blocks).map(|k| word(base, i, k));
                let rows = in_rows.get(&(base + i)).into_iter().flatten().copied();
                blocks.chain(rows).fold(0u64, u64::wrapping_add)
            };
            let float_sum = |i: usize| {
                let blocks = (0..l.blocks).map(|k| word(base, i, k));
                let rows = in_rows.get(&(base + i)).into_iter().flatten().copied();
                blocks.chain(rows).map(f64::from_bits).sum::<f64>()
            };
            let add = match shape.kind {
                COUNTER => Val::Scalar(int_sum(0)),
                GAUGE => Val::Scalar(
                    live.iter()
                        .fold(0u64, |a, &i| a.wrapping_add(word(base, i, 0))),
                ),
                // Buckets and +Inf, the sum, then §8b's native words.
                _ => Val::Hist(
                    (0..n)
                        .filter(|&i| i != shape.sum_word)
                        .map(int_sum)
                        .collect(),
                    float_sum(shape.sum_word),
                ),
            };
            // §8 step 5: the media series into the fixed counters.
            if let (Some(f), Val::Scalar(x)) = (shape.livekit, &add) {
                let dir = match labels.first().map(String::as_str) {
                    Some("incoming") => Some(0),
                    Some("outgoing") => Some(1),
                    _ => None,
                };
                let retransmit = match labels.get(1).map(String::as_str) {
                    Some("initial") => Some(0),
                    Some("retransmit") => Some(1),
                    _ => None,
                };
                let target = match (f, dir, retransmit) {
                    (5, Some(d), Some(t)) => Some(d * 4 + t * 2),
                    (6, Some(d), Some(t)) => Some(d * 4 + t * 2 + 1),
                    (7, Some(d), _) => Some(8 + d),
                    (8, Some(d), _) => Some(10 + d),
                    (9, Some(d), _) => Some(12 + d),
                    _ => None,
                };
                if let Some(t) = target {
                    v.counters[t] = v.counters[t].wrapping_add(*x);
                }
            }
            let key = (shape.name.clone(), labels);
            let merged = match (v.series.remove(&key), add) {
                (None, a) => a,
                (Some(Val::Scalar(a)), Val::Scalar(x)) => Val::Scalar(a.wrapping_add(x)),
                (Some(Val::Hist(a, s)), Val::Hist(x, t)) => Val::Hist(
                    a.iter().zip(&x).map(|(p, q)| p.wrapping_add(*q)).collect(),
                    s + t,
                ),
                _ => unreachable!("one family has one kind"),
            };
            v.series.insert(key, merged);
        }
        v.families = families;
        Ok(v)
    }

    /// §7 Read step 6: `F_OFD_GETLK` with `F_WRLCK` on slot `i`'s lock byte.
    pub(super) fn slot_alive(probe: &std::fs::File, i: usize) -> bool {
        // SAFETY: all-zero is a valid flock.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as _;
        fl.l_whence = libc::SEEK_SET as _;
        fl.l_start = (1i64 << 40) + i as i64;
        fl.l_len = 1;
        // SAFETY: an open descriptor and a valid flock that outlives the call.
        let r = unsafe { libc::fcntl(probe.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
        r < 0 || i64::from(fl.l_type) != i64::from(libc::F_UNLCK)
    }
}

/// The same view through the crate's readers: `Totals` (NodeStats'
/// counters and gauges), the series reader the exporter uses, and the
/// exporter's text for the family directory.
fn crate_view(path: &Path, spec_families: &[Declared]) -> View {
    use nodestats::{Access, Exporter, Segment, Totals, FAMILIES};
    let seg =
        std::sync::Arc::new(Segment::attach(path.to_str().unwrap(), Access::ReadOnly).unwrap());
    let t = Totals::read(&seg);
    let (series, stats) = nodestats::__testing::read_all(&seg);
    let mut map = BTreeMap::new();
    for s in series {
        let i = s.family.index() as usize;
        let name = match s.family.livekit() {
            Some(_) => FAMILIES[i].name.to_string(),
            None => spec_families
                .iter()
                .find(|f| 0x8000 + f.entry == i)
                .map_or(format!("declared entry {}", i - 0x8000), |f| f.name.clone()),
        };
        let val = match s.buckets.is_empty() {
            true => Val::Scalar(s.value),
            false => Val::Hist(s.buckets, s.sum),
        };
        assert!(map.insert((name, s.labels), val).is_none(), "merged once");
    }
    let text = Exporter::new(seg.clone(), "n", "SERVER").unwrap().text();
    let scalar = |metric: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(metric))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |v| v.parse::<f64>().unwrap() as u64)
    };
    // The families the exporter describes: those of the spec reader that
    // have a HELP and TYPE line as §8a gives them (a family without a
    // series to export has neither).
    let families = spec_families
        .iter()
        .filter(|f| {
            let kind = ["counter", "gauge", "histogram"][f.kind as usize];
            let described = text.contains(&format!("# HELP {} {}\n", f.name, f.help))
                && text.contains(&format!("# TYPE {} {kind}\n", f.name));
            described || !map.keys().any(|(name, _)| *name == f.name)
        })
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(
        scalar("nodestats_families_declared") as usize,
        families.len(),
        "declared families exported"
    );
    View {
        counters: t.counters,
        gauges: t.gauges.values,
        live_writers: t.gauges.live_writers,
        dead_writers: t.gauges.dead_writers,
        forward_latency: t.gauges.forward_latency_ns,
        forward_jitter: t.gauges.forward_jitter_ns,
        series: map,
        strings_overflowed: stats.strings_overflowed,
        series_overflowed: stats.series_overflowed,
        corrupt_entries: stats.corrupt_entries,
        families,
        refused: scalar("nodestats_family_declarations_refused_total"),
    }
}

/// Reads the segment file at `path` with both readers and requires them
/// to agree on everything.
fn both_agree(path: &Path) -> View {
    let bytes = std::fs::read(path).unwrap();
    let probe = std::fs::File::open(path).unwrap();
    let spec = spec::read(&bytes, &|i| spec::slot_alive(&probe, i)).unwrap();
    let ours = crate_view(path, &spec.families);
    assert_eq!(spec.counters, ours.counters, "counters");
    assert_eq!(
        (
            spec.gauges,
            spec.live_writers,
            spec.dead_writers,
            spec.forward_latency,
            spec.forward_jitter
        ),
        (
            ours.gauges,
            ours.live_writers,
            ours.dead_writers,
            ours.forward_latency,
            ours.forward_jitter
        ),
        "gauges"
    );
    let keys = |v: &View| v.series.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&spec), keys(&ours), "series");
    for (k, a) in &spec.series {
        assert_eq!(Some(a), ours.series.get(k), "series {k:?}");
    }
    assert_eq!(spec, ours);
    spec
}

/// A writer written from SEGMENT.md: the golden image.
mod golden {
    use super::*;

    pub(super) const SHARDS: usize = 2;
    pub(super) const SLOTS: usize = 2;
    pub(super) const ROWS: usize = 2;
    pub(super) const ROW_SLOTS: usize = 4;
    pub(super) const SERIES: usize = 64;
    pub(super) const STRINGS: usize = 16;
    pub(super) const VPS: usize = 512;
    pub(super) const FAMILIES: usize = 2;
    pub(super) const SHARDS_AT: usize = 256;
    pub(super) const SLOTS_AT: usize = SHARDS_AT + 512 * SHARDS;
    pub(super) const ROWS_AT: usize = SLOTS_AT + 256 * SLOTS;
    pub(super) const STATES_AT: usize = ROWS_AT + 512 * ROWS;
    pub(super) const SERIES_AT: usize = STATES_AT + 128;
    const SERIES_BYTES: usize = (128 + 64 * SERIES + 72 * STRINGS).div_ceil(128) * 128;
    pub(super) const VALUES_AT: usize = SERIES_AT + SERIES_BYTES;
    pub(super) const ROW_SERIES_AT: usize = VALUES_AT + SHARDS * VPS * 8;
    pub(super) const FAMILIES_AT: usize = ROW_SERIES_AT + ROWS * ROW_SLOTS * 16;
    pub(super) const SIZE: usize = FAMILIES_AT + 1024 + 2048 * FAMILIES;

    /// Values fixed so that the image is the same on every run.
    pub(super) const PID_LIVE: u64 = 4242;
    pub(super) const PID_DEAD: u64 = 4343;
    const CREATED: u64 = 1_764_547_200_000_000_000;

    pub(super) const ROOMS: &str = "sfu_room_bytes_total";
    pub(super) const DELAY: &str = "sfu_delay_seconds";

    struct Image(Vec<u8>);

    impl Image {
        fn put(&mut self, at: usize, v: u64) {
            self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        fn add(&mut self, at: usize, v: u64) {
            let old = w(&self.0, at);
            self.put(at, old.wrapping_add(v));
        }
        fn bytes(&mut self, at: usize, s: &[u8]) {
            self.0[at..at + s.len()].copy_from_slice(s);
        }
        /// Value word `i` of series base `base` in block `k` (§8 Values).
        fn value(&mut self, k: usize, word: usize, v: u64) {
            self.add(VALUES_AT + 8 * (VPS * k + word), v);
        }
        fn float(&mut self, k: usize, word: usize, x: f64) {
            let at = VALUES_AT + 8 * (VPS * k + word);
            let old = f64::from_bits(w(&self.0, at));
            self.put(at, (old + x).to_bits());
        }
    }

    /// Series allocation as §8 Registration does it, without races.
    struct Alloc {
        next_series: usize,
        next_string: usize,
        next_value: usize,
        strings: Vec<&'static str>,
    }

    impl Alloc {
        /// A new string (even if an equal one exists: §8 allows two ids).
        fn intern(&mut self, img: &mut Image, s: &'static str) -> u32 {
            let id = self.next_string;
            self.next_string += 1;
            let at = SERIES_AT + 128 + 64 * SERIES + 72 * id;
            img.bytes(at + 8, s.as_bytes());
            img.put(at, 2 | (s.len() as u64) << 8);
            self.strings.push(s);
            id as u32
        }

        fn find(&self, s: &str) -> u32 {
            self.strings.iter().position(|x| *x == s).unwrap() as u32
        }

        /// Registers an entry; returns its value base.
        fn entry(&mut self, img: &mut Image, family: u64, n: usize, ids: &[u32]) -> usize {
            let j = self.next_series;
            self.next_series += 1;
            let base = self.next_value;
            self.next_value += n;
            let e = SERIES_AT + 128 + 64 * j;
            img.put(e + 8, family | (n as u64) << 16 | (ids.len() as u64) << 32);
            img.put(e + 16, base as u64);
            for (i, id) in ids.iter().enumerate() {
                img.add(e + 8 * (3 + i / 2), (*id as u64) << (32 * (i % 2)));
            }
            img.put(e, 2);
            base
        }
    }

    /// A declared family in directory entry `k` (§8a Entry).
    #[allow(clippy::too_many_arguments)]
    fn describe(
        img: &mut Image,
        k: usize,
        name: &str,
        help: &str,
        kind: u8,
        unit: &str,
        labels: &[&str],
        bounds: &[f64],
        cap: u64,
        overflow_entry: usize,
        count: u64,
        overflowed: u64,
    ) {
        let e = FAMILIES_AT + 1024 + 2048 * k;
        img.put(
            e + 8,
            kind as u64
                | (labels.len() as u64) << 8
                | (bounds.len() as u64) << 16
                | (name.len() as u64) << 32
                | (unit.len() as u64) << 40,
        );
        img.put(e + 16, help.len() as u64);
        img.put(e + 24, cap);
        img.put(e + 32, overflow_entry as u64);
        let lens = labels
            .iter()
            .enumerate()
            .fold(0u64, |a, (i, l)| a | (l.len() as u64) << (8 * i));
        img.put(e + 40, lens);
        img.put(e + 48, count);
        img.put(e + 56, overflowed);
        for (i, b) in bounds.iter().enumerate() {
            img.put(e + 8 * (16 + i), b.to_bits());
        }
        img.bytes(e + 64 * 8, name.as_bytes());
        img.bytes(e + 80 * 8, unit.as_bytes());
        for (i, l) in labels.iter().enumerate() {
            img.bytes(e + (84 + 8 * i) * 8, l.as_bytes());
        }
        img.bytes(e + 148 * 8, help.as_bytes());
        img.put(e, 2 | (fnv1a(name.as_bytes()) >> 24) << 24);
    }

    /// Where `name` lands in a directory of `FAMILIES` entries, given the
    /// entries already taken (§8a Names).
    fn home(name: &str, taken: &[usize]) -> usize {
        let mut k = (fnv1a(name.as_bytes()) % FAMILIES as u64) as usize;
        while taken.contains(&k) {
            k = (k + 1) % FAMILIES;
        }
        k
    }

    /// The directory entries of the two declared families, rooms first.
    pub(super) fn family_entries() -> (usize, usize) {
        let rooms = home(ROOMS, &[]);
        (rooms, home(DELAY, &[rooms]))
    }

    /// The golden image, built from SEGMENT.md and the values listed here.
    pub(super) fn image() -> Vec<u8> {
        let lk = livekit_families(&spec_text());
        let mut img = Image(vec![0; SIZE]);
        // §3 header, words 0–30; word 31 last.
        let header: [(usize, u64); 30] = [
            (0, 0x5441545345444F4E),
            (1, 2),
            (2, 2),
            (3, 256),
            (4, SIZE as u64),
            (5, 0x0123_4567_89ab_cdef),
            (6, 0xfedc_ba98_7654_3210),
            (7, CREATED),
            (8, 0),
            (9, SHARDS as u64),
            (10, 512),
            (11, 64),
            (12, SHARDS_AT as u64),
            (13, SLOTS as u64),
            (14, 256),
            (15, SLOTS_AT as u64),
            (16, SERIES_AT as u64),
            (17, SERIES as u64),
            (18, STRINGS as u64),
            (19, VALUES_AT as u64),
            (20, VPS as u64),
            (21, SHARDS as u64),
            (23, ROWS as u64),
            (24, 512),
            (25, ROWS_AT as u64),
            (26, STATES_AT as u64),
            (27, ROW_SLOTS as u64),
            (28, ROW_SERIES_AT as u64),
            (29, FAMILIES_AT as u64),
            (30, FAMILIES as u64),
        ];
        for (i, v) in header {
            img.put(8 * i, v);
        }

        // §6 shards: known counts in both.
        for (shard, counter, v) in [
            (0, 0, 10),
            (0, 1, 12_000),
            (0, 8, 3),
            (0, 16, 7),
            (1, 4, 20),
            (1, 5, 24_000),
            (1, 6, 2),
            (1, 7, 2_400),
            (1, 43, 5),
            (1, 48, 1),
        ] {
            img.put(SHARDS_AT + 512 * shard + 8 * counter, v);
        }

        // §7 slots: 0 a live writer (the test holds its lock), 1 a dead one
        // (ACTIVE, lock free).
        let slot = |i: usize| SLOTS_AT + 256 * i;
        for (i, inc, pid) in [(0, 1, PID_LIVE), (1, 3, PID_DEAD)] {
            img.put(slot(i), 2);
            img.put(slot(i) + 8, inc);
            img.put(slot(i) + 16, pid);
            img.put(slot(i) + 24, CREATED + 1_000_000_000 * inc);
        }
        for (g, v) in [
            (0, 1),
            (1, 3),
            (3, 2),
            (8, 4),
            (9, -1i64 as u64),
            (10, 1500),
            (12, 1),
        ] {
            img.put(slot(0) + 8 * (4 + g), v);
        }
        for (g, v) in [(0, 5), (1, 9), (10, 9999), (12, 1)] {
            img.put(slot(1) + 8 * (4 + g), v);
        }

        // §7a rows: row 0 owned by the live writer, row 1 released.
        img.put(STATES_AT, 1 << 32 | PID_LIVE);
        img.put(STATES_AT + 8, 2 << 32);
        for (row, counter, v) in [(0, 0, 5), (0, 1, 6_000), (1, 13, 1)] {
            img.put(ROWS_AT + 512 * row + 8 * counter, v);
        }

        // §8: allocation line, overflow series with consecutive bases.
        let mut a = Alloc {
            next_series: 0,
            next_string: 0,
            next_value: 0,
            strings: Vec::new(),
        };
        let mut overflow_base = Vec::new();
        for (f, fam) in lk.iter().enumerate() {
            let ids = vec![OVERFLOW; fam.labels.len()];
            overflow_base.push(a.entry(&mut img, f as u64, fam.values(SLOTS), &ids));
        }
        assert_eq!(
            a.next_value,
            253 + 10 * SLOTS,
            "§8: the overflow series' words"
        );
        for s in ["incoming", "initial", "SE", "blue", "SE", "outgoing"] {
            a.intern(&mut img, s);
        }
        let (inc, ini, se, blue) = (
            a.find("incoming"),
            a.find("initial"),
            a.find("SE"),
            a.find("blue"),
        );
        let se2 = 4;
        let (k_rooms, k_delay) = family_entries();
        let packets = a.entry(&mut img, 5, 1, &[inc, ini, se]);
        let bytes = a.entry(&mut img, 6, 1, &[inc, ini, se]);
        let nack = a.entry(&mut img, 7, 1, &[inc, se]);
        let refs = a.entry(&mut img, 37, SLOTS, &[blue]);
        let rooms_overflow_entry = a.next_series;
        let rooms_overflow = a.entry(&mut img, 0x8000 + k_rooms as u64, 1, &[OVERFLOW]);
        let delay_entry = a.next_series;
        let delay = a.entry(&mut img, 0x8000 + k_delay as u64, 4, &[]);
        let rooms_blue = a.entry(&mut img, 0x8000 + k_rooms as u64, 1, &[blue]);
        // The same series registered again, with the other id of "SE".
        let packets2 = a.entry(&mut img, 5, 1, &[inc, ini, se2]);
        // Claimed, never published: counted by next_series, skipped.
        a.next_series += 1;
        img.put(SERIES_AT, a.next_series as u64);
        img.put(SERIES_AT + 8, a.next_string as u64);
        img.put(SERIES_AT + 16, a.next_value as u64);
        img.put(SERIES_AT + 24, 1);
        img.put(SERIES_AT + 32, 5);

        // Values, in both blocks.
        img.value(0, packets, 50);
        img.value(0, bytes, 60_000);
        img.value(1, bytes, 4_800);
        img.value(1, nack, 12);
        img.value(0, refs, 6); // slot 0's word
        img.value(0, refs + 1, 100); // the dead slot's word
        img.value(1, refs, 999); // block 1's copy: unused
        img.value(0, rooms_overflow, 2);
        img.value(0, delay, 1); // 0.0005 ≤ 0.001
        img.value(1, delay + 1, 1); // 0.002 ≤ 0.01
        img.value(0, delay + 2, 1); // 5.0: +Inf
        img.float(0, delay + 3, 0.0005);
        img.float(0, delay + 3, 5.0);
        img.float(1, delay + 3, 0.002);
        img.value(0, rooms_blue, 1_200);
        img.value(1, rooms_blue, 34);
        img.value(1, packets2, 7);
        let nack_overflow = overflow_base[7];
        img.value(0, nack_overflow, 9);
        let quality = overflow_base[34];
        img.value(0, quality + 6, 1); // 3.6 ≤ 3.75
        img.value(1, quality + 10, 1); // 4.8: +Inf
        img.float(0, quality + 11, 3.6);
        img.float(1, quality + 11, 4.8);

        // §7a row series slots: row 0 holds part of the packets series,
        // row 1 part of rooms{blue} and a binding past vps (skipped).
        let rs = |r: usize, s: usize| ROW_SERIES_AT + 16 * ROW_SLOTS * r + 8 * s;
        img.put(rs(0, 0), packets as u64 + 1);
        img.put(rs(0, ROW_SLOTS), 4);
        img.put(rs(1, 0), rooms_blue as u64 + 1);
        img.put(rs(1, 1), VPS as u64 + 88);
        img.put(rs(1, ROW_SLOTS), 66);
        img.put(rs(1, ROW_SLOTS + 1), 1_000);

        // §8a: control block and the two families.
        img.put(FAMILIES_AT, 1);
        img.put(FAMILIES_AT + 8, 4096);
        for (f, count) in [(5, 2), (6, 1), (7, 1), (37, 1)] {
            img.put(FAMILIES_AT + 8 * (8 + f), count);
        }
        img.put(FAMILIES_AT + 8 * (64 + 7), 3);
        describe(
            &mut img,
            k_rooms,
            ROOMS,
            "Bytes forwarded, by room.",
            COUNTER,
            "",
            &["room"],
            &[],
            10,
            rooms_overflow_entry,
            1,
            2,
        );
        describe(
            &mut img,
            k_delay,
            DELAY,
            "Forward delay.",
            HISTOGRAM,
            "seconds",
            &[],
            &[0.001, 0.01],
            2000,
            delay_entry,
            0,
            0,
        );
        img.put(8 * 31, 0x0100005944414552);
        img.0
    }
}

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden-2.2.seg");

#[test]
fn the_golden_image_is_what_the_spec_writer_builds() {
    let built = golden::image();
    if std::env::var_os("NODESTATS_BLESS").is_some() {
        std::fs::write(GOLDEN, &built).unwrap();
    }
    let committed =
        std::fs::read(GOLDEN).expect("tests/data/golden-2.2.seg (NODESTATS_BLESS=1 writes it)");
    assert_eq!(committed.len(), golden::SIZE);
    assert!(
        committed == built,
        "tests/data/golden-2.2.seg differs from what tests/spec_reader.rs builds; after a deliberate change, rerun with NODESTATS_BLESS=1"
    );
}

/// The golden image's values, worked out by hand from what `golden::image`
/// writes; both readers must find exactly these.
#[test]
fn both_readers_find_the_golden_images_known_values() {
    let dir = common::TempDir::new("spec-golden");
    let path = dir.join("golden.seg");
    std::fs::copy(GOLDEN, &path).unwrap();
    // Slot 0's writer is alive: hold its lock byte (§7 Locks).
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // SAFETY: all-zero is a valid flock.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = 1i64 << 40;
    fl.l_len = 1;
    // SAFETY: an open descriptor and a valid flock that outlives the call.
    let r = unsafe { libc::fcntl(holder.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    assert_eq!(r, 0, "lock slot 0's byte");

    let v = both_agree(&path);
    let mut counters = [0u64; 64];
    for (i, c) in [
        // 10 in shard 0 + 5 in row 0 + the SE series: 50 + 4 (row slot) + 7
        // (its second entry).
        (0, 76),
        (1, 12_000 + 6_000 + 64_800),
        (4, 20),
        (5, 24_000),
        (6, 2),
        (7, 2_400),
        // 3 + the SE series' 12; the overflow series' 9 has no direction.
        (8, 15),
        (13, 1),
        (16, 7),
        (43, 5),
        (48, 1),
    ] {
        counters[i] = c;
    }
    assert_eq!(v.counters, counters);
    let mut gauges = [0u64; 28];
    for (g, x) in [(0, 1), (1, 3), (3, 2), (8, 4), (10, 1500), (12, 1)] {
        gauges[g] = x;
    }
    assert_eq!(v.gauges, gauges, "the live writer's only; -1 clamps to 0");
    assert_eq!(
        (
            v.live_writers,
            v.dead_writers,
            v.forward_latency,
            v.forward_jitter
        ),
        (1, 1, 1500, 0)
    );
    let s = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let get = |f: &str, l: &[&str]| v.series.get(&(f.to_string(), s(l))).cloned();
    assert_eq!(
        get("livekit_packet_total", &["incoming", "initial", "SE"]),
        Some(Val::Scalar(61))
    );
    assert_eq!(
        get("livekit_packet_bytes", &["incoming", "initial", "SE"]),
        Some(Val::Scalar(64_800))
    );
    assert_eq!(
        get("livekit_nack_total", &["incoming", "SE"]),
        Some(Val::Scalar(12))
    );
    assert_eq!(
        get("livekit_nack_total", &["__overflow__", "__overflow__"]),
        Some(Val::Scalar(9))
    );
    assert_eq!(
        get("livekit_debug_ref_count", &["blue"]),
        Some(Val::Scalar(6))
    );
    assert_eq!(get(golden::ROOMS, &["blue"]), Some(Val::Scalar(1_300)));
    assert_eq!(get(golden::ROOMS, &["__overflow__"]), Some(Val::Scalar(2)));
    assert_eq!(
        get(golden::DELAY, &[]),
        Some(Val::Hist(vec![1, 1, 1], 0.0005 + 5.0 + 0.002))
    );
    let mut q = vec![0; 11];
    q[6] = 1;
    q[10] = 1;
    assert_eq!(
        get("livekit_quality_score", &[]),
        Some(Val::Hist(q, 3.6 + 4.8))
    );
    // 49 LiveKit overflow series, 2 declared ones, 5 labeled series.
    assert_eq!(v.series.len(), 56);
    let zero = |x: &Val| match x {
        Val::Scalar(a) => *a == 0,
        Val::Hist(b, s) => b.iter().all(|&c| c == 0) && *s == 0.0,
    };
    assert_eq!(v.series.values().filter(|x| !zero(x)).count(), 9);
    assert_eq!(
        (v.strings_overflowed, v.series_overflowed, v.corrupt_entries),
        (1, 5, 0)
    );
    let (k_rooms, k_delay) = golden::family_entries();
    let names: Vec<(usize, &str)> = v
        .families
        .iter()
        .map(|f| (f.entry, f.name.as_str()))
        .collect();
    let mut want = vec![(k_rooms, golden::ROOMS), (k_delay, golden::DELAY)];
    want.sort();
    assert_eq!(names, want);
    let delay = v.families.iter().find(|f| f.name == golden::DELAY).unwrap();
    assert_eq!(
        (delay.kind, delay.unit.as_str(), delay.bounds.clone()),
        (HISTOGRAM, "seconds", vec![0.001, 0.01])
    );
    let rooms = v.families.iter().find(|f| f.name == golden::ROOMS).unwrap();
    assert_eq!(
        (
            rooms.labels.clone(),
            rooms.cap,
            rooms.count,
            rooms.overflowed
        ),
        (s(&["room"]), 10, 1, 2)
    );
    assert_eq!(v.refused, 1);
    // `nodestats show --json` prints the NodeStats fields Appendix A
    // derives from these counters and gauges.
    let out = std::process::Command::new(common::nodestats_bin())
        .args(["show", "--json", "--segment", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let derived = node_stats_by_appendix_a(&v);
    let pick = |f: &str| derived.get(f).copied();
    assert_eq!(
        [
            pick("packets_in"),
            pick("bytes_out"),
            pick("num_track_subscribe_cancels")
        ],
        [Some(76), Some(26_400), Some(5)]
    );
    assert_eq!(
        [
            pick("num_rooms"),
            pick("num_clients"),
            pick("num_tracks_in"),
            pick("forward_latency")
        ],
        [Some(1), Some(3), Some(2), Some(1_500)]
    );
    for (field, want) in &derived {
        assert_eq!(shown[field].as_u64(), Some(*want), "show --json: {field}");
    }
    drop(holder);
}

/// NodeStats' segment-derived fields as SEGMENT.md Appendix A gives them:
/// each the sum of the counters or gauges whose rows name it; forward
/// latency and jitter are §7's means.
fn node_stats_by_appendix_a(v: &View) -> BTreeMap<String, u64> {
    let spec = spec_text();
    let appendix = &spec[spec.find("## Appendix A.").expect("Appendix A")..];
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for line in appendix
        .lines()
        .take_while(|l| !l.starts_with("## Appendix B"))
    {
        let c: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(i) = c
            .get(1)
            .and_then(|x| x.split(' ').next()?.parse::<usize>().ok())
        else {
            continue;
        };
        // Gauge rows name their slot word: "0 `Rooms` (4)".
        let gauge = c[1].contains("` (");
        for field in c[2].split(", ").filter(|f| *f != "—") {
            let field = field.trim_matches('`').to_string();
            let x = match (gauge, field.as_str()) {
                (true, "forward_latency") => v.forward_latency,
                (true, "forward_jitter") => v.forward_jitter,
                (true, _) => v.gauges[i],
                (false, _) => v.counters[i],
            };
            *out.entry(field).or_default() += x;
        }
    }
    out
}

/// Segments written by the crate, read by both readers.
#[test]
fn both_readers_agree_on_live_segments() {
    use nodestats::{
        Capacities, Direction, Family, FamilySpec, SegmentOptions, Stats, TrackKind, TrackSource,
        WriteMode,
    };
    let dir = common::TempDir::new("spec-live");
    let cases: Vec<(&str, SegmentOptions)> = vec![
        ("default", SegmentOptions::new()),
        // Room in the rows for a whole native histogram (§7a, §8b).
        (
            "wide rows",
            SegmentOptions::new().thread_row_series_slots(256),
        ),
        (
            "32 shards",
            SegmentOptions::new()
                .shards(32)
                .write_mode(WriteMode::Atomic),
        ),
        (
            "small",
            SegmentOptions::new()
                .shards(1)
                .writer_slots(3)
                .thread_rows(2)
                .capacities(Capacities {
                    series: 80,
                    strings: 8,
                    values_per_block: 1024,
                    families: 4,
                }),
        ),
    ];
    for (what, opts) in cases {
        let path = dir.join(&what.replace(' ', "-"));
        let name = path.to_str().unwrap();
        let stats = Stats::open(&opts.name(name)).unwrap();
        let second = Stats::open(&SegmentOptions::new().name(name)).unwrap();
        stats.record_packets(Direction::Incoming, 3, 3_600, false);
        second.record_packets(Direction::Outgoing, 2, 2_400, true);
        stats.record_rtcp(Direction::Outgoing, 1, 2, 3);
        for (i, country) in ["SE", "DE", "FR", "US", "JP", "BR", "IN", "NG", "AU", "CA"]
            .iter()
            .enumerate()
        {
            stats.record_packets_country(country, Direction::Incoming, i as u64 + 1, 1_000, false);
            stats.record_rtcp_country(country, Direction::Outgoing, 1, 0, i as u32);
        }
        stats.room_started();
        stats.participant_added();
        second.participant_added();
        stats.track_published(TrackKind::Video);
        stats.connection_added(Direction::Incoming);
        second.connection_removed(Direction::Outgoing);
        stats.forward_latency(1_000);
        second.forward_latency(3_001);
        second.forward_jitter(77);
        stats.track_subscribe_failure(true);
        stats.record_rtt(
            "SE",
            Direction::Outgoing,
            TrackSource::Camera,
            TrackKind::Video,
            42,
        );
        stats.add_ref("peer", 3);
        second.add_ref("peer", -1);
        let rooms = stats
            .declare(
                &FamilySpec::counter("sfu_room_bytes_total", "Bytes by room.")
                    .labels(&["room"])
                    .max_series(2),
            )
            .unwrap();
        for room in ["a", "b", "c", "d"] {
            rooms.series(&[room]).unwrap().inc_by(10);
        }
        let queue = second
            .declare(&FamilySpec::gauge("sfu_queue_depth", "Queued packets.").labels(&["worker"]))
            .unwrap();
        queue.series(&["w1"]).unwrap().add(5);
        let delay = stats
            .declare(
                &FamilySpec::histogram("sfu_delay_seconds", "Delay.", &[0.001, 0.01])
                    .unit("seconds"),
            )
            .unwrap();
        delay.series(&[]).unwrap().observe(0.002);
        let jitter = second
            .declare(
                &FamilySpec::histogram("sfu_jitter_ms", "Jitter.", &[1.0])
                    .labels(&["room"])
                    .native(2)
                    .native_range(0.01, 100.0)
                    .native_zero_threshold(0.001),
            )
            .unwrap();
        let j = jitter.series(&["a"]).unwrap();
        for v in [0.0, 0.5, 3.0, 3.1, -7.0, 1e6, f64::NAN, 0.0001] {
            j.observe(v);
        }
        let thread = stats.thread_writer().unwrap();
        thread.record_packets(Direction::Incoming, 5, 6_000, false);
        thread
            .series(Family::NackTotal, &["incoming", "SE"])
            .unwrap()
            .inc_by(4);
        thread.series(rooms.id(), &["a"]).unwrap().inc_by(1);
        thread.series(delay.id(), &[]).unwrap().observe(0.0005);
        let t_jitter = thread.series(jitter.id(), &["a"]).unwrap();
        assert!(t_jitter.in_row());
        t_jitter.observe(42.0);
        // Whether the native words are in the row: the row's bindings.
        let bound = nodestats::__testing::row_bindings(&thread);
        // NACKs 1, rooms 1, delay 2 + 2, then the native histogram: all of
        // its 1 + 4 + 2 · 54 words, or its 1 + 2 classic ones.
        let native_words = if what == "wide rows" { 113 } else { 3 };
        assert_eq!(bound, 1 + 1 + 4 + native_words, "{what}");
        thread
            .series(Family::RttMs, &["outgoing", "CAMERA", "VIDEO", "SE"])
            .unwrap()
            .observe(120.0);

        let v = both_agree(&path);
        assert_eq!(v.live_writers, 2, "{what}");
        assert_eq!(
            v.counters[0],
            3 + 5 + 55,
            "{what}: packets in, every country"
        );
        assert_eq!(v.families.len(), 4, "{what}");
        let native = v
            .families
            .iter()
            .find(|f| f.name == "sfu_jitter_ms")
            .unwrap();
        assert_eq!(
            native.native.map(|n| (n.0, n.1, n.2)),
            Some((2, -26, 54)),
            "{what}"
        );
        // The spec reader's words of the native series: 1 bound, +Inf, then
        // zero, clamped, 54 positive and 54 negative buckets.
        // ("a", or "__overflow__" where the label values ran out).
        let mut of_family = v.series.iter().filter(|(k, val)| {
            k.0 == "sfu_jitter_ms" && !matches!(val, Val::Hist(w, _) if w.iter().all(|&x| x == 0))
        });
        let Some((_, Val::Hist(words, _))) = of_family.next() else {
            panic!("{what}: native series")
        };
        assert!(of_family.next().is_none(), "{what}: one series");
        assert_eq!(words.len(), 2 + 2 + 108, "{what}");
        assert_eq!(
            words[..2],
            [4, 5],
            "{what}: classic ≤ 1 and +Inf, NaN included"
        );
        assert_eq!((words[2], words[3]), (2, 1), "{what}: zero bucket, clamped");
        let pos = |i: i64| words[4 + (i + 26) as usize];
        let neg = |i: i64| words[4 + 54 + (i + 26) as usize];
        assert_eq!(
            (
                pos(native_index(2, 0.5)),
                pos(native_index(2, 3.0)),
                pos(27),
                pos(22)
            ),
            (1, 2, 1, 1),
            "{what}: 0.5; 3 and 3.1; 1e6 clamped to the top bucket; 42"
        );
        assert_eq!(neg(native_index(2, 7.0)), 1, "{what}");
        drop((thread, stats, second));
    }
}

/// Damaged copies of the golden image: whatever a reader must skip, both
/// readers skip alike (and count alike).
#[test]
fn both_readers_agree_on_damaged_copies_of_the_golden_image() {
    use golden::*;
    let (k_rooms, k_delay) = family_entries();
    let fam = |k: usize, word: usize| FAMILIES_AT + 1024 + 2048 * k + 8 * word;
    let entry = |j: usize, word: usize| SERIES_AT + 128 + 64 * j + 8 * word;
    let string = |s: usize| SERIES_AT + 128 + 64 * SERIES + 72 * s;
    let row_series = |r: usize, s: usize| ROW_SERIES_AT + 16 * ROW_SLOTS * r + 8 * s;
    let b = std::fs::read(GOLDEN).unwrap();
    let old = |at: usize| w(&b, at);
    let cases: Vec<(&str, usize, u64)> = vec![
        ("a family's cap past 2^32 - 1", fam(k_rooms, 3), 1 << 32),
        ("a family's cap 0", fam(k_rooms, 3), 0),
        (
            "a family's overflow entry past 2^32 - 1",
            fam(k_delay, 4),
            1 << 32,
        ),
        (
            "a unit that is not [a-zA-Z0-9_]",
            fam(k_delay, 80),
            u64::from_le_bytes(*b"sec-onds"),
        ),
        (
            "a label name the exporter owns",
            fam(k_rooms, 84),
            u64::from_le_bytes(*b"node_id\0"),
        ),
        ("a family state without its hash bits", fam(k_rooms, 0), 2),
        (
            "a country id past the string count",
            entry(49, 4),
            old(entry(49, 4)) & 0xffff_ffff | 9 << 32,
        ),
        (
            "a string that is not UTF-8",
            string(2) + 8,
            old(string(2) + 8) | 0xff,
        ),
        ("a string longer than 64 bytes", string(3), 2 | 65 << 8),
        ("an unpublished string", string(0), 1 | 8 << 8),
        (
            "a gauge series with the wrong value count",
            entry(52, 1),
            old(entry(52, 1)) + (1 << 16),
        ),
        ("a series past the value block", entry(50, 2), VPS as u64),
        (
            "a series of a family entry that is free",
            entry(55, 1),
            old(entry(55, 1)) ^ 1,
        ),
        ("a row's first binding cleared", row_series(1, 0), 0),
        ("one value block", 8 * 21, 1),
        ("value blocks 0 (= shard count)", 8 * 21, 0),
        ("a claiming writer slot", SLOTS_AT + 256, 1),
        ("a string count that hides three strings", SERIES_AT + 8, 3),
        ("a series count past the capacity", SERIES_AT, 1_000),
        ("a series count of 49", SERIES_AT, 49),
    ];
    let dir = common::TempDir::new("spec-damaged");
    for (what, at, v) in cases {
        let path = dir.join("damaged.seg");
        let mut img = b.clone();
        img[at..at + 8].copy_from_slice(&v.to_le_bytes());
        std::fs::write(&path, &img).unwrap();
        let result = std::panic::catch_unwind(|| both_agree(&path));
        assert!(result.is_ok(), "{what}: the readers disagree");
    }
}

/// §10 as the contract for accepting a segment: hostile values in every
/// header word of the golden image get the same verdict from the spec
/// reader's validation and the crate's attach (the first failing check's
/// class: not initialized, bad magic, unsupported version, size mismatch,
/// unsupported write mode, bad layout — or accepted).
#[test]
fn both_readers_judge_hostile_headers_alike() {
    use nodestats::{Access, Error, Segment, SegmentOptions};
    let b = std::fs::read(GOLDEN).unwrap();
    let dir = common::TempDir::new("spec-header");
    let path = dir.join("hostile.seg");
    let opts = SegmentOptions::new().init_wait(std::time::Duration::ZERO);
    let mut checked = 0;
    for word in 0..32 {
        let old = w(&b, 8 * word);
        for v in [
            0,
            1,
            2,
            16,
            128,
            4096,
            1 << 20,
            1 << 40,
            u64::MAX,
            old.wrapping_add(1),
            old.wrapping_sub(1),
            old.wrapping_mul(2),
            old / 2,
        ] {
            let mut img = b.clone();
            img[8 * word..8 * word + 8].copy_from_slice(&v.to_le_bytes());
            std::fs::write(&path, &img).unwrap();
            let spec = match spec::validate(&img) {
                Ok(_) => "ok".to_string(),
                Err(e) => e.split(':').next().unwrap().to_string(),
            };
            let ours = match Segment::attach_with(path.to_str().unwrap(), Access::ReadOnly, &opts) {
                Ok(_) => "ok",
                Err(Error::NotInitialized) => "not initialized",
                Err(Error::BadMagic { .. }) => "bad magic",
                Err(Error::UnsupportedVersion { .. }) => "unsupported version",
                Err(Error::SizeMismatch { .. }) => "size mismatch",
                Err(Error::UnsupportedWriteMode(_)) => "unsupported write mode",
                Err(Error::BadLayout(_)) => "bad layout",
                Err(e) => panic!("word {word} = {v:#x}: {e}"),
            };
            assert_eq!(spec, ours, "header word {word} = {v:#x}");
            checked += 1;
        }
    }
    assert_eq!(checked, 32 * 13);
}
