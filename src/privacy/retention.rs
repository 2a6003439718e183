//! Retention: a period per stream after which whole time windows are dropped, and an optional
//! longer period for the stream's device rollups.
//!
//! This module owns
//! - the **policy file** `RETENTION` (metadata envelope, magic `HRTHRET\0`; payload below and
//!   in docs/FORMAT.md): per stream, how long its rows are kept, and how long its devices'
//!   week cells are;
//! - [`Db::set_retention`], [`Db::set_retention_with_device_rollups`],
//!   [`Db::clear_retention`], [`Db::retention`]: the policies, changed crash-safely (write
//!   temp, fsync, rename, fsync the directory);
//! - [`Db::apply_retention`]: one **run**: every (stream, window) whose whole window ends at
//!   or before `now − keep` loses its raw rows, segments and rollup files, by publishing a
//!   manifest without them; when the stream has a device-rollup period that has not ended
//!   for the window (`now − keep_device_rollups`), the window's device week cells are kept in
//!   a **device summary** (`sum-<id>.hrlp`, the rollup file format with an empty fleet
//!   section) the manifest names, until that period ends too; the fleet rollups are then
//!   recomputed from what remains; the run is recorded in the audit log.
//!
//! Invariants:
//! - a window is dropped whole or not at all, and only once all of it is older than the
//!   cutoff: a row is kept at least `keep`, and at most `keep` + the stream's window; the same
//!   for a window's week cells and `keep_device_rollups`;
//! - `keep_device_rollups ≥ keep` (a shorter period would protect nothing: the raw rows
//!   remain and recompute the cells), checked when set and when read;
//! - a device summary holds week cells only (count, sums, sums of squares, category and hour
//!   counts per device and week): no raw row (a rollup file's tail rows), no fleet state;
//!   fleet rollups go with the raw rows, so a fleet answer still equals a scan;
//! - the manifest's publication is the commit point: a crash before it leaves every row (a
//!   summary written but not published is removed at the next open), a crash after it none
//!   of the dropped windows' (files the manifest no longer names are removed at the next
//!   open if the run could not remove them);
//! - rows of expired windows still in memtables are flushed first, so they go with their
//!   window; a row older than the cutoff that arrives later is accepted like any row and
//!   dropped by the next run (its week cells added to the window's summary);
//! - every run, dropping something or nothing, failed or not, appends one audit record
//!   (kind `retention`, no device) once its outcome is known; a run that fails before the
//!   commit point changes no row (one that fails after it poisons the database, and the next
//!   open completes it).
//!
//! Payload of `RETENTION` (version 2; version 1 had no device-rollup period and is still
//! read), varints as in the other binary payloads:
//!
//! | field | encoding |
//! |---|---|
//! | policy count | varint |
//! | per policy, ascending stream index | stream index (varint, strictly ascending, below the schema's stream count), keep in ms (varint, 1 ..= 2^63 − 1), *version 2 only:* device-rollup keep in ms (varint: 0 = none, the device rollups go with the raw rows; else keep ..= 2^63 − 1) |
//!
//! Every varint in its shortest form; nothing may follow.

use serde::Serialize;

use crate::db::{Db, WindowFate};
use crate::error::{Error, InputError, Result};
use crate::files::{self, varint};
use crate::privacy::audit::{AuditKind, AuditOutcome};
use crate::schema::Schema;
use crate::storage::Storage;

/// The policy file's name.
pub(crate) const NAME: &str = files::RETENTION;
/// Its envelope magic.
const MAGIC: [u8; 8] = files::RETENTION_MAGIC;
/// Version of its payload written (versions 1 and 2 are read).
const VERSION: u32 = 2;
/// The audit log's limit on a record's detail, in bytes.
const DETAIL_MAX: usize = 1024;

/// One stream's policy as stored: stream index, raw period, device-rollup period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub stream: u16,
    pub keep_ms: i64,
    /// `None`: the device rollups go with the raw rows.
    pub keep_device_rollups_ms: Option<i64>,
}

impl Policy {
    /// How long the device rollups are kept: their own period, else the raw one.
    fn device_keep(&self) -> i64 {
        self.keep_device_rollups_ms.unwrap_or(self.keep_ms)
    }
}

