//! The seccomp layer: a [`SeccompPlan`] compiled into a raw BPF program in the parent, and the
//! async-signal-safe [`install`] that loads it in the forked child.
//!
//! The split follows the design: libseccomp allocates and takes locks, which a child forked from
//! the multithreaded supervisor must not do, so all of libseccomp runs before the fork and the
//! child only hands finished bytes to the kernel.
//!
//! # What the filter does
//! - default action: allow; every syscall in the plan's deny list gets the plan's action
//!   (EPERM, kill the process, or log);
//! - the markers of [`crate::plan::seccomp_groups`] add argument-filtered rules:
//!   `ioctl(fd, TIOCSTI)`, `ioctl(fd, TIOCLINUX)`, and user-namespace creation through `clone`,
//!   `clone3` and `unshare`;
//! - the process-reach rules of `reach`: syscalls that act on another process by pid
//!   work only on the caller itself (pid 0);
//! - the socket allowlist of `sockets` (families, types, protocols, routing socket options);
//! - the always-on baseline keeps EPERM (or kill) whatever `syscalls.action` says; only the
//!   profile's own entries take a `log` action, and only audit mode logs the baseline;
//! - syscalls of any architecture but the native one (on x86_64: i386 through `int 0x80` and x32
//!   through the x32 syscall bit) kill the process, or are logged under the log action. The deny
//!   list is written in native syscall numbers, so a foreign-ABI syscall would slip past it; we
//!   kill rather than fail it with an errno because no tool guard confines is a 32-bit binary, and
//!   a native process issuing one is attempting exactly this bypass.
//!
//! # Minimum kernel version
//! The minimum kernel version required to use the kill-process and log actions is 4.14.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::RawFd;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::plan::seccomp::{SeccompAction, SeccompPlan};
use crate::plan::seccomp_groups::{
    self, MARKER_NO_INET, MARKER_NO_PATH_XATTR_READ, MARKER_NO_SETID_BITS, MARKER_NO_UNIX,
    MARKER_PROCESS_REACH, MARKER_SOCKETS, MARKER_TIOCLINUX, MARKER_TIOCSTI, MARKER_USERNS,
    UnknownGroup,
};

mod reach;
mod sockets;
mod xattr;

/// The kernel refuses longer classic BPF programs (`BPF_MAXINSNS`).
const MAX_INSTRUCTIONS: usize = 4096;

/// Size of one `struct sock_filter` in the exported program: u16 code, u8 jt, u8 jf, u32 k.
const INSTRUCTION_BYTES: usize = 8;

/// The kernel reads the `cmd` argument of `ioctl` as an `unsigned int`; a rule comparing all 64
/// bits would let `TIOCSTI | 1 << 32` through, so request numbers are compared under this mask.
const IOCTL_CMD_MASK: u64 = 0xffff_ffff;

/// A seccomp filter ready to load: classic BPF instructions for the native architecture.
#[derive(Clone)]
pub struct CompiledSeccomp {
    program: Vec<libc::sock_filter>,
    /// Denials go to a user-notification listener (see [`Recording::Supervisor`]): the filter
    /// must be installed with `SECCOMP_FILTER_FLAG_NEW_LISTENER`.
    listener: bool,
}

impl CompiledSeccomp {
    /// The BPF instructions, in the order the kernel runs them.
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.program
    }

    /// Whether [`install`] returns a listener the supervisor must answer.
    pub fn has_listener(&self) -> bool {
        self.listener
    }
}

/// Who sees a denied syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// The filter answers by itself (EPERM, kill or the kernel's log): nothing is recorded.
    Kernel,
    /// The filter's deny and log rules notify guard's supervisor (`SECCOMP_RET_USER_NOTIF`),
    /// which answers EPERM (or, for log, lets the call go on) and writes an audit record, so a
    /// seccomp denial is evidence like any other. Kill stays the kernel's: the process dies.
    Supervisor,
}

impl fmt::Debug for CompiledSeccomp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledSeccomp")
            .field("instructions", &self.program.len())
            .finish()
    }
}

