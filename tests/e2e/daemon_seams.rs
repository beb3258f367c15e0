//! The seams of issue 11 through the daemon: a throw-away user runs the same attacks bare and
//! then as `guard exec` through `guard daemon`, and the outcome is read from outside (the
//! victim's limits, the host's System V table, a file's mode). Local mode has its own tests
//! (`attacks`, `boundary`, `sockets`); the daemon runs the same confinement as the caller.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::daemon_support::{Daemon, TestUser, world_dir};
use crate::support::{TempDir, require_root};

/// The attacks, each printing `<name> ok` or `<name> refused <errno>`. argv: victim pid,
/// System V key, file outside the write paths.
const ATTACKS: &str = r#"
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
victim, key, outside = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
class rlimit(ctypes.Structure):
    _fields_ = [("cur", ctypes.c_ulong), ("max", ctypes.c_ulong)]
new = rlimit(7, 7)
r = libc.prlimit64(victim, 7, ctypes.byref(new), None)
print("prlimit", "ok" if r == 0 else "refused %d" % ctypes.get_errno())
for name, args in (("netlink-diag", (16, socket.SOCK_DGRAM, 4)), ("icmp", (2, socket.SOCK_DGRAM, 1))):
    try:
        socket.socket(*args).close(); print(name, "ok")
    except OSError as e:
        print(name, "refused", e.errno)
shm = libc.shmget(key, 4096, 0o1600)
print("shm", "ok" if shm >= 0 else "refused %d" % ctypes.get_errno())
try:
    os.chmod(outside, 0o600); print("chmod ok")
except OSError as e:
    print("chmod refused", e.errno)
"#;

/// Whether the host's System V table holds a segment with `key` (what `ipcs -m` reads).
fn host_has_segment(key: i32) -> Option<i32> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").expect("sysvipc");
    table.lines().skip(1).find_map(|l| {
        let mut f = l.split_whitespace();
        let k: i32 = f.next()?.parse().ok()?;
        let id: i32 = f.next()?.parse().ok()?;
        (k == key).then_some(id)
    })
}

#[test]
fn through_the_daemon_the_seams_stay_closed() {
    require_root!();
    let user = TestUser::new(&[]);
    let work = TempDir::new("daemon-seams");
    let writable = world_dir(&work, "w");
    let outside = work.path().join("outside.txt");
    std::fs::write(&outside, "x").expect("file");
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    nix::unistd::chown(&outside, Some(nix::unistd::Uid::from_raw(user.uid)), None)
        .expect("chown to the user");
    let key = 0x6775_0000 + (std::process::id() as i32 & 0xffff);
    let profile = format!(
        r#"
name = "e2e-seams"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc", "{work}"]
write = ["{w}"]
execute = ["/usr/bin", "/usr/lib"]
[network]
connect = ["127.0.0.1:9"]
"#,
        work = work.path().display(),
        w = writable.display()
    );
    let daemon = Daemon::start(
        &format!(
            "[[allow]]\nusers = [\"{}\"]\nprofiles = [\"e2e-seams\"]\n",
            user.name
        ),
        &[("e2e-seams", &profile)],
    );
    // A victim of the same user, outside any sandbox.
    let mut victim = Command::new("setpriv")
        .args([
            "--reuid",
            &user.name,
            "--regid",
            &user.name,
            "--init-groups",
        ])
        .args(["sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .expect("victim");
    let vpid = victim.id().to_string();
    let keys = key.to_string();
    let outside_s = outside.display().to_string();
    let args = ["-c", ATTACKS, &vpid, &keys, &outside_s];

    // Bare, as the user: every attack works.
    let bare = Command::new("setpriv")
        .args([
            "--reuid",
            &user.name,
            "--regid",
            &user.name,
            "--init-groups",
        ])
        .arg("/usr/bin/python3")
        .args(args)
        .current_dir(&writable)
        .output()
        .expect("bare");
    let bare_out = String::from_utf8_lossy(&bare.stdout).into_owned();
    let limits = std::fs::read_to_string(format!("/proc/{vpid}/limits")).expect("limits");
    let bare_segment = host_has_segment(key);
    if let Some(id) = bare_segment {
        let _ = Command::new("ipcrm").args(["-m", &id.to_string()]).status();
    }
    assert!(bare_out.contains("prlimit ok"), "{bare_out}");
    assert!(bare_out.contains("netlink-diag ok"), "{bare_out}");
    assert!(
        bare_out.contains("shm ok") && bare_segment.is_some(),
        "{bare_out}"
    );
    assert!(bare_out.contains("chmod ok"), "{bare_out}");
    assert!(limits.contains("Max open files            7"), "{limits}");
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).expect("reset");
    let _ = victim.kill();
    let _ = victim.wait();

    let mut victim = Command::new("setpriv")
        .args([
            "--reuid",
            &user.name,
            "--regid",
            &user.name,
            "--init-groups",
        ])
        .args(["sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .expect("victim");
    let vpid = victim.id().to_string();
    let args = ["-c", ATTACKS, &vpid, &keys, &outside_s];
    let mut exec = vec!["exec", "--profile", "e2e-seams", "--", "/usr/bin/python3"];
    exec.extend(args);
    let run = user.run(&daemon.socket, &writable, &exec);
    let limits = std::fs::read_to_string(format!("/proc/{vpid}/limits")).expect("limits");
    let leftover = host_has_segment(key);
    if let Some(id) = leftover {
        let _ = Command::new("ipcrm").args(["-m", &id.to_string()]).status();
    }
    let _ = victim.kill();
    let _ = victim.wait();
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("prlimit refused 1"), "{run}");
    assert!(
        !limits.contains("Max open files            7"),
        "the victim is untouched: {limits}"
    );
    assert!(run.stdout.contains("netlink-diag refused 1"), "{run}");
    assert!(run.stdout.contains("icmp refused"), "{run}");
    assert!(
        run.stdout.contains("shm ok"),
        "its own segment, in its own namespace: {run}"
    );
    assert_eq!(
        leftover, None,
        "nothing of the sandbox is left in the host's IPC table"
    );
    assert!(run.stdout.contains("chmod refused 30"), "EROFS: {run}");
    let mode = std::fs::metadata(&outside)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644, "the mode seen from outside is unchanged");
}
