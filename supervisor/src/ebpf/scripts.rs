//! `#!` scripts listed in `process.exec`: the `SCRIPTS` entries that let such a script run
//! through its interpreter while the interpreter itself stays unlisted.
//!
//! The kernel runs a script by executing the interpreter named in its `#!` line, so the exec
//! probe sees the interpreter as the new image and the script's path as the exec path (see
//! `guard-ebpf/src/script.rs` for why the pair is enough). For every listed regular file that
//! starts with `#!`, this writes (sandbox, interpreter identity, script path) for the listed
//! path and its canonical form.
//!
//! `#!/usr/bin/env NAME`: the kernel's interpreter is `env`, so `env` is allowed for that
//! script only (running `env` directly stays denied). `env` then executes NAME, found through
//! the sandbox's PATH, as an ordinary program: NAME must itself be allowed by `process.exec`,
//! because it is then run directly with the script as an argument, which is exactly what an
//! unlisted interpreter must not be allowed to do. [`ScriptEntry::env_target`] names it so
//! `guard explain` can say so.
//!
//! Limits (denied, never widened): a script whose interpreter is itself a script, paths longer
//! than `SCRIPT_PATH_LEN - 1` bytes, and a script run by any other path (relative, through a
//! symlink not listed, `/dev/fd/N`).

use std::ffi::OsStr;
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use guard_common::policy::{SCRIPT_PATH_LEN, ScriptKey};

use super::rules::kernel_dev;

/// The longest `#!` line the kernel reads (`BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;

/// One listed script as the probes will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptEntry {
    /// The listed path (and its canonical form, if different), as the exec path to match.
    pub paths: Vec<PathBuf>,
    /// The interpreter the kernel executes (from the `#!` line, symlinks resolved).
    pub interpreter: PathBuf,
    /// For `#!/usr/bin/env NAME`: NAME resolved through the sandbox's PATH, which must be
    /// allowed on its own.
    pub env_target: Option<PathBuf>,
}

/// The scripts among `allow` (files starting with `#!` whose interpreter exists).
pub fn scripts(allow: &[PathBuf], path_var: Option<&OsStr>) -> Vec<ScriptEntry> {
    allow
        .iter()
        .filter_map(|path| script(path, path_var))
        .collect()
}

fn script(path: &Path, path_var: Option<&OsStr>) -> Option<ScriptEntry> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut head = Vec::with_capacity(SHEBANG_MAX);
    std::fs::File::open(path)
        .ok()?
        .take(SHEBANG_MAX as u64)
        .read_to_end(&mut head)
        .ok()?;
    let (interp, arg) = parse_shebang(&head)?;
    let interp = Path::new(OsStr::from_bytes(interp));
    // The kernel opens a relative interpreter relative to the caller's cwd: not predictable,
    // so such a script is not entered (it stays denied).
    if !interp.is_absolute() {
        return None;
    }
    let interpreter = std::fs::canonicalize(interp).ok()?;
    let env_target = if interp.file_name() == Some(OsStr::new("env")) {
        arg.and_then(|a| a.split(|b| *b == b' ' || *b == b'\t').next())
            .filter(|name| !name.is_empty() && !name.starts_with(b"-"))
            .and_then(|name| find_in_path(OsStr::from_bytes(name), path_var))
    } else {
        None
    };
    let mut paths = vec![path.to_path_buf()];
    if let Ok(canonical) = std::fs::canonicalize(path)
        && canonical != path
    {
        paths.push(canonical);
    }
    Some(ScriptEntry {
        paths,
        interpreter,
        env_target,
    })
}

/// The interpreter and optional argument of a `#!` line, split as `binfmt_script` does: blanks
/// after `#!` skipped, the interpreter up to the next blank, the rest (trimmed) one argument.
pub fn parse_shebang(head: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let rest = head.strip_prefix(b"#!")?;
    let line = &rest[..rest.iter().position(|b| *b == b'\n')?];
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !blank(b))?;
    let line = &line[start..];
    let end = line.iter().position(blank).unwrap_or(line.len());
    let (interp, tail) = line.split_at(end);
    let tail = tail.trim_ascii();
    Some((interp, (!tail.is_empty()).then_some(tail)))
}

