//! `guard doctor` on this host: every line it prints is compared with what the test finds out
//! by itself (the Landlock syscall, a direct aya load, mountinfo), so the test holds on any host.

use std::path::Path;

use aya::programs::{CgroupSockAddr, FEntry, Lsm, TracePoint};
use aya::{Btf, Ebpf};
use guard_common::names;

use crate::support::run_guard;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The Landlock ABI, asked directly (LANDLOCK_CREATE_RULESET_VERSION).
fn landlock_abi() -> i64 {
    // SAFETY: the version query takes no memory.
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    }
}

/// "hybrid", "v2", "v1" or "none" from the test's own reading of mountinfo.
fn cgroup_layout() -> &'static str {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_else(|e| panic!("cannot read mountinfo: {e}"));
    let fs_types: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split(" - ").nth(1)?.split(' ').next())
        .collect();
    // A v1 hierarchy counts when it carries a controller, not only a name (name=systemd).
    let v1 = text.lines().any(|l| {
        l.split(" - ").nth(1).is_some_and(|rest| {
            let mut f = rest.split(' ');
            f.next() == Some("cgroup")
                && f.nth(1).is_some_and(|opts| {
                    opts.split(',').any(|o| {
                        [
                            "cpu", "memory", "pids", "cpuset", "blkio", "devices", "freezer",
                        ]
                        .contains(&o)
                    })
                })
        })
    });
    match (fs_types.contains(&"cgroup2"), v1) {
        (true, true) => "hybrid",
        (true, false) => "v2",
        (false, true) => "v1",
        (false, false) => "none",
    }
}

/// Whether the kernel takes an LSM (or fentry) program, tried directly with aya on the same
/// object the binary embeds: load, attach, and detach at once.
fn tracing_program_loads(lsm: bool) -> bool {
    let Ok(btf) = Btf::from_sys_fs() else {
        return false;
    };
    let Ok(mut ebpf) = Ebpf::load(guard::ebpf::object_bytes()) else {
        return false;
    };
    if lsm {
        let prog: &mut Lsm = ebpf
            .program_mut(names::FEATURE_LSM)
            .unwrap_or_else(|| panic!("feature_lsm in the object missing from the object"))
            .try_into()
            .unwrap_or_else(|e| panic!("feature_lsm in the object is not an lsm program: {e}"));
        prog.load(names::FEATURE_LSM_HOOK, &btf).is_ok() && prog.attach().is_ok()
    } else {
        let prog: &mut FEntry = ebpf
            .program_mut(names::FEATURE_FENTRY)
            .unwrap_or_else(|| panic!("feature_fentry in the object missing from the object"))
            .try_into()
            .unwrap_or_else(|e| {
                panic!("feature_fentry in the object is not an fentry program: {e}")
            });
        prog.load(names::FEATURE_FENTRY_FUNCTION, &btf).is_ok() && prog.attach().is_ok()
    }
}

fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` line in:\n{out}"))
}

#[test]
fn doctor_reports_what_the_kernel_says() {
    let out = run_guard(&["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "guard doctor failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    assert_eq!(
        line(&stdout, "kernel: "),
        format!("kernel: {}", release.trim())
    );

    let abi = landlock_abi();
    let expected = if abi > 0 {
        format!("landlock: ABI {abi}")
    } else {
        "landlock: unavailable".to_string()
    };
    assert_eq!(line(&stdout, "landlock: "), expected, "\n{stdout}");

    assert!(
        line(&stdout, "cgroups: ").starts_with(&format!("cgroups: {}", cgroup_layout())),
        "\n{stdout}"
    );
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    assert_eq!(
        line(&stdout, "btf: ").starts_with("btf: available"),
        btf,
        "\n{stdout}"
    );

    if !is_root() {
        eprintln!("skipping the BPF lines: not root, every program type is refused");
        for t in ["tracepoint", "cgroup_sock_addr", "lsm", "fentry"] {
            assert!(
                line(&stdout, &format!("bpf {t}: ")).contains(": refused ("),
                "\n{stdout}"
            );
        }
        return;
    }
    // The types guard cannot work without load on every kernel it supports.
    assert_eq!(
        line(&stdout, "bpf tracepoint: "),
        "bpf tracepoint: loadable",
        "\n{stdout}"
    );
    assert_eq!(
        line(&stdout, "bpf cgroup_sock_addr: "),
        "bpf cgroup_sock_addr: loadable",
        "\n{stdout}"
    );
    // LSM and fentry differ between hosts: the report must match a direct attempt.
    for (t, lsm) in [("lsm", true), ("fentry", false)] {
        let got = line(&stdout, &format!("bpf {t}: "));
        if tracing_program_loads(lsm) {
            assert_eq!(got, format!("bpf {t}: loadable"), "\n{stdout}");
        } else {
            assert!(
                got.starts_with(&format!("bpf {t}: refused (")) && got.len() > 20,
                "refusal without a reason: {got}\n{stdout}"
            );
        }
    }
    // What that means for exec allowlists follows from the LSM line.
    let exec = line(&stdout, "  the exec allowlist: ");
    if line(&stdout, "bpf lsm: ").ends_with("loadable") {
        assert!(exec.contains("BPF LSM"), "{exec}");
    } else {
        assert!(!exec.contains("BPF LSM"), "{exec}");
        assert!(exec.contains("eBPF exec tracepoint"), "{exec}");
    }
}

/// The tracepoint and connect4 probes are typed as the doctor expects (guards against the
/// object and `guard_common::names` drifting apart).
#[test]
fn feature_probes_are_in_the_object() {
    let Ok(mut ebpf) = Ebpf::load(guard::ebpf::object_bytes()) else {
        eprintln!("skipping: cannot create BPF maps (not root?)");
        return;
    };
    let _: &mut TracePoint = ebpf
        .program_mut(names::FEATURE_TRACEPOINT)
        .expect(names::FEATURE_TRACEPOINT)
        .try_into()
        .expect("a tracepoint");
    let _: &mut CgroupSockAddr = ebpf
        .program_mut(names::FEATURE_CONNECT4)
        .expect(names::FEATURE_CONNECT4)
        .try_into()
        .expect("a cgroup_sock_addr program");
}
