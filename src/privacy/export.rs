//! Export of everything held about one device (access and portability), and its import
//! into another database.
//!
//! An export holds the registry record, every row of every stream (all columns, in column
//! units: categories by name, numbers as decimals) and the device's week cells (the device
//! rollup: per week its rows, sums and category and hour counts). Rows come from
//! [`Db::scan_device`] and cells from the same reads the per-device questions use, so the
//! export shows what the database holds, memtables included, and the week cells of windows
//! whose raw rows retention dropped while their device rollups are kept (device summaries).
//! Import registers the device and appends the rows; week cells are derived data and are
//! recomputed from the rows, so cells kept without rows are not imported.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::batch::{Batch, Values};
use crate::db::Db;
use crate::error::{InputError, Result};
use crate::registry::DeviceInfo;
use crate::rollup::calendar::{self, Grain};
use crate::schema::ColumnKind;

/// The `format` of an export document.
pub const EXPORT_FORMAT: &str = "hearth-device-export";
const EXPORT_VERSION: u32 = 1;
/// Rows per appended batch on import.
const IMPORT_BATCH: usize = 10_000;

/// Everything held about one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceExport {
    /// `hearth-device-export`.
    pub format: String,
    /// Version of this document's layout (1).
    pub version: u32,
    /// When it was made (ms since the Unix epoch).
    pub exported_at_ms: i64,
    /// The registry record.
    pub device: DeviceInfo,
    /// Every stream of the schema, with the device's rows (oldest first).
    pub streams: Vec<StreamExport>,
    /// The device's week cells, per stream that keeps a device rollup.
    pub week_cells: Vec<WeekCells>,
}

/// One stream's rows of the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamExport {
    /// The stream.
    pub name: String,
    /// `ts`, then the stream's columns, in declared order.
    pub columns: Vec<String>,
    /// One array per row, in `columns` order: the timestamp (ms), then each value.
    pub rows: Vec<Vec<ExportValue>>,
}

/// A value of an exported row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExportValue {
    /// A timestamp (ms) or a whole number.
    Int(i64),
    /// A numeric column's value.
    Number(f64),
    /// A category's name.
    Text(String),
}

/// The device rollup of one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekCells {
    /// The stream.
    pub stream: String,
    /// The columns summed, in the order of [`WeekCell::sums`].
    pub sums: Vec<String>,
    /// The counted slots, in the order of [`WeekCell::counts`]: `column=category`, then
    /// `hour=H` (UTC) when hours are counted.
    pub counts: Vec<String>,
    /// One cell per week with rows, oldest first.
    pub weeks: Vec<WeekCell>,
}

/// One week (Monday 00:00 UTC to the next Monday) of a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekCell {
    /// The Monday, `YYYY-MM-DD`.
    pub week: String,
    /// Rows in the week.
    pub rows: u64,
    /// Sum of each summed column (column units).
    pub sums: Vec<f64>,
    /// Rows per counted slot.
    pub counts: Vec<u64>,
}

fn unknown(serial: &str) -> crate::Error {
    InputError::UnknownDevice {
        row: 0,
        serial: serial.to_string(),
    }
    .into()
}

/// Builds the export (not audited: [`Db::export_device`] records it).
pub(crate) fn export(db: &Db, serial: &str) -> Result<DeviceExport> {
    let id = db.device_id(serial).ok_or_else(|| unknown(serial))?;
    let device = db.device(id).ok_or_else(|| unknown(serial))?;
    let schema = db.schema();
    let mut streams = Vec::new();
    let mut week_cells = Vec::new();
    for (si, def) in schema.streams.iter().enumerate() {
        let rows = db.scan_device(&def.name, serial, i64::MIN..i64::MAX, &[])?;
        let mut columns = vec!["ts".to_string()];
        columns.extend(def.columns.iter().map(|c| c.name.clone()));
        let mut out = Vec::with_capacity(rows.len());
        for (i, &ts) in rows.ts.iter().enumerate() {
            let mut row = Vec::with_capacity(columns.len());
            row.push(ExportValue::Int(ts));
            for (c, col) in def.columns.iter().zip(&rows.columns) {
                let stored = col.get(i).copied().unwrap_or(0);
                row.push(match c.kind {
                    ColumnKind::Categorical { .. } => {
                        ExportValue::Text(c.category_name(stored).unwrap_or("?").to_string())
                    }
                    ColumnKind::Numeric { .. } => ExportValue::Number(c.decode_f64(stored)),
                });
            }
            out.push(row);
        }
        if let Some(layout) = db.layouts().get(si).and_then(|l| l.device.as_ref()) {
            let sums: Vec<String> = layout
                .sums
                .iter()
                .map(|&c| def.columns[c].name.clone())
                .collect();
            let mut counts = vec![String::new(); layout.slots];
            for &(c, slot0) in &layout.counts {
                let col = &def.columns[c];
                if let ColumnKind::Categorical { categories } = &col.kind {
                    for (j, name) in categories.iter().enumerate() {
                        if let Some(x) = counts.get_mut(slot0 + j) {
                            *x = format!("{}={name}", col.name);
                        }
                    }
                }
            }
            if let Some(h0) = layout.hours {
                for h in 0..24 {
                    if let Some(x) = counts.get_mut(h0 + h) {
                        *x = format!("hour={h}");
                    }
                }
            }
            // Every week held: also those whose raw rows retention dropped while their
            // cells are kept in device summaries.
            let first_week = Grain::Week.start(calendar::day_of(i64::MIN));
            let end_week = calendar::day_of(i64::MAX);
            // Weeks split across sources come as several cells: add them up.
            let mut weeks: BTreeMap<i64, (u64, Vec<i64>, Vec<u64>)> = BTreeMap::new();
            db.device_cells(si, id, first_week, end_week, usize::MAX, |cell| {
                let w = weeks
                    .entry(cell.week)
                    .or_insert_with(|| (0, vec![0; sums.len()], vec![0; counts.len()]));
                w.0 += cell.count;
                for (a, &b) in w.1.iter_mut().zip(cell.sums) {
                    *a = a.saturating_add(b);
                }
                for &(slot, n) in cell.slots {
                    if let Some(x) = w.2.get_mut(slot as usize) {
                        *x += n;
                    }
                }
            })?;
            if weeks.is_empty() {
                streams.push(StreamExport {
                    name: def.name.clone(),
                    columns,
                    rows: out,
                });
                continue;
            }
            week_cells.push(WeekCells {
                stream: def.name.clone(),
                weeks: weeks
                    .into_iter()
                    .map(|(week, (rows, s, counts))| WeekCell {
                        week: calendar::format_day(week),
                        rows,
                        sums: s
                            .iter()
                            .zip(&layout.sums)
                            .map(|(&v, &c)| def.columns[c].decode_f64(v))
                            .collect(),
                        counts,
                    })
                    .collect(),
                sums,
                counts,
            });
        }
        streams.push(StreamExport {
            name: def.name.clone(),
            columns,
            rows: out,
        });
    }
    Ok(DeviceExport {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        exported_at_ms: super::now_ms(),
        device,
        streams,
        week_cells,
    })
}

