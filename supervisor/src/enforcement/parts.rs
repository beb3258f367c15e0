//! The typed answer: parts of a profile, the layers that enforce them, and what is lost where a
//! layer is missing. Displayed only at the edge (exec's error line, explain's text).

use std::fmt;

use crate::plan::Weakening;

/// A part of a profile, as one unit of enforcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// `filesystem.read/write/execute`.
    Files,
    /// The TCP ports of `network.connect`/`network.bind`.
    TcpPorts,
    /// `network.connect`/`network.bind` by address, UDP sends, `network.dns`.
    Network,
    /// `network.unix` socket paths.
    UnixPaths,
    /// Signals and abstract unix sockets to processes outside the sandbox.
    Scoping,
    /// `process.exec`.
    Exec,
    /// `syscalls.deny` and guard's baseline.
    Syscalls,
    Memory,
    Pids,
    Cpu,
    WallTime,
    CpuTime,
    OpenFiles,
    ConnectRate,
    ExecRate,
}

impl Part {
    /// The profile key a user changes to change this part (`None`: always on, no key).
    pub fn key(self) -> Option<&'static str> {
        Some(match self {
            Part::Files => "filesystem",
            Part::TcpPorts | Part::Network => "network.connect",
            Part::UnixPaths => "network.unix",
            Part::Scoping => return None,
            Part::Exec => "process.exec",
            Part::Syscalls => "syscalls.deny",
            Part::Memory => "limits.memory",
            Part::Pids => "limits.pids",
            Part::Cpu => "limits.cpu",
            Part::WallTime => "limits.wall_time",
            Part::CpuTime => "limits.cpu_time",
            Part::OpenFiles => "limits.open_files",
            Part::ConnectRate => "limits.connects_per_minute",
            Part::ExecRate => "limits.execs_per_minute",
        })
    }

    /// A few words naming the part.
    pub fn name(self) -> &'static str {
        match self {
            Part::Files => "file rules",
            Part::TcpPorts => "TCP port rules",
            Part::Network => "network rules by address, UDP and DNS",
            Part::UnixPaths => "unix socket paths",
            Part::Scoping => "signals and abstract unix sockets to outside the sandbox",
            Part::Exec => "the exec allowlist",
            Part::Syscalls => "the syscall deny list",
            Part::Memory => "the memory limit",
            Part::Pids => "the pids limit",
            Part::Cpu => "the cpu limit",
            Part::WallTime => "the wall-time limit",
            Part::CpuTime => "the cpu-time limit",
            Part::OpenFiles => "the open-files limit",
            Part::ConnectRate => "the connect rate",
            Part::ExecRate => "the exec rate",
        }
    }
}

/// A kernel mechanism guard enforces through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Landlock {
        abi: u32,
    },
    /// The read-only mount tree of the sandbox's mount namespace (EROFS outside write paths).
    MountNamespace,
    Seccomp,
    /// The eBPF cgroup sock_addr hooks (connect, sendmsg, bind).
    EbpfCgroupHooks,
    /// The eBPF cgroup unix socket hooks (connect and sendmsg to a path, Linux 6.7).
    EbpfUnixHooks,
    /// The eBPF `sched_process_exec` tracepoint (kills a forbidden exec before its first
    /// instruction).
    EbpfExecTracepoint,
    /// BPF LSM `bprm_check_security` (refuses a forbidden exec with EPERM).
    BpfLsm,
    CgroupV2,
    CgroupV1,
    Rlimit,
    /// guard's own supervisor process (timers, cgroup.kill).
    Supervisor,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Landlock { abi } => write!(f, "Landlock ABI {abi}"),
            Layer::MountNamespace => f.write_str("the read-only mount tree"),
            Layer::Seccomp => f.write_str("seccomp"),
            Layer::EbpfCgroupHooks => f.write_str("eBPF cgroup hooks"),
            Layer::EbpfUnixHooks => f.write_str("eBPF cgroup unix socket hooks"),
            Layer::EbpfExecTracepoint => f.write_str("eBPF exec tracepoint"),
            Layer::BpfLsm => f.write_str("BPF LSM"),
            Layer::CgroupV2 => f.write_str("cgroup v2"),
            Layer::CgroupV1 => f.write_str("cgroup v1"),
            Layer::Rlimit => f.write_str("rlimit"),
            Layer::Supervisor => f.write_str("the supervisor"),
        }
    }
}

/// What a missing kernel feature costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loss {
    /// The Landlock ABI is below what the part needs.
    Landlock { needs: u32, has: u32 },
    /// No Landlock at all.
    NoLandlock,
    /// guard's eBPF probes cannot be used (why).
    Probes(String),
    /// The kernel's unix socket hooks are not usable here (why).
    NoUnixPathHook(String),
    /// The cgroup backend lacks this controller.
    NoController(&'static str),
    /// `--mode audit` does not apply this layer (it cannot log instead of deny).
    AuditMode,
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::Landlock { needs, has } => write!(f, "Landlock ABI {has} < {needs}"),
            Loss::NoLandlock => f.write_str("Landlock is not available"),
            Loss::Probes(why) => write!(f, "guard's eBPF probes cannot be used ({why})"),
            Loss::NoUnixPathHook(why) => write!(f, "no unix socket path hook: {why}"),
            Loss::NoController(c) => write!(f, "no {c} cgroup controller"),
            Loss::AuditMode => f.write_str("not applied in audit mode"),
        }
    }
}

/// How one part is enforced here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Enforced by these layers, strongest first; `note` says what is weaker but still covered.
    Enforced { by: Vec<Layer>, note: Option<Loss> },
    /// Enforced only by `by` (maybe none), because of `loss`; the profile accepts it by name.
    Weaker {
        by: Vec<Layer>,
        loss: Loss,
        accepted: Weakening,
    },
    /// Not applied on purpose (audit mode).
    NotApplied(Loss),
    /// No layer enforces it and the profile does not accept that: exec refuses.
    Refused(Refusal),
}

/// A part that cannot be enforced here, and the `allow_weaker` entry that would accept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub part: Part,
    pub loss: Loss,
    /// `None`: nothing can accept it (guard never runs without it).
    pub accept_with: Option<Weakening>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.part.key() {
            Some(key) => write!(f, "{} ({key})", self.part.name())?,
            None => write!(f, "{}", self.part.name())?,
        }
        write!(f, " cannot be enforced: {}", self.loss)?;
        match self.accept_with {
            Some(w) => write!(f, " (accept with allow_weaker = [\"{}\"])", w.as_str()),
            None => Ok(()),
        }
    }
}

/// One part and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartEnforcement {
    pub part: Part,
    pub status: Status,
}

impl PartEnforcement {
    pub(super) fn enforced(part: Part, by: Vec<Layer>) -> Self {
        PartEnforcement {
            part,
            status: Status::Enforced { by, note: None },
        }
    }

    /// The layers that enforce the part here (empty when none does).
    pub fn layers(&self) -> &[Layer] {
        match &self.status {
            Status::Enforced { by, .. } | Status::Weaker { by, .. } => by,
            Status::NotApplied(_) | Status::Refused(_) => &[],
        }
    }
}
