//! CPU count (cgroup quota, online CPUs, override) and CPU load.

use super::cgroup::{Cgroups, QuotaFiles};
use super::linux::Paths;
use super::read::{cpu_list_count, keyed_u64, read, read_optional, read_required, single_u64};
use super::{interval_load, CgroupVersion, SystemConfig};
use std::time::Duration;

/// The CPU counts of one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CpuCount {
    /// What the sample reports: the override, else `capacity`.
    pub(crate) num_cpus: Option<f64>,
    /// CPUs the cgroup can use: the quota capped at the online CPUs, or the
    /// online CPUs without a quota.
    pub(crate) capacity: Option<f64>,
    /// Online CPUs of the host.
    pub(crate) online: Option<f64>,
}

/// Reads the CPU counts. Quota files that do not exist mean no quota.
pub(crate) fn cpu_count(
    cgroups: &Cgroups,
    paths: &Paths,
    config: &SystemConfig,
    buf: &mut String,
    errors: &mut u64,
) -> CpuCount {
    let quota = read_quota(&cgroups.cpu_quota, buf, errors);
    let online = read_online(paths, buf, errors);
    let capacity = match quota {
        Ok(Some(q)) => Some(online.map_or(q, |o| q.min(o))),
        Ok(None) => online,
        Err(()) => None,
    };
    CpuCount {
        num_cpus: config.override_cpus().or(capacity),
        capacity,
        online,
    }
}

/// The smallest quota (in CPUs) along the cgroup path; `Ok(None)` without
/// any quota, `Err` (counted) when a quota file is unreadable or garbled.
fn read_quota(files: &[QuotaFiles], buf: &mut String, errors: &mut u64) -> Result<Option<f64>, ()> {
    let mut min: Option<f64> = None;
    for files in files {
        let q = match files {
            QuotaFiles::V2 { max } => match read_optional(max, buf) {
                Ok(true) => parse_cpu_max(buf),
                Ok(false) => Some(None),
                Err(()) => None,
            },
            QuotaFiles::V1 { quota, period } => match read_optional(quota, buf) {
                Ok(true) => match buf.trim().parse::<i64>() {
                    Ok(-1) => Some(None),
                    Ok(q) if q > 0 => {
                        let q = q as f64;
                        match read(period, buf).ok().and_then(|()| single_u64(buf)) {
                            Some(p) if p > 0 => Some(Some(q / p as f64)),
                            _ => None,
                        }
                    }
                    _ => None,
                },
                Ok(false) => Some(None),
                Err(()) => None,
            },
        };
        match q {
            Some(Some(cpus)) => min = Some(min.map_or(cpus, |m: f64| m.min(cpus))),
            Some(None) => {}
            None => {
                *errors += 1;
                return Err(());
            }
        }
    }
    Ok(min)
}

/// Parses v2 `cpu.max`: `Some(None)` for no quota, `None` when garbled.
pub(crate) fn parse_cpu_max(text: &str) -> Option<Option<f64>> {
    let mut it = text.split_ascii_whitespace();
    let quota = it.next()?;
    let period: u64 = match it.next() {
        Some(p) => p.parse().ok()?,
        None => 100_000,
    };
    if it.next().is_some() || period == 0 {
        return None;
    }
    if quota == "max" {
        return Some(None);
    }
    let quota: u64 = quota.parse().ok()?;
    (quota > 0).then(|| Some(quota as f64 / period as f64))
}

/// Online CPUs from `sys/devices/system/cpu/online`; on the live root a
/// missing file falls back to `available_parallelism`.
fn read_online(paths: &Paths, buf: &mut String, errors: &mut u64) -> Option<f64> {
    match read(&paths.online, buf) {
        Ok(()) => match cpu_list_count(buf) {
            Some(n) if n > 0 => Some(f64::from(n)),
            _ => {
                *errors += 1;
                None
            }
        },
        Err(_) => {
            let fallback = paths
                .live
                .then(std::thread::available_parallelism)
                .and_then(Result::ok)
                .and_then(|n| u32::try_from(n.get()).ok())
                .map(f64::from);
            if fallback.is_none() {
                *errors += 1;
            }
            fallback
        }
    }
}

/// Where a busy-time reading came from; readings from different sources
/// are never compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Cgroup(CgroupVersion),
    ProcStat,
}

#[derive(Debug, Clone, Copy)]
struct Baseline {
    source: Source,
    /// Busy time, nanoseconds.
    busy: u64,
    /// Clock reading.
    at: Duration,
    /// Bound on what the counter could accrue per second of wall time.
    capacity: Option<f64>,
}

/// The previous reading the next load is computed against.
#[derive(Debug, Default)]
pub(crate) struct CpuState {
    baseline: Option<Baseline>,
}

