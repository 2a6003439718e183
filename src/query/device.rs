//! Per-device questions (customer relationship management and product support): the last
//! cycles (C1), a usage summary with advice (C2), a health verdict with its evidence (C3),
//! the 2 Hz trace of one cycle (C4) and the fleet snapshot (C5).
//!
//! C2 and C3 read only the device's week cells (see [`crate::rollup::device`]) and all-time
//! fleet cells of its model (energy per temperature; fill-time and vibration histograms);
//! they never read raw rows. Week cells come from the segments' rollup files, the memtables
//! and the device summaries of windows whose raw rows retention dropped while their
//! device-rollup period runs (`privacy::retention`): over whole weeks these answer as before
//! the drop; the model's fleet cells go with the raw rows. C1 and C4 return raw rows only.

use serde::Serialize;

use crate::db::{Db, DeviceRows};
use crate::error::{InputError, Result};
use crate::rollup::cube;
use crate::rollup::device::{CellView, WeekAcc};
use crate::rollup::{calendar, Layouts};
use crate::schema::{Attribute, ColumnKind, Schema, StreamDef, DAY_MS};

/// The stream the per-device questions read (the washing-machine preset's names).
const CYCLES: &str = "cycles";
const SAMPLES: &str = "samples";

/// One cycle (a `cycles` row), decoded to column units. Names borrow from the database's
/// schema, so a row costs one allocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CycleRow<'a> {
    /// Start (ms since the epoch, UTC).
    pub ts: i64,
    /// Column values by name: categories as their names, numbers in column units.
    pub values: Vec<(&'a str, CellValue<'a>)>,
}

/// A decoded cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CellValue<'a> {
    /// A category.
    Text(&'a str),
    /// A number.
    Number(f64),
}

impl<'a> CycleRow<'a> {
    /// A column's value.
    pub fn get(&self, column: &str) -> Option<&CellValue<'a>> {
        self.values
            .iter()
            .find(|(n, _)| *n == column)
            .map(|(_, v)| v)
    }

    /// A numeric column's value.
    pub fn number(&self, column: &str) -> Option<f64> {
        match self.get(column)? {
            CellValue::Number(n) => Some(*n),
            CellValue::Text(_) => None,
        }
    }
}

fn decode_row(def: &StreamDef, ts: i64, vals: impl Iterator<Item = i64>) -> CycleRow<'_> {
    CycleRow {
        ts,
        values: def
            .columns
            .iter()
            .zip(vals)
            .map(|(c, v)| {
                let cell = match &c.kind {
                    ColumnKind::Categorical { .. } => {
                        CellValue::Text(c.category_name(v).unwrap_or("?"))
                    }
                    ColumnKind::Numeric { .. } => CellValue::Number(c.decode_f64(v)),
                };
                (c.name.as_str(), cell)
            })
            .collect(),
    }
}

/// A category's share of a device's cycles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    /// The category.
    pub name: String,
    /// Cycles.
    pub cycles: u64,
    /// Share of all cycles of the period (0..=1).
    pub share: f64,
}

/// A piece of advice, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    /// `temperature`, `load` or `detergent`.
    pub kind: String,
    /// What to tell the owner.
    pub message: String,
    /// Estimated saving, kWh a year (when it is about energy).
    pub kwh_per_year: Option<f64>,
}

/// C2: how a device is used over a period of whole weeks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// The device.
    pub serial: String,
    /// First day of the period (a Monday; days since 1970-01-01).
    pub from_day: i64,
    /// First day after the period.
    pub to_day: i64,
    /// Weeks in the period.
    pub weeks: u32,
    /// Cycles in the period.
    pub cycles: u64,
    /// Cycles per week.
    pub cycles_per_week: f64,
    /// Mean load (kg).
    pub mean_load_kg: Option<f64>,
    /// Mean load as a share of the drum's capacity (0..=1).
    pub load_share_of_capacity: Option<f64>,
    /// Cycles per program, most used first.
    pub programs: Vec<Share>,
    /// Cycles per temperature setting, most used first.
    pub temperatures: Vec<Share>,
    /// Energy used (kWh).
    pub energy_kwh: f64,
    /// Water used (litres).
    pub water_l: f64,
    /// Mean detergent dose (ml).
    pub mean_detergent_ml: Option<f64>,
    /// Cycles started in each hour of the day (UTC), 24 entries.
    pub hours: Vec<u64>,
    /// The (at most three) hours most cycles start in, most frequent first.
    pub usual_hours: Vec<u32>,
    /// Advice derived from the above.
    pub advice: Vec<Advice>,
}

