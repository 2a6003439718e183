//! Fleet cubes in memory: cells keyed by (day, packed dimension codes), each a fixed run of
//! `i64` slots.
//!
//! Slot layout of a cell: `[count]`, then per measure `[sum, sumsq_lo, sumsq_hi, min, max]`
//! (the sum of squares is an `i128` split in two slots), then every histogram's bins. Every
//! slot merges by addition except min and max, so two cubes of the same declaration merge
//! cell by cell, and a day's cells merge into any coarser bucket.
//!
//! Rows can be taken back out ([`Cube::retract_row`]): count, sums, sums of squares and
//! histogram bins subtract exactly. Min and max cannot be undone from a cell, so a
//! retraction that removes a cell's extreme marks the cell's extremes *stale* (min
//! `i64::MIN`, max `i64::MAX`, which no stored value reaches: schema validation bounds them).
//! Merging keeps a stale mark (the min of anything and `i64::MIN` is `i64::MIN`), so an
//! answer whose extremes come out as those sentinels touched a stale cell, and the planner
//! answers min and max from rows instead. Rewriting a rollup file from rows (compaction)
//! clears the mark.
//!
//! Invariants: a day's keys are unique; `data.len() == keys.len() * stride`; a cell exists
//! only while it holds rows (count ≥ 1).

use std::collections::BTreeMap;

use crate::schema::{Bins, CubeDef, Dim, StreamDef};

/// A stale minimum and maximum (see the module docs).
pub(crate) const STALE_MIN: i64 = i64::MIN;
pub(crate) const STALE_MAX: i64 = i64::MAX;

/// Slots per measure.
pub(crate) const MEASURE_SLOTS: usize = 5;
/// Offsets within a measure's slots.
pub(crate) const M_SUM: usize = 0;
pub(crate) const M_SQ_LO: usize = 1;
pub(crate) const M_SQ_HI: usize = 2;
pub(crate) const M_MIN: usize = 3;
pub(crate) const M_MAX: usize = 4;

/// Where a dimension's code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DimSource {
    /// Column index: the stored category code.
    Column(usize),
    /// Attribute index (see [`crate::schema::Attribute::index`]): the interned code.
    Attribute(usize),
    /// Hour of day of the timestamp.
    Hour,
}

/// A histogram resolved against the stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistLayout {
    pub col: usize,
    pub scale: f64,
    pub bins: Bins,
    /// First slot.
    pub offset: usize,
}

/// A cube declaration resolved to column indexes and slot offsets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CubeLayout {
    pub name: String,
    pub dims: Vec<Dim>,
    pub dim_sources: Vec<DimSource>,
    /// Measure column indexes.
    pub measures: Vec<usize>,
    /// Histogram names, parallel to `hists`.
    pub hist_names: Vec<String>,
    pub hists: Vec<HistLayout>,
    pub stride: usize,
}

impl CubeLayout {
    /// Resolves a validated declaration.
    pub(crate) fn new(stream: &StreamDef, def: &CubeDef) -> CubeLayout {
        let col = |n: &str| stream.column_index(n).unwrap_or(0);
        let dim_sources = def
            .dims
            .iter()
            .map(|d| match d {
                Dim::Column(c) => DimSource::Column(col(c)),
                Dim::Attribute(a) => DimSource::Attribute(a.index()),
                Dim::HourOfDay => DimSource::Hour,
            })
            .collect();
        let measures: Vec<usize> = def.measures.iter().map(|m| col(m)).collect();
        let mut offset = 1 + measures.len() * MEASURE_SLOTS;
        let hists = def
            .histograms
            .iter()
            .map(|h| {
                let c = col(&h.column);
                let l = HistLayout {
                    col: c,
                    scale: stream.columns.get(c).map_or(1.0, |d| d.scale()),
                    bins: h.bins.clone(),
                    offset,
                };
                offset += h.bins.count();
                l
            })
            .collect();
        CubeLayout {
            name: def.name.clone(),
            dims: def.dims.clone(),
            dim_sources,
            measures,
            hist_names: def.histograms.iter().map(|h| h.name.clone()).collect(),
            hists,
            stride: offset,
        }
    }

