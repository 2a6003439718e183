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
    // Version 1 (every slot live) and version 2 (a state byte per slot).
    for version in [1, 2] {
        let _ = crate::registry::Registry::decode(
            "fuzz.hreg",
            &encode_envelope(&REGISTRY_MAGIC, version, data),
        );
        // A registry payload is varint(raw length) + zstd frame: compress the bytes so the
        // body parser sees them.
        if let Ok(packed) = zstd::bulk::compress(data, 1) {
            let mut payload = Vec::new();
            crate::files::varint::put_u64(&mut payload, data.len() as u64);
            payload.extend_from_slice(&packed);
            if let Ok(reg) = crate::registry::Registry::decode(
                "fuzz.hreg",
                &encode_envelope(&REGISTRY_MAGIC, version, &payload),
            ) {
                // What decodes re-encodes to something that decodes to the same bytes.
                let again = reg.encode().expect("encode");
                let back = crate::registry::Registry::decode("fuzz.hreg", &again)
                    .expect("re-encoded registry decodes");
                assert_eq!(back.encode().expect("encode"), again);
            }
        }
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
            4 if op & 0x20 != 0 => {
                db.purge().expect("purge");
                assert_eq!(read_all(&db), model, "after purge");
            }
            4 => db.flush().expect("flush"),
            5 if op & 0x20 != 0 => {
                let serial = format!("WM-{}", bytes.next().unwrap_or(0) % 5);
                match db.erase(&serial) {
                    Ok(_) => model.retain(|k, _| k.1 != serial),
                    Err(crate::Error::Input(crate::InputError::UnknownDevice { .. })) => {
                        assert!(model.keys().all(|k| k.1 != serial), "{serial} not found");
                    }
                    Err(e) => panic!("erase failed without a fault: {e}"),
                }
                assert_eq!(read_all(&db), model, "after erase");
            }
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

/// Opens `data` as a segment's rollup file (`seg-<id>.hrlp`) and decodes every device blob
/// in it: never panics, and every failure is a corruption error naming the file. Random
/// bytes rarely pass the checksum, so three shapes are tried: (a) as given; (b) as given with
/// the trailer made right (magic, version, section lengths taken from the bytes when they
/// fit, and the checksum of header and fleet section), so the fleet section's varint and zstd
/// framing is parsed; (c) a well-formed file with no blobs whose fleet section is `data` as a
/// raw (uncompressed) payload, so the fleet decoder sees the fuzzer's bytes. Every file that
/// opens has its blobs checked, then again with every blob's checksum made right. `data` is
/// also decoded as one device blob, its checksum appended.
pub fn rollup_file(data: &[u8]) {
    use crate::files::varint;
    use crate::rollup::file::{HEADER_LEN, ROLLUP_MAGIC, ROLLUP_VERSION, TRAILER_LEN};

    let (layouts, _) = rollup_fixture();
    if let Some(layout) = &layouts.device {
        let mut blob = data.to_vec();
        blob.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
        rollup_blob(layout, &blob);
    }
    // The trailer of a file whose blob and fleet sections are given.
    let finish = |file: &mut Vec<u8>, blobs_len: usize| {
        let fleet_len = file.len() - HEADER_LEN - blobs_len;
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&file[..HEADER_LEN]),
            &file[HEADER_LEN + blobs_len..],
        );
        file.extend_from_slice(&(blobs_len as u64).to_le_bytes());
        file.extend_from_slice(&(fleet_len as u64).to_le_bytes());
        file.extend_from_slice(&crc.to_le_bytes());
        file.extend_from_slice(&ROLLUP_VERSION.to_le_bytes());
        file.extend_from_slice(&ROLLUP_MAGIC);
    };
    // (a) As given.
    rollup_open(data.to_vec());
    // (b) As given, the trailer made right.
    if data.len() >= HEADER_LEN + TRAILER_LEN {
        let t = data.len() - TRAILER_LEN;
        let room = t - HEADER_LEN;
        let stored = u64::from_le_bytes(data[t..t + 8].try_into().unwrap_or_default());
        let blobs_len = usize::try_from(stored)
            .ok()
            .filter(|&b| b <= room)
            .unwrap_or((stored % (room as u64 + 1)) as usize);
        let mut file = data[..t].to_vec();
        file[..8].copy_from_slice(&ROLLUP_MAGIC);
        file[8..12].copy_from_slice(&ROLLUP_VERSION.to_le_bytes());
        finish(&mut file, blobs_len);
        if let Some(blobs) = rollup_open(file.clone()) {
            // Every blob's checksum made right too: the blob decoder sees the bytes.
            for (at, len) in blobs {
                if len >= 4 {
                    let crc = crc32c::crc32c(&file[at..at + len - 4]);
                    file[at + len - 4..at + len].copy_from_slice(&crc.to_le_bytes());
                }
            }
            rollup_open(file);
        }
    }
    // (c) A well-formed file with no blobs, `data` its raw fleet payload.
    let mut file = Vec::with_capacity(HEADER_LEN + data.len() + 1 + TRAILER_LEN);
    file.extend_from_slice(&ROLLUP_MAGIC);
    file.extend_from_slice(&ROLLUP_VERSION.to_le_bytes());
    file.extend_from_slice(&[0; HEADER_LEN - 12]);
    varint::put_u64(&mut file, 0);
    file.extend_from_slice(data);
    finish(&mut file, 0);
    rollup_open(file);
}

