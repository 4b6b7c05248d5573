//! The thread writer handle: a row of counters owned by one C thread.

use super::boundary::nodestats_status;
use super::series::series_args;
use super::types::DirectionArg;
use super::writer::{nodestats_t, stats};
use crate::schema::Kind;
use crate::write::thread::{cell_owner, take_owner, RowCell, RowMode, RowRef, ThreadSeriesRaw};
use crate::write::ThreadStats;
use std::cell::RefCell;
use std::ffi::c_char;

/// What a C thread writer handle owns: the Rust thread writer, and the
/// thread series opened from it (closing the thread writer turns them off,
/// so a series handle closed late records nothing instead of writing a
/// row that another thread may own by then).
#[derive(Debug)]
struct CThread {
    writer: ThreadStats,
    series: RefCell<Vec<*mut nodestats_thread_series_t>>,
}

/// A thread writer: a row of the segment's counters that only the thread
/// that opened it writes, with plain loads and stores. Opaque to C.
///
/// Made by `nodestats_thread_open` on the thread that will record through
/// it, freed by `nodestats_thread_close`. Use one per long-lived worker
/// thread (one pinned thread per core); use the `nodestats_t` calls from
/// thread pools and short-lived threads. Not to be shared between threads.
///
/// After `fork`, a handle inherited by the child records nothing and its
/// close releases nothing (the row is the parent's): open a new one in the
/// child.
#[derive(Debug)]
pub struct nodestats_thread_t {
    _opaque: [u8; 0],
}

/// The row behind `t`: none for NULL; for a handle inherited in a forked
/// child, its private scratch row.
///
/// # Safety
/// `t` is NULL or a live handle from `nodestats_thread_open` (or one
/// inherited across fork), used on its own thread.
#[inline(always)]
unsafe fn row<'a>(t: *mut nodestats_thread_t) -> Option<RowRef<'a>> {
    if t.is_null() {
        return None;
    }
    // SAFETY: per the contract, a non-NULL `t` is a thread writer's cell.
    Some(unsafe { RowRef::of(t.cast::<RowCell>()) })
}

/// Opens a thread writer on `s`'s segment for the calling thread: claims a
/// row of counters that only this thread will write (a free row, or one
/// whose writer died; a reused row keeps its counts). On success stores
/// the handle in `*out`; close it with `nodestats_thread_close` on the same
/// thread before the thread ends.
///
/// `NODESTATS_STATUS_NO_THREAD_ROW` when every row is held by a live
/// thread writer (see `nodestats_options.thread_rows`). `*out` is left
/// untouched on error. The thread writer keeps the segment mapped, so `s`
/// may be closed first.
///
/// A thread writer that is never closed (a thread that ends without its
/// cleanup, an event-loop thread that lives as long as the process) loses
/// nothing: what it recorded stays in the segment and is counted. But its
/// row stays claimed, by this process, until the process ends — no other
/// thread may claim that row meanwhile — and the handle's memory is not
/// freed. Once the process has ended, however it ended, the row is free
/// for the next `nodestats_thread_open`, its counts intact. So close
/// thread writers of threads that come and go; an unclosed one per
/// long-lived thread costs one row.
///
/// # Safety
/// `s` is a live handle from `nodestats_open*`; `out` is valid for writing
/// a pointer.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_open(
    s: *mut nodestats_t,
    out: *mut *mut nodestats_thread_t,
) -> nodestats_status {
    boundary!([s, out] {
        // SAFETY: `s` is non-NULL (checked) and live per the contract.
        let stats = unsafe { stats(s) }.ok_or(nodestats_status::NullArgument)?;
        let writer = Box::into_raw(Box::new(CThread {
            writer: ThreadStats::open(stats)?,
            series: RefCell::new(Vec::new()),
        }));
        // SAFETY: just leaked, so live; `nodestats_thread_close` frees it.
        let cell = unsafe { &*writer }.writer.cell();
        // SAFETY: as above.
        unsafe { &*writer }.writer.set_owner(writer.cast());
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { out.write(cell.cast()) };
        Ok(())
    })
}

/// Gives the thread writer's row back (its counts stay in the segment) and
/// frees the handle. NULL is a no-op. Closing a handle inherited across
/// `fork` frees the child's copy of it and releases nothing (the row stays
/// the parent's).
///
/// # Safety
/// `t` is NULL or a live handle from `nodestats_thread_open` that no other
/// thread is using; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_close(t: *mut nodestats_thread_t) {
    if t.is_null() {
        return;
    }
    // The Box made by `nodestats_thread_open` (also in a forked child,
    // where dropping it frees the memory and releases nothing).
    let owner = take_owner(t.cast::<RowCell>());
    if owner.is_null() {
        return;
    }
    let _ = boundary!([] {
        // SAFETY: the Box leaked by `nodestats_thread_open`, given up here
        // (taken out of the owner table, so only once).
        let thread = unsafe { Box::from_raw(owner.cast::<CThread>()) };
        for h in thread.series.borrow().iter() {
            // SAFETY: series handles still open on this thread writer
            // (closing one removes it from the list); same thread.
            unsafe {
                (**h).raw.mode = RowMode::Off;
                (**h).thread = std::ptr::null();
            }
        }
        drop(thread);
        Ok(())
    });
}

