//! Node selection, LiveKit's way, as a pure function of a node list, a
//! configuration, a clock reading and a random source.
//!
//! The steps are those of LiveKit's `pkg/routing/selector`:
//! 1. keep the **available** nodes: stats at most 4 s old (`now −
//!    updated_at < 5`, whole seconds; a node without stats counts as
//!    available, as in LiveKit) **and** state `SERVING`;
//! 2. ours, off unless configured: the [`Limit`]s (`cpuload<0.8`,
//!    `bytespersec<1e9`, …) keep the nodes under every one of them — soft
//!    like LiveKit's filters (if no node passes, all stay) or, with
//!    `hard_limits`, [`SelectError::LimitsUnmet`];
//! 3. the selector kind's filter — `cpuload` keeps `cpu_load <
//!    cpu_load_limit`, `sysload` keeps `load_avg_last1min / num_cpus <
//!    sysload_limit`; both are **soft** (if no node passes, all stay);
//!    `regionaware` is the sysload filter, then the nodes of the region
//!    nearest to the current one (haversine distance over `regions`) — and
//!    while no node is in a known region, LiveKit keeps the nodes that have
//!    no region at all (when there are some), which we do too;
//! 4. `sort_by` gives each node a value and `algorithm` picks: `lowest`, or
//!    `twochoice` (two distinct nodes at random, the lower one; with two
//!    nodes or fewer, the lowest, as LiveKit does);
//!    `sort_by = random` picks uniformly whatever the algorithm.
//!
//! LiveKit's per-node limits (`max_tracks`, `max_bytes_per_sec`) never
//! refuse a new room: its room allocator checks them only on the node that
//! already hosts a room. [`limits_reached`] is that check; [`Limit`]s are the
//! way to make them count for new rooms.
//!
//! Comparisons are made in `f32`, LiveKit's type for loads and limits, so a
//! node exactly at a limit is over it in both. Ties under `lowest` are broken
//! by [`Ties`]: at random by default, so equal nodes share new rooms; or, with
//! [`Ties::First`], the first of them in the order given — LiveKit's order
//! when the nodes come from [`list`](super::list) in Redis order. A node
//! without stats, which LiveKit would dereference and crash on, fails every
//! filter and limit and sorts last.

use super::node::{Node, NodeState};
use crate::NodeStats;
use std::fmt;
use std::str::FromStr;

/// A node is available while `now − stats.updated_at` is below this many
/// whole seconds.
pub const AVAILABLE_SECONDS: i64 = 5;

/// LiveKit's `IsAvailable`: stats updated less than [`AVAILABLE_SECONDS`]
/// ago (a node without stats is available, as in LiveKit). The state is not
/// looked at; see [`is_selectable`].
pub fn is_available(node: &Node, now_unix: i64) -> bool {
    match &node.stats {
        None => true,
        Some(s) => now_unix.saturating_sub(s.updated_at) < AVAILABLE_SECONDS,
    }
}

/// LiveKit's `GetAvailableNodes` for one node: available and `SERVING`.
pub fn is_selectable(node: &Node, now_unix: i64) -> bool {
    is_available(node, now_unix) && node.state == NodeState::Serving
}

/// LiveKit's system load: `load_avg_last1min / num_cpus` (0 CPUs count as
/// one), in `f32` as LiveKit computes it.
pub fn sysload(stats: &NodeStats) -> f32 {
    stats.load_avg_last1min as f32 / stats.num_cpus.max(1) as f32
}

/// Which filter runs before sorting (LiveKit's `node_selector.kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SelectorKind {
    /// No filter (`any`; LiveKit's deprecated `random` means the same).
    #[default]
    Any,
    /// Soft filter on `cpu_load < cpu_load_limit`.
    CpuLoad,
    /// Soft filter on `sysload < sysload_limit`.
    SysLoad,
    /// The sysload filter, then the nodes of the nearest region.
    RegionAware,
}

/// The value nodes are compared by (LiveKit's `node_selector.sort_by`);
/// every one but `Random` is also a metric a [`Limit`] can bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortBy {
    /// No order: a node at random.
    #[default]
    Random,
    /// [`sysload`].
    SysLoad,
    /// `stats.cpu_load`.
    CpuLoad,
    /// `stats.num_rooms`.
    Rooms,
    /// `stats.num_clients`.
    Clients,
    /// `stats.num_tracks_in + stats.num_tracks_out`.
    Tracks,
    /// `rates[0].bytes_in + rates[0].bytes_out` (0 without rates).
    BytesPerSec,
}

