//! Entry points for the fuzz targets in `fuzz/`. Not part of the public API.

use std::sync::Arc;

use crate::storage::{SimStorage, Storage};
use crate::wal::{self, SyncPolicy};

/// Writes `data` as a log file into a simulated disk and runs WAL recovery over it; must
/// never panic. The first byte chooses the layout: bit 0 raw bytes (else after a valid header),
/// bit 1 a valid two-record file before it (so the fuzzed file is the last of two), bit 2 an
/// empty valid file after it (so the fuzzed file is not the last); the second byte is the
/// checkpoint. When recovery succeeds, the log must accept an append at the LSN recovery
/// reported and give it back on the next recovery.
pub fn wal_records(data: &[u8]) {
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
