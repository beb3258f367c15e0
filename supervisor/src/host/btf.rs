//! Kernel BTF: the type information of the running kernel, read from `/sys/kernel/btf/vmlinux`.
//!
//! guard needs it for one thing: the byte offsets of the few kernel struct fields its exec probe
//! reads (`task_struct.mm`, `mm_struct.exe_file`, ...). Those offsets differ between kernel
//! builds, so they are looked up here when the probes load instead of being baked into the
//! object. aya parses BTF too, but does not expose struct members, so this is a small reader
//! of just the parts of the format (kernel `Documentation/bpf/btf.rst`) that lookups need.

use std::collections::HashMap;
use std::path::Path;

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
    #[error("the kernel's BTF has no field {field} in struct {strukt}")]
    NoField { strukt: String, field: String },
    #[error("field {strukt}.{field} is a bitfield")]
    Bitfield { strukt: String, field: String },
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

/// One struct or union member.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    type_id: u32,
    bit_offset: u32,
    bitfield: bool,
}

/// A struct or union type.
#[derive(Debug, Clone)]
struct Composite {
    members: Vec<Member>,
}

/// The structs and unions of a BTF blob, by type id, and named structs by name.
#[derive(Debug, Default)]
pub struct Btf {
    composites: HashMap<u32, Composite>,
    /// Named structs; the first complete definition wins (vmlinux BTF is deduplicated).
    structs: HashMap<String, u32>,
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn vmlinux() -> Result<Self, BtfError> {
        let bytes = std::fs::read(VMLINUX_BTF).map_err(|source| BtfError::Read {
            path: VMLINUX_BTF.to_owned(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Parses a little-endian BTF blob.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let u16_at = |at: usize| -> Result<u16, BtfError> {
            data.get(at..at + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or(BtfError::Malformed("truncated"))
        };
        let u32_at = |at: usize| -> Result<u32, BtfError> {
            data.get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(BtfError::Malformed("truncated"))
        };
        if u16_at(0)? != BTF_MAGIC {
            return Err(BtfError::Malformed("bad magic (or not little-endian)"));
        }
        let hdr_len = u32_at(4)? as usize;
        let type_off = u32_at(8)? as usize;
        let type_len = u32_at(12)? as usize;
        let str_off = u32_at(16)? as usize;
        let str_len = u32_at(20)? as usize;
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strings_start = hdr_len + str_off;
        let strings = data
            .get(strings_start..strings_start + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?;
        let name = |off: u32| -> String {
            let rest = strings.get(off as usize..).unwrap_or_default();
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).into_owned()
        };

        let mut btf = Btf::default();
        let mut at = types_start;
        let mut id = 1u32;
        while at < types_end {
            let name_off = u32_at(at)?;
            let info = u32_at(at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            at += 12;
            let extra = match kind {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF, mods, FUNC, FLOAT, TYPE_TAG
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            if kind == KIND_STRUCT || kind == KIND_UNION {
                let mut members = Vec::with_capacity(vlen);
                for m in 0..vlen {
                    let base = at + 12 * m;
                    let offset = u32_at(base + 8)?;
                    let (bit_offset, bitfield) = if kind_flag {
                        (offset & 0x00ff_ffff, offset >> 24 != 0)
                    } else {
                        (offset, false)
                    };
                    members.push(Member {
                        name: name(u32_at(base)?),
                        type_id: u32_at(base + 4)?,
                        bit_offset,
                        bitfield,
                    });
                }
                if kind == KIND_STRUCT && name_off != 0 && vlen > 0 {
                    btf.structs.entry(name(name_off)).or_insert(id);
                }
                btf.composites.insert(id, Composite { members });
            }
            at += extra;
            id += 1;
        }
        Ok(btf)
    }

    /// Byte offset of `path` (`"f_path.dentry"`: members of members) in struct `strukt`,
    /// looking through anonymous struct and union members as C does.
    pub fn offset_of(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut type_id = *self
            .structs
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let mut total_bits = 0u32;
        for field in path.split('.') {
            let (bits, member_type) =
                self.find_member(type_id, field)
                    .ok_or_else(|| BtfError::NoField {
                        strukt: strukt.to_owned(),
                        field: path.to_owned(),
                    })?;
            if bits.1 {
                return Err(BtfError::Bitfield {
                    strukt: strukt.to_owned(),
                    field: path.to_owned(),
                });
            }
            total_bits += bits.0;
            type_id = member_type;
        }
        Ok(total_bits / 8)
    }

    /// Finds `field` in composite `type_id`, descending into anonymous members: returns
    /// ((bit offset, is bitfield), member type id).
    fn find_member(&self, type_id: u32, field: &str) -> Option<((u32, bool), u32)> {
        let composite = self.composites.get(&type_id)?;
        for member in &composite.members {
            if member.name == field {
                return Some(((member.bit_offset, member.bitfield), member.type_id));
            }
        }
        for member in composite.members.iter().filter(|m| m.name.is_empty()) {
            if let Some(((bits, bitfield), ty)) = self.find_member(member.type_id, field) {
                return Some(((member.bit_offset + bits, bitfield), ty));
            }
        }
        None
    }

    /// The offsets the exec probe needs.
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
            reserved: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built BTF blob: struct outer { int a; union { int b; struct { int c; int d; }; }; }
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
        blob.extend_from_slice(&types);
        blob.extend_from_slice(strings);
        blob
    }

    #[test]
    fn finds_members_through_anonymous_structs_and_unions() {
        let btf = Btf::parse(&sample()).unwrap();
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
    }

    #[test]
    fn reads_the_running_kernels_offsets() {
        if !available() {
            eprintln!("skipped: {VMLINUX_BTF} is missing on this host");
            return;
        }
        let offsets = Btf::vmlinux().unwrap().kernel_offsets().unwrap();
        assert_eq!(offsets.valid, 1);
        // i_ino follows a handful of pointers and flags in every kernel since BTF exists; a
        // zero would mean the lookup silently failed.
        assert!(offsets.task_mm > 0 && offsets.inode_ino > 0 && offsets.dentry_parent > 0);
        assert_ne!(offsets.mm_arg_start, offsets.mm_arg_end);
    }
}
