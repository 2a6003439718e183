//! Device rollups: per device and week, the row count, sums and sums of squares of the
//! declared numeric columns, and counts per category of the declared categorical columns and
//! per hour of day.
//!
//! A device's weeks are stored as one *blob* (varint-coded, sparse category counts, CRC32C at
//! the end) in the rollup file of each segment holding its rows; the memtable's rows are
//! rolled up the same way at query time; once retention drops a window's raw rows, its blobs'
//! cells (without the tail rows) may live on in the window's device summary
//! ([`summary_blob`]). Reading a device's summary therefore decodes a few
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

    /// Adds a decoded cell (read with its sums of squares) as it is: what a device summary
    /// is built from. Feeds no tail row.
    pub(crate) fn add_cell(&mut self, c: &CellView<'_>) {
        let mut acc = WeekAcc::new(self.layout);
        acc.merge_view(c);
        match self.weeks.last_mut() {
            Some((w, a)) if *w == c.week => a.merge(&acc),
            last => {
                if last.is_some_and(|(w, _)| *w > c.week) {
                    self.sorted = false;
                }
                self.weeks.push((c.week, acc));
            }
        }
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
        // The sums of squares of every cell, newest week first, in a part of their own that
        // readers of the usage summary and the health check skip with one length.
        part.clear();
        for (_, acc) in self.weeks.iter().rev() {
            for q in &acc.sumsq {
                varint::put_u128(&mut part, (*q).max(0) as u128);
            }
        }
        varint::put_bytes(out, &part);
        // The cells, newest week first: recent weeks (what per-device questions ask about)
        // are the first bytes after the tail.
        varint::put_u64(out, self.weeks.len() as u64);
        let mut prev = None;
        for (week, acc) in self.weeks.iter().rev() {
            let n = calendar::week_number(*week);
            varint::put_i64(out, prev.map_or(n, |p| p - n));
            prev = Some(n);
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
            varint::put_bytes(out, &part);
        }
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
}

