//! How cgroups are mounted, from `/proc/self/mountinfo`: pure parsing plus a thin reader.

use std::path::{Path, PathBuf};

use super::CgroupMode;

/// One line of mountinfo, the fields guard needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// Per-superblock options, where cgroup v1 lists its controllers (`rw,cpu,cpuacct`).
    pub super_options: Vec<String>,
}

/// Controllers of cgroup v1 (what may appear in a v1 hierarchy's super options). Named
/// hierarchies (`name=systemd`) carry no controller and are left out.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// Undoes mountinfo's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes.get(i + 1..i + 4).filter(|d| {
            bytes[i] == b'\\'
                && (b'0'..=b'3').contains(&d[0])
                && d[1..].iter().all(|b| (b'0'..=b'7').contains(b))
        });
        if let Some(d) = escape {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text (proc(5)): `id parent major:minor root mount_point options
/// [optional fields...] - fs_type source super_options`. Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            let mount_point = fields.get(4)?;
            let fs_type = fields.get(sep + 1)?;
            let super_options = fields.get(sep + 3).copied().unwrap_or("");
            Some(Mount {
                mount_point: PathBuf::from(unescape(mount_point)),
                fs_type: (*fs_type).to_string(),
                super_options: super_options.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The cgroup layout described by `mounts`; `controllers_of` reads `cgroup.controllers` of a
/// cgroup2 mount (injected so this stays pure).
pub fn mode_from_mounts(
    mounts: &[Mount],
    controllers_of: impl Fn(&Path) -> Vec<String>,
) -> CgroupMode {
    let mut v1: Vec<(String, PathBuf)> = Vec::new();
    for m in mounts.iter().filter(|m| m.fs_type == "cgroup") {
        for opt in &m.super_options {
            if V1_CONTROLLERS.contains(&opt.as_str()) && !v1.iter().any(|(c, _)| c == opt) {
                v1.push((opt.clone(), m.mount_point.clone()));
            }
        }
    }
    // Prefer the conventional places when a cgroup2 filesystem is mounted more than once.
    let unified: Vec<&Mount> = mounts.iter().filter(|m| m.fs_type == "cgroup2").collect();
    let unified = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .find_map(|p| unified.iter().find(|m| m.mount_point == Path::new(p)))
        .or(unified.first())
        .map(|m| m.mount_point.clone());

    match (unified, v1.is_empty()) {
        (Some(root), true) => CgroupMode::V2 {
            controllers: controllers_of(&root),
            root,
        },
        (Some(unified), false) => CgroupMode::Hybrid {
            v1,
            unified_controllers: controllers_of(&unified),
            unified,
        },
        (None, false) => CgroupMode::V1 { v1 },
        (None, true) => CgroupMode::None,
    }
}

/// Reads a cgroup2 directory's `cgroup.controllers` (empty when unreadable).
pub fn read_controllers(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The cgroup layout of this process's mount namespace.
pub fn detect() -> CgroupMode {
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => mode_from_mounts(&parse_mountinfo(&text), read_controllers),
        Err(_) => CgroupMode::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const PURE_V2: &str = "\
25 1 0:23 / / rw - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const V1_COMBINED: &str = "\
33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
";

    fn no_controllers(_: &Path) -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn hybrid_host_is_recognised() {
        let mode = mode_from_mounts(&parse_mountinfo(HYBRID), |p| {
            assert_eq!(p, Path::new("/sys/fs/cgroup/unified"));
            Vec::new()
        });
        let CgroupMode::Hybrid {
            v1,
            unified,
            unified_controllers,
        } = mode
        else {
            panic!("expected hybrid, got {mode:?}");
        };
        assert_eq!(unified, PathBuf::from("/sys/fs/cgroup/unified"));
        assert!(unified_controllers.is_empty());
        assert_eq!(
            v1,
            vec![
                ("cpu".to_string(), PathBuf::from("/sys/fs/cgroup/cpu")),
                ("memory".to_string(), PathBuf::from("/sys/fs/cgroup/memory")),
                ("pids".to_string(), PathBuf::from("/sys/fs/cgroup/pids")),
            ]
        );
    }

    #[test]
    fn pure_v2_with_optional_fields_is_recognised() {
        let mode = mode_from_mounts(&parse_mountinfo(PURE_V2), |_| {
            vec!["cpu".into(), "memory".into(), "pids".into()]
        });
        assert_eq!(
            mode,
            CgroupMode::V2 {
                root: PathBuf::from("/sys/fs/cgroup"),
                controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
            }
        );
    }

    #[test]
    fn combined_v1_hierarchy_lists_each_controller() {
        let mode = mode_from_mounts(&parse_mountinfo(V1_COMBINED), no_controllers);
        let p = PathBuf::from("/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(
            mode,
            CgroupMode::V1 {
                v1: vec![("cpu".into(), p.clone()), ("cpuacct".into(), p)]
            }
        );
    }

    #[test]
    fn no_cgroup_mounts_is_none() {
        let mode = mode_from_mounts(
            &parse_mountinfo("1 0 0:1 / / rw - ext4 x rw\n"),
            no_controllers,
        );
        assert_eq!(mode, CgroupMode::None);
    }

    #[test]
    fn escaped_mount_points_and_garbage_lines() {
        let mounts = parse_mountinfo("garbage\n5 1 0:5 / /mnt/a\\040b rw - cgroup2 none rw\n");
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, PathBuf::from("/mnt/a b"));
    }
}
