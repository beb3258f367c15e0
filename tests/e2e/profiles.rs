//! The shipped profiles (`profiles/*.toml`) end to end: each one runs the real tool doing its
//! legitimate job in a fresh working directory, and the thing the profile's description rules out
//! fails with the kernel's denial while its effect (a file, a connection) never happens.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{Run, TempDir, guard, require_root};

/// `guard exec --profile <name> --workdir <workdir> -- <cmd...>`.
fn exec_in(profile: &str, workdir: &Path, cmd: &[&str]) -> Run {
    let workdir = workdir.to_str().expect("temp paths are UTF-8");
    let mut args = vec!["exec", "--profile", profile, "--workdir", workdir, "--"];
    args.extend_from_slice(cmd);
    guard(&args)
}

/// A value no profile or host file contains, so finding it in output proves the tool produced it.
fn nonce(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{label}-{}-{nanos}", std::process::id())
}

/// The kernel's denial as a tool prints it: EACCES (Landlock), EROFS (the read-only file tree
/// outside the write paths) or EPERM (seccomp, eBPF).
fn denied(text: &str) -> bool {
    text.contains("Permission denied")
        || text.contains("Read-only file system")
        || text.contains("Operation not permitted")
}

/// A directory outside /tmp, `$TMPDIR` and `$HOME` (which profiles such as `build` may write),
/// under cargo's per-target temp dir; removed on drop.
struct OutsideDir(PathBuf);

impl OutsideDir {
    fn new(label: &str) -> Self {
        let writable: Vec<PathBuf> = [
            Some(PathBuf::from("/tmp")),
            Some(std::env::temp_dir()),
            std::env::var_os("HOME").map(PathBuf::from),
        ]
        .into_iter()
        .flatten()
        .collect();
        // The checkout itself may live under /tmp (CI clones anywhere), so try a few roots and
        // take the first one outside everything the profile may write.
        let name = format!("guard-e2e-{label}-{}", std::process::id());
        let path = [
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
            PathBuf::from("/var/tmp"),
            PathBuf::from("/var/lib"),
        ]
        .into_iter()
        .map(|root| root.join(&name))
        .find(|path| !writable.iter().any(|w| path.starts_with(w)))
        .unwrap_or_else(|| panic!("no directory outside {writable:?} to test with"));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        OutsideDir(path)
    }
}

impl Drop for OutsideDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn minimal_runs_a_system_binary_and_reads_nothing_else() {
    require_root!();
    let dir = TempDir::new("p-minimal");
    let work = dir.mkdir("work");

    let out = exec_in("minimal", &work, &["/bin/true"]);
    assert_eq!(out.code(), 0, "{out}");
    // The tool's own status passes through: the 0 above is true's, not guard's.
    let out = exec_in("minimal", &work, &["/bin/false"]);
    assert_eq!(out.code(), 1, "{out}");
    // /usr/bin is readable: listing it shows the binaries there.
    let out = exec_in("minimal", &work, &["ls", "/usr/bin"]);
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.lines().any(|l| l == "ls"), "{out}");

    let out = exec_in("minimal", &work, &["ls", "/"]);
    assert_ne!(out.code(), 0, "{out}");
    assert!(denied(&out.stderr), "{out}");
    assert!(
        out.stdout.is_empty(),
        "the root directory was listed: {out}"
    );

    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let first = passwd.lines().next().expect("/etc/passwd has a line");
    let out = exec_in("minimal", &work, &["cat", "/etc/passwd"]);
    assert_ne!(out.code(), 0, "{out}");
    assert!(denied(&out.stderr), "{out}");
    assert!(!out.stdout.contains(first), "/etc/passwd was read: {out}");

    // No writes, not even in the working directory.
    let target = work.join("written");
    let out = exec_in(
        "minimal",
        &work,
        &["sh", "-c", &format!("echo x > {}", target.display())],
    );
    assert_ne!(out.code(), 0, "{out}");
    assert!(denied(&out.stderr), "{out}");
    assert!(!target.exists(), "minimal wrote {}", target.display());
}

