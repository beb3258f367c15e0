//! From observed paths to file rules: the fewest rules that cover what the run did, and never a
//! rule the run did not need.
//!
//! - A write is granted where it happened: on the path when it existed before the run and still
//!   does; otherwise (created, removed, renamed) on the nearest directory that existed before the
//!   run, since creating or removing an entry is a right on its directory.
//! - A read is granted on the file, except where the command read a tree: a directory it listed,
//!   or one with three or more entries read. Trees are collapsed upwards while that holds.
//! - A directory is granted only where that cannot reach what the run never touched in a way a
//!   user would not expect: inside `${CWD}` or `${TMPDIR}`, inside `${HOME}` below its top level,
//!   or three levels or more below `/`; never a directory named like a secret store (`.ssh`,
//!   `.gnupg`, `private`, ...), never `${HOME}` itself or one of its ancestors. Where a directory
//!   cannot be granted, the file itself is, or nothing (with the reason as a comment).
//! - Paths no profile may grant (`/proc/<pid>`, writes under kernel file systems and guard's
//!   own state) are reported, not granted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::observe::Observed;

/// Where the run happened: what `${CWD}`, `${HOME}` and `${TMPDIR}` stand for.
#[derive(Debug, Clone)]
pub struct Places {
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
    pub tmpdir: PathBuf,
}

/// What the learner asks of the file system after the run.
pub trait FileFacts {
    /// The path exists now and existed before the run started.
    fn existed_before(&self, path: &Path) -> bool;
    /// The path is a directory now.
    fn is_dir(&self, path: &Path) -> bool;
    /// The path exists now (a read of a path that does not was a lookup that failed).
    fn exists(&self, path: &Path) -> bool;
    /// The interpreter executing `path` needs too (ELF `PT_INTERP` or `#!`), if any.
    fn interpreter(&self, path: &Path) -> Option<PathBuf>;
}

/// One granted path and, where it covers more than one observed path, how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub path: PathBuf,
    pub note: Option<String>,
}

/// The file rules of a learned profile, and what was seen but not granted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rules {
    pub read: Vec<Rule>,
    pub write: Vec<Rule>,
    pub execute: Vec<Rule>,
    /// `process.exec`: the files executed.
    pub exec: Vec<Rule>,
    /// (what, path, why) for everything seen and not granted.
    pub not_granted: Vec<(&'static str, PathBuf, String)>,
    /// Reads and execs of paths that do not exist (lookups that failed, a PATH search): not
    /// listed, since a rule for a missing path grants nothing.
    pub missing_reads: usize,
}

/// Entries of three or more read in one directory make it a tree the command reads.
const TREE_ENTRIES: usize = 3;

/// Directory names that hold secrets: never granted as a whole.
const SECRET_DIRS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".password-store",
    "keyrings",
    "private",
    ".netrc",
    "gh",
];

