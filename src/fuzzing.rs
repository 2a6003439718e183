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

/// Opens `data` as a segment file and reads every device block: must never panic, and every
/// failure must be a corruption error.
pub fn segment_file(data: &[u8]) {
    let bytes = bytes::Bytes::copy_from_slice(data);
    let Ok(seg) = crate::segment::Segment::open("fuzz.hseg", bytes) else {
        return;
    };
    let all: Vec<usize> = (0..seg.ncols()).collect();
    for pos in 0..seg.entries().len() {
        let mut d = crate::segment::Decoded::default();
        if let Err(e) = seg.read(pos, &all, &mut d) {
            assert!(e.is_corruption(), "{e}");
        }
    }
}

/// Decodes `data` as a manifest, a registry and a schema envelope: never panics.
pub fn metadata_files(data: &[u8]) {
    if let Ok(m) = crate::manifest::Manifest::decode(data) {
        // What decodes re-encodes to something that decodes the same.
        let again = m.encode().expect("encode");
        assert_eq!(crate::manifest::Manifest::decode(&again).ok(), Some(m));
    }
    let _ = crate::registry::Registry::decode("fuzz.hreg", data);
}

/// Decodes `data` as the payload of a log record: never panics; what decodes re-encodes to
/// bytes that decode and re-encode identically (bytes are compared, so NaN attributes do not
/// make a false alarm).
pub fn log_record(data: &[u8]) {
    if let Ok(rec) = crate::record::LogRecord::decode(data) {
        let mut again = Vec::new();
        rec.encode(&mut again);
        let back = crate::record::LogRecord::decode(&again).expect("re-encoded record decodes");
        let mut twice = Vec::new();
        back.encode(&mut twice);
        assert_eq!(again, twice);
    }
}
