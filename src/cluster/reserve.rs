//! Selection that does not herd: every placement is reserved in Redis and
//! counted until the node's own stats have caught up with it.
//!
//! LiveKit's selector works on stats up to a few seconds old, so a burst of
//! new rooms all go to the node that looked lowest at the last update
//! (livekit#3784). An [`Allocator`] adds to each node the rooms placed on it
//! since its last update — by this process or any other allocator sharing
//! the Redis — before it chooses, as Jitsi's focus adds recent placements to
//! a bridge's reported stress.
//!
//! **In Redis.** One hash, [`RESERVATIONS_KEY`]: a field `<second>:<node id>`
//! counts the rooms placed on the node during that Unix second (the
//! allocator's clock), and the field `version` counts commits. Placing is
//! optimistic: read the hash, choose, then one Lua script checks that
//! `version` has not moved, adds the placement, prunes the fields older than
//! the expiry (at most once a second, noted in the field `pruned`) and
//! refreshes the key's expiry — atomically. If another
//! allocator committed in between, the script returns the fresh hash and the
//! choice is made again over it (no extra round trip); after
//! [`ReserveConfig::max_attempts`] the placement is committed without the
//! check. The key carries the hash tag `{nodes}`, so under Redis Cluster it
//! lives in the slot of LiveKit's `nodes` hash.
//!
//! **When a reservation counts.** A placement made during second `s` on a
//! node whose stats have `updated_at = u` counts while `u ≤ s` (stats from
//! the same second may not include it yet; later ones do) and `s > now −
//! ttl` (the node never caught up: it is stale, or its update is lost). A
//! node without stats has nothing to catch up: its placements count until
//! they expire.
//!
//! **How a reservation counts.** `r` pending placements add to the node's
//! stats, before limits, filters and sorting: `r` rooms; and `r` times the
//! node's own per-room share of clients, tracks in and out, CPU load,
//! 1-minute load average and `rates[0]` bytes in and out (the value divided
//! by its `num_rooms`). A node without rooms uses the fleet's share instead
//! (the sums over the nodes that have rooms, divided by their rooms), and
//! nothing but rooms when no node has a room. Counts are rounded to whole
//! clients and tracks. Every `sort_by` and [`Limit`](super::Limit) therefore
//! sees the placements.

use super::error::ClusterError;
use super::node::Node;
use super::registry::{self, NodeEntry, Skipped, NODES_KEY};
use super::select::{select_among, RandomSource, SelectError, SelectorConfig, XorShift};
use crate::NodeStats;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// The Redis hash holding every allocator's reservations.
pub const RESERVATIONS_KEY: &str = "nodestats:reservations:{nodes}";

/// Time allowed to connect and for each command.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Adds one placement if the version is still the one the choice was made
/// on (`ARGV[1]`; `-1` skips the check), prunes expired fields (at most once
/// a second: the field `pruned` holds when) and renews the key's expiry. Returns `{1, {}}`, or `{0, <the hash>}` on a conflict.
/// ARGV: expected version, node id, now (Unix seconds), ttl (seconds).
const COMMIT: &str = r"
local key = KEYS[1]
local version = tonumber(redis.call('HGET', key, 'version') or '0')
if tonumber(ARGV[1]) >= 0 and version ~= tonumber(ARGV[1]) then
  return {0, redis.call('HGETALL', key)}
end
if tonumber(redis.call('HGET', key, 'pruned') or '0') < tonumber(ARGV[3]) then
  local cutoff = tonumber(ARGV[3]) - tonumber(ARGV[4])
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local second = tonumber(string.match(all[i], '^(%-?%d+):'))
    if second ~= nil and second <= cutoff then
      redis.call('HDEL', key, all[i])
    end
  end
  redis.call('HSET', key, 'pruned', ARGV[3])
end
redis.call('HINCRBY', key, ARGV[3] .. ':' .. ARGV[2], 1)
redis.call('HINCRBY', key, 'version', 1)
redis.call('EXPIRE', key, ARGV[4])
return {1, {}}
";

/// How reservations are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReserveConfig {
    /// Seconds after which a placement stops counting even if the node's
    /// stats never caught up (default 10: five of LiveKit's 2 s stats
    /// intervals, twice the time a node stays available without an update).
    pub ttl_seconds: i64,
    /// Commits tried against a moving `version` before one is made without
    /// the check (default 32).
    pub max_attempts: u32,
}

