//! The guest's userland: the host's own programs, copied at their host paths.
//!
//! The end-to-end tests run bash, coreutils, python3, make and cc from the host, and profiles
//! name host paths (`/usr/lib/python3.11`, `/usr/bin`). The guest gets exactly those files: the
//! file lists of a few Debian packages (`dpkg-query -L`), a few host files that no package owns
//! (`/etc/passwd`, `/etc/ld.so.cache`), every symlink on the way to them (merged `/usr`:
//! `/lib -> usr/lib`) and every shared library they load (read from their ELF headers). Same
//! paths, same bytes, same loader cache: a test sees the same userland in the guest as on the host.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::elf;
use crate::cmd;

/// Debian 12 packages whose files go into the guest, grouped by why.
pub const PACKAGES: &[(&str, &[&str])] = &[
    // The shells and tools the end-to-end tests call by name.
    (
        "shell tools",
        &[
            "bash",
            "dash",
            "coreutils",
            "grep",
            "sed",
            "util-linux",
            "libc-bin",
        ],
    ),
    // python3 with its standard library (ctypes, socket, subprocess in the tests).
    (
        "python",
        &[
            "python3-minimal",
            "python3.11-minimal",
            "libpython3.11-minimal",
            "libpython3.11-stdlib",
        ],
    ),
    // The daemon's tests: throw-away users (useradd, groupadd, userdel) and curl as a client
    // of the network rules.
    ("daemon and network tests", &["passwd", "curl"]),
    // The shipped tool profiles' tests: a workspace shell's tar, git, and venvs with pip.
    (
        "tool profiles",
        &[
            "tar",
            "gzip",
            "git",
            "python3.11-venv",
            "python3-pip-whl",
            "python3-setuptools-whl",
        ],
    ),
    // The `build` profile's tests compile C with make and cc.
    (
        "C toolchain",
        &[
            "make",
            "gcc-12",
            "cpp-12",
            "libgcc-12-dev",
            "binutils",
            "binutils-x86-64-linux-gnu",
            "libc6",
            "libc6-dev",
            "libcrypt-dev",
            "linux-libc-dev",
        ],
    ),
];

/// Host files outside the packages above that change with the packages: symlinks managed by
/// update-alternatives, and single programs of packages too large to copy whole (systemd).
const EXTRA_PATHS: &[&str] = &["/usr/bin/cc", "/usr/bin/systemd-socket-activate"];

/// Small host files outside any package's list that change on their own (a user added, the
/// loader cache rebuilt): accounts for `process.user = "nobody"`, name resolution, the loader's
/// cache, the time zone. They go into every run's archive, not the cached one, so a new user on
/// the host does not cost a new 140 MB archive.
pub const RUN_PATHS: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/login.defs",
];

/// `/etc/shadow` for the accounts of `passwd` (the text of `/etc/passwd`): every password
/// locked. useradd and userdel need the file; the host's own holds password hashes, which have
/// no business in a build directory.
pub fn locked_shadow(passwd: &str) -> String {
    passwd
        .lines()
        .filter_map(|line| line.split(':').next().filter(|name| !name.is_empty()))
        .map(|name| format!("{name}:*:19000:0:99999:7:::\n"))
        .collect()
}

/// `/etc/gshadow` for the groups of `group` (the text of `/etc/group`), without passwords.
pub fn locked_gshadow(group: &str) -> String {
    group
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next().filter(|name| !name.is_empty())?;
            let members = fields.nth(2).unwrap_or("");
            Some(format!("{name}:*::{members}\n"))
        })
        .collect()
}

/// Parts of package lists the guest never reads: documentation, translations, iconv modules.
/// Checked for every path, also those reached through symlinks and ELF dependencies.
const EXCLUDED_PREFIXES: &[&str] = &[
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/locale",
    "/usr/share/lintian",
    "/usr/share/bug",
    "/usr/lib/x86_64-linux-gnu/gconv",
];

