//! Canonical Huffman codes for dictionary indices (codec tag 9).
//!
//! Small skewed alphabets (wash program, temperature and spin settings, detergent doses) cost
//! their full bit width under bit-packing; a Huffman code spends about their entropy. Code
//! lengths are limited to [`MAX_LEN`] bits; when an optimal code would be longer the codec is
//! not offered (the plain dictionary serves). Codes are canonical, so only the lengths are
//! stored. The stream is written least significant bit first with each code bit-reversed,
//! which lets the reader decode with one table lookup per value.
//!
//! Decoding checks that the stored lengths form a complete prefix code (Kraft sum exactly
//! one), so every table slot is filled, and that the stream holds exactly the bits the values
//! need.

use super::CodecError;

/// Longest code length: keeps the decode table at most 4,096 entries.
pub(super) const MAX_LEN: u8 = 12;

/// Optimal code lengths for symbol `counts` (every count ≥ 1, at least two symbols), or
/// `None` when a code would exceed [`MAX_LEN`] bits.
pub(super) fn code_lengths(counts: &[u64]) -> Option<Vec<u8>> {
    let k = counts.len();
    if k < 2 {
        return None;
    }
    // Two-queue construction: leaves sorted by weight, internal nodes created in
    // nondecreasing weight order; O(k log k) for the sort, O(k) for the merging.
    let mut leaves: Vec<usize> = (0..k).collect();
    leaves.sort_by_key(|&i| (counts.get(i).copied().unwrap_or(0), i));
    let mut weight: Vec<u64> = counts.to_vec();
    let mut parent: Vec<usize> = vec![usize::MAX; k];
    let mut internal: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut leaf_at = 0;
    let mut take = |weight: &Vec<u64>, internal: &mut std::collections::VecDeque<usize>| {
        let leaf = leaves.get(leaf_at).copied();
        let node = internal.front().copied();
        match (leaf, node) {
            (Some(l), Some(n)) if weight.get(n) < weight.get(l) => internal.pop_front(),
            (Some(l), _) => {
                leaf_at += 1;
                Some(l)
            }
            (None, Some(_)) => internal.pop_front(),
            (None, None) => None,
        }
    };
    for _ in 1..k {
        let a = take(&weight, &mut internal)?;
        let b = take(&weight, &mut internal)?;
        let node = weight.len();
        weight.push(weight.get(a)?.saturating_add(*weight.get(b)?));
        parent.push(usize::MAX);
        *parent.get_mut(a)? = node;
        *parent.get_mut(b)? = node;
        internal.push_back(node);
    }
    // Depths, from the root (the last node) down: a parent always has a larger index.
    let mut depth = vec![0u8; weight.len()];
    for node in (0..weight.len().saturating_sub(1)).rev() {
        let p = *parent.get(node)?;
        let d = depth.get(p)?.checked_add(1)?;
        *depth.get_mut(node)? = d;
    }
    let lengths: Vec<u8> = depth.get(..k)?.to_vec();
    if lengths.iter().any(|&l| l > MAX_LEN || l == 0) {
        return None;
    }
    Some(lengths)
}

/// Canonical codes for `lengths`, each bit-reversed for least-significant-first writing.
pub(super) fn reversed_codes(lengths: &[u8]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&s| (lengths.get(s).copied().unwrap_or(0), s));
    let mut codes = vec![0u32; lengths.len()];
    let mut code = 0u32;
    let mut prev_len = 0u8;
    for s in order {
        let len = lengths.get(s).copied().unwrap_or(0);
        code <<= len - prev_len;
        if let Some(slot) = codes.get_mut(s) {
            *slot = code.reverse_bits() >> (32 - u32::from(len.max(1)));
        }
        code += 1;
        prev_len = len;
    }
    codes
}

/// Bytes of the stream for `counts` coded with `lengths`.
pub(super) fn stream_len(counts: &[u64], lengths: &[u8]) -> usize {
    let bits: u64 = counts
        .iter()
        .zip(lengths)
        .map(|(&c, &l)| c.saturating_mul(u64::from(l)))
        .sum();
    bits.div_ceil(8) as usize
}

