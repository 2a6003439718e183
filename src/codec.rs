//! Column codecs: how a chunk of `i64` values (one column of one device in a segment) is
//! turned into bytes and back.
//!
//! Every stored column is a slice of `i64`: timestamps in ms, categorical codes, numeric values
//! scaled to integers. [`encode`] makes one statistics pass over the values (min, max, GCD,
//! ranges of deltas and delta-of-deltas, runs, distinct values up to a small cap), asks every
//! codec for its size from those statistics, and writes the smallest. The estimates of the
//! bit-packed codecs are exact (the unit tests check it). zstd cannot be estimated, so it is
//! tried for real, only when the best estimate is still above 4 bits per value and the chunk
//! holds at least 64 values, and kept only when it saves at least an eighth of the best
//! estimate (it decodes several times slower than bit-unpacking).
//!
//! A chunk is a one-byte codec tag followed by the codec's payload. It is self-delimiting given
//! the value count `n`, which the reader knows from the segment's index. Tag values are part of
//! the on-disk format: they are never reused or renumbered. Tag 0 is never written, so a zeroed
//! region is never a valid chunk.
//!
//! | tag | codec | payload after the tag |
//! | --- | --- | --- |
//! | 1 | Constant | `zz(v)` (also used for `n = 0`, with `v = 0`) |
//! | 2 | FOR bit-pack | `block(values)` |
//! | 3 | Delta bit-pack | `zz(v0)`, `block(deltas)`: `n - 1` wrapping deltas |
//! | 4 | Delta-of-delta | `zz(v0)`, `zz(v1 - v0)`, `block(dods)`: `n - 2` wrapping delta-of-deltas |
//! | 5 | Run length | `varint(runs)`, `block(run values)`, `block(run length - 1)` |
//! | 6 | Dictionary | `varint(k)`, `zz(d0)`, `varint(d[i] - d[i-1])` for `i` in `1..k` (sorted distinct values), indices packed at `bit_width(k - 1)` bits |
//! | 7 | zstd | `mode` byte, `varint(frame length)`, zstd frame (level 3) of `n` varints: mode 0 `zz(v)`, mode 1 `zz(wrapping delta)` (the first from 0) |
//! | 8 | Raw | `n` × 8 bytes, little-endian |
//! | 10 | Classed | `block'(values)`: see [`classed`]: each offset from the minimum split into its Huffman-coded bit width and its remaining bits |
//! | 11 | Delta classed | `zz(v0)`, `block'(deltas)`: the same over `n - 1` wrapping deltas |
//! | 9 | Huffman dictionary | `varint(k)`, the sorted distinct values as in Dictionary, `k` code lengths as 4-bit nibbles (low nibble first, `ceil(k / 2)` bytes), `varint(stream bytes)`, then the canonical Huffman codes of the indices, least significant bit first |
//!
//! Notation: `zz(x)` is the LEB128 varint of the zigzag of `x`; `block(xs)` is a frame of
//! reference block: `zz(min)`, `varint(gcd)` (≥ 1), a width byte `w` (0..=64), then
//! `ceil(len * w / 8)` bytes holding each `(x - min) / gcd` in `w` bits, little-endian,
//! packed least significant bit first. All differences are wrapping `i64` arithmetic, so every
//! `i64` sequence (extremes included) round-trips.
//!
//! Decoding never panics and never allocates more than O(n): every claimed size is checked
//! against `n` and against the bytes present before anything is reserved. Malformed input is a
//! [`CodecError`] naming the offset within the chunk.
//!
//! # Measurements, and why pco is not a codec here
//!
//! Bits per value of hearth's pick and of the `pco` crate (pcodec 1.1.0, default config;
//! "unframed" is its standalone size less the framing an empty input costs, what an embedded
//! chunk would pay) on synthetic washing-machine data (`codec/testdata.rs`: 2 Hz samples
//! through wash cycles, one sample in 20 a few ms late; cycle rows 1 to 3 days apart), in
//! chunks of 50, 1,000 and 10,000 values. Reproduce with the commands in `codec/probe.rs`
//! (hearth only: `cargo test --release --lib codec::probe -- --ignored --nocapture`).
//!
//! | column | n = 50: hearth / pco | n = 1,000 | n = 10,000 |
//! | --- | ---: | ---: | ---: |
//! | ts, 2 Hz with jitter | 4.57 / 8.89 | 1.62 / 3.02 | 1.05 / 0.46 |
//! | phase (categorical) | 0.35 / 2.91 | 0.06 / 0.62 | 0.02 / 0.04 |
//! | drum_rpm | 4.53 / 7.51 | 3.33 / 4.17 | 2.83 / 5.23 |
//! | water_temp_c ×10 | 2.93 / 5.23 | 2.75 / 2.44 | 3.00 / 1.58 |
//! | power_w | 9.28 / 11.39 | 9.64 / 8.27 | 12.00 / 8.95 |
//! | vibration_g ×100 | 4.74 / 6.96 | 4.67 / 4.58 | 5.09 / 4.92 |
//! | **samples' numeric columns, sum** | **21.48 / 31.09** | **20.39 / 19.46** | **22.92 / 20.68** |
//! | cycle start_ts (whole s) | 20.14 / 27.04 | 18.10 / 17.97 | 18.01 / 17.47 |
//! | load_kg ×10 | 6.72 / 8.97 | 6.03 / 6.14 | 6.00 / 6.02 |
//! | energy_wh | 11.84 / 13.95 | 11.04 / 11.14 | 11.00 / 10.79 |
//! | fill_time_s | 6.72 / 8.98 | 6.03 / 6.03 | 6.00 / 5.72 |
//!
//! Decoding (`cargo bench --bench codec`, this 2-core machine): bit-packed codecs about
//! 1 ns per value (FOR, delta, dictionary), run length 0.15 to 0.2, zstd 3 to 5.5; pco 3 to 7
//! ns per value at n ≥ 1,000 and 20 to 40 at n = 50 (a fixed cost per chunk).
//!
//! pco is 4.6% smaller on the samples' numeric columns at n = 1,000 and 9.8% at n = 10,000
//! (its entropy coding wins on the noisy ones: water_temp, power_w), but 45% larger at n = 50,
//! decodes 3 to 8 times slower than bit-unpacking, needs Rust 1.87 (hearth declares 1.80),
//! and adds about 25 s to a clean release build. Below the 10% bar where it is ahead at all,
//! so hearth does not depend on it; worth measuring again if compacted chunks turn out to hold
//! well over 10,000 values.

