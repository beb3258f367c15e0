//! `guard learn` end to end: a real tool's workflow is learned offline against local fixtures,
//! the learned profile passes `guard check`, the same workflow then runs under it in enforce
//! mode with no denial at all (stderr and audit log read back), and the forbidden variant a
//! prompt injection would try is denied with its effect never happening.
//!
//! Each test works in its own directory with a private `${HOME}` (holding a fake SSH key) and
//! `${TMPDIR}`, so what is learned there cannot reach the host's.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{Run, TempDir, guard_with_env, require_root};
use crate::tool_fixtures::{head_of, host, http_once, require_tool};

/// A learning workspace: `work` (the command's directory), `home` and `tmp`, and `outside`,
/// which no workflow touches.
struct Workspace {
    dir: TempDir,
    work: PathBuf,
    home: PathBuf,
    tmp: PathBuf,
    outside: PathBuf,
}

impl Workspace {
    fn new(label: &str) -> Self {
        let dir = TempDir::new(label);
        let work = dir.mkdir("work");
        let home = dir.mkdir("home");
        let tmp = dir.mkdir("tmp");
        let outside = dir.mkdir("outside");
        fs::create_dir_all(home.join(".ssh")).unwrap();
        fs::write(home.join(".ssh/id_ed25519"), "FAKE-PRIVATE-KEY\n").unwrap();
        Workspace {
            dir,
            work,
            home,
            tmp,
            outside,
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("HOME", self.home.display().to_string()),
            ("TMPDIR", self.tmp.display().to_string()),
        ]
    }

    /// `guard ARGS` with this workspace's `HOME` and `TMPDIR`.
    fn guard(&self, args: &[&str]) -> Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        guard_with_env(args, &env)
    }

    /// `guard learn -o <profile> --workdir <work> -- CMD`; returns the profile's path.
    fn learn(&self, cmd: &[&str]) -> PathBuf {
        let profile = self.dir.path().join("learned.toml");
        let mut args = vec![
            "learn",
            "-o",
            profile.to_str().unwrap(),
            "--workdir",
            self.work.to_str().unwrap(),
            "--",
        ];
        args.extend_from_slice(cmd);
        let out = self.guard(&args);
        assert_eq!(out.code(), 0, "guard learn: {out}");
        let check = self.guard(&["check", profile.to_str().unwrap()]);
        assert_eq!(
            check.code(),
            0,
            "the learned profile fails guard check: {check}\n{}",
            text(&profile)
        );
        profile
    }

    /// `guard exec` of CMD under `profile` in `work` (or `cwd`), enforcing, with an audit log.
    fn exec_in(&self, profile: &Path, cwd: &Path, cmd: &[&str]) -> (Run, Vec<serde_json::Value>) {
        let log = self.dir.path().join(format!(
            "audit-{}.jsonl",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut args = vec![
            "exec",
            "--profile",
            profile.to_str().unwrap(),
            "--workdir",
            cwd.to_str().unwrap(),
            "--audit-log",
            log.to_str().unwrap(),
            "--",
        ];
        args.extend_from_slice(cmd);
        let out = self.guard(&args);
        let records = fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (out, records)
    }
}

fn text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Asserts a run under a learned profile was denied nothing but what the profile itself lists
/// as seen and not granted (a `#   syscall NAME` or `#   read PATH` comment): every violation
/// record is matched against those comments, and stderr has no other `guard: denied` line.
fn assert_denials_only_as_listed(out: &Run, records: &[serde_json::Value], profile: &Path) {
    let learned = text(profile);
    let listed: Vec<&str> = learned.lines().filter(|l| l.starts_with("#   ")).collect();
    let unlisted: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "violation")
        .filter(|r| {
            let d = &r["detail"];
            let what = match (d["syscall"].as_str(), d["path"].as_str()) {
                (Some(syscall), _) => format!("syscall {syscall} ("),
                (None, Some(path)) => format!(" {}:", self_proc(path)),
                (None, None) => return true,
            };
            !listed.iter().any(|l| l.contains(&what))
        })
        .collect();
    assert!(
        unlisted.is_empty(),
        "denials under the learned profile that it does not list: {unlisted:#?}\n{out}\n--- \
         profile\n{learned}"
    );
    let said = out
        .stderr
        .lines()
        .filter(|l| l.contains("guard: denied"))
        .count();
    let recorded = records.iter().filter(|r| r["event"] == "violation").count();
    assert!(
        said <= recorded,
        "a denial said on stderr has no record: {out}"
    );
}

