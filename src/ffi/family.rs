//! Declaring families from C: `nodestats_family_spec`,
//! `nodestats_family_spec_init` and `nodestats_family_declare`.

use super::boundary::nodestats_status;
use super::types::name_arg;
use super::writer::nodestats_t;
use crate::schema::{
    FamilySpec, Kind, DEFAULT_NATIVE_MAX, DEFAULT_NATIVE_MIN, DEFAULT_NATIVE_SCHEMA,
    DEFAULT_NATIVE_ZERO_THRESHOLD, MAX_DECLARED_BUCKETS, MAX_FAMILY_LABELS,
};
use std::ffi::{c_char, CStr};

/// The kind of a declared family.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum nodestats_metric_kind {
    /// A monotonic counter (`nodestats_series_inc_by`).
    Counter = 0,
    /// A value that goes up and down (`nodestats_series_add`); each writer
    /// process's part leaves the exported value when the process dies.
    Gauge = 1,
    /// Observations in buckets with a sum and a count
    /// (`nodestats_series_observe`).
    Histogram = 2,
}

/// A `nodestats_metric_kind` as C stores it: any 32-bit value. The header
/// declares it as `nodestats_metric_kind`; unknown values are rejected with
/// `NODESTATS_STATUS_INVALID_ARGUMENT`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricKindArg(pub u32);

/// A family to declare with `nodestats_family_declare`. Fill it with
/// `nodestats_family_spec_init`, then set the fields you need; every
/// pointer is read during the call only (the strings and arrays are
/// copied).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct nodestats_family_spec {
    /// A Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`, at most 128
    /// bytes, not starting with `__` or `nodestats_`). Required.
    pub name: *const c_char,
    /// Help text, at most 864 bytes of UTF-8 (NULL: empty).
    pub help: *const c_char,
    /// Counter, gauge or histogram (default counter).
    pub kind: MetricKindArg,
    /// `n_labels` label names (Prometheus label names, at most 64 bytes,
    /// not starting with `__`, no `le` on a histogram, not `node_id` or
    /// `node_type`, which the exporter adds); label values are given in
    /// this order when a series is opened.
    pub label_names: *const *const c_char,
    /// 0 to 8.
    pub n_labels: usize,
    /// Histogram upper bounds, finite and strictly increasing, +Inf
    /// implied; NULL with `n_buckets` 0 gives client_golang's default
    /// buckets (0.005 … 10). Must be empty for counters and gauges.
    pub buckets: *const f64,
    /// 0 to 48.
    pub n_buckets: usize,
    /// The most series (label sets) the family may have; later ones are
    /// recorded in the family's overflow series (every label
    /// `__overflow__`), counted in `nodestats_series_overflow_total`. 0: the
    /// default, 2000.
    pub max_series: u32,
    /// The unit (`[a-zA-Z0-9_]`, at most 32 bytes), e.g. `"seconds"`;
    /// NULL: none.
    pub unit: *const c_char,
    /// A histogram with native (sparse exponential) buckets beside its
    /// classic ones, as Prometheus' native histograms: set it after
    /// `nodestats_family_spec_init` (default false). With `n_buckets` 0 a
    /// native histogram has no classic buckets (not the defaults). See
    /// SEGMENT.md §8b for what a series keeps.
    pub native: bool,
    /// The native schema, -4 to 8 (bucket boundaries are powers of
    /// 2^(2^-schema)); `nodestats_family_spec_init` makes it 3.
    pub native_schema: i32,
    /// Observations with |v| at most this go to the zero bucket: finite,
    /// not negative; `nodestats_family_spec_init` makes it 2^-128.
    pub native_zero_threshold: f64,
    /// The absolute values the native buckets cover, 0 < min <= max,
    /// finite, at most 2048 buckets apart at the schema; observations
    /// outside go to the outermost bucket and are counted in
    /// `nodestats_native_clamped_total`. `nodestats_family_spec_init` makes
    /// them 2^-10 and 2^30 (321 buckets at schema 3).
    pub native_min: f64,
    /// See `native_min`.
    pub native_max: f64,
}

/// Fills `*spec` with the defaults: every pointer NULL, every count 0, a
/// counter with the default series cap. NULL is a no-op.
///
/// # Safety
/// `spec` is NULL or valid for writing a `nodestats_family_spec`.
#[no_mangle]
pub unsafe extern "C" fn nodestats_family_spec_init(spec: *mut nodestats_family_spec) {
    if !spec.is_null() {
        // SAFETY: non-NULL and writable per the contract.
        unsafe {
            spec.write(nodestats_family_spec {
                name: std::ptr::null(),
                help: std::ptr::null(),
                kind: MetricKindArg(nodestats_metric_kind::Counter as u32),
                label_names: std::ptr::null(),
                n_labels: 0,
                buckets: std::ptr::null(),
                n_buckets: 0,
                max_series: 0,
                unit: std::ptr::null(),
                native: false,
                native_schema: DEFAULT_NATIVE_SCHEMA as i32,
                native_zero_threshold: DEFAULT_NATIVE_ZERO_THRESHOLD,
                native_min: DEFAULT_NATIVE_MIN,
                native_max: DEFAULT_NATIVE_MAX,
            })
        };
    }
}

