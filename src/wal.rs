//! The write-ahead log: every batch is framed, appended and (by policy) fsynced here before it
//! reaches the memtable, and replayed from here after a crash.
//!
//! # Files
//!
//! The log is a sequence of files in the database directory named `wal-{first_lsn:020}.log`,
//! where `first_lsn` is the LSN of the first record the file holds (or will hold). LSNs start
//! at 1 and are consecutive across files: a file's first LSN is the previous file's last LSN
//! plus one. Every file starts with a 24-byte header:
//!
//! | offset | size | field                                   |
//! |-------:|-----:|-----------------------------------------|
//! | 0      | 8    | magic `b"HRTHWAL\0"`                    |
//! | 8      | 4    | format version, u32 LE (= 1)            |
//! | 12     | 8    | first LSN, u64 LE (equals the file name)|
//! | 20     | 4    | CRC32C of bytes 0..20, u32 LE           |
//!
//! Records follow back to back, each a 16-byte record header and the payload:
//!
//! | offset | size | field                                               |
//! |-------:|-----:|-----------------------------------------------------|
//! | 0      | 4    | payload length, u32 LE (at most [`MAX_PAYLOAD`])    |
//! | 4      | 8    | LSN, u64 LE                                         |
//! | 12     | 4    | CRC32C of the length bytes, LSN bytes and payload   |
//! | 16     | len  | payload                                             |
//!
//! # Recovery rules
//!
//! [`recover`] lists the `wal-*.log` files (other names are not the log's and are ignored),
//! sorts them by the first LSN in their names and:
//!
//! 1. **Skips obsolete files unread.** File *i* is skipped when file *i+1* exists and its first
//!    LSN is `<= checkpoint + 1`: all of file *i*'s records are then `<= checkpoint`. Such
//!    files are not even opened, so open time does not grow with flushed data (and damage in
//!    them goes unnoticed: they hold nothing that is still needed). The last file is never
//!    skipped.
//! 2. **Checks continuity.** The first file read must start at or before `checkpoint + 1`
//!    (else the records in between are missing); every later file must start exactly at the
//!    previous file's last LSN + 1; inside a file every record's LSN must be the previous + 1,
//!    starting at the header's first LSN, which must match the file name. Any violation is
//!    [`Error::Corruption`].
//! 3. **Verifies every record** it reads (CRC over length, LSN and payload), including the
//!    records `<= checkpoint` at the start of the first file read; those are checked but not
//!    applied. Records `> checkpoint` are passed to `apply` in LSN order.
//! 4. **Truncates a torn tail, and only a torn tail** (in [`RecoveryMode::TruncateTornTail`],
//!    the default). In the *last* file, a record at offset `o` is a tail candidate when
//!    (a) fewer than 16 bytes remain (partial record header), or (b) its length runs past the
//!    end of the file, or (c) it is complete, fails its CRC and ends exactly at the end of the
//!    file, or (d) every byte from `o` to the end of the file is zero (a file system that
//!    extended the file but never wrote the data). A candidate is accepted as torn only if
//!    no valid record (plausible next LSN, correct CRC, fits in the file) starts anywhere
//!    after `o`: a flipped length byte in the middle of the last file therefore is reported
//!    as corruption instead of silently cutting off the acknowledged records after it. The
//!    file is then truncated to `o` (through [`Storage::open_append`] +
//!    [`StorageFile::truncate`] + `sync_data`, after dropping the read mapping) and the cut is
//!    reported in [`Recovery::truncated`] as `(file, o, bytes cut)`.
//! 5. **Repairs a torn creation.** A last file of at most 24 bytes whose header does not
//!    verify (crash while [`Wal::rotate`] or [`Wal::open`] created it; it can hold no
//!    record) is rewritten with a valid header for the LSN in its name, synced, and reported
//!    in `truncated` as `(file, 0, old length)`. A valid header-only file is simply empty.
//! 6. **Everything else is [`Error::Corruption`]** naming the file and the offset of the bad
//!    record (or header field): a CRC mismatch with bytes after the record, a bad header, a
//!    wrong LSN, a gap between files, any damage in a file that is not the last one, and a
//!    log that ends before `checkpoint` (records the checkpoint claims were logged are gone).
//!    Nothing is ever skipped silently. [`RecoveryMode::Strict`] reports torn tails and torn
//!    creations as corruption too and never writes.
//!
//! If no log file exists, recovery returns `last_lsn = checkpoint`.
//!
//! # Durability and group commit
//!
//! [`Wal::append`] frames and writes a record with a single `append` call; it never fsyncs.
//! [`Wal::sync_to`] then makes the record durable according to [`SyncPolicy`]. Concurrent
//! callers share fsyncs: the WAL keeps `synced_lsn` (atomic) and a sync mutex; a caller whose
//! LSN is not yet synced takes the mutex, re-checks `synced_lsn` (someone else's fsync may
//! have covered it meanwhile), notes the last *written* LSN, fsyncs and publishes that LSN.
//! The fsync goes through a second handle to the current file (opened with `open_append`;
//! `fsync` flushes the file, not the descriptor), so appends do not wait for an fsync in
//! flight. [`Wal::rotate`] is the exception: it holds the append lock while it syncs the old
//! file, creates and syncs the new one and syncs the directory, so appends wait for a
//! rotation (rare: once per memtable).
//!
//! [`SyncPolicy::Interval`] is implemented lazily, without a background thread: `sync_to`
//! fsyncs when the last fsync is older than the interval. A record appended after the last
//! fsync therefore stays volatile until the next `sync_to` (or `sync_all`, `rotate`) that
//! finds the interval expired: if writes stop, the tail of the log stays unsynced until flush
//! or close. The bound "at most one interval of acknowledged writes lost" holds only while
//! writes keep coming.
//!
//! **Poisoning.** After any failed fsync (file or directory), or a failed write that could not
//! be rolled back, the WAL is poisoned: the failing call and every later `append`, `sync_to`,
//! `sync_all`, `rotate` and `remove_obsolete` return [`Error::Poisoned`] with the original
//! error's text. After a failed fsync the page cache can no longer be trusted; the database
//! must be reopened (which replays the log from disk).