/// Records `packets` packets totalling `bytes` bytes into the thread's row,
/// as `nodestats_record_packets` does: two plain load-add-stores on a line
/// only this thread writes.
///
/// Hot path: no lock, no allocation, no system call, cannot fail. A NULL
/// handle, an unknown `dir` or a handle inherited across `fork` makes it a
/// no-op.
///
/// # Safety
/// `t` is NULL (no-op) or a live handle from `nodestats_thread_open`, used
/// on the thread that opened it.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_record_packets(
    t: *mut nodestats_thread_t,
    dir: DirectionArg,
    packets: u64,
    bytes: u64,
    retransmit: bool,
) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(row), Some(dir)) = (unsafe { row(t) }, dir.get()) {
        row.record_packets(dir, packets, bytes, retransmit);
    }
}

/// Records one packet of `bytes` bytes into the thread's row. Hot path.
///
/// # Safety
/// As for `nodestats_thread_record_packets`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_record_packet(
    t: *mut nodestats_thread_t,
    dir: DirectionArg,
    bytes: u64,
    retransmit: bool,
) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(row), Some(dir)) = (unsafe { row(t) }, dir.get()) {
        row.record_packets(dir, 1, bytes, retransmit);
    }
}

/// Records RTCP feedback (NACKs, PLIs, FIRs) into the thread's row, as
/// `nodestats_record_rtcp` does. Hot path.
///
/// # Safety
/// As for `nodestats_thread_record_packets`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_record_rtcp(
    t: *mut nodestats_thread_t,
    dir: DirectionArg,
    nack: u32,
    pli: u32,
    fir: u32,
) {
    // SAFETY: forwarded from this function's contract.
    if let (Some(row), Some(dir)) = (unsafe { row(t) }, dir.get()) {
        row.record_rtcp(dir, nack, pli, fir);
    }
}

/// The owning handle of a live, non-inherited thread writer.
///
/// # Safety
/// As for `nodestats_thread_record_packets`.
#[inline(always)]
unsafe fn owner<'a>(t: *mut nodestats_thread_t) -> Option<&'a CThread> {
    if t.is_null() {
        return None;
    }
    // SAFETY: a thread writer's cell per the contract; a non-NULL owner is
    // the live Box made by `nodestats_thread_open`.
    unsafe { cell_owner(t.cast::<RowCell>()).cast::<CThread>().as_ref() }
}

/// The Rust thread writer of a live, non-inherited thread writer.
///
/// # Safety
/// As for `nodestats_thread_record_packets`.
#[inline(always)]
unsafe fn writer<'a>(t: *mut nodestats_thread_t) -> Option<&'a ThreadStats> {
    // SAFETY: forwarded from this function's contract.
    unsafe { owner(t) }.map(|o| &o.writer)
}

/// Forwarding latency, ns: a gauge of the `nodestats_t` writer slot the
/// thread writer was opened from (as `nodestats_forward_latency`). Hot path.
///
/// # Safety
/// As for `nodestats_thread_record_packets`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_forward_latency(t: *mut nodestats_thread_t, ns: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(w) = unsafe { writer(t) } {
        w.forward_latency(ns);
    }
}

/// Forwarding jitter, ns (as `nodestats_forward_jitter`). Hot path.
///
/// # Safety
/// As for `nodestats_thread_record_packets`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_forward_jitter(t: *mut nodestats_thread_t, ns: u32) {
    // SAFETY: forwarded from this function's contract.
    if let Some(w) = unsafe { writer(t) } {
        w.forward_jitter(ns);
    }
}

/// A labeled series recorded from one thread writer's thread (a Rust
/// `ThreadSeries`). Opaque to C.
///
/// Made by `nodestats_thread_series_open`, freed by
/// `nodestats_thread_series_close`, used only on the thread writer's
/// thread. A counter or histogram series records into series slots of the
/// thread's row: plain loads and stores, like
/// `nodestats_thread_record_packets`. Closing the thread writer first turns
/// the series handle off (it records nothing; close it still).
#[derive(Debug)]
pub struct nodestats_thread_series_t {
    raw: ThreadSeriesRaw,
    kind: Kind,
    /// The thread writer's owner, while it is open.
    thread: *const CThread,
}

