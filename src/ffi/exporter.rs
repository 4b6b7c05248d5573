//! The exporter handle: every metric family of a segment in the Prometheus
//! text format, OpenMetrics or the Prometheus protobuf exposition, into a
//! caller's buffer; the formats'
//! numbers, content types and negotiation from an `Accept` header.

use super::boundary::nodestats_status;
use super::collector::nodestats_collector_t;
use super::types::name_arg;
use super::writer::nodestats_t;
use crate::prom::{Exporter, Format};
use crate::segment::Segment;
use std::ffi::{c_char, CStr};
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
    /// The body (and its format) that did not fit the caller's buffer,
    /// returned by the next call for that format whose buffer it fits.
    pending: Mutex<Option<(Format, Vec<u8>)>>,
}

/// An exposition format (`nodestats_exporter_write`). Values are fixed.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nodestats_format {
    /// Prometheus text 0.0.4 (what `nodestats_exporter_text` writes).
    Text = 0,
    /// The Prometheus protobuf exposition: length-delimited (a varint
    /// length, then the message) `io.prometheus.client.MetricFamily`
    /// messages, histograms with classic and native buckets. Binary: the
    /// body may hold NUL bytes, its length is `*len`.
    Protobuf = 1,
    /// OpenMetrics 1.0 text.
    Openmetrics = 2,
}

/// A `nodestats_format` as C passes it: any 32-bit value. The header
/// declares it as `nodestats_format`; values it does not name are
/// rejected with `NODESTATS_STATUS_INVALID_ARGUMENT`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatArg(pub u32);

impl FormatArg {
    fn get(self) -> Option<Format> {
        match self.0 {
            0 => Some(Format::Text),
            1 => Some(Format::Protobuf),
            2 => Some(Format::OpenMetrics),
            _ => None,
        }
    }
}

fn format_value(f: Format) -> nodestats_format {
    match f {
        Format::Text => nodestats_format::Text,
        Format::OpenMetrics => nodestats_format::Openmetrics,
        Format::Protobuf => nodestats_format::Protobuf,
    }
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
/// NUL into `*len`: `nodestats_exporter_write` with
/// `NODESTATS_FORMAT_TEXT`, whose buffer protocol it follows.
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
    // SAFETY: the caller's contract is this function's.
    unsafe { nodestats_exporter_write(e, FormatArg(nodestats_format::Text as u32), buf, cap, len) }
}

/// Writes every metric family in `format` into `buf`, followed by a NUL,
/// and the body's length without the NUL into `*len`. Families with no
/// series yet are left out. Serve it with the Content-Type
/// `nodestats_format_content_type(format)`; pick the format from the
/// scraper's Accept header with `nodestats_format_negotiate`.
///
/// If `cap` is smaller than the body plus its NUL, returns
/// `NODESTATS_STATUS_BUFFER_TOO_SMALL` and stores the needed capacity (NUL
/// included) in `*len`; `buf` is untouched. The next call for the same
/// format whose buffer holds that capacity returns that same body; other
/// calls read the segment afresh. `buf` may be NULL when `cap` is 0, to
/// ask for the size. A `NODESTATS_FORMAT_PROTOBUF` body is binary (it may
/// hold NUL bytes): its length is `*len`, not `strlen`. An unknown format
/// gives `NODESTATS_STATUS_INVALID_ARGUMENT`. Reading the segment allocates:
/// this is for a scrape, not a hot path.
///
/// # Safety
/// `e` is a live exporter; `buf` is valid for writing `cap` bytes (or NULL
/// with `cap` 0); `len` is valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_exporter_write(
    e: *const nodestats_exporter_t,
    format: FormatArg,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> nodestats_status {
    boundary!([e, len] {
        if buf.is_null() && cap != 0 {
            return Err(nodestats_status::NullArgument);
        }
        let format = format.get().ok_or(nodestats_status::InvalidArgument)?;
        // SAFETY: `e` is non-NULL (checked) and live per the contract.
        let e = unsafe { &*e };
        let mut pending = e.pending.lock().unwrap_or_else(|p| p.into_inner());
        let body = match pending.take() {
            Some((f, body)) if f == format && body.len() < cap => body,
            _ => e.exporter.write(format),
        };
        if cap <= body.len() {
            // SAFETY: `len` is non-NULL (checked) and writable per the contract.
            unsafe { len.write(body.len() + 1) };
            *pending = Some((format, body));
            return Err(nodestats_status::BufferTooSmall);
        }
        // SAFETY: `buf` is non-NULL (cap > body.len() >= 0) and writable for
        // `cap` > body.len() bytes per the contract; the regions cannot
        // overlap, `body` being our own allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(body.as_ptr(), buf.cast::<u8>(), body.len());
            buf.add(body.len()).write(0);
            len.write(body.len());
        }
        Ok(())
    })
}

/// The Content-Type to serve a body of `format` with (a static
/// NUL-terminated string), or NULL for a value that names no format.
#[no_mangle]
pub extern "C" fn nodestats_format_content_type(format: FormatArg) -> *const c_char {
    let ct: &'static CStr = match format.get() {
        Some(Format::Text) => c"text/plain; version=0.0.4; charset=utf-8",
        Some(Format::OpenMetrics) => c"application/openmetrics-text; version=1.0.0; charset=utf-8",
        Some(Format::Protobuf) => {
            c"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
        }
        None => return std::ptr::null(),
    };
    ct.as_ptr()
}

/// Stores in `*out` the format to answer a scrape whose `Accept` header is
/// `accept` with (NULL: no header): the one the scraper weighs highest
/// among those this build writes, `NODESTATS_FORMAT_TEXT` on a tie, when
/// nothing it accepts is offered, or without a header. Prometheus asks for
/// OpenMetrics first by default, and for `NODESTATS_FORMAT_PROTOBUF` first
/// with native histograms enabled. An `accept` that is not UTF-8 gives
/// `NODESTATS_STATUS_INVALID_ARGUMENT`; `*out` is untouched on error.
///
/// # Safety
/// `accept` is NULL or a NUL-terminated string; `out` is valid for writing
/// a `nodestats_format`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_format_negotiate(
    accept: *const c_char,
    out: *mut nodestats_format,
) -> nodestats_status {
    boundary!([out] {
        let accept = if accept.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated per the contract.
            let s = unsafe { CStr::from_ptr(accept) };
            Some(s.to_str().map_err(|_| nodestats_status::InvalidArgument)?)
        };
        let f = format_value(Format::negotiate(accept));
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { out.write(f) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_content_types_are_the_formats() {
        for f in Format::ALL {
            let arg = FormatArg(format_value(f) as u32);
            assert_eq!(arg.get(), Some(f));
            // SAFETY: a static NUL-terminated string for a known format.
            let ct = unsafe { CStr::from_ptr(nodestats_format_content_type(arg)) };
            assert_eq!(ct.to_str(), Ok(f.content_type()));
        }
        assert_eq!(FormatArg(3).get(), None);
        assert!(nodestats_format_content_type(FormatArg(3)).is_null());
    }
}