// The database layer that calls into the log is written on another branch; until it lands
// only the tests and the fuzzing entry points use most of this module.
#![allow(dead_code)]

use std::io;
use std::mem::size_of;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, InputError, Result};
use crate::storage::{Storage, StorageFile};

/// Log sequence number: 1 for the first record ever written, consecutive afterwards.
pub(crate) type Lsn = u64;

/// File magic.
pub(crate) const MAGIC: &[u8; 8] = b"HRTHWAL\0";
/// Format version written and accepted.
pub(crate) const FORMAT_VERSION: u32 = 1;

const MAGIC_OFFSET: usize = 0;
const VERSION_OFFSET: usize = MAGIC_OFFSET + MAGIC.len();
const FIRST_LSN_OFFSET: usize = VERSION_OFFSET + size_of::<u32>();
const HEADER_CRC_OFFSET: usize = FIRST_LSN_OFFSET + size_of::<u64>();
/// Bytes of the file header.
pub(crate) const FILE_HEADER_LEN: usize = HEADER_CRC_OFFSET + size_of::<u32>();

const REC_LEN_OFFSET: usize = 0;
const REC_LSN_OFFSET: usize = REC_LEN_OFFSET + size_of::<u32>();
const REC_CRC_OFFSET: usize = REC_LSN_OFFSET + size_of::<u64>();
/// Bytes of a record header.
pub(crate) const RECORD_HEADER_LEN: usize = REC_CRC_OFFSET + size_of::<u32>();

/// Largest payload a record may carry; guards allocation and rejects absurd lengths.
pub(crate) const MAX_PAYLOAD: usize = 256 << 20;

const _: () = assert!(FILE_HEADER_LEN == 24);
const _: () = assert!(RECORD_HEADER_LEN == 16);
const _: () = assert!(MAX_PAYLOAD <= u32::MAX as usize);

const FILE_PREFIX: &str = "wal-";
const FILE_SUFFIX: &str = ".log";
const LSN_DIGITS: usize = 20;

/// Scratch buffers above this capacity are released after use.
const KEEP_SCRATCH: usize = 4 << 20;

/// Durability policy of appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// `sync_to` returns after the record is fsynced (group commit: concurrent writers share
    /// one fsync). Default.
    #[default]
    Always,
    /// fsync at most every `Duration`; a crash can lose the last interval of acknowledged
    /// writes. Implemented lazily in `sync_to` (no background thread): see the module docs.
    Interval(Duration),
    /// Never fsync on append (only on flush, rotation and close); for bulk loads and tests.
    Never,
}

/// What recovery does with a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum RecoveryMode {
    /// Truncate a torn record at the end of the last file (and repair a torn file creation);
    /// report every other damage as corruption. Default.
    #[default]
    TruncateTornTail,
    /// Report any damage, torn tail included, as corruption; never write.
    Strict,
}

