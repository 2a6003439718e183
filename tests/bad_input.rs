//! Bad input: each way a batch can be wrong returns its typed error naming the row and the
//! column, and leaves the database unchanged (rows, devices, log).

mod common;

use std::sync::Arc;

use common::*;
use hearth::{Batch, Db, InputError, Limits, Options, Schema, SimStorage, UnknownDevices, Values};

fn good(schema: &Schema) -> Batch {
    let rows = gen_rows(&mut Rng(3), "cycles", 4, 2, 10, &[]);
    to_batch(schema, "cycles", &rows)
}

fn col<'a>(b: &'a mut Batch, name: &str) -> &'a mut Values {
    &mut b
        .columns
        .iter_mut()
        .find(|(n, _)| n == name)
        .expect("column")
        .1
}

/// What a case's error must look like.
type Expect = Box<dyn Fn(&InputError) -> bool>;

fn state(db: &Db) -> (Model, usize, u64) {
    (
        read_all(db).expect("read"),
        db.device_count(),
        db.info().expect("info").last_lsn,
    )
}

#[test]
fn each_bad_batch_is_rejected_whole() {
    let schema = Schema::washing_machine();
    let sim = SimStorage::new();
    let db = Db::open_with(
        Arc::new(sim),
        Options {
            limits: Limits {
                max_batch_rows: 100,
                ..Limits::default()
            },
            ..options()
        },
    )
    .expect("open");
    db.append(&good(&schema)).expect("good batch");
    let before = state(&db);

    let mut cases: Vec<(&str, Batch, Expect)> = Vec::new();
    let mut b = good(&schema);
    *col(&mut b, "load_kg") = Values::Float(vec![4.0, f64::NAN, 1.0, 2.0]);
    cases.push((
        "NaN",
        b,
        Box::new(|e| matches!(e, InputError::NotFinite { row: 1, column } if column == "load_kg")),
    ));
    let mut b = good(&schema);
    *col(&mut b, "energy_wh") = Values::Float(vec![1.0, 2.0, f64::INFINITY, 2.0]);
    cases.push((
        "infinite",
        b,
        Box::new(
            |e| matches!(e, InputError::NotFinite { row: 2, column } if column == "energy_wh"),
        ),
    ));
    let mut b = good(&schema);
    b.ts[3] = 1;
    cases.push((
        "ts out of range",
        b,
        Box::new(|e| matches!(e, InputError::TimestampOutOfRange { row: 3, .. })),
    ));
    let b = good(&schema).with("colour", Values::Int(vec![1, 2, 3, 4]));
    cases.push((
        "unknown column",
        b,
        Box::new(|e| matches!(e, InputError::UnknownColumn { column, .. } if column == "colour")),
    ));
    let mut b = good(&schema);
    *col(&mut b, "program") = Values::Text(vec![
        "cotton".into(),
        "cotton".into(),
        "boil_wash".into(),
        "wool".into(),
    ]);
    cases.push(("unknown category", b, Box::new(|e| matches!(e, InputError::UnknownCategory { row: 2, column, .. } if column == "program"))));
    let mut b = good(&schema);
    *col(&mut b, "program") = Values::Float(vec![1.0; 4]);
    cases.push((
        "wrong type",
        b,
        Box::new(|e| matches!(e, InputError::WrongType { column, .. } if column == "program")),
    ));
    let mut b = good(&schema);
    b.columns.retain(|(n, _)| n != "fill_time_s");
    cases.push((
        "missing column",
        b,
        Box::new(
            |e| matches!(e, InputError::MissingColumn { column, .. } if column == "fill_time_s"),
        ),
    ));
    let rows = gen_rows(&mut Rng(4), "cycles", 101, 2, 10, &[]);
    cases.push((
        "oversized",
        to_batch(&schema, "cycles", &rows),
        Box::new(|e| {
            matches!(
                e,
                InputError::BatchTooLarge {
                    rows: 101,
                    max: 100
                }
            )
        }),
    ));
    let mut b = good(&schema);
    *col(&mut b, "load_kg") = Values::Float(vec![4.0, 1.0, 1.0, 1e9]);
    cases.push((
        "out of range",
        b,
        Box::new(|e| matches!(e, InputError::OutOfRange { row: 3, .. })),
    ));
    let mut b = good(&schema);
    b.device.pop();
    cases.push((
        "length mismatch",
        b,
        Box::new(|e| matches!(e, InputError::LengthMismatch { .. })),
    ));
    let mut b = good(&schema);
    b.stream = "dryers".into();
    cases.push((
        "unknown stream",
        b,
        Box::new(|e| matches!(e, InputError::UnknownStream(_))),
    ));
    let mut b = good(&schema);
    b.device[1] = String::new();
    cases.push((
        "bad serial",
        b,
        Box::new(|e| matches!(e, InputError::InvalidSerial { .. })),
    ));

    for (what, batch, expected) in cases {
        match db.append(&batch) {
            Err(hearth::Error::Input(e)) => assert!(expected(&e), "{what}: unexpected error {e:?}"),
            other => panic!("{what}: expected an input error, got {other:?}"),
        }
        assert_eq!(state(&db), before, "{what}: the database changed");
    }
}

#[test]
fn unknown_device_is_rejected_unless_auto_registration() {
    let schema = Schema::washing_machine();
    let db = Db::open_with(
        Arc::new(SimStorage::new()),
        Options {
            unknown_devices: UnknownDevices::Reject,
            ..options()
        },
    )
    .expect("open");
    let b = good(&schema);
    let err = db.append(&b).expect_err("unknown device");
    assert!(
        matches!(&err, hearth::Error::Input(InputError::UnknownDevice { row: 0, serial }) if serial == &b.device[0]),
        "{err}"
    );
    assert_eq!(db.device_count(), 0);
    for s in &b.device {
        db.register(hearth::DeviceInfo::unknown(s))
            .expect("register");
    }
    db.append(&b).expect("registered devices are accepted");
}

#[test]
fn incompatible_schema_is_refused() {
    let sim = SimStorage::new();
    drop(open(Arc::new(sim.clone())).expect("create"));
    let mut other = Schema::washing_machine();
    other.streams[0].columns[3] = hearth::ColumnDef::numeric("load_kg", 2, 0.0, 30.0);
    let err = Db::open_with(
        Arc::new(sim),
        Options {
            schema: Some(other),
            ..options()
        },
    )
    .expect_err("schema differs");
    assert!(
        matches!(&err, hearth::Error::IncompatibleSchema(m) if m.contains("load_kg")),
        "{err}"
    );
}
