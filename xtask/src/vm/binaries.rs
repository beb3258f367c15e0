//! guard, its tests and the guest init, built statically for the guest.
//!
//! The guest has no Rust toolchain and none of the host's build-time libraries, so everything
//! Rust that runs there is linked with `+crt-static` (glibc and libseccomp included). The build
//! uses its own target directory, `target/vm/build`, so the host's builds keep their cache, and
//! passes the flags through `--target`-specific variables, so build scripts, proc macros and the
//! eBPF build inside `supervisor/build.rs` are compiled as usual.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use super::elf;
use crate::cmd;

/// The host triple, spelled out so the static flags apply to it and not to build scripts.
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// What the guest runs.
#[derive(Debug)]
pub struct Binaries {
    /// The `guard` binary the end-to-end tests drive (cargo's `CARGO_BIN_EXE_guard`).
    pub guard: PathBuf,
    /// Test executables: (label, path), the unit tests of the guard crate and `e2e`.
    pub tests: Vec<(String, PathBuf)>,
    /// The guest's PID 1.
    pub init: PathBuf,
}

/// Builds everything the guest runs and checks that it really is static.
pub fn build(target_dir: &Path) -> anyhow::Result<Binaries> {
    let mut tests = Vec::new();
    let mut guard = None;
    for artifact in cargo_json(target_dir, &["test", "--no-run", "--package", "guard"])? {
        let Artifact {
            name,
            kinds,
            test,
            executable,
        } = artifact;
        if test {
            // `e2e`, or `guard-lib` / `guard-bin` for the crate's unit tests.
            let label = if kinds.iter().any(|k| k == "test") {
                name
            } else {
                format!("{name}-{}", kinds.join("-"))
            };
            tests.push((label, executable));
        } else if name == "guard" && kinds.iter().any(|k| k == "bin") {
            guard = Some(executable);
        }
    }
    let init = cargo_json(
        target_dir,
        &[
            "build",
            "--package",
            "guard-vm-init",
            "--bin",
            "guard-vm-init",
        ],
    )?
    .into_iter()
    .find(|a| a.name == "guard-vm-init")
    .map(|a| a.executable)
    .context("cargo built no guard-vm-init executable")?;
    let guard = guard.context("cargo built no guard executable")?;
    for path in std::iter::once(&guard)
        .chain(std::iter::once(&init))
        .chain(tests.iter().map(|(_, p)| p))
    {
        ensure_static(path)?;
    }
    Ok(Binaries { guard, tests, init })
}

/// An executable cargo built.
#[derive(Debug, PartialEq, Eq)]
struct Artifact {
    /// The target's name (`guard`, `e2e`).
    name: String,
    /// The target's kinds (`bin`, `lib`, `test`).
    kinds: Vec<String>,
    /// Built as a test harness.
    test: bool,
    executable: PathBuf,
}

/// Runs cargo with `--message-format=json` and returns each executable it reports. Cargo's own
/// progress goes to stderr.
fn cargo_json(target_dir: &Path, args: &[&str]) -> anyhow::Result<Vec<Artifact>> {
    let mut command = Command::new("cargo");
    command
        .args(args)
        .args(["--locked", "--target", TARGET, "--message-format=json"])
        .arg("--target-dir")
        .arg(target_dir)
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        // libseccomp-sys links the shared library unless told otherwise; a static binary that
        // still names libseccomp.so.2 would not start in the guest.
        .env("LIBSECCOMP_LINK_TYPE", "static")
        .env("LIBSECCOMP_LIB_PATH", "/usr/lib/x86_64-linux-gnu")
        // Debug info would triple the binaries' size (and the initramfs) for nothing the guest
        // console shows; panics still name functions.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_PROFILE_DEV_STRIP", "debuginfo")
        // Emulated CPUs are ten times slower than the host's: unoptimised dependencies (aya
        // parsing the kernel's 5 MB of BTF, libseccomp's compiler) made every guard start and the
        // doctor test cost seconds. guard's own crates stay unoptimised, so rebuilding after a
        // change is as quick as on the host.
        .args(["--config", "profile.dev.package.\"*\".opt-level = 2"])
        .stdout(Stdio::piped());
    let line = cmd::display(&command);
    eprintln!("+ {line}");
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let stdout = child.stdout.take().context("cargo has no stdout pipe")?;
    let mut found = Vec::new();
    for text in std::io::BufReader::new(stdout).lines() {
        let text = text.context("reading cargo's output")?;
        if let Some(artifact) = executable_artifact(&text) {
            found.push(artifact);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{line}` failed: {status}");
    }
    Ok(found)
}

/// One `compiler-artifact` message with an executable.
fn executable_artifact(json: &str) -> Option<Artifact> {
    let message: serde_json::Value = serde_json::from_str(json).ok()?;
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let executable = message["executable"].as_str()?;
    let target = &message["target"];
    let kinds = target["kind"]
        .as_array()?
        .iter()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    Some(Artifact {
        name: target["name"].as_str()?.to_string(),
        kinds,
        test: message["profile"]["test"].as_bool()?,
        executable: PathBuf::from(executable),
    })
}

/// Fails unless `path` needs neither a loader nor a shared library.
fn ensure_static(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let dynamic =
        elf::parse(&bytes).with_context(|| format!("{} is not an ELF64 file", path.display()))?;
    if dynamic.interpreter.is_some() || !dynamic.needed.is_empty() {
        bail!(
            "{} is not static: interpreter {:?}, needs {:?}",
            path.display(),
            dynamic.interpreter,
            dynamic.needed
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_read_from_cargo_messages() {
        let test = r#"{"reason":"compiler-artifact","target":{"name":"e2e","kind":["test"]},"profile":{"test":true},"executable":"/t/deps/e2e-1"}"#;
        assert_eq!(
            executable_artifact(test),
            Some(Artifact {
                name: "e2e".into(),
                kinds: vec!["test".into()],
                test: true,
                executable: PathBuf::from("/t/deps/e2e-1")
            })
        );
        let lib = r#"{"reason":"compiler-artifact","target":{"name":"guard","kind":["lib"]},"profile":{"test":false},"executable":null}"#;
        assert_eq!(executable_artifact(lib), None);
        assert_eq!(
            executable_artifact(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(executable_artifact("Compiling guard"), None);
    }

    #[test]
    fn a_dynamic_host_binary_is_not_static() {
        let err = ensure_static(Path::new("/bin/sh")).unwrap_err();
        assert!(err.to_string().contains("is not static"), "{err}");
    }
}