/// What recovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// LSN of the last record in the log, or the checkpoint if the log holds none after it.
    pub last_lsn: Lsn,
    /// Number of records passed to `apply`.
    pub records_replayed: u64,
    /// `(file, offset, bytes cut)` when a torn tail was truncated or a torn creation repaired.
    pub truncated: Option<(String, u64, u64)>,
}

/// The name of the log file whose first record is `first_lsn`.
pub(crate) fn file_name(first_lsn: Lsn) -> String {
    format!(
        "{FILE_PREFIX}{first_lsn:0width$}{FILE_SUFFIX}",
        width = LSN_DIGITS
    )
}

/// The first LSN encoded in a log file name, or `None` if `name` is not a log file name.
pub(crate) fn parse_file_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.len() != LSN_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The log files, sorted by first LSN.
fn list_files(storage: &dyn Storage) -> Result<Vec<(Lsn, String)>> {
    let names = storage
        .list()
        .map_err(|e| Error::io("list", storage.describe(), e))?;
    let mut files: Vec<(Lsn, String)> = names
        .into_iter()
        .filter_map(|n| parse_file_name(&n).map(|lsn| (lsn, n)))
        .collect();
    files.sort();
    Ok(files)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The 24-byte file header for a file starting at `first_lsn`.
pub(crate) fn encode_header(first_lsn: Lsn) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[MAGIC_OFFSET..VERSION_OFFSET].copy_from_slice(MAGIC);
    h[VERSION_OFFSET..FIRST_LSN_OFFSET].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[FIRST_LSN_OFFSET..HEADER_CRC_OFFSET].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[..HEADER_CRC_OFFSET]);
    h[HEADER_CRC_OFFSET..FILE_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a file header and returns its first LSN.
fn decode_header(name: &str, data: &[u8]) -> Result<Lsn> {
    if data.len() < FILE_HEADER_LEN {
        return Err(Error::corruption(
            name,
            0,
            format!(
                "log file is {} bytes, shorter than its {FILE_HEADER_LEN}-byte header",
                data.len()
            ),
        ));
    }
    if &data[MAGIC_OFFSET..VERSION_OFFSET] != MAGIC {
        return Err(Error::corruption(
            name,
            MAGIC_OFFSET as u64,
            "bad log file magic",
        ));
    }
    let stored = le_u32(data, HEADER_CRC_OFFSET);
    let actual = crc32c::crc32c(&data[..HEADER_CRC_OFFSET]);
    if stored != actual {
        return Err(Error::corruption(
            name,
            0,
            format!("log file header checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"),
        ));
    }
    let version = le_u32(data, VERSION_OFFSET);
    if version != FORMAT_VERSION {
        return Err(Error::corruption(
            name,
            VERSION_OFFSET as u64,
            format!("unsupported log format version {version} (expected {FORMAT_VERSION})"),
        ));
    }
    Ok(le_u64(data, FIRST_LSN_OFFSET))
}

/// Frames one record into `buf` (cleared first).
pub(crate) fn encode_record(buf: &mut Vec<u8>, lsn: Lsn, payload: &[u8]) {
    buf.clear();
    buf.reserve(RECORD_HEADER_LEN + payload.len());
    // The caller checked payload.len() <= MAX_PAYLOAD <= u32::MAX.
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&lsn.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[..REC_CRC_OFFSET]), payload);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// One record as found at an offset.
enum Parsed<'a> {
    Valid {
        lsn: Lsn,
        payload: &'a [u8],
        end: usize,
    },
    Bad {
        why: String,
        /// True when this looks like the end of an interrupted append (rules 4a-c).
        tail_candidate: bool,
    },
}

fn parse_record(data: &[u8], pos: usize) -> Parsed<'_> {
    let rem = data.len() - pos;
    if rem < RECORD_HEADER_LEN {
        return Parsed::Bad {
            why: format!("incomplete record header ({rem} bytes before end of file)"),
            tail_candidate: true,
        };
    }
    let len = le_u32(data, pos + REC_LEN_OFFSET) as usize;
    let lsn = le_u64(data, pos + REC_LSN_OFFSET);
    let stored = le_u32(data, pos + REC_CRC_OFFSET);
    if len > rem - RECORD_HEADER_LEN {
        return Parsed::Bad {
            why: format!(
                "record payload of {len} bytes runs past the end of the file ({} bytes left)",
                rem - RECORD_HEADER_LEN
            ),
            tail_candidate: true,
        };
    }
    if len > MAX_PAYLOAD {
        return Parsed::Bad {
            why: format!("record payload of {len} bytes exceeds the maximum of {MAX_PAYLOAD}"),
            tail_candidate: false,
        };
    }
    let start = pos + RECORD_HEADER_LEN;
    let end = start + len;
    let payload = &data[start..end];
    let actual = crc32c::crc32c_append(crc32c::crc32c(&data[pos..pos + REC_CRC_OFFSET]), payload);
    if actual != stored {
        return Parsed::Bad {
            why: format!(
                "record checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
            ),
            tail_candidate: end == data.len(),
        };
    }
    Parsed::Valid { lsn, payload, end }
}

