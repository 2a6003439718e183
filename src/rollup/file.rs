//! The rollup file of a segment (`seg-<id>.hrlp`): the rollups of exactly that segment's
//! rows. Byte map in `docs/FORMAT.md`:
//!
//! | part | content |
//! |------|---------|
//! | header, 32 bytes | magic `HRTHRLP\0`, version u32, stream u16, 0u16, window i64, segment id u64 |
//! | device blobs | per device (ascending id): its week cells and their CRC32C ([`super::device`]) |
//! | fleet section | zstd frame of the varint payload: device index, attribute values, cubes, month counts, latest rows |
//! | trailer, 32 bytes | blobs length u64, fleet length u64, CRC32C of header and fleet section u32, version u32, magic |
//!
//! A **device summary** (`sum-<id>.hrlp`, [`write_summary`], [`open_summary`]) is the same
//! format: the week cells of a (stream, window) whose raw rows retention dropped, with no tail
//! rows and an empty fleet section, named by the manifest for that window.
//!
//! Invariants: written and fsynced before the manifest names its segment, never changed;
//! the fleet section is checked against its CRC before it is decoded, each blob before it is
//! used; decoding never panics and never allocates more than the bytes present and the
//! registered devices justify.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::cube::{self, DayCells, DimSource};
use super::device::{self, BlobBuilder};
use super::{AttrTable, Layouts, StreamRollups};
use crate::error::{Error, Result};
use crate::files::varint;

pub(crate) const ROLLUP_MAGIC: [u8; 8] = *b"HRTHRLP\0";
/// Version 2 stores a blob's cells newest week first, its sums of squares apart (version 1:
/// oldest first, squares inside each cell). Version 1 files are not read: their segments are
/// rolled up again from their rows at open, as segments written before rollups are.
pub(crate) const ROLLUP_VERSION: u32 = 2;

/// The format version a rollup file declares in its header, if it has one.
pub(crate) fn declared_version(bytes: &[u8]) -> Option<u32> {
    if bytes.get(..8)? != ROLLUP_MAGIC {
        return None;
    }
    Some(u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?))
}
pub(crate) const HEADER_LEN: usize = 32;
/// Bytes at the start of a blob prefetched before a per-device read (the tail, the lengths
/// and the first cells): 512, 1,024, 2,048, 4,096 and 8,192 measured at 100,000 devices × 1
/// year, 1,024 best (C2 over 13 weeks 4.9 → 4.0 µs).
pub(crate) const BLOB_PREFETCH: usize = 1024;
/// Bytes at the start of a blob prefetched before reading its tail (16 rows of the preset
/// take about 400 bytes).
pub(crate) const TAIL_PREFETCH: usize = 512;
pub(crate) const TRAILER_LEN: usize = 32;
/// Largest decompressed fleet section accepted.
const MAX_FLEET: u64 = 1 << 31;

/// Builds a segment's rollup file from its rows, device by device.
pub(crate) struct RollupWriter<'a> {
    layouts: &'a Layouts,
    attrs: &'a AttrTable,
    fleet: StreamRollups,
    /// The cubes were given (a memtable's delta): rows feed only counts and blobs.
    cubes_given: bool,
    blobs: Vec<u8>,
    index: Vec<(u32, u64)>,
    row: Vec<i64>,
}

impl<'a> RollupWriter<'a> {
    pub(crate) fn new(layouts: &'a Layouts, attrs: &'a AttrTable) -> Self {
        RollupWriter {
            layouts,
            attrs,
            fleet: StreamRollups::new(layouts),
            cubes_given: false,
            blobs: Vec::new(),
            index: Vec::new(),
            row: vec![0; layouts.ncols],
        }
    }

    /// A writer whose cubes are already known (the cells of exactly the rows that will be
    /// added, e.g. a memtable's delta restricted to the segment's days).
    pub(crate) fn with_cubes(
        layouts: &'a Layouts,
        attrs: &'a AttrTable,
        cubes: Vec<super::cube::Cube>,
    ) -> Self {
        let mut w = RollupWriter::new(layouts, attrs);
        for (dst, src) in w.fleet.cubes.iter_mut().zip(cubes) {
            *dst = src;
        }
        w.cubes_given = true;
        w
    }

    /// A writer whose whole fleet state is known (a purge: the old file's, with the erased
    /// devices' rows taken out); only blobs are added, copied with [`RollupWriter::add_blob`].
    pub(crate) fn with_fleet(
        layouts: &'a Layouts,
        attrs: &'a AttrTable,
        fleet: StreamRollups,
    ) -> Self {
        let mut w = RollupWriter::new(layouts, attrs);
        w.fleet = fleet;
        w.cubes_given = true;
        w
    }

    /// Adds a device's blob as stored in another rollup file of the same stream (its cells
    /// and CRC), in ascending device order.
    pub(crate) fn add_blob(&mut self, device: u32, blob: &[u8]) {
        debug_assert!(self.index.last().is_none_or(|(d, _)| *d < device));
        self.blobs.extend_from_slice(blob);
        self.index.push((device, blob.len() as u64));
    }

