//! Privacy: k-anonymity of every analytics answer (rollup and scan paths, checked against a
//! raw count of distinct devices), the analytics view never reaching a serial, export and its
//! round trip through import, the audit log (pseudonymised, durable, crash-safe) and the
//! stored k.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use hearth::query::fleet::Bands;
use hearth::query::{FleetQuery, FleetResult, Plan};
use hearth::schema::DAY_MS;
use hearth::sim::{Fleet, FleetConfig, DEFAULT_START_MS};
use hearth::{
    Attribute, AuditKind, AuditOutcome, Batch, Db, Dim, Grain, Options, Schema, SimFault,
    SimStorage, Storage, SyncPolicy, Values,
};

const DAYS: u32 = 92;
const FROM: i64 = DEFAULT_START_MS;
const TO: i64 = DEFAULT_START_MS + DAYS as i64 * DAY_MS;

fn options() -> Options {
    Options {
        schema: Some(Schema::washing_machine()),
        sync: SyncPolicy::Never,
        memtable_rows: 3_000,
        background: false,
        ..Options::default()
    }
}

fn fleet() -> &'static Fleet {
    static F: OnceLock<Fleet> = OnceLock::new();
    F.get_or_init(|| {
        Fleet::new(FleetConfig {
            devices: 60,
            days: DAYS,
            seed: 11,
            samples: true,
            sample_device_share: 0.1,
            ..FleetConfig::default()
        })
    })
}

fn load(db: &Db, f: &Fleet) {
    db.set_postcodes(&f.postcodes()).expect("postcodes");
    db.register_all(f.devices().to_vec()).expect("register");
    for b in f.batches(2_000) {
        db.append(&b).expect("append");
    }
}

/// Several segments and rows still in the memtable.
fn shared() -> &'static Db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| {
        let db = Db::open_with(Arc::new(SimStorage::new()), options()).expect("open");
        load(&db, fleet());
        db
    })
}

/// The first whole calendar month of the data, and a period that is not whole months.
fn periods() -> [(i64, i64); 2] {
    let d0 = hearth::calendar::day_of(FROM);
    let m0 = Grain::Month.start(d0 + 31);
    let m1 = Grain::Month.start(m0 + 40);
    [
        (m0 * DAY_MS, m1 * DAY_MS),
        (FROM + 3 * DAY_MS, TO - 5 * DAY_MS),
    ]
}

fn serials() -> Vec<String> {
    fleet().devices().iter().map(|d| d.serial.clone()).collect()
}

/// Distinct devices per group, counted from the raw rows by scanning.
fn truth(db: &Db, q: &FleetQuery) -> FleetResult {
    let mut t = q.clone();
    t.plan = Plan::Scan;
    t.devices = true;
    db.fleet(&t).expect("truth")
}

/// An analytics answer keeps exactly the groups with at least k devices, with the truth's
/// figures, and names the others.
fn check_fleet(db: &Db, q: &FleetQuery, k: u32) -> usize {
    let a = db
        .analytics_with_k(k)
        .expect("k")
        .fleet(q)
        .expect("analytics");
    let t = truth(db, q);
    let mut kept = 0;
    let mut suppressed = 0;
    for row in &t.rows {
        let got = a
            .answer
            .rows
            .iter()
            .find(|r| r.keys == row.keys && r.bucket_day == row.bucket_day);
        let named = a
            .suppressed
            .iter()
            .any(|s| s.group == row.keys && s.bucket == row.bucket);
        if row.devices.unwrap_or(0) >= u64::from(k) {
            let got = got.unwrap_or_else(|| panic!("{:?} {:?} missing", row.bucket, row.keys));
            assert_eq!((got.rows, &got.values), (row.rows, &row.values));
            assert!(!named);
            kept += 1;
        } else {
            assert!(
                got.is_none(),
                "{:?} {:?} has < {k} devices",
                row.bucket,
                row.keys
            );
            assert!(named, "{:?} {:?} not named", row.bucket, row.keys);
            suppressed += 1;
        }
    }
    assert_eq!(a.answer.rows.len(), kept);
    assert_eq!(a.suppressed.len(), suppressed);
    assert!(a
        .answer
        .rows
        .iter()
        .all(|r| r.devices.is_none() || q.devices));
    suppressed
}

