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
/// failure must be a corruption error. Random bytes rarely pass the checksums, so two more
/// shapes are tried: the same bytes with the trailer checksum made right, and a version-1
/// segment built around the bytes (`data[0]` columns, `data[1..3]` footer length, the rest
/// blocks then footer) with every checksum made right, so the footer parser and the chunk
/// decoders see the fuzzer's bytes.
pub fn segment_file(data: &[u8]) {
    use crate::segment::{Decoded, Segment, HEADER_LEN, SEGMENT_MAGIC, TRAILER_LEN};

    let read_all = |file: Vec<u8>| -> Option<Segment> {
        let seg = Segment::open("fuzz.hseg", bytes::Bytes::from(file)).ok()?;
        let all: Vec<usize> = (0..seg.ncols()).collect();
        for pos in 0..seg.entries().len() {
            let mut d = Decoded::default();
            if let Err(e) = seg.read(pos, &all, &mut d) {
                assert!(e.is_corruption(), "{e}");
            }
        }
        Some(seg)
    };
    let trailer = |file: &mut Vec<u8>, footer_len: usize, version: u32| {
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(file.get(..HEADER_LEN).unwrap_or(&[])),
            file.get(file.len() - footer_len..).unwrap_or(&[]),
        );
        file.extend_from_slice(&(footer_len as u32).to_le_bytes());
        file.extend_from_slice(&crc.to_le_bytes());
        file.extend_from_slice(&version.to_le_bytes());
        file.extend_from_slice(&SEGMENT_MAGIC);
    };
    // 1. As given.
    read_all(data.to_vec());
    // 2. As given, with the trailer's checksum and length made right.
    if data.len() >= HEADER_LEN + TRAILER_LEN {
        let body = data.get(..data.len() - TRAILER_LEN).unwrap_or(&[]);
        let footer_len =
            usize::from(data.first().copied().unwrap_or(0)).min(body.len() - HEADER_LEN);
        let version = if data.get(1).is_some_and(|b| b & 1 == 1) {
            2
        } else {
            1
        };
        let mut file = body.to_vec();
        trailer(&mut file, footer_len, version);
        read_all(file);
    }
    // 3. A version-1 segment around the bytes, every checksum right.
    let [ncols, l0, l1, rest @ ..] = data else {
        return;
    };
    let ncols = u16::from(*ncols % 12);
    let footer_len = usize::from(u16::from_le_bytes([*l0, *l1])).min(rest.len());
    let mut file = Vec::with_capacity(HEADER_LEN + rest.len() + TRAILER_LEN);
    file.extend_from_slice(&SEGMENT_MAGIC);
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&0u16.to_le_bytes());
    file.extend_from_slice(&ncols.to_le_bytes());
    file.extend_from_slice(&0i64.to_le_bytes());
    file.extend_from_slice(rest);
    trailer(&mut file, footer_len, 1);
    let Some(seg) = read_all(file.clone()) else {
        return;
    };
    // Make every block's checksum right too, and read again.
    for e in seg.entries() {
        let start = e.offset as usize;
        let end = start + e.block_len as usize;
        if end > file.len() || end < start + 4 {
            return;
        }
        let crc = crc32c::crc32c(file.get(start..end - 4).unwrap_or(&[]));
        if let Some(slot) = file.get_mut(end - 4..end) {
            slot.copy_from_slice(&crc.to_le_bytes());
        }
    }
    read_all(file);
}

