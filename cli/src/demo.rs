//! Simulated SFU: worker threads record packets, RTCP and room lifecycle
//! into a named segment while the main thread collects and prints
//! NodeStats, and any other process may read the same segment live
//! (`nodestats show --segment NAME`).

use crate::{sleep_unless_stopped, stopped, table};
use clap::Args;
use nodestats::{Access, Collector, ConnectionQuality, Exporter, Timestamp, TrackSource};
use nodestats::{CollectorConfig, Direction, Error, Segment, SegmentOptions, Stats, TrackKind};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Segment to record into ("/name" under /dev/shm, or a file path)
    /// [default: /nodestats-demo-PID, removed at exit].
    #[arg(long)]
    segment: Option<String>,
    /// Seconds to run; 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Simulated SFU worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Incoming packets per second across all workers.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Seconds between NodeStats updates.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// Rate windows in seconds (comma-separated); each spans whole update
    /// intervals, so one that is not a multiple of --interval is rounded up.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    rates: Vec<f64>,
    /// Keep a named segment after exit (it is removed by default if the demo created it).
    #[arg(long)]
    keep: bool,
    /// Serve /metrics, /stats and /healthz here while running ("" to turn off).
    #[arg(long, default_value = "127.0.0.1:9898")]
    listen: String,
}

/// What one worker recorded, counted privately to check the segment's totals.
#[derive(Default, Debug, Clone, Copy)]
struct Recorded {
    packets_in: u64,
    bytes_in: u64,
    packets_out: u64,
    bytes_out: u64,
    retransmit_packets: u64,
    nacks: u64,
}

/// xorshift64*: a tiny deterministic generator for the simulation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Room {
    participants: u32,
    started: Instant,
    ends_at: Instant,
}

fn duration_arg(secs: f64, what: &str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::Config(format!(
                "{what} must be a positive number of seconds, got {secs}"
            ))
        })
}

/// The segment this run created: removed when the run ends, however it ends
/// (done, a stop signal, an error, a panic), unless `--keep` or another
/// writer still holds it. Dropped after the run's own writer handle.
struct Created {
    name: String,
    keep: bool,
}

impl Drop for Created {
    fn drop(&mut self) {
        if self.keep {
            say!("  kept {}", self.name);
            return;
        }
        // Never pull a segment from under writers that still hold it.
        let holders = Segment::attach(&self.name, Access::ReadOnly)
            .map(|seg| nodestats::Totals::read(&seg).gauges.live_writers)
            .unwrap_or(0);
        if holders == 0 {
            let _ = Segment::unlink(&self.name);
        } else {
            say!(
                "  left {} in place: {holders} other writer(s) still hold it",
                self.name
            );
        }
    }
}

/// The collector's windows for the rate windows asked for: each rounded up
/// to whole update intervals, where the samples are.
fn whole_intervals(rates: &[Duration], interval: Duration) -> Vec<Duration> {
    rates
        .iter()
        .map(|r| {
            let n = r.as_nanos().div_ceil(interval.as_nanos()).max(1);
            interval.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
        })
        .collect()
}

