//! What is enforced, by which layer, on this host: one pure function from a compiled [`Plan`]
//! and a [`HostView`] to an [`Enforcement`], a typed answer for every part of the profile.
//!
//! It is the only place that knows which kernel feature a part needs (Landlock ABI levels, the
//! eBPF hooks, BPF LSM, cgroup controllers) and what the profile's `allow_weaker` accepts.
//! `guard exec` refuses from it ([`Enforcement::refusals`]), `guard explain` renders it and
//! `guard doctor` summarizes it, so the three cannot disagree. Exec fills the [`HostView`] from
//! what it actually set up (the probes it attached, the cgroup backend it uses); explain and
//! doctor fill it from [`crate::host::HostFeatures::detect`].

mod host_view;
mod parts;

#[cfg(test)]
mod tests;

pub use host_view::{CgroupLayout, HostView};
pub use parts::{Layer, Loss, Part, PartEnforcement, Refusal, Status};

use crate::plan::{Mode, Plan, ViolationAction, Weakening};

/// The Landlock ABI levels that parts of a plan need. Everything that asks "is this ABI enough"
/// reads them from here.
pub mod landlock_abi {
    /// `LANDLOCK_ACCESS_FS_TRUNCATE` (Linux 6.2).
    pub const TRUNCATE: u32 = 3;
    /// TCP bind/connect rules (Linux 6.7).
    pub const NET: u32 = 4;
    /// Scoping of abstract unix sockets and signals (Linux 6.12).
    pub const SCOPE: u32 = 6;
    /// Denials reported as audit records (Linux 6.15).
    pub const AUDIT: u32 = 7;
}

/// Whether guard can see a part's denials and turn them into audit records on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Every denial becomes a record (from this layer's reports).
    Recorded(Layer),
    /// The layer denies without telling anyone: no record (why).
    NotObservable(&'static str),
}

/// How the denials of `part` reach the audit log on `host`.
pub fn evidence(part: Part, host: &HostView) -> Evidence {
    let landlock_reports = host.landlock_abi >= landlock_abi::AUDIT;
    match part {
        Part::Files | Part::Scoping if landlock_reports => Evidence::Recorded(Layer::Landlock {
            abi: host.landlock_abi,
        }),
        Part::Files | Part::Scoping => {
            Evidence::NotObservable("Landlock below ABI 7 writes no audit records")
        }
        Part::TcpPorts if host.probes.is_ok() || landlock_reports => {
            Evidence::Recorded(Layer::EbpfCgroupHooks)
        }
        Part::TcpPorts => Evidence::NotObservable("Landlock below ABI 7 writes no audit records"),
        Part::Syscalls => Evidence::Recorded(Layer::Seccomp),
        Part::Network | Part::ConnectRate => Evidence::Recorded(Layer::EbpfCgroupHooks),
        Part::Exec | Part::ExecRate => Evidence::Recorded(Layer::EbpfExecTracepoint),
        Part::UnixPaths => Evidence::NotObservable("no probe sees unix connects by path"),
        // Limit hits are read from the cgroup's counters and the exit by the supervisor.
        Part::Memory
        | Part::Pids
        | Part::Cpu
        | Part::WallTime
        | Part::CpuTime
        | Part::OpenFiles => Evidence::Recorded(Layer::Supervisor),
    }
}

/// The enforcement of every part of one plan on one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Enforcement {
    pub parts: Vec<PartEnforcement>,
}