/// Computes the rules for `observed`.
pub fn rules(observed: &Observed, places: &Places, fs: &dyn FileFacts) -> Rules {
    let mut out = Rules::default();

    // Writes: the file where it existed before, else the nearest directory that did.
    let mut write = BTreeMap::<PathBuf, usize>::new();
    for path in &observed.writes {
        if let Some(why) = never_writable(path) {
            out.not_granted.push(("write", path.clone(), why.into()));
            continue;
        }
        let target = if fs.existed_before(path) {
            // Changed in place (or, for a directory, an entry made again): the path itself.
            Some(path.clone())
        } else {
            match nearest_existing_dir(path, fs) {
                Some(dir) if may_grant_dir(&dir, places) => Some(dir),
                Some(dir) => {
                    out.not_granted.push((
                        "write",
                        path.clone(),
                        format!(
                            "created or removed in {}, which guard learn does not grant as a \
                             whole (too wide); add it by hand if the tool must",
                            dir.display()
                        ),
                    ));
                    None
                }
                None => None,
            }
        };
        if let Some(target) = target {
            *write.entry(target).or_default() += 1;
        }
    }
    out.write = minimal(write);

    // Executes: the files, plus the interpreters the kernel opens for them.
    let mut execute = BTreeMap::<PathBuf, usize>::new();
    for path in &observed.execs {
        if !fs.exists(path) {
            // An exec that failed to find its file (a PATH search trying each directory).
            out.missing_reads += 1;
            continue;
        }
        out.exec.push(Rule {
            path: path.clone(),
            note: None,
        });
        *execute.entry(path.clone()).or_default() += 1;
        if let Some(interp) = fs.interpreter(path) {
            execute.entry(interp).or_default();
        }
    }
    out.execute = execute
        .into_keys()
        .map(|path| Rule { path, note: None })
        .collect();

    // Reads not already covered, collapsed where the command read a tree.
    let covered = |p: &Path| {
        out.write.iter().any(|r| p.starts_with(&r.path))
            || out.execute.iter().any(|r| p.starts_with(&r.path))
    };
    let mut reads = BTreeMap::<PathBuf, usize>::new();
    let mut listed = BTreeSet::<PathBuf>::new();
    for path in &observed.reads {
        if covered(path) {
            continue;
        }
        if !fs.exists(path) {
            out.missing_reads += 1;
            continue;
        }
        if let Some(why) = never_readable(path) {
            out.not_granted.push(("read", path.clone(), why.into()));
            continue;
        }
        if fs.is_dir(path) {
            listed.insert(path.clone());
        }
        reads.insert(path.clone(), 1);
    }
    while let Some(tree) = next_tree(&reads, &listed, places) {
        let beneath: usize = reads
            .iter()
            .filter(|(p, _)| p.starts_with(&tree))
            .map(|(_, n)| *n)
            .sum();
        reads.retain(|p, _| !p.starts_with(&tree));
        reads.insert(tree.clone(), beneath);
        listed.insert(tree);
    }
    for dir in &listed {
        if reads.contains_key(dir) && !may_grant_dir(dir, places) {
            reads.remove(dir);
            out.not_granted.push((
                "list",
                dir.clone(),
                "listing it would grant reading everything beneath it".into(),
            ));
        }
    }
    out.read = minimal(reads);
    out
}

/// The deepest directory that is a read tree and may be granted, if any is left.
fn next_tree(
    reads: &BTreeMap<PathBuf, usize>,
    listed: &BTreeSet<PathBuf>,
    places: &Places,
) -> Option<PathBuf> {
    let mut children = BTreeMap::<&Path, usize>::new();
    for path in reads.keys() {
        if let Some(parent) = path.parent() {
            *children.entry(parent).or_default() += 1;
        }
    }
    let mut candidates: Vec<PathBuf> = children
        .iter()
        .filter(|(dir, n)| **n >= TREE_ENTRIES || listed.contains(**dir))
        .map(|(dir, _)| dir.to_path_buf())
        .filter(|dir| may_grant_dir(dir, places))
        // A listed directory with nothing read beneath it is already a rule.
        .filter(|dir| reads.keys().any(|p| p != dir && p.starts_with(dir)))
        .collect();
    candidates.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    candidates.into_iter().next()
}

/// Rules with every path beneath another rule dropped; notes say how many paths a rule covers.
fn minimal(paths: BTreeMap<PathBuf, usize>) -> Vec<Rule> {
    let mut kept: Vec<Rule> = Vec::new();
    for (path, n) in paths {
        // BTreeMap order puts an ancestor before its descendants.
        if kept.iter().any(|r| path.starts_with(&r.path)) {
            continue;
        }
        kept.push(Rule {
            note: (n > 1).then(|| format!("{n} paths seen beneath")),
            path,
        });
    }
    kept
}

/// The nearest ancestor of `path` (or `path`) that existed before the run and is a directory.
fn nearest_existing_dir(path: &Path, fs: &dyn FileFacts) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .find(|a| fs.existed_before(a) && fs.is_dir(a))
        .map(Path::to_path_buf)
}

