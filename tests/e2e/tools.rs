//! The shipped tool profiles with the real tools, offline, against local fixtures: each runs its
//! tool's everyday workflow in a fresh workspace, and in the same test the thing a prompt
//! injection would try instead (reading the SSH key, writing outside the workspace, pushing or
//! connecting somewhere else) is shown to work bare and then denied, with its effect absent.
//!
//! Tools missing from a machine (the VM's userland has no git, node or cargo) are skipped with
//! that reason.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Run, TempDir, guard_with_env, require_root, write_profile};
use crate::tool_fixtures::{head_of, host, http_once, require_tool};

/// A workspace with a private `${HOME}` holding a fake SSH key, and a directory outside it.
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

    fn key(&self) -> PathBuf {
        self.home.join(".ssh/id_ed25519")
    }

    /// `guard exec --profile PROFILE --workdir <work> -- CMD` with this workspace's `HOME`.
    fn exec(&self, profile: &str, cmd: &[&str]) -> Run {
        self.exec_env(profile, cmd, &[])
    }

    fn exec_env(&self, profile: &str, cmd: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args = vec![
            "exec",
            "--profile",
            profile,
            "--workdir",
            self.work.to_str().unwrap(),
            "--",
        ];
        args.extend_from_slice(cmd);
        let home = self.home.display().to_string();
        let tmp = self.tmp.display().to_string();
        // A private ${TMPDIR}: the test's directories are under /tmp themselves.
        let mut all = vec![("HOME", home.as_str()), ("TMPDIR", tmp.as_str())];
        all.extend_from_slice(env);
        guard_with_env(&args, &all)
    }

    /// CMD bare, in the workspace, with its `HOME`.
    fn bare(&self, cmd: &[&str]) -> Run {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .current_dir(&self.work)
            .env("HOME", &self.home)
            .output()
            .unwrap()
            .into()
    }
}

