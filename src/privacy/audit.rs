//! The audit log, `audit.log`: one checksummed record per privacy operation (export; later
//! erase, purge and retention runs), appended and fsynced before the operation's answer is
//! handed out.
//!
//! Layout (byte map and rules in docs/FORMAT.md, "Audit log"): a 16-byte header (magic
//! `HRTHAUD\0`, version, CRC32C of both), then records back to back, each `length` (u32),
//! `crc` (CRC32C of the length bytes and the payload, u32), payload: `seq` (u64, 1 for the
//! first record, consecutive), `time_ms` (i64), `kind` (u8), `outcome` (u8), the device's
//! pseudonym (16 bytes, zero when the event is about no single device), `detail` (UTF-8, the
//! rest of the payload).
//!
//! Invariants:
//! - the file exists only with a complete, synced header (created as `audit.log.tmp`,
//!   fsynced, renamed, directory fsynced);
//! - a record is appended with one write and fsynced before [`AuditLog::record`] returns; a
//!   failed write is rolled back by truncation, and a failed fsync (or a failed rollback)
//!   poisons the log until the database is reopened;
//! - at open only a torn tail is cut (an incomplete record at the end, a complete record at
//!   the very end whose checksum fails, or zeros to the end); everything else (a bad header, a
//!   bad checksum with bytes after it, a wrong sequence number, an unknown kind) is a
//!   corruption error naming the file and offset; [`decode`] in strict mode (verify) reports
//!   a torn tail too;
//! - a record never holds a serial: the device is a keyed hash (see `privacy::pseudonym`),
//!   and the detail is written by hearth, never copied from an error message.

use std::mem::size_of;

use parking_lot::Mutex;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::files;
use crate::storage::{Storage, StorageFile};

/// The file's name in the database directory.
pub(crate) const NAME: &str = files::AUDIT;
/// File magic.
pub(crate) const MAGIC: [u8; 8] = *b"HRTHAUD\0";
/// Format version written and read.
pub(crate) const VERSION: u32 = 1;

const VERSION_OFFSET: usize = MAGIC.len();
const HEADER_CRC_OFFSET: usize = VERSION_OFFSET + size_of::<u32>();
/// Bytes of the file header.
pub(crate) const HEADER_LEN: usize = HEADER_CRC_OFFSET + size_of::<u32>();

const REC_CRC_OFFSET: usize = size_of::<u32>();
/// Bytes before a record's payload (length, crc).
pub(crate) const FRAME_LEN: usize = REC_CRC_OFFSET + size_of::<u32>();

const P_TIME: usize = size_of::<u64>();
const P_KIND: usize = P_TIME + size_of::<i64>();
const P_OUTCOME: usize = P_KIND + 1;
const P_DEVICE: usize = P_OUTCOME + 1;
/// Bytes of a device pseudonym.
pub(crate) const PSEUDONYM_LEN: usize = 16;
const P_DETAIL: usize = P_DEVICE + PSEUDONYM_LEN;
/// Smallest payload (an empty detail).
pub(crate) const MIN_PAYLOAD: usize = P_DETAIL;
/// Longest detail, in bytes.
pub(crate) const MAX_DETAIL: usize = 1024;
const MAX_PAYLOAD: usize = MIN_PAYLOAD + MAX_DETAIL;

const _: () = assert!(HEADER_LEN == 16);
const _: () = assert!(FRAME_LEN == 8);
const _: () = assert!(MIN_PAYLOAD == 34);

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditKind {
    /// Everything held about one device was exported (access, portability).
    Export,
    /// A device was erased.
    Erase,
    /// Erased rows were physically removed.
    Purge,
    /// A retention run dropped expired data.
    Retention,
}

impl AuditKind {
    fn code(self) -> u8 {
        match self {
            AuditKind::Export => 1,
            AuditKind::Erase => 2,
            AuditKind::Purge => 3,
            AuditKind::Retention => 4,
        }
    }

    fn from_code(c: u8) -> Option<AuditKind> {
        Some(match c {
            1 => AuditKind::Export,
            2 => AuditKind::Erase,
            3 => AuditKind::Purge,
            4 => AuditKind::Retention,
            _ => return None,
        })
    }

