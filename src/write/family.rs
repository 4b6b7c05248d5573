//! What a writer knows of a family: where its series are registered, its
//! histogram bounds and its name, for LiveKit's families and declared ones.

use crate::schema::{Family, FamilyId, FamilySpec, Kind};
use crate::segment::series::{Shape, Target};
use std::sync::{Arc, OnceLock};

/// What a writer knows of a family: where its series go, its histogram
/// bounds and its name.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) target: Target,
    pub(crate) bounds: Arc<[f64]>,
    pub(crate) name: Arc<str>,
}

/// What a writer needs of a declared family.
pub(crate) fn resolved_declared(family: FamilyId, spec: &FamilySpec, overflow: usize) -> Resolved {
    Resolved {
        target: Target {
            family,
            shape: Shape::of(spec),
            overflow_entry: overflow,
            max_series: spec.effective_max_series() as u64,
        },
        bounds: match spec.kind {
            Kind::Histogram => spec.effective_buckets().into(),
            _ => Arc::from([]),
        },
        name: spec.name.as_str().into(),
    }
}

/// The bucket bounds of a LiveKit family (empty for counters and gauges),
/// computed once and shared by every handle.
pub(crate) fn livekit_bounds(family: Family) -> Arc<[f64]> {
    livekit_bounds_table()[family as usize].clone()
}

/// [`livekit_bounds`] without a reference count.
#[inline]
pub(crate) fn livekit_bounds_ref(family: Family) -> &'static [f64] {
    &livekit_bounds_table()[family as usize]
}

fn livekit_bounds_table() -> &'static [Arc<[f64]>] {
    static TABLE: OnceLock<Vec<Arc<[f64]>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        Family::ALL
            .iter()
            .map(|f| {
                let (b, n) = f.def().buckets.bounds();
                match f.def().kind {
                    Kind::Histogram => Arc::from(&b[..n]),
                    _ => Arc::from([]),
                }
            })
            .collect()
    })
}