    /// A fresh cell: count 0, min/max at their identities.
    pub(crate) fn empty_cell(&self, out: &mut Vec<i64>) {
        let at = out.len();
        out.resize(at + self.stride, 0);
        for m in 0..self.measures.len() {
            out[at + 1 + m * MEASURE_SLOTS + M_MIN] = i64::MAX;
            out[at + 1 + m * MEASURE_SLOTS + M_MAX] = i64::MIN;
        }
    }

    /// Adds one row to a cell.
    pub(crate) fn add_row(&self, cell: &mut [i64], vals: &[i64], capacity_kg: f64) {
        cell[0] += 1;
        for (m, &c) in self.measures.iter().enumerate() {
            let v = vals.get(c).copied().unwrap_or(0);
            let s = &mut cell[1 + m * MEASURE_SLOTS..1 + (m + 1) * MEASURE_SLOTS];
            s[M_SUM] += v;
            let sq = get_i128(s[M_SQ_LO], s[M_SQ_HI]) + i128::from(v) * i128::from(v);
            (s[M_SQ_LO], s[M_SQ_HI]) = split_i128(sq);
            s[M_MIN] = s[M_MIN].min(v);
            s[M_MAX] = s[M_MAX].max(v);
        }
        for h in &self.hists {
            let v = vals.get(h.col).copied().unwrap_or(0);
            cell[h.offset + h.bins.bin(v, h.scale, capacity_kg)] += 1;
        }
    }

    /// Takes one row, added before, back out of a cell. Count, sums, sums of squares and
    /// bins subtract exactly; an extreme the row may have set is marked stale.
    pub(crate) fn retract_row(&self, cell: &mut [i64], vals: &[i64], capacity_kg: f64) {
        cell[0] -= 1;
        for (m, &c) in self.measures.iter().enumerate() {
            let v = vals.get(c).copied().unwrap_or(0);
            let s = &mut cell[1 + m * MEASURE_SLOTS..1 + (m + 1) * MEASURE_SLOTS];
            s[M_SUM] -= v;
            let sq = get_i128(s[M_SQ_LO], s[M_SQ_HI]) - i128::from(v) * i128::from(v);
            (s[M_SQ_LO], s[M_SQ_HI]) = split_i128(sq);
            if v <= s[M_MIN] || v >= s[M_MAX] {
                (s[M_MIN], s[M_MAX]) = (STALE_MIN, STALE_MAX);
            }
        }
        for h in &self.hists {
            let v = vals.get(h.col).copied().unwrap_or(0);
            cell[h.offset + h.bins.bin(v, h.scale, capacity_kg)] -= 1;
        }
    }

    /// True when a measure's extremes in `cell` are stale (see the module docs).
    #[cfg(test)]
    pub(crate) fn is_stale(&self, cell: &[i64]) -> bool {
        (0..self.measures.len()).any(|m| {
            let b = 1 + m * MEASURE_SLOTS;
            cell[b + M_MIN] == STALE_MIN && cell[b + M_MAX] == STALE_MAX
        })
    }

    /// Merges cell `src` into `dst`.
    pub(crate) fn merge_cell(&self, dst: &mut [i64], src: &[i64]) {
        dst[0] += src[0];
        for m in 0..self.measures.len() {
            let b = 1 + m * MEASURE_SLOTS;
            dst[b + M_SUM] += src[b + M_SUM];
            let sq = get_i128(dst[b + M_SQ_LO], dst[b + M_SQ_HI])
                + get_i128(src[b + M_SQ_LO], src[b + M_SQ_HI]);
            (dst[b + M_SQ_LO], dst[b + M_SQ_HI]) = split_i128(sq);
            dst[b + M_MIN] = dst[b + M_MIN].min(src[b + M_MIN]);
            dst[b + M_MAX] = dst[b + M_MAX].max(src[b + M_MAX]);
        }
        let hist_start = 1 + self.measures.len() * MEASURE_SLOTS;
        for (d, s) in dst[hist_start..].iter_mut().zip(&src[hist_start..]) {
            *d += s;
        }
    }
}

