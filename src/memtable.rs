//! In-memory buffers of rows not yet flushed: per stream, per device.
//!
//! A device's buffer holds its rows sorted by timestamp: timestamps in one vector, the
//! declared columns row-major in another (two allocations per device whatever the column
//! count). A row in timestamp order (the common case) is appended and known to be new by
//! comparing with the largest timestamp alone; a late row is inserted in place (it usually
//! lands near the end) and found by binary search. Only a row later than [`MAX_SHIFT`] rows
//! goes at the end out of order: the buffer then builds a sorted copy of its timestamps for
//! "already here?" (itself a hash set once an insertion would move more than [`MAX_SHIFT`]),
//! until it is sorted at freeze. Buffers are indexed by dense device id.
//!
//! Invariants: a buffer never holds two rows with the same timestamp (the first one wins);
//! `rows` counts every buffered row; the memtable records the highest log sequence number
//! whose rows it holds, which becomes the checkpoint once it is flushed.

use std::collections::HashSet;

use crate::rollup::cube::Cube;
use std::ops::Range;

/// Rows of one device in one stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceBuffer {
    pub ts: Vec<i64>,
    /// Declared columns, row-major: row `i` is `vals[i * ncols..(i + 1) * ncols]`.
    vals: Vec<i64>,
    ncols: usize,
    max_ts: i64,
    sorted: bool,
    /// Every buffered timestamp, once the buffer is out of order and was asked.
    seen: Option<Seen>,
}

/// Most rows a late row may be inserted before, in a buffer or a sorted [`Seen`]: each
/// insertion moves those rows (all their columns in a buffer), so a long late run (a trace
/// delivered after later samples) takes the out-of-order path instead.
const MAX_SHIFT: usize = 64;

/// The timestamps of an out-of-order buffer, for "already here?".
#[derive(Debug, Clone)]
enum Seen {
    Sorted(Vec<i64>),
    Set(HashSet<i64>),
}

impl Seen {
    fn new(ts: &[i64]) -> Seen {
        let mut v = ts.to_vec();
        v.sort_unstable();
        Seen::Sorted(v)
    }

    fn contains(&self, ts: i64) -> bool {
        match self {
            Seen::Sorted(v) => v.binary_search(&ts).is_ok(),
            Seen::Set(s) => s.contains(&ts),
        }
    }

    fn insert(&mut self, ts: i64) {
        match self {
            Seen::Sorted(v) => {
                let at = v.partition_point(|&t| t < ts);
                if v.len() - at <= MAX_SHIFT {
                    v.insert(at, ts);
                } else {
                    let mut set: HashSet<i64> = v.iter().copied().collect();
                    set.insert(ts);
                    *self = Seen::Set(set);
                }
            }
            Seen::Set(s) => {
                s.insert(ts);
            }
        }
    }
}

impl DeviceBuffer {
    fn new(ncols: usize) -> Self {
        DeviceBuffer {
            ts: Vec::new(),
            vals: Vec::new(),
            ncols,
            max_ts: i64::MIN,
            sorted: true,
            seen: None,
        }
    }

    /// True when a row with this timestamp is buffered.
    pub(crate) fn contains(&mut self, ts: i64) -> bool {
        if ts > self.max_ts {
            return false;
        }
        if self.sorted && self.seen.is_none() {
            return self.ts.binary_search(&ts).is_ok();
        }
        let seen = self.seen.get_or_insert_with(|| Seen::new(&self.ts));
        seen.contains(ts)
    }

    /// Makes room for `rows` more rows.
    pub(crate) fn reserve(&mut self, rows: usize) {
        self.ts.reserve(rows);
        self.vals.reserve(rows * self.ncols);
    }

