//! Rollups: pre-computed aggregates maintained on the write path, so fleet questions cost
//! the size of the rollups rather than of the data, and a device's summary never reads raw
//! rows.
//!
//! What this module owns:
//! - [`AttrTable`]: device attributes (model, capacity, region, segment) interned to small
//!   codes, per dense device id;
//! - [`StreamRollups`]: one stream's fleet state in memory: its cubes (see [`cube`]), the
//!   number of rows per device and calendar month, and each device's latest row;
//! - the **rollup file** of a segment ([`file`]): the rollups of exactly the rows of that
//!   segment, written next to it before the manifest names it, so rollups are published
//!   atomically with the data they summarise; its device blobs ([`device`]) are read in place.
//!
//! Invariants: the fleet state of a stream is the sum of the rollup files of its live
//! segments plus the rows in the memtables (each row counted once: duplicates are dropped
//! before they reach either); flush and compaction move rows between files without changing
//! the sum; a device's rollup-relevant attributes never change once it has rows, so a rollup
//! and a scan of the same rows always agree.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use crate::registry::DeviceInfo;
use crate::schema::{Attribute, StreamDef};

pub(crate) mod calendar;
pub(crate) mod cube;
pub(crate) mod device;
pub(crate) mod file;

use cube::{Cube, CubeLayout, DimSource};
use device::DeviceLayout;

/// A device attribute's value as rollups key it: `capacity_kg` in its shortest decimal form,
/// the empty string when unknown.
pub(crate) fn attribute_value(info: &DeviceInfo, a: Attribute) -> String {
    match a {
        Attribute::Model => info.model.clone(),
        Attribute::Capacity => format_capacity(info.capacity_kg),
        Attribute::Region => info.region.clone(),
        Attribute::Segment => info.segment.clone(),
    }
}

/// `7` for 7.0 kg, `8.5` for 8.5 kg, empty for unknown (0).
pub(crate) fn format_capacity(kg: f64) -> String {
    if kg > 0.0 && kg.is_finite() {
        format!("{kg}")
    } else {
        String::new()
    }
}

/// A device's attributes as codes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct DeviceAttrs {
    pub codes: [u32; 4],
    pub capacity_kg: f64,
}

/// Interned device attributes.
#[derive(Debug, Clone)]
pub(crate) struct AttrTable {
    dict: [Vec<String>; 4],
    index: [HashMap<String, u32>; 4],
    devices: Vec<DeviceAttrs>,
}

impl Default for AttrTable {
    fn default() -> Self {
        let mut t = AttrTable {
            dict: Default::default(),
            index: Default::default(),
            devices: Vec::new(),
        };
        // Code 0 is "unknown" for every attribute.
        for a in 0..4 {
            t.intern(a, "");
        }
        t
    }
}

impl AttrTable {
    /// The code of `value` for attribute `a`, added when new. Codes fit 16 bits: past
    /// 65,535 distinct values the rest share the last code (no preset comes near).
    pub(crate) fn intern(&mut self, a: usize, value: &str) -> u32 {
        if let Some(&c) = self.index[a].get(value) {
            return c;
        }
        let c = (self.dict[a].len() as u32).min(0xFFFF);
        if c < 0xFFFF {
            self.dict[a].push(value.to_string());
            self.index[a].insert(value.to_string(), c);
        }
        c
    }

    /// The code of a value, if it was ever seen.
    pub(crate) fn code(&self, a: usize, value: &str) -> Option<u32> {
        self.index[a].get(value).copied()
    }

    /// The value of a code.
    pub(crate) fn value(&self, a: usize, code: u32) -> &str {
        self.dict[a].get(code as usize).map_or("", String::as_str)
    }

    /// Every value of attribute `a`, by code.
    pub(crate) fn values(&self, a: usize) -> &[String] {
        &self.dict[a]
    }

    /// Records a device's attributes.
    pub(crate) fn set_device(&mut self, id: u32, info: &DeviceInfo) {
        let mut codes = [0u32; 4];
        for a in Attribute::ALL {
            codes[a.index()] = self.intern(a.index(), &attribute_value(info, a));
        }
        let i = id as usize;
        if self.devices.len() <= i {
            self.devices.resize(i + 1, DeviceAttrs::default());
        }
        self.devices[i] = DeviceAttrs {
            codes,
            capacity_kg: info.capacity_kg,
        };
    }

