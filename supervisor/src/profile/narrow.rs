//! Per-call narrowing: flags a caller (a person, or an agent harness) adds to one `guard exec`
//! to take rights away from the named profile for that call only, never to add any.
//!
//! Applied to the resolved profile before it is compiled, so every layer sees the narrower
//! profile; recorded in the start record (`detail.narrowed`) so the audit log says the run had
//! less than its profile.

use serde::{Deserialize, Serialize};

use super::typed::{Network, Profile};

/// What one call takes away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Narrowing {
    /// No network at all: no connect, bind, unix path or DNS (so no IP socket can be created).
    #[serde(default)]
    pub no_network: bool,
    /// Nothing writable except character devices (`/dev/null` and the like): every other write
    /// path, `/dev/shm` included, becomes a read path.
    #[serde(default)]
    pub read_only: bool,
}

impl Narrowing {
    /// Takes the rights away from `profile`.
    pub fn apply(self, profile: &mut Profile) {
        if self.no_network {
            profile.network = Network {
                dns: Some(false),
                ..Network::default()
            };
        }
        if self.read_only {
            let writes = std::mem::take(&mut profile.filesystem.write);
            for path in writes {
                if is_device_file(path.as_str()) {
                    profile.filesystem.write.push(path);
                } else {
                    profile.filesystem.read.push(path);
                }
            }
        }
    }

    /// The flags set, by name, for the start record.
    pub fn names(self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.no_network {
            names.push("no_network");
        }
        if self.read_only {
            names.push("read_only");
        }
        names
    }
}

/// Whether a write path is a device file (`/dev/null`, `/dev/tty`): written, never a place to
/// store anything. A directory under /dev (`/dev/shm`, a tmpfs) is storage, and so is anything
/// a variable names.
fn is_device_file(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    path.starts_with("/dev/")
        && !path.contains('$')
        && std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Template;

    #[test]
    fn narrowing_only_takes_away() {
        let mut p = Profile::default();
        p.filesystem.write = vec![
            Template::parse_path("${CWD}").unwrap(),
            Template::parse_path("/dev/null").unwrap(),
        ];
        p.network.dns = Some(true);
        let before = p.clone();
        Narrowing::default().apply(&mut p);
        assert_eq!(p, before, "no flag, no change");
        Narrowing {
            no_network: true,
            read_only: true,
        }
        .apply(&mut p);
        assert_eq!(
            p.network,
            Network {
                dns: Some(false),
                ..Network::default()
            }
        );
        let raw = |v: &[Template]| v.iter().map(|t| t.as_str().to_owned()).collect::<Vec<_>>();
        assert_eq!(raw(&p.filesystem.write), ["/dev/null"]);
        assert!(raw(&p.filesystem.read).contains(&"${CWD}".to_owned()));
    }
}
