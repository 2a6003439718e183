//! Retention: a period per stream after which whole time windows are dropped.
//!
//! This module owns
//! - the **policy file** `RETENTION` (metadata envelope, magic `HRTHRET\0`; payload below and
//!   in docs/FORMAT.md): per stream, how long its rows are kept;
//! - [`Db::set_retention`], [`Db::clear_retention`], [`Db::retention`]: the policies, changed
//!   crash-safely (write temp, fsync, rename, fsync the directory);
//! - [`Db::apply_retention`]: one **run**: every (stream, window) whose whole window ends at
//!   or before `now − keep` is dropped, segments and rollup files, by publishing a manifest
//!   without them; the fleet rollups are then recomputed from what remains; the run is
//!   recorded in the audit log.
//!
//! Invariants:
//! - a window is dropped whole or not at all, and only once all of it is older than the
//!   cutoff: a row is kept at least `keep`, and at most `keep` + the stream's window;
//! - the manifest's publication is the commit point: a crash before it leaves every row, a
//!   crash after it none of the dropped windows' (files the manifest no longer names are
//!   removed at the next open if the run could not remove them);
//! - rows of expired windows still in memtables are flushed first, so they go with their
//!   window; a row older than the cutoff that arrives later is accepted like any row and
//!   dropped by the next run;
//! - after a run, the fleet rollups equal the rollups of the remaining rows (a rollup answer
//!   still equals a scan): fleet rollups do not outlive the raw data in this version;
//! - every run, dropping something or nothing, failed or not, appends one audit record
//!   (kind `retention`, no device) once its outcome is known; a run that fails before the
//!   commit point changes no row (one that fails after it poisons the database, and the next
//!   open completes it).
//!
//! Payload of `RETENTION` (version 1), varints as in the other binary payloads:
//!
//! | field | encoding |
//! |---|---|
//! | policy count | varint |
//! | per policy, ascending stream index | stream index (varint, strictly ascending, below the schema's stream count), keep in ms (varint, 1 ..= 2^63 − 1) |
//!
//! Every varint in its shortest form; nothing may follow.

use serde::Serialize;

use crate::db::Db;
use crate::error::{Error, InputError, Result};
use crate::files::{self, varint};
use crate::privacy::audit::{AuditKind, AuditOutcome};
use crate::schema::Schema;
use crate::storage::Storage;

/// The policy file's name.
pub(crate) const NAME: &str = files::RETENTION;
/// Its envelope magic.
const MAGIC: [u8; 8] = files::RETENTION_MAGIC;
/// Version of its payload.
const VERSION: u32 = 1;
/// The audit log's limit on a record's detail, in bytes.
const DETAIL_MAX: usize = 1024;

/// One stream's retention period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    /// Stream name.
    pub stream: String,
    /// Rows are kept at least this long (ms) before their window may be dropped.
    pub keep_ms: i64,
    /// The stream's time window (ms): the unit in which rows are dropped.
    pub window_ms: i64,
}

/// What one retention run dropped from one stream with a policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StreamRetention {
    /// Stream name.
    pub stream: String,
    /// The stream's retention period (ms).
    pub keep_ms: i64,
    /// `now − keep`: windows ending at or before this instant (ms) were dropped.
    pub cutoff_ms: i64,
    /// Time windows dropped.
    pub windows: u64,
    /// Segment files dropped (each with its rollup file when the stream keeps rollups).
    pub segments: u64,
    /// Rows in those segments.
    pub rows: u64,
    /// Bytes of those segment and rollup files.
    pub bytes: u64,
}

/// What a retention run ([`Db::apply_retention`]) dropped, per stream with a policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RetentionReport {
    /// The instant the run applied the policies at (ms).
    pub now_ms: i64,
    /// One entry per stream with a policy, in schema order.
    pub streams: Vec<StreamRetention>,
}

impl RetentionReport {
    /// Rows dropped in all streams.
    pub fn rows(&self) -> u64 {
        self.streams.iter().map(|s| s.rows).sum()
    }

    /// Windows dropped in all streams.
    pub fn windows(&self) -> u64 {
        self.streams.iter().map(|s| s.windows).sum()
    }

    /// The audit record's detail: counts per stream, never a serial.
    fn detail(&self) -> String {
        if self.streams.is_empty() {
            return "no retention policy".into();
        }
        let mut out = String::new();
        for s in &self.streams {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&format!(
                "{}: keep {} ms, {} windows, {} segments, {} rows, {} bytes dropped",
                s.stream, s.keep_ms, s.windows, s.segments, s.rows, s.bytes
            ));
        }
        truncate(out)
    }
}

