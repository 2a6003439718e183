//! Queries: the fleet question engine (group by, filter, aggregate over a period), answered
//! from the narrowest rollup that covers the question or, when none does, by a columnar scan
//! of the raw rows; and the per-device questions ([`device`]) and the fleet-wide ones
//! ([`fleet`]) built on it.
//!
//! Both paths accumulate the same integer aggregates (counts, sums and sums of squares of
//! stored values, minima, maxima, histogram bins) into the same groups, and one function
//! turns them into a [`FleetResult`]; so an answer from a rollup equals the scan's answer
//! exactly, which the tests check on random questions.
//!
//! Periods are whole UTC days: a query's `[from_ms, to_ms)` covers the days from the one
//! holding `from_ms` to the one holding `to_ms - 1`, and the result says which.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::db::{Db, ScanSplit};
use crate::error::{Error, InputError, Result};
use crate::rollup::calendar::{self, Grain};
use crate::rollup::cube::{self, CubeLayout, DimSource, MEASURE_SLOTS};
use crate::rollup::{AttrTable, Layouts};
use crate::schema::{Attribute, Bins, Dim, StreamDef, DAY_MS};
use crate::stats::Moments;

pub mod device;
pub mod fleet;
#[cfg(test)]
mod tests;

/// How a query is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// From a rollup when one covers the question, else by scanning.
    #[default]
    Auto,
    /// From a rollup only (an error when none covers the question).
    Rollup,
    /// By scanning raw rows.
    Scan,
}

/// A condition on rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// The dimension's value is one of these.
    In {
        /// A categorical column, device attribute or the hour.
        dim: Dim,
        /// Accepted values, as results show them (`cotton`, `North West`, `7`, `18`).
        values: Vec<String>,
    },
    /// A numeric column within `[min, max]` (column units). Answered by scanning.
    Range {
        /// The numeric column.
        column: String,
        /// Lowest accepted value.
        min: f64,
        /// Highest accepted value.
        max: f64,
    },
}

/// An aggregate to compute per group (the row count is always computed).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Sum of a numeric column.
    Sum(String),
    /// Mean.
    Mean(String),
    /// Minimum.
    Min(String),
    /// Maximum.
    Max(String),
    /// Population variance.
    Variance(String),
    /// Histogram of a numeric column.
    Histogram {
        /// The numeric column.
        column: String,
        /// The bins.
        bins: Bins,
    },
}

impl Measure {
    fn column(&self) -> &str {
        match self {
            Measure::Sum(c)
            | Measure::Mean(c)
            | Measure::Min(c)
            | Measure::Max(c)
            | Measure::Variance(c)
            | Measure::Histogram { column: c, .. } => c,
        }
    }

    /// How the measure is named in results, e.g. `mean(load_kg)`.
    pub fn label(&self) -> String {
        match self {
            Measure::Sum(c) => format!("sum({c})"),
            Measure::Mean(c) => format!("mean({c})"),
            Measure::Min(c) => format!("min({c})"),
            Measure::Max(c) => format!("max({c})"),
            Measure::Variance(c) => format!("variance({c})"),
            Measure::Histogram { column, .. } => format!("histogram({column})"),
        }
    }
}

/// A fleet question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetQuery {
    /// The stream.
    pub stream: String,
    /// Start of the period (ms, inclusive; rounded down to its day).
    pub from_ms: i64,
    /// End of the period (ms, exclusive; rounded up to a whole day).
    pub to_ms: i64,
    /// Grouping dimensions.
    pub group_by: Vec<Dim>,
    /// Time buckets (none: the whole period is one bucket).
    pub grain: Option<Grain>,
    /// Row conditions (all must hold).
    pub filters: Vec<Filter>,
    /// Aggregates per group.
    pub measures: Vec<Measure>,
    /// How to answer.
    pub plan: Plan,
    /// Also count distinct devices per group, exactly. From rollups (presence bits and the
    /// distinct devices per month, bit and attribute value) when the buckets are months,
    /// quarters, years or the whole period and the cube keeps presence bits: the whole
    /// months of the period from the rollups, the days at its edges (partial months) by
    /// reading them for the groups the rollups leave open. Otherwise by scanning the period
    /// (with [`Plan::Rollup`], the aggregates still come from the cube and only the devices
    /// from the scan).
    pub devices: bool,
}

impl FleetQuery {
    /// Counts rows of `stream` in `[from_ms, to_ms)` grouped by `group_by`.
    pub fn count(stream: &str, from_ms: i64, to_ms: i64, group_by: Vec<Dim>) -> FleetQuery {
        FleetQuery {
            stream: stream.to_string(),
            from_ms,
            to_ms,
            group_by,
            grain: None,
            filters: Vec::new(),
            measures: Vec::new(),
            plan: Plan::Auto,
            devices: false,
        }
    }
}

/// One aggregate's value in a result row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A number (`None` when undefined, e.g. the mean of no rows).
    Number(Option<f64>),
    /// Histogram bin counts.
    Bins(Vec<u64>),
}

impl Value {
    /// The number, if this is one and it is defined.
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => *n,
            Value::Bins(_) => None,
        }
    }
}

/// One group of a fleet answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetRow {
    /// The bucket's label (`2025-03`, `2025-Q1`, ...), when the query has a grain.
    pub bucket: Option<String>,
    /// The bucket's first day (days since 1970-01-01), when the query has a grain.
    pub bucket_day: Option<i64>,
    /// The group's value of each grouping dimension.
    pub keys: Vec<String>,
    /// Rows in the group.
    pub rows: u64,
    /// Distinct devices with rows in the group (when the query asked for them).
    pub devices: Option<u64>,
    /// The measures, in query order.
    pub values: Vec<Value>,
}

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A fleet cube, with the cells read.
    Rollup {
        /// The cube.
        cube: String,
        /// Cells merged.
        cells: u64,
    },
    /// A scan of raw rows.
    Scan {
        /// Rows read.
        rows: u64,
    },
}

/// A fleet answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetResult {
    /// Labels of the grouping dimensions.
    pub dims: Vec<String>,
    /// Labels of the measures.
    pub measures: Vec<String>,
    /// First day covered (days since 1970-01-01).
    pub from_day: i64,
    /// Last day covered (inclusive).
    pub to_day: i64,
    /// Groups, ordered by bucket then keys.
    pub rows: Vec<FleetRow>,
    /// How it was answered.
    pub source: Source,
}

impl FleetResult {
    /// The row whose keys are `keys` (and bucket `bucket_day`, if given).
    pub fn get(&self, keys: &[&str], bucket_day: Option<i64>) -> Option<&FleetRow> {
        self.rows.iter().find(|r| {
            r.keys.iter().map(String::as_str).eq(keys.iter().copied())
                && (bucket_day.is_none() || r.bucket_day == bucket_day)
        })
    }
}