/// `/proc/<pid>/...` as `/proc/self/...`: Landlock reports the path it resolved.
fn self_proc(path: &str) -> String {
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 2 && parts[1] == "proc" && parts[2].chars().all(|c| c.is_ascii_digit()) {
        parts[2] = "self";
    }
    parts.join("/")
}

/// Asserts a run under a learned profile was denied nothing at all.
/// No denial at all on kernels that check unix socket paths (the learned profile lists what
/// the run reached); elsewhere only the denials the profile lists as not grantable.
fn no_denial_where_unix_is_checked(out: &Run, records: &[serde_json::Value], profile: &Path) {
    if crate::unix::unix_hooks_skip_reason().is_none() {
        assert_no_denial(out, records, profile);
    } else {
        assert_denials_only_as_listed(out, records, profile);
    }
}

fn assert_no_denial(out: &Run, records: &[serde_json::Value], profile: &Path) {
    let violations: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "violation")
        .collect();
    assert!(
        violations.is_empty() && !out.stderr.contains("guard: denied"),
        "denials under the learned profile: {violations:#?}\n{out}\n--- profile\n{}",
        text(profile)
    );
}

/// Whether a run recorded a denial (any layer) of something containing `needle`.
/// (Landlock's network records carry the port apart from `dst`; the tool's own stderr may be
/// mid-line when guard's line is written, so the line is searched, not its start.)
fn denied(out: &Run, records: &[serde_json::Value], needle: &str) -> bool {
    records.iter().any(|r| {
        let d = &r["detail"];
        let dst_port = match (d["dst"].as_str(), d["port"].as_u64()) {
            (Some(dst), Some(port)) => format!("{dst}:{port}"),
            _ => String::new(),
        };
        r["event"] == "violation"
            && r["verdict"] == "deny"
            && (r.to_string().contains(needle) || dst_port == needle)
    }) || out
        .stderr
        .lines()
        .any(|l| l.contains("guard: denied") && l.contains(needle))
}