impl Default for ReserveConfig {
    fn default() -> Self {
        ReserveConfig {
            ttl_seconds: 10,
            max_attempts: 32,
        }
    }
}

/// The reservations read from [`RESERVATIONS_KEY`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reservations {
    version: i64,
    /// node id → (second, placements) pairs.
    placed: HashMap<String, Vec<(i64, u32)>>,
}

impl Reservations {
    /// From the hash's field/value pairs. Fields that are not
    /// `<second>:<node id>` or `version`, and values that are not counts,
    /// are ignored.
    pub fn from_fields(fields: Vec<(String, String)>) -> Self {
        let mut r = Reservations::default();
        for (field, value) in fields {
            if field == "version" {
                r.version = value.parse().unwrap_or(0);
                continue;
            }
            let Some((second, node)) = field.split_once(':') else {
                continue;
            };
            if let (Ok(second), Ok(count)) = (second.parse::<i64>(), value.parse::<u32>()) {
                r.placed
                    .entry(node.to_string())
                    .or_default()
                    .push((second, count));
            }
        }
        r
    }

    /// The commit counter the reservations were read at.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The placements on `node` that still count at `now_unix` (see the
    /// module documentation).
    pub fn pending(&self, node: &Node, now_unix: i64, ttl_seconds: i64) -> u32 {
        let caught_up = node.stats.as_ref().map_or(i64::MIN, |s| s.updated_at);
        self.placed.get(&node.id).map_or(0, |v| {
            v.iter()
                .filter(|&&(s, _)| s >= caught_up && s > now_unix.saturating_sub(ttl_seconds))
                .map(|&(_, n)| n)
                .sum()
        })
    }
}

/// Per-room shares of the metrics a placement adds to.
#[derive(Clone, Copy, Debug, Default)]
struct PerRoom {
    clients: f64,
    tracks_in: f64,
    tracks_out: f64,
    cpu_load: f64,
    load1: f64,
    bytes_in: f64,
    bytes_out: f64,
}

impl PerRoom {
    /// The sums of `stats`' metrics and their rooms.
    fn sums(stats: &NodeStats) -> (PerRoom, f64) {
        let rate = stats.rates.first().cloned().unwrap_or_default();
        (
            PerRoom {
                clients: stats.num_clients.into(),
                tracks_in: stats.num_tracks_in.into(),
                tracks_out: stats.num_tracks_out.into(),
                cpu_load: stats.cpu_load,
                load1: stats.load_avg_last1min,
                bytes_in: rate.bytes_in,
                bytes_out: rate.bytes_out,
            },
            stats.num_rooms.max(0).into(),
        )
    }

    fn add(self, o: PerRoom) -> PerRoom {
        PerRoom {
            clients: self.clients + o.clients,
            tracks_in: self.tracks_in + o.tracks_in,
            tracks_out: self.tracks_out + o.tracks_out,
            cpu_load: self.cpu_load + o.cpu_load,
            load1: self.load1 + o.load1,
            bytes_in: self.bytes_in + o.bytes_in,
            bytes_out: self.bytes_out + o.bytes_out,
        }
    }

    fn times(self, k: f64) -> PerRoom {
        PerRoom {
            clients: self.clients * k,
            tracks_in: self.tracks_in * k,
            tracks_out: self.tracks_out * k,
            cpu_load: self.cpu_load * k,
            load1: self.load1 * k,
            bytes_in: self.bytes_in * k,
            bytes_out: self.bytes_out * k,
        }
    }
}

/// Adds `rooms` placements costing `share` each to `stats`.
fn add_placements(stats: &mut NodeStats, rooms: u32, share: PerRoom) {
    let extra = share.times(rooms.into());
    let whole = |v: f64| v.round().clamp(0.0, f64::from(i32::MAX)) as i32;
    stats.num_rooms = stats.num_rooms.saturating_add_unsigned(rooms);
    stats.num_clients = stats.num_clients.saturating_add(whole(extra.clients));
    stats.num_tracks_in = stats.num_tracks_in.saturating_add(whole(extra.tracks_in));
    stats.num_tracks_out = stats.num_tracks_out.saturating_add(whole(extra.tracks_out));
    stats.cpu_load += extra.cpu_load;
    stats.load_avg_last1min += extra.load1;
    if let Some(rate) = stats.rates.first_mut() {
        rate.bytes_in += extra.bytes_in;
        rate.bytes_out += extra.bytes_out;
    }
}