    /// Adds a row known not to be buffered yet; `values` yields the declared columns. A
    /// sorted buffer stays sorted when the row is late by at most [`MAX_SHIFT`] rows (it is
    /// inserted in place: late rows usually land near the end); otherwise the row goes at the
    /// end and the buffer is out of order until [`DeviceBuffer::sort`].
    pub(crate) fn push(&mut self, ts: i64, values: impl Iterator<Item = i64>) {
        let at = self.vals.len();
        self.vals.extend(values.take(self.ncols));
        self.vals.resize(at + self.ncols, 0);
        if ts < self.max_ts && self.sorted {
            let pos = self.ts.partition_point(|&t| t < ts);
            if self.ts.len() - pos <= MAX_SHIFT {
                self.ts.insert(pos, ts);
                self.vals[pos * self.ncols..].rotate_right(self.ncols);
                return;
            }
        }
        if ts < self.max_ts {
            self.sorted = false;
        }
        self.max_ts = self.max_ts.max(ts);
        self.ts.push(ts);
        if let Some(seen) = &mut self.seen {
            seen.insert(ts);
        }
    }

    /// Removes the row at `ts`, if buffered (undo of a failed append).
    pub(crate) fn remove(&mut self, ts: i64) {
        let Some(i) = self.ts.iter().rposition(|&t| t == ts) else {
            return;
        };
        self.ts.remove(i);
        self.vals.drain(i * self.ncols..(i + 1) * self.ncols);
        // Rebuilt on the next question.
        self.seen = None;
        self.max_ts = self.ts.iter().copied().max().unwrap_or(i64::MIN);
        self.sorted = self.ts.windows(2).all(|w| w[0] < w[1]);
    }

    pub(crate) fn len(&self) -> usize {
        self.ts.len()
    }

    /// The value of declared column `c` in row `i`.
    fn value(&self, i: usize, c: usize) -> i64 {
        self.vals.get(i * self.ncols + c).copied().unwrap_or(0)
    }

    /// Row `i`'s declared columns.
    pub(crate) fn row(&self, i: usize) -> &[i64] {
        self.vals
            .get(i * self.ncols..(i + 1) * self.ncols)
            .unwrap_or(&[])
    }

    /// Declared column `c` over rows `rows` (of a sorted buffer).
    pub(crate) fn column(&self, c: usize, rows: Range<usize>) -> Vec<i64> {
        rows.map(|i| self.value(i, c)).collect()
    }

    /// Sorts the rows by timestamp in place (done when the memtable is frozen) and drops
    /// the lookup set: a sorted buffer answers `contains` by binary search.
    pub(crate) fn sort(&mut self) {
        if !self.sorted {
            let order = self.order();
            let ts = order
                .iter()
                .map(|&i| self.ts.get(i as usize).copied().unwrap_or(0))
                .collect();
            let mut vals = Vec::with_capacity(self.vals.len());
            for &i in &order {
                let i = i as usize;
                vals.extend_from_slice(
                    self.vals
                        .get(i * self.ncols..(i + 1) * self.ncols)
                        .unwrap_or(&[]),
                );
            }
            self.ts = ts;
            self.vals = vals;
            self.sorted = true;
        }
        self.seen = None;
    }

    /// Row positions in timestamp order.
    pub(crate) fn order(&self) -> Vec<u32> {
        let mut idx: Vec<u32> = (0..self.ts.len() as u32).collect();
        if !self.sorted {
            idx.sort_unstable_by_key(|&i| self.ts.get(i as usize).copied().unwrap_or(0));
        }
        idx
    }

    /// The rows with `from <= ts < to`, sorted, projected.
    pub(crate) fn select(
        &self,
        from: i64,
        to: i64,
        projection: &[usize],
    ) -> (Vec<i64>, Vec<Vec<i64>>) {
        let mut ts = Vec::new();
        let mut cols = vec![Vec::new(); projection.len()];
        let rows: Vec<usize> = if self.sorted {
            let lo = self.ts.partition_point(|&t| t < from);
            let hi = self.ts.partition_point(|&t| t < to);
            (lo..hi).collect()
        } else {
            self.order()
                .into_iter()
                .map(|i| i as usize)
                .filter(|&i| self.ts.get(i).is_some_and(|t| (from..to).contains(t)))
                .collect()
        };
        for &i in &rows {
            ts.push(self.ts.get(i).copied().unwrap_or(0));
            for (out, &c) in cols.iter_mut().zip(projection) {
                out.push(self.value(i, c));
            }
        }
        (ts, cols)
    }
}

/// The buffers of one stream, indexed by dense device id.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceMap {
    slots: Vec<Option<Box<DeviceBuffer>>>,
}

