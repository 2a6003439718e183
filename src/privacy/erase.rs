//! Erasure (the right to erasure) and purge, as the API hands them out.
//!
//! The engine's half lives in the database (`Db::erase_device`, `Db::purge_erased`): a log
//! record, the registry slot, the memtable rows, the fleet rollups, the segments' rows
//! hidden from every read until a purge or compaction rewrites them. This module adds the
//! audit record of each run and the reports.
//!
//! Invariants: an erasure is durable (its log record synced) before its audit record is
//! written; no audit record holds a serial (erasures are recorded under the pseudonym).

use serde::Serialize;

use super::audit::{AuditKind, AuditOutcome};
use crate::db::Db;
use crate::error::Result;

/// What [`Db::erase`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EraseReport {
    /// Rows taken out of memory (they were not yet in segments).
    pub memtable_rows: u64,
    /// Rows in segments, invisible from now on, whose bytes go at the next purge (or the
    /// compaction of their window).
    pub segment_rows: u64,
    /// Segment files holding those rows.
    pub segments: u64,
}

/// What [`Db::purge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Erased devices whose last bytes were removed.
    pub devices: u64,
    /// Segment files rewritten without them (each with its rollup file).
    pub segments_rewritten: u64,
    /// Their rows dropped from those segments.
    pub rows_dropped: u64,
    /// Bytes of the segment files and device summaries written.
    pub bytes_written: u64,
    /// Device summaries (week cells kept after retention dropped raw rows) rewritten
    /// without them.
    pub summaries_rewritten: u64,
}

impl Db {
    /// Erases a device everywhere: its registry entry (the serial is forgotten at once), its
    /// rows in every stream (in memory, in the log's replay, hidden in segments), and its
    /// contribution to every fleet and device rollup. Durable when it returns (one log
    /// record, synced whatever the sync policy); immediately invisible to every query.
    /// The bytes of its rows in segment files stay until [`Db::purge`] (or the compaction of
    /// their window) rewrites them. Recorded in the audit log under the serial's pseudonym.
    ///
    /// The device's dense id is never reused; registering the serial again makes a new
    /// device.
    pub fn erase(&self, serial: &str) -> Result<EraseReport> {
        match self.erase_device(serial) {
            Ok(e) => {
                let report = EraseReport {
                    memtable_rows: e.memtable_rows,
                    segment_rows: e.segment_rows,
                    segments: e.segments,
                };
                let detail = format!(
                    "{} rows in memory, {} rows in {} segments hidden until purge",
                    e.memtable_rows, e.segment_rows, e.segments
                );
                self.audit(AuditKind::Erase, Some(serial), AuditOutcome::Ok, &detail)?;
                Ok(report)
            }
            Err(err) => {
                let _ = self.audit(
                    AuditKind::Erase,
                    Some(serial),
                    AuditOutcome::Failed,
                    super::error_class(&err),
                );
                Err(err)
            }
        }
    }

    /// Physically removes what erased devices left: flushes the memtable (so no log file
    /// holds their rows or serials any more), rewrites only the segment files holding their
    /// rows and the device summaries holding their week cells, and publishes a registry that
    /// keeps nothing of them. Recorded in the audit log.
    pub fn purge(&self) -> Result<PurgeReport> {
        match self.purge_erased() {
            Ok(p) => {
                let report = PurgeReport {
                    devices: p.devices,
                    segments_rewritten: p.segments_rewritten,
                    rows_dropped: p.rows_dropped,
                    bytes_written: p.bytes_written,
                    summaries_rewritten: p.summaries_rewritten,
                };
                let detail = format!(
                    "{} erased devices: {} rows dropped, {} segments and {} device summaries \
                     rewritten ({} bytes)",
                    p.devices,
                    p.rows_dropped,
                    p.segments_rewritten,
                    p.summaries_rewritten,
                    p.bytes_written
                );
                self.audit(AuditKind::Purge, None, AuditOutcome::Ok, &detail)?;
                Ok(report)
            }
            Err(err) => {
                let _ = self.audit(
                    AuditKind::Purge,
                    None,
                    AuditOutcome::Failed,
                    super::error_class(&err),
                );
                Err(err)
            }
        }
    }
}