#[test]
fn shell_readonly_reads_the_workdir_and_writes_nothing() {
    require_root!();
    let dir = TempDir::new("p-shell");
    let work = dir.mkdir("work");
    let content = nonce("readonly");
    fs::write(work.join("notes.txt"), format!("{content}\n")).unwrap();

    let out = exec_in(
        "shell-readonly",
        &work,
        &["bash", "-c", "ls; cat notes.txt"],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.lines().any(|l| l == "notes.txt"), "{out}");
    assert!(out.stdout.contains(&content), "{out}");
    let out = exec_in(
        "shell-readonly",
        &work,
        &["bash", "-c", "grep -c readonly notes.txt"],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(out.stdout.trim(), "1", "{out}");

    let created = work.join("new.txt");
    let out = exec_in(
        "shell-readonly",
        &work,
        &["bash", "-c", "echo pwned > new.txt"],
    );
    assert_ne!(out.code(), 0, "{out}");
    assert!(denied(&out.stderr), "{out}");
    assert!(
        !created.exists(),
        "shell-readonly created {}",
        created.display()
    );

    let out = exec_in(
        "shell-readonly",
        &work,
        &["bash", "-c", "echo pwned >> notes.txt"],
    );
    assert_ne!(out.code(), 0, "{out}");
    assert!(denied(&out.stderr), "{out}");
    assert_eq!(
        fs::read_to_string(work.join("notes.txt")).unwrap(),
        format!("{content}\n"),
        "shell-readonly appended to a file: {out}"
    );
}

#[test]
fn python_writes_in_the_workdir_only() {
    require_root!();
    let dir = TempDir::new("p-python");
    let work = dir.mkdir("work");
    let outside = dir.mkdir("outside");
    let content = nonce("python");

    let script = format!("open('result.txt', 'w').write('{content}\\n'); print('wrote')");
    let out = exec_in("python", &work, &["/usr/bin/python3", "-c", &script]);
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.contains("wrote"), "{out}");
    assert_eq!(
        fs::read_to_string(work.join("result.txt")).unwrap(),
        format!("{content}\n"),
        "{out}"
    );

    let target = outside.join("result.txt");
    let script = format!("open('{}', 'w').write('pwned')", target.display());
    // The profile writes ${TMPDIR} too; this test's directories are under /tmp, so ${TMPDIR}
    // is a private one here.
    let tmp = dir.mkdir("tmp");
    let out = crate::support::guard_with_env(
        &[
            "exec",
            "--profile",
            "python",
            "--workdir",
            work.to_str().unwrap(),
            "--",
            "/usr/bin/python3",
            "-c",
            &script,
        ],
        &[("TMPDIR", tmp.to_str().unwrap())],
    );
    assert_ne!(out.code(), 0, "{out}");
    assert!(
        out.stderr.contains("PermissionError") || out.stderr.contains("Read-only file system"),
        "{out}"
    );
    assert!(denied(&out.stderr), "{out}");
    assert!(!target.exists(), "python wrote {}", target.display());

    // "no other programs": a subprocess is refused and its effect never happens.
    let marker = work.join("marker");
    let script = format!(
        "import subprocess; subprocess.run(['/bin/sh', '-c', 'touch {}'])",
        marker.display()
    );
    let out = exec_in("python", &work, &["/usr/bin/python3", "-c", &script]);
    assert_ne!(out.code(), 0, "{out}");
    assert!(denied(&out.stderr), "{out}");
    assert!(!marker.exists(), "python ran /bin/sh: {out}");
}

