//! Rollup declarations: which pre-computed aggregates a stream maintains.
//!
//! A stream declares **fleet cubes** (narrow sets of dimensions × a day bucket, with counts,
//! sums, sums of squares, minima, maxima and fixed-bin histograms) and at most one **device
//! rollup** (per device and week: counts, sums and sums of squares of numeric columns, counts
//! per category and per hour of day). [`crate::rollup`] maintains them; the query planner
//! answers from the narrowest cube that covers a question. Declarations are part of the
//! stored schema, so every rollup file can be read back against the declaration that wrote
//! it.

use serde::{Deserialize, Serialize};

use super::{ColumnKind, StreamDef};

/// The rollups of one stream.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RollupDefs {
    /// Fleet cubes.
    #[serde(default)]
    pub cubes: Vec<CubeDef>,
    /// The per-device rollup, if any.
    #[serde(default)]
    pub device: Option<DeviceRollupDef>,
}

impl RollupDefs {
    /// True when the stream maintains no rollup.
    pub fn is_empty(&self) -> bool {
        self.cubes.is_empty() && self.device.is_none()
    }
}

/// A fleet cube: cells keyed by (day, one value per dimension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CubeDef {
    /// Unique within the stream.
    pub name: String,
    /// Grouping dimensions (at most [`MAX_CUBE_DIMS`]); the day is always implied.
    pub dims: Vec<Dim>,
    /// Numeric columns with sum, sum of squares, minimum and maximum per cell.
    #[serde(default)]
    pub measures: Vec<String>,
    /// Fixed-bin histograms per cell.
    #[serde(default)]
    pub histograms: Vec<HistogramDef>,
}

/// Most dimensions a cube may have (each key packs into 16 bits of a `u64`).
pub const MAX_CUBE_DIMS: usize = 4;

/// A grouping dimension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// A categorical column of the stream.
    Column(String),
    /// An attribute of the device, as registered.
    Attribute(Attribute),
    /// Hour of day (UTC) of the row's timestamp, 0..=23.
    HourOfDay,
}

impl Dim {
    /// A categorical column dimension.
    pub fn column(name: &str) -> Dim {
        Dim::Column(name.to_string())
    }

    /// How the dimension is named in results.
    pub fn label(&self) -> String {
        match self {
            Dim::Column(c) => c.clone(),
            Dim::Attribute(a) => a.name().to_string(),
            Dim::HourOfDay => "hour".to_string(),
        }
    }

    /// Parses a label (`program`, `region`, `hour`, ...) against a stream.
    pub fn parse(stream: &StreamDef, label: &str) -> Option<Dim> {
        if let Some(a) = Attribute::parse(label) {
            return Some(Dim::Attribute(a));
        }
        if label == "hour" {
            return Some(Dim::HourOfDay);
        }
        stream
            .columns
            .iter()
            .find(|c| c.name == label && c.is_categorical())
            .map(|c| Dim::Column(c.name.clone()))
    }
}

/// Device attributes usable as dimensions. A device's attributes are fixed once it has rows
/// (registering it again with different ones is refused), so rollups and scans agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// Model name.
    Model,
    /// Drum capacity (kg).
    Capacity,
    /// Region.
    Region,
    /// Socio-economic segment.
    Segment,
}

impl Attribute {
    /// Every attribute, in code order.
    pub const ALL: [Attribute; 4] = [
        Attribute::Model,
        Attribute::Capacity,
        Attribute::Region,
        Attribute::Segment,
    ];

    /// Name in results and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Attribute::Model => "model",
            Attribute::Capacity => "capacity_kg",
            Attribute::Region => "region",
            Attribute::Segment => "segment",
        }
    }

    /// Parses a name (`capacity` is accepted for `capacity_kg`).
    pub fn parse(s: &str) -> Option<Attribute> {
        match s {
            "model" => Some(Attribute::Model),
            "capacity_kg" | "capacity" => Some(Attribute::Capacity),
            "region" => Some(Attribute::Region),
            "segment" => Some(Attribute::Segment),
            _ => None,
        }
    }

    /// Index in [`Attribute::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A fixed-bin histogram of a numeric column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramDef {
    /// Unique within the cube.
    pub name: String,
    /// The numeric column.
    pub column: String,
    /// The bins.
    pub bins: Bins,
}

/// Histogram bins. Values below the first bin count in the first, values at or above the
/// last bin's lower edge count in the last (so every row lands in exactly one bin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bins {
    /// `count` bins of `width` (column units) from `lo`.
    Fixed {
        /// Lower edge of the first bin.
        lo: f64,
        /// Bin width.
        width: f64,
        /// Number of bins.
        count: u32,
    },
    /// The value as a share of the device's drum capacity, in bins of `width_pct` percent
    /// from 0 (devices without a capacity count in the last bin).
    ShareOfCapacity {
        /// Bin width in percent.
        width_pct: f64,
        /// Number of bins.
        count: u32,
    },
}

