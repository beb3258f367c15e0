//! The exit-status contract of `guard exec` (design.md): the command's status, 128+N for a
//! signal, 125 when guard failed before the command ran, 126 not executable, 127 not found.

/// guard itself failed before the command ran (bad profile, missing kernel feature, ...).
pub const GUARD_FAILED: u8 = 125;
/// The command exists but may not be executed.
pub const NOT_EXECUTABLE: u8 = 126;
/// The command was not found.
pub const NOT_FOUND: u8 = 127;

/// Status of a sandbox that guard or the kernel killed for a violation or a limit (128 + SIGKILL).
pub const KILLED: u8 = 128 + 9;

use super::supervise::Ending;

/// The exit status of `guard exec` for how the command ended.
pub fn exit_code(ending: Ending) -> u8 {
    match ending {
        // The kernel only passes the low 8 bits of an exit status.
        Ending::Exited(code) => (code & 0xff) as u8,
        Ending::Signaled(signal) => 128u8.saturating_add((signal & 0x7f) as u8),
        Ending::WallTime | Ending::CpuTime => KILLED,
        // guard failed at its own job: the contract's 125, not a kill status.
        Ending::KillFailed(_) => GUARD_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_follows_the_contract() {
        assert_eq!(exit_code(Ending::Exited(0)), 0);
        assert_eq!(exit_code(Ending::Exited(3)), 3);
        assert_eq!(exit_code(Ending::Signaled(15)), 143);
        assert_eq!(exit_code(Ending::Signaled(9)), 137);
        assert_eq!(exit_code(Ending::WallTime), 137);
        assert_eq!(exit_code(Ending::CpuTime), 137);
        assert_eq!(
            exit_code(Ending::KillFailed("limits.wall_time")),
            125,
            "a failed kill is guard's failure, never reported as a kill"
        );
    }
}