/// True when a valid record whose LSN is one of those that could follow `next` starts
/// anywhere after `pos`: then the damage at `pos` is not a torn tail.
fn valid_record_after(data: &[u8], pos: usize, next: Lsn) -> bool {
    let max_following = ((data.len() - pos) / RECORD_HEADER_LEN) as u64;
    let lo = next.saturating_add(1);
    let hi = next.saturating_add(max_following);
    let last_start = match data.len().checked_sub(RECORD_HEADER_LEN) {
        Some(s) => s,
        None => return false,
    };
    (pos + 1..=last_start).any(|q| {
        let lsn = le_u64(data, q + REC_LSN_OFFSET);
        if lsn < lo || lsn > hi {
            return false;
        }
        matches!(parse_record(data, q), Parsed::Valid { lsn: l, .. } if l == lsn)
    })
}

/// Outcome of scanning one file's records.
struct Scan {
    /// LSN of the last valid record, or `first_lsn - 1` if none.
    last_lsn: Lsn,
    /// Offset of a torn tail to truncate.
    torn_at: Option<usize>,
}

#[allow(clippy::too_many_arguments)]
fn scan_records(
    name: &str,
    data: &[u8],
    first_lsn: Lsn,
    is_last: bool,
    mode: RecoveryMode,
    checkpoint: Lsn,
    apply: &mut dyn FnMut(Lsn, &[u8]) -> Result<()>,
    replayed: &mut u64,
) -> Result<Scan> {
    let mut pos = FILE_HEADER_LEN;
    let mut next = first_lsn;
    while pos < data.len() {
        match parse_record(data, pos) {
            Parsed::Valid { lsn, payload, end } => {
                if lsn != next {
                    return Err(Error::corruption(
                        name,
                        pos as u64,
                        format!("record has LSN {lsn}, expected {next}"),
                    ));
                }
                if lsn > checkpoint {
                    // A corruption error from `apply` with no file names a payload offset:
                    // locate it in this file.
                    apply(lsn, payload).map_err(|e| match e {
                        Error::Corruption { file, offset, what } if file.is_empty() => {
                            Error::corruption(
                                name,
                                (pos + RECORD_HEADER_LEN) as u64 + offset,
                                format!("record {lsn}: {what}"),
                            )
                        }
                        other => other,
                    })?;
                    *replayed += 1;
                }
                next = next
                    .checked_add(1)
                    .ok_or_else(|| Error::corruption(name, pos as u64, "LSN overflows 64 bits"))?;
                pos = end;
            }
            Parsed::Bad {
                why,
                tail_candidate,
            } => {
                let candidate = tail_candidate || data[pos..].iter().all(|&b| b == 0);
                if is_last
                    && mode == RecoveryMode::TruncateTornTail
                    && candidate
                    && !valid_record_after(data, pos, next)
                {
                    return Ok(Scan {
                        last_lsn: next - 1,
                        torn_at: Some(pos),
                    });
                }
                let whose = if is_last {
                    ""
                } else {
                    " (not the last log file)"
                };
                return Err(Error::corruption(name, pos as u64, format!("{why}{whose}")));
            }
        }
    }
    Ok(Scan {
        last_lsn: next - 1,
        torn_at: None,
    })
}

/// Writes a fresh header-only file `name` starting at `first_lsn` and makes it durable.
fn write_fresh_file(
    storage: &dyn Storage,
    name: &str,
    first_lsn: Lsn,
) -> Result<Box<dyn StorageFile>> {
    let mut f = storage
        .create(name)
        .map_err(|e| Error::io("create", name, e))?;
    f.append(&encode_header(first_lsn))
        .map_err(|e| Error::io("write", name, e))?;
    f.sync_data().map_err(|e| Error::io("fsync", name, e))?;
    storage
        .sync_dir()
        .map_err(|e| Error::io("fsync directory", storage.describe(), e))?;
    Ok(f)
}

