//! Kernel BTF: the type information fentry/LSM programs and CO-RE relocations need.

use std::path::Path;

/// Where the kernel exposes its own BTF.
///
/// # Minimum kernel version
///
/// The minimum kernel version required to use this feature is 5.4 (`CONFIG_DEBUG_INFO_BTF`).
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The running kernel exposes its BTF.
pub fn available() -> bool {
    Path::new(VMLINUX_BTF).is_file()
}
