//! The collector handle: NodeStats with rates, as structs or JSON.

use super::boundary::nodestats_status;
use super::node_stats::{nodestats_node_stats, nodestats_node_stats_rate};
use super::types::{name_arg, nodestats_collector_options};
use super::writer::nodestats_t;
use crate::prom::ExporterState;
use crate::read::NodeStats;
use crate::read::{Collector, CollectorConfig};
use crate::segment::{Access, Segment, SegmentOptions};
use std::ffi::c_char;
use std::sync::{Arc, Mutex, Weak};

/// A collector handle: reads a segment into NodeStats with rates. Opaque
/// to C.
///
/// Made by `nodestats_collector_open` or `nodestats_collector_from`, freed
/// by `nodestats_collector_close`. Use it from one thread at a time.
#[derive(Debug)]
pub struct nodestats_collector_t {
    pub(crate) collector: Collector,
    /// The latest update, what `nodestats_collector_json` serialises.
    last: Option<NodeStats>,
    /// Exporters opened on this collector (`nodestats_exporter_open_collector`):
    /// each update is published to those still open.
    exporters: Mutex<Vec<Weak<ExporterState>>>,
}

impl nodestats_collector_t {
    /// Takes an update and publishes it (and the segment the collector now
    /// follows) to the linked exporters; an unreadable segment is an error
    /// the exporters learn of too.
    fn update(&mut self) -> crate::Result<NodeStats> {
        let got = self.collector.try_update();
        let anomalies = self.collector.anomalies();
        let (segment, status) = (self.collector.segment(), self.collector.segment_status());
        let mut exporters = self.exporters.lock().unwrap_or_else(|e| e.into_inner());
        exporters.retain(|w| match w.upgrade() {
            Some(state) => {
                state.publish_segment(segment, status);
                if let Ok(ns) = &got {
                    state.publish(ns, anomalies);
                }
                true
            }
            None => false,
        });
        got
    }

    /// Feeds `state` with this collector's updates, starting with the
    /// latest one if any.
    pub(crate) fn link(&self, state: &Arc<ExporterState>) {
        if let Some(ns) = &self.last {
            state.publish(ns, self.collector.anomalies());
        }
        let mut exporters = self.exporters.lock().unwrap_or_else(|e| e.into_inner());
        exporters.retain(|w| w.strong_count() > 0);
        exporters.push(Arc::downgrade(state));
    }
}

/// The configuration `opts` stands for; NULL means the defaults.
///
/// # Safety
/// `opts` is NULL or points to an initialised `nodestats_collector_options`.
unsafe fn config(
    opts: *const nodestats_collector_options,
) -> Result<(CollectorConfig, bool), nodestats_status> {
    // SAFETY: NULL or initialised, per the contract.
    match unsafe { opts.as_ref() } {
        None => Ok((CollectorConfig::default(), false)),
        Some(o) => Ok((o.collector_config()?, o.allow_foreign_owner)),
    }
}

/// Boxes `collector` into a handle and stores it in `*out`.
///
/// # Safety
/// `out` is non-NULL and valid for writing a pointer.
unsafe fn publish(collector: Collector, out: *mut *mut nodestats_collector_t) {
    let handle = Box::into_raw(Box::new(nodestats_collector_t {
        collector,
        last: None,
        exporters: Mutex::new(Vec::new()),
    }));
    // SAFETY: per the contract; `write` does not read the old value.
    unsafe { out.write(handle) };
}

/// Fills `*opts` with the defaults: updates every 2000 ms, one 10 000 ms
/// rate interval, system probes on. A NULL `opts` is ignored.
///
/// # Safety
/// `opts` is NULL or valid for writing a `nodestats_collector_options`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_collector_options_init(opts: *mut nodestats_collector_options) {
    if !opts.is_null() {
        // SAFETY: non-NULL and writable per the contract.
        unsafe { opts.write(nodestats_collector_options::default()) };
    }
}

/// Attaches read-only to the named segment (it must exist: a collector
/// never creates one) and stores a new collector in `*out`. `opts` may be
/// NULL for the defaults. `*out` is untouched on error.
///
/// # Safety
/// `name` is a NUL-terminated string; `opts` is NULL or initialised; `out`
/// is valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn nodestats_collector_open(
    name: *const c_char,
    opts: *const nodestats_collector_options,
    out: *mut *mut nodestats_collector_t,
) -> nodestats_status {
    boundary!([name, out] {
        // SAFETY: non-NULL (checked) and NUL-terminated per the contract.
        let name = unsafe { name_arg(name) }?.ok_or(nodestats_status::NullArgument)?;
        // SAFETY: NULL or initialised per the contract.
        let (config, allow_foreign_owner) = unsafe { config(opts) }?;
        let seg_opts = SegmentOptions::new().allow_foreign_owner(allow_foreign_owner);
        let segment = Segment::attach_with(name, Access::ReadOnly, &seg_opts)?;
        let collector = Collector::new(Arc::new(segment), config)?;
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { publish(collector, out) };
        Ok(())
    })
}

/// Stores in `*out` a collector over the segment of writer `s` (any
/// segment, anonymous ones included). The collector keeps the segment
/// mapped after `s` is closed. `opts` may be NULL for the defaults.
///
/// # Safety
/// `s` is a live writer handle; `opts` is NULL or initialised; `out` is
/// valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn nodestats_collector_from(
    s: *const nodestats_t,
    opts: *const nodestats_collector_options,
    out: *mut *mut nodestats_collector_t,
) -> nodestats_status {
    boundary!([s, out] {
        // SAFETY: NULL or initialised per the contract.
        let (config, _) = unsafe { config(opts) }?;
        // SAFETY: `s` is non-NULL (checked) and live per the contract.
        let collector = Collector::new(unsafe { &(*s).stats }.segment().clone(), config)?;
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { publish(collector, out) };
        Ok(())
    })
}

