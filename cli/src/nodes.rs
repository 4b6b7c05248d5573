//! `nodestats nodes`: the cluster as the Redis node registry shows it —
//! a table like `livekit-server list-nodes`, JSON, a LiveKit-style node
//! selection, or a sweep of dead entries.

use crate::config::{LiveKitFile, RegistryArgs};
use clap::Args;
use nodestats::cluster::{
    self, Algorithm, AllocateError, Allocator, Limit, Node, NodeEntry, RedisConfig, Region,
    ReserveConfig, SelectError, SelectorConfig, SelectorKind, SortBy, Ties, XorShift,
};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Exit status of `--select` when no node can take a room.
const NO_NODE: u8 = 3;
/// Exit status of `--select --hard-limits` when no available node meets the limits.
const LIMITS_UNMET: u8 = 4;

#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 ok, 1 error (Redis, timeout, --config or --regions file), 2 usage, 3 --select found no available node, 4 --select --hard-limits found no available node within the --limit bounds.\n\
                  Node ids, regions and IPs in the table are printed with control characters escaped (\\x1b, \\n, ...); --select never prints an id that contains one (such nodes are left out of the choice, with a note on stderr); --json is JSON-escaped."
)]
pub(crate) struct NodesArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    /// Give up after this many seconds, connecting and reading included.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    timeout: f64,
    /// Print a JSON array of nodes (protobuf field names, plus `available`).
    #[arg(long)]
    json: bool,
    /// Choose the node for a new room as LiveKit would; its id is printed alone on stdout.
    #[arg(long, conflicts_with_all = ["json", "sweep"])]
    select: bool,
    /// Selector kind: any, cpuload, sysload or regionaware [default: node_selector.kind of --config, else any].
    #[arg(long)]
    selector: Option<SelectorKind>,
    /// Sort by random, sysload, cpuload, rooms, clients, tracks or bytespersec [default: node_selector.sort_by, else random].
    #[arg(long)]
    sort_by: Option<SortBy>,
    /// lowest or twochoice [default: node_selector.algorithm, else lowest].
    #[arg(long)]
    algorithm: Option<Algorithm>,
    /// Soft limit of the sysload selector (load average 1 min / CPUs) [default: node_selector.sysload_limit, else 0.9].
    #[arg(long)]
    sysload_limit: Option<f32>,
    /// Soft limit of the cpuload selector [default: node_selector.cpu_load_limit, else 0.9].
    #[arg(long)]
    cpu_load_limit: Option<f32>,
    /// The current region (regionaware) [default: region of --config].
    #[arg(long)]
    region: Option<String>,
    /// JSON file of regions: [{"name": .., "lat": .., "lon": ..}, ..] (regionaware) [default: node_selector.regions].
    #[arg(long)]
    regions: Option<PathBuf>,
    /// LiveKit's limit.num_tracks (0 = off) [default: limit.num_tracks of --config, else 0]. As in
    /// LiveKit it never refuses a new room; to bound new rooms use --limit 'tracks<N' (with
    /// --hard-limits to refuse).
    #[arg(long)]
    max_tracks: Option<i32>,
    /// LiveKit's limit.bytes_per_sec (0 = off) [default: limit.bytes_per_sec of --config, else 0];
    /// like --max-tracks, use --limit 'bytespersec<X'.
    #[arg(long)]
    max_bytes_per_sec: Option<f32>,
    /// Keep only nodes meeting METRIC<VALUE (or <=, >, >=); METRIC: sysload, cpuload, rooms,
    /// clients, tracks, bytespersec. Repeat for several; soft unless --hard-limits.
    #[arg(long = "limit", value_name = "LIMIT", requires = "select")]
    limits: Vec<Limit>,
    /// When no available node meets every --limit, fail (exit 4) instead of keeping them all.
    #[arg(long, requires = "select")]
    hard_limits: bool,
    /// Which node `lowest` takes among equals: random, or first (LiveKit's: the first in Redis order).
    #[arg(long, default_value = "random")]
    ties: Ties,
    /// Count the rooms placed since each node's last stats update (by any allocator sharing this
    /// Redis) and reserve the chosen node, so bursts spread instead of herding.
    #[arg(long, requires = "select")]
    reserve: bool,
    /// Seconds a --reserve placement counts at most if the node's stats never catch up.
    #[arg(long, default_value_t = 10, requires = "reserve", value_parser = clap::value_parser!(i64).range(1..))]
    reserve_ttl: i64,
    /// Remove entries whose stats are older than --dead-after seconds.
    #[arg(long, conflicts_with = "json")]
    sweep: bool,
    /// Age in seconds after which --sweep removes an entry.
    #[arg(long, default_value_t = 60, requires = "sweep")]
    dead_after: u64,
}

