//! The Landlock part of a plan: path rules, TCP port rules and scopes.

use std::path::PathBuf;

/// Access a profile grants beneath one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsGrant {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// One `path -> grant` rule; paths are absolute and already expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub path: PathBuf,
    pub grant: FsGrant,
}

/// A TCP port range (inclusive) for Landlock network rules (ABI 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// Every port: Landlock then restricts nothing for that access right.
    pub const ALL: PortRange = PortRange {
        first: 0,
        last: u16::MAX,
    };

    /// Whether `ranges` leave out some port (otherwise there is nothing for Landlock to do).
    pub fn restricts(ranges: &[PortRange]) -> bool {
        let mut sorted: Vec<PortRange> = ranges.to_vec();
        sorted.sort_by_key(|r| r.first);
        let mut next: u32 = 0;
        for r in sorted {
            if u32::from(r.first) > next {
                return true;
            }
            next = next.max(u32::from(r.last) + 1);
        }
        next <= u32::from(u16::MAX)
    }
}

/// A file access, as Landlock's rights group them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAccess {
    Read,
    Write,
    Execute,
}

impl FileAccess {
    /// The profile key that grants it.
    pub fn key(self) -> &'static str {
        match self {
            FileAccess::Read => "filesystem.read",
            FileAccess::Write => "filesystem.write",
            FileAccess::Execute => "filesystem.execute",
        }
    }
}

/// What Landlock must enforce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LandlockPlan {
    /// Merged rules, one per path.
    pub paths: Vec<PathRule>,
    /// TCP ports the tool may connect to (union of `network.connect` ports); empty = none.
    pub tcp_connect: Vec<PortRange>,
    /// TCP ports the tool may bind (from `network.bind`); empty = none.
    pub tcp_bind: Vec<PortRange>,
    /// Scope abstract unix sockets and signals to the sandbox (ABI 6).
    pub scope: bool,
}

impl LandlockPlan {
    /// Whether some rule grants `access` on `path` (absolute, normalized) or a directory above
    /// it: what Landlock would decide, by path (audit mode asks this of the paths it sees).
    pub fn allows(&self, path: &std::path::Path, access: FileAccess) -> bool {
        self.paths.iter().any(|rule| {
            let granted = match access {
                // write and execute include read (see sandbox::landlock::fs_rights)
                FileAccess::Read => rule.grant.read || rule.grant.write || rule.grant.execute,
                FileAccess::Write => rule.grant.write,
                FileAccess::Execute => rule.grant.execute,
            };
            granted && path.starts_with(&rule.path)
        })
    }
}

impl LandlockPlan {
    /// The paths granted for writing (what the protected-path, planted-link, exec-overlap and
    /// read-only-tree checks all start from).
    pub fn write_paths(&self) -> impl Iterator<Item = &std::path::Path> {
        self.paths
            .iter()
            .filter(|rule| rule.grant.write)
            .map(|rule| rule.path.as_path())
    }
}
