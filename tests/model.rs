//! Model test: random sequences of appends (with duplicates, out-of-order and late rows),
//! flushes, compactions, reopens and scans, checked against a plain in-memory model.
//! Sequences proptest found are frozen below as named regression tests.

mod common;

use std::sync::Arc;

use common::*;
use hearth::{Schema, SimStorage};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// stream (0 cycles, 1 samples), rows, devices, day, seed
    Append(u8, u8, u8, u8, u64),
    Flush,
    Compact,
    Reopen,
    /// device, from day, days
    ScanDevice(u8, u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..2, 1u8..40, 1u8..6, 0u8..60, any::<u64>()).prop_map(|(s, n, d, day, seed)| Op::Append(s, n, d, day, seed)),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        2 => (0u8..6, 0u8..60, 1u8..30).prop_map(|(d, f, n)| Op::ScanDevice(d, f, n)),
    ]
}

fn run(ops: &[Op]) {
    let schema = Schema::washing_machine();
    let sim = SimStorage::new();
    let mut db = open(Arc::new(sim.clone())).expect("open");
    let mut model = Model::default();
    let mut previous: Vec<Row> = Vec::new();
    for op in ops {
        match *op {
            Op::Append(s, n, devices, day, seed) => {
                let stream = if s == 0 { "cycles" } else { "samples" };
                let rows = gen_rows(
                    &mut Rng(seed),
                    stream,
                    n as usize,
                    u64::from(devices),
                    i64::from(day),
                    &previous,
                );
                let report = db
                    .append(&to_batch(&schema, stream, &rows))
                    .expect("append");
                let before = model.rows.len();
                model.apply(&rows);
                assert_eq!(
                    report.accepted as usize,
                    model.rows.len() - before,
                    "accepted count"
                );
                assert_eq!((report.accepted + report.duplicates) as usize, rows.len());
                previous.extend(rows);
            }
            Op::Flush => db.flush().expect("flush"),
            Op::Compact => {
                db.compact().expect("compact");
            }
            Op::Reopen => {
                drop(db);
                db = open(Arc::new(sim.clone())).expect("reopen");
            }
            Op::ScanDevice(d, from, days) => {
                let serial = format!("WM-{d:08}");
                let (a, b) = (
                    T0 + i64::from(from) * DAY - 40 * DAY,
                    T0 + i64::from(from + days) * DAY,
                );
                let expect: Vec<(i64, Vec<i64>)> = model
                    .rows
                    .iter()
                    .filter(|((s, dev, ts), _)| {
                        s == "cycles" && *dev == serial && (a..b).contains(ts)
                    })
                    .map(|((_, _, ts), v)| (*ts, v.clone()))
                    .collect();
                match db.scan_device("cycles", &serial, a..b, &[]) {
                    Ok(rows) => {
                        let got: Vec<(i64, Vec<i64>)> = rows
                            .ts
                            .iter()
                            .enumerate()
                            .map(|(i, &t)| (t, rows.columns.iter().map(|c| c[i]).collect()))
                            .collect();
                        assert_eq!(got, expect, "scan of {serial}");
                    }
                    Err(hearth::Error::Input(hearth::InputError::UnknownDevice { .. })) => {
                        assert!(expect.is_empty(), "device {serial} unknown but has rows");
                    }
                    Err(e) => panic!("scan failed: {e}"),
                }
            }
        }
    }
    assert_eq!(read_all(&db).expect("read"), model, "final full scan");
    drop(db);
    let db = open(Arc::new(sim)).expect("final reopen");
    assert_eq!(read_all(&db).expect("read"), model, "after final reopen");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}

#[test]
fn regression_late_row_after_flush_is_a_duplicate() {
    run(&[
        Op::Append(0, 30, 2, 45, 1),
        Op::Flush,
        Op::Append(0, 30, 2, 45, 1),
        Op::Reopen,
        Op::Append(0, 30, 2, 5, 2),
        Op::Compact,
        Op::ScanDevice(1, 0, 29),
    ]);
}

#[test]
fn regression_compact_twice_with_overlapping_windows() {
    run(&[
        Op::Append(1, 39, 5, 10, 3),
        Op::Flush,
        Op::Append(1, 39, 5, 10, 4),
        Op::Flush,
        Op::Compact,
        Op::Append(1, 39, 5, 11, 5),
        Op::Flush,
        Op::Compact,
        Op::Reopen,
    ]);
}
