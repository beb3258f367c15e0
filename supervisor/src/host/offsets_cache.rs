//! The exec probe's kernel struct offsets ([`KernelOffsets`]), cached under `/run/guard` per
//! kernel build, so only the first probe load after boot reads the kernel's BTF for them.
//!
//! The cache file is named after the kernel's GNU build id (`/sys/kernel/notes`) and the
//! format version, and carries both again inside, with a SHA-256 of its contents. A file that is
//! not exactly right (another kernel, another format, truncated, corrupt, not owned by guard's
//! user, writable by others) is ignored and the offsets are computed again: wrong offsets would
//! make the exec probe read the wrong kernel fields, so nothing in the cache is trusted
//! unchecked. `/run` is a tmpfs, so the cache goes away at reboot, and only root can write to
//! `/run/guard`.

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use guard_common::KernelOffsets;
use sha2::{Digest as _, Sha256};

/// Where the cache lives (with guard's probe lock files).
pub const CACHE_DIR: &str = "/run/guard";
/// The kernel's ELF notes, among them its GNU build id.
pub const KERNEL_NOTES: &str = "/sys/kernel/notes";
/// Version of the cache format and of what the offsets mean: bump it whenever
/// `Btf::kernel_offsets` computes something different, so no guard uses offsets cached by
/// another version of that computation.
pub const FORMAT: u32 = 2;

const MAGIC: &[u8; 8] = b"guardko\0";
/// `KernelOffsets` as little-endian u32 words, in field order.
const WORDS: usize = 14;
const _: () = assert!(size_of::<KernelOffsets>() == WORDS * 4);
/// The longest key accepted (GNU build ids are 20 bytes; a kernel may use up to 64).
const MAX_KEY: usize = 64;
const NT_GNU_BUILD_ID: u32 = 3;

/// The cache file of one kernel build.
#[derive(Debug, Clone)]
pub struct OffsetsCache {
    path: PathBuf,
    key: Vec<u8>,
}

impl OffsetsCache {
    /// The cache for the running kernel, or `None` when the kernel has no build id to key it
    /// by (then nothing is cached).
    pub fn for_running_kernel() -> Option<Self> {
        let notes = std::fs::read(KERNEL_NOTES).ok()?;
        Some(Self::new(
            Path::new(CACHE_DIR),
            gnu_build_id(&notes)?.to_vec(),
        ))
    }

    /// The cache in `dir` for the kernel identified by `key`.
    pub fn new(dir: &Path, key: Vec<u8>) -> Self {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            path: dir.join(format!("kernel-offsets-{hex}-v{FORMAT}")),
            key,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached offsets, or `None` when there are none or they fail any check.
    pub fn read(&self) -> Option<KernelOffsets> {
        if self.key.is_empty() || self.key.len() > MAX_KEY {
            return None;
        }
        let dir = self.path.parent()?;
        if !trusted(&std::fs::symlink_metadata(dir).ok()?) {
            return None;
        }
        // O_NOFOLLOW: a symlink planted in place of the file is refused, not followed.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.path)
            .ok()?;
        let meta = file.metadata().ok()?;
        let expected = encoded_len(self.key.len());
        if !meta.is_file() || !trusted(&meta) || meta.len() != expected as u64 {
            return None;
        }
        let mut bytes = Vec::with_capacity(expected);
        file.read_to_end(&mut bytes).ok()?;
        decode(&bytes, &self.key)
    }

    /// Stores `offsets`: written to a temporary file beside the cache file and renamed over it,
    /// so a reader sees the old file, the new one or none, never half of one.
    pub fn write(&self, offsets: &KernelOffsets) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir)?;
        let mut tmp_name = self.path.file_name().unwrap_or(OsStr::new("")).to_owned();
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .and_then(|mut file| file.write_all(&encode(offsets, &self.key)))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// The cached offsets, or those `compute` returns, which are then cached (a failure to
    /// write the cache only costs the next cold start the same work again).
    pub fn get_or_compute<E>(
        &self,
        compute: impl FnOnce() -> Result<KernelOffsets, E>,
    ) -> Result<KernelOffsets, E> {
        if let Some(offsets) = self.read() {
            return Ok(offsets);
        }
        let offsets = compute()?;
        let _ = self.write(&offsets);
        Ok(offsets)
    }
}

/// Owned by this process's user (root, for the real cache) and writable by nobody else.
fn trusted(meta: &std::fs::Metadata) -> bool {
    // SAFETY: geteuid cannot fail and has no side effects.
    let euid = unsafe { libc::geteuid() };
    meta.uid() == euid && meta.mode() & 0o022 == 0
}