    /// One more than the largest device id set (every registered device is set).
    pub(crate) fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// A device's attributes (all unknown for ids never set).
    pub(crate) fn device(&self, id: u32) -> DeviceAttrs {
        self.devices.get(id as usize).copied().unwrap_or_default()
    }
}

/// The rollup declarations of a stream, resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layouts {
    pub cubes: Vec<CubeLayout>,
    pub device: Option<DeviceLayout>,
    pub ncols: usize,
    /// The stream's window length (ms): a rollup file's days lie in its segment's window.
    pub window_ms: i64,
    /// The distinct stream-dimension signatures of the cubes (see [`Presence`]).
    pub presence: Presence,
    /// Per cube: its signature's index in `presence.sigs`, when it has presence bits.
    pub cube_sig: Vec<Option<usize>>,
}

/// Presence bits: per device and calendar month, one bit per combination of a cube's
/// stream dimensions (categorical columns, hour) seen in its rows. Cubes with the same
/// stream dimensions share bits; device attributes need none (a device has one value).
/// Setting a bit is idempotent, so the bits of several files merge by OR, and the number of
/// distinct devices of any group over whole months is exact: a device counts once when any
/// of its bits in the group is set in any month of the bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Presence {
    pub sigs: Vec<Signature>,
    /// `u64` words per device-month.
    pub words: usize,
}

/// One signature: the stream dimensions, their cardinalities, and the first bit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Signature {
    pub dims: Vec<DimSource>,
    pub cards: Vec<u32>,
    pub offset: usize,
    pub bits: usize,
}

/// Largest signature kept (bits per device-month).
const MAX_SIGNATURE_BITS: usize = 1024;

impl Signature {
    /// The bit of a row.
    pub(crate) fn bit(&self, ts: i64, vals: &[i64]) -> usize {
        let mut p = 0usize;
        for (d, &card) in self.dims.iter().zip(&self.cards) {
            let c = match *d {
                DimSource::Column(i) => vals
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .clamp(0, i64::from(card) - 1) as usize,
                DimSource::Hour => calendar::hour_of(ts) as usize,
                DimSource::Attribute(_) => 0,
            };
            p = p * card as usize + c;
        }
        self.offset + p
    }

    /// The stream-dimension codes of bit `p` (relative to `offset`), in `dims` order.
    pub(crate) fn codes(&self, mut p: usize, out: &mut Vec<u32>) {
        out.clear();
        out.resize(self.dims.len(), 0);
        for (slot, &card) in out.iter_mut().zip(&self.cards).rev() {
            *slot = (p % card as usize) as u32;
            p /= card as usize;
        }
    }
}

impl Layouts {
    pub(crate) fn new(stream: &StreamDef) -> Layouts {
        Layouts {
            cubes: stream
                .rollups
                .cubes
                .iter()
                .map(|c| CubeLayout::new(stream, c))
                .collect(),
            device: DeviceLayout::new(stream),
            ncols: stream.columns.len(),
            window_ms: stream.window_ms,
            presence: Presence::default(),
            cube_sig: Vec::new(),
        }
        .with_presence(stream)
    }

    fn with_presence(mut self, stream: &StreamDef) -> Layouts {
        let mut offset = 0;
        for c in &self.cubes {
            let dims: Vec<DimSource> = c
                .dim_sources
                .iter()
                .copied()
                .filter(|d| !matches!(d, DimSource::Attribute(_)))
                .collect();
            let cards: Vec<u32> = dims
                .iter()
                .map(|d| match *d {
                    DimSource::Column(i) => {
                        stream.columns.get(i).map_or(1, |col| match &col.kind {
                            crate::schema::ColumnKind::Categorical { categories } => {
                                categories.len().max(1) as u32
                            }
                            crate::schema::ColumnKind::Numeric { .. } => 1,
                        })
                    }
                    _ => 24,
                })
                .collect();
            let bits = cards.iter().map(|&c| c as usize).product::<usize>();
            let sig = if bits > MAX_SIGNATURE_BITS {
                None
            } else if let Some(i) = self.presence.sigs.iter().position(|s| s.dims == dims) {
                Some(i)
            } else {
                self.presence.sigs.push(Signature {
                    dims,
                    cards,
                    offset,
                    bits,
                });
                offset += bits;
                Some(self.presence.sigs.len() - 1)
            };
            self.cube_sig.push(sig);
        }
        self.presence.words = offset.div_ceil(64);
        self
    }

