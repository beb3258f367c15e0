//! The file systems a Linux userland and guard expect, mounted on the initramfs root.

use std::ffi::CString;

/// (source, target, type, flags, data), mounted in this order: parents before children.
const MOUNTS: &[(&str, &str, &str, libc::c_ulong, &str)] = &[
    ("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, ""),
    ("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC, ""),
    ("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755"),
    // A pty for the Ctrl-C test; ptmxmode so /dev/pts/ptmx works as well as /dev/ptmx.
    (
        "devpts",
        "/dev/pts",
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "mode=0620,ptmxmode=0666",
    ),
    ("tmpfs", "/dev/shm", "tmpfs", NOSUID_NODEV, "mode=1777"),
    ("tmpfs", "/run", "tmpfs", NOSUID_NODEV, "mode=0755"),
    // Pure cgroup v2 (the kernel boots with cgroup_no_v1=all): guard's v2 backend.
    (
        "cgroup2",
        "/sys/fs/cgroup",
        "cgroup2",
        NOSUID_NODEV_NOEXEC,
        "nsdelegate",
    ),
    (
        "securityfs",
        "/sys/kernel/security",
        "securityfs",
        NOSUID_NODEV_NOEXEC,
        "",
    ),
    (
        "bpf",
        "/sys/fs/bpf",
        "bpf",
        NOSUID_NODEV_NOEXEC,
        "mode=0700",
    ),
];

const NOSUID_NODEV: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;
const NOSUID_NODEV_NOEXEC: libc::c_ulong = NOSUID_NODEV | libc::MS_NOEXEC;

pub fn mount_all() -> Result<(), String> {
    for (source, target, fstype, flags, data) in MOUNTS {
        std::fs::create_dir_all(target).map_err(|e| format!("mkdir {target}: {e}"))?;
        let c = |s: &str| CString::new(s).map_err(|e| format!("{s:?}: {e}"));
        let (source_c, target_c, fstype_c, data_c) = (c(source)?, c(target)?, c(fstype)?, c(data)?);
        // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                source_c.as_ptr(),
                target_c.as_ptr(),
                fstype_c.as_ptr(),
                *flags,
                data_c.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(format!(
                "mount {fstype} on {target}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