/// The Rust spec of a C one.
///
/// # Safety
/// As for `nodestats_family_declare`'s `spec`.
unsafe fn spec_of(c: &nodestats_family_spec) -> Result<FamilySpec, nodestats_status> {
    // SAFETY: NUL-terminated or NULL per the contract.
    let name = unsafe { name_arg(c.name) }?.ok_or(nodestats_status::NullArgument)?;
    // SAFETY: as above.
    let help = unsafe { name_arg(c.help) }?.unwrap_or("");
    // SAFETY: as above.
    let unit = unsafe { name_arg(c.unit) }?.unwrap_or("");
    if c.n_labels > MAX_FAMILY_LABELS || c.n_buckets > MAX_DECLARED_BUCKETS {
        return Err(nodestats_status::InvalidArgument);
    }
    let mut labels = Vec::with_capacity(c.n_labels);
    if c.n_labels > 0 && c.label_names.is_null() {
        return Err(nodestats_status::NullArgument);
    }
    for i in 0..c.n_labels {
        // SAFETY: label_names points to n_labels pointers per the
        // contract; i < n_labels.
        let p = unsafe { c.label_names.add(i).read() };
        if p.is_null() {
            return Err(nodestats_status::NullArgument);
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let l = unsafe { CStr::from_ptr(p) }
            .to_str()
            .map_err(|_| nodestats_status::InvalidArgument)?;
        labels.push(l);
    }
    let buckets: &[f64] = match (c.buckets.is_null(), c.n_buckets) {
        (_, 0) => &[],
        (true, _) => return Err(nodestats_status::NullArgument),
        // SAFETY: `buckets` points to n_buckets doubles per the contract.
        (false, n) => unsafe { std::slice::from_raw_parts(c.buckets, n) },
    };
    let spec = match c.kind.0 {
        0 => FamilySpec::counter(name, help),
        1 => FamilySpec::gauge(name, help),
        2 => FamilySpec::histogram(name, help, buckets),
        _ => return Err(nodestats_status::InvalidArgument),
    };
    if spec.kind() != Kind::Histogram && !buckets.is_empty() {
        return Err(nodestats_status::InvalidArgument);
    }
    let spec = spec.labels(&labels).unit(unit).max_series(c.max_series);
    Ok(match c.native {
        false => spec,
        true => spec
            .native(i8::try_from(c.native_schema).map_err(|_| nodestats_status::InvalidArgument)?)
            .native_zero_threshold(c.native_zero_threshold)
            .native_range(c.native_min, c.native_max),
    })
}

/// Declares a family in `s`'s segment (slow path, any process), so that
/// its series can be opened by name with `nodestats_series_open` and
/// `nodestats_thread_series_open` — from this process or any other attached
/// to the segment — and every reader (`nodestats serve`, `nodestats show`,
/// `nodestats_exporter_*`) exports it with its help, type and buckets.
///
/// Declaring a family that exists with the same kind, label names, buckets
/// and unit returns `NODESTATS_STATUS_OK` (help and `max_series` of the
/// first declaration stand): declare it from every process that uses it.
///
/// `NODESTATS_STATUS_FAMILY_CONFLICT` when the name exists with another
/// kind, labels, buckets or unit (LiveKit's families included);
/// `NODESTATS_STATUS_INVALID_ARGUMENT` for a name or label name that breaks
/// Prometheus' rules (or starts with `__`, or `nodestats_` for a family),
/// a histogram label `le`, more than 8 labels or 48 buckets, buckets that
/// are not finite and strictly increasing, buckets on a counter or gauge,
/// `native` on a counter or gauge, a native schema, zero threshold or range
/// out of its bounds,
/// an unknown kind, or strings that are not UTF-8 or too long;
/// `NODESTATS_STATUS_NULL_ARGUMENT` for a NULL `s`, `spec`, `spec->name`,
/// label name, or array with a non-zero count;
/// `NODESTATS_STATUS_FAMILY_DIRECTORY_FULL` when the segment's family
/// directory is full (128 families by default);
/// `NODESTATS_STATUS_FAMILY_BUSY` when another live process has been
/// declaring the same name for longer than 5 s without finishing (retry);
/// `NODESTATS_STATUS_UNSUPPORTED_VERSION` for a segment made by a nodestats
/// older than layout 2.2, which has no family directory. A reader never
/// sees a family half-declared.
///
/// # Safety
/// `s` is a live writer handle; `spec` points to an initialised
/// `nodestats_family_spec` whose strings are NULL or NUL-terminated and
/// whose arrays hold their counts of elements.
#[no_mangle]
pub unsafe extern "C" fn nodestats_family_declare(
    s: *const nodestats_t,
    spec: *const nodestats_family_spec,
) -> nodestats_status {
    boundary!([s, spec] {
        // SAFETY: non-NULL (checked) and initialised per the contract.
        let spec = unsafe { spec_of(&*spec) }?;
        // SAFETY: `s` is non-NULL (checked) and live per the contract.
        let stats = unsafe { &(*s).stats };
        stats.declare(&spec)?;
        Ok(())
    })
}
