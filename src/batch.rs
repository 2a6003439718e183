//! What a caller hands to [`Db::append`](crate::Db::append): a [`Batch`] of rows for one
//! stream, column by column, and its validation into the stored form.
//!
//! Validation looks at the whole batch before anything is written: every error names the row
//! and the column, and a batch with any error is rejected whole. The stored form is one `i64`
//! per row and declared column (see [`crate::schema`]).

use crate::error::InputError;
use crate::schema::{ColumnDef, ColumnKind, StreamDef};

/// Values of one column of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Numbers (numeric columns).
    Float(Vec<f64>),
    /// Integers: numbers, or for a categorical column the category written as an integer
    /// (e.g. a temperature setting of 40 for the category `"40"`).
    Int(Vec<i64>),
    /// Category names (categorical columns) or numbers written as text.
    Text(Vec<String>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::Text(v) => v.len(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Values::Float(_) => "floats",
            Values::Int(_) => "integers",
            Values::Text(_) => "text",
        }
    }
}

/// Rows for one stream, column by column. Every column has one value per row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// Stream name, e.g. `cycles`.
    pub stream: String,
    /// Timestamps, milliseconds since the Unix epoch (UTC).
    pub ts: Vec<i64>,
    /// Device serials, one per row.
    pub device: Vec<String>,
    /// Declared columns by name. Optional columns may be left out.
    pub columns: Vec<(String, Values)>,
}

impl Batch {
    /// An empty batch for `stream`.
    pub fn new(stream: &str) -> Self {
        Batch {
            stream: stream.to_string(),
            ..Batch::default()
        }
    }

    /// Adds a column.
    pub fn with(mut self, name: &str, values: Values) -> Self {
        self.columns.push((name.to_string(), values));
        self
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
}

/// Limits applied to every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Earliest accepted timestamp (ms).
    pub min_ts: i64,
    /// Latest accepted timestamp (ms).
    pub max_ts: i64,
    /// Most rows in one batch.
    pub max_batch_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // 2000-01-01 .. 2100-01-01 UTC
            min_ts: 946_684_800_000,
            max_ts: 4_102_444_800_000,
            max_batch_rows: 1_000_000,
        }
    }
}

/// Parses one textual cell (CSV field, default value) into the stored form.
pub(crate) fn parse_cell(col: &ColumnDef, text: &str) -> Option<i64> {
    match &col.kind {
        ColumnKind::Categorical { .. } => col.category_code(text.trim()),
        ColumnKind::Numeric { .. } => {
            let v: f64 = text.trim().parse().ok()?;
            scale_numeric(col, v).ok()
        }
    }
}

/// Why a single numeric value was refused.
enum NumericFault {
    NotFinite,
    OutOfRange(f64, f64),
}

fn scale_numeric(col: &ColumnDef, v: f64) -> Result<i64, NumericFault> {
    let ColumnKind::Numeric { min, max, .. } = col.kind else {
        return Err(NumericFault::NotFinite);
    };
    if !v.is_finite() {
        return Err(NumericFault::NotFinite);
    }
    if v < min || v > max {
        return Err(NumericFault::OutOfRange(min, max));
    }
    // Schema validation bounds |max| * scale below 2^52, so the cast is exact.
    Ok((v * col.scale()).round() as i64)
}

fn numeric_error(fault: NumericFault, row: usize, col: &ColumnDef, value: f64) -> InputError {
    match fault {
        NumericFault::NotFinite => InputError::NotFinite {
            row,
            column: col.name.clone(),
        },
        NumericFault::OutOfRange(min, max) => InputError::OutOfRange {
            row,
            column: col.name.clone(),
            value,
            min,
            max,
        },
    }
}

/// Converts one batch column to stored codes.
fn encode_column(col: &ColumnDef, values: &Values) -> Result<Vec<i64>, InputError> {
    let mut out = Vec::with_capacity(values.len());
    match (&col.kind, values) {
        (ColumnKind::Numeric { .. }, Values::Float(v)) => {
            for (row, &x) in v.iter().enumerate() {
                out.push(scale_numeric(col, x).map_err(|f| numeric_error(f, row, col, x))?);
            }
        }
        (ColumnKind::Numeric { .. }, Values::Int(v)) => {
            for (row, &x) in v.iter().enumerate() {
                let f = x as f64;
                out.push(scale_numeric(col, f).map_err(|e| numeric_error(e, row, col, f))?);
            }
        }
        (ColumnKind::Numeric { .. }, Values::Text(v)) => {
            for (row, s) in v.iter().enumerate() {
                let x: f64 = s.trim().parse().map_err(|_| InputError::WrongType {
                    column: col.name.clone(),
                    expected: "a number",
                    got: "text that is not a number",
                })?;
                out.push(scale_numeric(col, x).map_err(|f| numeric_error(f, row, col, x))?);
            }
        }
        (ColumnKind::Categorical { .. }, Values::Text(v)) => {
            for (row, s) in v.iter().enumerate() {
                out.push(
                    col.category_code(s)
                        .ok_or_else(|| InputError::UnknownCategory {
                            row,
                            column: col.name.clone(),
                            value: s.clone(),
                        })?,
                );
            }
        }
        (ColumnKind::Categorical { categories }, Values::Int(v)) => {
            // Categories that are integers, parsed once per batch.
            let numeric: Vec<Option<i64>> = categories.iter().map(|c| c.parse().ok()).collect();
            for (row, &x) in v.iter().enumerate() {
                out.push(
                    numeric
                        .iter()
                        .position(|&c| c == Some(x))
                        .map(|i| i as i64)
                        .ok_or_else(|| InputError::UnknownCategory {
                            row,
                            column: col.name.clone(),
                            value: x.to_string(),
                        })?,
                );
            }
        }
        (ColumnKind::Categorical { .. }, Values::Float(_)) => {
            return Err(InputError::WrongType {
                column: col.name.clone(),
                expected: "category names or integers",
                got: values.type_name(),
            })
        }
    }
    Ok(out)
}

