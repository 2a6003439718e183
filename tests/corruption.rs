//! Corruption: flip bytes at many positions across every file kind (log, segment, manifest,
//! registry, schema). Every flip is either reported as a typed corruption error naming the
//! file, or provably harmless: the database then answers exactly what it held before. The one
//! allowed loss is a flip inside the very last log record, which recovery cannot tell from a
//! torn write: that record is cut off, and only that record's rows are missing.

mod common;

use std::sync::Arc;

use common::*;
use hearth::{Schema, SimStorage, Storage};

/// Builds a database with every kind of file; returns the disk, the full model, and the model
/// without the last appended batch.
fn build() -> (SimStorage, Model, Model) {
    let schema = Schema::washing_machine();
    let sim = SimStorage::new();
    let db = open(Arc::new(sim.clone())).expect("open");
    let mut rng = Rng(7);
    let mut model = Model::default();
    let mut previous = Vec::new();
    let mut before_last = Model::default();
    for day in 0..8 {
        for stream in ["cycles", "samples"] {
            let rows = gen_rows(&mut rng, stream, 30, 5, 50 + day * 20, &previous);
            previous.extend(rows.iter().cloned());
            db.append(&to_batch(&schema, stream, &rows))
                .expect("append");
            before_last = model.clone();
            model.apply(&rows);
        }
        if day == 2 || day == 5 {
            db.flush().expect("flush");
        }
    }
    drop(db);
    (sim, model, before_last)
}

#[test]
fn every_flip_is_reported_or_harmless() {
    let (sim, model, before_last) = build();
    let clean = hearth::Db::verify_storage(&sim).expect("verify a good database");
    assert!(
        clean.segments > 0 && clean.log_records > 0 && clean.unreferenced_files.is_empty(),
        "{clean:?}"
    );
    let names = sim.list().expect("list");
    let kinds = ["SCHEMA", "MANIFEST", "registry-", "seg-", "wal-"];
    for k in kinds {
        assert!(
            names.iter().any(|n| n.starts_with(k)),
            "no {k} file in {names:?}"
        );
    }
    let last_log = names
        .iter()
        .filter(|n| n.starts_with("wal-"))
        .max()
        .cloned();
    let mut flips = 0;
    let mut reported = 0;
    for name in &names {
        let len = sim.read(name).expect("read").len();
        // Every byte of small files, about 150 positions of larger ones.
        let stride = (len / 150).max(1);
        for pos in (0..len).step_by(stride) {
            let disk = sim.crash(|_, n| n);
            disk.corrupt(name, pos, 0x5a).expect("corrupt");
            flips += 1;
            // Every byte is covered by a checksum: verify reports every flip.
            match hearth::Db::verify_storage(&disk) {
                Err(e) => assert!(
                    e.is_corruption() && e.to_string().contains(name.as_str()),
                    "{name}@{pos}: verify said {e}"
                ),
                Ok(r) => panic!("{name}@{pos}: verify found nothing: {r:?}"),
            }
            let outcome = open(Arc::new(disk)).and_then(|db| read_all(&db));
            match outcome {
                Err(e) => {
                    assert!(
                        e.is_corruption(),
                        "{name}@{pos}: not a corruption error: {e}"
                    );
                    assert!(
                        e.to_string().contains(name.as_str()),
                        "{name}@{pos}: error does not name the file: {e}"
                    );
                    reported += 1;
                }
                Ok(got) => {
                    let torn_tail = Some(name) == last_log.as_ref() && got == before_last;
                    assert!(
                        got == model || torn_tail,
                        "{name}@{pos}: wrong answer after a flip"
                    );
                    eprintln!("harmless flip: {name}@{pos} (torn tail cut: {torn_tail})");
                }
            }
        }
    }
    eprintln!("byte flips: {flips}, reported as corruption: {reported}");
    assert!(flips >= 1000, "only {flips} flips");
}
