//! Which BPF program types this kernel accepts, learned by loading the feature probes of the
//! embedded object (`ebpf-probes/guard-ebpf/src/features.rs`) and, where loading alone would not
//! show a refusal, attaching them for a moment.
//!
//! Every program is detached and unloaded before [`detect`] returns (dropping the `Ebpf`), and
//! the only cgroup touched is a temporary one guard creates and removes.

use std::path::{Path, PathBuf};

use aya::programs::{CgroupAttachMode, CgroupSockAddr, FEntry, Lsm, ProgramError, TracePoint};
use aya::{Btf, Ebpf};
use guard_common::names;

use super::{BpfSupport, Probe};
use crate::ebpf::{object_bytes, tracefs};

/// Tries each program type. `cgroup2` is a cgroup2 mount where a temporary cgroup can be made to
/// attach the `cgroup_sock_addr` probe to; without one that probe is only loaded.
pub fn detect(cgroup2: Option<&Path>) -> BpfSupport {
    // The object's maps are created at this step, so without CAP_BPF everything fails here.
    let mut ebpf = match Ebpf::load(object_bytes()) {
        Ok(ebpf) => ebpf,
        Err(e) => {
            let refused = Probe::Refused(format!("loading the object: {}", first_line(&e)));
            return BpfSupport {
                tracepoint: refused.clone(),
                cgroup_sock_addr: refused.clone(),
                cgroup_unix: refused.clone(),
                lsm: refused.clone(),
                fentry: refused,
            };
        }
    };
    let btf = Btf::from_sys_fs().map_err(|e| format!("no kernel BTF: {}", first_line(&e)));
    BpfSupport {
        tracepoint: outcome(try_tracepoint(&mut ebpf)),
        cgroup_sock_addr: outcome(try_connect4(&mut ebpf, cgroup2)),
        cgroup_unix: outcome(crate::ebpf::unix_hooks::kernel_has_unix_hooks()),
        lsm: outcome(btf.clone().and_then(|btf| try_lsm(&mut ebpf, &btf))),
        fentry: outcome(btf.and_then(|btf| try_fentry(&mut ebpf, &btf))),
    }
}

/// The active LSMs, in boot order, as securityfs lists them.
pub const LSM_LIST: &str = "/sys/kernel/security/lsm";

/// Whether `bpf` is among the active LSMs: `None` when [`LSM_LIST`] cannot be read (securityfs
/// not mounted, as on hosts without systemd), so the caller tries BPF LSM instead of guessing.
/// `Some(true)` does not mean BPF LSM programs load: a kernel can list it and still refuse them.
///
/// # Minimum kernel version
///
/// The minimum kernel version required to use this feature is 4.15 (`lsm` in securityfs).
pub fn lsm_listed() -> Option<bool> {
    std::fs::read_to_string(LSM_LIST)
        .ok()
        .map(|list| lists_bpf(&list))
}

/// Whether this kernel loads a BPF LSM program attached to the function with BTF id
/// `attach_btf_id` (`bpf_lsm_<hook>`), tried with the smallest such program (`return 0`).
///
/// A cheap answer before anything parses the kernel's whole BTF for a real LSM program: some
/// kernels list `bpf` among their LSMs and still refuse every LSM program (no BPF trampolines
/// on the 6.18 development hosts). Loading is all it tries: the program is closed at once,
/// never attached.
///
/// # Minimum kernel version
///
/// The minimum kernel version required to use this feature is 5.7 (BPF LSM).
pub fn lsm_program_loads(attach_btf_id: u32) -> std::io::Result<()> {
    use crate::ebpf::sys::{ProgLoadAttr, prog_loads, return_imm};
    use aya_obj::generated::{bpf_attach_type, bpf_prog_type};

    let insns = return_imm(0);
    // LSM programs must be GPL-compatible.
    let license = c"GPL";
    prog_loads(&ProgLoadAttr {
        prog_type: bpf_prog_type::BPF_PROG_TYPE_LSM as u32,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: bpf_attach_type::BPF_LSM_MAC as u32,
        attach_btf_id,
        ..ProgLoadAttr::default()
    })
}

/// Whether the comma-separated LSM list names `bpf`.
fn lists_bpf(list: &str) -> bool {
    list.trim().split(',').any(|lsm| lsm == "bpf")
}

fn outcome(result: Result<(), String>) -> Probe {
    match result {
        Ok(()) => Probe::Available,
        Err(reason) => Probe::Refused(reason),
    }
}

/// The first line of an error chain's messages, e.g. "load: Operation not permitted (os error 1)".
/// aya's load errors embed the whole verifier log; its first line is enough for a report.
fn first_line(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg.lines()
        .next()
        .unwrap_or("")
        .trim_end()
        .trim_end_matches(". Verifier output:")
        .to_string()
}

fn step(what: &str) -> impl Fn(ProgramError) -> String + '_ {
    move |e| match &e {
        // The io error is the kernel's answer; the verifier log is noise for a refusal report.
        ProgramError::LoadError { io_error, .. } => format!("{what}: {io_error}"),
        ProgramError::SyscallError(s) => format!("{what}: {}: {}", s.call, s.io_error),
        _ => format!("{what}: {}", first_line(&e)),
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?
        .try_into()
        .map_err(step("program type"))
}