/// Decodes `data` as a manifest, a registry and a schema: as given, and wrapped in a valid
/// envelope so the payload parsers see the fuzzer's bytes. Never panics.
pub fn metadata_files(data: &[u8]) {
    use crate::files::{encode_envelope, MANIFEST_MAGIC, REGISTRY_MAGIC, SCHEMA_MAGIC};

    for bytes in [data.to_vec(), encode_envelope(&MANIFEST_MAGIC, 1, data)] {
        if let Ok(m) = crate::manifest::Manifest::decode(&bytes) {
            // What decodes re-encodes to something that decodes the same.
            let again = m.encode().expect("encode");
            assert_eq!(crate::manifest::Manifest::decode(&again).ok(), Some(m));
        }
    }
    let _ = crate::registry::Registry::decode("fuzz.hreg", data);
    let _ =
        crate::registry::Registry::decode("fuzz.hreg", &encode_envelope(&REGISTRY_MAGIC, 1, data));
    // A registry payload is varint(raw length) + zstd frame: compress the bytes so the body
    // parser sees them.
    if let Ok(packed) = zstd::bulk::compress(data, 1) {
        let mut payload = Vec::new();
        crate::files::varint::put_u64(&mut payload, data.len() as u64);
        payload.extend_from_slice(&packed);
        let _ = crate::registry::Registry::decode(
            "fuzz.hreg",
            &encode_envelope(&REGISTRY_MAGIC, 1, &payload),
        );
    }
    let storage = crate::storage::SimStorage::new();
    let _ = crate::files::write_atomic(
        &storage,
        crate::files::SCHEMA,
        &encode_envelope(&SCHEMA_MAGIC, 1, data),
    );
    let _ = crate::Db::verify_storage(&storage);
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

/// Runs a sequence of operations decoded from `data` (appends with duplicates and late rows,
/// flush, compact, reopen, power cut at a chosen sync) against the engine on a simulated disk
/// and against a plain map; panics when they disagree.
pub fn operations(data: &[u8]) {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use crate::storage::{SimFault, SimStorage};
    use crate::{Batch, Db, Options, Schema, SyncPolicy, UnknownDevices, Values};

    type Model = BTreeMap<(usize, String, i64), Vec<i64>>;
    let schema = Schema::washing_machine();
    let opts = || Options {
        schema: Some(Schema::washing_machine()),
        sync: SyncPolicy::Always,
        unknown_devices: UnknownDevices::AutoRegister,
        memtable_rows: 64,
        compaction_trigger: 3,
        background: false,
        ..Options::default()
    };
    let read_all = |db: &Db| -> Model {
        let mut m = Model::new();
        for (s, def) in schema.streams.iter().enumerate() {
            db.scan(&def.name, i64::MIN..i64::MAX, &[], |rows| {
                let serial = db.device(rows.device).map(|d| d.serial).unwrap_or_default();
                for (i, &ts) in rows.ts.iter().enumerate() {
                    let v = rows
                        .columns
                        .iter()
                        .map(|c| c.get(i).copied().unwrap_or(0))
                        .collect();
                    assert!(m.insert((s, serial.clone(), ts), v).is_none(), "row twice");
                }
            })
            .expect("scan");
        }
        m
    };
    let mut sim = SimStorage::new();
    let Ok(mut db) = Db::open_with(Arc::new(sim.clone()), opts()) else {
        return;
    };
    let mut model = Model::new();
    let mut bytes = data.iter().copied();
    let mut seed = 0x1234_5678_u64;
    let next = |seed: &mut u64| {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *seed >> 33
    };
    while let Some(op) = bytes.next() {
        match op % 8 {
            0..=3 => {
                let s = usize::from(op & 0x10 != 0);
                let n = 1 + usize::from(bytes.next().unwrap_or(1) % 24);
                let devices = 1 + u64::from(bytes.next().unwrap_or(0) % 5);
                let day = i64::from(bytes.next().unwrap_or(0) % 50);
                let def = &schema.streams[s];
                let mut batch = Batch::new(&def.name);
                let mut stored: Vec<Vec<i64>> = vec![Vec::new(); def.columns.len()];
                for _ in 0..n {
                    batch
                        .device
                        .push(format!("WM-{}", next(&mut seed) % devices));
                    batch.ts.push(
                        1_735_689_600_000
                            + day * 86_400_000
                            + (next(&mut seed) % 50) as i64 * 60_000,
                    );
                    for (c, col) in def.columns.iter().enumerate() {
                        let v = match &col.kind {
                            crate::ColumnKind::Categorical { categories } => {
                                (next(&mut seed) % categories.len() as u64) as i64
                            }
                            crate::ColumnKind::Numeric { .. } => (next(&mut seed) % 100) as i64,
                        };
                        stored[c].push(v);
                    }
                }
                for (c, col) in def.columns.iter().enumerate() {
                    let v = if col.is_categorical() {
                        Values::Text(
                            stored[c]
                                .iter()
                                .map(|&v| col.category_name(v).unwrap_or("").to_string())
                                .collect(),
                        )
                    } else {
                        Values::Float(stored[c].iter().map(|&v| col.decode_f64(v)).collect())
                    };
                    batch.columns.push((col.name.clone(), v));
                }
                match db.append(&batch) {
                    Ok(_) => {
                        for i in 0..n {
                            let key = (s, batch.device[i].clone(), batch.ts[i]);
                            model
                                .entry(key)
                                .or_insert_with(|| stored.iter().map(|c| c[i]).collect());
                        }
                    }
                    Err(e) => panic!("append failed without a fault: {e}"),
                }
            }
            4 => db.flush().expect("flush"),
            5 => {
                db.compact().expect("compact");
            }
            6 => {
                drop(db);
                db = Db::open_with(Arc::new(sim.clone()), opts()).expect("reopen");
                assert_eq!(read_all(&db), model, "after reopen");
            }
            _ => {
                // Power cut a few syncs ahead, then keep flushing until it hits.
                let k = 1 + u64::from(bytes.next().unwrap_or(0) % 8);
                sim.set_fault(Some(SimFault::PowerCut(sim.sync_count() + k)));
                while !sim.is_dead() {
                    if db.flush().is_err() || db.compact().is_err() {
                        break;
                    }
                    if !sim.is_dead() {
                        // Nothing left to sync: force syncs with a registration.
                        if db.register(crate::DeviceInfo::unknown("WM-cut")).is_err() {
                            break;
                        }
                    }
                }
                drop(db);
                let torn = u64::from(bytes.next().unwrap_or(0));
                sim = sim.crash(|_, len| (torn as usize).min(len));
                db = Db::open_with(Arc::new(sim.clone()), opts()).expect("recover after power cut");
                assert_eq!(read_all(&db), model, "after power cut");
            }
        }
    }
    assert_eq!(read_all(&db), model, "at the end");
}

/// Writes `data` as a log file into a simulated disk and runs WAL recovery over it; must
/// never panic. The first byte chooses the layout: bit 0 raw bytes (else after a valid header),
/// bit 1 a valid two-record file before it (so the fuzzed file is the last of two), bit 2 an
/// empty valid file after it (so the fuzzed file is not the last); the second byte is the
/// checkpoint. When recovery succeeds, the log must accept an append at the LSN recovery
/// reported and give it back on the next recovery.
pub fn wal_records(data: &[u8]) {
    use std::sync::Arc;

    use crate::storage::{SimStorage, Storage};
    use crate::wal::{self, SyncPolicy};

    let (flags, checkpoint, body) = match data {
        [f, c, rest @ ..] => (*f, u64::from(*c % 8), rest),
        _ => return,
    };
    let sim = SimStorage::new();
    let put = |name: &str, bytes: &[u8]| {
        if let Ok(mut f) = sim.create(name) {
            let _ = f.append(bytes);
            let _ = f.sync_data();
        }
    };
    let mut first = 1;
    if flags & 2 != 0 {
        let mut bytes = wal::encode_header(1).to_vec();
        let mut rec = Vec::new();
        for lsn in 1..=2 {
            wal::encode_record(&mut rec, lsn, b"fuzz");
            bytes.extend_from_slice(&rec);
        }
        put(&wal::file_name(1), &bytes);
        first = 3;
    }
    let mut fuzzed = Vec::new();
    if flags & 1 == 0 {
        fuzzed.extend_from_slice(&wal::encode_header(first));
    }
    fuzzed.extend_from_slice(body);
    put(&wal::file_name(first), &fuzzed);
    if flags & 4 != 0 {
        // Names sort after the fuzzed file for any first LSN below this.
        put(&wal::file_name(1 << 40), &wal::encode_header(1 << 40));
    }
    let _ = sim.sync_dir();

    let Ok(rec) = wal::recover(&sim, checkpoint, |_, _| Ok(())) else {
        return;
    };
    assert!(
        rec.last_lsn >= checkpoint,
        "recovery went below the checkpoint"
    );
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let log = match wal::Wal::open(storage, rec.last_lsn + 1, SyncPolicy::Never) {
        Ok(log) => log,
        Err(e) => panic!("recovered log does not reopen: {e}"),
    };
    let lsn = match log.append(b"after") {
        Ok(lsn) => lsn,
        Err(e) => panic!("append after recovery failed: {e}"),
    };
    assert_eq!(lsn, rec.last_lsn + 1);
    if let Err(e) = log.sync_all() {
        panic!("sync after recovery failed: {e}");
    }
    let mut last = None;
    let again = wal::recover(&sim, checkpoint, |lsn, p| {
        last = Some((lsn, p.to_vec()));
        Ok(())
    });
    match again {
        Ok(r) => {
            assert_eq!(r.last_lsn, lsn);
            assert_eq!(r.truncated, None, "second recovery cut again");
            assert_eq!(last, Some((lsn, b"after".to_vec())));
        }
        Err(e) => panic!("second recovery failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wal_records_smoke() {
        super::wal_records(&[]);
        super::wal_records(&[0, 0]);
        super::wal_records(&[2, 1, 5, 0, 0, 0]);
        super::wal_records(&[7, 3, 0xff, 0xff, 0xff]);
        for len in 0..64u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(97)).collect();
            for flags in 0..8 {
                let mut d = vec![flags, len];
                d.extend_from_slice(&data);
                super::wal_records(&d);
            }
        }
    }
}
