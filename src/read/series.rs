//! Reading labeled series: every published series merged by label
//! strings, and the media series folded into the fixed counters.

use crate::schema::{Counter, Direction, Family, FamilyId, Kind, COUNTERS, LIVEKIT_FAMILIES};
use crate::segment::series::{
    alloc, read_entry, read_string, Shapes, StringEntry, MAX_LABELS, MAX_LABEL_BYTES, OVERFLOW_ID,
    OVERFLOW_LABEL, PUBLISHED,
};
use crate::segment::slots::ACTIVE;
use crate::segment::Segment;
use crate::sync::Ordering;
use std::collections::HashMap;

/// What a label string is to [`fold_media`], worked out once per string.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Unread,
    Unusable,
    Other,
    Incoming,
    Outgoing,
    Initial,
    Retransmit,
}

/// Adds the country-labeled media series (packets, bytes, NACK/PLI/FIR)
/// into the fixed counters, so NodeStats counts every country. Reads only
/// those families' entries; an entry with a label that is not usable
/// (SEGMENT.md §8, Reading series, step 3) is skipped here as the
/// exporter skips it, so NodeStats and `/metrics` count the same traffic.
/// Allocates a byte per label string (each is read at most once) and, when
/// thread writers hold anything in their rows' series slots, an index of
/// it.
pub(crate) fn fold_media(seg: &Segment, counters: &mut [u64; COUNTERS]) {
    let r = seg.series_region();
    // Entries, then strings: the order and the reason are `read_all_with`'s.
    let n = (r.alloc[alloc::NEXT_SERIES].load(Ordering::Acquire) as usize).min(r.dir.len());
    let ns = (r.alloc[alloc::NEXT_STRING].load(Ordering::Acquire) as usize).min(r.strings.len());
    let mut labels = vec![Label::Unread; ns];
    let mut label = |id: u32| -> Label {
        if id == OVERFLOW_ID {
            return Label::Other;
        }
        let Some(l) = labels.get_mut(id as usize) else {
            return Label::Unusable;
        };
        if *l == Label::Unread {
            *l = match usable_string(&r.strings[id as usize]) {
                None => Label::Unusable,
                Some((b, len)) => match &b[..len] {
                    b"incoming" => Label::Incoming,
                    b"outgoing" => Label::Outgoing,
                    b"initial" => Label::Initial,
                    b"retransmit" => Label::Retransmit,
                    _ => Label::Other,
                },
            };
        }
        *l
    };
    // Thread rows' parts of series values: read once, so each media entry
    // costs a binary search, not a pass over every row.
    let in_rows = r.row_values();
    let shapes = Shapes::livekit_only();
    for e in &r.dir[..n] {
        let Some(e) = read_entry(&r, &shapes, e) else {
            continue;
        };
        let (base, ids) = (e.base, e.ids);
        let Some(family) = e.family.livekit() else {
            continue;
        };
        if !matches!(
            family,
            Family::PacketTotal
                | Family::PacketBytes
                | Family::NackTotal
                | Family::PliTotal
                | Family::FirTotal
        ) {
            continue;
        }
        let classes: [Label; MAX_LABELS] = std::array::from_fn(|i| match i < e.nl {
            true => label(ids[i]),
            false => Label::Other,
        });
        if classes.contains(&Label::Unusable) {
            continue;
        }
        let d = match classes[0] {
            Label::Incoming => Direction::Incoming,
            Label::Outgoing => Direction::Outgoing,
            _ => continue,
        };
        let target = match family {
            Family::PacketTotal | Family::PacketBytes => {
                let t = match classes[1] {
                    Label::Initial => false,
                    Label::Retransmit => true,
                    _ => continue,
                };
                Counter::packets(d, t) + (family == Family::PacketBytes) as usize
            }
            Family::NackTotal => Counter::NackIn as usize + d as usize,
            Family::PliTotal => Counter::PliIn as usize + d as usize,
            _ => Counter::FirIn as usize + d as usize,
        };
        let v = r.value_sum(base).wrapping_add(in_rows.count(base));
        counters[target] = counters[target].wrapping_add(v);
    }
}

/// String `e` if it is usable as a label value (SEGMENT.md §8, Reading
/// series, step 2): published, at most 64 bytes, UTF-8.
fn usable_string(e: &StringEntry) -> Option<([u8; MAX_LABEL_BYTES], usize)> {
    read_string(e).filter(|(b, len)| std::str::from_utf8(&b[..*len]).is_ok())
}

/// A merged series read from the segment (public for the test door only).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(not(any(test, feature = "testing")), allow(unreachable_pub))]
pub struct SeriesValue {
    /// Family: one of LiveKit's or a declared one.
    pub family: FamilyId,
    /// Label values, in the family's label order.
    pub labels: Vec<String>,
    /// Counter or gauge value (gauges as two's-complement `i64` bits).
    pub value: u64,
    /// Histogram bucket counts (non-cumulative, +Inf last).
    pub buckets: Vec<u64>,
    /// Histogram sum.
    pub sum: f64,
}

/// What the reader found besides the series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(not(any(test, feature = "testing")), allow(unreachable_pub))]
pub struct SeriesStats {
    /// Label values that did not fit in the intern table.
    pub strings_overflowed: u64,
    /// Series that did not fit and went to their family's overflow series.
    pub series_overflowed: u64,
    /// Published entries with out-of-range fields (skipped).
    pub corrupt_entries: u64,
    /// Series registered.
    pub registered: u64,
}

