//! `guard learn`: run a command once, observed by guard's own layers, and write the profile it
//! needs (see [`crate::learn`] for what is observed and how it becomes rules).
//!
//! The run is a `guard exec --mode audit` under a learning profile that extends the starting
//! profile (`--from`, `base` by default) with the environment a tool usually needs; its audit log
//! lives in a private directory under `/run/guard/learn/` (no profile may write there) and is
//! removed once read.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use crate::commands::exec::{Invocation, invocation_status};
use crate::learn::interpreter::HostFiles;
use crate::learn::render::Learned;
use crate::learn::{Observed, Places};
use crate::plan::Mode;
use crate::profile::{ExpandContext, Lookup};
use crate::sandbox::exit::GUARD_FAILED;
use crate::sandbox::launch::LaunchRequest;

/// Where learning runs keep their audit logs (guard's state: never writable by a sandbox).
const LEARN_DIR: &str = "/run/guard/learn";

/// The environment a learning run keeps (and the learned profile with it): what tools read to
/// find programs, their home, locale, terminal and temporary directory.
pub const ENV_KEEP: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TERM", "TZ", "TMPDIR",
];

/// Arguments of `guard learn`.
#[derive(Debug, clap::Args)]
pub struct LearnArgs {
    /// Start from this profile (NAME or PATH): the learned profile extends it and grants only
    /// what the run did beyond it. Default: the built-in `base` fragment.
    #[arg(long, value_name = "PROFILE")]
    pub from: Option<String>,
    /// Write the profile here instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The learned profile's name (default: learned-<command>).
    #[arg(long)]
    pub name: Option<String>,
    /// Working directory of the command (and ${CWD} of the profile).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

/// Why `guard learn` could not learn.
#[derive(Debug, thiserror::Error)]
enum LearnError {
    #[error("guard learn observes with guard exec's own layers and must run as root")]
    NotRoot,
    #[error("cannot determine the current directory")]
    CurrentDir(#[source] std::io::Error),
    #[error("working directory {0}: not a directory")]
    Workdir(PathBuf),
    #[error("{0}: cannot prepare the learning run")]
    Prepare(PathBuf, #[source] std::io::Error),
    #[error("reading the run's audit log {0}")]
    ReadLog(PathBuf, #[source] std::io::Error),
    #[error("the run's audit log {0} is not JSON lines")]
    ParseLog(PathBuf, #[source] serde_json::Error),
    #[error("writing {0}")]
    Write(PathBuf, #[source] std::io::Error),
}

pub fn run(args: LearnArgs) -> ExitCode {
    match learn(&args) {
        Ok(status) => ExitCode::from(status),
        Err(err) => {
            eprintln!("guard learn: {}", crate::sandbox::launch::error_chain(&err));
            ExitCode::from(GUARD_FAILED)
        }
    }
}

/// Runs the command observed, writes the profile; returns the command's exit status.
fn learn(args: &LearnArgs) -> Result<u8, LearnError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LearnError::NotRoot);
    }
    let mut expand = ExpandContext::from_process().map_err(LearnError::CurrentDir)?;
    if let Some(dir) = &args.workdir {
        let dir = expand.cwd.join(dir);
        if !dir.is_dir() {
            return Err(LearnError::Workdir(dir));
        }
        expand.cwd = dir;
    }
    let from = args.from.clone().unwrap_or_else(|| "base".to_owned());
    let work = private_dir()?;
    let result = observe(args, &expand, &from, &work);
    let _ = std::fs::remove_dir_all(&work);
    let (status, observed, started) = result?;
    if status == GUARD_FAILED && observed.status.is_none() {
        // guard refused before anything ran (it said why): nothing was learned.
        return Ok(status);
    }

    let places = Places {
        cwd: expand.cwd.clone(),
        home: expand.home.clone(),
        tmpdir: expand.tmpdir.clone(),
    };
    let rules = crate::learn::paths::rules(&observed, &places, &HostFiles { started });
    let resolvers = crate::ebpf::rules::resolvers(
        &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    );
    let command: Vec<String> = args
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let name = args.name.clone().unwrap_or_else(|| {
        let program = Path::new(&command[0])
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("learned-{program}")
    });
    let env_keep: Vec<String> = ENV_KEEP.iter().map(|s| (*s).to_owned()).collect();
    let text = crate::learn::render(&Learned {
        name: &name,
        command: &command,
        from: &from,
        places: &places,
        rules: &rules,
        observed: &observed,
        env_keep: &env_keep,
        resolvers: &resolvers,
        unix_checked: crate::ebpf::unix_hooks::kernel_has_unix_hooks().is_ok(),
    });
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| LearnError::Write(path.clone(), e))?;
            eprintln!(
                "guard learn: wrote {} ({} read, {} write, {} execute rules, {} destinations, {} \
                 not granted); next: guard check {0}, guard explain {0}",
                path.display(),
                rules.read.len(),
                rules.write.len(),
                rules.execute.len(),
                observed.connects.len(),
                rules.not_granted.len() + observed.refused_syscalls.len(),
            );
        }
        None => {
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
    }
    if status != 0 {
        eprintln!(
            "guard learn: the command exited with status {status}; the profile holds what it did \
             until then"
        );
    }
    Ok(status)
}

/// Runs the command in audit mode under the learning profile and reads back its records.
fn observe(
    args: &LearnArgs,
    expand: &ExpandContext,
    from: &str,
    work: &Path,
) -> Result<(u8, Observed, SystemTime), LearnError> {
    // A name is looked up on the search path; a path is made absolute (against the caller's
    // directory, not --workdir), since the learning profile lives elsewhere.
    let from_ref = if crate::profile::lookup::is_path(from) {
        let here = std::env::current_dir().unwrap_or_else(|_| expand.cwd.clone());
        here.join(from).display().to_string()
    } else {
        from.to_owned()
    };
    let keep: Vec<String> = ENV_KEEP.iter().map(|k| format!("{k:?}")).collect();
    let learning = work.join("learning.toml");
    let text = format!(
        // dns: the DNS gate, which in audit mode answers every name and records it, so the
        // learned profile can name hosts rather than addresses.
        "name = \"learning\"\nextends = [{}]\n\n[network]\ndns = true\n\n[process]\nenv = {{ keep = [{}] }}\n",
        toml::Value::String(from_ref),
        keep.join(", ")
    );
    std::fs::write(&learning, text).map_err(|e| LearnError::Prepare(learning.clone(), e))?;
    // The run's start as the file systems' clock sees it. Their timestamps are coarse (a tick
    // of up to 10 ms), so a directory made just before the run can carry the marker's time:
    // "existed before" is "born no later than the marker", and the run starts a tick after
    // it, so nothing the run makes can carry the marker's time.
    let marker = work.join("started");
    std::fs::write(&marker, b"").map_err(|e| LearnError::Prepare(marker.clone(), e))?;
    let started = std::fs::metadata(&marker)
        .and_then(|m| m.created())
        .unwrap_or_else(|_| SystemTime::now());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let log = work.join("audit.jsonl");
    let invocation = Invocation {
        profile: learning.display().to_string(),
        lookup: Lookup::from_env(),
        request: LaunchRequest {
            command: args.command.clone(),
            workdir: expand.cwd.clone(),
            audit_log: Some(log.clone()),
            events: None,
            narrowed: Vec::new(),
        },
        narrowing: crate::profile::narrow::Narrowing::default(),
        expand: expand.clone(),
        parent_env: std::env::vars_os().collect(),
        mode: Mode::Audit,
        run_as: None,
    };
    let status = invocation_status(&invocation);
    let observed = match std::fs::read_to_string(&log) {
        Ok(text) => Observed::from_log(&text).map_err(|e| LearnError::ParseLog(log.clone(), e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && status == GUARD_FAILED => {
            Observed::default()
        }
        Err(e) => return Err(LearnError::ReadLog(log, e)),
    };
    Ok((status, observed, started))
}

/// A new directory only root can enter, for one learning run.
fn private_dir() -> Result<PathBuf, LearnError> {
    let parent = Path::new(LEARN_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|e| LearnError::Prepare(parent.to_path_buf(), e))?;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = parent.join(format!("{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| LearnError::Prepare(dir.clone(), e))?;
    Ok(dir)
}
