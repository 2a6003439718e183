//! Concurrent writers, background flush and compaction, and readers at once. Readers must
//! never see half a flush or a compaction: for every device the rows a scan returns only grow
//! from one scan to the next, are sorted and unique; at the end the database equals the model.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use hearth::{Db, Options, Schema, SimStorage};

#[test]
fn writers_readers_and_maintenance_agree() {
    let schema = Schema::washing_machine();
    let sim = SimStorage::new();
    let db = Db::open_with(
        Arc::new(sim.clone()),
        Options {
            background: true,
            memtable_rows: 400,
            compaction_trigger: 2,
            ..options()
        },
    )
    .expect("open");
    let done = AtomicBool::new(false);
    let models: Vec<Model> = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut seen: std::collections::BTreeMap<u32, usize> = Default::default();
            let mut scans = 0;
            while !done.load(Ordering::Relaxed) || scans < 3 {
                db.scan("samples", i64::MIN..i64::MAX, &[], |rows| {
                    assert!(
                        rows.ts.windows(2).all(|w| w[0] < w[1]),
                        "unsorted or repeated rows"
                    );
                    let before = seen.insert(rows.device, rows.len()).unwrap_or(0);
                    assert!(
                        rows.len() >= before,
                        "device {} lost rows: {before} -> {}",
                        rows.device,
                        rows.len()
                    );
                })
                .expect("scan");
                scans += 1;
            }
            scans
        });
        let writers: Vec<_> = (0..3u64)
            .map(|w| {
                let db = &db;
                let schema = &schema;
                s.spawn(move || {
                    let mut model = Model::default();
                    let mut rng = Rng(w + 1);
                    let mut previous = Vec::new();
                    for day in 0..60 {
                        // Each writer owns its devices, so the models simply add up.
                        let rows: Vec<Row> = gen_rows(&mut rng, "samples", 40, 4, day, &previous)
                            .into_iter()
                            .map(|((s, d, t), v)| ((s, format!("{d}-w{w}"), t), v))
                            .collect();
                        previous.extend(rows.iter().cloned());
                        db.append(&to_batch(schema, "samples", &rows))
                            .expect("append");
                        model.apply(&rows);
                    }
                    model
                })
            })
            .collect();
        let models = writers
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect();
        done.store(true, Ordering::Relaxed);
        let scans = reader.join().expect("reader");
        assert!(scans >= 3);
        models
    });
    let mut expected = Model::default();
    for m in models {
        expected.rows.extend(m.rows);
    }
    assert_eq!(read_all(&db).expect("read"), expected);
    let info = db.info().expect("info");
    assert!(
        info.streams[1].segments >= 1,
        "maintenance flushed: {info:?}"
    );
    drop(db);
    let db = common::open(Arc::new(sim)).expect("reopen");
    assert_eq!(read_all(&db).expect("read"), expected, "after reopen");
}
