//! Kernel BTF: the type information of the running kernel, read from `/sys/kernel/btf/vmlinux`.
//!
//! guard needs it for one thing: the byte offsets of the few kernel struct fields its exec probe
//! reads (`task_struct.mm`, `mm_struct.exe_file`, ...). Those offsets differ between kernel
//! builds, so they are looked up here when the probes load instead of being baked into the
//! object. aya parses BTF too, but does not expose struct members, so this is a small reader
//! of just the parts of the format (kernel `Documentation/bpf/btf.rst`) that lookups need.
//!
//! The blob is megabytes (5.5 MB on a 6.18 kernel, ~130,000 types), and the offsets need about
//! ten structs of it, so the reader is lean: [`VmlinuxBtf`] maps the file instead of copying it
//! where the kernel allows that, and [`Btf`] indexes where each type starts and borrows names
//! from the blob rather than building an owned tree of every struct and member.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::ptr::NonNull;

use guard_common::KernelOffsets;

/// Where the kernel exposes its own BTF.
///
/// # Minimum kernel version
///
/// The minimum kernel version required to use this feature is 5.4 (`CONFIG_DEBUG_INFO_BTF`).
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The running kernel exposes its BTF.
pub fn available() -> bool {
    Path::new(VMLINUX_BTF).is_file()
}

/// Why BTF could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not BTF data: {0}")]
    Malformed(&'static str),
    #[error("the kernel's BTF has no struct {0}")]
    NoStruct(String),
    #[error("the kernel's BTF has no function {0}")]
    NoFunc(String),
    #[error("the kernel's BTF has no field {field} in struct {strukt}")]
    NoField { strukt: String, field: String },
    #[error("field {strukt}.{field} is a bitfield")]
    Bitfield { strukt: String, field: String },
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_FUNC: u32 = 12;
/// Size of a type record's fixed part (`struct btf_type`) and of one member (`struct btf_member`).
const TYPE_LEN: usize = 12;
const MEMBER_LEN: usize = 12;

/// The running kernel's BTF blob, as bytes.
pub struct VmlinuxBtf {
    bytes: Bytes,
}

enum Bytes {
    /// Mapped read-only: no copy, and no page of it is charged to guard's memory.
    Mapped { ptr: NonNull<u8>, len: usize },
    /// Read into a buffer of the file's size.
    Read(Vec<u8>),
}

impl VmlinuxBtf {
    /// Maps `/sys/kernel/btf/vmlinux`, or reads it where it cannot be mapped.
    ///
    /// # Minimum kernel version
    ///
    /// Mapping needs 6.16; older kernels are read. sysfs hands out at most one page per
    /// `read()` (kernfs bounces through a page-sized buffer), so reading is ~1,350 system calls
    /// for 5.5 MB, which the mapping replaces with one.
    pub fn open() -> Result<Self, BtfError> {
        let read_err = |source| BtfError::Read {
            path: VMLINUX_BTF.to_owned(),
            source,
        };
        let file = File::open(VMLINUX_BTF).map_err(read_err)?;
        let len = file.metadata().map_err(read_err)?.len();
        let len = usize::try_from(len).map_err(|_| BtfError::Malformed("larger than memory"))?;
        if let Some(ptr) = map_private(&file, len) {
            return Ok(Self {
                bytes: Bytes::Mapped { ptr, len },
            });
        }
        let mut buf = Vec::with_capacity(len);
        std::io::Read::read_to_end(&mut &file, &mut buf).map_err(read_err)?;
        Ok(Self {
            bytes: Bytes::Read(buf),
        })
    }

    /// Whether the blob is mapped (false: it was read).
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped { .. })
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.bytes {
            // SAFETY: `ptr` is a live read-only private mapping of `len` bytes (unmapped only in
            // Drop); the kernel's BTF section behind it never changes while the kernel runs.
            Bytes::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), *len) },
            Bytes::Read(buf) => buf,
        }
    }
}

