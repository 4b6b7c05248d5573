//! Publishing this node into the registry from a thread of its own.

use super::config::{Plan, RedisConfig, RegistryConnection};
use super::error::{self, ClusterError};
use super::node::{Node, NodeState};
use super::registry::NODES_KEY;
use super::unix_now;
use crate::NodeStats;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connect and per-command timeout of the publishing thread: a hung Redis
/// costs it at most this per step, and `shutdown` stays under a second.
const IO_TIMEOUT: Duration = Duration::from_millis(250);
/// First wait after a failed write; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between retries while Redis is down.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The same under Sentinel: a retry asks the sentinels for the master, so
/// a short wait finds the promoted replica soon after the failover (the
/// sentinels, not the dead master, take the retries).
const MAX_BACKOFF_SENTINEL: Duration = Duration::from_millis(500);
/// How long [`Publisher::shutdown`] waits for the entry to be removed.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(900);

/// What a [`Publisher`] says about its node besides the stats.
#[derive(Clone, Debug, PartialEq)]
pub struct PublisherConfig {
    /// Where the registry is: one Redis, a Sentinel-watched master or a
    /// Cluster ([`RedisConfig::url`] for a plain `redis://` URL).
    pub redis: RedisConfig,
    /// The node id, the field of the hash `nodes`.
    pub node_id: String,
    /// The node's IP as other nodes and clients reach it.
    pub ip: String,
    /// The region, for region-aware selection.
    pub region: String,
    /// The state published until changed (default `SERVING`).
    pub state: NodeState,
    /// `livekit.NodeType` (default 0, SERVER).
    pub node_type: i32,
    /// `Node.num_cpus`; `None` takes the stats' `num_cpus`.
    pub num_cpus: Option<u32>,
}

impl PublisherConfig {
    /// A SERVING server node `node_id` published at the standalone Redis
    /// `url`, no IP or region.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> Self {
        PublisherConfig {
            redis: RedisConfig::url(url),
            node_id: node_id.into(),
            ip: String::new(),
            region: String::new(),
            state: NodeState::Serving,
            node_type: 0,
            num_cpus: None,
        }
    }
}

#[derive(Debug)]
struct Slot {
    stats: Option<NodeStats>,
    state: NodeState,
    /// Something new to write.
    dirty: bool,
    /// Remove the entry and end.
    stop: bool,
    /// Set by the thread when it ends: whether the entry was removed.
    done: Option<bool>,
}

#[derive(Debug)]
struct Shared {
    slot: Mutex<Slot>,
    cv: Condvar,
    published: AtomicU64,
    failures: AtomicU64,
    /// [`UNKNOWN`], [`UP`] or [`DOWN`]: how the last write went.
    up: AtomicU8,
    last_error: Mutex<Option<String>>,
    /// The target, without secrets.
    target: String,
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counters of a [`Publisher`], cheap to clone and to read from anywhere
/// (an exporter turns them into metrics).
#[derive(Clone, Debug)]
pub struct PublisherStatus(Arc<Shared>);

impl PublisherStatus {
    /// Successful writes of the entry.
    pub fn published(&self) -> u64 {
        self.0.published.load(Ordering::Relaxed)
    }

    /// Failed writes (Redis down, refused, timed out); each is retried.
    pub fn failures(&self) -> u64 {
        self.0.failures.load(Ordering::Relaxed)
    }

    /// Whether the last write (or removal) reached the registry; `None`
    /// before the first attempt.
    pub fn up(&self) -> Option<bool> {
        match self.0.up.load(Ordering::Relaxed) {
            UP => Some(true),
            DOWN => Some(false),
            _ => None,
        }
    }

    /// Why the registry is down now: the last failure's message while
    /// [`up`](Self::up) is `Some(false)`, else `None`.
    pub fn error(&self) -> Option<String> {
        if self.up() == Some(false) {
            self.last_error()
        } else {
            None
        }
    }