/// One stream's retention period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    /// Stream name.
    pub stream: String,
    /// Rows are kept at least this long (ms) before their window may be dropped.
    pub keep_ms: i64,
    /// The devices' week cells (what C2 usage and C3 health read) are kept at least this
    /// long (ms), in device summaries once the raw rows are gone; `None`: they go with the
    /// raw rows.
    pub keep_device_rollups_ms: Option<i64>,
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
    /// `now − keep`: windows ending at or before this instant (ms) lost their raw rows.
    pub cutoff_ms: i64,
    /// The stream's device-rollup period (ms), when it has one.
    pub keep_device_rollups_ms: Option<i64>,
    /// `now − keep_device_rollups` (ms; `cutoff_ms` without a device-rollup period): device
    /// summaries of windows ending at or before it were dropped.
    pub device_cutoff_ms: i64,
    /// Time windows whose raw rows were dropped.
    pub windows: u64,
    /// Segment files dropped (each with its rollup file when the stream keeps rollups).
    pub segments: u64,
    /// Rows in those segments.
    pub rows: u64,
    /// Bytes of the files dropped: segments, rollup files, device summaries replaced or
    /// dropped.
    pub bytes: u64,
    /// Windows whose devices' week cells this run kept in a (new) device summary.
    pub summaries_kept: u64,
    /// Bytes of those device summaries.
    pub summary_bytes: u64,
    /// Device summaries dropped (their device-rollup period ended).
    pub summaries_dropped: u64,
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

    /// Windows whose raw rows were dropped, in all streams.
    pub fn windows(&self) -> u64 {
        self.streams.iter().map(|s| s.windows).sum()
    }

    /// Windows whose week cells were kept in a device summary, in all streams.
    pub fn summaries_kept(&self) -> u64 {
        self.streams.iter().map(|s| s.summaries_kept).sum()
    }

    /// Device summaries dropped, in all streams.
    pub fn summaries_dropped(&self) -> u64 {
        self.streams.iter().map(|s| s.summaries_dropped).sum()
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
            if let Some(k) = s.keep_device_rollups_ms {
                out.push_str(&format!(
                    "; device rollups keep {k} ms, {} summaries kept ({} bytes), {} dropped",
                    s.summaries_kept, s.summary_bytes, s.summaries_dropped
                ));
            } else if s.summaries_dropped > 0 {
                out.push_str(&format!(", {} summaries dropped", s.summaries_dropped));
            }
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

/// Encodes policies, which must be ascending by stream, as the payload of `RETENTION`
/// (version 2).
pub(crate) fn encode_payload(policies: &[Policy]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + policies.len() * 20);
    varint::put_u64(&mut out, policies.len() as u64);
    for p in policies {
        varint::put_u64(&mut out, u64::from(p.stream));
        varint::put_u64(&mut out, p.keep_ms.max(1) as u64);
        varint::put_u64(
            &mut out,
            p.keep_device_rollups_ms.map_or(0, |k| k.max(1) as u64),
        );
    }
    out
}

/// The whole file: envelope around [`encode_payload`].
pub(crate) fn encode(policies: &[Policy]) -> Vec<u8> {
    files::encode_envelope(&MAGIC, VERSION, &encode_payload(policies))
}

/// Decodes a `RETENTION` payload of `version` (1 or 2): policies ascending by stream index,
/// each keep ≥ 1 ms, each device-rollup keep ≥ its keep. Errors name `file` and the offset
/// (in the file) of the bad field.
pub(crate) fn decode_payload(file: &str, version: u32, payload: &[u8]) -> Result<Vec<Policy>> {
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
    let mut out: Vec<Policy> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = r.pos();
        let stream = read(&mut r)
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| bad(at, "stream index missing or malformed"))?;
        if out.last().is_some_and(|p| p.stream >= stream) {
            return Err(bad(at, "stream indexes not strictly ascending"));
        }
        let at = r.pos();
        let keep_ms = read(&mut r)
            .and_then(|k| i64::try_from(k).ok())
            .filter(|&k| k >= 1)
            .ok_or_else(|| bad(at, "retention period missing, zero or too large"))?;
        let keep_device_rollups_ms = if version >= 2 {
            let at = r.pos();
            let k = read(&mut r)
                .and_then(|k| i64::try_from(k).ok())
                .ok_or_else(|| bad(at, "device-rollup period missing or too large"))?;
            if k != 0 && k < keep_ms {
                return Err(bad(at, "device-rollup period shorter than the raw period"));
            }
            (k != 0).then_some(k)
        } else {
            None
        };
        out.push(Policy {
            stream,
            keep_ms,
            keep_device_rollups_ms,
        });
    }
    if !r.is_empty() {
        return Err(bad(r.pos(), "bytes after the last policy"));
    }
    Ok(out)
}

/// Decodes a whole `RETENTION` file (version 1 or 2).
pub(crate) fn decode(file: &str, bytes: &[u8]) -> Result<Vec<Policy>> {
    let (version, payload) = files::decode_envelope(file, bytes, &MAGIC, VERSION)?;
    decode_payload(file, version, payload)
}

