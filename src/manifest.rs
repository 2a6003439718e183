//! The manifest: which segment files are live, the log checkpoint, and the registry file.
//!
//! It is one small file, `MANIFEST`, replaced atomically (write `MANIFEST.tmp`, fsync, rename,
//! fsync the directory) every time a flush or a compaction publishes. Its payload is UTF-8
//! JSON inside the common checksummed envelope (see [`crate::files`]).
//!
//! Invariants: every segment named exists and was fsynced before the manifest naming it was
//! written; every log record with a sequence number at or below `checkpoint_lsn` is in the
//! named segments and registry; file ids are never reused (`next_file_id` only grows).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files;
use crate::storage::Storage;

/// Version of the manifest payload.
pub(crate) const MANIFEST_VERSION: u32 = 1;

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
}

impl Manifest {
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::io("encode manifest", files::MANIFEST, std::io::Error::other(e)))?;
        Ok(files::encode_envelope(
            &files::MANIFEST_MAGIC,
            MANIFEST_VERSION,
            &json,
        ))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Manifest> {
        let (_, payload) = files::decode_envelope(
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
        let mut ids: Vec<u64> = m.segments.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) || ids.last().is_some_and(|&i| i >= m.next_file_id)
        {
            return Err(Error::corruption(
                files::MANIFEST,
                files::ENVELOPE_HEADER as u64,
                "segment ids repeated or not below next_file_id",
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
        };
        let b = m.encode().expect("encode");
        assert_eq!(Manifest::decode(&b).expect("decode"), m);
        let mut bad = m.clone();
        bad.next_file_id = 3;
        assert!(Manifest::decode(&bad.encode().expect("encode")).is_err());
    }
}
