//! `nodestats nodes`: the cluster as the Redis node registry shows it —
//! a table like `livekit-server list-nodes`, JSON, a LiveKit-style node
//! selection, or a sweep of dead entries.

use clap::Args;
use nodestats::cluster::{
    self, Algorithm, AllocateError, Allocator, Limit, Node, NodeEntry, Region, ReserveConfig,
    SelectError, SelectorConfig, SelectorKind, SortBy, Ties, XorShift,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status of `--select` when no node can take a room.
const NO_NODE: u8 = 3;
/// Exit status of `--select --hard-limits` when no available node meets the limits.
const LIMITS_UNMET: u8 = 4;

#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: 0 ok, 1 error (Redis, --regions file), 2 usage, 3 --select found no available node, 4 --select --hard-limits found no available node within the --limit bounds."
)]
pub(crate) struct NodesArgs {
    /// Redis holding the registry, redis://HOST:PORT[/DB].
    #[arg(long)]
    redis: String,
    /// Print a JSON array of nodes (protobuf field names, plus `available`).
    #[arg(long)]
    json: bool,
    /// Choose the node for a new room as LiveKit would; its id is the last line.
    #[arg(long, conflicts_with_all = ["json", "sweep"])]
    select: bool,
    /// Selector kind: any, cpuload, sysload or regionaware.
    #[arg(long, default_value = "any")]
    selector: SelectorKind,
    /// Sort by random, sysload, cpuload, rooms, clients, tracks or bytespersec.
    #[arg(long, default_value = "random")]
    sort_by: SortBy,
    /// lowest or twochoice.
    #[arg(long, default_value = "lowest")]
    algorithm: Algorithm,
    /// Soft limit of the sysload selector (load average 1 min / CPUs).
    #[arg(long, default_value_t = 0.9)]
    sysload_limit: f32,
    /// Soft limit of the cpuload selector.
    #[arg(long, default_value_t = 0.9)]
    cpu_load_limit: f32,
    /// The current region (regionaware).
    #[arg(long, requires = "regions")]
    region: Option<String>,
    /// JSON file of regions: [{"name": .., "lat": .., "lon": ..}, ..] (regionaware).
    #[arg(long)]
    regions: Option<PathBuf>,
    /// LiveKit's limit.num_tracks (0 = off). As in LiveKit it never refuses a new room; to bound
    /// new rooms use --limit 'tracks<N' (with --hard-limits to refuse).
    #[arg(long, default_value_t = 0)]
    max_tracks: i32,
    /// LiveKit's limit.bytes_per_sec (0 = off); like --max-tracks, use --limit 'bytespersec<X'.
    #[arg(long, default_value_t = 0.0)]
    max_bytes_per_sec: f32,
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

pub(crate) fn run(args: NodesArgs) -> ExitCode {
    match execute(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nodestats nodes: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &NodesArgs) -> Result<ExitCode, String> {
    if args.sweep {
        let removed = cluster::sweep(
            &args.redis,
            Duration::from_secs(args.dead_after),
            cluster::unix_now(),
        )
        .map_err(|e| e.to_string())?;
        for id in &removed {
            println!("removed {id}");
        }
        eprintln!("{} dead node(s) removed", removed.len());
        return Ok(ExitCode::SUCCESS);
    }
    let config = if args.select {
        Some(selector_config(args)?)
    } else {
        None
    };
    let (mut entries, skipped) = cluster::list(&args.redis).map_err(|e| e.to_string())?;
    for s in &skipped {
        eprintln!("skipped entry {:?}: {}", s.key, s.reason);
    }
    for e in entries.iter().filter(|e| e.node.stats.is_none()) {
        eprintln!(
            "entry {:?} has no stats: listed and counted available, as LiveKit does",
            e.key
        );
    }
    let now = cluster::unix_now();
    if let Some(config) = config {
        // Redis order, as LiveKit's selector sees the nodes.
        let nodes: Vec<Node> = entries.into_iter().map(|e| e.node).collect();
        return choose(args, config, &nodes, now);
    }
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    if args.json {
        let all: Vec<serde_json::Value> = entries.iter().map(|e| json(e, now)).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?
        );
    } else {
        print_table(&entries, now);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--select`: prints the chosen node's id as the last line.
fn choose(
    args: &NodesArgs,
    config: SelectorConfig,
    nodes: &[Node],
    now: i64,
) -> Result<ExitCode, String> {
    if config.max_tracks > 0 || config.max_bytes_per_sec > 0.0 {
        eprintln!(
            "note: --max-tracks / --max-bytes-per-sec do not refuse a new room (LiveKit checks them only on the node already hosting a room); use --limit to bound new rooms"
        );
    }
    let chosen = if args.reserve {
        let reserve = ReserveConfig {
            ttl_seconds: args.reserve_ttl,
            ..ReserveConfig::default()
        };
        let mut allocator =
            Allocator::connect(&args.redis, config, reserve).map_err(|e| e.to_string())?;
        match allocator.allocate(nodes, now) {
            Ok(p) => Ok(p.node.id),
            Err(AllocateError::Select(e)) => Err(e),
            Err(AllocateError::Redis(e)) => return Err(e.to_string()),
        }
    } else {
        cluster::select(nodes, &config, now, &mut XorShift::from_entropy()).map(|n| n.id.clone())
    };
    match chosen {
        Ok(id) => {
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ SelectError::NoAvailableNodes) => {
            eprintln!("nodestats nodes: {e}");
            Ok(ExitCode::from(NO_NODE))
        }
        Err(e @ SelectError::LimitsUnmet { .. }) => {
            eprintln!("nodestats nodes: {e}");
            Ok(ExitCode::from(LIMITS_UNMET))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn selector_config(args: &NodesArgs) -> Result<SelectorConfig, String> {
    let regions = match &args.regions {
        None => Vec::new(),
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
    Ok(SelectorConfig {
        kind: args.selector,
        sort_by: args.sort_by,
        algorithm: args.algorithm,
        sysload_limit: args.sysload_limit,
        cpu_load_limit: args.cpu_load_limit,
        region: args.region.clone(),
        regions,
        max_tracks: args.max_tracks,
        max_bytes_per_sec: args.max_bytes_per_sec,
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

fn print_table(entries: &[NodeEntry], now: i64) {
    println!(
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
        println!(
            "{:<20} {:<13} {:<10} {:<15} {:>4} {:>5.1} {:>16} {:>19} {:>5} {:>7} {:>9} {:>21} {:>17} {:>6.2} {:>7.1} {:>6} {:>5}",
            n.id,
            n.state.name(),
            n.region,
            n.ip,
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
    println!(
        "{} node(s): {rooms} rooms, {clients} clients, {tin}/{tout} tracks in/out",
        entries.len()
    );
}