/// Writes the codes of `symbols` (indices into `lengths`).
pub(super) fn write(symbols: impl Iterator<Item = usize>, lengths: &[u8], out: &mut Vec<u8>) {
    let codes = reversed_codes(lengths);
    let mut w = BitWriter::new(out);
    for s in symbols {
        w.put(
            u64::from(codes.get(s).copied().unwrap_or(0)),
            u32::from(lengths.get(s).copied().unwrap_or(0)),
        );
    }
    w.finish();
}

/// Decodes `n` symbols from `stream` (which must hold exactly their bits, rounded up to a
/// byte), calling `f` with each symbol.
pub(super) fn read(
    stream: &[u8],
    lengths: &[u8],
    n: usize,
    base: usize,
    mut f: impl FnMut(usize),
) -> Result<(), CodecError> {
    let table = Table::new(lengths, base)?;
    let mut r = BitReader::new(stream, base);
    for _ in 0..n {
        f(table.decode(&mut r)?);
    }
    r.finish()
}

/// Writes bit fields least significant bit first.
pub(super) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    nbits: u32,
}

impl<'a> BitWriter<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            nbits: 0,
        }
    }

    /// Writes the low `n` bits of `bits` (`n ≤ 64`).
    pub(super) fn put(&mut self, bits: u64, n: u32) {
        if n > 32 {
            self.put(bits & 0xffff_ffff, 32);
            self.put(bits >> 32, n - 32);
            return;
        }
        if n == 0 {
            return;
        }
        let masked = if n == 64 {
            bits
        } else {
            bits & ((1u64 << n) - 1)
        };
        self.acc |= masked << self.nbits;
        self.nbits += n;
        while self.nbits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.nbits -= 8;
        }
    }

    /// Flushes the last partial byte.
    pub(super) fn finish(self) {
        if self.nbits > 0 {
            self.out.push(self.acc as u8);
        }
    }
}

/// Reads bit fields written by [`BitWriter`], refusing to read past the stream.
pub(super) struct BitReader<'a> {
    bytes: std::slice::Iter<'a, u8>,
    len: usize,
    acc: u64,
    nbits: u32,
    used: u64,
    base: usize,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(stream: &'a [u8], base: usize) -> Self {
        BitReader {
            bytes: stream.iter(),
            len: stream.len(),
            acc: 0,
            nbits: 0,
            used: 0,
            base,
        }
    }

    fn refill(&mut self) {
        while self.nbits <= 56 {
            match self.bytes.next() {
                Some(&b) => {
                    self.acc |= u64::from(b) << self.nbits;
                    self.nbits += 8;
                }
                None => break,
            }
        }
    }

    fn consume(&mut self, n: u32) -> Result<(), CodecError> {
        self.used += u64::from(n);
        if self.used > self.len as u64 * 8 {
            return Err(CodecError {
                offset: self.base,
                what: "truncated bit stream",
            });
        }
        self.acc = if n >= 64 { 0 } else { self.acc >> n };
        self.nbits = self.nbits.saturating_sub(n);
        Ok(())
    }

    /// The next `n ≤ 32` bits, without consuming them (zeros past the end).
    fn peek(&mut self, n: u32) -> u64 {
        if self.nbits < n {
            self.refill();
        }
        self.acc & ((1u64 << n) - 1)
    }

    /// Reads `n ≤ 64` bits.
    pub(super) fn get(&mut self, n: u32) -> Result<u64, CodecError> {
        if n > 32 {
            let lo = self.get(32)?;
            let hi = self.get(n - 32)?;
            return Ok(lo | (hi << 32));
        }
        let v = self.peek(n);
        self.consume(n)?;
        Ok(v)
    }

    /// Checks that the stream held exactly the bits read, rounded up to a byte.
    pub(super) fn finish(self) -> Result<(), CodecError> {
        if self.used.div_ceil(8) != self.len as u64 {
            return Err(CodecError {
                offset: self.base,
                what: "bit stream length does not match its values",
            });
        }
        Ok(())
    }
}

