//! `nodestats serve`: attach read-only to a segment and export it.

use crate::http::{self, App};
use crate::{sleep_unless_stopped, stopped};
use clap::Args;
use nodestats::Exporter;
use nodestats::{Collector, CollectorConfig, Error};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Segment to export ("/name" under /dev/shm, or a file path).
    #[arg(long)]
    segment: String,
    /// Address to listen on (loopback unless you say otherwise).
    #[arg(long, default_value = "127.0.0.1:9898")]
    listen: String,
    /// The `node_id` const label.
    #[arg(long)]
    node_id: Option<String>,
    /// The `node_type` const label.
    #[arg(long, default_value = "SERVER")]
    node_type: String,
    /// Seconds between collector updates (NodeStats on /stats).
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    #[command(flatten)]
    publish: crate::publish::PublishArgs,
}

/// A default node id in LiveKit's style, from the host name.
pub(crate) fn default_node_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if r == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".into()
    };
    format!("ND_{host}")
}

/// Serves `exporter` on `listen` while `update` runs every `interval`.
pub(crate) fn app(exporter: Exporter, interval: Duration) -> Arc<App> {
    let state = exporter.state();
    Arc::new(App {
        exporter,
        state,
        interval,
        last_update_ms: AtomicU64::new(0),
        epoch: Instant::now(),
        page: Default::default(),
    })
}

pub(crate) fn run(args: ServeArgs) -> Result<(), Error> {
    let interval = Duration::try_from_secs_f64(args.interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::Config(format!(
                "--interval must be a positive number of seconds, got {}",
                args.interval
            ))
        })?;
    let config = CollectorConfig {
        update_interval: interval,
        ..CollectorConfig::default()
    };
    let mut collector = Collector::attach(&args.segment, config)?;
    let node_id = args.node_id.unwrap_or_else(default_node_id);
    let exporter = Exporter::new(collector.segment().clone(), &node_id, &args.node_type)?;
    let publishing = crate::publish::start(&args.publish, &node_id, &args.node_type)?;
    let app = app(exporter, interval);
    let (addr, server) = http::start(&args.listen, app.clone()).map_err(|source| Error::Io {
        context: "listen for HTTP",
        source,
    })?;
    println!(
        "nodestats serve: {} on http://{addr}/metrics (also /stats, /healthz)",
        args.segment
    );
    let mut next = Instant::now();
    while !stopped() {
        let ns = collector.update();
        app.state.publish(&ns, collector.anomalies());
        app.updated();
        publishing.update(&ns);
        next += interval;
        sleep_unless_stopped(next.saturating_duration_since(Instant::now()));
    }
    publishing.finish();
    let _ = server.join();
    Ok(())
}