    /// The name in listings (`export`, `erase`, `purge`, `retention`).
    pub fn name(self) -> &'static str {
        match self {
            AuditKind::Export => "export",
            AuditKind::Erase => "erase",
            AuditKind::Purge => "purge",
            AuditKind::Retention => "retention",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Done.
    Ok,
    /// Refused or failed; nothing was handed out.
    Failed,
}

impl AuditOutcome {
    fn code(self) -> u8 {
        match self {
            AuditOutcome::Ok => 1,
            AuditOutcome::Failed => 2,
        }
    }

    fn from_code(c: u8) -> Option<AuditOutcome> {
        match c {
            1 => Some(AuditOutcome::Ok),
            2 => Some(AuditOutcome::Failed),
            _ => None,
        }
    }

    /// The name in listings (`ok`, `failed`).
    pub fn name(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Failed => "failed",
        }
    }
}

/// One record of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Sequence number: 1 for the first record, consecutive.
    pub seq: u64,
    /// When, ms since the Unix epoch (the clock of the machine that wrote it).
    pub time_ms: i64,
    /// What was done.
    pub kind: AuditKind,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The device's pseudonym (32 hex digits; see [`crate::Db::pseudonym`]), when the event
    /// is about one device. Never the serial.
    pub device: Option<String>,
    /// What hearth says about it (rows exported, the kind of failure); never a serial.
    pub detail: String,
}

/// Lower-case hex.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The file header.
pub(crate) fn header() -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// One framed record.
pub(crate) fn frame(
    seq: u64,
    time_ms: i64,
    kind: AuditKind,
    outcome: AuditOutcome,
    device: Option<[u8; PSEUDONYM_LEN]>,
    detail: &str,
) -> Vec<u8> {
    // Cut the detail at a character boundary within MAX_DETAIL bytes.
    let mut end = detail.len().min(MAX_DETAIL);
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    let detail = &detail.as_bytes()[..end];
    let len = MIN_PAYLOAD + detail.len();
    let mut out = Vec::with_capacity(FRAME_LEN + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&time_ms.to_le_bytes());
    out.push(kind.code());
    out.push(outcome.code());
    out.extend_from_slice(&device.unwrap_or([0; PSEUDONYM_LEN]));
    out.extend_from_slice(detail);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..4]), &out[FRAME_LEN..]);
    out[REC_CRC_OFFSET..FRAME_LEN].copy_from_slice(&crc.to_le_bytes());
    out
}

/// What [`decode`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Decoded {
    pub entries: Vec<AuditEntry>,
    /// Bytes of the header and the valid records.
    pub valid_len: u64,
    /// Bytes after them: a torn tail (0 when none).
    pub torn: u64,
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The offset of the first record at or after `from` that passes its checksum and carries a
/// sequence number of at least `seq`, if any.
fn valid_record_after(bytes: &[u8], from: usize, seq: u64) -> Option<usize> {
    (from..bytes.len()).find(|&o| {
        let rest = &bytes[o..];
        let Some(len) = le_u32(rest, 0).map(|l| l as usize) else {
            return false;
        };
        if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&len) {
            return false;
        }
        let Some(payload) = rest.get(FRAME_LEN..FRAME_LEN + len) else {
            return false;
        };
        le_u32(rest, REC_CRC_OFFSET)
            == Some(crc32c::crc32c_append(crc32c::crc32c(&rest[..4]), payload))
            && le_u64(payload, 0).is_some_and(|s| s >= seq)
    })
}

