//! Placeholder with the final API; replaced by the wal branch.
#![allow(dead_code, unused_variables)]
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::storage::Storage;

pub(crate) type Lsn = u64;

/// Durability policy of appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// fsync before append returns.
    #[default]
    Always,
    /// fsync at most every interval.
    Interval(std::time::Duration),
    /// never fsync on append.
    Never,
}

pub(crate) struct Wal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recovery {
    pub last_lsn: Lsn,
    pub records_replayed: u64,
    pub truncated: Option<(String, u64, u64)>,
}

fn todo() -> Error {
    Error::Closed
}

impl Wal {
    pub(crate) fn open(
        storage: Arc<dyn Storage>,
        next_lsn: Lsn,
        policy: SyncPolicy,
    ) -> Result<Wal> {
        Err(todo())
    }
    pub(crate) fn append(&self, payload: &[u8]) -> Result<Lsn> {
        Err(todo())
    }
    pub(crate) fn sync_to(&self, lsn: Lsn) -> Result<()> {
        Err(todo())
    }
    pub(crate) fn sync_all(&self) -> Result<()> {
        Err(todo())
    }
    pub(crate) fn rotate(&self) -> Result<()> {
        Err(todo())
    }
    pub(crate) fn remove_obsolete(&self, checkpoint: Lsn) -> Result<()> {
        Err(todo())
    }
    pub(crate) fn size_bytes(&self) -> u64 {
        0
    }
    pub(crate) fn last_lsn(&self) -> Lsn {
        0
    }
    pub(crate) fn is_poisoned(&self) -> bool {
        false
    }
}

pub(crate) fn recover(
    storage: &dyn Storage,
    checkpoint: Lsn,
    apply: impl FnMut(Lsn, &[u8]) -> Result<()>,
) -> Result<Recovery> {
    Err(todo())
}