impl SortBy {
    /// This metric of `stats`, as LiveKit computes it (`f32` loads and
    /// rates, integer counts).
    pub fn value(self, stats: &NodeStats) -> f64 {
        match self {
            SortBy::Random => 0.0,
            SortBy::SysLoad => sysload(stats).into(),
            SortBy::CpuLoad => (stats.cpu_load as f32).into(),
            SortBy::Rooms => stats.num_rooms.into(),
            SortBy::Clients => stats.num_clients.into(),
            SortBy::Tracks => {
                (i64::from(stats.num_tracks_in) + i64::from(stats.num_tracks_out)) as f64
            }
            SortBy::BytesPerSec => bytes_per_sec(stats).into(),
        }
    }

    /// The name LiveKit's configuration uses.
    pub fn name(self) -> &'static str {
        match self {
            SortBy::Random => "random",
            SortBy::SysLoad => "sysload",
            SortBy::CpuLoad => "cpuload",
            SortBy::Rooms => "rooms",
            SortBy::Clients => "clients",
            SortBy::Tracks => "tracks",
            SortBy::BytesPerSec => "bytespersec",
        }
    }
}

/// How the node is picked from the sorted values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    /// The node with the lowest value.
    #[default]
    Lowest,
    /// Two distinct nodes at random, the one with the lower value.
    TwoChoice,
}

/// Which of several nodes with the lowest value `lowest` takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ties {
    /// One of them at random (the default): equal nodes share new rooms.
    #[default]
    Random,
    /// The first of them in the order the nodes are given. With nodes in
    /// Redis order this is LiveKit's pick: Go's `slices.SortFunc` is an
    /// insertion sort up to 12 elements, so the first tied node stays in
    /// front. (Past 12 candidates LiveKit's pattern-defeating quicksort is
    /// not stable and may put another tied node first.)
    First,
}

/// A region and where it is, for [`SelectorKind::RegionAware`].
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Region {
    /// The region name nodes publish.
    pub name: String,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

/// A comparison of a [`Limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitOp {
    /// `<`
    Below,
    /// `<=`
    AtMost,
    /// `>`
    Above,
    /// `>=`
    AtLeast,
}

impl LimitOp {
    fn symbol(self) -> &'static str {
        match self {
            LimitOp::Below => "<",
            LimitOp::AtMost => "<=",
            LimitOp::Above => ">",
            LimitOp::AtLeast => ">=",
        }
    }
}

/// One bound a node must meet to take a new room: `metric op value`,
/// written `cpuload<0.8`, `bytespersec<=1e9`, `rooms<50`, … (the metrics
/// are the [`SortBy`] names but `random`). The comparison is made in
/// `f32`, like LiveKit's own limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    /// What is compared.
    pub metric: SortBy,
    /// How.
    pub op: LimitOp,
    /// Against what.
    pub value: f64,
}

impl Limit {
    /// Whether `stats` meets this bound (NaN never does).
    pub fn passes(&self, stats: &NodeStats) -> bool {
        let (v, bound) = (self.metric.value(stats) as f32, self.value as f32);
        match self.op {
            LimitOp::Below => v < bound,
            LimitOp::AtMost => v <= bound,
            LimitOp::Above => v > bound,
            LimitOp::AtLeast => v >= bound,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.metric.name(),
            self.op.symbol(),
            self.value
        )
    }
}

impl FromStr for Limit {
    type Err = String;

    /// `METRIC OP VALUE` (spaces allowed), e.g. `cpuload<0.8`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "bad limit {s:?}: {why}; write METRIC<VALUE (or <=, >, >=) with METRIC one of \
                 sysload, cpuload, rooms, clients, tracks, bytespersec"
            )
        };
        let at = s.find(['<', '>']).ok_or_else(|| bad("no comparison"))?;
        let (name, rest) = s.split_at(at);
        let (op, value) = match rest.as_bytes() {
            [b'<', b'=', ..] => (LimitOp::AtMost, &rest[2..]),
            [b'>', b'=', ..] => (LimitOp::AtLeast, &rest[2..]),
            [b'<', ..] => (LimitOp::Below, &rest[1..]),
            _ => (LimitOp::Above, &rest[1..]),
        };
        let metric = match name.trim().parse::<SortBy>() {
            Ok(SortBy::Random) | Err(_) => {
                return Err(bad(&format!("unknown metric {:?}", name.trim())))
            }
            Ok(m) => m,
        };
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| bad(&format!("{:?} is not a number", value.trim())))?;
        if !value.is_finite() {
            return Err(bad("the value must be finite"));
        }
        Ok(Limit { metric, op, value })
    }
}