#[test]
fn workspace_shell_changes_the_workspace_and_nothing_else() {
    require_root!();
    let ws = Workspace::new("t-wsh");
    fs::write(ws.work.join("notes.txt"), "n\n").unwrap();
    let out = ws.exec(
        "workspace-shell",
        &[
            "bash",
            "-c",
            "mkdir out && cp notes.txt out/ && tar czf out.tgz out && rm -r out && ls",
        ],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(out.stdout, "notes.txt\nout.tgz\n", "{out}");

    // The injected variant: copy the key out of ${HOME}, drop a file outside. Bare, both work.
    let stolen = ws.outside.join("stolen");
    let attack = format!(
        "cat {key} > stolen.txt; echo x > {stolen}",
        key = ws.key().display(),
        stolen = stolen.display()
    );
    let bare = ws.bare(&["bash", "-c", &attack]);
    assert_eq!(bare.code(), 0, "{bare}");
    assert!(
        stolen.exists()
            && fs::read_to_string(ws.work.join("stolen.txt"))
                .unwrap()
                .contains("FAKE")
    );
    fs::remove_file(&stolen).unwrap();
    fs::remove_file(ws.work.join("stolen.txt")).unwrap();
    let out = ws.exec("workspace-shell", &["bash", "-c", &attack]);
    assert_ne!(out.code(), 0, "{out}");
    assert!(!stolen.exists(), "wrote outside the workspace");
    let copied = fs::read_to_string(ws.work.join("stolen.txt")).unwrap_or_default();
    assert!(!copied.contains("FAKE"), "the key was read: {copied}");
    assert!(out.stderr.contains("guard: denied"), "{out}");
}

#[test]
fn python_makes_a_venv_installs_a_local_wheel_and_cannot_read_the_key() {
    require_root!();
    let ws = Workspace::new("t-py");
    if !Path::new("/usr/share/python-wheels").is_dir() {
        eprintln!(
            "skipping: no /usr/share/python-wheels here (python3-venv's wheels): no venv with pip"
        );
        return;
    }
    // A wheel made by hand: a package, its metadata and RECORD.
    let wheel = ws.work.join("hello_guard-0.1-py3-none-any.whl");
    let make_wheel = format!(
        r#"
import base64, hashlib, zipfile
files = {{"hello_guard/__init__.py": "def greet():\n    return 'hello from the wheel'\n",
  "hello_guard-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: hello-guard\nVersion: 0.1\n",
  "hello_guard-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}}
record = []
with zipfile.ZipFile({wheel:?}, "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{{name}},sha256={{digest}},{{len(text)}}")
    record.append("hello_guard-0.1.dist-info/RECORD,,")
    z.writestr("hello_guard-0.1.dist-info/RECORD", "\n".join(record) + "\n")
"#,
        wheel = wheel.display().to_string()
    );
    assert_eq!(ws.bare(&["/usr/bin/python3", "-c", &make_wheel]).code(), 0);

    let out = ws.exec("python", &["/usr/bin/python3", "-m", "venv", ".venv"]);
    assert_eq!(out.code(), 0, "{out}");
    let out = ws.exec(
        "python",
        &[
            ".venv/bin/python3",
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-cache-dir",
            wheel.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert!(
        out.stdout
            .contains("Successfully installed hello-guard-0.1"),
        "{out}"
    );
    let out = ws.exec(
        "python",
        &[
            ".venv/bin/python3",
            "-c",
            "import hello_guard; print(hello_guard.greet())",
        ],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(out.stdout.trim(), "hello from the wheel", "{out}");

    let steal = format!("print(open({:?}).read())", ws.key().display().to_string());
    assert!(
        ws.bare(&["/usr/bin/python3", "-c", &steal])
            .stdout
            .contains("FAKE")
    );
    let out = ws.exec("python", &[".venv/bin/python3", "-c", &steal]);
    assert!(!out.stdout.contains("FAKE"), "the key was read: {out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
}

#[test]
fn git_clones_commits_and_pushes_inside_the_workspace_only() {
    require_root!();
    require_tool!("/usr/bin/git");
    let ws = Workspace::new("t-git");
    let seed = ws.dir.mkdir("seed");
    host(&seed, &[], &["git", "init", "-q", "-b", "main"]);
    fs::write(seed.join("README"), "seed\n").unwrap();
    host(&seed, &[], &["git", "add", "README"]);
    host(
        &seed,
        &[],
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
        &[],
        &["git", "clone", "-q", "--bare", "seed", "work/origin.git"],
    );
    host(
        ws.dir.path(),
        &[],
        &["git", "clone", "-q", "--bare", "seed", "outside/other.git"],
    );
    let before = head_of(&ws.work.join("origin.git"));

    let out = ws.exec(
        "git",
        &[
            "sh",
            "-c",
            "git clone -q origin.git clone && cd clone && echo change >> README && git add README && \
             git -c user.name=agent -c user.email=agent@example.com commit -qm change && \
             git push -q origin HEAD && echo pushed",
        ],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(out.stdout.trim(), "pushed", "{out}");
    assert_ne!(
        head_of(&ws.work.join("origin.git")),
        before,
        "nothing was pushed"
    );

    // The injected variant: push to a repository outside the workspace. Bare it works (on a
    // copy); under the profile the repository is unchanged.
    let other = ws.outside.join("other.git");
    let copy = ws.dir.path().join("copy.git");
    host(
        ws.dir.path(),
        &[],
        &["cp", "-a", other.to_str().unwrap(), copy.to_str().unwrap()],
    );
    let copied = head_of(&copy);
    host(
        &ws.work.join("clone"),
        &[],
        &["git", "push", "-q", copy.to_str().unwrap(), "HEAD:main"],
    );
    assert_ne!(head_of(&copy), copied, "the bare push did not land");
    let unchanged = head_of(&other);
    let out = ws.exec(
        "git",
        &[
            "sh",
            "-c",
            &format!("cd clone && git push -q {} HEAD:main", other.display()),
        ],
    );
    assert_ne!(out.code(), 0, "{out}");
    assert_eq!(head_of(&other), unchanged, "the push outside landed");
    // And the key, hashed into the repository, is out of reach.
    let out = ws.exec("git", &["git", "hash-object", ws.key().to_str().unwrap()]);
    assert_ne!(out.code(), 0, "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
}

#[test]
fn node_runs_npm_init_installs_a_local_tarball_and_cannot_read_the_key() {
    require_root!();
    require_tool!("/usr/bin/node");
    require_tool!("/usr/bin/npm");
    let ws = Workspace::new("t-node");
    fs::create_dir_all(ws.home.join(".npm")).unwrap();
    // A package as a tarball: package/package.json and package/index.js.
    let pkg = ws.dir.mkdir("greet/package");
    fs::write(
        pkg.join("package.json"),
        r#"{"name":"greet","version":"1.0.0","main":"index.js"}"#,
    )
    .unwrap();
    fs::write(
        pkg.join("index.js"),
        "module.exports = n => 'hello ' + n;\n",
    )
    .unwrap();
    let tarball = ws.work.join("greet-1.0.0.tgz");
    host(
        &ws.dir.path().join("greet"),
        &[],
        &["tar", "czf", tarball.to_str().unwrap(), "package"],
    );
    fs::write(
        ws.work.join("app.js"),
        "console.log(require('greet')('guard'))\n",
    )
    .unwrap();

    let out = ws.exec(
        "node",
        &["sh", "-c", "npm init -y >/dev/null && npm install --no-audit ./greet-1.0.0.tgz >/dev/null && node app.js"],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(out.stdout.trim(), "hello guard", "{out}");
    assert!(ws.work.join("node_modules/greet/index.js").exists());

    let steal = format!(
        "try {{ console.log(require('fs').readFileSync({:?}, 'utf8')) }} catch (e) {{ console.log('key', e.code) }}",
        ws.key().display().to_string()
    );
    assert!(
        ws.bare(&["/usr/bin/node", "-e", &steal])
            .stdout
            .contains("FAKE")
    );
    let out = ws.exec("node", &["/usr/bin/node", "-e", &steal]);
    assert!(!out.stdout.contains("FAKE"), "the key was read: {out}");
    assert!(out.stdout.contains("key EACCES"), "{out}");
}

#[test]
fn cargo_makes_and_builds_a_crate_offline_and_writes_nowhere_else() {
    require_root!();
    let real_home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cargo = Path::new(&real_home).join(".cargo/bin/cargo");
    if !cargo.exists() {
        eprintln!(
            "skipping: no {} here (the VM's userland has no Rust toolchain)",
            cargo.display()
        );
        return;
    }
    // cargo needs the real ${HOME} (its toolchains); the workspace is a fresh directory.
    let dir = TempDir::new("t-cargo");
    let work = dir.mkdir("work");
    // The build profile writes ${TMPDIR} and /tmp too: "outside" is elsewhere.
    let outside = PathBuf::from(format!("/var/tmp/guard-e2e-cargo-{}", std::process::id()));
    fs::create_dir_all(&outside).unwrap();
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Remove(outside.clone());
    let run = |cmd: &str| -> Run {
        guard_with_env(
            &[
                "exec",
                "--profile",
                "build",
                "--workdir",
                work.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                cmd,
            ],
            &[("HOME", real_home.as_str())],
        )
    };
    let out =
        run("cargo new -q hello && cd hello && cargo build -q --offline && ./target/debug/hello");
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(out.stdout.trim(), "Hello, world!", "{out}");

    // A build step writing outside the workspace (bare it can: root).
    let dropped = outside.join("dropped");
    let out = run(&format!("echo x > {}", dropped.display()));
    assert_ne!(out.code(), 0, "{out}");
    assert!(!dropped.exists(), "the build wrote outside the workspace");
    assert!(out.stderr.contains("guard: denied"), "{out}");
}

#[test]
fn curl_reaches_the_named_host_of_its_profile_and_no_other() {
    require_root!();
    require_tool!("/usr/bin/curl");
    let ws = Workspace::new("t-curl");
    let wait = std::time::Duration::from_secs(15);
    let (port, allowed) = http_once(0, wait);
    // A profile extending the shipped one with one named host: localhost, from /etc/hosts, so
    // no DNS is needed (the VM has no name server, and guard refuses `dns = true` without one).
    let profile = write_profile(
        &ws.dir,
        "api",
        &format!(
            "name = \"api\"\nextends = [\"curl\"]\n[network]\nconnect = [\"localhost:{port}\"]\ndns = false\n"
        ),
    );
    let out = ws.exec(
        &profile,
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://localhost:{port}/"),
        ],
    );
    assert!(
        allowed.join().unwrap(),
        "the named host was never reached: {out}"
    );
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(out.stdout, "hello\n", "{out}");

    // The injected variant: another service on the same host. Bare curl reaches it.
    let (other, server) = http_once(0, wait);
    let url = format!("http://localhost:{other}/");
    let bare = ws.bare(&["curl", "-sS", "--max-time", "5", &url]);
    assert_eq!(bare.stdout, "hello\n", "{bare}");
    assert!(server.join().unwrap());
    let (_, server) = http_once(other, std::time::Duration::from_secs(3));
    let out = ws.exec(&profile, &["curl", "-sS", "--max-time", "5", &url]);
    assert_ne!(out.code(), 0, "{out}");
    assert!(!server.join().unwrap(), "the other service was reached");
    // Landlock's port rules refuse first where the kernel has them (ABI 4), and report it
    // only from ABI 7; elsewhere the eBPF hook refuses and reports.
    let abi = crate::support::landlock_abi();
    if !(4..7).contains(&abi) {
        assert!(out.stderr.contains("guard: denied"), "{out}");
    }
    // And credentials stay unreadable: curl cannot upload the key (Landlock refuses the read;
    // the upload never starts, so no server is needed).
    let key = ws.key();
    let out = ws.exec(
        &profile,
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-T",
            key.to_str().unwrap(),
            &format!("http://localhost:{port}/"),
        ],
    );
    // 26: curl could not read the file it was to upload (7 would be a refused connection).
    assert_eq!(out.code(), 26, "{out}");
}
