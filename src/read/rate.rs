//! Rate math: pure functions of collector samples.
//!
//! LiveKit's semantics, with its bugs fixed:
//!
//! * **Window choice**: for each configured interval, the smallest window
//!   ending at the newest sample that spans at least the interval. While the
//!   history is shorter, the whole history is used and the rate says so
//!   (`complete = false`, `window_seconds`), instead of silently dropping
//!   the entry and shifting every later rate's position.
//! * **Counters**: `Σ delta / Σ span` over consecutive sample pairs, on the
//!   monotonic clock in nanoseconds (LiveKit divides whole wall-clock
//!   seconds, ±10% at a 10 s window and negative after an NTP step). A pair
//!   whose segment id changed is a reset: its delta is the new value (what
//!   was counted since the restart), never a wrapped 1.8e19. Within one
//!   segment id counters only grow, so a decrease is an anomaly (counted in
//!   `decreases`) that adds nothing, never a reset that would add the
//!   counter's whole lifetime. System counters (`/proc/net/dev`) restart on
//!   their own: a decrease there is a reset, and a new segment leaves them
//!   alone. A counter absent from either sample of a pair (an unreadable
//!   system source) leaves that pair out of its rate.
//! * **CPU and memory**: time-weighted right-Riemann means over the pairs,
//!   like LiveKit, but weighted by the spans actually present.
//! * Everything in `f64`.

use std::time::Duration;

/// Counters that get a per-second rate, in `NodeStatsRate` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
#[allow(missing_docs)]
pub enum RateCounter {
    TrackPublishAttempts,
    TrackPublishSuccess,
    TrackPublishCancels,
    TrackSubscribeAttempts,
    TrackSubscribeSuccess,
    TrackSubscribeCancels,
    BytesIn,
    BytesOut,
    PacketsIn,
    PacketsOut,
    NackTotal,
    SysPacketsOut,
    SysPacketsDropped,
    RetransmitBytesOut,
    RetransmitPacketsOut,
    ParticipantSignalConnected,
    ParticipantRtcConnected,
    ParticipantRtcInit,
    ParticipantRtcCanceled,
    ParticipantRtcActive,
}

impl RateCounter {
    /// Every counter, in index order.
    pub const ALL: [RateCounter; RATE_COUNTERS] = [
        RateCounter::TrackPublishAttempts,
        RateCounter::TrackPublishSuccess,
        RateCounter::TrackPublishCancels,
        RateCounter::TrackSubscribeAttempts,
        RateCounter::TrackSubscribeSuccess,
        RateCounter::TrackSubscribeCancels,
        RateCounter::BytesIn,
        RateCounter::BytesOut,
        RateCounter::PacketsIn,
        RateCounter::PacketsOut,
        RateCounter::NackTotal,
        RateCounter::SysPacketsOut,
        RateCounter::SysPacketsDropped,
        RateCounter::RetransmitBytesOut,
        RateCounter::RetransmitPacketsOut,
        RateCounter::ParticipantSignalConnected,
        RateCounter::ParticipantRtcConnected,
        RateCounter::ParticipantRtcInit,
        RateCounter::ParticipantRtcCanceled,
        RateCounter::ParticipantRtcActive,
    ];

    /// Whether counter `i` comes from the system (`/proc/net/dev`) rather
    /// than from the segment: it restarts on its own, never with a segment.
    fn is_system(i: usize) -> bool {
        i == RateCounter::SysPacketsOut as usize || i == RateCounter::SysPacketsDropped as usize
    }
}

/// Number of [`RateCounter`]s.
pub const RATE_COUNTERS: usize = RateCounter::ParticipantRtcActive as usize + 1;

