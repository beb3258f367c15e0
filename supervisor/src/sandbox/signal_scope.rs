//! Signals kept inside the sandbox where Landlock cannot scope them (ABI < 6). The filter parks
//! the signal syscalls (`seccomp::SIGNAL_SYSCALLS`) for guard; a signal whose every target lives
//! in the sandbox's cgroup (or one below it) goes on, any other is refused with EPERM and
//! recorded. The caller is parked while guard looks, so its own identity cannot change; a target
//! that exits and whose pid is reused between the look and the kernel's delivery is the window
//! left (pids are not reused until they wrap).

use std::path::Path;

/// What a parked signal syscall aims at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One process or thread.
    Pid(i32),
    /// Every member of a process group.
    Group(i32),
    /// `kill(-1)`: every process the caller may signal: never inside a sandbox only.
    Everyone,
}

/// The target of `syscall` with `args`, called by process `caller`; `None` for a syscall that
/// is not a signal one.
pub fn target(caller: u32, syscall: &str, args: &[u64; 6]) -> Option<Target> {
    // pid arguments are C ints: the low 32 bits, signed.
    let pid = |i: usize| args[i] as u32 as i32;
    Some(match syscall {
        "kill" => match pid(0) {
            -1 => Target::Everyone,
            0 => Target::Group(process_group(caller)?),
            p if p < 0 => Target::Group(-p),
            p => Target::Pid(p),
        },
        "tkill" | "tgkill" | "rt_sigqueueinfo" | "rt_tgsigqueueinfo" => Target::Pid(pid(0)),
        "pidfd_send_signal" => Target::Pid(pidfd_target(caller, pid(0))?),
        _ => return None,
    })
}

/// Whether every process `target` names is in the cgroup at `sandbox` (a cgroup2 path such as
/// `/guard/g1-ab`) or below it.
pub fn inside(target: &Target, sandbox: &Path) -> bool {
    match target {
        Target::Everyone => false,
        Target::Pid(pid) => pid_inside(*pid, sandbox),
        Target::Group(pgid) => {
            let Ok(entries) = std::fs::read_dir("/proc") else {
                return false;
            };
            let members: Vec<i32> = entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| process_group(*pid as u32) == Some(*pgid))
                .collect();
            // A group with no member seen is refused, not waved through: a process outside
            // could join it between this look and the kernel's delivery (the kernel would have
            // answered ESRCH to a group that stays empty).
            !members.is_empty() && members.iter().all(|pid| pid_inside(*pid, sandbox))
        }
    }
}

fn pid_inside(pid: i32, sandbox: &Path) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return false;
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("0::"))
        .any(|path| Path::new(path).starts_with(sandbox))
}

/// The process group of `pid` (field 5 of /proc/<pid>/stat, after the command in parentheses).
fn process_group(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ")?.1;
    after.split_whitespace().nth(2)?.parse().ok()
}

/// The process a pidfd of `caller` refers to.
fn pidfd_target(caller: u32, fd: i32) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/{caller}/fdinfo/{fd}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_targets_follow_the_pid_argument() {
        let me = std::process::id();
        let args = |a: i64| [a as u64, 15, 0, 0, 0, 0];
        assert_eq!(target(me, "kill", &args(-1)), Some(Target::Everyone));
        assert_eq!(target(me, "kill", &args(42)), Some(Target::Pid(42)));
        assert_eq!(target(me, "kill", &args(-42)), Some(Target::Group(42)));
        assert!(matches!(
            target(me, "kill", &args(0)),
            Some(Target::Group(_))
        ));
        assert_eq!(target(me, "getpid", &args(0)), None);
        assert!(!inside(&Target::Everyone, Path::new("/")));
        // Our own process is inside the cgroup tree's root.
        assert!(inside(&Target::Pid(me as i32), Path::new("/")));
    }

    #[test]
    fn a_group_is_inside_only_with_members_all_inside() {
        // Our own group has us in it, and everything is beneath the root of the cgroup tree.
        let own = nix::unistd::getpgrp().as_raw();
        assert!(inside(&Target::Group(own), Path::new("/")));
        // No such group: nothing to check, so refused (fail closed), whatever the sandbox.
        assert!(!inside(&Target::Group(i32::MAX - 7), Path::new("/")));
        // A cgroup none of them is in.
        assert!(!inside(
            &Target::Group(own),
            Path::new("/no-such-cgroup-of-guard")
        ));
    }
}
