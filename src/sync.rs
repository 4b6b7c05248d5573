//! The one place that names the atomics.
//!
//! Production code uses `core::sync::atomic`; under `--cfg loom` the same
//! code is compiled against loom's model-checked atomics, so the code that
//! loom explores is the code that ships.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU64};

pub(crate) use core::sync::atomic::Ordering;