/// Replays every record with LSN > `checkpoint` in order with the default
/// [`RecoveryMode::TruncateTornTail`]. A [`Error::Corruption`] that `apply` returns with an
/// empty file name is taken to locate damage at an offset within the payload, and is
/// reported with this log file's name and the absolute offset. See the module docs for the
/// rules.
pub(crate) fn recover(
    storage: &dyn Storage,
    checkpoint: Lsn,
    apply: impl FnMut(Lsn, &[u8]) -> Result<()>,
) -> Result<Recovery> {
    recover_with_mode(storage, checkpoint, RecoveryMode::default(), apply)
}

/// [`recover`] with an explicit recovery mode.
pub(crate) fn recover_with_mode(
    storage: &dyn Storage,
    checkpoint: Lsn,
    mode: RecoveryMode,
    mut apply: impl FnMut(Lsn, &[u8]) -> Result<()>,
) -> Result<Recovery> {
    let files = list_files(storage)?;
    let mut out = Recovery {
        last_lsn: checkpoint,
        records_replayed: 0,
        truncated: None,
    };
    let Some(last_index) = files.len().checked_sub(1) else {
        return Ok(out);
    };
    let start = (0..files.len())
        .find(|&i| i == last_index || files[i + 1].0 > checkpoint.saturating_add(1))
        .unwrap_or(last_index);
    let mut expected: Option<Lsn> = None;
    let mut last_lsn = checkpoint;
    let mut end_offset = 0u64;
    for (i, (first, name)) in files.iter().enumerate().skip(start) {
        let first = *first;
        let is_last = i == last_index;
        if first == 0 {
            return Err(Error::corruption(
                name,
                0,
                "log file name says first LSN 0; LSNs start at 1",
            ));
        }
        match expected {
            None if first > checkpoint.saturating_add(1) => {
                return Err(Error::corruption(
                    name,
                    0,
                    format!(
                        "log starts at LSN {first} but the checkpoint is {checkpoint}: records {}..{} are missing",
                        checkpoint.saturating_add(1),
                        first - 1
                    ),
                ));
            }
            Some(e) if first != e => {
                return Err(Error::corruption(
                    name,
                    0,
                    format!(
                        "gap in the log: file starts at LSN {first}, the previous file ended at LSN {}",
                        e - 1
                    ),
                ));
            }
            _ => {}
        }
        let data = storage
            .read(name)
            .map_err(|e| Error::io("read", name.as_str(), e))?;

        // Rule 5: a torn creation of the last file.
        if is_last
            && mode == RecoveryMode::TruncateTornTail
            && data.len() <= FILE_HEADER_LEN
            && decode_header(name, &data).is_err()
        {
            let old_len = data.len() as u64;
            drop(data);
            write_fresh_file(storage, name, first)?;
            out.truncated = Some((name.clone(), 0, old_len));
            last_lsn = first - 1;
            end_offset = FILE_HEADER_LEN as u64;
            expected = Some(first);
            continue;
        }

        let header_first = decode_header(name, &data)?;
        if header_first != first {
            return Err(Error::corruption(
                name,
                FIRST_LSN_OFFSET as u64,
                format!("header says first LSN {header_first}, the file name says {first}"),
            ));
        }
        let scan = scan_records(
            name,
            &data,
            first,
            is_last,
            mode,
            checkpoint,
            &mut apply,
            &mut out.records_replayed,
        )?;
        last_lsn = scan.last_lsn;
        end_offset = data.len() as u64;
        if let Some(at) = scan.torn_at {
            let cut = (data.len() - at) as u64;
            drop(data); // unmap before truncating
            let mut f = storage
                .open_append(name)
                .map_err(|e| Error::io("open", name.as_str(), e))?;
            f.truncate(at as u64)
                .map_err(|e| Error::io("truncate", name.as_str(), e))?;
            f.sync_data()
                .map_err(|e| Error::io("fsync", name.as_str(), e))?;
            out.truncated = Some((name.clone(), at as u64, cut));
            end_offset = at as u64;
        }
        expected = Some(
            last_lsn
                .checked_add(1)
                .ok_or_else(|| Error::corruption(name, end_offset, "LSN overflows 64 bits"))?,
        );
    }
    if last_lsn < checkpoint {
        let name = &files[last_index].1;
        return Err(Error::corruption(
            name,
            end_offset,
            format!("log ends at LSN {last_lsn}, before the checkpoint {checkpoint}: logged records are missing"),
        ));
    }
    out.last_lsn = last_lsn;
    Ok(out)
}

