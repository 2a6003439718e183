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

/// Erasures and purges while writers append and background maintenance flushes and
/// compacts: at the end the database holds exactly the other writers' rows, and the fleet
/// rollups agree with a scan (before and after reopen).
#[test]
fn erasures_during_writes_and_maintenance() {
    use hearth::query::{FleetQuery, Plan};
    use hearth::{Dim, Grain};

    let schema = Schema::washing_machine();
    let sim = SimStorage::new();
    let db = Db::open_with(
        Arc::new(sim.clone()),
        Options {
            background: true,
            memtable_rows: 300,
            compaction_trigger: 2,
            ..options()
        },
    )
    .expect("open");
    // The devices to erase, written first.
    let mut rng = Rng(99);
    let victims: Vec<Row> = (0..30)
        .flat_map(|day| gen_rows(&mut rng, "cycles", 20, 4, day, &[]))
        .map(|((s, d, t), v)| ((s, format!("{d}-gone"), t), v))
        .collect();
    for chunk in victims.chunks(50) {
        db.append(&to_batch(&schema, "cycles", chunk))
            .expect("append");
    }
    let serials: std::collections::BTreeSet<String> =
        victims.iter().map(|r| r.0 .1.clone()).collect();
    let models: Vec<Model> = std::thread::scope(|s| {
        let eraser = s.spawn(|| {
            for (i, serial) in serials.iter().enumerate() {
                db.erase(serial).expect("erase");
                if i % 2 == 1 {
                    db.purge().expect("purge");
                }
            }
        });
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let db = &db;
                let schema = &schema;
                s.spawn(move || {
                    let mut model = Model::default();
                    let mut rng = Rng(w + 1);
                    let mut previous = Vec::new();
                    for day in 0..40 {
                        let rows: Vec<Row> = gen_rows(&mut rng, "cycles", 30, 4, day, &previous)
                            .into_iter()
                            .map(|((s, d, t), v)| ((s, format!("{d}-w{w}"), t), v))
                            .collect();
                        previous.extend(rows.iter().cloned());
                        db.append(&to_batch(schema, "cycles", &rows))
                            .expect("append");
                        model.apply(&rows);
                    }
                    model
                })
            })
            .collect();
        eraser.join().expect("eraser");
        writers
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect()
    });
    let mut expected = Model::default();
    for m in models {
        expected.rows.extend(m.rows);
    }
    let agree = |db: &Db, what: &str| {
        assert_eq!(read_all(db).expect("read"), expected, "{what}");
        for dims in [vec![Dim::column("program")], vec![Dim::HourOfDay]] {
            let mut q = FleetQuery::count("cycles", T0 - 60 * DAY, T0 + 60 * DAY, dims);
            q.grain = Some(Grain::Week);
            q.plan = Plan::Rollup;
            let r = db.fleet(&q).expect("rollup");
            q.plan = Plan::Scan;
            assert_eq!(r.rows, db.fleet(&q).expect("scan").rows, "{what}");
        }
    };
    agree(&db, "after the threads");
    drop(db);
    let db = common::open(Arc::new(sim)).expect("reopen");
    agree(&db, "after reopen");
}
