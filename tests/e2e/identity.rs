//! Who the tool runs as and with what: `process.user`, `process.env`, `limits.open_files` and
//! `limits.cpu_time`, observed from outside (the tool's output, file owners, the audit log).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Run, TempDir, guard, guard_with_env, require_root, write_profile};

/// A profile running /usr/bin and /bin tools that may write `write_dir`, with `extra` appended
/// (a `[process]` table must come from `extra` when it sets more than the environment).
fn profile(dir: &TempDir, write_dir: &Path, process: &str, extra: &str) -> String {
    write_profile(
        dir,
        "identity",
        &format!(
            r#"
name = "e2e-identity"
extends = ["base"]

[filesystem]
read = ["/usr/bin", "/bin", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf"]
write = ["{write}"]
execute = ["/usr/bin", "/bin"]

[process]
{process}
{extra}
"#,
            write = write_dir.display(),
        ),
    )
}

/// `guard exec --profile <profile> --workdir <workdir> [--audit-log <log>] -- <cmd...>`.
fn exec_in(profile: &str, workdir: &Path, audit_log: Option<&Path>, cmd: &[&str]) -> Run {
    let mut args = vec![
        "exec",
        "--profile",
        profile,
        "--workdir",
        workdir.to_str().unwrap(),
    ];
    if let Some(log) = audit_log {
        args.extend(["--audit-log", log.to_str().unwrap()]);
    }
    args.push("--");
    args.extend_from_slice(cmd);
    guard(&args)
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {:o} {}: {e}", mode, path.display()));
}

#[test]
fn process_user_runs_the_tool_as_that_user() {
    require_root!();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("this host has a user `nobody`");
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    assert_ne!(uid, 0, "nobody is root on this host?");
    let dir = TempDir::new("user");
    // nobody must be able to reach the directories below whatever the test runner's umask.
    chmod(dir.path(), 0o755);
    let shared = dir.mkdir("shared");
    chmod(&shared, 0o1777);
    let root_only = dir.mkdir("root-only");
    chmod(&root_only, 0o755);
    let profile = profile(
        &dir,
        dir.path(),
        "user = \"nobody\"\nenv = { keep = [\"PATH\"] }",
        "",
    );

    let out = exec_in(
        &profile,
        &shared,
        None,
        &["sh", "-c", "id -u; id -g; echo made > made-by-tool"],
    );
    assert_eq!(out.code(), 0, "{out}");
    let ids: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        ids,
        [uid.to_string(), gid.to_string()],
        "id -u / id -g: {out}"
    );
    let made = shared.join("made-by-tool");
    let meta = fs::metadata(&made).unwrap_or_else(|e| panic!("{}: {e}: {out}", made.display()));
    assert_eq!(meta.uid(), uid, "owner of {}: {out}", made.display());
    assert_eq!(meta.gid(), gid, "group of {}: {out}", made.display());

    // The profile allows writing root-only/, but the file mode does not allow nobody: the
    // switch is real, not just what `id` reports.
    let target = root_only.join("written");
    let out = exec_in(
        &profile,
        &shared,
        None,
        &["sh", "-c", &format!("echo x > {}", target.display())],
    );
    assert_ne!(out.code(), 0, "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
    assert!(!target.exists(), "nobody wrote into a root-owned 0755 dir");
}

#[test]
fn open_files_sets_the_tool_rlimit() {
    require_root!();
    const LIMIT: u32 = 64;
    let dir = TempDir::new("nofile");
    let work = dir.mkdir("w");
    let profile = profile(
        &dir,
        &work,
        "env = { keep = [\"PATH\"] }",
        &format!("[limits]\nopen_files = {LIMIT}\n"),
    );

    let out = exec_in(
        &profile,
        &work,
        None,
        &["sh", "-c", "ulimit -n; ulimit -Hn"],
    );
    assert_eq!(out.code(), 0, "{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [LIMIT.to_string(), LIMIT.to_string()],
        "soft and hard limit: {out}"
    );

    // The limit bites: a descriptor number below it can be opened, one above it cannot.
    let (below, above) = (LIMIT - 4, LIMIT + 6);
    let script =
        format!("exec {below}>/dev/null && echo below-ok; exec {above}>/dev/null && echo above-ok");
    let out = exec_in(&profile, &work, None, &["bash", "-c", &script]);
    assert!(out.stdout.contains("below-ok"), "{out}");
    assert!(
        !out.stdout.contains("above-ok"),
        "fd {above} opened past the limit: {out}"
    );
}

#[test]
fn env_is_exactly_keep_plus_set() {
    require_root!();
    let dir = TempDir::new("envset");
    let work = dir.mkdir("w");
    let profile = profile(
        &dir,
        &work,
        "env = { keep = [\"PATH\"], set = { FOO = \"bar\" } }",
        "",
    );
    let secret = format!("hunter2-{}", std::process::id());
    let out = guard_with_env(
        &[
            "exec",
            "--profile",
            &profile,
            "--workdir",
            work.to_str().unwrap(),
            "--",
            "env",
        ],
        &[("GUARD_E2E_SECRET", &secret), ("FOO", "from-guard")],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert!(!out.stdout.contains(&secret), "the secret leaked: {out}");
    let mut vars: Vec<(&str, &str)> = out
        .stdout
        .lines()
        .map(|l| {
            l.split_once('=')
                .unwrap_or_else(|| panic!("not NAME=VALUE: {l:?}: {out}"))
        })
        .collect();
    vars.sort_unstable();
    let path = std::env::var("PATH").expect("the test runs with a PATH");
    assert_eq!(
        vars,
        [("FOO", "bar"), ("PATH", path.as_str())],
        "the environment is not exactly keep + set: {out}"
    );
}

/// Runs `script` under cpu_time = 1s, wall_time = 20s and checks guard killed it for CPU time.
fn assert_killed_for_cpu_time(label: &str, script: &str) {
    let dir = TempDir::new(label);
    let work = dir.mkdir("w");
    let profile = profile(
        &dir,
        &work,
        "env = { keep = [\"PATH\"] }",
        "[limits]\ncpu_time = \"1s\"\nwall_time = \"20s\"\n",
    );
    let log = dir.path().join("audit.jsonl");
    let started = Instant::now();
    let out = exec_in(&profile, &work, Some(&log), &["sh", "-c", script]);
    let took = started.elapsed();
    assert_eq!(out.code(), 137, "{out}");
    assert!(
        out.stderr.contains("guard: killed") && out.stderr.contains("limits.cpu_time"),
        "{out}"
    );
    // Well before wall_time: it was the CPU limit, not the clock.
    assert!(took < Duration::from_secs(10), "took {took:?}: {out}");
    let text = fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}: {out}", log.display()));
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let limit = records
        .iter()
        .find(|r| r["event"] == "limit" && r["rule"] == "limits.cpu_time")
        .unwrap_or_else(|| panic!("no limit record for limits.cpu_time: {text}"));
    assert_eq!(limit["verdict"], "kill", "{text}");
    assert!(
        !records.iter().any(|r| r["rule"] == "limits.wall_time"),
        "{text}"
    );
    guard::audit::verify_chain(fs::File::open(&log).unwrap()).expect("the chain verifies");
}

#[test]
fn cpu_time_kills_a_busy_loop() {
    require_root!();
    assert_killed_for_cpu_time("cputime", "while :; do :; done");
}

#[test]
fn cpu_time_counts_the_whole_sandbox_not_each_process() {
    require_root!();
    // Many short-lived children, each far below the per-process RLIMIT_CPU: only sandbox-wide
    // accounting adds them up to the limit; without it wall_time ends the run instead.
    assert_killed_for_cpu_time(
        "cputime-many",
        "while :; do sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done'; done",
    );
}
