//! A second pass as an attacker: techniques tried against guard's own build after the seams
//! were sealed. Each test shows the technique works bare (or says why it cannot run here),
//! then runs it under guard and observes the outcome from outside the sandbox.

use std::fs;
use std::path::Path;

use crate::support::{TempDir, guard, require_root, write_profile};

/// A shell profile that may write `work` (and a nested write path `work/target`, as the
/// shipped build profile has `${CWD}/target`), read the system, and execute system binaries.
fn nested_write_profile(dir: &TempDir, work: &Path) -> String {
    write_profile(
        dir,
        "nested",
        &format!(
            r#"
name = "nested"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc"]
write = ["{work}", "{work}/target"]
execute = ["/usr/bin", "/usr/lib"]
"#,
            work = work.display()
        ),
    )
}

#[test]
fn a_symlink_planted_in_a_write_path_does_not_redirect_the_next_runs_rules() {
    require_root!();
    let dir = TempDir::new("plant");
    let work = dir.mkdir("work");
    let victim = dir.mkdir("victim");
    let profile = nested_write_profile(&dir, &work);

    // Bare, a symlink redirects whatever opens the path: writing through it lands in victim.
    std::os::unix::fs::symlink(&victim, work.join("bare-link")).expect("symlink");
    fs::write(work.join("bare-link/bare"), "x").expect("write through the link");
    assert!(victim.join("bare").exists(), "bare: the link redirects");
    fs::remove_file(victim.join("bare")).expect("cleanup");

    // Run 1: the tool replaces the nested write path with a link to the victim directory.
    // Everything it does is inside its write path, so it is allowed.
    let plant = format!(
        "rm -rf {work}/target && ln -s {victim} {work}/target && echo planted",
        work = work.display(),
        victim = victim.display()
    );
    let run = guard(&["exec", "--profile", &profile, "--", "/bin/sh", "-c", &plant]);
    assert_eq!(run.code(), 0, "run 1: {run}");
    assert!(run.stdout.contains("planted"), "{run}");

    // Run 2: the rule for `work/target` must not become a write rule on the victim.
    let write = format!("echo pwned > {}/target/owned", work.display());
    let run = guard(&["exec", "--profile", &profile, "--", "/bin/sh", "-c", &write]);
    assert_eq!(run.code(), 125, "run 2 must be refused: {run}");
    assert!(
        run.stderr.contains("target") && run.stderr.contains("resolves outside"),
        "the refusal names the path and why: {}",
        run.stderr
    );
    assert!(
        !victim.join("owned").exists(),
        "nothing was written in the victim directory"
    );

    // A link that stays inside the write path is still fine.
    fs::remove_file(work.join("target")).expect("remove planted link");
    fs::create_dir(work.join("real-target")).expect("mkdir");
    std::os::unix::fs::symlink("real-target", work.join("target")).expect("symlink");
    let run = guard(&["exec", "--profile", &profile, "--", "/bin/sh", "-c", &write]);
    assert_eq!(run.code(), 0, "a link inside the write path works: {run}");
    assert!(work.join("real-target/owned").exists());
}

#[test]
fn a_path_spelled_with_dot_dot_is_refused_before_anything_runs() {
    let dir = TempDir::new("dotdot");
    let work = dir.mkdir("work");
    let marker = dir.path().join("ran");
    // `work/../work` is beneath nothing by its components, but names the write path: refused
    // so a path cannot hide that it lies beneath a write path.
    let profile = write_profile(
        &dir,
        "dotdot",
        &format!(
            "name = \"dotdot\"\nextends = [\"base\"]\n[filesystem]\nread = [\"/usr\"]\nwrite = [\"{}/../work\"]\nexecute = [\"/usr/bin\"]\n",
            work.display()
        ),
    );
    let touch = format!("touch {}", marker.display());
    let run = guard(&["exec", "--profile", &profile, "--", "/bin/sh", "-c", &touch]);
    assert_eq!(run.code(), 125, "{run}");
    assert!(
        run.stderr.contains("filesystem.write[0]") && run.stderr.contains("`..`"),
        "names the key and the problem: {}",
        run.stderr
    );
    assert!(!marker.exists(), "nothing ran");
}

