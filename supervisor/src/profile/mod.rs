//! Profiles: the TOML model, parsing with source spans, validation, `extends`, variable expansion
//! and lookup by name.
//!
//! [`load`] goes from a NAME or PATH to a [`ResolvedProfile`]: every file of the `extends` chain
//! parsed and validated, all problems collected as [`Diagnostic`]s (`FILE:LINE:COL: key: message`),
//! and the layers merged. Compiling a resolved profile into a [`crate::plan::Plan`] happens there.
//!
//! Beyond the keys of design.md a profile may say `allow_weaker = ["landlock.net",
//! "landlock.scope", "bpf.lsm"]`: the parts it accepts to have enforced more weakly on hosts
//! whose kernel lacks them (see [`crate::policy::Weakening`]).

pub mod catalog;
pub mod expand;
pub mod extends;
pub mod lookup;
pub mod model;
pub mod narrow;
pub mod parse;
pub mod typed;
pub mod validate;
pub mod values;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

pub use expand::{ExpandContext, Template};
pub use lookup::{Lookup, Source};
pub use parse::{Diagnostic, Diagnostics};
pub use typed::Profile;

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile `{name}` not found in {} or the shipped profiles", searched_list(.searched))]
    NotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("`{0}` is not a profile name (letters, digits, `-`, `_`, `.`) or a path")]
    BadName(String),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a regular file ({kind}); a profile is a TOML file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: {size} bytes; a profile may have at most {} bytes", path.display(), lookup::MAX_PROFILE_BYTES)]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{0}")]
    Invalid(Diagnostics),
}

fn searched_list(dirs: &[PathBuf]) -> String {
    let v: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    v.join(", ")
}

/// A profile with its `extends` chain merged, ready to compile.
#[derive(Debug, Clone)]
pub struct ResolvedProfile {
    /// `name`, or the file stem when the file has none.
    pub name: String,
    pub description: Option<String>,
    /// The top file as diagnostics name it.
    pub file: String,
    /// SHA-256 (hex) of the top file's bytes.
    pub sha256: String,
    /// Files merged, parents first.
    pub layers: Vec<String>,
    /// The merged settings.
    pub profile: Profile,
}

/// Looks up `spec` (NAME or PATH) and resolves it.
pub fn load(spec: &str, lookup: &Lookup) -> Result<ResolvedProfile, ProfileError> {
    let source = lookup.find(spec, None)?;
    resolve(&source, lookup)
}

/// Resolves an already read profile file.
pub fn resolve(source: &Source, lookup: &Lookup) -> Result<ResolvedProfile, ProfileError> {
    let r = extends::resolve(source, lookup);
    if !r.diagnostics.is_empty() {
        return Err(ProfileError::Invalid(Diagnostics(r.diagnostics)));
    }
    let stem = source
        .display
        .rsplit('/')
        .next()
        .unwrap_or(&source.display)
        .trim_end_matches(".toml")
        .to_owned();
    Ok(ResolvedProfile {
        name: r.profile.name.clone().unwrap_or(stem),
        description: r.profile.description.clone(),
        file: source.display.clone(),
        sha256: sha256_hex(source.text.as_bytes()),
        layers: r.layers,
        profile: r.profile,
    })
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_of_the_file_bytes() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn every_shipped_profile_resolves() {
        let lookup = Lookup {
            dirs: Vec::new(),
            shipped: true,
        };
        for (name, _) in lookup::SHIPPED {
            let p = load(name, &lookup).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.name, name);
            assert!(p.description.is_some(), "{name} has no description");
        }
    }
}