impl Drop for VmlinuxBtf {
    fn drop(&mut self) {
        if let Bytes::Mapped { ptr, len } = self.bytes {
            // SAFETY: the mapping made in `map_private`, unmapped once, nothing borrows it any
            // more (slices borrow `self`).
            unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
        }
    }
}

/// A private read-only mapping of the whole of `file`, or `None` when the kernel refuses (before
/// 6.16 sysfs BTF has no mmap; the kernel also refuses shared or writable mappings of it).
fn map_private(file: &File, len: usize) -> Option<NonNull<u8>> {
    if len == 0 {
        return None;
    }
    // SAFETY: a new mapping chosen by the kernel, of a file we hold open; no existing memory is
    // touched. The result is checked for MAP_FAILED before use.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return None;
    }
    NonNull::new(ptr.cast())
}

/// An index of a BTF blob: where each type's record starts, by type id, and the named structs
/// by name. Names and members are read from the blob on demand.
#[derive(Debug)]
pub struct Btf<'a> {
    /// The type section.
    types: &'a [u8],
    strings: &'a [u8],
    /// Offset in `types` of the record of type id `i + 1` (id 0 is `void`).
    starts: Vec<u32>,
    /// Named structs, made on the first lookup by name (a function lookup needs none); the
    /// first complete definition wins (vmlinux BTF is deduplicated).
    structs: OnceCell<HashMap<&'a [u8], u32>>,
}

/// What one struct or union member says.
struct Member {
    type_id: u32,
    bit_offset: u32,
    bitfield: bool,
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    data.get(at..at.checked_add(2)?)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at.checked_add(4)?)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

const TRUNCATED: BtfError = BtfError::Malformed("truncated");

fn section(data: &[u8], start: usize, len: u32) -> Result<&[u8], BtfError> {
    start
        .checked_add(len as usize)
        .and_then(|end| data.get(start..end))
        .ok_or(BtfError::Malformed("section out of bounds"))
}

impl<'a> Btf<'a> {
    /// Indexes a little-endian BTF blob. Every type record is checked to lie inside the type
    /// section, so later lookups cannot read past it.
    pub fn parse(data: &'a [u8]) -> Result<Self, BtfError> {
        if u16_at(data, 0).ok_or(TRUNCATED)? != BTF_MAGIC {
            return Err(BtfError::Malformed("bad magic (or not little-endian)"));
        }
        let hdr_len = u32_at(data, 4).ok_or(TRUNCATED)? as usize;
        let type_off = u32_at(data, 8).ok_or(TRUNCATED)? as usize;
        let type_len = u32_at(data, 12).ok_or(TRUNCATED)?;
        let str_off = u32_at(data, 16).ok_or(TRUNCATED)? as usize;
        let str_len = u32_at(data, 20).ok_or(TRUNCATED)?;
        let types = section(data, hdr_len.saturating_add(type_off), type_len)?;
        let strings = section(data, hdr_len.saturating_add(str_off), str_len)?;

        let mut btf = Btf {
            types,
            strings,
            starts: Vec::new(),
            structs: OnceCell::new(),
        };
        let mut at = 0usize;
        while at < types.len() {
            let info = u32_at(types, at + 4).ok_or(TRUNCATED)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let extra = match kind {
                1 | 14 | 17 => 4,                     // INT, VAR, DECL_TAG
                3 => 12,                              // ARRAY
                4 | 5 | 15 | 19 => MEMBER_LEN * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,                   // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0, // PTR, FWD, TYPEDEF, mods, FUNC, FLOAT, TYPE_TAG
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            let end = at + TYPE_LEN + extra;
            if end > types.len() {
                return Err(BtfError::Malformed(
                    "type record runs past the type section",
                ));
            }
            let start =
                u32::try_from(at).map_err(|_| BtfError::Malformed("type section too large"))?;
            btf.starts.push(start);
            at = end;
        }
        Ok(btf)
    }

    /// The named structs with members, by name.
    fn structs(&self) -> &HashMap<&'a [u8], u32> {
        self.structs.get_or_init(|| {
            let mut structs = HashMap::new();
            for (&at, id) in self.starts.iter().zip(1u32..) {
                let at = at as usize;
                let (Some(name_off), Some(info)) =
                    (u32_at(self.types, at), u32_at(self.types, at + 4))
                else {
                    continue;
                };
                if (info >> 24) & 0x1f == KIND_STRUCT && name_off != 0 && info & 0xffff > 0 {
                    structs.entry(self.name(name_off)).or_insert(id);
                }
            }
            structs
        })
    }