// Explicit paths so that `benches/codec.rs` can compile this module from its source (the
// module is crate-private) with the submodules still found.
#[path = "codec/bits.rs"]
mod bits;
#[path = "codec/classed.rs"]
mod classed;
#[path = "codec/huffman.rs"]
mod huffman;
#[cfg(test)]
#[path = "codec/probe.rs"]
mod probe;
#[cfg(test)]
#[path = "codec/testdata.rs"]
mod testdata;
#[cfg(test)]
#[path = "codec/tests.rs"]
mod tests;

use std::cell::RefCell;

use bits::{bit_width, gcd, pack, packed_len, put_varint, unpack, varint_len, zigzag, Reader};

/// Hint about what the column holds; codecs are still chosen by measured estimate. The hint
/// only orders the codecs when two estimates tie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnHint {
    Timestamp,
    Numeric,
    Categorical,
}

/// A chunk that cannot be decoded: what was wrong, and where, relative to the chunk start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset} of the chunk")]
pub(crate) struct CodecError {
    pub offset: usize,
    pub what: &'static str,
}

/// The codecs, by on-disk tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Codec {
    Constant = 1,
    For = 2,
    Delta = 3,
    DeltaOfDelta = 4,
    RunLength = 5,
    Dictionary = 6,
    Zstd = 7,
    Raw = 8,
    Huffman = 9,
    Classed = 10,
    DeltaClassed = 11,
}

impl Codec {
    /// Every codec, in tag order.
    #[cfg(test)]
    pub(crate) const ALL: [Codec; 11] = [
        Codec::Constant,
        Codec::For,
        Codec::Delta,
        Codec::DeltaOfDelta,
        Codec::RunLength,
        Codec::Dictionary,
        Codec::Zstd,
        Codec::Raw,
        Codec::Huffman,
        Codec::Classed,
        Codec::DeltaClassed,
    ];

    fn from_tag(tag: u8) -> Option<Codec> {
        Some(match tag {
            1 => Codec::Constant,
            2 => Codec::For,
            3 => Codec::Delta,
            4 => Codec::DeltaOfDelta,
            5 => Codec::RunLength,
            6 => Codec::Dictionary,
            7 => Codec::Zstd,
            8 => Codec::Raw,
            9 => Codec::Huffman,
            10 => Codec::Classed,
            11 => Codec::DeltaClassed,
            _ => return None,
        })
    }
}

/// Most distinct values the dictionary codec considers (indices of at most 6 bits).
const DICT_CAP: usize = 64;
/// zstd is tried only for chunks of at least this many values...
const ZSTD_MIN_VALUES: usize = 64;
/// ...and only when the best estimate is above this many bits per value.
const ZSTD_MIN_BITS_PER_VALUE: usize = 4;
/// zstd compression level.
const ZSTD_LEVEL: i32 = 3;
/// zstd decodes several times slower than bit-unpacking, so it must save at least
/// `1 / ZSTD_MIN_SAVING` of the best estimate to be picked.
const ZSTD_MIN_SAVING: usize = 8;

