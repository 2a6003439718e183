//! hearth: an embedded time-series storage engine for the telemetry of connected home
//! appliances.
//!
//! The public surface is small: open a [`Db`] with a [`Schema`], register devices
//! ([`DeviceInfo`]), append [`Batch`]es, scan rows back ([`Db::scan_device`], [`Db::scan`]).
//! Everything else is internal; `docs/ARCHITECTURE.md` is the map of the modules.

#![deny(clippy::unwrap_used)]

pub mod batch;
/// Calendar buckets of UTC time (days, weeks from Monday, months, quarters, years).
pub mod calendar {
    pub use crate::rollup::calendar::*;
}
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod privacy;
pub mod query;
pub mod registry;
pub mod schema;
pub mod sim;
pub mod stats;
pub mod storage;

mod codec;
mod db;
mod files;
mod manifest;
mod memtable;
mod record;
mod rollup;
mod segment;
mod wal;

pub use batch::{Batch, Limits, Values};
pub use db::{
    AppendReport, Db, DeviceRows, Info, Options, StreamInfo, UnknownDevices, VerifyReport,
};
pub use error::{Error, InputError, Result};
pub use privacy::retention::{RetentionPolicy, RetentionReport, StreamRetention};
pub use privacy::{
    Analytics, AuditEntry, AuditKind, AuditOutcome, ChiSquareAnswer, DeviceExport, EraseReport,
    KAnonymous, PurgeReport, Support, Suppressed,
};
pub use query::device::{AdviceConfig, Health, HealthConfig, Usage, Verdict};
pub use query::{Filter, FleetQuery, FleetResult, Measure, Plan};
pub use registry::{DeviceInfo, PostcodeEntry};
pub use rollup::calendar::Grain;
pub use schema::{Attribute, ColumnDef, ColumnKind, Dim, Schema, StreamDef};
pub use stats::{Anova, AnovaGroup, ChiSquare, Moments};
pub use storage::{DirStorage, SimFault, SimStorage, Storage, StorageFile};
pub use wal::SyncPolicy;