/// Decodes a whole audit log. A torn tail is returned in [`Decoded::torn`] (or reported as
/// corruption when `strict`); any other damage is a corruption error naming `file` and the
/// offset.
pub(crate) fn decode(file: &str, bytes: &[u8], strict: bool) -> Result<Decoded> {
    let corrupt = |at: usize, what: String| Error::corruption(file, at as u64, what);
    let head = bytes.get(..HEADER_LEN).ok_or_else(|| {
        corrupt(
            0,
            format!("file is {} bytes, shorter than its header", bytes.len()),
        )
    })?;
    if head.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(corrupt(0, "wrong magic bytes".into()));
    }
    let crc = le_u32(head, HEADER_CRC_OFFSET).unwrap_or(0);
    if crc32c::crc32c(&head[..HEADER_CRC_OFFSET]) != crc {
        return Err(corrupt(
            HEADER_CRC_OFFSET,
            "header checksum mismatch".into(),
        ));
    }
    let version = le_u32(head, VERSION_OFFSET).unwrap_or(0);
    if version != VERSION {
        return Err(corrupt(
            VERSION_OFFSET,
            format!("format version {version} is not supported (only {VERSION})"),
        ));
    }
    let mut out = Decoded::default();
    let mut at = HEADER_LEN;
    let torn = |at: usize, why: &str| -> Result<Decoded> {
        Err(corrupt(
            at,
            format!("torn record at the end of the log: {why}"),
        ))
    };
    while at < bytes.len() {
        let rest = &bytes[at..];
        let expected = out.entries.len() as u64 + 1;
        let tail = |out: &mut Decoded, why: &str| -> Result<()> {
            if strict {
                torn(at, why).map(|_| ())
            } else if let Some(o) = valid_record_after(bytes, at + 1, expected) {
                // A damaged length or checksum in the middle, not a torn write: the records
                // after it were acknowledged.
                Err(corrupt(
                    at,
                    format!("damaged record followed by a valid one at offset {o}"),
                ))
            } else {
                out.torn = rest.len() as u64;
                Ok(())
            }
        };
        if rest.iter().all(|&b| b == 0) {
            tail(&mut out, "zeros to the end of the file")?;
            break;
        }
        let Some(len) = le_u32(rest, 0) else {
            tail(&mut out, "incomplete record header")?;
            break;
        };
        let len = len as usize;
        if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&len) {
            return Err(corrupt(
                at,
                format!("record length {len} outside {MIN_PAYLOAD}..={MAX_PAYLOAD}"),
            ));
        }
        let Some(payload) = rest.get(FRAME_LEN..FRAME_LEN + len) else {
            tail(&mut out, "incomplete record")?;
            break;
        };
        let stored = le_u32(rest, REC_CRC_OFFSET).unwrap_or(0);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&rest[..4]), payload);
        if crc != stored {
            if FRAME_LEN + len == rest.len() {
                tail(&mut out, "checksum mismatch in the last record")?;
                break;
            }
            return Err(corrupt(at, "record checksum mismatch".into()));
        }
        let seq = le_u64(payload, 0).unwrap_or(0);
        if seq != expected {
            return Err(corrupt(
                at + FRAME_LEN,
                format!("sequence number {seq}, expected {expected}"),
            ));
        }
        let time_ms = le_u64(payload, P_TIME).unwrap_or(0) as i64;
        let kind = AuditKind::from_code(payload[P_KIND])
            .ok_or_else(|| corrupt(at + FRAME_LEN + P_KIND, "unknown kind".into()))?;
        let outcome = AuditOutcome::from_code(payload[P_OUTCOME])
            .ok_or_else(|| corrupt(at + FRAME_LEN + P_OUTCOME, "unknown outcome".into()))?;
        let device = &payload[P_DEVICE..P_DETAIL];
        let detail = std::str::from_utf8(&payload[P_DETAIL..])
            .map_err(|_| corrupt(at + FRAME_LEN + P_DETAIL, "detail is not UTF-8".into()))?;
        out.entries.push(AuditEntry {
            seq,
            time_ms,
            kind,
            outcome,
            device: device.iter().any(|&b| b != 0).then(|| hex(device)),
            detail: detail.to_string(),
        });
        at += FRAME_LEN + len;
    }
    out.valid_len = (bytes.len() as u64) - out.torn;
    Ok(out)
}

/// The append side of the audit log, one per open database.
#[derive(Debug)]
pub(crate) struct AuditLog {
    w: Mutex<Writer>,
}

