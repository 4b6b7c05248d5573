//! Series handles: one labeled series resolved once, then recorded into
//! with no lookup, no lock and no allocation.

use super::boundary::nodestats_status;
use super::types::name_arg;
use super::writer::nodestats_t;
use crate::schema::{FamilyId, Kind};
use crate::segment::series::MAX_LABELS;
use crate::write::SeriesHandle;
use crate::Stats;
use std::ffi::{c_char, CStr};

/// A series handle: one series of one family (a [`SeriesHandle`]). Opaque
/// to C.
///
/// Made by `nodestats_series_open`, freed by `nodestats_series_close`. Any
/// number of threads may record through one handle at once. It keeps the
/// segment mapped, so it may outlive the writer handle it was opened from.
#[derive(Debug)]
pub struct nodestats_series_t {
    series: SeriesHandle,
    /// The family's kind: each recording call checks it (a histogram
    /// observation on a counter would write past the series' values).
    kind: Kind,
}

/// The series behind `h` if it is of `kind`.
///
/// # Safety
/// `h` is NULL or a live handle from `nodestats_series_open`.
#[inline(always)]
unsafe fn series<'a>(h: *const nodestats_series_t, kind: Kind) -> Option<&'a SeriesHandle> {
    // SAFETY: per the contract, `h` is NULL or points to a live
    // `nodestats_series_t` that nobody frees during the caller's call.
    let h = unsafe { h.as_ref() }?;
    (h.kind == kind).then_some(&h.series)
}

/// The family and label values of a series-open call on `stats`' segment.
/// The label count is checked against the family's before any label
/// pointer is read.
///
/// # Safety
/// `family` is a non-NULL, NUL-terminated string; `labels` is NULL or
/// points to `n_labels` pointers, each NULL or a NUL-terminated string.
pub(crate) unsafe fn series_args<'a>(
    stats: &Stats,
    family: *const c_char,
    labels: *const *const c_char,
    n_labels: usize,
) -> Result<(FamilyId, [&'a str; MAX_LABELS], usize), nodestats_status> {
    // SAFETY: non-NULL (checked) and NUL-terminated per the contract.
    let name = unsafe { name_arg(family) }?.ok_or(nodestats_status::NullArgument)?;
    let family = stats.family(name)?;
    if n_labels != stats.family_labels(family)? || n_labels > MAX_LABELS {
        return Err(nodestats_status::InvalidArgument);
    }
    if n_labels > 0 && labels.is_null() {
        return Err(nodestats_status::NullArgument);
    }
    let mut values = [""; MAX_LABELS];
    for (i, v) in values.iter_mut().enumerate().take(n_labels) {
        // SAFETY: `labels` is non-NULL here and points to n_labels
        // pointers per the contract; i < n_labels.
        let p = unsafe { labels.add(i).read() };
        if p.is_null() {
            return Err(nodestats_status::NullArgument);
        }
        // SAFETY: non-NULL (checked) and NUL-terminated per the contract.
        *v = unsafe { CStr::from_ptr(p) }
            .to_str()
            .map_err(|_| nodestats_status::InvalidArgument)?;
    }
    Ok((family, values, n_labels))
}

/// Resolves the series of `family` (its Prometheus name: one of LiveKit's,
/// e.g. `"livekit_rtt_ms"`, or one any process declared in the segment with
/// `nodestats_family_declare`) with label values `labels[0..n_labels]`, in
/// the family's label order, registering it in the segment if needed, and
/// stores a new handle in `*out`.
///
/// `NODESTATS_STATUS_UNKNOWN_FAMILY` for a name no process declared.
/// `NODESTATS_STATUS_INVALID_ARGUMENT` for a label count
/// other than the family's, a family name or label value that is not
/// UTF-8, or a series the fixed counters and gauges already export (which
/// would be a duplicate sample): every series of `livekit_room_total`,
/// `livekit_participant_total`, `livekit_connection_total`,
/// `livekit_participant_join_total`, `livekit_track_published_total`,
/// `livekit_track_subscribed_total`, `livekit_track_publish_counter`,
/// `livekit_node_packet_total`, `livekit_forward_latency` and
/// `livekit_forward_jitter`; an empty `country` in `livekit_packet_total`,
/// `livekit_packet_bytes`, `livekit_nack_total`, `livekit_pli_total` and
/// `livekit_fir_total`; an empty `error` in
/// `livekit_track_subscribe_counter` (use the fixed calls for those).
/// `NODESTATS_STATUS_NULL_ARGUMENT` for a NULL `s`, `family`, `out`,
/// label value, or a NULL `labels` with `n_labels` > 0. Label values are
/// copied. A label value longer than 64 bytes, or one that does not fit in
/// the segment's intern table, is recorded as `__overflow__`; a series of a
/// family past its series cap (`max_series`), or one that does not fit,
/// lands in its family's overflow series (every label `__overflow__`):
/// opening never fails for lack of room. `*out` is untouched on error.
///
/// A gauge series' handle writes its writer's own part of the gauge, which
/// leaves the exported value when the writer process dies; the handle keeps
/// the writer's slot (and so that part) alive until it is closed too.
///
/// This is the slow path (it may lock, hash and allocate): open a handle
/// once, then record through it with `nodestats_series_inc_by`,
/// `nodestats_series_add` or `nodestats_series_observe`.
///
/// # Safety
/// `s` is a live writer handle; `family` is a NUL-terminated string;
/// `labels` is NULL or points to `n_labels` pointers, each NULL or a
/// NUL-terminated string; `out` is valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn nodestats_series_open(
    s: *const nodestats_t,
    family: *const c_char,
    labels: *const *const c_char,
    n_labels: usize,
    out: *mut *mut nodestats_series_t,
) -> nodestats_status {
    boundary!([s, family, out] {
        // SAFETY: `s` is non-NULL (checked) and live per the contract.
        let stats = unsafe { &(*s).stats };
        // SAFETY: forwarded from this function's contract.
        let (family, values, n_labels) = unsafe { series_args(stats, family, labels, n_labels) }?;
        let series = stats.series(family, &values[..n_labels])?;
        let handle = Box::into_raw(Box::new(nodestats_series_t {
            kind: series.kind(),
            series,
        }));
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Adds `n` to a counter series. Hot path: no lock, no allocation, no
/// system call, cannot fail. A NULL handle or a series that is not a
/// counter makes it a no-op.
///
/// # Safety
/// `h` is NULL (no-op) or a live handle from `nodestats_series_open`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_series_inc_by(h: *const nodestats_series_t, n: u64) {
    // SAFETY: forwarded from this function's contract.
    if let Some(series) = unsafe { series(h, Kind::Counter) } {
        series.inc_by(n);
    }
}

/// Adds `delta` (may be negative) to a gauge series; the exported value
/// is the sum over every writer, clamped at 0. Hot path. A NULL handle or a
/// series that is not a gauge makes it a no-op.
///
/// # Safety
/// `h` is NULL (no-op) or a live handle from `nodestats_series_open`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_series_add(h: *const nodestats_series_t, delta: i64) {
    // SAFETY: forwarded from this function's contract.
    if let Some(series) = unsafe { series(h, Kind::Gauge) } {
        series.add(delta);
    }
}

/// Observes `value` in a histogram series (in the family's unit: `_ms`
/// families take milliseconds, …). Hot path. A NULL handle or a series
/// that is not a histogram makes it a no-op.
///
/// # Safety
/// `h` is NULL (no-op) or a live handle from `nodestats_series_open`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_series_observe(h: *const nodestats_series_t, value: f64) {
    // SAFETY: forwarded from this function's contract.
    if let Some(series) = unsafe { series(h, Kind::Histogram) } {
        series.observe(value);
    }
}