    /// The NUL-terminated string at `off` in the string section (empty when out of bounds).
    fn name(&self, off: u32) -> &'a [u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    /// The members of struct or union `type_id`: (record offset of the first member, count,
    /// kind_flag), or `None` for any other kind.
    fn composite(&self, type_id: u32) -> Option<(usize, usize, bool)> {
        let at = *self.starts.get((type_id as usize).checked_sub(1)?)? as usize;
        let info = u32_at(self.types, at + 4)?;
        let kind = (info >> 24) & 0x1f;
        (kind == KIND_STRUCT || kind == KIND_UNION).then_some((
            at + TYPE_LEN,
            (info & 0xffff) as usize,
            info >> 31 == 1,
        ))
    }

    /// Member `index` of a composite whose members start at `members` (bounds checked in parse).
    fn member(&self, members: usize, index: usize, kind_flag: bool) -> Option<(u32, Member)> {
        let base = members + MEMBER_LEN * index;
        let offset = u32_at(self.types, base + 8)?;
        let (bit_offset, bitfield) = if kind_flag {
            (offset & 0x00ff_ffff, offset >> 24 != 0)
        } else {
            (offset, false)
        };
        Some((
            u32_at(self.types, base)?,
            Member {
                type_id: u32_at(self.types, base + 4)?,
                bit_offset,
                bitfield,
            },
        ))
    }