/// The stored policies (none when the file does not exist), each checked against the
/// schema's streams. Returns them and the file's size.
fn load(storage: &dyn Storage, streams: usize) -> Result<(Vec<Policy>, u64)> {
    let names = storage
        .list()
        .map_err(|e| Error::io("list", storage.describe(), e))?;
    if !names.iter().any(|n| n == NAME) {
        return Ok((Vec::new(), 0));
    }
    let bytes = files::read(storage, NAME)?;
    let policies = decode(NAME, &bytes)?;
    if let Some(p) = policies.iter().find(|p| usize::from(p.stream) >= streams) {
        return Err(Error::corruption(
            NAME,
            files::ENVELOPE_HEADER as u64,
            format!(
                "a policy names stream {}; the schema has {streams} streams",
                p.stream
            ),
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
            .filter_map(|p| {
                schema
                    .streams
                    .get(usize::from(p.stream))
                    .map(|d| RetentionPolicy {
                        stream: d.name.clone(),
                        keep_ms: p.keep_ms,
                        keep_device_rollups_ms: p.keep_device_rollups_ms,
                        window_ms: d.window_ms,
                    })
            })
            .collect())
    }

    /// Sets the retention period of `stream` (ms, at least 1), durably when it returns,
    /// replacing its policy: its device rollups go with its raw rows (see
    /// [`Db::set_retention_with_device_rollups`]). It drops nothing by itself:
    /// [`Db::apply_retention`] does.
    pub fn set_retention(&self, stream: &str, keep_ms: i64) -> Result<()> {
        self.set_policy(stream, keep_ms, None)
    }

    /// Sets the retention periods of `stream`, durably when it returns, replacing its
    /// policy: its raw rows are kept `keep_ms` (at least 1), its devices' week cells (the
    /// device rollup C2 usage and C3 health read) `keep_device_rollups_ms`, which must be at
    /// least `keep_ms` ([`InputError::DeviceRollupPeriodTooShort`] otherwise, nothing
    /// changed) and needs a stream that keeps a device rollup. It drops nothing by itself.
    pub fn set_retention_with_device_rollups(
        &self,
        stream: &str,
        keep_ms: i64,
        keep_device_rollups_ms: i64,
    ) -> Result<()> {
        self.set_policy(stream, keep_ms, Some(keep_device_rollups_ms))
    }

    fn set_policy(&self, stream: &str, keep_ms: i64, device: Option<i64>) -> Result<()> {
        if keep_ms < 1 {
            return Err(InputError::Invalid(format!(
                "a retention period must be at least 1 ms; got {keep_ms} ms for stream '{stream}'"
            ))
            .into());
        }
        if let Some(d) = device {
            if d < keep_ms {
                return Err(InputError::DeviceRollupPeriodTooShort {
                    stream: stream.to_string(),
                    keep_ms,
                    keep_device_rollups_ms: d,
                }
                .into());
            }
            let s = stream_index(self.schema(), stream)?;
            let has_device_rollup = self
                .schema()
                .streams
                .get(usize::from(s))
                .is_some_and(|def| def.rollups.device.is_some());
            if !has_device_rollup {
                return Err(InputError::Invalid(format!(
                    "stream '{stream}' keeps no device rollup: it can have no device-rollup \
                     retention period"
                ))
                .into());
            }
        }
        self.change_policy(stream, Some((keep_ms, device)))
            .map(|_| ())
    }

    /// Removes the retention periods of `stream`; false when it had none. Device summaries
    /// already kept stay until a policy drops them.
    pub fn clear_retention(&self, stream: &str) -> Result<bool> {
        self.change_policy(stream, None)
    }

    fn change_policy(&self, stream: &str, periods: Option<(i64, Option<i64>)>) -> Result<bool> {
        let s = stream_index(self.schema(), stream)?;
        // Serialised with runs and other changes (a read-modify-write of the file).
        let _held = self.maintenance_guard()?;
        let (mut policies, _) = load(self.storage(), self.schema().streams.len())?;
        let had = policies.iter().any(|p| p.stream == s);
        policies.retain(|p| p.stream != s);
        if let Some((keep_ms, keep_device_rollups_ms)) = periods {
            policies.push(Policy {
                stream: s,
                keep_ms,
                keep_device_rollups_ms,
            });
            policies.sort_unstable_by_key(|p| p.stream);
        } else if !had {
            return Ok(false);
        }
        files::write_atomic(self.storage(), NAME, &encode(&policies))?;
        Ok(had)
    }

    /// One retention run at `now_ms`: for each stream with a policy, every time window that
    /// ends at or before `now_ms − keep` loses its raw rows (its segments and their rollup
    /// files); its devices' week cells are kept in a device summary while the window ends
    /// after `now_ms − keep_device_rollups`, and dropped with it otherwise (device summaries
    /// of earlier runs included). The fleet rollups are then recomputed from the remaining
    /// data. Rows of those windows still in memory are flushed first and dropped with them.
    /// The run is recorded in the audit log (failed runs too) before this returns.
    ///
    /// Crash-safe: device summaries are written and fsynced, then a manifest without the
    /// dropped files and with the new summaries is published (the commit point), then the
    /// files are removed; a crash leaves the database before or after the run.
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
        // Per stream: the raw and device-rollup cutoffs, when it has a policy.
        let mut cutoffs: Vec<Option<(i64, i64)>> = vec![None; schema.streams.len()];
        for p in &policies {
            let Some(def) = schema.streams.get(usize::from(p.stream)) else {
                continue;
            };
            let cutoff_ms = now_ms.saturating_sub(p.keep_ms);
            let device_cutoff_ms = now_ms.saturating_sub(p.device_keep());
            cutoffs[usize::from(p.stream)] = Some((cutoff_ms, device_cutoff_ms));
            report.streams.push(StreamRetention {
                stream: def.name.clone(),
                keep_ms: p.keep_ms,
                cutoff_ms,
                keep_device_rollups_ms: p.keep_device_rollups_ms,
                device_cutoff_ms,
                ..StreamRetention::default()
            });
        }
        if policies.is_empty() {
            return Ok(report);
        }
        let fate = |stream: u16, window: i64| -> WindowFate {
            match (
                cutoffs.get(usize::from(stream)).copied().flatten(),
                schema.streams.get(usize::from(stream)),
            ) {
                (Some((raw, device)), Some(def)) => {
                    window_fate(window_end(window, def.window_ms), raw, device)
                }
                _ => WindowFate::Keep,
            }
        };
        for d in self.drop_windows(&held, &fate)? {
            let Some(name) = schema.streams.get(usize::from(d.stream)).map(|s| &s.name) else {
                continue;
            };
            if let Some(s) = report.streams.iter_mut().find(|s| &s.stream == name) {
                if d.segments > 0 {
                    s.windows += 1;
                }
                s.segments += d.segments;
                s.rows += d.rows;
                s.bytes += d.bytes;
                if let Some(b) = d.summary_bytes {
                    s.summaries_kept += 1;
                    s.summary_bytes += b;
                }
                s.summaries_dropped += u64::from(d.summary_dropped);
            }
        }
        Ok(report)
    }
}

