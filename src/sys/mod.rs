//! System statistics: CPU, memory, load averages and network counters.
//!
//! [`SystemProbe::sample`] reads every probe once and returns a
//! [`SystemSample`]. Each value that cannot be read is `None` and counts in
//! [`SystemSample::probe_errors`]; the reading itself never fails or panics.
//! Every file is read under [`SystemConfig::root`] (`/` in production, a
//! fixture tree in tests), opened, read and closed on each sample: the probe
//! keeps no file descriptor open between samples.
//!
//! # CPU
//!
//! The process's cgroup is found once, when the probe is created, from
//! `proc/self/cgroup` and `proc/self/mountinfo` (the cgroup path is mapped
//! through the mount's root to its mount point, so both a host view and a
//! container's own view of the hierarchy work). With cgroup v1 controllers
//! present (v1 or hybrid hosts) the v1 `cpu`, `cpuacct` and `memory`
//! hierarchies are used; otherwise the v2 unified hierarchy.
//!
//! * CPU count: the cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` /
//!   `cpu.cfs_period_us`), the smallest one on the path from the process's
//!   cgroup up to the mount point, re-read on every sample and capped at the
//!   online CPUs (`sys/devices/system/cpu/online`). Without a quota, the
//!   online CPUs. [`SystemConfig::cpu_count_override`] wins when set.
//! * CPU load: busy time from v2 `cpu.stat` `usage_usec` or v1
//!   `cpuacct.usage`, or, without cgroup accounting, from the `cpu` line of
//!   `proc/stat` (user + nice + system + irq + softirq + steal, i.e. total −
//!   idle − iowait; guest time is already inside user/nice). The load is
//!   `Δbusy / (Δwall × num_cpus)` with `Δwall` from a monotonic clock and
//!   `num_cpus` the value reported in the same sample, so a container
//!   saturated at its quota reports 1.0. An interval with the counter going
//!   backwards, or with more busy time than the CPUs the counter can use
//!   (quota / online CPUs, or online CPUs for `proc/stat`) could provide
//!   plus [`CPU_LOAD_TOLERANCE`], is rejected: `cpu_load` is `None`, the
//!   error is counted and the baseline restarts from that sample. A load
//!   above 1.0 that is possible (small overshoot, or an override smaller
//!   than the real capacity) is clamped to 1.0.
//!
//! # Memory
//!
//! With a cgroup memory controller: used = usage (v2 `memory.current`, v1
//! `memory.usage_in_bytes`) − inactive page cache (`inactive_file` /
//! `total_inactive_file` in `memory.stat`); total = the smallest limit on the
//! cgroup path (v2 `memory.max`, v1 `memory.limit_in_bytes`; `max`, a value
//! ≥ 2^60 or one above the host's `MemTotal` means no limit), else the host's
//! `MemTotal`. The cgroup usage is kept even when there is no limit. Without
//! a cgroup memory controller: used = `MemTotal − MemAvailable` from
//! `proc/meminfo`.
//!
//! # Network counters
//!
//! Packets sent and dropped on send, and receive drops, come from
//! `proc/net/dev`: the per-interface `tx packets`, `tx drop` and `rx drop`
//! columns summed over every interface except `lo`. That file carries the
//! kernel's 64-bit interface counters for the process's network namespace,
//! needs no netlink socket (no descriptor to keep, no privilege) and counts
//! each packet once per interface; the qdisc statistics LiveKit reads count a
//! packet twice on interfaces with an `mq` root qdisc (once in `mq`, once in
//! the child queue's qdisc). The probe turns the per-interface values into
//! running totals that never decrease: an interface that disappears keeps
//! its contribution and one whose counters restart adds from zero. UDP
//! `RcvbufErrors` and `InErrors` come from the `Udp:` lines of
//! `proc/net/snmp`, matched by column name.
//!
//! # Errors
//!
//! [`SystemSample::probe_errors`] counts, since the probe was created, each
//! probe that failed: an unreadable (other than an optional file being
//! absent), missing or garbled file, a missing key, or a rejected CPU load
//! interval. One failed file counts once even when it feeds several values
//! (`proc/net/dev` feeds three).
//!
//! On platforms other than Linux, `sysinfo` provides CPU count and load,
//! memory and load averages; the network values are `None`.

use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;

