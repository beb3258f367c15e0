//! The version stamp of a probe object: the first 8 bytes of its SHA-256, in hex.
//!
//! Shared by `build.rs` (which stamps the object it builds, so no `guard exec` hashes the
//! embedded object at start-up) and the tests; kept free of crate imports for that reason.

use sha2::{Digest as _, Sha256};

/// The stamp of `object`.
pub fn stamp_of(object: &[u8]) -> String {
    Sha256::digest(object)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
