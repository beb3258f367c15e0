//! `cargo xtask setup`: makes a Debian 12 host able to build and test guard.
//!
//! Every item is checked by probing the real thing (dpkg's status database, a binary's
//! `--version`, rustup's toolchain list), never by a marker file, so a half-finished earlier run
//! or a manual change is seen as it is. When nothing is missing this only runs a few quick probes.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{cmd, vm};

/// Debian packages guard needs, grouped by why.
const PACKAGE_GROUPS: &[(&str, &[&str])] = &[
    // The eBPF probes: the rustup toolchains here have no rust-src, so `core` for
    // bpfel-unknown-none is built by Debian's rustc 1.96 from its exactly matching source, and
    // bpf-linker links against LLVM 22, the same LLVM as that rustc (toolchain.md).
    (
        "eBPF toolchain",
        &[
            "llvm-22-dev",
            "rust-web-src",
            "rustc-web",
            "cargo-web",
            "rust-web-clippy",
        ],
    ),
    // The supervisor links libseccomp, found through pkg-config.
    ("supervisor build", &["libseccomp-dev", "pkg-config"]),
    // Tests: strace to watch syscalls of confined tools, curl as a network client to deny;
    // systemd for `systemd-analyze verify` of the units (not as PID 1), passwd for the daemon
    // tests' throw-away users.
    ("tests", &["strace", "curl", "python3", "systemd", "passwd"]),
    // `man guard-exec` after `cargo xtask install` (the pages are generated from the CLI).
    ("docs", &["man-db"]),
    // Benchmarks of guard against other sandboxes.
    ("benchmarks", &["hyperfine", "bubblewrap", "firejail"]),
    // `cargo xtask vm-test`: qemu boots the guest; the guest's userland is copied from the
    // packages `vm::image_packages` lists, which are installed below too.
    ("VM suite", &["qemu-system-x86"]),
];

/// The bpf-linker release that works with LLVM 22 and the pinned aya crates.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Where Debian's LLVM 22 lives; without it bpf-linker's build finds LLVM 14 and fails.
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// The rustup name under which Debian's compiler in /usr is linked for aya-build.
const DEB_TOOLCHAIN: &str = "deb-1.96";
/// The rustc version `DEB_TOOLCHAIN` must report.
const DEB_RUSTC_VERSION: &str = "1.96";

/// Installs what is missing and verifies everything, printing one line per item.
pub fn run() -> anyhow::Result<()> {
    check_rustup_components()?;
    ensure_packages()?;
    // After the packages: building bpf-linker needs llvm-22-dev, linking the toolchain needs rustc-web.
    ensure_bpf_linker()?;
    ensure_deb_toolchain()?;
    eprintln!("setup: done");
    Ok(())
}

/// rustfmt and clippy come with rustup's default profile; this host cannot download them.
fn check_rustup_components() -> anyhow::Result<()> {
    for (tool, component) in [("fmt", "rustfmt"), ("clippy", "clippy")] {
        let output = cmd::probe(Command::new("cargo").args([tool, "--version"]))?;
        match output {
            Some(out) if out.status.success() => {}
            _ => bail!(
                "`cargo {tool}` does not work; install it with `rustup component add {component}`"
            ),
        }
    }
    eprintln!("setup: found  cargo fmt, cargo clippy");
    Ok(())
}