#[test]
fn every_fleet_group_has_k_devices_on_both_paths() {
    let db = shared();
    let mut suppressed = 0;
    for (from, to) in periods() {
        for plan in [Plan::Auto, Plan::Rollup, Plan::Scan] {
            for (dims, grain) in [
                (
                    vec![Dim::column("program"), Dim::Attribute(Attribute::Region)],
                    Some(Grain::Month),
                ),
                (vec![Dim::Attribute(Attribute::Segment)], None),
                (
                    vec![Dim::column("program"), Dim::column("temp_setting_c")],
                    None,
                ),
                (vec![Dim::HourOfDay], Some(Grain::Week)),
            ] {
                let mut q = FleetQuery::count("cycles", from, to, dims);
                q.grain = grain;
                q.plan = plan;
                suppressed += check_fleet(db, &q, 5);
                suppressed += check_fleet(db, &q, 9);
            }
        }
    }
    assert!(
        suppressed > 0,
        "the fleet must have small groups for this test to bite"
    );
}

#[test]
fn k_can_be_raised_per_query_never_lowered() {
    let db = shared();
    assert_eq!(db.k_anonymity(), 5);
    let e = db.analytics_with_k(4).expect_err("below the setting");
    assert!(e.to_string().contains("below"), "{e}");
    let [(from, to), _] = periods();
    let q = FleetQuery::count("cycles", from, to, vec![Dim::Attribute(Attribute::Segment)]);
    let five = db.analytics().fleet(&q).expect("k 5");
    let twenty = db
        .analytics_with_k(20)
        .expect("k 20")
        .fleet(&q)
        .expect("k 20");
    assert_eq!(five.k, 5);
    assert!(twenty.suppressed.len() > five.suppressed.len());
}

