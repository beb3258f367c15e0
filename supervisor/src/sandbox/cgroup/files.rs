//! Reading and writing cgroup control files, creating and removing cgroup directories, and the
//! freeze-kill-thaw loop both backends share.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::CgroupError;

/// How long killing a sandbox may take before it is reported as stuck: processes in
/// uninterruptible sleep (NFS, FUSE) can take a while to die.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `rmdir` is retried while the kernel finishes tearing down exited processes.
const RMDIR_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(5);

/// Writes `value` to the existing control file `dir/file`. The file is never created: on
/// cgroupfs a missing file means the controller is not enabled there, which must be an error
/// rather than a stray regular file.
pub fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        // cgroupfs takes one value per write(2), so the value goes out in a single call.
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Write {
            path,
            value: value.to_owned(),
            source,
        })
}

/// `dir/cgroup.kill`, opened for writing now (kernel 5.14+; `None` without it), so that the
/// kill at the end of the run needs no new descriptor: a sandbox that exhausted or lowered
/// what guard may open must not be able to keep guard from killing it.
pub fn open_kill_file(dir: &Path) -> Option<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
        .ok()
}

/// Writes `1` to a `cgroup.kill` opened by [`open_kill_file`].
pub fn write_kill(file: &std::fs::File, dir: &Path) -> Result<(), CgroupError> {
    (&*file)
        .write_all(b"1")
        .map_err(|source| CgroupError::Write {
            path: dir.join("cgroup.kill"),
            value: "1".to_owned(),
            source,
        })
}

/// Whether the control file `dir/file` exists (optional kernel features: swap accounting,
/// `cgroup.kill`, `memory.peak`).
pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// Reads `dir/file`, `None` when it does not exist.
pub fn read_optional(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// The value of `key` in a flat keyed file (`memory.events`, `pids.events`,
/// `memory.oom_control`: one `key value` pair per line); 0 when the file or key is absent,
/// because a counter the kernel does not keep has counted nothing.
pub fn keyed_counter(dir: &Path, file: &str, key: &str) -> Result<u64, CgroupError> {
    let Some(content) = read_optional(dir, file)? else {
        return Ok(0);
    };
    for line in content.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some(key) {
            return words
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| CgroupError::Parse {
                    path: dir.join(file),
                    content: line.to_owned(),
                });
        }
    }
    Ok(0)
}

/// A single number file (`memory.peak`), `None` when it does not exist.
pub fn number(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    let Some(content) = read_optional(dir, file)? else {
        return Ok(None);
    };
    content
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| CgroupError::Parse {
            path: dir.join(file),
            content,
        })
}

/// The controllers a cgroup2 directory offers (`cgroup.controllers`).
pub fn read_controllers(dir: &Path) -> Result<Vec<String>, CgroupError> {
    let content = read_optional(dir, "cgroup.controllers")?.unwrap_or_default();
    Ok(content.split_whitespace().map(String::from).collect())
}

/// The processes in `dir` (`cgroup.procs`); an absent directory has none.
pub fn procs(dir: &Path) -> Result<Vec<Pid>, CgroupError> {
    let Some(content) = read_optional(dir, "cgroup.procs")? else {
        return Ok(Vec::new());
    };
    content
        .lines()
        .map(|line| {
            line.trim()
                .parse()
                .map(Pid::from_raw)
                .map_err(|_| CgroupError::Parse {
                    path: dir.join("cgroup.procs"),
                    content: line.to_owned(),
                })
        })
        .collect()
}

