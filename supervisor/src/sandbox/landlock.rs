//! Turning a [`LandlockPlan`] into a Landlock ruleset, in the supervisor, before `fork`.
//!
//! The ruleset is built for exactly the ABI this kernel reports, with
//! [`CompatLevel::HardRequirement`], so nothing is silently dropped. Whether what this ABI lacks
//! is covered by another layer is the enforcement model's decision ([`crate::enforcement`]), made
//! before anything runs. The child only calls `landlock_restrict_self` on the returned fd.
//!
//! Rights per grant: `read` = read files and list directories; `write` = read plus every
//! modifying right of the ABI (create, remove, truncate, refer, device ioctl); `execute` = read
//! plus execute.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, Scope,
};

use crate::plan::landlock::{FsGrant, LandlockPlan, PortRange};
use crate::sandbox::rule_paths::{RulePathError, open_rule_path};

use crate::enforcement::landlock_abi::{NET as ABI_NET, SCOPE as ABI_SCOPE};

/// A ruleset ready for `landlock_restrict_self` in the child.
#[derive(Debug)]
pub struct PreparedLandlock {
    /// `None` when the kernel has no Landlock.
    pub ruleset: Option<OwnedFd>,
    /// Paths of the plan that do not exist on this host (nothing to grant beneath them).
    pub missing_paths: Vec<PathBuf>,
}

/// Errors while building the ruleset.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("creating the Landlock ruleset")]
    CreateRuleset(#[source] RulesetError),
    #[error("adding the Landlock rule for {path}")]
    AddPathRule {
        path: PathBuf,
        #[source]
        source: RulesetError,
    },
    #[error(transparent)]
    RulePath(#[from] RulePathError),
    #[error("adding the Landlock rule for TCP port {port}")]
    AddPortRule {
        port: u16,
        #[source]
        source: RulesetError,
    },
}

/// File rights for one grant at `abi`.
pub fn fs_rights(grant: FsGrant, abi: ABI) -> BitFlags<AccessFs> {
    let mut rights = BitFlags::<AccessFs>::empty();
    if grant.read || grant.write || grant.execute {
        rights |= AccessFs::ReadFile | AccessFs::ReadDir;
    }
    if grant.write {
        rights |= AccessFs::from_write(abi);
    }
    if grant.execute {
        rights |= AccessFs::Execute;
    }
    rights & AccessFs::from_all(abi)
}

/// Whether an opened rule path is a directory (an fstat failure counts as a file: file
/// rights are the smaller set).
fn is_directory(fd: &impl AsFd) -> bool {
    nix::sys::stat::fstat(fd.as_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Builds the ruleset for `plan` at the host's `abi` (0 = no Landlock).
pub fn prepare(plan: &LandlockPlan, abi: u32) -> Result<PreparedLandlock, LandlockError> {
    if abi == 0 {
        return Ok(PreparedLandlock {
            ruleset: None,
            missing_paths: Vec::new(),
        });
    }
    let abi_level = ABI::from(i32::try_from(abi).unwrap_or(i32::MAX));
    let restrict_connect = abi >= ABI_NET && PortRange::restricts(&plan.tcp_connect);
    let restrict_bind = abi >= ABI_NET && PortRange::restricts(&plan.tcp_bind);

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi_level))
        .map_err(LandlockError::CreateRuleset)?;
    if restrict_connect {
        ruleset = ruleset
            .handle_access(AccessNet::ConnectTcp)
            .map_err(LandlockError::CreateRuleset)?;
    }
    if restrict_bind {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp)
            .map_err(LandlockError::CreateRuleset)?;
    }
    if abi >= ABI_SCOPE && plan.scope {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(LandlockError::CreateRuleset)?;
    }
    let mut created = ruleset.create().map_err(LandlockError::CreateRuleset)?;

    let mut missing_paths = Vec::new();
    let write_paths: Vec<&Path> = plan.write_paths().collect();
    for rule in &plan.paths {
        // Beneath a write path, links the sandbox planted in an earlier run must not redirect
        // the rule (see `rule_paths`).
        let Some(fd) = open_rule_path(&rule.path, &write_paths)? else {
            // A path that does not exist grants nothing; the parent directory's rules decide
            // whether it may be created.
            missing_paths.push(rule.path.clone());
            continue;
        };
        let mut rights = fs_rights(rule.grant, abi_level);
        // Directory-only rights on a file make landlock_add_rule fail with EINVAL. Asked of
        // the opened fd, not the path, which could have changed since.
        if !is_directory(&fd) {
            rights &= AccessFs::from_file(abi_level);
        }
        created = created
            .add_rule(PathBeneath::new(fd, rights))
            .map_err(|source| LandlockError::AddPathRule {
                path: rule.path.clone(),
                source,
            })?;
    }
    for (restrict, ranges, access) in [
        (restrict_connect, &plan.tcp_connect, AccessNet::ConnectTcp),
        (restrict_bind, &plan.tcp_bind, AccessNet::BindTcp),
    ] {
        if !restrict {
            continue;
        }
        for range in ranges {
            for port in range.first..=range.last {
                created = created
                    .add_rule(NetPort::new(port, access))
                    .map_err(|source| LandlockError::AddPortRule { port, source })?;
            }
        }
    }
    Ok(PreparedLandlock {
        ruleset: created.into(),
        missing_paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first: u16, last: u16) -> PortRange {
        PortRange { first, last }
    }

    #[test]
    fn read_grant_has_no_write_or_execute() {
        let rights = fs_rights(
            FsGrant {
                read: true,
                ..FsGrant::default()
            },
            ABI::V7,
        );
        assert!(rights.contains(AccessFs::ReadFile | AccessFs::ReadDir));
        assert!(!rights.contains(AccessFs::WriteFile));
        assert!(!rights.contains(AccessFs::Execute));
    }

    #[test]
    fn write_grant_includes_truncate_and_read_but_not_execute() {
        let rights = fs_rights(
            FsGrant {
                write: true,
                ..FsGrant::default()
            },
            ABI::V7,
        );
        assert!(rights.contains(AccessFs::WriteFile | AccessFs::Truncate | AccessFs::ReadFile));
        assert!(!rights.contains(AccessFs::Execute));
    }

    #[test]
    fn rights_never_exceed_the_abi() {
        let rights = fs_rights(
            FsGrant {
                read: true,
                write: true,
                execute: true,
            },
            ABI::V1,
        );
        assert!(!rights.contains(AccessFs::Truncate));
        assert!(!rights.contains(AccessFs::Refer));
    }

    #[test]
    fn full_port_coverage_is_detected_across_ranges() {
        assert!(!PortRange::restricts(&[range(0, 1000), range(1001, 65535)]));
        assert!(!PortRange::restricts(&[range(500, 65535), range(0, 600)]));
        assert!(PortRange::restricts(&[range(0, 1000), range(1002, 65535)]));
        assert!(PortRange::restricts(&[]));
        assert!(!PortRange::restricts(&[PortRange::ALL]));
    }
}