impl Bins {
    /// Number of bins.
    pub fn count(&self) -> usize {
        match self {
            Bins::Fixed { count, .. } | Bins::ShareOfCapacity { count, .. } => *count as usize,
        }
    }

    /// Lower edge of bin `i` (column units, or percent of capacity).
    pub fn lower_edge(&self, i: usize) -> f64 {
        match self {
            Bins::Fixed { lo, width, .. } => lo + width * i as f64,
            Bins::ShareOfCapacity { width_pct, .. } => width_pct * i as f64,
        }
    }

    /// The bin of a stored value (`value / scale` in column units) for a device of
    /// `capacity_kg`. Integer arithmetic on stored units where possible, so the rollup and
    /// the scan put a boundary value in the same bin.
    pub(crate) fn bin(&self, stored: i64, scale: f64, capacity_kg: f64) -> usize {
        let last = self.count().saturating_sub(1);
        // The bin is floor(x) clamped to [0, last]. floor(x) < 0 exactly when x < 0, and
        // floor(x) >= last (an integer) exactly when x >= last; in between x >= 0, where the
        // cast's truncation is the floor (without the libm call `floor` is on x86-64).
        let x = match self {
            Bins::Fixed { lo, width, .. } => (stored as f64 / scale - lo) / width,
            Bins::ShareOfCapacity { width_pct, .. } => {
                if capacity_kg > 0.0 {
                    stored as f64 / scale / capacity_kg * 100.0 / width_pct
                } else {
                    last as f64
                }
            }
        };
        if x.is_nan() || x < 0.0 {
            0
        } else if x >= last as f64 {
            last
        } else {
            x as usize
        }
    }
}

/// The per-device rollup: per device and week (Monday 00:00 UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRollupDef {
    /// Numeric columns with sum and sum of squares per device-week.
    pub sums: Vec<String>,
    /// Categorical columns with a count per category per device-week.
    pub counts: Vec<String>,
    /// Also count rows per hour of day (UTC).
    pub hours: bool,
}

/// Most bins a histogram may have.
pub const MAX_BINS: u32 = 4096;

/// Largest absolute stored value of a column that a rollup aggregates: sums of up to 2^32
/// rows stay within `i64`, squares within `i128`.
pub const MAX_ROLLUP_STORED: f64 = 2_147_483_647.0;

impl RollupDefs {
    /// Checks the declarations against the stream; the message names what is wrong.
    pub(crate) fn validate(&self, stream: &StreamDef) -> Result<(), String> {
        let numeric = |c: &str| -> Result<(), String> {
            let def = stream
                .columns
                .iter()
                .find(|d| d.name == c)
                .ok_or_else(|| format!("rollup column '{c}' is not declared"))?;
            match def.kind {
                ColumnKind::Numeric { decimals, min, max } => {
                    let s = 10f64.powi(i32::from(decimals));
                    if (min * s).abs() > MAX_ROLLUP_STORED || (max * s).abs() > MAX_ROLLUP_STORED {
                        return Err(format!(
                            "column '{c}': stored range exceeds what rollups aggregate exactly"
                        ));
                    }
                    Ok(())
                }
                ColumnKind::Categorical { .. } => {
                    Err(format!("rollup column '{c}' must be numeric"))
                }
            }
        };
        let categorical = |c: &str| -> Result<(), String> {
            match stream.columns.iter().find(|d| d.name == c) {
                Some(d) if d.is_categorical() => Ok(()),
                Some(_) => Err(format!("rollup dimension '{c}' must be categorical")),
                None => Err(format!("rollup column '{c}' is not declared")),
            }
        };
        for (i, cube) in self.cubes.iter().enumerate() {
            if cube.name.is_empty() || self.cubes[..i].iter().any(|o| o.name == cube.name) {
                return Err(format!("cube name '{}' is empty or repeated", cube.name));
            }
            if cube.dims.len() > MAX_CUBE_DIMS {
                return Err(format!(
                    "cube '{}': at most {MAX_CUBE_DIMS} dimensions",
                    cube.name
                ));
            }
            for (j, d) in cube.dims.iter().enumerate() {
                if cube.dims[..j].contains(d) {
                    return Err(format!("cube '{}': dimension repeated", cube.name));
                }
                if let Dim::Column(c) = d {
                    categorical(c)?;
                }
            }
            for (j, m) in cube.measures.iter().enumerate() {
                if cube.measures[..j].contains(m) {
                    return Err(format!("cube '{}': measure '{m}' repeated", cube.name));
                }
                numeric(m)?;
            }
            for (j, h) in cube.histograms.iter().enumerate() {
                if h.name.is_empty() || cube.histograms[..j].iter().any(|o| o.name == h.name) {
                    return Err(format!(
                        "cube '{}': histogram name '{}' is empty or repeated",
                        cube.name, h.name
                    ));
                }
                numeric(&h.column)?;
                let ok = match h.bins {
                    Bins::Fixed { lo, width, count } => {
                        lo.is_finite() && width.is_finite() && width > 0.0 && count > 0
                    }
                    Bins::ShareOfCapacity { width_pct, count } => {
                        width_pct.is_finite() && width_pct > 0.0 && count > 0
                    }
                };
                if !ok || h.bins.count() > MAX_BINS as usize {
                    return Err(format!(
                        "cube '{}': histogram '{}' needs a positive width and 1..={MAX_BINS} bins",
                        cube.name, h.name
                    ));
                }
            }
        }
        if let Some(d) = &self.device {
            for (j, c) in d.sums.iter().enumerate() {
                if d.sums[..j].contains(c) {
                    return Err(format!("device rollup: column '{c}' repeated"));
                }
                numeric(c)?;
            }
            for (j, c) in d.counts.iter().enumerate() {
                if d.counts[..j].contains(c) {
                    return Err(format!("device rollup: column '{c}' repeated"));
                }
                categorical(c)?;
            }
        }
        Ok(())
    }
}

