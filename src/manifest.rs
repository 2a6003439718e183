//! The manifest: which segment files are live, the log checkpoint, and the registry file.
//!
//! It is one small file, `MANIFEST`, replaced atomically (write `MANIFEST.tmp`, fsync, rename,
//! fsync the directory) every time a flush or a compaction publishes. Its payload is UTF-8
//! JSON inside the common checksummed envelope (see [`crate::files`]).
//!
//! Invariants: every segment and device-summary file named exists and was fsynced before the
//! manifest naming it was written; every log record with a sequence number at or below
//! `checkpoint_lsn` is in the named segments and registry; file ids are never reused
//! (`next_file_id` only grows) and unique across segments and summaries; at most one summary
//! per (stream, window).
//!
//! Version 2 adds `summaries` (device week cells kept after retention dropped a window's raw
//! rows). A manifest without summaries is still written as version 1, byte for byte what
//! earlier versions wrote, so a database that never kept summaries stays readable by them;
//! one with summaries is version 2, which earlier versions refuse rather than ignore (they
//! would delete the summary files as unnamed).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files;
use crate::storage::Storage;

/// Newest version of the manifest payload (read: 1 and 2).
pub(crate) const MANIFEST_VERSION: u32 = 2;

/// One live segment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SegmentMeta {
    pub id: u64,
    pub stream: u16,
    pub window: i64,
    pub rows: u64,
    pub devices: u64,
    pub bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    /// The segment has a rollup file (`seg-<id>.hrlp`); absent in manifests written before
    /// rollups existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollup: bool,
}

/// One live device-summary file (`sum-<id>.hrlp`): the device week cells of a (stream,
/// window) whose raw rows retention dropped, kept until the stream's device-rollup period
/// ends (see `privacy::retention`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SummaryMeta {
    pub id: u64,
    pub stream: u16,
    pub window: i64,
    /// Devices with cells in the file.
    pub devices: u64,
    /// Week cells in the file.
    pub cells: u64,
    pub bytes: u64,
}

/// The published state of the database files.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Every log record up to this sequence number is in the segments and registry.
    pub checkpoint_lsn: u64,
    /// The next id for a segment or registry file.
    pub next_file_id: u64,
    /// Generation of the registry file, if one has been written.
    pub registry: Option<u64>,
    /// Live segments, in the order they were written (older first).
    pub segments: Vec<SegmentMeta>,
    /// Live device-summary files, ascending by (stream, window); absent before version 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub summaries: Vec<SummaryMeta>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::io("encode manifest", files::MANIFEST, std::io::Error::other(e)))?;
        // The oldest version that holds everything: see the module's doc.
        let version = if self.summaries.is_empty() {
            1
        } else {
            MANIFEST_VERSION
        };
        Ok(files::encode_envelope(
            &files::MANIFEST_MAGIC,
            version,
            &json,
        ))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Manifest> {
        let (version, payload) = files::decode_envelope(
            files::MANIFEST,
            bytes,
            &files::MANIFEST_MAGIC,
            MANIFEST_VERSION,
        )?;
        let m: Manifest = serde_json::from_slice(payload).map_err(|e| {
            Error::corruption(
                files::MANIFEST,
                files::ENVELOPE_HEADER as u64,
                format!("bad manifest: {e}"),
            )
        })?;
        let bad = |what: &str| {
            Error::corruption(
                files::MANIFEST,
                files::ENVELOPE_HEADER as u64,
                what.to_string(),
            )
        };
        if version < 2 && !m.summaries.is_empty() {
            return Err(bad("a version-1 manifest names device summaries"));
        }
        let mut ids: Vec<u64> = m.segments.iter().map(|s| s.id).collect();
        ids.extend(m.summaries.iter().map(|s| s.id));
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) || ids.last().is_some_and(|&i| i >= m.next_file_id)
        {
            return Err(bad("file ids repeated or not below next_file_id"));
        }
        if m.summaries
            .windows(2)
            .any(|w| (w[0].stream, w[0].window) >= (w[1].stream, w[1].window))
        {
            return Err(bad(
                "device summaries not strictly ascending by stream and window",
            ));
        }
        Ok(m)
    }

    /// Publishes this manifest crash-safely.
    pub(crate) fn publish(&self, storage: &dyn Storage) -> Result<()> {
        files::write_atomic(storage, files::MANIFEST, &self.encode()?)
    }

    pub(crate) fn load(storage: &dyn Storage) -> Result<Manifest> {
        Manifest::decode(&files::read(storage, files::MANIFEST)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let m = Manifest {
            checkpoint_lsn: 9,
            next_file_id: 5,
            registry: Some(4),
            segments: vec![SegmentMeta {
                id: 3,
                stream: 0,
                window: 100,
                rows: 10,
                devices: 2,
                bytes: 400,
                min_ts: 1,
                max_ts: 2,
                rollup: true,
            }],
            summaries: Vec::new(),
        };
        let b = m.encode().expect("encode");
        // Without summaries: version 1, as earlier versions wrote it.
        assert_eq!(b[8..12], 1u32.to_le_bytes());
        assert!(!String::from_utf8_lossy(&b).contains("summaries"));
        assert_eq!(Manifest::decode(&b).expect("decode"), m);
        let mut bad = m.clone();
        bad.next_file_id = 3;
        assert!(Manifest::decode(&bad.encode().expect("encode")).is_err());
    }

    #[test]
    fn summaries_make_a_version_2_manifest_and_are_checked() {
        let s = |id, window| SummaryMeta {
            id,
            stream: 0,
            window,
            devices: 1,
            cells: 2,
            bytes: 99,
        };
        let m = Manifest {
            checkpoint_lsn: 1,
            next_file_id: 9,
            registry: None,
            segments: Vec::new(),
            summaries: vec![s(4, 1), s(7, 2)],
        };
        let b = m.encode().expect("encode");
        assert_eq!(b[8..12], 2u32.to_le_bytes());
        assert_eq!(Manifest::decode(&b).expect("decode"), m);
        // Summaries in a version-1 envelope: refused.
        let (_, payload) =
            files::decode_envelope(files::MANIFEST, &b, &files::MANIFEST_MAGIC, 2).expect("env");
        let v1 = files::encode_envelope(&files::MANIFEST_MAGIC, 1, payload);
        assert!(Manifest::decode(&v1).is_err());
        for broken in [
            // Two summaries of one window.
            vec![s(4, 1), s(7, 1)],
            // Out of order.
            vec![s(7, 2), s(4, 1)],
            // An id not below next_file_id.
            vec![s(4, 1), s(9, 2)],
            // An id repeated.
            vec![s(4, 1), s(4, 2)],
        ] {
            let mut bad = m.clone();
            bad.summaries = broken;
            assert!(Manifest::decode(&bad.encode().expect("encode")).is_err());
        }
        // A summary's id equal to a segment's.
        let mut bad = m.clone();
        bad.segments.push(SegmentMeta {
            id: 4,
            stream: 0,
            window: 5,
            rows: 1,
            devices: 1,
            bytes: 1,
            min_ts: 0,
            max_ts: 0,
            rollup: false,
        });
        assert!(Manifest::decode(&bad.encode().expect("encode")).is_err());
    }
}