impl DeviceMap {
    pub(crate) fn get(&self, device: u32) -> Option<&DeviceBuffer> {
        self.slots.get(device as usize)?.as_deref()
    }

    fn get_or_insert(&mut self, device: u32, ncols: usize) -> &mut DeviceBuffer {
        let i = device as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i].get_or_insert_with(|| Box::new(DeviceBuffer::new(ncols)))
    }

    pub(crate) fn insert(&mut self, device: u32, buf: DeviceBuffer) {
        let i = device as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some(Box::new(buf));
    }

    /// Takes a device's buffer out.
    pub(crate) fn remove(&mut self, device: u32) -> Option<DeviceBuffer> {
        self.slots.get_mut(device as usize)?.take().map(|b| *b)
    }

    /// Buffers in device order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &DeviceBuffer)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_deref().map(|b| (i as u32, b)))
    }
}

/// Buffered rows of every stream.
#[derive(Debug, Clone)]
pub(crate) struct Memtable {
    /// Per stream.
    pub streams: Vec<DeviceMap>,
    /// Per stream: the fleet cube cells of exactly the rows buffered here (empty until a
    /// stream with cubes gets a row); merged into the database's cubes when flushed.
    pub cubes: Vec<Vec<Cube>>,
    ncols: Vec<usize>,
    pub rows: usize,
    pub max_lsn: u64,
    /// Set by [`Memtable::freeze`]: per stream, each device's largest buffered timestamp by
    /// dense id, so most rows are known not to be here without reading the device's buffer.
    /// Empty for a memtable still written to.
    max_ts: Vec<Vec<i64>>,
}

impl Memtable {
    pub(crate) fn new(ncols: Vec<usize>) -> Self {
        Memtable {
            streams: vec![DeviceMap::default(); ncols.len()],
            cubes: vec![Vec::new(); ncols.len()],
            ncols,
            rows: 0,
            max_lsn: 0,
            max_ts: Vec::new(),
        }
    }

    /// Readies the memtable for reading only: sorts every buffer (see
    /// [`DeviceBuffer::sort`]) and notes each device's largest timestamp per stream.
    pub(crate) fn freeze(&mut self) {
        self.max_ts = self
            .streams
            .iter_mut()
            .map(|s| {
                let mut max = vec![i64::MIN; s.slots.len()];
                for (m, b) in max.iter_mut().zip(&mut s.slots) {
                    if let Some(b) = b {
                        b.sort();
                        *m = b.ts.last().copied().unwrap_or(i64::MIN);
                    }
                }
                max
            })
            .collect();
    }

    /// True when a frozen memtable (sorted buffers) holds a row of `device` at `ts`. After
    /// [`Memtable::freeze`] a timestamp above the device's largest is answered from the dense
    /// array alone (rows only ever leave a frozen memtable, so the largest stays an upper
    /// bound).
    pub(crate) fn frozen_contains(&self, stream: usize, device: u32, ts: i64) -> bool {
        if let Some(max) = self.max_ts.get(stream) {
            if max.get(device as usize).is_none_or(|&m| ts > m) {
                return false;
            }
        }
        self.get(stream, device)
            .is_some_and(|b| b.ts.binary_search(&ts).is_ok())
    }

    /// The buffer of a device, created on demand.
    pub(crate) fn buffer(&mut self, stream: usize, device: u32) -> Option<&mut DeviceBuffer> {
        let ncols = *self.ncols.get(stream)?;
        Some(self.streams.get_mut(stream)?.get_or_insert(device, ncols))
    }