impl CpuState {
    /// Reads the busy counter and returns the load since the previous call.
    pub(crate) fn sample(
        &mut self,
        cgroups: &Cgroups,
        paths: &Paths,
        count: &CpuCount,
        now: Duration,
        buf: &mut String,
        errors: &mut u64,
    ) -> Option<f64> {
        let Some((source, busy)) = read_busy(cgroups, paths, buf, errors) else {
            self.baseline = None;
            return None;
        };
        // What the counter can accrue: the cgroup's capacity, or all online
        // CPUs for the host-wide proc/stat counter.
        let capacity = match source {
            Source::Cgroup(_) => count.capacity,
            Source::ProcStat => count.online.or(count.capacity),
        };
        let current = Baseline {
            source,
            busy,
            at: now,
            capacity,
        };
        let prev = self.baseline.replace(current)?;
        if prev.source != source {
            return None;
        }
        let elapsed = now.checked_sub(prev.at)?;
        if elapsed.is_zero() {
            // Same instant: keep measuring from the older baseline.
            self.baseline = Some(prev);
            return None;
        }
        let cpus = count.num_cpus?;
        // A quota lowered during the interval must not make the earlier part
        // of it look impossible.
        let bound = match (prev.capacity, capacity) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b).unwrap_or(cpus),
        };
        let slack = match source {
            Source::Cgroup(_) => 0,
            // proc/stat counts whole ticks per CPU: allow two ticks per CPU
            // of rounding between the counter and the clock.
            Source::ProcStat => tick_ns().saturating_mul(2 * bound.ceil() as u64),
        };
        let load = interval_load(prev.busy, busy, elapsed, cpus, bound, slack);
        if load.is_none() {
            // Counter went backwards or more busy time than possible: drop
            // the interval; `current` is the new baseline.
            *errors += 1;
        }
        load
    }
}

/// Nanoseconds per `proc/stat` tick.
fn tick_ns() -> u64 {
    match procfs::ticks_per_second() {
        0 => 10_000_000,
        tps => 1_000_000_000 / tps,
    }
}

/// Busy time in nanoseconds: the cgroup's accounting when present, else
/// `proc/stat`. `None` (counted) when the counter cannot be read.
fn read_busy(
    cgroups: &Cgroups,
    paths: &Paths,
    buf: &mut String,
    errors: &mut u64,
) -> Option<(Source, u64)> {
    if let (Some(path), Some(version)) = (&cgroups.cpu_usage, cgroups.version) {
        match read_optional(path, buf) {
            Ok(true) => {
                let busy = match version {
                    CgroupVersion::V2 => {
                        keyed_u64(buf, "usage_usec").and_then(|us| us.checked_mul(1000))
                    }
                    CgroupVersion::V1 => single_u64(buf),
                };
                if busy.is_none() {
                    *errors += 1;
                }
                return busy.map(|b| (Source::Cgroup(version), b));
            }
            // No accounting file in this cgroup: use proc/stat.
            Ok(false) => {}
            Err(()) => {
                *errors += 1;
                return None;
            }
        }
    }
    if !read_required(&paths.stat, buf, errors) {
        return None;
    }
    let busy = proc_stat_busy_ticks(buf).and_then(|ticks| {
        let ns = u128::from(ticks) * 1_000_000_000 / u128::from(procfs::ticks_per_second().max(1));
        u64::try_from(ns).ok()
    });
    if busy.is_none() {
        *errors += 1;
    }
    busy.map(|b| (Source::ProcStat, b))
}

/// Busy ticks from the aggregate `cpu` line of `proc/stat`: user + nice +
/// system + irq + softirq + steal (total − idle − iowait; guest time is
/// already part of user and nice).
// Ours, not procfs's `KernelStats`: that one requires the `ctxt`, `btime`
// and `processes` lines, so it rejects the `cpu`-only files the proc/stat
// tests write, and it parses every per-CPU line into a `Vec` we would throw
// away, about ten times slower than reading the one `cpu` line on a 2-CPU
// host (figures: benches/README.md), a gap that grows with the CPU count.
pub(crate) fn proc_stat_busy_ticks(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let mut fields = [0u64; 8];
    let mut n = 0;
    for (slot, word) in fields.iter_mut().zip(line.split_ascii_whitespace().skip(1)) {
        *slot = word.parse().ok()?;
        n += 1;
    }
    if n < 4 {
        return None;
    }
    let [user, nice, system, _idle, _iowait, irq, softirq, steal] = fields;
    [user, nice, system, irq, softirq, steal]
        .iter()
        .try_fold(0u64, |acc, v| acc.checked_add(*v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_forms() {
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(Some(1.5)));
        assert_eq!(parse_cpu_max("max 100000\n"), Some(None));
        assert_eq!(parse_cpu_max("max\n"), Some(None));
        assert_eq!(parse_cpu_max("50000 0"), None);
        assert_eq!(parse_cpu_max("lots 100000"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cpu_max("1 2 3"), None);
    }

    #[test]
    fn proc_stat_busy() {
        let text = "cpu  10000 500 3000 80000 1000 200 300 7 50 0\ncpu0 1 2 3 4\n";
        assert_eq!(
            proc_stat_busy_ticks(text),
            Some(10000 + 500 + 3000 + 200 + 300 + 7)
        );
        // Old kernels: four fields.
        assert_eq!(proc_stat_busy_ticks("cpu  1 2 3 4\n"), Some(6));
        assert_eq!(proc_stat_busy_ticks("cpu  1 2 x 4\n"), None);
        assert_eq!(proc_stat_busy_ticks("cpu  1 2\n"), None);
        assert_eq!(proc_stat_busy_ticks("cpu0 1 2 3 4\n"), None);
    }
}
