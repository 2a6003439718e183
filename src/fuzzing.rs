//! Entry points for the fuzz targets in `fuzz/` (a separate crate, so it can only reach the
//! public API). Not part of the supported API: hidden from the docs and free to change.
//!
//! Each function takes the fuzzer's bytes and panics only on a real bug (a broken invariant),
//! never on malformed input.

use crate::codec::{self, ColumnHint};

/// Decodes a column chunk of `n` values, `n` being the first two bytes (little-endian), from
/// the rest of `data`. When it decodes, re-encodes the values and checks that they round-trip.
pub fn column_chunk(data: &[u8]) {
    let (n, chunk) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return,
    };
    let mut values = Vec::new();
    let Ok(used) = codec::decode(chunk, n, &mut values) else {
        assert!(values.is_empty(), "a failed decode left values behind");
        return;
    };
    assert!(used <= chunk.len(), "consumed more bytes than given");
    assert_eq!(values.len(), n, "decoded value count");
    for hint in [
        ColumnHint::Timestamp,
        ColumnHint::Numeric,
        ColumnHint::Categorical,
    ] {
        let mut encoded = Vec::new();
        codec::encode(&values, hint, &mut encoded);
        assert!(encoded.len() <= 8 * n + 16, "encoding larger than raw");
        let mut back = Vec::new();
        assert_eq!(codec::decode(&encoded, n, &mut back), Ok(encoded.len()));
        assert_eq!(back, values, "round trip");
    }
}