/// listen(2) on a socket that was never bound binds an ephemeral port on every address
/// without bind(2): no bind rule, Landlock bind check or bind hook sees it.
#[test]
fn a_profile_without_bind_rules_cannot_open_a_listener_by_autobind() {
    require_root!();
    let dir = TempDir::new("autobind");
    let listen = r#"
import socket, sys
s = socket.socket()
try:
    s.listen()
except PermissionError:
    print("listen refused"); sys.exit(3)
print("listening", s.getsockname()[1], flush=True)
"#;
    // Bare, listen() hands out a port on 0.0.0.0 that accepts connections from outside.
    let bare = std::process::Command::new("/usr/bin/python3")
        .args(["-c", listen])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&bare.stdout);
    assert!(
        stdout.starts_with("listening"),
        "bare listen works: {stdout}"
    );

    let profile = write_profile(
        &dir,
        "autobind",
        r#"
name = "autobind"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc"]
execute = ["/usr/bin", "/usr/lib"]
[network]
connect = ["127.0.0.1:9"]
"#,
    );
    let run = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/python3",
        "-c",
        listen,
    ]);
    assert_eq!(run.code(), 3, "{run}");
    assert!(run.stdout.contains("listen refused"), "{run}");
}

/// add_key(2) into the caller's user keyring (`KEY_SPEC_USER_KEYRING`), printing the key id.
const ADD_KEY: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
key = libc.syscall(248, b"user", sys.argv[1].encode(), b"secret", 6, -4)
print("key", key, ctypes.get_errno(), flush=True)
"#;

/// The id of the user-keyring key named `description`, seen from outside (keyctl SEARCH).
fn find_user_key(description: &str) -> Option<i64> {
    let search = format!(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n\
         print(libc.syscall(250, 10, -4, b'user', b'{description}', 0))"
    );
    let out = std::process::Command::new("/usr/bin/python3")
        .args(["-c", &search])
        .output()
        .expect("python3");
    let id: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("keyctl search prints a number");
    (id > 0).then_some(id)
}

/// Removes a key the test itself added (keyctl INVALIDATE by id).
fn invalidate_key(id: i64) {
    let code = format!("import ctypes\nctypes.CDLL(None).syscall(250, 21, {id})");
    std::process::Command::new("/usr/bin/python3")
        .args(["-c", &code])
        .status()
        .expect("python3");
}

/// Kernel keyrings are not namespaced: a key added by the sandbox lands in the host user's
/// keyring and outlives the run. A profile that leaves out `extends = ["base"]` (the fragment
/// that lists the keyring syscalls in its deny set) must not get them back.
#[test]
fn a_profile_without_base_still_cannot_touch_the_hosts_keyrings() {
    require_root!();
    let dir = TempDir::new("keyring");
    let description = format!("guard-e2e-key-{}", std::process::id());

    // Bare: the key is added and found from another process afterwards.
    let bare = std::process::Command::new("/usr/bin/python3")
        .args(["-c", ADD_KEY, &format!("{description}-bare")])
        .output()
        .expect("python3");
    assert!(bare.status.success(), "{bare:?}");
    let id = find_user_key(&format!("{description}-bare")).expect("bare add_key persists");
    invalidate_key(id);

    let profile = write_profile(
        &dir,
        "nobase",
        r#"
name = "nobase"
[filesystem]
read = ["/usr", "/etc", "/lib", "/lib64"]
execute = ["/usr/bin", "/usr/lib", "/lib64", "/usr/lib64"]
"#,
    );
    let run = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/python3",
        "-c",
        ADD_KEY,
        &description,
    ]);
    let leaked = find_user_key(&description);
    if let Some(id) = leaked {
        invalidate_key(id);
    }
    assert_eq!(run.code(), 0, "{run}");
    assert!(
        run.stdout.contains("key -1 1"),
        "add_key fails with EPERM: {run}"
    );
    assert_eq!(
        leaked, None,
        "no key of the sandbox is left in the host's keyring"
    );
}

