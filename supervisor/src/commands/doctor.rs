//! `guard doctor`: this host's kernel features, probed, and what they mean for profiles.
//!
//! The report is rendered by a pure function over [`HostFeatures`] so its wording is tested
//! without a kernel; `run` only gathers the facts. Lines start with stable keys
//! (`kernel:`, `landlock:`, `bpf <type>:`, `cgroups:`, `btf:`) for scripts and tests.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::ebpf::tracefs;
use crate::host::landlock::ABI_FEATURES;
use crate::host::{CgroupMode, HostFeatures, Probe};

pub fn run() -> ExitCode {
    // Looked at before detection, which mounts tracefs when it is missing.
    let tracefs_before = tracefs::find();
    let features = HostFeatures::detect();
    let root = nix::unistd::geteuid().is_root();
    print!("{}", render(&features, tracefs_before.as_ref(), root));
    ExitCode::SUCCESS
}

fn probe_text(p: &Probe) -> String {
    match p {
        Probe::Available => "loadable".to_string(),
        Probe::Refused(reason) => format!("refused ({reason})"),
    }
}

/// The report. `tracefs` is where tracefs was mounted before guard looked; `root` whether the
/// BPF probes ran with privileges that make their answers meaningful.
pub fn render(f: &HostFeatures, tracefs: Option<&PathBuf>, root: bool) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "kernel: {}", f.kernel_release);

    if f.landlock_abi == 0 {
        let _ = writeln!(out, "landlock: unavailable");
    } else {
        let _ = writeln!(out, "landlock: ABI {}", f.landlock_abi);
    }
    for (level, what) in ABI_FEATURES {
        let mark = if *level <= f.landlock_abi {
            "yes"
        } else {
            "no "
        };
        let _ = writeln!(out, "  [{mark}] ABI {level}: {what}");
    }

    if !root {
        let _ = writeln!(
            out,
            "note: not running as root, so every BPF program type reads as refused; run `sudo guard doctor`"
        );
    }
    for (name, probe) in [
        ("tracepoint", &f.bpf.tracepoint),
        ("cgroup_sock_addr", &f.bpf.cgroup_sock_addr),
        ("lsm", &f.bpf.lsm),
        ("fentry", &f.bpf.fentry),
    ] {
        let _ = writeln!(out, "bpf {name}: {}", probe_text(probe));
    }
    match tracefs {
        Some(dir) => {
            let _ = writeln!(out, "tracefs: mounted at {}", dir.display());
        }
        None => {
            let _ = writeln!(
                out,
                "tracefs: was not mounted; guard mounts it at {} to attach tracepoints",
                tracefs::TRACEFS
            );
        }
    }

    match &f.cgroup {
        CgroupMode::V2 { root, controllers } => {
            let _ = writeln!(out, "cgroups: v2 at {}", root.display());
            let _ = writeln!(out, "  controllers: {}", list(controllers));
        }
        CgroupMode::Hybrid {
            v1,
            unified,
            unified_controllers,
        } => {
            let _ = writeln!(
                out,
                "cgroups: hybrid (v1 controllers, cgroup2 at {})",
                unified.display()
            );
            for (ctrl, path) in v1 {
                let _ = writeln!(out, "  v1 {ctrl}: {}", path.display());
            }
            let _ = writeln!(out, "  cgroup2 controllers: {}", list(unified_controllers));
        }
        CgroupMode::V1 { v1 } => {
            let _ = writeln!(out, "cgroups: v1 only (no cgroup2 mount)");
            for (ctrl, path) in v1 {
                let _ = writeln!(out, "  v1 {ctrl}: {}", path.display());
            }
        }
        CgroupMode::None => {
            let _ = writeln!(out, "cgroups: none mounted");
        }
    }
    let _ = writeln!(
        out,
        "btf: {}",
        if f.btf {
            "available (/sys/kernel/btf/vmlinux)"
        } else {
            "unavailable"
        }
    );

    let _ = writeln!(out, "\nwhat this means for profiles:");
    for line in meaning(f) {
        let _ = writeln!(out, "  {line}");
    }
    // Whether guard's probes are loaded right now (pinned by an earlier guard exec).
    let pinned = crate::ebpf::pins::all_pin_dirs();
    if pinned.is_empty() {
        let _ = writeln!(
            out,
            "  probes: not loaded now; the next guard exec loads and pins them under {}",
            crate::ebpf::pins::PIN_ROOT
        );
    }
    for dir in pinned {
        let lsm = if crate::ebpf::loader::lsm_attached(&dir) {
            "with"
        } else {
            "without"
        };
        let _ = writeln!(
            out,
            "  probes: pinned at {} ({lsm} the BPF LSM exec hook); `guard unload` removes them",
            dir.display()
        );
    }
    out
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(" ")
    }
}

