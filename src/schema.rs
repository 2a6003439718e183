//! The schema: which streams exist, their columns, and how each column is stored.
//!
//! A stream is like a table: every row has a timestamp (`ts`, i64 milliseconds UTC), a device
//! (`device_id`, a registered serial) and the stream's declared columns. Each declared column
//! is stored as one `i64` per row:
//!
//! - a **categorical** column stores the index of the value in its declared dictionary;
//! - a **numeric** column stores the value scaled by `10^decimals` and rounded, so `load_kg` at
//!   one decimal stores 4.5 kg as 45: exact, and small for the codecs.
//!
//! Invariants: stream and column names are unique and non-empty; a stream is identified on
//! disk by its index in [`Schema::streams`] and a column by its index in
//! [`StreamDef::columns`], so a stored schema is never reordered. The schema is written once
//! when the database is created; opening with a different one is
//! [`Error::IncompatibleSchema`](crate::Error::IncompatibleSchema).

use serde::{Deserialize, Serialize};

use crate::error::{Error, InputError, Result};

mod rollups;

pub use rollups::{
    Attribute, Bins, CubeDef, DeviceRollupDef, Dim, HistogramDef, RollupDefs, MAX_BINS,
    MAX_CUBE_DIMS, MAX_ROLLUP_STORED,
};

/// One day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The whole schema of a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Streams, in their on-disk order.
    pub streams: Vec<StreamDef>,
}

/// A stream: rows keyed by (device, timestamp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamDef {
    /// Name, e.g. `cycles`.
    pub name: String,
    /// Length of the time windows that segment files cover, in milliseconds. Windows are
    /// aligned on the Unix epoch: window `w` covers `[w * window_ms, (w + 1) * window_ms)`.
    pub window_ms: i64,
    /// Declared columns, in their on-disk order.
    pub columns: Vec<ColumnDef>,
    /// Rollups maintained for the stream (none in schemas written before rollups existed).
    #[serde(default, skip_serializing_if = "RollupDefs::is_empty")]
    pub rollups: RollupDefs,
}

/// A declared column of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Name, e.g. `load_kg`.
    pub name: String,
    /// How values are interpreted and stored.
    pub kind: ColumnKind,
    /// When the column is absent from a batch, this value (a category name, or a number) is
    /// used; when `None`, the column is required.
    pub default: Option<String>,
}

/// The kind of a column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// A setting or label from a fixed dictionary, stored as the value's index.
    Categorical {
        /// The dictionary, in code order.
        categories: Vec<String>,
    },
    /// A measured number, stored exactly as `round(value * 10^decimals)`.
    Numeric {
        /// Decimal places kept (0..=9): the resolution is `10^-decimals`.
        decimals: u8,
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
}

impl ColumnDef {
    /// A categorical column.
    pub fn categorical(name: &str, categories: &[&str]) -> Self {
        ColumnDef {
            name: name.to_string(),
            kind: ColumnKind::Categorical {
                categories: categories.iter().map(|c| c.to_string()).collect(),
            },
            default: None,
        }
    }

    /// A numeric column with `decimals` decimal places, accepting `[min, max]`.
    pub fn numeric(name: &str, decimals: u8, min: f64, max: f64) -> Self {
        ColumnDef {
            name: name.to_string(),
            kind: ColumnKind::Numeric { decimals, min, max },
            default: None,
        }
    }

    /// The same column, optional, with a default value.
    pub fn with_default(mut self, default: &str) -> Self {
        self.default = Some(default.to_string());
        self
    }

    /// The factor `10^decimals` of a numeric column (1 for categoricals).
    pub fn scale(&self) -> f64 {
        match self.kind {
            ColumnKind::Numeric { decimals, .. } => 10f64.powi(i32::from(decimals)),
            ColumnKind::Categorical { .. } => 1.0,
        }
    }

    /// The stored code of a category name, if it is in the dictionary.
    pub fn category_code(&self, value: &str) -> Option<i64> {
        match &self.kind {
            ColumnKind::Categorical { categories } => {
                categories.iter().position(|c| c == value).map(|i| i as i64)
            }
            ColumnKind::Numeric { .. } => None,
        }
    }

    /// The category name of a stored code.
    pub fn category_name(&self, code: i64) -> Option<&str> {
        match &self.kind {
            ColumnKind::Categorical { categories } => usize::try_from(code)
                .ok()
                .and_then(|i| categories.get(i))
                .map(String::as_str),
            ColumnKind::Numeric { .. } => None,
        }
    }

