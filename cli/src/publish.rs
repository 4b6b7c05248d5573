//! `serve --redis`: publish this node's NodeStats into the Redis node
//! registry after every collector update, LiveKit-style.
//!
//! SIGUSR1 re-publishes as SHUTTING_DOWN (drain); stopping removes the
//! entry. Redis is only ever touched from the publisher's own thread, so an
//! outage never reaches `/metrics`, `/stats` or `/healthz`; failed writes
//! are counted in `nodestats_redis_publish_failures_total`.

use clap::Args;
use nodestats::cluster::{NodeState, Publisher, PublisherConfig, PublisherStatus};
use nodestats::{Error, NodeStats};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

#[derive(Args, Debug)]
pub(crate) struct PublishArgs {
    /// Publish this node as a livekit.Node into the Redis hash `nodes` at redis://HOST:PORT[/DB].
    #[arg(long)]
    redis: Option<String>,
    /// The node's region (with --redis).
    #[arg(long, requires = "redis")]
    region: Option<String>,
    /// The node's IP as published (with --redis).
    #[arg(long, requires = "redis")]
    node_ip: Option<String>,
    /// State published until SIGUSR1 (drain): serving, starting_up, shutting_down or suspended.
    #[arg(long, default_value = "serving", requires = "redis")]
    state: NodeState,
}

impl PublishArgs {
    /// The node's region, if given.
    pub(crate) fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }
}

/// Set by SIGUSR1.
static DRAIN: AtomicBool = AtomicBool::new(false);

/// The running publisher's counters, for the /metrics page.
static STATUS: OnceLock<PublisherStatus> = OnceLock::new();

extern "C" fn on_usr1(_: libc::c_int) {
    DRAIN.store(true, Ordering::Relaxed);
}

/// Publishing, when `--redis` was given.
pub(crate) struct Publishing(Option<Publisher>);

/// Starts publishing as `node_id` when `--redis` was given.
pub(crate) fn start(args: &PublishArgs, node_id: &str) -> Result<Publishing, Error> {
    let Some(url) = &args.redis else {
        return Ok(Publishing(None));
    };
    let config = PublisherConfig {
        ip: args.node_ip.clone().unwrap_or_default(),
        region: args.region.clone().unwrap_or_default(),
        state: args.state,
        ..PublisherConfig::new(url.clone(), node_id)
    };
    let publisher = Publisher::start(config).map_err(|e| Error::Config(e.to_string()))?;
    let _ = STATUS.set(publisher.status());
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; the function pointer is valid for the program's life.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            on_usr1 as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    Ok(Publishing(Some(publisher)))
}

impl Publishing {
    /// Hands the update to the publisher (never waits for Redis).
    pub(crate) fn update(&self, ns: &NodeStats) {
        if let Some(p) = &self.0 {
            if DRAIN.swap(false, Ordering::Relaxed) {
                p.drain();
            }
            p.publish(ns);
        }
    }

    /// Removes the entry; returns within a second.
    pub(crate) fn finish(self) {
        if let Some(p) = self.0 {
            if !p.shutdown() {
                note!("nodestats serve: could not remove this node from the Redis registry");
            }
        }
    }
}

/// Adds the publisher's counters to a /metrics snapshot (nothing without
/// `--redis`).
pub(crate) fn add_metrics(snapshot: &mut nodestats::Snapshot) {
    if let Some(status) = STATUS.get() {
        for (name, help, v) in [
            (
                "nodestats_redis_publish_failures_total",
                "Failed writes of this node's entry to the Redis node registry.",
                status.failures(),
            ),
            (
                "nodestats_redis_published_total",
                "Writes of this node's entry to the Redis node registry.",
                status.published(),
            ),
        ] {
            snapshot.add_counter(name, help, &[], v as f64);
        }
    }
}