/// One line per profile section: which layer enforces it here, and what is lost.
fn meaning(f: &HostFeatures) -> Vec<String> {
    let abi = f.landlock_abi;
    let cgroup2 = f.cgroup.cgroup2_root().is_some();
    let mut lines = Vec::new();

    lines.push(if abi >= 1 {
        "filesystem: Landlock denies paths outside the profile with EACCES".to_string()
    } else {
        "filesystem: NOT enforceable (no Landlock); profiles with [filesystem] rules fail to start"
            .to_string()
    });

    let mut net = if f.bpf.cgroup_sock_addr.is_available() && cgroup2 {
        "network: eBPF cgroup hooks deny connect/bind/sendmsg with EPERM before any packet leaves"
            .to_string()
    } else {
        "network: NOT enforceable by eBPF here (cgroup_sock_addr refused or no cgroup2 mount); profiles with [network] rules fail to start".to_string()
    };
    if abi >= 4 {
        net.push_str("; Landlock TCP port rules add a second layer (ABI >= 4)");
    }
    lines.push(net);

    lines.push(if f.bpf.lsm.is_available() {
        "exec allowlist: BPF LSM bprm_check_security refuses unlisted binaries with EPERM at exec"
            .to_string()
    } else if f.bpf.tracepoint.is_available() {
        "exec allowlist: enforced by killing after exec via the sched_process_exec tracepoint (the new image never runs its first instruction); BPF LSM refused here, so no EPERM at exec".to_string()
    } else {
        "exec allowlist: only the Landlock execute right (no eBPF exec check here)".to_string()
    });

    lines.push(match &f.cgroup {
        CgroupMode::V2 { controllers, .. } => format!(
            "limits: cgroup v2 ({}); a limit whose controller is missing fails the start",
            list(controllers)
        ),
        CgroupMode::Hybrid {
            v1,
            unified_controllers,
            ..
        } if unified_controllers.is_empty() => format!(
            "limits: cgroup v1 hierarchies ({}) since cgroup2 has no controllers here; the process tree is tracked in cgroup2",
            v1.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(" ")
        ),
        CgroupMode::Hybrid {
            unified_controllers,
            ..
        } => format!(
            "limits: cgroup2 controllers ({}), v1 hierarchies for the rest",
            list(unified_controllers)
        ),
        CgroupMode::V1 { .. } => {
            "limits: cgroup v1; no cgroup2, so no eBPF cgroup hooks or cgroup ids".to_string()
        }
        CgroupMode::None => "limits: no cgroups; only rlimits and wall/CPU time".to_string(),
    });

    lines.push(if abi >= 6 {
        "signals and abstract unix sockets: Landlock scoping keeps them inside the sandbox".to_string()
    } else {
        "signals and abstract unix sockets: not scoped (Landlock ABI < 6); seccomp and namespaces only".to_string()
    });
    lines.push(if f.btf {
        "btf: kernel types available for fentry/LSM programs".to_string()
    } else {
        "btf: missing, so fentry and LSM programs cannot load".to_string()
    });
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::BpfSupport;

    fn host(lsm: Probe, abi: u32) -> HostFeatures {
        HostFeatures {
            kernel_release: "6.18.0-test".into(),
            landlock_abi: abi,
            bpf: BpfSupport {
                tracepoint: Probe::Available,
                cgroup_sock_addr: Probe::Available,
                lsm: lsm.clone(),
                fentry: lsm,
            },
            cgroup: CgroupMode::Hybrid {
                v1: vec![("memory".into(), PathBuf::from("/sys/fs/cgroup/memory"))],
                unified: PathBuf::from("/sys/fs/cgroup/unified"),
                unified_controllers: vec![],
            },
            btf: true,
        }
    }

    #[test]
    fn refused_lsm_means_kill_after_exec() {
        let out = render(&host(Probe::Refused("load: EPERM".into()), 7), None, true);
        assert!(out.contains("landlock: ABI 7\n"), "{out}");
        assert!(out.contains("  [yes] ABI 7: "), "{out}");
        assert!(out.contains("bpf lsm: refused (load: EPERM)\n"), "{out}");
        assert!(out.contains("bpf tracepoint: loadable\n"), "{out}");
        assert!(out.contains("cgroups: hybrid"), "{out}");
        assert!(out.contains("killing after exec"), "{out}");
        assert!(out.contains("tracefs: was not mounted"), "{out}");
    }

    #[test]
    fn available_lsm_means_eperm_at_exec() {
        let out = render(&host(Probe::Available, 6), Some(&PathBuf::from("/t")), true);
        assert!(out.contains("EPERM at exec"), "{out}");
        assert!(out.contains("  [no ] ABI 7: "), "{out}");
        assert!(out.contains("tracefs: mounted at /t"), "{out}");
    }

    #[test]
    fn no_landlock_is_said_plainly() {
        let out = render(&host(Probe::Available, 0), None, false);
        assert!(out.contains("landlock: unavailable"), "{out}");
        assert!(out.contains("not running as root"), "{out}");
        assert!(out.contains("filesystem: NOT enforceable"), "{out}");
    }
}