/// A decode table for canonical codes of given lengths.
pub(super) struct Table {
    entries: Vec<(u8, u8)>,
    max: u8,
    base: usize,
}

impl Table {
    /// Builds the table; the lengths must form a complete prefix code.
    pub(super) fn new(lengths: &[u8], base: usize) -> Result<Table, CodecError> {
        let err = |what| CodecError { offset: base, what };
        let max = lengths.iter().copied().max().unwrap_or(0);
        if max == 0 || max > MAX_LEN || lengths.contains(&0) || lengths.len() > 256 {
            return Err(err("code length out of range"));
        }
        let kraft: u64 = lengths.iter().map(|&l| 1u64 << (max - l)).sum();
        if kraft != 1u64 << max {
            return Err(err("code lengths do not form a complete code"));
        }
        let codes = reversed_codes(lengths);
        let mut entries = vec![(0u8, 0u8); 1usize << max];
        for (s, (&len, &code)) in lengths.iter().zip(&codes).enumerate() {
            let step = 1usize << len;
            let mut i = code as usize;
            while i < entries.len() {
                if let Some(slot) = entries.get_mut(i) {
                    *slot = (s as u8, len);
                }
                i += step;
            }
        }
        Ok(Table { entries, max, base })
    }

    /// Decodes one symbol.
    pub(super) fn decode(&self, r: &mut BitReader<'_>) -> Result<usize, CodecError> {
        let (sym, len) = self
            .entries
            .get(r.peek(u32::from(self.max)) as usize)
            .copied()
            .ok_or(CodecError {
                offset: self.base,
                what: "code table lookup out of range",
            })?;
        r.consume(u32::from(len))?;
        Ok(usize::from(sym))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skewed_counts_get_short_codes_and_round_trip() {
        let counts = [50u64, 20, 10, 10, 5, 3, 1, 1];
        let lengths = code_lengths(&counts).expect("lengths");
        assert!(lengths[0] < lengths[7]);
        let kraft: f64 = lengths.iter().map(|&l| 0.5f64.powi(i32::from(l))).sum();
        assert!((kraft - 1.0).abs() < 1e-12);
        let symbols: Vec<usize> = counts
            .iter()
            .enumerate()
            .flat_map(|(s, &c)| std::iter::repeat_n(s, c as usize))
            .collect();
        let mut out = Vec::new();
        write(symbols.iter().copied(), &lengths, &mut out);
        assert_eq!(out.len(), stream_len(&counts, &lengths));
        let mut back = Vec::new();
        read(&out, &lengths, symbols.len(), 0, |s| back.push(s)).expect("read");
        assert_eq!(back, symbols);
        // A stream one byte short, or with a byte too many, is refused.
        assert!(read(&out[..out.len() - 1], &lengths, symbols.len(), 0, |_| ()).is_err());
        let mut long = out.clone();
        long.push(0);
        assert!(read(&long, &lengths, symbols.len(), 0, |_| ()).is_err());
    }

    #[test]
    fn incomplete_or_oversubscribed_lengths_are_refused() {
        assert!(read(&[0], &[1, 2], 1, 0, |_| ()).is_err());
        assert!(read(&[0], &[1, 1, 1], 1, 0, |_| ()).is_err());
        assert!(read(&[0], &[1, 0], 1, 0, |_| ()).is_err());
    }

    #[test]
    fn too_deep_codes_are_not_offered() {
        // Fibonacci counts make the deepest possible tree.
        let mut counts = vec![1u64, 1];
        while counts.len() < 20 {
            let l = counts.len();
            counts.push(counts[l - 1] + counts[l - 2]);
        }
        assert_eq!(code_lengths(&counts), None);
        assert_eq!(code_lengths(&[7]), None);
    }
}