/// The washing-machine preset's cycle-stream rollup layouts and an attribute table with a
/// few devices, built once.
fn rollup_fixture() -> &'static (crate::rollup::Layouts, crate::rollup::AttrTable) {
    use crate::rollup::{AttrTable, Layouts};
    use std::sync::OnceLock;

    static FIXTURE: OnceLock<(Layouts, AttrTable)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let layouts = Layouts::new(&crate::Schema::washing_machine().streams[0]);
        let mut attrs = AttrTable::default();
        for d in 0..12u32 {
            let mut info = crate::DeviceInfo::unknown(&format!("WM-{d}"));
            info.model = format!("M{}", d % 3);
            info.capacity_kg = [7.0, 8.0, 9.5][(d % 3) as usize];
            info.region = format!("R{}", d % 4);
            info.segment = ["A", "B"][(d % 2) as usize].into();
            attrs.set_device(d, &info);
        }
        (layouts, attrs)
    })
}

/// Opens `file` as a rollup file with the header it claims (so only the parsers decide) and
/// checks what opens: blobs tile the blob section in device order, each decodes as
/// [`rollup_blob`] says, `verify` agrees, the fleet state merges. Returns the blobs (offset,
/// length) when it opens.
fn rollup_open(file: Vec<u8>) -> Option<Vec<(usize, usize)>> {
    use crate::rollup::file::{SegmentRollup, HEADER_LEN, TRAILER_LEN};
    use crate::rollup::StreamRollups;

    const NAME: &str = "seg-fuzz.hrlp";
    let (layouts, attrs) = rollup_fixture();
    let field = |at: usize, n: usize| -> u64 {
        let mut b = [0u8; 8];
        if let Some(s) = file.get(at..at + n) {
            b[..n].copy_from_slice(s);
        }
        u64::from_le_bytes(b)
    };
    let expect = (field(12, 2) as u16, field(16, 8) as i64, field(24, 8));
    let blobs_len = file
        .len()
        .checked_sub(TRAILER_LEN)
        .map(|t| field(t, 8) as usize);
    // The same bytes as a device summary: opened or refused with a corruption error.
    match crate::rollup::file::open_summary(
        "sum-fuzz.hrlp",
        bytes::Bytes::from(file.clone()),
        layouts,
        expect,
    ) {
        Ok(_) => {}
        Err(crate::Error::Corruption { file, .. }) => {
            assert_eq!(file, "sum-fuzz.hrlp", "corruption error names another file")
        }
        Err(e) => panic!("a summary's open failed with a non-corruption error: {e}"),
    }
    let mut attrs = attrs.clone();
    let (seg, fleet) =
        match SegmentRollup::open(NAME, bytes::Bytes::from(file), layouts, &mut attrs, expect) {
            Ok(opened) => opened,
            Err(crate::Error::Corruption { file, .. }) => {
                assert_eq!(file, NAME, "corruption error names another file");
                return None;
            }
            Err(e) => panic!("open failed with a non-corruption error: {e}"),
        };
    let blobs_end = HEADER_LEN + blobs_len.expect("an opened file has a trailer");
    assert!(blobs_end + TRAILER_LEN <= seg.size() as usize);
    assert!(
        seg.devices().windows(2).all(|w| w[0] < w[1]),
        "device order"
    );
    let mut blobs = Vec::new();
    let mut end = HEADER_LEN;
    let mut cells = Some(0u64);
    for &d in seg.devices() {
        let (blob, at) = seg.blob(d).expect("a listed device has a blob");
        assert_eq!(at, end, "blobs do not tile their section");
        end = at + blob.len();
        assert!(end <= blobs_end, "blob beyond its section");
        blobs.push((at, blob.len()));
        if let Some(layout) = &layouts.device {
            let n = rollup_blob(layout, blob);
            cells = cells.zip(n).map(|(a, b)| a + b);
        }
    }
    assert_eq!(end, blobs_end, "blobs do not fill their section");
    match seg.verify(layouts) {
        Ok(n) => assert_eq!(Some(n), cells, "verify counts other cells"),
        Err(crate::Error::Corruption { file, .. }) => {
            assert_eq!(cells, None, "verify failed where every blob decodes");
            assert_eq!(file, NAME, "corruption error names another file");
        }
        Err(e) => panic!("verify failed with a non-corruption error: {e}"),
    }
    // What opening a database does next.
    StreamRollups::new(layouts).merge(layouts, &fleet);
    Some(blobs)
}