fn encoded_len(key_len: usize) -> usize {
    MAGIC.len() + 4 + 4 + key_len + WORDS * 4 + 32
}

fn words(o: &KernelOffsets) -> [u32; WORDS] {
    [
        o.task_mm,
        o.mm_exe_file,
        o.mm_arg_start,
        o.mm_arg_end,
        o.file_inode,
        o.file_dentry,
        o.inode_ino,
        o.inode_sb,
        o.sb_dev,
        o.dentry_parent,
        o.dentry_inode,
        o.bprm_file,
        o.valid,
        o.bprm_filename,
    ]
}

fn from_words(w: [u32; WORDS]) -> KernelOffsets {
    KernelOffsets {
        task_mm: w[0],
        mm_exe_file: w[1],
        mm_arg_start: w[2],
        mm_arg_end: w[3],
        file_inode: w[4],
        file_dentry: w[5],
        inode_ino: w[6],
        inode_sb: w[7],
        sb_dev: w[8],
        dentry_parent: w[9],
        dentry_inode: w[10],
        bprm_file: w[11],
        valid: w[12],
        bprm_filename: w[13],
    }
}

/// MAGIC, FORMAT, key length, key, the offsets, then SHA-256 of all that.
fn encode(offsets: &KernelOffsets, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(key.len()));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    for word in words(offsets) {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// The offsets in `bytes` if every part of it checks out for `key`.
fn decode(bytes: &[u8], key: &[u8]) -> Option<KernelOffsets> {
    if bytes.len() != encoded_len(key.len()) {
        return None;
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return None;
    }
    let (magic, rest) = body.split_at(MAGIC.len());
    let (format, rest) = rest.split_at(4);
    let (key_len, rest) = rest.split_at(4);
    let (stored_key, rest) = rest.split_at(key.len());
    if magic != MAGIC
        || format != FORMAT.to_le_bytes()
        || key_len != (key.len() as u32).to_le_bytes()
        || stored_key != key
    {
        return None;
    }
    let mut w = [0u32; WORDS];
    for (word, chunk) in w.iter_mut().zip(rest.chunks_exact(4)) {
        *word = u32::from_le_bytes(chunk.try_into().ok()?);
    }
    let offsets = from_words(w);
    // The probe treats `valid == 0` as "not filled in" and fails closed; a cache never holds that.
    (offsets.valid == 1 && offsets.bprm_filename != 0).then_some(offsets)
}

/// The GNU build id among the ELF notes in `notes` (`Elf_Nhdr` records: name size, descriptor
/// size, type, then name and descriptor, each padded to 4 bytes).
pub fn gnu_build_id(notes: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| -> Option<usize> {
        let bytes = notes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    let pad = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut at = 0;
    while at + 12 <= notes.len() {
        let (namesz, descsz, kind) = (word(at)?, word(at + 4)?, word(at + 8)? as u32);
        let name_at = at + 12;
        let desc_at = name_at.checked_add(pad(namesz)?)?;
        let next = desc_at.checked_add(pad(descsz)?)?;
        let name = notes.get(name_at..name_at.checked_add(namesz)?)?;
        let desc = notes.get(desc_at..desc_at.checked_add(descsz)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc);
        }
        at = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "guard-offsets-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn offsets(seed: u32) -> KernelOffsets {
        let mut w: [u32; WORDS] = std::array::from_fn(|i| seed + 8 * i as u32);
        w[12] = 1;
        from_words(w)
    }

    const KEY: &[u8] =
        b"\x48\xdc\x54\x0c\x8b\x76\x39\x38\x04\xca\x80\x88\xdb\xfa\x7d\x42\x91\x1a\x94\x44";

    #[test]
    fn a_written_cache_reads_back() {
        let dir = TempDir::new();
        let cache = OffsetsCache::new(&dir.0, KEY.to_vec());
        assert_eq!(cache.read(), None);
        cache.write(&offsets(100)).unwrap();
        assert_eq!(cache.read(), Some(offsets(100)));
        let name = cache
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            name,
            format!("kernel-offsets-48dc540c8b76393804ca8088dbfa7d42911a9444-v{FORMAT}")
        );
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);
    }

    #[test]
    fn another_kernels_cache_is_not_used() {
        let dir = TempDir::new();
        OffsetsCache::new(&dir.0, KEY.to_vec())
            .write(&offsets(100))
            .unwrap();
        let other = OffsetsCache::new(&dir.0, b"another kernel build".to_vec());
        assert_eq!(other.read(), None);
        // Even when its file is renamed to where this kernel's would be.
        std::fs::copy(OffsetsCache::new(&dir.0, KEY.to_vec()).path(), other.path()).unwrap();
        assert_eq!(other.read(), None);
    }

    #[test]
    fn truncated_or_corrupt_caches_are_recomputed() {
        let dir = TempDir::new();
        let cache = OffsetsCache::new(&dir.0, KEY.to_vec());
        cache.write(&offsets(100)).unwrap();
        let good = std::fs::read(cache.path()).unwrap();
        let mut damaged: Vec<Vec<u8>> = vec![
            Vec::new(),
            good[..good.len() - 1].to_vec(),
            good[..good.len() / 2].to_vec(),
            [good.as_slice(), b"x"].concat(),
        ];
        for at in [
            0,
            MAGIC.len(),
            MAGIC.len() + 4,
            30,
            good.len() - 40,
            good.len() - 1,
        ] {
            let mut flipped = good.clone();
            flipped[at] ^= 0x01;
            damaged.push(flipped);
        }
        for bytes in damaged {
            std::fs::write(cache.path(), &bytes).unwrap();
            assert_eq!(cache.read(), None, "{bytes:?}");
            let mut computed = 0;
            let got = cache.get_or_compute(|| {
                computed += 1;
                Ok::<_, ()>(offsets(200))
            });
            assert_eq!((got, computed), (Ok(offsets(200)), 1));
            // ... and the recomputed offsets replaced the damaged file.
            assert_eq!(cache.read(), Some(offsets(200)));
            cache.write(&offsets(100)).unwrap();
        }
    }

    #[test]
    fn an_intact_cache_saves_the_computation() {
        let dir = TempDir::new();
        let cache = OffsetsCache::new(&dir.0, KEY.to_vec());
        let first = cache.get_or_compute(|| Ok::<_, ()>(offsets(100)));
        let second = cache
            .get_or_compute(|| -> Result<KernelOffsets, ()> { panic!("computed although cached") });
        assert_eq!((first, second), (Ok(offsets(100)), Ok(offsets(100))));
        // A failed computation is reported, not cached.
        let fresh = OffsetsCache::new(&dir.0, b"fresh".to_vec());
        assert_eq!(fresh.get_or_compute(|| Err("no btf")), Err("no btf"));
        assert_eq!(fresh.read(), None);
    }

    #[test]
    fn offsets_marked_invalid_are_not_trusted() {
        let mut invalid = offsets(100);
        invalid.valid = 0;
        assert_eq!(decode(&encode(&invalid, KEY), KEY), None);
        assert_eq!(decode(&encode(&offsets(100), KEY), KEY), Some(offsets(100)));
    }

    #[test]
    fn files_others_can_write_or_symlinks_are_ignored() {
        let dir = TempDir::new();
        let cache = OffsetsCache::new(&dir.0, KEY.to_vec());
        cache.write(&offsets(100)).unwrap();
        std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(cache.read(), None);
        std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(cache.read(), Some(offsets(100)));
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(cache.read(), None);
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();

        let real = dir.0.join("elsewhere");
        std::fs::rename(cache.path(), &real).unwrap();
        std::os::unix::fs::symlink(&real, cache.path()).unwrap();
        assert_eq!(cache.read(), None);
        // Writing replaces the symlink itself, never the file it points to.
        cache.write(&offsets(300)).unwrap();
        assert_eq!(cache.read(), Some(offsets(300)));
        assert_eq!(
            decode(&std::fs::read(&real).unwrap(), KEY),
            Some(offsets(100))
        );
    }

    #[test]
    fn finds_the_gnu_build_id_among_the_notes() {
        let note = |name: &[u8], kind: u32, desc: &[u8]| {
            let mut out = Vec::new();
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            for part in [name, desc] {
                out.extend_from_slice(part);
                out.resize(out.len().next_multiple_of(4), 0);
            }
            out
        };
        let notes = [
            note(b"Xen\0", 6, b"linux"),
            note(b"GNU\0", 1, b"not the build id"),
            note(b"GNU\0", NT_GNU_BUILD_ID, KEY),
            note(b"Linux\0", 0x100, b"6.18\0"),
        ]
        .concat();
        assert_eq!(gnu_build_id(&notes), Some(KEY));
        assert_eq!(gnu_build_id(&notes[..notes.len() / 3]), None);
        assert_eq!(gnu_build_id(&[]), None);
        assert_eq!(gnu_build_id(&[0xff; 40]), None);
    }

    #[test]
    fn the_running_kernel_has_a_build_id() {
        let Ok(notes) = std::fs::read(KERNEL_NOTES) else {
            eprintln!("skipped: {KERNEL_NOTES} is not readable here");
            return;
        };
        let id = gnu_build_id(&notes).expect("the kernel's notes have a GNU build id");
        assert!(id.len() >= 16, "{id:?}");
    }
}