/// A root-uid tool owns root's files, and inode flags (`chattr +A`, `+d`) need only ownership:
/// FS_IOC_SETFLAGS goes through an fd opened read-only, which Landlock's read rule allows.
#[test]
fn inode_flags_of_a_readable_file_cannot_be_changed() {
    require_root!();
    let dir = TempDir::new("chattr");
    let victim = dir.path().join("victim.txt");
    fs::write(&victim, "hello").expect("write victim");
    let flags = |path: &Path| -> String {
        let out = std::process::Command::new("lsattr")
            .arg(path)
            .output()
            .expect("lsattr");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    if !Path::new("/usr/bin/chattr").exists() || !Path::new("/usr/bin/lsattr").exists() {
        eprintln!("skipping: no chattr/lsattr here (e2fsprogs); the host suite runs it");
        return;
    }
    // Bare: chattr +A works on this file system (else the test cannot show anything).
    let bare = std::process::Command::new("chattr")
        .arg("+A")
        .arg(&victim)
        .status()
        .expect("chattr");
    if !bare.success() || !flags(&victim).contains('A') {
        eprintln!(
            "skipping: chattr +A does not work on {} here",
            victim.display()
        );
        return;
    }
    std::process::Command::new("chattr")
        .arg("-A")
        .arg(&victim)
        .status()
        .expect("chattr");
    let before = flags(&victim);

    let profile = write_profile(
        &dir,
        "chattr",
        &format!(
            r#"
name = "chattr"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc", "{victim}"]
execute = ["/usr/bin", "/usr/lib"]
"#,
            victim = victim.display()
        ),
    );
    let cmd = format!("chattr +A {}; echo status=$?", victim.display());
    let run = guard(&["exec", "--profile", &profile, "--", "/bin/sh", "-c", &cmd]);
    assert!(
        run.stdout.contains("status=1"),
        "chattr failed inside: {run}"
    );
    assert_eq!(
        flags(&victim),
        before,
        "the flags seen from outside are unchanged"
    );
}

/// TCP Fast Open connects inside sendto(MSG_FASTOPEN), not connect(2): the connect hooks must
/// still see it, for IPv4 and for IPv4-mapped IPv6.
#[test]
fn tcp_fast_open_to_a_forbidden_address_is_denied() {
    use std::net::TcpListener;
    require_root!();
    let dir = TempDir::new("tfo");
    let allowed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = allowed.local_addr().expect("addr").port();
    let Ok(forbidden) = TcpListener::bind(("127.0.0.2", port)) else {
        eprintln!("skipping: port {port} busy on 127.0.0.2");
        return;
    };
    forbidden.set_nonblocking(true).expect("nonblocking");
    let tfo = format!(
        r#"
import socket, sys
for family, host in ((socket.AF_INET, "127.0.0.2"), (socket.AF_INET6, "::ffff:127.0.0.2")):
    s = socket.socket(family)
    try:
        s.sendto(b"hello", socket.MSG_FASTOPEN, (host, {port}))
        print("sent", host, flush=True)
    except OSError as e:
        print("refused", host, e.errno, flush=True)
"#
    );
    // Bare: both reach the listener on 127.0.0.2.
    let bare = std::process::Command::new("/usr/bin/python3")
        .args(["-c", &tfo])
        .output()
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&bare.stdout)
            .matches("sent")
            .count(),
        2,
        "bare TFO works: {bare:?}"
    );
    let mut bare_seen = 0;
    while forbidden.accept().is_ok() {
        bare_seen += 1;
    }
    assert_eq!(bare_seen, 2, "the listener saw the bare connections");

    let profile = write_profile(
        &dir,
        "tfo",
        &format!(
            r#"
name = "tfo"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc"]
execute = ["/usr/bin", "/usr/lib"]
[network]
connect = ["127.0.0.1:{port}"]
"#
        ),
    );
    let run = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/python3",
        "-c",
        &tfo,
    ]);
    assert_eq!(run.stdout.matches("refused").count(), 2, "{run}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        forbidden.accept().is_err(),
        "the forbidden listener saw nothing"
    );
}

