//! The enforcement model on the hosts guard meets: this development host (Landlock 7, hybrid
//! cgroups, no BPF LSM), the VM (Landlock 6, BPF LSM, pure cgroup v2), and older Landlock ABIs.

use super::*;
use crate::plan::{CompileContext, UserIds, UserResolver};
use crate::profile::{ExpandContext, Lookup, Source};

struct NoUsers;
impl UserResolver for NoUsers {
    fn resolve(&self, _: &str) -> Result<Option<UserIds>, nix::Error> {
        Ok(None)
    }
}

fn plan(text: &str, mode: Mode) -> Plan {
    let src = Source {
        display: "t.toml".into(),
        id: "t.toml".into(),
        dir: None,
        text: text.into(),
    };
    let profile =
        crate::profile::resolve(&src, &Lookup::new(None)).unwrap_or_else(|e| panic!("{e}"));
    let ctx = CompileContext {
        expand: ExpandContext {
            cwd: "/w".into(),
            home: None,
            tmpdir: "/tmp".into(),
        },
        parent_env: vec![],
        mode,
        users: &NoUsers,
    };
    Plan::compile(&profile, &ctx).unwrap_or_else(|e| panic!("{e}"))
}

const NET: &str = r#"
    name = "t"
    [filesystem]
    read = ["/usr"]
    [network]
    connect = ["127.0.0.1:443"]
    [limits]
    memory = "1MiB"
    pids = 5
    cpu = 0.5
"#;

fn this_host() -> HostView {
    HostView {
        landlock_abi: 7,
        probes: Ok(()),
        bpf_lsm: false,
        unix_hooks: Ok(()),
        cgroup: CgroupLayout::Hybrid {
            v1: vec!["cpu".into(), "memory".into(), "pids".into()],
        },
    }
}

fn vm() -> HostView {
    HostView {
        landlock_abi: 6,
        probes: Ok(()),
        bpf_lsm: true,
        unix_hooks: Err("cgroup unix socket hooks do not load".into()),
        cgroup: CgroupLayout::V2 {
            controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
        },
    }
}

fn layers(e: &Enforcement, part: Part) -> Vec<Layer> {
    e.part(part)
        .unwrap_or_else(|| panic!("{part:?} missing"))
        .layers()
        .to_vec()
}

#[test]
fn this_host_enforces_everything_with_the_tracepoint_for_exec() {
    let e = assess(&plan(NET, Mode::Enforce), &this_host());
    assert!(e.refusals().is_empty(), "{:?}", e.refusals());
    assert_eq!(
        layers(&e, Part::TcpPorts),
        vec![Layer::EbpfCgroupHooks, Layer::Landlock { abi: 7 }]
    );
    assert_eq!(
        layers(&e, Part::Exec),
        vec![Layer::Landlock { abi: 7 }, Layer::EbpfExecTracepoint]
    );
    assert_eq!(layers(&e, Part::Memory), vec![Layer::CgroupV1]);
}

#[test]
fn the_vm_adds_bpf_lsm_and_uses_cgroup_v2() {
    let e = assess(&plan(NET, Mode::Enforce), &vm());
    assert!(e.refusals().is_empty(), "{:?}", e.refusals());
    assert_eq!(layers(&e, Part::Exec)[0], Layer::BpfLsm);
    assert_eq!(layers(&e, Part::Pids), vec![Layer::CgroupV2]);
    assert_eq!(layers(&e, Part::Scoping), vec![Layer::Landlock { abi: 6 }]);
}

