//! The threaded scan: any number of threads gives the sequential scan's groups.

use super::*;
use crate::sim::{Fleet, FleetConfig, DEFAULT_START_MS};
use crate::storage::SimStorage;
use crate::{Attribute, Options, SyncPolicy};
use std::sync::Arc;

fn fleet_db() -> (Db, i64, i64) {
    let days = 45;
    let fleet = Fleet::new(FleetConfig {
        devices: 60,
        days,
        samples: false,
        ..FleetConfig::default()
    });
    let db = Db::open_with(
        Arc::new(SimStorage::new()),
        Options {
            schema: Some(crate::Schema::washing_machine()),
            sync: SyncPolicy::Never,
            memtable_rows: 2_000,
            background: false,
            ..Options::default()
        },
    )
    .expect("open");
    db.set_postcodes(&fleet.postcodes()).expect("postcodes");
    db.register_all(fleet.devices().to_vec()).expect("register");
    let batches: Vec<_> = fleet.batches(400).collect();
    // Rows in segments (several per window), in frozen memtables and in the active one.
    for (i, b) in batches.iter().enumerate() {
        db.append(b).expect("append");
        if i == batches.len() / 2 {
            db.flush().expect("flush");
        }
    }
    let erased = fleet.devices()[7].serial.clone();
    db.erase(&erased).expect("erase");
    let from = DEFAULT_START_MS;
    (db, from, from + i64::from(days) * DAY_MS)
}

#[test]
fn threaded_scans_equal_the_sequential_scan() {
    let (db, from, to) = fleet_db();
    let mut questions = Vec::new();
    let mut q = FleetQuery::count(
        "cycles",
        from,
        to,
        vec![Dim::column("program"), Dim::Attribute(Attribute::Segment)],
    );
    q.filters = vec![Filter::Range {
        column: "load_kg".into(),
        min: 5.0,
        max: 100.0,
    }];
    questions.push(q);
    let mut q = FleetQuery::count(
        "cycles",
        from + 3 * DAY_MS,
        to - 5 * DAY_MS,
        vec![Dim::Attribute(Attribute::Region), Dim::HourOfDay],
    );
    q.grain = Some(Grain::Week);
    q.devices = true;
    q.measures = vec![
        Measure::Mean("energy_wh".into()),
        Measure::Variance("water_l".into()),
        Measure::Min("fill_time_s".into()),
        Measure::Max("max_vibration_g".into()),
        Measure::Histogram {
            column: "load_kg".into(),
            bins: Bins::Fixed {
                lo: 0.0,
                width: 0.5,
                count: 30,
            },
        },
    ];
    q.filters = vec![Filter::In {
        dim: Dim::column("temp_setting_c"),
        values: vec!["40".into(), "60".into()],
    }];
    questions.push(q);
    let mut q = FleetQuery::count("cycles", from, to, vec![]);
    q.grain = Some(Grain::Day);
    q.devices = true;
    questions.push(q);
    let attrs = db.rollups().attrs.clone();
    for q in &questions {
        let r = resolve(&db, q, &attrs).expect("resolve");
        let (want, want_rows) = r.scan_groups(&db, &attrs, 1, 1).expect("sequential");
        assert!(want_rows > 1_000, "{want_rows} rows scanned");
        assert!(want.len() > 3, "{} groups", want.len());
        for threads in [2, 3, 7, 64] {
            let (got, rows) = r.scan_groups(&db, &attrs, threads, 1).expect("threaded");
            assert_eq!(rows, want_rows, "{threads} threads: {q:?}");
            assert_eq!(got, want, "{threads} threads: {q:?}");
        }
    }
}
