//! Finding the process's cgroup directories from `proc/self/cgroup` and
//! `proc/self/mountinfo`.

use super::read::{read_optional, unescape_octal};
use super::CgroupVersion;
use std::path::{Path, PathBuf};

/// Where the CPU quota of one cgroup directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QuotaFiles {
    /// v2 `cpu.max`: `"<quota|max> <period>"`.
    V2 { max: PathBuf },
    /// v1 `cpu.cfs_quota_us` (`-1` = none) and `cpu.cfs_period_us`.
    V1 { quota: PathBuf, period: PathBuf },
}

/// The memory controller's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemoryFiles {
    /// Usage in bytes (`memory.current` / `memory.usage_in_bytes`).
    pub(crate) usage: PathBuf,
    /// `memory.stat` of the process's cgroup.
    pub(crate) stat: PathBuf,
    /// Key of the inactive page cache in `memory.stat`.
    pub(crate) stat_key: &'static str,
    /// Limit files, the process's cgroup first, then its ancestors up to the
    /// mount point (`memory.max` / `memory.limit_in_bytes`).
    pub(crate) limits: Vec<PathBuf>,
}

/// The cgroup files the probes read; all empty when no cgroup was found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Cgroups {
    /// Hierarchy in use, if any controller was found.
    pub(crate) version: Option<CgroupVersion>,
    /// Busy-time counter: v2 `cpu.stat` or v1 `cpuacct.usage`.
    pub(crate) cpu_usage: Option<PathBuf>,
    /// Quota files, the process's cgroup first, then its ancestors.
    pub(crate) cpu_quota: Vec<QuotaFiles>,
    /// Memory accounting.
    pub(crate) memory: Option<MemoryFiles>,
}

/// Reads `proc/self/cgroup` and `proc/self/mountinfo` under `root` and
/// resolves the process's cgroup directories. No `proc/self/cgroup` means
/// no cgroup (not an error); an unreadable one, or a missing mountinfo next
/// to it, counts in `errors`.
pub(crate) fn discover(root: &Path, buf: &mut String, errors: &mut u64) -> Cgroups {
    let cgroup_text = match read_optional(&root.join("proc/self/cgroup"), buf) {
        Ok(true) => buf.clone(),
        Ok(false) => return Cgroups::default(),
        Err(()) => {
            *errors += 1;
            return Cgroups::default();
        }
    };
    match read_optional(&root.join("proc/self/mountinfo"), buf) {
        Ok(true) => {}
        Ok(false) | Err(()) => {
            *errors += 1;
            return Cgroups::default();
        }
    }
    from_texts(root, &cgroup_text, buf)
}

/// One mount from `proc/self/mountinfo`.
#[derive(Debug)]
struct Mount<'a> {
    /// Root of the mount inside its filesystem (field 4).
    root: String,
    /// Mount point (field 5).
    point: String,
    fstype: &'a str,
    super_opts: &'a str,
}

// Ours, not procfs's `MountInfos` (nor `ProcessCGroups` for
// `proc/self/cgroup` in `from_texts`): procfs leaves the kernel's octal
// escapes in paths (`/sys/fs/my\040cgroup` stays as is, so we would still
// unescape), and both fail the whole file on one line they cannot parse
// (`"0::/app\ngarbage\n"` is rejected) where we skip that line and still
// find the cgroup. Both files are read once, when the probe is created, so
// speed does not enter into it.
fn parse_mounts(text: &str) -> Vec<Mount<'_>> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mut pre = pre.split(' ');
            let root = pre.nth(3)?;
            let point = pre.next()?;
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let _source = post.next();
            let super_opts = post.next().unwrap_or("");
            Some(Mount {
                root: unescape_octal(root),
                point: unescape_octal(point),
                fstype,
                super_opts,
            })
        })
        .collect()
}

/// Resolves the cgroups from the two files' contents.
pub(crate) fn from_texts(root: &Path, cgroup_text: &str, mountinfo_text: &str) -> Cgroups {
    let mounts = parse_mounts(mountinfo_text);
    let mut v2_path: Option<&str> = None;
    let mut v1_paths: Vec<(&str, &str)> = Vec::new(); // (controller, path)
    for line in cgroup_text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path);
        } else {
            for c in controllers.split(',') {
                v1_paths.push((c, path));
            }
        }
    }
    let v1_path = |controller: &str| {
        v1_paths
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, p)| *p)
    };
    let v1_dirs = |controller: &str| -> Option<Vec<PathBuf>> {
        let path = v1_path(controller)?;
        locate(
            root,
            &mounts,
            |m| m.fstype == "cgroup" && m.super_opts.split(',').any(|o| o == controller),
            path,
        )
    };

    let cpuacct = v1_dirs("cpuacct");
    let cpu = v1_dirs("cpu");
    let memory = v1_dirs("memory");
    if cpuacct.is_some() || cpu.is_some() || memory.is_some() {
        return Cgroups {
            version: Some(CgroupVersion::V1),
            cpu_usage: cpuacct
                .as_ref()
                .and_then(|d| d.first())
                .map(|d| d.join("cpuacct.usage")),
            cpu_quota: cpu
                .iter()
                .flatten()
                .map(|d| QuotaFiles::V1 {
                    quota: d.join("cpu.cfs_quota_us"),
                    period: d.join("cpu.cfs_period_us"),
                })
                .collect(),
            memory: memory.as_ref().and_then(|dirs| {
                let own = dirs.first()?;
                Some(MemoryFiles {
                    usage: own.join("memory.usage_in_bytes"),
                    stat: own.join("memory.stat"),
                    stat_key: "total_inactive_file",
                    limits: dirs
                        .iter()
                        .map(|d| d.join("memory.limit_in_bytes"))
                        .collect(),
                })
            }),
        };
    }

    let Some(dirs) = v2_path.and_then(|p| locate(root, &mounts, |m| m.fstype == "cgroup2", p))
    else {
        return Cgroups::default();
    };
    let Some(own) = dirs.first() else {
        return Cgroups::default();
    };
    Cgroups {
        version: Some(CgroupVersion::V2),
        cpu_usage: Some(own.join("cpu.stat")),
        cpu_quota: dirs
            .iter()
            .map(|d| QuotaFiles::V2 {
                max: d.join("cpu.max"),
            })
            .collect(),
        memory: Some(MemoryFiles {
            usage: own.join("memory.current"),
            stat: own.join("memory.stat"),
            stat_key: "inactive_file",
            limits: dirs.iter().map(|d| d.join("memory.max")).collect(),
        }),
    }
}