#[test]
fn statistics_and_fleet_questions_leave_small_groups_out() {
    let db = shared();
    for (from, to) in periods() {
        for plan in [Plan::Auto, Plan::Scan] {
            let a = db.analytics();
            // D6: every group kept has k devices; the others are named.
            for measure in ["energy_wh", "cycles_per_week"] {
                let (an, _) = a
                    .anova(measure, Attribute::Segment, from, to, plan)
                    .expect("anova");
                let mut q =
                    FleetQuery::count("cycles", from, to, vec![Dim::Attribute(Attribute::Segment)]);
                if measure == "cycles_per_week" {
                    // Whole months, as the question counts them.
                    let m0 = Grain::Month.start(hearth::calendar::day_of(from));
                    let last = Grain::Month.start(hearth::calendar::day_of(to - 1));
                    q.from_ms = m0 * DAY_MS;
                    q.to_ms = (last + 40) * DAY_MS;
                    q.to_ms = Grain::Month.start(hearth::calendar::day_of(q.to_ms)) * DAY_MS;
                }
                let t = truth(db, &q);
                let devices: HashMap<&str, u64> = t
                    .rows
                    .iter()
                    .map(|r| (r.keys[0].as_str(), r.devices.unwrap_or(0)))
                    .collect();
                assert!(!an.suppressed.is_empty(), "{measure}: no small segment");
                for g in &an.answer.groups {
                    assert!(devices[g.name.as_str()] >= 5, "{measure}: {}", g.name);
                }
                for s in &an.suppressed {
                    assert!(devices[s.group[0].as_str()] < 5, "{measure}: {:?}", s.group);
                    assert!(an.answer.groups.iter().all(|g| g.name != s.group[0]));
                }
            }
            // D7: rows and columns with fewer than k devices are out; small cells withheld.
            let (c, _) = a
                .chi_square("program", Attribute::Segment, from, to, plan)
                .expect("chi2");
            let cells = truth(
                db,
                &FleetQuery::count(
                    "cycles",
                    from,
                    to,
                    vec![Dim::column("program"), Dim::Attribute(Attribute::Segment)],
                ),
            );
            let seg = truth(
                db,
                &FleetQuery::count("cycles", from, to, vec![Dim::Attribute(Attribute::Segment)]),
            );
            for col in &c.answer.columns {
                assert!(seg.get(&[col], None).and_then(|r| r.devices).unwrap_or(0) >= 5);
            }
            assert!(c.suppressed.iter().any(|s| s.group[0] == "*"));
            let mut withheld = 0;
            for (i, r) in c.answer.rows.iter().enumerate() {
                for (j, col) in c.answer.columns.iter().enumerate() {
                    let n = cells
                        .get(&[r, col], None)
                        .and_then(|x| x.devices)
                        .unwrap_or(0);
                    let o = c.answer.observed[i][j];
                    if n > 0 && n < 5 {
                        assert_eq!(o, None, "{r} × {col}");
                        withheld += 1;
                    } else {
                        assert!(o.is_some(), "{r} × {col}");
                    }
                }
            }
            assert!(withheld > 0);
            // D5: groups of fewer than k devices are out.
            let b = a
                .usage_bands(Attribute::Segment, &Bands::default(), from, to, plan)
                .expect("bands");
            assert!(!b.suppressed.is_empty());
            assert!(b
                .answer
                .groups
                .iter()
                .all(|g| g.light + g.medium + g.heavy >= 5));
            // D2: capacities with fewer than k devices are out.
            let l = a.load_distribution(from, to, plan).expect("loads");
            let cap = truth(
                db,
                &FleetQuery::count(
                    "cycles",
                    from,
                    to,
                    vec![Dim::Attribute(Attribute::Capacity)],
                ),
            );
            for c in &l.answer.by_capacity {
                assert!(cap.get(&[&c.capacity_kg], None).and_then(|r| r.devices) >= Some(5));
            }
            // D3: (group, program) with 1..k devices are out.
            let rare = a
                .rare_programs(Attribute::Segment, 0.05, from, to, plan)
                .expect("rare");
            for r in &rare.answer {
                let n = cells
                    .get(&[&r.program, &r.group], None)
                    .and_then(|x| x.devices)
                    .unwrap_or(0);
                assert!(n == 0 || n >= 5, "{} {}", r.group, r.program);
            }
            // D8: cells with fewer than k devices read 0 and are named.
            let t = a.time_of_day(from, to, plan).expect("hours");
            let full = db.time_of_day(from, to, plan).expect("hours");
            let mut zeroed = 0;
            for (w, row) in t.answer.cycles.iter().enumerate() {
                for (h, &n) in row.iter().enumerate() {
                    if n != full.cycles[w][h] {
                        assert_eq!(n, 0);
                        zeroed += 1;
                    }
                }
            }
            assert_eq!(zeroed, t.suppressed.len());
            assert!(zeroed > 0);
        }
    }
}

