//! Device rollups: per device and week, the row count, sums and sums of squares of the
//! declared numeric columns, and counts per category of the declared categorical columns and
//! per hour of day.
//!
//! A device's weeks are stored as one *blob* (varint-coded, sparse category counts, CRC32C at
//! the end) in the rollup file of each segment holding its rows; the memtable's rows are
//! rolled up the same way at query time. Reading a device's summary therefore decodes a few
//! dozen cells and never touches raw rows. Week cells rather than day cells: at about one
//! cycle per device-day a day cell is as large as the row it summarises.
//!
//! Invariants: cells in a blob are in ascending week order, one per week with rows; counts
//! are positive; a blob is checked against its CRC before any cell is used.

use crate::files::varint;
use crate::rollup::calendar;
use crate::schema::StreamDef;

/// The device rollup resolved against the stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeviceLayout {
    /// Numeric columns summed.
    pub sums: Vec<usize>,
    /// Categorical columns counted, each with its first slot.
    pub counts: Vec<(usize, usize)>,
    /// First hour slot, when hours are counted.
    pub hours: Option<usize>,
    /// Total category slots.
    pub slots: usize,
    /// Declared columns of the stream (the tail's rows hold them all).
    pub ncols: usize,
}

/// Rows kept whole at the head of a device's blob: its newest ones, so "the last cycles"
/// reads a few dozen varints instead of decoding the device's block.
pub(crate) const TAIL_ROWS: usize = 16;

impl DeviceLayout {
    pub(crate) fn new(stream: &StreamDef) -> Option<DeviceLayout> {
        let def = stream.rollups.device.as_ref()?;
        let col = |n: &String| stream.column_index(n).unwrap_or(0);
        let mut slots = 0;
        let counts = def
            .counts
            .iter()
            .map(|c| {
                let i = col(c);
                let at = slots;
                slots += stream.columns.get(i).map_or(0, |d| match &d.kind {
                    crate::schema::ColumnKind::Categorical { categories } => categories.len(),
                    crate::schema::ColumnKind::Numeric { .. } => 0,
                });
                (i, at)
            })
            .collect();
        let hours = def.hours.then(|| {
            slots += 24;
            slots - 24
        });
        Some(DeviceLayout {
            sums: def.sums.iter().map(col).collect(),
            counts,
            hours,
            slots,
            ncols: stream.columns.len(),
        })
    }
}

/// One week of one device, being built.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WeekAcc {
    pub count: u64,
    pub sums: Vec<i64>,
    pub sumsq: Vec<i128>,
    pub slots: Vec<u64>,
}

impl WeekAcc {
    pub(crate) fn new(l: &DeviceLayout) -> Self {
        WeekAcc {
            count: 0,
            sums: vec![0; l.sums.len()],
            sumsq: vec![0; l.sums.len()],
            slots: vec![0; l.slots],
        }
    }

    /// Adds another week's aggregates.
    pub(crate) fn merge(&mut self, o: &WeekAcc) {
        self.count += o.count;
        for (a, b) in self.sums.iter_mut().zip(&o.sums) {
            *a += b;
        }
        for (a, b) in self.sumsq.iter_mut().zip(&o.sumsq) {
            *a += b;
        }
        for (a, b) in self.slots.iter_mut().zip(&o.slots) {
            *a += b;
        }
    }

    /// Adds a decoded cell.
    pub(crate) fn merge_view(&mut self, c: &CellView<'_>) {
        self.count += c.count;
        for (a, b) in self.sums.iter_mut().zip(c.sums) {
            *a += b;
        }
        for (a, b) in self.sumsq.iter_mut().zip(c.sumsq) {
            *a += b;
        }
        for &(slot, n) in c.slots {
            if let Some(a) = self.slots.get_mut(slot as usize) {
                *a += n;
            }
        }
    }

    fn add(&mut self, l: &DeviceLayout, ts: i64, vals: &[i64]) {
        self.count += 1;
        for (k, &c) in l.sums.iter().enumerate() {
            let v = vals.get(c).copied().unwrap_or(0);
            self.sums[k] += v;
            self.sumsq[k] += i128::from(v) * i128::from(v);
        }
        for &(c, at) in &l.counts {
            let code = vals.get(c).copied().unwrap_or(0);
            if let Some(s) = usize::try_from(code)
                .ok()
                .and_then(|i| self.slots.get_mut(at + i))
            {
                *s += 1;
            }
        }
        if let Some(at) = l.hours {
            if let Some(s) = self.slots.get_mut(at + calendar::hour_of(ts) as usize) {
                *s += 1;
            }
        }
    }
}