/// The daemon starts sandboxes outside of its caller's confinement: a sandboxed tool that
/// reaches its socket must not get a wider profile (or stop, or list, other sandboxes).
#[test]
fn a_sandboxed_tool_cannot_ask_the_daemon_for_a_wider_profile() {
    use crate::daemon_support::{Daemon, shared_guard};
    require_root!();
    let outside = TempDir::new("daemon-escape");
    let wide = format!(
        "name = \"wide\"\nextends = [\"base\"]\n[filesystem]\nread = [\"/usr\", \"/etc\"]\n\
         write = [\"{}\"]\nexecute = [\"/usr/bin\", \"/usr/lib\"]\n",
        outside.path().display()
    );
    let daemon = Daemon::start("", &[("wide", &wide)]);
    let guard_bin = shared_guard();
    let bin_dir = guard_bin.parent().expect("guard's directory");
    let escaped = outside.path().join("escaped");
    let inner = |profile: &str| {
        vec![
            guard_bin.display().to_string(),
            "exec".into(),
            "--daemon".into(),
            "--profile".into(),
            profile.into(),
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            format!("echo pwned > {}", escaped.display()),
        ]
    };

    // Bare: the same request from outside any sandbox is served.
    let bare = daemon.root(
        &inner("wide")[1..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(bare.code(), 0, "{bare}");
    assert!(escaped.exists(), "the daemon served the bare request");
    fs::remove_file(&escaped).expect("cleanup");

    // The narrow profile may write nothing; it may reach unix sockets (accepting that the
    // paths are not enforced, and below Landlock ABI 6 that abstract ones are not scoped),
    // which is how a tool finds the daemon's socket.
    let dir = TempDir::new("daemon-narrow");
    let narrow = write_profile(
        &dir,
        "narrow",
        &format!(
            r#"
name = "narrow"
extends = ["base"]
allow_weaker = ["ebpf.unix", "landlock.scope"]
[filesystem]
read = ["/usr", "/etc", "{bin}", "{daemon}"]
execute = ["/usr/bin", "/usr/lib", "{bin}"]
[network]
unix = ["{socket}"]
[process]
env = {{ keep = ["PATH"], set = {{ GUARD_SOCKET = "{socket}" }} }}
"#,
            bin = bin_dir.display(),
            daemon = daemon.dir.path().display(),
            socket = daemon.socket.display()
        ),
    );
    let mut args = vec!["exec", "--profile", &narrow, "--"];
    let inner = inner("wide");
    args.extend(inner.iter().map(String::as_str));
    let run = guard(&args);
    assert_eq!(run.code(), 125, "{run}");
    assert!(
        run.stderr.contains("inside guard sandbox"),
        "the refusal says why: {}",
        run.stderr
    );
    assert!(!escaped.exists(), "nothing ran under the wider profile");
    let refusals: Vec<_> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["verdict"] == "deny" && r["event"] == "violation")
        .collect();
    assert_eq!(refusals.len(), 1, "one refusal record: {refusals:?}");
    assert!(
        refusals[0]["detail"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("inside guard sandbox")),
        "{refusals:?}"
    );

    // `guard status` from inside is refused as well.
    let status = [guard_bin.display().to_string(), "status".into()];
    let mut args = vec!["exec", "--profile", &narrow, "--"];
    args.extend(status.iter().map(String::as_str));
    let run = guard(&args);
    assert_ne!(run.code(), 0, "{run}");
    assert!(run.stderr.contains("inside guard sandbox"), "{run}");
}

/// An allowlisted binary inside a write path can be rewritten in place (same inode) and then
/// runs any payload under its allowed name; such a profile is refused unless it accepts that
/// by name with `process.exec_writable = true`.
#[test]
fn an_allowlisted_binary_in_a_write_path_is_refused_unless_accepted() {
    require_root!();
    let dir = TempDir::new("exec-writable");
    let work = dir.mkdir("work");
    let tool = work.join("tool");
    fs::copy("/usr/bin/true", &tool).expect("copy true");
    let marker = work.join("payload-ran");
    let profile = |accept: bool| {
        write_profile(
            &dir,
            if accept { "accepted" } else { "plain" },
            &format!(
                r#"
name = "ew"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc", "{dir}"]
write = ["{work}"]
execute = ["/usr/bin", "/usr/lib", "{work}"]
[process]
exec = ["/usr/bin/sh", "/usr/bin/cp", "{tool}"]
exec_writable = {accept}
"#,
                dir = dir.path().display(),
                work = work.display(),
                tool = tool.display(),
            ),
        )
    };
    // The payload: /usr/bin/touch copied over the listed binary (cp keeps the inode).
    let attack = format!(
        "cp /usr/bin/touch {tool} && {tool} {marker}",
        tool = tool.display(),
        marker = marker.display()
    );
    // Accepted by name, the attack works: what the profile lists is only as strong as the
    // write path, which is what `exec_writable` says.
    let accepted = profile(true);
    let run = guard(&[
        "exec",
        "--profile",
        &accepted,
        "--",
        "/usr/bin/sh",
        "-c",
        &attack,
    ]);
    assert_eq!(run.code(), 0, "{run}");
    assert!(marker.exists(), "the rewritten binary ran the payload");
    fs::remove_file(&marker).expect("cleanup");
    fs::copy("/usr/bin/true", &tool).expect("restore");

    let plain = profile(false);
    let check = guard(&["check", &plain]);
    assert_eq!(check.code(), 1, "{check}");
    assert!(
        check.stderr.contains("overlaps the write path") && check.stderr.contains("exec_writable"),
        "{check}"
    );
    let run = guard(&[
        "exec",
        "--profile",
        &plain,
        "--",
        "/usr/bin/sh",
        "-c",
        &attack,
    ]);
    assert_eq!(run.code(), 125, "{run}");
    assert!(!marker.exists(), "nothing ran");
}

/// Write access to a cgroup mount lets a root-uid tool leave the sandbox's cgroup (or make a
/// child it controls), to bpffs unpin guard's probes, to its own audit log rewrite the
/// evidence: no profile may grant them, whatever it says.
#[test]
fn no_profile_can_grant_writes_on_cgroups_bpffs_or_its_own_audit_log() {
    require_root!();
    let dir = TempDir::new("protected");
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mount_of = |fstype: &str| {
        mountinfo.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split(' ').next()? == fstype)
                .then(|| left.split(' ').nth(4).map(str::to_owned))?
        })
    };
    let cgroup2 = mount_of("cgroup2").expect("a cgroup2 mount (guard needs one)");
    // Bare, root creates (and removes) a cgroup there: the attack a write grant would allow.
    let child = Path::new(&cgroup2).join(format!("guard-e2e-protected-{}", std::process::id()));
    fs::create_dir(&child).expect("bare mkdir of a cgroup");
    fs::remove_dir(&child).expect("rmdir");

    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let try_write = |label: &str, write: &str, audit_log: Option<&Path>| {
        let profile = write_profile(
            &dir,
            label,
            &format!(
                "name = \"{label}\"\nextends = [\"base\"]\n[filesystem]\nread = [\"/usr\"]\n\
                 write = [\"{write}\", \"{dir}\"]\nexecute = [\"/usr/bin\"]\n",
                dir = dir.path().display()
            ),
        );
        let mut args = vec!["exec".to_owned()];
        if let Some(log) = audit_log {
            args.extend(["--audit-log".to_owned(), log.display().to_string()]);
        }
        args.extend(["--profile", &profile, "--", "/bin/sh", "-c", &touch].map(str::to_owned));
        let run = guard(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(run.code(), 125, "{label}: {run}");
        assert!(run.stderr.contains("cannot be granted"), "{label}: {run}");
        assert!(!marker.exists(), "{label}: nothing ran");
        if audit_log.is_none() {
            let check = guard(&["check", &profile]);
            assert_eq!(check.code(), 1, "{label}: {check}");
            assert!(
                check.stderr.contains("cannot be granted"),
                "{label}: {check}"
            );
        }
    };
    try_write("cgroup2", &cgroup2, None);
    match mount_of("bpf") {
        Some(bpffs) => try_write("bpffs", &bpffs, None),
        None => eprintln!("skipping the bpffs case: no bpf file system mounted"),
    }
    try_write("run", "/run", None);
    // The audit log of the run inside a write path (the tool could rewrite its own record).
    let logs = dir.mkdir("logs");
    try_write(
        "own-log",
        &logs.display().to_string(),
        Some(&logs.join("audit.jsonl")),
    );
}