/// File names (prefixes) of large files no test runs: gcc's LTO compiler and dumper (`cc`
/// without `-flto`), the sanitizer runtimes (`-fsanitize`), binutils' profiler library and the
/// static C library (the tests link dynamically). About half of the packages' bytes; leaving
/// them out halves the time the guest kernel spends unpacking the initramfs.
const EXCLUDED_NAMES: &[&str] = &[
    "lto1",
    "lto-dump",
    "x86_64-linux-gnu-lto-dump",
    "libasan",
    "libhwasan",
    "liblsan",
    "libtsan",
    "libubsan",
    "libgprofng",
    "libc.a",
    "libm.a",
    "libm-2.",
    "libmvec.a",
];

/// Whether `path` is left out of the guest (see [`EXCLUDED_PREFIXES`], [`EXCLUDED_NAMES`]).
fn excluded(path: &Path) -> bool {
    EXCLUDED_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
        || path.file_name().is_some_and(|name| {
            let name = name.to_string_lossy();
            EXCLUDED_NAMES.iter().any(|prefix| name.starts_with(prefix))
        })
}

/// One thing to create in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32, mtime: u32 },
    File { mode: u32, mtime: u32 },
    Symlink { target: String, mtime: u32 },
}

/// Host paths to copy into the guest, sorted so every directory comes before its contents.
#[derive(Debug, Default)]
pub struct FileSet {
    nodes: BTreeMap<PathBuf, Node>,
    /// Libraries an ELF file needs that this host does not have; reported, not fatal, because
    /// many package files (plugins, optional tools) are never run in the guest.
    pub unresolved: Vec<String>,
}

impl FileSet {
    pub fn nodes(&self) -> impl Iterator<Item = (&Path, &Node)> {
        self.nodes.iter().map(|(p, n)| (p.as_path(), n))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Adds `path` as the guest must see it: symlinked directories on the way stay symlinks,
    /// a symlink brings its target, an ELF file brings its interpreter and libraries.
    pub fn add(&mut self, path: &Path) -> anyhow::Result<()> {
        if !path.is_absolute() {
            bail!("{} is not an absolute path", path.display());
        }
        if self.nodes.contains_key(path) || path == Path::new("/") || excluded(path) {
            return Ok(());
        }
        // A symlinked ancestor (`/lib` on merged /usr) must exist in the guest as the same
        // symlink, or the guest would get two copies of one directory under different names.
        for ancestor in path.ancestors().skip(1) {
            if ancestor != Path::new("/") && is_symlink(ancestor) {
                return self.add_through_symlink(path, ancestor);
            }
        }
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?;
        self.add_parents(path)?;
        let mtime = mtime_of(&meta);
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path)?;
            self.nodes.insert(
                path.to_path_buf(),
                Node::Symlink {
                    target: target.to_string_lossy().into_owned(),
                    mtime,
                },
            );
            let parent = path.parent().unwrap_or(Path::new("/"));
            let resolved = normalize(&parent.join(&target));
            // A dangling symlink is copied as it is: the host has it dangling too.
            if std::fs::symlink_metadata(&resolved).is_ok() {
                self.add(&resolved)?;
            }
        } else if meta.is_dir() {
            self.nodes
                .insert(path.to_path_buf(), Node::Dir { mode, mtime });
            // Python's compiled modules are made at install time and so are in no package
            // list; without them every python3 start recompiles what it imports.
            let cache = path.join("__pycache__");
            if cache.is_dir() && !self.nodes.contains_key(&cache) {
                self.add(&cache)?;
                for entry in std::fs::read_dir(&cache)? {
                    self.add(&entry?.path())?;
                }
            }
        } else if meta.is_file() {
            self.nodes
                .insert(path.to_path_buf(), Node::File { mode, mtime });
            self.add_elf_dependencies(path)?;
        }
        // Sockets, fifos and devices in package lists are not needed in the guest.
        Ok(())
    }

    /// `path` has the symlinked ancestor `link`: add the link, then the path through its target.
    fn add_through_symlink(&mut self, path: &Path, link: &Path) -> anyhow::Result<()> {
        self.add(link)?;
        let target = std::fs::read_link(link)?;
        let parent = link.parent().unwrap_or(Path::new("/"));
        let real_link = normalize(&parent.join(target));
        let rest = path.strip_prefix(link)?;
        self.add(&real_link.join(rest))
    }

    fn add_parents(&mut self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent()
            && parent != Path::new("/")
            && !self.nodes.contains_key(parent)
        {
            self.add(parent)?;
        }
        Ok(())
    }

    fn add_elf_dependencies(&mut self, path: &Path) -> anyhow::Result<()> {
        let mut head = [0u8; 4];
        {
            use std::io::Read as _;
            let mut file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            if file.read_exact(&mut head).is_err() || !elf::is_elf(&head) {
                return Ok(());
            }
        }
        let bytes = std::fs::read(path)?;
        let Some(dynamic) = elf::parse(&bytes) else {
            return Ok(());
        };
        let (found, missing) = elf::resolve_needed(path, &dynamic);
        for name in missing {
            self.unresolved
                .push(format!("{} needs {name}", path.display()));
        }
        if let Some(interpreter) = &dynamic.interpreter {
            self.add(Path::new(interpreter))?;
        }
        for library in found {
            self.add(&library)?;
        }
        Ok(())
    }
}

