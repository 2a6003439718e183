//! Every on-disk name, and the two ways a file is published.
//!
//! Names are built and parsed here only (like InfluxDB 3's `paths.rs`), so no module spells a
//! file name by hand. Small metadata files (schema, manifest, registry) share one envelope:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic, names the file kind (`HRTHSCH\0`, `HRTHMAN\0`, `HRTHREG\0`) |
//! | 8 | 4 | format version, u32 LE |
//! | 12 | 8 | payload length `n`, u64 LE |
//! | 20 | n | payload |
//! | 20+n | 4 | CRC32C of bytes `0..20+n`, u32 LE |
//!
//! Such files are published with [`write_atomic`]: write a temporary file, fsync it, rename
//! it over the final name, fsync the directory. A crash leaves either the old or the new file.

use crate::error::{Error, Result};
use crate::storage::Storage;

/// The schema file (written once, at creation).
pub(crate) const SCHEMA: &str = "SCHEMA";
/// The manifest: the set of live files and the log checkpoint.
pub(crate) const MANIFEST: &str = "MANIFEST";
/// Held with an exclusive advisory lock while a process has the database open; empty.
pub(crate) const LOCK: &str = "LOCK";
/// Privacy settings: k-anonymity and the audit log's pseudonym key (metadata envelope).
pub(crate) const PRIVACY: &str = "PRIVACY";
/// The audit log (append-only, checksummed records; see `privacy::audit`).
pub(crate) const AUDIT: &str = "audit.log";
/// Retention policies per stream (metadata envelope; see `privacy::retention`).
pub(crate) const RETENTION: &str = "RETENTION";
/// Suffix of files being written before they are renamed into place.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

pub(crate) const SCHEMA_MAGIC: [u8; 8] = *b"HRTHSCH\0";
pub(crate) const MANIFEST_MAGIC: [u8; 8] = *b"HRTHMAN\0";
pub(crate) const REGISTRY_MAGIC: [u8; 8] = *b"HRTHREG\0";
pub(crate) const PRIVACY_MAGIC: [u8; 8] = *b"HRTHPRV\0";
pub(crate) const RETENTION_MAGIC: [u8; 8] = *b"HRTHRET\0";

const MAGIC_LEN: usize = 8;
const VERSION_OFFSET: usize = MAGIC_LEN;
const LEN_OFFSET: usize = VERSION_OFFSET + std::mem::size_of::<u32>();
pub(crate) const ENVELOPE_HEADER: usize = LEN_OFFSET + std::mem::size_of::<u64>();
const CRC_LEN: usize = std::mem::size_of::<u32>();

/// Name of segment file `id`.
pub(crate) fn segment_name(id: u64) -> String {
    format!("seg-{id:010}.hseg")
}

/// Name of the rollup file of segment `id`.
pub(crate) fn rollup_name(id: u64) -> String {
    format!("seg-{id:010}.hrlp")
}

/// Segment id of a rollup file name, if it is one.
pub(crate) fn parse_rollup_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".hrlp")?
        .parse()
        .ok()
}

/// Name of device-summary file `id`: the device week cells of a (stream, window) whose raw
/// rows retention dropped while its device-rollup period runs (the rollup file format with
/// an empty fleet section; see `privacy::retention`).
pub(crate) fn summary_name(id: u64) -> String {
    format!("sum-{id:010}.hrlp")
}

/// Id of a device-summary file name, if it is one.
pub(crate) fn parse_summary_name(name: &str) -> Option<u64> {
    name.strip_prefix("sum-")?
        .strip_suffix(".hrlp")?
        .parse()
        .ok()
}

/// Name of registry generation `generation`.
pub(crate) fn registry_name(generation: u64) -> String {
    format!("registry-{generation:010}.hreg")
}

/// Id of a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".hseg")?
        .parse()
        .ok()
}

/// Generation of a registry file name, if it is one.
pub(crate) fn parse_registry_name(name: &str) -> Option<u64> {
    name.strip_prefix("registry-")?
        .strip_suffix(".hreg")?
        .parse()
        .ok()
}

