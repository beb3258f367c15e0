//! Path-based extended attribute reads fail with ENOTSUP.
//!
//! Landlock has no right for reading xattrs: `getxattr("/root/secret", "user.note")` works on
//! any path the tool can name, read rights or not. Refusing the path forms (`getxattr`,
//! `lgetxattr`, `listxattr`, `llistxattr`, and `getxattrat`/`listxattrat`, by number where
//! libseccomp cannot name them) closes that; `fgetxattr`/`flistxattr` on a file the tool opened
//! (and so may read) keep working. ENOTSUP is the answer tools already handle: cp, tar, rsync and ls
//! treat it as "this file system has no xattrs" and carry on.
//!
//! What is left: `readlink` of a symlink outside the read paths (Landlock has no rule for it), so
//! symlink targets stay readable.

use libseccomp::{ScmpAction, ScmpArch, ScmpFilterContext, ScmpSyscall};

use super::SeccompError;

/// The path-based xattr read syscalls.
pub const PATH_XATTR_READS: &[&str] = &[
    "getxattr",
    "lgetxattr",
    "listxattr",
    "llistxattr",
    "getxattrat",
    "listxattrat",
];

/// Numbers of the xattr syscalls that are newer than the libseccomp guard is built with
/// (Debian 12's 2.5.4 cannot name them, yet kernel 6.13+ has them). Syscalls from 424 on have
/// one number on every architecture guard builds for (the unified table), so the number is
/// used when the name does not resolve: skipping them would leave xattr reads open.
const UNNAMED: &[(&str, i32)] = &[("getxattrat", 464), ("listxattrat", 465)];

/// Adds the rules: ENOTSUP, or `log` when the baseline logs (audit mode). Syscalls the filter
/// already denies outright, or that this libseccomp/architecture cannot name, are skipped.
pub(super) fn add_path_xattr_read_rules(
    filter: &mut ScmpFilterContext,
    baseline_logs: bool,
    covered: &dyn Fn(&str) -> bool,
) -> Result<(), SeccompError> {
    let action = if baseline_logs {
        ScmpAction::Log
    } else {
        ScmpAction::Errno(libc::ENOTSUP)
    };
    for &syscall in PATH_XATTR_READS {
        if covered(syscall) {
            continue;
        }
        let named = ScmpSyscall::from_name_by_arch(syscall, ScmpArch::Native)
            .ok()
            .filter(|n| n.as_raw_syscall() >= 0);
        let fallback = UNNAMED
            .iter()
            .find(|(name, _)| *name == syscall)
            .map(|(_, nr)| ScmpSyscall::from(*nr));
        let Some(number) = named.or(fallback) else {
            continue;
        };
        filter
            .add_rule(action, number)
            .map_err(|source| SeccompError::AddRule { syscall, source })?;
    }
    Ok(())
}