    /// The type id of the function `name` (a `FUNC` type): what a BPF LSM or tracing program
    /// names as its attach point.
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.starts.iter().zip(1u32..).find_map(|(&at, id)| {
            let at = at as usize;
            let info = u32_at(self.types, at + 4)?;
            ((info >> 24) & 0x1f == KIND_FUNC
                && self.name(u32_at(self.types, at)?) == name.as_bytes())
            .then_some(id)
        })
    }

    /// Byte offset of `path` (`"f_path.dentry"`: members of members) in struct `strukt`,
    /// looking through anonymous struct and union members as C does.
    pub fn offset_of(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut type_id = *self
            .structs()
            .get(strukt.as_bytes())
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let mut total_bits = 0u32;
        for field in path.split('.') {
            let member = self
                .find_member(type_id, field.as_bytes(), 0)
                .ok_or_else(|| BtfError::NoField {
                    strukt: strukt.to_owned(),
                    field: path.to_owned(),
                })?;
            if member.bitfield {
                return Err(BtfError::Bitfield {
                    strukt: strukt.to_owned(),
                    field: path.to_owned(),
                });
            }
            total_bits = total_bits
                .checked_add(member.bit_offset)
                .ok_or(BtfError::Malformed("member offset overflows"))?;
            type_id = member.type_id;
        }
        Ok(total_bits / 8)
    }

    /// Finds `field` in composite `type_id`, descending into anonymous members; the returned
    /// member's bit offset is relative to `type_id`. `depth` bounds the descent, so a malformed
    /// blob whose anonymous members refer to each other cannot recurse forever.
    fn find_member(&self, type_id: u32, field: &[u8], depth: u32) -> Option<Member> {
        const MAX_DEPTH: u32 = 32;
        let (members, count, kind_flag) = self.composite(type_id)?;
        let all = (0..count).filter_map(|i| self.member(members, i, kind_flag));
        if let Some((_, member)) = all.clone().find(|(name, _)| self.name(*name) == field) {
            return Some(member);
        }
        if depth >= MAX_DEPTH {
            return None;
        }
        all.filter(|(name, _)| *name == 0 || self.name(*name).is_empty())
            .find_map(|(_, anon)| {
                let inner = self.find_member(anon.type_id, field, depth + 1)?;
                Some(Member {
                    bit_offset: anon.bit_offset.checked_add(inner.bit_offset)?,
                    ..inner
                })
            })
    }

    /// The offsets the exec probe needs.
    ///
    /// Changing what is computed here (a field added, or computed differently) must bump
    /// [`super::offsets_cache::FORMAT`], or a cache written by the previous guard would be used.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, BtfError> {
        Ok(KernelOffsets {
            task_mm: self.offset_of("task_struct", "mm")?,
            mm_exe_file: self.offset_of("mm_struct", "exe_file")?,
            mm_arg_start: self.offset_of("mm_struct", "arg_start")?,
            mm_arg_end: self.offset_of("mm_struct", "arg_end")?,
            file_inode: self.offset_of("file", "f_inode")?,
            file_dentry: self.offset_of("file", "f_path")? + self.offset_of("path", "dentry")?,
            inode_ino: self.offset_of("inode", "i_ino")?,
            inode_sb: self.offset_of("inode", "i_sb")?,
            sb_dev: self.offset_of("super_block", "s_dev")?,
            dentry_parent: self.offset_of("dentry", "d_parent")?,
            dentry_inode: self.offset_of("dentry", "d_inode")?,
            bprm_file: self.offset_of("linux_binprm", "file")?,
            valid: 1,
            bprm_filename: self.offset_of("linux_binprm", "filename")?,
        })
    }
}

/// The running kernel's BTF in `slot`, mapped (or read) on first use, so callers that may or
/// may not need it share one copy.
pub fn vmlinux(slot: &mut Option<VmlinuxBtf>) -> Result<&VmlinuxBtf, BtfError> {
    let blob = match slot.take() {
        Some(blob) => blob,
        None => VmlinuxBtf::open()?,
    };
    Ok(slot.insert(blob))
}

