//! The initramfs: two cpio archives, concatenated into one file for qemu's `-initrd`.
//!
//! 1. The host userland ([`super::userland`]), about 100 MB, cached under `target/vm/` by a key
//!    that changes when the host's packages do, so it is written once per host;
//! 2. this run's files: the guest init as `/init`, `/dev/console`, the run plan, guard and the
//!    test binaries at their host paths (the tests find guard through the path cargo compiled
//!    into them), and the repository files the tests read (fixtures, profiles).
//!
//! No compression: the kernel would spend seconds of emulated CPU unpacking it, and qemu reads
//! an uncompressed file as fast as a compressed one from the page cache.

use std::fs::File;
use std::io::BufWriter;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::cpio::{CpioWriter, Meta, archive_name};
use super::userland::{self, FileSet, Node};

/// A file this run puts into the guest.
#[derive(Debug, Clone)]
pub enum Content {
    /// Copied from the host.
    Host(PathBuf),
    /// Generated (the plan, the host's doctor report).
    Bytes(Vec<u8>),
}

/// The per-run part of the guest.
#[derive(Debug, Default)]
pub struct RunFiles {
    /// (guest path, mode, content); parent directories are created as needed.
    pub files: Vec<(PathBuf, u32, Content)>,
    /// Empty directories the guest needs (working directories, temp dirs).
    pub dirs: Vec<PathBuf>,
    /// Host files with their libraries and symlinks (a command given to `--profile`).
    pub host_paths: FileSet,
}

impl RunFiles {
    /// Adds the host file `path` at the same guest path, with its mode.
    pub fn host_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let mode = std::fs::metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?
            .permissions()
            .mode();
        self.files
            .push((path.to_path_buf(), mode, Content::Host(path.to_path_buf())));
        Ok(())
    }

    /// Adds every file below the host directory `dir`, at the same guest paths.
    pub fn host_tree(&mut self, dir: &Path) -> anyhow::Result<()> {
        self.dirs.push(dir.to_path_buf());
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                self.host_tree(&path)?;
            } else if path.is_file() {
                self.host_file(&path)?;
            }
        }
        Ok(())
    }
}

/// The cached userland archive for this host, written when the host changed.
pub fn userland_archive(vm_dir: &Path) -> anyhow::Result<PathBuf> {
    let key = userland::cache_key();
    let path = vm_dir.join(format!("userland-{key}.cpio"));
    if path.is_file() {
        eprintln!("vm: host userland archive {} (cached)", path.display());
        return Ok(path);
    }
    let started = std::time::Instant::now();
    let set = userland::collect()?;
    let tmp = path.with_extension("tmp");
    let mut writer = CpioWriter::new(BufWriter::new(
        File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
    ));
    write_set(&mut writer, &set)?;
    writer.finish()?.into_inner().map_err(|e| e.into_error())?;
    // Older archives of this host are dead weight of 100 MB each.
    if let Ok(entries) = std::fs::read_dir(vm_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("userland-") && name.ends_with(".cpio") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    std::fs::rename(&tmp, &path)?;
    let size = std::fs::metadata(&path)?.len();
    eprintln!(
        "vm: packed the host userland: {} paths, {} MB in {:.1}s",
        set.len(),
        size >> 20,
        started.elapsed().as_secs_f64()
    );
    for note in &set.unresolved {
        eprintln!("vm: note: {note} (not on this host; not needed unless that file runs)");
    }
    Ok(path)
}

/// Writes the whole initramfs: `userland` followed by this run's archive.
pub fn write(out: &Path, userland: &Path, run: &RunFiles) -> anyhow::Result<()> {
    let tmp = out.with_extension("tmp");
    std::fs::copy(userland, &tmp)
        .with_context(|| format!("cannot copy {} to {}", userland.display(), tmp.display()))?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&tmp)
        .with_context(|| format!("cannot open {}", tmp.display()))?;
    let mut writer = CpioWriter::new(BufWriter::new(file));
    write_run(&mut writer, run)?;
    writer.finish()?.into_inner().map_err(|e| e.into_error())?;
    std::fs::rename(&tmp, out)?;
    Ok(())
}

fn write_set<W: std::io::Write>(writer: &mut CpioWriter<W>, set: &FileSet) -> anyhow::Result<()> {
    for (path, node) in set.nodes() {
        let name = path.to_string_lossy();
        match node {
            Node::Dir { mode, mtime } => writer.dir(&name, meta(*mode, *mtime))?,
            Node::Symlink { target, mtime } => writer.symlink(&name, target, *mtime)?,
            Node::File { mode, mtime } => {
                let data = std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                writer.file(&name, meta(*mode, *mtime), &data)?;
            }
        }
    }
    Ok(())
}