    /// The buffer of a device, if it has one.
    pub(crate) fn get(&self, stream: usize, device: u32) -> Option<&DeviceBuffer> {
        self.streams.get(stream)?.get(device)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Takes every buffer of a device out (an erasure), per stream; the rows count drops
    /// accordingly. The cube cells of those rows are the caller's to take out of `cubes`.
    pub(crate) fn remove_device(&mut self, device: u32) -> Vec<Option<DeviceBuffer>> {
        let out: Vec<Option<DeviceBuffer>> =
            self.streams.iter_mut().map(|s| s.remove(device)).collect();
        let removed: usize = out.iter().flatten().map(DeviceBuffer::len).sum();
        self.rows = self.rows.saturating_sub(removed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_rows_are_found_and_sorted() {
        let mut m = Memtable::new(vec![1]);
        for t in [10, 30, 20, 40] {
            let b = m.buffer(0, 7).expect("stream");
            assert!(!b.contains(t));
            b.push(t, [t * 2].into_iter());
        }
        let b = m.buffer(0, 7).expect("stream");
        assert!(b.contains(20) && b.contains(40) && !b.contains(25));
        assert!(m.get(0, 8).is_none());
        let b = m.get(0, 7).expect("buffer");
        assert_eq!(b.select(15, 40, &[0]), (vec![20, 30], vec![vec![40, 60]]));
    }

    #[test]
    fn a_frozen_memtable_finds_its_rows_and_only_them() {
        let mut m = Memtable::new(vec![1, 1]);
        for (d, t) in [(3u32, 30), (3, 10), (3, 20), (5, 7)] {
            m.buffer(0, d).expect("stream").push(t, [t].into_iter());
        }
        m.buffer(1, 9).expect("stream").push(1, [1].into_iter());
        m.freeze();
        for (s, d, t, want) in [
            (0, 3, 10, true),
            (0, 3, 20, true),
            (0, 3, 30, true),
            (0, 3, 15, false),
            (0, 3, 31, false),
            (0, 5, 7, true),
            (0, 4, 7, false),
            (0, 99, 7, false),
            (1, 9, 1, true),
            (1, 3, 10, false),
        ] {
            assert_eq!(
                m.frozen_contains(s, d, t),
                want,
                "stream {s} device {d} ts {t}"
            );
        }
        assert_eq!(m.get(0, 3).expect("buffer").ts, vec![10, 20, 30]);
    }

    #[test]
    fn rows_far_out_of_order_are_found_too() {
        let mut b = DeviceBuffer::new(1);
        let mut want = Vec::new();
        // Descending: every row lands at the start, so past MAX_SHIFT rows the buffer goes
        // out of order, and its sorted copy turns into a set.
        for t in (0..4 * MAX_SHIFT as i64).rev().step_by(2) {
            assert!(!b.contains(t));
            b.push(t, [t * 10].into_iter());
            want.push(t);
            assert!(b.contains(t));
        }
        assert!(!b.sorted);
        assert!(matches!(b.seen, Some(Seen::Set(_))));
        for t in 0..4 * MAX_SHIFT as i64 {
            assert_eq!(b.contains(t), want.contains(&t), "{t}");
        }
        b.remove(want[5]);
        assert!(!b.contains(want[5]) && b.contains(want[6]));
        b.sort();
        let (ts, vals) = b.select(i64::MIN, i64::MAX, &[0]);
        assert!(ts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ts.len(), want.len() - 1);
        assert!(ts.iter().zip(&vals[0]).all(|(t, v)| *v == t * 10));
    }

    #[test]
    fn late_rows_are_inserted_in_place() {
        let mut b = DeviceBuffer::new(2);
        for t in [10, 20, 30, 15, 5, 25, 40] {
            assert!(!b.contains(t));
            b.push(t, [t, -t].into_iter());
        }
        assert!(b.sorted && b.seen.is_none());
        assert_eq!(b.ts, vec![5, 10, 15, 20, 25, 30, 40]);
        assert_eq!(b.row(2), &[15, -15]);
        assert_eq!(b.row(6), &[40, -40]);
        assert!(b.contains(15) && !b.contains(16));
        b.remove(15);
        b.remove(40);
        assert_eq!(b.ts, vec![5, 10, 20, 25, 30]);
        assert_eq!(b.row(2), &[20, -20]);
        assert!(!b.contains(40) && !b.contains(15));
    }

    #[test]
    fn remove_undoes_pushes() {
        let mut b = DeviceBuffer::new(1);
        b.push(5, [1].into_iter());
        b.push(3, [2].into_iter());
        assert!(b.contains(3));
        b.remove(3);
        assert!(!b.contains(3));
        assert_eq!(b.select(i64::MIN, i64::MAX, &[0]), (vec![5], vec![vec![1]]));
    }
}