/// The `i128` held in two slots.
pub(crate) fn get_i128(lo: i64, hi: i64) -> i128 {
    (i128::from(hi) << 64) | i128::from(lo as u64)
}

/// Splits an `i128` into (lo, hi) slots.
pub(crate) fn split_i128(v: i128) -> (i64, i64) {
    (v as u64 as i64, (v >> 64) as i64)
}

/// Packs dimension codes (16 bits each) into a key.
pub(crate) fn pack(codes: &[u32]) -> u64 {
    codes
        .iter()
        .enumerate()
        .fold(0u64, |k, (i, &c)| k | (u64::from(c & 0xFFFF) << (16 * i)))
}

/// Code of dimension `i` in a packed key.
pub(crate) fn unpack(key: u64, i: usize) -> u32 {
    ((key >> (16 * i)) & 0xFFFF) as u32
}

/// The cells of one day, in insertion order, with an open-addressing index over the keys
/// (a cube has a few hundred keys a day at most, looked up once per row).
#[derive(Debug, Clone, Default)]
pub(crate) struct DayCells {
    pub keys: Vec<u64>,
    pub data: Vec<i64>,
    /// Slot → key index + 1 (0: empty); the length is a power of two, at least twice the
    /// number of keys.
    table: Vec<u32>,
}

impl PartialEq for DayCells {
    /// Equal when they hold the same cells, whatever the insertion order.
    fn eq(&self, other: &Self) -> bool {
        if self.keys.len() != other.keys.len() || self.data.len() != other.data.len() {
            return false;
        }
        let stride = self.data.len() / self.keys.len().max(1);
        self.keys.iter().enumerate().all(|(i, k)| {
            other.find(*k).is_some_and(|j| {
                self.data.get(i * stride..(i + 1) * stride)
                    == other.data.get(j * stride..(j + 1) * stride)
            })
        })
    }
}

fn slot_of(key: u64, mask: usize) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
}

impl DayCells {
    /// Cells from decoded parts; `None` when a key repeats.
    pub(crate) fn from_parts(keys: Vec<u64>, data: Vec<i64>) -> Option<DayCells> {
        let mut d = DayCells {
            keys,
            data,
            table: Vec::new(),
        };
        d.rebuild();
        let mut seen = 0;
        for (i, &k) in d.keys.iter().enumerate() {
            if d.find(k) == Some(i) {
                seen += 1;
            }
        }
        (seen == d.keys.len()).then_some(d)
    }

    fn rebuild(&mut self) {
        let cap = (self.keys.len() * 2).next_power_of_two().max(16);
        self.table = vec![0; cap];
        let mask = cap - 1;
        for (i, &k) in self.keys.iter().enumerate() {
            let mut s = slot_of(k, mask);
            while self.table[s] != 0 {
                s = (s + 1) & mask;
            }
            self.table[s] = i as u32 + 1;
        }
    }

    /// The index of `key`.
    fn find(&self, key: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        let mask = self.table.len() - 1;
        let mut s = slot_of(key, mask);
        loop {
            match self.table[s] {
                0 => return None,
                i if self.keys.get(i as usize - 1) == Some(&key) => return Some(i as usize - 1),
                _ => s = (s + 1) & mask,
            }
        }
    }