/// Why a seccomp plan could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("expanding syscall groups")]
    ExpandGroups(#[source] UnknownGroup),
    #[error("creating the libseccomp filter")]
    CreateFilter(#[source] libseccomp::error::SeccompError),
    #[error("setting the action for syscalls of non-native architectures")]
    SetBadArchAction(#[source] libseccomp::error::SeccompError),
    #[error("unknown syscall `{name}`")]
    ResolveSyscall {
        name: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("syscall `{name}` does not exist on this architecture")]
    SyscallNotOnArch { name: String },
    #[error("adding the seccomp rule for `{syscall}`")]
    AddRule {
        syscall: &'static str,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("adding the seccomp rule for `{name}`")]
    AddDenyRule {
        name: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("creating a memfd for the exported BPF program")]
    CreateMemfd(#[source] nix::Error),
    #[error("exporting the BPF program")]
    ExportBpf(#[source] libseccomp::error::SeccompError),
    #[error("reading back the exported BPF program")]
    ReadBpf(#[source] std::io::Error),
    #[error("the exported BPF program has {bytes} bytes, not a whole number of instructions")]
    TruncatedProgram { bytes: usize },
    #[error("the BPF program has {instructions} instructions; the kernel allows {max}", max = MAX_INSTRUCTIONS)]
    ProgramTooLong { instructions: usize },
}

/// Compiles a plan into a BPF program for the native architecture. Pure apart from libseccomp's
/// allocations and one memfd; nothing is loaded.
///
/// Groups still in `plan.deny` are expanded (expansion is idempotent). A name that libseccomp
/// does not know, or that this architecture lacks, is an error unless a group lists it: groups
/// span architectures, profiles name what they mean.
///
/// # Errors
/// See [`SeccompError`]; each variant names the step that failed.
pub fn compile(plan: &SeccompPlan) -> Result<CompiledSeccomp, SeccompError> {
    compile_for(plan, Recording::Kernel, false)
}

/// The syscalls that send a signal to another process or thread: parked for guard when Landlock
/// cannot scope signals (ABI < 6), which lets through only those aimed inside the sandbox.
pub const SIGNAL_SYSCALLS: [&str; 6] = [
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_send_signal",
];

/// [`compile`], with denials seen by `recording`.
pub fn compile_for(
    plan: &SeccompPlan,
    recording: Recording,
    scope_signals: bool,
) -> Result<CompiledSeccomp, SeccompError> {
    let deny = seccomp_groups::expand(&plan.deny).map_err(SeccompError::ExpandGroups)?;
    let baseline = seccomp_groups::expand(&plan.baseline).map_err(SeccompError::ExpandGroups)?;
    let notify = recording == Recording::Supervisor;
    let scmp = |action: SeccompAction| match action {
        SeccompAction::Errno | SeccompAction::Log if notify => ScmpAction::Notify,
        SeccompAction::Errno => ScmpAction::Errno(libc::EPERM),
        SeccompAction::Kill => ScmpAction::KillProcess,
        SeccompAction::Log => ScmpAction::Log,
    };
    let baseline_action = plan.baseline_action();
    let profile_action = scmp(plan.profile_action());
    // The always-on rules never take the profile's action when it is weaker (see
    // `SeccompPlan::baseline_action`).
    let action_for = |name: &str| {
        if baseline.iter().any(|b| b == name) {
            scmp(baseline_action)
        } else {
            profile_action
        }
    };
    // Under the log action of audit mode nothing is denied, so a foreign-ABI syscall bypasses
    // nothing: log it like the rest instead of killing a process that audit mode promised to let
    // run. A profile's own `log` does not weaken this: it belongs to the baseline.
    let bad_arch = match baseline_action {
        SeccompAction::Log => ScmpAction::Log,
        SeccompAction::Errno | SeccompAction::Kill => ScmpAction::KillProcess,
    };

    // `new_filter` adds the native architecture only; every other one gets `bad_arch`.
    let mut filter =
        ScmpFilterContext::new(ScmpAction::Allow).map_err(SeccompError::CreateFilter)?;
    filter
        .set_act_badarch(bad_arch)
        .map_err(SeccompError::SetBadArchAction)?;

    let mut unconditional: Vec<&str> = Vec::new();
    let mut markers: Vec<&str> = Vec::new();
    for name in &deny {
        if seccomp_groups::MARKERS.contains(&name.as_str()) {
            markers.push(name);
            continue;
        }
        let Some(syscall) = resolve(name)? else {
            continue;
        };
        filter
            .add_rule(action_for(name), syscall)
            .map_err(|source| SeccompError::AddDenyRule {
                name: name.clone(),
                source,
            })?;
        unconditional.push(name);
    }

    // A syscall denied outright needs no argument rule; libseccomp would also reject a second
    // rule with a different action for it.
    let covered = |syscall: &str| unconditional.contains(&syscall);
    for marker in markers {
        let action = action_for(marker);
        match marker {
            MARKER_TIOCSTI if !covered("ioctl") => {
                add_ioctl_rule(&mut filter, action, libc::TIOCSTI)?;
            }
            MARKER_TIOCLINUX if !covered("ioctl") => {
                add_ioctl_rule(&mut filter, action, libc::TIOCLINUX)?;
            }
            MARKER_USERNS => add_userns_rules(&mut filter, action, &covered)?,
            MARKER_NO_INET if !covered("socket") => {
                // Without network rules no resolver runs either: no netlink socket.
                add_socket_family_rules(
                    &mut filter,
                    action,
                    &[libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK],
                )?;
            }
            MARKER_NO_UNIX if !covered("socket") => {
                add_socket_family_rules(&mut filter, action, &[libc::AF_UNIX])?;
            }
            MARKER_NO_SETID_BITS => add_no_setid_rules(&mut filter, action, &covered)?,
            MARKER_NO_PATH_XATTR_READ => xattr::add_path_xattr_read_rules(
                &mut filter,
                matches!(baseline_action, SeccompAction::Log),
                &covered,
            )?,
            MARKER_SOCKETS => sockets::add_socket_allowlist_rules(&mut filter, action, &covered)?,
            MARKER_PROCESS_REACH => {
                reach::add_process_reach_rules(&mut filter, action, &covered)?;
            }
            _ => {}
        }
    }

    // Audit mode with guard answering: the file syscalls are parked too, so the accesses the
    // (unapplied) Landlock rules would refuse can be recorded (see `file_observer`).
    // In enforce mode only the calls that would write are parked: a write outside the write
    // paths is refused by the read-only file tree (EROFS) before Landlock is asked, and the
    // kernel reports EROFS to no one, so guard records it from here (see `file_observer`).
    if notify {
        for name in super::file_observer::watched() {
            if covered(name) {
                continue;
            }
            let Some(syscall) = resolve(name)? else {
                continue;
            };
            let write_flags = super::file_observer::open_flags_arg(name).filter(|_| !plan.audit);
            let added = match write_flags {
                // open/openat: only with a flag that writes, each flag its own rule (ORed).
                Some(arg) => [libc::O_WRONLY, libc::O_RDWR, libc::O_CREAT, libc::O_TRUNC]
                    .into_iter()
                    .try_for_each(|flag| {
                        let flag = u64::try_from(flag).unwrap_or(0);
                        filter
                            .add_rule_conditional(
                                ScmpAction::Notify,
                                syscall,
                                &[ScmpArgCompare::new(
                                    arg,
                                    ScmpCompareOp::MaskedEqual(flag),
                                    flag,
                                )],
                            )
                            .map(|_| ())
                    }),
                None if !plan.audit && super::file_observer::reads_only(name) => Ok(()),
                None => filter.add_rule(ScmpAction::Notify, syscall).map(|_| ()),
            };
            added.map_err(|source| SeccompError::AddRule {
                syscall: name,
                source,
            })?;
        }
    }

    // Below Landlock ABI 6 nothing in the kernel keeps signals inside the sandbox: guard
    // decides each one from the target's cgroup (see `syscall_denials`).
    if notify && scope_signals && !plan.audit {
        for name in SIGNAL_SYSCALLS {
            if covered(name) {
                continue;
            }
            let Some(syscall) = resolve(name)? else {
                continue;
            };
            filter
                .add_rule(ScmpAction::Notify, syscall)
                .map_err(|source| SeccompError::AddRule {
                    syscall: name,
                    source,
                })?;
        }
    }

    let program = export(&filter)?;
    if program.len() > MAX_INSTRUCTIONS {
        return Err(SeccompError::ProgramTooLong {
            instructions: program.len(),
        });
    }
    Ok(CompiledSeccomp {
        program,
        listener: notify,
    })
}

/// Resolves a syscall name for the native architecture; `None` for a group member this
/// architecture lacks.
fn resolve(name: &str) -> Result<Option<ScmpSyscall>, SeccompError> {
    let resolved = ScmpSyscall::from_name_by_arch(name, ScmpArch::Native);
    let syscall = match resolved {
        Ok(syscall) => syscall,
        // libseccomp only knows names it has tables for; a group may list newer ones.
        Err(_) if seccomp_groups::is_group_member(name) => return Ok(None),
        Err(source) => {
            return Err(SeccompError::ResolveSyscall {
                name: name.to_owned(),
                source,
            });
        }
    };
    // Names libseccomp knows from other architectures resolve to negative pseudo-numbers here,
    // which a rule would silently never match.
    if syscall.as_raw_syscall() < 0 {
        if seccomp_groups::is_group_member(name) {
            return Ok(None);
        }
        return Err(SeccompError::SyscallNotOnArch {
            name: name.to_owned(),
        });
    }
    Ok(Some(syscall))
}

pub(crate) fn native(name: &'static str) -> Result<ScmpSyscall, SeccompError> {
    ScmpSyscall::from_name_by_arch(name, ScmpArch::Native).map_err(|source| {
        SeccompError::ResolveSyscall {
            name: name.to_owned(),
            source,
        }
    })
}

fn add_ioctl_rule(
    filter: &mut ScmpFilterContext,
    action: ScmpAction,
    request: u64,
) -> Result<(), SeccompError> {
    let cmd = ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(IOCTL_CMD_MASK), request);
    filter
        .add_rule_conditional(action, native("ioctl")?, &[cmd])
        .map_err(|source| SeccompError::AddRule {
            syscall: "ioctl",
            source,
        })?;
    Ok(())
}

/// `socket(domain, ...)` with one of `domains` gets the plan's action. The domain is a plain
/// integer argument, so seccomp sees exactly what the kernel will use.
fn add_socket_family_rules(
    filter: &mut ScmpFilterContext,
    action: ScmpAction,
    domains: &[libc::c_int],
) -> Result<(), SeccompError> {
    for &domain in domains {
        let family = ScmpArgCompare::new(0, ScmpCompareOp::Equal, domain.unsigned_abs().into());
        filter
            .add_rule_conditional(action, native("socket")?, &[family])
            .map_err(|source| SeccompError::AddRule {
                syscall: "socket",
                source,
            })?;
    }
    Ok(())
}

/// Setuid/setgid bits: the mode is a register argument of every chmod variant (argument 1 of
/// `chmod`/`fchmod`, 2 of `fchmodat`/`fchmodat2`), so each bit gets a masked-equality rule.
fn add_no_setid_rules(
    filter: &mut ScmpFilterContext,
    action: ScmpAction,
    covered: &dyn Fn(&str) -> bool,
) -> Result<(), SeccompError> {
    for (syscall, mode_arg) in [
        ("chmod", 1),
        ("fchmod", 1),
        ("fchmodat", 2),
        ("fchmodat2", 2),
    ] {
        if covered(syscall) {
            continue;
        }
        // fchmodat2 is recent (6.6); libseccomp builds that predate it cannot name it.
        let Ok(number) = ScmpSyscall::from_name_by_arch(syscall, ScmpArch::Native) else {
            continue;
        };
        if number.as_raw_syscall() < 0 {
            continue;
        }
        for bit in [libc::S_ISUID, libc::S_ISGID] {
            let bit = u64::from(bit);
            let set = ScmpArgCompare::new(mode_arg, ScmpCompareOp::MaskedEqual(bit), bit);
            filter
                .add_rule_conditional(action, number, &[set])
                .map_err(|source| SeccompError::AddRule { syscall, source })?;
        }
    }
    Ok(())
}

/// User namespaces: `clone` and `unshare` carry their flags in a register, so the rule checks the
/// CLONE_NEWUSER bit. `clone3` passes them in a `struct clone_args` in memory, which seccomp
/// cannot read (the pointer could also be changed by another thread after the check), so it fails
/// with ENOSYS: glibc, musl and Go treat that as "kernel too old" and fall back to `clone`, where
/// the flag is checked. Chromium's and Codex's sandboxes, and Docker's default profile, do the
/// same. The flags are the first argument of `clone` on every architecture guard supports
/// (x86_64, aarch64); s390 would differ.
fn add_userns_rules(
    filter: &mut ScmpFilterContext,
    action: ScmpAction,
    covered: &dyn Fn(&str) -> bool,
) -> Result<(), SeccompError> {
    let newuser = u64::from(libc::CLONE_NEWUSER.unsigned_abs());
    let flag = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(newuser), newuser);
    for syscall in ["clone", "unshare"] {
        if covered(syscall) {
            continue;
        }
        filter
            .add_rule_conditional(action, native(syscall)?, &[flag])
            .map_err(|source| SeccompError::AddRule { syscall, source })?;
    }
    // A profile that denies clone3 outright keeps its own action.
    if !covered("clone3") {
        filter
            .add_rule(ScmpAction::Errno(libc::ENOSYS), native("clone3")?)
            .map_err(|source| SeccompError::AddRule {
                syscall: "clone3",
                source,
            })?;
    }
    Ok(())
}

/// Exports the filter through a memfd (libseccomp 2.5 has no in-memory export) and decodes the
/// bytes into instructions.
fn export(filter: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let fd =
        memfd_create(c"guard-seccomp", MFdFlags::MFD_CLOEXEC).map_err(SeccompError::CreateMemfd)?;
    let mut file = std::fs::File::from(fd);
    filter.export_bpf(&file).map_err(SeccompError::ExportBpf)?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(SeccompError::ReadBpf)?;
    decode(&bytes)
}

/// Splits exported bytes into `sock_filter`s; libseccomp writes them in native byte order.
fn decode(bytes: &[u8]) -> Result<Vec<libc::sock_filter>, SeccompError> {
    if !bytes.len().is_multiple_of(INSTRUCTION_BYTES) {
        return Err(SeccompError::TruncatedProgram { bytes: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(INSTRUCTION_BYTES)
        .map(|insn| libc::sock_filter {
            code: u16::from_ne_bytes([insn[0], insn[1]]),
            jt: insn[2],
            jf: insn[3],
            k: u32::from_ne_bytes([insn[4], insn[5], insn[6], insn[7]]),
        })
        .collect())
}

/// Loads a compiled filter into the calling thread. Only raw syscalls, no allocation, no locks:
/// safe in a child forked from a multithreaded parent, before `execve`.
///
/// Sets no_new_privs first, which the kernel requires for an unprivileged filter load; the child
/// has normally set it already, and setting it again is a no-op. Without TSYNC the filter binds
/// the calling thread only, which is the whole process in a freshly forked child.
///
/// # Errors
/// The errno of `prctl` or `seccomp`: EINVAL for a malformed program or a kernel without seccomp
/// filters, EACCES when no_new_privs could not be set and the caller lacks CAP_SYS_ADMIN.
///
/// # Minimum kernel version
/// The minimum kernel version required to use this function is 3.17 (the `seccomp` syscall);
/// 5.0 for a filter with a listener.
pub fn install(compiled: &CompiledSeccomp) -> Result<Option<RawFd>, nix::Error> {
    // SAFETY: prctl with integer arguments only.
    Errno::result(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    let len = u16::try_from(compiled.program.len()).map_err(|_| Errno::EINVAL)?;
    let prog = libc::sock_fprog {
        len,
        // The kernel copies the program and never writes through this pointer.
        filter: compiled.program.as_ptr().cast_mut(),
    };
    let flags = if compiled.listener {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    // SAFETY: `prog` points at `len` valid instructions that outlive the call; the kernel copies
    // them before returning.
    let ret = Errno::result(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &raw const prog,
        )
    })?;
    // With NEW_LISTENER the return value is the listener fd (close-on-exec).
    Ok(compiled
        .listener
        .then(|| RawFd::try_from(ret).unwrap_or(-1)))
}

#[cfg(test)]
mod tests;
