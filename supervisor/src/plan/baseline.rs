//! The always-on syscall deny set: the `[syscalls].deny` list of the built-in `base` fragment,
//! applied to every sandbox whether or not its profile extends `base`.
//!
//! `extends = ["base"]` is how a profile gets the loader, libc and locale paths; leaving it out
//! must not also drop the escape set (keyrings shared with the host, io_uring, bpf, ptrace,
//! mount, ...): a profile written from scratch once kept root's user keyring writable, and a
//! key it added outlived the run. The list lives in the fragment, where each entry's comment
//! says why; this module only reads it.

use serde::Deserialize;

use crate::profile::lookup::FRAGMENTS;

/// The part of the `base` fragment this module reads; other keys are the profile parser's.
#[derive(Deserialize)]
struct Fragment {
    syscalls: Syscalls,
}

#[derive(Deserialize)]
struct Syscalls {
    deny: Vec<String>,
}

/// Why the built-in fragment could not be read (a build defect; unit-tested).
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("the built-in base fragment is missing")]
    Missing,
    #[error("reading the built-in base fragment's syscalls.deny")]
    Parse(#[source] toml::de::Error),
}

/// The always-on deny set (names and `@groups`, as written in the fragment).
pub fn always_denied() -> Result<Vec<String>, BaselineError> {
    let (_, text) = FRAGMENTS
        .iter()
        .find(|(name, _)| *name == "base")
        .ok_or(BaselineError::Missing)?;
    let fragment: Fragment = toml::from_str(text).map_err(BaselineError::Parse)?;
    Ok(fragment.syscalls.deny)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_fragment_yields_the_escape_set() {
        let deny = always_denied().expect("base fragment parses");
        for name in [
            "keyctl",
            "add_key",
            "io_uring_setup",
            "bpf",
            "ptrace",
            "@mount",
        ] {
            assert!(deny.iter().any(|d| d == name), "{name} is always denied");
        }
    }
}