    /// Adds one device's rows (ascending device ids, each row once).
    pub(crate) fn add_device(&mut self, device: u32, ts: &[i64], cols: &[&[i64]]) {
        let attrs = self.attrs.device(device);
        let mut blob = self.layouts.device.as_ref().map(BlobBuilder::new);
        for (i, &t) in ts.iter().enumerate() {
            for (dst, col) in self.row.iter_mut().zip(cols) {
                *dst = col.get(i).copied().unwrap_or(0);
            }
            if self.cubes_given {
                self.fleet
                    .add_counts(self.layouts, device, &attrs, t, &self.row);
            } else {
                self.fleet
                    .add_row(self.layouts, device, &attrs, t, &self.row);
            }
            if let Some(b) = &mut blob {
                b.add(t, &self.row);
            }
        }
        if let Some(b) = blob {
            if !b.is_empty() {
                let at = self.blobs.len();
                b.finish(&mut self.blobs);
                self.index.push((device, (self.blobs.len() - at) as u64));
            }
        }
    }

    /// The whole file, and the device index [`SegmentRollup::written`] needs to use it
    /// without decoding it again.
    pub(crate) fn finish_indexed(
        self,
        stream: u16,
        window: i64,
        segment: u64,
    ) -> (Vec<u8>, Vec<u32>, Vec<usize>) {
        let devices = self.index.iter().map(|(d, _)| *d).collect();
        let mut offsets = Vec::with_capacity(self.index.len() + 1);
        let mut at = HEADER_LEN;
        offsets.push(at);
        for (_, len) in &self.index {
            at += *len as usize;
            offsets.push(at);
        }
        (self.finish(stream, window, segment), devices, offsets)
    }

    /// The whole file.
    pub(crate) fn finish(self, stream: u16, window: i64, segment: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.blobs.len() + 4096);
        out.extend_from_slice(&ROLLUP_MAGIC);
        out.extend_from_slice(&ROLLUP_VERSION.to_le_bytes());
        out.extend_from_slice(&stream.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&window.to_le_bytes());
        out.extend_from_slice(&segment.to_le_bytes());
        out.extend_from_slice(&self.blobs);
        let raw = encode_fleet(self.layouts, self.attrs, &self.index, &self.fleet);
        let mut fleet = Vec::with_capacity(raw.len() / 3 + 16);
        varint::put_u64(&mut fleet, raw.len() as u64);
        match zstd::bulk::compress(&raw, 3) {
            Ok(z) => fleet.extend_from_slice(&z),
            Err(_) => {
                // Length 0 marks a raw payload (compression never fails on memory input, but
                // a file must be written whatever happens).
                fleet.clear();
                varint::put_u64(&mut fleet, 0);
                fleet.extend_from_slice(&raw);
            }
        }
        let mut crc = crc32c::crc32c(&out[..HEADER_LEN]);
        crc = crc32c::crc32c_append(crc, &fleet);
        out.extend_from_slice(&fleet);
        out.extend_from_slice(&(self.blobs.len() as u64).to_le_bytes());
        out.extend_from_slice(&(fleet.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&ROLLUP_VERSION.to_le_bytes());
        out.extend_from_slice(&ROLLUP_MAGIC);
        out
    }
}