/// A root-uid tool owns root's files: chmod, chown, utimensat and setxattr need only
/// ownership, and Landlock has no right for them. The read-only file tree refuses them
/// outside the write paths, and ordinary tools still work inside.
#[test]
fn metadata_of_files_outside_the_write_paths_cannot_change() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    require_root!();
    let dir = TempDir::new("metadata");
    let victim = dir.path().join("victim.txt");
    let work = dir.mkdir("work");
    fs::write(&victim, "hello").expect("victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).expect("chmod");
    // tar round trip inside the write path where tar exists (the VM's image has none).
    let tar = if Path::new("/usr/bin/tar").exists() || Path::new("/bin/tar").exists() {
        "tar cf t.tar f && mkdir u && tar xf t.tar -C u"
    } else {
        eprintln!("note: no tar here; the write-path part uses cp only");
        "mkdir u && cp -p f u/f"
    };
    let attack = format!(
        "chmod 600 {v}; chown 1:1 {v}; touch -m -d 2001-01-01 {v}; \
         python3 -c \"import os; os.setxattr('{v}', 'user.x', b'1')\"; \
         cd {w} && echo x > f && {tar} && \
         cp -p f g && chmod 700 g && touch -d 2001-01-01 g && echo inside-ok",
        v = victim.display(),
        w = work.display()
    );
    let before = fs::metadata(&victim).expect("stat");
    // Bare, every change goes through (then the file is restored).
    let bare = std::process::Command::new("/bin/sh")
        .args(["-c", &attack])
        .output()
        .expect("sh");
    let changed = fs::metadata(&victim).expect("stat");
    assert!(
        String::from_utf8_lossy(&bare.stdout).contains("inside-ok"),
        "{bare:?}"
    );
    assert_eq!(changed.mode() & 0o777, 0o600, "bare chmod works");
    assert_eq!(changed.uid(), 1, "bare chown works");
    fs::remove_file(&victim).expect("reset");
    fs::write(&victim, "hello").expect("victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::remove_dir_all(&work).expect("reset");
    fs::create_dir(&work).expect("mkdir");
    let before_mtime = fs::metadata(&victim).expect("stat").mtime();
    let _ = before;

    let profile = write_profile(
        &dir,
        "metadata",
        &format!(
            r#"
name = "metadata"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc", "{dir}"]
write = ["{work}"]
execute = ["/usr/bin", "/usr/lib"]
"#,
            dir = dir.path().display(),
            work = work.display()
        ),
    );
    let run = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/bin/sh",
        "-c",
        &attack,
    ]);
    assert!(
        run.stdout.contains("inside-ok"),
        "tar, cp, chmod work in the write path: {run}"
    );
    let after = fs::metadata(&victim).expect("stat");
    assert_eq!(after.mode() & 0o777, 0o644, "mode unchanged: {run}");
    assert_eq!(after.uid(), 0, "owner unchanged: {run}");
    assert_eq!(after.mtime(), before_mtime, "mtime unchanged: {run}");
    let xattr = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            &format!("import os; print(os.listxattr('{}'))", victim.display()),
        ])
        .output()
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&xattr.stdout).trim(),
        "[]",
        "no xattr was set"
    );
    assert!(
        work.join("u/f").exists() && work.join("g").exists(),
        "{run}"
    );
}