/// Thresholds of the advice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdviceConfig {
    /// Share of cycles at 60 °C or more above which temperature advice is given.
    pub hot_share: f64,
    /// Mean load share of capacity below which load advice is given.
    pub low_load_share: f64,
    /// Recommended detergent dose (ml per cycle).
    pub recommended_detergent_ml: f64,
}

impl Default for AdviceConfig {
    fn default() -> Self {
        AdviceConfig {
            hot_share: 0.5,
            low_load_share: 0.5,
            recommended_detergent_ml: 75.0,
        }
    }
}

/// What the health check reads of one device's week cells over a period: by week (dense:
/// week `i` starts on day `first + 7 i`, `count[i]` is 0 when it has no rows) the row count
/// and the sums of the columns `keep` (`sums[i * keep.len() + j]` for `keep[j]`), and the
/// category slots `slots` totalled over the weeks before `split` (`early`) and from it on
/// (`late`). Only that: the health check used to zero and fill 25 slots and 8 sums for each
/// of 112 weeks, then walk them per error code.
struct Weeks {
    first: i64,
    count: Vec<u64>,
    sums: Vec<i64>,
    nkeep: usize,
    early: Vec<u64>,
    late: Vec<u64>,
}

impl Weeks {
    /// The weeks starting in `[from_week, to_week)` (Mondays).
    fn read(
        db: &Db,
        c: &Cols,
        device: u32,
        (from_week, to_week): (i64, i64),
        keep: &[usize],
        slots: std::ops::Range<usize>,
        split: i64,
    ) -> Result<Weeks> {
        let n = usize::try_from((to_week - from_week).max(0) / 7).unwrap_or(0);
        let nkeep = keep.len();
        let mut w = Weeks {
            first: from_week,
            count: vec![0; n],
            sums: vec![0; n * nkeep],
            nkeep,
            early: vec![0; slots.len()],
            late: vec![0; slots.len()],
        };
        db.device_cells(
            c.stream,
            device,
            from_week,
            to_week,
            slots.end,
            |cell: &CellView<'_>| {
                let Some(i) = usize::try_from((cell.week - w.first) / 7)
                    .ok()
                    .filter(|&i| i < n)
                else {
                    return;
                };
                w.count[i] += cell.count;
                for (dst, &k) in w.sums[i * nkeep..(i + 1) * nkeep].iter_mut().zip(keep) {
                    *dst += cell.sums.get(k).copied().unwrap_or(0);
                }
                let totals = if cell.week < split {
                    &mut w.early
                } else {
                    &mut w.late
                };
                for &(slot, k) in cell.slots {
                    if let Some(x) = (slot as usize)
                        .checked_sub(slots.start)
                        .and_then(|s| totals.get_mut(s))
                    {
                        *x += k;
                    }
                }
            },
        )?;
        Ok(w)
    }

    fn len(&self) -> usize {
        self.count.len()
    }

    fn week(&self, i: usize) -> i64 {
        self.first + 7 * i as i64
    }

    /// Week `i`'s sum of `keep[j]`.
    fn sum(&self, i: usize, j: usize) -> i64 {
        self.sums.get(i * self.nkeep + j).copied().unwrap_or(0)
    }

    /// Index of the first week starting at or after `day`.
    fn first_from(&self, day: i64) -> usize {
        usize::try_from((day - self.first + 6).div_euclid(7)).map_or(0, |i| i.min(self.len()))
    }
}

/// Where the per-device questions find what they read, resolved once per database (see
/// [`Db::device_cols`]): positions in the device rollup's sums and slots, scales, and the
/// fleet cubes that price advice and give model medians.
#[derive(Debug)]
pub(crate) struct Cols {
    stream: usize,
    load: usize,
    energy: usize,
    water: usize,
    fill: usize,
    vib: usize,
    detergent: usize,
    /// (first slot, number of categories).
    program: (usize, usize),
    temp: (usize, usize),
    error: (usize, usize),
    hours: usize,
    nsums: usize,
    nslots: usize,
    /// Scale of each summed column, by position in the sums.
    scales: Vec<f64>,
    /// `model_energy_by_temp`: cube index and the position of `energy_wh` in its measures.
    model_energy: Option<(usize, usize)>,
    /// `model_health`: cube index and the histograms of fill time and vibration.
    model_health: Option<(usize, Option<usize>, Option<usize>)>,
}

