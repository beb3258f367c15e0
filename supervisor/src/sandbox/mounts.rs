//! A private, read-only view of the file tree for the tool, with its write paths writable.
//!
//! Landlock decides which files the tool may open for writing, but it has no right for
//! metadata: a root-uid tool without capabilities still owns root's files, so `chmod`,
//! `chown`, `utimensat`, `setxattr` and inode flags (`chattr`) worked on files outside
//! `filesystem.write` (BPF LSM, which could check them, is refused on the hosts guard targets).
//! A read-only mount refuses all of them with EROFS, whoever owns the file, so the child enters
//! a mount namespace of its own, makes every mount read-only and puts writable clones of the
//! write paths back on top. Device nodes are unaffected (writing `/dev/null` is not a write to
//! the file system), and the write paths work as before, so tar and cp behave normally there.
//!
//! A write path that no execute rule overlaps is also mounted `noexec`: otherwise a payload
//! written there runs inside an allowed binary through `LD_PRELOAD` or `dlopen` (mapping a
//! library needs no exec permission from Landlock, but `noexec` refuses `PROT_EXEC` mappings).
//!
//! Propagation: the namespace is made a slave of the host's first, so nothing mounted here
//! reaches the host, while the host's own mounts still appear.
//!
//! # Minimum kernel version
//! `open_tree`, `move_mount` (5.2) and `mount_setattr` (5.12).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use crate::plan::landlock::LandlockPlan;

/// At most this many write paths get their own writable mount (a fixed array in the child,
/// which may not allocate).
pub const MAX_WRITE_MOUNTS: usize = 64;

/// One write path as the child mounts it.
pub struct WriteMount {
    pub path: CString,
    pub noexec: bool,
}

/// What the child needs, prepared by the parent: the write paths that exist and are
/// directories or regular files, outermost first (a nested write path is mounted on top of
/// its parent's clone).
pub struct MountPlan {
    pub writable: Vec<WriteMount>,
    /// Make the tree read-only outside `writable` (enforce mode); audit mode only hides.
    pub readonly: bool,
    /// A directory covered with an empty read-only tmpfs in the sandbox: guard's audit signing
    /// key, which no profile may let a tool read (`None` when it does not exist yet).
    pub hide: Option<CString>,
}

/// What the sandbox must never see, whatever its profile grants: the audit signing key.
fn hidden_dir() -> Option<CString> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = crate::audit::seal::KEY_DIR;
    // Created if missing, so a key made later (by a run with a log) is hidden from this one too.
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    std::path::Path::new(dir)
        .is_dir()
        .then(|| CString::new(dir).ok())
        .flatten()
}

/// Why the parent could not prepare the mounts.
#[derive(Debug, thiserror::Error)]
pub enum MountPlanError {
    #[error("more than {MAX_WRITE_MOUNTS} write paths: the read-only file tree cannot hold them")]
    TooMany,
    #[error("write path {0} contains a NUL byte")]
    Nul(String),
}

impl MountPlan {
    pub fn new(plan: &LandlockPlan) -> Result<Self, MountPlanError> {
        let execute: Vec<&Path> = plan
            .paths
            .iter()
            .filter(|r| r.grant.execute)
            .map(|r| r.path.as_path())
            .collect();
        let mut writes: Vec<&Path> = plan
            .write_paths()
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_dir() || m.is_file()))
            .collect();
        writes.sort_by_key(|p| p.components().count());
        if writes.len() > MAX_WRITE_MOUNTS {
            return Err(MountPlanError::TooMany);
        }
        let writable = writes
            .into_iter()
            .map(|path| {
                let noexec = !execute
                    .iter()
                    .any(|e| e.starts_with(path) || path.starts_with(e));
                CString::new(path.as_os_str().as_bytes())
                    .map(|path| WriteMount { path, noexec })
                    .map_err(|_| MountPlanError::Nul(path.display().to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(MountPlan {
            writable,
            readonly: true,
            hide: hidden_dir(),
        })
    }

    /// Audit mode: nothing read-only (nothing is denied), only the key hidden.
    pub fn hide_only() -> Self {
        MountPlan {
            writable: Vec::new(),
            readonly: false,
            hide: hidden_dir(),
        }
    }
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
/// Follow a symlink at the target, as `open_tree` followed it at the source.
const MOVE_MOUNT_T_SYMLINKS: libc::c_uint = 0x10;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// In the child, before the capabilities are dropped: new mount namespace, slave propagation,
/// clones of the write paths, everything read-only, clones back on top. Raw syscalls on
/// prepared memory only. Returns the errno of the first failing call.
///
/// # Safety
/// Only for the forked child (see `child.rs`): it changes the calling process's namespace.
pub unsafe fn seal(plan: &MountPlan) -> Result<(), i32> {
    let errno = || {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // SAFETY: plain syscalls on NUL-terminated strings and stack structs owned here.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(errno());
        }
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            return Err(errno());
        }
        if !plan.readonly {
            return hide(plan);
        }
        let mut clones = [-1 as libc::c_int; MAX_WRITE_MOUNTS];
        for (slot, mount) in clones.iter_mut().zip(&plan.writable) {
            let fd = libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                mount.path.as_ptr(),
                OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE,
            );
            if fd < 0 {
                return Err(errno());
            }
            *slot = fd as libc::c_int;
        }
        let mut readonly = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        if libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c"/".as_ptr(),
            AT_RECURSIVE,
            &raw mut readonly,
            std::mem::size_of::<MountAttr>(),
        ) != 0
        {
            return Err(errno());
        }
        for (fd, mount) in clones.iter().zip(&plan.writable) {
            if mount.noexec {
                let mut noexec = MountAttr {
                    attr_set: MOUNT_ATTR_NOEXEC,
                    attr_clr: 0,
                    propagation: 0,
                    userns_fd: 0,
                };
                if libc::syscall(
                    libc::SYS_mount_setattr,
                    *fd,
                    c"".as_ptr(),
                    libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
                    &raw mut noexec,
                    std::mem::size_of::<MountAttr>(),
                ) != 0
                {
                    return Err(errno());
                }
            }
            if libc::syscall(
                libc::SYS_move_mount,
                *fd,
                c"".as_ptr(),
                libc::AT_FDCWD,
                mount.path.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS,
            ) != 0
            {
                return Err(errno());
            }
            libc::close(*fd);
        }
    }
    // SAFETY: as above.
    unsafe { hide(plan) }
}

/// Covers [`MountPlan::hide`] with an empty, read-only tmpfs.
///
/// # Safety
/// As [`seal`]: the forked child only, inside its own mount namespace.
unsafe fn hide(plan: &MountPlan) -> Result<(), i32> {
    let Some(dir) = &plan.hide else {
        return Ok(());
    };
    // SAFETY: mount(2) with NUL-terminated strings owned by the plan.
    let ret = unsafe {
        libc::mount(
            c"guard-hidden".as_ptr(),
            dir.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"size=4k,mode=0500".as_ptr().cast(),
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(())
}