/// `name` looked up like execvp in `path_var` (default `/usr/local/bin:/usr/bin:/bin`).
fn find_in_path(name: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let default = OsStr::new("/usr/local/bin:/usr/bin:/bin");
    std::env::split_paths(path_var.unwrap_or(default))
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .and_then(|p| std::fs::canonicalize(p).ok())
}

/// The `SCRIPTS` keys of `entries` for the sandbox `cgroup_id`.
pub fn script_keys(cgroup_id: u64, entries: &[ScriptEntry]) -> Vec<ScriptKey> {
    let mut keys = Vec::new();
    for entry in entries {
        let Ok(meta) = std::fs::metadata(&entry.interpreter) else {
            continue;
        };
        for path in &entry.paths {
            let bytes = path.as_os_str().as_bytes();
            // Room for the NUL the probe reads; a longer path is never matched (denied).
            if bytes.len() >= SCRIPT_PATH_LEN {
                continue;
            }
            let mut key = ScriptKey {
                cgroup_id,
                dev: kernel_dev(meta.dev()),
                ino: meta.ino(),
                path: [0; SCRIPT_PATH_LEN],
            };
            key.path[..bytes.len()].copy_from_slice(bytes);
            keys.push(key);
        }
    }
    keys.sort_by(|a, b| a.path.cmp(&b.path).then(a.ino.cmp(&b.ino)));
    keys.dedup();
    keys
}

/// For an exec record whose exec path is `filename` and whose new image is (`dev`, `ino`):
/// the script and its `#!` interpreter when the path names a `#!` file other than the image
/// (the kernel ran the script through its interpreter), for the audit record's detail.
pub fn script_of(filename: &Path, dev: u64, ino: u64) -> Option<(String, String)> {
    let meta = std::fs::metadata(filename).ok()?;
    if (kernel_dev(meta.dev()), meta.ino()) == (dev, ino) || !meta.is_file() {
        return None;
    }
    let mut head = Vec::with_capacity(SHEBANG_MAX);
    std::fs::File::open(filename)
        .ok()?
        .take(SHEBANG_MAX as u64)
        .read_to_end(&mut head)
        .ok()?;
    let (interp, _) = parse_shebang(&head)?;
    Some((
        filename.to_string_lossy().into_owned(),
        String::from_utf8_lossy(interp).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_split_like_the_kernel() {
        assert_eq!(
            parse_shebang(b"#!/bin/sh\necho"),
            Some((&b"/bin/sh"[..], None))
        );
        assert_eq!(
            parse_shebang(b"#! /usr/bin/env  python3 -u \nx"),
            Some((&b"/usr/bin/env"[..], Some(&b"python3 -u"[..])))
        );
        assert_eq!(parse_shebang(b"echo hi\n"), None);
        assert_eq!(parse_shebang(b"#!\n"), None);
    }

    #[test]
    fn a_listed_script_gets_a_key_per_path_and_a_binary_none() {
        let dir = std::env::temp_dir().join(format!("guard-scripts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("t.sh");
        std::fs::write(&script, "#!/bin/sh\ntrue\n").unwrap();
        let env_script = dir.join("e.sh");
        std::fs::write(&env_script, "#!/usr/bin/env sh\ntrue\n").unwrap();
        let found = scripts(
            &[script.clone(), env_script.clone(), PathBuf::from("/bin/sh")],
            None,
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].paths[0], script);
        assert_eq!(
            found[0].interpreter,
            std::fs::canonicalize("/bin/sh").unwrap()
        );
        assert_eq!(
            found[1].env_target,
            Some(std::fs::canonicalize("/bin/sh").unwrap())
        );
        assert!(!script_keys(7, &found).is_empty());
    }
}