/// What a run prints, made before anything is printed so that a run that
/// times out prints nothing but the reason.
struct Report {
    stdout: String,
    stderr: String,
    code: ExitCode,
}

pub(crate) fn run(args: NodesArgs) -> ExitCode {
    let timeout = match Duration::try_from_secs_f64(args.timeout) {
        Ok(t) if !t.is_zero() => t,
        _ => {
            note!(
                "nodestats nodes: --timeout must be a positive number of seconds, got {}",
                args.timeout
            );
            return ExitCode::from(2);
        }
    };
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel();
    // The whole run is bounded: connecting, the sentinels, every read. The
    // worker's own socket timeouts end it soon after; if anything still
    // hangs, the process exits here with the reason.
    let target = std::thread::Builder::new()
        .name("nodestats-nodes".into())
        .spawn(move || {
            let _ = tx.send(execute(&args, deadline));
        });
    if let Err(e) = target {
        note!("nodestats nodes: cannot start: {e}");
        return ExitCode::FAILURE;
    }
    let result = rx
        .recv_timeout(
            deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(50),
        )
        .unwrap_or_else(|_| {
            Err(format!(
                "timed out after {} s (connecting to or reading from Redis; --timeout)",
                timeout.as_secs_f64()
            ))
        });
    match result {
        Ok(r) => {
            use std::io::Write as _;
            let _ = std::io::stderr().write_all(r.stderr.as_bytes());
            let _ = std::io::stdout().write_all(r.stdout.as_bytes());
            r.code
        }
        Err(e) => {
            note!("nodestats nodes: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// Longest wait for one step (a connect, one read or write): a hung
/// sentinel then leaves time to ask the next one.
const STEP: Duration = Duration::from_secs(2);

/// Time for one step: what is left before `deadline`, at most [`STEP`]
/// (at least 1 ms).
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .clamp(Duration::from_millis(1), STEP)
}

/// A Redis error for the user, saying when it is `--timeout` that ran out.
fn timed_out(e: cluster::ClusterError) -> String {
    if e.is_timeout() {
        format!("timed out (--timeout): {e}")
    } else {
        e.to_string()
    }
}

fn execute(args: &NodesArgs, deadline: Instant) -> Result<Report, String> {
    let file = args.registry.file()?;
    let redis: RedisConfig = args.registry.registry(&file)?.ok_or(
        "say where the registry is: --redis URL, or --config livekit.yaml with a redis: block",
    )?;
    let mut out = Report {
        stdout: String::new(),
        stderr: String::new(),
        code: ExitCode::SUCCESS,
    };
    if args.sweep {
        let removed = cluster::sweep_from(
            &redis,
            left(deadline),
            Duration::from_secs(args.dead_after),
            cluster::unix_now(),
        )
        .map_err(timed_out)?;
        for id in &removed {
            let _ = writeln!(out.stdout, "removed {}", printable(id));
        }
        let _ = writeln!(out.stderr, "{} dead node(s) removed", removed.len());
        return Ok(out);
    }
    let config = if args.select {
        Some(selector_config(args, &file)?)
    } else {
        None
    };
    // --reserve lists the nodes over the allocator's own connection: one
    // connection for the whole run.
    let mut allocator = match (&config, args.reserve) {
        (Some(config), true) => {
            let reserve = ReserveConfig {
                ttl_seconds: args.reserve_ttl,
                ..ReserveConfig::default()
            };
            Some(
                Allocator::connect_to(&redis, left(deadline), config.clone(), reserve)
                    .map_err(timed_out)?,
            )
        }
        _ => None,
    };
    let (mut entries, skipped) = match &mut allocator {
        Some(a) => a.entries(),
        None => cluster::list_from(&redis, left(deadline)),
    }
    .map_err(timed_out)?;
    for s in &skipped {
        let _ = writeln!(out.stderr, "skipped entry {:?}: {}", s.key, s.reason);
    }
    for e in entries.iter().filter(|e| e.node.stats.is_none()) {
        let _ = writeln!(
            out.stderr,
            "entry {:?} has no stats: listed and counted available, as LiveKit does",
            e.key
        );
    }
    let now = cluster::unix_now();
    if let Some(config) = config {
        let mut nodes: Vec<Node> = Vec::with_capacity(entries.len());
        for e in entries {
            if plain_id(&e.node.id) {
                nodes.push(e.node);
            } else {
                let _ = writeln!(
                    out.stderr,
                    "left out of the choice: node id {:?} is empty or has control characters",
                    e.node.id
                );
            }
        }
        choose(config, allocator.as_mut(), &nodes, now, &mut out)?;
        return Ok(out);
    }
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    if args.json {
        let all: Vec<serde_json::Value> = entries.iter().map(|e| json(e, now)).collect();
        let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
        let _ = writeln!(out.stdout, "{text}");
    } else {
        print_table(&mut out.stdout, &entries, now);
    }
    Ok(out)
}

/// Whether `id` can be printed alone on a line and read back as itself:
/// not empty, no control character (newline, ESC, DEL, C1), no bidi
/// override.
pub(crate) fn plain_id(id: &str) -> bool {
    !id.is_empty() && !id.chars().any(hidden)
}

/// Characters that move the cursor, start an escape sequence or reorder
/// text on a terminal.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` for a terminal: every [`hidden`] character as `\xNN` or `\u{NNNN}`,
/// and `\` as `\\` so an escape cannot be faked.
pub(crate) fn printable(s: &str) -> String {
    escape(s, true)
}

/// A message for a terminal or a log (it may quote what a server said):
/// every [`hidden`] character escaped; backslashes kept as they are.
pub(crate) fn message(s: &str) -> String {
    escape(s, false)
}

fn escape(s: &str, backslash: bool) -> String {
    let special = |c: char| hidden(c) || (backslash && c == '\\');
    if !s.chars().any(special) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' if backslash => out.push_str("\\\\"),
            c if hidden(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if hidden(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// `--select`: the chosen node's id alone on `out.stdout`; placed and
/// reserved by `allocator` (`--reserve`) when there is one.
fn choose(
    config: SelectorConfig,
    allocator: Option<&mut Allocator>,
    nodes: &[Node],
    now: i64,
    out: &mut Report,
) -> Result<(), String> {
    if config.max_tracks > 0 || config.max_bytes_per_sec > 0.0 {
        let _ = writeln!(
            out.stderr,
            "note: --max-tracks / --max-bytes-per-sec (limit.num_tracks / limit.bytes_per_sec of --config) do not refuse a new room (LiveKit checks them only on the node already hosting a room); use --limit to bound new rooms"
        );
    }
    let chosen = match allocator {
        Some(allocator) => match allocator.allocate(nodes, now) {
            Ok(p) => Ok(p.node.id),
            Err(AllocateError::Select(e)) => Err(e),
            Err(AllocateError::Redis(e)) => return Err(timed_out(e)),
        },
        None => cluster::select(nodes, &config, now, &mut XorShift::from_entropy())
            .map(|n| n.id.clone()),
    };
    match chosen {
        Ok(id) => {
            let _ = writeln!(out.stdout, "{id}");
        }
        Err(e @ SelectError::NoAvailableNodes) => {
            let _ = writeln!(out.stderr, "nodestats nodes: {}", message(&e.to_string()));
            out.code = ExitCode::from(NO_NODE);
        }
        Err(e @ SelectError::LimitsUnmet { .. }) => {
            let _ = writeln!(out.stderr, "nodestats nodes: {}", message(&e.to_string()));
            out.code = ExitCode::from(LIMITS_UNMET);
        }
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}

fn selector_config(args: &NodesArgs, file: &LiveKitFile) -> Result<SelectorConfig, String> {
    let ns = file.node_selector.clone().unwrap_or_default();
    let limit = file.limit.clone().unwrap_or_default();
    // A key of the file, parsed; an empty value is LiveKit's default.
    fn key<T: std::str::FromStr<Err = String>>(
        name: &str,
        v: &Option<String>,
    ) -> Result<Option<T>, String> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e| format!("--config: node_selector.{name}: {e}")),
        }
    }
    let kind = match args.selector {
        Some(k) => k,
        None => key("kind", &ns.kind)?.unwrap_or(SelectorKind::Any),
    };
    let sort_by = match args.sort_by {
        Some(k) => k,
        None => key("sort_by", &ns.sort_by)?.unwrap_or(SortBy::Random),
    };
    let algorithm = match args.algorithm {
        Some(k) => k,
        None => key("algorithm", &ns.algorithm)?.unwrap_or(Algorithm::Lowest),
    };
    let regions = match &args.regions {
        None => ns.regions.clone(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --regions {}: {e}", path.display()))?;
            serde_json::from_str::<Vec<Region>>(&text).map_err(|e| {
                format!(
                    "--regions {}: expected [{{\"name\": .., \"lat\": .., \"lon\": ..}}]: {e}",
                    path.display()
                )
            })?
        }
    };
    let region = args.region.clone().or_else(|| file.region.clone());
    if args.region.is_some() && regions.is_empty() {
        return Err("--region needs --regions (or node_selector.regions in --config)".into());
    }
    Ok(SelectorConfig {
        kind,
        sort_by,
        algorithm,
        sysload_limit: args.sysload_limit.or(ns.sysload_limit).unwrap_or(0.9),
        cpu_load_limit: args.cpu_load_limit.or(ns.cpu_load_limit).unwrap_or(0.9),
        region,
        regions,
        max_tracks: args.max_tracks.or(limit.num_tracks).unwrap_or(0),
        max_bytes_per_sec: args
            .max_bytes_per_sec
            .or(limit.bytes_per_sec)
            .unwrap_or(0.0),
        limits: args.limits.clone(),
        hard_limits: args.hard_limits,
        ties: args.ties,
    })
}

/// Our own NodeStats fields, which are not in the protobuf message.
const OURS: &[&str] = &[
    "num_cpus_exact",
    "udp_rcvbuf_errors",
    "udp_in_errors",
    "rx_dropped",
    "segment_id",
    "live_writers",
];
const OURS_RATE: &[&str] = &["interval_seconds", "window_seconds", "complete", "resets"];

fn json(e: &NodeEntry, now: i64) -> serde_json::Value {
    let n = &e.node;
    let mut stats = serde_json::to_value(&n.stats).unwrap_or_default();
    if let Some(map) = stats.as_object_mut() {
        for k in OURS {
            map.remove(*k);
        }
        if let Some(rates) = map.get_mut("rates").and_then(|r| r.as_array_mut()) {
            for r in rates.iter_mut().filter_map(|r| r.as_object_mut()) {
                for k in OURS_RATE {
                    r.remove(*k);
                }
            }
        }
    }
    serde_json::json!({
        "id": n.id,
        "ip": n.ip,
        "num_cpus": n.num_cpus,
        "state": n.state.name(),
        "region": n.region,
        "type": n.node_type,
        "stats": stats,
        "available": cluster::is_selectable(n, now),
    })
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v.max(0.0);
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

fn print_table(out: &mut String, entries: &[NodeEntry], now: i64) {
    let _ = writeln!(
        out,
        "{:<20} {:<13} {:<10} {:<15} {:>4} {:>5} {:>16} {:>19} {:>5} {:>7} {:>9} {:>21} {:>17} {:>6} {:>7} {:>6} {:>5}",
        "ID",
        "STATE",
        "REGION",
        "IP",
        "CPUS",
        "CPU%",
        "LOAD 1/5/15",
        "MEMORY used/total",
        "ROOMS",
        "CLIENTS",
        "TRACKS",
        "BYTES/S in/out",
        "PACKETS/S in/out",
        "DROP%",
        "NACK/S",
        "AGE",
        "AVAIL"
    );
    let (mut rooms, mut clients, mut tin, mut tout) = (0i64, 0i64, 0i64, 0i64);
    for e in entries {
        let n = &e.node;
        let s = n.stats.clone().unwrap_or_default();
        let r = s.rates.first().cloned().unwrap_or_default();
        let sent = r.sys_packets_dropped + r.sys_packets_out;
        let drop = if sent > 0.0 {
            100.0 * r.sys_packets_dropped / sent
        } else {
            0.0
        };
        rooms += i64::from(s.num_rooms);
        clients += i64::from(s.num_clients);
        tin += i64::from(s.num_tracks_in);
        tout += i64::from(s.num_tracks_out);
        let _ = writeln!(
            out,
            "{:<20} {:<13} {:<10} {:<15} {:>4} {:>5.1} {:>16} {:>19} {:>5} {:>7} {:>9} {:>21} {:>17} {:>6.2} {:>7.1} {:>6} {:>5}",
            printable(&n.id),
            n.state.name(),
            printable(&n.region),
            printable(&n.ip),
            s.num_cpus,
            s.cpu_load * 100.0,
            format!(
                "{:.2}/{:.2}/{:.2}",
                s.load_avg_last1min, s.load_avg_last5min, s.load_avg_last15min
            ),
            format!(
                "{}/{}",
                bytes(s.memory_used as f64),
                bytes(s.memory_total as f64)
            ),
            s.num_rooms,
            s.num_clients,
            format!("{}/{}", s.num_tracks_in, s.num_tracks_out),
            format!("{}/{}", bytes(r.bytes_in), bytes(r.bytes_out)),
            format!("{:.0}/{:.0}", r.packets_in, r.packets_out),
            drop,
            r.nack_total,
            n.stats
                .as_ref()
                .map_or("-".into(), |s| format!("{}s", now.saturating_sub(s.updated_at))),
            if cluster::is_selectable(n, now) {
                "yes"
            } else {
                "no"
            },
        );
    }
    let _ = writeln!(
        out,
        "{} node(s): {rooms} rooms, {clients} clients, {tin}/{tout} tracks in/out",
        entries.len()
    );
}