/// Reads and merges every published series. Every index and length comes
/// from the validated layout; entries with out-of-range fields are skipped
/// and counted. (Scrapes use [`read_all_with`]; this is for the test door.)
#[cfg(any(test, feature = "testing"))]
pub(crate) fn read_all(seg: &Segment) -> (Vec<SeriesValue>, SeriesStats) {
    read_all_with(seg, &seg.series_region().shapes(), |i| seg.slot_alive(i))
}

/// [`read_all`] with the families' `shapes` already read, asking
/// `alive(i)` whether writer slot `i`'s writer lives (only for active
/// slots), so a scrape reads the family directory and asks the kernel once.
pub(crate) fn read_all_with(
    seg: &Segment,
    shapes: &Shapes,
    mut alive: impl FnMut(usize) -> bool,
) -> (Vec<SeriesValue>, SeriesStats) {
    let r = seg.series_region();
    let mut stats = SeriesStats {
        strings_overflowed: r.alloc[alloc::STRINGS_OVERFLOWED].load(Ordering::Relaxed),
        series_overflowed: r.alloc[alloc::SERIES_OVERFLOWED].load(Ordering::Relaxed),
        ..SeriesStats::default()
    };
    // Entries first, then strings: a writer interns a series' label
    // values before it claims the entry, so every entry below `n_series`
    // names strings below the `n_strings` loaded after it. (In the other
    // order a series registered between the two loads would name a string
    // not yet counted, and read as corrupt.)
    let n_series = (r.alloc[alloc::NEXT_SERIES].load(Ordering::Acquire) as usize).min(r.dir.len());
    let n_strings =
        (r.alloc[alloc::NEXT_STRING].load(Ordering::Acquire) as usize).min(r.strings.len());
    let strings: Vec<Option<String>> = r.strings[..n_strings]
        .iter()
        .map(|e| usable_string(e).map(|(b, len)| String::from_utf8_lossy(&b[..len]).into_owned()))
        .collect();
    stats.registered = n_series.saturating_sub(LIVEKIT_FAMILIES) as u64;
    // Writer slots whose labeled gauges count: active, with a live writer.
    let live: Vec<usize> = seg
        .slots()
        .iter()
        .enumerate()
        .filter(|(i, s)| s.state() == ACTIVE && alive(*i))
        .map(|(i, _)| i)
        .collect();
    // What thread writers' rows hold of the values.
    let in_rows = r.row_values();
    let mut merged: HashMap<(FamilyId, Vec<String>), SeriesValue> = HashMap::new();
    for e in &r.dir[..n_series] {
        if e.w[0].load(Ordering::Acquire) != PUBLISHED {
            continue;
        }
        let Some(e) = read_entry(&r, shapes, e) else {
            stats.corrupt_entries += 1;
            continue;
        };
        let (family, n, base, ids, nl, kind) = (e.family, e.n, e.base, e.ids, e.nl, e.shape.kind);
        let labels: Option<Vec<String>> = ids[..nl]
            .iter()
            .map(|&id| match id {
                OVERFLOW_ID => Some(OVERFLOW_LABEL.to_string()),
                _ => strings.get(id as usize).cloned().flatten(),
            })
            .collect();
        let Some(labels) = labels else {
            stats.corrupt_entries += 1;
            continue;
        };
        let slot = merged
            .entry((family, labels.clone()))
            .or_insert_with(|| SeriesValue {
                family,
                labels,
                value: 0,
                buckets: Vec::new(),
                sum: 0.0,
            });
        if kind == Kind::Gauge {
            // One word per writer slot, in block 0: only live writers count.
            let mut v = 0u64;
            for w in live.iter().filter_map(|&i| r.gauge_word(base, i)) {
                v = v.wrapping_add(w.load(Ordering::Relaxed));
            }
            slot.value = slot.value.wrapping_add(v);
        } else if kind == Kind::Histogram {
            let sums: Vec<u64> = (0..n)
                .map(|k| r.value_sum(base + k).wrapping_add(in_rows.count(base + k)))
                .collect();
            // Classic buckets and +Inf, the sum, then a native histogram's
            // native words (§8b), which follow the classic counts here.
            let nb = e.shape.bounds + 1;
            if slot.buckets.is_empty() {
                slot.buckets = vec![0; n - 1];
            }
            let ints = sums[..nb].iter().chain(&sums[nb + 1..]);
            for (b, v) in slot.buckets.iter_mut().zip(ints) {
                *b = b.wrapping_add(*v);
            }
            // Per-shard sums are f64 bits: add them as floats.
            let mut s = 0.0;
            let mut i = base + nb;
            while i < r.values.len() {
                s += f64::from_bits(r.values[i].load(Ordering::Relaxed));
                i += r.values_per_shard;
            }
            slot.sum += s + in_rows.float_sum(base + nb);
        } else {
            let v = r.value_sum(base).wrapping_add(in_rows.count(base));
            slot.value = slot.value.wrapping_add(v);
        }
    }
    let mut out: Vec<SeriesValue> = merged.into_values().collect();
    out.sort_by(|a, b| (a.family, &a.labels).cmp(&(b.family, &b.labels)));
    (out, stats)
}
