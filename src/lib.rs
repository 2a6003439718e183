//! hearth: an embedded time-series storage engine for the telemetry of connected home
//! appliances.
//!
//! The public surface is small: open a [`Db`] with a [`Schema`], register devices, append
//! [`Batch`]es, scan rows back. See `docs/ARCHITECTURE.md` for the map of the modules.

#![deny(clippy::unwrap_used)]

pub mod batch;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod registry;
pub mod schema;
pub mod sim;
pub mod storage;

pub(crate) mod codec;
pub(crate) mod wal;

pub use batch::{Batch, Limits, Values};
pub use error::{Error, InputError, Result};
pub use registry::DeviceInfo;
pub use schema::{ColumnDef, ColumnKind, Schema, StreamDef};
pub use storage::{DirStorage, SimFault, SimStorage, Storage, StorageFile};