/// Builds a device's blob from its rows (each row once; in time order is fastest, any order
/// is correct).
#[derive(Debug, Clone)]
pub(crate) struct BlobBuilder<'a> {
    layout: &'a DeviceLayout,
    weeks: Vec<(i64, WeekAcc)>,
    sorted: bool,
    /// Candidates for the tail: (ts, row start in `tail_vals`).
    tail: Vec<(i64, usize)>,
    tail_vals: Vec<i64>,
}

impl<'a> BlobBuilder<'a> {
    pub(crate) fn new(layout: &'a DeviceLayout) -> Self {
        BlobBuilder {
            layout,
            weeks: Vec::new(),
            sorted: true,
            tail: Vec::new(),
            tail_vals: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, ts: i64, vals: &[i64]) {
        self.tail.push((ts, self.tail_vals.len()));
        let n = self.layout.ncols;
        self.tail_vals
            .extend((0..n).map(|c| vals.get(c).copied().unwrap_or(0)));
        if self.tail.len() >= 4 * TAIL_ROWS {
            self.trim_tail();
        }
        let week = calendar::week_start(calendar::day_of(ts));
        match self.weeks.last_mut() {
            Some((w, acc)) if *w == week => acc.add(self.layout, ts, vals),
            last => {
                if last.is_some_and(|(w, _)| *w > week) {
                    self.sorted = false;
                }
                let mut acc = WeekAcc::new(self.layout);
                acc.add(self.layout, ts, vals);
                self.weeks.push((week, acc));
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.weeks.is_empty()
    }

    /// Keeps the newest `TAIL_ROWS` candidates, oldest first.
    fn trim_tail(&mut self) {
        self.tail.sort_unstable_by_key(|&(t, _)| t);
        let drop = self.tail.len().saturating_sub(TAIL_ROWS);
        let n = self.layout.ncols;
        let mut vals = Vec::with_capacity(TAIL_ROWS * n);
        let kept: Vec<(i64, usize)> = self.tail[drop..]
            .iter()
            .map(|&(t, at)| {
                let start = vals.len();
                vals.extend_from_slice(&self.tail_vals[at..at + n]);
                (t, start)
            })
            .collect();
        self.tail = kept;
        self.tail_vals = vals;
    }

    /// Appends the blob (cells then CRC32C) to `out`.
    pub(crate) fn finish(mut self, out: &mut Vec<u8>) {
        if !self.sorted {
            self.weeks.sort_by_key(|(w, _)| *w);
            let mut merged: Vec<(i64, WeekAcc)> = Vec::with_capacity(self.weeks.len());
            for (w, acc) in self.weeks {
                match merged.last_mut() {
                    Some((lw, lacc)) if *lw == w => lacc.merge(&acc),
                    _ => merged.push((w, acc)),
                }
            }
            self.weeks = merged;
        }
        let start = out.len();
        self.trim_tail();
        let mut part = Vec::with_capacity(128);
        // The tail: row count, then per row the timestamp (zigzag: the first absolute, then
        // the difference) and every column (zigzag), oldest first.
        varint::put_u64(&mut part, self.tail.len() as u64);
        let mut prev_ts = 0i64;
        for &(t, at) in &self.tail {
            varint::put_i64(&mut part, t.wrapping_sub(prev_ts));
            prev_ts = t;
            for &v in &self.tail_vals[at..at + self.layout.ncols] {
                varint::put_i64(&mut part, v);
            }
        }
        varint::put_bytes(out, &part);
        varint::put_u64(out, self.weeks.len() as u64);
        let mut prev = 0i64;
        for (week, acc) in self.weeks {
            let n = calendar::week_number(week);
            varint::put_i64(out, n - prev);
            prev = n;
            part.clear();
            varint::put_u64(&mut part, acc.count);
            for s in &acc.sums {
                varint::put_i64(&mut part, *s);
            }
            let nz = acc.slots.iter().filter(|&&c| c > 0).count();
            varint::put_u64(&mut part, nz as u64);
            let mut last = 0usize;
            for (i, &c) in acc.slots.iter().enumerate() {
                if c > 0 {
                    varint::put_u64(&mut part, (i - last) as u64);
                    last = i;
                    varint::put_u64(&mut part, c);
                }
            }
            varint::put_u64(out, part.len() as u64);
            out.extend_from_slice(&part);
            part.clear();
            for q in &acc.sumsq {
                varint::put_u128(&mut part, (*q).max(0) as u128);
            }
            varint::put_u64(out, part.len() as u64);
            out.extend_from_slice(&part);
        }
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
}

/// One decoded week cell, borrowed from the decoder's buffers.
#[derive(Debug)]
pub(crate) struct CellView<'b> {
    /// First day (a Monday) of the week.
    pub week: i64,
    pub count: u64,
    pub sums: &'b [i64],
    pub sumsq: &'b [i128],
    /// Non-zero category and hour slots: (slot, count).
    pub slots: &'b [(u32, u64)],
}

/// Why a blob could not be decoded (the caller names file and offset).
pub(crate) type BlobError = &'static str;

/// Checks a blob's CRC and calls `f` for every cell whose week starts in
/// `[first_week, end_week)`, in week order. Rejects what the builder never writes: weeks
/// out of order or repeated, empty cells, slots out of order or repeated, empty slots.
pub(crate) fn for_each_cell(
    layout: &DeviceLayout,
    blob: &[u8],
    first_week: i64,
    end_week: i64,
    f: impl FnMut(&CellView<'_>),
) -> Result<(), BlobError> {
    cells(layout, blob, first_week, end_week, true, f)
}

/// [`for_each_cell`] without the sums of squares (skipped, `CellView::sumsq` empty): what
/// the usage summary and the health check read.
pub(crate) fn for_each_cell_without_squares(
    layout: &DeviceLayout,
    blob: &[u8],
    first_week: i64,
    end_week: i64,
    f: impl FnMut(&CellView<'_>),
) -> Result<(), BlobError> {
    cells(layout, blob, first_week, end_week, false, f)
}

/// A blob's bytes without its CRC32C, once the CRC matches.
fn checked_body(blob: &[u8]) -> Result<&[u8], BlobError> {
    let body_len = blob
        .len()
        .checked_sub(4)
        .ok_or("blob shorter than its checksum")?;
    let (body, crc) = blob.split_at(body_len);
    let stored = u32::from_le_bytes(crc.try_into().map_err(|_| "bad checksum field")?);
    if crc32c::crc32c(body) != stored {
        return Err("device rollup checksum mismatch");
    }
    Ok(body)
}

/// Calls `f` with each of the device's newest rows kept in the blob (at most
/// [`TAIL_ROWS`]), oldest first: timestamp and every declared column.
pub(crate) fn tail_rows(
    layout: &DeviceLayout,
    blob: &[u8],
    f: impl FnMut(i64, &[i64]),
) -> Result<(), BlobError> {
    let body = checked_body(blob)?;
    let mut r = varint::Reader::new(body);
    let tail = r.bytes().ok_or("truncated tail")?;
    tail_rows_of(layout, tail, f)
}

fn tail_rows_of(
    layout: &DeviceLayout,
    tail: &[u8],
    mut f: impl FnMut(i64, &[i64]),
) -> Result<(), BlobError> {
    let mut r = varint::Reader::new(tail);
    let k = r.u64().ok_or("truncated tail count")?;
    if k > TAIL_ROWS as u64 {
        return Err("tail longer than declared");
    }
    let (mut buf, mut heap) = ([0i64; INLINE], Vec::new());
    let row: &mut [i64] = if layout.ncols <= INLINE {
        &mut buf[..layout.ncols]
    } else {
        heap.resize(layout.ncols, 0);
        &mut heap
    };
    let mut ts = 0i64;
    for i in 0..k {
        let d = r.i64().ok_or("truncated tail timestamp")?;
        if i > 0 && d <= 0 {
            return Err("tail rows not ascending");
        }
        ts = if i == 0 {
            d
        } else {
            ts.checked_add(d).ok_or("tail timestamp out of range")?
        };
        for v in row.iter_mut() {
            *v = r.i64().ok_or("truncated tail value")?;
        }
        f(ts, row);
    }
    if !r.is_empty() {
        return Err("bytes after the tail");
    }
    Ok(())
}

/// Room for this many sums and slots on the stack; larger declarations allocate.
const INLINE: usize = 64;

fn cells(
    layout: &DeviceLayout,
    blob: &[u8],
    first_week: i64,
    end_week: i64,
    squares: bool,
    mut f: impl FnMut(&CellView<'_>),
) -> Result<(), BlobError> {
    let body = checked_body(blob)?;
    let nsums = layout.sums.len();
    let (mut sums_inline, mut sums_heap) = ([0i64; INLINE], Vec::new());
    let sums: &mut [i64] = if nsums <= INLINE {
        &mut sums_inline[..nsums]
    } else {
        sums_heap.resize(nsums, 0);
        &mut sums_heap
    };
    let mut sumsq: Vec<i128> = Vec::new();
    if squares {
        sumsq.resize(nsums, 0);
    }
    let (mut slots_inline, mut slots_heap) = ([(0u32, 0u64); INLINE], Vec::new());
    let slots_buf: &mut [(u32, u64)] = if layout.slots <= INLINE {
        &mut slots_inline[..layout.slots]
    } else {
        slots_heap.resize(layout.slots, (0, 0));
        &mut slots_heap
    };
    let mut r = varint::Reader::new(body);
    let tail = r.bytes().ok_or("truncated tail")?;
    if squares {
        // The full check (verify) decodes the tail too.
        tail_rows_of(layout, tail, |_, _| {})?;
    }
    let n = r.u64().ok_or("truncated cell count")?;
    let mut number = 0i64;
    for k in 0..n {
        let delta = r.i64().ok_or("truncated week")?;
        // Strictly ascending: the early stop at `end_week` below relies on it.
        if k > 0 && delta <= 0 {
            return Err("weeks not ascending");
        }
        number = number.checked_add(delta).ok_or("week out of range")?;
        let week = number
            .checked_mul(7)
            .and_then(|w| w.checked_sub(3))
            .ok_or("week out of range")?;
        if week >= end_week {
            // Cells are in week order: nothing later is wanted.
            return Ok(());
        }
        let main = r.bytes().ok_or("truncated cell")?;
        let squares_part = r.bytes().ok_or("truncated sums of squares")?;
        if week < first_week {
            continue;
        }
        let mut c = varint::Reader::new(main);
        let count = c.u64().ok_or("truncated count")?;
        if count == 0 {
            return Err("empty week cell");
        }
        for s in sums.iter_mut() {
            *s = c.i64().ok_or("truncated sum")?;
        }
        let nz = c.u64().ok_or("truncated slot count")?;
        if nz > layout.slots as u64 {
            return Err("more slots than declared");
        }
        let mut slot = 0u64;
        for (i, dst) in slots_buf.iter_mut().take(nz as usize).enumerate() {
            let d = c.u64().ok_or("truncated slot")?;
            if i > 0 && d == 0 {
                return Err("slots not ascending");
            }
            slot = slot.checked_add(d).ok_or("slot out of range")?;
            if slot >= layout.slots as u64 {
                return Err("slot out of range");
            }
            let n = c.u64().ok_or("truncated slot count")?;
            if n == 0 {
                return Err("empty slot");
            }
            *dst = (slot as u32, n);
        }
        if !c.is_empty() {
            return Err("bytes after a cell");
        }
        if squares {
            let mut q = varint::Reader::new(squares_part);
            for x in sumsq.iter_mut() {
                *x = i128::try_from(q.u128().ok_or("truncated sum of squares")?)
                    .map_err(|_| "sum of squares out of range")?;
            }
            if !q.is_empty() {
                return Err("bytes after the sums of squares");
            }
        }
        f(&CellView {
            week,
            count,
            sums,
            sumsq: &sumsq,
            slots: &slots_buf[..nz as usize],
        });
    }
    if !r.is_empty() {
        return Err("bytes after the last cell");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Schema, DAY_MS};

    #[test]
    fn blob_round_trips_and_damage_is_reported() {
        let schema = Schema::washing_machine();
        let l = DeviceLayout::new(&schema.streams[0]).expect("preset has a device rollup");
        let mut b = BlobBuilder::new(&l);
        let t0 = 1_735_689_600_000i64; // Wednesday 2025-01-01
        let rows: Vec<(i64, Vec<i64>)> = (0..40)
            .map(|i| {
                let ts = t0 + i * DAY_MS / 3 + 3_600_000 * (i % 5);
                (ts, (0..11).map(|c| (i * (c + 1)) % 6).collect())
            })
            .collect();
        for (ts, v) in rows.iter().rev() {
            b.add(*ts, v);
        }
        let mut blob = Vec::new();
        b.finish(&mut blob);
        let (mut count, mut load, mut load_sq, mut weeks) = (0u64, 0i64, 0i128, Vec::new());
        for_each_cell(&l, &blob, i64::MIN, i64::MAX, |c| {
            count += c.count;
            load += c.sums[0];
            load_sq += c.sumsq[0];
            weeks.push(c.week);
            let hours: u64 = c
                .slots
                .iter()
                .filter(|(s, _)| *s as usize >= l.hours.unwrap_or(0))
                .map(|(_, n)| n)
                .sum();
            assert_eq!(hours, c.count);
        })
        .expect("decodes");
        assert_eq!(count, 40);
        assert_eq!(load, rows.iter().map(|(_, v)| v[3]).sum::<i64>());
        assert_eq!(
            load_sq,
            rows.iter()
                .map(|(_, v)| i128::from(v[3] * v[3]))
                .sum::<i128>()
        );
        // The tail: the newest rows, oldest first, whole.
        let mut tail = Vec::new();
        tail_rows(&l, &blob, |t, v| tail.push((t, v.to_vec()))).expect("tail");
        let mut newest = rows.clone();
        newest.sort_by_key(|r| r.0);
        let newest = newest.split_off(newest.len() - TAIL_ROWS);
        assert_eq!(tail, newest);
        // Without the squares, and from a later week: the same cells, fewer of them.
        let (mut n2, mut first) = (0u64, None);
        let from = weeks.get(1).copied().unwrap_or(i64::MAX);
        for_each_cell_without_squares(&l, &blob, from, i64::MAX, |c| {
            n2 += c.count;
            first.get_or_insert(c.week);
            assert!(c.sumsq.is_empty());
        })
        .expect("decodes");
        assert_eq!(first, Some(from));
        assert!(n2 < count);
        assert!(weeks.windows(2).all(|w| w[0] < w[1]));
        assert!(weeks.iter().all(|&w| calendar::weekday(w) == 0));
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x10;
            assert!(for_each_cell(&l, &bad, i64::MIN, i64::MAX, |_| {}).is_err());
        }
    }

    /// Cells the builder never writes are rejected (found by the rollup fuzzer: the early
    /// stop at `end_week` silently dropped cells after an out-of-order week).
    #[test]
    fn blob_out_of_order_or_empty_is_rejected() {
        let schema = Schema::washing_machine();
        let l = DeviceLayout::new(&schema.streams[0]).expect("preset has a device rollup");
        // An empty tail (length 1: zero rows) comes first. One cell, as varints: week delta,
        // then the main part (count, sums, slot count,
        // (slot delta, count) pairs) and the squares part, each behind its length.
        let cell = |out: &mut Vec<u8>, week: u64, count: u64, slots: &[(u64, u64)]| {
            varint::put_u64(out, week);
            let mut main = Vec::new();
            varint::put_u64(&mut main, count);
            for _ in 0..l.sums.len() {
                varint::put_u64(&mut main, 0);
            }
            varint::put_u64(&mut main, slots.len() as u64);
            for &(d, c) in slots {
                varint::put_u64(&mut main, d);
                varint::put_u64(&mut main, c);
            }
            varint::put_bytes(out, &main);
            varint::put_bytes(out, &vec![0u8; l.sums.len()]);
        };
        let blob = |cells: &[u8]| {
            let mut b = cells.to_vec();
            let crc = crc32c::crc32c(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            b
        };
        let decode = |cells: &[u8]| {
            let mut weeks = Vec::new();
            for_each_cell(&l, &blob(cells), i64::MIN, i64::MAX, |c| weeks.push(c.week))
                .map(|()| weeks)
        };
        // Zigzag: week delta 2 is +1, 0 is 0, 1 is -1.
        let mut ok = vec![1u8, 0, 2];
        cell(&mut ok, 2 * 2900, 3, &[(1, 2), (4, 1)]);
        cell(&mut ok, 2, 1, &[]);
        assert_eq!(decode(&ok).map(|w| w.len()), Ok(2));
        let mut bad = vec![1u8, 0, 2];
        cell(&mut bad, 2 * 2900, 3, &[]);
        cell(&mut bad, 0, 1, &[]);
        assert_eq!(decode(&bad), Err("weeks not ascending"));
        let mut bad = vec![1u8, 0, 2];
        cell(&mut bad, 2 * 2900, 3, &[]);
        cell(&mut bad, 1, 1, &[]);
        assert_eq!(decode(&bad), Err("weeks not ascending"));
        let mut bad = vec![1u8, 0, 1];
        cell(&mut bad, 2 * 2900, 0, &[]);
        assert_eq!(decode(&bad), Err("empty week cell"));
        let mut bad = vec![1u8, 0, 1];
        cell(&mut bad, 2 * 2900, 3, &[(1, 2), (0, 1)]);
        assert_eq!(decode(&bad), Err("slots not ascending"));
        let mut bad = vec![1u8, 0, 1];
        cell(&mut bad, 2 * 2900, 3, &[(1, 0)]);
        assert_eq!(decode(&bad), Err("empty slot"));
    }
}