pub(crate) fn run(args: DemoArgs) -> Result<(), Error> {
    if args.workers == 0 {
        return Err(Error::Config("--workers must be at least 1".into()));
    }
    let update_interval = duration_arg(args.interval, "--interval")?;
    let asked = args
        .rates
        .iter()
        .map(|&s| duration_arg(s, "--rates"))
        .collect::<Result<Vec<_>, _>>()?;
    let config = CollectorConfig {
        update_interval,
        rate_intervals: whole_intervals(&asked, update_interval),
        ..CollectorConfig::default()
    };
    let name = args
        .segment
        .clone()
        .unwrap_or_else(|| format!("/nodestats-demo-{}", std::process::id()));
    let opts = SegmentOptions::new().name(name.clone());
    let created = match Segment::create(&opts) {
        Ok(_) => Some(Created {
            name: name.clone(),
            keep: args.keep,
        }),
        Err(Error::AlreadyExists(_)) => None,
        Err(e) => return Err(e),
    };
    let stats = Stats::open(&opts)?;
    // Updates are stamped with the time they are due, on one clock: the
    // collector takes the smallest window that spans at least the rate
    // window, and an update a millisecond late would leave the next 10 s
    // window at 9.999 s, so the rate would jump to the 12 s window every
    // other update. The counts are read at most a few milliseconds after
    // their stamp.
    let epoch = Instant::now();
    let at = |due: Instant| Timestamp {
        monotonic: due.saturating_duration_since(epoch),
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    };
    let mut collector = Collector::new(stats.segment().clone(), config.clone())?;
    // What was there before this run: on a segment other writers share,
    // only this run's adds are ours to check.
    let base = collector.update_at(at(epoch));
    let mut others = base.live_writers.saturating_sub(1);
    say!(
        "nodestats demo: {} workers, {} pkt/s in, recording into the segment {name} ({} shards); {}",
        args.workers,
        args.rate,
        stats.segment().layout().shard_count,
        if args.duration == 0 {
            "Ctrl-C to stop".to_string()
        } else {
            format!("{} s", args.duration)
        }
    );
    if created.is_none() {
        say!(
            "  attached to the existing segment {name} ({others} other writer(s) live); checking only this run's adds"
        );
    }
    say!(
        "  read it from another shell while this runs: {} show --segment {name}",
        self_command()
    );
    for (a, w) in asked.iter().zip(&config.rate_intervals) {
        if a != w {
            say!("  a {a:?} rate window spans whole {update_interval:?} updates: it is {w:?}");
        }
    }
    let app = if args.listen.is_empty() {
        None
    } else {
        let exporter = Exporter::new(
            stats.segment().clone(),
            &crate::serve::default_node_id(),
            "SERVER",
        )?;
        let app = crate::serve::app(exporter, config.update_interval);
        match crate::http::start(&args.listen, app.clone()) {
            Ok((addr, _)) => {
                say!("  metrics: http://{addr}/metrics   NodeStats: http://{addr}/stats");
                Some(app)
            }
            Err(e) => {
                note!("  not serving HTTP: cannot listen on {}: {e}", args.listen);
                None
            }
        }
    };
    let stats = Arc::new(stats);
    let per_worker = args.rate / args.workers as u64;
    let deadline = (args.duration > 0).then(|| Instant::now() + Duration::from_secs(args.duration));
    let workers: Vec<_> = (0..args.workers)
        .map(|i| {
            let s = stats.clone();
            std::thread::spawn(move || worker(&s, i as u64, per_worker, deadline))
        })
        .collect();

    let start = Instant::now();
    say!("{}", table::LEGEND);
    say!("{}", table::HEADER);
    let mut next = start;
    collector.update_at(at(start));
    loop {
        next += config.update_interval;
        let now = Instant::now();
        if next > now {
            sleep_unless_stopped(next - now);
        }
        if stopped() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let last = collector.update_at(at(next));
        others = others.max(last.live_writers.saturating_sub(1));
        if let Some(app) = &app {
            app.state.publish(&last, collector.anomalies());
            app.updated();
        }
        say!("{}", table::row((next - start).as_secs_f64(), &last));
    }
    let mut recorded = Recorded::default();
    for w in workers {
        let r = w.join().unwrap_or_default();
        recorded.packets_in += r.packets_in;
        recorded.bytes_in += r.bytes_in;
        recorded.packets_out += r.packets_out;
        recorded.bytes_out += r.bytes_out;
        recorded.retransmit_packets += r.retransmit_packets;
        recorded.nacks += r.nacks;
    }
    let end = Instant::now();
    let fin = collector.update_at(at(end));
    others = others.max(fin.live_writers.saturating_sub(1));
    say!("{}", table::row((end - start).as_secs_f64(), &fin));
    // The segment's growth during this run against what the workers
    // recorded: equal when this run was the only writer; when others wrote
    // too, every add of ours must have landed (growth at least ours).
    let grew = |f: fn(&nodestats::NodeStats) -> u64| f(&fin).wrapping_sub(f(&base));
    let checks = [
        ("packets_in", grew(|n| n.packets_in), recorded.packets_in),
        ("bytes_in", grew(|n| n.bytes_in), recorded.bytes_in),
        ("packets_out", grew(|n| n.packets_out), recorded.packets_out),
        ("bytes_out", grew(|n| n.bytes_out), recorded.bytes_out),
        (
            "retransmit_packets_out",
            grew(|n| n.retransmit_packets_out),
            recorded.retransmit_packets,
        ),
        ("nack_total", grew(|n| n.nack_total), recorded.nacks),
    ];
    let shared = others > 0;
    let exact = checks
        .iter()
        .all(|(_, a, b)| if shared { a >= b } else { a == b });
    say!(
        "totals: {} ({}: {})",
        checks
            .iter()
            .map(|(n, a, _)| format!("{n}={a}"))
            .collect::<Vec<_>>()
            .join(" "),
        if shared {
            "this run's adds, in a segment other writers also added to"
        } else {
            "segment growth vs what the workers recorded"
        },
        match (exact, shared) {
            (true, false) => "exact",
            (true, true) => "all landed",
            (false, _) => "MISMATCH",
        }
    );
    if exact {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "segment totals differ from recorded totals: {checks:?}"
        )))
    }
}

