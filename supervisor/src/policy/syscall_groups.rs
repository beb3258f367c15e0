//! Named syscall groups for `syscalls.deny` (systemd-style `@mount`, `@privileged`, ...) and the
//! markers for the argument-filtered rules guard adds on its own.
//!
//! The tables are written for the syscall names libseccomp resolves; a group may name a syscall
//! that this architecture lacks (the groups describe a kind of operation, like systemd's), and the
//! sandbox layer skips such members. A syscall the profile names on its own must exist here.
//!
//! Groups deliberately leave out syscalls that ordinary tools need in unprivileged use (`chown`,
//! `setgid` of a non-root process to its own group, ...): a denied group should only break what a
//! confined tool has no business doing.

use std::collections::BTreeSet;

/// Marker: deny `ioctl(fd, TIOCSTI, ...)`, which pushes bytes into a terminal's input queue and
/// so lets a confined tool type commands into the shell that started guard.
pub const MARKER_TIOCSTI: &str = "ioctl:TIOCSTI";

/// Marker: deny `ioctl(fd, TIOCLINUX, ...)`, whose subcommands paste the console selection into
/// the input queue (the same escape as TIOCSTI on a virtual console).
pub const MARKER_TIOCLINUX: &str = "ioctl:TIOCLINUX";

/// Marker: deny creating user namespaces: `clone(CLONE_NEWUSER)` and `unshare(CLONE_NEWUSER)` get
/// the plan's action, and `clone3` fails with ENOSYS (its flags live in memory, which seccomp
/// cannot inspect; libc falls back to `clone` on ENOSYS, where the flags are checked). A user
/// namespace hands an unprivileged process a full capability set over new namespaces, the usual
/// first step of kernel exploits.
pub const MARKER_USERNS: &str = "clone:CLONE_NEWUSER";

/// Marker: deny `chmod`, `fchmod`, `fchmodat` and `fchmodat2` when the new mode has the setuid or
/// setgid bit. A tool that runs as uid 0 without capabilities still owns every root-owned file,
/// and Landlock does not cover mode changes: without this rule it could make any root-owned
/// binary setuid-root for another user to run. No tool guard confines has reason to set them.
pub const MARKER_NO_SETID_BITS: &str = "chmod:S_ISUID|S_ISGID";

/// The markers guard always adds to a plan's deny list, whatever the profile says. The plan
/// compiler appends these to the profile's `syscalls.deny` before calling [`expand`]; the sandbox
/// layer turns each into its argument-filtered rules.
pub const BASELINE_MARKERS: &[&str] = &[
    MARKER_TIOCSTI,
    MARKER_TIOCLINUX,
    MARKER_USERNS,
    MARKER_NO_SETID_BITS,
    MARKER_PROCESS_REACH,
    MARKER_SOCKETS,
    MARKER_NO_PATH_XATTR_READ,
];

/// Marker: path-based xattr reads (`getxattr`, `listxattr`, their `l` and `at` forms) fail with
/// ENOTSUP; Landlock has no right for them. See the sandbox layer's `xattr` module.
pub const MARKER_NO_PATH_XATTR_READ: &str = "getxattr:path";

/// Marker: the socket allowlist (only the families, types and protocols guard's hooks police;
/// no `setsockopt` that changes where a packet goes). See the sandbox layer's `sockets` module.
pub const MARKER_SOCKETS: &str = "socket:allowlist";

/// Marker: syscalls that act on another process by pid (`prlimit64`, `sched_set*`,
/// `setpriority`, `ioprio_set`, `migrate_pages`, `move_pages`, ...) work only on the caller
/// itself; `kcmp`, `process_madvise` and `process_mrelease` are refused outright. See the
/// sandbox layer's `seccomp_reach` module for the per-syscall table.
pub const MARKER_PROCESS_REACH: &str = "pid:other-process";

/// Marker: deny `socket(AF_INET, ...)`, `socket(AF_INET6, ...)` and `socket(AF_NETLINK, ...)`. The plan compiler adds it to
/// profiles that allow no network at all (`network.connect`, `bind` empty and `dns = false`):
/// then no IP socket may exist, which closes TCP, UDP and raw IP in both families in one rule,
/// independent of the eBPF hooks.
pub const MARKER_NO_INET: &str = "socket:AF_INET";

/// Marker: deny `socket(AF_UNIX, ...)` (`socketpair` stays allowed: it reaches nobody). The plan
/// compiler adds it when `network.unix` is empty: until the eBPF `connect_unix` hook is attached,
/// nothing else stops a tool from connecting to a pathname socket such as a container runtime's
/// or the init system's, which Landlock does not check.
pub const MARKER_NO_UNIX: &str = "socket:AF_UNIX";