impl Enforcement {
    /// The parts no layer enforces here that the profile does not accept: `guard exec` refuses
    /// to start when this is not empty.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.parts
            .iter()
            .filter_map(|p| match &p.status {
                Status::Refused(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// The enforcement of `part`, when the plan has it.
    pub fn part(&self, part: Part) -> Option<&PartEnforcement> {
        self.parts.iter().find(|p| p.part == part)
    }
}

/// Decides, for each part of `plan`, which layers enforce it on `host`.
pub fn assess(plan: &Plan, host: &HostView) -> Enforcement {
    let mut parts = Vec::new();
    parts.push(files(plan, host));
    if let Some(p) = tcp_ports(plan, host) {
        parts.push(p);
    }
    parts.push(network(plan, host));
    if !plan.ebpf.unix.is_empty() {
        parts.push(unix_paths(plan, host));
    }
    parts.push(scoping(plan, host));
    parts.push(exec(plan, host));
    parts.push(PartEnforcement::enforced(
        Part::Syscalls,
        vec![Layer::Seccomp],
    ));
    for (part, wanted) in [
        (Part::Memory, plan.cgroup.memory_bytes.is_some()),
        (Part::Pids, plan.cgroup.pids.is_some()),
        (Part::Cpu, plan.cgroup.cpu.is_some()),
    ] {
        if wanted {
            parts.push(cgroup_limit(part, host));
        }
    }
    if plan.time.wall_time.is_some() {
        parts.push(PartEnforcement::enforced(
            Part::WallTime,
            vec![Layer::Supervisor],
        ));
    }
    if plan.time.cpu_time.is_some() {
        parts.push(PartEnforcement::enforced(
            Part::CpuTime,
            vec![Layer::Supervisor, Layer::Rlimit],
        ));
    }
    if plan.open_files.is_some() {
        parts.push(PartEnforcement::enforced(
            Part::OpenFiles,
            vec![Layer::Rlimit],
        ));
    }
    if plan.ebpf.connects_per_minute.is_some() {
        parts.push(ebpf_part(
            plan,
            host,
            Part::ConnectRate,
            Layer::EbpfCgroupHooks,
            Weakening::EbpfNetwork,
        ));
    }
    if plan.ebpf.execs_per_minute.is_some() {
        parts.push(ebpf_part(
            plan,
            host,
            Part::ExecRate,
            Layer::EbpfExecTracepoint,
            Weakening::EbpfExec,
        ));
    }
    Enforcement { parts }
}

/// A part whose kernel feature is missing: weaker when the profile accepts `weakening`, else a
/// refusal.
fn missing(
    part: Part,
    by: Vec<Layer>,
    loss: Loss,
    weakening: Option<Weakening>,
    plan: &Plan,
) -> PartEnforcement {
    let status = match weakening {
        Some(w) if plan.allows_weaker(w) => Status::Weaker {
            by,
            loss,
            accepted: w,
        },
        _ => Status::Refused(Refusal {
            part,
            loss,
            accept_with: weakening,
        }),
    };
    PartEnforcement { part, status }
}

fn files(plan: &Plan, host: &HostView) -> PartEnforcement {
    if plan.mode == Mode::Audit {
        return PartEnforcement {
            part: Part::Files,
            status: Status::NotApplied(Loss::AuditMode),
        };
    }
    let abi = host.landlock_abi;
    if abi == 0 {
        // Nothing else confines file access: never acceptable.
        return missing(Part::Files, vec![], Loss::NoLandlock, None, plan);
    }
    let by = vec![Layer::Landlock { abi }, Layer::MountNamespace];
    if abi < landlock_abi::TRUNCATE {
        // The read-only mount tree still refuses truncate() outside the write paths (EROFS).
        return PartEnforcement {
            part: Part::Files,
            status: Status::Enforced {
                by,
                note: Some(Loss::Landlock {
                    needs: landlock_abi::TRUNCATE,
                    has: abi,
                }),
            },
        };
    }
    PartEnforcement::enforced(Part::Files, by)
}

/// TCP ports: the eBPF hooks decide them whenever they are attached; Landlock's port rules add
/// a second layer where the ABI has them. `None` when the plan restricts no port.
fn tcp_ports(plan: &Plan, host: &HostView) -> Option<PartEnforcement> {
    use crate::plan::landlock::PortRange;
    let landlock_rules = PortRange::restricts(&plan.landlock.tcp_connect)
        || PortRange::restricts(&plan.landlock.tcp_bind);
    let mut by = Vec::new();
    if host.probes.is_ok() {
        by.push(Layer::EbpfCgroupHooks);
    }
    let abi = host.landlock_abi;
    let landlock_applies = plan.mode == Mode::Enforce && landlock_rules;
    if landlock_applies && abi >= landlock_abi::NET {
        by.push(Layer::Landlock { abi });
    }
    if !landlock_rules {
        // on_violation.network kill or audit: ports are the hooks' alone, part of `network`.
        return None;
    }
    if by.is_empty() {
        let loss = match &host.probes {
            Err(why) => Loss::Probes(why.clone()),
            Ok(()) => Loss::Landlock {
                needs: landlock_abi::NET,
                has: abi,
            },
        };
        return Some(missing(
            Part::TcpPorts,
            by,
            loss,
            Some(Weakening::EbpfNetwork),
            plan,
        ));
    }
    Some(PartEnforcement::enforced(Part::TcpPorts, by))
}

/// Network rules by address, UDP, DNS: only the eBPF hooks see them.
fn network(plan: &Plan, host: &HostView) -> PartEnforcement {
    match &host.probes {
        Ok(()) => PartEnforcement::enforced(Part::Network, vec![Layer::EbpfCgroupHooks]),
        Err(why) => {
            // Kill and audit exist only in the hooks (compile lifts Landlock's ports and the
            // seccomp socket ban for them), so without the hooks nothing would be left.
            let acceptable = plan.on_violation.network == ViolationAction::Deny;
            missing(
                Part::Network,
                vec![Layer::Seccomp],
                Loss::Probes(why.clone()),
                acceptable.then_some(Weakening::EbpfNetwork),
                plan,
            )
        }
    }
}

fn unix_paths(plan: &Plan, host: &HostView) -> PartEnforcement {
    let why = match (&host.probes, &host.unix_hooks) {
        (Ok(()), Ok(())) => {
            return PartEnforcement::enforced(Part::UnixPaths, vec![Layer::EbpfUnixHooks]);
        }
        (Err(why), _) | (_, Err(why)) => why.clone(),
    };
    missing(
        Part::UnixPaths,
        vec![],
        Loss::NoUnixPathHook(why),
        Some(Weakening::EbpfUnix),
        plan,
    )
}

fn scoping(plan: &Plan, host: &HostView) -> PartEnforcement {
    let abi = host.landlock_abi;
    if plan.mode == Mode::Audit {
        return PartEnforcement {
            part: Part::Scoping,
            status: Status::NotApplied(Loss::AuditMode),
        };
    }
    if abi >= landlock_abi::SCOPE {
        return PartEnforcement::enforced(Part::Scoping, vec![Layer::Landlock { abi }]);
    }
    if plan.ebpf.unix.is_empty() {
        // Below ABI 6: guard decides each signal from its target's cgroup (parked by seccomp),
        // and without unix socket paths no AF_UNIX socket can be created at all, abstract or not.
        return PartEnforcement {
            part: Part::Scoping,
            status: Status::Enforced {
                by: vec![Layer::Seccomp, Layer::Supervisor],
                note: Some(Loss::Landlock {
                    needs: landlock_abi::SCOPE,
                    has: abi,
                }),
            },
        };
    }
    missing(
        Part::Scoping,
        vec![],
        Loss::Landlock {
            needs: landlock_abi::SCOPE,
            has: abi,
        },
        Some(Weakening::LandlockScope),
        plan,
    )
}

fn exec(plan: &Plan, host: &HostView) -> PartEnforcement {
    let mut by = Vec::new();
    if plan.mode == Mode::Enforce && host.landlock_abi > 0 {
        by.push(Layer::Landlock {
            abi: host.landlock_abi,
        });
    }
    match &host.probes {
        Ok(()) => {
            if host.bpf_lsm {
                by.insert(0, Layer::BpfLsm);
            }
            by.push(Layer::EbpfExecTracepoint);
            PartEnforcement::enforced(Part::Exec, by)
        }
        Err(why) => {
            let acceptable = plan.on_violation.exec == ViolationAction::Deny;
            missing(
                Part::Exec,
                by,
                Loss::Probes(why.clone()),
                acceptable.then_some(Weakening::EbpfExec),
                plan,
            )
        }
    }
}

fn cgroup_limit(part: Part, host: &HostView) -> PartEnforcement {
    let controller = match part {
        Part::Memory => "memory",
        Part::Pids => "pids",
        _ => "cpu",
    };
    match host.cgroup.layer_for(controller) {
        Some(layer) => PartEnforcement::enforced(part, vec![layer]),
        None => PartEnforcement {
            part,
            status: Status::Refused(Refusal {
                part,
                loss: Loss::NoController(controller),
                accept_with: None,
            }),
        },
    }
}

/// Rates: counters in the eBPF probes only.
fn ebpf_part(
    plan: &Plan,
    host: &HostView,
    part: Part,
    layer: Layer,
    weakening: Weakening,
) -> PartEnforcement {
    match &host.probes {
        Ok(()) => PartEnforcement::enforced(part, vec![layer]),
        Err(why) => missing(
            part,
            vec![],
            Loss::Probes(why.clone()),
            Some(weakening),
            plan,
        ),
    }
}
