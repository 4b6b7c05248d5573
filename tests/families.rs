//! Families declared at run time: declared from several processes at once
//! (one family each), recorded through every path, exported exactly by a
//! reader that was never told about them, with conflicts, invalid specs,
//! caps and dead writers' gauges handled.
//!
//! `harness = false`: the same binary is the parent and, with `child ...`
//! arguments, the processes it spawns.

mod common;

use nodestats::{
    Access, Error, Exporter, Family, FamilyId, FamilySpec, Segment, SegmentOptions, Stats,
};
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const PROCS: usize = 6;
const PER_PROC: u64 = 10_000;

/// The families every racing child declares.
fn specs() -> [FamilySpec; 4] {
    [
        FamilySpec::counter("sfu_rtp_packets_total", "RTP packets forwarded.")
            .labels(&["direction", "media"]),
        FamilySpec::gauge("sfu_transports", "Open transports.").labels(&["protocol"]),
        FamilySpec::histogram(
            "sfu_forward_delay_seconds",
            "Time from receiving a packet to forwarding it.",
            &[0.0005, 0.001, 0.005, 0.01, 1e6],
        )
        .unit("seconds"),
        FamilySpec::counter("sfu_room_bytes_total", "Bytes forwarded per room.")
            .labels(&["room"])
            .max_series(3),
    ]
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn child_main(args: &[String]) {
    let name = &args[1];
    let opts = SegmentOptions::new().name(name.clone());
    match args[0].as_str() {
        // Wait until the start time, declare every family, record.
        "racer" => {
            let start: u64 = args[2].parse().unwrap();
            let id: usize = args[3].parse().unwrap();
            let stats = Stats::open(&opts).unwrap();
            while now_ms() < start {
                std::hint::spin_loop();
            }
            let fams: Vec<_> = specs().iter().map(|s| stats.declare(s).unwrap()).collect();
            let pkts = fams[0].series(&["incoming", "video"]).unwrap();
            let t = stats.thread_writer().unwrap();
            let in_row = t.series(&fams[0], &["outgoing", "audio"]).unwrap();
            assert!(in_row.in_row());
            let delay = t.series(fams[2].id(), &[]).unwrap();
            for i in 0..PER_PROC {
                pkts.inc_by(1);
                in_row.inc_by(2);
                delay.observe(if i % 2 == 0 { 0.0002 } else { 0.003 });
            }
            // Rooms past the cap of 3 go to the overflow series.
            for r in 0..5 {
                fams[3]
                    .series(&[&format!("room-{}", (r + id) % 5)])
                    .unwrap()
                    .inc_by(100);
            }
            // A conflicting declaration is refused, naming both shapes.
            let bad = FamilySpec::gauge("sfu_rtp_packets_total", "x").labels(&["direction"]);
            match stats.declare(&bad) {
                Err(Error::FamilyConflict {
                    existing,
                    requested,
                }) => {
                    assert!(existing.contains("counter"), "{existing}");
                    assert!(requested.contains("gauge"), "{requested}");
                }
                other => panic!("conflict expected, got {other:?}"),
            }
        }
        // Declare a gauge, raise it, say so, wait to be killed.
        "holder" => {
            let stats = Stats::open(&opts).unwrap();
            let g = stats.declare(&specs()[1]).unwrap();
            let h = g.series(&["udp"]).unwrap();
            h.add(5);
            std::mem::forget(h);
            common::ready_then_wait()
        }
        // Open a family this process never declared, by name.
        "by-name" => {
            let stats = Stats::open(&opts).unwrap();
            stats
                .series_named("sfu_keyframe_requests_total", &[])
                .unwrap()
                .inc_by(9);
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Removes the named segment when dropped (also when a check panics).
struct Named(String);

impl Named {
    fn new(tag: &str) -> Named {
        let n = format!("/nodestats-fam-{}-{tag}", std::process::id());
        let _ = Segment::unlink(&n);
        Named(n)
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

/// `/metrics` of a read-only exporter attached by name: a reader that was
/// told nothing about the families.
fn scrape(name: &str) -> String {
    let seg = Arc::new(Segment::attach(name, Access::ReadOnly).unwrap());
    Exporter::new(seg, "n1", "SERVER").unwrap().text()
}

fn sample(text: &str, prefix: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no sample {prefix} in:\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

fn many_processes_declare_one_family_each() {
    let seg = Named::new("race");
    // The segment exists before the race (the race is the declaration).
    let parent = Stats::open(&SegmentOptions::new().name(seg.0.clone())).unwrap();
    let start = (now_ms() + 300).to_string();
    let children: Vec<Child> = (0..PROCS)
        .map(|id| common::spawn_child(&["racer", &seg.0, &start, &id.to_string()]))
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a racer failed");
    }
    let region_families = nodestats::__testing::declared_families(parent.segment());
    let mut names: Vec<_> = region_families
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "sfu_forward_delay_seconds",
            "sfu_room_bytes_total",
            "sfu_rtp_packets_total",
            "sfu_transports"
        ],
        "one family each, never two"
    );
    let text = scrape(&seg.0);
    let n = (PROCS as u64 * PER_PROC) as f64;
    let c = r#"node_id="n1",node_type="SERVER""#;
    assert!(text.contains(
        "# HELP sfu_rtp_packets_total RTP packets forwarded.\n# TYPE sfu_rtp_packets_total counter\n"
    ));
    assert_eq!(
        sample(
            &text,
            &format!(r#"sfu_rtp_packets_total{{direction="incoming",media="video",{c}}}"#)
        ),
        n
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"sfu_rtp_packets_total{{direction="outgoing",media="audio",{c}}}"#)
        ),
        2.0 * n
    );
    // Buckets as client_golang prints them, cumulative, +Inf, sum, count.
    assert!(text.contains("# TYPE sfu_forward_delay_seconds histogram\n"));
    for (le, v) in [
        ("0.0005", n / 2.0),
        ("0.001", n / 2.0),
        ("0.005", n),
        ("0.01", n),
        ("1e+06", n),
        ("+Inf", n),
    ] {
        assert_eq!(
            sample(
                &text,
                &format!(r#"sfu_forward_delay_seconds_bucket{{{c},le="{le}"}}"#)
            ),
            v,
            "le {le}"
        );
    }
    assert_eq!(
        sample(&text, &format!("sfu_forward_delay_seconds_count{{{c}}}")),
        n
    );
    let sum = sample(&text, &format!("sfu_forward_delay_seconds_sum{{{c}}}"));
    let want = n / 2.0 * (0.0002 + 0.003);
    assert!((sum - want).abs() < 1e-6 * want, "sum {sum} want {want}");
    // The capped family: 3 rooms and the overflow series, nothing lost.
    let rooms: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("sfu_room_bytes_total{"))
        .collect();
    assert_eq!(rooms.len(), 4, "{rooms:?}");
    let total: f64 = rooms
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(total, PROCS as f64 * 500.0);
    assert!(rooms.iter().any(|l| l.contains(r#"room="__overflow__""#)));
    let over = sample(
        &text,
        r#"nodestats_series_overflow_total{family="sfu_room_bytes_total",node_id="n1",node_type="SERVER"}"#,
    );
    assert!(over >= 2.0 * PROCS as f64, "{over}");
    assert_eq!(
        sample(&text, &format!("nodestats_families_declared{{{c}}}")),
        4.0
    );
}

fn a_killed_writers_declared_gauge_leaves() {
    let seg = Named::new("gauge");
    let survivor = Stats::open(&SegmentOptions::new().name(seg.0.clone())).unwrap();
    let g = survivor.declare(&specs()[1]).unwrap();
    let mine = g.series(&["udp"]).unwrap();
    mine.add(2);
    let mut child = common::spawn_child(&["holder", &seg.0]);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let udp = r#"sfu_transports{node_id="n1",node_type="SERVER",protocol="udp"}"#;
    assert_eq!(sample(&scrape(&seg.0), udp), 7.0);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        sample(&scrape(&seg.0), udp),
        2.0,
        "the dead writer's part left"
    );
}

fn a_process_that_never_declared_opens_by_name() {
    let seg = Named::new("byname");
    let stats = Stats::open(&SegmentOptions::new().name(seg.0.clone())).unwrap();
    stats
        .declare(&FamilySpec::counter(
            "sfu_keyframe_requests_total",
            "Keyframe requests sent to publishers.",
        ))
        .unwrap();
    let mut c = common::spawn_child(&["by-name", &seg.0]);
    assert!(c.wait().unwrap().success());
    let text = scrape(&seg.0);
    assert_eq!(
        sample(
            &text,
            r#"sfu_keyframe_requests_total{node_id="n1",node_type="SERVER"}"#
        ),
        9.0
    );
    // `nodestats show --metrics`, another reader told nothing, too.
    let out = std::process::Command::new(common::nodestats_bin())
        .args(["show", "--segment", &seg.0, "--metrics"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(
        shown.contains("# HELP sfu_keyframe_requests_total Keyframe requests sent to publishers.\n# TYPE sfu_keyframe_requests_total counter\n"),
        "{shown}"
    );
    assert!(shown
        .lines()
        .any(|l| l.starts_with("sfu_keyframe_requests_total{") && l.ends_with("} 9")));
    // An undeclared name is its own error.
    assert!(matches!(
        stats.series_named("sfu_nothing_total", &[]),
        Err(Error::UnknownFamily(_))
    ));
}

fn bad_declarations_are_refused() {
    let stats = Stats::anonymous().unwrap();
    let invalid = [
        FamilySpec::counter("9bad", ""),
        FamilySpec::counter("__x", ""),
        FamilySpec::counter("nodestats_mine", ""),
        FamilySpec::counter("ok", "").labels(&["a-b"]),
        FamilySpec::counter("ok", "").labels(&["__a"]),
        FamilySpec::histogram("h", "", &[1.0]).labels(&["le"]),
        FamilySpec::histogram("h", "", &[2.0, 1.0]),
        FamilySpec::histogram("h", "", &[f64::NAN]),
        FamilySpec::counter("c", "").labels(&["a", "b", "c", "d", "e", "f", "g", "h", "i"]),
    ];
    for spec in invalid {
        assert!(
            matches!(stats.declare(&spec), Err(Error::InvalidFamily(_))),
            "{spec:?}"
        );
    }
    // LiveKit's families keep their shape; their own shape is accepted.
    let lk = stats.declare(&FamilySpec::counter("livekit_nack_total", "").labels(&["room"]));
    assert!(matches!(lk, Err(Error::FamilyConflict { .. })), "{lk:?}");
    let same =
        FamilySpec::counter("livekit_nack_total", "any help").labels(&["direction", "country"]);
    assert_eq!(
        stats.declare(&same).unwrap().id(),
        FamilyId::from(Family::NackTotal)
    );
    // Unit and buckets are part of the shape.
    let h = FamilySpec::histogram("sfu_h", "", &[1.0, 2.0]);
    stats.declare(&h).unwrap();
    for other in [
        FamilySpec::histogram("sfu_h", "", &[1.0, 3.0]),
        FamilySpec::histogram("sfu_h", "", &[1.0, 2.0]).unit("seconds"),
    ] {
        assert!(matches!(
            stats.declare(&other),
            Err(Error::FamilyConflict { .. })
        ));
    }
    // A full directory has an error of its own.
    let small = Stats::open(&SegmentOptions::new().capacities(nodestats::Capacities {
        families: 2,
        ..Default::default()
    }))
    .unwrap();
    small.declare(&FamilySpec::counter("a", "")).unwrap();
    small.declare(&FamilySpec::counter("b", "")).unwrap();
    assert!(matches!(
        small.declare(&FamilySpec::counter("c", "")),
        Err(Error::FamilyDirectoryFull { capacity: 2 })
    ));
}

fn a_flood_of_label_values_keeps_the_writer_flat() {
    let stats = Stats::anonymous().unwrap();
    let rooms = stats
        .declare(
            &FamilySpec::counter("sfu_room_packets_total", "")
                .labels(&["room"])
                .max_series(100),
        )
        .unwrap();
    let open_close = |from: u64, to: u64| {
        for i in from..to {
            rooms.series(&[&format!("room-{i}")]).unwrap().inc_by(1);
        }
    };
    open_close(0, 1_000);
    let after_1k = nodestats::__testing::cache_remembered(&stats);
    open_close(1_000, 100_000);
    let after_100k = nodestats::__testing::cache_remembered(&stats);
    assert_eq!(after_1k, after_100k, "the cache grew past the cap");
    // 100 label sets, their strings and entries, and the overflow entries
    // (LiveKit's 49 and the family's).
    assert!(after_100k <= 3 * 100 + 50, "{after_100k}");
    let (all, _) = nodestats::__testing::read_all(stats.segment());
    let total: u64 = all
        .iter()
        .filter(|s| s.family == rooms.id())
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 100_000, "nothing lost");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        child_main(&args[1..]);
        return;
    }
    let tests: &[common::Test<()>] = &[
        ("many_processes_declare_one_family_each", |_| {
            many_processes_declare_one_family_each()
        }),
        ("a_killed_writers_declared_gauge_leaves", |_| {
            a_killed_writers_declared_gauge_leaves()
        }),
        ("a_process_that_never_declared_opens_by_name", |_| {
            a_process_that_never_declared_opens_by_name()
        }),
        ("bad_declarations_are_refused", |_| {
            bad_declarations_are_refused()
        }),
        ("a_flood_of_label_values_keeps_the_writer_flat", |_| {
            a_flood_of_label_values_keeps_the_writer_flat()
        }),
    ];
    if common::run(&mut (), tests) > 0 {
        std::process::exit(1);
    }
}