/// The directories of cgroup `path` (as listed in `proc/self/cgroup`) on the
/// best mount matching `is_match`: the process's own directory first, then
/// each ancestor up to the mount point. A mount whose root is a prefix of
/// `path` maps the rest of the path below its mount point (the longest such
/// root wins); when no mount root is a prefix (e.g. a container seeing only
/// its own cgroup at the mount point), the mount point itself is used.
fn locate(
    root: &Path,
    mounts: &[Mount<'_>],
    is_match: impl Fn(&Mount<'_>) -> bool,
    path: &str,
) -> Option<Vec<PathBuf>> {
    let mut fallback: Option<&Mount<'_>> = None;
    let mut best: Option<(&Mount<'_>, &str)> = None;
    for m in mounts.iter().filter(|m| is_match(m)) {
        fallback.get_or_insert(m);
        if let Some(rel) = relative_to(&m.root, path) {
            if best.is_none_or(|(b, _)| m.root.len() > b.root.len()) {
                best = Some((m, rel));
            }
        }
    }
    let (mount, rel) = match best {
        Some((m, rel)) if !rel.split('/').any(|c| c == "..") => (m, rel),
        _ => (fallback?, ""),
    };
    let base = root.join(mount.point.trim_start_matches('/'));
    let mut dirs = vec![base.clone()];
    let mut cur = base;
    for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        cur = cur.join(comp);
        dirs.push(cur.clone());
    }
    // A mount root that claims the whole hierarchy while the process's own
    // directory is not visible below the mount point: use the mount point.
    if dirs.len() > 1 && !cur.is_dir() && dirs[0].is_dir() {
        dirs.truncate(1);
    }
    dirs.reverse();
    Some(dirs)
}

/// `path` relative to the mount root `mount_root`, if it lies below it.
fn relative_to<'p>(mount_root: &str, path: &'p str) -> Option<&'p str> {
    if mount_root == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(mount_root.trim_end_matches('/'))?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS_V1: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 /docker/abc /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn relative_paths() {
        assert_eq!(relative_to("/", "/a/b"), Some("/a/b"));
        assert_eq!(relative_to("/a", "/a/b"), Some("/b"));
        assert_eq!(relative_to("/a", "/a"), Some(""));
        assert_eq!(relative_to("/a", "/ab"), None);
        assert_eq!(relative_to("/x", "/a"), None);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // mmap, syscalls or files: not under miri
    fn v1_maps_each_controller_through_its_mount_root() {
        let root = Path::new("/nonexistent-root");
        let cg = "4:memory:/docker/abc\n3:cpu:/docker/abc\n2:cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n";
        let c = from_texts(root, cg, MOUNTS_V1);
        assert_eq!(c.version, Some(CgroupVersion::V1));
        assert_eq!(
            c.cpu_usage.as_deref(),
            Some(root.join("sys/fs/cgroup/cpuacct/cpuacct.usage").as_path())
        );
        let quota_dirs: Vec<_> = c
            .cpu_quota
            .iter()
            .map(|q| match q {
                QuotaFiles::V1 { quota, .. } => quota.clone(),
                QuotaFiles::V2 { max } => max.clone(),
            })
            .collect();
        // The host view (mount root `/`): own directory, then ancestors.
        let cpu = root.join("sys/fs/cgroup/cpu");
        assert_eq!(
            quota_dirs,
            vec![
                cpu.join("docker/abc/cpu.cfs_quota_us"),
                cpu.join("docker/cpu.cfs_quota_us"),
                cpu.join("cpu.cfs_quota_us"),
            ]
        );
        let mem = c.memory.expect("memory controller");
        assert_eq!(mem.stat_key, "total_inactive_file");
    }

    #[test]
    fn v2_with_escaped_mount_point() {
        let root = Path::new("/r");
        let mi = "30 22 0:26 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        let c = from_texts(root, "0::/\n", mi);
        assert_eq!(c.version, Some(CgroupVersion::V2));
        assert_eq!(
            c.cpu_usage.as_deref(),
            Some(Path::new("/r/sys/fs/my cgroup/cpu.stat"))
        );
    }

    #[test]
    fn no_matching_mount_means_no_cgroup() {
        let c = from_texts(
            Path::new("/r"),
            "0::/a\n",
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n",
        );
        assert_eq!(c, Cgroups::default());
        let c = from_texts(Path::new("/r"), "garbage\n\n::::\n", "nonsense");
        assert_eq!(c, Cgroups::default());
    }
}
