//! Byte-level building blocks of the column codecs: zigzag, LEB128 varints, little-endian
//! bit-packing, and a bounds-checked reader that never panics.
//!
//! Invariants: `pack` writes exactly `packed_len(count, width)` bytes; `unpack` reads at most
//! that many bytes and must be given at least that many (the caller checks once, up front).

use super::CodecError;

/// Maps signed to unsigned so that small magnitudes get small codes (0, -1, 1, -2, ...).
#[inline]
pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub(super) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Bytes taken by the LEB128 varint of `v` (1..=10).
#[inline]
pub(super) fn varint_len(v: u64) -> usize {
    // 7 payload bits per byte; 0 still takes one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends the LEB128 varint of `v`.
#[inline]
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Number of bits needed to hold `v` (0 for 0).
#[inline]
pub(super) fn bit_width(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// Bytes taken by `count` values packed at `width` bits, or `None` on overflow.
#[inline]
pub(super) fn packed_len(count: usize, width: u32) -> Option<usize> {
    let bits = (count as u128).checked_mul(u128::from(width))?;
    usize::try_from(bits.div_ceil(8)).ok()
}

/// Greatest common divisor (binary algorithm); `gcd(0, x) == x`.
#[inline]
pub(super) fn gcd(mut a: u64, mut b: u64) -> u64 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

/// Packs `values` (each `< 2^width`) little-endian, `width` bits each, appending exactly
/// `packed_len(values.len(), width)` bytes.
pub(super) fn pack(values: impl Iterator<Item = u64>, width: u32, out: &mut Vec<u8>) {
    if width == 0 {
        return;
    }
    let mut acc = 0u64;
    let mut filled = 0u32; // bits of `acc` in use, always < 64 between values
    for v in values {
        debug_assert!(width == 64 || v >> width == 0);
        acc |= v << filled;
        filled += width;
        if filled >= 64 {
            out.extend_from_slice(&acc.to_le_bytes());
            filled -= 64;
            // The high `filled` bits of `v` did not fit in the word just written.
            acc = if filled == 0 {
                0
            } else {
                v >> (width - filled)
            };
        }
    }
    let tail = filled.div_ceil(8) as usize;
    out.extend_from_slice(acc.to_le_bytes().get(..tail).unwrap_or_default());
}

/// Unpacks `count` values of `width` bits from `packed` and hands each to `f`.
///
/// `packed` must hold at least `packed_len(count, width)` bytes (checked by the caller); bytes
/// beyond it are never read. For widths up to 56 each value is one unaligned little-endian
/// u64 load, a shift and a mask (the load's bounds check is the loop's only branch); the last
/// few values are read from a zero-padded copy. Wider values go word by word.
#[inline]
pub(super) fn unpack<F: FnMut(u64)>(packed: &[u8], count: usize, width: u32, mut f: F) {
    if width == 0 {
        for _ in 0..count {
            f(0);
        }
        return;
    }
    if width > 56 {
        return unpack_wide(packed, count, width, f);
    }
    let mask = (1u64 << width) - 1;
    let w = width as usize;
    let mut i = 0usize;
    let mut bit = 0usize;
    while i < count {
        let b = bit >> 3;
        let Some(bytes) = packed.get(b..b + 8) else {
            break;
        };
        let word = u64::from_le_bytes(bytes.try_into().unwrap_or_default());
        f((word >> (bit & 7)) & mask);
        bit += w;
        i += 1;
    }
    if i < count {
        // Fewer than 8 bytes are left from byte `bit / 8` on: pad them to 16.
        let mut buf = [0u8; 16];
        let rest = packed.get(bit >> 3..).unwrap_or_default();
        for (t, s) in buf.iter_mut().zip(rest) {
            *t = *s;
        }
        let mut local = bit & 7;
        while i < count {
            let lb = local >> 3;
            let word = buf
                .get(lb..lb + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes);
            f((word >> (local & 7)) & mask);
            local += w;
            i += 1;
        }
    }
}

/// [`unpack`] for widths of 57 to 64 bits, over u64 words.
fn unpack_wide<F: FnMut(u64)>(packed: &[u8], count: usize, width: u32, mut f: F) {
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let mut words = packed.chunks_exact(8);
    let mut tail = [0u8; 8];
    for (t, b) in tail.iter_mut().zip(words.remainder()) {
        *t = *b;
    }
    let tail = u64::from_le_bytes(tail);
    let mut tail_taken = false;
    let mut next_word = move || match words.next() {
        Some(c) => u64::from_le_bytes(c.try_into().unwrap_or_default()),
        None if !tail_taken => {
            tail_taken = true;
            tail
        }
        None => 0,
    };
    let mut cur = next_word();
    let mut used = 0u32; // bits of `cur` already consumed, always < 64 between values
    for _ in 0..count {
        let end = used + width;
        if end < 64 {
            f((cur >> used) & mask);
            used = end;
        } else if end == 64 {
            f(cur >> used);
            cur = next_word();
            used = 0;
        } else {
            // Straddles two words; here `used > 0`, so the shift below is in 1..64.
            let next = next_word();
            f(((cur >> used) | (next << (64 - used))) & mask);
            cur = next;
            used = end - 64;
        }
    }
}

/// A cursor over a chunk's bytes. Every read is checked; errors carry the chunk offset.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub(super) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// An error at the current position.
    pub(super) fn err(&self, what: &'static str) -> CodecError {
        CodecError {
            offset: self.pos,
            what,
        }
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err(what))?;
        self.pos += 1;
        Ok(b)
    }

    /// A LEB128 varint of at most 10 bytes that fits in 64 bits.
    pub(super) fn varint(&mut self, what: &'static str) -> Result<u64, CodecError> {
        let start = self.pos;
        let mut v = 0u64;
        for i in 0..10u32 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(CodecError {
                    offset: start,
                    what,
                });
            };
            self.pos += 1;
            let payload = u64::from(b & 0x7f);
            if i == 9 && payload > 1 {
                return Err(CodecError {
                    offset: start,
                    what: "varint overflows 64 bits",
                });
            }
            v |= payload << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError {
            offset: start,
            what: "varint longer than 10 bytes",
        })
    }

    pub(super) fn zigzag(&mut self, what: &'static str) -> Result<i64, CodecError> {
        self.varint(what).map(unzigzag)
    }

    /// The next `len` bytes.
    pub(super) fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(len).ok_or_else(|| self.err(what))?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| self.err(what))?;
        self.pos = end;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips_extremes() {
        for v in [0, 1, -1, 2, -2, i64::MAX, i64::MIN, i64::MIN + 1] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn varint_len_matches_encoding() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::MAX >> 1, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut r = Reader::new(&out);
            assert_eq!(r.varint("x"), Ok(v));
            assert_eq!(r.pos(), out.len());
        }
    }

    #[test]
    fn overlong_varints_are_rejected() {
        let eleven = [0x80u8; 10];
        assert!(Reader::new(&eleven).varint("x").is_err());
        let mut too_big = vec![0xffu8; 9];
        too_big.push(0x02);
        assert!(Reader::new(&too_big).varint("x").is_err());
        assert!(Reader::new(&[0x80]).varint("x").is_err());
    }

    #[test]
    fn pack_unpack_every_width() {
        for width in 0..=64u32 {
            for count in [0usize, 1, 2, 7, 63, 64, 65, 200] {
                let mask = if width == 64 {
                    u64::MAX
                } else {
                    (1u64 << width) - 1
                };
                let values: Vec<u64> = (0..count as u64)
                    .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask)
                    .collect();
                let mut out = Vec::new();
                pack(values.iter().copied(), width, &mut out);
                assert_eq!(Some(out.len()), packed_len(count, width));
                let mut back = Vec::new();
                unpack(&out, count, width, |v| back.push(v));
                assert_eq!(back, values, "width {width} count {count}");
            }
        }
    }

    #[test]
    fn gcd_basics() {
        assert_eq!(gcd(0, 0), 0);
        assert_eq!(gcd(0, 5), 5);
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(u64::MAX, 3), 3);
        assert_eq!(gcd(1 << 63, 1 << 10), 1 << 10);
    }
}
