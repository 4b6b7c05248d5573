//! System statistics: CPU, memory, load averages and network counters.
//!
//! Placeholder interface: [`SystemProbe::sample`] returns absent values until
//! the probes land.

use serde::Serialize;
use std::path::PathBuf;

/// Where and how the system probes read.
#[derive(Clone, Debug)]
pub struct SystemConfig {
    /// Root under which `/proc` and `/sys` are read (`/` in production, a
    /// fixture tree in tests).
    pub root: PathBuf,
    /// Number of CPUs reserved for this node, overriding the cgroup quota.
    pub cpu_count_override: Option<f64>,
}

impl Default for SystemConfig {
    fn default() -> Self {
        SystemConfig {
            root: PathBuf::from("/"),
            cpu_count_override: None,
        }
    }
}

/// One reading of every system probe. A value that could not be read is
/// `None`; the reading itself never fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct SystemSample {
    /// CPUs available to this node (cgroup quota, override, or online CPUs), fractional.
    pub num_cpus: Option<f64>,
    /// CPU load in 0..=1 since the previous sample.
    pub cpu_load: Option<f64>,
    /// Memory in use, bytes.
    pub memory_used: Option<u64>,
    /// Memory limit, bytes.
    pub memory_total: Option<u64>,
    /// Load averages over 1, 5 and 15 minutes.
    pub load_avg: Option<[f64; 3]>,
    /// Packets sent by the system (64-bit, monotonic).
    pub sys_packets_out: Option<u64>,
    /// Packets dropped on send by the system (64-bit, monotonic).
    pub sys_packets_dropped: Option<u64>,
    /// UDP receive-buffer errors (`Udp: RcvbufErrors`).
    pub udp_rcvbuf_errors: Option<u64>,
    /// UDP input errors (`Udp: InErrors`).
    pub udp_in_errors: Option<u64>,
    /// Interface receive drops summed over interfaces.
    pub rx_dropped: Option<u64>,
    /// Probe reads that failed so far (cumulative).
    pub probe_errors: u64,
}

/// Reads the system probes.
#[derive(Debug)]
pub struct SystemProbe {
    config: SystemConfig,
}

impl SystemProbe {
    /// A probe reading under `config.root`.
    pub fn new(config: SystemConfig) -> Self {
        SystemProbe { config }
    }

    /// The configuration this probe reads with.
    pub fn config(&self) -> &SystemConfig {
        &self.config
    }

    /// Takes one reading. Never fails: unreadable values are `None`.
    pub fn sample(&mut self) -> SystemSample {
        SystemSample::default()
    }
}