fn encode_fleet(
    layouts: &Layouts,
    attrs: &AttrTable,
    index: &[(u32, u64)],
    fleet: &StreamRollups,
) -> Vec<u8> {
    let mut p = Vec::new();
    varint::put_u64(&mut p, index.len() as u64);
    let mut prev = 0u32;
    for &(d, len) in index {
        varint::put_u64(&mut p, u64::from(d - prev));
        prev = d;
        varint::put_u64(&mut p, len);
    }
    for a in 0..4 {
        let values = attrs.values(a);
        varint::put_u64(&mut p, values.len() as u64);
        for v in values {
            varint::put_bytes(&mut p, v.as_bytes());
        }
    }
    varint::put_u64(&mut p, layouts.cubes.len() as u64);
    for (layout, c) in layouts.cubes.iter().zip(&fleet.cubes) {
        varint::put_bytes(&mut p, layout.name.as_bytes());
        varint::put_u64(&mut p, c.day_count() as u64);
        let mut prev_day = 0i64;
        for (day, dc) in c.days() {
            varint::put_i64(&mut p, day - prev_day);
            prev_day = day;
            varint::put_u64(&mut p, dc.keys.len() as u64);
            for (i, &k) in dc.keys.iter().enumerate() {
                varint::put_u64(&mut p, k);
                for &v in &dc.data[i * layout.stride..(i + 1) * layout.stride] {
                    varint::put_i64(&mut p, v);
                }
            }
        }
    }
    varint::put_u64(&mut p, fleet.months.len() as u64);
    let mut prev_month = 0i64;
    for (&month, counts) in &fleet.months {
        varint::put_i64(&mut p, month - prev_month);
        prev_month = month;
        let nz = counts.iter().filter(|&&c| c > 0).count();
        varint::put_u64(&mut p, nz as u64);
        let mut prev = 0usize;
        for (d, &c) in counts.iter().enumerate().filter(|(_, &c)| c > 0) {
            varint::put_u64(&mut p, (d - prev) as u64);
            prev = d;
            varint::put_u64(&mut p, u64::from(c));
        }
    }
    let ncols = layouts.ncols;
    let with_last = fleet.last_ts.iter().filter(|&&t| t != i64::MIN).count();
    varint::put_u64(&mut p, with_last as u64);
    let mut prev = 0usize;
    for (d, &ts) in fleet.last_ts.iter().enumerate() {
        if ts == i64::MIN {
            continue;
        }
        varint::put_u64(&mut p, (d - prev) as u64);
        prev = d;
        varint::put_i64(&mut p, ts);
        for &v in &fleet.last_vals[d * ncols..(d + 1) * ncols] {
            varint::put_i64(&mut p, v);
        }
    }
    // Presence bits: per month, the devices with any bit set and their words.
    let w = layouts.presence.words;
    varint::put_u64(
        &mut p,
        if w == 0 {
            0
        } else {
            fleet.presence.len() as u64
        },
    );
    if w > 0 {
        let mut prev_month = 0i64;
        for (&month, bits) in &fleet.presence {
            varint::put_i64(&mut p, month - prev_month);
            prev_month = month;
            let devices: Vec<usize> = (0..bits.len().checked_div(w).unwrap_or(0))
                .filter(|&d| bits[d * w..(d + 1) * w].iter().any(|&x| x != 0))
                .collect();
            varint::put_u64(&mut p, devices.len() as u64);
            let mut prev = 0usize;
            for d in devices {
                varint::put_u64(&mut p, (d - prev) as u64);
                prev = d;
                for &x in &bits[d * w..(d + 1) * w] {
                    varint::put_u64(&mut p, x);
                }
            }
        }
    }
    p
}

/// A device-summary file (`sum-<id>.hrlp`, see `privacy::retention`): the rollup file format
/// with the summary's id in the segment field and an empty fleet section (no cube cell, month
/// count, latest row or presence bit: those go with the raw rows). `blobs` ascending by
/// device, each a [`device::summary_blob`]. Returns the file, its devices and blob offsets.
pub(crate) fn write_summary(
    layouts: &Layouts,
    stream: u16,
    window: i64,
    id: u64,
    blobs: &[(u32, Vec<u8>)],
) -> (Vec<u8>, Vec<u32>, Vec<usize>) {
    let attrs = AttrTable::default();
    let mut w = RollupWriter::with_fleet(layouts, &attrs, StreamRollups::new(layouts));
    for (d, blob) in blobs {
        w.add_blob(*d, blob);
    }
    w.finish_indexed(stream, window, id)
}

/// Opens a device-summary file: a rollup file ([`SegmentRollup::open`]) whose header names
/// (stream, window, summary id) and whose fleet section is empty.
pub(crate) fn open_summary(
    name: &str,
    bytes: Bytes,
    layouts: &Layouts,
    expect: (u16, i64, u64),
) -> Result<SegmentRollup> {
    let mut attrs = AttrTable::default();
    let (r, fleet) = SegmentRollup::open(name, bytes, layouts, &mut attrs, expect)?;
    let empty = fleet.cubes.iter().all(|c| c.day_count() == 0)
        && fleet.months.is_empty()
        && fleet.presence.is_empty()
        && fleet.last_ts.iter().all(|&t| t == i64::MIN)
        && (0..4).all(|a| attrs.values(a).len() <= 1);
    if !empty {
        return Err(Error::corruption(
            name,
            HEADER_LEN as u64,
            "a device summary holds fleet rollups or attributes",
        ));
    }
    Ok(r)
}

/// A segment's rollup file, opened: the device blobs stay in place (mapped); the fleet
/// section is returned decoded for the caller to merge.
#[derive(Debug)]
pub(crate) struct SegmentRollup {
    pub name: String,
    devices: Vec<u32>,
    /// Blob `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    /// When the ids are dense (most devices of the fleet have rows in the segment): device
    /// `d`'s blob is `bytes[by_id[d]..by_id[d + 1]]` (empty when it has none), found with
    /// one read of one cache line instead of a binary search over `devices` (about 17
    /// dependent reads at 100,000 devices, the last ones cold).
    by_id: Option<Vec<usize>>,
    bytes: Bytes,
    /// Bit `k` set once blob `k`'s CRC matched (`k` the device id with `by_id`, the blob's
    /// position otherwise): the file is immutable and mapped read-only, so each blob is
    /// checked once per process, not once per question.
    checked: Box<[AtomicU64]>,
}

