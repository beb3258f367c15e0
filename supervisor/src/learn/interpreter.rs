//! What the kernel opens to execute a file besides the file: the ELF program interpreter
//! (`PT_INTERP`, the dynamic loader) or the `#!` interpreter of a script. Landlock checks the
//! execute right on it too, so a learned profile lists it in `filesystem.execute` (not in
//! `process.exec`: the tool never executes it by name).
//!
//! Also the real [`FileFacts`] of the learner, read from the file system after the run.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::paths::FileFacts;

/// `PT_INTERP` in an ELF program header.
const PT_INTERP: u32 = 3;

/// The interpreter of the executable at `path`, if it has one.
pub fn of(path: &Path) -> Option<PathBuf> {
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    head.truncate(n);
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|b| *b == b'\n').next()?;
        let line = std::str::from_utf8(line).ok()?.trim();
        let interp = line.split_whitespace().next()?;
        return Some(PathBuf::from(interp));
    }
    let file = std::fs::read(path).ok()?;
    elf_interpreter(&file)
}

/// `PT_INTERP` of a 64-bit little-endian ELF image (the only kind guard's hosts run).
fn elf_interpreter(elf: &[u8]) -> Option<PathBuf> {
    if elf.get(..4)? != b"\x7fELF" || elf.get(4)? != &2 || elf.get(5)? != &1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(ph)? != PT_INTERP {
            continue;
        }
        let offset = usize::try_from(u64_at(ph + 8)?).ok()?;
        let size = usize::try_from(u64_at(ph + 32)?).ok()?;
        let bytes = elf.get(offset..offset.checked_add(size)?)?;
        let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
        return Some(PathBuf::from(std::str::from_utf8(bytes).ok()?));
    }
    None
}

/// The file system as it is after a learning run; `started` is the birth time of a file made
/// just before the run (the run itself began a clock tick later).
pub struct HostFiles {
    pub started: SystemTime,
}

impl FileFacts for HostFiles {
    fn existed_before(&self, path: &Path) -> bool {
        match std::fs::symlink_metadata(path) {
            // Born before the run; where the file system keeps no birth time, assume it was
            // there (the rule is then the path itself, never wider).
            Ok(meta) => meta.created().map(|t| t <= self.started).unwrap_or(true),
            Err(_) => false,
        }
    }

    fn is_dir(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
    }

    fn exists(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok()
    }

    fn interpreter(&self, path: &Path) -> Option<PathBuf> {
        of(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_names_its_loader() {
        let interp = of(Path::new("/bin/sh")).expect("/bin/sh is dynamic");
        assert!(
            interp.to_string_lossy().contains("ld-linux"),
            "{}",
            interp.display()
        );
    }

    #[test]
    fn a_script_names_its_interpreter() {
        let dir = std::env::temp_dir().join(format!("guard-learn-interp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s");
        std::fs::write(&script, "#!/usr/bin/env  python3\nprint(1)\n").unwrap();
        assert_eq!(of(&script), Some(PathBuf::from("/usr/bin/env")));
        std::fs::write(&script, "plain text").unwrap();
        assert_eq!(of(&script), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