/// Every package of [`PACKAGES`].
pub fn all_packages() -> Vec<&'static str> {
    PACKAGES
        .iter()
        .flat_map(|(_, packages)| packages.iter().copied())
        .collect()
}

/// The file set of the guest userland.
pub fn collect() -> anyhow::Result<FileSet> {
    let packages = all_packages();
    let output = cmd::probe(Command::new("dpkg-query").arg("-L").args(&packages))?
        .context("dpkg-query not found: the VM image is built from Debian packages")?;
    if !output.status.success() {
        bail!(
            "dpkg-query -L failed: {}; `cargo xtask setup` installs the packages the VM image needs",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut set = FileSet::default();
    let listed = String::from_utf8_lossy(&output.stdout);
    for path in package_paths(&listed) {
        // Package lists name paths their maintainer scripts removed or diverted; only what
        // exists on this host can be copied.
        if std::fs::symlink_metadata(path).is_ok() {
            set.add(Path::new(path))?;
        }
    }
    for path in EXTRA_PATHS {
        if std::fs::symlink_metadata(path).is_ok() {
            set.add(Path::new(path))?;
        }
    }
    Ok(set)
}

/// The absolute paths of `dpkg-query -L` output that the guest needs: no `/.`, no diversion
/// notes, nothing excluded.
fn package_paths(listed: &str) -> impl Iterator<Item = &str> {
    listed
        .lines()
        .filter(|line| line.starts_with('/') && *line != "/." && !excluded(Path::new(line)))
}

/// What the cached archive depends on: the package database, the extra paths and this module's
/// lists. Cheap to compute, so an unchanged host reuses the archive without walking any files.
pub fn cache_key() -> String {
    let mut parts = vec![format!(
        "{PACKAGES:?}{EXTRA_PATHS:?}{EXCLUDED_PREFIXES:?}{EXCLUDED_NAMES:?}"
    )];
    for path in std::iter::once("/var/lib/dpkg/status").chain(EXTRA_PATHS.iter().copied()) {
        let stamp = std::fs::metadata(path)
            .map(|m| format!("{}:{}:{}", m.len(), m.mtime(), m.mtime_nsec()))
            .unwrap_or_else(|_| "missing".into());
        parts.push(format!("{path}={stamp}"));
    }
    format!("{:016x}", fnv1a(parts.join("\n").as_bytes()))
}

/// FNV-1a, 64 bit: a stable hash (std's `DefaultHasher` may change between Rust releases,
/// which would only cost a rebuild, but a stable one keeps the key meaningful in logs).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn mtime_of(meta: &std::fs::Metadata) -> u32 {
    u32::try_from(meta.mtime()).unwrap_or(0)
}

/// Removes `.` and resolves `..` lexically (symlink targets like `../lib/x`).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots() {
        assert_eq!(
            normalize(Path::new("/usr/bin/../lib/./x")),
            PathBuf::from("/usr/lib/x")
        );
        assert_eq!(normalize(Path::new("/../a")), PathBuf::from("/a"));
    }

    #[test]
    fn package_lists_skip_notes_root_and_excluded_paths() {
        let listed = "/.\n/usr\n/usr/bin/bash\n/usr/share/doc/bash/copyright\n\
                      package diverts others to: /usr/bin/x.distrib\n\
                      /usr/lib/gcc/x86_64-linux-gnu/12/lto1\n/usr/share/man/man1/bash.1.gz\n";
        let paths: Vec<&str> = package_paths(listed).collect();
        assert_eq!(paths, ["/usr", "/usr/bin/bash"]);
    }

    #[test]
    fn merged_usr_symlinks_stay_symlinks_and_libraries_follow() {
        // /bin/sh on Debian 12: /bin -> usr/bin, sh -> dash, dash needs libc and the loader.
        let mut set = FileSet::default();
        set.add(Path::new("/bin/sh")).unwrap();
        let nodes: BTreeMap<&Path, &Node> = set.nodes().collect();
        if is_symlink(Path::new("/bin")) {
            assert!(matches!(nodes[Path::new("/bin")], Node::Symlink { .. }));
            assert!(
                !nodes
                    .keys()
                    .any(|p| *p != Path::new("/bin") && p.starts_with("/bin")),
                "{nodes:?}"
            );
        }
        assert!(
            nodes.keys().any(|p| p.ends_with("dash")),
            "no dash: {nodes:?}"
        );
        assert!(
            nodes
                .iter()
                .any(|(p, n)| p.ends_with("libc.so.6") && matches!(n, Node::File { .. })),
            "no libc: {nodes:?}"
        );
        assert!(
            nodes.keys().any(|p| p.ends_with("ld-linux-x86-64.so.2")),
            "no loader: {nodes:?}"
        );
        // Sorted: every entry's parent is a directory that comes earlier.
        let order: Vec<&Path> = set.nodes().map(|(p, _)| p).collect();
        for (i, path) in order.iter().enumerate() {
            let parent = path.parent().unwrap();
            if parent != Path::new("/") {
                let at = order.iter().position(|p| *p == parent);
                assert!(
                    at.is_some_and(|at| at < i),
                    "{} before its parent",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn large_unused_files_are_excluded_wherever_they_are_reached() {
        for path in [
            "/usr/lib/gcc/x86_64-linux-gnu/12/lto1",
            "/usr/bin/x86_64-linux-gnu-lto-dump-12",
            "/usr/lib/x86_64-linux-gnu/libasan.so.8.0.0",
            "/usr/lib/x86_64-linux-gnu/libc.a",
            "/usr/share/doc/bash/copyright",
        ] {
            assert!(excluded(Path::new(path)), "{path}");
        }
        for path in [
            "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc_nonshared.a",
            "/usr/lib/x86_64-linux-gnu/libmpfr.so.6",
            "/usr/lib/gcc/x86_64-linux-gnu/12/libgcc.a",
        ] {
            assert!(!excluded(Path::new(path)), "{path}");
        }
    }

    #[test]
    fn shadow_files_lock_every_account_and_keep_group_members() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\n";
        assert_eq!(
            locked_shadow(passwd),
            "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"
        );
        let group = "root:x:0:\nguard:x:998:alice,bob\n";
        assert_eq!(locked_gshadow(group), "root:*::\nguard:*::alice,bob\n");
    }

    #[test]
    fn fnv1a_is_the_reference_function() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
