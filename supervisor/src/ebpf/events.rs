//! Ring buffer records as typed events.
//!
//! A record is `guard_common::Event<T>`: the header tells the type, the type tells the payload.
//! Parsing is a pure function over bytes so it is tested without a kernel.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use guard_common::event::{FLAG_KILLED, FLAG_TRUNCATED};
use guard_common::{EventHeader, EventType, ExecData, ExecEvent};

/// A record from the probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    Exec(ExecRecord),
}

impl ProbeEvent {
    pub fn header(&self) -> &EventHeader {
        match self {
            ProbeEvent::Exec(e) => &e.header,
        }
    }
}

/// A process in a watched cgroup executed a new image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    pub header: EventHeader,
    /// The path the kernel resolved for the exec (`bprm->filename`), possibly relative when the
    /// caller passed a relative path.
    pub filename: PathBuf,
    /// The filename did not fit in the record and was cut.
    pub truncated: bool,
    /// The probe killed the process.
    pub killed: bool,
    /// The pid before exec (differs from `header.pid` when a non-leader thread exec'd).
    pub old_pid: u32,
    /// The new image's `comm`.
    pub comm: String,
}

/// A record that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("record of {len} bytes is shorter than the {need} bytes of its type")]
    TooShort { len: usize, need: usize },
    #[error("record has unknown event type {0} (probe object newer than this supervisor?)")]
    UnknownType(u32),
}

/// Reads a `#[repr(C)]` plain-data value from the start of `bytes`.
fn read_pod<T: aya::Pod>(bytes: &[u8]) -> Result<T, EventError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(EventError::TooShort {
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: `bytes` holds at least size_of::<T>() bytes and `T: Pod` accepts any bit pattern;
    // read_unaligned because a byte slice promises no alignment.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// Parses one ring buffer record.
pub fn parse_record(bytes: &[u8]) -> Result<ProbeEvent, EventError> {
    let header: EventHeader = read_pod(bytes)?;
    match EventType::from_u32(header.etype) {
        Some(EventType::Exec) => {
            if bytes.len() < size_of::<ExecEvent>() {
                return Err(EventError::TooShort {
                    len: bytes.len(),
                    need: size_of::<ExecEvent>(),
                });
            }
            let data: ExecData = read_pod(&bytes[size_of::<EventHeader>()..])?;
            Ok(ProbeEvent::Exec(ExecRecord {
                header,
                filename: PathBuf::from(OsStr::from_bytes(data.filename_bytes())),
                truncated: header.flags & FLAG_TRUNCATED != 0,
                killed: header.flags & FLAG_KILLED != 0,
                old_pid: data.old_pid,
                comm: String::from_utf8_lossy(data.comm_bytes()).into_owned(),
            }))
        }
        None => Err(EventError::UnknownType(header.etype)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_common::{COMM_LEN, Event, FILENAME_LEN};

    fn exec_bytes(filename: &[u8], filename_len: u32, flags: u32) -> Vec<u8> {
        let mut data = ExecData {
            filename: [0; FILENAME_LEN],
            filename_len,
            old_pid: 41,
            comm: [0; COMM_LEN],
        };
        data.filename[..filename.len()].copy_from_slice(filename);
        data.comm[..4].copy_from_slice(b"true");
        let event: ExecEvent = Event {
            header: EventHeader {
                etype: EventType::Exec as u32,
                flags,
                ktime_ns: 7,
                cgroup_id: 1234,
                pid: 42,
                tid: 42,
                sandbox_id: 9,
            },
            data,
        };
        // SAFETY: ExecEvent is Pod: reading its bytes is defined.
        unsafe {
            std::slice::from_raw_parts((&raw const event).cast::<u8>(), size_of::<ExecEvent>())
        }
        .to_vec()
    }

    #[test]
    fn exec_record_round_trips() {
        // The probe's length includes the NUL, as bpf_probe_read_kernel_str returns it.
        let bytes = exec_bytes(b"/bin/true\0", 10, 0);
        let ProbeEvent::Exec(rec) = parse_record(&bytes).unwrap();
        assert_eq!(rec.filename, PathBuf::from("/bin/true"));
        assert_eq!(rec.comm, "true");
        assert_eq!(rec.header.pid, 42);
        assert_eq!(rec.header.cgroup_id, 1234);
        assert_eq!(rec.header.sandbox_id, 9);
        assert_eq!(rec.old_pid, 41);
        assert!(!rec.truncated && !rec.killed);
    }

    #[test]
    fn flags_are_decoded() {
        let bytes = exec_bytes(b"/x\0", 3, FLAG_TRUNCATED | FLAG_KILLED);
        let ProbeEvent::Exec(rec) = parse_record(&bytes).unwrap();
        assert!(rec.truncated && rec.killed);
    }

    #[test]
    fn a_length_past_the_buffer_is_clamped() {
        let bytes = exec_bytes(b"/a", u32::MAX, 0);
        let ProbeEvent::Exec(rec) = parse_record(&bytes).unwrap();
        assert_eq!(rec.filename, PathBuf::from("/a"));
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let bytes = exec_bytes(b"/bin/true\0", 10, 0);
        assert!(matches!(
            parse_record(&bytes[..20]),
            Err(EventError::TooShort { len: 20, need: 40 })
        ));
        assert!(matches!(
            parse_record(&bytes[..100]),
            Err(EventError::TooShort { len: 100, .. })
        ));
        let mut unknown = bytes.clone();
        unknown[..4].copy_from_slice(&999u32.to_ne_bytes());
        assert_eq!(parse_record(&unknown), Err(EventError::UnknownType(999)));
    }
}