#[test]
fn python_cannot_connect_to_a_loopback_listener() {
    require_root!();
    let dir = TempDir::new("p-python-net");
    let work = dir.mkdir("work");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let script = format!(
        "import socket\n\
         s = socket.socket()\n\
         s.settimeout(5)\n\
         s.connect(('127.0.0.1', {port}))\n\
         s.sendall(b'leak')\n\
         print('connected')\n"
    );
    let out = exec_in("python", &work, &["/usr/bin/python3", "-c", &script]);

    // A completed handshake sits in the backlog even after the client is gone: keep accepting
    // for a while so a connection that got through is counted.
    let mut accepted = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        match listener.accept() {
            Ok(_) => accepted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept on 127.0.0.1:{port}: {e}"),
        }
    }
    drop(listener);

    assert_ne!(out.code(), 0, "{out}");
    assert!(!out.stdout.contains("connected"), "{out}");
    assert!(out.stderr.contains("PermissionError"), "{out}");
    assert!(denied(&out.stderr), "{out}");
    assert_eq!(
        accepted, 0,
        "the listener on 127.0.0.1:{port} accepted a connection: {out}"
    );
}

const HELLO_C: &str = r#"#include <stdio.h>
int main(void) { puts(GREETING); return 0; }
"#;

#[test]
fn build_compiles_and_runs_c_in_the_workdir() {
    require_root!();
    let dir = TempDir::new("p-build");
    let work = dir.mkdir("work");
    let greeting = nonce("built");
    fs::write(work.join("hello.c"), HELLO_C).unwrap();
    fs::write(
        work.join("Makefile"),
        format!("hello: hello.c\n\tcc -DGREETING='\"{greeting}\"' -o hello hello.c\n"),
    )
    .unwrap();

    let out = exec_in("build", &work, &["sh", "-c", "make && ./hello"]);
    assert_eq!(out.code(), 0, "{out}");
    assert!(work.join("hello").is_file(), "no binary was built: {out}");
    assert!(
        out.stdout.lines().any(|l| l == greeting),
        "the built program did not run: {out}"
    );

    let out = exec_in(
        "build",
        &work,
        &[
            "cc",
            &format!("-DGREETING=\"{greeting}\""),
            "-o",
            "hello2",
            "hello.c",
        ],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert!(work.join("hello2").is_file(), "cc built nothing: {out}");
}

#[test]
fn build_cannot_write_outside_the_workdir_and_temp_dirs() {
    require_root!();
    let dir = TempDir::new("p-build-out");
    let work = dir.mkdir("work");
    let outside = OutsideDir::new("p-build-out");
    fs::write(work.join("hello.c"), HELLO_C).unwrap();

    let binary = outside.0.join("hello");
    let out = exec_in(
        "build",
        &work,
        &[
            "cc",
            "-DGREETING=\"x\"",
            "-o",
            binary.to_str().unwrap(),
            "hello.c",
        ],
    );
    assert_ne!(out.code(), 0, "{out}");
    assert!(denied(&out.stderr), "{out}");
    assert!(!binary.exists(), "cc wrote {}: {out}", binary.display());

    let file = outside.0.join("written");
    let out = exec_in(
        "build",
        &work,
        &["sh", "-c", &format!("echo pwned > {}", file.display())],
    );
    assert_ne!(out.code(), 0, "{out}");
    assert!(denied(&out.stderr), "{out}");
    assert!(!file.exists(), "build wrote {}: {out}", file.display());
}

#[test]
fn the_readmes_first_command_reads_passwd_and_the_write_is_refused() {
    require_root!();
    // The README's first command, run on every kernel the suite runs on (the host's, and the
    // VMs' 6.12 and 6.1). Its target gets this run's name so parallel runs cannot collide; the
    // write is not tried bare (root can write /etc, and the test must not touch the host).
    let target = format!("/etc/guard-demo-{}", std::process::id());
    let script = format!("head -n1 /etc/passwd; echo pwned > {target}");
    let out = guard(&[
        "exec",
        "--profile",
        "shell-readonly",
        "--",
        "bash",
        "-c",
        &script,
    ]);
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let first = passwd.lines().next().expect("/etc/passwd has a line");
    assert_eq!(out.stdout.trim_end(), first, "{out}");
    assert_eq!(
        out.code(),
        1,
        "bash's status after the refused write: {out}"
    );
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("guard: denied") && l.contains(&target)),
        "no denial line names {target}: {out}"
    );
    assert!(!Path::new(&target).exists(), "the sandbox wrote {target}");
}