    /// True when the stream keeps any rollup.
    pub(crate) fn any(&self) -> bool {
        !self.cubes.is_empty() || self.device.is_some()
    }
}

/// One stream's fleet state.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StreamRollups {
    pub cubes: Vec<Cube>,
    /// Month (its first day) → rows per device id.
    pub months: BTreeMap<i64, Vec<u32>>,
    /// Month (its first day) → presence bits per device id (`presence.words` each).
    pub presence: BTreeMap<i64, Vec<u64>>,
    /// Per device id: timestamp of its latest row (`i64::MIN`: none).
    pub last_ts: Vec<i64>,
    /// Per device id: its latest row's values (`ncols` each).
    pub last_vals: Vec<i64>,
    /// Distinct devices per (month, presence bit, attribute value), derived from
    /// `presence`: built on first use by a question, then kept up to date as bits flip.
    pub counts: Counts,
}

/// Distinct devices per (month, presence bit, device-attribute value): the number of devices
/// whose bit is set in the month, per value of each attribute, and in all. Derived from the
/// presence bits of the database's fleet state only (never written to a file: the bits of
/// several files merge by OR, counts would not), so it is exact whatever the files.
///
/// Kept exact by construction: a count changes only when a device's bit changes, by one, for
/// that device's attribute values (fixed once it has rows). A bit set 0 → 1 adds one
/// ([`StreamRollups::mark_presence`]); a retraction removes the device's set bits before
/// recomputing them; a merge of files (open, rebuild) drops the counts, which the next
/// question rebuilds from the merged bits.
#[derive(Debug, Clone, Default)]
pub(crate) struct PresenceCounts {
    /// Bits per device-month (`presence.words × 64`).
    pub nbits: usize,
    /// Month (its first day) → per attribute (its index; index 4 counts every device under
    /// code 0): counts at `code × nbits + bit`.
    pub months: BTreeMap<i64, [Vec<u32>; 5]>,
}

/// The slot of [`PresenceCounts`] that counts every device (no attribute).
pub(crate) const ALL_DEVICES: usize = 4;

impl PresenceCounts {
    /// Counts the bits set in `presence` (`words` per device) under each device's attributes.
    pub(crate) fn build(
        words: usize,
        attrs: &AttrTable,
        presence: &BTreeMap<i64, Vec<u64>>,
    ) -> PresenceCounts {
        let mut c = PresenceCounts {
            nbits: words * 64,
            months: BTreeMap::new(),
        };
        if words == 0 {
            return c;
        }
        let n = c.nbits;
        for (&month, bits) in presence {
            let mut slots: [Vec<u32>; 5] = Default::default();
            for (a, slot) in slots.iter_mut().enumerate() {
                let values = if a == ALL_DEVICES {
                    1
                } else {
                    attrs.values(a).len()
                };
                *slot = vec![0; values * n];
            }
            for (d, dev) in bits.chunks_exact(words).enumerate() {
                if dev.iter().all(|&x| x == 0) {
                    continue;
                }
                let codes = attrs.device(d as u32).codes;
                let base = [
                    codes[0] as usize * n,
                    codes[1] as usize * n,
                    codes[2] as usize * n,
                    codes[3] as usize * n,
                    0,
                ];
                for (wi, &word) in dev.iter().enumerate() {
                    let mut x = word;
                    while x != 0 {
                        let b = wi * 64 + x.trailing_zeros() as usize;
                        x &= x - 1;
                        for (slot, &at) in slots.iter_mut().zip(&base) {
                            let i = at + b;
                            if slot.len() <= i {
                                slot.resize((i / n + 1) * n, 0);
                            }
                            slot[i] += 1;
                        }
                    }
                }
            }
            c.months.insert(month, slots);
        }
        c
    }