/// Cuts a detail to the audit log's limit, at a character boundary.
fn truncate(mut s: String) -> String {
    if s.len() > DETAIL_MAX {
        let mut end = DETAIL_MAX - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// Encodes policies (stream index, keep ms), which must be ascending by stream, as the
/// payload of `RETENTION`.
pub(crate) fn encode_payload(policies: &[(u16, i64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + policies.len() * 10);
    varint::put_u64(&mut out, policies.len() as u64);
    for &(stream, keep) in policies {
        varint::put_u64(&mut out, u64::from(stream));
        varint::put_u64(&mut out, keep.max(1) as u64);
    }
    out
}

/// The whole file: envelope around [`encode_payload`].
pub(crate) fn encode(policies: &[(u16, i64)]) -> Vec<u8> {
    files::encode_envelope(&MAGIC, VERSION, &encode_payload(policies))
}

/// Decodes a `RETENTION` payload: policies ascending by stream index, each keep ≥ 1 ms.
/// Errors name `file` and the offset (in the file) of the bad field.
pub(crate) fn decode_payload(file: &str, payload: &[u8]) -> Result<Vec<(u16, i64)>> {
    let base = files::ENVELOPE_HEADER as u64;
    let mut r = varint::Reader::new(payload);
    let bad = |at: usize, what: &str| Error::corruption(file, base + at as u64, what.to_string());
    // A varint in its shortest form only: one file, one encoding.
    let read = |r: &mut varint::Reader<'_>| -> Option<u64> {
        let at = r.pos();
        let v = r.u64()?;
        let len = (64 - v.leading_zeros()).div_ceil(7).max(1) as usize;
        (r.pos() - at == len).then_some(v)
    };
    let count = read(&mut r).ok_or_else(|| bad(0, "policy count missing or malformed"))?;
    // Each policy takes at least two bytes: a count beyond that is damage, not an allocation.
    if count > payload.len() as u64 / 2 {
        return Err(bad(0, "policy count larger than the file"));
    }
    let mut out: Vec<(u16, i64)> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = r.pos();
        let stream = read(&mut r)
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| bad(at, "stream index missing or malformed"))?;
        if out.last().is_some_and(|&(prev, _)| prev >= stream) {
            return Err(bad(at, "stream indexes not strictly ascending"));
        }
        let at = r.pos();
        let keep = read(&mut r)
            .and_then(|k| i64::try_from(k).ok())
            .filter(|&k| k >= 1)
            .ok_or_else(|| bad(at, "retention period missing, zero or too large"))?;
        out.push((stream, keep));
    }
    if !r.is_empty() {
        return Err(bad(r.pos(), "bytes after the last policy"));
    }
    Ok(out)
}

/// Decodes a whole `RETENTION` file.
pub(crate) fn decode(file: &str, bytes: &[u8]) -> Result<Vec<(u16, i64)>> {
    let (_, payload) = files::decode_envelope(file, bytes, &MAGIC, VERSION)?;
    decode_payload(file, payload)
}

/// The stored policies (none when the file does not exist), each checked against the
/// schema's streams. Returns them and the file's size.
fn load(storage: &dyn Storage, streams: usize) -> Result<(Vec<(u16, i64)>, u64)> {
    let names = storage
        .list()
        .map_err(|e| Error::io("list", storage.describe(), e))?;
    if !names.iter().any(|n| n == NAME) {
        return Ok((Vec::new(), 0));
    }
    let bytes = files::read(storage, NAME)?;
    let policies = decode(NAME, &bytes)?;
    if let Some(&(s, _)) = policies.iter().find(|&&(s, _)| usize::from(s) >= streams) {
        return Err(Error::corruption(
            NAME,
            files::ENVELOPE_HEADER as u64,
            format!("a policy names stream {s}; the schema has {streams} streams"),
        ));
    }
    Ok((policies, bytes.len() as u64))
}

/// For `verify`: checks `RETENTION` against the schema; its name and size when present.
pub(crate) fn verify(storage: &dyn Storage) -> Result<Option<(String, u64)>> {
    let names = storage
        .list()
        .map_err(|e| Error::io("list", storage.describe(), e))?;
    if !names.iter().any(|n| n == NAME) {
        return Ok(None);
    }
    let (schema, _) = crate::db::load_schema(storage)?;
    let (_, size) = load(storage, schema.streams.len())?;
    Ok(Some((NAME.to_string(), size)))
}

/// The end (exclusive, ms) of window `window` of a stream with windows of `window_ms`, as
/// an `i128` (no overflow at the edges of `i64`).
fn window_end(window: i64, window_ms: i64) -> i128 {
    (i128::from(window) + 1) * i128::from(window_ms)
}

