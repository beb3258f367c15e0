//! Which cgroup layout this host has, from `/proc/self/mountinfo` and cgroup2's
//! `cgroup.controllers`: pure parsing, so every layout is unit-tested without root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::CgroupError;

/// The cgroup mounts of this host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mounts {
    /// Mount points of cgroup2 filesystems, in mount-table order.
    pub cgroup2: Vec<PathBuf>,
    /// cgroup v1 controller name -> mount point of its hierarchy (`cpu,cpuacct` mounted together
    /// gives both names the same path).
    pub v1: BTreeMap<String, PathBuf>,
}

/// The controllers guard puts limits through.
pub const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "freezer"];

/// The backend this host needs.
#[derive(Debug, Clone, PartialEq)]
pub enum CgroupHost {
    /// cgroup2 at `root` offers the memory and pids controllers.
    V2 { root: PathBuf },
    /// Controllers on v1 hierarchies (`v1`: controller -> mount point); cgroup2 at `unified`
    /// carries only membership, for eBPF.
    Hybrid {
        unified: PathBuf,
        v1: BTreeMap<String, PathBuf>,
    },
}

impl Mounts {
    /// The cgroup mounts of `/proc/<pid>/mountinfo` text, read with the host module's parser
    /// (which also decodes the kernel's octal escapes in mount points); a v1 hierarchy's super
    /// options name its controllers.
    pub fn parse(mountinfo: &str) -> Self {
        let mut mounts = Mounts::default();
        for mount in crate::host::cgroup::parse_mountinfo(mountinfo) {
            match mount.fs_type.as_str() {
                "cgroup2" => mounts.cgroup2.push(mount.mount_point),
                "cgroup" => {
                    for opt in &mount.super_options {
                        if V1_CONTROLLERS.contains(&opt.as_str()) {
                            mounts
                                .v1
                                .entry(opt.clone())
                                .or_insert_with(|| mount.mount_point.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        mounts
    }
}

impl CgroupHost {
    /// Picks the backend: v2 when a cgroup2 mount offers memory and pids (read through
    /// `controllers_of`, which returns the words of that mount's `cgroup.controllers`), else the
    /// hybrid backend when v1 has memory and pids and cgroup2 is mounted for eBPF.
    pub fn detect(
        mounts: &Mounts,
        controllers_of: impl Fn(&Path) -> Result<Vec<String>, CgroupError>,
    ) -> Result<Self, CgroupError> {
        let Some(first_cgroup2) = mounts.cgroup2.first() else {
            return Err(CgroupError::NoCgroup2);
        };
        for root in &mounts.cgroup2 {
            let controllers = controllers_of(root)?;
            let has = |c: &str| controllers.iter().any(|x| x == c);
            if has("memory") && has("pids") {
                return Ok(CgroupHost::V2 { root: root.clone() });
            }
        }
        for needed in ["memory", "pids"] {
            if !mounts.v1.contains_key(needed) {
                return Err(CgroupError::MissingController(needed));
            }
        }
        Ok(CgroupHost::Hybrid {
            unified: first_cgroup2.clone(),
            v1: mounts.v1.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mount table of the kernel 6.18 development host (hybrid).
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd host with pure cgroup v2 (optional fields before the separator).
    const PURE_V2: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn controllers(list: &'static str) -> impl Fn(&Path) -> Result<Vec<String>, CgroupError> {
        move |_| Ok(list.split_whitespace().map(String::from).collect())
    }

    #[test]
    fn parses_hybrid_mounts() {
        let m = Mounts::parse(HYBRID);
        assert_eq!(m.cgroup2, [PathBuf::from("/sys/fs/cgroup/unified")]);
        assert_eq!(m.v1["memory"], Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(m.v1["cpu"], Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(m.v1["freezer"], Path::new("/sys/fs/cgroup/freezer"));
        assert!(!m.v1.contains_key("cpuacct"));
        assert!(!m.v1.contains_key("name=systemd"));
    }

    #[test]
    fn comounted_controllers_share_a_path() {
        let m = Mounts::parse(
            "33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
        );
        assert_eq!(m.v1["cpu"], Path::new("/sys/fs/cgroup/cpu,cpuacct"));
    }

    #[test]
    fn hybrid_host_without_unified_controllers_is_hybrid() {
        let host = CgroupHost::detect(&Mounts::parse(HYBRID), controllers("")).unwrap();
        let CgroupHost::Hybrid { unified, v1 } = host else {
            panic!("expected hybrid, got {host:?}");
        };
        assert_eq!(unified, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(v1["pids"], Path::new("/sys/fs/cgroup/pids"));
    }

    #[test]
    fn pure_v2_with_controllers_is_v2() {
        let host = CgroupHost::detect(
            &Mounts::parse(PURE_V2),
            controllers("cpuset cpu io memory hugetlb pids"),
        )
        .unwrap();
        assert_eq!(
            host,
            CgroupHost::V2 {
                root: PathBuf::from("/sys/fs/cgroup")
            }
        );
    }

    #[test]
    fn v2_without_pids_and_no_v1_is_an_error() {
        let err =
            CgroupHost::detect(&Mounts::parse(PURE_V2), controllers("cpu memory")).unwrap_err();
        assert!(
            matches!(err, CgroupError::MissingController("memory")),
            "{err}"
        );
    }

    #[test]
    fn pure_v1_has_no_cgroup2_for_ebpf() {
        let v1_only: String = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = CgroupHost::detect(&Mounts::parse(&v1_only), controllers("")).unwrap_err();
        assert!(matches!(err, CgroupError::NoCgroup2), "{err}");
    }
}
