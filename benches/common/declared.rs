//! The segment both scrape benches read (`benches/scrape.rs`, and
//! `cli/benches/otlp.rs` through `#[path]`): 50 families declared at run
//! time with 200 series each, 10 000 series in all — 40 counter families
//! (`sfu_family_<f>_total`), 10 histogram families of [`BOUNDS`]
//! (`sfu_family_<f>_seconds`). Series `room-<r>` of each family gets
//! `inc_by(r + 1)` and `observe(r / 1000)`. The directory and values are
//! sized for them (benches/README.md gives the segment's size).

use nodestats::{Capacities, FamilySpec, SegmentOptions, Stats};

/// The bucket bounds of the histogram families.
pub const BOUNDS: [f64; 8] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

/// An anonymous segment holding the 50 families.
pub fn fifty_families_of_200() -> Stats {
    let caps = Capacities {
        series: 16384,
        strings: 1024,
        values_per_block: 65536,
        families: 64,
    };
    let stats = Stats::open(&SegmentOptions::new().capacities(caps)).unwrap();
    for f in 0..50 {
        let spec = if f < 40 {
            FamilySpec::counter(&format!("sfu_family_{f}_total"), "A counter family.")
        } else {
            FamilySpec::histogram(
                &format!("sfu_family_{f}_seconds"),
                "A histogram family.",
                &BOUNDS,
            )
        };
        let fam = stats
            .declare(&spec.labels(&["room"]).max_series(200))
            .unwrap();
        for r in 0..200u64 {
            let h = fam.series(&[&format!("room-{r}")]).unwrap();
            h.inc_by(r + 1);
            h.observe(r as f64 / 1000.0);
        }
    }
    stats
}
