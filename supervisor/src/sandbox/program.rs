//! Finding the program to run, in the parent, so "not found" (127) and "not executable" (126)
//! are decided before anything is set up, the way a shell decides them.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why the program cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("{0}: is not an executable file")]
    NotExecutable(String),
}

/// Resolves `name` like execvp: a name with a slash is a path (relative to `workdir`); otherwise
/// it is searched in `path_var` (the sandbox's PATH, not guard's).
pub fn resolve(
    name: &OsStr,
    path_var: Option<&OsStr>,
    workdir: &Path,
) -> Result<PathBuf, ProgramError> {
    let display = name.to_string_lossy().into_owned();
    if name.as_bytes().contains(&b'/') {
        // Lexically without `.` components: the exec probe matches a listed `#!` script by
        // the exact path the kernel opened it by, so `./tool.sh` must reach it as
        // `/workdir/tool.sh`, not `/workdir/./tool.sh`.
        let path: PathBuf = workdir.join(name).components().collect();
        return check(&path).map(|()| path).map_err(|e| match e {
            Check::Missing => ProgramError::NotFound(display),
            Check::NotExecutable => ProgramError::NotExecutable(display),
        });
    }
    let default_path = OsString::from("/usr/local/bin:/usr/bin:/bin");
    let search = path_var.unwrap_or(&default_path);
    let mut found_not_executable = false;
    for dir in std::env::split_paths(search) {
        let dir = if dir.as_os_str().is_empty() {
            workdir.to_path_buf()
        } else {
            workdir.join(dir)
        };
        let candidate = dir.join(name);
        match check(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(Check::NotExecutable) => found_not_executable = true,
            Err(Check::Missing) => {}
        }
    }
    if found_not_executable {
        Err(ProgramError::NotExecutable(display))
    } else {
        Err(ProgramError::NotFound(display))
    }
}

enum Check {
    Missing,
    NotExecutable,
}

fn check(path: &Path) -> Result<(), Check> {
    let meta = std::fs::metadata(path).map_err(|_| Check::Missing)?;
    if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
        Ok(())
    } else {
        Err(Check::NotExecutable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_in_the_given_path() {
        let found = resolve(
            OsStr::new("sh"),
            Some(OsStr::new("/nonexistent:/bin")),
            Path::new("/"),
        );
        assert_eq!(found, Ok(PathBuf::from("/bin/sh")));
    }

    #[test]
    fn missing_program_is_not_found() {
        let err = resolve(
            OsStr::new("no-such-tool-xyz"),
            Some(OsStr::new("/bin")),
            Path::new("/"),
        );
        assert_eq!(err, Err(ProgramError::NotFound("no-such-tool-xyz".into())));
    }

    #[test]
    fn non_executable_file_is_not_executable() {
        let err = resolve(OsStr::new("/etc/passwd"), None, Path::new("/"));
        assert_eq!(err, Err(ProgramError::NotExecutable("/etc/passwd".into())));
        let err = resolve(OsStr::new("/etc"), None, Path::new("/"));
        assert_eq!(err, Err(ProgramError::NotExecutable("/etc".into())));
    }

    #[test]
    fn relative_paths_resolve_against_the_workdir() {
        let found = resolve(OsStr::new("./sh"), None, Path::new("/bin"));
        assert_eq!(found, Ok(PathBuf::from("/bin/./sh")));
    }
}
