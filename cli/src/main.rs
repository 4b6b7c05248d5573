//! `nodestats`: the demo (simulated SFU traffic with a live NodeStats
//! table), `show` (read a segment read-only) and `serve` (export it over
//! HTTP).

/// Writes a line to stderr. A lost reader (a closed pipe: a restarted log
/// shipper or journald) never takes the process down, as `eprintln!`'s
/// panic would.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// [`note!`] for stdout.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod config;
mod demo;
mod http;
mod nodes;
mod otlp;
mod publish;
mod serve;
mod signals;
mod table;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use nodestats::CollectorConfig;
use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

pub(crate) use signals::{sleep_unless_stopped, stopped};

#[derive(Parser, Debug)]
#[command(
    name = "nodestats",
    version,
    about = "Per-CPU media-server counters in shared memory, NodeStats with rates"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulated SFU workers record traffic into a segment; a collector prints live NodeStats.
    Demo(demo::DemoArgs),
    /// Attach read-only to a segment and serve /metrics (Prometheus), /stats (NodeStats JSON) and /healthz.
    Serve(Box<serve::ServeArgs>),
    /// The cluster in the Redis node registry: list, select a node, sweep dead ones.
    Nodes(nodes::NodesArgs),
    /// Attach read-only to a segment and print its current NodeStats.
    Show {
        /// Segment name ("/name" under /dev/shm, or a file path).
        #[arg(long)]
        segment: String,
        /// Attach even if another user owns the segment (e.g. the SFU runs as its own user).
        #[arg(long)]
        allow_foreign_owner: bool,
        /// Print JSON (protobuf field names) instead of a table.
        #[arg(long)]
        json: bool,
        /// Print exactly livekit.NodeStats as protojson (what LiveKit's strict decoder accepts).
        #[arg(long, conflicts_with = "json")]
        protojson: bool,
        /// Print every metric family as /metrics would (LiveKit's, ours and the declared ones).
        #[arg(long, conflicts_with_all = ["json", "protojson"])]
        metrics: bool,
    },
}

/// An error as the CLI prints it: what it is about, then why.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Something went wrong with the segment of this name.
    Segment(String, nodestats::Error),
    /// Listening on this address failed.
    Listen(String, std::io::Error),
    /// Anything else; the message names the flag or value at fault.
    Other(nodestats::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use nodestats::Error as E;
        match self {
            // These name the segment already.
            Failure::Segment(_, e @ (E::NotFound(_) | E::AlreadyExists(_) | E::InvalidName(_))) => {
                write!(f, "{e}")
            }
            Failure::Segment(name, e @ E::ForeignOwner { .. }) => {
                write!(f, "segment {name:?}: {e} (pass --allow-foreign-owner)")
            }
            Failure::Segment(_, e @ E::Config(_)) | Failure::Other(e) => write!(f, "{e}"),
            Failure::Segment(name, e) => write!(f, "segment {name:?}: {e}"),
            Failure::Listen(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
        }
    }
}

fn show(
    segment: &str,
    allow_foreign_owner: bool,
    json: bool,
    protojson: bool,
    metrics: bool,
) -> Result<(), Failure> {
    let mut c = serve::attach(segment, allow_foreign_owner, CollectorConfig::default())?;
    // CPU load and rates need two readings: take a second one shortly after.
    let fail = |e| Failure::Segment(segment.to_string(), e);
    c.try_update().map_err(fail)?;
    sleep_unless_stopped(Duration::from_millis(250));
    if stopped() {
        return Ok(());
    }
    let ns = c.try_update().map_err(fail)?;
    if metrics {
        let node_id = serve::default_node_id();
        let exporter = nodestats::Exporter::new(c.segment().clone(), &node_id, "SERVER")
            .map_err(Failure::Other)?;
        exporter.state().publish(&ns, c.anomalies());
        use std::io::Write as _;
        let _ = std::io::stdout().write_all(exporter.text().as_bytes());
    } else if protojson {
        say!("{}", ns.to_protojson());
    } else if json {
        say!("{}", serde_json::to_string_pretty(&ns).unwrap_or_default());
    } else {
        table::print_full(&ns);
    }
    Ok(())
}

/// The `--segment` given to `demo`, whose errors do not name it.
fn demo_segment(matches: &ArgMatches) -> Option<String> {
    matches
        .subcommand_matches("demo")?
        .get_one::<String>("segment")
        .cloned()
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    signals::install();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args).map_err(|e| match demo_segment(&matches) {
            Some(name) => Failure::Segment(name, e),
            None => Failure::Other(e),
        }),
        Command::Serve(args) => serve::run(*args),
        Command::Show {
            segment,
            allow_foreign_owner,
            json,
            protojson,
            metrics,
        } => show(&segment, allow_foreign_owner, json, protojson, metrics),
        Command::Nodes(args) => return nodes::run(args),
    };
    match (result, signals::stop_signal()) {
        (Ok(()), _) => ExitCode::SUCCESS,
        (Err(e), stop) => {
            note!("nodestats: {e}");
            // Interrupted by a stop signal: say so in the status, as a
            // shell would.
            ExitCode::from(stop.map_or(1, |sig| 128 + sig as u8))
        }
    }
}
