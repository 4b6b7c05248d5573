//! The C ABI (`include/nodestats.h`, generated from this module by cbindgen).
//!
//! ```c
//! nodestats_t *s;
//! if (nodestats_open("/sfu-stats", &s) != NODESTATS_STATUS_OK) { /* ... */ }
//! nodestats_record_packets(s, NODESTATS_DIRECTION_INCOMING, 32, 38400, false);
//! nodestats_close(s);
//! ```
//!
//! Conventions (the README's "C API conventions" is the contract):
//!
//! * Every symbol starts with `nodestats_`; handles are opaque and come in
//!   `_open`/`_close` pairs ([`nodestats_t`], [`nodestats_thread_t`],
//!   [`nodestats_collector_t`],
//!   [`nodestats_series_t`], [`nodestats_exporter_t`]).
//! * Setup functions return a [`nodestats_status`] with fixed values, mapped
//!   from [`Error`](crate::Error) in one `match`. Out-parameters are written
//!   only on success. Every pointer is NULL-checked (`NULL_ARGUMENT`), and
//!   every such function runs inside one boundary (the `boundary!` macro) that turns
//!   a panic into `NODESTATS_STATUS_PANIC`: no unwinding crosses into C.
//! * Hot-path functions (`nodestats_record_*`, `nodestats_room_started`, …)
//!   return nothing and cannot fail: a NULL handle or an out-of-range enum
//!   value makes them do nothing. They neither allocate nor lock: a call is
//!   a NULL check, a dereference and the inlined [`Stats`](crate::Stats)
//!   method.
//!   Thread writers ([`nodestats_thread_t`], one per long-lived worker
//!   thread) are the floor: `nodestats_thread_record_packets` is a NULL
//!   check, an index and two plain load/add/stores to the thread's own row.
//!   Series handles ([`nodestats_series_t`]) are hot-path handles too:
//!   `nodestats_series_inc_by`, `_add` and `_observe` are an atomic add on
//!   the current CPU's shard.
//! * LiveKit's labeled recording calls (`nodestats_record_rtt`,
//!   `nodestats_psrpc_error`, …) also return nothing and cannot fail (a
//!   NULL or non-UTF-8 string is a no-op too), but they hash their labels
//!   and take a read lock to find the series (registering it, which
//!   allocates, on first use), and run behind a panic guard: per-request
//!   paths, not per-packet ones.
//! * Enum parameters and fields are read as raw `uint32_t` and validated
//!   ([`DirectionArg`] and friends; `MaybeUninit<E>` for the newer enums),
//!   because a C enum can hold any integer and an invalid Rust enum value
//!   would be undefined behaviour.
//!
//! Layout: [`status`](nodestats_status) and the boundary here in `boundary`,
//! enum and option types in `types`, the writer handle in `writer`, the
//! thread writer handle (a row per long-lived thread) in `thread`, the
//! merged statistics structs in `node_stats`, the collector in `collector`,
//! series handles in `series`, the labeled recording calls in `labeled`,
//! the Prometheus exporter handle in `exporter`.
//!
//! # Safety
//!
//! Every exported function that takes a pointer is an `unsafe extern "C"`
//! fn with a `# Safety` section: the caller promises the pointer is NULL or
//! points to what the function says (a live handle from the matching
//! `_open`, a NUL-terminated string, writable storage). Inside, pointers
//! are NULL-checked before use, handles are only dereferenced for the
//! duration of the call, enum values are validated from raw integers
//! before they become Rust enums, and no panic unwinds across the
//! boundary.

#![allow(non_camel_case_types)]

/// Runs a setup export's body behind the C boundary.
///
/// `boundary!([p, q] { body })` returns `NODESTATS_STATUS_NULL_ARGUMENT`
/// from the enclosing function if any listed pointer is NULL; otherwise it
/// runs `body` (a block evaluating to `Result<(), nodestats_status>`, where
/// `?` converts a [`crate::Error`]) under `catch_unwind` and yields its
/// status, `NODESTATS_STATUS_PANIC` if it panicked.
macro_rules! boundary {
    ([$($ptr:ident),* $(,)?] $body:block) => {{
        $(
            if $ptr.is_null() {
                return $crate::ffi::nodestats_status::NullArgument;
            }
        )*
        $crate::ffi::boundary::catch(
            move || -> ::core::result::Result<(), $crate::ffi::nodestats_status> { $body },
        )
    }};
}

// Declared in the order the header presents them (cbindgen keeps it).
mod boundary;
mod collector;
mod node_stats;
mod types;
mod writer;

// Thread writers: a row of counters per long-lived C thread.
mod thread;

// Labeled series, families declared at run time, LiveKit's labeled
// recording calls, Prometheus text.
mod family;
mod series;

mod labeled;

mod exporter;

pub use boundary::{nodestats_status, nodestats_status_str, nodestats_version, StatusArg};
pub use collector::{
    nodestats_collector_close, nodestats_collector_from, nodestats_collector_json,
    nodestats_collector_open, nodestats_collector_options_init, nodestats_collector_t,
    nodestats_collector_update,
};
pub use node_stats::{
    nodestats_node_stats, nodestats_node_stats_rate, NODESTATS_SEGMENT_ID_SIZE,
    NODESTATS_UNAVAILABLE,
};
pub use thread::*;
pub use types::{
    nodestats_collector_options, nodestats_connection_quality, nodestats_direction,
    nodestats_disposition, nodestats_options, nodestats_track_kind, nodestats_track_source,
    nodestats_write_mode, DirectionArg, DispositionArg, TrackKindArg, WriteModeArg,
    NODESTATS_MAX_RATE_INTERVALS,
};
pub use writer::*;

pub use exporter::{
    nodestats_exporter_close, nodestats_exporter_open, nodestats_exporter_open_collector,
    nodestats_exporter_t, nodestats_exporter_text, nodestats_exporter_write, nodestats_format,
    nodestats_format_content_type, nodestats_format_negotiate, FormatArg,
};
pub use family::{
    nodestats_family_declare, nodestats_family_spec, nodestats_family_spec_init,
    nodestats_metric_kind, MetricKindArg,
};
pub use labeled::*;
pub use series::{
    nodestats_series_add, nodestats_series_close, nodestats_series_inc_by,
    nodestats_series_observe, nodestats_series_open, nodestats_series_t,
};