impl Cols {
    /// `None` unless the schema has the washing-machine preset's `cycles` device rollup.
    pub(crate) fn resolve(schema: &Schema, layouts: &[Layouts]) -> Option<Cols> {
        let stream = schema.stream_index(CYCLES)?;
        let def = &schema.streams[stream];
        let rd = def.rollups.device.as_ref()?;
        let layouts = layouts.get(stream)?;
        let layout = layouts.device.as_ref()?;
        let sum = |n: &str| rd.sums.iter().position(|s| s == n);
        let count = |n: &str| -> Option<(usize, usize)> {
            let k = rd.counts.iter().position(|s| s == n)?;
            let (col, at) = *layout.counts.get(k)?;
            let len = def.columns.get(col).map_or(0, |c| match &c.kind {
                ColumnKind::Categorical { categories } => categories.len(),
                ColumnKind::Numeric { .. } => 0,
            });
            Some((at, len))
        };
        let cube = |name: &str| layouts.cubes.iter().position(|l| l.name == name);
        let col_name = |c: usize| def.columns.get(c).map_or("", |d| d.name.as_str());
        let model_energy = cube("model_energy_by_temp").and_then(|i| {
            let m = layouts.cubes[i]
                .measures
                .iter()
                .position(|&c| col_name(c) == "energy_wh")?;
            Some((i, m))
        });
        let model_health = cube("model_health").map(|i| {
            let hist = |n: &str| {
                layouts.cubes[i]
                    .hists
                    .iter()
                    .position(|h| col_name(h.col) == n)
            };
            (i, hist("fill_time_s"), hist("max_vibration_g"))
        });
        Some(Cols {
            stream,
            load: sum("load_kg")?,
            energy: sum("energy_wh")?,
            water: sum("water_l")?,
            fill: sum("fill_time_s")?,
            vib: sum("max_vibration_g")?,
            detergent: sum("detergent_ml")?,
            program: count("program")?,
            temp: count("temp_setting_c")?,
            error: count("error_code")?,
            hours: layout.hours?,
            nsums: layout.sums.len(),
            nslots: layout.slots,
            scales: layout
                .sums
                .iter()
                .map(|&c| def.columns.get(c).map_or(1.0, |d| d.scale()))
                .collect(),
            model_energy,
            model_health,
        })
    }

    fn scale(&self, k: usize) -> f64 {
        self.scales.get(k).copied().unwrap_or(1.0)
    }
}

fn cols(db: &Db) -> Result<&Cols> {
    db.device_cols().ok_or_else(|| {
        if db.schema().stream_index(CYCLES).is_none() {
            InputError::UnknownStream(CYCLES.into()).into()
        } else {
            InputError::Invalid(
                "per-device questions need the washing-machine preset's device rollup of \
                 'cycles'"
                    .into(),
            )
            .into()
        }
    })
}

fn category_names(def: &StreamDef, name: &str) -> Vec<String> {
    categories(def, name).to_vec()
}

/// The categories of a categorical column (empty for anything else).
fn categories<'d>(def: &'d StreamDef, name: &str) -> &'d [String] {
    def.column_index(name)
        .and_then(|i| match &def.columns[i].kind {
            ColumnKind::Categorical { categories } => Some(categories.as_slice()),
            ColumnKind::Numeric { .. } => None,
        })
        .unwrap_or(&[])
}

pub(crate) fn category_names_pub(def: &StreamDef, name: &str) -> Vec<String> {
    category_names(def, name)
}

fn shares(names: &[String], counts: &[u64], total: u64) -> Vec<Share> {
    let mut v: Vec<Share> = names
        .iter()
        .zip(counts)
        .filter(|(_, &c)| c > 0)
        .map(|(n, &c)| Share {
            name: n.clone(),
            cycles: c,
            share: c as f64 / total.max(1) as f64,
        })
        .collect();
    v.sort_by(|a, b| b.cycles.cmp(&a.cycles).then_with(|| a.name.cmp(&b.name)));
    v
}

impl Db {
    fn device_of(&self, serial: &str) -> Result<u32> {
        self.device_id(serial).ok_or_else(|| {
            InputError::UnknownDevice {
                row: 0,
                serial: serial.to_string(),
            }
            .into()
        })
    }

