//! The collector: merges shards and writer slots into [`NodeStats`], keeps a
//! bounded history and computes rates.
//!
//! The collector reads the segment with relaxed loads. The result is a sum,
//! not a snapshot: an add that races with the read is counted in this update
//! or the next, never lost, and two counters (packets and bytes) may be a
//! few adds apart. Rates absorb that skew.

use super::node_stats::{NodeStats, NodeStatsRate};
use super::rate::{self, RateCounter, Sample, RATE_COUNTERS};
use super::reader::{live_gauges, shard_sums};
use super::series::fold_media;
use crate::error::{Error, Result};
use crate::schema::{Counter, Gauge, COUNTERS};
use crate::segment::slots::GaugeTotals;
use crate::segment::{Access, Segment, SegmentOptions, SegmentStatus};
use crate::sys::{SystemConfig, SystemProbe, SystemSample};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Most samples a collector keeps.
pub const MAX_HISTORY: usize = 1 << 16;

/// How often to update and which rate windows to compute.
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    /// Time between updates (default 2 s). The collector does not sleep by
    /// itself; this sizes the history (call [`Collector::update`] at this pace).
    pub update_interval: Duration,
    /// Rate windows, in the order they appear in `NodeStats.rates`
    /// (default `[10 s]`).
    pub rate_intervals: Vec<Duration>,
    /// `NodeStats.started_at` (Unix seconds); default: when the collector
    /// was made.
    pub started_at: Option<i64>,
    /// System probes; `None` leaves the system fields empty.
    pub system: Option<SystemConfig>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            update_interval: Duration::from_secs(2),
            rate_intervals: vec![Duration::from_secs(10)],
            started_at: None,
            system: Some(SystemConfig::default()),
        }
    }
}

impl CollectorConfig {
    /// Checks the configuration and returns the history capacity it needs:
    /// enough samples to span the longest interval twice over at the update
    /// interval, so that updates that come early still leave a full window.
    pub fn validate(&self) -> Result<usize> {
        if self.update_interval.is_zero() {
            return Err(Error::Config(
                "update interval must be greater than zero".into(),
            ));
        }
        if self.rate_intervals.is_empty() {
            return Err(Error::Config(
                "at least one rate interval is needed (LiveKit's default is 10 s)".into(),
            ));
        }
        if let Some(i) = self.rate_intervals.iter().position(|d| d.is_zero()) {
            return Err(Error::Config(format!("rate interval #{i} is zero")));
        }
        let longest = self
            .rate_intervals
            .iter()
            .max()
            .copied()
            .unwrap_or_default();
        let per = longest.as_nanos().div_ceil(self.update_interval.as_nanos());
        let cap = per.saturating_mul(2).saturating_add(2);
        if cap > MAX_HISTORY as u128 {
            return Err(Error::Config(format!(
                "a {:?} rate interval at a {:?} update interval needs {cap} samples of history; at most {MAX_HISTORY} are kept",
                longest, self.update_interval
            )));
        }
        Ok(cap as usize)
    }
}

/// A point in time on both clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// Monotonic time since some fixed epoch (used for all arithmetic).
    pub monotonic: Duration,
    /// Wall-clock time since the Unix epoch (reported only).
    pub unix: Duration,
}

/// Things the collector noticed that a dashboard should see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Updates where the segment changed (a restart) or a system counter
    /// restarted.
    pub resets: u64,
    /// Updates where a segment counter went down within one segment (a
    /// bogus add): counted, never turned into a rate spike.
    pub decreases: u64,
    /// Times the collector re-attached to a new segment at the name.
    pub reattaches: u64,
    /// Updates that could not read the segment (shrunk under the mapping,
    /// or unreadable), cumulative.
    pub segment_errors: u64,
    /// Writer slots found active whose writer was dead, summed over updates.
    pub dead_writer_slots: u64,
    /// Failed system probe reads (cumulative).
    pub probe_errors: u64,
}

/// The merged counters of a segment, by meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    /// Raw shard sums, indexed by [`Counter`].
    pub counters: [u64; COUNTERS],
    /// Live writers' gauges.
    pub gauges: GaugeTotals,
}

impl Totals {
    /// Reads the segment now.
    pub fn read(segment: &Segment) -> Totals {
        let mut counters = shard_sums(segment);
        fold_media(segment, &mut counters);
        Totals {
            counters,
            gauges: live_gauges(segment),
        }
    }

