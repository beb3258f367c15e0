//! The exit-status contract of `guard exec` (design.md): the command's status, 128+N for a
//! signal, 125 when guard failed before the command ran, 126 not executable, 127 not found.

/// guard itself failed before the command ran (bad profile, missing kernel feature, ...).
pub const GUARD_FAILED: u8 = 125;
/// The command exists but may not be executed.
pub const NOT_EXECUTABLE: u8 = 126;
/// The command was not found.
pub const NOT_FOUND: u8 = 127;