    /// C1: the device's last `n` cycles, newest first.
    pub fn last_cycles(&self, serial: &str, n: usize) -> Result<Vec<CycleRow<'_>>> {
        let device = self.device_of(serial)?;
        let stream = self
            .schema()
            .stream_index(CYCLES)
            .ok_or_else(|| InputError::UnknownStream(CYCLES.into()))?;
        let def = &self.schema().streams[stream];
        let last = self.rollups().streams[stream]
            .last_ts
            .get(device as usize)
            .copied()
            .unwrap_or(i64::MIN);
        if last == i64::MIN || n == 0 {
            return Ok(Vec::new());
        }
        // The tails kept in the rollup files and the memtables' rows answer without decoding
        // a block; otherwise the latest window, then the whole history.
        if let Some(rows) = self.device_tail(stream, device, n)? {
            return Ok(rows
                .iter()
                .rev()
                .map(|(t, v)| decode_row(def, *t, v.iter().copied()))
                .collect());
        }
        let w = def.window_of(last);
        let mut rows = self.scan_device(
            CYCLES,
            serial,
            w.saturating_mul(def.window_ms)..last.saturating_add(1),
            &[],
        )?;
        if rows.len() < n {
            rows = self.scan_device(CYCLES, serial, i64::MIN..last.saturating_add(1), &[])?;
        }
        Ok(newest(def, &rows, n))
    }

    /// C2: the device's usage over the whole weeks (Monday to Sunday, UTC) covering
    /// `[from_ms, to_ms)`, with advice.
    pub fn usage(
        &self,
        serial: &str,
        from_ms: i64,
        to_ms: i64,
        cfg: &AdviceConfig,
    ) -> Result<Usage> {
        let device = self.device_of(serial)?;
        let c = cols(self)?;
        let def = &self.schema().streams[c.stream];
        let (w0, w1) = week_span(from_ms, to_ms)?;
        // Read before the cells: its cache miss overlaps theirs.
        let capacity = self.rollups().attrs.device(device).capacity_kg;
        // Only the period's total is needed: fold every cell into one accumulator.
        let mut t = WeekAcc {
            count: 0,
            sums: vec![0; c.nsums],
            sumsq: vec![0; c.nsums],
            slots: vec![0; c.nslots],
        };
        self.device_cells(c.stream, device, w0, w1, c.nslots, |cell| {
            t.merge_view(cell)
        })?;
        let nweeks = ((w1 - w0) / 7) as u32;
        let n = t.count;
        let mean = |k: usize| (n > 0).then(|| t.sums[k] as f64 / n as f64 / c.scale(k));
        let mean_load = mean(c.load);
        let programs = shares(
            categories(def, "program"),
            &t.slots[c.program.0..c.program.0 + c.program.1],
            n,
        );
        let temp_names = categories(def, "temp_setting_c");
        let temp_counts = &t.slots[c.temp.0..c.temp.0 + c.temp.1];
        let temperatures = shares(temp_names, temp_counts, n);
        let hours: Vec<u64> = t.slots[c.hours..c.hours + 24].to_vec();
        let mut order: Vec<u32> = (0..24).filter(|&h| hours[h as usize] > 0).collect();
        order.sort_by(|a, b| hours[*b as usize].cmp(&hours[*a as usize]).then(a.cmp(b)));
        order.truncate(3);
        let mut u = Usage {
            serial: serial.to_string(),
            from_day: w0,
            to_day: w1,
            weeks: nweeks,
            cycles: n,
            cycles_per_week: n as f64 / f64::from(nweeks.max(1)),
            mean_load_kg: mean_load,
            load_share_of_capacity: mean_load.filter(|_| capacity > 0.0).map(|l| l / capacity),
            programs,
            temperatures,
            energy_kwh: t.sums[c.energy] as f64 / c.scale(c.energy) / 1000.0,
            water_l: t.sums[c.water] as f64 / c.scale(c.water),
            mean_detergent_ml: mean(c.detergent),
            hours,
            usual_hours: order,
            advice: Vec::new(),
        };
        u.advice = self.advice(&u, c, device, temp_names, temp_counts, cfg);
        Ok(u)
    }

    fn advice(
        &self,
        u: &Usage,
        c: &Cols,
        device: u32,
        temp_names: &[String],
        temp_counts: &[u64],
        cfg: &AdviceConfig,
    ) -> Vec<Advice> {
        let mut out = Vec::new();
        if u.cycles == 0 {
            return out;
        }
        let per_year = 52.0 / f64::from(u.weeks.max(1));
        // Temperature: hot washes at 40 °C, priced with the model's fleet energy per
        // temperature (all-time cells of the `model_energy_by_temp` cube).
        let hot: Vec<usize> = temp_names
            .iter()
            .enumerate()
            .filter(|(_, t)| t.parse::<u32>().is_ok_and(|t| t >= 60))
            .map(|(i, _)| i)
            .collect();
        let hot_cycles: u64 = hot.iter().map(|&i| temp_counts[i]).sum();
        let hot_share = hot_cycles as f64 / u.cycles as f64;
        if hot_share >= cfg.hot_share {
            let target = temp_names.iter().position(|t| t == "40");
            let fleet = target.map(|t40| {
                let e40 = self.model_energy(c, device, t40);
                let mut saving = 0.0;
                let mut known = e40.is_some();
                for &i in &hot {
                    match (self.model_energy(c, device, i), e40) {
                        (Some(eh), Some(e40)) => {
                            saving += temp_counts[i] as f64 * (eh - e40).max(0.0)
                        }
                        _ if temp_counts[i] > 0 => known = false,
                        _ => {}
                    }
                }
                (known, saving / 1000.0 * per_year)
            });
            let (msg, kwh) = match fleet {
                Some((true, kwh)) => (
                    format!(
                        "{:.0}% of washes are at 60 °C or hotter; washing them at 40 °C would \
                         save about {kwh:.0} kWh a year (energy per cycle of the same model \
                         across the fleet)",
                        hot_share * 100.0
                    ),
                    Some(kwh),
                ),
                _ => (
                    format!(
                        "{:.0}% of washes are at 60 °C or hotter; 40 °C cleans most loads with \
                         less energy",
                        hot_share * 100.0
                    ),
                    None,
                ),
            };
            out.push(Advice {
                kind: "temperature".into(),
                message: msg,
                kwh_per_year: kwh,
            });
        }
        if let Some(share) = u.load_share_of_capacity {
            if share < cfg.low_load_share {
                // Fuller loads: the same laundry in share/0.8 as many cycles.
                let energy_per_cycle = u.energy_kwh / u.cycles as f64;
                let saved_cycles = u.cycles as f64 * (1.0 - share / 0.8).max(0.0);
                let kwh = saved_cycles * energy_per_cycle * per_year;
                out.push(Advice {
                    kind: "load".into(),
                    message: format!(
                        "the average load is {:.0}% of the drum; fuller loads (or the eco \
                         program for small ones) would save about {kwh:.0} kWh a year",
                        share * 100.0
                    ),
                    kwh_per_year: Some(kwh),
                });
            }
        }
        if let Some(d) = u.mean_detergent_ml {
            if d > cfg.recommended_detergent_ml {
                out.push(Advice {
                    kind: "detergent".into(),
                    message: format!(
                        "the average dose is {d:.0} ml, above the recommended {:.0} ml",
                        cfg.recommended_detergent_ml
                    ),
                    kwh_per_year: None,
                });
            }
        }
        out
    }

    /// Mean energy per cycle (Wh) of the device's model at temperature code `temp`, over
    /// every row of the fleet in segments (memtable rows join at their flush: C2 reads no
    /// memtable cube on its hot path).
    fn model_energy(&self, c: &Cols, device: u32, temp: usize) -> Option<f64> {
        let (i, m) = c.model_energy?;
        let l = self.layouts()[c.stream].cubes.get(i)?;
        let rollups = self.rollups();
        let model = rollups.attrs.device(device).codes[Attribute::Model.index()];
        let mut codes = [0u32; 2];
        for (c, d) in codes.iter_mut().zip(&l.dims) {
            *c = match d {
                crate::schema::Dim::Attribute(Attribute::Model) => model,
                _ => temp as u32,
            };
        }
        rollups.streams[c.stream].cubes[i]
            .with_total(l, cube::pack(&codes), |cell| {
                let n = cell[0];
                (n > 0).then(|| cell[1 + m * cube::MEASURE_SLOTS + cube::M_SUM] as f64 / n as f64)
            })
            .flatten()
    }

    /// C4: the 2 Hz samples of the cycle of `serial` that started at `cycle_ts`.
    pub fn trace(&self, serial: &str, cycle_ts: i64) -> Result<DeviceRows> {
        let rows = self.scan_device(
            CYCLES,
            serial,
            cycle_ts..cycle_ts.saturating_add(1),
            &["duration_s"],
        )?;
        let Some(&duration) = rows.columns.first().and_then(|c| c.first()) else {
            return Err(InputError::Invalid(format!(
                "device '{serial}' has no cycle starting at {cycle_ts}"
            ))
            .into());
        };
        let end = cycle_ts.saturating_add(duration.saturating_add(1).saturating_mul(1000));
        self.scan_device(SAMPLES, serial, cycle_ts..end, &[])
    }
}

