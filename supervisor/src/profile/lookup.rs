//! Finding a profile's text: a PATH (contains `/` or ends in `.toml`) is read as is; a NAME is
//! looked up in `$GUARD_PROFILE_PATH` (colon-separated), then `/etc/guard/profiles`, then the
//! profiles shipped inside the binary. Built-in fragment names (`base`) in `extends` always mean
//! the built-in, so a file on the search path cannot replace the loader and deny-set defaults.

use std::path::{Path, PathBuf};

use super::ProfileError;

/// The largest profile file guard reads: far above any real profile, far below what would make
/// parsing or lookup slow.
pub const MAX_PROFILE_BYTES: u64 = 1024 * 1024;

/// The system-wide profile directory.
pub const SYSTEM_DIR: &str = "/etc/guard/profiles";

/// Profiles compiled into the binary, by name.
pub const SHIPPED: [(&str, &str); 8] = [
    ("minimal", include_str!("../../../profiles/minimal.toml")),
    (
        "shell-readonly",
        include_str!("../../../profiles/shell-readonly.toml"),
    ),
    (
        "workspace-shell",
        include_str!("../../../profiles/workspace-shell.toml"),
    ),
    ("python", include_str!("../../../profiles/python.toml")),
    ("build", include_str!("../../../profiles/build.toml")),
    ("git", include_str!("../../../profiles/git.toml")),
    ("node", include_str!("../../../profiles/node.toml")),
    ("curl", include_str!("../../../profiles/curl.toml")),
];

/// Built-in fragments usable only in `extends`.
pub const FRAGMENTS: [(&str, &str); 1] = [("base", include_str!("fragments/base.toml"))];

/// The ELF interpreters `base` grants Landlock execute on. The kernel opens them for execution
/// when it starts a dynamic binary, so Landlock must allow them; but running one directly
/// (`ld-linux-x86-64.so.2 /some/binary`) maps and runs any readable file without an exec the
/// eBPF allowlist could see, so they are left out of the default exec allowlist.
pub const DYNAMIC_LOADERS: [&str; 4] = [
    "/lib64/ld-linux-x86-64.so.2",
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
];

/// One profile file's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// How diagnostics name the file: the path as given, `<shipped>/NAME.toml` or
    /// `<builtin>/NAME.toml`.
    pub display: String,
    /// Identity for cycle detection (canonical path, or the display name of an embedded file).
    pub id: String,
    /// Directory relative `extends` paths are resolved against.
    pub dir: Option<PathBuf>,
    pub text: String,
}

impl Source {
    /// A built-in fragment, if `name` is one.
    pub fn fragment(name: &str) -> Option<Source> {
        FRAGMENTS.iter().find(|(n, _)| *n == name).map(|(n, text)| {
            let display = format!("<builtin>/{n}.toml");
            Source {
                id: display.clone(),
                display,
                dir: None,
                text: (*text).to_owned(),
            }
        })
    }

    /// Reads the file at `path`: a regular file of at most [`MAX_PROFILE_BYTES`]. Opened
    /// without blocking (a FIFO would wait for a writer forever) and checked on the open file
    /// before a byte is read (`/dev/zero` never ends).
    pub fn read(path: &Path) -> Result<Source, ProfileError> {
        use std::io::Read as _;
        use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
        let err = |source| ProfileError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        let kind = meta.file_type();
        if !kind.is_file() {
            let kind = if kind.is_dir() {
                "a directory"
            } else if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_char_device() || kind.is_block_device() {
                "a device"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "not a file"
            };
            return Err(ProfileError::NotRegular {
                path: path.to_owned(),
                kind,
            });
        }
        if meta.len() > MAX_PROFILE_BYTES {
            return Err(ProfileError::TooLarge {
                path: path.to_owned(),
                size: meta.len(),
            });
        }
        let mut text = String::new();
        // One byte over the cap at most, in case the file grows while it is read.
        file.take(MAX_PROFILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(err)?;
        if text.len() as u64 > MAX_PROFILE_BYTES {
            return Err(ProfileError::TooLarge {
                path: path.to_owned(),
                size: text.len() as u64,
            });
        }
        let id = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Ok(Source {
            display: path.display().to_string(),
            id: id.display().to_string(),
            dir: path.parent().map(Path::to_owned),
            text,
        })
    }
}

/// Whether a profile argument is a PATH rather than a NAME.
pub fn is_path(spec: &str) -> bool {
    spec.contains('/') || spec.ends_with(".toml")
}

/// Where NAMEs are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Directories searched in order before the shipped profiles.
    pub dirs: Vec<PathBuf>,
    /// Whether the profiles embedded in the binary are searched last.
    pub shipped: bool,
}

