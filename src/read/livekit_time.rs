//! Whole-second times as LiveKit's `NodeStatsRate` carries them.
//!
//! Rates are computed on the monotonic clock (sub-second windows, no NTP
//! steps); the wire form has `started_at`, `ended_at` (Unix seconds) and
//! `duration` (whole seconds). LiveKit's consumers read `duration` as
//! `ended_at - started_at` and divide by it, so the three must agree and
//! `duration` must be at least 1, whatever the real window was.

/// The whole-second span of one rate window, consistent by construction:
/// `duration == ended_at - started_at` and `duration >= 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateSpan {
    /// `ended_at - duration`, Unix seconds.
    pub(crate) started_at: i64,
    /// When the window ended (the newest update), Unix seconds.
    pub(crate) ended_at: i64,
    /// The window rounded to whole seconds, at least 1.
    pub(crate) duration: i64,
}

/// The span of a window `window_secs` long (monotonic) that ended at
/// `ended_at` (Unix seconds): the window rounded to the nearest second,
/// at least 1, counted back from `ended_at`. A NaN or negative window is
/// 1 s. (`started_at` saturates at `i64::MIN`, which no clock reaches.)
pub(crate) fn rate_span(window_secs: f64, ended_at: i64) -> RateSpan {
    // `as` saturates and maps NaN to 0.
    let duration = (window_secs.round() as i64).max(1);
    RateSpan {
        started_at: ended_at.saturating_sub(duration),
        ended_at,
        duration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: i64 = 1_700_000_014;

    fn check(window: f64, duration: i64) {
        let s = rate_span(window, END);
        assert_eq!(s.duration, duration, "window {window}");
        assert_eq!(s.ended_at, END);
        assert_eq!(s.ended_at - s.started_at, s.duration, "window {window}");
    }

    #[test]
    fn sub_second_windows_are_one_second() {
        check(0.25, 1);
        check(0.0, 1);
        check(0.5, 1);
    }

    #[test]
    fn windows_round_to_the_nearest_second_and_stay_consistent() {
        // 2.8 s used to read 2 s apart with duration 3.
        check(2.8, 3);
        check(2.2, 2);
        check(10.0, 10);
        check(10.9, 11);
    }

    #[test]
    fn odd_inputs_stay_consistent() {
        check(f64::NAN, 1);
        check(-3.0, 1);
        check(f64::INFINITY, i64::MAX);
    }
}