fn newest<'d>(def: &'d StreamDef, rows: &DeviceRows, n: usize) -> Vec<CycleRow<'d>> {
    (0..rows.len())
        .rev()
        .take(n)
        .map(|i| decode_row(def, rows.ts[i], rows.columns.iter().map(|c| c[i])))
        .collect()
}

/// The weeks (first days, end exclusive) covering `[from_ms, to_ms)`.
pub(crate) fn week_span(from_ms: i64, to_ms: i64) -> Result<(i64, i64)> {
    if to_ms <= from_ms {
        return Err(InputError::Invalid(format!("empty period {from_ms}..{to_ms}")).into());
    }
    let w0 = calendar::week_start(calendar::day_of(from_ms));
    let w1 = calendar::week_start(calendar::day_of(to_ms - 1)) + 7;
    Ok((w0, w1))
}

/// The period of `weeks` whole weeks ending with the week holding `at_ms`.
pub fn last_weeks(at_ms: i64, weeks: u32) -> (i64, i64) {
    let end = (calendar::week_start(calendar::day_of(at_ms)) + 7).saturating_mul(DAY_MS);
    (end.saturating_sub(i64::from(weeks) * 7 * DAY_MS), end)
}

/// The longest history (recent and earlier weeks) a health check reads: ten years.
pub const MAX_HEALTH_WEEKS: u64 = 520;