    /// One counter.
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize]
    }

    fn sum(&self, cs: &[Counter]) -> u64 {
        cs.iter().fold(0u64, |a, &c| a.wrapping_add(self.get(c)))
    }

    /// One gauge (sum over live writers, never below zero).
    pub fn gauge(&self, g: Gauge) -> u64 {
        self.gauges.values[g as usize]
    }

    /// The NodeStats counters, indexed by [`RateCounter`] (system counters
    /// excluded: they come from the probes).
    fn rate_counters(&self) -> [Option<u64>; RATE_COUNTERS] {
        use Counter as C;
        use RateCounter as R;
        let mut r = [None; RATE_COUNTERS];
        let mut put = |k: R, v: u64| r[k as usize] = Some(v);
        put(
            R::TrackPublishAttempts,
            self.sum(&[
                C::TrackPublishAttemptsAudio,
                C::TrackPublishAttemptsVideo,
                C::TrackPublishAttemptsData,
            ]),
        );
        put(
            R::TrackPublishSuccess,
            self.sum(&[
                C::TrackPublishSuccessAudio,
                C::TrackPublishSuccessVideo,
                C::TrackPublishSuccessData,
            ]),
        );
        put(
            R::TrackPublishCancels,
            self.sum(&[
                C::TrackPublishCancelsAudio,
                C::TrackPublishCancelsVideo,
                C::TrackPublishCancelsData,
            ]),
        );
        put(
            R::TrackSubscribeAttempts,
            self.get(C::TrackSubscribeAttempts),
        );
        put(R::TrackSubscribeSuccess, self.get(C::TrackSubscribeSuccess));
        put(R::TrackSubscribeCancels, self.get(C::TrackSubscribeCancels));
        put(
            R::BytesIn,
            self.sum(&[C::BytesInInitial, C::BytesInRetransmit]),
        );
        put(
            R::BytesOut,
            self.sum(&[C::BytesOutInitial, C::BytesOutRetransmit]),
        );
        put(
            R::PacketsIn,
            self.sum(&[C::PacketsInInitial, C::PacketsInRetransmit]),
        );
        put(
            R::PacketsOut,
            self.sum(&[C::PacketsOutInitial, C::PacketsOutRetransmit]),
        );
        put(R::NackTotal, self.sum(&[C::NackIn, C::NackOut]));
        put(R::RetransmitBytesOut, self.get(C::BytesOutRetransmit));
        put(R::RetransmitPacketsOut, self.get(C::PacketsOutRetransmit));
        put(
            R::ParticipantSignalConnected,
            self.get(C::ParticipantSignalConnected),
        );
        put(
            R::ParticipantRtcConnected,
            self.get(C::ParticipantRtcConnected),
        );
        put(R::ParticipantRtcInit, self.get(C::ParticipantRtcInit));
        put(
            R::ParticipantRtcCanceled,
            self.sum(&[C::ParticipantRtcCanceled, C::ParticipantRtcCanceledWarp]),
        );
        put(
            R::ParticipantRtcActive,
            self.sum(&[C::ParticipantRtcActive, C::ParticipantRtcActiveWarp]),
        );
        r
    }
}

/// Reads a segment into [`NodeStats`] with rates.
#[derive(Debug)]
pub struct Collector {
    segment: Arc<Segment>,
    config: CollectorConfig,
    history: VecDeque<Sample>,
    capacity: usize,
    system: Option<SystemProbe>,
    epoch: Instant,
    started_at: i64,
    anomalies: Anomalies,
    last_system: SystemSample,
    /// The name to follow and how to attach to it, for a named segment.
    follow: Option<(String, SegmentOptions)>,
    /// What the last check of the segment found.
    status: SegmentStatus,
    /// The last update, repeated by [`update`](Self::update) when the
    /// segment cannot be read.
    last: Option<NodeStats>,
}

impl Collector {
    /// A collector over `segment`. Fails only on a bad configuration.
    ///
    /// A named segment is followed by name: when the file at the name is
    /// replaced (the writer restarted) the collector re-attaches read-only
    /// to the new one, which counts as a reset.
    pub fn new(segment: Arc<Segment>, config: CollectorConfig) -> Result<Self> {
        let follow = segment
            .name()
            .map(|n| (n.to_string(), SegmentOptions::default()));
        Self::following(segment, config, follow)
    }

