//! The thread writer handle: a row of counters owned by one C thread.

use super::boundary::nodestats_status;
use super::types::DirectionArg;
use super::writer::{nodestats_t, stats};
use crate::write::thread::{cell_owner, take_owner, RowCell, RowRef};
use crate::write::ThreadStats;

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

/// The row behind `t`, if any: none for NULL, for a closed row, or in a
/// forked child.
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
    unsafe { RowRef::of(t.cast::<RowCell>()) }
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
        let writer = Box::into_raw(Box::new(ThreadStats::open(stats)?));
        // SAFETY: just leaked, so live; `nodestats_thread_close` frees it.
        let cell = unsafe { &*writer }.cell();
        // SAFETY: as above.
        unsafe { &*writer }.set_owner(writer.cast());
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
        drop(unsafe { Box::from_raw(owner.cast::<ThreadStats>()) });
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

/// The owning Rust handle of a live, non-inherited thread writer.
///
/// # Safety
/// As for `nodestats_thread_record_packets`.
#[inline(always)]
unsafe fn writer<'a>(t: *mut nodestats_thread_t) -> Option<&'a ThreadStats> {
    if t.is_null() {
        return None;
    }
    // SAFETY: a thread writer's cell per the contract; a non-NULL owner is
    // the live Box made by `nodestats_thread_open`.
    unsafe {
        cell_owner(t.cast::<RowCell>())
            .cast::<ThreadStats>()
            .as_ref()
    }
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