fn stream_index(schema: &Schema, stream: &str) -> Result<u16> {
    schema
        .stream_index(stream)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| InputError::UnknownStream(stream.to_string()).into())
}

impl Db {
    /// The retention policies, in schema order (none until one is set). A damaged
    /// `RETENTION` file is a corruption error naming it.
    pub fn retention(&self) -> Result<Vec<RetentionPolicy>> {
        let schema = self.schema();
        let (policies, _) = load(self.storage(), schema.streams.len())?;
        Ok(policies
            .into_iter()
            .filter_map(|(s, keep_ms)| {
                schema.streams.get(usize::from(s)).map(|d| RetentionPolicy {
                    stream: d.name.clone(),
                    keep_ms,
                    window_ms: d.window_ms,
                })
            })
            .collect())
    }

    /// Sets the retention period of `stream` (ms, at least 1), durably when it returns. It
    /// drops nothing by itself: [`Db::apply_retention`] does.
    pub fn set_retention(&self, stream: &str, keep_ms: i64) -> Result<()> {
        if keep_ms < 1 {
            return Err(InputError::Invalid(format!(
                "a retention period must be at least 1 ms; got {keep_ms} ms for stream '{stream}'"
            ))
            .into());
        }
        self.change_policy(stream, Some(keep_ms)).map(|_| ())
    }

    /// Removes the retention period of `stream`; false when it had none.
    pub fn clear_retention(&self, stream: &str) -> Result<bool> {
        self.change_policy(stream, None)
    }

    fn change_policy(&self, stream: &str, keep_ms: Option<i64>) -> Result<bool> {
        let s = stream_index(self.schema(), stream)?;
        // Serialised with runs and other changes (a read-modify-write of the file).
        let _held = self.maintenance_guard()?;
        let (mut policies, _) = load(self.storage(), self.schema().streams.len())?;
        let had = policies.iter().any(|&(x, _)| x == s);
        policies.retain(|&(x, _)| x != s);
        if let Some(k) = keep_ms {
            policies.push((s, k));
            policies.sort_unstable();
        } else if !had {
            return Ok(false);
        }
        files::write_atomic(self.storage(), NAME, &encode(&policies))?;
        Ok(had)
    }

    /// One retention run at `now_ms`: for each stream with a policy, drops every time window
    /// that ends at or before `now_ms − keep` (its segments and their rollup files, device
    /// week cells included), then recomputes the fleet rollups from the remaining data. Rows
    /// of those windows still in memory are flushed first and dropped with them. The run is
    /// recorded in the audit log (failed runs too) before this returns.
    ///
    /// Crash-safe: a manifest without the dropped segments is published (the commit point),
    /// then the files are removed; a crash leaves the database before or after the run.
    pub fn apply_retention(&self, now_ms: i64) -> Result<RetentionReport> {
        match self.run_retention(now_ms) {
            Ok(report) => {
                self.audit(
                    AuditKind::Retention,
                    None,
                    AuditOutcome::Ok,
                    &report.detail(),
                )?;
                Ok(report)
            }
            Err(err) => {
                // The run's error is the one to report (see `export_device`).
                let _ = self.audit(
                    AuditKind::Retention,
                    None,
                    AuditOutcome::Failed,
                    super::error_class(&err),
                );
                Err(err)
            }
        }
    }