/// The running kernel's offsets, from its BTF (opened into `slot` when it is not yet).
pub fn vmlinux_offsets(slot: &mut Option<VmlinuxBtf>) -> Result<KernelOffsets, BtfError> {
    Btf::parse(vmlinux(slot)?.as_slice())?.kernel_offsets()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built BTF blob: struct outer { int a; union { int b; struct { int c; int d; }; }; }
    /// A BTF blob: header (version 1, 24 bytes), then `types`, then `strings`.
    fn btf_blob(types: &[u8], strings: &[u8]) -> Vec<u8> {
        let mut blob = Vec::new();
        blob.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            blob.extend_from_slice(&v.to_le_bytes());
        }
        blob.extend_from_slice(types);
        blob.extend_from_slice(strings);
        blob
    }

    fn sample() -> Vec<u8> {
        let strings = b"\0outer\0a\0b\0c\0d\0int\0";
        let s = |name: &str| -> u32 {
            let needle = format!("\0{name}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .map(|p| p as u32 + 1)
                .expect("string")
        };
        let mut types: Vec<u8> = Vec::new();
        let mut push = |v: u32| types.extend_from_slice(&v.to_le_bytes());
        // 1: int
        push(s("int"));
        push(1 << 24);
        push(4);
        push(32);
        // 2: anonymous struct { int c @0; int d @32 }
        push(0);
        push((4 << 24) | 2);
        push(8);
        for (n, off) in [("c", 0), ("d", 32)] {
            push(s(n));
            push(1);
            push(off);
        }
        // 3: anonymous union { int b; struct 2 }
        push(0);
        push((5 << 24) | 2);
        push(8);
        push(s("b"));
        push(1);
        push(0);
        push(0);
        push(2);
        push(0);
        // 4: struct outer { int a @0; union 3 @64 }
        push(s("outer"));
        push((4 << 24) | 2);
        push(16);
        push(s("a"));
        push(1);
        push(0);
        push(0);
        push(3);
        push(64);
        btf_blob(&types, strings)
    }

    #[test]
    fn finds_members_through_anonymous_structs_and_unions() {
        let blob = sample();
        let btf = Btf::parse(&blob).unwrap();
        assert_eq!(btf.offset_of("outer", "a").unwrap(), 0);
        assert_eq!(btf.offset_of("outer", "b").unwrap(), 8);
        assert_eq!(btf.offset_of("outer", "d").unwrap(), 12);
        assert!(matches!(
            btf.offset_of("outer", "e"),
            Err(BtfError::NoField { .. })
        ));
        assert!(matches!(
            btf.offset_of("inner", "a"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, clearly").is_err());
        assert!(Btf::parse(&[]).is_err());
        // Every prefix of a valid blob is refused or at least never read out of bounds.
        let blob = sample();
        for len in 0..blob.len() {
            let _ = Btf::parse(&blob[..len]).map(|btf| btf.offset_of("outer", "d"));
        }
        assert!(Btf::parse(&blob[..blob.len() - 1]).is_err());
    }

    #[test]
    fn anonymous_members_that_loop_end() {
        // Type 1: an anonymous struct whose only member is itself, anonymous.
        let strings = b"\0s\0";
        let mut types: Vec<u8> = Vec::new();
        // Type 2: struct s { <anonymous type 1> }, so the lookup starts from a name.
        for v in [
            0u32,
            (4 << 24) | 1,
            4,
            0,
            1,
            0,
            1,
            (4 << 24) | 1,
            4,
            0,
            1,
            0,
        ] {
            types.extend_from_slice(&v.to_le_bytes());
        }
        let blob = btf_blob(&types, strings);
        let btf = Btf::parse(&blob).unwrap();
        assert!(matches!(
            btf.offset_of("s", "x"),
            Err(BtfError::NoField { .. })
        ));
    }

    #[test]
    fn mapped_and_read_bytes_agree() {
        if !available() {
            eprintln!("skipped: {VMLINUX_BTF} is missing on this host");
            return;
        }
        let blob = VmlinuxBtf::open().unwrap();
        let read = std::fs::read(VMLINUX_BTF).unwrap();
        assert_eq!(blob.as_slice(), &read[..], "mapped: {}", blob.is_mapped());
    }

    #[test]
    fn reads_the_running_kernels_offsets() {
        if !available() {
            eprintln!("skipped: {VMLINUX_BTF} is missing on this host");
            return;
        }
        let offsets = vmlinux_offsets(&mut None).unwrap();
        assert_eq!(offsets.valid, 1);
        // i_ino follows a handful of pointers and flags in every kernel since BTF exists; a
        // zero would mean the lookup silently failed.
        assert!(offsets.task_mm > 0 && offsets.inode_ino > 0 && offsets.dentry_parent > 0);
        assert_ne!(offsets.mm_arg_start, offsets.mm_arg_end);
        // The function aya would find for the BPF LSM exec hook, found here too.
        let blob = VmlinuxBtf::open().unwrap();
        let btf = Btf::parse(blob.as_slice()).unwrap();
        let aya_btf = aya::Btf::parse(blob.as_slice(), aya::Endianness::default()).unwrap();
        for func in ["bpf_lsm_bprm_check_security", "vfs_read"] {
            let expected = aya_btf
                .id_by_type_name_kind(func, aya_obj::btf::BtfKind::Func)
                .ok();
            assert_eq!(btf.func_id(func), expected, "{func}");
        }
        assert_eq!(btf.func_id("no_such_function_in_any_kernel"), None);
    }
}
