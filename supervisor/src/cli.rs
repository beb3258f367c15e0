//! The `guard` command line, defined once: the binary parses it, and the man pages and shell
//! completions are generated from it (`guard generate-docs`, run by `cargo xtask install`), so
//! `--help`, `man guard-exec` and tab completion cannot drift apart.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "guard",
    version,
    about = "Confine a tool process under a TOML profile",
    long_about = "Confine a tool process under a TOML profile: Landlock for files, seccomp for syscalls, \
                  cgroups for resources and eBPF probes for network and exec, with an audit record of \
                  every decision. Exit status 125 means guard refused or failed before the command ran.",
    after_help = "Examples:\n  guard exec --profile shell-readonly -- bash -c 'head -n1 /etc/passwd'\n  \
                  guard explain build\n  guard list\n  guard doctor"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Run CMD confined by a profile.
    #[command(after_help = "Examples:\n  \
        guard exec --profile shell-readonly -- ls -la\n  \
        guard exec --profile ./my-tool.toml --audit-log /var/tmp/tool.jsonl -- my-tool --flag\n  \
        guard exec --profile build --workdir ~/src/project -- cargo build --offline\n  \
        guard exec --profile python --mode audit -- python3 script.py   # record, do not deny\n  \
        guard exec --profile build --no-network --read-only -- make check   # narrower, this call only\n  \
        guard exec --profile python --events 3 -- python3 tool.py 3>events.jsonl   # for a harness\n\n\
        Exit status: the command's own; 128+N when it died of signal N (137: killed for a \
        violation); 125 when guard refused or failed before it ran; 126 not executable; 127 not found.")]
    Exec(crate::commands::exec::ExecArgs),
    /// Run CMD once, observed, and write the profile it needs.
    #[command(after_help = "Examples:\n  \
        guard learn -o my-tool.toml -- my-tool --flag\n  \
        guard learn --from python -o venv.toml -- python3 -m venv .venv\n  \
        guard check my-tool.toml && guard explain my-tool.toml\n\n\
        The command runs in audit mode under the starting profile (--from, default the built-in \
        base fragment): everything it does beyond that is recorded, not refused. The profile \
        grants exactly that, with trees it read collapsed to their directory and ${CWD}, \
        ${HOME} and ${TMPDIR} substituted; what no profile may grant is listed as comments. \
        Exit status: the command's own; 125 when guard could not run it.")]
    Learn(crate::commands::learn::LearnArgs),
    /// Validate profiles; errors as FILE:LINE:COL: key: message.
    #[command(
        after_help = "Examples:\n  guard check ./my-tool.toml\n  guard check profiles/*.toml"
    )]
    Check {
        #[arg(required = true)]
        profiles: Vec<PathBuf>,
    },
    /// Print the effective policy of a profile and which layer enforces each part on this host.
    #[command(
        after_help = "Examples:\n  guard explain build\n  guard explain ./my-tool.toml\n  \
        guard explain base        # the built-in fragment every profile extends"
    )]
    Explain {
        /// A profile NAME, a PATH to a TOML file, or a built-in fragment (base).
        profile: String,
    },
    /// List every profile guard can find, where it comes from and which one a NAME means.
    #[command(after_help = "Examples:\n  guard list\n  GUARD_PROFILE_PATH=./profiles guard list")]
    List,
    /// Print this host's kernel features and what they mean for profiles.
    #[command(after_help = "Examples:\n  sudo guard doctor")]
    Doctor,
    /// Remove guard's pinned eBPF probes from the kernel (refused while sandboxes run).
    #[command(after_help = "Examples:\n  sudo guard unload")]
    Unload,
    /// Serve `guard exec` to unprivileged callers (the systemd service).
    #[command(
        after_help = "Examples:\n  guard daemon --config /etc/guard/daemon.toml   # normally started by guard.socket"
    )]
    Daemon {
        /// The daemon's configuration file.
        #[arg(long, default_value = crate::daemon::config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// List the daemon's live sandboxes (your own; all of them as root).
    #[command(after_help = "Examples:\n  guard status\n  guard status --json | jq '.[].id'")]
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Kill one of the daemon's sandboxes (an ID from `guard status`).
    #[command(after_help = "Examples:\n  guard stop g1234-5f3a9c")]
    Stop { id: String },
    /// Check audit logs.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The daemon's per-sandbox process; started by `guard daemon` only.
    #[command(name = "daemon-worker", hide = true)]
    DaemonWorker,
    /// Write man pages and shell completions generated from this command line.
    #[command(name = "generate-docs", hide = true)]
    GenerateDocs {
        /// Directory for the man pages (guard.1, guard-exec.1, ...).
        #[arg(long)]
        man: PathBuf,
        /// Directory for the completions (guard.bash, _guard, guard.fish).
        #[arg(long)]
        completions: PathBuf,
    },
}

/// `guard audit ...`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check a log's hash chain and signed seals; exit 0 only if intact, 1 naming the first bad line.
    #[command(
        after_help = "Examples:\n  guard audit verify /var/log/guard/audit.jsonl\n  \
        guard audit verify copy-of-audit.jsonl --key audit-key.pub   # on another machine"
    )]
    Verify {
        /// The JSON-lines audit log.
        file: PathBuf,
        /// The host's public key (default /var/lib/guard/audit-key.pub).
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

/// Writes `guard.1` and one `guard-<sub>.1` per visible subcommand into `man`, and the bash,
/// zsh and fish completions into `completions`.
pub fn generate_docs(man: &std::path::Path, completions: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory as _;
    std::fs::create_dir_all(man)?;
    std::fs::create_dir_all(completions)?;
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(man.join("guard.1"), page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("guard-{}", sub.get_name());
        let sub = sub.clone().name(name.clone());
        let mut page = Vec::new();
        clap_mangen::Man::new(sub).render(&mut page)?;
        std::fs::write(man.join(format!("{name}.1")), page)?;
    }
    for (shell, file) in [
        (clap_complete::Shell::Bash, "guard.bash"),
        (clap_complete::Shell::Zsh, "_guard"),
        (clap_complete::Shell::Fish, "guard.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "guard", &mut out);
        std::fs::write(completions.join(file), out)?;
    }
    Ok(())
}