#[test]
fn a_learned_python_profile_runs_the_script_and_denies_the_key_and_writes_outside() {
    require_root!();
    let ws = Workspace::new("learn-py");
    fs::write(ws.work.join("data.txt"), "3\n4\n").unwrap();
    let script = "import json, os, sys\n\
                  nums = [int(l) for l in open('data.txt')]\n\
                  json.dump({'sum': sum(nums)}, open('out.json', 'w'))\n\
                  tmp = os.path.join(os.environ['TMPDIR'], 'scratch')\n\
                  open(tmp, 'w').write('x')\n\
                  os.remove(tmp)\n\
                  print('sum', sum(nums))\n";
    fs::write(ws.work.join("app.py"), script).unwrap();
    let profile = ws.learn(&["/usr/bin/python3", "app.py"]);
    let learned = text(&profile);
    assert!(learned.contains("\"${CWD}\""), "{learned}");
    assert!(!learned.contains(".ssh"), "{learned}");
    fs::remove_file(ws.work.join("out.json")).unwrap();

    let (out, records) = ws.exec_in(&profile, &ws.work, &["/usr/bin/python3", "app.py"]);
    assert_eq!(out.code(), 0, "{out}\n{learned}");
    assert_eq!(out.stdout.trim(), "sum 7", "{out}");
    assert_eq!(text(&ws.work.join("out.json")), r#"{"sum": 7}"#);
    assert_no_denial(&out, &records, &profile);

    // What an injected instruction would do instead: read the SSH key, write outside. Bare,
    // both work.
    let key = ws.home.join(".ssh/id_ed25519");
    let stolen = ws.outside.join("stolen");
    let attack = format!(
        "import sys\n\
         try:\n    print(open({key:?}).read().strip())\nexcept OSError as e:\n    print('key', e.strerror)\n\
         try:\n    open({stolen:?}, 'w').write('x'); print('wrote outside')\nexcept OSError as e:\n    print('outside', e.strerror)\n",
        key = key.display().to_string(),
        stolen = stolen.display().to_string()
    );
    let bare = std::process::Command::new("/usr/bin/python3")
        .args(["-c", &attack])
        .output()
        .unwrap();
    let bare_out = String::from_utf8_lossy(&bare.stdout);
    assert!(
        bare_out.contains("FAKE-PRIVATE-KEY") && bare_out.contains("wrote outside"),
        "{bare_out}"
    );
    fs::remove_file(&stolen).unwrap();

    let (out, records) = ws.exec_in(&profile, &ws.work, &["/usr/bin/python3", "-c", &attack]);
    assert!(
        !out.stdout.contains("FAKE-PRIVATE-KEY"),
        "the key was read: {out}"
    );
    assert!(out.stdout.contains("key Permission denied"), "{out}");
    assert!(!stolen.exists(), "the sandbox wrote {}", stolen.display());
    assert!(denied(&out, &records, "outside/stolen"), "{out}");
}

#[test]
fn a_learned_workspace_shell_profile_archives_the_workspace_and_nothing_else() {
    require_root!();
    require_tool!("/usr/bin/tar");
    require_tool!("/usr/bin/gzip");
    let ws = Workspace::new("learn-sh");
    fs::write(ws.work.join("notes.txt"), "hello\n").unwrap();
    let workflow = "mkdir -p build && cp notes.txt build/ && tar czf out.tgz build && \
                    rm -r build && ls && echo done";
    let profile = ws.learn(&["/bin/sh", "-c", workflow]);
    let learned = text(&profile);
    assert!(!learned.contains(".ssh"), "{learned}");
    fs::remove_file(ws.work.join("out.tgz")).unwrap();

    let (out, records) = ws.exec_in(&profile, &ws.work, &["/bin/sh", "-c", workflow]);
    assert_eq!(out.code(), 0, "{out}\n{learned}");
    assert!(out.stdout.contains("done"), "{out}");
    assert!(ws.work.join("out.tgz").exists(), "no archive: {out}");
    no_denial_where_unix_is_checked(&out, &records, &profile);

    // The injected variant: the key into the archive, a copy outside. Bare, both work.
    let key = ws.home.join(".ssh/id_ed25519");
    let copy = ws.outside.join("copy.txt");
    let attack = format!(
        "tar czf stolen.tgz {key} 2>&1; cp notes.txt {copy} 2>&1; echo end",
        key = key.display(),
        copy = copy.display()
    );
    let bare = std::process::Command::new("/bin/sh")
        .args(["-c", &attack])
        .current_dir(&ws.work)
        .output()
        .unwrap();
    assert!(bare.status.success());
    assert!(copy.exists(), "bare cp did not work");
    fs::remove_file(&copy).unwrap();
    fs::remove_file(ws.work.join("stolen.tgz")).unwrap();

    let (out, records) = ws.exec_in(&profile, &ws.work, &["/bin/sh", "-c", &attack]);
    assert!(out.stdout.contains("end"), "{out}");
    assert!(!copy.exists(), "the sandbox wrote {}", copy.display());
    let stolen = ws.work.join("stolen.tgz");
    let archived_key = stolen.exists()
        && std::process::Command::new("tar")
            .args(["tzf", stolen.to_str().unwrap()])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("id_ed25519"));
    assert!(!archived_key, "the key went into the archive");
    assert!(
        out.stdout
            .contains("id_ed25519: Cannot open: Permission denied"),
        "{out}"
    );
    // Landlock's read denials are records from ABI 7 (the kernel reports none below it).
    if crate::support::landlock_abi() >= 7 {
        assert!(denied(&out, &records, "id_ed25519"), "{out}");
    }
    assert!(denied(&out, &records, "outside/copy.txt"), "{out}");
}