struct Writer {
    /// Open for appending once the file exists and a record was written in this process.
    file: Option<Box<dyn StorageFile>>,
    exists: bool,
    len: u64,
    next_seq: u64,
    poisoned: Option<String>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("len", &self.len)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl AuditLog {
    /// Opens the log if it exists: checks every record and cuts a torn tail (truncate,
    /// fsync). Returns the log and the torn bytes cut.
    pub(crate) fn open(storage: &dyn Storage) -> Result<(AuditLog, u64)> {
        let names = storage
            .list()
            .map_err(|e| Error::io("list", storage.describe(), e))?;
        let mut w = Writer {
            file: None,
            exists: false,
            len: 0,
            next_seq: 1,
            poisoned: None,
        };
        let mut cut = 0;
        if names.iter().any(|n| n == NAME) {
            let d = {
                let bytes = files::read(storage, NAME)?;
                decode(NAME, &bytes, false)?
                // The mapping is dropped here, before any truncation.
            };
            if d.torn > 0 {
                let mut f = storage
                    .open_append(NAME)
                    .map_err(|e| Error::io("open", NAME, e))?;
                f.truncate(d.valid_len)
                    .map_err(|e| Error::io("truncate", NAME, e))?;
                f.sync_data().map_err(|e| Error::io("fsync", NAME, e))?;
                cut = d.torn;
            }
            w.exists = true;
            w.len = d.valid_len;
            w.next_seq = d.entries.len() as u64 + 1;
        }
        Ok((AuditLog { w: Mutex::new(w) }, cut))
    }

    /// Appends one record and makes it durable; creates the file first if needed.
    pub(crate) fn record(
        &self,
        storage: &dyn Storage,
        time_ms: i64,
        kind: AuditKind,
        outcome: AuditOutcome,
        device: Option<[u8; PSEUDONYM_LEN]>,
        detail: &str,
    ) -> Result<u64> {
        let mut w = self.w.lock();
        if let Some(p) = &w.poisoned {
            return Err(Error::Poisoned(format!("audit log: {p}")));
        }
        if !w.exists {
            files::write_atomic(storage, NAME, &header())?;
            w.exists = true;
            w.len = HEADER_LEN as u64;
        }
        if w.file.is_none() {
            let f = storage
                .open_append(NAME)
                .map_err(|e| Error::io("open", NAME, e))?;
            if f.len() != w.len {
                return Err(Error::corruption(
                    NAME,
                    f.len(),
                    format!("the file is {} bytes, {} expected", f.len(), w.len),
                ));
            }
            w.file = Some(f);
        }
        let seq = w.next_seq;
        let rec = frame(seq, time_ms, kind, outcome, device, detail);
        let len = w.len;
        let Some(f) = w.file.as_mut() else {
            return Err(Error::Closed);
        };
        if let Err(e) = f.append(&rec) {
            // Roll back whatever part of the record reached the file; if that fails too,
            // the file's end is unknown: refuse further records.
            let err = Error::io("write", NAME, e);
            if let Err(t) = f.truncate(len) {
                w.poisoned = Some(format!("a failed write could not be rolled back: {t}"));
            }
            return Err(err);
        }
        if let Err(e) = f.sync_data() {
            w.poisoned = Some(format!("fsync failed: {e}"));
            return Err(Error::io("fsync", NAME, e));
        }
        w.len += rec.len() as u64;
        w.next_seq += 1;
        Ok(seq)
    }
}

/// Reads every record (a torn tail is left out; the next open cuts it).
pub(crate) fn read_all(storage: &dyn Storage) -> Result<Vec<AuditEntry>> {
    let names = storage
        .list()
        .map_err(|e| Error::io("list", storage.describe(), e))?;
    if !names.iter().any(|n| n == NAME) {
        return Ok(Vec::new());
    }
    let bytes = files::read(storage, NAME)?;
    Ok(decode(NAME, &bytes, false)?.entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    fn log_of(n: u64) -> Vec<u8> {
        let mut b = header();
        for s in 1..=n {
            b.extend(frame(
                s,
                1_700_000_000_000 + s as i64,
                AuditKind::Export,
                AuditOutcome::Ok,
                Some([s as u8; PSEUDONYM_LEN]),
                "2 streams, 10 rows",
            ));
        }
        b
    }

    #[test]
    fn round_trip() {
        let b = log_of(3);
        let d = decode("a", &b, true).expect("valid");
        assert_eq!(d.entries.len(), 3);
        assert_eq!(d.torn, 0);
        assert_eq!(d.valid_len, b.len() as u64);
        assert_eq!(d.entries[2].seq, 3);
        assert_eq!(d.entries[2].device.as_deref(), Some(&*"03".repeat(16)));
        assert_eq!(d.entries[0].detail, "2 streams, 10 rows");
    }

    #[test]
    fn every_prefix_is_a_torn_tail_or_whole() {
        let b = log_of(2);
        let one = log_of(1).len();
        for cut in HEADER_LEN..b.len() {
            let d = decode("a", &b[..cut], false).expect("a prefix is a torn tail");
            let whole = if cut >= one { 1 } else { 0 };
            assert_eq!(d.entries.len(), whole, "cut at {cut}");
            assert_eq!(
                d.valid_len,
                if whole == 1 { one } else { HEADER_LEN } as u64
            );
            if cut != one && cut != HEADER_LEN {
                assert!(decode("a", &b[..cut], true).is_err(), "strict at {cut}");
            }
        }
        for cut in 0..HEADER_LEN {
            assert!(decode("a", &b[..cut], false)
                .expect_err("short")
                .is_corruption());
        }
    }

    #[test]
    fn every_flip_before_the_last_record_is_corruption() {
        let b = log_of(3);
        let last = log_of(2).len();
        for i in 0..last {
            let mut d = b.clone();
            d[i] ^= 0x04;
            let err = decode("a", &d, false).expect_err("flip caught");
            assert!(err.is_corruption(), "{err}");
        }
        // A flip in the last record is a torn tail at open (its bytes may never have been
        // written), and corruption for verify.
        for i in last..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x04;
            match decode("a", &d, false) {
                Ok(x) => assert_eq!(x.entries.len(), 2, "byte {i}"),
                Err(e) => assert!(e.is_corruption()),
            }
            assert!(decode("a", &d, true).is_err(), "strict, byte {i}");
        }
    }

    #[test]
    fn zeros_after_the_records_are_a_torn_tail() {
        let mut b = log_of(1);
        let n = b.len();
        b.extend([0u8; 40]);
        let d = decode("a", &b, false).expect("zeros");
        assert_eq!((d.entries.len(), d.valid_len, d.torn), (1, n as u64, 40));
        assert!(decode("a", &b, true).is_err());
    }

    #[test]
    fn a_wrong_sequence_number_is_corruption() {
        let mut b = header();
        b.extend(frame(1, 0, AuditKind::Erase, AuditOutcome::Ok, None, ""));
        b.extend(frame(3, 0, AuditKind::Erase, AuditOutcome::Ok, None, ""));
        let e = decode("a", &b, false).expect_err("gap");
        assert!(e.to_string().contains("sequence number 3"), "{e}");
    }

    #[test]
    fn a_long_detail_is_cut_at_a_character() {
        let long = "é".repeat(MAX_DETAIL);
        let mut b = header();
        b.extend(frame(
            1,
            0,
            AuditKind::Retention,
            AuditOutcome::Failed,
            None,
            &long,
        ));
        let d = decode("a", &b, true).expect("valid");
        assert_eq!(d.entries[0].detail.len(), MAX_DETAIL);
        assert_eq!(d.entries[0].device, None);
    }

    #[test]
    fn append_reopen_cut_torn_tail_and_continue() {
        let sim = SimStorage::new();
        let (log, cut) = AuditLog::open(&sim).expect("open");
        assert_eq!(cut, 0);
        for i in 0..3 {
            let seq = log
                .record(
                    &sim,
                    i,
                    AuditKind::Export,
                    AuditOutcome::Ok,
                    Some([7; 16]),
                    "x",
                )
                .expect("record");
            assert_eq!(seq, i as u64 + 1);
        }
        drop(log);
        // A torn record at the end: half of a fourth one.
        let mut f = sim.open_append(NAME).expect("open");
        let rec = frame(4, 4, AuditKind::Erase, AuditOutcome::Ok, None, "half");
        f.append(&rec[..rec.len() / 2]).expect("append");
        f.sync_data().expect("sync");
        drop(f);
        let (log, cut) = AuditLog::open(&sim).expect("reopen");
        assert_eq!(cut, (rec.len() / 2) as u64);
        assert_eq!(
            log.record(&sim, 9, AuditKind::Purge, AuditOutcome::Ok, None, "")
                .expect("record"),
            4
        );
        let all = read_all(&sim).expect("read");
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].kind, AuditKind::Purge);
        assert!(decode(NAME, &sim.read(NAME).expect("read"), true).is_ok());
    }
}