/// Resolves a labeled series as `nodestats_series_open` does (same
/// families, labels and errors) for recording from the thread writer `t`,
/// and stores a new handle in `*out`. A counter or histogram series takes
/// series slots of the thread's row (64 per row: a counter takes one, a
/// histogram its bucket count plus two; a slot stays with its series for
/// the segment's life, so a thread that reuses the row and opens the same
/// series reuses them); when the row has no free slots, or for a gauge, the
/// handle records through the per-CPU path instead. Opening never fails
/// for lack of room. `NODESTATS_STATUS_NULL_ARGUMENT` also for a thread
/// writer inherited across `fork` (open a new one in the child).
///
/// Slow path (it may lock, hash and allocate): open once per thread, then
/// record with `nodestats_thread_series_inc_by`, `_add` and `_observe`.
///
/// # Safety
/// `t` is a live handle from `nodestats_thread_open`, used on its own
/// thread; `family`, `labels` and `out` as for `nodestats_series_open`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_series_open(
    t: *mut nodestats_thread_t,
    family: *const c_char,
    labels: *const *const c_char,
    n_labels: usize,
    out: *mut *mut nodestats_thread_series_t,
) -> nodestats_status {
    boundary!([t, family, out] {
        // SAFETY: `t` is non-NULL (checked) and live per the contract.
        let thread = unsafe { owner(t) }.ok_or(nodestats_status::NullArgument)?;
        let stats = thread.writer.stats();
        // SAFETY: forwarded from this function's contract.
        let (family, values, n) = unsafe { series_args(stats, family, labels, n_labels) }?;
        let shared = stats.series(family, &values[..n])?;
        let kind = shared.kind();
        let raw = ThreadSeriesRaw::bind(&thread.writer, shared);
        let handle = Box::into_raw(Box::new(nodestats_thread_series_t {
            raw,
            kind,
            thread,
        }));
        thread.series.borrow_mut().push(handle);
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// The series behind `h` if it is of `kind`.
///
/// # Safety
/// `h` is NULL or a live handle from `nodestats_thread_series_open`.
#[inline(always)]
unsafe fn thread_series<'a>(
    h: *const nodestats_thread_series_t,
    kind: Kind,
) -> Option<&'a ThreadSeriesRaw> {
    // SAFETY: per the contract, NULL or live and used on its own thread.
    let h = unsafe { h.as_ref() }?;
    (h.kind == kind).then_some(&h.raw)
}

/// Adds `n` to a counter series. Hot path: no lock, no allocation, no
/// system call, cannot fail. A NULL handle, a series that is not a counter,
/// or a handle inherited across `fork` makes it a no-op.
///
/// # Safety
/// `h` is NULL (no-op) or a live handle from
/// `nodestats_thread_series_open`, used on its thread writer's thread.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_series_inc_by(
    h: *const nodestats_thread_series_t,
    n: u64,
) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { thread_series(h, Kind::Counter) } {
        s.inc_by(n);
    }
}

/// Adds `delta` to a gauge series (through the per-CPU path, as
/// `nodestats_series_add`). Hot path. A NULL handle or a series that is not
/// a gauge makes it a no-op.
///
/// # Safety
/// As for `nodestats_thread_series_inc_by`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_series_add(
    h: *const nodestats_thread_series_t,
    delta: i64,
) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { thread_series(h, Kind::Gauge) } {
        s.add(delta);
    }
}

/// Observes `value` in a histogram series (in the family's unit). Hot
/// path. A NULL handle or a series that is not a histogram makes it a
/// no-op.
///
/// # Safety
/// As for `nodestats_thread_series_inc_by`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_series_observe(
    h: *const nodestats_thread_series_t,
    value: f64,
) {
    // SAFETY: forwarded from this function's contract.
    if let Some(s) = unsafe { thread_series(h, Kind::Histogram) } {
        s.observe(value);
    }
}

/// Whether the thread series `h` records into its thread's row (plain
/// adds to series slots) rather than through the per-CPU path (a gauge, a
/// row whose series slots were full, or a handle whose thread writer is
/// closed or was inherited across `fork`). False for NULL. Not a hot-path
/// call, but it has no side effect and makes no system call.
///
/// # Safety
/// `h` is NULL or a live handle from `nodestats_thread_series_open`, on its
/// thread writer's thread.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_series_in_row(
    h: *const nodestats_thread_series_t,
) -> bool {
    // SAFETY: NULL or live per the contract.
    let Some(h) = (unsafe { h.as_ref() }) else {
        return false;
    };
    h.raw.in_row()
}

/// Frees a thread series handle; what it recorded stays in the segment
/// (its row slots stay bound to the series). NULL is a no-op. May come
/// before or after `nodestats_thread_close` of its thread writer.
///
/// # Safety
/// `h` is NULL or a live handle from `nodestats_thread_series_open`, on its
/// thread writer's thread; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn nodestats_thread_series_close(h: *mut nodestats_thread_series_t) {
    if h.is_null() {
        return;
    }
    let _ = boundary!([] {
        // SAFETY: a live handle made by Box::into_raw in
        // `nodestats_thread_series_open`, given up here.
        let handle = unsafe { Box::from_raw(h) };
        // SAFETY: a non-null `thread` is the open thread writer's owner
        // (closing it nulls this), on this thread.
        if let Some(thread) = unsafe { handle.thread.as_ref() } {
            thread.series.borrow_mut().retain(|&p| p != h);
        }
        drop(handle);
        Ok(())
    });
}