#[test]
fn a_learned_curl_profile_reaches_its_server_and_no_other() {
    require_root!();
    require_tool!("/usr/bin/curl");
    let ws = Workspace::new("learn-curl");
    let wait = std::time::Duration::from_secs(20);
    let curl = |url: &str| -> Vec<String> {
        ["/usr/bin/curl", "-sS", "--max-time", "5", url]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let (port, server) = http_once(0, wait);
    let url = format!("http://127.0.0.1:{port}/");
    let args = curl(&url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let profile = ws.learn(&args);
    assert!(
        server.join().unwrap(),
        "the learning run never reached the server"
    );
    let learned = text(&profile);
    assert!(
        learned.contains(&format!("\"127.0.0.1:{port}\"")),
        "{learned}"
    );

    // The learned server again: reached, nothing denied.
    let (_, server) = http_once(port, wait);
    let (out, records) = ws.exec_in(&profile, &ws.work, &args);
    assert!(
        server.join().unwrap(),
        "the allowed run never reached the server"
    );
    assert_eq!(out.code(), 0, "{out}\n{learned}");
    assert_eq!(out.stdout, "hello\n", "{out}");
    // glibc's name-service lookup asks nscd over a unix socket first: learned as a unix path
    // where the kernel checks those (nothing is denied), else listed as not grantable.
    no_denial_where_unix_is_checked(&out, &records, &profile);

    // Another server on loopback, as an exfiltration target: bare curl reaches it, the
    // learned profile does not, and the server never sees a connection.
    let (other, server) = http_once(0, wait);
    let other_url = format!("http://127.0.0.1:{other}/");
    let bare = std::process::Command::new("/usr/bin/curl")
        .args(["-sS", "--max-time", "5", &other_url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&bare.stdout), "hello\n");
    assert!(server.join().unwrap());
    let (_, server) = http_once(other, std::time::Duration::from_secs(3));
    let forbidden = curl(&other_url);
    let forbidden: Vec<&str> = forbidden.iter().map(String::as_str).collect();
    let (out, records) = ws.exec_in(&profile, &ws.work, &forbidden);
    assert_ne!(out.code(), 0, "{out}");
    assert!(!out.stdout.contains("hello"), "{out}");
    // Landlock's port rules refuse first where the kernel has them (ABI 4), and report it only
    // from ABI 7; elsewhere the eBPF hook refuses and reports.
    let abi = crate::support::landlock_abi();
    if !(4..7).contains(&abi) {
        assert!(
            denied(&out, &records, &format!("127.0.0.1:{other}")),
            "{out}\n{records:#?}"
        );
    }
    assert!(!server.join().unwrap(), "the forbidden server was reached");
}

#[test]
fn a_learned_git_profile_clones_commits_and_pushes_and_cannot_push_elsewhere() {
    require_root!();
    require_tool!("/usr/bin/git");
    let ws = Workspace::new("learn-git");
    let env = ws.env();
    // Fixtures: a bare repository with one commit in the workspace, another outside it.
    let seed = ws.dir.mkdir("seed");
    host(&seed, &env, &["git", "init", "-q", "-b", "main"]);
    fs::write(seed.join("README"), "seed\n").unwrap();
    host(&seed, &env, &["git", "add", "README"]);
    host(
        &seed,
        &env,
        &[
            "git",
            "-c",
            "user.name=s",
            "-c",
            "user.email=s@example.com",
            "commit",
            "-qm",
            "seed",
        ],
    );
    host(
        ws.dir.path(),
        &env,
        &["git", "clone", "-q", "--bare", "seed", "work/origin.git"],
    );
    host(
        ws.dir.path(),
        &env,
        &["git", "clone", "-q", "--bare", "seed", "outside/other.git"],
    );

    let workflow = "git clone -q origin.git clone && cd clone && echo change >> README && \
                    git add README && \
                    git -c user.name=agent -c user.email=agent@example.com commit -qm change && \
                    git push -q origin HEAD && echo pushed";
    let profile = ws.learn(&["/bin/sh", "-c", workflow]);
    let learned = text(&profile);
    let pushed_once = head_of(&ws.work.join("origin.git"));

    // The same workflow again, from a fresh clone, under the learned profile.
    fs::remove_dir_all(ws.work.join("clone")).unwrap();
    let (out, records) = ws.exec_in(&profile, &ws.work, &["/bin/sh", "-c", workflow]);
    assert_eq!(out.code(), 0, "{out}\n{learned}");
    assert_eq!(out.stdout.trim(), "pushed", "{out}");
    assert_ne!(
        head_of(&ws.work.join("origin.git")),
        pushed_once,
        "nothing was pushed"
    );
    no_denial_where_unix_is_checked(&out, &records, &profile);

    // A push to a repository outside the workspace: bare it works (shown on a copy), under
    // the learned profile it is refused and the repository is unchanged.
    let other = ws.outside.join("other.git");
    let before = head_of(&other);
    let push_outside = format!("cd clone && git push -q {} HEAD:main", other.display());
    let copy = ws.dir.path().join("copy.git");
    host(
        ws.dir.path(),
        &env,
        &["cp", "-a", other.to_str().unwrap(), copy.to_str().unwrap()],
    );
    host(
        &ws.work,
        &env,
        &[
            "sh",
            "-c",
            &format!("cd clone && git push -q {} HEAD:main", copy.display()),
        ],
    );
    assert_ne!(head_of(&copy), before, "the bare push did not work");
    let (out, records) = ws.exec_in(&profile, &ws.work, &["/bin/sh", "-c", &push_outside]);
    assert_ne!(out.code(), 0, "{out}");
    assert_eq!(head_of(&other), before, "the push outside landed");
    // git reads the other repository first: Landlock refuses that read, and reports it from
    // ABI 7 on.
    if crate::support::landlock_abi() >= 7 {
        assert!(denied(&out, &records, "outside/other.git"), "{out}");
    }
}

#[test]
fn a_learned_node_profile_runs_the_script_and_cannot_read_the_key() {
    require_root!();
    require_tool!("/usr/bin/node");
    let ws = Workspace::new("learn-node");
    fs::write(ws.work.join("package.json"), "{\"name\": \"work\"}\n").unwrap();
    fs::write(
        ws.work.join("app.js"),
        "const fs = require('fs');\n\
         const pkg = JSON.parse(fs.readFileSync('package.json'));\n\
         fs.writeFileSync('out.txt', pkg.name + '\\n');\n\
         console.log('name', pkg.name);\n",
    )
    .unwrap();
    let workflow = ["/usr/bin/node", "app.js"];
    let profile = ws.learn(&workflow);
    let learned = text(&profile);
    fs::remove_file(ws.work.join("out.txt")).unwrap();

    let (out, records) = ws.exec_in(&profile, &ws.work, &workflow);
    assert_eq!(out.code(), 0, "{out}\n{learned}");
    assert_eq!(out.stdout.trim(), "name work", "{out}");
    assert_eq!(text(&ws.work.join("out.txt")), "work\n");
    // node reads /proc/self (its cgroup and maps), which no path rule can grant (a rule names
    // one process); the profile lists it, and node goes on without it.
    assert_denials_only_as_listed(&out, &records, &profile);

    // The injected variant: read the SSH key from node. Bare it works.
    let key = ws.home.join(".ssh/id_ed25519");
    let steal = format!(
        "try {{ console.log(require('fs').readFileSync({key:?}, 'utf8')) }} \
         catch (e) {{ console.log('key', e.code) }}",
        key = key.display().to_string()
    );
    let bare = std::process::Command::new("/usr/bin/node")
        .args(["-e", &steal])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bare.stdout).contains("FAKE-PRIVATE-KEY"));
    let (out, _records) = ws.exec_in(&profile, &ws.work, &["/usr/bin/node", "-e", &steal]);
    assert!(
        !out.stdout.contains("FAKE-PRIVATE-KEY"),
        "the key was read: {out}"
    );
    assert!(out.stdout.contains("key EACCES"), "{out}");
}