    /// Adds `delta` (±1) for one device's bit `bit` of `month`, under its attribute `codes`.
    pub(crate) fn add(&mut self, month: i64, bit: usize, codes: &[u32; 4], delta: i32) {
        let n = self.nbits;
        let m = self.months.entry(month).or_default();
        for (a, slot) in m.iter_mut().enumerate() {
            let code = if a == ALL_DEVICES {
                0
            } else {
                codes[a] as usize
            };
            let i = code * n + bit;
            if slot.len() <= i {
                slot.resize((code + 1) * n, 0);
            }
            slot[i] = slot[i].wrapping_add_signed(delta);
        }
    }

    /// Devices whose `bit` is set in `month` with attribute `attr` = `code`
    /// ([`ALL_DEVICES`]: every device, code 0).
    pub(crate) fn get(&self, month: i64, bit: usize, attr: usize, code: u32) -> u32 {
        self.months
            .get(&month)
            .and_then(|m| m.get(attr))
            .and_then(|v| v.get(code as usize * self.nbits + bit))
            .copied()
            .unwrap_or(0)
    }
}

/// [`PresenceCounts`], built on first use. Derived data: it takes no part in comparisons of
/// fleet states (two states with the same bits have the same counts).
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts(OnceLock<PresenceCounts>);

impl PartialEq for Counts {
    fn eq(&self, _: &Counts) -> bool {
        true
    }
}

impl Counts {
    /// The counts, built from `presence` under `attrs` on first use.
    pub(crate) fn get_or_build(
        &self,
        words: usize,
        attrs: &AttrTable,
        presence: &BTreeMap<i64, Vec<u64>>,
    ) -> &PresenceCounts {
        self.0
            .get_or_init(|| PresenceCounts::build(words, attrs, presence))
    }

    /// The counts when built.
    #[cfg(test)]
    pub(crate) fn built(&self) -> Option<&PresenceCounts> {
        self.0.get()
    }
}

impl StreamRollups {
    pub(crate) fn new(layouts: &Layouts) -> Self {
        StreamRollups {
            cubes: vec![Cube::default(); layouts.cubes.len()],
            ..StreamRollups::default()
        }
    }

    /// Adds one row of `device` (attributes `attrs`): to the cubes, the month counts and the
    /// latest rows.
    pub(crate) fn add_row(
        &mut self,
        layouts: &Layouts,
        device: u32,
        attrs: &DeviceAttrs,
        ts: i64,
        vals: &[i64],
    ) {
        if !layouts.any() {
            return;
        }
        add_to_cubes(layouts, &mut self.cubes, attrs, ts, vals);
        self.add_counts(layouts, device, attrs, ts, vals);
    }

    /// Adds one row to the month counts, presence bits and latest rows only (its cube cells
    /// go to the memtable's delta, see [`add_to_cubes`]). `attrs` are the device's (they key
    /// the distinct-device counts, when built).
    pub(crate) fn add_counts(
        &mut self,
        layouts: &Layouts,
        device: u32,
        attrs: &DeviceAttrs,
        ts: i64,
        vals: &[i64],
    ) {
        if !layouts.any() {
            return;
        }
        let day = calendar::day_of(ts);
        let d = device as usize;
        let month = calendar::Grain::Month.start(day);
        let counts = self.months.entry(month).or_default();
        if counts.len() <= d {
            counts.resize(d + 1, 0);
        }
        counts[d] += 1;
        self.mark_presence(layouts, device, attrs, month, ts, vals);
        self.note_last(layouts.ncols, device, ts, vals);
    }