/// LiveKit's `node_selector` (and `limit`) configuration, and our limits.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectorConfig {
    /// The filter.
    pub kind: SelectorKind,
    /// The value compared.
    pub sort_by: SortBy,
    /// The pick.
    pub algorithm: Algorithm,
    /// Soft limit of the sysload filter (default 0.9).
    pub sysload_limit: f32,
    /// Soft limit of the cpuload filter (default 0.9).
    pub cpu_load_limit: f32,
    /// The region the allocation happens in (regionaware).
    pub region: Option<String>,
    /// Known regions with their coordinates (regionaware).
    pub regions: Vec<Region>,
    /// LiveKit's `limit.num_tracks` (0 = off). As in LiveKit it never
    /// refuses a new room; [`limits_reached`] checks it on the node that
    /// already hosts one. Use a [`Limit`] on `tracks` to bound new rooms.
    pub max_tracks: i32,
    /// LiveKit's `limit.bytes_per_sec` (0 = off); like `max_tracks`.
    pub max_bytes_per_sec: f32,
    /// Bounds every chosen node must meet (empty: none).
    pub limits: Vec<Limit>,
    /// When no node meets `limits`: false (default) keeps every available
    /// node, like LiveKit's soft filters; true fails with
    /// [`SelectError::LimitsUnmet`].
    pub hard_limits: bool,
    /// Which tied node `lowest` takes.
    pub ties: Ties,
}

impl Default for SelectorConfig {
    fn default() -> Self {
        SelectorConfig {
            kind: SelectorKind::Any,
            sort_by: SortBy::Random,
            algorithm: Algorithm::Lowest,
            sysload_limit: 0.9,
            cpu_load_limit: 0.9,
            region: None,
            regions: Vec::new(),
            max_tracks: 0,
            max_bytes_per_sec: 0.0,
            limits: Vec::new(),
            hard_limits: false,
            ties: Ties::Random,
        }
    }
}

/// Why no node was selected.
#[derive(Clone, Debug, PartialEq)]
pub enum SelectError {
    /// No node is fresh and `SERVING`.
    NoAvailableNodes,
    /// `hard_limits` is set and no available node meets every limit.
    LimitsUnmet {
        /// The limits, as written.
        limits: String,
    },
    /// The regionaware configuration is incomplete.
    Region(String),
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::NoAvailableNodes => {
                f.write_str("no available node (none SERVING with stats under 5 s old)")
            }
            SelectError::LimitsUnmet { limits } => {
                write!(f, "no available node meets the hard limits {limits}")
            }
            SelectError::Region(why) => write!(f, "regionaware selector: {why}"),
        }
    }
}

impl std::error::Error for SelectError {}

/// Where the selector's randomness comes from. Closures `FnMut(usize) ->
/// usize` are sources, which makes tests deterministic.
pub trait RandomSource {
    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize;
}

impl<F: FnMut(usize) -> usize> RandomSource for F {
    fn below(&mut self, n: usize) -> usize {
        self(n) % n.max(1)
    }
}

/// A small xorshift64* generator: plenty for spreading rooms, no
/// dependency.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0 is replaced by a fixed odd constant).
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// A generator seeded from the clock and the process id.
    pub fn from_entropy() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        XorShift::new(t ^ (u64::from(std::process::id()) << 32))
    }
}

impl RandomSource for XorShift {
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as usize % n.max(1)
    }
}

fn parse_error(what: &str, s: &str, valid: &str) -> String {
    format!("unknown {what} {s:?}: use one of {valid}")
}

impl FromStr for SelectorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "any" | "random" | "" => Ok(SelectorKind::Any),
            "cpuload" => Ok(SelectorKind::CpuLoad),
            "sysload" => Ok(SelectorKind::SysLoad),
            "regionaware" => Ok(SelectorKind::RegionAware),
            _ => Err(parse_error(
                "selector",
                s,
                "any, cpuload, sysload, regionaware",
            )),
        }
    }
}

impl FromStr for SortBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "random" => Ok(SortBy::Random),
            "sysload" => Ok(SortBy::SysLoad),
            "cpuload" => Ok(SortBy::CpuLoad),
            "rooms" => Ok(SortBy::Rooms),
            "clients" => Ok(SortBy::Clients),
            "tracks" => Ok(SortBy::Tracks),
            "bytespersec" => Ok(SortBy::BytesPerSec),
            _ => Err(parse_error(
                "sort_by",
                s,
                "random, sysload, cpuload, rooms, clients, tracks, bytespersec",
            )),
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "lowest" => Ok(Algorithm::Lowest),
            "twochoice" => Ok(Algorithm::TwoChoice),
            _ => Err(parse_error("algorithm", s, "lowest, twochoice")),
        }
    }
}

impl FromStr for Ties {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "random" => Ok(Ties::Random),
            "first" => Ok(Ties::First),
            _ => Err(parse_error("tie-break", s, "random, first")),
        }
    }
}

fn bytes_per_sec(s: &NodeStats) -> f32 {
    s.rates
        .first()
        .map_or(0.0, |r| r.bytes_in as f32 + r.bytes_out as f32)
}