/// The dense index of [`SegmentRollup::by_id`], when it costs at most 4 entries per blob.
fn dense_index(devices: &[u32], offsets: &[usize]) -> Option<Vec<usize>> {
    let last = *devices.last()? as usize;
    if last > 4 * devices.len() + 1024 {
        return None;
    }
    let mut by_id = Vec::with_capacity(last + 2);
    for (i, &d) in devices.iter().enumerate() {
        let start = *offsets.get(i)?;
        by_id.resize(d as usize, start);
        by_id.push(start);
    }
    by_id.push(*offsets.get(devices.len())?);
    Some(by_id)
}

/// A bitmap of `n` clear bits.
fn bitmap(n: usize) -> Box<[AtomicU64]> {
    (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect()
}

impl SegmentRollup {
    /// Opens a rollup file, checking its header against what the manifest says and decoding
    /// its fleet section (attribute codes translated into `attrs`; its month counts and
    /// latest rows must name devices `attrs` holds, i.e. registered ones).
    pub(crate) fn open(
        name: &str,
        bytes: Bytes,
        layouts: &Layouts,
        attrs: &mut AttrTable,
        expect: (u16, i64, u64),
    ) -> Result<(SegmentRollup, StreamRollups)> {
        let bad = |at: usize, what: &str| Error::corruption(name, at as u64, what.to_string());
        let len = bytes.len();
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(bad(0, "rollup file too short"));
        }
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
        };
        let t = len - TRAILER_LEN;
        if bytes[len - 8..] != ROLLUP_MAGIC || bytes[..8] != ROLLUP_MAGIC {
            return Err(bad(0, "not a rollup file (bad magic)"));
        }
        let version = u32_at(t + 20).unwrap_or(0);
        if version != ROLLUP_VERSION || u32_at(8) != Some(version) {
            return Err(bad(
                t + 20,
                &format!("unsupported rollup version {version}"),
            ));
        }
        let blobs_len = u64_at(t).and_then(|v| usize::try_from(v).ok());
        let fleet_len = u64_at(t + 8).and_then(|v| usize::try_from(v).ok());
        let (Some(blobs_len), Some(fleet_len)) = (blobs_len, fleet_len) else {
            return Err(bad(t, "bad section lengths"));
        };
        if HEADER_LEN
            .checked_add(blobs_len)
            .and_then(|x| x.checked_add(fleet_len))
            != Some(t)
        {
            return Err(bad(t, "section lengths disagree with the file size"));
        }
        let fleet_at = HEADER_LEN + blobs_len;
        let fleet_bytes = &bytes[fleet_at..t];
        let mut crc = crc32c::crc32c(&bytes[..HEADER_LEN]);
        crc = crc32c::crc32c_append(crc, fleet_bytes);
        if Some(crc) != u32_at(t + 16) {
            return Err(bad(fleet_at, "rollup checksum mismatch"));
        }
        let stream = u16::from_le_bytes([bytes[12], bytes[13]]);
        let window = u64_at(16).unwrap_or(0) as i64;
        let segment = u64_at(24).unwrap_or(0);
        if (stream, window, segment) != expect {
            return Err(bad(12, "rollup header disagrees with its segment"));
        }
        let mut r = varint::Reader::new(fleet_bytes);
        let raw_len = r
            .u64()
            .ok_or_else(|| bad(fleet_at, "truncated fleet section"))?;
        let rest = &fleet_bytes[r.pos()..];
        let unpacked;
        let payload: &[u8] = if raw_len == 0 {
            rest
        } else {
            if raw_len > MAX_FLEET {
                return Err(bad(fleet_at, "fleet section too large"));
            }
            unpacked = crate::files::unzstd(rest, raw_len as usize)
                .ok_or_else(|| bad(fleet_at, "fleet section does not decompress to its length"))?;
            &unpacked
        };
        // Days and months must lie in the segment's window: a few bytes cannot claim
        // centuries of cells.
        let first = window
            .saturating_mul(layouts.window_ms)
            .div_euclid(crate::schema::DAY_MS);
        let last = window
            .saturating_add(1)
            .saturating_mul(layouts.window_ms)
            .saturating_sub(1)
            .div_euclid(crate::schema::DAY_MS);
        let (devices, offsets, fleet) =
            decode_fleet(payload, layouts, attrs, blobs_len, (first, last))
                .map_err(|(at, what)| bad(fleet_at, &format!("fleet section at {at}: {what}")))?;
        let offsets = offsets.into_iter().map(|o| o + HEADER_LEN).collect();
        Ok((SegmentRollup::indexed(name, bytes, devices, offsets), fleet))
    }

    fn indexed(name: &str, bytes: Bytes, devices: Vec<u32>, offsets: Vec<usize>) -> Self {
        let by_id = dense_index(&devices, &offsets);
        SegmentRollup {
            name: name.to_string(),
            checked: bitmap(by_id.as_ref().map_or(devices.len(), Vec::len)),
            devices,
            offsets,
            by_id,
            bytes,
        }
    }

    /// A file this process just wrote (and read back), with the index its writer returned.
    pub(crate) fn written(
        name: &str,
        bytes: Bytes,
        devices: Vec<u32>,
        offsets: Vec<usize>,
    ) -> Result<SegmentRollup> {
        if offsets.len() != devices.len() + 1 || offsets.last().is_some_and(|&o| o > bytes.len()) {
            return Err(Error::corruption(
                name,
                0,
                "rollup file shorter than written",
            ));
        }
        Ok(SegmentRollup::indexed(name, bytes, devices, offsets))
    }

    /// A device's blob and its offset in the file.
    pub(crate) fn blob(&self, device: u32) -> Option<(&[u8], usize)> {
        self.locate(device).map(|(_, blob, at)| (blob, at))
    }

    /// Asks the CPU to start loading up to `max` bytes of a device's blob into its caches, so
    /// that the lines a read will need arrive in parallel rather than one dependent miss
    /// after another (a random device's blob is not in cache).
    pub(crate) fn prefetch(&self, device: u32, max: usize) {
        if let Some((_, blob, _)) = self.locate(device) {
            device::prefetch(blob.get(..max).unwrap_or(blob));
        }
    }

    /// A device's blob, its offset in the file and its bit in `checked`.
    fn locate(&self, device: u32) -> Option<(usize, &[u8], usize)> {
        let (k, a, b) = match &self.by_id {
            Some(by_id) => {
                let d = device as usize;
                let (a, b) = (*by_id.get(d)?, *by_id.get(d + 1)?);
                if a == b {
                    return None;
                }
                (d, a, b)
            }
            None => {
                let i = self.devices.binary_search(&device).ok()?;
                (i, *self.offsets.get(i)?, *self.offsets.get(i + 1)?)
            }
        };
        Some((k, self.bytes.get(a..b)?, a))
    }

    /// A device's blob with its CRC checked (the first time it is read in this process), if
    /// the segment has rows of the device.
    pub(crate) fn checked_blob(&self, device: u32) -> Result<Option<device::CheckedBlob<'_>>> {
        let Some((i, blob, at)) = self.locate(device) else {
            return Ok(None);
        };
        let Some(word) = self.checked.get(i / 64) else {
            return Ok(None);
        };
        let bit = 1u64 << (i % 64);
        let checked = if word.load(Ordering::Relaxed) & bit != 0 {
            device::CheckedBlob::trusted(blob)
        } else {
            let b = device::CheckedBlob::check(blob)
                .map_err(|what| Error::corruption(&self.name, at as u64, what))?;
            word.fetch_or(bit, Ordering::Relaxed);
            b
        };
        Ok(Some(checked.at(at)))
    }

    /// Checks every blob; returns the cells checked.
    pub(crate) fn verify(&self, layouts: &Layouts) -> Result<u64> {
        let Some(layout) = &layouts.device else {
            return Ok(0);
        };
        let mut cells = 0u64;
        for &d in &self.devices {
            if let Some((blob, at)) = self.blob(d) {
                device::for_each_cell(layout, blob, i64::MIN, i64::MAX, |_| cells += 1)
                    .map_err(|what| Error::corruption(&self.name, at as u64, what))?;
            }
        }
        Ok(cells)
    }

    /// The devices with a blob, ascending.
    pub(crate) fn devices(&self) -> &[u32] {
        &self.devices
    }

    /// Bytes of the file.
    pub(crate) fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