/// Whether granting all of `dir` stays within what a user expects a learned profile to reach.
pub fn may_grant_dir(dir: &Path, places: &Places) -> bool {
    let secret = dir.components().any(|c| {
        SECRET_DIRS
            .iter()
            .any(|s| c.as_os_str() == std::ffi::OsStr::new(s))
    });
    if secret {
        return false;
    }
    let usable = |root: &Path| root != Path::new("/") && dir.starts_with(root);
    if usable(&places.cwd) || usable(&places.tmpdir) {
        return true;
    }
    if let Some(home) = &places.home {
        if home.starts_with(dir) {
            // ${HOME} itself or one of its ancestors.
            return false;
        }
        if dir.starts_with(home) {
            return true;
        }
    }
    dir.components().count() > 3
}

/// Why a written path can never be granted, if it cannot.
fn never_writable(path: &Path) -> Option<&'static str> {
    if let Some(why) = never_readable(path) {
        return Some(why);
    }
    const KERNEL: &[&str] = &["/proc", "/sys", "/boot"];
    const GUARD: &[&str] = &[
        "/run/guard",
        "/etc/guard",
        "/var/log/guard",
        "/var/lib/guard",
    ];
    if KERNEL.iter().any(|k| path.starts_with(k)) {
        return Some("kernel file systems are never writable");
    }
    if GUARD.iter().any(|g| path.starts_with(g)) {
        return Some("guard's own state is never writable");
    }
    None
}