/// What the collector keeps of one update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Monotonic time of the update, ns since the collector's epoch.
    pub mono_ns: u64,
    /// Wall-clock time, Unix seconds (for `started_at`/`ended_at` only).
    pub unix_secs: i64,
    /// Id of the segment read; a change is a reset of every counter.
    pub segment_id: u128,
    /// Cumulative counters, indexed by [`RateCounter`]; `None` if unreadable.
    pub counters: [Option<u64>; RATE_COUNTERS],
    /// CPU load in 0..=1.
    pub cpu_load: Option<f64>,
    /// Memory used, bytes.
    pub memory_used: Option<u64>,
    /// Memory total, bytes.
    pub memory_total: Option<u64>,
}

/// Rates over one window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Per-second rates, indexed by [`RateCounter`].
    pub per_sec: [f64; RATE_COUNTERS],
    /// Time-weighted mean CPU load.
    pub cpu_load: f64,
    /// Time-weighted mean of used / total memory.
    pub memory_load: f64,
    /// Time-weighted mean memory used.
    pub memory_used: f64,
    /// Time-weighted mean memory total.
    pub memory_total: f64,
    /// Window length, seconds.
    pub window_secs: f64,
    /// Wall-clock start of the window, Unix seconds.
    pub started_at: i64,
    /// Wall-clock end of the window, Unix seconds.
    pub ended_at: i64,
    /// Pairs in the window where some counter reset (a new segment, or a
    /// system counter that went down).
    pub resets: u32,
    /// Pairs in the window where a segment counter went down within one
    /// segment: impossible for a counter that only grows, so an anomaly (a
    /// bogus add, e.g. a failed `recv()`'s -1 counted as bytes). The pair
    /// adds nothing to the rate instead of the counter's whole lifetime.
    pub decreases: u32,
}

/// The smallest suffix of `history` (oldest → newest) that spans at least
/// `interval`, and whether one exists; otherwise the whole history.
pub fn select_window(history: &[Sample], interval: Duration) -> (&[Sample], bool) {
    let Some(newest) = history.last() else {
        return (history, false);
    };
    let want = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    for i in (0..history.len().saturating_sub(1)).rev() {
        if newest.mono_ns.saturating_sub(history[i].mono_ns) >= want {
            return (&history[i..], true);
        }
    }
    (history, false)
}