    /// True for categorical columns.
    pub fn is_categorical(&self) -> bool {
        matches!(self.kind, ColumnKind::Categorical { .. })
    }

    /// Converts a stored code back to the value a caller sees, as a number (numeric columns)
    /// or the category index (categoricals).
    pub fn decode_f64(&self, stored: i64) -> f64 {
        stored as f64 / self.scale()
    }
}

impl StreamDef {
    /// The index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The window a timestamp falls in.
    pub fn window_of(&self, ts: i64) -> i64 {
        ts.div_euclid(self.window_ms)
    }

    /// The first and last window holding an instant of `range` (ms, end exclusive; a range
    /// that is empty gives the window of its start twice).
    pub(crate) fn windows_of(&self, range: &std::ops::Range<i64>) -> (i64, i64) {
        let last = self.window_of(range.end.saturating_sub(1));
        let first = self.window_of(range.start);
        (first, last.max(first))
    }
}

impl Schema {
    /// Checks names, windows and value ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Input(InputError::InvalidSchema(m)));
        if self.streams.is_empty() {
            return bad("no streams".into());
        }
        if self.streams.len() > usize::from(u16::MAX) {
            return bad("too many streams".into());
        }
        for (i, s) in self.streams.iter().enumerate() {
            if s.name.is_empty() || self.streams[..i].iter().any(|o| o.name == s.name) {
                return bad(format!("stream name '{}' is empty or repeated", s.name));
            }
            if s.window_ms < 60_000 {
                return bad(format!(
                    "stream '{}': window_ms must be at least one minute",
                    s.name
                ));
            }
            if s.columns.len() > 255 {
                return bad(format!("stream '{}': more than 255 columns", s.name));
            }
            for (j, c) in s.columns.iter().enumerate() {
                if c.name.is_empty()
                    || c.name == "ts"
                    || c.name == "device_id"
                    || s.columns[..j].iter().any(|o| o.name == c.name)
                {
                    return bad(format!(
                        "stream '{}': column name '{}' is empty, reserved or repeated",
                        s.name, c.name
                    ));
                }
                match &c.kind {
                    ColumnKind::Categorical { categories } => {
                        if categories.is_empty() || categories.len() > 65_536 {
                            return bad(format!("column '{}': needs 1..=65536 categories", c.name));
                        }
                        for (k, cat) in categories.iter().enumerate() {
                            if categories[..k].contains(cat) {
                                return bad(format!(
                                    "column '{}': category '{cat}' repeated",
                                    c.name
                                ));
                            }
                        }
                    }
                    ColumnKind::Numeric { decimals, min, max } => {
                        let limit = 2f64.powi(52) / 10f64.powi(i32::from(*decimals));
                        if *decimals > 9
                            || !min.is_finite()
                            || !max.is_finite()
                            || min > max
                            || min.abs() > limit
                            || max.abs() > limit
                        {
                            return bad(format!(
                                "column '{}': decimals must be <= 9 and min <= max within +-{limit}",
                                c.name
                            ));
                        }
                    }
                }
                if let Some(d) = &c.default {
                    if crate::batch::parse_cell(c, d).is_none() {
                        return bad(format!(
                            "column '{}': default '{d}' is not a valid value",
                            c.name
                        ));
                    }
                }
            }
            if let Err(m) = s.rollups.validate(s) {
                return bad(format!("stream '{}': {m}", s.name));
            }
        }
        Ok(())
    }

    /// The index of a stream by name.
    pub fn stream_index(&self, name: &str) -> Option<usize> {
        self.streams.iter().position(|s| s.name == name)
    }

    /// The stream definition by name.
    pub fn stream(&self, name: &str) -> Option<&StreamDef> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// True when the schemas differ at most in their rollup declarations.
    pub(crate) fn same_but_rollups(&self, other: &Schema) -> bool {
        let strip = |s: &Schema| Schema {
            streams: s
                .streams
                .iter()
                .map(|d| StreamDef {
                    rollups: RollupDefs::default(),
                    ..d.clone()
                })
                .collect(),
        };
        strip(self) == strip(other)
    }

    /// Explains the first difference between two schemas, or `None` when equal.
    pub(crate) fn difference(&self, other: &Schema) -> Option<String> {
        if self == other {
            return None;
        }
        if self.streams.len() != other.streams.len() {
            return Some(format!(
                "stored schema has {} streams, the given one {}",
                self.streams.len(),
                other.streams.len()
            ));
        }
        for (a, b) in self.streams.iter().zip(&other.streams) {
            if a.name != b.name {
                return Some(format!(
                    "stream '{}' stored where '{}' is given",
                    a.name, b.name
                ));
            }
            if a.window_ms != b.window_ms {
                return Some(format!("stream '{}': window_ms differs", a.name));
            }
            if a.columns.len() != b.columns.len() {
                return Some(format!("stream '{}': column count differs", a.name));
            }
            for (ca, cb) in a.columns.iter().zip(&b.columns) {
                if ca != cb {
                    return Some(format!("stream '{}': column '{}' differs", a.name, ca.name));
                }
            }
            if a.rollups != b.rollups {
                return Some(format!("stream '{}': rollups differ", a.name));
            }
        }
        Some("schemas differ".into())
    }

    /// The washing-machine preset of the product brief: `cycles` (one row per wash) and
    /// `samples` (2 Hz while a wash runs).
    pub fn washing_machine() -> Schema {
        let cycles = StreamDef {
            name: "cycles".into(),
            window_ms: 365 * DAY_MS,
            columns: vec![
                ColumnDef::categorical("program", PROGRAMS),
                ColumnDef::categorical("temp_setting_c", TEMPERATURES),
                ColumnDef::categorical("spin_setting_rpm", SPIN_SPEEDS),
                ColumnDef::numeric("load_kg", 1, 0.0, 30.0),
                ColumnDef::numeric("duration_s", 0, 0.0, 86_400.0),
                ColumnDef::numeric("energy_wh", 0, 0.0, 20_000.0),
                ColumnDef::numeric("water_l", 1, 0.0, 1_000.0),
                ColumnDef::numeric("fill_time_s", 0, 0.0, 7_200.0),
                ColumnDef::numeric("max_vibration_g", 2, 0.0, 50.0),
                ColumnDef::numeric("detergent_ml", 0, 0.0, 1_000.0).with_default("0"),
                ColumnDef::categorical("error_code", ERROR_CODES).with_default("none"),
            ],
            rollups: RollupDefs::default(),
        };
        let samples = StreamDef {
            name: "samples".into(),
            window_ms: 7 * DAY_MS,
            columns: vec![
                ColumnDef::categorical("phase", PHASES),
                ColumnDef::numeric("drum_rpm", 0, 0.0, 2_000.0),
                ColumnDef::numeric("water_temp_c", 1, -20.0, 110.0),
                ColumnDef::numeric("power_w", 0, 0.0, 10_000.0),
                ColumnDef::numeric("vibration_g", 2, 0.0, 50.0),
            ],
            rollups: RollupDefs::default(),
        };
        let mut cycles = cycles;
        cycles.rollups = rollups::washing_machine_cycles();
        Schema {
            streams: vec![cycles, samples],
        }
    }
}

