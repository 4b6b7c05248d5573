//! Memory used and total: the cgroup's accounting and limit, else the host's
//! `proc/meminfo`.

use super::cgroup::{Cgroups, MemoryFiles};
use super::linux::Paths;
use super::read::{keyed_u64, meminfo_bytes, read, read_optional, read_required, single_u64};

/// A limit at or above this (v1 writes `PAGE_COUNTER_MAX` pages, about
/// 2^63 bytes) means no limit.
const UNLIMITED: u64 = 1 << 60;

/// The cgroup's usage read.
enum Usage {
    /// Bytes in use (usage − inactive page cache).
    Bytes(u64),
    /// No usage file (e.g. the v2 root cgroup): use the host's numbers.
    Absent,
    /// Unreadable or garbled (counted).
    Failed,
}

/// Reads `(memory_used, memory_total)` in bytes.
pub(crate) fn read_memory(
    cgroups: &Cgroups,
    paths: &Paths,
    buf: &mut String,
    errors: &mut u64,
) -> (Option<u64>, Option<u64>) {
    let mut host_total = None;
    let mut host_available = None;
    let meminfo_read = read_required(&paths.meminfo, buf, errors);
    if meminfo_read {
        host_total = meminfo_bytes(buf, "MemTotal").filter(|t| *t > 0);
        host_available = meminfo_bytes(buf, "MemAvailable");
        if host_total.is_none() {
            *errors += 1;
        }
    }

    let usage = match &cgroups.memory {
        Some(files) => cgroup_usage(files, buf, errors),
        None => Usage::Absent,
    };
    let used = match usage {
        Usage::Bytes(b) => Some(b),
        Usage::Failed => None,
        Usage::Absent => match (host_total, host_available) {
            (Some(total), Some(available)) => Some(total.saturating_sub(available)),
            (Some(_), None) => {
                // meminfo was read but has no MemAvailable.
                *errors += 1;
                None
            }
            // Already counted.
            (None, _) => None,
        },
    };

    let limit = match &cgroups.memory {
        Some(files) => cgroup_limit(files, buf, errors),
        None => Ok(None),
    };
    let total = match limit {
        Ok(limit) => limit
            .filter(|l| host_total.is_none_or(|t| *l <= t))
            .or(host_total),
        Err(()) => None,
    };
    (used, total)
}

fn cgroup_usage(files: &MemoryFiles, buf: &mut String, errors: &mut u64) -> Usage {
    let usage = match read_optional(&files.usage, buf) {
        Ok(true) => single_u64(buf),
        Ok(false) => return Usage::Absent,
        Err(()) => None,
    };
    let inactive = usage.and_then(|_| {
        read(&files.stat, buf)
            .ok()
            .and_then(|()| keyed_u64(buf, files.stat_key))
    });
    match (usage, inactive) {
        (Some(u), Some(i)) => Usage::Bytes(u.saturating_sub(i)),
        _ => {
            *errors += 1;
            Usage::Failed
        }
    }
}

/// The smallest limit along the cgroup path: `Ok(None)` without any,
/// `Err` (counted) when a limit file is unreadable or garbled.
fn cgroup_limit(
    files: &MemoryFiles,
    buf: &mut String,
    errors: &mut u64,
) -> Result<Option<u64>, ()> {
    let mut min: Option<u64> = None;
    for path in &files.limits {
        let limit = match read_optional(path, buf) {
            Ok(true) if buf.trim() == "max" => Some(None),
            Ok(true) => single_u64(buf).map(|l| (l < UNLIMITED).then_some(l)),
            Ok(false) => Some(None),
            Err(()) => None,
        };
        match limit {
            Some(Some(l)) => min = Some(min.map_or(l, |m| m.min(l))),
            Some(None) => {}
            None => {
                *errors += 1;
                return Err(());
            }
        }
    }
    Ok(min)
}
