//! The host's signing key and the `seal` records made with it.
//!
//! Every run ends with a `seal` record: the chain head (its `prev`, the hash of the line before
//! it, which covers every earlier line of the file through the chain) and an Ed25519 signature
//! over the seal line itself, written with `"sig":""` in place of the signature. Re-chaining a
//! changed log would need a new signature, so only the key's holder can extend a log in a way
//! that verifies; anyone with the public key can check it, on any machine.
//!
//! The key is created on first use: the private half in [`PRIVATE_KEY`] (mode 0600, directory
//! 0700, root), the public half next to it in [`PUBLIC_KEY`] (0644), both as hex. Sandboxes
//! never see the directory: the child mounts an empty read-only tmpfs over it (see
//! `sandbox::mounts`), whatever the profile grants.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

/// Where the host key lives.
pub const KEY_DIR: &str = "/var/lib/guard";
/// The private key, hex, mode 0600.
pub const PRIVATE_KEY: &str = "/var/lib/guard/audit-key";
/// The public key, hex, mode 0644: give it to whoever verifies logs elsewhere.
pub const PUBLIC_KEY: &str = "/var/lib/guard/audit-key.pub";

/// Why the key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a hex-encoded 32-byte key", path.display())]
    Malformed { path: PathBuf },
    #[error("getting random bytes for a new key: {0}")]
    Random(nix::Error),
}

/// The host's signing key, created on first use.
pub fn host_key() -> Result<SigningKey, KeyError> {
    let private = Path::new(PRIVATE_KEY);
    match read_hex(private) {
        Ok(bytes) => return Ok(SigningKey::from_bytes(&bytes)),
        Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Io { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(KEY_DIR)
        .map_err(io(Path::new(KEY_DIR)))?;
    let mut seed = [0u8; 32];
    fill_random(&mut seed)?;
    let key = SigningKey::from_bytes(&seed);
    // create_new: two guards starting at once cannot both write a key; the loser reads the
    // winner's.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(private)
    {
        Ok(mut file) => {
            file.write_all(format!("{}\n", hex(&seed)).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io(private))?;
            let public = Path::new(PUBLIC_KEY);
            std::fs::write(public, format!("{}\n", hex(key.verifying_key().as_bytes())))
                .map_err(io(public))?;
            Ok(key)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            read_hex(private).map(|bytes| SigningKey::from_bytes(&bytes))
        }
        Err(err) => Err(io(private)(err)),
    }
}

/// A public key file as [`host_key`] writes it.
pub fn read_public(path: &Path) -> Result<VerifyingKey, KeyError> {
    let bytes = read_hex(path)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Malformed {
        path: path.to_owned(),
    })
}

/// The short name of a public key in seal records: the first 8 bytes of its SHA-256, hex.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let digest = super::chain::line_hash(key.as_bytes());
    digest[..16].to_owned()
}

/// The hex signature of `message`.
pub fn sign(key: &SigningKey, message: &[u8]) -> String {
    hex(&key.sign(message).to_bytes())
}

/// Whether `sig_hex` is `key`'s signature of `message`.
pub fn verify(key: &VerifyingKey, message: &[u8], sig_hex: &str) -> bool {
    let Some(bytes) = unhex::<64>(sig_hex) else {
        return false;
    };
    key.verify(message, &Signature::from_bytes(&bytes)).is_ok()
}

fn read_hex(path: &Path) -> Result<[u8; 32], KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    unhex::<32>(text.trim()).ok_or_else(|| KeyError::Malformed {
        path: path.to_owned(),
    })
}

fn fill_random(buf: &mut [u8]) -> Result<(), KeyError> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: getrandom writes at most the given length into the buffer.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let err = nix::Error::last();
            if err == nix::Error::EINTR {
                continue;
            }
            return Err(KeyError::Random(err));
        }
        filled += usize::try_from(n).unwrap_or(0);
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_the_signed_message_and_key() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let other = SigningKey::from_bytes(&[8u8; 32]);
        let sig = sign(&key, b"line");
        assert!(verify(&key.verifying_key(), b"line", &sig));
        assert!(!verify(&key.verifying_key(), b"lime", &sig));
        assert!(!verify(&other.verifying_key(), b"line", &sig));
        assert!(!verify(&key.verifying_key(), b"line", "zz"));
        assert_eq!(unhex::<2>("0aff"), Some([10, 255]));
        assert_eq!(fingerprint(&key.verifying_key()).len(), 16);
    }
}