fn write_run<W: std::io::Write>(writer: &mut CpioWriter<W>, run: &RunFiles) -> anyhow::Result<()> {
    // The skeleton every Linux userland expects; /tmp is sticky and world-writable as on the host.
    for (dir, mode) in [
        ("/dev", 0o755),
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/run", 0o755),
        ("/tmp", 0o1777),
        ("/var", 0o755),
        ("/var/tmp", 0o1777),
        ("/root", 0o700),
        ("/vm", 0o755),
    ] {
        writer.dir(dir, meta(mode, 0))?;
    }
    // The kernel opens it for PID 1 before anything is mounted.
    writer.char_device("/dev/console", 0o600, 5, 1)?;

    let mut made: Vec<PathBuf> = Vec::new();
    let mut make_dirs = |writer: &mut CpioWriter<W>, dir: &Path| -> anyhow::Result<()> {
        let mut missing: Vec<&Path> = dir
            .ancestors()
            .filter(|a| *a != Path::new("/") && !made.iter().any(|m| m == a))
            .collect();
        missing.reverse();
        for ancestor in missing {
            let mode = std::fs::metadata(ancestor)
                .map(|m| m.permissions().mode())
                .unwrap_or(0o755);
            writer.dir(&ancestor.to_string_lossy(), meta(mode, 0))?;
            made.push(ancestor.to_path_buf());
        }
        Ok(())
    };
    for dir in &run.dirs {
        make_dirs(writer, dir)?;
    }
    for (path, mode, content) in &run.files {
        if let Some(parent) = path.parent() {
            make_dirs(writer, parent)?;
        }
        let (data, mtime) = match content {
            Content::Host(source) => (
                std::fs::read(source)
                    .with_context(|| format!("cannot read {}", source.display()))?,
                std::fs::metadata(source)
                    .map(|m| u32::try_from(m.mtime()).unwrap_or(0))
                    .unwrap_or(0),
            ),
            Content::Bytes(bytes) => (bytes.clone(), 0),
        };
        if archive_name(&path.to_string_lossy()).is_empty() {
            bail!("cannot put a file at /");
        }
        writer.file(&path.to_string_lossy(), meta(*mode, mtime), &data)?;
    }
    write_set(writer, &run.host_paths)
}

fn meta(mode: u32, mtime: u32) -> Meta {
    Meta { mode, mtime }
}

#[cfg(test)]
mod tests {
    use super::super::cpio::{S_IFCHR, S_IFDIR, S_IFREG, parse};
    use super::*;

    #[test]
    fn the_run_archive_has_the_skeleton_parents_and_files() {
        let mut run = RunFiles::default();
        run.files.push((
            PathBuf::from("/init"),
            0o755,
            Content::Bytes(b"\x7fELF".to_vec()),
        ));
        run.files.push((
            PathBuf::from("/nonexistent-on-host/a/b/plan"),
            0o644,
            Content::Bytes(b"run\tx\t/x\n".to_vec()),
        ));
        run.dirs.push(PathBuf::from("/nonexistent-on-host/a/cwd"));
        let mut writer = CpioWriter::new(Vec::new());
        write_run(&mut writer, &run).unwrap();
        let bytes = writer.finish().unwrap();
        let entries = parse::entries(&bytes);
        let find = |name: &str| {
            entries
                .iter()
                .find(|e| e.name == name)
                .unwrap_or_else(|| panic!("no {name} in {entries:?}"))
        };
        assert_eq!(find("dev/console").mode, S_IFCHR | 0o600);
        assert_eq!(find("tmp").mode, S_IFDIR | 0o1777);
        assert_eq!(find("init").mode, S_IFREG | 0o755);
        assert_eq!(find("nonexistent-on-host/a/b/plan").data, b"run\tx\t/x\n");
        // Each directory once, before what it contains.
        let position = |name: &str| entries.iter().position(|e| e.name == name).unwrap();
        assert!(position("nonexistent-on-host") < position("nonexistent-on-host/a"));
        assert!(position("nonexistent-on-host/a") < position("nonexistent-on-host/a/cwd"));
        assert!(position("nonexistent-on-host/a/b") < position("nonexistent-on-host/a/b/plan"));
        assert_eq!(
            entries
                .iter()
                .filter(|e| e.name == "nonexistent-on-host/a")
                .count(),
            1
        );
    }
}