/// Every marker the sandbox layer understands.
pub const MARKERS: &[&str] = &[
    MARKER_TIOCSTI,
    MARKER_TIOCLINUX,
    MARKER_USERNS,
    MARKER_NO_SETID_BITS,
    MARKER_PROCESS_REACH,
    MARKER_SOCKETS,
    MARKER_NO_PATH_XATTR_READ,
    MARKER_NO_INET,
    MARKER_NO_UNIX,
];

/// Setting the system clocks.
const CLOCK: &[&str] = &[
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_settime",
    "clock_settime64",
    "settimeofday",
    "stime",
];

/// Emulating other CPUs or execution modes: LDT changes, vm86 mode, endianness switches.
const CPU_EMULATION: &[&str] = &[
    "modify_ldt",
    "subpage_prot",
    "switch_endian",
    "vm86",
    "vm86old",
];

/// Inspecting or changing other processes' memory and execution: tracing, performance counters,
/// cross-process memory access and stealing file descriptors.
const DEBUG: &[&str] = &[
    "lookup_dcookie",
    "perf_event_open",
    "pidfd_getfd",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "rtas",
    "s390_runtime_instr",
    "sys_debug_setcontext",
];

/// The kernel key retention service, shared beyond the sandbox through session and user keyrings.
const KEYRING: &[&str] = &["add_key", "keyctl", "request_key"];

/// Pinning memory in RAM, which bypasses the memory cgroup's reclaim.
const MEMLOCK: &[&str] = &["mlock", "mlock2", "mlockall", "munlock", "munlockall"];

/// Loading and unloading kernel modules.
const MODULE: &[&str] = &[
    "create_module",
    "delete_module",
    "finit_module",
    "init_module",
];

/// Changing the mount table or the root directory, with the old and the new mount API.
const MOUNT: &[&str] = &[
    "chroot",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "pivot_root",
    "umount",
    "umount2",
];

/// Syscalls the kernel no longer implements or that only old binaries use; nothing a current tool
/// calls, so denying them only shrinks the attack surface.
const OBSOLETE: &[&str] = &[
    "_sysctl",
    "afs_syscall",
    "bdflush",
    "break",
    "create_module",
    "ftime",
    "get_kernel_syms",
    "getpmsg",
    "gtty",
    "idle",
    "lock",
    "mpx",
    "prof",
    "profil",
    "putpmsg",
    "query_module",
    "security",
    "sgetmask",
    "ssetmask",
    "stty",
    "sysfs",
    "tuxcall",
    "ulimit",
    "uselib",
    "ustat",
    "vserver",
];

/// Direct access to I/O ports and PCI configuration space.
const RAW_IO: &[&str] = &[
    "ioperm",
    "iopl",
    "pciconfig_iobase",
    "pciconfig_read",
    "pciconfig_write",
    "s390_pci_mmio_read",
    "s390_pci_mmio_write",
];

/// Rebooting the machine or loading a new kernel to boot into.
const REBOOT: &[&str] = &["kexec_file_load", "kexec_load", "reboot"];

/// Raising scheduling priority, CPU affinity, NUMA placement and resource limits.
const RESOURCES: &[&str] = &[
    "ioprio_set",
    "mbind",
    "migrate_pages",
    "move_pages",
    "nice",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "set_mempolicy",
    "setpriority",
    "setrlimit",
];

/// Changing user and group identities.
const SETUID: &[&str] = &[
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setuid",
    "setuid32",
];

/// Enabling and disabling swap devices.
const SWAP: &[&str] = &["swapoff", "swapon"];

/// Operations that need a capability to do anything useful: the clock, modules, raw I/O, reboot,
/// swap and identity groups, plus accounting, BPF, capabilities, filesystem-wide notification,
/// handles that bypass path permissions, quotas, host and domain names and hanging up terminals.
/// A confined tool has dropped its capabilities, so these fail anyway; denying them turns the
/// attempt into a logged violation and removes the kernel code from reach.
const PRIVILEGED: &[&str] = &[
    "@clock",
    "@module",
    "@raw-io",
    "@reboot",
    "@setuid",
    "@swap",
    "_sysctl",
    "acct",
    "bpf",
    "capset",
    "chroot",
    "fanotify_init",
    "nfsservctl",
    "open_by_handle_at",
    "pivot_root",
    "quotactl",
    "quotactl_fd",
    "setdomainname",
    "sethostname",
    "vhangup",
];