#[test]
fn landlock_2_leaves_ports_to_the_hooks_and_cannot_scope() {
    let host = HostView {
        landlock_abi: 2,
        ..vm()
    };
    let e = assess(&plan(NET, Mode::Enforce), &host);
    assert_eq!(layers(&e, Part::TcpPorts), vec![Layer::EbpfCgroupHooks]);
    match &e.part(Part::Files).map(|p| &p.status) {
        Some(Status::Enforced { note, .. }) => assert_eq!(
            *note,
            Some(Loss::Landlock {
                needs: landlock_abi::TRUNCATE,
                has: 2
            })
        ),
        other => panic!("{other:?}"),
    }
    // Without unix socket paths, guard keeps signals inside (seccomp parks them) and no AF_UNIX
    // socket can be created: scoping holds without Landlock's.
    assert!(e.refusals().is_empty(), "{:?}", e.refusals());
    assert_eq!(
        layers(&e, Part::Scoping),
        vec![Layer::Seccomp, Layer::Supervisor]
    );
    // With unix socket paths an abstract socket could be reached: refused unless accepted.
    let unix = plan(
        &format!(
            "allow_weaker = [\"ebpf.unix\"]\n{}",
            NET.replace("[network]\n", "[network]\n    unix = [\"/run/x.sock\"]\n")
        ),
        Mode::Enforce,
    );
    let refusals = assess(&unix, &host).refusals();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].part, Part::Scoping);
    assert_eq!(refusals[0].accept_with, Some(Weakening::LandlockScope));
}

#[test]
fn without_probes_network_and_exec_are_refused_unless_accepted() {
    let host = HostView {
        probes: Err("EPERM".into()),
        bpf_lsm: false,
        ..this_host()
    };
    let e = assess(&plan(NET, Mode::Enforce), &host);
    let parts: Vec<Part> = e.refusals().iter().map(|r| r.part).collect();
    assert_eq!(parts, vec![Part::Network, Part::Exec]);
    // Ports still have Landlock.
    assert_eq!(layers(&e, Part::TcpPorts), vec![Layer::Landlock { abi: 7 }]);
    let accepted = plan(
        &format!("allow_weaker = [\"ebpf.network\", \"ebpf.exec\"]\n{NET}"),
        Mode::Enforce,
    );
    assert!(assess(&accepted, &host).refusals().is_empty());
}

#[test]
fn kill_and_audit_of_network_need_the_hooks_whatever_allow_weaker_says() {
    let host = HostView {
        probes: Err("EPERM".into()),
        ..this_host()
    };
    for action in ["kill", "audit"] {
        let p = plan(
            &format!(
                "allow_weaker = [\"ebpf.network\", \"ebpf.exec\"]\n{NET}\n[on_violation]\nnetwork = \"{action}\""
            ),
            Mode::Enforce,
        );
        // Landlock's port rules are lifted: a kill or audit needs the connect to reach the hooks.
        assert!(e_has_no_ports(&assess(&p, &this_host())), "{action}");
        let refusals = assess(&p, &host).refusals();
        assert_eq!(refusals.len(), 1, "{action}: {refusals:?}");
        assert_eq!(refusals[0].part, Part::Network);
        assert_eq!(refusals[0].accept_with, None);
    }
}

fn e_has_no_ports(e: &Enforcement) -> bool {
    e.part(Part::TcpPorts).is_none()
}

#[test]
fn no_landlock_is_never_acceptable_and_missing_controllers_refuse() {
    let host = HostView {
        landlock_abi: 0,
        cgroup: CgroupLayout::V2 {
            controllers: vec!["memory".into(), "pids".into()],
        },
        ..vm()
    };
    let e = assess(&plan(NET, Mode::Enforce), &host);
    let refusals = e.refusals();
    let files = refusals.iter().find(|r| r.part == Part::Files);
    assert_eq!(files.map(|r| r.accept_with), Some(None));
    assert!(refusals.iter().any(|r| r.part == Part::Cpu));
    assert!(refusals[0].to_string().contains("cannot be enforced"));
}

#[test]
fn audit_mode_does_not_apply_landlock() {
    let e = assess(&plan(NET, Mode::Audit), &this_host());
    assert_eq!(
        e.part(Part::Files).map(|p| &p.status),
        Some(&Status::NotApplied(Loss::AuditMode))
    );
    // Every category records instead of denying, so ports are the hooks' alone.
    assert!(e_has_no_ports(&e));
    assert_eq!(layers(&e, Part::Network), vec![Layer::EbpfCgroupHooks]);
    assert!(e.refusals().is_empty());
}
