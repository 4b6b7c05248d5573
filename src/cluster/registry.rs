//! Reading and cleaning the Redis hash `nodes`.

use super::config::RedisConfig;
use super::error::ClusterError;
use super::node::Node;
use std::time::Duration;

/// The Redis hash LiveKit keeps its nodes in.
pub const NODES_KEY: &str = "nodes";

/// Time allowed to connect and for each command of [`list`] and [`sweep`].
const TIMEOUT: Duration = Duration::from_secs(2);

/// Raw hash entries: (field, value).
type Raw = Vec<(Vec<u8>, Vec<u8>)>;

/// One decoded entry of the hash.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeEntry {
    /// The hash field (LiveKit writes the node id there).
    pub key: String,
    /// The decoded `livekit.Node`. Its `stats` may be absent: LiveKit
    /// lists such a node and counts it available.
    pub node: Node,
}

/// An entry [`list`] could not use. LiveKit fails the whole listing on the
/// first one; we report it and go on.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    /// The hash field.
    pub key: String,
    /// Why: the decoder's message.
    pub reason: String,
}

/// Opens a connection to the standalone Redis at `url` with timeouts;
/// errors name the URL. (For the allocator's commands; a registry behind
/// Sentinel or in a Cluster: [`RedisConfig::connect`].)
#[allow(dead_code)]
pub(crate) fn connect(
    url: &str,
    timeout: Duration,
) -> Result<super::config::RegistryConnection, ClusterError> {
    RedisConfig::url(url).connect(timeout)
}

fn hgetall(url: &str, con: &mut impl redis::ConnectionLike) -> Result<Raw, ClusterError> {
    redis::cmd("HGETALL")
        .arg(NODES_KEY)
        .query(con)
        .map_err(|e| ClusterError::new(url, format!("HGETALL {NODES_KEY} failed"), Some(e)))
}

/// Splits raw hash entries into usable nodes, in the order given (Redis
/// order from [`list`], the order LiveKit's selector sees), and skipped
/// ones, sorted by key. A node without stats is usable, as in LiveKit.
pub fn decode_entries(raw: Vec<(Vec<u8>, Vec<u8>)>) -> (Vec<NodeEntry>, Vec<Skipped>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for (k, v) in raw {
        let key = String::from_utf8_lossy(&k).into_owned();
        match Node::decode(&v) {
            Ok(node) => ok.push(NodeEntry { key, node }),
            Err(e) => bad.push(Skipped {
                key,
                reason: format!("not a livekit.Node ({} bytes): {e}", v.len()),
            }),
        }
    }
    bad.sort_by(|a: &Skipped, b| a.key.cmp(&b.key));
    (ok, bad)
}

/// Every node in the hash `nodes` at `url` (`HGETALL nodes`), in Redis
/// order. An entry that does not decode is skipped and reported, never
/// fatal; one without stats is listed, as LiveKit does.
pub fn list(url: &str) -> Result<(Vec<NodeEntry>, Vec<Skipped>), ClusterError> {
    list_from(&RedisConfig::url(url), TIMEOUT)
}

/// [`list`] from the registry `config` describes (standalone, Sentinel or
/// Cluster), `timeout` for the connect and each read or write.
pub fn list_from(
    config: &RedisConfig,
    timeout: Duration,
) -> Result<(Vec<NodeEntry>, Vec<Skipped>), ClusterError> {
    let mut con = config.connect(timeout)?;
    Ok(decode_entries(hgetall(&config.describe(), &mut con)?))
}

/// Deletes a field only if it still holds the value that was read, so a node
/// that re-published in between is not removed.
const DELETE_IF_UNCHANGED: &str =
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0";

/// Removes the entries whose `stats.updated_at` is more than `dead_after`
/// older than `now_unix` (LiveKit's dead nodes) and returns their keys.
/// Entries without stats or that do not decode are left alone (`list`
/// reports them). Each removal is atomic and only happens if the entry was
/// not re-published since it was read.
pub fn sweep(url: &str, dead_after: Duration, now_unix: i64) -> Result<Vec<String>, ClusterError> {
    sweep_from(&RedisConfig::url(url), TIMEOUT, dead_after, now_unix)
}

/// [`sweep`] in the registry `config` describes, `timeout` for the
/// connect and each read or write.
pub fn sweep_from(
    config: &RedisConfig,
    timeout: Duration,
    dead_after: Duration,
    now_unix: i64,
) -> Result<Vec<String>, ClusterError> {
    let url = config.describe();
    let url = url.as_str();
    let mut con = config.connect(timeout)?;
    let limit = i64::try_from(dead_after.as_secs()).unwrap_or(i64::MAX);
    let mut removed = Vec::new();
    for (k, v) in hgetall(url, &mut con)? {
        let Ok(node) = Node::decode(&v) else { continue };
        let Some(stats) = node.stats else { continue };
        if now_unix.saturating_sub(stats.updated_at) <= limit {
            continue;
        }
        let n: i64 = redis::cmd("EVAL")
            .arg(DELETE_IF_UNCHANGED)
            .arg(1)
            .arg(NODES_KEY)
            .arg(&k)
            .arg(&v)
            .query(&mut con)
            .map_err(|e| ClusterError::new(url, format!("HDEL {NODES_KEY} failed"), Some(e)))?;
        if n == 1 {
            removed.push(String::from_utf8_lossy(&k).into_owned());
        }
    }
    removed.sort();
    Ok(removed)
}