    /// The cell of `key`, created empty when missing.
    pub(crate) fn cell_mut(&mut self, layout: &CubeLayout, key: u64) -> &mut [i64] {
        let i = match self.find(key) {
            Some(i) => i,
            None => {
                let i = self.keys.len();
                self.keys.push(key);
                layout.empty_cell(&mut self.data);
                if self.keys.len() * 2 > self.table.len() {
                    self.rebuild();
                } else {
                    let mask = self.table.len() - 1;
                    let mut s = slot_of(key, mask);
                    while self.table[s] != 0 {
                        s = (s + 1) & mask;
                    }
                    self.table[s] = i as u32 + 1;
                }
                i
            }
        };
        &mut self.data[i * layout.stride..(i + 1) * layout.stride]
    }

    /// The cell of `key` to change in place, if any.
    fn existing_mut(&mut self, layout: &CubeLayout, key: u64) -> Option<&mut [i64]> {
        let i = self.find(key)?;
        self.data
            .get_mut(i * layout.stride..(i + 1) * layout.stride)
    }

    /// Removes the cell of `key` (the last cell takes its place).
    fn remove(&mut self, layout: &CubeLayout, key: u64) {
        let Some(i) = self.find(key) else { return };
        let last = self.keys.len() - 1;
        self.keys.swap_remove(i);
        if i != last {
            let (a, b) = (i * layout.stride, last * layout.stride);
            self.data.copy_within(b..b + layout.stride, a);
        }
        self.data.truncate(last * layout.stride);
        self.rebuild();
    }

    /// The cell of `key`, if any.
    pub(crate) fn cell(&self, layout: &CubeLayout, key: u64) -> Option<&[i64]> {
        let i = self.find(key)?;
        self.data.get(i * layout.stride..(i + 1) * layout.stride)
    }

    fn merge(&mut self, layout: &CubeLayout, other: &DayCells) {
        for (i, &key) in other.keys.iter().enumerate() {
            let src = &other.data[i * layout.stride..(i + 1) * layout.stride];
            layout.merge_cell(self.cell_mut(layout, key), src);
        }
    }
}

/// One cube's cells, per day. Days live in an arena indexed by a map, and the last day
/// written is remembered: rows arrive in time order, so most rows skip the map lookup. The
/// all-time cells (one lookup answers "the fleet of this model") are merged from the days on
/// first use and cached until the next write.
#[derive(Debug, Default)]
pub(crate) struct Cube {
    index: BTreeMap<i64, usize>,
    arena: Vec<DayCells>,
    last: Option<(i64, usize)>,
    /// Cells over all days (the planner compares cubes by it on every question).
    ncells: usize,
    totals: parking_lot::Mutex<Option<std::sync::Arc<DayCells>>>,
    /// Whole months merged (keyed by their first day), built on first use and dropped at the
    /// next write. The database's cubes change only when a flush merges a memtable's cells,
    /// so between flushes a year of cells is read as twelve months.
    months: parking_lot::Mutex<std::collections::HashMap<i64, std::sync::Arc<DayCells>>>,
}