/// Frames a metadata payload in the envelope.
pub(crate) fn encode_envelope(magic: &[u8; 8], version: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_HEADER + payload.len() + CRC_LEN);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Checks an envelope and returns its version and payload.
pub(crate) fn decode_envelope<'a>(
    file: &str,
    bytes: &'a [u8],
    magic: &[u8; 8],
    max_version: u32,
) -> Result<(u32, &'a [u8])> {
    if bytes.len() < ENVELOPE_HEADER + CRC_LEN {
        return Err(Error::corruption(
            file,
            0,
            format!("file is {} bytes, shorter than its header", bytes.len()),
        ));
    }
    if bytes.get(..MAGIC_LEN) != Some(&magic[..]) {
        return Err(Error::corruption(file, 0, "wrong magic bytes"));
    }
    let len = le_u64(bytes, LEN_OFFSET)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n == bytes.len() - ENVELOPE_HEADER - CRC_LEN)
        .ok_or_else(|| {
            Error::corruption(
                file,
                LEN_OFFSET as u64,
                "payload length does not match file size",
            )
        })?;
    let end = ENVELOPE_HEADER + len;
    let stored = le_u32(bytes, end)
        .ok_or_else(|| Error::corruption(file, end as u64, "checksum missing"))?;
    let body = bytes
        .get(..end)
        .ok_or_else(|| Error::corruption(file, 0, "truncated"))?;
    if crc32c::crc32c(body) != stored {
        return Err(Error::corruption(file, end as u64, "checksum mismatch"));
    }
    let version = le_u32(bytes, VERSION_OFFSET)
        .ok_or_else(|| Error::corruption(file, VERSION_OFFSET as u64, "truncated"))?;
    if version == 0 || version > max_version {
        return Err(Error::corruption(
            file,
            VERSION_OFFSET as u64,
            format!("format version {version} is not supported (max {max_version})"),
        ));
    }
    let payload = bytes
        .get(ENVELOPE_HEADER..end)
        .ok_or_else(|| Error::corruption(file, ENVELOPE_HEADER as u64, "truncated"))?;
    Ok((version, payload))
}

