//! `nodestats serve`: attach read-only to a segment and export it.

use crate::http::{self, App};
use crate::signals::{sleep_unless_stopped, stopped};
use crate::Failure;
use clap::Args;
use nodestats::{Collector, CollectorConfig, Error, Exporter, OpenMetricsCounters, SegmentOptions};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Segment to export ("/name" under /dev/shm, or a file path).
    #[arg(long)]
    segment: String,
    /// Attach even if another user owns the segment (e.g. the SFU runs as its own user).
    #[arg(long)]
    allow_foreign_owner: bool,
    /// Address to listen on (loopback unless you say otherwise; other addresses get a warning).
    #[arg(long, default_value = "127.0.0.1:9898")]
    listen: String,
    /// Connections served at once; the next ones are answered 503 (busy).
    #[arg(long, default_value_t = http::MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
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
    #[command(flatten)]
    otlp: crate::otlp::OtlpArgs,
    /// How OpenMetrics writes counters not named `_total`: unknown (as `unknown`, names kept) or total (as counters, `_total` added).
    #[arg(long, default_value = "unknown", value_parser = ["unknown", "total"])]
    openmetrics_counters: String,
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

/// The pages' state for `exporter`, whose collector updates every `interval`.
pub(crate) fn app(exporter: Exporter, interval: Duration) -> Arc<App> {
    let state = exporter.state();
    Arc::new(App {
        exporter,
        state,
        interval,
        last_update_ms: AtomicU64::new(0),
        epoch: Instant::now(),
        page: Default::default(),
        error: Default::default(),
    })
}

/// Attaches read-only to `name`, as `show` and `serve` do.
pub(crate) fn attach(
    name: &str,
    allow_foreign_owner: bool,
    config: CollectorConfig,
) -> Result<Collector, Failure> {
    let opts = SegmentOptions::new().allow_foreign_owner(allow_foreign_owner);
    Collector::attach_with(name, &opts, config).map_err(|e| Failure::Segment(name.to_string(), e))
}

pub(crate) fn run(args: ServeArgs) -> Result<(), Failure> {
    let interval = Duration::try_from_secs_f64(args.interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Failure::Other(Error::Config(format!(
                "--interval must be a positive number of seconds, got {}",
                args.interval
            )))
        })?;
    let config = CollectorConfig {
        update_interval: interval,
        ..CollectorConfig::default()
    };
    let mut collector = attach(&args.segment, args.allow_foreign_owner, config)?;
    let node_id = args.node_id.unwrap_or_else(default_node_id);
    let file = args.publish.file().map_err(Failure::Other)?;
    let otlp = args
        .otlp
        .config(
            &|k| std::env::var(k).ok(),
            &crate::otlp::Node {
                id: &node_id,
                node_type: &args.node_type,
                region: args.publish.region(&file),
            },
        )
        .map_err(Failure::Other)?;
    let om_counters = match args.openmetrics_counters.as_str() {
        "total" => OpenMetricsCounters::Total,
        _ => OpenMetricsCounters::Unknown,
    };
    let exporter = Exporter::new(collector.segment().clone(), &node_id, &args.node_type)
        .map_err(|e| Failure::Segment(args.segment.clone(), e))?
        .openmetrics_counters(om_counters);
    let publishing =
        crate::publish::start(&args.publish, &file, &node_id).map_err(Failure::Other)?;
    let app = app(exporter, interval);
    let (addr, server) = http::start_with(&args.listen, app.clone(), args.max_connections as usize)
        .map_err(|e| Failure::Listen(args.listen.clone(), e))?;
    say!(
        "nodestats serve: {} on http://{addr}/metrics (also /stats, /healthz)",
        args.segment
    );
    if let Some(otlp) = otlp {
        let (url, every) = (otlp.url.clone(), otlp.interval);
        crate::otlp::start(otlp, app.clone())
            .map_err(|e| Failure::Other(Error::Config(format!("OTLP push: {e}"))))?;
        say!(
            "nodestats serve: pushing OTLP to {url} every {} s",
            every.as_secs_f64()
        );
    }
    let mut next = Instant::now();
    while !stopped() {
        // The collector follows the name: after an SFU restart it is on the
        // new segment, and so is every scrape from here on.
        let got = collector.try_update();
        app.state
            .publish_segment(collector.segment(), collector.segment_status());
        match got {
            Ok(ns) => {
                app.state.publish(&ns, collector.anomalies());
                app.updated();
                publishing.update(&ns);
            }
            Err(e) => app.failed(format!("segment {:?}: {e}\n", args.segment)),
        }
        next += interval;
        sleep_unless_stopped(next.saturating_duration_since(Instant::now()));
    }
    publishing.finish();
    let _ = server.join();
    Ok(())
}
