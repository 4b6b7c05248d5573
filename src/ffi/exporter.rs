//! The exporter handle: every LiveKit metric family of a segment in the
//! Prometheus text format, into a caller's buffer.

use super::boundary::nodestats_status;
use super::collector::nodestats_collector_t;
use super::types::name_arg;
use super::writer::nodestats_t;
use crate::prom::Exporter;
use crate::segment::Segment;
use std::ffi::c_char;
use std::sync::{Arc, Mutex};

/// An exporter handle: a segment's metric families as Prometheus text
/// (an [`Exporter`]). Opaque to C.
///
/// Made by `nodestats_exporter_open` or `nodestats_exporter_open_collector`,
/// freed by `nodestats_exporter_close`. Any number of threads may call
/// `nodestats_exporter_text` at once. It keeps the segment mapped, so it
/// may outlive the handle it was opened from.
#[derive(Debug)]
pub struct nodestats_exporter_t {
    exporter: Exporter,
    /// The text that did not fit the caller's buffer, returned by the next
    /// call whose buffer it fits.
    pending: Mutex<Option<String>>,
}

/// Builds an exporter over `segment` and stores it in `*out`.
///
/// # Safety
/// `node_id` and `node_type` are non-NULL NUL-terminated strings; `out` is
/// non-NULL and valid for writing a pointer.
unsafe fn open(
    segment: Arc<Segment>,
    node_id: *const c_char,
    node_type: *const c_char,
    out: *mut *mut nodestats_exporter_t,
) -> Result<*mut nodestats_exporter_t, nodestats_status> {
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let node_id = unsafe { name_arg(node_id) }?.ok_or(nodestats_status::NullArgument)?;
    // SAFETY: as above.
    let node_type = unsafe { name_arg(node_type) }?.ok_or(nodestats_status::NullArgument)?;
    let exporter = Exporter::new(segment, node_id, node_type)?;
    let handle = Box::into_raw(Box::new(nodestats_exporter_t {
        exporter,
        pending: Mutex::new(None),
    }));
    // SAFETY: per the contract; `write` does not read the old value.
    unsafe { out.write(handle) };
    Ok(handle)
}

/// Stores in `*out` an exporter of the segment of writer `s`, with
/// LiveKit's const labels `node_id` and `node_type` on every series.
///
/// It exports every family fed by the segment (counters, gauges, labeled
/// series, from every process writing it); the system families
/// (`livekit_node_packet_total`, `nodestats_cpus`, …) need a collector: use
/// `nodestats_exporter_open_collector` for those. `node_id` and `node_type`
/// are copied; not UTF-8 gives `NODESTATS_STATUS_INVALID_ARGUMENT`. `*out`
/// is untouched on error.
///
/// # Safety
/// `s` is a live writer handle; `node_id` and `node_type` are
/// NUL-terminated strings; `out` is valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn nodestats_exporter_open(
    s: *const nodestats_t,
    node_id: *const c_char,
    node_type: *const c_char,
    out: *mut *mut nodestats_exporter_t,
) -> nodestats_status {
    boundary!([s, node_id, node_type, out] {
        // SAFETY: `s` is non-NULL (checked) and live per the contract.
        let segment = unsafe { &(*s).stats }.segment().clone();
        // SAFETY: the strings and `out` are non-NULL (checked) and valid
        // per the contract.
        unsafe { open(segment, node_id, node_type, out) }?;
        Ok(())
    })
}

/// Stores in `*out` an exporter of the segment collector `c` reads
/// (read-only: a collector process needs no writer), like
/// `nodestats_exporter_open`. Every later `nodestats_collector_update` of
/// `c` (and the latest one, if any) also feeds the exporter's system and
/// collector families; closing either handle first is fine.
///
/// # Safety
/// `c` is a live collector not used by another thread during the call;
/// `node_id` and `node_type` are NUL-terminated strings; `out` is valid for
/// writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn nodestats_exporter_open_collector(
    c: *const nodestats_collector_t,
    node_id: *const c_char,
    node_type: *const c_char,
    out: *mut *mut nodestats_exporter_t,
) -> nodestats_status {
    boundary!([c, node_id, node_type, out] {
        // SAFETY: `c` is non-NULL (checked), live, and not used elsewhere
        // during the call, per the contract.
        let c = unsafe { &*c };
        let segment = c.collector.segment().clone();
        // SAFETY: the strings and `out` are non-NULL (checked) and valid
        // per the contract.
        let handle = unsafe { open(segment, node_id, node_type, out) }?;
        // SAFETY: just made by `open`, not yet seen by the caller.
        c.link(&unsafe { &*handle }.exporter.state());
        Ok(())
    })
}

/// Writes every metric family in the Prometheus text exposition format
/// (version 0.0.4), NUL-terminated, into `buf`, and its length without the
/// NUL into `*len`. Families with no series yet are left out.
///
/// If `cap` is smaller than the text plus its NUL, returns
/// `NODESTATS_STATUS_BUFFER_TOO_SMALL` and stores the needed capacity (NUL
/// included) in `*len`; `buf` is untouched. The next call whose buffer
/// holds that capacity returns that same text; other calls read the
/// segment afresh. `buf` may be NULL when `cap` is 0, to ask for the size.
/// Reading the segment allocates: this is for a scrape, not a hot path.
///
/// # Safety
/// `e` is a live exporter; `buf` is valid for writing `cap` bytes (or NULL
/// with `cap` 0); `len` is valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_exporter_text(
    e: *const nodestats_exporter_t,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> nodestats_status {
    boundary!([e, len] {
        if buf.is_null() && cap != 0 {
            return Err(nodestats_status::NullArgument);
        }
        // SAFETY: `e` is non-NULL (checked) and live per the contract.
        let e = unsafe { &*e };
        let mut pending = e.pending.lock().unwrap_or_else(|p| p.into_inner());
        let text = match pending.take() {
            Some(text) if text.len() < cap => text,
            _ => e.exporter.text(),
        };
        if cap <= text.len() {
            // SAFETY: `len` is non-NULL (checked) and writable per the contract.
            unsafe { len.write(text.len() + 1) };
            *pending = Some(text);
            return Err(nodestats_status::BufferTooSmall);
        }
        // SAFETY: `buf` is non-NULL (cap > text.len() >= 0) and writable for
        // `cap` > text.len() bytes per the contract; the regions cannot
        // overlap, `text` being our own allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            buf.add(text.len()).write(0);
            len.write(text.len());
        }
        Ok(())
    })
}

/// Frees an exporter (unmapping its segment if it was the last user). NULL
/// is a no-op.
///
/// # Safety
/// `e` is NULL or a live exporter no other thread is using; it is invalid
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn nodestats_exporter_close(e: *mut nodestats_exporter_t) {
    if e.is_null() {
        return;
    }
    let _ = boundary!([] {
        // SAFETY: a live handle made by Box::into_raw in `open`, owned by
        // the caller, who gives it up here.
        drop(unsafe { Box::from_raw(e) });
        Ok(())
    });
}
