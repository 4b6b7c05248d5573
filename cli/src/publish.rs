//! `serve --redis` / `serve --config livekit.yaml`: publish this node's
//! NodeStats into the Redis node registry after every collector update,
//! LiveKit-style.
//!
//! SIGUSR1 re-publishes as SHUTTING_DOWN (drain); stopping removes the
//! entry. Redis is only ever touched from the publisher's own thread, so an
//! outage never reaches `/metrics`, `/stats` or `/healthz`. Why the
//! registry cannot be written (a wrong password, an unknown ACL user, a bad
//! database index, no master) is said on stderr once and again when the
//! reason changes, exported as `nodestats_registry_up` and
//! `nodestats_registry_error_info{reason}`, and shown under `registry` in
//! `/stats`; failed writes are counted in
//! `nodestats_redis_publish_failures_total`. No password is ever shown.

use crate::config::{LiveKitFile, RegistryArgs};
use clap::Args;
use nodestats::cluster::{NodeState, Publisher, PublisherConfig, PublisherStatus};
use nodestats::{Error, NodeStats};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

#[derive(Args, Debug)]
pub(crate) struct PublishArgs {
    /// Publish this node as a livekit.Node into the Redis hash `nodes` (--redis URL or the redis: block of --config).
    #[command(flatten)]
    registry: RegistryArgs,
    /// The node's region (default: region of --config).
    #[arg(long)]
    region: Option<String>,
    /// The node's IP as published.
    #[arg(long)]
    node_ip: Option<String>,
    /// State published until SIGUSR1 (drain): serving (default), starting_up, shutting_down or suspended.
    #[arg(long)]
    state: Option<NodeState>,
}

impl PublishArgs {
    /// The file of `--config`, if given.
    pub(crate) fn file(&self) -> Result<LiveKitFile, Error> {
        self.registry.file().map_err(Error::Config)
    }

    /// The node's region: `--region`, else `region` of `file` (the
    /// `--config` file), if either says.
    pub(crate) fn region<'a>(&'a self, file: &'a LiveKitFile) -> Option<&'a str> {
        self.region.as_deref().or(file.region.as_deref())
    }
}

/// Set by SIGUSR1.
static DRAIN: AtomicBool = AtomicBool::new(false);

/// The running publisher's counters, for the /metrics page.
static STATUS: OnceLock<PublisherStatus> = OnceLock::new();

extern "C" fn on_usr1(_: libc::c_int) {
    DRAIN.store(true, Ordering::Relaxed);
}

/// Publishing, when a registry was configured.
pub(crate) struct Publishing {
    publisher: Option<Publisher>,
    /// The reason last said on stderr (`None`: up, or not known yet).
    said: Mutex<Option<String>>,
}

/// Starts publishing as `node_id` when `--redis` or a `redis:` block in
/// `file` (the `--config` file) says where.
pub(crate) fn start(
    args: &PublishArgs,
    file: &LiveKitFile,
    node_id: &str,
) -> Result<Publishing, Error> {
    let Some(redis) = args.registry.registry(file).map_err(Error::Config)? else {
        if args.region.is_some() || args.node_ip.is_some() || args.state.is_some() {
            return Err(Error::Config(
                "--region, --node-ip and --state describe this node in the registry: give --redis or --config with a redis: block".into(),
            ));
        }
        return Ok(Publishing {
            publisher: None,
            said: Mutex::new(None),
        });
    };
    let config = PublisherConfig {
        redis,
        node_id: node_id.to_string(),
        ip: args.node_ip.clone().unwrap_or_default(),
        region: args.region(file).unwrap_or_default().to_string(),
        state: args.state.unwrap_or(NodeState::Serving),
        ..PublisherConfig::new("", node_id)
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
    note!(
        "nodestats serve: publishing as {node_id:?} to the node registry at {}",
        publisher.status().target()
    );
    Ok(Publishing {
        publisher: Some(publisher),
        said: Mutex::new(None),
    })
}

impl Publishing {
    /// Hands the update to the publisher (never waits for Redis), and says
    /// on stderr why the registry cannot be written when that changed.
    pub(crate) fn update(&self, ns: &NodeStats) {
        if let Some(p) = &self.publisher {
            self.report(&p.status());
            if DRAIN.swap(false, Ordering::Relaxed) {
                p.drain();
            }
            p.publish(ns);
        }
    }

    fn report(&self, status: &PublisherStatus) {
        let now = status.error();
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        if *said == now {
            return;
        }
        match &now {
            Some(why) => note!(
                "nodestats serve: cannot publish to the node registry: {}",
                crate::nodes::message(why)
            ),
            None if status.up() == Some(true) => note!(
                "nodestats serve: publishing to the node registry at {} again",
                status.target()
            ),
            None => return,
        }
        *said = now;
    }

    /// Removes the entry; returns within a second.
    pub(crate) fn finish(self) {
        if let Some(p) = self.publisher {
            if !p.shutdown() {
                note!("nodestats serve: could not remove this node from the Redis registry");
            }
        }
    }
}

/// Adds the publisher's state and counters to a /metrics snapshot
/// (nothing without a registry).
pub(crate) fn add_metrics(snapshot: &mut nodestats::Snapshot) {
    if let Some(status) = STATUS.get() {
        snapshot.add_gauge(
            "nodestats_registry_up",
            "Whether the last write of this node's entry reached the Redis node registry.",
            &[],
            f64::from(u8::from(status.up() == Some(true))),
        );
        if let Some(why) = status.error() {
            snapshot.add_gauge(
                "nodestats_registry_error_info",
                "Why this node's entry cannot be written to the Redis node registry (present while it cannot).",
                &[("reason", why.as_str())],
                1.0,
            );
        }
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

/// The registry's state for `/stats` (`None` without a registry).
pub(crate) fn stats_json() -> Option<serde_json::Value> {
    let status = STATUS.get()?;
    Some(serde_json::json!({
        "target": status.target(),
        "up": status.up(),
        "error": status.error(),
        "published": status.published(),
        "failures": status.failures(),
    }))
}