/// A library written into a write path and preloaded runs its code inside an allowed binary
/// (mapping a library needs no exec right from Landlock). Write paths no execute rule covers
/// are mounted noexec, so the loader cannot map it.
#[test]
fn a_payload_library_in_a_write_path_cannot_be_preloaded() {
    require_root!();
    let dir = TempDir::new("preload");
    let work = dir.mkdir("work");
    let source = dir.path().join("payload.c");
    fs::write(
        &source,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void p(void) {{ \
             FILE *f = fopen(\"{}/PAYLOAD\", \"w\"); if (f) {{ fputs(\"ran\", f); fclose(f); }} }}\n",
            work.display()
        ),
    )
    .expect("payload source");
    let library = work.join("payload.so");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("skipping: no C compiler to build the payload library");
        return;
    }
    let marker = work.join("PAYLOAD");
    // Bare: the payload runs inside /usr/bin/true.
    let bare = std::process::Command::new("/usr/bin/true")
        .env("LD_PRELOAD", &library)
        .status()
        .expect("true");
    assert!(
        bare.success() && marker.exists(),
        "bare preload runs the payload"
    );
    fs::remove_file(&marker).expect("reset");

    let profile = write_profile(
        &dir,
        "preload",
        &format!(
            r#"
name = "preload"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc", "{work}"]
write = ["{work}"]
execute = ["/usr/bin", "/usr/lib"]
"#,
            work = work.display()
        ),
    );
    let cmd = format!("LD_PRELOAD={} /usr/bin/true; echo done", library.display());
    let run = guard(&["exec", "--profile", &profile, "--", "/bin/sh", "-c", &cmd]);
    assert!(run.stdout.contains("done"), "{run}");
    assert!(!marker.exists(), "the payload never ran: {run}");
}

/// Source routing through ancillary data: seccomp cannot see `sendmsg` control messages, so
/// the refused socket options (IP_OPTIONS, IPV6_RTHDR, ...) have cmsg twins. The kernel asks
/// for CAP_NET_RAW for source routes and IPv6 option headers in cmsgs (and refuses routing
/// headers there), and the sandbox has no capability: all fail, and nothing arrives.
#[test]
fn source_routes_and_ipv6_option_headers_in_control_messages_are_refused() {
    use std::net::UdpSocket;
    require_root!();
    let dir = TempDir::new("cmsg-route");
    let allowed = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = allowed.local_addr().expect("addr").port();
    let Ok(hidden) = UdpSocket::bind(("127.0.0.2", port)) else {
        eprintln!("skipping: port {port} busy on 127.0.0.2");
        return;
    };
    let script = format!(
        r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
lsrr = struct.pack("!BBB", 131, 7, 4) + socket.inet_aton("127.0.0.2") + b"\0"
try:
    s.sendmsg([b"x"], [(socket.IPPROTO_IP, 7, lsrr)], 0, ("127.0.0.1", {port}))
    print("retopts sent")
except OSError as e:
    print("retopts refused", e.errno)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for name, level in (("hopopts", socket.IPV6_HOPOPTS), ("dstopts", socket.IPV6_DSTOPTS)):
    try:
        s6.sendmsg([b"x"], [(socket.IPPROTO_IPV6, level, struct.pack("!BB6x", 0, 0))], 0, ("::1", {port}))
        print(name, "sent")
    except OSError as e:
        print(name, "refused", e.errno)
"#
    );
    // Bare (root, with CAP_NET_RAW): the loose source route is accepted.
    let bare = std::process::Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    let bare_out = String::from_utf8_lossy(&bare.stdout);
    assert!(bare_out.contains("retopts sent"), "bare: {bare_out}");

    let profile = write_profile(
        &dir,
        "cmsg",
        &format!(
            r#"
name = "cmsg"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc"]
execute = ["/usr/bin", "/usr/lib"]
[network]
connect = ["127.0.0.1:{port}", "[::1]:{port}"]
"#
        ),
    );
    hidden.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 16];
    while hidden.recv(&mut buf).is_ok() {}
    let run = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/python3",
        "-c",
        &script,
    ]);
    assert_eq!(
        run.stdout.matches("refused 1").count(),
        3,
        "EPERM for all three: {run}"
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(hidden.recv(&mut buf).is_err(), "nothing reached 127.0.0.2");
}