/// Decodes a device blob whole and in part; returns its cell count when it decodes. Cells
/// must come in strictly descending week order (each week a Monday), each with a count ≥ 1,
/// and non-zero slots in strictly ascending order within the layout; a blob that decodes
/// whole decodes any week range to exactly the cells in it, and the readers of a period
/// (without squares, slots below a bound) to those cells without what they skip.
fn rollup_blob(layout: &crate::rollup::device::DeviceLayout, blob: &[u8]) -> Option<u64> {
    use crate::rollup::{calendar, device};

    type Cell = (i64, u64, Vec<i64>, Vec<i128>, Vec<(u32, u64)>);
    let owned = |c: &device::CellView<'_>| -> Cell {
        (
            c.week,
            c.count,
            c.sums.to_vec(),
            c.sumsq.to_vec(),
            c.slots.to_vec(),
        )
    };
    let mut cells: Vec<Cell> = Vec::new();
    device::for_each_cell(layout, blob, i64::MIN, i64::MAX, |c| {
        if let Some(prev) = cells.last() {
            assert!(prev.0 > c.week, "weeks not strictly descending");
        }
        assert_eq!(calendar::weekday(c.week), 0, "a week starts on a Monday");
        assert!(c.count >= 1, "empty cell");
        assert_eq!(c.sums.len(), layout.sums.len());
        assert_eq!(c.sumsq.len(), layout.sums.len());
        assert!(c.sumsq.iter().all(|&q| q >= 0), "negative sum of squares");
        assert!(c.slots.len() <= layout.slots);
        assert!(
            c.slots.windows(2).all(|w| w[0].0 < w[1].0),
            "slots not strictly ascending"
        );
        assert!(
            c.slots
                .iter()
                .all(|&(s, n)| (s as usize) < layout.slots && n >= 1),
            "slot out of range or zero"
        );
        cells.push(owned(c));
    })
    .ok()?;
    if let (Some(last), Some(first)) = (cells.first(), cells.last()) {
        // Newest first: `w0` is the older of the two.
        let (w0, w1) = (cells[cells.len() * 2 / 3].0, cells[cells.len() / 3].0);
        for (from, to) in [
            (w0, w1),
            (w0, w1 + 1),
            (first.0 + 1, last.0),
            (w1, i64::MAX),
        ] {
            let mut got = Vec::new();
            device::for_each_cell(layout, blob, from, to, |c| got.push(owned(c)))
                .expect("a blob that decodes whole decodes in part");
            let want: Vec<Cell> = cells
                .iter()
                .filter(|c| c.0 >= from && c.0 < to)
                .cloned()
                .collect();
            assert_eq!(got, want, "cells of [{from}, {to})");
            let checked = device::CheckedBlob::check(blob).expect("the CRC matched above");
            for below in [layout.slots, layout.slots / 2] {
                let mut got = Vec::new();
                checked
                    .cells(layout, from, to, below, |c| got.push(owned(c)))
                    .expect("a blob that decodes whole decodes a period");
                let want: Vec<Cell> = want
                    .iter()
                    .map(|c| {
                        let slots = c.4.iter().filter(|s| (s.0 as usize) < below);
                        (c.0, c.1, c.2.clone(), Vec::new(), slots.copied().collect())
                    })
                    .collect();
                assert_eq!(got, want, "period [{from}, {to}), slots below {below}");
            }
        }
    }
    Some(cells.len() as u64)
}