fn keys(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                keys(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

#[test]
fn no_analytics_answer_reaches_a_serial() {
    let db = shared();
    let a = db.analytics();
    let mut answers: Vec<serde_json::Value> = Vec::new();
    let j = |x: &dyn erased::Ser| x.json();
    for (from, to) in periods() {
        for plan in [Plan::Auto, Plan::Scan] {
            for by in Attribute::ALL {
                for setting in ["program", "temp_setting_c", "spin_setting_rpm"] {
                    answers.push(j(&a
                        .cycles_by(setting, by, Grain::Month, from, to, plan)
                        .expect("d1")));
                    answers.push(j(&a.chi_square(setting, by, from, to, plan).expect("d7")));
                }
                answers.push(j(&a.rare_programs(by, 0.1, from, to, plan).expect("d3")));
                answers.push(j(&a
                    .usage_bands(by, &Bands::default(), from, to, plan)
                    .expect("d5")));
                for m in ["energy_wh", "load_kg", "water_l", "cycles_per_week"] {
                    answers.push(j(&a.anova(m, by, from, to, plan).expect("d6")));
                }
            }
            answers.push(j(&a.load_distribution(from, to, plan).expect("d2")));
            answers.push(j(&a.resources_by_setting(from, to, plan).expect("d4")));
            answers.push(j(&a.time_of_day(from, to, plan).expect("d8")));
            let mut q = FleetQuery::count("cycles", from, to, vec![Dim::HourOfDay]);
            q.devices = true;
            q.plan = plan;
            answers.push(j(&a.fleet(&q).expect("fleet")));
        }
    }
    let serials = serials();
    let mut all_keys = BTreeSet::new();
    for v in &answers {
        let text = v.to_string();
        for s in &serials {
            assert!(!text.contains(s.as_str()), "{s} in {text:.200}");
        }
        keys(v, &mut all_keys);
    }
    for k in ["serial", "device_id", "device", "id", "latest", "flagged"] {
        assert!(
            !all_keys.contains(k),
            "an analytics answer has a '{k}' field"
        );
    }
}

/// Serialises answers of different types.
mod erased {
    pub trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("serialise")
        }
    }
}

/// A device with rows in both streams.
fn traced_serial(db: &Db) -> String {
    for s in serials() {
        let n = db
            .scan_device("samples", &s, 0..i64::MAX, &["power_w"])
            .expect("scan")
            .len();
        if n > 0 {
            return s;
        }
    }
    panic!("no traced device");
}

#[test]
fn export_round_trips_through_import_and_is_audited() {
    let storage = Arc::new(SimStorage::new());
    let db = Db::open_with(Arc::clone(&storage) as Arc<dyn Storage>, options()).expect("open");
    load(&db, fleet());
    let serial = traced_serial(&db);
    let e = db.support().export(&serial).expect("export");
    assert_eq!(e.device.serial, serial);
    let cycles = db
        .scan_device("cycles", &serial, 0..i64::MAX, &[])
        .expect("scan");
    assert_eq!(e.streams[0].rows.len(), cycles.len());
    assert!(e.streams[1].rows.len() > 100, "samples exported");
    let weeks = &e.week_cells[0];
    assert_eq!(
        weeks.weeks.iter().map(|w| w.rows).sum::<u64>(),
        cycles.len() as u64,
        "every cycle is in one week cell"
    );

    // JSON, then into an empty database, then out again: the same.
    let text = serde_json::to_string(&e).expect("json");
    let back: hearth::DeviceExport = serde_json::from_str(&text).expect("parse");
    let other = Db::open_with(Arc::new(SimStorage::new()), options()).expect("open");
    let n = other.import_device(&back).expect("import");
    assert_eq!(
        n as usize,
        e.streams.iter().map(|s| s.rows.len()).sum::<usize>()
    );
    let again = other.export_device(&serial).expect("export again");
    assert_eq!(again.device, e.device);
    assert_eq!(again.streams, e.streams);
    assert_eq!(again.week_cells, e.week_cells);

    // Audited under a pseudonym; a failed export too; the serial is nowhere in the log.
    assert!(db.export_device("WM-99999999").is_err());
    let log = db.audit_log().expect("audit");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].kind, AuditKind::Export);
    assert_eq!(log[0].outcome, AuditOutcome::Ok);
    assert_eq!(
        log[0].device.as_deref(),
        Some(db.pseudonym(&serial).as_str())
    );
    assert_ne!(
        db.pseudonym(&serial),
        other.pseudonym(&serial),
        "keys differ"
    );
    assert_eq!(log[1].outcome, AuditOutcome::Failed);
    assert_eq!(log[1].detail, "failed: unknown device");
    let bytes = storage.read("audit.log").expect("read");
    assert!(!bytes.windows(serial.len()).any(|w| w == serial.as_bytes()));
    assert!(!bytes.windows(11).any(|w| w == b"WM-99999999"));
    drop(db);
    // Reopened: the records are there, verify checks them.
    let db = Db::open_with(Arc::clone(&storage) as Arc<dyn Storage>, Options::default())
        .expect("reopen");
    assert_eq!(db.audit_log().expect("audit").len(), 2);
    drop(db);
    let r = Db::verify_storage(&*storage).expect("verify");
    assert!(
        r.unreferenced_files.is_empty(),
        "{:?}",
        r.unreferenced_files
    );
}