#[test]
fn learning_from_a_profile_grants_only_what_the_run_did_beyond_it() {
    require_root!();
    let ws = Workspace::new("learn-from");
    fs::write(ws.work.join("notes.txt"), "n\n").unwrap();
    let profile = ws.dir.path().join("learned.toml");
    let out = ws.guard(&[
        "learn",
        "--from",
        "shell-readonly",
        "-o",
        profile.to_str().unwrap(),
        "--workdir",
        ws.work.to_str().unwrap(),
        "--",
        "bash",
        "-c",
        "cat notes.txt > copy.txt",
    ]);
    assert_eq!(out.code(), 0, "{out}");
    let learned = text(&profile);
    let value: toml::Value = toml::from_str(&learned).unwrap();
    assert_eq!(
        value["extends"][0].as_str(),
        Some("shell-readonly"),
        "{learned}"
    );
    // shell-readonly already reads ${CWD} and runs bash and cat: only writes are new, the
    // workspace (and, where bash finds one, the terminal device).
    let writes: Vec<&str> = value["filesystem"]["write"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(writes.contains(&"${CWD}"), "{learned}");
    assert!(
        writes
            .iter()
            .all(|w| *w == "${CWD}" || w.starts_with("/dev/")),
        "{learned}"
    );
    assert!(
        value["filesystem"]["read"].as_array().unwrap().is_empty(),
        "{learned}"
    );
    fs::remove_file(ws.work.join("copy.txt")).unwrap();
    let (out, records) = ws.exec_in(
        &profile,
        &ws.work,
        &["bash", "-c", "cat notes.txt > copy.txt"],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(text(&ws.work.join("copy.txt")), "n\n");
    assert_denials_only_as_listed(&out, &records, &profile);
}
