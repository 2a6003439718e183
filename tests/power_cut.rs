//! Power cut at every sync point: the workload runs over a simulated disk that cuts the power
//! just before its N-th sync, for every N; after recovery every acknowledged row is there
//! once and an unacknowledged batch is either wholly absent or (when its log record happened
//! to reach the disk whole) wholly present, never in part. With torn tails disabled, an
//! unacknowledged batch is never visible at all.

mod common;

use std::sync::Arc;

use common::*;
use hearth::{Db, Schema, SimFault, SimStorage};

enum Step {
    Append(String, Vec<Row>),
    Flush,
    Compact,
}

fn workload(seed: u64) -> Vec<Step> {
    let mut rng = Rng(seed);
    let mut steps = Vec::new();
    let mut previous: Vec<Row> = Vec::new();
    for day in 0..12 {
        for stream in ["cycles", "samples"] {
            let n = 5 + rng.below(40) as usize;
            let rows = gen_rows(&mut rng, stream, n, 6, 100 + day * 30, &previous);
            previous.extend(rows.iter().cloned());
            steps.push(Step::Append(stream.to_string(), rows));
        }
        if day % 4 == 3 {
            steps.push(Step::Flush);
        }
        if day == 9 {
            steps.push(Step::Compact);
        }
    }
    steps
}

/// Runs the steps until one fails; returns the model of acknowledged rows and the rows of the
/// batch in flight when the failure hit (if it was an append).
fn run(db: &Db, schema: &Schema, steps: &[Step]) -> (Model, Option<Vec<Row>>) {
    let mut acked = Model::default();
    for step in steps {
        let r = match step {
            Step::Append(stream, rows) => match db.append(&to_batch(schema, stream, rows)) {
                Ok(_) => {
                    acked.apply(rows);
                    Ok(())
                }
                Err(_) => return (acked, Some(rows.clone())),
            },
            Step::Flush => db.flush(),
            Step::Compact => db.compact().map(|_| ()),
        };
        if r.is_err() {
            return (acked, None);
        }
    }
    (acked, None)
}

fn check(recovered: &Model, acked: &Model, in_flight: &Option<Vec<Row>>, strict: bool, what: &str) {
    let mut with_flight = acked.clone();
    if let Some(rows) = in_flight {
        with_flight.apply(rows);
    }
    if recovered == acked {
        return;
    }
    assert!(
        !strict && *recovered == with_flight,
        "{what}: recovered {} rows, acknowledged {} (with the batch in flight {})",
        recovered.rows.len(),
        acked.rows.len(),
        with_flight.rows.len()
    );
}

/// Returns (sync points cut, crash images recovered).
fn cut_everywhere(seed: u64) -> (u64, u64) {
    let schema = Schema::washing_machine();
    let steps = workload(seed);
    // A clean run counts the sync points.
    let clean = SimStorage::new();
    let total = {
        let db = open(Arc::new(clean.clone())).expect("open");
        let (acked, fail) = run(&db, &schema, &steps);
        assert!(fail.is_none());
        assert_eq!(read_all(&db).expect("read"), acked);
        clean.sync_count()
    };
    let mut rng = Rng(seed ^ 0xC0FFEE);
    let mut images = 0;
    for n in 1..=total {
        let sim = SimStorage::new();
        sim.set_fault(Some(SimFault::PowerCut(n)));
        let (acked, in_flight) = match open(Arc::new(sim.clone())) {
            Ok(db) => run(&db, &schema, &steps),
            Err(_) => (Model::default(), None),
        };
        assert!(sim.is_dead(), "cut {n} of {total} never happened");
        for strict in [true, false] {
            let disk = if strict {
                sim.crash(|_, _| 0)
            } else {
                let r = rng.next();
                sim.crash(move |_, len| (r % (len as u64 + 1)) as usize)
            };
            let what = format!("seed {seed}, cut at sync {n} of {total}, strict {strict}");
            let db = open(Arc::new(disk.clone()))
                .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
            let recovered = read_all(&db).unwrap_or_else(|e| panic!("{what}: read failed: {e}"));
            check(&recovered, &acked, &in_flight, strict, &what);
            // The recovered database takes writes and survives another reopen.
            let extra = gen_rows(&mut Rng(n), "cycles", 5, 3, 500, &[]);
            db.append(&to_batch(&schema, "cycles", &extra))
                .unwrap_or_else(|e| panic!("{what}: append after recovery: {e}"));
            db.flush()
                .unwrap_or_else(|e| panic!("{what}: flush after recovery: {e}"));
            let mut expect = recovered.clone();
            expect.apply(&extra);
            drop(db);
            let db = open(Arc::new(disk)).unwrap_or_else(|e| panic!("{what}: second reopen: {e}"));
            assert_eq!(
                read_all(&db).expect("read"),
                expect,
                "{what}: after second reopen"
            );
            images += 1;
        }
    }
    (total, images)
}

#[test]
fn power_cut_at_every_sync_point() {
    let (mut points, mut images) = (0, 0);
    for seed in 1..=8 {
        let (p, i) = cut_everywhere(seed);
        points += p;
        images += i;
    }
    eprintln!("power cut at {points} sync points, {images} crash images recovered and checked");
    assert!(points >= 1000, "only {points} cut points");
}

#[test]
fn failed_fsync_poisons_until_reopen() {
    let schema = Schema::washing_machine();
    let sim = SimStorage::new();
    let db = open(Arc::new(sim.clone())).expect("open");
    let rows = gen_rows(&mut Rng(1), "cycles", 10, 3, 10, &[]);
    db.append(&to_batch(&schema, "cycles", &rows))
        .expect("append");
    sim.set_fault(Some(SimFault::FailSync(sim.sync_count() + 1)));
    let more = gen_rows(&mut Rng(2), "cycles", 10, 3, 11, &[]);
    assert!(db.append(&to_batch(&schema, "cycles", &more)).is_err());
    let again = gen_rows(&mut Rng(3), "cycles", 10, 3, 12, &[]);
    let err = db
        .append(&to_batch(&schema, "cycles", &again))
        .expect_err("poisoned");
    assert!(matches!(err, hearth::Error::Poisoned(_)), "{err}");
    drop(db);
    let db = open(Arc::new(sim)).expect("reopen");
    db.append(&to_batch(&schema, "cycles", &again))
        .expect("writable after reopen");
}
