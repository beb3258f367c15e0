//! `guard doctor`: this host's kernel features, probed, and what they mean for profiles.
//!
//! The report is rendered by a pure function over [`HostFeatures`] so its wording is tested
//! without a kernel; `run` only gathers the facts. Lines start with stable keys
//! (`kernel:`, `landlock:`, `bpf <type>:`, `cgroups:`, `btf:`) for scripts and tests.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::ebpf::tracefs;
use crate::enforcement::{self, HostView, Status};
use crate::host::landlock::ABI_FEATURES;
use crate::host::{CgroupMode, HostFeatures, Probe};
use crate::plan::{CompileContext, Mode, Plan, UserIds, UserResolver};
use crate::profile::{ExpandContext, Lookup, Source};

pub fn run() -> ExitCode {
    // Looked at before detection, which mounts tracefs when it is missing.
    let tracefs_before = tracefs::find();
    let features = HostFeatures::detect();
    let root = nix::unistd::geteuid().is_root();
    let view = HostView::from_features(&features, crate::sandbox::cgroup::layout());
    print!(
        "{}",
        render(&features, &view, tracefs_before.as_ref(), root)
    );
    print!("{}", auditing(&features));
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
pub fn render(f: &HostFeatures, view: &HostView, tracefs: Option<&PathBuf>, root: bool) -> String {
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
        ("cgroup_unix", &f.bpf.cgroup_unix),
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

    let _ = writeln!(
        out,
        "\nwhat this means for profiles (what guard exec enforces, by layer):"
    );
    for line in meaning(view) {
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

/// The kernel's auditing, which guard switches on for Landlock's denial records.
fn auditing(f: &HostFeatures) -> String {
    use crate::host::audit;
    let state = match audit::enabled() {
        Ok(0) => "off".to_owned(),
        Ok(1) => "on".to_owned(),
        Ok(2) => "on and locked".to_owned(),
        Ok(n) => format!("state {n}"),
        Err(e) => format!("unknown ({e})"),
    };
    let mut out = format!("auditing: {state}");
    if audit::enabled_by_guard() {
        out.push_str(" (turned on by guard for a running sandbox)");
    }
    out.push('\n');
    if f.landlock_abi >= crate::enforcement::landlock_abi::AUDIT {
        out.push_str(
            "  guard turns the kernel's auditing on while its sandboxes run, to record Landlock's denials (Landlock ABI 7), and back off after the last one if it was off; with no audit daemon the kernel also prints those records to its log\n",
        );
    } else {
        out.push_str(
            "  Landlock below ABI 7 writes no audit records: file denials are refused but not recorded here; guard leaves auditing alone\n",
        );
    }
    out
}

/// A profile with every part guard enforces, so the summary covers every layer.
const EVERY_PART: &str = r#"
name = "every-part"
extends = ["base"]
[filesystem]
read = ["/usr"]
execute = ["/usr/bin/true"]
[network]
connect = ["127.0.0.1:443"]
[limits]
memory = "64MiB"
pids = 16
cpu = 1.0
wall_time = "1m"
cpu_time = "1m"
open_files = 64
connects_per_minute = 60
execs_per_minute = 60
"#;

/// One line per part of a profile: which layers enforce it on this host, or what is missing,
/// as the enforcement model (the one `guard exec` refuses from) answers for a profile that has
/// every part. `None` if that profile does not compile (a bug, reported as such).
fn meaning(view: &HostView) -> Vec<String> {
    let Some(plan) = every_part_plan() else {
        return vec!["(internal error: the reference profile does not compile)".to_owned()];
    };
    let e = enforcement::assess(&plan, view);
    e.parts
        .iter()
        .map(|p| {
            let how = match &p.status {
                Status::Enforced { by, note: None } => join(by),
                Status::Enforced { by, note: Some(n) } => format!("{} (weaker: {n})", join(by)),
                Status::Weaker { by, loss, accepted } => format!(
                    "{}: only {} (profiles must accept allow_weaker \"{}\")",
                    loss,
                    if by.is_empty() {
                        "nothing".to_owned()
                    } else {
                        join(by)
                    },
                    accepted.as_str()
                ),
                Status::NotApplied(loss) => loss.to_string(),
                Status::Refused(r) => format!(
                    "NOT enforceable: {}; profiles with it are refused{}",
                    r.loss,
                    r.accept_with.map_or(String::new(), |w| format!(
                        " unless they accept allow_weaker \"{}\"",
                        w.as_str()
                    ))
                ),
            };
            format!("{}: {how}", p.part.name())
        })
        .collect()
}

fn join(layers: &[enforcement::Layer]) -> String {
    layers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", then ")
}

fn every_part_plan() -> Option<Plan> {
    let source = Source {
        display: "<every-part>".into(),
        id: "<every-part>".into(),
        dir: None,
        text: EVERY_PART.into(),
    };
    let profile = crate::profile::resolve(&source, &Lookup::new(None)).ok()?;
    let ctx = CompileContext {
        expand: ExpandContext {
            cwd: "/".into(),
            home: None,
            tmpdir: "/tmp".into(),
        },
        parent_env: vec![],
        mode: Mode::Enforce,
        users: &NoUsers,
    };
    Plan::compile(&profile, &ctx).ok()
}

/// The reference profile names no user.
struct NoUsers;

impl UserResolver for NoUsers {
    fn resolve(&self, _: &str) -> Result<Option<UserIds>, nix::Error> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::BpfSupport;

    fn view(h: &HostFeatures) -> HostView {
        HostView::from_features(
            h,
            crate::enforcement::CgroupLayout::Hybrid {
                v1: vec!["memory".into(), "pids".into(), "cpu".into()],
            },
        )
    }

    fn host(lsm: Probe, abi: u32) -> HostFeatures {
        HostFeatures {
            kernel_release: "6.18.0-test".into(),
            landlock_abi: abi,
            bpf: BpfSupport {
                tracepoint: Probe::Available,
                cgroup_sock_addr: Probe::Available,
                cgroup_unix: Probe::Available,
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
        let h = host(Probe::Refused("load: EPERM".into()), 7);
        let out = render(&h, &view(&h), None, true);
        assert!(out.contains("landlock: ABI 7\n"), "{out}");
        assert!(out.contains("  [yes] ABI 7: "), "{out}");
        assert!(out.contains("bpf lsm: refused (load: EPERM)\n"), "{out}");
        assert!(out.contains("bpf tracepoint: loadable\n"), "{out}");
        assert!(out.contains("cgroups: hybrid"), "{out}");
        assert!(
            out.contains("the exec allowlist: Landlock ABI 7, then eBPF exec tracepoint\n"),
            "{out}"
        );
        assert!(out.contains("tracefs: was not mounted"), "{out}");
    }

    #[test]
    fn available_lsm_means_eperm_at_exec() {
        let h = host(Probe::Available, 6);
        let out = render(&h, &view(&h), Some(&PathBuf::from("/t")), true);
        assert!(
            out.contains(
                "the exec allowlist: BPF LSM, then Landlock ABI 6, then eBPF exec tracepoint"
            ),
            "{out}"
        );
        assert!(out.contains("  [no ] ABI 7: "), "{out}");
        assert!(out.contains("tracefs: mounted at /t"), "{out}");
    }

    #[test]
    fn no_landlock_is_said_plainly() {
        let h = host(Probe::Available, 0);
        let out = render(&h, &view(&h), None, false);
        assert!(out.contains("landlock: unavailable"), "{out}");
        assert!(out.contains("not running as root"), "{out}");
        assert!(
            out.contains("file rules: NOT enforceable: Landlock is not available"),
            "{out}"
        );
    }
}