    fn following(
        segment: Arc<Segment>,
        config: CollectorConfig,
        follow: Option<(String, SegmentOptions)>,
    ) -> Result<Self> {
        let capacity = config.validate()?;
        let started_at = config
            .started_at
            .unwrap_or_else(|| unix_now().as_secs() as i64);
        Ok(Collector {
            segment,
            system: config.system.clone().map(SystemProbe::new),
            config,
            history: VecDeque::with_capacity(capacity),
            capacity,
            epoch: Instant::now(),
            started_at,
            anomalies: Anomalies::default(),
            last_system: SystemSample::default(),
            follow,
            status: SegmentStatus::Current,
            last: None,
        })
    }

    /// Attaches read-only to the named segment and collects from it.
    pub fn attach(name: &str, config: CollectorConfig) -> Result<Self> {
        Self::attach_with(name, &SegmentOptions::default(), config)
    }

    /// [`attach`](Self::attach) with attach options (e.g.
    /// `allow_foreign_owner` for an exporter running as another user), which
    /// re-attaches use too.
    pub fn attach_with(name: &str, opts: &SegmentOptions, config: CollectorConfig) -> Result<Self> {
        let seg = Segment::attach_with(name, Access::ReadOnly, opts)?;
        Self::following(
            Arc::new(seg),
            config,
            Some((name.to_string(), opts.clone())),
        )
    }

    /// The configuration.
    pub fn config(&self) -> &CollectorConfig {
        &self.config
    }

    /// The segment read.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// Switches to another segment (e.g. one recreated after a restart).
    /// The next rates treat the change as a counter reset.
    pub fn set_segment(&mut self, segment: Arc<Segment>) {
        self.segment = segment;
    }

    /// What the last update found of the segment: [`SegmentStatus::Current`]
    /// while the mapping read is the segment at the name.
    pub fn segment_status(&self) -> SegmentStatus {
        self.status
    }

    /// Checks the segment before a read: re-attaches when another segment
    /// is at the name, and refuses to read a mapping whose file shrank.
    /// A segment that was removed (and not yet recreated) is still read: its
    /// mapping is whole, only orphaned, and [`segment_status`]
    /// (Self::segment_status) says so.
    fn check_segment(&mut self) -> Result<()> {
        let Some((name, opts)) = &self.follow else {
            return Ok(());
        };
        self.status = self.segment.status()?;
        if self.status == SegmentStatus::Current {
            return Ok(());
        }
        match Segment::attach_with(
            name,
            Access::ReadOnly,
            &opts.clone().init_wait(Duration::ZERO),
        ) {
            Ok(seg) => {
                self.segment = Arc::new(seg);
                self.status = SegmentStatus::Current;
                self.anomalies.reattaches += 1;
                Ok(())
            }
            Err(e) => match self.status {
                SegmentStatus::Shrunk { size, needed } => Err(Error::SizeMismatch {
                    header: needed,
                    file: size,
                }),
                // Not there yet, or still being made: keep reading the old
                // mapping and try again at the next update.
                _ => {
                    let _ = e;
                    Ok(())
                }
            },
        }
    }

    /// Counts an update that could not read the segment, and returns why.
    /// A file found shrunk after the segment check (it shrank during this
    /// update) makes the status say so too, as the next check would: the
    /// status never says `Current` for an update that failed on a shrink.
    fn unreadable(&mut self, e: Error) -> Error {
        self.anomalies.segment_errors += 1;
        if let Error::SizeMismatch { header, file } = e {
            self.status = SegmentStatus::Shrunk {
                size: file,
                needed: header,
            };
        }
        e
    }

