//! `guard audit verify FILE [--key PUB]`: checks a log's chain and seals, on this host or any
//! other (with the host's public key), and names the first bad line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::audit::chain::verify_log;
use crate::audit::seal::{PUBLIC_KEY, fingerprint, read_public};

/// Exit status for a log that fails verification.
const TAMPERED: u8 = 1;
/// Exit status when the check cannot run (no key, unreadable file).
const CANNOT_CHECK: u8 = 2;

pub fn verify(file: &Path, key: Option<&PathBuf>) -> ExitCode {
    let key_path = key.map_or_else(|| PathBuf::from(PUBLIC_KEY), Clone::clone);
    let key = match read_public(&key_path) {
        Ok(key) => key,
        Err(err) => {
            eprintln!(
                "guard audit verify: cannot read the public key: {err} (give the host's {PUBLIC_KEY} with --key)"
            );
            return ExitCode::from(CANNOT_CHECK);
        }
    };
    let log = match std::fs::File::open(file) {
        Ok(log) => log,
        Err(err) => {
            eprintln!("guard audit verify: {}: {err}", file.display());
            return ExitCode::from(CANNOT_CHECK);
        }
    };
    match verify_log(log, &key) {
        Ok(v) => {
            println!(
                "{}: intact: {} records, {} seals, signed by key {}",
                file.display(),
                v.records,
                v.seals,
                fingerprint(&key)
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{}: {err}", file.display());
            ExitCode::from(TAMPERED)
        }
    }
}
