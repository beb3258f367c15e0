//! `cargo xtask install [--prefix PREFIX] [--destdir DIR] [--binary PATH]`: installs guard as a
//! service.
//!
//! - `PREFIX/bin/guard` (built with `cargo build --release` unless `--binary` names one);
//! - `PREFIX/lib/systemd/system/guard.service` and `guard.socket` from `packaging/systemd`, with
//!   `ExecStart` pointing at the installed binary;
//! - `/etc/guard/daemon.toml` (the default configuration, which grants nothing) and the shipped
//!   profiles in `/etc/guard/profiles`, each only when the file is not there yet: an
//!   administrator's edits are never overwritten.
//!
//! `--destdir` stages everything below a directory (as `make DESTDIR=` does) for packaging and
//! tests; the installed files still name the final paths.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::cmd;

/// The `ExecStart` binary in the unit file as written in the repository.
const UNIT_BINARY: &str = "/usr/local/bin/guard";

/// Options of `cargo xtask install`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Installation prefix of the binary and the unit files.
    #[arg(long, default_value = "/usr/local")]
    prefix: PathBuf,
    /// Stage the files below this directory instead of `/`.
    #[arg(long)]
    destdir: Option<PathBuf>,
    /// Install this guard binary instead of building one.
    #[arg(long)]
    binary: Option<PathBuf>,
}

/// Runs the task from the workspace root.
pub fn run(options: &Options) -> anyhow::Result<()> {
    if !options.prefix.is_absolute() {
        bail!("--prefix must be absolute: {}", options.prefix.display());
    }
    let binary = match &options.binary {
        Some(binary) => binary.clone(),
        None => {
            cmd::run(Command::new("cargo").args([
                "build",
                "--release",
                "--locked",
                "--package",
                "guard",
            ]))?;
            PathBuf::from("target/release/guard")
        }
    };
    let layout = Layout::new(&options.prefix, options.destdir.as_deref());
    let report = install(&layout, &binary, Path::new("."))?;
    for line in report {
        eprintln!("install: {line}");
    }
    if options.destdir.is_none() {
        eprintln!(
            "install: next: grant users profiles in /etc/guard/daemon.toml, then \
             `systemctl daemon-reload && systemctl enable --now guard.socket`"
        );
    }
    Ok(())
}

/// Where each file goes.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The binary's final path (what the unit names).
    pub binary: PathBuf,
    /// Staged paths.
    pub staged_binary: PathBuf,
    pub units: PathBuf,
    pub config: PathBuf,
    pub profiles: PathBuf,
    /// `PREFIX/share/man/man1`.
    pub man: PathBuf,
    /// bash, zsh and fish completion directories under `PREFIX/share`.
    pub bash_completions: PathBuf,
    pub zsh_completions: PathBuf,
    pub fish_completions: PathBuf,
}

impl Layout {
    pub fn new(prefix: &Path, destdir: Option<&Path>) -> Self {
        let stage = |path: &Path| match destdir {
            // `join` with an absolute path would drop the destdir.
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_owned(),
        };
        let binary = prefix.join("bin/guard");
        Layout {
            staged_binary: stage(&binary),
            binary,
            units: stage(&prefix.join("lib/systemd/system")),
            config: stage(Path::new("/etc/guard/daemon.toml")),
            profiles: stage(Path::new("/etc/guard/profiles")),
            man: stage(&prefix.join("share/man/man1")),
            bash_completions: stage(&prefix.join("share/bash-completion/completions")),
            zsh_completions: stage(&prefix.join("share/zsh/site-functions")),
            fish_completions: stage(&prefix.join("share/fish/vendor_completions.d")),
        }
    }
}

/// Installs from the repository at `repo`; returns one line per file.
pub fn install(layout: &Layout, binary: &Path, repo: &Path) -> anyhow::Result<Vec<String>> {
    let mut report = Vec::new();
    copy(binary, &layout.staged_binary, 0o755)?;
    report.push(format!("binary   {}", layout.staged_binary.display()));
    report.extend(install_docs(layout, binary)?);

    let service = fs::read_to_string(repo.join("packaging/systemd/guard.service"))
        .context("reading packaging/systemd/guard.service")?;
    let exec_start = format!("ExecStart={UNIT_BINARY} ");
    if !service.contains(&exec_start) {
        bail!("packaging/systemd/guard.service has no `{exec_start}` line to point at the binary");
    }
    let service = service.replace(
        &exec_start,
        &format!("ExecStart={} ", layout.binary.display()),
    );
    write(&layout.units.join("guard.service"), &service, 0o644)?;
    copy(
        &repo.join("packaging/systemd/guard.socket"),
        &layout.units.join("guard.socket"),
        0o644,
    )?;
    report.push(format!(
        "units    {}/guard.{{service,socket}}",
        layout.units.display()
    ));

    let config = fs::read_to_string(repo.join("packaging/etc/daemon.toml"))
        .context("reading packaging/etc/daemon.toml")?;
    report.push(write_new(&layout.config, &config)?);
    let mut profiles: Vec<PathBuf> = fs::read_dir(repo.join("profiles"))
        .context("listing profiles/")?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    profiles.sort();
    for profile in profiles
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
    {
        let Some(name) = profile.file_name() else {
            continue;
        };
        let text = fs::read_to_string(profile)
            .with_context(|| format!("reading {}", profile.display()))?;
        report.push(write_new(&layout.profiles.join(name), &text)?);
    }
    Ok(report)
}

/// Man pages and shell completions, generated by the binary from its own command line.
fn install_docs(layout: &Layout, binary: &Path) -> anyhow::Result<Vec<String>> {
    let scratch = std::env::temp_dir().join(format!("guard-xtask-docs-{}", std::process::id()));
    let completions = scratch.join("completions");
    let generated = cmd::run(Command::new(binary).args([
        "generate-docs".as_ref(),
        "--man".as_ref(),
        layout.man.as_os_str(),
        "--completions".as_ref(),
        completions.as_os_str(),
    ]));
    let placed = generated.and_then(|()| {
        for (file, dir, name) in [
            ("guard.bash", &layout.bash_completions, "guard"),
            ("_guard", &layout.zsh_completions, "_guard"),
            ("guard.fish", &layout.fish_completions, "guard.fish"),
        ] {
            copy(&completions.join(file), &dir.join(name), 0o644)?;
        }
        Ok(())
    });
    let _ = fs::remove_dir_all(&scratch);
    placed?;
    Ok(vec![
        format!("man      {}/guard.1, guard-*.1", layout.man.display()),
        format!(
            "complete {}, {}, {}",
            layout.bash_completions.display(),
            layout.zsh_completions.display(),
            layout.fish_completions.display()
        ),
    ])
}

/// Writes `text` to `path` unless it exists; says which happened.
fn write_new(path: &Path, text: &str) -> anyhow::Result<String> {
    if path.exists() {
        return Ok(format!("kept     {} (already there)", path.display()));
    }
    write(path, text, 0o644)?;
    Ok(format!("config   {}", path.display()))
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    create_parent(path)?;
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

fn copy(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    create_parent(to)?;
    // Replaced, not overwritten in place: a running daemon keeps its old binary intact.
    let temporary = to.with_extension("xtask-new");
    fs::copy(from, &temporary)
        .with_context(|| format!("copying {} to {}", from.display(), temporary.display()))?;
    fs::set_permissions(&temporary, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", temporary.display()))?;
    fs::rename(&temporary, to).with_context(|| format!("installing {}", to.display()))
}

fn create_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}