    /// What the collector has noticed so far.
    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }

    /// The latest system reading.
    pub fn last_system(&self) -> &SystemSample {
        &self.last_system
    }

    /// Samples kept, oldest first.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Takes an update now.
    ///
    /// Never fails: when the segment cannot be read (its file shrank under
    /// the mapping) it repeats the last update and counts a segment error;
    /// [`try_update`](Self::try_update) returns the error instead.
    pub fn update(&mut self) -> NodeStats {
        let now = self.now();
        self.update_at(now)
    }

    /// Takes an update now, or says why the segment cannot be read
    /// ([`Error::SizeMismatch`] for a file shrunk under the mapping).
    pub fn try_update(&mut self) -> Result<NodeStats> {
        let now = self.now();
        self.try_update_at(now)
    }

    fn now(&self) -> Timestamp {
        Timestamp {
            monotonic: self.epoch.elapsed(),
            unix: unix_now(),
        }
    }

    /// Takes an update at `now` (an injectable clock for tests and replays);
    /// like [`update`](Self::update), repeats the last update when the
    /// segment cannot be read.
    pub fn update_at(&mut self, now: Timestamp) -> NodeStats {
        match self.try_update_at(now) {
            Ok(ns) => ns,
            Err(_) => self.last.clone().unwrap_or_default(),
        }
    }

    /// [`try_update`](Self::try_update) at `now`.
    pub fn try_update_at(&mut self, now: Timestamp) -> Result<NodeStats> {
        if let Err(e) = self.check_segment() {
            return Err(self.unreadable(e));
        }
        // Partly zeros when the file shrank while it was read: not an update.
        let totals = match super::reader::guarded(&self.segment, Totals::read) {
            Ok(t) => t,
            Err(e) => return Err(self.unreadable(e)),
        };
        let sys = match &mut self.system {
            Some(p) => p.sample(),
            None => SystemSample::default(),
        };
        Ok(self.update_with(now, &totals, sys))
    }

    /// Builds the update from readings already taken.
    pub fn update_with(&mut self, now: Timestamp, totals: &Totals, sys: SystemSample) -> NodeStats {
        self.last_system = sys;
        self.anomalies.probe_errors = sys.probe_errors;
        self.anomalies.dead_writer_slots += totals.gauges.dead_writers as u64;
        let mut counters = totals.rate_counters();
        counters[RateCounter::SysPacketsOut as usize] = sys.sys_packets_out;
        counters[RateCounter::SysPacketsDropped as usize] = sys.sys_packets_dropped;
        let sample = Sample {
            mono_ns: u64::try_from(now.monotonic.as_nanos()).unwrap_or(u64::MAX),
            unix_secs: now.unix.as_secs() as i64,
            segment_id: self.segment.id(),
            counters,
            cpu_load: sys.cpu_load,
            memory_used: sys.memory_used,
            memory_total: sys.memory_total,
        };
        if let Some(r) = self
            .history
            .back()
            .and_then(|p| rate::compute(&[*p, sample]))
        {
            self.anomalies.resets += (r.resets > 0) as u64;
            self.anomalies.decreases += (r.decreases > 0) as u64;
        }
        if self.history.len() == self.capacity {
            self.history.pop_front();
        }
        self.history.push_back(sample);

        let mut ns = self.node_stats(&sample, totals, &sys);
        let history = self.history.make_contiguous();
        ns.rates = self
            .config
            .rate_intervals
            .iter()
            .filter_map(|&interval| {
                let (window, complete) = rate::select_window(history, interval);
                rate::compute(window).map(|r| to_rate(&r, interval, complete))
            })
            .collect();
        self.last = Some(ns.clone());
        ns
    }

    fn node_stats(&self, s: &Sample, t: &Totals, sys: &SystemSample) -> NodeStats {
        let c = |k: RateCounter| s.counters[k as usize].unwrap_or(0);
        let g = |k: Gauge| t.gauge(k);
        let i32s = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
        let [l1, l5, l15] = sys.load_avg.unwrap_or_default();
        let cpus = sys.num_cpus.unwrap_or(0.0);
        NodeStats {
            started_at: self.started_at,
            updated_at: s.unix_secs,
            num_rooms: i32s(g(Gauge::Rooms)),
            num_clients: i32s(g(Gauge::Participants)),
            num_tracks_in: i32s(
                g(Gauge::TracksPublishedAudio)
                    + g(Gauge::TracksPublishedVideo)
                    + g(Gauge::TracksPublishedData),
            ),
            num_tracks_out: i32s(
                g(Gauge::TracksSubscribedAudio)
                    + g(Gauge::TracksSubscribedVideo)
                    + g(Gauge::TracksSubscribedData),
            ),
            num_track_publish_attempts: i32s(c(RateCounter::TrackPublishAttempts)),
            num_track_publish_success: i32s(c(RateCounter::TrackPublishSuccess)),
            num_track_publish_cancels: i32s(c(RateCounter::TrackPublishCancels)),
            num_track_subscribe_attempts: i32s(c(RateCounter::TrackSubscribeAttempts)),
            num_track_subscribe_success: i32s(c(RateCounter::TrackSubscribeSuccess)),
            num_track_subscribe_cancels: i32s(c(RateCounter::TrackSubscribeCancels)),
            bytes_in: c(RateCounter::BytesIn),
            bytes_out: c(RateCounter::BytesOut),
            packets_in: c(RateCounter::PacketsIn),
            packets_out: c(RateCounter::PacketsOut),
            nack_total: c(RateCounter::NackTotal),
            // LiveKit never fills it either.
            packets_in_per_sec: 0.0,
            // Truncated as LiveKit does (`uint32(NumCPU())`): its sysload
            // selector divides by this, so rounding up would make a node
            // with a 2.5-CPU quota look a third less loaded.
            num_cpus: cpus as u32,
            load_avg_last1min: l1,
            load_avg_last5min: l5,
            load_avg_last15min: l15,
            cpu_load: sys.cpu_load.unwrap_or(0.0),
            memory_total: sys.memory_total.unwrap_or(0),
            memory_used: sys.memory_used.unwrap_or(0),
            sys_packets_out: c(RateCounter::SysPacketsOut),
            sys_packets_dropped: c(RateCounter::SysPacketsDropped),
            retransmit_bytes_out: c(RateCounter::RetransmitBytesOut),
            retransmit_packets_out: c(RateCounter::RetransmitPacketsOut),
            participant_signal_connected: c(RateCounter::ParticipantSignalConnected),
            participant_rtc_connected: c(RateCounter::ParticipantRtcConnected),
            participant_rtc_init: c(RateCounter::ParticipantRtcInit),
            participant_rtc_canceled: c(RateCounter::ParticipantRtcCanceled),
            participant_rtc_active: c(RateCounter::ParticipantRtcActive),
            forward_latency: u32::try_from(t.gauges.forward_latency_ns).unwrap_or(u32::MAX),
            forward_jitter: u32::try_from(t.gauges.forward_jitter_ns).unwrap_or(u32::MAX),
            rates: Vec::new(),
            num_cpus_exact: cpus,
            udp_rcvbuf_errors: sys.udp_rcvbuf_errors,
            udp_in_errors: sys.udp_in_errors,
            rx_dropped: sys.rx_dropped,
            segment_id: format!("{:032x}", s.segment_id),
            live_writers: t.gauges.live_writers,
        }
    }
}