/// `nodes` with their pending placements added to their stats (see the
/// module documentation), in the same order.
pub fn with_reservations(
    nodes: &[Node],
    reservations: &Reservations,
    now_unix: i64,
    ttl_seconds: i64,
) -> Vec<Node> {
    let mut out = nodes.to_vec();
    for (i, n) in estimates(nodes, reservations, now_unix, ttl_seconds) {
        out[i] = n;
    }
    out
}

/// The nodes with placements pending, by index, with them added.
fn estimates(
    nodes: &[Node],
    reservations: &Reservations,
    now_unix: i64,
    ttl_seconds: i64,
) -> Vec<(usize, Node)> {
    let pending: Vec<(usize, u32)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (i, reservations.pending(n, now_unix, ttl_seconds)))
        .filter(|&(i, p)| p > 0 && nodes[i].stats.is_some())
        .collect();
    if pending.is_empty() {
        return Vec::new();
    }
    let (fleet, fleet_rooms) = nodes
        .iter()
        .filter_map(|n| n.stats.as_ref())
        .map(PerRoom::sums)
        .filter(|&(_, rooms)| rooms > 0.0)
        .fold((PerRoom::default(), 0.0), |(a, r), (b, s)| {
            (a.add(b), r + s)
        });
    let fleet_share = if fleet_rooms > 0.0 {
        fleet.times(1.0 / fleet_rooms)
    } else {
        PerRoom::default()
    };
    pending
        .into_iter()
        .map(|(i, p)| {
            let mut n = nodes[i].clone();
            if let Some(s) = n.stats.as_mut() {
                let (sums, rooms) = PerRoom::sums(s);
                let share = if rooms > 0.0 {
                    sums.times(1.0 / rooms)
                } else {
                    fleet_share
                };
                add_placements(s, p, share);
            }
            (i, n)
        })
        .collect()
}

/// A node chosen and reserved.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The node, as listed (without the placements added).
    pub node: Node,
    /// Placements on it that counted before this one.
    pub pending: u32,
    /// Commits tried (1 when no other allocator got in between).
    pub attempts: u32,
}

/// Why [`Allocator::allocate`] placed nothing.
#[derive(Debug)]
pub enum AllocateError {
    /// No node could be chosen.
    Select(SelectError),
    /// Redis failed.
    Redis(ClusterError),
}

impl fmt::Display for AllocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocateError::Select(e) => e.fmt(f),
            AllocateError::Redis(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AllocateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AllocateError::Select(e) => Some(e),
            AllocateError::Redis(e) => Some(e),
        }
    }
}

impl From<ClusterError> for AllocateError {
    fn from(e: ClusterError) -> Self {
        AllocateError::Redis(e)
    }
}

/// A room allocator that reserves what it places (see the module
/// documentation). It needs only `HGETALL` and `EVAL` from its connection.
pub struct Allocator {
    url: String,
    con: Box<dyn redis::ConnectionLike + Send>,
    /// How nodes are chosen.
    pub config: SelectorConfig,
    /// How reservations are kept.
    pub reserve: ReserveConfig,
    rng: Box<dyn RandomSource + Send>,
}

impl fmt::Debug for Allocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Allocator")
            .field("url", &super::error::redact(&self.url))
            .field("config", &self.config)
            .field("reserve", &self.reserve)
            .finish_non_exhaustive()
    }
}

impl Allocator {
    /// Connects to the Redis at `url`, with randomness from the clock.
    pub fn connect(
        url: &str,
        config: SelectorConfig,
        reserve: ReserveConfig,
    ) -> Result<Self, ClusterError> {
        let con = registry::connect(url, TIMEOUT)?;
        Ok(Allocator::with_connection(
            url,
            Box::new(con),
            config,
            reserve,
            Box::new(XorShift::from_entropy()),
        ))
    }

