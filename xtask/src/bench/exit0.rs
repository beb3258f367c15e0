//! The exec storm's program: a static x86_64 ELF executable of 129 bytes that does nothing but
//! `exit_group(0)`, built here byte by byte so the bench needs no assembler or C compiler.
//!
//! `/bin/true` is dynamically linked: each exec of it maps and relocates libc in `ld.so`, work
//! that kept two spawning loops on the 2-CPU development host near 3,500 execs/s, below the
//! 5,000 execs/s the audit target is stated at. This program has no interpreter, no libraries and one
//! instruction page, so an exec of it costs what the kernel's `execve` and guard's exec probe
//! cost, which is what the storm is there to load.
//!
//! Layout (all fields little-endian; the whole file is one `PT_LOAD` segment mapped at
//! [`BASE`], so the code's virtual address is [`BASE`] plus its file offset):
//!
//! | offset | size | what                                                                   |
//! |--------|------|------------------------------------------------------------------------|
//! | 0      | 64   | ELF header: ELF64, LSB, `ET_EXEC`, `EM_X86_64`, entry = [`BASE`] + 120 |
//! | 64     | 56   | program header: `PT_LOAD`, R+X, offset 0, whole file at [`BASE`]       |
//! | 120    | 9    | code: `mov eax, 231` / `xor edi, edi` / `syscall` (`exit_group(0)`)    |

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Where the segment is mapped: the traditional x86_64 `ET_EXEC` base, page aligned and far
/// above `vm.mmap_min_addr`.
pub const BASE: u64 = 0x40_0000;
/// `sizeof(Elf64_Ehdr)`.
pub const EHDR_SIZE: usize = 64;
/// `sizeof(Elf64_Phdr)`.
pub const PHDR_SIZE: usize = 56;
/// `mov eax, 231` (`__NR_exit_group` on x86_64); `xor edi, edi` (status 0); `syscall`.
/// `exit_group` rather than `exit`: it ends the process, not only the thread, as libc's
/// `_exit` does.
pub const CODE: [u8; 9] = [0xb8, 0xe7, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05];
/// Offset of the code in the file, right after the headers.
pub const CODE_OFFSET: usize = EHDR_SIZE + PHDR_SIZE;
/// The file's size.
pub const SIZE: usize = CODE_OFFSET + CODE.len();
/// The file's name in the bench's temporary directory.
pub const NAME: &str = "exit0";

// ELF constants (elf(5)).
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
const ELFOSABI_SYSV: u8 = 0;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_R: u32 = 4;
const PAGE: u64 = 0x1000;

/// The executable's bytes.
pub fn image() -> Vec<u8> {
    let mut out = Vec::with_capacity(SIZE);
    let size = SIZE as u64;

    // Elf64_Ehdr.
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_SYSV]);
    out.extend_from_slice(&[0; 8]); // EI_ABIVERSION and padding up to EI_NIDENT (16)
    out.extend_from_slice(&ET_EXEC.to_le_bytes()); // e_type: fixed address, no relocation
    out.extend_from_slice(&EM_X86_64.to_le_bytes()); // e_machine
    out.extend_from_slice(&u32::from(EV_CURRENT).to_le_bytes()); // e_version
    out.extend_from_slice(&(BASE + CODE_OFFSET as u64).to_le_bytes()); // e_entry
    out.extend_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff: right after this header
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no section headers, the kernel needs none
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes()); // e_ehsize
    out.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes()); // e_phentsize
    out.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shentsize
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    out.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx

    // Elf64_Phdr: the whole file, headers included, as one read+execute segment. Offset 0 and
    // a page-aligned address satisfy the kernel's `p_offset % p_align == p_vaddr % p_align`.
    // No PT_INTERP, so the kernel jumps straight to e_entry; no PT_GNU_STACK, which on x86_64
    // leaves a 64-bit program's stack non-executable anyway.
    out.extend_from_slice(&PT_LOAD.to_le_bytes()); // p_type
    out.extend_from_slice(&(PF_R | PF_X).to_le_bytes()); // p_flags
    out.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    out.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    out.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    out.extend_from_slice(&size.to_le_bytes()); // p_filesz
    out.extend_from_slice(&size.to_le_bytes()); // p_memsz: nothing to zero-fill
    out.extend_from_slice(&PAGE.to_le_bytes()); // p_align

    out.extend_from_slice(&CODE);
    out
}