fn ensure_packages() -> anyhow::Result<()> {
    let mut wanted: Vec<&str> = PACKAGE_GROUPS
        .iter()
        .flat_map(|(_, pkgs)| pkgs.iter().copied())
        .collect();
    for package in vm::image_packages() {
        if !wanted.contains(&package) {
            wanted.push(package);
        }
    }
    let missing = missing_packages(&wanted)?;
    if missing.is_empty() {
        let mut groups: Vec<&str> = PACKAGE_GROUPS.iter().map(|(group, _)| *group).collect();
        groups.push("VM image");
        eprintln!(
            "setup: found  {} Debian packages ({})",
            wanted.len(),
            groups.join(", ")
        );
        return Ok(());
    }
    eprintln!("setup: missing Debian packages: {}", missing.join(" "));
    require_root(&format!("apt-get install {}", missing.join(" ")))?;
    // The package lists of a fresh machine are stale or empty; refresh only when installing.
    cmd::run(
        Command::new("apt-get")
            .args(["update", "-q"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still_missing = missing_packages(&wanted)?;
    if !still_missing.is_empty() {
        bail!(
            "apt-get succeeded but these packages are still not installed: {}",
            still_missing.join(" ")
        );
    }
    eprintln!("setup: installed Debian packages: {}", missing.join(" "));
    Ok(())
}

/// The packages of `wanted` that dpkg does not report as installed.
fn missing_packages<'a>(wanted: &[&'a str]) -> anyhow::Result<Vec<&'a str>> {
    // dpkg-query exits 1 when some names are unknown to it; its stdout still lists the others,
    // so the exit status is not an error here.
    let output = cmd::probe(
        Command::new("dpkg-query")
            .args(["-W", "-f", "${Package}\\t${db:Status-Abbrev}\\n"])
            .args(wanted),
    )?
    .context("dpkg-query not found: this setup supports Debian 12 only")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(missing_from_dpkg_query(wanted, &stdout))
}

/// Parses `dpkg-query -W -f '${Package}\t${db:Status-Abbrev}\n'` output: a package is installed
/// when the second status letter is `i` and the error flag (third) is blank.
fn missing_from_dpkg_query<'a>(wanted: &[&'a str], dpkg_output: &str) -> Vec<&'a str> {
    let installed: Vec<&str> = dpkg_output
        .lines()
        .filter_map(|line| {
            let (name, status) = line.split_once('\t')?;
            let mut letters = status.chars();
            let _desired = letters.next()?;
            let state = letters.next()?;
            let error = letters.next().unwrap_or(' ');
            (state == 'i' && error == ' ').then_some(name)
        })
        .collect();
    wanted
        .iter()
        .copied()
        .filter(|pkg| !installed.contains(pkg))
        .collect()
}