/// Every group: its name (with the `@`) and its members, which may be groups themselves.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("@clock", CLOCK),
    ("@cpu-emulation", CPU_EMULATION),
    ("@debug", DEBUG),
    ("@keyring", KEYRING),
    ("@memlock", MEMLOCK),
    ("@module", MODULE),
    ("@mount", MOUNT),
    ("@obsolete", OBSOLETE),
    ("@privileged", PRIVILEGED),
    ("@raw-io", RAW_IO),
    ("@reboot", REBOOT),
    ("@resources", RESOURCES),
    ("@setuid", SETUID),
    ("@swap", SWAP),
];

/// A `@group` name that is not in [`GROUPS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown syscall group `{name}` (known: {known})", known = known_groups())]
pub struct UnknownGroup {
    pub name: String,
}

fn known_groups() -> String {
    GROUPS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The members of one group, or `None` when no group has that name.
pub fn group(name: &str) -> Option<&'static [&'static str]> {
    GROUPS
        .iter()
        .find(|(group, _)| *group == name)
        .map(|(_, members)| *members)
}

/// Whether some group lists `syscall`, directly or through a nested group. The sandbox layer
/// skips such names when this architecture lacks them instead of failing.
pub fn is_group_member(syscall: &str) -> bool {
    !syscall.starts_with('@') && GROUPS.iter().any(|(_, members)| members.contains(&syscall))
}

/// Expands `@group` names recursively into syscall names, passing single names and markers
/// through; the result is sorted and free of duplicates.
///
/// # Errors
/// [`UnknownGroup`] for a `@name` that is not a group.
pub fn expand(names: &[String]) -> Result<Vec<String>, UnknownGroup> {
    let mut out = BTreeSet::new();
    for name in names {
        expand_into(name, &mut out)?;
    }
    Ok(out.into_iter().collect())
}

fn expand_into(name: &str, out: &mut BTreeSet<String>) -> Result<(), UnknownGroup> {
    if !name.starts_with('@') {
        out.insert(name.to_owned());
        return Ok(());
    }
    let members = group(name).ok_or_else(|| UnknownGroup {
        name: name.to_owned(),
    })?;
    // The tables nest only one level and never cyclically (a test checks), so plain recursion
    // terminates.
    for member in members {
        expand_into(member, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn single_names_pass_through_sorted_and_deduplicated() {
        let out = expand(&names(&[
            "ptrace",
            "io_uring_setup",
            "ptrace",
            MARKER_TIOCSTI,
        ]))
        .unwrap_or_else(|e| panic!("expand: {e}"));
        assert_eq!(out, names(&["io_uring_setup", MARKER_TIOCSTI, "ptrace"]));
    }

    #[test]
    fn groups_expand_recursively() {
        let out = expand(&names(&["@privileged"])).unwrap_or_else(|e| panic!("expand: {e}"));
        for expected in [
            "reboot",
            "init_module",
            "iopl",
            "settimeofday",
            "swapon",
            "setuid",
            "bpf",
        ] {
            assert!(
                out.iter().any(|s| s == expected),
                "{expected} missing in {out:?}"
            );
        }
        assert!(out.iter().all(|s| !s.starts_with('@')), "{out:?}");
        let mut sorted = out.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(out, sorted);
    }

    #[test]
    fn overlapping_groups_are_deduplicated() {
        let out = expand(&names(&["@obsolete", "@module", "create_module"]))
            .unwrap_or_else(|e| panic!("expand: {e}"));
        assert_eq!(out.iter().filter(|s| *s == "create_module").count(), 1);
    }

    #[test]
    fn unknown_group_is_an_error() {
        let err = expand(&names(&["@mount", "@nope"])).err();
        assert_eq!(
            err,
            Some(UnknownGroup {
                name: "@nope".to_owned()
            })
        );
    }

    #[test]
    fn every_nested_group_exists_and_nesting_is_shallow() {
        for (name, members) in GROUPS {
            assert!(name.starts_with('@'));
            for member in members.iter().filter(|m| m.starts_with('@')) {
                let inner =
                    group(member).unwrap_or_else(|| panic!("{name} nests unknown {member}"));
                assert!(
                    inner.iter().all(|m| !m.starts_with('@')),
                    "{member} nests further groups"
                );
            }
        }
    }

    #[test]
    fn tables_are_sorted_without_duplicates() {
        // Sorted tables keep reviews and diffs against systemd's lists easy.
        for (name, members) in GROUPS {
            let mut sorted = members.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(&sorted, members, "{name}");
        }
        let group_names: Vec<_> = GROUPS.iter().map(|(n, _)| *n).collect();
        let mut sorted = group_names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, group_names);
    }

    #[test]
    fn group_membership() {
        assert!(is_group_member("reboot"));
        assert!(!is_group_member("read"));
        assert!(!is_group_member("@reboot"));
    }
}