/// How exactly a question's distinct devices per group must be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// The exact count (what [`FleetQuery::devices`] returns).
    Exact,
    /// Only whether the count reaches `k` (k-anonymity): the number kept in a group is on
    /// the same side of `k` as the exact count (exact when counted below it), and counting
    /// stops as soon as every group is decided.
    AtLeast(u64),
}

/// Integer aggregates of one group.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Acc {
    pub rows: u64,
    pub devices: u64,
    /// Per distinct measured column: moments, min, max.
    pub cols: Vec<(Moments, i64, i64)>,
    pub hists: Vec<Vec<u64>>,
}

impl Acc {
    /// Adds another accumulator of the same question over rows of other devices.
    fn absorb(&mut self, other: &Acc) {
        self.rows += other.rows;
        self.devices += other.devices;
        for ((m, lo, hi), (om, olo, ohi)) in self.cols.iter_mut().zip(&other.cols) {
            m.merge(om);
            *lo = (*lo).min(*olo);
            *hi = (*hi).max(*ohi);
        }
        for (h, oh) in self.hists.iter_mut().zip(&other.hists) {
            for (x, y) in h.iter_mut().zip(oh) {
                *x += y;
            }
        }
    }
}

/// A query resolved against the schema.
pub(crate) struct Resolved<'a> {
    pub def: &'a StreamDef,
    pub stream: usize,
    d0: i64,
    d1: i64,
    pub group_by: Vec<Dim>,
    grain: Option<Grain>,
    /// Distinct numeric columns that measures need, by column index.
    cols: Vec<usize>,
    hists: Vec<(usize, Bins)>,
    /// `In` filters as accepted code sets.
    filters_in: Vec<(Dim, Vec<u32>)>,
    filters_range: Vec<(usize, i64, i64)>,
    measures: Vec<Measure>,
    devices: bool,
    /// How exactly devices are counted, when `devices`.
    pub need: Need,
}

impl Resolved<'_> {
    /// True when a measure is a min or a max.
    fn wants_extremes(&self) -> bool {
        self.measures
            .iter()
            .any(|m| matches!(m, Measure::Min(_) | Measure::Max(_)))
    }
}

fn invalid(m: impl Into<String>) -> Error {
    InputError::Invalid(m.into()).into()
}

/// The code of a dimension value as a result shows it, for filters.
fn dim_code(def: &StreamDef, attrs: &AttrTable, dim: &Dim, value: &str) -> Option<u32> {
    match dim {
        Dim::Column(c) => def
            .columns
            .iter()
            .find(|d| &d.name == c)
            .and_then(|d| d.category_code(value))
            .map(|c| c as u32),
        Dim::Attribute(a) => attrs.code(a.index(), value),
        Dim::HourOfDay => value.parse::<u32>().ok().filter(|h| *h < 24),
    }
}

/// How a result shows a dimension's code.
pub(crate) fn dim_label(def: &StreamDef, attrs: &AttrTable, dim: &Dim, code: u32) -> String {
    match dim {
        Dim::Column(c) => def
            .columns
            .iter()
            .find(|d| &d.name == c)
            .and_then(|d| d.category_name(i64::from(code)))
            .unwrap_or("?")
            .to_string(),
        Dim::Attribute(a) => attrs.value(a.index(), code).to_string(),
        Dim::HourOfDay => code.to_string(),
    }
}

pub(crate) fn resolve<'a>(db: &'a Db, q: &FleetQuery, attrs: &AttrTable) -> Result<Resolved<'a>> {
    let schema = db.schema();
    let stream = schema
        .stream_index(&q.stream)
        .ok_or_else(|| InputError::UnknownStream(q.stream.clone()))?;
    let def = &schema.streams[stream];
    if q.to_ms <= q.from_ms {
        return Err(invalid(format!(
            "empty period: from {} is not before to {}",
            q.from_ms, q.to_ms
        )));
    }
    let check_dim = |d: &Dim| -> Result<()> {
        match d {
            Dim::Column(c) => match def.columns.iter().find(|x| &x.name == c) {
                Some(x) if x.is_categorical() => Ok(()),
                Some(_) => Err(invalid(format!("column '{c}' is numeric: it cannot group"))),
                None => Err(InputError::UnknownColumn {
                    stream: def.name.clone(),
                    column: c.clone(),
                }
                .into()),
            },
            _ => Ok(()),
        }
    };
    for (i, d) in q.group_by.iter().enumerate() {
        check_dim(d)?;
        if q.group_by[..i].contains(d) {
            return Err(invalid(format!("'{}' grouped twice", d.label())));
        }
    }
    if q.group_by.len() > crate::schema::MAX_CUBE_DIMS {
        return Err(invalid(format!(
            "at most {} grouping dimensions",
            crate::schema::MAX_CUBE_DIMS
        )));
    }
    let numeric = |c: &str| -> Result<usize> {
        match def.column_index(c) {
            Some(i) if !def.columns[i].is_categorical() => Ok(i),
            Some(_) => Err(invalid(format!(
                "column '{c}' is categorical: it has no sum"
            ))),
            None => Err(InputError::UnknownColumn {
                stream: def.name.clone(),
                column: c.to_string(),
            }
            .into()),
        }
    };
    let mut cols = Vec::new();
    let mut hists = Vec::new();
    for m in &q.measures {
        let c = numeric(m.column())?;
        match m {
            Measure::Histogram { bins, .. } => {
                let ok = match bins {
                    Bins::Fixed { lo, width, count } => {
                        lo.is_finite() && width.is_finite() && *width > 0.0 && *count > 0
                    }
                    Bins::ShareOfCapacity { width_pct, count } => {
                        width_pct.is_finite() && *width_pct > 0.0 && *count > 0
                    }
                };
                if !ok || bins.count() > crate::schema::MAX_BINS as usize {
                    return Err(invalid(
                        "histogram needs a positive width and 1..=4096 bins",
                    ));
                }
                hists.push((c, bins.clone()));
            }
            _ => {
                if !cols.contains(&c) {
                    cols.push(c);
                }
            }
        }
    }
    let mut filters_in = Vec::new();
    let mut filters_range = Vec::new();
    for f in &q.filters {
        match f {
            Filter::In { dim, values } => {
                check_dim(dim)?;
                // Values never seen match nothing (an empty code set). Each code once, and
                // one code set per dimension (filters on the same one intersect), so that
                // device counts summed over accepted codes count nobody twice.
                let mut codes: Vec<u32> = values
                    .iter()
                    .filter_map(|v| dim_code(def, attrs, dim, v))
                    .collect();
                codes.sort_unstable();
                codes.dedup();
                match filters_in
                    .iter_mut()
                    .find(|(d, _): &&mut (Dim, Vec<u32>)| d == dim)
                {
                    Some((_, seen)) => seen.retain(|c| codes.contains(c)),
                    None => filters_in.push((dim.clone(), codes)),
                }
            }
            Filter::Range { column, min, max } => {
                let c = numeric(column)?;
                if !min.is_finite() || !max.is_finite() {
                    return Err(invalid("range filter bounds must be finite"));
                }
                let s = def.columns[c].scale();
                filters_range.push((c, (min * s).ceil() as i64, (max * s).floor() as i64));
            }
        }
    }
    Ok(Resolved {
        def,
        stream,
        d0: calendar::day_of(q.from_ms),
        d1: calendar::day_of(q.to_ms - 1),
        group_by: q.group_by.clone(),
        grain: q.grain,
        cols,
        hists,
        filters_in,
        filters_range,
        measures: q.measures.clone(),
        devices: q.devices,
        need: Need::Exact,
    })
}