    fn run_retention(&self, now_ms: i64) -> Result<RetentionReport> {
        let schema = self.schema();
        let held = self.maintenance_guard()?;
        let (policies, _) = load(self.storage(), schema.streams.len())?;
        let mut report = RetentionReport {
            now_ms,
            streams: Vec::with_capacity(policies.len()),
        };
        // Per stream: the cutoff, when it has a policy.
        let mut cutoffs: Vec<Option<i64>> = vec![None; schema.streams.len()];
        for &(s, keep_ms) in &policies {
            let Some(def) = schema.streams.get(usize::from(s)) else {
                continue;
            };
            let cutoff_ms = now_ms.saturating_sub(keep_ms);
            cutoffs[usize::from(s)] = Some(cutoff_ms);
            report.streams.push(StreamRetention {
                stream: def.name.clone(),
                keep_ms,
                cutoff_ms,
                ..StreamRetention::default()
            });
        }
        if policies.is_empty() {
            return Ok(report);
        }
        let expired = |stream: u16, window: i64| -> bool {
            match (
                cutoffs.get(usize::from(stream)).copied().flatten(),
                schema.streams.get(usize::from(stream)),
            ) {
                (Some(cutoff), Some(def)) => {
                    window_end(window, def.window_ms) <= i128::from(cutoff)
                }
                _ => false,
            }
        };
        for d in self.drop_windows(&held, &expired)? {
            let Some(name) = schema.streams.get(usize::from(d.stream)).map(|s| &s.name) else {
                continue;
            };
            if let Some(s) = report.streams.iter_mut().find(|s| &s.stream == name) {
                s.windows += 1;
                s.segments += d.segments;
                s.rows += d.rows;
                s.bytes += d.bytes;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip() {
        for p in [
            vec![],
            vec![(0u16, 1i64)],
            vec![(0, 400 * 86_400_000), (1, 30 * 86_400_000)],
            vec![(3, i64::MAX), (65_535, 1)],
        ] {
            let bytes = encode(&p);
            assert_eq!(decode(NAME, &bytes).expect("decodes"), p);
        }
    }

    #[test]
    fn the_file_is_as_documented() {
        // docs/FORMAT.md, "RETENTION payload": cycles (stream 0) kept 400 days.
        let b = encode(&[(0, 400 * 86_400_000)]);
        let mut want = b"HRTHRET\0".to_vec();
        want.extend([1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        want.extend([0x80, 0x80, 0xbf, 0xdf, 0x80, 0x01]);
        assert_eq!(&b[..28], &want[..]);
        assert_eq!(b[28..], crc32c::crc32c(&want).to_le_bytes());
    }

    #[test]
    fn every_flip_and_cut_is_corruption_naming_the_file() {
        let bytes = encode(&[(0, 400 * 86_400_000), (1, 7 * 86_400_000)]);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                match decode(NAME, &b) {
                    Err(Error::Corruption { file, .. }) => assert_eq!(file, NAME),
                    other => panic!("flip of bit {bit} at {i}: {other:?}"),
                }
            }
        }
        for n in 0..bytes.len() {
            assert!(decode(NAME, &bytes[..n]).is_err(), "cut at {n}");
        }
    }

    fn payload_error(payload: &[u8]) -> (u64, String) {
        let file = files::encode_envelope(&MAGIC, VERSION, payload);
        match decode(NAME, &file) {
            Err(Error::Corruption { file, offset, what }) => {
                assert_eq!(file, NAME);
                (offset, what)
            }
            other => panic!("{payload:?} accepted: {other:?}"),
        }
    }

    #[test]
    fn malformed_payloads_are_refused_at_their_offset() {
        let h = files::ENVELOPE_HEADER as u64;
        // Empty payload: no count.
        assert_eq!(payload_error(&[]).0, h);
        // A count the bytes cannot hold.
        assert!(payload_error(&[100, 0, 1]).1.contains("count"));
        // Stream indexes not ascending, or repeated.
        assert_eq!(payload_error(&[2, 1, 5, 0, 5]).0, h + 3);
        assert_eq!(payload_error(&[2, 1, 5, 1, 5]).0, h + 3);
        // A zero period.
        assert_eq!(payload_error(&[1, 0, 0]).0, h + 2);
        // A period beyond i64.
        let mut p = vec![1, 0];
        varint::put_u64(&mut p, u64::MAX);
        assert!(payload_error(&p).1.contains("period"));
        // A stream index beyond u16.
        let mut p = vec![1];
        varint::put_u64(&mut p, 70_000);
        p.push(1);
        assert!(payload_error(&p).1.contains("stream index"));
        // Trailing bytes.
        assert_eq!(payload_error(&[1, 0, 1, 9]).0, h + 3);
        // A varint longer than it needs to be (0 as two bytes).
        assert_eq!(payload_error(&[1, 0x80, 0, 1]).0, h + 1);
        // A newer version is refused, not guessed at.
        let file = files::encode_envelope(&MAGIC, VERSION + 1, &encode_payload(&[]));
        assert!(decode(NAME, &file).is_err());
    }

    #[test]
    fn a_window_expires_only_when_it_has_wholly_passed() {
        let week = 7 * 86_400_000;
        assert_eq!(window_end(0, week), i128::from(week));
        assert_eq!(window_end(-1, week), 0);
        // No overflow at the extremes.
        assert!(window_end(i64::MAX, i64::MAX) > i128::from(i64::MAX));
        assert!(window_end(i64::MIN, i64::MAX) < i128::from(i64::MIN));
    }

    #[test]
    fn a_long_detail_is_cut_to_the_audit_limit() {
        let s = truncate("é".repeat(2_000));
        assert!(s.len() <= DETAIL_MAX && s.ends_with("..."));
        assert_eq!(truncate("short".into()), "short");
    }
}