/// C3's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing unusual.
    Ok,
    /// A drift or recurring errors worth watching.
    Watch,
    /// Book a service visit.
    Service,
}

impl Verdict {
    /// `ok`, `watch` or `service`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Watch => "watch",
            Verdict::Service => "service",
        }
    }
}

/// One week's mean of a measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekMean {
    /// The week's Monday (days since 1970-01-01).
    pub week_day: i64,
    /// Cycles that week.
    pub cycles: u64,
    /// Mean that week.
    pub mean: f64,
}

/// A measure's recent weeks against the device's baseline and its model's fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// The column.
    pub column: String,
    /// Weekly means, oldest first, over the baseline and recent weeks.
    pub weekly: Vec<WeekMean>,
    /// Mean over the recent weeks.
    pub recent_mean: Option<f64>,
    /// Mean over the device's first weeks (its baseline).
    pub baseline_mean: Option<f64>,
    /// Median of the same model across the fleet (all time, from the histogram rollup).
    pub fleet_median: Option<f64>,
    /// `recent_mean / baseline_mean`.
    pub vs_baseline: Option<f64>,
    /// `recent_mean / fleet_median`.
    pub vs_fleet: Option<f64>,
}

/// An error code's occurrences.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorCount {
    /// The code.
    pub code: String,
    /// In the recent weeks.
    pub recent: u64,
    /// Before them.
    pub earlier: u64,
}

/// C3: a device's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// The device.
    pub serial: String,
    /// First day after the recent weeks.
    pub to_day: i64,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, with numbers.
    pub evidence: Vec<String>,
    /// Fill time (a failing inlet valve or low water pressure fills slowly).
    pub fill_time: Trend,
    /// Drum vibration (worn bearings).
    pub vibration: Trend,
    /// Error codes other than `none`.
    pub errors: Vec<ErrorCount>,
}

/// Thresholds of the health verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthConfig {
    /// Weeks that count as recent.
    pub recent_weeks: u32,
    /// The device's first weeks with cycles that form its baseline.
    pub baseline_weeks: u32,
    /// History read before the recent weeks, in weeks.
    pub history_weeks: u32,
    /// Fewest recent cycles for a trend to count.
    pub min_recent_cycles: u64,
    /// Recent fill time over baseline that means watch, and service.
    pub fill_watch: f64,
    /// See `fill_watch`.
    pub fill_service: f64,
    /// Recent vibration over baseline that means watch, and service.
    pub vibration_watch: f64,
    /// See `vibration_watch`.
    pub vibration_service: f64,
    /// Occurrences of the matching error code (`E10` for fill time, `E40` for vibration) in
    /// the recent weeks that turn a drift into service; any code seen more than this many
    /// times in the recent weeks is worth watching on its own.
    pub recurring: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            recent_weeks: 8,
            baseline_weeks: 16,
            history_weeks: 104,
            min_recent_cycles: 4,
            fill_watch: 1.15,
            fill_service: 1.3,
            vibration_watch: 1.3,
            vibration_service: 1.5,
            recurring: 2,
        }
    }
}

