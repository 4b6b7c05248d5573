//! Probe tests on fixture trees (`tests/fixtures/sys/<case>`) and on the
//! live machine.

use super::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sys");

fn fixture(case: &str) -> PathBuf {
    Path::new(FIXTURES).join(case)
}

fn probe_at(root: &Path) -> SystemProbe {
    SystemProbe::new(SystemConfig {
        root: root.to_path_buf(),
        cpu_count_override: None,
    })
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A copy of a fixture tree in the temp dir, removed on drop.
struct TempTree {
    root: PathBuf,
}

impl TempTree {
    fn new(case: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "sys-dev-{}-{}-{case}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&root);
        copy_dir(&fixture(case), &root);
        TempTree { root }
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("create fixture dir");
        }
        fs::write(path, text).expect("write fixture file");
    }

    fn remove(&self, rel: &str) {
        fs::remove_file(self.root.join(rel)).expect("remove fixture file");
    }

    fn probe(&self) -> SystemProbe {
        probe_at(&self.root)
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create temp dir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

const V2_CTR: &str = "sys/fs/cgroup/kubepods/pod1/ctr";

fn v2_usage(tree: &TempTree, usec: u64) {
    tree.write(
        &format!("{V2_CTR}/cpu.stat"),
        &format!("usage_usec {usec}\nuser_usec 1\nsystem_usec 1\n"),
    );
}

fn assert_close(actual: Option<f64>, expected: f64) {
    let a = actual.unwrap_or_else(|| panic!("expected {expected}, got None"));
    assert!((a - expected).abs() < 1e-9, "expected {expected}, got {a}");
}

// The host files shared by the fixtures.
const HOST_MEM_TOTAL: u64 = 16_384_000 * 1024;
const TX_PACKETS: u64 = 9_876_543_210 + 30;
const TX_DROPPED: u64 = 17 + 5;
const RX_DROPPED: u64 = 42 + 3;

fn assert_host_files(s: &SystemSample) {
    assert_eq!(s.load_avg, Some([0.52, 0.58, 0.59]));
    assert_eq!(s.sys_packets_out, Some(TX_PACKETS));
    assert_eq!(s.sys_packets_dropped, Some(TX_DROPPED));
    assert_eq!(s.rx_dropped, Some(RX_DROPPED));
    assert_eq!(s.udp_in_errors, Some(33));
    assert_eq!(s.udp_rcvbuf_errors, Some(11));
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn v2_quota_and_memory_limit() {
    let mut p = probe_at(&fixture("v2_quota"));
    assert_eq!(p.cgroup_version(), Some(CgroupVersion::V2));
    let s = p.sample_at(secs(0));
    assert_eq!(s.num_cpus, Some(1.5));
    assert_eq!(s.cpu_load, None, "no load on the first sample");
    assert_eq!(s.memory_used, Some(536_870_912 - 100_000_000));
    assert_eq!(s.memory_total, Some(1_073_741_824));
    assert_host_files(&s);
    assert_eq!(s.probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn v2_load_over_interval() {
    let t = TempTree::new("v2_quota");
    let mut p = t.probe();
    v2_usage(&t, 5_000_000);
    assert_eq!(p.sample_at(secs(10)).cpu_load, None);
    // 3 s of CPU in 10 s with 1.5 CPUs: 0.2.
    v2_usage(&t, 8_000_000);
    let s = p.sample_at(secs(20));
    assert_close(s.cpu_load, 0.2);
    assert_eq!(s.probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn v2_saturated_at_quota_is_full_load() {
    let t = TempTree::new("v2_quota");
    let mut p = t.probe();
    v2_usage(&t, 5_000_000);
    p.sample_at(secs(1));
    // 4 s elapsed × 1.5 CPUs = 6 s of CPU.
    v2_usage(&t, 11_000_000);
    let s = p.sample_at(secs(5));
    assert_eq!(s.cpu_load, Some(1.0));
    assert_eq!(s.probe_errors, 0);
    // Within the tolerance (3 % over): clamped to 1.0, not rejected.
    v2_usage(&t, 11_000_000 + 6_180_000);
    let s = p.sample_at(secs(9));
    assert_eq!(s.cpu_load, Some(1.0));
    assert_eq!(s.probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn v2_quota_change_is_seen() {
    let t = TempTree::new("v2_quota");
    let mut p = t.probe();
    assert_eq!(p.sample_at(secs(0)).num_cpus, Some(1.5));
    t.write(&format!("{V2_CTR}/cpu.max"), "50000 100000\n");
    assert_eq!(p.sample_at(secs(1)).num_cpus, Some(0.5));
    // An ancestor's smaller quota wins.
    t.write(&format!("{V2_CTR}/cpu.max"), "max 100000\n");
    t.write("sys/fs/cgroup/kubepods/pod1/cpu.max", "25000 100000\n");
    assert_eq!(p.sample_at(secs(2)).num_cpus, Some(0.25));
    // No quota anywhere: the online CPUs.
    t.write("sys/fs/cgroup/kubepods/pod1/cpu.max", "max 100000\n");
    t.write("sys/fs/cgroup/kubepods/cpu.max", "max 100000\n");
    assert_eq!(p.sample_at(secs(3)).num_cpus, Some(4.0));
    // A quota above the online CPUs is capped at them.
    t.write(&format!("{V2_CTR}/cpu.max"), "800000 100000\n");
    assert_eq!(p.sample_at(secs(4)).num_cpus, Some(4.0));
    assert_eq!(p.sample_at(secs(5)).probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn v2_ancestor_memory_limit_and_huge_limit() {
    let t = TempTree::new("v2_quota");
    t.write(&format!("{V2_CTR}/memory.max"), "max\n");
    let mut p = t.probe();
    assert_eq!(p.sample_at(secs(0)).memory_total, Some(2_147_483_648));
    // A limit above the host's memory is no limit.
    t.write("sys/fs/cgroup/kubepods/pod1/memory.max", "99999999999999\n");
    let s = p.sample_at(secs(1));
    assert_eq!(s.memory_total, Some(HOST_MEM_TOTAL));
    assert_eq!(s.memory_used, Some(536_870_912 - 100_000_000));
    assert_eq!(s.probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn v2_no_limits_keeps_cgroup_usage() {
    let mut p = probe_at(&fixture("v2_nolimit"));
    assert_eq!(p.cgroup_version(), Some(CgroupVersion::V2));
    let s = p.sample_at(secs(0));
    // online = "0-1,3,5-7"
    assert_eq!(s.num_cpus, Some(6.0));
    assert_eq!(s.memory_total, Some(HOST_MEM_TOTAL));
    // The cgroup's usage, not the host's (MemTotal − MemAvailable).
    assert_eq!(s.memory_used, Some(2_147_483_648 - 147_483_648));
    assert_host_files(&s);
    assert_eq!(s.probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn v2_mount_root_is_the_containers_cgroup() {
    // mountinfo's root field is the container's own cgroup path, so its
    // files are at the mount point: usage_usec 7 s is read from there.
    let t = TempTree::new("v2_nolimit");
    let mut p = t.probe();
    p.sample_at(secs(0));
    t.write("sys/fs/cgroup/cpu.stat", "usage_usec 10000000\n");
    // 3 s of CPU over 1 s with 6 CPUs.
    assert_close(p.sample_at(secs(1)).cpu_load, 0.5);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn v1_separate_mounts() {
    let mut p = probe_at(&fixture("v1"));
    assert_eq!(p.cgroup_version(), Some(CgroupVersion::V1));
    let s = p.sample_at(secs(0));
    assert_eq!(s.num_cpus, Some(2.5));
    assert_eq!(s.memory_used, Some(805_306_368 - 205_306_368));
    assert_eq!(s.memory_total, Some(1_073_741_824));
    assert_host_files(&s);
    assert_eq!(s.probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn v1_load_from_cpuacct_and_huge_limit() {
    let t = TempTree::new("v1");
    let mut p = t.probe();
    p.sample_at(secs(100));
    // 2.5 CPUs × 2 s = 5 s possible; 1.25 s used.
    t.write(
        "sys/fs/cgroup/cpuacct/cpuacct.usage",
        &format!("{}\n", 123_000_000_000u64 + 1_250_000_000),
    );
    t.write(
        "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
        "9223372036854771712\n",
    );
    let s = p.sample_at(secs(102));
    assert_close(s.cpu_load, 0.25);
    assert_eq!(s.memory_total, Some(HOST_MEM_TOTAL));
    assert_eq!(s.memory_used, Some(600_000_000));
    // No quota: online CPUs.
    t.write("sys/fs/cgroup/cpu/docker/abc/cpu.cfs_quota_us", "-1\n");
    assert_eq!(p.sample_at(secs(103)).num_cpus, Some(4.0));
    assert_eq!(p.sample_at(secs(104)).probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn no_cgroup_uses_proc_stat_and_meminfo() {
    let t = TempTree::new("nocgroup");
    let mut p = t.probe();
    assert_eq!(p.cgroup_version(), None);
    let s = p.sample_at(secs(0));
    assert_eq!(s.num_cpus, Some(2.0));
    assert_eq!(s.memory_total, Some(HOST_MEM_TOTAL));
    assert_eq!(s.memory_used, Some((16_384_000 - 12_288_000) * 1024));
    assert_host_files(&s);
    assert_eq!(s.probe_errors, 0);
    // +500 busy ticks (user +300, system +150, softirq +50) and +100 idle
    // / iowait ticks, which do not count, over 10 s with 2 CPUs.
    t.write(
        "proc/stat",
        "cpu  10300 500 3150 80050 1050 200 350 0 0 0\ncpu0 1 2 3 4\n",
    );
    let s = p.sample_at(secs(10));
    let tps = procfs::ticks_per_second() as f64;
    assert_close(s.cpu_load, 500.0 / tps / (10.0 * 2.0));
    assert_eq!(s.probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn missing_files_are_none_and_counted() {
    let mut p = probe_at(&fixture("missing"));
    let s = p.sample_at(secs(0));
    let none = SystemSample {
        // online, proc/stat (no cgroup cpu.stat), meminfo, loadavg,
        // net/dev, net/snmp.
        probe_errors: 6,
        ..SystemSample::default()
    };
    assert_eq!(s, none);
    assert_eq!(p.sample_at(secs(1)).probe_errors, 12);

    // An empty root: no cgroup either, the same six failures.
    let empty = std::env::temp_dir().join(format!("sys-dev-empty-{}", std::process::id()));
    let s = probe_at(&empty).sample_at(secs(0));
    assert_eq!(s, none);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn garbage_is_none_and_counted() {
    let mut p = probe_at(&fixture("garbage"));
    let s = p.sample_at(secs(0));
    let expected = SystemSample {
        // cpu.max, online, cpu.stat, meminfo MemTotal, memory.current,
        // memory.max, loadavg, net/dev, snmp RcvbufErrors, snmp InErrors.
        probe_errors: 10,
        ..SystemSample::default()
    };
    assert_eq!(s, expected);
    assert_eq!(p.sample_at(secs(1)).probe_errors, 20);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn hostile_contents_never_panic() {
    let t = TempTree::new("v2_quota");
    let contents: [&[u8]; 8] = [
        b"",
        b"\n\n\n",
        b"\xff\xfe\x00garbage",
        b"99999999999999999999999999999999999999",
        b"-1",
        b"usage_usec 18446744073709551615\n",
        b"Udp:\nUdp:\n",
        b"cpu  18446744073709551615 18446744073709551615 1 1\n",
    ];
    let files = [
        "proc/stat",
        "proc/meminfo",
        "proc/loadavg",
        "proc/net/dev",
        "proc/net/snmp",
        "sys/devices/system/cpu/online",
        "sys/fs/cgroup/kubepods/pod1/ctr/cpu.stat",
        "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max",
        "sys/fs/cgroup/kubepods/pod1/ctr/memory.current",
        "sys/fs/cgroup/kubepods/pod1/ctr/memory.stat",
        "sys/fs/cgroup/kubepods/pod1/ctr/memory.max",
        "proc/self/cgroup",
        "proc/self/mountinfo",
    ];
    for (i, text) in contents.iter().enumerate() {
        for f in files {
            fs::write(t.root.join(f), text).expect("write");
        }
        let mut p = t.probe();
        let a = p.sample_at(secs(i as u64));
        let b = p.sample_at(secs(i as u64 + 1));
        assert!(b.probe_errors >= a.probe_errors);
        if let Some(l) = b.cpu_load {
            assert!((0.0..=1.0).contains(&l));
        }
    }
    // A directory where a file should be.
    let t = TempTree::new("v2_quota");
    t.remove("proc/loadavg");
    fs::create_dir(t.root.join("proc/loadavg")).expect("mkdir");
    let s = t.probe().sample_at(secs(0));
    assert_eq!(s.load_avg, None);
    assert_eq!(s.probe_errors, 1);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn counter_going_backwards_is_rejected_and_baseline_reset() {
    let t = TempTree::new("v2_quota");
    let mut p = t.probe();
    v2_usage(&t, 5_000_000);
    p.sample_at(secs(0));
    v2_usage(&t, 4_000_000);
    let s = p.sample_at(secs(1));
    assert_eq!(s.cpu_load, None);
    assert_eq!(s.probe_errors, 1);
    // Measured from the reset baseline (4 s): 0.75 s over 1 s × 1.5 CPUs.
    v2_usage(&t, 4_750_000);
    let s = p.sample_at(secs(2));
    assert_close(s.cpu_load, 0.5);
    assert_eq!(s.probe_errors, 1);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn more_busy_than_possible_is_rejected() {
    let t = TempTree::new("v2_quota");
    let mut p = t.probe();
    v2_usage(&t, 5_000_000);
    p.sample_at(secs(0));
    // 2 s of CPU in 1 s with a 1.5 CPU quota.
    v2_usage(&t, 7_000_000);
    let s = p.sample_at(secs(1));
    assert_eq!(s.cpu_load, None);
    assert_eq!(s.probe_errors, 1);
    // Just past the tolerance (1.5 × 1.05 = 1.575 s): still rejected.
    v2_usage(&t, 7_000_000 + 1_580_000);
    let s = p.sample_at(secs(2));
    assert_eq!(s.cpu_load, None);
    assert_eq!(s.probe_errors, 2);
    // Next interval is measured from there.
    v2_usage(&t, 8_580_000 + 300_000);
    assert_close(p.sample_at(secs(3)).cpu_load, 0.2);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn proc_stat_more_busy_than_online_cpus_is_rejected() {
    let t = TempTree::new("nocgroup");
    let mut p = t.probe();
    p.sample_at(secs(0));
    // 30 CPU-seconds more in 10 s on 2 CPUs.
    let tps = procfs::ticks_per_second();
    let extra = 3 * tps * 10;
    t.write(
        "proc/stat",
        &format!(
            "cpu  {} 500 3000 80000 1000 200 300 0 0 0\n",
            10_000 + extra
        ),
    );
    let s = p.sample_at(secs(10));
    assert_eq!(s.cpu_load, None);
    assert_eq!(s.probe_errors, 1);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn override_applies_to_count_and_load() {
    let t = TempTree::new("v2_quota");
    let mut p = SystemProbe::new(SystemConfig {
        root: t.root.clone(),
        cpu_count_override: Some(2.0),
    });
    v2_usage(&t, 5_000_000);
    let s = p.sample_at(secs(0));
    assert_eq!(s.num_cpus, Some(2.0));
    // 1 s of CPU per second: 0.5 of the 2 overridden CPUs (it would be
    // 0.667 of the 1.5 CPU quota).
    v2_usage(&t, 6_000_000);
    let s = p.sample_at(secs(1));
    assert_eq!(s.num_cpus, Some(2.0));
    assert_close(s.cpu_load, 0.5);
    // The quota still bounds what is possible: 1.7 s in 1 s is rejected.
    v2_usage(&t, 7_700_000);
    let s = p.sample_at(secs(2));
    assert_eq!(s.cpu_load, None);
    assert_eq!(s.probe_errors, 1);
    // An override smaller than the quota: a possible load above it is 1.0.
    let mut p = SystemProbe::new(SystemConfig {
        root: t.root.clone(),
        cpu_count_override: Some(1.0),
    });
    p.sample_at(secs(0));
    v2_usage(&t, 7_700_000 + 1_400_000);
    let s = p.sample_at(secs(1));
    assert_eq!(s.num_cpus, Some(1.0));
    assert_eq!(s.cpu_load, Some(1.0));
    // Unusable overrides are ignored.
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mut p = SystemProbe::new(SystemConfig {
            root: t.root.clone(),
            cpu_count_override: Some(bad),
        });
        assert_eq!(p.sample_at(secs(0)).num_cpus, Some(1.5));
    }
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn quota_lowered_mid_interval_is_not_impossible() {
    let t = TempTree::new("v2_quota");
    let mut p = t.probe();
    v2_usage(&t, 5_000_000);
    p.sample_at(secs(0));
    // 1.4 s in 1 s was possible under the old 1.5 quota.
    v2_usage(&t, 6_400_000);
    t.write(&format!("{V2_CTR}/cpu.max"), "50000 100000\n");
    let s = p.sample_at(secs(1));
    assert_eq!(s.num_cpus, Some(0.5));
    assert_eq!(s.cpu_load, Some(1.0));
    assert_eq!(s.probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn same_instant_keeps_baseline() {
    let t = TempTree::new("v2_quota");
    let mut p = t.probe();
    v2_usage(&t, 5_000_000);
    p.sample_at(secs(1));
    let s = p.sample_at(secs(1));
    assert_eq!((s.cpu_load, s.probe_errors), (None, 0));
    v2_usage(&t, 5_300_000);
    assert_close(p.sample_at(secs(2)).cpu_load, 0.2);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn net_totals_never_decrease() {
    let t = TempTree::new("v2_quota");
    let mut p = t.probe();
    let s = p.sample_at(secs(0));
    assert_eq!(s.sys_packets_out, Some(TX_PACKETS));
    let head = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n";
    // eth1 disappears, eth0 sends 100 more, a new veth appears with 7.
    t.write(
        "proc/net/dev",
        &format!(
            "{head}  eth0: 0 0 0 42 0 0 0 0 0 9876543310 0 17 0 0 0 0\n  veth9: 0 0 0 1 0 0 0 0 0 7 0 2 0 0 0 0\n"
        ),
    );
    let s = p.sample_at(secs(1));
    assert_eq!(s.sys_packets_out, Some(TX_PACKETS + 100 + 7));
    assert_eq!(s.sys_packets_dropped, Some(TX_DROPPED + 2));
    assert_eq!(s.rx_dropped, Some(RX_DROPPED + 1));
    // eth0's counters restart (driver reset) at 5.
    t.write(
        "proc/net/dev",
        &format!(
            "{head}  eth0: 0 0 0 0 0 0 0 0 0 5 0 0 0 0 0 0\n  veth9: 0 0 0 1 0 0 0 0 0 7 0 2 0 0 0 0\n"
        ),
    );
    let s = p.sample_at(secs(2));
    assert_eq!(s.sys_packets_out, Some(TX_PACKETS + 100 + 7 + 5));
    // A garbled read changes nothing and is counted.
    t.write("proc/net/dev", "garbage\n");
    let s = p.sample_at(secs(3));
    assert_eq!((s.sys_packets_out, s.probe_errors), (None, 1));
    assert_eq!(s.udp_in_errors, Some(33));
}

#[test]
fn cpu_load_fn() {
    let sec = secs(1);
    assert_eq!(cpu_load(0, 500_000_000, sec, 1.0), Some(0.5));
    assert_eq!(cpu_load(0, 2_000_000_000, sec, 2.0), Some(1.0));
    assert_eq!(cpu_load(0, 3_000_000_000, sec, 2.0), None);
    assert_eq!(cpu_load(7, 7 + 750_000_000, secs(2), 1.5), Some(0.25));
    assert_eq!(cpu_load(0, 1_040_000_000, sec, 1.0), Some(1.0));
    assert_eq!(cpu_load(0, 1_060_000_000, sec, 1.0), None);
    assert_eq!(cpu_load(10, 5, sec, 1.0), None);
    assert_eq!(cpu_load(0, 0, sec, 1.0), Some(0.0));
    assert_eq!(cpu_load(0, 1, Duration::ZERO, 1.0), None);
    assert_eq!(cpu_load(0, 1, sec, 0.0), None);
    assert_eq!(cpu_load(0, 1, sec, f64::NAN), None);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn live_values_in_range() {
    let _serial = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = SystemProbe::new(SystemConfig::default());
    let s = p.sample();
    let cpus = s.num_cpus.expect("num_cpus");
    assert!(cpus > 0.0, "{s:?}");
    let (used, total) = (s.memory_used.expect("used"), s.memory_total.expect("total"));
    assert!(used <= total && total > 0, "{s:?}");
    let la = s.load_avg.expect("load_avg");
    assert!(la.iter().all(|v| *v >= 0.0), "{s:?}");
    assert!(
        s.sys_packets_out.is_some() && s.udp_in_errors.is_some(),
        "{s:?}"
    );
    assert_eq!(s.probe_errors, 0, "{s:?}");
    std::thread::sleep(Duration::from_millis(50));
    let s = p.sample();
    let load = s.cpu_load.expect("cpu_load on the second sample");
    assert!((0.0..=1.0).contains(&load), "{s:?}");
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn live_load_counts_this_process_busy_time() {
    // The machine may already be busy with other work, so a rise in
    // machine-wide load is not something this test can cause. What it can
    // control is a lower bound: the busy time the probe reports over an
    // interval (load x elapsed x CPUs) includes this process's own CPU time
    // in that interval, however busy the rest of the machine is.
    let _serial = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Instant;
    #[allow(unsafe_code)]
    fn own_cpu() -> Duration {
        // SAFETY: getrusage writes one rusage into the zeroed local.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a local rusage.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        assert_eq!(rc, 0, "getrusage");
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
    let mut p = SystemProbe::new(SystemConfig::default());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let spinner = std::thread::spawn(move || {
        let mut x = 0u64;
        while !flag.load(Ordering::Relaxed) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        x
    });
    std::thread::sleep(Duration::from_millis(50));
    let (cpu0, t0) = (own_cpu(), Instant::now());
    let first = p.sample();
    std::thread::sleep(Duration::from_millis(1000));
    let busy = p.sample();
    let (cpu1, t1) = (own_cpu(), Instant::now());
    stop.store(true, Ordering::Relaxed);
    let _ = spinner.join();

    let own = (cpu1 - cpu0).as_secs_f64();
    let cpus = busy.num_cpus.expect("num_cpus");
    let load = busy.cpu_load.expect("busy load");
    let reported = load * (t1 - t0).as_secs_f64() * cpus;
    // /proc/stat and cgroup accounting advance in ticks (up to 10 ms,
    // per CPU, at each end of the interval).
    let slack = 0.02 * cpus + 0.02;
    assert!(
        own > slack,
        "the spinning thread ran for {own:.3} s of CPU in 1 s: {first:?}"
    );
    assert!(
        reported + slack >= own,
        "the probe reported {reported:.3} s busy (load {load:.3} x {cpus} CPUs) \
         while this process alone used {own:.3} s"
    );
}

/// The live tests read machine-wide counters on hosts whose cgroup is the
/// root: they run one at a time so that one's sampling loop is not another's
/// "busy thread".
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn no_fd_leak_over_10000_samples() {
    let _serial = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut p = SystemProbe::new(SystemConfig::default());
    p.sample();
    let before = open_fds();
    for _ in 0..10_000 {
        std::hint::black_box(p.sample());
    }
    // Other tests run in parallel and open files briefly: wait for their
    // descriptors to close; a leak would stay (thousands of them).
    let mut after = open_fds();
    for _ in 0..50 {
        if after <= before {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        after = open_fds();
    }
    assert!(after <= before, "fds grew from {before} to {after}");
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn own_cgroup_dir_not_visible_uses_mount_point() {
    // mountinfo claims the whole hierarchy (root `/`) but only the
    // container's own cgroup is mounted: its files are at the mount point.
    let t = TempTree::new("v2_nolimit");
    t.write("proc/self/cgroup", "0::/kubepods/podX/ctrY\n");
    t.write(
        "proc/self/mountinfo",
        "30 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
    );
    let mut p = t.probe();
    let s = p.sample_at(secs(0));
    assert_eq!(s.memory_used, Some(2_000_000_000));
    assert_eq!(s.probe_errors, 0);
}

#[test]
#[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
fn unreadable_mountinfo_means_no_cgroup_and_is_counted() {
    let t = TempTree::new("v2_quota");
    t.remove("proc/self/mountinfo");
    let mut p = t.probe();
    assert_eq!(p.cgroup_version(), None);
    let s = p.sample_at(secs(0));
    // Host numbers instead of the cgroup's.
    assert_eq!(s.num_cpus, Some(4.0));
    assert_eq!(s.memory_used, Some((16_384_000 - 12_288_000) * 1024));
    assert_eq!(s.probe_errors, 1);
}