/// A log file that is no longer appended to.
#[derive(Debug)]
struct ClosedFile {
    first_lsn: Lsn,
    name: String,
    size: u64,
}

/// State guarded by the append lock.
struct Inner {
    /// Handle appends go through.
    file: Box<dyn StorageFile>,
    /// Second handle to the same file, used (only) to fsync it without the append lock.
    sync_file: Arc<Mutex<Box<dyn StorageFile>>>,
    name: String,
    first_lsn: Lsn,
    /// Bytes in the current file.
    len: u64,
    /// LSN the next append gets.
    next_lsn: Lsn,
    /// Older files still on disk, sorted by first LSN.
    closed: Vec<ClosedFile>,
    scratch: Vec<u8>,
}

/// The write-ahead log, open for appending. `Send + Sync`.
pub(crate) struct Wal {
    storage: Arc<dyn Storage>,
    policy: SyncPolicy,
    /// The append lock. Lock order: `sync_lock` before `inner`.
    inner: Mutex<Inner>,
    /// Serializes fsyncs of the log (group commit leader election).
    sync_lock: Mutex<()>,
    /// Every record with LSN <= this is durable.
    synced_lsn: AtomicU64,
    /// When the last successful fsync finished.
    last_sync: Mutex<Instant>,
    poisoned: AtomicBool,
    poison_text: Mutex<Option<String>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("storage", &self.storage)
            .field("policy", &self.policy)
            .field("synced_lsn", &self.synced_lsn)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens the log for appending after [`recover`]: continues in the last file (whose valid
    /// length recovery established) or creates a new one; the next record gets `next_lsn`,
    /// which must be `recovery.last_lsn + 1`. The last file is fsynced once, so that records
    /// recovery replayed from the page cache are durable before new ones are acknowledged.
    pub(crate) fn open(
        storage: Arc<dyn Storage>,
        next_lsn: Lsn,
        policy: SyncPolicy,
    ) -> Result<Wal> {
        if next_lsn == 0 {
            return Err(InputError::Invalid("LSNs start at 1".to_string()).into());
        }
        let mut files = list_files(&*storage)?;
        let current = files.pop();
        let mut closed = Vec::with_capacity(files.len());
        for (first_lsn, name) in files {
            let size = storage
                .open_append(&name)
                .map_err(|e| Error::io("open", name.as_str(), e))?
                .len();
            closed.push(ClosedFile {
                first_lsn,
                name,
                size,
            });
        }
        let (file, name, first_lsn) = match current {
            Some((first, name)) if first <= next_lsn => {
                let data = storage
                    .read(&name)
                    .map_err(|e| Error::io("read", name.as_str(), e))?;
                let header_first = decode_header(&name, &data)?;
                if header_first != first {
                    return Err(Error::corruption(
                        &name,
                        FIRST_LSN_OFFSET as u64,
                        format!("header says first LSN {header_first}, the file name says {first}"),
                    ));
                }
                if data.len() == FILE_HEADER_LEN && first != next_lsn {
                    return Err(Error::corruption(
                        &name,
                        FILE_HEADER_LEN as u64,
                        format!(
                            "log file holds no record but the next LSN is {next_lsn}, not {first}"
                        ),
                    ));
                }
                drop(data);
                let mut f = storage
                    .open_append(&name)
                    .map_err(|e| Error::io("open", name.as_str(), e))?;
                f.sync_data()
                    .map_err(|e| Error::io("fsync", name.as_str(), e))?;
                (f, name, first)
            }
            Some((first, name)) => {
                return Err(Error::corruption(
                    &name,
                    0,
                    format!("log file starts at LSN {first}, after the next LSN {next_lsn}"),
                ));
            }
            None => {
                let name = file_name(next_lsn);
                let f = write_fresh_file(&*storage, &name, next_lsn)?;
                (f, name, next_lsn)
            }
        };
        let sync_file = storage
            .open_append(&name)
            .map_err(|e| Error::io("open", name.as_str(), e))?;
        let len = file.len();
        Ok(Wal {
            policy,
            inner: Mutex::new(Inner {
                file,
                sync_file: Arc::new(Mutex::new(sync_file)),
                name,
                first_lsn,
                len,
                next_lsn,
                closed,
                scratch: Vec::new(),
            }),
            storage,
            sync_lock: Mutex::new(()),
            synced_lsn: AtomicU64::new(next_lsn - 1),
            last_sync: Mutex::new(Instant::now()),
            poisoned: AtomicBool::new(false),
            poison_text: Mutex::new(None),
        })
    }

    fn check_poison(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            let text = self
                .poison_text
                .lock()
                .clone()
                .unwrap_or_else(|| "write-ahead log poisoned".to_string());
            return Err(Error::Poisoned(text));
        }
        Ok(())
    }