/// Validates a batch against its stream and the limits; returns the stored columns in
/// declared order. Device serials are checked later, against the registry.
pub(crate) fn validate(
    stream: &StreamDef,
    batch: &Batch,
    limits: &Limits,
) -> Result<Vec<Vec<i64>>, InputError> {
    let rows = batch.ts.len();
    if rows > limits.max_batch_rows {
        return Err(InputError::BatchTooLarge {
            rows,
            max: limits.max_batch_rows,
        });
    }
    if batch.device.len() != rows {
        return Err(InputError::LengthMismatch {
            column: "device_id".into(),
            expected: rows,
            got: batch.device.len(),
        });
    }
    for (i, (name, values)) in batch.columns.iter().enumerate() {
        if stream.column_index(name).is_none() {
            return Err(InputError::UnknownColumn {
                stream: stream.name.clone(),
                column: name.clone(),
            });
        }
        if batch.columns[..i].iter().any(|(n, _)| n == name) {
            return Err(InputError::DuplicateColumn {
                column: name.clone(),
            });
        }
        if values.len() != rows {
            return Err(InputError::LengthMismatch {
                column: name.clone(),
                expected: rows,
                got: values.len(),
            });
        }
    }
    for (row, &ts) in batch.ts.iter().enumerate() {
        if ts < limits.min_ts || ts > limits.max_ts {
            return Err(InputError::TimestampOutOfRange {
                row,
                ts,
                min: limits.min_ts,
                max: limits.max_ts,
            });
        }
    }
    let mut out = Vec::with_capacity(stream.columns.len());
    for col in &stream.columns {
        match batch.columns.iter().find(|(n, _)| *n == col.name) {
            Some((_, values)) => out.push(encode_column(col, values)?),
            None => {
                let default = col
                    .default
                    .as_deref()
                    .and_then(|d| parse_cell(col, d))
                    .ok_or_else(|| InputError::MissingColumn {
                        stream: stream.name.clone(),
                        column: col.name.clone(),
                    })?;
                out.push(vec![default; rows]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn cycles() -> StreamDef {
        Schema::washing_machine().streams[0].clone()
    }

    fn good() -> Batch {
        let mut b = Batch::new("cycles");
        b.ts = vec![1_700_000_000_000, 1_700_000_100_000];
        b.device = vec!["WM-1".into(), "WM-1".into()];
        b.with(
            "program",
            Values::Text(vec!["cotton".into(), "wool".into()]),
        )
        .with("temp_setting_c", Values::Int(vec![40, 30]))
        .with("spin_setting_rpm", Values::Int(vec![1200, 800]))
        .with("load_kg", Values::Float(vec![4.5, 1.2]))
        .with("duration_s", Values::Float(vec![7200.0, 3600.0]))
        .with("energy_wh", Values::Float(vec![800.0, 300.0]))
        .with("water_l", Values::Float(vec![45.5, 30.0]))
        .with("fill_time_s", Values::Float(vec![60.0, 70.0]))
        .with("max_vibration_g", Values::Float(vec![0.25, 0.3]))
    }

    #[test]
    fn good_batch_scales_and_defaults() {
        let cols = validate(&cycles(), &good(), &Limits::default()).expect("valid");
        assert_eq!(cols[0], vec![0, 4]);
        assert_eq!(cols[1], vec![3, 2]);
        assert_eq!(cols[3], vec![45, 12]);
        assert_eq!(cols[8], vec![25, 30]);
        assert_eq!(cols[9], vec![0, 0], "detergent default");
        assert_eq!(cols[10], vec![0, 0], "error_code default");
    }

    #[test]
    fn each_fault_names_row_and_column() {
        let lim = Limits::default();
        let s = cycles();
        let mut b = good();
        b.columns[3].1 = Values::Float(vec![4.5, f64::NAN]);
        assert_eq!(
            validate(&s, &b, &lim),
            Err(InputError::NotFinite {
                row: 1,
                column: "load_kg".into()
            })
        );
        let mut b = good();
        b.columns[0].1 = Values::Text(vec!["cotton".into(), "boil".into()]);
        assert!(matches!(
            validate(&s, &b, &lim),
            Err(InputError::UnknownCategory { row: 1, .. })
        ));
        let mut b = good();
        b.ts[0] = 5;
        assert!(matches!(
            validate(&s, &b, &lim),
            Err(InputError::TimestampOutOfRange { row: 0, .. })
        ));
        let b = good().with("colour", Values::Int(vec![1, 2]));
        assert!(matches!(
            validate(&s, &b, &lim),
            Err(InputError::UnknownColumn { .. })
        ));
        let mut b = good();
        b.columns.remove(3);
        assert!(matches!(
            validate(&s, &b, &lim),
            Err(InputError::MissingColumn { .. })
        ));
        let mut b = good();
        b.columns[0].1 = Values::Float(vec![1.0, 2.0]);
        assert!(matches!(
            validate(&s, &b, &lim),
            Err(InputError::WrongType { .. })
        ));
        let tight = Limits {
            max_batch_rows: 1,
            ..lim
        };
        assert!(matches!(
            validate(&s, &good(), &tight),
            Err(InputError::BatchTooLarge { rows: 2, max: 1 })
        ));
        let mut b = good();
        b.columns[3].1 = Values::Float(vec![4.5, 31.0]);
        assert!(matches!(
            validate(&s, &b, &lim),
            Err(InputError::OutOfRange { row: 1, .. })
        ));
    }
}