type Decoded = (Vec<u32>, Vec<usize>, StreamRollups);

fn decode_fleet(
    p: &[u8],
    layouts: &Layouts,
    attrs: &mut AttrTable,
    blobs_len: usize,
    (first_day, last_day): (i64, i64),
) -> std::result::Result<Decoded, (usize, &'static str)> {
    let first_month = super::calendar::Grain::Month.start(first_day);
    // Month counts and latest rows are dense by device id: ids beyond the registered devices
    // would make a few bytes allocate gigabytes.
    let registered = attrs.device_count();
    let mut r = varint::Reader::new(p);
    macro_rules! get {
        ($e:expr, $what:expr) => {
            $e.ok_or((r.pos(), $what))?
        };
    }
    // A count can never exceed the bytes left (every item takes at least one byte).
    let bounded =
        |n: u64, r: &varint::Reader<'_>| -> std::result::Result<usize, (usize, &'static str)> {
            let left = p.len().saturating_sub(r.pos()) as u64;
            if n > left {
                Err((r.pos(), "count larger than the section"))
            } else {
                Ok(n as usize)
            }
        };
    let n = get!(r.u64(), "device count");
    let n = bounded(n, &r)?;
    let mut devices = Vec::with_capacity(n);
    let mut offsets = Vec::with_capacity(n + 1);
    let (mut d, mut off) = (0u64, 0usize);
    offsets.push(0);
    for i in 0..n {
        let delta = get!(r.u64(), "device id");
        d = get!(d.checked_add(delta), "device id overflow");
        if i > 0 && delta == 0 {
            return Err((r.pos(), "devices not ascending"));
        }
        devices.push(get!(u32::try_from(d).ok(), "device id out of range"));
        let len = get!(r.u64().and_then(|v| usize::try_from(v).ok()), "blob length");
        off = get!(off.checked_add(len), "blob length overflow");
        if off > blobs_len {
            return Err((r.pos(), "blobs exceed their section"));
        }
        offsets.push(off);
    }
    if off != blobs_len {
        return Err((r.pos(), "blob lengths disagree with the section"));
    }
    let mut remap: [Vec<u32>; 4] = Default::default();
    for (a, map) in remap.iter_mut().enumerate() {
        let n = get!(r.u64(), "attribute count");
        let n = bounded(n, &r)?;
        for _ in 0..n {
            let v = get!(r.str(), "attribute value");
            map.push(attrs.intern(a, v));
        }
    }
    let ncubes = get!(r.u64(), "cube count");
    if ncubes != layouts.cubes.len() as u64 {
        return Err((r.pos(), "cube count differs from the schema"));
    }
    let mut fleet = StreamRollups::new(layouts);
    for (layout, cube) in layouts.cubes.iter().zip(&mut fleet.cubes) {
        let name = get!(r.str(), "cube name");
        if name != layout.name {
            return Err((r.pos(), "cube name differs from the schema"));
        }
        let ndays = get!(r.u64(), "day count");
        let ndays = bounded(ndays, &r)?;
        let mut day = 0i64;
        for _ in 0..ndays {
            let delta = get!(r.i64(), "day");
            day = get!(day.checked_add(delta), "day overflow");
            if day < first_day || day > last_day {
                return Err((r.pos(), "day outside the segment's window"));
            }
            let ncells = get!(r.u64(), "cell count");
            let ncells = bounded(ncells, &r)?;
            let mut keys = Vec::with_capacity(ncells);
            let mut data = Vec::with_capacity(ncells.saturating_mul(layout.stride).min(p.len()));
            for _ in 0..ncells {
                let mut key = get!(r.u64(), "cell key");
                for (i, src) in layout.dim_sources.iter().enumerate() {
                    if let DimSource::Attribute(a) = src {
                        let code = cube::unpack(key, i) as usize;
                        let global = get!(remap[*a].get(code).copied(), "attribute code");
                        key = (key & !(0xFFFFu64 << (16 * i))) | (u64::from(global) << (16 * i));
                    }
                }
                keys.push(key);
                for _ in 0..layout.stride {
                    data.push(get!(r.i64(), "cell slot"));
                }
            }
            let dc = DayCells::from_parts(keys, data).ok_or((r.pos(), "repeated cell key"))?;
            if !dc.keys.is_empty() && !cube.insert_day(day, dc) {
                return Err((r.pos(), "repeated day"));
            }
        }
    }
    let nmonths = get!(r.u64(), "month count");
    let nmonths = bounded(nmonths, &r)?;
    let mut month = 0i64;
    for _ in 0..nmonths {
        month = get!(month.checked_add(get!(r.i64(), "month")), "month overflow");
        if month < first_month || month > last_day {
            return Err((r.pos(), "month outside the segment's window"));
        }
        let n = get!(r.u64(), "month entries");
        let n = bounded(n, &r)?;
        let mut counts: Vec<u32> = Vec::new();
        let mut d = 0u64;
        for _ in 0..n {
            d = get!(d.checked_add(get!(r.u64(), "device")), "device overflow");
            let c = get!(r.u32(), "month count");
            let i = get!(
                usize::try_from(d).ok().filter(|&i| i < registered),
                "device not registered"
            );
            if i >= counts.len() {
                counts.resize(i + 1, 0);
            }
            counts[i] = get!(counts[i].checked_add(c), "count overflow");
        }
        fleet.months.insert(month, counts);
    }
    let nlast = get!(r.u64(), "latest-row count");
    let nlast = bounded(nlast, &r)?;
    let ncols = layouts.ncols;
    let mut d = 0u64;
    let mut vals = vec![0i64; ncols];
    for _ in 0..nlast {
        d = get!(d.checked_add(get!(r.u64(), "device")), "device overflow");
        let dev = get!(
            u32::try_from(d).ok().filter(|&i| (i as usize) < registered),
            "device not registered"
        );
        let ts = get!(r.i64(), "timestamp");
        for v in &mut vals {
            *v = get!(r.i64(), "value");
        }
        fleet.note_last_public(ncols, dev, ts, &vals);
    }
    let w = layouts.presence.words;
    let nmonths = get!(r.u64(), "presence month count");
    let nmonths = bounded(nmonths, &r)?;
    if nmonths > 0 && w == 0 {
        return Err((r.pos(), "presence bits the schema does not declare"));
    }
    let mut month = 0i64;
    for _ in 0..nmonths {
        month = get!(
            month.checked_add(get!(r.i64(), "presence month")),
            "month overflow"
        );
        if month < first_month || month > last_day {
            return Err((r.pos(), "month outside the segment's window"));
        }
        let n = get!(r.u64(), "presence entries");
        let n = bounded(n, &r)?;
        let mut bits: Vec<u64> = Vec::new();
        let mut d = 0u64;
        for i in 0..n {
            let delta = get!(r.u64(), "presence device");
            if i > 0 && delta == 0 {
                return Err((r.pos(), "presence devices not ascending"));
            }
            d = get!(d.checked_add(delta), "device overflow");
            let dev = get!(
                usize::try_from(d).ok().filter(|&i| i < registered),
                "device not registered"
            );
            if bits.len() < (dev + 1) * w {
                bits.resize((dev + 1) * w, 0);
            }
            for k in 0..w {
                bits[dev * w + k] = get!(r.u64(), "presence word");
            }
        }
        if fleet.presence.insert(month, bits).is_some() {
            return Err((r.pos(), "presence month repeated"));
        }
    }
    if !r.is_empty() {
        return Err((r.pos(), "bytes after the fleet section"));
    }
    Ok((devices, offsets, fleet))
}