    /// Poisons the log (keeping the first reason) and returns the error to report.
    fn poison(&self, op: &str, file: &str, err: &io::Error) -> Error {
        let mut text = self.poison_text.lock();
        if text.is_none() {
            *text = Some(format!("write-ahead log {op} on {file} failed: {err}"));
        }
        self.poisoned.store(true, Ordering::Release);
        Error::Poisoned(text.clone().unwrap_or_default())
    }

    /// Frames and writes one record; returns its LSN. Does not fsync (see [`Wal::sync_to`]).
    /// A failed write is rolled back by truncating the file to its previous length; if that
    /// fails too the log is poisoned.
    pub(crate) fn append(&self, payload: &[u8]) -> Result<Lsn> {
        self.check_poison()?;
        if payload.len() > MAX_PAYLOAD {
            return Err(InputError::Invalid(format!(
                "log record of {} bytes exceeds the maximum of {MAX_PAYLOAD}",
                payload.len()
            ))
            .into());
        }
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        self.check_poison()?;
        let lsn = inner.next_lsn;
        let next = lsn
            .checked_add(1)
            .ok_or_else(|| Error::Input(InputError::Invalid("LSN space exhausted".to_string())))?;
        encode_record(&mut inner.scratch, lsn, payload);
        let res = inner.file.append(&inner.scratch);
        let written = inner.scratch.len() as u64;
        if inner.scratch.capacity() > KEEP_SCRATCH {
            inner.scratch = Vec::new();
        }
        if let Err(e) = res {
            return match inner.file.truncate(inner.len) {
                Ok(()) => Err(Error::io("append", inner.name.as_str(), e)),
                Err(e2) => Err(self.poison(
                    "rollback of a failed append",
                    &inner.name,
                    &io::Error::new(e2.kind(), format!("{e2} (after append error: {e})")),
                )),
            };
        }
        inner.len += written;
        inner.next_lsn = next;
        Ok(lsn)
    }

    /// Makes every record up to `lsn` durable according to the policy: `Always` fsyncs now
    /// (sharing the fsync with concurrent callers), `Interval(d)` fsyncs only if the last
    /// fsync is older than `d`, `Never` does nothing.
    pub(crate) fn sync_to(&self, lsn: Lsn) -> Result<()> {
        self.check_poison()?;
        match self.policy {
            SyncPolicy::Never => Ok(()),
            SyncPolicy::Always => self.group_sync(lsn),
            SyncPolicy::Interval(d) => {
                if self.synced_lsn.load(Ordering::Acquire) >= lsn {
                    return Ok(());
                }
                if self.last_sync.lock().elapsed() < d {
                    return Ok(());
                }
                self.group_sync(lsn)
            }
        }
    }

    /// Returns once every record `<= lsn` is durable, whatever the policy (erasures).
    pub(crate) fn sync_forced(&self, lsn: Lsn) -> Result<()> {
        self.check_poison()?;
        self.group_sync(lsn)
    }

    /// fsyncs everything written so far regardless of policy (flush and close).
    pub(crate) fn sync_all(&self) -> Result<()> {
        self.check_poison()?;
        let written = self.last_lsn();
        self.group_sync(written)
    }

    /// Group commit: returns once every record `<= lsn` is durable, fsyncing at most once
    /// for all the callers that queued behind the same fsync.
    fn group_sync(&self, lsn: Lsn) -> Result<()> {
        if self.synced_lsn.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let _leader = self.sync_lock.lock();
        self.check_poison()?;
        if self.synced_lsn.load(Ordering::Acquire) >= lsn {
            return Ok(()); // someone else's fsync covered us while we waited
        }
        // Everything appended so far is in the current file: older files were synced by
        // `rotate` before it switched (and rotation holds `sync_lock`).
        let (upto, handle, name) = {
            let inner = self.inner.lock();
            (
                inner.next_lsn - 1,
                Arc::clone(&inner.sync_file),
                inner.name.clone(),
            )
        };
        let res = handle.lock().sync_data();
        if let Err(e) = res {
            return Err(self.poison("fsync", &name, &e));
        }
        *self.last_sync.lock() = Instant::now();
        self.synced_lsn.fetch_max(upto, Ordering::AcqRel);
        Ok(())
    }