    /// Connects to the registry `redis` describes (one Redis, Sentinel or
    /// Cluster, as [`RedisConfig`](super::RedisConfig) says), each step
    /// bounded by `timeout`, with randomness from the clock.
    pub fn connect_to(
        redis: &super::RedisConfig,
        timeout: Duration,
        config: SelectorConfig,
        reserve: ReserveConfig,
    ) -> Result<Self, ClusterError> {
        let con = redis.connect(timeout)?;
        Ok(Allocator::with_connection(
            &redis.describe(),
            Box::new(con),
            config,
            reserve,
            Box::new(XorShift::from_entropy()),
        ))
    }

    /// An allocator over a connection made elsewhere (`url` names it in
    /// errors), with randomness from `rng`.
    pub fn with_connection(
        url: &str,
        con: Box<dyn redis::ConnectionLike + Send>,
        config: SelectorConfig,
        reserve: ReserveConfig,
        rng: Box<dyn RandomSource + Send>,
    ) -> Self {
        Allocator {
            url: url.to_string(),
            con,
            config,
            reserve,
            rng,
        }
    }

    /// The entries of the hash `nodes`, in Redis order, and those that do
    /// not decode: what [`list`](super::list) returns, read over this
    /// connection.
    pub fn entries(&mut self) -> Result<(Vec<NodeEntry>, Vec<Skipped>), ClusterError> {
        let raw: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(NODES_KEY)
            .query(&mut *self.con)
            .map_err(|e| self.error(format!("HGETALL {NODES_KEY} failed"), e))?;
        Ok(registry::decode_entries(raw))
    }

    /// The usable nodes of the hash `nodes`, in Redis order
    /// ([`entries`](Self::entries) without the keys and skipped ones).
    pub fn nodes(&mut self) -> Result<Vec<Node>, ClusterError> {
        Ok(self.entries()?.0.into_iter().map(|e| e.node).collect())
    }

    /// The reservations as they are now.
    pub fn reservations(&mut self) -> Result<Reservations, ClusterError> {
        let fields: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(RESERVATIONS_KEY)
            .query(&mut *self.con)
            .map_err(|e| self.error(format!("HGETALL {RESERVATIONS_KEY} failed"), e))?;
        Ok(Reservations::from_fields(fields))
    }

    fn error(&self, what: String, e: redis::RedisError) -> ClusterError {
        ClusterError::new(&self.url, what, Some(e))
    }

