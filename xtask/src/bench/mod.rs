//! `cargo xtask bench`: what guard costs, each number a ratio to the same work without guard
//! measured in the same run (the host is shared and noisy; only ratios taken side by side mean
//! anything there).
//!
//! Sections, each in its own module:
//! - [`startup`]: `guard exec -- /bin/true` warm, cold and through the daemon, against bare
//!   `/bin/true`, bubblewrap and firejail (hyperfine), with peak RSS;
//! - [`micro`]: getppid, TCP connect, UDP send and fork+exec loops bare and guarded
//!   ([`workload`] is the program they run);
//! - [`storm`]: an exec storm under `--audit-log`, execs counted against audit records, of a
//!   tiny static executable ([`exit0`]) so the host can reach the target rate;
//! - [`limits`]: where a warm and a cold start spend their time, and [`findings`]: what
//!   that and the rest say limits guard.
//!
//! The results are checked against issue #7's targets ([`targets`]), printed, and written to
//! `docs/benchmarks.md` ([`report`]).

mod command;
mod daemon;
mod dns_lab;
mod exit0;
mod hyperfine;
mod limits;
mod machine;
mod micro;
mod profile;
mod report;
mod rss;
mod startup;
mod storm;
mod table;
mod targets;
pub mod workload;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

use crate::{cmd, setup};

/// Where the report goes, relative to the workspace root.
/// The generated tables; docs/benchmarks.md (the findings) is written by hand.
const REPORT: &str = "docs/benchmarks-data.md";

pub fn run() -> anyhow::Result<()> {
    setup::run()?;
    cmd::run(Command::new("cargo").args(["build", "--release", "--locked", "--bin", "guard"]))?;
    let guard = guard_binary()?;
    // The workloads are this binary's hidden `bench-workload` subcommand.
    let workload = std::env::current_exe().context("locating the xtask binary")?;
    let machine = machine::Machine::probe()?;
    let started = Instant::now();

    let startup = startup::measure(&guard)?;

    let listeners = micro::Listeners::start()?;
    let dir = std::env::temp_dir().join(format!("guard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let profile_path = dir.join("bench.toml");
    let result = (|| {
        // Written before the profile, which must name it: the exec probe's allowlist is keyed
        // by the file's inode, looked up when the sandbox starts.
        let program = storm::Program::prepare(&dir);
        write_profile(
            &guard,
            &profile_path,
            &workload,
            program.extra_exec(),
            &listeners,
        )?;
        let runner = micro::Runner {
            guard: &guard,
            profile: &profile_path,
            workload: &workload,
            lab: None,
        };
        let mut micro = micro_cases(&listeners)
            .iter()
            .map(|case| runner.measure(case))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // A name lookup through the DNS gate against the same lookup to the same resolver.
        let lab = dns_lab::DnsLab::start(&dir)?;
        let in_lab = micro::Runner {
            lab: Some(&lab),
            ..runner
        };
        micro.push(in_lab.measure(&dns_case())?);
        let storms = storm::measure(&runner, &program)?;
        Ok::<_, anyhow::Error>((micro, storms))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let (micro, storms) = result?;

    let warm = startup::warm_argv(&guard);
    let profile = limits::measure(&guard, &warm, &workload)
        .map_err(|e| format!("{e:#}"))
        .inspect_err(|why| eprintln!("bench: warm start not profiled: {why}"));
    let elapsed = started.elapsed();

    let targets = targets::evaluate(&startup, &micro, &storms);
    let results = report::Results {
        machine: &machine,
        startup: &startup,
        micro: &micro,
        storms: &storms,
        profile: profile.as_ref(),
        targets: &targets,
        elapsed,
    };
    eprintln!("\n{}", report::summary(&results));
    std::fs::create_dir_all("docs").context("cannot create docs/")?;
    std::fs::write(REPORT, report::render(&results))
        .with_context(|| format!("cannot write {REPORT}"))?;
    eprintln!(
        "bench: wrote {REPORT} ({} s of measuring)",
        elapsed.as_secs()
    );
    Ok(())
}

/// The release binary `cargo build --release` just produced.
fn guard_binary() -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    // Relative to the workspace root (the current directory), so the report names no local path.
    let guard = target.join("release/guard");
    if !guard.is_file() {
        bail!("{} does not exist after the release build", guard.display());
    }
    Ok(guard)
}

/// Writes the bench profile and has guard check it, so a profile error reads as one.
fn write_profile(
    guard: &Path,
    path: &Path,
    workload: &Path,
    storm: Option<&Path>,
    listeners: &micro::Listeners,
) -> anyhow::Result<()> {
    let text = profile::text(&profile::Needs {
        workload,
        storm,
        tcp_port: listeners.tcp_port,
        udp_port: listeners.udp_port,
    });
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    command::check_once(
        &[
            guard.display().to_string(),
            "check".into(),
            path.display().to_string(),
        ],
        &[],
    )
    .context("the bench profile does not pass `guard check`")
}

/// Reference rows of the getppid case: bare with a seccomp filter of its own.
const ALLOW_ALL: &str = "bare + 1-instruction allow-all seccomp filter (cached)";
const UNCACHED: &str = "bare + 2-instruction filter that reads an argument (not cacheable)";

/// The DNS lookup case, run in the DNS lab ([`dns_lab`]).
fn dns_case() -> micro::Case {
    micro::Case {
        label: targets::DNS,
        what: "a lookup of one name over a connected UDP socket to 127.0.0.1:53, answer awaited \
               (bare: the bench's resolver answers; guarded: the DNS gate checks the name, asks \
               that resolver, and allows the address)",
        args: vec!["dns".to_owned()],
        count: 2_000,
        rounds: 5,
        references: Vec::new(),
    }
}

/// The micro-benchmarks with the operation counts; rounds chosen so each case takes
/// a few seconds here.
fn micro_cases(listeners: &micro::Listeners) -> Vec<micro::Case> {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let tcp = listeners.tcp_port.to_string();
    let udp = listeners.udp_port.to_string();
    vec![
        micro::Case {
            label: targets::GETPPID,
            what: "one `getppid()` system call, allowed by the seccomp filter",
            args: args(&["getppid"]),
            count: 2_000_000,
            rounds: 7,
            // What any seccomp filter costs here, with and without the kernel's action cache:
            // guard's filter can be no cheaper than the first.
            references: vec![
                (ALLOW_ALL, args(&["--filter", "allow"])),
                (UNCACHED, args(&["--filter", "uncached"])),
            ],
        },
        micro::Case {
            label: targets::CONNECT,
            what: "socket, connect to a listener of the bench on 127.0.0.1, close with a reset \
                   (the connect4 hook runs on each)",
            args: args(&["connect", &tcp]),
            count: 20_000,
            rounds: 7,
            references: Vec::new(),
        },
        micro::Case {
            label: targets::UDP,
            what: "one `sendto` of one byte to 127.0.0.1 on an unconnected socket (the sendmsg4 \
                   hook runs on each)",
            args: args(&["udp", &udp]),
            count: 20_000,
            rounds: 7,
            references: Vec::new(),
        },
        micro::Case {
            label: targets::SPAWN,
            what: "posix_spawn of `/bin/true` and wait (the exec tracepoint checks and records \
                   each)",
            args: args(&["spawn", "/bin/true"]),
            count: 2_000,
            rounds: 7,
            references: Vec::new(),
        },
    ]
}