impl StreamRollups {
    pub(crate) fn note_last_public(&mut self, ncols: usize, device: u32, ts: i64, vals: &[i64]) {
        self.note_last(ncols, device, ts, vals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::DeviceInfo;
    use crate::schema::Schema;

    pub(crate) fn sample_file() -> (Layouts, AttrTable, Vec<u8>, StreamRollups) {
        let schema = Schema::washing_machine();
        let layouts = Layouts::new(&schema.streams[0]);
        let mut attrs = AttrTable::default();
        for d in 0..20u32 {
            let mut info = DeviceInfo::unknown(&format!("WM-{d}"));
            info.model = format!("M{}", d % 3);
            info.capacity_kg = [7.0, 8.0, 9.5][(d % 3) as usize];
            info.region = format!("R{}", d % 4);
            info.segment = ["A", "B"][(d % 2) as usize].into();
            attrs.set_device(d, &info);
        }
        let mut w = RollupWriter::new(&layouts, &attrs);
        let mut expect = StreamRollups::new(&layouts);
        for d in (0..20u32).filter(|d| d % 5 != 0) {
            let ts: Vec<i64> = (0..30)
                .map(|i| 1_735_689_600_000 + i * 40_000_000 + i64::from(d))
                .collect();
            let cols: Vec<Vec<i64>> = (0..11)
                .map(|c| (0..30).map(|i| (i * (c + 2) + i64::from(d)) % 6).collect())
                .collect();
            let refs: Vec<&[i64]> = cols.iter().map(Vec::as_slice).collect();
            w.add_device(d, &ts, &refs);
            for (i, &t) in ts.iter().enumerate() {
                let row: Vec<i64> = cols.iter().map(|c| c[i]).collect();
                expect.add_row(&layouts, d, &attrs.device(d), t, &row);
            }
        }
        let bytes = w.finish(0, 55, 77);
        (layouts, attrs, bytes, expect)
    }

    #[test]
    fn rollup_file_round_trips() {
        let (layouts, mut attrs, bytes, expect) = sample_file();
        let (seg, fleet) =
            SegmentRollup::open("r", Bytes::from(bytes), &layouts, &mut attrs, (0, 55, 77))
                .expect("opens");
        assert_eq!(fleet, expect);
        assert!(seg.verify(&layouts).expect("blobs check") >= seg.devices.len() as u64);
        let l = layouts.device.as_ref().expect("device rollup");
        let mut rows = 0;
        for &d in &seg.devices {
            let (blob, _) = seg.blob(d).expect("blob");
            device::for_each_cell(l, blob, i64::MIN, i64::MAX, |c| rows += c.count)
                .expect("decodes");
        }
        assert_eq!(rows, 16 * 30);
        assert!(seg.blob(5).is_none() && seg.blob(6).is_some());
    }

    /// A fleet section naming a device beyond the registered ones is corrupt (a hand-built
    /// 300-byte file run through the rollup fuzz target made the decoder allocate gigabytes:
    /// month counts and latest rows are dense per device id, then bounded only by 2^28).
    #[test]
    fn fleet_devices_beyond_the_registry_are_rejected() {
        let (layouts, attrs, _, _) = sample_file();
        let file = |months: &[(u64, u64)], last: &[u64]| {
            let mut p = Vec::new();
            varint::put_u64(&mut p, 0);
            for _ in 0..4 {
                varint::put_u64(&mut p, 0);
            }
            varint::put_u64(&mut p, layouts.cubes.len() as u64);
            for c in &layouts.cubes {
                varint::put_bytes(&mut p, c.name.as_bytes());
                varint::put_u64(&mut p, 0);
            }
            varint::put_u64(&mut p, months.len() as u64);
            for (i, &(d, n)) in months.iter().enumerate() {
                varint::put_i64(&mut p, if i == 0 { 20_089 } else { 31 });
                varint::put_u64(&mut p, 1);
                varint::put_u64(&mut p, d);
                varint::put_u64(&mut p, n);
            }
            varint::put_u64(&mut p, last.len() as u64);
            let mut prev = 0;
            for &d in last {
                varint::put_u64(&mut p, d - prev);
                prev = d;
                varint::put_i64(&mut p, 1_735_689_600_000);
                for c in 0..layouts.ncols {
                    varint::put_i64(&mut p, c as i64);
                }
            }
            varint::put_u64(&mut p, 0); // no presence bits
            let mut out = ROLLUP_MAGIC.to_vec();
            out.extend_from_slice(&ROLLUP_VERSION.to_le_bytes());
            out.extend_from_slice(&[0; 4]); // stream 0, reserved
            out.extend_from_slice(&55i64.to_le_bytes()); // the window holding 2025-01-01
            out.extend_from_slice(&0u64.to_le_bytes());
            let mut fleet = vec![0]; // raw payload
            fleet.extend_from_slice(&p);
            let crc = crc32c::crc32c_append(crc32c::crc32c(&out), &fleet);
            out.extend_from_slice(&fleet);
            out.extend_from_slice(&0u64.to_le_bytes());
            out.extend_from_slice(&(fleet.len() as u64).to_le_bytes());
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&ROLLUP_VERSION.to_le_bytes());
            out.extend_from_slice(&ROLLUP_MAGIC);
            out
        };
        let open = |bytes: Vec<u8>| {
            let mut a = attrs.clone();
            SegmentRollup::open("r", Bytes::from(bytes), &layouts, &mut a, (0, 55, 0))
                .map(|(_, fleet)| fleet)
        };
        // Devices 0..20 are registered in the sample table.
        let fleet = open(file(&[(19, 4), (3, 1)], &[2, 19])).expect("registered devices");
        assert_eq!(fleet.months.values().map(Vec::len).max(), Some(20));
        assert_eq!(fleet.last_ts.len(), 20);
        for bad in [
            file(&[(20, 1)], &[]),
            file(&[((1 << 28) - 1, 1); 4], &[]),
            file(&[], &[2, 20]),
            file(&[], &[(1 << 28) - 1]),
        ] {
            let err = open(bad).expect_err("unregistered device");
            assert!(err.to_string().contains("device not registered"), "{err}");
        }
    }

    #[test]
    fn cells_outside_the_window_are_rejected() {
        // The sample's rows are in window 55; a file claiming window 54 for them is corrupt.
        let (layouts, mut attrs, bytes, _) = sample_file();
        let mut bad = bytes.clone();
        bad[16..24].copy_from_slice(&54i64.to_le_bytes());
        let t = bad.len() - TRAILER_LEN;
        let blobs = u64::from_le_bytes(bad[t..t + 8].try_into().expect("8 bytes")) as usize;
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&bad[..HEADER_LEN]),
            &bad[HEADER_LEN + blobs..t],
        );
        bad[t + 16..t + 20].copy_from_slice(&crc.to_le_bytes());
        let err = SegmentRollup::open("r", Bytes::from(bad), &layouts, &mut attrs, (0, 54, 77))
            .expect_err("outside its window");
        assert!(
            err.to_string().contains("outside the segment's window"),
            "{err}"
        );
    }

    /// The dense index by device id finds exactly the blobs the binary search finds, and
    /// sparse ids keep the binary search.
    #[test]
    fn dense_index_agrees_with_the_search() {
        for ids in [vec![0u32, 1, 2, 5, 6, 40], vec![3, 7, 5000], vec![9]] {
            let offsets: Vec<usize> = (0..=ids.len()).map(|i| 32 + 10 * i).collect();
            let bytes = Bytes::from(vec![0u8; 32 + 10 * ids.len()]);
            let seg = SegmentRollup::indexed("f", bytes, ids.clone(), offsets);
            assert_eq!(
                seg.by_id.is_some(),
                *ids.last().unwrap_or(&0) < 1000,
                "{ids:?}"
            );
            let search = SegmentRollup {
                by_id: None,
                checked: bitmap(ids.len()),
                ..SegmentRollup::indexed("f", seg.bytes.clone(), ids.clone(), seg.offsets.clone())
            };
            for d in 0..5100 {
                assert_eq!(seg.blob(d), search.blob(d), "device {d} of {ids:?}");
                assert_eq!(seg.blob(d).is_some(), ids.contains(&d));
            }
        }
    }

    #[test]
    fn every_byte_flip_is_detected() {
        let (layouts, attrs, bytes, _) = sample_file();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            let mut a = attrs.clone();
            let caught =
                match SegmentRollup::open("r", Bytes::from(bad), &layouts, &mut a, (0, 55, 77)) {
                    Err(_) => true,
                    Ok((seg, _)) => seg.verify(&layouts).is_err(),
                };
            assert!(caught, "flip at {i} went unnoticed");
        }
    }
}