/// Rates over `window` (oldest → newest), or `None` if it spans no time.
pub fn compute(window: &[Sample]) -> Option<Rates> {
    let (first, last) = (window.first()?, window.last()?);
    let elapsed_ns = last.mono_ns.checked_sub(first.mono_ns).filter(|&e| e > 0)?;
    let mut deltas = [0u64; RATE_COUNTERS];
    let mut spans = [0u64; RATE_COUNTERS];
    let mut out = Rates {
        window_secs: elapsed_ns as f64 / 1e9,
        started_at: first.unix_secs,
        ended_at: last.unix_secs,
        ..Rates::default()
    };
    let (mut cpu, mut cpu_w) = (0.0f64, 0u64);
    let (mut used, mut total, mut load, mut mem_w) = (0.0f64, 0.0f64, 0.0f64, 0u64);
    for pair in window.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        // A zero span still carries its counters' growth; it only has no
        // weight in the means.
        let span = b.mono_ns.saturating_sub(a.mono_ns);
        let same_segment = a.segment_id == b.segment_id;
        let (mut reset, mut decrease) = (false, false);
        for i in 0..RATE_COUNTERS {
            if let (Some(x), Some(y)) = (a.counters[i], b.counters[i]) {
                let d = match (RateCounter::is_system(i), same_segment, y >= x) {
                    (_, true, true) | (true, false, true) => y - x,
                    (false, true, false) => {
                        decrease = true;
                        0
                    }
                    _ => {
                        reset = true;
                        y
                    }
                };
                deltas[i] = deltas[i].saturating_add(d);
                spans[i] += span;
            }
        }
        out.resets += reset as u32;
        out.decreases += decrease as u32;
        if let Some(c) = b.cpu_load {
            cpu += c * span as f64;
            cpu_w += span;
        }
        if let (Some(u), Some(t)) = (b.memory_used, b.memory_total) {
            used += u as f64 * span as f64;
            total += t as f64 * span as f64;
            if t > 0 {
                load += (u as f64 / t as f64) * span as f64;
            }
            mem_w += span;
        }
    }
    for i in 0..RATE_COUNTERS {
        if spans[i] > 0 {
            out.per_sec[i] = deltas[i] as f64 / (spans[i] as f64 / 1e9);
        }
    }
    if cpu_w > 0 {
        out.cpu_load = cpu / cpu_w as f64;
    }
    if mem_w > 0 {
        out.memory_used = used / mem_w as f64;
        out.memory_total = total / mem_w as f64;
        out.memory_load = load / mem_w as f64;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn sample(t_ms: u64, bytes_in: u64) -> Sample {
        let mut s = Sample {
            mono_ns: t_ms * 1_000_000,
            unix_secs: 1_700_000_000 + (t_ms / 1000) as i64,
            segment_id: 7,
            ..Sample::default()
        };
        s.counters = [Some(0); RATE_COUNTERS];
        s.counters[RateCounter::BytesIn as usize] = Some(bytes_in);
        s
    }

    fn bytes_in(r: &Rates) -> f64 {
        r.per_sec[RateCounter::BytesIn as usize]
    }

    #[test]
    fn every_rate_counter_is_listed_in_index_order() {
        for (i, k) in RateCounter::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
    }

    #[test]
    fn window_is_the_smallest_spanning_the_interval() {
        // Updates every 2 s: 0, 2, 4, ..., 12 s.
        let h: Vec<Sample> = (0..=6).map(|i| sample(i * 2000, i * 100)).collect();
        let (w, complete) = select_window(&h, Duration::from_secs(10));
        assert!(complete);
        assert_eq!(
            w.first().unwrap().mono_ns,
            2 * S,
            "newest prev with >= 10 s is t=2"
        );
        let (w, _) = select_window(&h, Duration::from_secs(3));
        assert_eq!(
            w.first().unwrap().mono_ns,
            8 * S,
            "3 s picks the 4 s window, not 2 s"
        );
        let (w, complete) = select_window(&h, Duration::from_secs(60));
        assert!(!complete, "history shorter than the interval");
        assert_eq!(w.len(), h.len());
    }

    #[test]
    fn counters_use_subsecond_monotonic_elapsed() {
        // 10.9 s of real time: LiveKit would divide by 10 (whole seconds).
        let h = [sample(0, 0), sample(10_900, 10_900)];
        let r = compute(&h).unwrap();
        assert!((bytes_in(&r) - 1000.0).abs() < 1e-9, "{}", bytes_in(&r));
        assert!((r.window_secs - 10.9).abs() < 1e-12);
    }

    #[test]
    fn a_decrease_within_one_segment_is_an_anomaly_not_a_spike() {
        // 0 → 1000 in 1 s, then one bogus add of (u64)-1 bytes (a failed
        // recv() counted as a length) takes the counter one below.
        let h = [sample(0, 0), sample(1000, 1000), sample(2000, 999)];
        let r = compute(&h).unwrap();
        assert_eq!(bytes_in(&r), 500.0, "(1000 + 0) / 2 s: no lifetime spike");
        assert_eq!((r.resets, r.decreases), (0, 1));
        // The next window, past the decrease, is an ordinary one.
        let h = [sample(2000, 999), sample(3000, 1999)];
        let r = compute(&h).unwrap();
        assert_eq!((bytes_in(&r), r.decreases), (1000.0, 0));
    }

    #[test]
    fn a_system_counter_that_goes_down_restarted() {
        // /proc/net/dev counters restart when an interface is recreated;
        // they are not segment counters and a new segment does not reset
        // them.
        let sys = RateCounter::SysPacketsOut as usize;
        let mut h = [sample(0, 0), sample(1000, 0), sample(2000, 0)];
        h[0].counters[sys] = Some(5_000_000);
        h[1].counters[sys] = Some(5_000_100);
        h[2].counters[sys] = Some(40);
        h[2].segment_id = 8;
        let r = compute(&h).unwrap();
        assert_eq!(r.per_sec[sys], (100.0 + 40.0) / 2.0);
        assert_eq!((r.resets, r.decreases), (1, 0));
        let mut h = [sample(0, 0), sample(1000, 0)];
        h[0].counters[sys] = Some(5_000_000);
        h[1].counters[sys] = Some(5_000_100);
        h[1].segment_id = 8;
        let r = compute(&h).unwrap();
        assert_eq!(
            r.per_sec[sys], 100.0,
            "a new segment leaves system counters alone"
        );
    }

    #[test]
    fn a_new_segment_id_is_a_reset() {
        let mut b = sample(1000, 5000);
        b.segment_id = 8;
        let h = [sample(0, 4000), b];
        let r = compute(&h).unwrap();
        assert_eq!(
            bytes_in(&r),
            5000.0,
            "everything counted since the new segment began"
        );
        assert_eq!(r.resets, 1);
    }

    #[test]
    fn zero_elapsed_and_short_histories_give_no_rate() {
        assert!(compute(&[]).is_none());
        assert!(compute(&[sample(0, 0)]).is_none());
        assert!(compute(&[sample(5, 0), sample(5, 10)]).is_none());
        let (w, complete) = select_window(&[], Duration::from_secs(1));
        assert!(w.is_empty() && !complete);
    }

    #[test]
    fn zero_spans_inside_a_window_are_skipped() {
        let h = [
            sample(0, 0),
            sample(1000, 100),
            sample(1000, 150),
            sample(2000, 200),
        ];
        let r = compute(&h).unwrap();
        assert_eq!(bytes_in(&r), 100.0);
    }

    #[test]
    fn absent_counters_leave_their_pairs_out() {
        let mut h = [sample(0, 0), sample(1000, 0), sample(3000, 0)];
        let sys = RateCounter::SysPacketsOut as usize;
        h[0].counters[sys] = Some(100);
        h[1].counters[sys] = None;
        h[2].counters[sys] = Some(400);
        assert_eq!(
            compute(&h).unwrap().per_sec[sys],
            0.0,
            "no pair has both readings"
        );
        h[1].counters[sys] = Some(200);
        h[2].counters[sys] = None;
        assert_eq!(
            compute(&h).unwrap().per_sec[sys],
            100.0,
            "only the first pair counts"
        );
    }

    #[test]
    fn cpu_and_memory_are_time_weighted_right_riemann_means() {
        let mut h = [sample(0, 0), sample(1000, 0), sample(4000, 0)];
        h[0].cpu_load = Some(1.0); // never used: right Riemann sum
        h[1].cpu_load = Some(0.2);
        h[2].cpu_load = Some(0.6);
        h[1].memory_used = Some(100);
        h[1].memory_total = Some(1000);
        h[2].memory_used = Some(500);
        h[2].memory_total = Some(1000);
        let r = compute(&h).unwrap();
        assert!((r.cpu_load - (0.2 * 1.0 + 0.6 * 3.0) / 4.0).abs() < 1e-12);
        assert!((r.memory_used - (100.0 + 500.0 * 3.0) / 4.0).abs() < 1e-9);
        assert!((r.memory_load - (0.1 + 0.5 * 3.0) / 4.0).abs() < 1e-12);
        assert_eq!(r.memory_total, 1000.0);
    }

    #[test]
    fn missing_cpu_samples_do_not_dilute_the_mean() {
        let mut h = [sample(0, 0), sample(1000, 0), sample(2000, 0)];
        h[1].cpu_load = None;
        h[2].cpu_load = Some(0.8);
        let r = compute(&h).unwrap();
        assert!((r.cpu_load - 0.8).abs() < 1e-12, "{}", r.cpu_load);
    }
}