fn ensure_bpf_linker() -> anyhow::Result<()> {
    let found = bpf_linker_version()?;
    if found.as_deref() == Some(BPF_LINKER_VERSION) {
        eprintln!("setup: found  bpf-linker {BPF_LINKER_VERSION}");
        return Ok(());
    }
    match &found {
        Some(v) => eprintln!("setup: bpf-linker is {v}, want {BPF_LINKER_VERSION}; installing"),
        None => eprintln!("setup: bpf-linker not found; installing (about 2 minutes)"),
    }
    cmd::run(
        Command::new("cargo")
            .args(["install", &format!("bpf-linker@{BPF_LINKER_VERSION}")])
            .args(["--locked", "--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", LLVM_PREFIX),
    )?;
    match bpf_linker_version()? {
        Some(v) if v == BPF_LINKER_VERSION => {
            eprintln!("setup: installed bpf-linker {v}");
            Ok(())
        }
        Some(v) => bail!(
            "installed bpf-linker {BPF_LINKER_VERSION}, but the one on PATH says {v}; \
             put ~/.cargo/bin first in PATH"
        ),
        None => bail!("installed bpf-linker, but it is not on PATH; add ~/.cargo/bin to PATH"),
    }
}

/// The version `bpf-linker --version` reports, `None` if it is not installed or says nothing usable.
fn bpf_linker_version() -> anyhow::Result<Option<String>> {
    let Some(output) = cmd::probe(Command::new("bpf-linker").arg("--version"))? else {
        return Ok(None);
    };
    if !output.status.success() {
        return Ok(None);
    }
    Ok(parse_bpf_linker_version(&String::from_utf8_lossy(&output.stdout)).map(String::from))
}

/// `bpf-linker 0.13.0` -> `0.13.0`.
fn parse_bpf_linker_version(output: &str) -> Option<&str> {
    let mut words = output.split_whitespace();
    (words.next()? == "bpf-linker").then_some(())?;
    words.next()
}

fn ensure_deb_toolchain() -> anyhow::Result<()> {
    let list = cmd::probe(Command::new("rustup").args(["toolchain", "list"]))?
        .context("rustup not found; install rustup with the stable toolchain first")?;
    if !list.status.success() {
        bail!(
            "`rustup toolchain list` failed: {}",
            String::from_utf8_lossy(&list.stderr)
        );
    }
    let linked = has_toolchain(&String::from_utf8_lossy(&list.stdout), DEB_TOOLCHAIN);
    if !linked {
        cmd::run(Command::new("rustup").args(["toolchain", "link", DEB_TOOLCHAIN, "/usr"]))?;
    }
    // Verified every time: the link may point at a compiler that was upgraded or removed since.
    let output =
        cmd::probe(Command::new("rustup").args(["run", DEB_TOOLCHAIN, "rustc", "--version"]))?
            .context("rustup not found")?;
    let version = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !rustc_version_is(&version, DEB_RUSTC_VERSION) {
        bail!(
            "toolchain {DEB_TOOLCHAIN} should be rustc {DEB_RUSTC_VERSION}, but `rustup run {DEB_TOOLCHAIN} rustc --version` said: {}{}",
            version.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let verb = if linked { "found " } else { "linked" };
    eprintln!(
        "setup: {verb} toolchain {DEB_TOOLCHAIN} ({})",
        version.trim()
    );
    Ok(())
}

/// Whether `rustup toolchain list` output names `toolchain` (the first word of a line).
fn has_toolchain(list_output: &str, toolchain: &str) -> bool {
    list_output
        .lines()
        .any(|line| line.split_whitespace().next() == Some(toolchain))
}

/// Whether `rustc --version` output is release `major_minor` (`rustc 1.96.0 (...)` is `1.96`).
fn rustc_version_is(output: &str, major_minor: &str) -> bool {
    let mut words = output.split_whitespace();
    words.next() == Some("rustc")
        && words.next().is_some_and(|v| {
            v.strip_prefix(major_minor)
                .is_some_and(|rest| rest.starts_with('.'))
        })
}

/// Installing system packages needs root; say what to run instead of letting apt-get fail obscurely.
fn require_root(what: &str) -> anyhow::Result<()> {
    let output = cmd::probe(Command::new("id").arg("-u"))?.context("`id` not found")?;
    if String::from_utf8_lossy(&output.stdout).trim() != "0" {
        bail!("setup must run as root to {what}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_query_installed_missing_and_half_installed() {
        let wanted = [
            "curl",
            "strace",
            "llvm-22-dev",
            "firejail",
            "pkg-config",
            "hyperfine",
        ];
        // curl installed; strace removed with config left; llvm half-installed; firejail on hold
        // and installed; pkg-config installed with reinstall-required error; hyperfine unknown.
        let output = "curl\tii \nstrace\trc \nllvm-22-dev\tiH \nfirejail\thi \npkg-config\tiiR\n";
        assert_eq!(
            missing_from_dpkg_query(&wanted, output),
            ["strace", "llvm-22-dev", "pkg-config", "hyperfine"]
        );
    }

    #[test]
    fn dpkg_query_all_installed() {
        let output = "curl\tii \nstrace\tii \n";
        assert!(missing_from_dpkg_query(&["curl", "strace"], output).is_empty());
    }

    #[test]
    fn bpf_linker_version_parsing() {
        assert_eq!(
            parse_bpf_linker_version("bpf-linker 0.13.0\n"),
            Some("0.13.0")
        );
        assert_eq!(parse_bpf_linker_version("something 0.13.0"), None);
        assert_eq!(parse_bpf_linker_version(""), None);
    }

    #[test]
    fn toolchain_list_parsing() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\nnightly-x86_64-unknown-linux-gnu\ndeb-1.96\n";
        assert!(has_toolchain(list, "deb-1.96"));
        assert!(!has_toolchain(list, "deb-1.9"));
        assert!(!has_toolchain("deb-1.96-old\n", "deb-1.96"));
    }

    #[test]
    fn rustc_version_matching() {
        assert!(rustc_version_is(
            "rustc 1.96.0 (ac68faa20 2026-05-25) (built from a source tarball)",
            "1.96"
        ));
        assert!(!rustc_version_is("rustc 1.95.0 (abc 2026-04-01)", "1.96"));
        assert!(!rustc_version_is("rustc 1.960.0", "1.96"));
        assert!(!rustc_version_is("", "1.96"));
    }

    #[test]
    fn package_list_has_no_duplicates() {
        let mut all: Vec<&str> = PACKAGE_GROUPS
            .iter()
            .flat_map(|(_, p)| p.iter().copied())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
