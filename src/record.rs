//! The logical content of a write-ahead log record: one accepted batch, with the devices it
//! registered. Registration and rows share a record, so they are durable together.
//!
//! Payload layout (after the log's own framing): format tag `1` (u8); registration count
//! (varint) and that many (device id varint, device record); stream index (varint); declared
//! column count (varint); row count (varint); then column chunks encoded by
//! [`crate::codec`]: device ids, timestamps, then each declared column.
//!
//! An erasure is a record of its own: format tag `2` (u8); count (varint) and that many
//! device ids (varint). Replaying it erases the devices again (registry slot, memtable rows,
//! rollup contributions), so rows logged before it never come back.

use crate::codec;
use crate::files::varint;
use crate::registry::{self, DeviceInfo};

const RECORD_FORMAT: u8 = 1;
const ERASE_FORMAT: u8 = 2;
/// Most rows a record may claim; guards allocation when decoding damaged bytes.
pub(crate) const MAX_RECORD_ROWS: u64 = 1 << 24;

/// A decoded log record.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct LogRecord {
    pub registrations: Vec<(u32, DeviceInfo)>,
    pub stream: u16,
    pub device: Vec<i64>,
    pub ts: Vec<i64>,
    pub cols: Vec<Vec<i64>>,
    /// Devices erased by this record (an erasure record holds nothing else).
    pub erased: Vec<u32>,
}

impl LogRecord {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        if !self.erased.is_empty() {
            out.push(ERASE_FORMAT);
            varint::put_u64(out, self.erased.len() as u64);
            for &id in &self.erased {
                varint::put_u64(out, u64::from(id));
            }
            return;
        }
        encode_parts(
            out,
            &self.registrations,
            self.stream,
            &self.device,
            &self.ts,
            &self.cols,
        );
    }

    /// Decodes a payload; on failure returns the byte offset within the payload and what was
    /// wrong.
    pub(crate) fn decode(payload: &[u8]) -> Result<LogRecord, (usize, String)> {
        let mut r = varint::Reader::new(payload);
        let fail = |r: &varint::Reader<'_>, what: &str| (r.pos(), what.to_string());
        match r.u8() {
            Some(RECORD_FORMAT) => {}
            Some(ERASE_FORMAT) => {
                let n = r.u64().ok_or_else(|| fail(&r, "truncated erasure count"))?;
                if n == 0 || n > payload.len() as u64 {
                    return Err(fail(&r, "bad erasure count"));
                }
                let mut erased = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    erased.push(r.u32().ok_or_else(|| fail(&r, "bad device id"))?);
                }
                if !r.is_empty() {
                    return Err(fail(&r, "trailing bytes after record"));
                }
                return Ok(LogRecord {
                    erased,
                    ..LogRecord::default()
                });
            }
            _ => return Err((0, "unknown record format".into())),
        }
        let nreg = r
            .u64()
            .ok_or_else(|| fail(&r, "truncated registration count"))?;
        if nreg > payload.len() as u64 {
            return Err(fail(&r, "registration count exceeds record"));
        }
        let mut registrations = Vec::with_capacity(nreg as usize);
        for _ in 0..nreg {
            let id = r.u32().ok_or_else(|| fail(&r, "bad device id"))?;
            let info =
                registry::decode_device(&mut r).ok_or_else(|| fail(&r, "bad device record"))?;
            registrations.push((id, info));
        }
        let stream = r
            .u64()
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| fail(&r, "bad stream index"))?;
        let ncols = r
            .u64()
            .filter(|&n| n <= 255)
            .ok_or_else(|| fail(&r, "bad column count"))? as usize;
        let rows = r
            .u64()
            .filter(|&n| n <= MAX_RECORD_ROWS)
            .ok_or_else(|| fail(&r, "bad row count"))? as usize;
        let mut pos = r.pos();
        let mut chunk = |what: &str| -> Result<Vec<i64>, (usize, String)> {
            let rest = payload.get(pos..).unwrap_or(&[]);
            let mut v = Vec::new();
            let used = codec::decode(rest, rows, &mut v)
                .map_err(|e| (pos + e.offset, format!("{what}: {}", e.what)))?;
            if v.len() != rows {
                return Err((pos, format!("{what}: wrong value count")));
            }
            pos += used;
            Ok(v)
        };
        let device = chunk("device ids")?;
        let ts = chunk("timestamps")?;
        let mut cols = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            cols.push(chunk("column")?);
        }
        if pos != payload.len() {
            return Err((pos, "trailing bytes after record".into()));
        }
        Ok(LogRecord {
            registrations,
            stream,
            device,
            ts,
            cols,
            erased: Vec::new(),
        })
    }
}

/// Encodes a record from its parts, so the write path can log a batch's columns without
/// copying them into a [`LogRecord`].
pub(crate) fn encode_parts(
    out: &mut Vec<u8>,
    registrations: &[(u32, DeviceInfo)],
    stream: u16,
    device: &[i64],
    ts: &[i64],
    cols: &[Vec<i64>],
) {
    out.push(RECORD_FORMAT);
    varint::put_u64(out, registrations.len() as u64);
    for (id, info) in registrations {
        varint::put_u64(out, u64::from(*id));
        registry::encode_device(out, info);
    }
    varint::put_u64(out, u64::from(stream));
    varint::put_u64(out, cols.len() as u64);
    varint::put_u64(out, ts.len() as u64);
    codec::encode_fast(device, out);
    codec::encode_fast(ts, out);
    for c in cols {
        codec::encode_fast(c, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let rec = LogRecord {
            registrations: vec![(3, DeviceInfo::unknown("WM-3"))],
            stream: 1,
            device: vec![3, 3, 0],
            ts: vec![100, 200, 150],
            cols: vec![vec![1, 2, 3], vec![-5, 0, 5]],
            erased: Vec::new(),
        };
        let mut b = Vec::new();
        rec.encode(&mut b);
        assert_eq!(LogRecord::decode(&b), Ok(rec));
        for cut in 0..b.len() {
            assert!(LogRecord::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn erasure_round_trip() {
        let rec = LogRecord {
            erased: vec![7, 0, 300_000],
            ..LogRecord::default()
        };
        let mut b = Vec::new();
        rec.encode(&mut b);
        assert_eq!(b[0], ERASE_FORMAT);
        assert_eq!(LogRecord::decode(&b), Ok(rec));
        for cut in 0..b.len() {
            assert!(LogRecord::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        b.push(0);
        assert!(LogRecord::decode(&b).is_err(), "trailing byte");
    }
}
