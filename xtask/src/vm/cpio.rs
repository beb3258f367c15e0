//! A writer for the "newc" cpio format (`070701`), the only archive format the kernel unpacks
//! into its initramfs.
//!
//! Each entry is a 110-byte ASCII header, the NUL-terminated name padded to four bytes, then the
//! data padded to four bytes; a `TRAILER!!!` entry ends an archive. Archives can be concatenated
//! and the kernel unpacks them in order, which is how the cached host userland and the per-run
//! guard files are combined. Hard links are not used: every entry has `nlink` 1, so the kernel
//! never tries to link entries to each other.

use std::io::{self, Write};

/// File type bits of `st_mode`.
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFLNK: u32 = 0o120_000;
pub const S_IFCHR: u32 = 0o020_000;

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";

/// The header fields of one entry that callers choose; the rest (inode, sizes) are filled in.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    /// Modification time in seconds. Kept from the host so that Python's `.pyc` files stay
    /// valid (they record their source's mtime; a mismatch recompiles every module at start).
    pub mtime: u32,
}

/// Streams entries into `out`; call [`CpioWriter::finish`] to write the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
    /// Device numbers of the entry being written (only character devices have any).
    rdev: (u32, u32),
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            // Inode 0 is avoided: some unpackers treat it as "no inode".
            next_ino: 1,
            written: 0,
            rdev: (0, 0),
        }
    }

    /// A directory; its parents must have been written before it.
    pub fn dir(&mut self, path: &str, meta: Meta) -> io::Result<()> {
        self.entry(path, S_IFDIR | (meta.mode & 0o7777), meta.mtime, &[])
    }

    /// A regular file with `data`.
    pub fn file(&mut self, path: &str, meta: Meta, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | (meta.mode & 0o7777), meta.mtime, data)
    }

    /// A symbolic link to `target` (stored as the entry's data, as newc does).
    pub fn symlink(&mut self, path: &str, target: &str, mtime: u32) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, mtime, target.as_bytes())
    }

    /// A character device node, such as `/dev/console` (5, 1), which the kernel opens for PID 1
    /// before any file system is mounted.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.rdev = (major, minor);
        let result = self.entry(path, S_IFCHR | (mode & 0o7777), 0, &[]);
        self.rdev = (0, 0);
        result
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header(TRAILER, 0, 0, 0, 0)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(&mut self, path: &str, mode: u32, mtime: u32, data: &[u8]) -> io::Result<()> {
        let name = archive_name(path);
        if name.is_empty() || name == TRAILER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path:?} cannot be an archive entry name"),
            ));
        }
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: newc entries are limited to 4 GiB"),
            )
        })?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(name, ino, mode, mtime, size)?;
        self.write_padded(data)
    }

    fn header(&mut self, name: &str, ino: u32, mode: u32, mtime: u32, size: u32) -> io::Result<()> {
        let name_size = u32::try_from(name.len() + 1)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "entry name too long"))?;
        let nlink = if name == TRAILER { 0 } else { 1 };
        let (rdev_major, rdev_minor) = self.rdev;
        let mut header = Vec::with_capacity(110 + name.len() + 4);
        header.extend_from_slice(MAGIC);
        // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
        // namesize, check: every field eight hex digits. Everything belongs to root.
        for field in [
            ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev_major, rdev_minor, name_size, 0,
        ] {
            header.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        self.write_padded(&header)
    }

    /// Writes `bytes` and zeros up to the next multiple of four of the archive offset.
    fn write_padded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += pad as u64;
        Ok(())
    }
}

/// The name an absolute or relative path gets in the archive: no leading `/`, as the kernel's
/// unpacker resolves names relative to the new root.
pub fn archive_name(path: &str) -> &str {
    path.trim_start_matches('/')
}

#[cfg(test)]
pub mod parse {
    //! A reader for the archives above, so the tests check the bytes against the format rather
    //! than against the writer's own idea of it.