fn sort_value(node: &Node, by: SortBy) -> f64 {
    node.stats.as_ref().map_or(f64::INFINITY, |s| by.value(s))
}

/// The nodes passing `pass` (a node without stats never does).
fn passing<'a>(nodes: &[&'a Node], pass: impl Fn(&NodeStats) -> bool) -> Vec<&'a Node> {
    nodes
        .iter()
        .copied()
        .filter(|n| n.stats.as_ref().is_some_and(&pass))
        .collect()
}

/// Keeps the nodes passing `pass`, or all of them if none does.
fn soft_filter(nodes: Vec<&Node>, pass: impl Fn(&NodeStats) -> bool) -> Vec<&Node> {
    let low = passing(&nodes, pass);
    if low.is_empty() {
        nodes
    } else {
        low
    }
}

/// Great-circle distance in km.
fn haversine(a: &Region, b: &Region) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let (dlat, dlon) = ((b.lat - a.lat).to_radians(), (b.lon - a.lon).to_radians());
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// The nodes of the known region nearest to `config.region`. Until a node
/// in a known region is met, the nodes without a region are the "nearest"
/// (LiveKit starts its scan with the empty region as the nearest one), so
/// with no node in a known region those are kept; all nodes when there are
/// none of them either.
fn nearest_region<'a>(
    nodes: Vec<&'a Node>,
    config: &SelectorConfig,
) -> Result<Vec<&'a Node>, SelectError> {
    let current = config
        .region
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| SelectError::Region("the current region is not set".into()))?;
    let here = config.regions.iter().find(|r| r.name == current);
    if here.is_none() && !config.regions.is_empty() {
        return Err(SelectError::Region(format!(
            "the current region {current:?} is not in the regions list"
        )));
    }
    let distance = |name: &str| {
        let here = here?;
        config
            .regions
            .iter()
            .find(|r| r.name == name)
            .map(|r| haversine(here, r))
    };
    // The first region met at the smallest distance wins, as in LiveKit.
    let mut nearest = "";
    let mut best = f64::MAX;
    let mut kept: Vec<&Node> = Vec::new();
    for n in &nodes {
        if n.region == nearest {
            kept.push(n);
        } else if let Some(d) = distance(&n.region).filter(|&d| d < best) {
            best = d;
            nearest = &n.region;
            kept.clear();
            kept.push(n);
        }
    }
    Ok(if kept.is_empty() { nodes } else { kept })
}

/// One of `nodes` at random; no draw when there is only one.
fn any<'a>(nodes: &[&'a Node], rng: &mut dyn RandomSource) -> &'a Node {
    match nodes {
        [one] => one,
        _ => nodes[rng.below(nodes.len())],
    }
}

fn lowest<'a>(
    nodes: &[&'a Node],
    sort_by: SortBy,
    ties: Ties,
    rng: &mut dyn RandomSource,
) -> &'a Node {
    let value = |node: &Node| sort_value(node, sort_by);
    let min = nodes.iter().map(|n| value(n)).fold(f64::INFINITY, f64::min);
    let tied: Vec<&Node> = nodes.iter().copied().filter(|n| value(n) <= min).collect();
    // Every value NaN: no order, the tie-break takes among all.
    let tied = if tied.is_empty() { nodes } else { &tied };
    match ties {
        Ties::Random => any(tied, rng),
        Ties::First => tied[0],
    }
}

fn pick<'a>(nodes: &[&'a Node], config: &SelectorConfig, rng: &mut dyn RandomSource) -> &'a Node {
    let n = nodes.len();
    if config.sort_by == SortBy::Random || n == 1 {
        return any(nodes, rng);
    }
    match config.algorithm {
        Algorithm::TwoChoice if n > 2 => {
            let i = rng.below(n);
            let mut j = rng.below(n - 1);
            if j >= i {
                j += 1;
            }
            // The pair in draw order: a tie keeps the first draw.
            lowest(&[nodes[i], nodes[j]], config.sort_by, Ties::First, rng)
        }
        _ => lowest(nodes, config.sort_by, config.ties, rng),
    }
}

/// LiveKit's `LimitsReached`: whether the node that already hosts a room
/// is at `max_tracks` or `max_bytes_per_sec`, so that the room refuses new
/// participants. It is never applied to a new room (see [`Limit`] for
/// that).
pub fn limits_reached(stats: &NodeStats, config: &SelectorConfig) -> bool {
    let tracks = i64::from(stats.num_tracks_in) + i64::from(stats.num_tracks_out);
    (config.max_tracks > 0 && i64::from(config.max_tracks) <= tracks)
        || (config.max_bytes_per_sec > 0.0 && config.max_bytes_per_sec <= bytes_per_sec(stats))
}

