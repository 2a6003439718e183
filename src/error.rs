//! Typed errors. Every failure hearth reports is a variant of [`Error`]; each says what was
//! wrong and where (file and offset for damage on disk, row and column for bad input).
//!
//! Invariants: no `Display` is a `{:?}` dump; corruption is its own variant and always names
//! the file and the byte offset; input errors name the row (0-based, within the batch) and the
//! column.

use std::io;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The umbrella error of every hearth operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error during {op} on {file}: {source}")]
    Io {
        /// What was being done (`"fsync"`, `"rename"`, ...).
        op: &'static str,
        /// File (relative to the database directory) or directory involved.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Bytes on disk do not match their checksum or cannot be decoded.
    #[error("corruption in {file} at offset {offset}: {what}")]
    Corruption {
        /// File name relative to the database directory.
        file: String,
        /// Byte offset of the damaged structure.
        offset: u64,
        /// What was found.
        what: String,
    },
    /// A batch or call argument was rejected; nothing was written.
    #[error("invalid input: {0}")]
    Input(#[from] InputError),
    /// The database was opened with a schema that differs from the stored one.
    #[error("incompatible schema: {0}")]
    IncompatibleSchema(String),
    /// A previous fsync failed: the page cache can no longer be trusted, so the database
    /// refuses writes until it is reopened.
    #[error("database is poisoned by an earlier failed sync ({0}); reopen it to recover")]
    Poisoned(String),
    /// The database directory holds no hearth database (or the wrong kind of file).
    #[error("{0}")]
    NotADatabase(String),
    /// Another handle already holds the database open for writing.
    #[error("database at {0} is locked by another process")]
    Locked(String),
    /// The database has been closed.
    #[error("database is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(op: &'static str, file: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op,
            file: file.into(),
            source,
        }
    }

    pub(crate) fn corruption(
        file: impl Into<String>,
        offset: u64,
        what: impl Into<String>,
    ) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            what: what.into(),
        }
    }

    /// True when the error reports damaged bytes on disk.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

/// Why a batch (or an argument) was rejected. Rows are counted from 0 within the batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The stream is not declared in the schema.
    #[error("unknown stream '{0}'")]
    UnknownStream(String),
    /// A column in the batch is not declared for the stream.
    #[error("unknown column '{column}' in stream '{stream}'")]
    UnknownColumn { stream: String, column: String },
    /// A column appears twice in the batch.
    #[error("column '{column}' given twice")]
    DuplicateColumn { column: String },
    /// A required column is absent from the batch.
    #[error("missing required column '{column}' in stream '{stream}'")]
    MissingColumn { stream: String, column: String },
    /// A column's value vector has the wrong length.
    #[error("column '{column}' has {got} values, the batch has {expected} rows")]
    LengthMismatch {
        column: String,
        expected: usize,
        got: usize,
    },
    /// The values given are of a type the column cannot take.
    #[error("column '{column}' expects {expected}, got {got}")]
    WrongType {
        column: String,
        expected: &'static str,
        got: &'static str,
    },
    /// NaN or an infinity.
    #[error("row {row}, column '{column}': value is not finite")]
    NotFinite { row: usize, column: String },
    /// A numeric value outside the column's declared range.
    #[error("row {row}, column '{column}': {value} is outside [{min}, {max}]")]
    OutOfRange {
        row: usize,
        column: String,
        value: f64,
        min: f64,
        max: f64,
    },
    /// A categorical value not in the column's dictionary.
    #[error("row {row}, column '{column}': unknown category '{value}'")]
    UnknownCategory {
        row: usize,
        column: String,
        value: String,
    },
    /// A timestamp outside the database's accepted range.
    #[error("row {row}, column 'ts': timestamp {ts} ms is outside [{min}, {max}]")]
    TimestampOutOfRange {
        row: usize,
        ts: i64,
        min: i64,
        max: i64,
    },
    /// A row names a device that is not registered (and auto-registration is off).
    #[error("row {row}, column 'device_id': unknown device '{serial}'")]
    UnknownDevice { row: usize, serial: String },
    /// A serial number that is empty, too long or holds control characters.
    #[error("invalid device serial '{serial}': {reason}")]
    InvalidSerial {
        serial: String,
        reason: &'static str,
    },
    /// A device attribute that is missing or malformed.
    #[error("device '{serial}', attribute '{attribute}': {reason}")]
    InvalidDevice {
        serial: String,
        attribute: &'static str,
        reason: String,
    },
    /// The batch has more rows than the configured maximum.
    #[error("batch of {rows} rows exceeds the maximum of {max}")]
    BatchTooLarge { rows: usize, max: usize },
    /// A schema definition is malformed.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A malformed argument (query range, option) other than the cases above.
    #[error("{0}")]
    Invalid(String),
    /// A device-rollup retention period shorter than the stream's raw period: it would
    /// protect nothing, since the raw rows remain and recompute the device rollups.
    #[error(
        "stream '{stream}': device rollups kept {keep_device_rollups_ms} ms, less than its \
         raw rows' {keep_ms} ms; a shorter period protects nothing (the raw rows remain \
         and recompute them)"
    )]
    DeviceRollupPeriodTooShort {
        stream: String,
        keep_ms: i64,
        keep_device_rollups_ms: i64,
    },
}
