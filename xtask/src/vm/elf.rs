//! Just enough of ELF64 (little-endian, x86_64) to answer two questions about a host file: is it
//! statically linked, and which shared libraries and interpreter does it load. That is what
//! `ldd` answers, without running the file.

use std::path::{Path, PathBuf};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

/// Where the dynamic loader looks when a binary names no search path of its own (Debian's
/// multiarch directories first, as `/etc/ld.so.conf.d/x86_64-linux-gnu.conf` orders them).
const DEFAULT_LIBRARY_DIRS: &[&str] = &[
    "/usr/local/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// What the loader needs for one ELF file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// `PT_INTERP`: the dynamic loader; `None` for a static binary.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` names, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` or `DT_RPATH` directories, `$ORIGIN` not yet expanded.
    pub search_path: Vec<String>,
}

/// Whether `bytes` start like an ELF file.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Parses the program headers and dynamic section of an ELF64 little-endian file; `None` when
/// it is not one (another class, truncated, or not ELF at all).
pub fn parse(bytes: &[u8]) -> Option<Dynamic> {
    if !is_elf(bytes) || *bytes.get(4)? != 2 || *bytes.get(5)? != 1 {
        return None;
    }
    let phoff = usize::try_from(u64_at(bytes, 0x20)?).ok()?;
    let phentsize = usize::from(u16_at(bytes, 0x36)?);
    let phnum = usize::from(u16_at(bytes, 0x38)?);
    let mut loads = Vec::new();
    let mut dynamic = None;
    let mut result = Dynamic::default();
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32_at(bytes, ph)?;
        let offset = u64_at(bytes, ph + 8)?;
        let vaddr = u64_at(bytes, ph + 16)?;
        let filesz = u64_at(bytes, ph + 32)?;
        match p_type {
            PT_LOAD => loads.push((vaddr, offset, filesz)),
            PT_DYNAMIC => dynamic = Some((offset, filesz)),
            PT_INTERP => {
                let start = usize::try_from(offset).ok()?;
                let end = start.checked_add(usize::try_from(filesz).ok()?)?;
                result.interpreter = Some(c_string(bytes.get(start..end)?));
            }
            _ => {}
        }
    }
    let Some((dyn_offset, dyn_size)) = dynamic else {
        return Some(result);
    };
    let mut tags = Vec::new();
    let start = usize::try_from(dyn_offset).ok()?;
    let end = start.checked_add(usize::try_from(dyn_size).ok()?)?;
    let mut at = start;
    while at + 16 <= end {
        let tag = u64_at(bytes, at)?;
        let value = u64_at(bytes, at + 8)?;
        if tag == DT_NULL {
            break;
        }
        tags.push((tag, value));
        at += 16;
    }
    // DT_STRTAB is an address; the file offset comes from the PT_LOAD segment holding it.
    let strtab_vaddr = tags.iter().find(|(t, _)| *t == DT_STRTAB)?.1;
    let strtab = loads
        .iter()
        .find(|(vaddr, _, size)| (*vaddr..vaddr + size).contains(&strtab_vaddr))
        .map(|(vaddr, offset, _)| strtab_vaddr - vaddr + offset)?;
    let string = |index: u64| -> Option<String> {
        let at = usize::try_from(strtab.checked_add(index)?).ok()?;
        Some(c_string(bytes.get(at..)?))
    };
    for (tag, value) in &tags {
        match *tag {
            DT_NEEDED => result.needed.push(string(*value)?),
            DT_RUNPATH | DT_RPATH => result.search_path.extend(
                string(*value)?
                    .split(':')
                    .filter(|d| !d.is_empty())
                    .map(String::from),
            ),
            _ => {}
        }
    }
    Some(result)
}