#[test]
fn k_is_stored_with_the_database() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let db = Db::open_with(
        Arc::clone(&storage),
        Options {
            k_anonymity: Some(8),
            ..options()
        },
    )
    .expect("open");
    assert_eq!(db.k_anonymity(), 8);
    let key = db.pseudonym("WM-1");
    drop(db);
    let db = Db::open_with(Arc::clone(&storage), Options::default()).expect("reopen");
    assert_eq!(db.k_anonymity(), 8);
    assert_eq!(db.pseudonym("WM-1"), key, "the key is stored");
    assert!(db.analytics_with_k(7).is_err());
    drop(db);
    let db = Db::open_with(
        Arc::clone(&storage),
        Options {
            k_anonymity: Some(3),
            ..Options::default()
        },
    )
    .expect("reopen");
    assert_eq!(db.k_anonymity(), 3);
    drop(db);
    let e = Db::open_with(
        storage,
        Options {
            k_anonymity: Some(0),
            ..Options::default()
        },
    )
    .expect_err("k = 0");
    assert!(e.to_string().contains("at least 1"), "{e}");
}

/// The power is cut before every sync of an open, a registration and two exports: after
/// recovery the audit log opens, holds each acknowledged export's record, never more records
/// than exports attempted, and verify passes.
#[test]
fn audit_records_survive_a_power_cut_at_every_sync() {
    let schema = Schema::washing_machine();
    let run = |disk: &SimStorage| -> usize {
        let s: Arc<dyn Storage> = Arc::new(disk.clone());
        let Ok(db) = Db::open_with(
            s,
            Options {
                schema: Some(schema.clone()),
                background: false,
                ..Options::default()
            },
        ) else {
            return 0;
        };
        if db.register(hearth::DeviceInfo::unknown("WM-1")).is_err() {
            return 0;
        }
        let mut acked = 0;
        for _ in 0..2 {
            if db.export_device("WM-1").is_err() {
                break;
            }
            acked += 1;
        }
        acked
    };
    let clean = SimStorage::new();
    assert_eq!(run(&clean), 2);
    let syncs = clean.sync_count();
    for n in 1..=syncs + 1 {
        for torn in [false, true] {
            let disk = SimStorage::new();
            disk.set_fault(Some(SimFault::PowerCut(n)));
            let acked = run(&disk);
            let after = disk.crash(|_, len| if torn { len / 2 } else { 0 });
            let s: Arc<dyn Storage> = Arc::new(after.clone());
            let db = Db::open_with(
                s,
                Options {
                    schema: Some(schema.clone()),
                    ..Options::default()
                },
            );
            let db = db.unwrap_or_else(|e| panic!("cut at sync {n}: {e}"));
            let log = db.audit_log().expect("audit");
            assert!(
                log.len() >= acked && log.len() <= 2,
                "cut at {n}: {}",
                log.len()
            );
            drop(db);
            Db::verify_storage(&after).unwrap_or_else(|e| panic!("cut at {n}: {e}"));
        }
    }
}

