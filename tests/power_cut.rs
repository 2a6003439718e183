//! Power cut at every sync point: the workload runs over a simulated disk that cuts the power
//! just before its N-th sync, for every N; after recovery every acknowledged row is there
//! once and an unacknowledged batch is either wholly absent or (when its log record happened
//! to reach the disk whole) wholly present, never in part. With torn tails disabled, an
//! unacknowledged batch is never visible at all. The same holds with erasures and purges in
//! the workload: an acknowledged erasure holds after every crash (the device's rows never
//! come back), an erasure in flight is either wholly done or not at all, and a purge
//! changes no answer whenever it is cut.

mod common;

use std::sync::Arc;

use common::*;
use hearth::{Db, Schema, SimFault, SimStorage};

enum Step {
    Append(String, Vec<Row>),
    Flush,
    Compact,
    Erase(String),
    Purge,
}

/// What was in flight when the power went.
enum InFlight {
    Nothing,
    Rows(Vec<Row>),
    Erase(String),
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

/// The same workload with two devices erased (one after its rows reached segments and the
/// memtable, one with rows only in segments) and purges between.
fn erase_workload(seed: u64) -> Vec<Step> {
    let mut steps = workload(seed);
    let at = |steps: &[Step], n: usize| {
        steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Step::Flush))
            .nth(n)
            .map_or(steps.len(), |(i, _)| i + 1)
    };
    let first = at(&steps, 0) + 2;
    steps.insert(first.min(steps.len()), Step::Erase("WM-00000001".into()));
    let second = at(&steps, 1);
    steps.insert(second, Step::Erase("WM-00000004".into()));
    steps.insert(second + 1, Step::Purge);
    steps.push(Step::Purge);
    steps
}

/// Runs the steps until one fails; returns the model of acknowledged rows and what was in
/// flight when the failure hit.
fn run(db: &Db, schema: &Schema, steps: &[Step]) -> (Model, InFlight) {
    let mut acked = Model::default();
    for step in steps {
        let r = match step {
            Step::Append(stream, rows) => match db.append(&to_batch(schema, stream, rows)) {
                Ok(_) => {
                    acked.apply(rows);
                    Ok(())
                }
                Err(_) => return (acked, InFlight::Rows(rows.clone())),
            },
            Step::Flush => db.flush(),
            Step::Compact => db.compact().map(|_| ()),
            Step::Erase(serial) => match db.erase(serial) {
                Ok(_) => {
                    acked.erase(serial);
                    Ok(())
                }
                Err(_) => return (acked, InFlight::Erase(serial.clone())),
            },
            Step::Purge => db.purge().map(|_| ()),
        };
        if r.is_err() {
            return (acked, InFlight::Nothing);
        }
    }
    (acked, InFlight::Nothing)
}

fn check(recovered: &Model, acked: &Model, in_flight: &InFlight, strict: bool, what: &str) {
    let mut with_flight = acked.clone();
    match in_flight {
        InFlight::Nothing => {}
        InFlight::Rows(rows) => with_flight.apply(rows),
        InFlight::Erase(serial) => {
            // Durable before its audit record: a cut after the log's sync fails the call
            // although the erasure holds. Either way it is all or nothing.
            with_flight.erase(serial);
            assert!(
                recovered == acked || *recovered == with_flight,
                "{what}: erasure in flight half done"
            );
            return;
        }
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
fn cut_everywhere(seed: u64, steps: &[Step]) -> (u64, u64) {
    let schema = Schema::washing_machine();
    // A clean run counts the sync points.
    let clean = SimStorage::new();
    let total = {
        let db = open(Arc::new(clean.clone())).expect("open");
        let (acked, fail) = run(&db, &schema, steps);
        assert!(matches!(fail, InFlight::Nothing));
        assert_eq!(read_all(&db).expect("read"), acked);
        clean.sync_count()
    };
    let mut rng = Rng(seed ^ 0xC0FFEE);
    let mut images = 0;
    for n in 1..=total {
        let sim = SimStorage::new();
        sim.set_fault(Some(SimFault::PowerCut(n)));
        let (acked, in_flight) = match open(Arc::new(sim.clone())) {
            Ok(db) => run(&db, &schema, steps),
            Err(_) => (Model::default(), InFlight::Nothing),
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
        let (p, i) = cut_everywhere(seed, &workload(seed));
        points += p;
        images += i;
    }
    eprintln!("power cut at {points} sync points, {images} crash images recovered and checked");
    assert!(points >= 1000, "only {points} cut points");
}

#[test]
fn power_cut_at_every_sync_point_with_erasures_and_purges() {
    let (mut points, mut images) = (0, 0);
    for seed in 11..=14 {
        let (p, i) = cut_everywhere(seed, &erase_workload(seed));
        points += p;
        images += i;
    }
    eprintln!("power cut at {points} sync points, {images} crash images recovered and checked");
    assert!(points >= 500, "only {points} cut points");
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
