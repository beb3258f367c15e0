//! The unix socket hooks (`guard-ebpf/src/unix.rs`), loaded and attached by hand.
//!
//! aya 0.14 has no program section or attach type for the cgroup unix hooks (Linux 6.7), so
//! the object files these programs as `cgroup/connect4` ones, which aya parses but guard never
//! loads through it. Here the object is parsed again with `aya-obj`, its map references are
//! pointed at the maps just pinned (the same maps the other probes use), and the two programs
//! are loaded with `BPF_CGROUP_UNIX_CONNECT` and `BPF_CGROUP_UNIX_SENDMSG` as their expected
//! attach types, attached to guard's cgroup as BPF links, and pinned beside the other links.
//!
//! The probes read two fields of the kernel's `struct bpf_sock_addr_kern`; they are checked
//! against the kernel's BTF first, and the hooks are not attached where they differ (a profile
//! with unix paths is then refused, or runs with the gap its `allow_weaker` accepts).

use std::collections::HashSet;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use aya_obj::generated::{bpf_attach_type, bpf_cmd, bpf_insn, bpf_prog_type};
use guard_common::names;
use guard_common::policy::{SOCK_ADDR_KERN_UADDR, SOCK_ADDR_KERN_UADDRLEN};

use super::sys::{ProgLoadAttr, bpf, owned, prog_loads, return_imm};
use crate::host::btf::{self, VmlinuxBtf};

/// The hooks and their attach types.
const HOOKS: [(&str, bpf_attach_type); 2] = [
    (
        names::CONNECT_UNIX,
        bpf_attach_type::BPF_CGROUP_UNIX_CONNECT,
    ),
    (
        names::SENDMSG_UNIX,
        bpf_attach_type::BPF_CGROUP_UNIX_SENDMSG,
    ),
];

/// Whether the unix hooks of the probes pinned in `dir` are attached.
pub fn attached(dir: &Path) -> bool {
    HOOKS
        .iter()
        .all(|(name, _)| dir.join(format!("link_{name}")).exists())
}