/// A device's summary blob: the week cells of `blobs` (each checked against its CRC, several
/// cells of one week added up) and no tail rows, the tail being raw rows. `None` when the
/// blobs hold no cell. Returns the blob and its cell count.
pub(crate) fn summary_blob(
    layout: &DeviceLayout,
    blobs: &[&[u8]],
) -> Result<Option<(Vec<u8>, u64)>, BlobError> {
    let mut b = BlobBuilder::new(layout);
    for blob in blobs {
        for_each_cell(layout, blob, i64::MIN, i64::MAX, |c| b.add_cell(c))?;
    }
    if b.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    b.finish(&mut out);
    let mut cells = 0u64;
    for_each_cell(layout, &out, i64::MIN, i64::MAX, |_| cells += 1)?;
    Ok(Some((out, cells)))
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
/// `[first_week, end_week)`, newest week first. Rejects what the builder never writes: weeks
/// out of order or repeated, empty cells, slots out of order or repeated, empty slots.
pub(crate) fn for_each_cell(
    layout: &DeviceLayout,
    blob: &[u8],
    first_week: i64,
    end_week: i64,
    f: impl FnMut(&CellView<'_>),
) -> Result<(), BlobError> {
    cells(
        layout,
        checked_body(blob)?,
        first_week,
        end_week,
        Depth::Full,
        f,
    )
}

/// [`for_each_cell`] without the sums of squares (skipped, `CellView::sumsq` empty).
#[cfg(test)]
pub(crate) fn for_each_cell_without_squares(
    layout: &DeviceLayout,
    blob: &[u8],
    first_week: i64,
    end_week: i64,
    f: impl FnMut(&CellView<'_>),
) -> Result<(), BlobError> {
    let depth = Depth::Period {
        slots_below: layout.slots,
    };
    cells(layout, checked_body(blob)?, first_week, end_week, depth, f)
}

/// A blob whose CRC matched: its body, and its offset in its file for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckedBlob<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> CheckedBlob<'a> {
    /// Checks `blob`'s CRC.
    pub(crate) fn check(blob: &'a [u8]) -> Result<Self, BlobError> {
        Ok(CheckedBlob {
            body: checked_body(blob)?,
            at: 0,
        })
    }

    /// A blob whose CRC matched before (its file is immutable): no check.
    pub(crate) fn trusted(blob: &'a [u8]) -> Self {
        CheckedBlob {
            body: blob.get(..blob.len().saturating_sub(4)).unwrap_or(&[]),
            at: 0,
        }
    }

    /// The same blob, known to start at byte `at` of its file.
    pub(crate) fn at(self, at: usize) -> Self {
        CheckedBlob { at, ..self }
    }

    /// Offset of the blob in its file.
    pub(crate) fn offset(&self) -> usize {
        self.at
    }

    /// [`for_each_cell`] without the sums of squares (skipped, `CellView::sumsq` empty): what
    /// the usage summary and the health check read.
    pub(crate) fn cells(
        &self,
        layout: &DeviceLayout,
        first_week: i64,
        end_week: i64,
        slots_below: usize,
        f: impl FnMut(&CellView<'_>),
    ) -> Result<(), BlobError> {
        let depth = Depth::Period { slots_below };
        cells(layout, self.body, first_week, end_week, depth, f)
    }

    /// [`tail_rows`] of this blob.
    pub(crate) fn tail_rows(
        &self,
        layout: &DeviceLayout,
        f: impl FnMut(i64, &[i64]),
    ) -> Result<(), BlobError> {
        let mut r = varint::Reader::new(self.body);
        let tail = r.bytes().ok_or("truncated tail")?;
        tail_rows_of(layout, tail, f)
    }
}

/// Prefetches every cache line of `bytes` (a hint: no effect on what is read).
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch reads nothing the program sees and never faults, whatever the
        // address; this one points into a live slice.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
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
#[cfg(test)]
pub(crate) fn tail_rows(
    layout: &DeviceLayout,
    blob: &[u8],
    f: impl FnMut(i64, &[i64]),
) -> Result<(), BlobError> {
    CheckedBlob::check(blob)?.tail_rows(layout, f)
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

/// What a read decodes: every field and check (`verify`), or only the cells of a period, and
/// of those only the slots below a bound.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Depth {
    /// Every byte: the tail, every cell, the sums of squares, trailing bytes.
    Full,
    /// The cells whose week starts in the period; slots from `slots_below` on are skipped.
    Period { slots_below: usize },
}

/// Calls `f` for the cells whose week starts in `[first_week, end_week)`, newest week first.
fn cells(
    layout: &DeviceLayout,
    body: &[u8],
    first_week: i64,
    end_week: i64,
    depth: Depth,
    mut f: impl FnMut(&CellView<'_>),
) -> Result<(), BlobError> {
    let full = matches!(depth, Depth::Full);
    let slots_below = match depth {
        Depth::Full => layout.slots,
        Depth::Period { slots_below } => slots_below.min(layout.slots),
    } as u64;
    let nsums = layout.sums.len();
    let (mut sums_inline, mut sums_heap) = ([0i64; INLINE], Vec::new());
    let sums: &mut [i64] = if nsums <= INLINE {
        &mut sums_inline[..nsums]
    } else {
        sums_heap.resize(nsums, 0);
        &mut sums_heap
    };
    let mut sumsq: Vec<i128> = Vec::new();
    if full {
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
    let squares_part = r.bytes().ok_or("truncated sums of squares")?;
    if full {
        tail_rows_of(layout, tail, |_, _| {})?;
    }
    let mut q = varint::Reader::new(squares_part);
    let n = r.u64().ok_or("truncated cell count")?;
    let mut number = 0i64;
    for k in 0..n {
        let delta = r.i64().ok_or("truncated week")?;
        number = if k == 0 {
            delta
        } else {
            // Strictly descending: the early stop at `first_week` below relies on it.
            if delta <= 0 {
                return Err("weeks not descending");
            }
            number.checked_sub(delta).ok_or("week out of range")?
        };
        let week = number
            .checked_mul(7)
            .and_then(|w| w.checked_sub(3))
            .ok_or("week out of range")?;
        let main = r.bytes().ok_or("truncated cell")?;
        if full {
            for x in sumsq.iter_mut() {
                *x = i128::try_from(q.u128().ok_or("truncated sums of squares")?)
                    .map_err(|_| "sum of squares out of range")?;
            }
        } else if week < first_week {
            // Cells are newest first: nothing later is wanted.
            return Ok(());
        }
        if !full && week >= end_week {
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
        let mut got = 0;
        for i in 0..nz as usize {
            let d = c.u64().ok_or("truncated slot")?;
            if i > 0 && d == 0 {
                return Err("slots not ascending");
            }
            slot = slot.checked_add(d).ok_or("slot out of range")?;
            if slot >= slots_below {
                if slot >= layout.slots as u64 {
                    return Err("slot out of range");
                }
                // Slots ascend: the rest of the cell is not wanted.
                break;
            }
            let n = c.u64().ok_or("truncated slot count")?;
            if n == 0 {
                return Err("empty slot");
            }
            if let Some(dst) = slots_buf.get_mut(i) {
                *dst = (slot as u32, n);
            }
            got = i + 1;
        }
        if full && !c.is_empty() {
            return Err("bytes after a cell");
        }
        if full && (week < first_week || week >= end_week) {
            continue;
        }
        f(&CellView {
            week,
            count,
            sums,
            sumsq: &sumsq,
            slots: &slots_buf[..got],
        });
    }
    if full && !q.is_empty() {
        return Err("bytes after the sums of squares");
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

    /// Every cell of a blob with its squares: (week, count, sums, sumsq, slots).
    type Cell = (i64, u64, Vec<i64>, Vec<i128>, Vec<(u32, u64)>);

    fn all_cells(l: &DeviceLayout, blob: &[u8]) -> Vec<Cell> {
        let mut out = Vec::new();
        for_each_cell(l, blob, i64::MIN, i64::MAX, |c| {
            out.push((
                c.week,
                c.count,
                c.sums.to_vec(),
                c.sumsq.to_vec(),
                c.slots.to_vec(),
            ))
        })
        .expect("decodes");
        out
    }

    #[test]
    fn a_summary_blob_holds_the_cells_of_its_blobs_and_no_raw_row() {
        let schema = Schema::washing_machine();
        let l = DeviceLayout::new(&schema.streams[0]).expect("preset has a device rollup");
        let t0 = 1_735_689_600_000i64; // Wednesday 2025-01-01
        let rows: Vec<(i64, Vec<i64>)> = (0..60)
            .map(|i| {
                let ts = t0 + i * DAY_MS / 2 + 3_600_000 * (i % 7);
                (ts, (0..11).map(|c| (i * (c + 2)) % 6).collect())
            })
            .collect();
        // Two blobs (two segments of one window) sharing weeks, and one of all rows.
        let blob_of = |rows: &[(i64, Vec<i64>)]| {
            let mut b = BlobBuilder::new(&l);
            for (ts, v) in rows {
                b.add(*ts, v);
            }
            let mut out = Vec::new();
            b.finish(&mut out);
            out
        };
        let (a, b) = rows.split_at(33);
        let (blob_a, blob_b, whole) = (blob_of(a), blob_of(b), blob_of(&rows));
        let (summary, cells) = summary_blob(&l, &[&blob_b, &blob_a])
            .expect("decodes")
            .expect("cells");
        assert_eq!(all_cells(&l, &summary), all_cells(&l, &whole));
        assert_eq!(cells, all_cells(&l, &whole).len() as u64);
        let mut tail = 0;
        tail_rows(&l, &summary, |_, _| tail += 1).expect("tail");
        assert_eq!(tail, 0, "a summary keeps no raw row");
        // A summary of a summary is itself.
        let (again, _) = summary_blob(&l, &[&summary])
            .expect("decodes")
            .expect("cells");
        assert_eq!(again, summary);
        // No blob, no summary; a damaged blob is refused.
        assert_eq!(summary_blob(&l, &[]), Ok(None));
        let mut bad = blob_a.clone();
        bad[3] ^= 1;
        assert!(summary_blob(&l, &[&bad]).is_err());
    }

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
        let (mut n2, mut oldest) = (0u64, None);
        let from = weeks[weeks.len() - 2];
        for_each_cell_without_squares(&l, &blob, from, i64::MAX, |c| {
            n2 += c.count;
            oldest = Some(c.week);
            assert!(c.sumsq.is_empty());
        })
        .expect("decodes");
        assert_eq!(oldest, Some(from));
        assert!(n2 < count);
        // Slots from the hours on skipped: the category counts stay, the hours go.
        let hours = l.hours.expect("preset counts hours");
        let mut categories = 0u64;
        CheckedBlob::check(&blob)
            .expect("crc")
            .cells(&l, i64::MIN, i64::MAX, hours, |c| {
                assert!(c.slots.iter().all(|&(s, _)| (s as usize) < hours));
                categories += c.slots.iter().map(|s| s.1).sum::<u64>();
            })
            .expect("decodes");
        assert_eq!(
            categories,
            3 * count,
            "program, temperature and error of every row"
        );
        assert!(weeks.windows(2).all(|w| w[0] > w[1]), "newest week first");
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
        // An empty tail (length 1: zero rows), the squares part (zeros), the cell count,
        // then per cell, as varints: the week (zigzag: the first absolute, then the previous
        // minus this one) and the main part (count, sums, slot count, (slot delta, count)
        // pairs) behind its length.
        type Cell<'a> = (u64, u64, &'a [(u64, u64)]);
        let encode = |cells: &[Cell<'_>]| {
            let mut out = vec![1u8, 0];
            varint::put_bytes(&mut out, &vec![0u8; l.sums.len() * cells.len()]);
            varint::put_u64(&mut out, cells.len() as u64);
            for &(week, count, slots) in cells {
                varint::put_u64(&mut out, week);
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
                varint::put_bytes(&mut out, &main);
            }
            let crc = crc32c::crc32c(&out);
            out.extend_from_slice(&crc.to_le_bytes());
            out
        };
        let decode = |cells: &[Cell<'_>]| {
            let mut weeks = Vec::new();
            for_each_cell(&l, &encode(cells), i64::MIN, i64::MAX, |c| {
                weeks.push(c.week)
            })
            .map(|()| weeks)
        };
        // Zigzag: 2 is +1, 0 is 0, 1 is -1.
        let ok = decode(&[(2 * 2900, 3, &[(1, 2), (4, 1)]), (2, 1, &[])]);
        assert_eq!(ok.map(|w| w.len()), Ok(2));
        let weeks = decode(&[(2 * 2900, 3, &[]), (0, 1, &[])]);
        assert_eq!(weeks, Err("weeks not descending"));
        let weeks = decode(&[(2 * 2900, 3, &[]), (1, 1, &[])]);
        assert_eq!(weeks, Err("weeks not descending"));
        assert_eq!(decode(&[(2 * 2900, 0, &[])]), Err("empty week cell"));
        let slots = decode(&[(2 * 2900, 3, &[(1, 2), (0, 1)])]);
        assert_eq!(slots, Err("slots not ascending"));
        assert_eq!(decode(&[(2 * 2900, 3, &[(1, 0)])]), Err("empty slot"));
    }
}