fn to_rate(r: &rate::Rates, interval: Duration, complete: bool) -> NodeStatsRate {
    let span = super::livekit_time::rate_span(r.window_secs, r.ended_at);
    let mut out = NodeStatsRate {
        started_at: span.started_at,
        ended_at: span.ended_at,
        duration: span.duration,
        cpu_load: r.cpu_load,
        memory_load: r.memory_load,
        memory_used: r.memory_used,
        memory_total: r.memory_total,
        interval_seconds: interval.as_secs_f64(),
        window_seconds: r.window_secs,
        complete,
        resets: r.resets,
        ..NodeStatsRate::default()
    };
    for k in RateCounter::ALL {
        *rate_field(&mut out, k) = r.per_sec[k as usize];
    }
    out
}

/// The `NodeStatsRate` field of each rate counter. The match is exhaustive:
/// a new [`RateCounter`] does not compile until it has its field.
fn rate_field(r: &mut NodeStatsRate, k: RateCounter) -> &mut f64 {
    use RateCounter as C;
    match k {
        C::TrackPublishAttempts => &mut r.track_publish_attempts,
        C::TrackPublishSuccess => &mut r.track_publish_success,
        C::TrackPublishCancels => &mut r.track_publish_cancels,
        C::TrackSubscribeAttempts => &mut r.track_subscribe_attempts,
        C::TrackSubscribeSuccess => &mut r.track_subscribe_success,
        C::TrackSubscribeCancels => &mut r.track_subscribe_cancels,
        C::BytesIn => &mut r.bytes_in,
        C::BytesOut => &mut r.bytes_out,
        C::PacketsIn => &mut r.packets_in,
        C::PacketsOut => &mut r.packets_out,
        C::NackTotal => &mut r.nack_total,
        C::SysPacketsOut => &mut r.sys_packets_out,
        C::SysPacketsDropped => &mut r.sys_packets_dropped,
        C::RetransmitBytesOut => &mut r.retransmit_bytes_out,
        C::RetransmitPacketsOut => &mut r.retransmit_packets_out,
        C::ParticipantSignalConnected => &mut r.participant_signal_connected,
        C::ParticipantRtcConnected => &mut r.participant_rtc_connected,
        C::ParticipantRtcInit => &mut r.participant_rtc_init,
        C::ParticipantRtcCanceled => &mut r.participant_rtc_canceled,
        C::ParticipantRtcActive => &mut r.participant_rtc_active,
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
