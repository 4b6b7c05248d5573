//! `nodestats`: the demo (simulated SFU traffic with a live NodeStats
//! table) and `show` (read a segment read-only).

mod demo;
mod http;
mod nodes;
mod publish;
mod serve;
mod table;

use clap::{Parser, Subcommand};
use nodestats::{Collector, CollectorConfig};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    Serve(serve::ServeArgs),
    /// The cluster in the Redis node registry: list, select a node, sweep dead ones.
    Nodes(nodes::NodesArgs),
    /// Attach read-only to a segment and print its current NodeStats.
    Show {
        /// Segment name ("/name" under /dev/shm, or a file path).
        #[arg(long)]
        segment: String,
        /// Print JSON (protobuf field names) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Set by SIGINT/SIGTERM; every loop polls it.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; the function pointer is valid for the program's life.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

pub(crate) fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Sleeps up to `d`, waking early on a stop signal.
pub(crate) fn sleep_unless_stopped(d: Duration) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !stopped() {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}

fn show(segment: &str, json: bool) -> Result<(), nodestats::Error> {
    let mut c = Collector::attach(segment, CollectorConfig::default())?;
    // CPU load and rates need two readings: take a second one shortly after.
    c.update();
    std::thread::sleep(Duration::from_millis(250));
    let ns = c.update();
    if json {
        println!("{}", serde_json::to_string_pretty(&ns).unwrap_or_default());
    } else {
        table::print_full(&ns);
    }
    Ok(())
}

/// Caps glibc's malloc at two arenas unless `MALLOC_ARENA_MAX` says
/// otherwise. By default every HTTP worker that renders a page gets an
/// arena of its own, and each keeps the freed pages it rendered: under 50
/// scrapers RSS crept from 11 to 12.8 MiB over 60 s. With two arenas it
/// stays between 7 and 8.8 MiB, serving 4–8 % fewer scrapes
/// (`tests/serve_load.rs`).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tuning; it is called
        // before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    install_signal_handlers();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Show { segment, json } => show(&segment, json),
        Command::Nodes(args) => return nodes::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nodestats: {e}");
            ExitCode::FAILURE
        }
    }
}