impl Db {
    /// C3: the health of a device over the recent weeks ending with the week holding `at_ms`.
    pub fn health(&self, serial: &str, at_ms: i64, cfg: &HealthConfig) -> Result<Health> {
        let device = self.device_of(serial)?;
        let c = cols(self)?;
        let span = u64::from(cfg.recent_weeks.max(1)) + u64::from(cfg.history_weeks);
        if span > MAX_HEALTH_WEEKS {
            return Err(InputError::Invalid(format!(
                "health looks at {span} weeks (recent and history); at most {MAX_HEALTH_WEEKS}"
            ))
            .into());
        }
        let def = &self.schema().streams[c.stream];
        let (_, end) = last_weeks(at_ms, 0);
        let end_week = calendar::day_of(end);
        let recent_start = end_week.saturating_sub(7 * i64::from(cfg.recent_weeks.max(1)));
        let history_start = recent_start.saturating_sub(7 * i64::from(cfg.history_weeks));
        // The error counts are the only slots health uses, and the last it decodes (hours
        // come after them).
        let errors = c.error.0..c.error.0 + c.error.1;
        let weeks = Weeks::read(
            self,
            c,
            device,
            (history_start, end_week),
            &[c.fill, c.vib],
            errors,
            recent_start,
        )?;
        let rollups = self.rollups();
        let model = rollups.attrs.device(device).codes[Attribute::Model.index()];
        drop(rollups);
        let split = weeks.first_from(recent_start);
        // `k` the column's position in the device rollup's sums, `j` in what `weeks` kept.
        let with_rows = weeks.count.iter().filter(|&&n| n > 0).count();
        let trend = |k: usize, j: usize, col: &str, hist: Option<usize>| -> Trend {
            let scale = c.scale(k);
            let mut weekly = Vec::with_capacity(with_rows);
            let (mut rn, mut rs) = (0u64, 0i64);
            let (mut bn, mut bs, mut bweeks) = (0u64, 0i64, 0usize);
            for (i, &n) in weeks.count.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let sum = weeks.sum(i, j);
                weekly.push(WeekMean {
                    week_day: weeks.week(i),
                    cycles: n,
                    mean: sum as f64 / n as f64 / scale,
                });
                if i >= split {
                    (rn, rs) = (rn + n, rs + sum);
                } else if bweeks < cfg.baseline_weeks as usize {
                    (bn, bs, bweeks) = (bn + n, bs + sum, bweeks + 1);
                }
            }
            let mean = |n: u64, s: i64| (n > 0).then(|| s as f64 / n as f64 / scale);
            let (recent, baseline) = (mean(rn, rs), mean(bn, bs));
            let recent = recent.filter(|_| rn >= cfg.min_recent_cycles);
            let fleet = hist.and_then(|h| self.model_median(c, model, h));
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            Trend {
                column: col.to_string(),
                weekly,
                recent_mean: recent,
                baseline_mean: baseline,
                fleet_median: fleet,
                vs_baseline: ratio(recent, baseline),
                vs_fleet: ratio(recent, fleet),
            }
        };
        let (fill_hist, vib_hist) = c.model_health.map_or((None, None), |m| (m.1, m.2));
        let fill = trend(c.fill, 0, "fill_time_s", fill_hist);
        let vib = trend(c.vib, 1, "max_vibration_g", vib_hist);
        let names = categories(def, "error_code");
        let errors: Vec<ErrorCount> = (0..c.error.1)
            .filter(|&i| names.get(i).is_some_and(|n| n != "none"))
            .map(|i| ErrorCount {
                code: names[i].clone(),
                recent: weeks.late.get(i).copied().unwrap_or(0),
                earlier: weeks.early.get(i).copied().unwrap_or(0),
            })
            .filter(|e| e.recent + e.earlier > 0)
            .collect();
        let recurring = |code: &str| {
            errors
                .iter()
                .find(|e| e.code.starts_with(code))
                .is_some_and(|e| e.recent >= cfg.recurring)
        };
        let mut verdict = Verdict::Ok;
        let mut evidence = Vec::new();
        let mut judge = |t: &Trend, watch: f64, service: f64, code: &str, what: &str| {
            let Some(r) = t.vs_baseline else { return };
            let errs = recurring(code);
            let v = if r >= service || (r >= watch && errs) {
                Verdict::Service
            } else if r >= watch {
                Verdict::Watch
            } else {
                return;
            };
            verdict = verdict.max(v);
            evidence.push(format!(
                "{what}: recent mean {:.2} is {:.0}% above the device's baseline {:.2}{}{}",
                t.recent_mean.unwrap_or(0.0),
                (r - 1.0) * 100.0,
                t.baseline_mean.unwrap_or(0.0),
                t.vs_fleet
                    .map(|f| format!(" ({:.2}× the model's fleet median)", f))
                    .unwrap_or_default(),
                if errs {
                    format!(", with {code} recurring")
                } else {
                    String::new()
                }
            ));
        };
        judge(
            &fill,
            cfg.fill_watch,
            cfg.fill_service,
            "E10",
            "fill time (s)",
        );
        judge(
            &vib,
            cfg.vibration_watch,
            cfg.vibration_service,
            "E40",
            "drum vibration (g)",
        );
        for e in &errors {
            if e.recent > cfg.recurring {
                verdict = verdict.max(Verdict::Watch);
                evidence.push(format!(
                    "error {} occurred {} times in the last {} weeks",
                    e.code, e.recent, cfg.recent_weeks
                ));
            }
        }
        Ok(Health {
            serial: serial.to_string(),
            to_day: end_week,
            verdict,
            evidence,
            fill_time: fill,
            vibration: vib,
            errors,
        })
    }

    /// The median of `col` for devices of model code `model`, from the all-time histogram
    /// of the `model_health` cube (the midpoint of the median's bin).
    fn model_median(&self, c: &Cols, model: u32, hist: usize) -> Option<f64> {
        let (i, _, _) = c.model_health?;
        let l = self.layouts()[c.stream].cubes.get(i)?;
        let h = l.hists.get(hist)?;
        let rollups = self.rollups();
        rollups.streams[c.stream].cubes[i]
            .with_total(l, cube::pack(&[model]), |cell| {
                let bins = cell.get(h.offset..h.offset + h.bins.count())?;
                let n: i64 = bins.iter().sum();
                let mut seen = 0i64;
                for (b, &c) in bins.iter().enumerate() {
                    seen += c;
                    if n > 0 && 2 * seen >= n {
                        let lo = h.bins.lower_edge(b);
                        let width = h.bins.lower_edge(b + 1) - lo;
                        return Some(lo + width / 2.0);
                    }
                }
                None
            })
            .flatten()
    }

    /// C5: every device's latest cycle, and the devices whose health verdict (at `at_ms`) is
    /// watch or service, worst first.
    pub fn fleet_snapshot(&self, at_ms: i64, cfg: &HealthConfig) -> Result<FleetSnapshot<'_>> {
        let c = cols(self)?;
        let def = &self.schema().streams[c.stream];
        let (last, ids): (Vec<LatestRow>, Vec<u32>) = {
            let r = self.rollups();
            let s = &r.streams[c.stream];
            let ncols = def.columns.len();
            let last: Vec<LatestRow> = s
                .last_ts
                .iter()
                .enumerate()
                .filter(|(_, &t)| t != i64::MIN)
                .map(|(d, &t)| {
                    (
                        d as u32,
                        t,
                        s.last_vals
                            .get(d * ncols..(d + 1) * ncols)
                            .unwrap_or(&[])
                            .to_vec(),
                    )
                })
                .collect();
            let ids = last.iter().map(|x| x.0).collect();
            (last, ids)
        };
        let mut latest = Vec::with_capacity(last.len());
        for (d, ts, vals) in last {
            if let Some(info) = self.device(d) {
                latest.push((info.serial, decode_row(def, ts, vals.into_iter())));
            }
        }
        let mut flagged = Vec::new();
        for d in ids {
            let Some(info) = self.device(d) else { continue };
            let h = self.health(&info.serial, at_ms, cfg)?;
            if h.verdict != Verdict::Ok {
                flagged.push(h);
            }
        }
        flagged.sort_by(|a, b| {
            b.verdict
                .cmp(&a.verdict)
                .then_with(|| a.serial.cmp(&b.serial))
        });
        Ok(FleetSnapshot { latest, flagged })
    }
}

/// A device's latest row: id, timestamp, stored values.
type LatestRow = (u32, i64, Vec<i64>);

/// C5's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetSnapshot<'a> {
    /// Every device with cycles: its serial and latest cycle.
    pub latest: Vec<(String, CycleRow<'a>)>,
    /// Devices whose verdict is watch or service, service first.
    pub flagged: Vec<Health>,
}