    /// Chooses a node for a new room among `nodes` at `now_unix`, with the
    /// placements pending on each added, and reserves it.
    pub fn allocate(&mut self, nodes: &[Node], now_unix: i64) -> Result<Placement, AllocateError> {
        let ttl = self.reserve.ttl_seconds.max(1);
        let mut reservations = self.reservations()?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let changed = estimates(nodes, &reservations, now_unix, ttl);
            let mut next = changed.iter().peekable();
            let estimated =
                nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| match next.next_if(|(at, _)| *at == i) {
                        Some((_, e)) => e,
                        None => n,
                    });
            let chosen = select_among(estimated, &self.config, now_unix, &mut *self.rng)
                .map_err(AllocateError::Select)?;
            let at = match changed.iter().find(|(_, e)| std::ptr::eq(e, chosen)) {
                Some(&(i, _)) => i,
                None => nodes
                    .iter()
                    .position(|n| std::ptr::eq(n, chosen))
                    .expect("select returns one of the nodes it was given"),
            };
            let expected = if attempts >= self.reserve.max_attempts.max(1) {
                -1
            } else {
                reservations.version
            };
            let (done, fresh): (i64, Vec<(String, String)>) = redis::cmd("EVAL")
                .arg(COMMIT)
                .arg(1)
                .arg(RESERVATIONS_KEY)
                .arg(expected)
                .arg(&nodes[at].id)
                .arg(now_unix)
                .arg(ttl)
                .query(&mut *self.con)
                .map_err(|e| self.error(format!("reserving in {RESERVATIONS_KEY} failed"), e))?;
            if done == 1 {
                return Ok(Placement {
                    node: nodes[at].clone(),
                    pending: reservations.pending(&nodes[at], now_unix, ttl),
                    attempts,
                });
            }
            reservations = Reservations::from_fields(fresh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeStatsRate;

    const NOW: i64 = 1_700_000_000;

    fn node(id: &str, rooms: i32, clients: i32, cpu: f64) -> Node {
        Node {
            id: id.into(),
            stats: Some(NodeStats {
                updated_at: NOW - 1,
                num_cpus: 4,
                num_rooms: rooms,
                num_clients: clients,
                num_tracks_in: clients,
                num_tracks_out: 2 * clients,
                cpu_load: cpu,
                load_avg_last1min: cpu * 4.0,
                rates: vec![NodeStatsRate {
                    bytes_in: 1000.0 * f64::from(clients),
                    bytes_out: 3000.0 * f64::from(clients),
                    ..NodeStatsRate::default()
                }],
                ..NodeStats::default()
            }),
            ..Node::default()
        }
    }

    fn fields(v: &[(&str, &str)]) -> Reservations {
        Reservations::from_fields(
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn reservations_count_until_the_stats_catch_up_or_they_expire() {
        let r = fields(&[
            ("version", "7"),
            (&format!("{}:a", NOW - 2), "5"),
            (&format!("{}:a", NOW - 1), "2"),
            (&format!("{NOW}:a"), "1"),
            (&format!("{NOW}:a:b"), "4"),
            ("junk", "1"),
            (&format!("{NOW}:c"), "many"),
        ]);
        assert_eq!(r.version(), 7);
        let mut a = node("a", 0, 0, 0.0);
        // updated_at = NOW − 1: placements of that second and later count.
        assert_eq!(r.pending(&a, NOW, 10), 3);
        a.stats.as_mut().unwrap().updated_at = NOW + 1;
        assert_eq!(r.pending(&a, NOW + 1, 10), 0, "caught up");
        a.stats.as_mut().unwrap().updated_at = NOW - 100;
        assert_eq!(r.pending(&a, NOW, 10), 8, "a stale node keeps them");
        assert_eq!(r.pending(&a, NOW + 9, 10), 1, "until they expire");
        a.stats = None;
        assert_eq!(r.pending(&a, NOW, 10), 8, "no stats: only the expiry");
        // Node ids may contain ':'.
        assert_eq!(r.pending(&node("a:b", 0, 0, 0.0), NOW, 10), 4);
        assert_eq!(r.pending(&node("c", 0, 0, 0.0), NOW, 10), 0);
    }

    #[test]
    fn placements_add_rooms_and_the_nodes_own_per_room_share() {
        let nodes = vec![
            node("busy", 4, 20, 0.4),
            node("empty", 0, 0, 0.05),
            node("other", 6, 10, 0.6),
        ];
        let r = fields(&[
            (&format!("{NOW}:busy"), "2"),
            (&format!("{NOW}:empty"), "3"),
        ]);
        let est = with_reservations(&nodes, &r, NOW, 10);
        let s = est[0].stats.as_ref().unwrap();
        // 5 clients, 5 + 10 tracks, 0.1 CPU, 5000 + 15000 B/s per room.
        assert_eq!((s.num_rooms, s.num_clients), (6, 30));
        assert_eq!((s.num_tracks_in, s.num_tracks_out), (30, 60));
        assert!((s.cpu_load - 0.6).abs() < 1e-9, "{}", s.cpu_load);
        assert!((s.load_avg_last1min - 2.4).abs() < 1e-9);
        assert_eq!(s.rates[0].bytes_in + s.rates[0].bytes_out, 120_000.0);
        // No rooms: the fleet's share, (20 + 10) clients / (4 + 6) rooms.
        let s = est[1].stats.as_ref().unwrap();
        assert_eq!((s.num_rooms, s.num_clients), (3, 9));
        assert!(
            (s.cpu_load - (0.05 + 3.0 * 0.1)).abs() < 1e-9,
            "{}",
            s.cpu_load
        );
        // Nothing pending: unchanged.
        assert_eq!(est[2], nodes[2]);
        // No node has rooms: rooms only.
        let est = with_reservations(&nodes[1..2], &r, NOW, 10);
        let s = est[0].stats.as_ref().unwrap();
        assert_eq!((s.num_rooms, s.num_clients, s.cpu_load), (3, 0, 0.05));
    }
}