#[test]
fn with_k_of_one_every_group_is_reported() {
    let db = Db::open_with(
        Arc::new(SimStorage::new()),
        Options {
            k_anonymity: Some(1),
            ..options()
        },
    )
    .expect("open");
    load(&db, fleet());
    let [_, (from, to)] = periods();
    let a = db.analytics();
    let d1 = a
        .cycles_by(
            "program",
            Attribute::Segment,
            Grain::Week,
            from,
            to,
            Plan::Auto,
        )
        .expect("d1");
    let raw = db
        .cycles_by(
            "program",
            Attribute::Segment,
            Grain::Week,
            from,
            to,
            Plan::Auto,
        )
        .expect("d1");
    assert!(d1.suppressed.is_empty());
    assert_eq!(d1.answer, raw, "the same answer, from the same source");
    let (an, _) = a
        .anova("energy_wh", Attribute::Segment, from, to, Plan::Auto)
        .expect("anova");
    let (raw, _) = db
        .anova("energy_wh", Attribute::Segment, from, to, Plan::Auto)
        .expect("anova");
    assert_eq!(an.answer, raw);
    let t = a.time_of_day(from, to, Plan::Auto).expect("d8");
    assert_eq!(t.answer, db.time_of_day(from, to, Plan::Auto).expect("d8"));
}

#[test]
fn a_missing_settings_file_beside_an_audit_log_is_corruption() {
    let storage = Arc::new(SimStorage::new());
    let db = Db::open_with(Arc::clone(&storage) as Arc<dyn Storage>, options()).expect("open");
    db.register(hearth::DeviceInfo::unknown("WM-1"))
        .expect("register");
    db.export_device("WM-1").expect("export");
    drop(db);
    storage.remove("PRIVACY").expect("remove");
    let e = Db::open_with(storage as Arc<dyn Storage>, options()).expect_err("no key");
    assert!(
        e.is_corruption() && e.to_string().contains("PRIVACY"),
        "{e}"
    );
}

/// A flipped byte in `PRIVACY`, or in an audit record followed by another, stops the open
/// with a corruption error naming the file; `verify` names it too.
#[test]
fn damage_to_the_privacy_files_is_reported_with_file_and_offset() {
    let build = || {
        let storage = Arc::new(SimStorage::new());
        let db = Db::open_with(Arc::clone(&storage) as Arc<dyn Storage>, options()).expect("open");
        db.register(hearth::DeviceInfo::unknown("WM-1"))
            .expect("register");
        db.export_device("WM-1").expect("export");
        db.export_device("WM-1").expect("export");
        db.flush().expect("flush");
        drop(db);
        storage
    };
    for (file, offset) in [("PRIVACY", 30), ("audit.log", 16 + 20)] {
        let storage = build();
        storage.corrupt(file, offset, 0x20).expect("flip");
        let e = Db::open_with(Arc::clone(&storage) as Arc<dyn Storage>, options())
            .expect_err("damage found");
        assert!(e.is_corruption() && e.to_string().contains(file), "{e}");
        let e = Db::verify_storage(&*storage).expect_err("verify finds it");
        assert!(e.to_string().contains(file), "{e}");
    }
}

/// Fleet questions of many shapes over `[from, to)`: buckets of months, quarters, years or
/// none; groupings that project a cube's stream dimensions away; `In` filters on a column
/// and on attributes; two attributes at once; the hour.
fn shapes(db: &Db, from: i64, to: i64) -> Vec<FleetQuery> {
    let program = || Dim::column("program");
    let region = || Dim::Attribute(Attribute::Region);
    let values = |d: Dim, n: usize| -> Vec<String> {
        truth(db, &FleetQuery::count("cycles", from, to, vec![d]))
            .rows
            .iter()
            .map(|r| r.keys[0].clone())
            .step_by(2)
            .take(n)
            .collect()
    };
    let regions = values(region(), 3);
    let segments = values(Dim::Attribute(Attribute::Segment), 4);
    let programs = values(program(), 3);
    let q = |dims: Vec<Dim>, grain: Option<Grain>, filters: Vec<hearth::query::Filter>| {
        let mut q = FleetQuery::count("cycles", from, to, dims);
        q.grain = grain;
        q.filters = filters;
        q
    };
    let programs = || hearth::query::Filter::In {
        dim: program(),
        values: programs.clone(),
    };
    let some_regions = || hearth::query::Filter::In {
        dim: region(),
        values: regions.clone(),
    };
    let segments = || hearth::query::Filter::In {
        dim: Dim::Attribute(Attribute::Segment),
        values: segments.clone(),
    };
    let mut out = Vec::new();
    for grain in [
        Some(Grain::Month),
        Some(Grain::Quarter),
        Some(Grain::Year),
        None,
    ] {
        out.push(q(vec![program(), region()], grain, vec![]));
        out.push(q(vec![region()], grain, vec![]));
        out.push(q(vec![program()], grain, vec![]));
        out.push(q(
            vec![Dim::column("temp_setting_c")],
            grain,
            vec![programs()],
        ));
        out.push(q(vec![program(), region()], grain, vec![some_regions()]));
        out.push(q(vec![region()], grain, vec![segments()]));
        out.push(q(
            vec![Dim::Attribute(Attribute::Model), program()],
            grain,
            vec![],
        ));
        out.push(q(vec![Dim::HourOfDay], grain, vec![]));
        out.push(q(vec![], grain, vec![]));
    }
    out
}