/// Appends an encoded chunk for `values` to `out`: a one-byte codec tag, then the codec's
/// payload. The chunk is self-delimiting given the value count (the reader knows `n`).
pub(crate) fn encode(values: &[i64], hint: ColumnHint, out: &mut Vec<u8>) {
    let stats = Stats::collect(values);
    if values.is_empty() {
        // Raw would be one byte shorter; an empty chunk is Constant by definition.
        return encode_with_stats(Codec::Constant, values, &stats, out);
    }
    // The fast codecs (plain bit-packing family) by estimate.
    let mut fast = Codec::Raw;
    let mut fast_len = raw_len(values.len());
    for &codec in preference(hint) {
        if let Some(len) = estimate_full(codec, values, &stats) {
            if len < fast_len {
                fast = codec;
                fast_len = len;
            }
        }
    }
    // The entropy-coded codecs: taken whenever they are smaller (they decode about three
    // times slower than bit-packing, still a few nanoseconds per value).
    let mut best = fast;
    let mut best_len = fast_len;
    for codec in [Codec::Huffman, Codec::Classed, Codec::DeltaClassed] {
        if let Some(len) = estimate_full(codec, values, &stats) {
            if len < best_len {
                best = codec;
                best_len = len;
            }
        }
    }
    if values.len() >= ZSTD_MIN_VALUES
        && fast_len.saturating_mul(8) > ZSTD_MIN_BITS_PER_VALUE.saturating_mul(values.len())
    {
        if let Some(payload) = zstd_payload(values, &stats) {
            if 1 + payload.len() < fast_len - fast_len / ZSTD_MIN_SAVING
                && 1 + payload.len() < best_len
            {
                out.push(Codec::Zstd as u8);
                out.extend_from_slice(&payload);
                return;
            }
        }
    }
    encode_with_stats(best, values, &stats, out);
}

/// The exact size of `codec` for `values`: from the statistics, or for the magnitude-class
/// codecs from a histogram pass of their own.
fn estimate_full(codec: Codec, values: &[i64], s: &Stats) -> Option<usize> {
    match codec {
        Codec::Classed => classed_plan(codec, values, s).map(|p| 1 + p.len()),
        Codec::DeltaClassed => {
            classed_plan(codec, values, s).map(|p| 1 + varint_len(zigzag(s.values.first)) + p.len())
        }
        _ => s.estimate(codec),
    }
}

/// The wrapping deltas of `values`.
fn deltas(values: &[i64]) -> impl Iterator<Item = i64> + Clone + '_ {
    values.windows(2).map(|w| match w {
        [a, b] => b.wrapping_sub(*a),
        _ => 0,
    })
}

fn classed_plan(codec: Codec, values: &[i64], s: &Stats) -> Option<classed::Plan> {
    match codec {
        Codec::Classed => classed::Plan::new(values.iter().copied(), s.values.min, s.values.gcd),
        Codec::DeltaClassed if values.len() >= 2 => {
            classed::Plan::new(deltas(values), s.deltas.min, s.deltas.gcd)
        }
        _ => None,
    }
}

/// Appends a chunk chosen without search: Constant when all values are equal, else frame of
/// reference bit-packing. One cheap pass; for the write-ahead log, where encoding speed
/// matters more than size. Any reader of [`decode`] reads it.
pub(crate) fn encode_fast(values: &[i64], out: &mut Vec<u8>) {
    let mut s = SeqStats::EMPTY;
    for &v in values {
        s.push(v);
    }
    if s.min == s.max {
        out.push(Codec::Constant as u8);
        put_varint(out, zigzag(s.min));
    } else {
        out.push(Codec::For as u8);
        put_block(values.iter().copied(), &s, out);
    }
}