    /// Closes the current file and starts a new one whose first LSN is the next LSN, so
    /// that whole files become obsolete once the frozen memtable is flushed. Syncs the old
    /// file (so there can be no gap at the boundary after a crash), creates and syncs the
    /// new one and syncs the directory. Appends wait while it runs. If the current file
    /// holds no record yet it already is such a file and nothing is done. Any failure
    /// poisons the log (a half-created file would otherwise break the LSN chain).
    pub(crate) fn rotate(&self) -> Result<()> {
        self.check_poison()?;
        let _leader = self.sync_lock.lock();
        self.check_poison()?;
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        if inner.first_lsn == inner.next_lsn {
            return Ok(());
        }
        if let Err(e) = inner.sync_file.lock().sync_data() {
            return Err(self.poison("fsync", &inner.name, &e));
        }
        *self.last_sync.lock() = Instant::now();
        self.synced_lsn
            .fetch_max(inner.next_lsn - 1, Ordering::AcqRel);

        let first = inner.next_lsn;
        let name = file_name(first);
        let storage = &*self.storage;
        let mut file = storage
            .create(&name)
            .map_err(|e| self.poison("create", &name, &e))?;
        file.append(&encode_header(first))
            .map_err(|e| self.poison("write", &name, &e))?;
        file.sync_data()
            .map_err(|e| self.poison("fsync", &name, &e))?;
        storage
            .sync_dir()
            .map_err(|e| self.poison("directory fsync", &storage.describe(), &e))?;
        let sync_file = storage
            .open_append(&name)
            .map_err(|e| self.poison("open", &name, &e))?;

        let old_name = std::mem::replace(&mut inner.name, name);
        inner.closed.push(ClosedFile {
            first_lsn: inner.first_lsn,
            name: old_name,
            size: inner.len,
        });
        inner.len = file.len();
        inner.file = file;
        inner.sync_file = Arc::new(Mutex::new(sync_file));
        inner.first_lsn = first;
        Ok(())
    }

    /// Removes the log files all of whose records have LSN <= `checkpoint` (a file is
    /// obsolete when the next file's first LSN is <= `checkpoint + 1`), never the current
    /// file, then syncs the directory. A file whose removal fails stays listed.
    pub(crate) fn remove_obsolete(&self, checkpoint: Lsn) -> Result<()> {
        self.check_poison()?;
        let doomed: Vec<ClosedFile> = {
            let mut inner = self.inner.lock();
            let current_first = inner.first_lsn;
            let limit = checkpoint.saturating_add(1);
            let mut keep_from = 0;
            for i in 0..inner.closed.len() {
                let next_first = inner
                    .closed
                    .get(i + 1)
                    .map_or(current_first, |c| c.first_lsn);
                if next_first <= limit {
                    keep_from = i + 1;
                } else {
                    break;
                }
            }
            inner.closed.drain(..keep_from).collect()
        };
        if doomed.is_empty() {
            return Ok(());
        }
        let mut failed = Vec::new();
        let mut first_err = None;
        for f in doomed {
            if let Err(e) = self.storage.remove(&f.name) {
                if e.kind() != io::ErrorKind::NotFound {
                    first_err.get_or_insert(Error::io("remove", f.name.as_str(), e));
                    failed.push(f);
                }
            }
        }
        if !failed.is_empty() {
            let mut inner = self.inner.lock();
            failed.append(&mut inner.closed);
            inner.closed = failed;
        }
        if let Err(e) = self.storage.sync_dir() {
            return Err(self.poison("directory fsync", &self.storage.describe(), &e));
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Total bytes of the log files.
    pub(crate) fn size_bytes(&self) -> u64 {
        let inner = self.inner.lock();
        inner.len + inner.closed.iter().map(|c| c.size).sum::<u64>()
    }

    /// LSN of the last record appended (0 if none ever was).
    pub(crate) fn last_lsn(&self) -> Lsn {
        self.inner.lock().next_lsn - 1
    }

    /// LSN up to which records are known durable.
    pub(crate) fn synced_lsn(&self) -> Lsn {
        self.synced_lsn.load(Ordering::Acquire)
    }

    /// True after a failed fsync.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Names of the log files, oldest first (for tests and `hearth info`).
    pub(crate) fn file_names(&self) -> Vec<String> {
        let inner = self.inner.lock();
        let mut v: Vec<String> = inner.closed.iter().map(|c| c.name.clone()).collect();
        v.push(inner.name.clone());
        v
    }
}

#[cfg(test)]
mod tests;