/// What a run does with a window ending at `end` (exclusive, ms), given the raw and the
/// device-rollup cutoffs.
fn window_fate(end: i128, raw_cutoff: i64, device_cutoff: i64) -> WindowFate {
    if end > i128::from(raw_cutoff) {
        WindowFate::Keep
    } else if end > i128::from(device_cutoff) {
        WindowFate::Summarise
    } else {
        WindowFate::Drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(stream: u16, keep_ms: i64, device: Option<i64>) -> Policy {
        Policy {
            stream,
            keep_ms,
            keep_device_rollups_ms: device,
        }
    }

    #[test]
    fn policies_round_trip() {
        for ps in [
            vec![],
            vec![p(0, 1, None)],
            vec![
                p(0, 400 * 86_400_000, Some(1095 * 86_400_000)),
                p(1, 30 * 86_400_000, None),
            ],
            vec![p(3, i64::MAX, Some(i64::MAX)), p(65_535, 1, Some(1))],
        ] {
            let bytes = encode(&ps);
            assert_eq!(decode(NAME, &bytes).expect("decodes"), ps);
        }
    }

    #[test]
    fn the_file_is_as_documented() {
        // docs/FORMAT.md, "RETENTION payload": cycles (stream 0) kept 400 days, its device
        // rollups 1095 days.
        let b = encode(&[p(0, 400 * 86_400_000, Some(1095 * 86_400_000))]);
        let mut want = b"HRTHRET\0".to_vec();
        want.extend([2, 0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        want.extend([0x80, 0x80, 0xbf, 0xdf, 0x80, 0x01]);
        want.extend([0x80, 0x88, 0xce, 0xb8, 0xe0, 0x02]);
        assert_eq!(&b[..want.len()], &want[..]);
        assert_eq!(b[want.len()..], crc32c::crc32c(&want).to_le_bytes());
        // Without a device-rollup period: a 0.
        let b = encode(&[p(0, 400 * 86_400_000, None)]);
        assert_eq!(b[12], 9);
        assert_eq!(b[28], 0);
    }

    #[test]
    fn version_1_files_are_still_read() {
        // docs/FORMAT.md: the version-1 file of cycles kept 400 days, as earlier versions
        // wrote it.
        let mut v1 = b"HRTHRET\0".to_vec();
        v1.extend([1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        v1.extend([0x80, 0x80, 0xbf, 0xdf, 0x80, 0x01]);
        let crc = crc32c::crc32c(&v1);
        v1.extend(crc.to_le_bytes());
        assert_eq!(
            decode(NAME, &v1).expect("decodes"),
            vec![p(0, 400 * 86_400_000, None)]
        );
        // The same payload read as version 2 lacks the device-rollup period.
        let v2 = files::encode_envelope(&MAGIC, 2, &v1[files::ENVELOPE_HEADER..v1.len() - 4]);
        assert!(decode(NAME, &v2).is_err());
    }

    #[test]
    fn every_flip_and_cut_is_corruption_naming_the_file() {
        let bytes = encode(&[
            p(0, 400 * 86_400_000, Some(1095 * 86_400_000)),
            p(1, 7 * 86_400_000, None),
        ]);
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

    fn payload_error(version: u32, payload: &[u8]) -> (u64, String) {
        let file = files::encode_envelope(&MAGIC, version, payload);
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
        for v in [1, 2] {
            // Empty payload: no count.
            assert_eq!(payload_error(v, &[]).0, h);
            // A count the bytes cannot hold.
            assert!(payload_error(v, &[100, 0, 1]).1.contains("count"));
            // A zero period.
            assert_eq!(payload_error(v, &[1, 0, 0, 0]).0, h + 2);
            // A period beyond i64.
            let mut pl = vec![1, 0];
            varint::put_u64(&mut pl, u64::MAX);
            pl.push(0);
            assert!(payload_error(v, &pl).1.contains("period"));
            // A stream index beyond u16.
            let mut pl = vec![1];
            varint::put_u64(&mut pl, 70_000);
            pl.extend([1, 0]);
            assert!(payload_error(v, &pl).1.contains("stream index"));
            // A varint longer than it needs to be (0 as two bytes).
            assert_eq!(payload_error(v, &[1, 0x80, 0, 1, 0]).0, h + 1);
        }
        // Stream indexes not ascending, or repeated.
        assert_eq!(payload_error(1, &[2, 1, 5, 0, 5]).0, h + 3);
        assert_eq!(payload_error(1, &[2, 1, 5, 1, 5]).0, h + 3);
        assert_eq!(payload_error(2, &[2, 1, 5, 0, 0, 5, 0]).0, h + 4);
        // Trailing bytes.
        assert_eq!(payload_error(1, &[1, 0, 1, 9]).0, h + 3);
        assert_eq!(payload_error(2, &[1, 0, 1, 0, 9]).0, h + 4);
        // Version 2: a device-rollup period missing, or shorter than the raw one.
        assert!(payload_error(2, &[1, 0, 1]).1.contains("device-rollup"));
        let (at, what) = payload_error(2, &[1, 0, 5, 4]);
        assert_eq!(at, h + 3);
        assert!(what.contains("shorter"), "{what}");
        let mut pl = vec![1, 0, 1];
        varint::put_u64(&mut pl, u64::MAX);
        assert!(payload_error(2, &pl).1.contains("device-rollup"));
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
    fn a_window_is_kept_then_summarised_then_dropped() {
        let end = i128::from(1_000);
        // Raw cutoff before the end: kept whatever the device cutoff.
        assert_eq!(window_fate(end, 999, 0), WindowFate::Keep);
        // Raw period over (the end at the cutoff counts as passed), device period not.
        assert_eq!(window_fate(end, 1_000, 999), WindowFate::Summarise);
        assert_eq!(window_fate(end, 5_000, 999), WindowFate::Summarise);
        // Both over.
        assert_eq!(window_fate(end, 5_000, 1_000), WindowFate::Drop);
        // Without a device-rollup period the cutoffs are equal: kept or dropped, never
        // summarised.
        for c in [0, 999, 1_000, 1_001] {
            assert_ne!(window_fate(end, c, c), WindowFate::Summarise);
        }
    }

    #[test]
    fn a_long_detail_is_cut_to_the_audit_limit() {
        let s = truncate("é".repeat(2_000));
        assert!(s.len() <= DETAIL_MAX && s.ends_with("..."));
        assert_eq!(truncate("short".into()), "short");
    }
}