impl Clone for Cube {
    fn clone(&self) -> Self {
        Cube {
            index: self.index.clone(),
            arena: self.arena.clone(),
            last: self.last,
            ncells: self.ncells,
            totals: parking_lot::Mutex::new(None),
            months: parking_lot::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl PartialEq for Cube {
    fn eq(&self, other: &Self) -> bool {
        self.days().eq(other.days())
    }
}

impl Cube {
    /// The cells of `day`, created empty when missing.
    pub(crate) fn day_mut(&mut self, day: i64) -> &mut DayCells {
        *self.totals.get_mut() = None;
        let months = self.months.get_mut();
        if !months.is_empty() {
            months.clear();
        }
        let i = match self.last {
            Some((d, i)) if d == day => i,
            _ => {
                let next = self.arena.len();
                let i = *self.index.entry(day).or_insert(next);
                if i == next {
                    self.arena.push(DayCells::default());
                }
                self.last = Some((day, i));
                i
            }
        };
        &mut self.arena[i]
    }

    /// Adds one row to the cell of (day, key).
    pub(crate) fn add_row(
        &mut self,
        layout: &CubeLayout,
        day: i64,
        key: u64,
        vals: &[i64],
        capacity_kg: f64,
    ) {
        let dc = self.day_mut(day);
        let before = dc.keys.len();
        layout.add_row(dc.cell_mut(layout, key), vals, capacity_kg);
        let added = dc.keys.len() - before;
        self.ncells += added;
    }

    /// Adds rows to their cells: row `i` is `rows[i * ncols..]`, in the cell of (`days[i]`,
    /// `keys[i]`), its device's capacity `caps[i]`. As [`Cube::add_row`] for each row, with
    /// the caches dropped once and the day looked up once per run of rows on one day.
    pub(crate) fn add_rows(
        &mut self,
        layout: &CubeLayout,
        days: &[i64],
        keys: &[u64],
        rows: &[i64],
        ncols: usize,
        caps: &[f64],
    ) {
        if keys.is_empty() || ncols == 0 {
            return;
        }
        *self.totals.get_mut() = None;
        let months = self.months.get_mut();
        if !months.is_empty() {
            months.clear();
        }
        let mut cur = self.last;
        for (((&day, &key), vals), &cap) in days
            .iter()
            .zip(keys)
            .zip(rows.chunks_exact(ncols))
            .zip(caps)
        {
            let i = match cur {
                Some((d, i)) if d == day => i,
                _ => {
                    let next = self.arena.len();
                    let i = *self.index.entry(day).or_insert(next);
                    if i == next {
                        self.arena.push(DayCells::default());
                    }
                    cur = Some((day, i));
                    i
                }
            };
            let dc = &mut self.arena[i];
            let before = dc.keys.len();
            layout.add_row(dc.cell_mut(layout, key), vals, cap);
            self.ncells += dc.keys.len() - before;
        }
        self.last = cur;
    }

    /// Takes one row back out of the cell of (day, key); false (and nothing changed) when
    /// the cube holds no row there. A cell left without rows is removed, and a day left
    /// without cells.
    pub(crate) fn retract_row(
        &mut self,
        layout: &CubeLayout,
        day: i64,
        key: u64,
        vals: &[i64],
        capacity_kg: f64,
    ) -> bool {
        let Some(&i) = self.index.get(&day) else {
            return false;
        };
        *self.totals.get_mut() = None;
        self.months.get_mut().clear();
        let dc = &mut self.arena[i];
        let Some(cell) = dc.existing_mut(layout, key) else {
            return false;
        };
        layout.retract_row(cell, vals, capacity_kg);
        if cell[0] <= 0 {
            dc.remove(layout, key);
            self.ncells -= 1;
            if dc.keys.is_empty() {
                // The arena slot stays, unreachable, until the cube is rebuilt.
                self.index.remove(&day);
                self.last = None;
            }
        }
        true
    }

    /// Days with cells, in order.
    pub(crate) fn days(&self) -> impl Iterator<Item = (i64, &DayCells)> + '_ {
        self.index.iter().map(|(&d, &i)| (d, &self.arena[i]))
    }

    /// Days with cells in `[d0, d1]`, in order.
    pub(crate) fn days_in(&self, d0: i64, d1: i64) -> impl Iterator<Item = (i64, &DayCells)> + '_ {
        let range = if d0 <= d1 { d0..=d1 } else { d0..=d0 - 1 };
        self.index.range(range).map(|(&d, &i)| (d, &self.arena[i]))
    }

    /// A copy holding only the days in `[d0, d1]`.
    pub(crate) fn days_between(&self, d0: i64, d1: i64) -> Cube {
        let mut out = Cube::default();
        for (day, dc) in self.days_in(d0, d1) {
            out.insert_day(day, dc.clone());
        }
        out
    }

    /// The first and last day with cells.
    pub(crate) fn day_span(&self) -> Option<(i64, i64)> {
        Some((*self.index.keys().next()?, *self.index.keys().next_back()?))
    }

    /// Number of days with cells.
    pub(crate) fn day_count(&self) -> usize {
        self.index.len()
    }

    /// Inserts a decoded day; false when the day is already present.
    pub(crate) fn insert_day(&mut self, day: i64, cells: DayCells) -> bool {
        if self.index.contains_key(&day) {
            return false;
        }
        *self.totals.get_mut() = None;
        self.months.get_mut().clear();
        self.index.insert(day, self.arena.len());
        self.ncells += cells.keys.len();
        self.arena.push(cells);
        true
    }

    /// The cells of the whole month `[first, end)` (days) merged, cached until the next
    /// write.
    pub(crate) fn month(
        &self,
        layout: &CubeLayout,
        first: i64,
        end: i64,
    ) -> std::sync::Arc<DayCells> {
        let mut cache = self.months.lock();
        std::sync::Arc::clone(cache.entry(first).or_insert_with(|| {
            let mut t = DayCells::default();
            for (_, dc) in self.days_in(first, end - 1) {
                t.merge(layout, dc);
            }
            std::sync::Arc::new(t)
        }))
    }

    /// Calls `f` with the all-time cell of `key`, if any.
    pub(crate) fn with_total<T>(
        &self,
        layout: &CubeLayout,
        key: u64,
        f: impl FnOnce(&[i64]) -> T,
    ) -> Option<T> {
        let mut cache = self.totals.lock();
        let t = cache.get_or_insert_with(|| {
            let mut t = DayCells::default();
            for (_, dc) in self.days() {
                t.merge(layout, dc);
            }
            std::sync::Arc::new(t)
        });
        t.cell(layout, key).map(f)
    }

    /// Merges another cube of the same layout into this one.
    pub(crate) fn merge(&mut self, layout: &CubeLayout, other: &Cube) {
        for (day, dc) in other.days() {
            let dst = self.day_mut(day);
            let before = dst.keys.len();
            dst.merge(layout, dc);
            let added = dst.keys.len() - before;
            self.ncells += added;
        }
    }

    /// Number of cells.
    pub(crate) fn cells(&self) -> usize {
        self.ncells
    }

    /// Total rows.
    #[cfg(test)]
    pub(crate) fn rows(&self, layout: &CubeLayout) -> u64 {
        self.arena
            .iter()
            .flat_map(|d| d.data.chunks_exact(layout.stride))
            .map(|c| c[0] as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    #[test]
    fn i128_slots_round_trip() {
        for v in [
            0i128,
            1,
            -1,
            i128::from(i64::MAX) * 7,
            -(1i128 << 100),
            1i128 << 120,
        ] {
            let (lo, hi) = split_i128(v);
            assert_eq!(get_i128(lo, hi), v);
        }
    }

    #[test]
    fn cells_merge_like_adding_the_rows_together() {
        let schema = Schema::washing_machine();
        let s = &schema.streams[0];
        let def = s
            .rollups
            .cubes
            .iter()
            .find(|c| c.name == "load_by_capacity")
            .expect("preset cube");
        let l = CubeLayout::new(s, def);
        let rows: Vec<Vec<i64>> = (0..50)
            .map(|i| (0..11).map(|c| (i * 7 + c * 3) % 90).collect())
            .collect();
        let (mut a, mut b, mut all) = (Cube::default(), Cube::default(), Cube::default());
        for (i, r) in rows.iter().enumerate() {
            let day = (i % 3) as i64;
            let half = if i % 2 == 0 { &mut a } else { &mut b };
            half.add_row(&l, day, 5, r, 7.0);
            all.add_row(&l, day, 5, r, 7.0);
        }
        a.merge(&l, &b);
        assert_eq!(a, all);
        assert_eq!(all.rows(&l), 50);
        assert_eq!(all.cells(), 3);
    }
}