/// `connects_per_minute` counts UDP too: each datagram to a destination the sandbox has not
/// sent to recently takes a token, as a TCP connect does; repeats to a known one do not.
#[test]
fn udp_to_new_destinations_counts_against_connects_per_minute() {
    use std::net::UdpSocket;
    require_root!();
    let dir = TempDir::new("udp-rate");
    let listeners: Vec<UdpSocket> = (0..30)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|s| s.local_addr().expect("addr").port())
        .collect();
    let received = |listeners: &[UdpSocket]| -> Vec<usize> {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut buf = [0u8; 16];
        listeners
            .iter()
            .map(|s| std::iter::from_fn(|| s.recv(&mut buf).ok()).count())
            .collect()
    };
    // Ten datagrams to the first port, then one to every port.
    let script = format!(
        "import socket\nports = {ports:?}\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         ok = 0\nfor p in [ports[0]] * 10 + ports:\n    try:\n        s.sendto(b'x', ('127.0.0.1', p)); ok += 1\n    \
         except OSError:\n        pass\nprint('sent', ok)\n"
    );
    let bare = std::process::Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    assert!(
        String::from_utf8_lossy(&bare.stdout).contains("sent 40"),
        "{bare:?}"
    );
    let counts = received(&listeners);
    assert_eq!(
        counts.iter().sum::<usize>(),
        40,
        "bare: every datagram arrives"
    );

    let profile = write_profile(
        &dir,
        "udprate",
        r#"
name = "udprate"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc"]
execute = ["/usr/bin", "/usr/lib"]
[network]
connect = ["127.0.0.1:1-65535"]
[limits]
connects_per_minute = 5
"#,
    );
    let run = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/python3",
        "-c",
        &script,
    ]);
    assert_eq!(run.code(), 0, "{run}");
    let counts = received(&listeners);
    let destinations = counts.iter().filter(|n| **n > 0).count();
    assert!(
        destinations <= 5,
        "at most 5 new destinations in a minute, saw {destinations}: {counts:?} {run}"
    );
    assert!(
        counts[0] >= 10,
        "repeats to a known destination take no token: {counts:?} {run}"
    );
    assert!(
        run.stderr.contains("connects_per_minute"),
        "the denials say which rule: {run}"
    );
}

/// Rule paths are opened by guard, so `/proc/self` in a profile would name guard's own process
/// (its cmdline holds the audit log path; its net/ files list the host's sockets): refused.
#[test]
fn proc_self_in_a_profile_is_refused_before_anything_runs() {
    let dir = TempDir::new("procself");
    let marker = dir.path().join("ran");
    for path in ["/proc/self", "/proc/self/net", "/proc/thread-self/status"] {
        let profile = write_profile(
            &dir,
            "procself",
            &format!(
                "name = \"procself\"\nextends = [\"base\"]\n[filesystem]\nread = [\"/usr\", \"{path}\"]\n\
                 write = [\"{}\"]\nexecute = [\"/usr/bin\"]\n",
                dir.path().display()
            ),
        );
        let check = guard(&["check", &profile]);
        assert_eq!(check.code(), 1, "{path}: {check}");
        assert!(
            check.stderr.contains("filesystem.read[1]"),
            "{path}: {check}"
        );
        let touch = format!("touch {}", marker.display());
        let run = guard(&["exec", "--profile", &profile, "--", "/bin/sh", "-c", &touch]);
        assert_eq!(run.code(), 125, "{path}: {run}");
        assert!(!marker.exists(), "{path}: nothing ran");
    }
}