/// Takes an update now: stores the NodeStats in `*out` and its rates, one
/// per configured interval in configuration order, in `rates[0..]`, with
/// their number in `*rates_len`.
///
/// `rates` may be NULL (rates are then not returned and `*rates_len` is 0);
/// otherwise `rates_cap` must be at least the number of configured rate
/// intervals, or nothing is updated and `NODESTATS_STATUS_BUFFER_TOO_SMALL`
/// is returned with that number in `*rates_len`. `rates_len` may be NULL.
/// Fewer rates than intervals come back only before the second update.
///
/// A named segment is followed by name: when the writer restarted and
/// another segment is at the name, the collector re-attaches to it (a
/// reset: rates restart from the new segment). When the segment's file was
/// shrunk under the mapping, nothing is read (reading would fault) and
/// `NODESTATS_STATUS_SIZE_MISMATCH` is returned, `*out` untouched; a valid
/// segment back at the name is picked up by a later update.
///
/// # Safety
/// `c` is a live collector not used by another thread during the call;
/// `out` is valid for writing a `nodestats_node_stats`; `rates` is NULL or
/// valid for writing `rates_cap` `nodestats_node_stats_rate`s; `rates_len`
/// is NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_collector_update(
    c: *mut nodestats_collector_t,
    out: *mut nodestats_node_stats,
    rates: *mut nodestats_node_stats_rate,
    rates_cap: usize,
    rates_len: *mut usize,
) -> nodestats_status {
    boundary!([c, out] {
        // SAFETY: `c` is non-NULL (checked), live and ours alone for the
        // call, per the contract.
        let c = unsafe { &mut *c };
        let needed = c.collector.config().rate_intervals.len();
        if !rates.is_null() && rates_cap < needed {
            if !rates_len.is_null() {
                // SAFETY: non-NULL and writable per the contract.
                unsafe { rates_len.write(needed) };
            }
            return Err(nodestats_status::BufferTooSmall);
        }
        let ns = c.update()?;
        // SAFETY: `out` is non-NULL (checked) and writable per the contract.
        unsafe { out.write(nodestats_node_stats::from(&ns)) };
        let mut written = 0;
        if !rates.is_null() {
            for (i, r) in ns.rates.iter().take(rates_cap).enumerate() {
                // SAFETY: i < rates_cap, and `rates` is writable for
                // rates_cap elements per the contract.
                unsafe { rates.add(i).write(nodestats_node_stats_rate::from(r)) };
                written += 1;
            }
        }
        if !rates_len.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { rates_len.write(written) };
        }
        c.last = Some(ns);
        Ok(())
    })
}

/// Writes the latest update (taking one first if there was none) as JSON,
/// LiveKit's `NodeStats` field names with its `rates`, NUL-terminated, into
/// `buf`, and its length without the NUL into `*len`.
///
/// If `cap` is smaller than the JSON plus its NUL, returns
/// `NODESTATS_STATUS_BUFFER_TOO_SMALL` and stores the needed capacity (NUL
/// included) in `*len`; `buf` is untouched. Calling again with a larger
/// buffer returns the same document, until the next update. `buf` may be
/// NULL when `cap` is 0, to ask for the size.
///
/// # Safety
/// `c` is a live collector not used by another thread during the call;
/// `buf` is valid for writing `cap` bytes (or NULL with `cap` 0); `len` is
/// valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_collector_json(
    c: *mut nodestats_collector_t,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> nodestats_status {
    boundary!([c, len] {
        if buf.is_null() && cap != 0 {
            return Err(nodestats_status::NullArgument);
        }
        // SAFETY: `c` is non-NULL (checked), live and ours alone for the
        // call, per the contract.
        let c = unsafe { &mut *c };
        let ns = match c.last.take() {
            Some(ns) => ns,
            None => c.update()?,
        };
        let ns = &*c.last.insert(ns);
        let json = serde_json::to_string(ns)
            .map_err(|e| crate::Error::from(std::io::Error::from(e)))?;
        if cap < json.len() + 1 {
            // SAFETY: `len` is non-NULL (checked) and writable per the contract.
            unsafe { len.write(json.len() + 1) };
            return Err(nodestats_status::BufferTooSmall);
        }
        // SAFETY: `buf` is non-NULL (cap > json.len() >= 0) and writable for
        // `cap` > json.len() bytes per the contract; the regions cannot
        // overlap, `json` being our own allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(json.as_ptr(), buf.cast::<u8>(), json.len());
            buf.add(json.len()).write(0);
            len.write(json.len());
        }
        Ok(())
    })
}

/// Frees a collector (unmapping its segment if it was the last user). NULL
/// is a no-op.
///
/// # Safety
/// `c` is NULL or a live collector no other thread is using; it is invalid
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn nodestats_collector_close(c: *mut nodestats_collector_t) {
    if c.is_null() {
        return;
    }
    let _ = boundary!([] {
        // SAFETY: a live handle made by Box::into_raw in `publish`, owned by
        // the caller, who gives it up here.
        drop(unsafe { Box::from_raw(c) });
        Ok(())
    });
}