/// Groups: (bucket day, packed key codes) → aggregates.
pub(crate) type Groups = HashMap<(i64, u64), Acc, FastHash>;

/// A scan gives a thread at least this many devices: below it a thread costs more than it
/// saves.
const SCAN_DEVICES_PER_THREAD: usize = 2048;

/// A multiply-rotate hasher for the integer group keys (the default SipHash costs more than
/// the rest of a cell's work; keys here are not attacker-chosen in a way that matters: the
/// worst case is a slower query).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FastHash;

impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

/// See [`FastHash`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517C_C1B7_2722_0A95);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
}

impl Resolved<'_> {
    fn new_acc(&self) -> Acc {
        Acc {
            rows: 0,
            devices: 0,
            cols: vec![(Moments::default(), i64::MAX, i64::MIN); self.cols.len()],
            hists: self.hists.iter().map(|(_, b)| vec![0; b.count()]).collect(),
        }
    }

    fn bucket(&self, day: i64) -> i64 {
        match self.grain {
            Some(g) => g.start(day),
            None => i64::MIN,
        }
    }

    /// The cube that answers this query with the fewest cells, if any.
    fn pick_cube(&self, layouts: &Layouts, cells: &[usize]) -> Option<usize> {
        if !self.filters_range.is_empty() {
            return None;
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, l) in layouts.cubes.iter().enumerate() {
            let dims_ok = self
                .group_by
                .iter()
                .chain(self.filters_in.iter().map(|(d, _)| d))
                .all(|d| l.dims.contains(d));
            let cols_ok = self.cols.iter().all(|c| l.measures.contains(c));
            let hists_ok = self
                .hists
                .iter()
                .all(|(c, b)| l.hists.iter().any(|h| h.col == *c && &h.bins == b));
            if dims_ok && cols_ok && hists_ok {
                let n = cells.get(i).copied().unwrap_or(0);
                if best.is_none_or(|(_, m)| n < m) {
                    best = Some((i, n));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    fn answer_from_cube(&self, l: &CubeLayout, parts: &[&cube::Cube]) -> (Groups, u64) {
        let pos = |d: &Dim| l.dims.iter().position(|x| x == d).unwrap_or(0);
        let group_pos: Vec<usize> = self.group_by.iter().map(pos).collect();
        let filter_pos: Vec<(usize, &Vec<u32>)> =
            self.filters_in.iter().map(|(d, v)| (pos(d), v)).collect();
        let col_slot: Vec<usize> = self
            .cols
            .iter()
            .map(|c| 1 + l.measures.iter().position(|m| m == c).unwrap_or(0) * MEASURE_SLOTS)
            .collect();
        let hist_slot: Vec<usize> = self
            .hists
            .iter()
            .map(|(c, b)| {
                l.hists
                    .iter()
                    .find(|h| h.col == *c && &h.bins == b)
                    .map_or(0, |h| h.offset)
            })
            .collect();
        let mut groups: Groups = HashMap::default();
        let mut cells = 0u64;
        // The group's cell slots, remembered across cells of the same group.
        let mut index: HashMap<(i64, u64), usize, FastHash> = HashMap::default();
        let mut accs: Vec<((i64, u64), Acc)> = Vec::new();
        // Whole months of the segments' cells can be read merged when buckets are months
        // or coarser (months nest in quarters and years).
        let by_month = matches!(
            self.grain,
            None | Some(Grain::Month | Grain::Quarter | Grain::Year)
        );
        let mut spans: Vec<(i64, i64, bool)> = Vec::new(); // (first day, last day, whole month)
                                                           // Months outside the cells' days hold nothing: walk only those with data (a period
                                                           // may be centuries long).
        let (first, last) = parts
            .iter()
            .filter_map(|c| c.day_span())
            .fold((i64::MAX, i64::MIN), |(a, b), (f, l)| (a.min(f), b.max(l)));
        let (d0, d1) = if first <= last {
            (
                self.d0.max(Grain::Month.start(first)),
                self.d1.min(next_month(Grain::Month.start(last)) - 1),
            )
        } else {
            (0, -1)
        };
        if by_month {
            let mut d = d0;
            while d <= d1 {
                let m0 = Grain::Month.start(d);
                let next = next_month(m0);
                let last = (next - 1).min(d1);
                spans.push((d, last, d == m0 && last == next - 1));
                d = next;
            }
        } else {
            spans.push((d0, d1, false));
        }
        let mut visit = |day: i64, dc: &cube::DayCells| {
            let bucket = self.bucket(day);
            for (i, &k) in dc.keys.iter().enumerate() {
                if !filter_pos
                    .iter()
                    .all(|(p, codes)| codes.contains(&cube::unpack(k, *p)))
                {
                    continue;
                }
                cells += 1;
                let cell = &dc.data[i * l.stride..(i + 1) * l.stride];
                let mut key = 0u64;
                for (j, &p) in group_pos.iter().enumerate() {
                    key |= u64::from(cube::unpack(k, p)) << (16 * j);
                }
                let slot = *index.entry((bucket, key)).or_insert_with(|| {
                    accs.push(((bucket, key), self.new_acc()));
                    accs.len() - 1
                });
                let acc = &mut accs[slot].1;
                acc.rows += cell[0] as u64;
                for ((m, lo, hi), &s) in acc.cols.iter_mut().zip(&col_slot) {
                    m.merge(&Moments {
                        n: cell[0] as u64,
                        sum: i128::from(cell[s + cube::M_SUM]),
                        sum_sq: cube::get_i128(cell[s + cube::M_SQ_LO], cell[s + cube::M_SQ_HI]),
                    });
                    *lo = (*lo).min(cell[s + cube::M_MIN]);
                    *hi = (*hi).max(cell[s + cube::M_MAX]);
                }
                for (h, &s) in acc.hists.iter_mut().zip(&hist_slot) {
                    for (dst, &v) in h.iter_mut().zip(&cell[s..]) {
                        *dst += v as u64;
                    }
                }
            }
        };
        for (k, part) in parts.iter().enumerate() {
            for &(first, last, whole) in &spans {
                if whole && k == 0 {
                    let m = part.month(l, first, last + 1);
                    visit(first, &m);
                } else {
                    for (day, dc) in part.days_in(first, last) {
                        visit(day, dc);
                    }
                }
            }
        }
        groups.extend(accs);
        (groups, cells)
    }

    /// Where a scanned row's grouping codes and `In`-filtered codes come from.
    fn row_sources(&self) -> (Vec<DimSource>, Vec<(DimSource, &Vec<u32>)>) {
        let sources = self
            .group_by
            .iter()
            .map(|d| dim_source(self.def, d))
            .collect();
        let filters = self
            .filters_in
            .iter()
            .map(|(d, v)| (dim_source(self.def, d), v))
            .collect();
        (sources, filters)
    }

    /// The question answered from rows: only the columns it reads are decoded, and the
    /// devices are shared among the available cores (each folds its own groups; the groups
    /// are then merged, which is exact: sums are integers and every device is read by one
    /// thread).
    fn answer_by_scan(&self, db: &Db, attrs: &AttrTable) -> Result<(Groups, u64)> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        self.scan_groups(db, attrs, threads, SCAN_DEVICES_PER_THREAD)
    }

    /// [`Resolved::answer_by_scan`] on up to `threads` threads, each given at least
    /// `per_thread` devices.
    fn scan_groups(
        &self,
        db: &Db,
        attrs: &AttrTable,
        threads: usize,
        per_thread: usize,
    ) -> Result<(Groups, u64)> {
        let (sources, filter_sources) = self.row_sources();
        let (projection, pos) = self.scan_projection(&sources, &filter_sources);
        let scales: Vec<f64> = self
            .hists
            .iter()
            .map(|(c, _)| self.def.columns[*c].scale())
            .collect();
        // Each day's bucket computed once (a calendar computation per row cost a sixth of a
        // scan); days beyond the table (periods longer than 179 years) are computed.
        let table_days = (self.d1.saturating_sub(self.d0) + 1).clamp(0, 1 << 16) as usize;
        let buckets: Vec<i64> = (0..table_days as i64)
            .map(|i| self.bucket(self.d0 + i))
            .collect();
        let bucket_of = |day: i64| {
            usize::try_from(day.saturating_sub(self.d0))
                .ok()
                .and_then(|i| buckets.get(i).copied())
                .unwrap_or_else(|| self.bucket(day))
        };
        let (parts, rows) = db.scan_split(
            &self.def.name,
            self.d0.saturating_mul(DAY_MS)..(self.d1 + 1).saturating_mul(DAY_MS),
            &projection,
            ScanSplit {
                threads,
                min_devices_per_thread: per_thread,
            },
            || (Groups::default(), None::<Error>),
            |(groups, err), dr| {
                let a = attrs.device(dr.device);
                let col = |c: usize| &dr.columns[pos[c]];
                // The groups this device has rows in (each counts it once).
                let mut touched: Vec<(i64, u64)> = Vec::new();
                let code = |src: &DimSource, i: usize| -> u32 {
                    match *src {
                        DimSource::Column(c) => col(c)[i] as u32,
                        DimSource::Attribute(x) => a.codes[x],
                        DimSource::Hour => calendar::hour_of(dr.ts[i]),
                    }
                };
                for (i, &ts) in dr.ts.iter().enumerate() {
                    if !filter_sources
                        .iter()
                        .all(|(s, codes)| codes.contains(&code(s, i)))
                        || !self
                            .filters_range
                            .iter()
                            .all(|&(c, lo, hi)| (lo..=hi).contains(&col(c)[i]))
                    {
                        continue;
                    }
                    let mut key = 0u64;
                    for (j, s) in sources.iter().enumerate() {
                        key |= u64::from(code(s, i) & 0xFFFF) << (16 * j);
                    }
                    let bucket = bucket_of(calendar::day_of(ts));
                    let acc = groups
                        .entry((bucket, key))
                        .or_insert_with(|| self.new_acc());
                    acc.rows += 1;
                    if self.devices && touched.last() != Some(&(bucket, key)) {
                        touched.push((bucket, key));
                    }
                    for ((m, lo, hi), &c) in acc.cols.iter_mut().zip(&self.cols) {
                        let v = col(c)[i];
                        m.add(v);
                        *lo = (*lo).min(v);
                        *hi = (*hi).max(v);
                    }
                    for ((h, (c, bins)), &scale) in
                        acc.hists.iter_mut().zip(&self.hists).zip(&scales)
                    {
                        let b = bins.bin(col(*c)[i], scale, a.capacity_kg);
                        if let Some(x) = h.get_mut(b) {
                            *x += 1;
                        } else if err.is_none() {
                            *err = Some(invalid("histogram bin out of range"));
                        }
                    }
                }
                touched.sort_unstable();
                touched.dedup();
                for g in touched {
                    if let Some(acc) = groups.get_mut(&g) {
                        acc.devices += 1;
                    }
                }
            },
        )?;
        let mut merged: Groups = HashMap::default();
        for (groups, err) in parts {
            if let Some(e) = err {
                return Err(e);
            }
            if merged.is_empty() {
                merged = groups;
                continue;
            }
            for (g, acc) in groups {
                match merged.entry(g) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(acc);
                    }
                    std::collections::hash_map::Entry::Occupied(mut o) => o.get_mut().absorb(&acc),
                }
            }
        }
        Ok((merged, rows))
    }

    /// The columns a scan must decode (groups, filters, measures, histograms), as a
    /// projection, and each column's place in it.
    fn scan_projection(
        &self,
        sources: &[DimSource],
        filter_sources: &[(DimSource, &Vec<u32>)],
    ) -> (Vec<&str>, Vec<usize>) {
        self.projection_of(
            code_columns(sources, filter_sources)
                .chain(self.filters_range.iter().map(|&(c, _, _)| c))
                .chain(self.cols.iter().copied())
                .chain(self.hists.iter().map(|(c, _)| *c))
                .collect(),
        )
    }

    /// `cols` (column indexes) as a projection for [`Db::scan`] by name, and each column's
    /// place in it (`pos[column index]`). An empty projection would mean every column, so
    /// none gives the first.
    fn projection_of(&self, mut cols: Vec<usize>) -> (Vec<&str>, Vec<usize>) {
        if cols.is_empty() && !self.def.columns.is_empty() {
            cols.push(0);
        }
        cols.sort_unstable();
        cols.dedup();
        let mut pos = vec![0usize; self.def.columns.len()];
        for (i, &c) in cols.iter().enumerate() {
            pos[c] = i;
        }
        let names = cols
            .iter()
            .map(|&c| self.def.columns[c].name.as_str())
            .collect();
        (names, pos)
    }

    /// True when presence bits can count this question's devices: whole months, buckets of
    /// months, and a cube with bits.
    fn devices_from_presence(&self, layouts: &Layouts, cube: usize) -> bool {
        let (m0, m1) = self.whole_months();
        m0 == self.d0 && m1 == self.d1 + 1 && self.presence_usable(layouts, cube)
    }

    /// True when presence bits can count this question's devices over its whole months,
    /// the days at its edges being scanned: buckets of months and a cube with bits.
    fn presence_usable(&self, layouts: &Layouts, cube: usize) -> bool {
        matches!(
            self.grain,
            None | Some(Grain::Month | Grain::Quarter | Grain::Year)
        ) && layouts.cube_sig.get(cube).copied().flatten().is_some()
    }

    /// The whole calendar months inside the period: `[first day, end day)`, empty when
    /// `first >= end`.
    fn whole_months(&self) -> (i64, i64) {
        let m0 = if Grain::Month.start(self.d0) == self.d0 {
            self.d0
        } else {
            next_month(Grain::Month.start(self.d0))
        };
        (m0, Grain::Month.start(self.d1 + 1))
    }

    /// The days of the period outside its whole months, as `[first, end)` spans.
    fn edge_days(&self) -> Vec<(i64, i64)> {
        let (m0, m1) = self.whole_months();
        if m0 >= m1 {
            return vec![(self.d0, self.d1 + 1)];
        }
        [(self.d0, m0), (m1, self.d1 + 1)]
            .into_iter()
            .filter(|(a, b)| a < b)
            .collect()
    }

    /// The columns a row's grouping and `In`-filtered codes come from, as a projection for
    /// [`Db::scan`] (one column when none: an empty projection means all), and each column's
    /// place in it.
    fn code_projection(&self) -> (Vec<&str>, Vec<usize>) {
        let (sources, filter_sources) = self.row_sources();
        self.projection_of(code_columns(&sources, &filter_sources).collect())
    }

    /// Distinct devices per group from the presence bits: a device counts once in a group
    /// when any of its bits belonging to the group is set in any whole month of the bucket,
    /// or it has rows of the group on the days of `edge_spans` (the period's days outside
    /// its whole months).
    ///
    /// 1. Bounds from the distinct-device counts per (month, bit, attribute value)
    ///    ([`crate::rollup::PresenceCounts`]), when the group involves at most one device
    ///    attribute: each (whole month, bit) of the group gives the exact number of its
    ///    devices with that bit set that month, so the largest is a lower bound of the
    ///    group's devices; their sum, plus the same sum over the months holding edge days
    ///    (a month's bits hold every device with rows on any of its days), is an upper bound,
    ///    as are the group's rows. They meet for month buckets grouping every stream dimension
    ///    of the cube. A group is decided when they meet, or, with [`Need::AtLeast`], when
    ///    both lie on the same side of k.
    /// 2. The edge days of the groups left are read device by device, only devices whose
    ///    attributes and edge-month bits could place them in such a group, and (with
    ///    [`Need::AtLeast`]) until each has k devices from its edge days alone.
    /// 3. The groups still left are counted device by device from the bits of their whole
    ///    months (only the bits and attribute values of those groups) united with the edge
    ///    groups read, stopping once each has reached k when that is all the question needs.
    ///
    /// The fleet state's lock is held in steps 1 and 3 and for each block of device ids in
    /// step 2, never while rows are read.
    fn count_devices(
        &self,
        db: &Db,
        layouts: &Layouts,
        cube: usize,
        months: (i64, i64),
        edge_spans: &[(i64, i64)],
        groups: &mut Groups,
    ) -> Result<()> {
        let Some(sig) = layouts
            .cube_sig
            .get(cube)
            .copied()
            .flatten()
            .and_then(|i| layouts.presence.sigs.get(i))
        else {
            return Ok(());
        };
        let w = layouts.presence.words;
        let stream_pos = |d: &Dim| -> Option<usize> {
            let src = dim_source(self.def, d);
            sig.dims.iter().position(|x| *x == src)
        };
        // Per grouping dimension: where its code comes from.
        #[derive(Clone, Copy, PartialEq)]
        enum From {
            Bit(usize),
            Attr(usize),
        }
        let from = |d: &Dim| match d {
            Dim::Attribute(a) => From::Attr(a.index()),
            _ => From::Bit(stream_pos(d).unwrap_or(0)),
        };
        let group: Vec<From> = self.group_by.iter().map(from).collect();
        let filters: Vec<(From, &Vec<u32>)> =
            self.filters_in.iter().map(|(d, v)| (from(d), v)).collect();
        // Each bit's stream-dimension codes, computed once.
        let nd = sig.dims.len();
        let mut table = vec![0u32; sig.bits * nd];
        let mut codes = Vec::new();
        for p in 0..sig.bits {
            sig.codes(p, &mut codes);
            table[p * nd..(p + 1) * nd].copy_from_slice(&codes);
        }
        let bit_codes = |p: usize| &table[p * nd..(p + 1) * nd];
        let bit_passes = |p: usize| {
            let c = bit_codes(p);
            filters.iter().all(|(f, ok)| match *f {
                From::Bit(i) => ok.contains(&c.get(i).copied().unwrap_or(0)),
                From::Attr(_) => true,
            })
        };
        // The part of a group's key that its stream dimensions give, from bit p.
        let bit_key = |p: usize| {
            let c = bit_codes(p);
            let mut key = 0u64;
            for (j, f) in group.iter().enumerate() {
                if let From::Bit(i) = *f {
                    key |= u64::from(c.get(i).copied().unwrap_or(0) & 0xFFFF) << (16 * j);
                }
            }
            key
        };
        // The part its attributes give, when the device passes the attribute filters.
        let attr_key = |a: &crate::rollup::DeviceAttrs| -> Option<u64> {
            if !filters.iter().all(|(f, ok)| match *f {
                From::Attr(x) => ok.contains(&a.codes[x]),
                From::Bit(_) => true,
            }) {
                return None;
            }
            let mut key = 0u64;
            for (j, f) in group.iter().enumerate() {
                if let From::Attr(x) = *f {
                    key |= u64::from(a.codes[x] & 0xFFFF) << (16 * j);
                }
            }
            Some(key)
        };
        let attr_mask: u64 = group
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(f, From::Attr(_)))
            .map(|(j, _)| 0xFFFFu64 << (16 * j))
            .sum();
        // The groups a device's bits of some months place it in (keys of `want` only).
        let groups_of = |bits: &[(i64, i64, &Vec<u64>)],
                         d: usize,
                         akey: u64,
                         mask: &[u64],
                         out: &mut Vec<(i64, u64)>| {
            for &(_, bucket, bits) in bits {
                let Some(words) = bits.get(d * w..(d + 1) * w) else {
                    continue;
                };
                for (wi, (&word, &m)) in words.iter().zip(mask).enumerate() {
                    let mut x = word & m;
                    while x != 0 {
                        let b = wi * 64 + x.trailing_zeros() as usize;
                        x &= x - 1;
                        out.push((bucket, bit_key(b - sig.offset) | akey));
                    }
                }
            }
        };
        let mut edge_months: Vec<i64> = Vec::new();
        for &(a, b) in edge_spans {
            let mut m = Grain::Month.start(a);
            while m < b {
                edge_months.push(m);
                m = next_month(m);
            }
        }
        edge_months.sort_unstable();
        edge_months.dedup();
        let cap = match self.need {
            Need::Exact => u64::MAX,
            Need::AtLeast(k) => k,
        };

        // 1. Bounds.
        let mut open: HashMap<(i64, u64), u64, FastHash> = HashMap::default();
        {
            let rollups = db.rollups();
            let state = &rollups.streams[self.stream];
            let whole: Vec<i64> = if months.0 < months.1 {
                state
                    .presence
                    .range(months.0..months.1)
                    .map(|(m, _)| *m)
                    .collect()
            } else {
                Vec::new()
            };
            let mut involved: Vec<usize> = group
                .iter()
                .chain(filters.iter().map(|(f, _)| f))
                .filter_map(|f| match *f {
                    From::Attr(x) => Some(x),
                    From::Bit(_) => None,
                })
                .collect();
            involved.sort_unstable();
            involved.dedup();
            let counted = involved.len() <= 1;
            // Per group: (sum, max) over its whole months' (month, bit)s; the sum over its
            // edge months'.
            let mut inner: HashMap<(i64, u64), (u64, u64), FastHash> = HashMap::default();
            let mut outer: HashMap<(i64, u64), u64, FastHash> = HashMap::default();
            if counted {
                let counts = state
                    .counts
                    .get_or_build(w, &rollups.attrs, &state.presence);
                let n = counts.nbits;
                let attr = involved.first().copied();
                let grouped = group.iter().position(|f| Some(*f) == attr.map(From::Attr));
                let accepted: Option<&Vec<u32>> = filters
                    .iter()
                    .find(|(f, _)| Some(*f) == attr.map(From::Attr))
                    .map(|(_, v)| *v);
                let each = |m: i64, add: &mut dyn FnMut((i64, u64), u32)| {
                    let Some(slots) = counts.months.get(&m) else {
                        return;
                    };
                    let bucket = self.bucket(m);
                    for p in (0..sig.bits).filter(|&p| bit_passes(p)) {
                        let b = sig.offset + p;
                        let key = bit_key(p);
                        match (attr, grouped) {
                            (None, _) => add(
                                (bucket, key),
                                slots[crate::rollup::ALL_DEVICES]
                                    .get(b)
                                    .copied()
                                    .unwrap_or(0),
                            ),
                            (Some(a), Some(j)) => {
                                for (code, per_code) in slots[a].chunks(n).enumerate() {
                                    let code = code as u32;
                                    if accepted.is_some_and(|v| !v.contains(&code)) {
                                        continue;
                                    }
                                    let c = per_code.get(b).copied().unwrap_or(0);
                                    add((bucket, key | (u64::from(code & 0xFFFF) << (16 * j))), c);
                                }
                            }
                            (Some(a), None) => {
                                let c = accepted.map_or(0, |v| {
                                    v.iter().map(|&code| counts.get(m, b, a, code)).sum::<u32>()
                                });
                                add((bucket, key), c);
                            }
                        }
                    }
                };
                for &m in &whole {
                    each(m, &mut |g, c| {
                        if c > 0 {
                            let e = inner.entry(g).or_default();
                            e.0 += u64::from(c);
                            e.1 = e.1.max(u64::from(c));
                        }
                    });
                }
                for &m in &edge_months {
                    each(m, &mut |g, c| {
                        if c > 0 {
                            *outer.entry(g).or_default() += u64::from(c);
                        }
                    });
                }
            }
            for (g, acc) in groups.iter_mut() {
                let (lo, hi) = if counted {
                    let (sum, max) = inner.get(g).copied().unwrap_or((0, 0));
                    let edge = outer.get(g).copied().unwrap_or(0);
                    (max, (sum + edge).min(acc.rows))
                } else {
                    (0, acc.rows)
                };
                match self.need {
                    _ if lo == hi => acc.devices = lo,
                    Need::AtLeast(k) if lo >= k => acc.devices = lo,
                    Need::AtLeast(k) if hi < k => acc.devices = hi,
                    _ => {
                        open.insert(*g, 0);
                    }
                }
            }
        }
        if open.is_empty() {
            return Ok(());
        }
        // What the open groups are made of: attribute values, bits, buckets.
        let open_attr: HashSet<u64, FastHash> = open.keys().map(|&(_, k)| k & attr_mask).collect();
        let open_bits: HashSet<u64, FastHash> = open.keys().map(|&(_, k)| k & !attr_mask).collect();
        let open_buckets: HashSet<i64, FastHash> = open.keys().map(|&(b, _)| b).collect();
        let mut mask = vec![0u64; w];
        for p in 0..sig.bits {
            if bit_passes(p) && open_bits.contains(&bit_key(p)) {
                let b = sig.offset + p;
                mask[b / 64] |= 1u64 << (b % 64);
            }
        }

        // 2. The edge days, device by device.
        let mut edge_groups: HashMap<u32, Vec<(i64, u64)>, FastHash> = HashMap::default();
        let mut done: HashSet<(i64, u64), FastHash> = HashSet::default();
        let edges_matter = edge_spans
            .iter()
            .any(|&(a, b)| (a..b).any(|d| open_buckets.contains(&self.bucket(d))));
        if edges_matter {
            // Open groups per key: a device is read only while one of its keys has some.
            let mut keys: HashMap<u64, usize, FastHash> = HashMap::default();
            for &(_, k) in open.keys() {
                *keys.entry(k).or_default() += 1;
            }
            // Read by `want`, updated by `visit` (called in turn, never at once).
            let open_keys = std::cell::RefCell::new(keys);
            let mut from_edges: HashMap<(i64, u64), u64, FastHash> = HashMap::default();
            let mut left = open.len();
            let (projection, pos) = self.code_projection();
            let (sources, filter_sources) = self.row_sources();
            // Per device of the current block of ids: its attributes and the keys its edge
            // months' bits give (read by `visit` after `want` said yes to the device).
            const BLOCK: usize = 1024;
            type Block = (usize, Vec<(crate::rollup::DeviceAttrs, Vec<u64>)>);
            let block: std::cell::RefCell<Block> =
                std::cell::RefCell::new((usize::MAX, Vec::new()));
            let mut scratch: Vec<(i64, u64)> = Vec::new();
            for &(a, b) in edge_spans {
                let mut want = |d: u32| -> bool {
                    let d = d as usize;
                    let mut blk = block.borrow_mut();
                    if blk.0 == usize::MAX || d < blk.0 || d >= blk.0 + BLOCK {
                        let first = d - d % BLOCK;
                        let rollups = db.rollups();
                        let state = &rollups.streams[self.stream];
                        let bits: Vec<(i64, i64, &Vec<u64>)> = edge_months
                            .iter()
                            .filter_map(|m| state.presence.get(m).map(|b| (*m, 0, b)))
                            .collect();
                        let mut devs = Vec::with_capacity(BLOCK);
                        for dev in first..first + BLOCK {
                            let at = rollups.attrs.device(dev as u32);
                            let mut ks = Vec::new();
                            if let Some(akey) = attr_key(&at).filter(|k| open_attr.contains(k)) {
                                scratch.clear();
                                groups_of(&bits, dev, akey, &mask, &mut scratch);
                                ks.extend(scratch.iter().map(|&(_, k)| k));
                                ks.sort_unstable();
                                ks.dedup();
                            }
                            devs.push((at, ks));
                        }
                        *blk = (first, devs);
                    }
                    let keys = open_keys.borrow();
                    blk.1[d - blk.0]
                        .1
                        .iter()
                        .any(|k| keys.get(k).is_some_and(|&n| n > 0))
                };
                let visit = |dr: &crate::db::DeviceRows| -> bool {
                    let at = {
                        let blk = block.borrow();
                        (dr.device as usize)
                            .checked_sub(blk.0)
                            .and_then(|i| blk.1.get(i))
                            .map_or_else(Default::default, |x| x.0)
                    };
                    let code = |src: &DimSource, i: usize| -> u32 {
                        match *src {
                            DimSource::Column(c) => dr.columns[pos[c]][i] as u32,
                            DimSource::Attribute(x) => at.codes[x],
                            DimSource::Hour => calendar::hour_of(dr.ts[i]),
                        }
                    };
                    let mut touched: Vec<(i64, u64)> = Vec::new();
                    for (i, &ts) in dr.ts.iter().enumerate() {
                        if !filter_sources
                            .iter()
                            .all(|(s, codes)| codes.contains(&code(s, i)))
                        {
                            continue;
                        }
                        let mut key = 0u64;
                        for (j, s) in sources.iter().enumerate() {
                            key |= u64::from(code(s, i) & 0xFFFF) << (16 * j);
                        }
                        touched.push((self.bucket(calendar::day_of(ts)), key));
                    }
                    touched.sort_unstable();
                    touched.dedup();
                    let mine = edge_groups.entry(dr.device).or_default();
                    for g in touched {
                        // Once per device and group, whichever edge its rows are on.
                        if !open.contains_key(&g) || mine.contains(&g) {
                            continue;
                        }
                        mine.push(g);
                        let n = from_edges.entry(g).or_default();
                        *n += 1;
                        if *n == cap {
                            done.insert(g);
                            left -= 1;
                            if let Some(c) = open_keys.borrow_mut().get_mut(&g.1) {
                                *c -= 1;
                            }
                        }
                    }
                    left > 0
                };
                db.scan_where(
                    &self.def.name,
                    a.saturating_mul(DAY_MS)..b.saturating_mul(DAY_MS),
                    &projection,
                    &mut want,
                    visit,
                )?;
                if left == 0 {
                    break;
                }
            }
        }
        for g in &done {
            open.remove(g);
            if let Some(acc) = groups.get_mut(g) {
                acc.devices = cap;
            }
        }
        if open.is_empty() {
            return Ok(());
        }

        // 3. The whole months' bits of the groups left, with their edge groups.
        let rollups = db.rollups();
        let state = &rollups.streams[self.stream];
        let whole: Vec<(i64, i64, &Vec<u64>)> = if months.0 < months.1 {
            state
                .presence
                .range(months.0..months.1)
                .map(|(m, b)| (*m, self.bucket(*m), b))
                .filter(|(_, bucket, _)| open_buckets.contains(bucket))
                .collect()
        } else {
            Vec::new()
        };
        let ndev = whole
            .iter()
            .map(|(_, _, b)| b.len().checked_div(w).unwrap_or(0))
            .chain(edge_groups.keys().map(|&d| d as usize + 1))
            .max()
            .unwrap_or(0);
        let mut left = open.len();
        let mut touched: Vec<(i64, u64)> = Vec::new();
        for d in 0..ndev {
            let Some(akey) =
                attr_key(&rollups.attrs.device(d as u32)).filter(|k| open_attr.contains(k))
            else {
                continue;
            };
            touched.clear();
            if let Some(e) = edge_groups.get(&(d as u32)) {
                touched.extend_from_slice(e);
            }
            groups_of(&whole, d, akey, &mask, &mut touched);
            touched.sort_unstable();
            touched.dedup();
            for g in &touched {
                if let Some(n) = open.get_mut(g) {
                    if *n < cap {
                        *n += 1;
                        if *n == cap {
                            left -= 1;
                        }
                    }
                }
            }
            if left == 0 {
                break;
            }
        }
        for (g, n) in open {
            if let Some(acc) = groups.get_mut(&g) {
                acc.devices = n;
            }
        }
        Ok(())
    }

    fn finish(&self, attrs: &AttrTable, groups: Groups, source: Source) -> FleetResult {
        let mut rows: Vec<FleetRow> = groups
            .into_iter()
            .map(|((bucket, packed), acc)| {
                let keys = self
                    .group_by
                    .iter()
                    .enumerate()
                    .map(|(j, d)| dim_label(self.def, attrs, d, cube::unpack(packed, j)))
                    .collect();
                let values = self.measures.iter().map(|m| self.value(m, &acc)).collect();
                FleetRow {
                    bucket: self.grain.map(|g| calendar::bucket_label(g, bucket)),
                    bucket_day: self.grain.map(|_| bucket),
                    keys,
                    rows: acc.rows,
                    devices: self.devices.then_some(acc.devices),
                    values,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            a.bucket_day
                .cmp(&b.bucket_day)
                .then_with(|| a.keys.cmp(&b.keys))
        });
        FleetResult {
            dims: self.group_by.iter().map(Dim::label).collect(),
            measures: self.measures.iter().map(Measure::label).collect(),
            from_day: self.d0,
            to_day: self.d1,
            rows,
            source,
        }
    }

    fn value(&self, m: &Measure, acc: &Acc) -> Value {
        if let Measure::Histogram { column, bins } = m {
            let i = self
                .hists
                .iter()
                .position(|(c, b)| self.def.columns[*c].name == *column && b == bins);
            return Value::Bins(
                i.and_then(|i| acc.hists.get(i))
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        let Some(ci) = self.def.column_index(m.column()) else {
            return Value::Number(None);
        };
        let scale = self.def.columns[ci].scale();
        let Some((mom, lo, hi)) = self
            .cols
            .iter()
            .position(|&c| c == ci)
            .and_then(|i| acc.cols.get(i))
        else {
            return Value::Number(None);
        };
        let n = mom.n;
        Value::Number(match m {
            Measure::Sum(_) => Some(mom.sum as f64 / scale),
            Measure::Mean(_) => (n > 0).then(|| mom.sum as f64 / n as f64 / scale),
            Measure::Min(_) => (n > 0).then(|| *lo as f64 / scale),
            Measure::Max(_) => (n > 0).then(|| *hi as f64 / scale),
            Measure::Variance(_) => (n > 0).then(|| {
                // n·Σx² − (Σx)² in integers, exact while it fits.
                let n_i = i128::from(n);
                let num = n_i
                    .checked_mul(mom.sum_sq)
                    .and_then(|a| mom.sum.checked_mul(mom.sum).and_then(|b| a.checked_sub(b)));
                match num {
                    Some(v) => v as f64 / (n as f64 * n as f64) / (scale * scale),
                    None => {
                        let mean = mom.sum as f64 / n as f64;
                        (mom.sum_sq as f64 / n as f64 - mean * mean) / (scale * scale)
                    }
                }
            }),
            Measure::Histogram { .. } => None,
        })
    }
}

/// The first day of the month after the one starting at `first`.
fn next_month(first: i64) -> i64 {
    let (y, m, _) = calendar::civil_from_days(first);
    if m == 12 {
        calendar::days_from_civil(y + 1, 1, 1)
    } else {
        calendar::days_from_civil(y, m + 1, 1)
    }
}

fn dim_source(def: &StreamDef, d: &Dim) -> DimSource {
    match d {
        Dim::Column(c) => DimSource::Column(def.column_index(c).unwrap_or(0)),
        Dim::Attribute(a) => DimSource::Attribute(a.index()),
        Dim::HourOfDay => DimSource::Hour,
    }
}

impl Db {
    /// Answers a fleet question (see [`FleetQuery`]).
    pub fn fleet(&self, q: &FleetQuery) -> Result<FleetResult> {
        self.fleet_need(q, Need::Exact)
    }

    /// [`Db::fleet`], with devices (when `q.devices`) counted only as exactly as `need` says.
    pub(crate) fn fleet_need(&self, q: &FleetQuery, need: Need) -> Result<FleetResult> {
        // The attribute table is read under the lock, not copied (it holds every device).
        let mut r = resolve(self, q, &self.rollups().attrs)?;
        r.need = need;
        let (groups, source) = self.fleet_groups(q, &r)?;
        // Labels from the table as of now (it only grows).
        Ok(r.finish(&self.rollups().attrs, groups, source))
    }

    /// The integer aggregates of a resolved question, from a rollup or a scan.
    pub(crate) fn fleet_groups(
        &self,
        q: &FleetQuery,
        r: &Resolved<'_>,
    ) -> Result<(Groups, Source)> {
        let layouts = &self.layouts()[r.stream];
        let pick = match q.plan {
            Plan::Scan => None,
            _ => {
                let rollups = self.rollups();
                let cells: Vec<usize> = rollups.streams[r.stream]
                    .cubes
                    .iter()
                    .map(cube::Cube::cells)
                    .collect();
                r.pick_cube(layouts, &cells)
            }
        };
        // Devices are counted from presence bits over whole months, the days at the edges of
        // a period of partial months being scanned; a cube without bits (or day and week
        // buckets) answers only when the rollup is required, its devices counted by a scan.
        let (pick, scan_devices) = match pick {
            Some(i) if q.devices && !r.presence_usable(layouts, i) => {
                if q.plan == Plan::Rollup {
                    (Some(i), true)
                } else {
                    (None, false)
                }
            }
            p => (p, false),
        };
        match (pick, q.plan) {
            (Some(i), _) => {
                let (mut groups, cells) = self.with_cube(r.stream, i, |parts| {
                    r.answer_from_cube(&layouts.cubes[i], parts)
                });
                if r.wants_extremes() && stale_extremes(&groups) {
                    // Rows were taken out of a cell the answer read: its min or max is no
                    // longer known; the rows are.
                    if q.plan == Plan::Rollup {
                        return Err(invalid(format!(
                            "the rollup '{}' cannot give exact min/max here (rows were \
                             removed since its cells were written); scan instead",
                            layouts.cubes[i].name
                        )));
                    }
                    let attrs = self.rollups().attrs.clone();
                    let (groups, rows) = r.answer_by_scan(self, &attrs)?;
                    return Ok((groups, Source::Scan { rows }));
                }
                if scan_devices {
                    let attrs = self.rollups().attrs.clone();
                    let (scanned, _) = r.answer_by_scan(self, &attrs)?;
                    for (g, acc) in groups.iter_mut() {
                        acc.devices = scanned.get(g).map_or(0, |a| a.devices);
                    }
                } else if q.devices {
                    let edges = if r.devices_from_presence(layouts, i) {
                        Vec::new()
                    } else {
                        r.edge_days()
                    };
                    r.count_devices(self, layouts, i, r.whole_months(), &edges, &mut groups)?;
                }
                let source = Source::Rollup {
                    cube: layouts.cubes[i].name.clone(),
                    cells,
                };
                return Ok((groups, source));
            }
            (None, Plan::Rollup) => {
                return Err(invalid(format!(
                    "no rollup of '{}' covers this question (group by {:?})",
                    q.stream,
                    q.group_by.iter().map(Dim::label).collect::<Vec<_>>()
                )))
            }
            (None, _) => {}
        }
        // The scan reads rows, not rollups: the lock is released.
        let attrs = self.rollups().attrs.clone();
        let (groups, rows) = r.answer_by_scan(self, &attrs)?;
        Ok((groups, Source::Scan { rows }))
    }
}

/// The columns grouping and `In`-filter codes come from.
fn code_columns<'s>(
    sources: &'s [DimSource],
    filter_sources: &'s [(DimSource, &Vec<u32>)],
) -> impl Iterator<Item = usize> + 's {
    sources
        .iter()
        .chain(filter_sources.iter().map(|(s, _)| s))
        .filter_map(|s| match *s {
            DimSource::Column(c) => Some(c),
            _ => None,
        })
}

/// True when an extreme of some group came from a stale cell (see `rollup::cube`).
fn stale_extremes(groups: &Groups) -> bool {
    groups.values().any(|a| {
        a.cols
            .iter()
            .any(|&(_, lo, hi)| lo == cube::STALE_MIN || hi == cube::STALE_MAX)
    })
}

/// Parses a dimension label against a stream, as an error when unknown.
pub(crate) fn parse_dim(def: &StreamDef, label: &str) -> Result<Dim> {
    Dim::parse(def, label).ok_or_else(|| {
        invalid(format!(
            "'{label}' is neither a categorical column of '{}' nor one of model, capacity_kg, \
             region, segment, hour",
            def.name
        ))
    })
}

/// Shorthand for an attribute dimension.
pub(crate) fn attr(a: Attribute) -> Dim {
    Dim::Attribute(a)
}
