//! The Landlock ABI version, asked from the kernel.

/// `LANDLOCK_CREATE_RULESET_VERSION`: with a NULL attr and size 0, the syscall returns the
/// highest ABI version instead of creating a ruleset.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;

/// The kernel's Landlock ABI version, 0 when Landlock is not built in or not enabled at boot.
///
/// # Minimum kernel version
///
/// The minimum kernel version required to use this feature is 5.13 (ABI 1).
pub fn abi_version() -> u32 {
    // SAFETY: the VERSION query reads no memory (NULL attr, size 0) and returns an int.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    // ENOSYS (not built in) and EOPNOTSUPP (built in, disabled at boot) both mean "none".
    u32::try_from(ret).unwrap_or(0)
}

/// What each Landlock ABI level adds, for `guard doctor`.
pub const ABI_FEATURES: &[(u32, &str)] = &[
    (
        1,
        "filesystem access rights: execute, read, write, create, remove (kernel 5.13)",
    ),
    (
        2,
        "file renames and links across directories (LANDLOCK_ACCESS_FS_REFER, 5.19)",
    ),
    (3, "file truncation (LANDLOCK_ACCESS_FS_TRUNCATE, 6.2)"),
    (
        4,
        "TCP bind and connect by port (LANDLOCK_ACCESS_NET_*, 6.7)",
    ),
    (
        5,
        "ioctl on character and block devices (LANDLOCK_ACCESS_FS_IOCTL_DEV, 6.10)",
    ),
    (
        6,
        "scoping: abstract unix sockets and signals to outside the sandbox (6.12)",
    ),
    (
        7,
        "audit logging of denials (LANDLOCK_RESTRICT_SELF_LOG_*, 6.15)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_features_are_listed_in_order() {
        for (i, (level, _)) in ABI_FEATURES.iter().enumerate() {
            assert_eq!(*level as usize, i + 1);
        }
    }

    #[test]
    fn abi_query_is_within_known_range_or_zero() {
        // Any host: the query never fails in a way that panics, and the value is plausible.
        assert!(abi_version() < 100);
    }
}