/// How to run this binary again from another shell: its path when that is
/// known, else its name.
fn self_command() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "nodestats".to_string())
}

/// One simulated SFU worker: every 10 ms, a receive batch forwarded to
/// subscribers, some NACKs and retransmits; rooms open and close.
fn worker(stats: &Stats, id: u64, pps: u64, deadline: Option<Instant>) -> Recorded {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x1234_5678_9abc_def1));
    let mut rec = Recorded::default();
    let mut rooms: Vec<Room> = Vec::new();
    let tick = Duration::from_millis(10);
    let per_tick = pps / 100;
    let mut carry = pps % 100;
    let mut next = Instant::now();
    while !stopped() && deadline.is_none_or(|d| Instant::now() < d) {
        // Packets: one recvmmsg-sized batch in, fanned out to subscribers.
        let mut n = per_tick;
        carry += pps % 100;
        if carry >= 100 {
            carry -= 100;
            n += 1;
        }
        if n > 0 {
            let bytes = n * (200 + rng.below(1000));
            stats.record_packets(Direction::Incoming, n, bytes, false);
            let fanout = 1 + rng.below(3);
            stats.record_packets(Direction::Outgoing, n * fanout, bytes * fanout, false);
            rec.packets_in += n;
            rec.bytes_in += bytes;
            rec.packets_out += n * fanout;
            rec.bytes_out += bytes * fanout;
            // About 1% loss: subscribers NACK, we retransmit.
            let lost = n / 100 + u64::from(rng.below(100) < n % 100);
            if lost > 0 {
                stats.record_rtcp(Direction::Incoming, lost as u32, 0, 0);
                stats.record_packets(Direction::Outgoing, lost, lost * 1100, true);
                rec.nacks += lost;
                rec.packets_out += lost;
                rec.bytes_out += lost * 1100;
                rec.retransmit_packets += lost;
            }
            if rng.below(500) == 0 {
                stats.record_rtcp(Direction::Outgoing, 0, 1, 0);
            }
        }
        // Once a second: the slower signals every labeled family gets.
        if rng.below(100) == 0 {
            exercise_families(stats, &mut rng, &mut rec);
        }
        // Rooms: start one now and then, end those whose time is up.
        if rng.below(100) == 0 && rooms.len() < 20 {
            rooms.push(open_room(stats, &mut rng));
        }
        let now = Instant::now();
        rooms.retain(|r| {
            let open = r.ends_at > now;
            if !open {
                close_room(stats, r);
            }
            open
        });
        next += tick;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    for r in &rooms {
        close_room(stats, r);
    }
    rec
}