/// Tracepoint: load, then attach to `sched/sched_process_exec` (attaching is what needs perf
/// events and tracefs).
fn try_tracepoint(ebpf: &mut Ebpf) -> Result<(), String> {
    let prog: &mut TracePoint = program(ebpf, names::FEATURE_TRACEPOINT)?;
    prog.load().map_err(step("load"))?;
    tracefs::ensure_mounted().map_err(|e| first_line(&e))?;
    let link = prog
        .attach("sched", "sched_process_exec")
        .map_err(step("attach"))?;
    prog.detach(link).map_err(step("detach"))
}

/// cgroup_sock_addr: load, then attach to a temporary empty cgroup of our own.
fn try_connect4(ebpf: &mut Ebpf, cgroup2: Option<&Path>) -> Result<(), String> {
    let prog: &mut CgroupSockAddr = program(ebpf, names::FEATURE_CONNECT4)?;
    prog.load().map_err(step("load"))?;
    let Some(cgroup2) = cgroup2 else {
        return Ok(());
    };
    let dir = TempCgroup::create(cgroup2).map_err(|e| format!("temporary cgroup: {e}"))?;
    let fd = std::fs::File::open(&dir.0).map_err(|e| format!("temporary cgroup: {e}"))?;
    let link = prog
        .attach(&fd, CgroupAttachMode::Single)
        .map_err(step("attach"))?;
    prog.detach(link).map_err(step("detach"))
}

/// LSM: load, then attach (without `bpf` among the active LSMs the load can succeed and only the
/// attach tells).
fn try_lsm(ebpf: &mut Ebpf, btf: &Btf) -> Result<(), String> {
    let prog: &mut Lsm = program(ebpf, names::FEATURE_LSM)?;
    prog.load(names::FEATURE_LSM_HOOK, btf)
        .map_err(step("load"))?;
    let link = prog.attach().map_err(step("attach"))?;
    prog.detach(link).map_err(step("detach"))
}

/// fentry: load, then attach (the trampoline is made at attach).
fn try_fentry(ebpf: &mut Ebpf, btf: &Btf) -> Result<(), String> {
    let prog: &mut FEntry = program(ebpf, names::FEATURE_FENTRY)?;
    prog.load(names::FEATURE_FENTRY_FUNCTION, btf)
        .map_err(step("load"))?;
    let link = prog.attach().map_err(step("attach"))?;
    prog.detach(link).map_err(step("detach"))
}

/// A cgroup directory guard made for the probe; removed on drop (it never holds a task).
struct TempCgroup(PathBuf);

impl TempCgroup {
    fn create(cgroup2: &Path) -> std::io::Result<Self> {
        let dir = cgroup2.join(format!("guard-probe-{}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpf_in_the_lsm_list() {
        assert!(lists_bpf("lockdown,capability,landlock,yama,bpf\n"));
        assert!(lists_bpf("bpf"));
        assert!(!lists_bpf("lockdown,capability,landlock,yama,apparmor\n"));
        assert!(!lists_bpf("bpf_something,notbpf"));
        assert!(!lists_bpf(""));
    }

    /// The two-instruction probe must not refuse where guard's real LSM program loads: it would
    /// switch the LSM exec hook off for nothing. Where it loads and the real one does not (the
    /// 6.18 hosts refuse both; 5.10 loads the small one only, lacking a helper the real one
    /// calls), exec tries the real one, notes the refusal and keeps the exec tracepoint.
    #[test]
    fn the_small_lsm_program_loads_wherever_the_real_one_does() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || !crate::host::btf::available() {
            eprintln!("skipping: needs root and kernel BTF");
            return;
        }
        let blob = crate::host::btf::VmlinuxBtf::open().unwrap();
        let hook = format!("bpf_lsm_{}", names::LSM_BPRM_CHECK_HOOK);
        let id = crate::host::btf::Btf::parse(blob.as_slice())
            .unwrap()
            .func_id(&hook)
            .unwrap();
        let quick = lsm_program_loads(id);
        let mut ebpf = aya::EbpfLoader::new()
            .btf(None)
            .load(object_bytes())
            .unwrap();
        let btf = Btf::parse(blob.as_slice(), aya::Endianness::default()).unwrap();
        let prog: &mut Lsm = program(&mut ebpf, names::LSM_BPRM_CHECK).unwrap();
        let real = prog.load(names::LSM_BPRM_CHECK_HOOK, &btf);
        let real = real.map_err(step("load"));
        eprintln!("small program: {quick:?}; guard's: {real:?}");
        assert!(
            quick.is_ok() || real.is_err(),
            "the small program is refused where guard's loads"
        );
    }

    #[test]
    fn first_line_drops_the_verifier_log() {
        let e =
            std::io::Error::other("the BPF_PROG_LOAD syscall returned x. Verifier output: \nlog");
        assert_eq!(first_line(&e), "the BPF_PROG_LOAD syscall returned x");
    }
}