fn limit_list(limits: &[Limit]) -> String {
    limits
        .iter()
        .map(Limit::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Picks the node for a new room from `nodes`, as LiveKit's selector and
/// room allocator would at `now_unix`, with randomness from `rng`.
///
/// Pure: the same inputs and random numbers give the same node.
pub fn select<'a>(
    nodes: &'a [Node],
    config: &SelectorConfig,
    now_unix: i64,
    rng: &mut dyn RandomSource,
) -> Result<&'a Node, SelectError> {
    select_among(nodes.iter(), config, now_unix, rng)
}

/// [`select`] over nodes that need not be contiguous.
pub(crate) fn select_among<'a>(
    nodes: impl Iterator<Item = &'a Node>,
    config: &SelectorConfig,
    now_unix: i64,
    rng: &mut dyn RandomSource,
) -> Result<&'a Node, SelectError> {
    let available: Vec<&Node> = nodes.filter(|n| is_selectable(n, now_unix)).collect();
    if available.is_empty() {
        return Err(SelectError::NoAvailableNodes);
    }
    let within = |s: &NodeStats| config.limits.iter().all(|l| l.passes(s));
    let available = if config.limits.is_empty() {
        available
    } else if config.hard_limits {
        let ok = passing(&available, within);
        if ok.is_empty() {
            return Err(SelectError::LimitsUnmet {
                limits: limit_list(&config.limits),
            });
        }
        ok
    } else {
        soft_filter(available, within)
    };
    let sys = |s: &NodeStats| sysload(s) < config.sysload_limit;
    let candidates = match config.kind {
        SelectorKind::Any => available,
        SelectorKind::CpuLoad => {
            soft_filter(available, |s| (s.cpu_load as f32) < config.cpu_load_limit)
        }
        SelectorKind::SysLoad => soft_filter(available, sys),
        SelectorKind::RegionAware => nearest_region(soft_filter(available, sys), config)?,
    };
    Ok(pick(&candidates, config, rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeStatsRate;

    const NOW: i64 = 1_700_000_000;

    fn node(id: &str, f: impl FnOnce(&mut NodeStats)) -> Node {
        let mut s = NodeStats {
            updated_at: NOW,
            num_cpus: 4,
            ..NodeStats::default()
        };
        f(&mut s);
        Node {
            id: id.into(),
            stats: Some(s),
            ..Node::default()
        }
    }

    fn cfg(kind: SelectorKind, sort_by: SortBy) -> SelectorConfig {
        SelectorConfig {
            kind,
            sort_by,
            ..SelectorConfig::default()
        }
    }

    /// A random source that replays `seq` and panics when it runs out.
    fn seq(v: &[usize]) -> impl FnMut(usize) -> usize + '_ {
        let mut it = v.iter();
        move |n| {
            let x = *it.next().expect("more random numbers than expected");
            assert!(x < n, "{x} is not below {n}");
            x
        }
    }

    fn pick_id(nodes: &[Node], c: &SelectorConfig, r: &[usize]) -> Result<String, SelectError> {
        select(nodes, c, NOW, &mut seq(r)).map(|n| n.id.clone())
    }

    #[test]
    fn availability_is_under_five_whole_seconds_and_missing_stats_count_as_fresh() {
        let mut n = node("a", |_| {});
        assert!(is_available(&n, NOW + 4));
        assert!(!is_available(&n, NOW + 5));
        assert!(is_available(&n, NOW - 100), "clock skew the other way");
        n.stats = None;
        assert!(
            is_available(&n, i64::MAX),
            "LiveKit: nil stats are available"
        );
        n.state = NodeState::ShuttingDown;
        assert!(!is_selectable(&n, NOW));
    }

    #[test]
    fn stale_and_non_serving_nodes_are_never_chosen() {
        let mut stale = node("stale", |s| s.updated_at = NOW - 5);
        stale.state = NodeState::Serving;
        let mut draining = node("draining", |_| {});
        draining.state = NodeState::ShuttingDown;
        let mut starting = node("starting", |_| {});
        starting.state = NodeState::StartingUp;
        let mut busy = node("busy", |s| s.num_rooms = 50);
        let nodes = vec![stale.clone(), draining, starting, busy.clone()];
        let c = cfg(SelectorKind::Any, SortBy::Rooms);
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "busy");
        busy.updated_at_minus(10);
        assert_eq!(
            pick_id(&[stale, busy], &c, &[]),
            Err(SelectError::NoAvailableNodes)
        );
        assert_eq!(pick_id(&[], &c, &[]), Err(SelectError::NoAvailableNodes));
    }

    impl Node {
        fn updated_at_minus(&mut self, secs: i64) {
            if let Some(s) = &mut self.stats {
                s.updated_at -= secs;
            }
        }
    }

    #[test]
    fn every_sort_key_picks_its_lowest() {
        let nodes = vec![
            node("a", |s| {
                s.num_rooms = 1;
                s.num_clients = 9;
                s.num_tracks_in = 5;
                s.num_tracks_out = 5;
                s.cpu_load = 0.2;
                s.load_avg_last1min = 3.0;
                s.rates = vec![NodeStatsRate {
                    bytes_in: 10.0,
                    bytes_out: 10.0,
                    ..NodeStatsRate::default()
                }];
            }),
            node("b", |s| {
                s.num_rooms = 2;
                s.num_clients = 1;
                s.num_tracks_in = 1;
                s.num_tracks_out = 20;
                s.cpu_load = 0.1;
                s.load_avg_last1min = 3.0;
                s.num_cpus = 8;
                s.rates = vec![NodeStatsRate {
                    bytes_in: 30.0,
                    ..NodeStatsRate::default()
                }];
            }),
            node("c", |s| {
                s.num_rooms = 3;
                s.num_clients = 5;
                s.num_tracks_in = 2;
                s.num_tracks_out = 2;
                s.cpu_load = 0.3;
                s.load_avg_last1min = 4.0;
            }),
        ];
        for (by, want) in [
            (SortBy::Rooms, "a"),
            (SortBy::Clients, "b"),
            (SortBy::Tracks, "c"),
            (SortBy::CpuLoad, "b"),
            (SortBy::SysLoad, "b"),
            (SortBy::BytesPerSec, "c"),
        ] {
            let c = cfg(SelectorKind::Any, by);
            assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), want, "{by:?}");
        }
        // random ignores the algorithm and takes what the source says.
        let mut c = cfg(SelectorKind::Any, SortBy::Random);
        assert_eq!(pick_id(&nodes, &c, &[2]).unwrap(), "c");
        c.algorithm = Algorithm::TwoChoice;
        assert_eq!(pick_id(&nodes, &c, &[1]).unwrap(), "b");
    }

    #[test]
    fn sysload_counts_zero_cpus_as_one() {
        let s = NodeStats {
            load_avg_last1min: 1.5,
            num_cpus: 0,
            ..NodeStats::default()
        };
        assert_eq!(sysload(&s), 1.5);
    }

    #[test]
    fn ties_under_lowest_are_shared_by_the_random_source() {
        let nodes = vec![
            node("a", |s| s.num_rooms = 1),
            node("b", |s| s.num_rooms = 0),
            node("c", |s| s.num_rooms = 0),
        ];
        let c = cfg(SelectorKind::Any, SortBy::Rooms);
        assert_eq!(pick_id(&nodes, &c, &[0]).unwrap(), "b");
        assert_eq!(pick_id(&nodes, &c, &[1]).unwrap(), "c");
    }

    #[test]
    fn cpuload_filter_is_soft_and_strict_at_the_limit() {
        let nodes = vec![
            node("hot", |s| {
                s.cpu_load = 0.95;
                s.num_rooms = 0;
            }),
            // Exactly the limit (as f32) is over it, as in LiveKit.
            node("edge", |s| {
                s.cpu_load = 0.9f32.into();
                s.num_rooms = 1;
            }),
            node("cool", |s| {
                s.cpu_load = 0.5;
                s.num_rooms = 9;
            }),
        ];
        let c = cfg(SelectorKind::CpuLoad, SortBy::Rooms);
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "cool");
        // Nobody under the limit: every available node stays.
        assert_eq!(pick_id(&nodes[..2], &c, &[]).unwrap(), "hot");
        // `any` does not filter.
        let c = cfg(SelectorKind::Any, SortBy::Rooms);
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "hot");
    }

    #[test]
    fn sysload_filter_is_soft_and_uses_stats_num_cpus() {
        let nodes = vec![
            // 3.8 / 4 = 0.95: over.
            node("loaded", |s| {
                s.load_avg_last1min = 3.8;
                s.num_clients = 0;
            }),
            // 3.8 / 8 = 0.475: under, whatever Node.num_cpus says.
            node("big", |s| {
                s.load_avg_last1min = 3.8;
                s.num_cpus = 8;
                s.num_clients = 100;
            }),
        ];
        let mut c = cfg(SelectorKind::SysLoad, SortBy::Clients);
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "big");
        c.sysload_limit = 0.4;
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "loaded", "soft");
    }

    #[test]
    fn two_choice_keeps_the_lower_of_two_distinct_nodes() {
        let nodes: Vec<Node> = (0..4)
            .map(|i| node(&format!("n{i}"), |s| s.num_rooms = 10 - i))
            .collect();
        let mut c = cfg(SelectorKind::Any, SortBy::Rooms);
        c.algorithm = Algorithm::TwoChoice;
        // i = 0, j = 0 → skips i → 1: n1 has fewer rooms than n0.
        assert_eq!(pick_id(&nodes, &c, &[0, 0]).unwrap(), "n1");
        // i = 3, j = 1: n3 (7 rooms) beats n1 (9).
        assert_eq!(pick_id(&nodes, &c, &[3, 1]).unwrap(), "n3");
        // A tie keeps the first draw.
        let tied = vec![node("x", |_| {}), node("y", |_| {}), node("z", |_| {})];
        assert_eq!(pick_id(&tied, &c, &[1, 0]).unwrap(), "y");
        // One node: no draw at all.
        assert_eq!(pick_id(&tied[..1], &c, &[]).unwrap(), "x");
    }

    fn regions() -> Vec<Region> {
        let r = |name: &str, lat, lon| Region {
            name: name.into(),
            lat,
            lon,
        };
        vec![
            r("us-west", 37.6, -122.4),
            r("us-east", 40.7, -74.0),
            r("eu-west", 51.5, -0.1),
        ]
    }

    #[test]
    fn region_aware_prefers_the_nearest_region_after_the_sysload_filter() {
        let in_region = |id: &str, region: &str, load: f64| {
            let mut n = node(id, |s| s.load_avg_last1min = load);
            n.region = region.into();
            n
        };
        let nodes = vec![
            in_region("east-1", "us-east", 0.4),
            in_region("eu-1", "eu-west", 0.1),
            in_region("west-1", "us-west", 3.9),
            in_region("nowhere", "mars", 0.0),
        ];
        let mut c = cfg(SelectorKind::RegionAware, SortBy::SysLoad);
        c.regions = regions();
        c.region = Some("us-west".into());
        // us-west is over the sysload limit: the nearest region left is us-east.
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "east-1");
        c.region = Some("eu-west".into());
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "eu-1");
        // No node in a known region and none without a region: all stay.
        assert_eq!(pick_id(&nodes[3..], &c, &[]).unwrap(), "nowhere");
        // No node in a known region: LiveKit keeps only the nodes without
        // a region, however loaded.
        let mut blank = node("blank", |s| s.load_avg_last1min = 3.0);
        blank.region = String::new();
        let mixed = vec![nodes[3].clone(), blank.clone()];
        assert_eq!(pick_id(&mixed, &c, &[]).unwrap(), "blank");
        // A region without coordinates after a known one is not kept, nor is
        // an empty-region node met after it.
        let later = vec![nodes[0].clone(), blank.clone(), nodes[3].clone()];
        assert_eq!(pick_id(&later, &c, &[]).unwrap(), "east-1");
        // No regions configured at all: only the region-less nodes.
        c.regions.clear();
        assert_eq!(pick_id(&later, &c, &[]).unwrap(), "blank");
        c.regions = regions();
        c.region = Some("ap-south".into());
        assert!(matches!(
            pick_id(&nodes, &c, &[]),
            Err(SelectError::Region(_))
        ));
        c.region = None;
        assert!(matches!(
            pick_id(&nodes, &c, &[]),
            Err(SelectError::Region(_))
        ));
    }

    #[test]
    fn livekit_limits_never_refuse_a_new_room_but_flag_the_hosting_node() {
        let nodes = vec![node("a", |s| {
            s.num_tracks_in = 3;
            s.num_tracks_out = 2;
            s.rates = vec![NodeStatsRate {
                bytes_out: 1000.0,
                ..NodeStatsRate::default()
            }];
        })];
        let mut c = cfg(SelectorKind::Any, SortBy::Tracks);
        c.max_tracks = 5;
        c.max_bytes_per_sec = 1000.0;
        // LiveKit's room allocator checks them only on a room's current node.
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "a");
        let s = nodes[0].stats.as_ref().unwrap();
        assert!(limits_reached(s, &c));
        c.max_tracks = 6;
        assert!(limits_reached(s, &c), "bytes");
        c.max_bytes_per_sec = 1001.0;
        assert!(!limits_reached(s, &c));
        c.max_tracks = 0;
        c.max_bytes_per_sec = 0.0;
        assert!(!limits_reached(s, &c), "0 is off");
    }

    #[test]
    fn limits_parse_and_name_what_is_wrong() {
        let l: Limit = "cpuload<0.8".parse().unwrap();
        assert_eq!(
            (l.metric, l.op, l.value),
            (SortBy::CpuLoad, LimitOp::Below, 0.8)
        );
        let l: Limit = " bytespersec <= 1e9 ".parse().unwrap();
        assert_eq!(
            (l.metric, l.op, l.value),
            (SortBy::BytesPerSec, LimitOp::AtMost, 1e9)
        );
        assert_eq!("rooms>=3".parse::<Limit>().unwrap().op, LimitOp::AtLeast);
        assert_eq!("Tracks>3".parse::<Limit>().unwrap().op, LimitOp::Above);
        assert_eq!(
            "sysload<=1".parse::<Limit>().unwrap().to_string(),
            "sysload<=1"
        );
        for (bad, why) in [
            ("cpuload", "no comparison"),
            ("random<1", "unknown metric"),
            ("memory<1", "unknown metric \"memory\""),
            ("rooms<lots", "\"lots\" is not a number"),
            ("rooms<", "is not a number"),
            ("rooms<inf", "finite"),
            ("rooms=<3", "unknown metric"),
        ] {
            let e = bad.parse::<Limit>().unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn limits_keep_nodes_meeting_every_bound_soft_or_hard() {
        let mk = |id: &str, cpu: f64, bytes: f64, rooms: i32| {
            node(id, |s| {
                s.cpu_load = cpu;
                s.num_rooms = rooms;
                s.rates = vec![NodeStatsRate {
                    bytes_in: bytes,
                    ..NodeStatsRate::default()
                }];
            })
        };
        let nodes = vec![
            mk("hot", 0.95, 1e3, 0),
            mk("busy-net", 0.2, 5e9, 1),
            mk("ok", 0.5, 1e8, 9),
        ];
        let mut c = cfg(SelectorKind::Any, SortBy::Rooms);
        c.limits = vec![
            "cpuload<0.8".parse().unwrap(),
            "bytespersec<1e9".parse().unwrap(),
        ];
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "ok");
        // Nobody meets them: soft keeps every node, hard fails.
        c.limits.push("rooms<5".parse().unwrap());
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "hot");
        c.hard_limits = true;
        assert_eq!(
            pick_id(&nodes, &c, &[]),
            Err(SelectError::LimitsUnmet {
                limits: "cpuload<0.8, bytespersec<1000000000, rooms<5".into()
            })
        );
        // Exactly at a limit: < fails, <= passes (in f32).
        c.limits = vec!["cpuload<0.5".parse().unwrap()];
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "busy-net");
        c.limits = vec!["cpuload<=0.5".parse().unwrap(), "rooms>1".parse().unwrap()];
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "ok");
        // A node without stats meets no limit.
        let mut bare = node("bare", |_| {});
        bare.stats = None;
        c.limits = vec!["rooms<100".parse().unwrap()];
        assert!(pick_id(&[bare], &c, &[]).is_err());
    }

    #[test]
    fn ties_first_takes_the_first_in_the_given_order_like_livekit() {
        let nodes = vec![
            node("a", |s| s.num_rooms = 1),
            node("b", |s| s.num_rooms = 0),
            node("c", |s| s.num_rooms = 0),
        ];
        let mut c = cfg(SelectorKind::Any, SortBy::Rooms);
        c.ties = Ties::First;
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "b");
        assert_eq!("first".parse(), Ok(Ties::First));
        assert!("last".parse::<Ties>().is_err());
    }

    #[test]
    fn two_choice_over_two_nodes_is_lowest_as_in_livekit() {
        let nodes = vec![
            node("x", |s| s.num_rooms = 3),
            node("y", |s| s.num_rooms = 1),
        ];
        let mut c = cfg(SelectorKind::Any, SortBy::Rooms);
        c.algorithm = Algorithm::TwoChoice;
        // No draw at all: `seq` would panic on one.
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "y");
    }

    #[test]
    fn nodes_without_stats_sort_last_and_fail_filters() {
        let mut bare = node("bare", |_| {});
        bare.stats = None;
        let nodes = vec![bare.clone(), node("hot", |s| s.cpu_load = 0.99)];
        let c = cfg(SelectorKind::CpuLoad, SortBy::CpuLoad);
        assert_eq!(pick_id(&nodes, &c, &[]).unwrap(), "hot");
        assert_eq!(pick_id(&[bare], &c, &[0]).unwrap(), "bare");
    }

    #[test]
    fn names_parse_like_livekit_config() {
        assert_eq!("random".parse(), Ok(SelectorKind::Any));
        assert_eq!("RegionAware".parse(), Ok(SelectorKind::RegionAware));
        assert_eq!("bytespersec".parse(), Ok(SortBy::BytesPerSec));
        assert_eq!("twochoice".parse(), Ok(Algorithm::TwoChoice));
        assert!("fastest".parse::<SortBy>().unwrap_err().contains("rooms"));
    }

    #[test]
    fn xorshift_stays_in_range_and_spreads() {
        let mut r = XorShift::new(0);
        let mut seen = [0u32; 5];
        for _ in 0..5000 {
            seen[r.below(5)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }
}