/// Finds each needed library on this host the way the loader would: the file's own search path
/// (with `$ORIGIN` as the file's directory), then the default directories. Names not found are
/// returned separately so the caller can say which.
pub fn resolve_needed(file: &Path, dynamic: &Dynamic) -> (Vec<PathBuf>, Vec<String>) {
    let origin = file.parent().unwrap_or(Path::new("/"));
    let own: Vec<PathBuf> = dynamic
        .search_path
        .iter()
        .map(|dir| {
            PathBuf::from(
                dir.replace("${ORIGIN}", &origin.to_string_lossy())
                    .replace("$ORIGIN", &origin.to_string_lossy()),
            )
        })
        .collect();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &dynamic.needed {
        if name.contains('/') {
            found.push(PathBuf::from(name));
            continue;
        }
        let hit = own
            .iter()
            .cloned()
            .chain(DEFAULT_LIBRARY_DIRS.iter().map(PathBuf::from))
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.exists());
        match hit {
            Some(path) => found.push(path),
            None => missing.push(name.clone()),
        }
    }
    (found, missing)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 image: one PT_LOAD covering the file, optional PT_INTERP, a PT_DYNAMIC
    /// with NEEDED, RUNPATH and STRTAB entries.
    fn synthetic(interp: Option<&str>, needed: &[&str], runpath: Option<&str>) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut offsets = Vec::new();
        for name in needed.iter().chain(runpath.iter()) {
            offsets.push(strtab.len() as u64);
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
        }
        let phnum = 2 + u16::from(interp.is_some());
        let phoff = 64u64;
        let after_ph = phoff + 56 * u64::from(phnum);
        let interp_off = after_ph;
        let interp_bytes: Vec<u8> = interp
            .map(|s| [s.as_bytes(), b"\0"].concat())
            .unwrap_or_default();
        let dyn_off = interp_off + interp_bytes.len() as u64;
        let mut dynamic = Vec::new();
        for (i, _) in needed.iter().enumerate() {
            dynamic.push((DT_NEEDED, offsets[i]));
        }
        if runpath.is_some() {
            dynamic.push((DT_RUNPATH, offsets[needed.len()]));
        }
        let dyn_size = 16 * (dynamic.len() as u64 + 2);
        let str_off = dyn_off + dyn_size;
        // The load segment maps file offset 0 at 0x400000, so STRTAB's address is offset+base.
        let base = 0x40_0000u64;
        dynamic.push((DT_STRTAB, base + str_off));
        dynamic.push((DT_NULL, 0));
        let total = str_off + strtab.len() as u64;

        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[0x20..0x28].copy_from_slice(&phoff.to_le_bytes());
        out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        out[0x38..0x3a].copy_from_slice(&phnum.to_le_bytes());
        let mut ph = |p_type: u32, offset: u64, vaddr: u64, size: u64| {
            let mut h = vec![0u8; 56];
            h[..4].copy_from_slice(&p_type.to_le_bytes());
            h[8..16].copy_from_slice(&offset.to_le_bytes());
            h[16..24].copy_from_slice(&vaddr.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
            out.extend(h);
        };
        ph(PT_LOAD, 0, base, total);
        if interp.is_some() {
            ph(
                PT_INTERP,
                interp_off,
                base + interp_off,
                interp_bytes.len() as u64,
            );
        }
        ph(PT_DYNAMIC, dyn_off, base + dyn_off, dyn_size);
        out.extend(interp_bytes);
        for (tag, value) in dynamic {
            out.extend(tag.to_le_bytes());
            out.extend(value.to_le_bytes());
        }
        out.extend(strtab);
        out
    }

    #[test]
    fn dynamic_binary_names_its_loader_and_libraries() {
        let bytes = synthetic(
            Some("/lib64/ld-linux-x86-64.so.2"),
            &["libffi.so.8", "libc.so.6"],
            Some("$ORIGIN/../lib:/opt/x"),
        );
        let parsed = parse(&bytes).unwrap();
        assert_eq!(
            parsed,
            Dynamic {
                interpreter: Some("/lib64/ld-linux-x86-64.so.2".into()),
                needed: vec!["libffi.so.8".into(), "libc.so.6".into()],
                search_path: vec!["$ORIGIN/../lib".into(), "/opt/x".into()],
            }
        );
    }

    #[test]
    fn static_binary_has_no_interpreter_and_no_libraries() {
        let parsed = parse(&synthetic(None, &[], None)).unwrap();
        assert_eq!(parsed, Dynamic::default());
    }

    #[test]
    fn not_elf_or_truncated_is_none() {
        assert!(parse(b"#!/bin/sh\n").is_none());
        let bytes = synthetic(Some("/lib64/ld"), &["libc.so.6"], None);
        assert!(parse(&bytes[..40]).is_none());
    }

    #[test]
    fn origin_and_default_directories_resolve_on_this_host() {
        // libc.so.6 is on every Debian host; a name nowhere must come back as missing.
        let dynamic = Dynamic {
            interpreter: None,
            needed: vec!["libc.so.6".into(), "libno-such-library.so.9".into()],
            search_path: vec!["$ORIGIN/nowhere".into()],
        };
        let (found, missing) = resolve_needed(Path::new("/usr/bin/true"), &dynamic);
        assert_eq!(found.len(), 1);
        assert!(found[0].ends_with("libc.so.6"), "{found:?}");
        assert_eq!(missing, ["libno-such-library.so.9"]);
    }

    #[test]
    fn a_real_host_binary_parses() {
        let bytes = std::fs::read("/bin/sh").unwrap();
        let parsed = parse(&bytes).unwrap();
        assert!(parsed.interpreter.is_some());
        assert!(parsed.needed.iter().any(|n| n == "libc.so.6"), "{parsed:?}");
    }
}