    /// [`StreamRollups::add_counts`] of a batch of rows (row `i`: `rows[i * ncols..]` of
    /// `devices[i]` at `ts[i]`, on day `days[i]`): the month of a run of rows on one day is
    /// computed once, and the month's counts and presence bits are looked up once per run of
    /// rows in one month rather than once per row. `attrs` holds the devices' attributes
    /// (they key the distinct-device counts, when built).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_counts_rows(
        &mut self,
        layouts: &Layouts,
        attrs: &AttrTable,
        devices: &[u32],
        ts: &[i64],
        days: &[i64],
        rows: &[i64],
        ncols: usize,
    ) {
        if !layouts.any() || ncols == 0 {
            return;
        }
        let w = layouts.presence.words;
        let StreamRollups {
            months,
            presence,
            last_ts,
            last_vals,
            counts: built,
            ..
        } = self;
        let mut built = built.0.get_mut();
        let mut i = 0;
        let n = devices.len().min(ts.len()).min(days.len());
        while i < n {
            let month = calendar::Grain::Month.start(days[i]);
            let counts = months.entry(month).or_default();
            let mut bits = (w > 0).then(|| presence.entry(month).or_default());
            let mut day = days[i];
            while i < n {
                if days[i] != day {
                    if calendar::Grain::Month.start(days[i]) != month {
                        break;
                    }
                    day = days[i];
                }
                let (device, t) = (devices[i], ts[i]);
                let vals = rows.get(i * ncols..(i + 1) * ncols).unwrap_or(&[]);
                let d = device as usize;
                if counts.len() <= d {
                    counts.resize(d + 1, 0);
                }
                counts[d] += 1;
                if let Some(bits) = bits.as_deref_mut() {
                    if bits.len() < (d + 1) * w {
                        bits.resize((d + 1) * w, 0);
                    }
                    for sig in &layouts.presence.sigs {
                        let b = sig.bit(t, vals);
                        let (word, mask) = (&mut bits[d * w + b / 64], 1u64 << (b % 64));
                        if *word & mask == 0 {
                            *word |= mask;
                            // A bit set 0 -> 1 adds the device to the counts, when built.
                            if let Some(c) = built.as_deref_mut() {
                                c.add(month, b, &attrs.device(device).codes, 1);
                            }
                        }
                    }
                }
                note_last(last_ts, last_vals, layouts.ncols, device, t, vals);
                i += 1;
            }
        }
    }

    /// Sets the presence bits of one row of `device` in `month`; a bit that was clear adds
    /// the device to the distinct-device counts, when built.
    fn mark_presence(
        &mut self,
        layouts: &Layouts,
        device: u32,
        attrs: &DeviceAttrs,
        month: i64,
        ts: i64,
        vals: &[i64],
    ) {
        let (d, w) = (device as usize, layouts.presence.words);
        if w == 0 {
            return;
        }
        let bits = self.presence.entry(month).or_default();
        if bits.len() < (d + 1) * w {
            bits.resize((d + 1) * w, 0);
        }
        let mut counts = self.counts.0.get_mut();
        for sig in &layouts.presence.sigs {
            let b = sig.bit(ts, vals);
            let (word, mask) = (&mut bits[d * w + b / 64], 1u64 << (b % 64));
            if *word & mask == 0 {
                *word |= mask;
                if let Some(c) = counts.as_deref_mut() {
                    c.add(month, b, &attrs.codes, 1);
                }
            }
        }
    }

    fn note_last(&mut self, ncols: usize, device: u32, ts: i64, vals: &[i64]) {
        note_last(
            &mut self.last_ts,
            &mut self.last_vals,
            ncols,
            device,
            ts,
            vals,
        );
    }

    /// Takes rows of `device` back out: each row's cube cells and month count; then
    /// recomputes the device's presence bits and latest row from `remaining`, every row of
    /// the device still held (in any order). False when a row was not held: the state is
    /// then inconsistent and must be rebuilt from the files.
    pub(crate) fn retract_rows<'r>(
        &mut self,
        layouts: &Layouts,
        device: u32,
        attrs: &DeviceAttrs,
        retracted: impl IntoIterator<Item = (i64, &'r [i64])>,
        remaining: impl IntoIterator<Item = (i64, &'r [i64])>,
    ) -> bool {
        let d = device as usize;
        for (ts, vals) in retracted {
            if !retract_from_cubes(layouts, &mut self.cubes, attrs, ts, vals)
                || !self.retract_count(device, ts)
            {
                return false;
            }
        }
        // Presence bits and the latest row cannot be taken apart: recount them (the
        // device's bits leave the distinct-device counts, and those of its remaining rows
        // come back as they are set again).
        let w = layouts.presence.words;
        let mut counts = self.counts.0.get_mut();
        for (&month, bits) in self.presence.iter_mut() {
            if let Some(b) = bits.get_mut(d * w..(d + 1) * w) {
                if let Some(c) = counts.as_deref_mut() {
                    for (wi, &word) in b.iter().enumerate() {
                        let mut x = word;
                        while x != 0 {
                            let bit = wi * 64 + x.trailing_zeros() as usize;
                            x &= x - 1;
                            c.add(month, bit, &attrs.codes, -1);
                        }
                    }
                }
                b.fill(0);
            }
        }
        if let Some(t) = self.last_ts.get_mut(d) {
            *t = i64::MIN;
        }
        for (ts, vals) in remaining {
            let month = calendar::Grain::Month.start(calendar::day_of(ts));
            self.mark_presence(layouts, device, attrs, month, ts, vals);
            self.note_last(layouts.ncols, device, ts, vals);
        }
        true
    }

    /// Takes one row of `device` at `ts` out of its month count; false when none was held.
    fn retract_count(&mut self, device: u32, ts: i64) -> bool {
        let month = calendar::Grain::Month.start(calendar::day_of(ts));
        match self
            .months
            .get_mut(&month)
            .and_then(|c| c.get_mut(device as usize))
        {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Merges cubes of the same layouts (a flushed memtable's delta) into these.
    pub(crate) fn merge_cubes(&mut self, layouts: &Layouts, cubes: &[Cube]) {
        for ((layout, dst), src) in layouts.cubes.iter().zip(&mut self.cubes).zip(cubes) {
            dst.merge(layout, src);
        }
    }

    /// Merges another state of the same stream, taking it whole when this one is still
    /// empty (opening a database: the first rollup file of a stream costs a move, not a
    /// merge).
    pub(crate) fn absorb(&mut self, layouts: &Layouts, other: StreamRollups) {
        let empty = self.cubes.iter().all(|c| c.day_count() == 0)
            && self.months.is_empty()
            && self.presence.is_empty()
            && self.last_ts.is_empty()
            && self.last_vals.is_empty();
        if empty && other.cubes.len() == self.cubes.len() {
            *self = other;
            // Built for this state on first use, like after a merge.
            self.counts = Counts::default();
        } else {
            self.merge(layouts, &other);
        }
    }

    /// Merges another state of the same stream (e.g. a segment's rollup file).
    pub(crate) fn merge(&mut self, layouts: &Layouts, other: &StreamRollups) {
        for ((layout, dst), src) in layouts.cubes.iter().zip(&mut self.cubes).zip(&other.cubes) {
            dst.merge(layout, src);
        }
        for (month, counts) in &other.months {
            let dst = self.months.entry(*month).or_default();
            if dst.len() < counts.len() {
                dst.resize(counts.len(), 0);
            }
            for (d, c) in dst.iter_mut().zip(counts) {
                *d += c;
            }
        }
        // OR-merged bits: the distinct-device counts are rebuilt on next use.
        self.counts = Counts::default();
        for (month, bits) in &other.presence {
            let dst = self.presence.entry(*month).or_default();
            if dst.len() < bits.len() {
                dst.resize(bits.len(), 0);
            }
            for (d, b) in dst.iter_mut().zip(bits) {
                *d |= b;
            }
        }
        let ncols = layouts.ncols;
        for (d, &ts) in other.last_ts.iter().enumerate() {
            if ts != i64::MIN {
                let vals = other
                    .last_vals
                    .get(d * ncols..(d + 1) * ncols)
                    .unwrap_or(&[]);
                self.note_last(ncols, d as u32, ts, vals);
            }
        }
    }
}

/// Makes the row of `device` at `ts` its latest row when it is newer than the one held.
fn note_last(
    last_ts: &mut Vec<i64>,
    last_vals: &mut Vec<i64>,
    ncols: usize,
    device: u32,
    ts: i64,
    vals: &[i64],
) {
    let d = device as usize;
    if last_ts.len() <= d {
        last_ts.resize(d + 1, i64::MIN);
        last_vals.resize((d + 1) * ncols, 0);
    }
    if ts > last_ts[d] {
        last_ts[d] = ts;
        for (dst, src) in last_vals[d * ncols..(d + 1) * ncols]
            .iter_mut()
            .zip(vals.iter().chain(std::iter::repeat(&0)))
        {
            *dst = *src;
        }
    }
}

/// Adds one row to `cubes` (one per declared cube; sized on first use).
pub(crate) fn add_to_cubes(
    layouts: &Layouts,
    cubes: &mut Vec<Cube>,
    attrs: &DeviceAttrs,
    ts: i64,
    vals: &[i64],
) {
    if layouts.cubes.is_empty() {
        return;
    }
    if cubes.len() < layouts.cubes.len() {
        cubes.resize_with(layouts.cubes.len(), Cube::default);
    }
    let day = calendar::day_of(ts);
    for (layout, cube) in layouts.cubes.iter().zip(cubes.iter_mut()) {
        let key = cube_key(layout, attrs, ts, vals);
        cube.add_row(layout, day, key, vals, attrs.capacity_kg);
    }
}

/// Takes one row, added before with [`add_to_cubes`], back out of `cubes`; false when some
/// cube did not hold it (the cubes are then as before only for the cubes before it: the
/// caller's state is inconsistent and must be rebuilt from files).
pub(crate) fn retract_from_cubes(
    layouts: &Layouts,
    cubes: &mut [Cube],
    attrs: &DeviceAttrs,
    ts: i64,
    vals: &[i64],
) -> bool {
    let day = calendar::day_of(ts);
    layouts
        .cubes
        .iter()
        .zip(cubes.iter_mut())
        .all(|(layout, cube)| {
            let key = cube_key(layout, attrs, ts, vals);
            cube.retract_row(layout, day, key, vals, attrs.capacity_kg)
        })
}

/// The packed key of a row's cell in the cube of `layout` (computed the same way, a
/// dimension at a time, by [`Rollups::add_memtable_rows`]).
fn cube_key(layout: &cube::CubeLayout, attrs: &DeviceAttrs, ts: i64, vals: &[i64]) -> u64 {
    let mut key = 0u64;
    for (i, src) in layout.dim_sources.iter().enumerate() {
        let c = match *src {
            DimSource::Column(i) => vals.get(i).copied().unwrap_or(0) as u32,
            DimSource::Attribute(a) => attrs.codes[a],
            DimSource::Hour => calendar::hour_of(ts),
        };
        key |= u64::from(c & 0xFFFF) << (16 * i);
    }
    key
}

/// Every stream's fleet state and the attribute table they are keyed by.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rollups {
    pub attrs: AttrTable,
    pub streams: Vec<StreamRollups>,
}

impl Rollups {
    pub(crate) fn new(layouts: &[Layouts]) -> Self {
        Rollups {
            attrs: AttrTable::default(),
            streams: layouts.iter().map(StreamRollups::new).collect(),
        }
    }

    /// Adds one row of `stream` held in a memtable: its cube cells to the memtable's
    /// `delta`, its month count and latest row here.
    pub(crate) fn add_memtable_row(
        &mut self,
        layouts: &[Layouts],
        delta: &mut Vec<Cube>,
        stream: usize,
        device: u32,
        ts: i64,
        vals: &[i64],
    ) {
        let attrs = self.attrs.device(device);
        if let (Some(l), Some(s)) = (layouts.get(stream), self.streams.get_mut(stream)) {
            add_to_cubes(l, delta, &attrs, ts, vals);
            s.add_counts(l, device, &attrs, ts, vals);
        }
    }

    /// Adds a batch of rows of `stream` held in a memtable, as [`Rollups::add_memtable_row`]
    /// does for each: row `i` is `rows[i * ncols..]` of device `devices[i]` at `ts[i]`.
    /// What every cube needs of a row (its day, hour and device attributes) is computed once
    /// per row; then cube by cube rather than row by row, so one cube's cells stay in cache
    /// for the batch.
    pub(crate) fn add_memtable_rows(
        &mut self,
        layouts: &[Layouts],
        delta: &mut Vec<Cube>,
        stream: usize,
        devices: &[u32],
        ts: &[i64],
        rows: &[i64],
    ) {
        let (Some(l), Some(s)) = (layouts.get(stream), self.streams.get_mut(stream)) else {
            return;
        };
        let n = devices.len();
        let ncols = rows.len() / n.max(1);
        if ncols == 0 || ts.len() != n || !l.any() {
            return;
        }
        let days: Vec<i64> = ts.iter().map(|&t| calendar::day_of(t)).collect();
        if !l.cubes.is_empty() {
            let attrs: Vec<DeviceAttrs> = devices.iter().map(|&d| self.attrs.device(d)).collect();
            let caps: Vec<f64> = attrs.iter().map(|a| a.capacity_kg).collect();
            let hours: Vec<u32> = if l
                .cubes
                .iter()
                .any(|c| c.dim_sources.contains(&DimSource::Hour))
            {
                ts.iter().map(|&t| calendar::hour_of(t)).collect()
            } else {
                vec![0; n]
            };
            if delta.len() < l.cubes.len() {
                delta.resize_with(l.cubes.len(), Cube::default);
            }
            let mut keys = vec![0u64; n];
            for (layout, cube) in l.cubes.iter().zip(delta.iter_mut()) {
                // The keys of `cube_key`, one dimension at a time over the batch.
                keys.fill(0);
                for (i, src) in layout.dim_sources.iter().enumerate() {
                    let shift = 16 * i;
                    match *src {
                        DimSource::Column(c) => {
                            for (k, vals) in keys.iter_mut().zip(rows.chunks_exact(ncols)) {
                                let v = vals.get(c).copied().unwrap_or(0) as u32;
                                *k |= u64::from(v & 0xFFFF) << shift;
                            }
                        }
                        DimSource::Attribute(a) => {
                            for (k, at) in keys.iter_mut().zip(&attrs) {
                                *k |= u64::from(at.codes[a] & 0xFFFF) << shift;
                            }
                        }
                        DimSource::Hour => {
                            for (k, &h) in keys.iter_mut().zip(&hours) {
                                *k |= u64::from(h & 0xFFFF) << shift;
                            }
                        }
                    }
                }
                cube.add_rows(layout, &days, &keys, rows, ncols, &caps);
            }
        }
        s.add_counts_rows(l, &self.attrs, devices, ts, &days, rows, ncols);
    }

    /// Takes every row of an erased `device` in `stream` out of the fleet state: the rows
    /// its segments hold (cells here) and those its memtable held (cells in `delta`, the
    /// memtable's cubes; month counts here). Its presence bits and latest row are cleared.
    /// False when some row was not held: the state must then be rebuilt from the files.
    pub(crate) fn retract_device(
        &mut self,
        layouts: &[Layouts],
        stream: usize,
        device: u32,
        segment_rows: &[(i64, Vec<i64>)],
        memtable_rows: &[(i64, Vec<i64>)],
        delta: &mut [Cube],
    ) -> bool {
        let attrs = self.attrs.device(device);
        let (Some(l), Some(s)) = (layouts.get(stream), self.streams.get_mut(stream)) else {
            return true;
        };
        if !l.any() {
            return true;
        }
        for (ts, vals) in memtable_rows {
            if !retract_from_cubes(l, delta, &attrs, *ts, vals) || !s.retract_count(device, *ts) {
                return false;
            }
        }
        s.retract_rows(
            l,
            device,
            &attrs,
            segment_rows.iter().map(|(t, v)| (*t, v.as_slice())),
            std::iter::empty(),
        )
    }

    /// True when `device` has rows in any stream that keeps rollups.
    pub(crate) fn has_rows(&self, device: u32) -> bool {
        self.streams.iter().any(|s| {
            s.last_ts
                .get(device as usize)
                .is_some_and(|&t| t != i64::MIN)
        })
    }
}

/// The first rollup-relevant attribute in which `new` differs from `old`, if any.
pub(crate) fn changed_attribute(old: &DeviceInfo, new: &DeviceInfo) -> Option<Attribute> {
    Attribute::ALL
        .into_iter()
        .find(|&a| attribute_value(old, a) != attribute_value(new, a))
}

#[cfg(test)]
mod tests;
