//! Magnitude classes (codec tags 10 and 11): each value's offset from the chunk minimum, in
//! units of the GCD, is split into its bit width (the *class*, Huffman-coded) and the bits
//! below its leading one (written raw). Columns whose values spread over several orders of
//! magnitude but cluster (gaps between washes, durations, energies) then cost about the
//! entropy of their magnitude plus their significant bits, instead of the width of the
//! largest value. Tag 11 applies the same to the wrapping deltas (timestamps of irregular
//! events).
//!
//! Block layout: `zz(min)`, `varint(gcd)` (≥ 1), `varint(k)` classes present (2..=65), the
//! `k` classes ascending (one byte each, 0..=64), their code lengths as nibbles (low first),
//! `varint(stream bytes)`, then per value its class code and, for class `c ≥ 2`, the low
//! `c − 1` bits of the offset; least significant bit first.

use super::bits::{put_varint, varint_len, zigzag, Reader};
use super::huffman;
use super::CodecError;

/// A class histogram and its Huffman code, ready to write.
pub(super) struct Plan {
    min: i64,
    gcd: u64,
    /// Classes present, ascending.
    classes: Vec<u8>,
    lengths: Vec<u8>,
    /// Symbol of each class (index into `classes`), or `u8::MAX` when absent.
    symbol: [u8; 65],
    stream_bytes: usize,
}

fn class_of(q: u64) -> u8 {
    (64 - q.leading_zeros()) as u8
}

impl Plan {
    /// Plans the block for `items` (all `≥ min` in wrapping offset and multiples of `gcd`
    /// from `min`), or `None` when fewer than two classes occur or a code would be too long.
    pub(super) fn new(
        items: impl Iterator<Item = i64> + Clone,
        min: i64,
        gcd: u64,
    ) -> Option<Plan> {
        let gcd = gcd.max(1);
        let mut counts = [0u64; 65];
        for x in items {
            let q = (x as u64).wrapping_sub(min as u64) / gcd;
            if let Some(c) = counts.get_mut(usize::from(class_of(q))) {
                *c += 1;
            }
        }
        let classes: Vec<u8> = (0..=64u8)
            .filter(|&c| counts.get(usize::from(c)).is_some_and(|&n| n > 0))
            .collect();
        let present: Vec<u64> = classes
            .iter()
            .map(|&c| counts.get(usize::from(c)).copied().unwrap_or(0))
            .collect();
        let lengths = huffman::code_lengths(&present)?;
        let mut symbol = [u8::MAX; 65];
        for (s, &c) in classes.iter().enumerate() {
            if let Some(slot) = symbol.get_mut(usize::from(c)) {
                *slot = s as u8;
            }
        }
        let bits: u64 = classes
            .iter()
            .zip(&lengths)
            .zip(&present)
            .map(|((&c, &l), &n)| n * (u64::from(l) + u64::from(c.saturating_sub(1))))
            .sum();
        Some(Plan {
            min,
            gcd,
            classes,
            lengths,
            symbol,
            stream_bytes: bits.div_ceil(8) as usize,
        })
    }

    /// Exact bytes of the block.
    pub(super) fn len(&self) -> usize {
        varint_len(zigzag(self.min))
            + varint_len(self.gcd)
            + varint_len(self.classes.len() as u64)
            + self.classes.len()
            + self.classes.len().div_ceil(2)
            + varint_len(self.stream_bytes as u64)
            + self.stream_bytes
    }

    /// Writes the block for the same `items` the plan was made from.
    pub(super) fn write(&self, items: impl Iterator<Item = i64>, out: &mut Vec<u8>) {
        put_varint(out, zigzag(self.min));
        put_varint(out, self.gcd);
        put_varint(out, self.classes.len() as u64);
        out.extend_from_slice(&self.classes);
        for pair in self.lengths.chunks(2) {
            let lo = pair.first().copied().unwrap_or(0);
            let hi = pair.get(1).copied().unwrap_or(0);
            out.push(lo | (hi << 4));
        }
        put_varint(out, self.stream_bytes as u64);
        let codes = huffman::reversed_codes(&self.lengths);
        let mut w = huffman::BitWriter::new(out);
        for x in items {
            let q = (x as u64).wrapping_sub(self.min as u64) / self.gcd;
            let c = class_of(q);
            let s = usize::from(self.symbol.get(usize::from(c)).copied().unwrap_or(0));
            w.put(
                u64::from(codes.get(s).copied().unwrap_or(0)),
                u32::from(self.lengths.get(s).copied().unwrap_or(0)),
            );
            if c >= 2 {
                w.put(q & ((1u64 << (c - 1)) - 1), u32::from(c - 1));
            }
        }
        w.finish();
    }
}

/// Reads a block of `n` items, calling `f` with each.
pub(super) fn read(r: &mut Reader<'_>, n: usize, mut f: impl FnMut(i64)) -> Result<(), CodecError> {
    let min = r.zigzag("truncated class block minimum")?;
    let gcd = r.varint("truncated class block GCD")?;
    if gcd == 0 {
        return Err(r.err("class block GCD is zero"));
    }
    let k = r.varint("truncated class count")?;
    let k = usize::try_from(k)
        .ok()
        .filter(|k| (2..=65).contains(k))
        .ok_or_else(|| r.err("class count out of range"))?;
    let classes = r.bytes(k, "truncated classes")?.to_vec();
    if classes.iter().any(|&c| c > 64) || classes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(r.err("classes out of range or not ascending"));
    }
    let nibbles = r.bytes(k.div_ceil(2), "truncated class code lengths")?;
    let lengths: Vec<u8> = nibbles
        .iter()
        .flat_map(|&b| [b & 0x0f, b >> 4])
        .take(k)
        .collect();
    let len = r.varint("truncated class stream length")?;
    let len = usize::try_from(len).map_err(|_| r.err("class stream length overflows"))?;
    let at = r.pos();
    let stream = r.bytes(len, "truncated class stream")?;
    let table = huffman::Table::new(&lengths, at)?;
    let mut br = huffman::BitReader::new(stream, at);
    for _ in 0..n {
        let s = table.decode(&mut br)?;
        let c = classes.get(s).copied().ok_or(CodecError {
            offset: at,
            what: "class symbol out of range",
        })?;
        let q = match c {
            0 => 0,
            1 => 1,
            c => (1u64 << (c - 1)) | br.get(u32::from(c - 1))?,
        };
        f(min.wrapping_add(q.wrapping_mul(gcd) as i64));
    }
    br.finish()
}
