//! Fleet-wide questions (business intelligence and product design), D1–D8, each a thin
//! layer over [`Db::fleet`] or over the per-device month counts, so every one can be
//! answered from rollups or by scanning ([`Plan`]) with the same result.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{attr, invalid, parse_dim, FleetQuery, FleetResult, Measure, Need, Plan, Source};
use crate::db::Db;
use crate::error::{InputError, Result};
use crate::rollup::calendar::{self, Grain};
use crate::schema::{Attribute, Bins, Dim, DAY_MS};
use crate::stats::{self, Anova, ChiSquare, Moments};

const CYCLES: &str = "cycles";

fn query(from_ms: i64, to_ms: i64, group_by: Vec<Dim>, plan: Plan) -> FleetQuery {
    FleetQuery {
        plan,
        ..FleetQuery::count(CYCLES, from_ms, to_ms, group_by)
    }
}

impl Db {
    /// D1: cycles by a setting (`program`, `temp_setting_c`, `spin_setting_rpm`) and a
    /// device attribute, per time bucket.
    pub fn cycles_by(
        &self,
        setting: &str,
        by: Attribute,
        grain: Grain,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<FleetResult> {
        let def = self
            .schema()
            .stream(CYCLES)
            .ok_or_else(|| InputError::UnknownStream(CYCLES.into()))?;
        let setting = parse_dim(def, setting)?;
        let mut q = query(from_ms, to_ms, vec![setting, attr(by)], plan);
        q.grain = Some(grain);
        self.fleet(&q)
    }

    /// D2: the distribution of loads per drum capacity.
    pub fn load_distribution(
        &self,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<LoadDistribution> {
        let kg = Bins::Fixed {
            lo: 0.0,
            width: 0.5,
            count: 30,
        };
        let share = Bins::ShareOfCapacity {
            width_pct: 10.0,
            count: 11,
        };
        let mut q = query(from_ms, to_ms, vec![attr(Attribute::Capacity)], plan);
        q.measures = vec![
            Measure::Mean("load_kg".into()),
            Measure::Histogram {
                column: "load_kg".into(),
                bins: kg.clone(),
            },
            Measure::Histogram {
                column: "load_kg".into(),
                bins: share.clone(),
            },
        ];
        let r = self.fleet(&q)?;
        let by_capacity = r
            .rows
            .iter()
            .map(|row| {
                let bins = |i: usize| match row.values.get(i) {
                    Some(super::Value::Bins(b)) => b.clone(),
                    _ => Vec::new(),
                };
                let share_bins = bins(2);
                let near_full: u64 = share_bins.iter().skip(9).sum();
                CapacityLoads {
                    capacity_kg: row.keys.first().cloned().unwrap_or_default(),
                    cycles: row.rows,
                    mean_load_kg: row.values.first().and_then(super::Value::number),
                    load_kg_bins: bins(1)
                        .into_iter()
                        .enumerate()
                        .map(|(i, n)| (kg.lower_edge(i), n))
                        .collect(),
                    share_bins: share_bins
                        .iter()
                        .enumerate()
                        .map(|(i, &n)| (share.lower_edge(i), n))
                        .collect(),
                    share_at_least_90pct: near_full as f64 / row.rows.max(1) as f64,
                }
            })
            .collect();
        Ok(LoadDistribution {
            from_day: r.from_day,
            to_day: r.to_day,
            by_capacity,
            source: r.source,
        })
    }

    /// D3: programs used in less than `max_share` of a group's cycles (never-used ones
    /// included), per value of a device attribute.
    pub fn rare_programs(
        &self,
        by: Attribute,
        max_share: f64,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<Vec<RareProgram>> {
        let r = self.fleet(&query(
            from_ms,
            to_ms,
            vec![attr(by), Dim::column("program")],
            plan,
        ))?;
        let def = self
            .schema()
            .stream(CYCLES)
            .ok_or_else(|| InputError::UnknownStream(CYCLES.into()))?;
        let programs = super::device::category_names_pub(def, "program");
        let mut per_group: BTreeMap<String, HashMap<String, u64>> = BTreeMap::new();
        for row in &r.rows {
            let (Some(g), Some(p)) = (row.keys.first(), row.keys.get(1)) else {
                continue;
            };
            per_group
                .entry(g.clone())
                .or_default()
                .insert(p.clone(), row.rows);
        }
        let mut out = Vec::new();
        for (group, counts) in per_group {
            let total: u64 = counts.values().sum();
            for p in &programs {
                let c = counts.get(p).copied().unwrap_or(0);
                let share = c as f64 / total.max(1) as f64;
                if share < max_share {
                    out.push(RareProgram {
                        group: group.clone(),
                        program: p.clone(),
                        cycles: c,
                        share,
                    });
                }
            }
        }
        out.sort_by(|a, b| {
            a.group
                .cmp(&b.group)
                .then(a.share.total_cmp(&b.share))
                .then_with(|| a.program.cmp(&b.program))
        });
        Ok(out)
    }

    /// D4: energy and water per cycle by program and temperature.
    pub fn resources_by_setting(
        &self,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<FleetResult> {
        let mut q = query(
            from_ms,
            to_ms,
            vec![Dim::column("program"), Dim::column("temp_setting_c")],
            plan,
        );
        q.measures = vec![
            Measure::Mean("energy_wh".into()),
            Measure::Mean("water_l".into()),
            Measure::Sum("energy_wh".into()),
            Measure::Sum("water_l".into()),
        ];
        self.fleet(&q)
    }

    /// Rows per device over the whole calendar months covering `[from_ms, to_ms)`: from the
    /// month counts of the rollups, or by scanning. Returns (first day, end day, counts by
    /// device id, source).
    fn device_counts(&self, from_ms: i64, to_ms: i64, plan: Plan) -> Result<DeviceCounts> {
        if to_ms <= from_ms {
            return Err(invalid("empty period"));
        }
        let stream = self
            .schema()
            .stream_index(CYCLES)
            .ok_or_else(|| InputError::UnknownStream(CYCLES.into()))?;
        let m0 = Grain::Month.start(calendar::day_of(from_ms));
        let last = Grain::Month.start(calendar::day_of(to_ms - 1));
        let (y, m, _) = calendar::civil_from_days(last);
        let m1 = if m == 12 {
            calendar::days_from_civil(y + 1, 1, 1)
        } else {
            calendar::days_from_civil(y, m + 1, 1)
        };
        let mut counts: Vec<u64> = Vec::new();
        // Month counts are kept only for streams with rollups.
        let plan = if self.layouts()[stream].any() {
            plan
        } else if plan == Plan::Rollup {
            return Err(invalid("the stream keeps no rollups"));
        } else {
            Plan::Scan
        };
        let source = if plan == Plan::Scan {
            let rows = self.scan(
                CYCLES,
                m0.saturating_mul(DAY_MS)..m1.saturating_mul(DAY_MS),
                &[],
                |dr| {
                    let d = dr.device as usize;
                    if counts.len() <= d {
                        counts.resize(d + 1, 0);
                    }
                    counts[d] += dr.ts.len() as u64;
                },
            )?;
            Source::Scan { rows }
        } else {
            let r = self.rollups();
            let mut cells = 0u64;
            for (_, per_device) in r.streams[stream].months.range(m0..m1) {
                if counts.len() < per_device.len() {
                    counts.resize(per_device.len(), 0);
                }
                for (c, &n) in counts.iter_mut().zip(per_device) {
                    *c += u64::from(n);
                }
                cells += per_device.iter().filter(|&&n| n > 0).count() as u64;
            }
            Source::Rollup {
                cube: "device_months".into(),
                cells,
            }
        };
        Ok(DeviceCounts {
            from_day: m0,
            to_day: m1,
            counts,
            source,
        })
    }

    /// D5: devices per usage band (cycles a week: light below `bands.light_below`, heavy
    /// above `bands.heavy_above`, medium between) per value of a device attribute, over the
    /// whole months covering the period. Devices without cycles in the period are left out.
    pub fn usage_bands(
        &self,
        by: Attribute,
        bands: &Bands,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<UsageBands> {
        let dc = self.device_counts(from_ms, to_ms, plan)?;
        let weeks = (dc.to_day - dc.from_day) as f64 / 7.0;
        // Counts in cycles over the period that bound the bands, so each device costs two
        // integer comparisons.
        let light = bands.light_below * weeks;
        let heavy = bands.heavy_above * weeks;
        let r = self.rollups();
        let mut by_code: Vec<[u64; 3]> = vec![[0; 3]; r.attrs.values(by.index()).len()];
        for (d, &n) in dc.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let code = r.attrs.device(d as u32).codes[by.index()] as usize;
            let band = if (n as f64) < light {
                0
            } else if (n as f64) > heavy {
                2
            } else {
                1
            };
            if let Some(g) = by_code.get_mut(code) {
                g[band] += 1;
            }
        }
        let mut groups: BTreeMap<String, [u64; 3]> = BTreeMap::new();
        for (code, g) in by_code.into_iter().enumerate() {
            if g.iter().any(|&x| x > 0) {
                groups.insert(r.attrs.value(by.index(), code as u32).to_string(), g);
            }
        }
        Ok(UsageBands {
            from_day: dc.from_day,
            to_day: dc.to_day,
            weeks,
            groups: groups
                .into_iter()
                .map(|(group, [light, medium, heavy])| BandRow {
                    group,
                    light,
                    medium,
                    heavy,
                })
                .collect(),
            source: dc.source,
        })
    }

    /// D6: one-way ANOVA of a measure across the values of a device attribute: `energy_wh`,
    /// `load_kg` or `water_l` per cycle, or `cycles_per_week` per device (over whole months).
    pub fn anova(
        &self,
        measure: &str,
        by: Attribute,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<(Anova, Source)> {
        let g = self.anova_groups(measure, by, from_ms, to_ms, plan, None)?;
        let groups: Vec<(String, Moments)> = g.groups.into_iter().map(|(n, m, _)| (n, m)).collect();
        let a = stats::anova(&groups, g.scale).map_err(|e| invalid(e.to_string()))?;
        Ok((a, g.source))
    }

    /// D6's groups before the test: per value of `by`, the moments of the measure and (when
    /// `devices` asks, as exactly as it asks, or always and exactly for `cycles_per_week`)
    /// the distinct devices behind them.
    pub(crate) fn anova_groups(
        &self,
        measure: &str,
        by: Attribute,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
        devices: Option<Need>,
    ) -> Result<AnovaGroups> {
        if measure == "cycles_per_week" {
            let dc = self.device_counts(from_ms, to_ms, plan)?;
            let weeks = (dc.to_day - dc.from_day) as f64 / 7.0;
            let r = self.rollups();
            let mut by_code: Vec<Moments> =
                vec![Moments::default(); r.attrs.values(by.index()).len()];
            for (d, &n) in dc.counts.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let code = r.attrs.device(d as u32).codes[by.index()] as usize;
                if let Some(m) = by_code.get_mut(code) {
                    m.add(n as i64);
                }
            }
            // One value per device: a group's n is its devices.
            let mut groups: Vec<GroupMoments> = by_code
                .into_iter()
                .enumerate()
                .filter(|(_, m)| m.n > 0)
                .map(|(code, m)| (r.attrs.value(by.index(), code as u32).to_string(), m, m.n))
                .collect();
            groups.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(AnovaGroups {
                groups,
                scale: weeks,
                source: dc.source,
            });
        }
        let mut q = query(from_ms, to_ms, vec![attr(by)], plan);
        q.measures = vec![Measure::Variance(measure.to_string())];
        q.devices = devices.is_some();
        let def = self
            .schema()
            .stream(CYCLES)
            .ok_or_else(|| InputError::UnknownStream(CYCLES.into()))?;
        let col = def
            .column_index(measure)
            .ok_or_else(|| InputError::UnknownColumn {
                stream: CYCLES.into(),
                column: measure.to_string(),
            })?;
        let scale = def.columns[col].scale();
        let (groups, source) = self.fleet_moments(&q, devices.unwrap_or(Need::Exact))?;
        Ok(AnovaGroups {
            groups,
            scale,
            source,
        })
    }

    /// D7: chi-square test of independence of a setting and a device attribute.
    pub fn chi_square(
        &self,
        setting: &str,
        by: Attribute,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<(ChiSquare, Source)> {
        let def = self
            .schema()
            .stream(CYCLES)
            .ok_or_else(|| InputError::UnknownStream(CYCLES.into()))?;
        let setting = parse_dim(def, setting)?;
        let r = self.fleet(&query(from_ms, to_ms, vec![setting, attr(by)], plan))?;
        let (rows, cols) = two_way_labels(&r);
        let mut table = vec![vec![0u64; cols.len()]; rows.len()];
        for x in &r.rows {
            let (Some(a), Some(b)) = (x.keys.first(), x.keys.get(1)) else {
                continue;
            };
            if let (Ok(i), Ok(j)) = (rows.binary_search(a), cols.binary_search(b)) {
                table[i][j] += x.rows;
            }
        }
        let c = stats::chi_square(&rows, &cols, &table).map_err(|e| invalid(e.to_string()))?;
        Ok((c, r.source))
    }

    /// D8: cycles by weekday (0 = Monday) and hour of day (UTC).
    pub fn time_of_day(&self, from_ms: i64, to_ms: i64, plan: Plan) -> Result<TimeOfDay> {
        let mut q = query(from_ms, to_ms, vec![Dim::HourOfDay], plan);
        q.grain = Some(Grain::Day);
        let res = super::resolve(self, &q, &self.rollups().attrs)?;
        // Folded straight from the day groups: no result rows are built.
        let (groups, source) = self.fleet_groups(&q, &res)?;
        let mut cycles = vec![vec![0u64; 24]; 7];
        for ((day, packed), acc) in groups {
            let h = crate::rollup::cube::unpack(packed, 0) as usize;
            if let Some(c) = cycles
                .get_mut(calendar::weekday(day) as usize)
                .and_then(|w| w.get_mut(h))
            {
                *c += acc.rows;
            }
        }
        Ok(TimeOfDay {
            from_day: calendar::day_of(from_ms),
            to_day: calendar::day_of(to_ms - 1),
            cycles,
            source,
        })
    }

    /// Distinct devices per (weekday, hour) cell of D8's period, for k-anonymity: each
    /// number is on the same side of `k` as the exact count, `rows` being the cells' cycles
    /// ([`Db::time_of_day`]). A cell of fewer than k cycles has fewer than k devices; a cell
    /// whose hour the presence bits give fewer than k devices in the months of the period
    /// (the sum of the months' distinct-device counts bounds the devices) too. The other
    /// cells are counted from the devices' timestamps, reading only devices with a presence
    /// bit of an hour still open, in device order, and stopping once every cell has k.
    pub(crate) fn weekday_hour_devices(
        &self,
        from_ms: i64,
        to_ms: i64,
        rows: &[Vec<u64>],
        k: u64,
    ) -> Result<[[u64; 24]; 7]> {
        let mut out = [[0u64; 24]; 7];
        let mut open = [[false; 24]; 7];
        for (w, row) in rows.iter().enumerate().take(7) {
            for (h, &n) in row.iter().enumerate().take(24) {
                if n < k {
                    out[w][h] = n;
                } else {
                    open[w][h] = true;
                }
            }
        }
        let stream = self
            .schema()
            .stream_index(CYCLES)
            .ok_or_else(|| InputError::UnknownStream(CYCLES.into()))?;
        let def = &self.schema().streams[stream];
        let d0 = calendar::day_of(from_ms);
        let d1 = calendar::day_of(to_ms.saturating_sub(1));
        let (m0, m1) = (Grain::Month.start(d0), Grain::Month.start(d1));
        let layouts = &self.layouts()[stream];
        let w = layouts.presence.words;
        // The presence bits of the hour alone, when a cube keeps them.
        let hour_bits = layouts
            .presence
            .sigs
            .iter()
            .find(|s| s.dims == [crate::rollup::cube::DimSource::Hour] && s.bits == 24)
            .map(|s| s.offset);
        if let Some(offset) = hour_bits {
            let r = self.rollups();
            let state = &r.streams[stream];
            let counts = state.counts.get_or_build(w, &r.attrs, &state.presence);
            for h in 0..24 {
                let b = offset + h;
                let bound: u64 = counts
                    .months
                    .range(m0..=m1)
                    .map(|(&m, _)| u64::from(counts.get(m, b, crate::rollup::ALL_DEVICES, 0)))
                    .sum();
                for (wd, row) in open.iter_mut().enumerate() {
                    if row[h] && bound < k {
                        row[h] = false;
                        out[wd][h] = bound.min(rows[wd][h]);
                    }
                }
            }
        }
        let mut left = open.iter().flatten().filter(|&&o| o).count();
        if left == 0 {
            return Ok(out);
        }
        // The hours with an open cell, as bits; per device of the current block of ids, the
        // hours its presence bits hold in the months of the period (the fleet state's lock is
        // not held while rows are read). A device is read only while one of its hours is open.
        let hours_open = |open: &[[bool; 24]; 7]| -> u32 {
            (0..24)
                .filter(|&h| open.iter().any(|row| row[h]))
                .fold(0u32, |m, h| m | 1 << h)
        };
        let open_hours = std::cell::Cell::new(hours_open(&open));
        const BLOCK: u32 = 1024;
        let mut block: (u32, Vec<u32>) = (0, Vec::new());
        let want = |d: u32| -> bool {
            let Some(offset) = hour_bits else {
                return true;
            };
            if d < block.0 || d >= block.0 + block.1.len() as u32 || block.1.is_empty() {
                let first = d - d % BLOCK;
                let r = self.rollups();
                let mut hours = vec![0u32; BLOCK as usize];
                let (wi, sh) = (offset / 64, offset % 64);
                for (_, bits) in r.streams[stream].presence.range(m0..=m1) {
                    for (i, x) in hours.iter_mut().enumerate() {
                        let dev = (first as usize + i) * w;
                        let Some(words) = bits.get(dev..dev + w) else {
                            continue;
                        };
                        let lo = words.get(wi).copied().unwrap_or(0) >> sh;
                        let hi = match sh {
                            0..=40 => 0,
                            _ => words.get(wi + 1).copied().unwrap_or(0) << (64 - sh),
                        };
                        *x |= ((lo | hi) & 0xFF_FFFF) as u32;
                    }
                }
                block = (first, hours);
            }
            block.1[(d - block.0) as usize] & open_hours.get() != 0
        };
        // Only timestamps are needed; one column is projected (none would mean all).
        let first = def.columns.first().map(|c| c.name.as_str()).unwrap_or("");
        self.scan_where(
            CYCLES,
            d0.saturating_mul(DAY_MS)..(d1 + 1).saturating_mul(DAY_MS),
            &[first],
            want,
            |dr| {
                let mut seen = [[false; 24]; 7];
                for &ts in &dr.ts {
                    let wd = calendar::weekday(calendar::day_of(ts)) as usize % 7;
                    let h = calendar::hour_of(ts) as usize % 24;
                    if open[wd][h] && !seen[wd][h] {
                        seen[wd][h] = true;
                        out[wd][h] += 1;
                        if out[wd][h] >= k {
                            open[wd][h] = false;
                            left -= 1;
                            open_hours.set(hours_open(&open));
                        }
                    }
                }
                left > 0
            },
        )?;
        Ok(out)
    }

    /// Per group of `q` (one measure, a variance): the moments of its column.
    fn fleet_moments(&self, q: &FleetQuery, need: Need) -> Result<(Vec<GroupMoments>, Source)> {
        let rollups = self.rollups();
        let mut res = super::resolve(self, q, &rollups.attrs)?;
        res.need = need;
        drop(rollups);
        let (groups, source) = self.fleet_groups(q, &res)?;
        let mut out: Vec<GroupMoments> = groups
            .into_iter()
            .map(|((_, packed), acc)| {
                let r = self.rollups();
                let name = res
                    .group_by
                    .iter()
                    .enumerate()
                    .map(|(j, d)| {
                        super::dim_label(
                            res.def,
                            &r.attrs,
                            d,
                            crate::rollup::cube::unpack(packed, j),
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                (
                    name,
                    acc.cols.first().map(|c| c.0).unwrap_or_default(),
                    acc.devices,
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((out, source))
    }
}

/// A group's name, the moments of its measure and its distinct devices.
pub(crate) type GroupMoments = (String, Moments, u64);

/// D6's groups: (name, moments, distinct devices), sorted by name; the scale that turns
/// stored values into real ones; the source.
pub(crate) struct AnovaGroups {
    pub groups: Vec<GroupMoments>,
    pub scale: f64,
    pub source: Source,
}

/// Rows per device over whole months.
struct DeviceCounts {
    from_day: i64,
    to_day: i64,
    counts: Vec<u64>,
    source: Source,
}

/// D2's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadDistribution {
    /// First day covered.
    pub from_day: i64,
    /// Last day covered (inclusive).
    pub to_day: i64,
    /// One entry per drum capacity.
    pub by_capacity: Vec<CapacityLoads>,
    /// How it was answered.
    pub source: Source,
}

/// Loads of one drum capacity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityLoads {
    /// Capacity (kg), as registered.
    pub capacity_kg: String,
    /// Cycles.
    pub cycles: u64,
    /// Mean load (kg).
    pub mean_load_kg: Option<f64>,
    /// (lower edge kg, cycles) in 0.5 kg bins; the last bin holds everything above.
    pub load_kg_bins: Vec<(f64, u64)>,
    /// (lower edge %, cycles) in 10% bins of capacity; the last bin is 100% and over.
    pub share_bins: Vec<(f64, u64)>,
    /// Share of cycles loaded to 90% of capacity or more.
    pub share_at_least_90pct: f64,
}

/// D3's answer: one rarely used program of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RareProgram {
    /// The group (a model, region, ...).
    pub group: String,
    /// The program.
    pub program: String,
    /// Its cycles.
    pub cycles: u64,
    /// Its share of the group's cycles.
    pub share: f64,
}

/// D5's thresholds, in cycles a week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bands {
    /// Light users run fewer cycles a week than this.
    pub light_below: f64,
    /// Heavy users run more cycles a week than this.
    pub heavy_above: f64,
}

impl Default for Bands {
    fn default() -> Self {
        Bands {
            light_below: 3.0,
            heavy_above: 7.0,
        }
    }
}

/// D5's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageBands {
    /// First day of the whole months covered.
    pub from_day: i64,
    /// First day after them.
    pub to_day: i64,
    /// Weeks in the period.
    pub weeks: f64,
    /// Devices per band, per group.
    pub groups: Vec<BandRow>,
    /// How it was answered.
    pub source: Source,
}

/// Devices of one group per usage band.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BandRow {
    /// The group.
    pub group: String,
    /// Light users.
    pub light: u64,
    /// Medium users.
    pub medium: u64,
    /// Heavy users.
    pub heavy: u64,
}

/// D8's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeOfDay {
    /// First day covered.
    pub from_day: i64,
    /// Last day covered (inclusive).
    pub to_day: i64,
    /// `cycles[weekday][hour]`, weekday 0 = Monday, hour in UTC.
    pub cycles: Vec<Vec<u64>>,
    /// How it was answered.
    pub source: Source,
}

/// The distinct values of the first and second grouping keys of a two-way answer, sorted:
/// the rows and columns of its contingency table.
pub(crate) fn two_way_labels(r: &FleetResult) -> (Vec<String>, Vec<String>) {
    let labels = |k: usize| {
        let mut v: Vec<String> = r
            .rows
            .iter()
            .filter_map(|x| x.keys.get(k).cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    (labels(0), labels(1))
}