/// Writes `data` to `name` crash-safely: temporary file, fsync, rename, fsync the directory.
pub(crate) fn write_atomic(storage: &dyn Storage, name: &str, data: &[u8]) -> Result<()> {
    let tmp = format!("{name}{TEMP_SUFFIX}");
    let mut f = storage
        .create(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.append(data).map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_data().map_err(|e| Error::io("fsync", &tmp, e))?;
    drop(f);
    storage
        .rename(&tmp, name)
        .map_err(|e| Error::io("rename", name, e))?;
    storage
        .sync_dir()
        .map_err(|e| Error::io("fsync directory", storage.describe(), e))
}

/// Writes a new, never-replaced file (a segment): write, fsync, fsync the directory.
pub(crate) fn write_new(storage: &dyn Storage, name: &str, data: &[u8]) -> Result<()> {
    let mut f = storage
        .create(name)
        .map_err(|e| Error::io("create", name, e))?;
    f.append(data).map_err(|e| Error::io("write", name, e))?;
    f.sync_data().map_err(|e| Error::io("fsync", name, e))?;
    drop(f);
    storage
        .sync_dir()
        .map_err(|e| Error::io("fsync directory", storage.describe(), e))
}

/// Reads a whole file, mapping I/O errors to typed errors.
/// Decompresses a zstd frame that should hold exactly `raw_len` bytes; `None` when it does
/// not. Memory grows with the bytes actually produced, not with `raw_len`: a damaged length
/// in a small file cannot make the reader allocate gigabytes up front.
pub(crate) fn unzstd(compressed: &[u8], raw_len: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(raw_len.min(compressed.len().saturating_mul(8).max(4096)));
    let decoder = zstd::stream::read::Decoder::with_buffer(compressed).ok()?;
    decoder
        .take(raw_len as u64 + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() == raw_len).then_some(out)
}

pub(crate) fn read(storage: &dyn Storage, name: &str) -> Result<bytes::Bytes> {
    storage.read(name).map_err(|e| Error::io("read", name, e))
}

/// Little-endian varint helpers shared by the binary payloads.
pub(crate) mod varint {
    /// Appends `v` as an LEB128 varint.
    pub(crate) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Appends `v` zigzag-encoded.
    pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
        put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
    }

    /// Appends a `u128` as an LEB128 varint (at most 19 bytes).
    pub(crate) fn put_u128(out: &mut Vec<u8>, mut v: u128) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Appends a length-prefixed byte string.
    pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
        put_u64(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    /// A cursor over a byte slice; every read fails cleanly at the end.
    #[derive(Debug, Clone)]
    pub(crate) struct Reader<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        pub(crate) fn new(buf: &'a [u8]) -> Self {
            Reader { buf, pos: 0 }
        }
        pub(crate) fn pos(&self) -> usize {
            self.pos
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.pos >= self.buf.len()
        }
        #[inline(always)]
        pub(crate) fn u64(&mut self) -> Option<u64> {
            // One byte is the common case (counts, small deltas).
            let b = *self.buf.get(self.pos)?;
            if b < 0x80 {
                self.pos += 1;
                return Some(u64::from(b));
            }
            // Two bytes next (weekly sums, slot counts of busy weeks).
            if let Some(&b2) = self.buf.get(self.pos + 1) {
                if b2 < 0x80 {
                    self.pos += 2;
                    return Some(u64::from(b & 0x7f) | u64::from(b2) << 7);
                }
            }
            self.u64_long()
        }

        fn u64_long(&mut self) -> Option<u64> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let b = *self.buf.get(self.pos)?;
                self.pos += 1;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Some(v);
                }
            }
            None
        }
        pub(crate) fn u128(&mut self) -> Option<u128> {
            let mut v = 0u128;
            for shift in (0..128).step_by(7) {
                let b = *self.buf.get(self.pos)?;
                self.pos += 1;
                v |= u128::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Some(v);
                }
            }
            None
        }
        #[inline]
        pub(crate) fn i64(&mut self) -> Option<i64> {
            let u = self.u64()?;
            Some(((u >> 1) as i64) ^ -((u & 1) as i64))
        }
        pub(crate) fn u32(&mut self) -> Option<u32> {
            u32::try_from(self.u64()?).ok()
        }
        pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
            let n = usize::try_from(self.u64()?).ok()?;
            let end = self.pos.checked_add(n)?;
            let s = self.buf.get(self.pos..end)?;
            self.pos = end;
            Some(s)
        }
        pub(crate) fn str(&mut self) -> Option<&'a str> {
            std::str::from_utf8(self.bytes()?).ok()
        }
        pub(crate) fn f64(&mut self) -> Option<f64> {
            let end = self.pos.checked_add(8)?;
            let s = self.buf.get(self.pos..end)?;
            self.pos = end;
            Some(f64::from_le_bytes(s.try_into().ok()?))
        }
        pub(crate) fn u8(&mut self) -> Option<u8> {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            Some(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    #[test]
    fn a_zstd_frame_decompresses_only_to_its_declared_length() {
        let data = vec![7u8; 100_000];
        let frame = zstd::bulk::compress(&data, 3).expect("compress");
        assert_eq!(unzstd(&frame, data.len()).as_deref(), Some(&data[..]));
        assert_eq!(unzstd(&frame, data.len() - 1), None);
        assert_eq!(unzstd(&frame, data.len() + 1), None);
        assert_eq!(unzstd(&frame[..frame.len() / 2], data.len()), None);
        // A length no machine could allocate (read from a damaged file): refused after
        // decompressing what is there, not by allocating it first (which aborts).
        assert_eq!(unzstd(&frame, 1 << 60), None);
    }

    #[test]
    fn envelope_round_trip_and_every_flip_is_caught() {
        let data = encode_envelope(&MANIFEST_MAGIC, 1, b"{\"x\":1}");
        let (v, p) = decode_envelope("m", &data, &MANIFEST_MAGIC, 1).expect("valid");
        assert_eq!((v, p), (1, &b"{\"x\":1}"[..]));
        for i in 0..data.len() {
            let mut d = data.clone();
            d[i] ^= 0x10;
            let err = decode_envelope("m", &d, &MANIFEST_MAGIC, 1).expect_err("flip caught");
            assert!(err.is_corruption(), "{err}");
        }
        assert!(decode_envelope("m", &data[..data.len() - 1], &MANIFEST_MAGIC, 1).is_err());
    }

    #[test]
    fn names_parse_back() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_registry_name(&registry_name(7)), Some(7));
        assert_eq!(parse_segment_name("MANIFEST"), None);
    }

    #[test]
    fn atomic_write_replaces() {
        let sim = SimStorage::new();
        write_atomic(&sim, "A", b"one").expect("write");
        write_atomic(&sim, "A", b"two").expect("write");
        assert_eq!(&sim.read("A").expect("read")[..], b"two");
        assert_eq!(sim.list().expect("list"), vec!["A".to_string()]);
    }

    #[test]
    fn varints_round_trip() {
        let mut b = Vec::new();
        for v in [0i64, 1, -1, i64::MAX, i64::MIN, 300, -300] {
            varint::put_i64(&mut b, v);
        }
        let mut r = varint::Reader::new(&b);
        for v in [0i64, 1, -1, i64::MAX, i64::MIN, 300, -300] {
            assert_eq!(r.i64(), Some(v));
        }
        assert!(r.is_empty());
        assert_eq!(r.u64(), None);
    }
}