    /// The registry as messages show it (mode and addresses, no password).
    pub fn target(&self) -> &str {
        &self.0.target
    }

    /// The last failure's message, naming the target, never a password
    /// (kept after the registry is up again).
    pub fn last_error(&self) -> Option<String> {
        self.0
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Publishes this node as a `livekit.Node` under its id in the Redis hash
/// `nodes`, as a LiveKit server does, each time it is handed a NodeStats.
///
/// The caller never waits for Redis: [`publish`](Self::publish) stores the
/// latest stats and wakes a thread that writes them (`HSET nodes <id>
/// <bytes>`). Updates arriving while a write is under way replace each
/// other; only the newest is written. When Redis is down the thread counts
/// the failure, waits (100 ms doubling to 2 s; to 0.5 s under Sentinel) and
/// retries with the newest stats, reconnecting as needed — under Sentinel
/// asking the sentinels for the master again, so a failover is followed
/// without anyone's help. [`shutdown`](Self::shutdown) (or drop)
/// removes the entry (`HDEL`) and returns within a second even when Redis
/// is unreachable.
#[derive(Debug)]
pub struct Publisher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Checks the URL and starts the publishing thread. Nothing is written
    /// before the first [`publish`](Self::publish) or
    /// [`set_state`](Self::set_state); Redis need not be up yet.
    pub fn start(config: PublisherConfig) -> Result<Self, ClusterError> {
        let plan = config.redis.plan()?;
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                stats: None,
                state: config.state,
                dirty: false,
                stop: false,
                done: None,
            }),
            cv: Condvar::new(),
            published: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            up: AtomicU8::new(UNKNOWN),
            last_error: Mutex::new(None),
            target: plan.describe().to_string(),
        });
        let url = plan.describe().to_string();
        let worker = Worker {
            shared: shared.clone(),
            config,
            plan,
            con: None,
        };
        let thread = std::thread::Builder::new()
            .name("nodestats-publish".into())
            .spawn(move || worker.run())
            .map_err(|e| {
                ClusterError::new(
                    &url,
                    format!("cannot start the publishing thread: {e}"),
                    None,
                )
            })?;
        Ok(Publisher {
            shared,
            thread: Some(thread),
        })
    }

    /// Hands over the latest stats; returns at once. `updated_at` is
    /// stamped with the wall clock (Unix seconds) now.
    pub fn publish(&self, stats: &NodeStats) {
        let now = unix_now();
        let mut slot = self.shared.lock();
        match &mut slot.stats {
            Some(s) => s.clone_from(stats),
            None => slot.stats = Some(stats.clone()),
        }
        if let Some(s) = &mut slot.stats {
            s.updated_at = now;
        }
        slot.dirty = true;
        drop(slot);
        self.shared.cv.notify_all();
    }

    /// Changes the published state and re-publishes the latest stats with
    /// it (default stats stamped now if none came yet).
    pub fn set_state(&self, state: NodeState) {
        let now = unix_now();
        let mut slot = self.shared.lock();
        slot.state = state;
        slot.stats.get_or_insert_with(|| NodeStats {
            updated_at: now,
            ..NodeStats::default()
        });
        slot.dirty = true;
        drop(slot);
        self.shared.cv.notify_all();
    }

    /// Re-publishes as `SHUTTING_DOWN`: selectors stop choosing this node,
    /// its rooms stay.
    pub fn drain(&self) {
        self.set_state(NodeState::ShuttingDown);
    }

    /// The counters, shareable with an exporter.
    pub fn status(&self) -> PublisherStatus {
        PublisherStatus(self.shared.clone())
    }

    /// Failed writes so far.
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// Removes the entry (`HDEL nodes <id>`) and stops the thread. Returns
    /// within a second whatever Redis does; `true` when the entry is known
    /// to be gone.
    pub fn shutdown(mut self) -> bool {
        self.stop()
    }

    fn stop(&mut self) -> bool {
        let Some(thread) = self.thread.take() else {
            return false;
        };
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        let mut slot = self.shared.lock();
        slot.stop = true;
        self.shared.cv.notify_all();
        while slot.done.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // The thread only removes from now on; let it finish alone.
                return false;
            }
            slot = self
                .shared
                .cv
                .wait_timeout(slot, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let removed = slot.done == Some(true);
        drop(slot);
        let _ = thread.join();
        removed
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    shared: Arc<Shared>,
    config: PublisherConfig,
    plan: Plan,
    con: Option<RegistryConnection>,
}