/// Loads both hooks, attaches them to `cgroup` and pins their links into `staging` (where the
/// maps they use are pinned already). `Err` says why not; nothing is left attached then.
pub fn attach(
    object: &[u8],
    staging: &Path,
    cgroup: &std::fs::File,
    vmlinux: &mut Option<VmlinuxBtf>,
) -> Result<(), String> {
    check_offsets(vmlinux)?;
    let mut obj = aya_obj::Object::parse(object).map_err(|e| format!("parsing the object: {e}"))?;
    // Every map of the object, by its pin where it has one; the programs loaded here use only
    // pinned maps, and the others' references (in functions not loaded here) are never used.
    let mut pinned = Vec::new();
    for name in obj.maps.keys() {
        if let Ok(data) = aya::maps::MapData::from_pin(staging.join(name)) {
            pinned.push((name.clone(), data));
        }
    }
    let fds: Vec<(String, i32)> = pinned
        .iter()
        .map(|(name, data)| {
            (
                name.clone(),
                std::os::fd::AsFd::as_fd(data.fd()).as_raw_fd(),
            )
        })
        .collect();
    let maps: Vec<(String, i32, aya_obj::Map)> = obj
        .maps
        .iter()
        .map(|(name, map)| {
            let fd = fds
                .iter()
                .find(|(n, _)| n == name)
                .map_or(-1, |(_, fd)| *fd);
            (name.clone(), fd, map.clone())
        })
        .collect();
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    obj.relocate_maps(
        maps.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)),
        &text_sections,
    )
    .map_err(|e| format!("relocating maps: {e}"))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| format!("relocating calls: {e}"))?;

    let mut links = Vec::new();
    for (name, attach_type) in HOOKS {
        let program = obj
            .programs
            .get(name)
            .ok_or_else(|| format!("the object has no program {name}"))?;
        let function = obj
            .functions
            .get(&program.function_key())
            .ok_or_else(|| format!("the object has no code for {name}"))?;
        let prog = load(&function.instructions, attach_type)
            .map_err(|e| format!("loading {name}: {e}"))?;
        let link = link_create(&prog, cgroup, attach_type)
            .map_err(|e| format!("attaching {name}: {e}"))?;
        links.push((name, link));
    }
    for (name, link) in links {
        let path = staging.join(format!("link_{name}"));
        pin(&link, &path).map_err(|e| format!("pinning {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The offsets the probes use, compared with the kernel's.
fn check_offsets(vmlinux: &mut Option<VmlinuxBtf>) -> Result<(), String> {
    let blob = btf::vmlinux(vmlinux).map_err(|e| format!("reading the kernel's BTF: {e}"))?;
    let btf = btf::Btf::parse(blob.as_slice()).map_err(|e| format!("the kernel's BTF: {e}"))?;
    for (field, expected) in [
        ("uaddr", SOCK_ADDR_KERN_UADDR),
        ("uaddrlen", SOCK_ADDR_KERN_UADDRLEN),
    ] {
        let offset = btf
            .offset_of("bpf_sock_addr_kern", field)
            .map_err(|e| format!("bpf_sock_addr_kern.{field}: {e} (a kernel before 6.7?)"))?;
        if offset as usize != expected {
            return Err(format!(
                "bpf_sock_addr_kern.{field} is at {offset} here, the probes read {expected}"
            ));
        }
    }
    Ok(())
}

/// The object's license: the probes call GPL-only helpers.
const LICENSE: &CStr = c"Dual MIT/GPL";

/// Loads `insns` as a cgroup sock_addr program for `attach_type`; a refusal carries the
/// verifier's last lines.
fn load(insns: &[bpf_insn], attach_type: bpf_attach_type) -> Result<OwnedFd, String> {
    let mut log = vec![0u8; 1 << 16];
    let mut attr = ProgLoadAttr {
        prog_type: bpf_prog_type::BPF_PROG_TYPE_CGROUP_SOCK_ADDR as u32,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        expected_attach_type: attach_type as u32,
        ..ProgLoadAttr::default()
    };
    let name = b"guard_unix";
    attr.prog_name[..name.len()].copy_from_slice(name);
    // SAFETY: the instructions and license outlive the call; no log buffer yet.
    match unsafe { bpf(bpf_cmd::BPF_PROG_LOAD, &attr) } {
        Ok(fd) => Ok(owned(fd)),
        Err(first) => {
            // Again with the verifier's log, to say why.
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            // SAFETY: as above, and the log buffer is writable and `log_size` bytes long.
            let _ = unsafe { bpf(bpf_cmd::BPF_PROG_LOAD, &attr) }.map(owned);
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0');
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            Err(format!(
                "{first}{}",
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (verifier: {})",
                        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                    )
                }
            ))
        }
    }
}

/// `union bpf_attr` for BPF_LINK_CREATE.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    _rest: [u64; 4],
}

fn link_create(
    prog: &OwnedFd,
    cgroup: &std::fs::File,
    attach_type: bpf_attach_type,
) -> std::io::Result<OwnedFd> {
    let attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: attach_type as u32,
        ..LinkCreateAttr::default()
    };
    // SAFETY: a BPF_LINK_CREATE attr of descriptors; no pointers.
    unsafe { bpf(bpf_cmd::BPF_LINK_CREATE, &attr) }.map(owned)
}

/// `union bpf_attr` for BPF_OBJ_PIN.
#[repr(C)]
#[derive(Default)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

fn pin(link: &OwnedFd, path: &Path) -> std::io::Result<()> {
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    let attr = ObjPinAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: link.as_raw_fd() as u32,
        ..ObjPinAttr::default()
    };
    // SAFETY: the path outlives the call.
    unsafe { bpf(bpf_cmd::BPF_OBJ_PIN, &attr) }.map(|_| ())
}

/// Whether this kernel has the cgroup unix hooks: a two-instruction program for
/// `BPF_CGROUP_UNIX_CONNECT` loads (it is closed at once, never attached).
pub fn kernel_has_unix_hooks() -> Result<(), String> {
    let insns = return_imm(1);
    prog_loads(&ProgLoadAttr {
        prog_type: bpf_prog_type::BPF_PROG_TYPE_CGROUP_SOCK_ADDR as u32,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        expected_attach_type: bpf_attach_type::BPF_CGROUP_UNIX_CONNECT as u32,
        ..ProgLoadAttr::default()
    })
    .map_err(|e| format!("cgroup unix socket hooks do not load ({e}; Linux 6.7+)"))
}