/// Frees a series handle. What it recorded stays in the segment. NULL is a
/// no-op.
///
/// # Safety
/// `h` is NULL or a live handle from `nodestats_series_open` that no other
/// thread is using; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn nodestats_series_close(h: *mut nodestats_series_t) {
    if h.is_null() {
        return;
    }
    let _ = boundary!([] {
        // SAFETY: a live handle made by Box::into_raw in
        // `nodestats_series_open`, owned by the caller, who gives it up here.
        drop(unsafe { Box::from_raw(h) });
        Ok(())
    });
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::prom::Exporter;
    use crate::{Family, Stats};
    use std::collections::HashSet;
    use std::ffi::CString;
    use std::ptr;

    /// No series the C API lets one open duplicates a fixed one: with every
    /// label empty or not, each accepted family exports distinct samples.
    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn open_series_never_duplicate_fixed_series() {
        let s = nodestats_t {
            stats: Stats::anonymous().unwrap(),
        };
        let mut accepted = 0;
        for f in Family::ALL {
            let def = f.def();
            for value in ["", "x"] {
                let labels: Vec<CString> = def
                    .labels
                    .iter()
                    .map(|_| CString::new(value).unwrap())
                    .collect();
                let ptrs: Vec<*const c_char> = labels.iter().map(|l| l.as_ptr()).collect();
                let name = CString::new(def.name).unwrap();
                let mut h = ptr::null_mut();
                // SAFETY: live handle, NUL-terminated strings, n pointers.
                let st = unsafe {
                    nodestats_series_open(&s, name.as_ptr(), ptrs.as_ptr(), ptrs.len(), &mut h)
                };
                let fixed = f.duplicates_fixed(&vec![value; def.labels.len()]);
                assert_eq!(st == nodestats_status::Ok, !fixed, "{} {value:?}", def.name);
                if fixed {
                    continue;
                }
                accepted += 1;
                // SAFETY: `h` is live; each call checks the kind.
                unsafe {
                    nodestats_series_inc_by(h, 1);
                    nodestats_series_add(h, 1);
                    nodestats_series_observe(h, 1.0);
                    nodestats_series_close(h);
                }
            }
        }
        assert!(accepted > 50, "{accepted}");
        let text = Exporter::new(s.stats.segment().clone(), "n", "t")
            .unwrap()
            .text();
        let mut seen = HashSet::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let key = line.rsplit_once(' ').unwrap().0;
            assert!(seen.insert(key), "duplicate sample {key}");
        }
        // Every accepted series shows up with its value.
        assert!(text.contains("livekit_rtt_ms_count{country=\"x\",direction=\"x\",node_id=\"n\",node_type=\"t\",source=\"x\",type=\"x\"} 1\n"));
        assert!(text
            .contains("livekit_debug_ref_count{node_id=\"n\",node_type=\"t\",referrer=\"\"} 1\n"));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn calls_of_the_wrong_kind_are_ignored() {
        let stats = Stats::anonymous().unwrap();
        let series = stats
            .series(Family::NackTotal, &["incoming", "US"])
            .unwrap();
        let h = nodestats_series_t {
            series,
            kind: Kind::Counter,
        };
        // SAFETY: `h` is live for the calls.
        unsafe {
            nodestats_series_observe(&h, 5.0);
            nodestats_series_add(&h, 7);
            nodestats_series_inc_by(&h, 2);
        }
        let (all, _) = crate::read::series::read_all(stats.segment());
        let nack = all
            .iter()
            .find(|s| s.family == Family::NackTotal && s.labels[1] == "US")
            .unwrap();
        assert_eq!(nack.value, 2);
    }
}