    /// One entry as read back.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Entry {
        pub name: String,
        pub ino: u32,
        pub mode: u32,
        pub nlink: u32,
        pub mtime: u32,
        pub rdev: (u32, u32),
        pub data: Vec<u8>,
    }

    fn field(bytes: &[u8], index: usize) -> u32 {
        let start = 6 + index * 8;
        let text = std::str::from_utf8(&bytes[start..start + 8]).expect("ASCII header");
        u32::from_str_radix(text, 16).expect("hex field")
    }

    fn align4(n: usize) -> usize {
        n.div_ceil(4) * 4
    }

    /// Every entry of possibly concatenated archives, trailers included.
    pub fn entries(mut bytes: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut offset = 0;
        while !bytes.is_empty() {
            assert_eq!(&bytes[..6], b"070701", "bad magic at offset {offset}");
            assert_eq!(offset % 4, 0, "entry not aligned");
            let name_size = field(bytes, 11) as usize;
            let size = field(bytes, 6) as usize;
            assert_eq!(field(bytes, 12), 0, "check field");
            let name_end = 110 + name_size;
            assert_eq!(bytes[name_end - 1], 0, "name not NUL-terminated");
            let name = String::from_utf8(bytes[110..name_end - 1].to_vec()).expect("UTF-8 name");
            let data_start = align4(name_end);
            let data_end = data_start + size;
            out.push(Entry {
                name,
                ino: field(bytes, 0),
                mode: field(bytes, 1),
                nlink: field(bytes, 4),
                mtime: field(bytes, 5),
                rdev: (field(bytes, 9), field(bytes, 10)),
                data: bytes[data_start..data_end].to_vec(),
            });
            let next = align4(data_end);
            offset += next;
            bytes = &bytes[next..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::parse::entries;
    use super::*;

    fn meta(mode: u32) -> Meta {
        Meta {
            mode,
            mtime: 1_700_000_000,
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("/usr", meta(0o755)).unwrap();
        w.dir("/usr/bin", meta(0o755)).unwrap();
        w.file("/usr/bin/tool", meta(0o755), b"#!/bin/sh\necho hi\n")
            .unwrap();
        w.file("/empty", meta(0o600), b"").unwrap();
        w.symlink("/bin", "usr/bin", 5).unwrap();
        w.char_device("/console", 0o600, 5, 1).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn entries_round_trip_with_types_modes_and_data() {
        let all = entries(&sample());
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "usr",
                "usr/bin",
                "usr/bin/tool",
                "empty",
                "bin",
                "console",
                "TRAILER!!!"
            ]
        );
        assert_eq!(all[0].mode, S_IFDIR | 0o755);
        assert_eq!(all[2].mode, S_IFREG | 0o755);
        assert_eq!(all[2].data, b"#!/bin/sh\necho hi\n");
        assert_eq!(all[2].mtime, 1_700_000_000);
        assert_eq!(all[3].mode, S_IFREG | 0o600);
        assert!(all[3].data.is_empty());
        assert_eq!(all[4].mode, S_IFLNK | 0o777);
        assert_eq!(all[4].data, b"usr/bin");
        assert_eq!(all[4].mtime, 5);
        assert_eq!(all[5].mode, S_IFCHR | 0o600);
        assert_eq!(all[5].rdev, (5, 1));
        assert_eq!(all[4].rdev, (0, 0), "only the device has device numbers");
    }

    #[test]
    fn inodes_are_unique_and_nothing_is_hard_linked() {
        let all = entries(&sample());
        let (trailer, real) = all.split_last().unwrap();
        assert_eq!(trailer.nlink, 0);
        let mut inos: Vec<u32> = real.iter().map(|e| e.ino).collect();
        inos.sort_unstable();
        inos.dedup();
        assert_eq!(inos.len(), real.len());
        assert!(real.iter().all(|e| e.nlink == 1 && e.ino != 0));
    }

    #[test]
    fn every_length_of_name_and_data_stays_aligned() {
        // Names and data of every length modulo 4 exercise each padding case.
        let mut w = CpioWriter::new(Vec::new());
        for n in 1..=8 {
            let name = "n".repeat(n);
            w.file(&name, meta(0o644), &vec![b'x'; n]).unwrap();
        }
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let all = entries(&bytes);
        for (n, entry) in (1..=8).zip(&all) {
            assert_eq!(entry.name.len(), n);
            assert_eq!(entry.data.len(), n);
        }
    }

    #[test]
    fn concatenated_archives_read_as_one_sequence() {
        let mut both = sample();
        both.extend(sample());
        let names: Vec<String> = entries(&both).into_iter().map(|e| e.name).collect();
        assert_eq!(names.len(), 14);
        assert_eq!(names[6], "TRAILER!!!");
        assert_eq!(names[7], "usr");
    }

    #[test]
    fn the_header_is_newc_ascii() {
        let bytes = sample();
        // magic, then ino=1 and mode=040755 as eight hex digits each.
        assert_eq!(&bytes[..22], b"07070100000001000041ed");
    }

    #[test]
    fn names_that_cannot_be_entries_are_refused() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.file("/", meta(0o644), b"").is_err());
        assert!(w.file("TRAILER!!!", meta(0o644), b"").is_err());
    }
}