#[cfg(target_os = "linux")]
mod cgroup;
#[cfg(target_os = "linux")]
mod cpu;
#[cfg(target_os = "linux")]
mod loadavg;
#[cfg(target_os = "linux")]
mod memory;
#[cfg(target_os = "linux")]
mod net;
#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(target_os = "linux")]
mod read;
#[cfg(all(test, target_os = "linux"))]
mod tests;

/// Where and how the system probes read.
#[derive(Clone, Debug)]
pub struct SystemConfig {
    /// Root under which `/proc` and `/sys` are read (`/` in production, a
    /// fixture tree in tests).
    pub root: PathBuf,
    /// Number of CPUs reserved for this node, overriding the cgroup quota.
    /// Ignored unless finite and greater than zero.
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

impl SystemConfig {
    /// The override, if it is usable (finite and greater than zero).
    fn override_cpus(&self) -> Option<f64> {
        self.cpu_count_override
            .filter(|n| n.is_finite() && *n > 0.0)
    }
}

/// One reading of every system probe. A value that could not be read is
/// `None`; the reading itself never fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct SystemSample {
    /// CPUs available to this node (cgroup quota, override, or online CPUs), fractional.
    pub num_cpus: Option<f64>,
    /// CPU load in 0..=1 since the previous sample (`None` on the first one).
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
    /// Interface receive drops summed over interfaces (except `lo`).
    pub rx_dropped: Option<u64>,
    /// Probe reads that failed so far (cumulative).
    pub probe_errors: u64,
}

/// Which cgroup hierarchy the probe reads its CPU and memory accounting from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies (also used on hybrid hosts).
    V1,
    /// The unified hierarchy.
    V2,
}

/// Relative overshoot of busy time over `elapsed × cpus` still accepted as
/// measurement jitter (and clamped to a load of 1.0); beyond it an interval
/// is rejected as impossible.
pub const CPU_LOAD_TOLERANCE: f64 = 0.05;

/// CPU load over one interval: `(cur_busy − prev_busy) / (elapsed × cpus)`.
///
/// `prev_busy` and `cur_busy` are busy-time counters in nanoseconds (summed
/// over CPUs), `elapsed` the wall-clock time between the two readings and
/// `cpus` the CPUs available. Returns `None` for an impossible or unusable
/// interval: the counter went backwards, the busy time exceeds
/// `elapsed × cpus` by more than [`CPU_LOAD_TOLERANCE`], `elapsed` is zero
/// or `cpus` is not a positive finite number. A load within the tolerance
/// above 1.0 is clamped to 1.0.
pub fn cpu_load(prev_busy: u64, cur_busy: u64, elapsed: Duration, cpus: f64) -> Option<f64> {
    interval_load(prev_busy, cur_busy, elapsed, cpus, cpus, 0)
}

/// [`cpu_load`] with the plausibility bound taken from `capacity` CPUs (what
/// the counter can physically accrue, plus `slack_ns` of counter
/// granularity) while the load is relative to `cpus`. A load above 1.0 that
/// passes the bound is clamped to 1.0.
pub(crate) fn interval_load(
    prev_busy: u64,
    cur_busy: u64,
    elapsed: Duration,
    cpus: f64,
    capacity: f64,
    slack_ns: u64,
) -> Option<f64> {
    let valid = |n: f64| n.is_finite() && n > 0.0;
    if !valid(cpus) || !valid(capacity) || elapsed.is_zero() {
        return None;
    }
    let busy = cur_busy.checked_sub(prev_busy)? as f64;
    let wall = elapsed.as_nanos() as f64;
    if busy > wall * capacity * (1.0 + CPU_LOAD_TOLERANCE) + slack_ns as f64 {
        return None;
    }
    let load = busy / (wall * cpus);
    load.is_finite().then(|| load.clamp(0.0, 1.0))
}

/// Reads the system probes.
#[derive(Debug)]
pub struct SystemProbe {
    config: SystemConfig,
    errors: u64,
    #[cfg(target_os = "linux")]
    epoch: Instant,
    #[cfg(target_os = "linux")]
    inner: linux::Probe,
    #[cfg(not(target_os = "linux"))]
    inner: other::Probe,
}

impl SystemProbe {
    /// A probe reading under `config.root`. Finds the process's cgroup now
    /// (reading `proc/self/cgroup` and `proc/self/mountinfo`); never fails.
    pub fn new(config: SystemConfig) -> Self {
        #[cfg(target_os = "linux")]
        let (inner, errors) = {
            let mut errors = 0;
            (linux::Probe::new(&config, &mut errors), errors)
        };
        #[cfg(not(target_os = "linux"))]
        let (inner, errors) = (other::Probe::new(), 0);
        SystemProbe {
            config,
            errors,
            #[cfg(target_os = "linux")]
            epoch: Instant::now(),
            inner,
        }
    }