/// Why a read path can never be granted, if it cannot.
fn never_readable(path: &Path) -> Option<&'static str> {
    let mut components = path.components().skip(1);
    if components.next().is_some_and(|c| c.as_os_str() == "proc") {
        let second = components.next().map(|c| c.as_os_str().to_string_lossy());
        if second.as_deref().is_some_and(|s| {
            s == "self" || s == "thread-self" || s.chars().all(|c| c.is_ascii_digit())
        }) {
            return Some("a /proc/<pid> path names one process; guard would open its own");
        }
    }
    if path.starts_with("/var/lib/guard") {
        return Some("guard's audit key is hidden from every sandbox");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file system described by lists: what existed before, and what is a directory now.
    struct Facts {
        before: Vec<&'static str>,
        dirs: Vec<&'static str>,
    }

    impl FileFacts for Facts {
        fn existed_before(&self, path: &Path) -> bool {
            self.before.iter().any(|p| Path::new(p) == path)
        }
        fn is_dir(&self, path: &Path) -> bool {
            self.dirs.iter().any(|p| Path::new(p) == path)
        }
        fn exists(&self, path: &Path) -> bool {
            !path.to_string_lossy().contains("missing")
        }
        fn interpreter(&self, path: &Path) -> Option<PathBuf> {
            (path == Path::new("/usr/bin/python3"))
                .then(|| PathBuf::from("/lib64/ld-linux-x86-64.so.2"))
        }
    }

    fn places() -> Places {
        Places {
            cwd: "/work/proj".into(),
            home: Some("/home/ann".into()),
            tmpdir: "/tmp".into(),
        }
    }

    fn paths(rules: &[Rule]) -> Vec<&str> {
        rules.iter().map(|r| r.path.to_str().unwrap()).collect()
    }

    fn observed(reads: &[&str], writes: &[&str], execs: &[&str]) -> Observed {
        Observed {
            reads: reads.iter().map(PathBuf::from).collect(),
            writes: writes.iter().map(PathBuf::from).collect(),
            execs: execs.iter().map(PathBuf::from).collect(),
            ..Observed::default()
        }
    }

    #[test]
    fn a_read_tree_collapses_to_its_directory_and_single_files_stay() {
        let facts = Facts {
            before: vec![],
            dirs: vec!["/usr/lib/python3.11/json"],
        };
        let o = observed(
            &[
                "/usr/lib/python3.11/os.py",
                "/usr/lib/python3.11/re.py",
                "/usr/lib/python3.11/json",
                "/usr/lib/python3.11/json/__init__.py",
                "/usr/lib/ssl/openssl.cnf",
                "/etc/hosts",
                "/etc/passwd",
                "/etc/group",
                "/usr/bin/pyvenv.cfg-missing",
            ],
            &[],
            &[],
        );
        let r = rules(&o, &places(), &facts);
        assert_eq!(r.missing_reads, 1);
        // python3.11: json (listed) plus two files: three entries, a tree; /usr/lib is too high,
        // and /etc (three entries) is too: single files there.
        assert_eq!(
            paths(&r.read),
            [
                "/etc/group",
                "/etc/hosts",
                "/etc/passwd",
                "/usr/lib/python3.11",
                "/usr/lib/ssl/openssl.cnf"
            ]
        );
    }

    #[test]
    fn secrets_and_home_are_never_collapsed() {
        let facts = Facts {
            before: vec![],
            dirs: vec!["/home/ann/.ssh", "/home/ann"],
        };
        let o = observed(
            &[
                "/home/ann/.ssh",
                "/home/ann/.ssh/config",
                "/home/ann/.ssh/known_hosts",
                "/home/ann/.ssh/id_ed25519.pub",
                "/home/ann/.gitconfig",
                "/home/ann/.profile",
                "/home/ann/.bashrc",
            ],
            &[],
            &[],
        );
        let r = rules(&o, &places(), &facts);
        assert_eq!(
            paths(&r.read),
            [
                "/home/ann/.bashrc",
                "/home/ann/.gitconfig",
                "/home/ann/.profile",
                "/home/ann/.ssh/config",
                "/home/ann/.ssh/id_ed25519.pub",
                "/home/ann/.ssh/known_hosts"
            ]
        );
        assert!(
            r.not_granted
                .iter()
                .any(|(what, p, _)| *what == "list" && p == Path::new("/home/ann/.ssh"))
        );
    }

    #[test]
    fn writes_are_granted_where_they_happened() {
        let facts = Facts {
            before: vec![
                "/work/proj",
                "/work/proj/Cargo.toml",
                "/home/ann",
                "/home/ann/.bash_history",
                "/home/ann/.cache",
                "/etc",
                "/",
                "/work",
                "/home",
            ],
            dirs: vec![
                "/work/proj",
                "/home/ann",
                "/home/ann/.cache",
                "/etc",
                "/",
                "/work",
                "/home",
            ],
        };
        let o = observed(
            &["/work/proj/Cargo.toml", "/work/proj/src/main.rs"],
            &[
                // Created during the run, in a new directory of the workspace.
                "/work/proj/target/debug/app",
                "/work/proj/target",
                // Overwritten in place.
                "/home/ann/.bash_history",
                // Created in a cache directory below ${HOME}.
                "/home/ann/.cache/tool/x",
                // Created in /etc: too wide to grant.
                "/etc/guard-demo",
                "/proc/self/attr/current",
            ],
            &[],
        );
        let r = rules(&o, &places(), &facts);
        assert_eq!(
            paths(&r.write),
            ["/home/ann/.bash_history", "/home/ann/.cache", "/work/proj"]
        );
        // Reads beneath a write rule need no rule of their own.
        assert!(r.read.is_empty(), "{:?}", r.read);
        let refused: Vec<&Path> = r.not_granted.iter().map(|(_, p, _)| p.as_path()).collect();
        assert!(refused.contains(&Path::new("/etc/guard-demo")));
        assert!(refused.contains(&Path::new("/proc/self/attr/current")));
    }

    #[test]
    fn an_executed_file_brings_its_interpreter_into_execute_only() {
        let facts = Facts {
            before: vec![],
            dirs: vec![],
        };
        let o = observed(&[], &[], &["/usr/bin/python3"]);
        let r = rules(&o, &places(), &facts);
        assert_eq!(paths(&r.exec), ["/usr/bin/python3"]);
        assert_eq!(
            paths(&r.execute),
            ["/lib64/ld-linux-x86-64.so.2", "/usr/bin/python3"]
        );
    }

    #[test]
    fn nothing_is_granted_that_was_not_seen() {
        let facts = Facts {
            before: vec![],
            dirs: vec![],
        };
        let r = rules(&Observed::default(), &places(), &facts);
        assert_eq!(r, Rules::default());
    }
}