/// The washing-machine preset's rollups of `cycles`: what the CRM, business-intelligence and
/// product-design queries need (see `docs/ARCHITECTURE.md`, "Rollups").
pub(crate) fn washing_machine_cycles() -> RollupDefs {
    use Attribute::{Capacity, Model, Region, Segment};
    let count_cube = |name: &str, dims: Vec<Dim>| CubeDef {
        name: name.to_string(),
        dims,
        measures: Vec::new(),
        histograms: Vec::new(),
    };
    let mut cubes = Vec::new();
    // D1, D3, D7: a setting by a device attribute.
    for (setting, short) in [
        ("program", "program"),
        ("temp_setting_c", "temp"),
        ("spin_setting_rpm", "spin"),
    ] {
        for attr in [Region, Segment, Model] {
            cubes.push(count_cube(
                &format!("{short}_by_{}", attr.name()),
                vec![Dim::column(setting), Dim::Attribute(attr)],
            ));
        }
    }
    // D2: loads per drum capacity.
    cubes.push(CubeDef {
        name: "load_by_capacity".into(),
        dims: vec![Dim::Attribute(Capacity)],
        measures: vec!["load_kg".into()],
        histograms: vec![
            HistogramDef {
                name: "load_kg".into(),
                column: "load_kg".into(),
                bins: Bins::Fixed {
                    lo: 0.0,
                    width: 0.5,
                    count: 30,
                },
            },
            HistogramDef {
                name: "load_share".into(),
                column: "load_kg".into(),
                bins: Bins::ShareOfCapacity {
                    width_pct: 10.0,
                    count: 11,
                },
            },
        ],
    });
    // D4: energy and water per cycle by setting.
    cubes.push(CubeDef {
        name: "resources_by_setting".into(),
        dims: vec![Dim::column("program"), Dim::column("temp_setting_c")],
        measures: vec!["energy_wh".into(), "water_l".into()],
        histograms: Vec::new(),
    });
    // D6: measures across segments and regions.
    for attr in [Segment, Region] {
        cubes.push(CubeDef {
            name: format!("measures_by_{}", attr.name()),
            dims: vec![Dim::Attribute(attr)],
            measures: vec!["energy_wh".into(), "load_kg".into(), "water_l".into()],
            histograms: Vec::new(),
        });
    }
    // D8: time of day (the weekday comes from the day bucket).
    cubes.push(count_cube("hour_of_day", vec![Dim::HourOfDay]));
    // C2 advice (energy per temperature of the same model) and C3 fleet medians.
    cubes.push(CubeDef {
        name: "model_energy_by_temp".into(),
        dims: vec![Dim::Attribute(Model), Dim::column("temp_setting_c")],
        measures: vec!["energy_wh".into()],
        histograms: Vec::new(),
    });
    cubes.push(CubeDef {
        name: "model_health".into(),
        dims: vec![Dim::Attribute(Model)],
        measures: vec!["fill_time_s".into(), "max_vibration_g".into()],
        histograms: vec![
            HistogramDef {
                name: "fill_time_s".into(),
                column: "fill_time_s".into(),
                bins: Bins::Fixed {
                    lo: 0.0,
                    width: 2.0,
                    count: 300,
                },
            },
            HistogramDef {
                name: "max_vibration_g".into(),
                column: "max_vibration_g".into(),
                bins: Bins::Fixed {
                    lo: 0.0,
                    width: 0.02,
                    count: 250,
                },
            },
        ],
    });
    RollupDefs {
        cubes,
        device: Some(DeviceRollupDef {
            sums: [
                "load_kg",
                "duration_s",
                "energy_wh",
                "water_l",
                "fill_time_s",
                "max_vibration_g",
                "detergent_ml",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            counts: vec![
                "program".into(),
                "temp_setting_c".into(),
                "error_code".into(),
            ],
            hours: true,
        }),
    }
}