    /// The configuration this probe reads with.
    pub fn config(&self) -> &SystemConfig {
        &self.config
    }

    /// The cgroup hierarchy CPU and memory accounting are read from, if the
    /// process's cgroup was found (always `None` off Linux).
    pub fn cgroup_version(&self) -> Option<CgroupVersion> {
        #[cfg(target_os = "linux")]
        {
            self.inner.cgroup_version()
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }

    /// Takes one reading. Never fails: unreadable values are `None`.
    pub fn sample(&mut self) -> SystemSample {
        #[cfg(target_os = "linux")]
        {
            let now = self.epoch.elapsed();
            self.sample_at(now)
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.inner.sample(&self.config, &mut self.errors)
        }
    }

    /// [`SystemProbe::sample`] with the monotonic clock given: `now` is the
    /// time since any fixed origin, and must not decrease between calls.
    #[cfg(target_os = "linux")]
    pub(crate) fn sample_at(&mut self, now: Duration) -> SystemSample {
        self.inner.sample(&self.config, now, &mut self.errors)
    }
}

#[cfg(target_os = "linux")]
mod linux {
    //! The Linux probe: owns the paths, the reusable read buffer and the
    //! state carried between samples.

    use super::cgroup::{self, Cgroups};
    use super::{cpu, loadavg, memory, net, CgroupVersion, SystemConfig, SystemSample};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// Host-wide files, resolved under the root once.
    #[derive(Debug)]
    pub(super) struct Paths {
        pub(super) stat: PathBuf,
        pub(super) meminfo: PathBuf,
        pub(super) loadavg: PathBuf,
        pub(super) net_dev: PathBuf,
        pub(super) snmp: PathBuf,
        pub(super) online: PathBuf,
        /// Whether the root is the real `/` (allows live-only fallbacks).
        pub(super) live: bool,
    }

    #[derive(Debug)]
    pub(super) struct Probe {
        paths: Paths,
        cgroups: Cgroups,
        cpu: cpu::CpuState,
        net: net::NetState,
        buf: String,
    }

    impl Probe {
        pub(super) fn new(config: &SystemConfig, errors: &mut u64) -> Self {
            let root = config.root.as_path();
            let at = |p: &str| root.join(p);
            let paths = Paths {
                stat: at("proc/stat"),
                meminfo: at("proc/meminfo"),
                loadavg: at("proc/loadavg"),
                net_dev: at("proc/net/dev"),
                snmp: at("proc/net/snmp"),
                online: at("sys/devices/system/cpu/online"),
                live: root == Path::new("/"),
            };
            let mut buf = String::with_capacity(4096);
            let cgroups = cgroup::discover(root, &mut buf, errors);
            Probe {
                paths,
                cgroups,
                cpu: cpu::CpuState::default(),
                net: net::NetState::default(),
                buf,
            }
        }

        pub(super) fn cgroup_version(&self) -> Option<CgroupVersion> {
            self.cgroups.version
        }

        pub(super) fn sample(
            &mut self,
            config: &SystemConfig,
            now: Duration,
            errors: &mut u64,
        ) -> SystemSample {
            let buf = &mut self.buf;
            let count = cpu::cpu_count(&self.cgroups, &self.paths, config, buf, errors);
            let cpu_load = self
                .cpu
                .sample(&self.cgroups, &self.paths, &count, now, buf, errors);
            let (memory_used, memory_total) =
                memory::read_memory(&self.cgroups, &self.paths, buf, errors);
            let load_avg = loadavg::read_loadavg(&self.paths.loadavg, buf, errors);
            let dev = self.net.read_dev(&self.paths.net_dev, buf, errors);
            let udp = net::read_snmp(&self.paths.snmp, buf, errors);
            SystemSample {
                num_cpus: count.num_cpus,
                cpu_load,
                memory_used,
                memory_total,
                load_avg,
                sys_packets_out: dev.map(|d| d.tx_packets),
                sys_packets_dropped: dev.map(|d| d.tx_dropped),
                udp_rcvbuf_errors: udp.rcvbuf_errors,
                udp_in_errors: udp.in_errors,
                rx_dropped: dev.map(|d| d.rx_dropped),
                probe_errors: *errors,
            }
        }
    }
}
