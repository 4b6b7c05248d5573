//! The node registry: this node's [`NodeStats`](crate::NodeStats) published
//! as a `livekit.Node` into Redis, and the cluster read back and chosen
//! from, the way LiveKit servers do it.
//!
//! ```text
//!  serve (each node)                        Redis hash `nodes`           allocator (anyone)
//!  Collector::update() ─▶ Publisher ──HSET nodes <id> <livekit.Node>──▶ list() ─▶ select(nodes, config, now, rng)
//!                         (own thread, retries)   HDEL on shutdown       sweep(): dead entries out
//! ```
//!
//! * [`Publisher`] — hand it each update; a thread of its own writes the
//!   entry, so a Redis outage never reaches the caller.
//! * [`list`] / [`sweep`] — read the hash (bad entries are reported, not
//!   fatal, unlike LiveKit's `ListNodes`) and remove dead nodes.
//! * [`select`] — LiveKit's availability rule and node selectors as a pure
//!   function, with the clock and the random source passed in; plus
//!   [`Limit`]s on several metrics, soft or hard, and LiveKit's tie order
//!   ([`Ties::First`]) on request.
//! * [`Allocator`] — selection that does not herd: each placement is
//!   reserved in Redis and counted, by every allocator sharing it, until
//!   the node's own stats have caught up (`nodes --select --reserve`).
//! * [`RedisConfig`] — where the registry is, as LiveKit's `redis:` block
//!   says it: one Redis, a master behind Sentinel (followed through
//!   failovers) or a Redis Cluster; ACL user, database, TLS (feature
//!   `cluster-tls`). [`list_from`], [`sweep_from`],
//!   [`PublisherConfig::redis`] and [`Allocator::connect_to`] take it;
//!   [`RedisConfig::connect`] gives a [`RegistryConnection`] for commands
//!   of your own.
//!
//! ```no_run
//! use nodestats::cluster::{self, Publisher, PublisherConfig, SelectorConfig, SortBy, XorShift};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let publisher = Publisher::start(PublisherConfig::new("redis://127.0.0.1:6379", "ND_a"))?;
//! publisher.publish(&nodestats::NodeStats::default());
//!
//! let (entries, skipped) = cluster::list("redis://127.0.0.1:6379")?;
//! let nodes: Vec<cluster::Node> = entries.into_iter().map(|e| e.node).collect();
//! let config = SelectorConfig { sort_by: SortBy::Rooms, ..SelectorConfig::default() };
//! let now = cluster::unix_now();
//! let chosen = cluster::select(&nodes, &config, now, &mut XorShift::from_entropy())?;
//! println!("next room on {} ({} entries skipped)", chosen.id, skipped.len());
//! publisher.shutdown();
//! # Ok(()) }
//! ```
//!
//! Reference: LiveKit's `pkg/routing` and `pkg/routing/selector`.
//! Needs the `cluster` feature (on with `cli`).

#![cfg(feature = "cluster")]

mod config;
mod error;
mod node;
mod publisher;
mod registry;
mod reserve;
mod select;

pub use config::{RedisConfig, RegistryConnection, DEFAULT_MAX_REDIRECTS};
pub use error::ClusterError;
pub use node::{Node, NodeState};
pub use publisher::{Publisher, PublisherConfig, PublisherStatus};
pub use registry::{
    decode_entries, list, list_from, sweep, sweep_from, NodeEntry, Skipped, NODES_KEY,
};
pub use reserve::{
    with_reservations, AllocateError, Allocator, Placement, Reservations, ReserveConfig,
    RESERVATIONS_KEY,
};
pub use select::{
    is_available, is_selectable, limits_reached, select, sysload, Algorithm, Limit, LimitOp,
    RandomSource, Region, SelectError, SelectorConfig, SelectorKind, SortBy, Ties, XorShift,
    AVAILABLE_SECONDS,
};

/// The wall clock in Unix seconds, the clock `updated_at` is on.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