/// Wash programs of the preset, in code order.
pub const PROGRAMS: &[&str] = &[
    "cotton",
    "eco_40_60",
    "synthetics",
    "mixed",
    "wool",
    "delicates",
    "quick_15",
    "quick_30",
    "bedding",
    "sportswear",
    "rinse_spin",
    "drain",
];
/// Temperature settings of the preset (degrees Celsius).
pub const TEMPERATURES: &[&str] = &["0", "20", "30", "40", "60", "90"];
/// Spin settings of the preset (rpm).
pub const SPIN_SPEEDS: &[&str] = &["0", "400", "600", "800", "1000", "1200", "1400", "1600"];
/// Error codes of the preset: `none`, then fault families.
pub const ERROR_CODES: &[&str] = &[
    "none",
    "E10_fill",
    "E20_drain",
    "E30_door",
    "E40_unbalance",
    "E50_motor",
    "E60_heater",
];
/// Wash phases of the preset.
pub const PHASES: &[&str] = &["fill", "wash", "rinse", "spin", "drain"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_is_valid() {
        Schema::washing_machine()
            .validate()
            .expect("preset validates");
    }

    #[test]
    fn repeated_column_is_rejected() {
        let mut s = Schema::washing_machine();
        let c = s.streams[0].columns[0].clone();
        s.streams[0].columns.push(c);
        assert!(matches!(
            s.validate(),
            Err(Error::Input(InputError::InvalidSchema(_)))
        ));
    }

    #[test]
    fn difference_names_the_column() {
        let a = Schema::washing_machine();
        let mut b = a.clone();
        b.streams[0].columns[3] = ColumnDef::numeric("load_kg", 2, 0.0, 30.0);
        let d = a.difference(&b).expect("differs");
        assert!(d.contains("load_kg"), "{d}");
        assert_eq!(a.difference(&a.clone()), None);
    }
}