fn invalid(m: String) -> crate::Error {
    InputError::Invalid(m).into()
}

/// Registers the export's device and appends its rows; returns the rows accepted.
pub(crate) fn import(db: &Db, e: &DeviceExport) -> Result<u64> {
    if e.format != EXPORT_FORMAT || e.version != EXPORT_VERSION {
        return Err(invalid(format!(
            "not a hearth device export of version {EXPORT_VERSION} (format '{}', version {})",
            e.format, e.version
        )));
    }
    db.register(e.device.clone())?;
    let mut accepted = 0;
    for s in &e.streams {
        let def = db
            .schema()
            .stream(&s.name)
            .ok_or_else(|| InputError::UnknownStream(s.name.clone()))?;
        // Columns by name: an export lists them in its own order.
        let mut cols: Vec<(usize, &crate::schema::ColumnDef)> = Vec::new();
        for c in &def.columns {
            let pos =
                s.columns.iter().position(|n| n == &c.name).ok_or_else(|| {
                    invalid(format!("stream '{}' lacks column '{}'", s.name, c.name))
                })?;
            cols.push((pos, c));
        }
        let ts_pos = s
            .columns
            .iter()
            .position(|n| n == "ts")
            .ok_or_else(|| invalid(format!("stream '{}' lacks column 'ts'", s.name)))?;
        for (chunk_no, chunk) in s.rows.chunks(IMPORT_BATCH).enumerate() {
            let row_at = |i: usize| chunk_no * IMPORT_BATCH + i;
            let mut ts = Vec::with_capacity(chunk.len());
            for (i, r) in chunk.iter().enumerate() {
                match r.get(ts_pos) {
                    Some(ExportValue::Int(t)) => ts.push(*t),
                    _ => {
                        return Err(invalid(format!(
                            "stream '{}', row {}: ts is not an integer",
                            s.name,
                            row_at(i)
                        )))
                    }
                }
            }
            let mut columns = Vec::with_capacity(cols.len());
            for &(pos, c) in &cols {
                let values = match c.kind {
                    ColumnKind::Categorical { .. } => {
                        let mut v = Vec::with_capacity(chunk.len());
                        for r in chunk {
                            v.push(match r.get(pos) {
                                Some(ExportValue::Text(t)) => t.clone(),
                                Some(ExportValue::Int(x)) => x.to_string(),
                                Some(ExportValue::Number(x)) => x.to_string(),
                                None => String::new(),
                            });
                        }
                        Values::Text(v)
                    }
                    ColumnKind::Numeric { .. } => {
                        let mut v = Vec::with_capacity(chunk.len());
                        for (i, r) in chunk.iter().enumerate() {
                            v.push(match r.get(pos) {
                                Some(ExportValue::Number(x)) => *x,
                                Some(ExportValue::Int(x)) => *x as f64,
                                _ => {
                                    return Err(invalid(format!(
                                        "stream '{}', row {}, column '{}': not a number",
                                        s.name,
                                        row_at(i),
                                        c.name
                                    )))
                                }
                            });
                        }
                        Values::Float(v)
                    }
                };
                columns.push((c.name.clone(), values));
            }
            let batch = Batch {
                stream: s.name.clone(),
                device: vec![e.device.serial.clone(); ts.len()],
                ts,
                columns,
            };
            accepted += db.append(&batch)?.accepted;
        }
    }
    Ok(accepted)
}
