//! In-memory buffers of rows not yet flushed: per stream, per device.
//!
//! A device's buffer appends rows in arrival order. While they arrive in timestamp order (the
//! common case) it stays sorted and a new row is known to be new by comparing with the
//! largest timestamp alone. The first out-of-order row builds a set of the buffer's
//! timestamps, which answers "already here?" from then on.
//!
//! Invariants: a buffer never holds two rows with the same timestamp (the first one wins);
//! `rows` counts every buffered row; the memtable records the highest log sequence number
//! whose rows it holds, which becomes the checkpoint once it is flushed.

use std::collections::{BTreeMap, HashSet};

/// Rows of one device in one stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceBuffer {
    pub ts: Vec<i64>,
    pub cols: Vec<Vec<i64>>,
    max_ts: i64,
    sorted: bool,
    seen: Option<HashSet<i64>>,
}

impl DeviceBuffer {
    fn new(ncols: usize) -> Self {
        DeviceBuffer {
            ts: Vec::new(),
            cols: vec![Vec::new(); ncols],
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
        let seen = self
            .seen
            .get_or_insert_with(|| self.ts.iter().copied().collect());
        seen.contains(&ts)
    }

    /// Makes room for `rows` more rows.
    pub(crate) fn reserve(&mut self, rows: usize) {
        self.ts.reserve(rows);
        for c in &mut self.cols {
            c.reserve(rows);
        }
    }

    /// Appends a row known not to be buffered yet.
    pub(crate) fn push(&mut self, ts: i64, values: impl Iterator<Item = i64>) {
        if ts < self.max_ts {
            self.sorted = false;
        }
        self.max_ts = self.max_ts.max(ts);
        self.ts.push(ts);
        if let Some(seen) = &mut self.seen {
            seen.insert(ts);
        }
        for (col, v) in self.cols.iter_mut().zip(values) {
            col.push(v);
        }
    }

    /// Removes rows pushed after the buffer had `len` rows (undo of a failed append).
    pub(crate) fn truncate(&mut self, len: usize) {
        if let Some(seen) = &mut self.seen {
            for t in self.ts.get(len..).unwrap_or(&[]) {
                seen.remove(t);
            }
        }
        self.ts.truncate(len);
        for c in &mut self.cols {
            c.truncate(len);
        }
        self.max_ts = self.ts.iter().copied().max().unwrap_or(i64::MIN);
        self.sorted = self.ts.windows(2).all(|w| w[0] < w[1]);
    }

    pub(crate) fn len(&self) -> usize {
        self.ts.len()
    }

    /// Sorts the rows by timestamp in place (done when the memtable is frozen) and drops
    /// the lookup set: a sorted buffer answers `contains` by binary search.
    pub(crate) fn sort(&mut self) {
        if !self.sorted {
            let order = self.order();
            let pick = |v: &Vec<i64>| {
                order
                    .iter()
                    .map(|&i| v.get(i as usize).copied().unwrap_or(0))
                    .collect()
            };
            self.ts = pick(&self.ts);
            for c in &mut self.cols {
                *c = pick(c);
            }
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
        if self.sorted {
            let lo = self.ts.partition_point(|&t| t < from);
            let hi = self.ts.partition_point(|&t| t < to);
            ts.extend_from_slice(self.ts.get(lo..hi).unwrap_or(&[]));
            for (out, &c) in cols.iter_mut().zip(projection) {
                if let Some(src) = self.cols.get(c).and_then(|v| v.get(lo..hi)) {
                    out.extend_from_slice(src);
                }
            }
        } else {
            for i in self.order() {
                let i = i as usize;
                let t = self.ts.get(i).copied().unwrap_or(i64::MIN);
                if t < from || t >= to {
                    continue;
                }
                ts.push(t);
                for (out, &c) in cols.iter_mut().zip(projection) {
                    out.push(
                        self.cols
                            .get(c)
                            .and_then(|v| v.get(i))
                            .copied()
                            .unwrap_or(0),
                    );
                }
            }
        }
        (ts, cols)
    }
}

/// Buffered rows of every stream.
#[derive(Debug, Clone)]
pub(crate) struct Memtable {
    /// Per stream, per device id.
    pub streams: Vec<BTreeMap<u32, DeviceBuffer>>,
    ncols: Vec<usize>,
    pub rows: usize,
    pub max_lsn: u64,
}

impl Memtable {
    pub(crate) fn new(ncols: Vec<usize>) -> Self {
        Memtable {
            streams: vec![BTreeMap::new(); ncols.len()],
            ncols,
            rows: 0,
            max_lsn: 0,
        }
    }

    /// The buffer of a device, created on demand.
    pub(crate) fn buffer(&mut self, stream: usize, device: u32) -> Option<&mut DeviceBuffer> {
        let ncols = *self.ncols.get(stream)?;
        Some(
            self.streams
                .get_mut(stream)?
                .entry(device)
                .or_insert_with(|| DeviceBuffer::new(ncols)),
        )
    }

    /// The buffer of a device, if it has one.
    pub(crate) fn get(&self, stream: usize, device: u32) -> Option<&DeviceBuffer> {
        self.streams.get(stream)?.get(&device)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
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
    fn truncate_undoes_pushes() {
        let mut b = DeviceBuffer::new(1);
        b.push(5, [1].into_iter());
        b.push(3, [2].into_iter());
        assert!(b.contains(3));
        b.truncate(1);
        assert!(!b.contains(3));
        assert_eq!(b.select(i64::MIN, i64::MAX, &[0]), (vec![5], vec![vec![1]]));
    }
}