impl Worker {
    fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        let max_backoff = if self.plan.is_sentinel() {
            MAX_BACKOFF_SENTINEL
        } else {
            MAX_BACKOFF
        };
        let mut retry_at: Option<Instant> = None;
        while let Some(node) = self.next(retry_at) {
            match self.command(
                redis::cmd("HSET")
                    .arg(NODES_KEY)
                    .arg(&node.id)
                    .arg(node.encode()),
            ) {
                Ok(()) => {
                    self.shared.up.store(UP, Ordering::Relaxed);
                    self.shared.published.fetch_add(1, Ordering::Relaxed);
                    backoff = MIN_BACKOFF;
                    retry_at = None;
                }
                Err(e) => {
                    self.failed(format!("HSET {NODES_KEY} {}", node.id), e);
                    self.shared.lock().dirty = true;
                    retry_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
        let removed =
            match self.command(redis::cmd("HDEL").arg(NODES_KEY).arg(&self.config.node_id)) {
                Ok(()) => true,
                Err(e) => {
                    self.failed(format!("HDEL {NODES_KEY} {}", self.config.node_id), e);
                    false
                }
            };
        self.shared.lock().done = Some(removed);
        self.shared.cv.notify_all();
    }

    /// Waits for something to write (not before `retry_at`); `None` on stop.
    fn next(&self, retry_at: Option<Instant>) -> Option<Node> {
        let mut slot = self.shared.lock();
        loop {
            if slot.stop {
                return None;
            }
            let now = Instant::now();
            match retry_at {
                _ if !slot.dirty => {
                    slot = self.shared.cv.wait(slot).unwrap_or_else(|e| e.into_inner());
                }
                Some(t) if t > now => {
                    slot = self
                        .shared
                        .cv
                        .wait_timeout(slot, t - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                _ => break,
            }
        }
        slot.dirty = false;
        let stats = slot.stats.clone().unwrap_or_default();
        let c = &self.config;
        Some(Node {
            id: c.node_id.clone(),
            ip: c.ip.clone(),
            num_cpus: c.num_cpus.unwrap_or(stats.num_cpus),
            stats: Some(stats),
            node_type: c.node_type,
            state: slot.state,
            region: c.region.clone(),
        })
    }

    /// Runs one command, connecting first if needed (under Sentinel: asking
    /// the sentinels for the master again); any failure — the master gone,
    /// `READONLY` from a demoted one, a timeout — drops the connection so
    /// the next attempt reconnects and re-resolves.
    fn command(&mut self, cmd: &mut redis::Cmd) -> Result<(), String> {
        if self.con.is_none() {
            self.con = Some(self.plan.connect(IO_TIMEOUT).map_err(|e| e.to_string())?);
        }
        let Some(con) = self.con.as_mut() else {
            return Ok(());
        };
        let r = cmd.query::<redis::Value>(con).map(drop);
        if r.is_err() {
            self.con = None;
        }
        r.map_err(|e| format!("Redis at {}: {}", self.plan.describe(), error::reason(&e)))
    }

    fn failed(&self, what: String, e: String) {
        self.shared.failures.fetch_add(1, Ordering::Relaxed);
        self.shared.up.store(DOWN, Ordering::Relaxed);
        let msg = format!("{what} failed: {e}");
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(msg);
    }
}