/// Writes the executable as `dir/exit0`, mode 0755, and returns its path.
pub fn write(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join(NAME);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&path)?;
    file.write_all(&image())?;
    // `mode` above is masked by the umask; the loops only need the owner's bits, but 0755 is
    // what is promised whatever the umask.
    file.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    // Closed before anyone execs it: an exec of a file open for writing fails with ETXTBSY.
    drop(file);
    Ok(path)
}

/// Writes the executable into `dir` and checks it runs and exits 0 on this host; the reason
/// it cannot be used otherwise.
pub fn prepare(dir: &Path) -> Result<PathBuf, String> {
    if !cfg!(target_arch = "x86_64") {
        return Err(format!(
            "it is x86_64 code and this is {}",
            std::env::consts::ARCH
        ));
    }
    let path = write(dir).map_err(|e| format!("writing it in {} failed: {e}", dir.display()))?;
    let status = std::process::Command::new(&path)
        .env_clear()
        .status()
        .map_err(|e| format!("running {} failed: {e}", path.display()))?;
    if !status.success() {
        return Err(format!("{} ended with {status}", path.display()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn header_fields_and_sizes() {
        let b = image();
        assert_eq!(b.len(), SIZE);
        assert_eq!(SIZE, 129);
        assert_eq!(&b[..4], b"\x7fELF");
        assert_eq!(b[4], ELFCLASS64);
        assert_eq!(b[5], ELFDATA2LSB);
        assert_eq!(b[6], 1, "EI_VERSION");
        assert_eq!(u16_at(&b, 16), ET_EXEC);
        assert_eq!(u16_at(&b, 18), EM_X86_64);
        assert_eq!(u32_at(&b, 20), 1, "e_version");
        let entry = u64_at(&b, 24);
        assert_eq!(entry, BASE + 120);
        assert_eq!(u64_at(&b, 32), 64, "e_phoff");
        assert_eq!(u64_at(&b, 40), 0, "e_shoff");
        assert_eq!(u16_at(&b, 52), 64, "e_ehsize");
        assert_eq!(u16_at(&b, 54), 56, "e_phentsize");
        assert_eq!(u16_at(&b, 56), 1, "e_phnum");
        assert_eq!(u16_at(&b, 60), 0, "e_shnum");

        let ph = 64;
        assert_eq!(u32_at(&b, ph), PT_LOAD);
        assert_eq!(u32_at(&b, ph + 4), PF_R | PF_X);
        assert_eq!(u64_at(&b, ph + 8), 0, "p_offset");
        let vaddr = u64_at(&b, ph + 16);
        assert_eq!(vaddr, BASE);
        assert_eq!(u64_at(&b, ph + 32), SIZE as u64, "p_filesz");
        assert_eq!(u64_at(&b, ph + 40), SIZE as u64, "p_memsz");
        let align = u64_at(&b, ph + 48);
        assert_eq!(vaddr % align, 0);

        // The entry point lands on the code, inside the loaded segment.
        let at = (entry - vaddr) as usize;
        assert_eq!(&b[at..], &CODE);
        // exit_group is 231 on x86_64, and the status register is zeroed.
        assert_eq!(u32_at(&CODE, 1), 231);
    }

    #[test]
    fn the_written_file_runs_and_exits_0() {
        let dir =
            std::env::temp_dir().join(format!("guard-xtask-exit0-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let result = prepare(&dir);
        let mode = std::fs::metadata(dir.join(NAME)).map(|m| m.permissions());
        std::fs::remove_dir_all(&dir).unwrap();
        if !cfg!(target_arch = "x86_64") {
            println!("skipping: the executable is x86_64 code");
            return;
        }
        let path = result.unwrap_or_else(|why| panic!("exit0 does not run: {why}"));
        assert_eq!(path.file_name().unwrap(), NAME);
        assert_eq!(mode.unwrap().mode() & 0o7777, 0o755);
    }
}