/// Decodes `data` as an audit log, and the same bytes behind a valid header (so the record
/// parser sees them even when the header is wrong): never panics; a decoded log accounts for
/// every byte (valid records + torn tail), its sequence numbers are consecutive, and its
/// records encode back to exactly the valid bytes. Strict decoding accepts only logs without
/// a torn tail.
pub fn audit_log(data: &[u8]) {
    use crate::privacy::audit;

    let check = |bytes: &[u8]| {
        let lenient = audit::decode("audit.log", bytes, false);
        let strict = audit::decode("audit.log", bytes, true);
        match &lenient {
            Ok(d) => {
                assert_eq!(d.valid_len + d.torn, bytes.len() as u64, "bytes accounted");
                let mut again = audit::header();
                for (i, e) in d.entries.iter().enumerate() {
                    assert_eq!(e.seq, i as u64 + 1, "consecutive");
                    let mut device = [0u8; audit::PSEUDONYM_LEN];
                    if let Some(h) = &e.device {
                        for (j, b) in device.iter_mut().enumerate() {
                            *b = u8::from_str_radix(&h[2 * j..2 * j + 2], 16).expect("hex");
                        }
                    }
                    again.extend(audit::frame(
                        e.seq,
                        e.time_ms,
                        e.kind,
                        e.outcome,
                        e.device.as_ref().map(|_| device),
                        &e.detail,
                    ));
                }
                assert_eq!(&again[..], &bytes[..d.valid_len as usize], "re-encodes");
                assert_eq!(strict.is_ok(), d.torn == 0, "strict iff no torn tail");
            }
            Err(e) => {
                assert!(e.is_corruption(), "{e}");
                assert!(strict.is_err(), "strict accepted what lenient refused");
            }
        }
    };
    check(data);
    let mut framed = audit::header();
    framed.extend_from_slice(data);
    check(&framed);
}

/// Decodes `data` as a `RETENTION` file, and the same bytes as the payload of valid
/// version-1 and version-2 envelopes (so the payload decoder sees them even when the envelope
/// is wrong): never panics; an error is corruption naming the file; decoded policies are
/// strictly ascending by stream with periods of at least 1 ms and device-rollup periods at
/// least the raw one, and a version-2 file encodes back to exactly the bytes decoded (a
/// version-1 one to a version-2 file holding the same policies).
pub fn retention_policy(data: &[u8]) {
    use crate::privacy::retention;

    let check =
        |file: &[u8], payload: Option<(u32, &[u8])>| match retention::decode("RETENTION", file) {
            Ok(p) => {
                assert!(
                    p.windows(2).all(|w| w[0].stream < w[1].stream),
                    "ascending streams"
                );
                assert!(p.iter().all(|x| x.keep_ms >= 1), "periods of at least 1 ms");
                assert!(
                    p.iter()
                        .all(|x| x.keep_device_rollups_ms.is_none_or(|d| d >= x.keep_ms)),
                    "device-rollup periods at least the raw one"
                );
                let again = retention::encode(&p);
                assert_eq!(retention::decode("RETENTION", &again).ok(), Some(p.clone()));
                let version = file.get(8..12).map(|v| v == 2u32.to_le_bytes());
                if version == Some(true) {
                    assert_eq!(again, file, "re-encodes to the same file");
                }
                if let Some((2, payload)) = payload {
                    assert_eq!(retention::encode_payload(&p), payload, "re-encodes");
                }
            }
            Err(e) => assert!(
                matches!(&e, crate::Error::Corruption { file, .. } if file == "RETENTION"),
                "{e}"
            ),
        };
    check(data, None);
    for version in [1, 2] {
        let framed = crate::files::encode_envelope(&crate::files::RETENTION_MAGIC, version, data);
        check(&framed, Some((version, data)));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rollup_file_opens_what_the_writer_wrote() {
        let (layouts, attrs) = super::rollup_fixture();
        let mut w = crate::rollup::file::RollupWriter::new(layouts, attrs);
        for d in [2u32, 5, 9] {
            let ts: Vec<i64> = (0..20)
                .map(|i| 1_735_689_600_000 + i * 50_000_000 + i64::from(d))
                .collect();
            let cols: Vec<Vec<i64>> = (0..layouts.ncols as i64)
                .map(|c| (0..20).map(|i| (i * (c + 1) + i64::from(d)) % 5).collect())
                .collect();
            let refs: Vec<&[i64]> = cols.iter().map(Vec::as_slice).collect();
            w.add_device(d, &ts, &refs);
        }
        // Window 55 of `cycles` (365-day windows) holds 2025-01-01.
        let file = w.finish(0, 55, 17);
        // The harness reaches the blobs of a good file, not only its error paths.
        assert_eq!(super::rollup_open(file.clone()).map(|b| b.len()), Some(3));
        super::rollup_file(&file);
    }

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