/// The exact distinct devices of `q` on every path equal the scan's, through `Db` and the
/// analytics view (which keeps exact counts when the question asks for them).
fn check_exact(db: &Db, q: &FleetQuery, k: u32) {
    let t = truth(db, q);
    for plan in [Plan::Auto, Plan::Rollup] {
        let mut x = q.clone();
        x.plan = plan;
        x.devices = true;
        let Ok(got) = db.fleet(&x) else {
            assert_eq!(plan, Plan::Rollup, "{q:?}");
            continue;
        };
        let counts = |r: &FleetResult| -> Vec<(Option<i64>, Vec<String>, Option<u64>)> {
            r.rows
                .iter()
                .map(|r| (r.bucket_day, r.keys.clone(), r.devices))
                .collect()
        };
        assert_eq!(counts(&got), counts(&t), "{plan:?} {q:?}");
        let a = db
            .analytics_with_k(k)
            .expect("k")
            .fleet(&x)
            .expect("analytics");
        for r in &a.answer.rows {
            let want = t.get(
                &r.keys.iter().map(String::as_str).collect::<Vec<_>>(),
                r.bucket_day,
            );
            assert_eq!(r.devices, want.and_then(|w| w.devices), "{q:?}");
        }
    }
}

/// D8 through the analytics view: a cell is zeroed and named exactly when 1 to k − 1
/// devices are behind it, counted from the raw rows.
fn check_hours(db: &Db, from: i64, to: i64, k: u32) {
    let mut devices = [[0u64; 24]; 7];
    let d0 = hearth::calendar::day_of(from);
    let d1 = hearth::calendar::day_of(to - 1);
    db.scan(
        "cycles",
        d0 * DAY_MS..(d1 + 1) * DAY_MS,
        &["program"],
        |rows| {
            let mut seen = BTreeSet::new();
            for &ts in &rows.ts {
                let day = hearth::calendar::day_of(ts);
                let w = (day + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
                let h = ts.rem_euclid(DAY_MS) / 3_600_000;
                seen.insert((w, h as usize));
            }
            for (w, h) in seen {
                devices[w][h] += 1;
            }
        },
    )
    .expect("scan");
    for plan in [Plan::Auto, Plan::Scan] {
        let t = db
            .analytics_with_k(k)
            .expect("k")
            .time_of_day(from, to, plan)
            .expect("hours");
        let full = db.time_of_day(from, to, plan).expect("hours");
        let mut named = 0;
        for (w, row) in devices.iter().enumerate() {
            for (h, &n) in row.iter().enumerate() {
                if n > 0 && n < u64::from(k) {
                    assert_eq!(t.answer.cycles[w][h], 0, "k {k} {w} {h}");
                    named += 1;
                } else {
                    assert_eq!(t.answer.cycles[w][h], full.cycles[w][h], "k {k} {w} {h}");
                }
            }
        }
        assert_eq!(named, t.suppressed.len(), "k {k}");
    }
}

/// Every shape, at every k around the groups' sizes, on whole months and ragged periods.
fn check_shapes(db: &Db, what: &str) -> usize {
    let data_to = TO;
    let whole = Grain::Month.start(hearth::calendar::day_of(data_to)) * DAY_MS;
    let mut suppressed = 0;
    for (from, to) in [(FROM, whole), (FROM, data_to), periods()[1]] {
        for q in shapes(db, from, to) {
            check_exact(db, &q, 5);
            for k in [2, 3, 4, 5, 6, 8, 12] {
                for plan in [Plan::Auto, Plan::Rollup] {
                    let mut x = q.clone();
                    x.plan = plan;
                    if plan == Plan::Rollup && db.fleet(&x).is_err() {
                        continue;
                    }
                    suppressed += check_fleet(db, &x, k);
                }
            }
        }
        for k in [2, 3, 5, 9, 40] {
            check_hours(db, from, to, k);
        }
    }
    assert!(suppressed > 0, "{what}: no small group");
    suppressed
}

#[test]
fn device_counts_equal_the_scan_for_every_shape_after_erasure_and_reopen() {
    let f = fleet();
    let sim = SimStorage::new();
    // k from 2 up, to cross the groups' sizes.
    let opts = || Options {
        k_anonymity: Some(2),
        ..options()
    };
    let db = Db::open_with(Arc::new(sim.clone()), opts()).expect("open");
    load(&db, f);
    check_shapes(&db, "loaded");
    // Erase devices of the smallest region (groups there cross k) and one other.
    let t = truth(
        &db,
        &FleetQuery::count("cycles", FROM, TO, vec![Dim::Attribute(Attribute::Region)]),
    );
    let small = t
        .rows
        .iter()
        .filter(|r| r.devices.unwrap_or(0) >= 2)
        .min_by_key(|r| r.devices)
        .map(|r| r.keys[0].clone())
        .expect("a region");
    let victims: Vec<String> = f
        .devices()
        .iter()
        .filter(|d| {
            db.device_id(&d.serial)
                .and_then(|id| db.device(id))
                .is_some_and(|i| i.region == small)
        })
        .map(|d| d.serial.clone())
        .take(1)
        .chain(std::iter::once(f.devices()[7].serial.clone()))
        .collect();
    for v in &victims {
        db.erase(v).expect("erase");
    }
    check_shapes(&db, "after erasure");
    // More rows after the erasure (bits set again, counted as they flip), then reopen: the
    // cycles of the last weeks again, an hour and a few seconds later, without the victims.
    let late = TO - 30 * DAY_MS;
    for b in f.batches(2_000).filter(|b| b.stream == "cycles") {
        let keep: Vec<usize> = (0..b.ts.len())
            .filter(|&i| b.ts[i] >= late && !victims.contains(&b.device[i]))
            .collect();
        if keep.is_empty() {
            continue;
        }
        let pick = |v: &Values| match v {
            Values::Float(x) => Values::Float(keep.iter().map(|&i| x[i]).collect()),
            Values::Int(x) => Values::Int(keep.iter().map(|&i| x[i]).collect()),
            Values::Text(x) => Values::Text(keep.iter().map(|&i| x[i].clone()).collect()),
        };
        let moved = Batch {
            stream: b.stream.clone(),
            ts: keep.iter().map(|&i| b.ts[i] + 3_600_000 + 17_000).collect(),
            device: keep.iter().map(|&i| b.device[i].clone()).collect(),
            columns: b
                .columns
                .iter()
                .map(|(n, v)| (n.clone(), pick(v)))
                .collect(),
        };
        db.append(&moved).expect("append");
    }
    check_shapes(&db, "after more rows");
    drop(db);
    let db = Db::open_with(Arc::new(sim), opts()).expect("reopen");
    check_shapes(&db, "after reopen");
}