/// Creates the shared `guard` parent directory if it is not there yet (other sandboxes may be
/// creating it at the same moment).
pub fn ensure_dir(path: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Creates a sandbox's own directory, which must be new: reusing a leftover would mix its
/// processes and counters into this sandbox.
pub fn create_new_dir(path: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(CgroupError::AlreadyExists(path.to_owned()))
        }
        Err(source) => Err(CgroupError::Create {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Removes a sandbox directory. `rmdir` is retried on EBUSY: killed processes leave the cgroup
/// asynchronously. An absent directory counts as removed.
pub fn remove_dir(path: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < RMDIR_TIMEOUT => {
                sleep(POLL);
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Freezing of a cgroup for the kill loop: with the processes frozen their pids cannot exit
/// and be reused between reading `cgroup.procs` and `kill(2)`, and none can fork.
pub trait Freezer {
    fn freeze(&self) -> Result<(), CgroupError>;
    fn thaw(&self) -> Result<(), CgroupError>;
}

/// No freezer available: the loop still converges, only the pid-reuse window stays open.
pub struct NoFreezer;

impl Freezer for NoFreezer {
    fn freeze(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    fn thaw(&self) -> Result<(), CgroupError> {
        Ok(())
    }
}

/// Freezes, sends SIGKILL to every process listed in any of `dirs` or a cgroup below them, thaws so the signals are
/// delivered, and repeats until all of `dirs` are empty.
///
/// Sandboxes that are already empty (the usual end: the command exited and forked nothing that
/// outlived it, or `cgroup.kill` got everything) are not frozen: freezing and thawing a v1
/// freezer cgroup toggles a static key, which patches kernel text with IPIs to every CPU. An
/// empty cgroup cannot fill up by itself: only a member can fork into it, and guard moves no
/// process into a sandbox after its start. Empty here is exactly the condition the loop ends on.
pub fn kill_until_empty(dirs: &[&Path], freezer: &dyn Freezer) -> Result<(), CgroupError> {
    if all_empty(dirs)? {
        return Ok(());
    }
    let start = Instant::now();
    loop {
        freezer.freeze()?;
        let mut pids = BTreeSet::new();
        let mut listed_in = PathBuf::new();
        for dir in dirs {
            // Child cgroups too: the sandbox is the whole tree below its directory.
            for pid in super::tree::procs_recursive(dir)? {
                if pids.insert(pid) {
                    listed_in = dir.to_path_buf();
                }
            }
        }
        let killed = pids
            .iter()
            .try_for_each(|&pid| match kill(pid, Signal::SIGKILL) {
                // Already gone: it exited between the read and the kill.
                Ok(()) | Err(Errno::ESRCH) => Ok(()),
                Err(source) => Err(CgroupError::Kill {
                    path: listed_in.clone(),
                    pid: pid.as_raw(),
                    source,
                }),
            });
        // Thawed even when a kill failed, so no sandbox is left frozen.
        freezer.thaw()?;
        killed?;
        if pids.is_empty() {
            return Ok(());
        }
        if start.elapsed() > KILL_TIMEOUT {
            return Err(CgroupError::KillTimeout {
                path: listed_in,
                waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        sleep(POLL);
    }
}

/// Whether no process is listed in any of `dirs`.
fn all_empty(dirs: &[&Path]) -> Result<bool, CgroupError> {
    for dir in dirs {
        if !super::tree::procs_recursive(dir)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Polls `done` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let start = Instant::now();
    loop {
        if done()? {
            return Ok(true);
        }
        if start.elapsed() > timeout {
            return Ok(false);
        }
        sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::cgroup::test_support::TempDir;

    #[test]
    fn write_needs_an_existing_file() {
        let dir = TempDir::new();
        assert!(matches!(
            write(dir.path(), "pids.max", "5"),
            Err(CgroupError::Write { .. })
        ));
        dir.file("pids.max", "max\n");
        write(dir.path(), "pids.max", "5").unwrap();
        assert_eq!(dir.read("pids.max"), "5");
    }

    #[test]
    fn keyed_counters() {
        let dir = TempDir::new();
        dir.file(
            "memory.events",
            "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n",
        );
        assert_eq!(
            keyed_counter(dir.path(), "memory.events", "oom_kill").unwrap(),
            1
        );
        assert_eq!(
            keyed_counter(dir.path(), "memory.events", "max").unwrap(),
            12
        );
        assert_eq!(
            keyed_counter(dir.path(), "memory.events", "absent").unwrap(),
            0
        );
        assert_eq!(keyed_counter(dir.path(), "no.such.file", "max").unwrap(), 0);
        dir.file("pids.events", "max x\n");
        assert!(keyed_counter(dir.path(), "pids.events", "max").is_err());
    }

    #[test]
    fn procs_and_numbers() {
        let dir = TempDir::new();
        dir.file("cgroup.procs", "12\n345\n");
        assert_eq!(
            procs(dir.path()).unwrap(),
            [Pid::from_raw(12), Pid::from_raw(345)]
        );
        dir.file("memory.peak", "4096\n");
        assert_eq!(number(dir.path(), "memory.peak").unwrap(), Some(4096));
        assert_eq!(number(dir.path(), "memory.max_usage").unwrap(), None);
        assert!(procs(&dir.path().join("gone")).unwrap().is_empty());
    }

    /// A freezer that counts how often it was used.
    struct CountingFreezer(std::cell::Cell<u32>);

    impl Freezer for CountingFreezer {
        fn freeze(&self) -> Result<(), CgroupError> {
            self.0.set(self.0.get() + 1);
            Ok(())
        }
        fn thaw(&self) -> Result<(), CgroupError> {
            self.0.set(self.0.get() + 1);
            Ok(())
        }
    }

    #[test]
    fn empty_sandboxes_are_not_frozen() {
        let a = TempDir::new();
        let b = TempDir::new();
        a.file("cgroup.procs", "");
        b.file("cgroup.procs", "");
        let freezer = CountingFreezer(std::cell::Cell::new(0));
        kill_until_empty(&[a.path(), b.path(), &a.path().join("gone")], &freezer).unwrap();
        assert_eq!(freezer.0.get(), 0);
        assert!(all_empty(&[a.path(), b.path()]).unwrap());
        b.file("cgroup.procs", "12\n");
        assert!(!all_empty(&[a.path(), b.path()]).unwrap());
    }

    #[test]
    fn sandbox_dirs_are_new_and_removal_is_idempotent() {
        let dir = TempDir::new();
        let sandbox = dir.path().join("sb");
        create_new_dir(&sandbox).unwrap();
        assert!(matches!(
            create_new_dir(&sandbox),
            Err(CgroupError::AlreadyExists(_))
        ));
        ensure_dir(&sandbox).unwrap();
        remove_dir(&sandbox).unwrap();
        remove_dir(&sandbox).unwrap();
    }
}