impl Lookup {
    /// `$GUARD_PROFILE_PATH` entries, then `/etc/guard/profiles`, then the shipped profiles.
    pub fn from_env() -> Self {
        Self::new(std::env::var_os("GUARD_PROFILE_PATH").as_deref())
    }

    /// As [`Lookup::from_env`] with `profile_path` as the value of `$GUARD_PROFILE_PATH`.
    pub fn new(profile_path: Option<&std::ffi::OsStr>) -> Self {
        let mut dirs: Vec<PathBuf> = profile_path
            .map(|p| {
                std::env::split_paths(p)
                    .filter(|d| !d.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        dirs.push(PathBuf::from(SYSTEM_DIR));
        Lookup {
            dirs,
            shipped: true,
        }
    }

    /// Finds `spec`: a PATH (relative ones against `relative_to` when given) or a NAME (next to
    /// `relative_to` first, the directory of the profile that names it, then the search path).
    pub fn find(&self, spec: &str, relative_to: Option<&Path>) -> Result<Source, ProfileError> {
        if is_path(spec) {
            let path = match relative_to {
                // Dropping `.` components keeps diagnostics and cycle reports readable.
                Some(dir) if Path::new(spec).is_relative() => dir.join(
                    Path::new(spec)
                        .components()
                        .filter(|c| *c != std::path::Component::CurDir)
                        .collect::<PathBuf>(),
                ),
                _ => PathBuf::from(spec),
            };
            return Source::read(&path);
        }
        let valid = !spec.is_empty()
            && spec
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid {
            return Err(ProfileError::BadName(spec.to_owned()));
        }
        // `extends = ["sibling"]` means the file next to the extending one first: a profile
        // directory travels as a unit, whatever the search path holds.
        if let Some(dir) = relative_to {
            let candidate = dir.join(format!("{spec}.toml"));
            if candidate.is_file() {
                return Source::read(&candidate);
            }
        }
        for dir in &self.dirs {
            let candidate = dir.join(format!("{spec}.toml"));
            if candidate.is_file() {
                return Source::read(&candidate);
            }
        }
        if self.shipped
            && let Some((n, text)) = SHIPPED.iter().find(|(n, _)| *n == spec)
        {
            let display = format!("<shipped>/{n}.toml");
            return Ok(Source {
                id: display.clone(),
                display,
                dir: None,
                text: (*text).to_owned(),
            });
        }
        Err(ProfileError::NotFound {
            name: spec.to_owned(),
            searched: self.dirs.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_grants_execute_on_exactly_the_dynamic_loaders() {
        let base = Source::fragment("base").unwrap();
        let parsed = super::super::validate::parse_file(&base.display, &base.text).unwrap();
        let exec: Vec<&str> = parsed
            .profile
            .filesystem
            .execute
            .iter()
            .map(|t| t.as_str())
            .collect();
        assert_eq!(exec, DYNAMIC_LOADERS);
    }

    #[test]
    fn paths_and_names_are_told_apart() {
        assert!(is_path("./x"));
        assert!(is_path("x.toml"));
        assert!(is_path("/etc/guard/profiles/x.toml"));
        assert!(!is_path("python"));
    }

    #[test]
    fn search_path_comes_first_then_system_dir_then_shipped() {
        let dir = std::env::temp_dir().join(format!("guard-lookup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("python.toml"), "name = \"mine\"\n").unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), &dir]).unwrap();
        let l = Lookup::new(Some(&path));
        assert_eq!(
            l.dirs.last().map(PathBuf::as_path),
            Some(Path::new(SYSTEM_DIR))
        );
        let found = l.find("python", None).unwrap();
        assert_eq!(found.text, "name = \"mine\"\n");
        let shipped = l.find("build", None).unwrap();
        assert_eq!(shipped.display, "<shipped>/build.toml");
        assert!(matches!(
            l.find("no-such-profile", None),
            Err(ProfileError::NotFound { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