/// Records into every labeled family LiveKit has, with plausible values.
fn exercise_families(s: &Stats, rng: &mut Rng, rec: &mut Recorded) {
    const COUNTRIES: [&str; 4] = ["US", "DE", "IN", "BR"];
    const SOURCES: [TrackSource; 3] = [
        TrackSource::Camera,
        TrackSource::Microphone,
        TrackSource::ScreenShare,
    ];
    let country = COUNTRIES[rng.below(4) as usize];
    let source = SOURCES[rng.below(3) as usize];
    let kind = if source == TrackSource::Microphone {
        TrackKind::Audio
    } else {
        TrackKind::Video
    };
    let dir = if rng.below(2) == 0 {
        Direction::Incoming
    } else {
        Direction::Outgoing
    };
    let ms = |r: &mut Rng, max: u64| Duration::from_millis(1 + r.below(max));
    s.record_signal_request_success();
    s.record_signal_response_success();
    if rng.below(20) == 0 {
        s.record_signal_request_failure();
        s.record_signal_response_failure();
        s.record_service_operation_error("offer", "remote_description");
    }
    s.record_service_operation_success("participant_join");
    s.record_twirp_request_status("RoomService", "ListRooms", "200", "");
    s.record_twirp_request_latency("RoomService", "ListRooms", ms(rng, 40), "200");
    s.record_packets_country(country, dir, 10, 12_000, false);
    s.record_rtcp_country(country, dir, 1, u32::from(rng.below(5) == 0), 0);
    rec.nacks += 1;
    match dir {
        Direction::Incoming => {
            rec.packets_in += 10;
            rec.bytes_in += 12_000;
        }
        Direction::Outgoing => {
            rec.packets_out += 10;
            rec.bytes_out += 12_000;
        }
    }
    let total = 500 + rng.below(500) as u32;
    s.record_packet_loss(country, dir, source, kind, rng.below(10) as u32, total);
    s.record_packet_out_of_order(country, dir, source, kind, rng.below(3) as u32, total);
    s.record_jitter(country, dir, source, kind, 1000 + rng.below(40_000) as u32);
    s.record_rtt(country, dir, source, kind, 20 + rng.below(200) as u32);
    s.participant_join_failed(u32::from(rng.below(50) == 0));
    s.participant_rtc_success(1, rng.below(2) == 0);
    s.connection_added(dir);
    s.connection_removed(dir);
    s.record_forward_latency_sample(50_000 + rng.below(2_000_000) as i64);
    s.forward_latency(100_000 + rng.below(50_000) as u32);
    s.forward_jitter(10_000 + rng.below(5_000) as u32);
    s.record_session_join_latency(16, ms(rng, 500));
    s.record_session_start_time(16, false, ms(rng, 2000));
    s.record_session_duration(16, Duration::from_secs(1 + rng.below(3600)));
    s.record_publish_time(country, source, kind, ms(rng, 900), "JS", "STANDARD");
    s.record_subscribe_time(
        country,
        source,
        kind,
        ms(rng, 900),
        "SWIFT",
        "STANDARD",
        1 + rng.below(3) as u32,
    );
    s.record_subscribe_stream_start_time(
        country,
        source,
        kind,
        ms(rng, 900),
        "ANDROID",
        "STANDARD",
    );
    s.record_peer_connection_state("PUBLISHER", "connected");
    s.record_peer_connection_state("SUBSCRIBER", "fully_established");
    let rating = [
        ConnectionQuality::Excellent,
        ConnectionQuality::Good,
        ConnectionQuality::Poor,
    ][rng.below(3) as usize];
    s.record_quality(rating, 3.0 + rng.below(15) as f32 / 10.0);
    s.record_data_packet_stream(
        "text",
        "text/plain",
        1 + rng.below(10) as u32,
        Some(100 + rng.below(10_000)),
    );
    s.add_ref("demo", 1);
    s.add_ref("demo", -1);
    s.webhook_dispatch_success();
    if rng.below(30) == 0 {
        s.webhook_dispatch_drop("queue is full");
        s.track_subscribe_failure_error("track not found", false);
    }
    s.webhook_queue_length(rng.below(5) as u32);
    s.psrpc_request_time(
        "client",
        "rpc",
        "SignalService",
        "RelaySignal",
        ms(rng, 100),
    );
    s.psrpc_stream_send_time("server", "SignalService", "RelaySignal", ms(rng, 20));
    s.psrpc_stream_received("server", "SignalService", "RelaySignal");
    s.psrpc_stream_opened("server", "SignalService", "RelaySignal");
    s.psrpc_stream_closed("server", "SignalService", "RelaySignal");
    if rng.below(40) == 0 {
        s.psrpc_error("client", "rpc", "RoomService", "DeleteRoom", "unavailable");
    }
    s.psrpc_bytes(
        "client",
        "rpc",
        "SignalService",
        "RelaySignal",
        "tx",
        200 + rng.below(800),
    );
    s.psrpc_request_received("RoomService", "ListRooms");
    s.psrpc_request_expired("RoomService", "DeleteRoom");
    s.psrpc_claim_wait_time("RoomService", "ListRooms", "claimed", ms(rng, 30));
}

fn open_room(stats: &Stats, rng: &mut Rng) -> Room {
    stats.room_started();
    let participants = 2 + rng.below(5) as u32;
    for _ in 0..participants {
        stats.participant_signal_connected(1);
        stats.participant_rtc_init(1);
        stats.participant_rtc_connected(1);
        stats.participant_rtc_active(1, false);
        stats.participant_added();
        for kind in [TrackKind::Audio, TrackKind::Video] {
            stats.track_publish_attempt(kind);
            stats.track_publish_success(kind);
            stats.track_published(kind);
        }
    }
    // Everyone subscribes to everyone else's audio and video.
    for _ in 0..participants * (participants - 1) {
        for kind in [TrackKind::Audio, TrackKind::Video] {
            stats.track_subscribe_attempt();
            stats.track_subscribe_success(kind);
        }
    }
    Room {
        participants,
        started: Instant::now(),
        ends_at: Instant::now() + Duration::from_secs(2 + rng.below(20)),
    }
}

fn close_room(stats: &Stats, r: &Room) {
    for _ in 0..r.participants * (r.participants - 1) {
        stats.track_unsubscribed(TrackKind::Audio);
        stats.track_unsubscribed(TrackKind::Video);
    }
    for _ in 0..r.participants {
        stats.track_unpublished(TrackKind::Audio);
        stats.track_unpublished(TrackKind::Video);
        stats.participant_removed();
    }
    stats.room_ended_after(r.started.elapsed());
}