/// Decodes a chunk of `n` values from the front of `input`, appending them to `out`.
/// Returns the number of bytes consumed. On error `out` is left as it was.
pub(crate) fn decode(input: &[u8], n: usize, out: &mut Vec<i64>) -> Result<usize, CodecError> {
    let start = out.len();
    let mut r = Reader::new(input);
    // `n` comes from the segment index, which may be damaged too: fail, never abort.
    out.try_reserve(n)
        .map_err(|_| r.err("value count too large to allocate"))?;
    let result = decode_into(&mut r, n, out);
    match result {
        Ok(()) if out.len() - start == n => Ok(r.pos()),
        Ok(()) => {
            out.truncate(start);
            Err(r.err("decoded value count differs from the expected count"))
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Candidate order (ties go to the earlier codec): cheap-to-decode first, then what the
/// column kind usually wants.
fn preference(hint: ColumnHint) -> &'static [Codec] {
    use Codec::*;
    match hint {
        ColumnHint::Timestamp => &[Constant, DeltaOfDelta, Delta, For, RunLength, Dictionary],
        ColumnHint::Numeric => &[Constant, For, Delta, DeltaOfDelta, Dictionary, RunLength],
        ColumnHint::Categorical => &[Constant, For, Dictionary, RunLength, Delta, DeltaOfDelta],
    }
}

fn raw_len(n: usize) -> usize {
    n.saturating_mul(8).saturating_add(1)
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Min, max and GCD of a sequence, gathered one item at a time. The GCD is that of the
/// distances to the first item, which equals the GCD of the distances to the minimum.
#[derive(Clone, Copy, Debug)]
struct SeqStats {
    count: usize,
    first: i64,
    min: i64,
    max: i64,
    gcd: u64,
}

impl SeqStats {
    const EMPTY: SeqStats = SeqStats {
        count: 0,
        first: 0,
        min: 0,
        max: 0,
        gcd: 0,
    };

    #[inline]
    fn push(&mut self, x: i64) {
        if self.count == 0 {
            self.first = x;
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            if self.gcd != 1 {
                // |x - first| < 2^64, so the i128 distance fits in u64.
                let dist = (i128::from(x) - i128::from(self.first)).unsigned_abs() as u64;
                // A remainder is much cheaper than a GCD, and usually zero once a GCD > 1 is
                // established (timestamps in whole seconds).
                if self.gcd == 0 || !dist.is_multiple_of(self.gcd) {
                    self.gcd = gcd(self.gcd, dist);
                }
            }
        }
        self.count += 1;
    }

    /// The block parameters: (min, gcd, width).
    fn params(&self) -> (i64, u64, u32) {
        let gcd = self.gcd.max(1);
        let range = (self.max as u64).wrapping_sub(self.min as u64);
        (self.min, gcd, bit_width(range / gcd))
    }

    /// Exact size of `block` for `count` items with these min, max and GCD.
    fn block_len(&self, count: usize) -> usize {
        let (min, gcd, width) = self.params();
        varint_len(zigzag(min))
            + varint_len(gcd)
            + 1
            + packed_len(count, width).unwrap_or(usize::MAX / 2)
    }
}

/// Everything the estimates need, from one pass over the values.
struct Stats {
    n: usize,
    values: SeqStats,
    deltas: SeqStats,
    dods: SeqStats,
    first_delta: i64,
    runs: usize,
    /// Of `run length - 1`.
    run_lens: SeqStats,
    /// Sorted distinct values, `None` once there are more than [`DICT_CAP`].
    distinct: Option<Vec<i64>>,
    /// How often each distinct value occurs (parallel to `distinct`).
    counts: Vec<u64>,
}

impl Stats {
    fn collect(values: &[i64]) -> Stats {
        let mut s = Stats {
            n: values.len(),
            values: SeqStats::EMPTY,
            deltas: SeqStats::EMPTY,
            dods: SeqStats::EMPTY,
            first_delta: 0,
            runs: 0,
            run_lens: SeqStats::EMPTY,
            distinct: Some(Vec::new()),
            counts: Vec::new(),
        };
        let Some((&first, rest)) = values.split_first() else {
            return s;
        };
        s.values.push(first);
        s.note_distinct(first);
        let mut prev = first;
        let mut prev_delta = 0i64;
        let mut run_len = 1i64;
        for (i, &v) in rest.iter().enumerate() {
            s.values.push(v);
            let d = v.wrapping_sub(prev);
            s.deltas.push(d);
            if i == 0 {
                s.first_delta = d;
            } else {
                s.dods.push(d.wrapping_sub(prev_delta));
            }
            prev_delta = d;
            if v == prev {
                run_len += 1;
            } else {
                s.run_lens.push(run_len - 1);
                s.runs += 1;
                s.count_run(prev, run_len);
                run_len = 1;
                s.note_distinct(v);
            }
            prev = v;
        }
        s.run_lens.push(run_len - 1);
        s.runs += 1;
        s.count_run(prev, run_len);
        s
    }

    #[inline]
    fn count_run(&mut self, v: i64, len: i64) {
        if let Some(d) = &self.distinct {
            if let (Ok(pos), Ok(len)) = (d.binary_search(&v), u64::try_from(len)) {
                if let Some(c) = self.counts.get_mut(pos) {
                    *c += len;
                }
            }
        }
    }

    /// Huffman code lengths of the distinct values, when the codec applies.
    fn huffman_lengths(&self) -> Option<Vec<u8>> {
        self.distinct.as_ref()?;
        huffman::code_lengths(&self.counts)
    }

    #[inline]
    fn note_distinct(&mut self, v: i64) {
        if let Some(d) = &mut self.distinct {
            if let Err(pos) = d.binary_search(&v) {
                if d.len() == DICT_CAP {
                    self.distinct = None;
                    self.counts = Vec::new();
                } else {
                    d.insert(pos, v);
                    self.counts.insert(pos, 0);
                }
            }
        }
    }

    /// The encoded size (tag included) of `codec` for these values, or `None` when the codec
    /// does not apply or cannot be estimated (zstd).
    fn estimate(&self, codec: Codec) -> Option<usize> {
        let n = self.n;
        let len = match codec {
            Codec::Constant => {
                if n > 0 && self.values.min != self.values.max {
                    return None;
                }
                1 + varint_len(zigzag(self.values.first))
            }
            Codec::For => 1 + self.values.block_len(n),
            Codec::Delta => {
                if n < 1 {
                    return None;
                }
                1 + varint_len(zigzag(self.values.first)) + self.deltas.block_len(n - 1)
            }
            Codec::DeltaOfDelta => {
                if n < 2 {
                    return None;
                }
                1 + varint_len(zigzag(self.values.first))
                    + varint_len(zigzag(self.first_delta))
                    + self.dods.block_len(n - 2)
            }
            Codec::RunLength => {
                1 + varint_len(self.runs as u64)
                    + self.values.block_len(self.runs)
                    + self.run_lens.block_len(self.runs)
            }
            Codec::Dictionary => {
                let d = self.distinct.as_ref()?;
                1 + varint_len(d.len() as u64)
                    + dict_values_len(d)
                    + packed_len(n, dict_width(d.len()))?
            }
            Codec::Huffman => {
                let d = self.distinct.as_ref()?;
                let lengths = self.huffman_lengths()?;
                let stream = huffman::stream_len(&self.counts, &lengths);
                1 + varint_len(d.len() as u64)
                    + dict_values_len(d)
                    + d.len().div_ceil(2)
                    + varint_len(stream as u64)
                    + stream
            }
            // Need a pass of their own: see `estimate_full`.
            Codec::Zstd | Codec::Classed | Codec::DeltaClassed => return None,
            Codec::Raw => raw_len(n),
        };
        Some(len)
    }
}

/// Writes sorted distinct values: the first zigzagged, then the gaps.
fn put_dict_values(d: &[i64], out: &mut Vec<u8>) {
    if let Some(&first) = d.first() {
        put_varint(out, zigzag(first));
    }
    for w in d.windows(2) {
        if let [a, b] = w {
            put_varint(out, (*b as u64).wrapping_sub(*a as u64));
        }
    }
}

fn dict_width(k: usize) -> u32 {
    bit_width(k.saturating_sub(1) as u64)
}

fn dict_values_len(d: &[i64]) -> usize {
    let Some(&first) = d.first() else {
        return 0;
    };
    varint_len(zigzag(first))
        + d.windows(2)
            .map(|w| match w {
                [a, b] => varint_len((*b as u64).wrapping_sub(*a as u64)),
                _ => 0,
            })
            .sum::<usize>()
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Writes `values` with a given codec, whether or not it is the smallest. Panics (debug) or
/// writes Raw (release) for a codec that cannot hold the values, e.g. Constant over unequal
/// values. Used by the tests and the probe to force a codec.
#[cfg(test)]
pub(crate) fn encode_with(codec: Codec, values: &[i64], out: &mut Vec<u8>) {
    let stats = Stats::collect(values);
    encode_with_stats(codec, values, &stats, out);
}

/// The estimate of `codec` for `values` (see [`Stats::estimate`]).
#[cfg(test)]
pub(crate) fn estimate(codec: Codec, values: &[i64]) -> Option<usize> {
    estimate_full(codec, values, &Stats::collect(values))
}

fn put_block(items: impl Iterator<Item = i64>, s: &SeqStats, out: &mut Vec<u8>) {
    let (min, gcd, width) = s.params();
    put_varint(out, zigzag(min));
    put_varint(out, gcd);
    out.push(width as u8);
    let offsets = items.map(|x| (x as u64).wrapping_sub(min as u64));
    if gcd == 1 {
        pack(offsets, width, out);
    } else {
        pack(
            offsets.map(|q| {
                debug_assert_eq!(q % gcd, 0);
                q / gcd
            }),
            width,
            out,
        );
    }
}

fn encode_with_stats(codec: Codec, values: &[i64], s: &Stats, out: &mut Vec<u8>) {
    let n = values.len();
    let codec = match codec {
        Codec::Constant if s.estimate(Codec::Constant).is_none() => Codec::Raw,
        Codec::Delta if n < 1 => Codec::Constant,
        Codec::DeltaOfDelta if n < 2 => Codec::Constant,
        Codec::Dictionary if s.distinct.is_none() => Codec::Raw,
        Codec::Huffman if s.huffman_lengths().is_none() => Codec::Raw,
        Codec::Classed | Codec::DeltaClassed if classed_plan(codec, values, s).is_none() => {
            Codec::Raw
        }
        Codec::Zstd => match zstd_payload(values, s) {
            Some(payload) => {
                out.push(Codec::Zstd as u8);
                out.extend_from_slice(&payload);
                return;
            }
            None => Codec::Raw,
        },
        c => c,
    };
    let first = values.first().copied().unwrap_or(0);
    out.push(codec as u8);
    match codec {
        Codec::Constant => put_varint(out, zigzag(first)),
        Codec::For => put_block(values.iter().copied(), &s.values, out),
        Codec::Delta => {
            put_varint(out, zigzag(first));
            let deltas = values.windows(2).map(|w| match w {
                [a, b] => b.wrapping_sub(*a),
                _ => 0,
            });
            put_block(deltas, &s.deltas, out);
        }
        Codec::DeltaOfDelta => {
            put_varint(out, zigzag(first));
            put_varint(out, zigzag(s.first_delta));
            let dods = values.windows(3).map(|w| match w {
                [a, b, c] => c.wrapping_sub(*b).wrapping_sub(b.wrapping_sub(*a)),
                _ => 0,
            });
            put_block(dods, &s.dods, out);
        }
        Codec::RunLength => {
            let runs = Runs::new(values);
            put_varint(out, s.runs as u64);
            // The run values are the distinct values: same min, max and GCD as the values.
            put_block(runs.clone().map(|(v, _)| v), &s.values, out);
            put_block(runs.map(|(_, len)| len as i64 - 1), &s.run_lens, out);
        }
        Codec::Dictionary => {
            let d = s.distinct.as_deref().unwrap_or_default();
            put_varint(out, d.len() as u64);
            put_dict_values(d, out);
            let indices = values
                .iter()
                .map(|v| d.binary_search(v).unwrap_or_default() as u64);
            pack(indices, dict_width(d.len()), out);
        }
        Codec::Huffman => {
            let d = s.distinct.as_deref().unwrap_or_default();
            let lengths = s.huffman_lengths().unwrap_or_default();
            put_varint(out, d.len() as u64);
            put_dict_values(d, out);
            for pair in lengths.chunks(2) {
                let lo = pair.first().copied().unwrap_or(0);
                let hi = pair.get(1).copied().unwrap_or(0);
                out.push(lo | (hi << 4));
            }
            put_varint(out, huffman::stream_len(&s.counts, &lengths) as u64);
            let symbols = values
                .iter()
                .map(|v| d.binary_search(v).unwrap_or_default());
            huffman::write(symbols, &lengths, out);
        }
        Codec::Classed => {
            if let Some(p) = classed_plan(codec, values, s) {
                p.write(values.iter().copied(), out);
            }
        }
        Codec::DeltaClassed => {
            put_varint(out, zigzag(first));
            if let Some(p) = classed_plan(codec, values, s) {
                p.write(deltas(values), out);
            }
        }
        Codec::Zstd => {} // written above
        Codec::Raw => {
            out.reserve(n * 8);
            for v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// Runs of equal values: (value, length).
#[derive(Clone)]
struct Runs<'a> {
    rest: &'a [i64],
}

impl<'a> Runs<'a> {
    fn new(values: &'a [i64]) -> Self {
        Runs { rest: values }
    }
}

impl Iterator for Runs<'_> {
    type Item = (i64, usize);

    fn next(&mut self) -> Option<(i64, usize)> {
        let &first = self.rest.first()?;
        let len = self.rest.iter().take_while(|&&v| v == first).count();
        self.rest = self.rest.get(len..).unwrap_or_default();
        Some((first, len))
    }
}

thread_local! {
    /// zstd contexts are costly to create (tens of microseconds), so each thread keeps one.
    static ZSTD_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// The zstd payload (mode, frame length, frame), or `None` if zstd fails (it does not for
/// in-memory buffers, short of running out of memory).
fn zstd_payload(values: &[i64], s: &Stats) -> Option<Vec<u8>> {
    // Deltas when they are narrower than the values (smooth signals, timestamps).
    let (_, _, value_width) = s.values.params();
    let (_, _, delta_width) = s.deltas.params();
    let mode = u8::from(values.len() > 1 && delta_width < value_width);
    let mut plain = Vec::with_capacity(values.len() * 2);
    let mut prev = 0i64;
    for &v in values {
        let x = if mode == 1 { v.wrapping_sub(prev) } else { v };
        put_varint(&mut plain, zigzag(x));
        prev = v;
    }
    let frame = ZSTD_COMPRESSOR
        .with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            if c.is_none() {
                *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
            }
            c.as_mut()?.compress(&plain).ok()
        })
        .or_else(|| zstd::bulk::compress(&plain, ZSTD_LEVEL).ok())?;
    let mut payload = Vec::with_capacity(frame.len() + 12);
    payload.push(mode);
    put_varint(&mut payload, frame.len() as u64);
    payload.extend_from_slice(&frame);
    Some(payload)
}

// ---------------------------------------------------------------------------------------------
// Decoding

fn decode_into(r: &mut Reader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), CodecError> {
    let tag = r.u8("missing codec tag")?;
    let codec = Codec::from_tag(tag).ok_or(CodecError {
        offset: 0,
        what: "unknown codec tag",
    })?;
    match codec {
        Codec::Constant => {
            let v = r.zigzag("truncated constant")?;
            out.extend(std::iter::repeat_n(v, n));
        }
        Codec::For => {
            get_block(r, n, |v| out.push(v))?;
        }
        Codec::Delta => {
            if n < 1 {
                return Err(r.err("delta chunk needs at least one value"));
            }
            let mut acc = r.zigzag("truncated first value")?;
            out.push(acc);
            get_block(r, n - 1, |d| {
                acc = acc.wrapping_add(d);
                out.push(acc);
            })?;
        }
        Codec::DeltaOfDelta => {
            if n < 2 {
                return Err(r.err("delta-of-delta chunk needs at least two values"));
            }
            let mut acc = r.zigzag("truncated first value")?;
            let mut delta = r.zigzag("truncated first delta")?;
            out.push(acc);
            acc = acc.wrapping_add(delta);
            out.push(acc);
            get_block(r, n - 2, |dd| {
                delta = delta.wrapping_add(dd);
                acc = acc.wrapping_add(delta);
                out.push(acc);
            })?;
        }
        Codec::RunLength => decode_runs(r, n, out)?,
        Codec::Dictionary => decode_dict(r, n, out)?,
        Codec::Huffman => decode_huffman(r, n, out)?,
        Codec::Classed => classed::read(r, n, |v| out.push(v))?,
        Codec::DeltaClassed => {
            if n < 2 {
                return Err(r.err("delta classed chunk needs at least two values"));
            }
            let mut acc = r.zigzag("truncated first value")?;
            out.push(acc);
            classed::read(r, n - 1, |d| {
                acc = acc.wrapping_add(d);
                out.push(acc);
            })?;
        }
        Codec::Zstd => decode_zstd(r, n, out)?,
        Codec::Raw => {
            let len = n
                .checked_mul(8)
                .ok_or_else(|| r.err("raw chunk size overflows"))?;
            let bytes = r.bytes(len, "truncated raw values")?;
            out.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default())),
            );
        }
    }
    Ok(())
}

/// An empty vector with room for `len` items, or an error if that cannot be allocated.
fn alloc<T>(len: usize, r: &Reader<'_>) -> Result<Vec<T>, CodecError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| r.err("claimed size too large to allocate"))?;
    Ok(v)
}

/// Reads a `block` of `count` items, handing each to `sink`.
#[inline]
fn get_block<G: FnMut(i64)>(
    r: &mut Reader<'_>,
    count: usize,
    mut sink: G,
) -> Result<(), CodecError> {
    let min = r.zigzag("truncated block minimum")?;
    let at = r.pos();
    let gcd = r.varint("truncated block divisor")?;
    if gcd == 0 {
        return Err(CodecError {
            offset: at,
            what: "block divisor is zero",
        });
    }
    let at = r.pos();
    let width = u32::from(r.u8("truncated block width")?);
    if width > 64 {
        return Err(CodecError {
            offset: at,
            what: "bit width above 64",
        });
    }
    let len = packed_len(count, width).ok_or_else(|| r.err("bit-packed size overflows"))?;
    let packed = r.bytes(len, "truncated bit-packed data")?;
    if gcd == 1 {
        unpack(packed, count, width, |q| sink(min.wrapping_add(q as i64)));
    } else {
        unpack(packed, count, width, |q| {
            sink(min.wrapping_add(q.wrapping_mul(gcd) as i64))
        });
    }
    Ok(())
}

fn decode_runs(r: &mut Reader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), CodecError> {
    let at = r.pos();
    let runs = r.varint("truncated run count")?;
    let runs = usize::try_from(runs)
        .ok()
        .filter(|&k| k <= n && (k > 0 || n == 0))
        .ok_or(CodecError {
            offset: at,
            what: "run count out of range",
        })?;
    let mut values = alloc(runs, r)?;
    get_block(r, runs, |v| values.push(v))?;
    let at = r.pos();
    let mut lens = alloc(runs, r)?;
    let mut total = 0u64;
    let mut bad = false;
    get_block(r, runs, |x| {
        // Stored as `length - 1`; a negative or huge value is corrupt.
        let len = (x as u64).wrapping_add(1);
        bad |= len == 0;
        total = total.saturating_add(len);
        lens.push(len as usize);
    })?;
    if bad || total != n as u64 {
        return Err(CodecError {
            offset: at,
            what: "run lengths do not add up to the value count",
        });
    }
    for (v, len) in values.into_iter().zip(lens) {
        out.extend(std::iter::repeat_n(v, len));
    }
    Ok(())
}

/// Reads `varint(k)` and `k` sorted distinct values, `k` bounded by `n` and the input.
fn read_dict_values(r: &mut Reader<'_>, n: usize) -> Result<Vec<i64>, CodecError> {
    let at = r.pos();
    let k = r.varint("truncated dictionary size")?;
    // Each entry takes at least one byte, so a claimed size above what is left is corrupt.
    let k = usize::try_from(k)
        .ok()
        .filter(|&k| k <= n && k <= r.remaining() && (k > 0 || n == 0))
        .ok_or(CodecError {
            offset: at,
            what: "dictionary size out of range",
        })?;
    let mut dict = Vec::with_capacity(k);
    if k > 0 {
        let mut v = r.zigzag("truncated dictionary")?;
        dict.push(v);
        for _ in 1..k {
            v = (v as u64).wrapping_add(r.varint("truncated dictionary")?) as i64;
            dict.push(v);
        }
    }
    Ok(dict)
}

fn decode_huffman(r: &mut Reader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), CodecError> {
    let dict = read_dict_values(r, n)?;
    let k = dict.len();
    if !(2..=DICT_CAP).contains(&k) {
        return Err(r.err("Huffman dictionary size out of range"));
    }
    let nibbles = r.bytes(k.div_ceil(2), "truncated Huffman code lengths")?;
    let lengths: Vec<u8> = nibbles
        .iter()
        .flat_map(|&b| [b & 0x0f, b >> 4])
        .take(k)
        .collect();
    let len = r.varint("truncated Huffman stream length")?;
    let len = usize::try_from(len).map_err(|_| r.err("Huffman stream length overflows"))?;
    let at = r.pos();
    let stream = r.bytes(len, "truncated Huffman stream")?;
    let mut bad = false;
    huffman::read(stream, &lengths, n, at, |i| match dict.get(i) {
        Some(&v) => out.push(v),
        None => bad = true,
    })?;
    if bad {
        return Err(CodecError {
            offset: at,
            what: "Huffman symbol out of range",
        });
    }
    Ok(())
}

fn decode_dict(r: &mut Reader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), CodecError> {
    let dict = read_dict_values(r, n)?;
    let k = dict.len();
    let width = dict_width(k);
    let len = packed_len(n, width).ok_or_else(|| r.err("bit-packed size overflows"))?;
    let at = r.pos();
    let packed = r.bytes(len, "truncated dictionary indices")?;
    let mut bad = false;
    unpack(packed, n, width, |i| match dict.get(i as usize) {
        Some(&v) => out.push(v),
        None => bad = true,
    });
    if bad {
        return Err(CodecError {
            offset: at,
            what: "dictionary index out of range",
        });
    }
    Ok(())
}

fn decode_zstd(r: &mut Reader<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), CodecError> {
    let at = r.pos();
    let mode = r.u8("truncated zstd mode")?;
    if mode > 1 {
        return Err(CodecError {
            offset: at,
            what: "unknown zstd mode",
        });
    }
    let at = r.pos();
    let frame_len = r.varint("truncated zstd frame length")?;
    let frame_len = usize::try_from(frame_len).map_err(|_| CodecError {
        offset: at,
        what: "zstd frame length out of range",
    })?;
    let at = r.pos();
    let frame = r.bytes(frame_len, "truncated zstd frame")?;
    let corrupt = CodecError {
        offset: at,
        what: "corrupt zstd frame",
    };
    // n varints take at most 10 bytes each: a frame that inflates beyond is corrupt.
    let capacity = n.checked_mul(10).ok_or(corrupt.clone())?;
    let mut plain: Vec<u8> = alloc(capacity, r)?;
    ZSTD_DECOMPRESSOR
        .with(|d| {
            let mut d = d.try_borrow_mut().ok()?;
            if d.is_none() {
                *d = zstd::bulk::Decompressor::new().ok();
            }
            Some(d.as_mut()?.decompress_to_buffer(frame, &mut plain))
        })
        .unwrap_or_else(|| zstd::bulk::decompress_to_buffer(frame, &mut plain))
        .map_err(|_| corrupt.clone())?;
    let mut p = Reader::new(&plain);
    let mut prev = 0i64;
    for _ in 0..n {
        let x = p
            .zigzag("truncated zstd content")
            .map_err(|_| corrupt.clone())?;
        let v = if mode == 1 { prev.wrapping_add(x) } else { x };
        out.push(v);
        prev = v;
    }
    if p.remaining() != 0 {
        return Err(corrupt);
    }
    Ok(())
}
