//! Retention: a run drops expired windows whole, and afterwards every question (fleet, on
//! the rollup and the scan plan; per device) answers exactly like a database built from only
//! the retained rows; the result survives reopening; a power cut at every sync point of a
//! run leaves the rows before or after it, never a mix; damage to the policy file is a typed
//! error naming it.

mod common;

use std::sync::Arc;

use hearth::query::device::{last_weeks, AdviceConfig, HealthConfig};
use hearth::query::fleet::Bands;
use hearth::query::{FleetQuery, Measure, Plan};
use hearth::schema::DAY_MS;
use hearth::sim::{Fleet, FleetConfig, DEFAULT_START_MS};
use hearth::{
    Attribute, AuditKind, AuditOutcome, Batch, Db, Error, Grain, InputError, Options, Schema,
    SimFault, SimStorage, Storage, SyncPolicy, Values,
};
use serde_json::Value;

const START: i64 = DEFAULT_START_MS;
const DAYS: u32 = 440;
const NOW: i64 = START + DAYS as i64 * DAY_MS;

fn options(schema: &Schema) -> Options {
    Options {
        schema: Some(schema.clone()),
        sync: SyncPolicy::Never,
        memtable_rows: 5_000,
        compaction_trigger: 3,
        background: false,
        ..Options::default()
    }
}

fn fleet() -> Fleet {
    Fleet::new(FleetConfig {
        devices: 40,
        days: DAYS,
        samples: true,
        sample_device_share: 0.1,
        sample_cycle_share: 0.05,
        duplicate_rate: 0.03,
        late_rate: 0.05,
        fault_rate: 0.1,
        ..FleetConfig::default()
    })
}

/// The preset with `cycles` in windows of `days` days (the preset's are 365).
fn schema_with_cycle_windows(days: i64) -> Schema {
    let mut s = Schema::washing_machine();
    for st in &mut s.streams {
        if st.name == "cycles" {
            st.window_ms = days * DAY_MS;
        }
    }
    s
}

/// The rows of `b` whose timestamp passes `keep`, or `None` when none does.
fn filter_batch(b: &Batch, keep: &dyn Fn(i64) -> bool) -> Option<Batch> {
    let mask: Vec<bool> = b.ts.iter().map(|&t| keep(t)).collect();
    if !mask.iter().any(|&m| m) {
        return None;
    }
    fn pick<T: Clone>(v: &[T], mask: &[bool]) -> Vec<T> {
        v.iter()
            .zip(mask)
            .filter(|(_, &m)| m)
            .map(|(x, _)| x.clone())
            .collect()
    }
    Some(Batch {
        stream: b.stream.clone(),
        ts: pick(&b.ts, &mask),
        device: pick(&b.device, &mask),
        columns: b
            .columns
            .iter()
            .map(|(n, v)| {
                let v = match v {
                    Values::Float(x) => Values::Float(pick(x, &mask)),
                    Values::Int(x) => Values::Int(pick(x, &mask)),
                    Values::Text(x) => Values::Text(pick(x, &mask)),
                };
                (n.clone(), v)
            })
            .collect(),
    })
}

/// Loads the fleet's rows that `keep(stream, ts)` keeps.
fn load(db: &Db, f: &Fleet, keep: &dyn Fn(&str, i64) -> bool) {
    db.set_postcodes(&f.postcodes()).expect("postcodes");
    db.register_all(f.devices().to_vec()).expect("register");
    for b in f.batches(700) {
        let stream = b.stream.clone();
        if let Some(b) = filter_batch(&b, &|t| keep(&stream, t)) {
            db.append(&b).expect("append");
        }
    }
}

/// JSON of an answer without its `source` fields (which say how it was computed: cells
/// read or rows scanned, which depend on how the rows are laid out in files).
fn answer<T: serde::Serialize>(x: &T) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("source");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(x).expect("serialises");
    strip(&mut v);
    v
}

/// Every fleet question, on both plans, as JSON: each preset cube with all its measures by
/// month, distinct devices by month, D1–D8.
fn fleet_answers(db: &Db) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let def = db.schema().stream("cycles").expect("cycles").clone();
    let (from, to) = (START, NOW);
    for plan in [Plan::Auto, Plan::Scan] {
        for cube in &def.rollups.cubes {
            let mut q = FleetQuery::count("cycles", from, to, cube.dims.clone());
            q.grain = Some(Grain::Month);
            q.plan = plan;
            q.measures = cube
                .measures
                .iter()
                .flat_map(|m| {
                    [
                        Measure::Sum(m.clone()),
                        Measure::Min(m.clone()),
                        Measure::Max(m.clone()),
                        Measure::Variance(m.clone()),
                    ]
                })
                .chain(cube.histograms.iter().map(|h| Measure::Histogram {
                    column: h.column.clone(),
                    bins: h.bins.clone(),
                }))
                .collect();
            out.push((
                format!("{} {plan:?}", cube.name),
                answer(&db.fleet(&q).expect("cube")),
            ));
            let mut d = FleetQuery::count("cycles", from, to, cube.dims.clone());
            d.grain = Some(Grain::Quarter);
            d.devices = true;
            d.plan = plan;
            out.push((
                format!("{} devices {plan:?}", cube.name),
                answer(&db.fleet(&d).expect("devices")),
            ));
        }
        for grain in [Grain::Day, Grain::Month, Grain::Year] {
            out.push((
                format!("d1 {grain:?} {plan:?}"),
                answer(
                    &db.cycles_by("program", Attribute::Region, grain, from, to, plan)
                        .expect("d1"),
                ),
            ));
        }
        out.push((
            format!("d2 {plan:?}"),
            answer(&db.load_distribution(from, to, plan).expect("d2")),
        ));
        out.push((
            format!("d3 {plan:?}"),
            answer(
                &db.rare_programs(Attribute::Model, 0.02, from, to, plan)
                    .expect("d3"),
            ),
        ));
        out.push((
            format!("d4 {plan:?}"),
            answer(&db.resources_by_setting(from, to, plan).expect("d4")),
        ));
        out.push((
            format!("d5 {plan:?}"),
            answer(
                &db.usage_bands(Attribute::Segment, &Bands::default(), from, to, plan)
                    .expect("d5"),
            ),
        ));
        for m in ["energy_wh", "cycles_per_week"] {
            out.push((
                format!("d6 {m} {plan:?}"),
                answer(
                    &db.anova(m, Attribute::Segment, from, to, plan)
                        .expect("d6")
                        .0,
                ),
            ));
        }
        out.push((
            format!("d7 {plan:?}"),
            answer(
                &db.chi_square("program", Attribute::Region, from, to, plan)
                    .expect("d7")
                    .0,
            ),
        ));
        out.push((
            format!("d8 {plan:?}"),
            answer(&db.time_of_day(from, to, plan).expect("d8")),
        ));
    }
    out
}

/// Every per-device question for every device, and the fleet snapshot, as JSON.
fn device_answers(db: &Db, f: &Fleet) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let (r13, _) = last_weeks(NOW - 1, 13);
    for d in f.devices() {
        let s = &d.serial;
        out.push((
            format!("{s} last"),
            answer(&db.last_cycles(s, 20).expect("c1")),
        ));
        for (from, to) in [(START, NOW), (r13, NOW)] {
            out.push((
                format!("{s} usage {from}"),
                answer(&db.usage(s, from, to, &AdviceConfig::default()).expect("c2")),
            ));
        }
        out.push((
            format!("{s} health"),
            answer(&db.health(s, NOW - 1, &HealthConfig::default()).expect("c3")),
        ));
        for stream in ["cycles", "samples"] {
            let rows = db
                .scan_device(stream, s, i64::MIN..i64::MAX, &[])
                .expect("rows");
            out.push((
                format!("{s} {stream}"),
                answer(&(rows.ts.clone(), rows.columns.clone())),
            ));
        }
        let samples = db
            .scan_device("samples", s, i64::MIN..i64::MAX, &[])
            .expect("samples");
        if let Some(&last) = samples.ts.last() {
            let cycle = db
                .scan_device("cycles", s, i64::MIN..last + 1, &[])
                .expect("cycle");
            if let Some(&start) = cycle.ts.last() {
                let t = db.trace(s, start).expect("c4");
                out.push((format!("{s} trace"), answer(&(t.ts, t.columns))));
            }
        }
    }
    out.push((
        "snapshot".into(),
        answer(
            &db.fleet_snapshot(NOW - 1, &HealthConfig::default())
                .expect("c5"),
        ),
    ));
    out
}

fn assert_same_answers(what: &str, a: &[(String, Value)], b: &[(String, Value)]) {
    assert_eq!(a.len(), b.len(), "{what}: number of answers");
    for ((qa, va), (qb, vb)) in a.iter().zip(b) {
        assert_eq!(qa, qb);
        assert!(va == vb, "{what}: {qa} differs:\n{va}\n{vb}");
    }
}

/// The rollup plan and the scan plan give the same fleet answers.
fn assert_plans_agree(what: &str, answers: &[(String, Value)]) {
    let half = answers.len() / 2;
    for ((qa, va), (qb, vb)) in answers[..half].iter().zip(&answers[half..]) {
        assert!(va == vb, "{what}: {qa} and {qb} differ:\n{va}\n{vb}");
    }
}

/// Builds a database of the fleet, applies `keep` (per stream, days), and checks it against
/// a database built from the retained rows only.
fn retained_equals_fresh(schema: &Schema, keep_days: &[(&str, i64)]) {
    let f = fleet();
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let db = Db::open_with(Arc::clone(&storage), options(schema)).expect("open");
    load(&db, &f, &|_, _| true);
    db.compact().expect("compact");
    // The fleet's last batches are still in the memtable when the run starts (rows of
    // expired windows in memory: see the late-row test).
    let before = db.info().expect("info");
    assert!(before.streams.iter().any(|s| s.memtable_rows > 0));
    for (stream, days) in keep_days {
        db.set_retention(stream, days * DAY_MS).expect("policy");
    }
    let expired = |stream: &str, ts: i64| -> bool {
        keep_days.iter().any(|(s, days)| {
            let def = schema.stream(s).expect("stream");
            *s == stream
                && (i128::from(def.window_of(ts)) + 1) * i128::from(def.window_ms)
                    <= i128::from(NOW - days * DAY_MS)
        })
    };
    let report = db.apply_retention(NOW).expect("retention");
    assert!(report.rows() > 0 && report.windows() > 0, "{report:?}");
    eprintln!("{report:?}");

    let fresh = Db::open_with(Arc::new(SimStorage::new()), options(schema)).expect("open");
    load(&fresh, &f, &|s, t| !expired(s, t));
    let kept_rows = |db: &Db| -> u64 {
        let i = db.info().expect("info");
        i.streams
            .iter()
            .map(|s| s.segment_rows + s.memtable_rows)
            .sum()
    };
    assert_eq!(kept_rows(&db), kept_rows(&fresh));
    let total_before: u64 = before
        .streams
        .iter()
        .map(|s| s.segment_rows + s.memtable_rows)
        .sum();
    assert_eq!(total_before - report.rows(), kept_rows(&db), "{report:?}");

    // Fleet questions, with rows still in memtables.
    let a = fleet_answers(&db);
    assert_plans_agree("after retention", &a);
    assert_same_answers("fleet", &a, &fleet_answers(&fresh));
    // Per-device questions, with both flushed (a model's all-time cells, which C2 and C3
    // compare a device with, leave out memtable rows by design).
    db.flush().expect("flush");
    fresh.flush().expect("flush");
    let d = device_answers(&db, &f);
    assert!(
        d.iter().any(|(q, _)| q.ends_with("trace")),
        "a trace is compared"
    );
    assert_same_answers("devices", &d, &device_answers(&fresh, &f));
    assert_eq!(common::read_all(&db).ok(), common::read_all(&fresh).ok());

    // A second run at the same instant drops nothing and writes nothing but its record.
    let bytes = db.info().expect("info").total_bytes;
    let again = db.apply_retention(NOW).expect("again");
    assert_eq!((again.rows(), again.windows()), (0, 0));
    assert_eq!(
        db.info().expect("info").total_bytes,
        bytes + audit_record_len(&db)
    );

    // Reopened: the same answers.
    db.close().expect("close");
    let db = Db::open_with(storage, options(schema)).expect("reopen");
    let r = fleet_answers(&db);
    assert_plans_agree("reopened", &r);
    assert_same_answers("fleet after reopen", &r, &fleet_answers(&fresh));
    assert_same_answers("devices after reopen", &device_answers(&db, &f), &d);
    assert_eq!(
        db.retention().expect("policies").len(),
        keep_days.len(),
        "policies survive reopening"
    );
}

/// Bytes of the last audit record (header and payload).
fn audit_record_len(db: &Db) -> u64 {
    let last = db.audit_log().expect("audit").pop().expect("a record");
    8 + 34 + last.detail.len() as u64
}

#[test]
fn retained_rows_answer_like_a_fresh_database_with_the_preset_windows() {
    // Cycles: yearly windows; the first (to 2025-12-18) is wholly older than 60 days before
    // NOW, the second is not. Samples: weekly windows, kept 200 days.
    retained_equals_fresh(
        &Schema::washing_machine(),
        &[("cycles", 60), ("samples", 200)],
    );
}

#[test]
fn retained_rows_answer_like_a_fresh_database_with_four_week_windows() {
    retained_equals_fresh(&schema_with_cycle_windows(28), &[("cycles", 200)]);
}

/// A batch of one ordinary cycle of `serial` at `ts`.
fn one_cycle(serial: &str, ts: i64) -> Batch {
    let mut b = Batch::new("cycles");
    b.ts = vec![ts];
    b.device = vec![serial.to_string()];
    for (name, v) in [
        ("program", Values::Text(vec!["cotton".into()])),
        ("temp_setting_c", Values::Int(vec![40])),
        ("spin_setting_rpm", Values::Int(vec![1200])),
        ("load_kg", Values::Float(vec![4.0])),
        ("duration_s", Values::Float(vec![7000.0])),
        ("energy_wh", Values::Float(vec![800.0])),
        ("water_l", Values::Float(vec![40.0])),
        ("fill_time_s", Values::Float(vec![60.0])),
        ("max_vibration_g", Values::Float(vec![0.3])),
    ] {
        b.columns.push((name.into(), v));
    }
    b
}

#[test]
fn a_late_row_older_than_the_cutoff_waits_for_the_next_run() {
    let schema = schema_with_cycle_windows(28);
    let f = Fleet::new(FleetConfig {
        devices: 10,
        days: 120,
        ..FleetConfig::default()
    });
    let db = Db::open_with(Arc::new(SimStorage::new()), options(&schema)).expect("open");
    load(&db, &f, &|_, _| true);
    let now = START + 120 * DAY_MS;
    db.set_retention("cycles", 30 * DAY_MS).expect("policy");
    let first = db.apply_retention(now).expect("run");
    assert!(first.rows() > 0);
    let oldest = |db: &Db| {
        let mut min = i64::MAX;
        db.scan("cycles", i64::MIN..i64::MAX, &["load_kg"], |r| {
            min = min.min(r.ts[0]);
        })
        .expect("scan");
        min
    };
    let cutoff = now - 30 * DAY_MS;
    let kept_from = oldest(&db);
    assert!(
        kept_from > START && kept_from < cutoff,
        "whole windows only"
    );
    // A device re-sends a row of a dropped window: accepted (it is no duplicate any more),
    // visible, and counted by the rollups like any row...
    let serial = f.devices()[0].serial.clone();
    let late = one_cycle(&serial, START + 3_600_000);
    assert_eq!(db.append(&late).expect("late").accepted, 1);
    assert_eq!(oldest(&db), START + 3_600_000);
    let count = |db: &Db, plan| {
        let mut q = FleetQuery::count("cycles", START, START + DAY_MS, Vec::new());
        q.plan = plan;
        db.fleet(&q)
            .expect("count")
            .rows
            .first()
            .map_or(0, |r| r.rows)
    };
    assert_eq!((count(&db, Plan::Auto), count(&db, Plan::Scan)), (1, 1));
    // ... until the next run, which flushes it from the memtable and drops its window again.
    let second = db.apply_retention(now).expect("run");
    assert_eq!((second.rows(), second.windows()), (1, 1));
    assert_eq!(oldest(&db), kept_from);
    assert_eq!((count(&db, Plan::Auto), count(&db, Plan::Scan)), (0, 0));
    // Both runs are in the audit log, with no device and their counts.
    let log = db.audit_log().expect("audit");
    let runs: Vec<_> = log
        .iter()
        .filter(|e| e.kind == AuditKind::Retention)
        .collect();
    assert_eq!(runs.len(), 2);
    assert!(runs
        .iter()
        .all(|e| e.outcome == AuditOutcome::Ok && e.device.is_none()));
    assert!(
        runs[1]
            .detail
            .contains("cycles: keep 2592000000 ms, 1 windows, 1 segments, 1 rows"),
        "{}",
        runs[1].detail
    );
    assert!(
        !runs.iter().any(|e| e.detail.contains(&serial)),
        "no serial"
    );
}

#[test]
fn policies_are_checked_stored_and_verified() {
    let schema = Schema::washing_machine();
    let sim = SimStorage::new();
    let db = Db::open_with(Arc::new(sim.clone()), options(&schema)).expect("open");
    assert!(db.retention().expect("none").is_empty());
    // Nothing to do without a policy; the run is still recorded.
    let r = db.apply_retention(NOW).expect("run");
    assert!(r.streams.is_empty());
    assert_eq!(
        db.audit_log().expect("log")[0].detail,
        "no retention policy"
    );
    // Bad input changes nothing.
    assert!(matches!(
        db.set_retention("nope", DAY_MS),
        Err(Error::Input(InputError::UnknownStream(_)))
    ));
    assert!(matches!(
        db.set_retention("cycles", 0),
        Err(Error::Input(InputError::Invalid(_)))
    ));
    assert!(!sim.list().expect("list").iter().any(|n| n == "RETENTION"));
    db.set_retention("samples", 30 * DAY_MS).expect("set");
    db.set_retention("cycles", 400 * DAY_MS).expect("set");
    db.set_retention("samples", 60 * DAY_MS).expect("replace");
    let p = db.retention().expect("policies");
    assert_eq!(
        p.iter()
            .map(|p| (p.stream.as_str(), p.keep_ms / DAY_MS))
            .collect::<Vec<_>>(),
        vec![("cycles", 400), ("samples", 60)]
    );
    assert_eq!(p[0].window_ms, 365 * DAY_MS);
    assert!(db.clear_retention("samples").expect("clear"));
    assert!(!db.clear_retention("samples").expect("clear again"));
    drop(db);
    let report = Db::verify_storage(&sim).expect("verify");
    assert!(report.unreferenced_files.is_empty(), "{report:?}");
    let without = {
        let s = sim.crash(|_, _| 0);
        s.remove("RETENTION").expect("remove");
        Db::verify_storage(&s).expect("verify").files_checked
    };
    assert_eq!(report.files_checked, without + 1, "RETENTION is checked");
    let db = Db::open_with(Arc::new(sim.clone()), options(&schema)).expect("reopen");
    assert_eq!(db.retention().expect("policies").len(), 1);
}

#[test]
fn a_damaged_policy_file_is_a_typed_error_naming_it_and_changes_nothing() {
    let schema = schema_with_cycle_windows(28);
    let sim = SimStorage::new();
    let f = Fleet::new(FleetConfig {
        devices: 5,
        days: 90,
        ..FleetConfig::default()
    });
    let db = Db::open_with(Arc::new(sim.clone()), options(&schema)).expect("open");
    load(&db, &f, &|_, _| true);
    db.set_retention("cycles", 10 * DAY_MS).expect("policy");
    let rows = common::read_all(&db).expect("read");
    let len = sim.read("RETENTION").expect("read").len();
    for offset in [0, 9, 13, 20, len - 2] {
        sim.corrupt("RETENTION", offset, 0x40).expect("corrupt");
        let named =
            |e: Error| matches!(e, Error::Corruption { ref file, .. } if file == "RETENTION");
        assert!(named(db.retention().expect_err("policies")), "at {offset}");
        assert!(
            named(db.apply_retention(NOW).expect_err("run")),
            "at {offset}"
        );
        assert!(
            named(Db::verify_storage(&sim).expect_err("verify")),
            "at {offset}"
        );
        assert!(named(db.set_retention("cycles", DAY_MS).expect_err("set")));
        assert_eq!(
            common::read_all(&db).expect("read"),
            rows,
            "nothing dropped"
        );
        sim.corrupt("RETENTION", offset, 0x40).expect("repair");
    }
    // The failed runs are recorded as failed, with a fixed class, not the message.
    let log = db.audit_log().expect("log");
    assert_eq!(log.len(), 5);
    assert!(log
        .iter()
        .all(|e| e.outcome == AuditOutcome::Failed && e.detail == "failed: corruption"));
    // A policy naming a stream the schema does not have: a valid envelope, still refused.
    let mut payload = vec![1u8, 9, 1];
    let bytes = {
        let mut out = Vec::new();
        out.extend_from_slice(b"HRTHRET\0");
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.append(&mut payload);
        let crc = crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    };
    sim.remove("RETENTION").expect("remove");
    let mut file = sim.create("RETENTION").expect("create");
    file.append(&bytes).expect("write");
    file.sync_data().expect("sync");
    drop(file);
    let err = db.retention().expect_err("unknown stream");
    assert!(
        err.to_string().contains("RETENTION") && err.to_string().contains("stream 9"),
        "{err}"
    );
    assert!(Db::verify_storage(&sim).is_err());
}

/// CRC32C (Castagnoli), bitwise: the tests build one file by hand.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small workload over the preset: rows in two yearly cycle windows and many weekly
/// sample windows, some flushed, some compacted, some still in the log.
fn setup(db: &Db, schema: &Schema) {
    let mut rng = common::Rng(7);
    let mut previous = Vec::new();
    for (i, day) in [10, 40, 200, 330, 360, 380, 400, 420]
        .into_iter()
        .enumerate()
    {
        for stream in ["cycles", "samples"] {
            let rows = common::gen_rows(&mut rng, stream, 30, 5, day, &previous);
            previous.extend(rows.iter().cloned());
            db.append(&common::to_batch(schema, stream, &rows))
                .expect("append");
        }
        if i % 3 == 2 {
            db.flush().expect("flush");
        }
    }
    // Late rows of long-expired windows, still in the memtable when the run starts.
    for stream in ["cycles", "samples"] {
        let rows = common::gen_rows(&mut rng, stream, 5, 5, 20, &previous);
        db.append(&common::to_batch(schema, stream, &rows))
            .expect("append");
    }
}

/// The model of the rows that survive a run at `now` keeping cycles 30 days and samples 60.
fn after_run(m: &common::Model, schema: &Schema, now: i64) -> common::Model {
    let mut out = m.clone();
    out.rows.retain(|(stream, _, ts), _| {
        let keep = if stream == "cycles" { 30 } else { 60 };
        let def = schema.stream(stream).expect("stream");
        (i128::from(def.window_of(*ts)) + 1) * i128::from(def.window_ms)
            > i128::from(now - keep * DAY_MS)
    });
    out
}

/// Cuts the power at every sync point `base + 1 ..= total` of `run` on a database that
/// `setup` built, crashes the disk strictly (nothing unsynced kept) and with a random part of
/// each unsynced write kept, reopens, and requires the rows to be `before` or `after` the run;
/// then `check(what, db, disk, rows are after)`, which may consume the database. Both
/// outcomes must be seen.
fn every_power_cut(
    label: &str,
    (base, total): (u64, u64),
    (before, after): (&common::Model, &common::Model),
    seed: u64,
    setup: &dyn Fn(&Db),
    run: &dyn Fn(&Db) -> hearth::Result<()>,
    check: &mut dyn FnMut(&str, Db, &SimStorage, bool),
) {
    let mut rng = common::Rng(seed);
    let (mut saw_before, mut saw_after) = (0, 0);
    for n in base + 1..=total {
        let sim = SimStorage::new();
        let db = common::open(Arc::new(sim.clone())).expect("open");
        setup(&db);
        assert_eq!(sim.sync_count(), base, "the setup is deterministic");
        sim.set_fault(Some(SimFault::PowerCut(n)));
        assert!(run(&db).is_err(), "cut {n} of {total} never happened");
        drop(db);
        for strict in [true, false] {
            let disk = if strict {
                sim.crash(|_, _| 0)
            } else {
                let r = rng.next();
                sim.crash(move |_, len| (r % (len as u64 + 1)) as usize)
            };
            let what = format!(
                "cut at sync {n} ({} into the run of {}), strict {strict}",
                n - base,
                total - base
            );
            let db = common::open(Arc::new(disk.clone()))
                .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
            let got = common::read_all(&db).unwrap_or_else(|e| panic!("{what}: read: {e}"));
            if got == *before {
                saw_before += 1;
            } else if got == *after {
                saw_after += 1;
            } else {
                panic!(
                    "{what}: {} rows, neither before ({}) nor after ({})",
                    got.rows.len(),
                    before.rows.len(),
                    after.rows.len()
                );
            }
            check(&what, db, &disk, got == *after);
        }
    }
    eprintln!(
        "power cut at {} sync points of {label}: {saw_before} images before, {saw_after} after",
        total - base
    );
    assert!(saw_before > 0 && saw_after > 0);
}

#[test]
fn a_power_cut_at_every_sync_of_a_run_leaves_before_or_after() {
    let schema = Schema::washing_machine();
    let now = common::T0 + 430 * DAY_MS;
    let run = |db: &Db| -> hearth::Result<()> {
        db.set_retention("cycles", 30 * DAY_MS)?;
        db.set_retention("samples", 60 * DAY_MS)?;
        db.apply_retention(now).map(|_| ())
    };
    // A clean run: the sync points before and during the run, and the two states.
    let clean = SimStorage::new();
    let (base, total, before) = {
        let db = common::open(Arc::new(clean.clone())).expect("open");
        setup(&db, &schema);
        let before = common::read_all(&db).expect("read");
        let base = clean.sync_count();
        run(&db).expect("run");
        (base, clean.sync_count(), before)
    };
    let after = after_run(&before, &schema, now);
    assert!(after.rows.len() < before.rows.len() && !after.rows.is_empty());
    every_power_cut(
        "a retention run",
        (base, total),
        (&before, &after),
        99,
        &|db| setup(db, &schema),
        &run,
        &mut |what, db, disk, _| {
            // The rollups agree with the rows, and a new run completes the job.
            let mut q = FleetQuery::count(
                "cycles",
                common::T0 - 30 * DAY_MS,
                now,
                vec![hearth::Dim::column("program")],
            );
            q.grain = Some(Grain::Month);
            let auto = db.fleet(&q).expect("auto");
            q.plan = Plan::Scan;
            assert_eq!(auto.rows, db.fleet(&q).expect("scan").rows, "{what}");
            run(&db).unwrap_or_else(|e| panic!("{what}: run again: {e}"));
            assert_eq!(common::read_all(&db).expect("read"), after, "{what}");
            drop(db);
            let report = Db::verify_storage(disk).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(report.unreferenced_files.is_empty(), "{what}: {report:?}");
        },
    );
}

/// The answers of C2 and C3 that come from the device's week cells only: usage without its
/// advice (priced with the model's fleet cells), health without the model's fleet medians
/// and what they decide (fleet rollups go with the raw rows).
fn device_cell_answers(
    db: &Db,
    serials: &[String],
    periods: &[(i64, i64)],
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for s in serials {
        for &(from, to) in periods {
            let mut u = answer(&db.usage(s, from, to, &AdviceConfig::default()).expect("c2"));
            if let Value::Object(m) = &mut u {
                m.remove("advice");
            }
            out.push((format!("{s} usage {from}..{to}"), u));
        }
        for &(_, at) in periods {
            let cfg = HealthConfig {
                history_weeks: 20,
                ..HealthConfig::default()
            };
            let h = db.health(s, at - 1, &cfg).expect("c3");
            let trend = |t: &hearth::query::device::Trend| {
                serde_json::json!([
                    t.column,
                    answer(&t.weekly),
                    t.recent_mean,
                    t.baseline_mean,
                    t.vs_baseline
                ])
            };
            out.push((
                format!("{s} health {at}"),
                serde_json::json!([
                    h.to_day,
                    trend(&h.fill_time),
                    trend(&h.vibration),
                    answer(&h.errors)
                ]),
            ));
        }
    }
    out
}

/// The first Monday (ms) at or after `ms`.
fn monday_from(ms: i64) -> i64 {
    let day = ms.div_euclid(DAY_MS) + i64::from(ms.rem_euclid(DAY_MS) != 0);
    let monday = hearth::calendar::week_start(day);
    (if monday < day { monday + 7 } else { monday }) * DAY_MS
}

#[test]
fn device_rollups_outlive_the_raw_rows_until_their_own_period() {
    let schema = schema_with_cycle_windows(28);
    let f = fleet();
    let serials: Vec<String> = f.devices().iter().map(|d| d.serial.clone()).collect();
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let db = Db::open_with(Arc::clone(&storage), options(&schema)).expect("open");
    load(&db, &f, &|_, _| true);
    db.compact().expect("compact");
    db.flush().expect("flush");
    let (keep, keep_devices) = (150 * DAY_MS, 380 * DAY_MS);
    let window_ms = 28 * DAY_MS;
    let raw_cutoff = NOW - keep;
    let device_cutoff = NOW - keep_devices;
    // The first window whose cells are kept, and the first whole week in it.
    let kept_from = monday_from(device_cutoff.div_euclid(window_ms) * window_ms);
    let raw_from = raw_cutoff.div_euclid(window_ms) * window_ms;
    assert!(kept_from > START && kept_from + 20 * 7 * DAY_MS < raw_from);
    // Whole weeks: inside the summarised windows, across the raw cutoff, up to now.
    let periods = [
        (kept_from, monday_from(raw_from) - 7 * DAY_MS),
        (
            kept_from + 28 * 7 * DAY_MS,
            monday_from(raw_from) + 70 * DAY_MS,
        ),
        (kept_from, NOW),
    ];
    let before = device_cell_answers(&db, &serials, &periods);
    let cycles_before = |db: &Db, from, to| -> u64 {
        serials
            .iter()
            .map(|s| {
                db.usage(s, from, to, &AdviceConfig::default())
                    .expect("c2")
                    .cycles
            })
            .sum()
    };
    let summarised_cycles = cycles_before(&db, kept_from, raw_from);
    assert!(summarised_cycles > 0);
    assert!(cycles_before(&db, START, device_cutoff - window_ms) > 0);

    // A device-rollup period shorter than the raw one is refused, and changes nothing.
    match db.set_retention_with_device_rollups("cycles", keep_devices, keep) {
        Err(Error::Input(InputError::DeviceRollupPeriodTooShort {
            stream,
            keep_ms,
            keep_device_rollups_ms,
        })) => assert_eq!(
            (stream.as_str(), keep_ms, keep_device_rollups_ms),
            ("cycles", keep_devices, keep)
        ),
        other => panic!("accepted: {other:?}"),
    }
    assert!(db.retention().expect("policies").is_empty());
    // Samples keep no device rollup.
    assert!(matches!(
        db.set_retention_with_device_rollups("samples", keep, keep_devices),
        Err(Error::Input(InputError::Invalid(_)))
    ));
    db.set_retention_with_device_rollups("cycles", keep, keep_devices)
        .expect("policy");
    let policy = &db.retention().expect("policies")[0];
    assert_eq!(
        (policy.keep_ms, policy.keep_device_rollups_ms),
        (keep, Some(keep_devices))
    );

    let report = db.apply_retention(NOW).expect("run");
    let s = &report.streams[0];
    assert!(s.windows > 0 && s.rows > 0, "{report:?}");
    assert!(
        s.summaries_kept > 0 && s.summaries_kept < s.windows,
        "{report:?}"
    );
    assert_eq!(s.summaries_dropped, 0);
    assert_eq!(s.device_cutoff_ms, device_cutoff);
    let info = db.info().expect("info");
    assert_eq!(info.streams[0].summary_windows, s.summaries_kept);
    assert!(info.streams[0].summary_bytes > 0);
    let log = db.audit_log().expect("audit");
    let detail = &log.last().expect("record").detail;
    assert!(
        detail.contains(&format!("{} summaries kept", s.summaries_kept)),
        "{detail}"
    );

    // C2 and C3 over whole weeks of the kept range answer as before the run.
    assert_same_answers(
        "device cells",
        &device_cell_answers(&db, &serials, &periods),
        &before,
    );
    assert_eq!(cycles_before(&db, kept_from, raw_from), summarised_cycles);
    // Nothing is left of the windows past the device-rollup period.
    assert_eq!(cycles_before(&db, START, device_cutoff - window_ms), 0);
    // Raw rows, C1, C4 and fleet questions: as a database that only held the retained rows.
    let fresh = Db::open_with(Arc::new(SimStorage::new()), options(&schema)).expect("open");
    let raw_expired = |stream: &str, ts: i64| {
        stream == "cycles" && (ts.div_euclid(window_ms) + 1) * window_ms <= raw_cutoff
    };
    load(&fresh, &f, &|s, t| !raw_expired(s, t));
    fresh.flush().expect("flush");
    assert_eq!(common::read_all(&db).ok(), common::read_all(&fresh).ok());
    let a = fleet_answers(&db);
    assert_plans_agree("with device summaries", &a);
    assert_same_answers("fleet", &a, &fleet_answers(&fresh));
    for s in &serials {
        assert_eq!(
            answer(&db.last_cycles(s, 20).expect("c1")),
            answer(&fresh.last_cycles(s, 20).expect("c1"))
        );
    }
    // An export holds the kept weeks (with no row of them).
    let e = db.export_device(&serials[0]).expect("export");
    let first_week = e.week_cells[0].weeks.first().expect("weeks").week.clone();
    let first_row = e.streams[0].rows.first().map(|r| answer(&r[0]));
    let days = |w: &str| {
        let d: Vec<i64> = w.split('-').map(|x| x.parse().expect("date")).collect();
        d[0] * 400 + d[1] * 31 + d[2]
    };
    assert!(days(&first_week) < days("2025-11-01"), "{first_week}");
    assert!(first_row.is_some_and(|t| t.as_i64() >= Some(raw_from)));

    // Reopened and verified: the same.
    db.close().expect("close");
    let db = Db::open_with(Arc::clone(&storage), options(&schema)).expect("reopen");
    assert_same_answers(
        "device cells after reopen",
        &device_cell_answers(&db, &serials, &periods),
        &before,
    );
    let v = Db::verify_storage(&*storage).expect("verify");
    assert_eq!(v.summaries, s.summaries_kept);
    assert!(v.unreferenced_files.is_empty(), "{v:?}");

    // Later, the device-rollup period of every window ends: the summaries go too.
    let later = NOW + 2 * keep_devices;
    let r = db.apply_retention(later).expect("run");
    assert!(r.summaries_dropped() >= s.summaries_kept, "{r:?}");
    assert_eq!(db.info().expect("info").streams[0].summary_windows, 0);
    assert_eq!(cycles_before(&db, START, later), 0);
    assert!(!storage
        .list()
        .expect("list")
        .iter()
        .any(|n| n.starts_with("sum-")));
    let v = Db::verify_storage(&*storage).expect("verify");
    assert!(v.summaries == 0 && v.unreferenced_files.is_empty(), "{v:?}");
}

#[test]
fn a_power_cut_at_every_sync_of_a_summarising_run_leaves_before_or_after() {
    let schema = Schema::washing_machine();
    let now = common::T0 + 430 * DAY_MS;
    // Cycles lose their raw rows after 30 days but keep their week cells 4000 days: the
    // expired cycle window is summarised; samples (no device rollup) are dropped.
    let run = |db: &Db| -> hearth::Result<()> {
        db.set_retention_with_device_rollups("cycles", 30 * DAY_MS, 4000 * DAY_MS)?;
        db.set_retention("samples", 60 * DAY_MS)?;
        db.apply_retention(now).map(|_| ())
    };
    let serials: Vec<String> = (0..5).map(|i| format!("WM-{i:08}")).collect();
    let periods = [(common::T0 - 30 * DAY_MS, now)];
    let clean = SimStorage::new();
    let (base, total, before, cells) = {
        let db = common::open(Arc::new(clean.clone())).expect("open");
        setup(&db, &schema);
        let before = common::read_all(&db).expect("read");
        let cells = device_cell_answers(&db, &serials, &periods);
        let base = clean.sync_count();
        run(&db).expect("run");
        assert!(db.info().expect("info").streams[0].summary_windows > 0);
        assert_same_answers(
            "clean run",
            &device_cell_answers(&db, &serials, &periods),
            &cells,
        );
        (base, clean.sync_count(), before, cells)
    };
    let after = after_run(&before, &schema, now);
    assert!(after.rows.len() < before.rows.len() && !after.rows.is_empty());
    every_power_cut(
        "a summarising run",
        (base, total),
        (&before, &after),
        98,
        &|db| setup(db, &schema),
        &run,
        &mut |what, db, disk, got_after| {
            // Before or after, every device's week cells are all there, exactly once, and
            // the open removed a summary written but not published.
            assert_same_answers(what, &device_cell_answers(&db, &serials, &periods), &cells);
            let v = Db::verify_storage(disk).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(v.unreferenced_files.is_empty(), "{what}: {v:?}");
            assert_eq!(v.summaries > 0, got_after, "{what}: {v:?}");
            run(&db).unwrap_or_else(|e| panic!("{what}: run again: {e}"));
            assert_eq!(common::read_all(&db).expect("read"), after, "{what}");
            assert_same_answers(what, &device_cell_answers(&db, &serials, &periods), &cells);
            drop(db);
            let report = Db::verify_storage(disk).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(report.summaries > 0, "{what}");
            assert!(report.unreferenced_files.is_empty(), "{what}: {report:?}");
        },
    );
}

#[test]
fn erasure_and_purge_reach_the_device_summaries_and_late_rows_join_them() {
    let schema = schema_with_cycle_windows(28);
    let f = Fleet::new(FleetConfig {
        devices: 12,
        days: 200,
        ..FleetConfig::default()
    });
    let now = START + 200 * DAY_MS;
    let serials: Vec<String> = f.devices().iter().map(|d| d.serial.clone()).collect();
    let sim = SimStorage::new();
    let db = Db::open_with(Arc::new(sim.clone()), options(&schema)).expect("open");
    load(&db, &f, &|_, _| true);
    db.flush().expect("flush");
    let periods = [(START, now)];
    let all = device_cell_answers(&db, &serials, &periods);
    db.set_retention_with_device_rollups("cycles", 60 * DAY_MS, 1000 * DAY_MS)
        .expect("policy");
    let r = db.apply_retention(now).expect("run");
    assert!(r.summaries_kept() > 1, "{r:?}");
    assert_same_answers(
        "summarised",
        &device_cell_answers(&db, &serials, &periods),
        &all,
    );

    // A late row of a summarised window: visible at once, and added to the window's
    // summary by the next run (which replaces it).
    let victim = serials[3].clone();
    let usage = |db: &Db, s: &str| db.usage(s, START, now, &AdviceConfig::default());
    let cycles = usage(&db, &victim).expect("c2").cycles;
    let late = one_cycle(&victim, START + 5 * DAY_MS + 1_234);
    assert_eq!(db.append(&late).expect("late").accepted, 1);
    assert_eq!(usage(&db, &victim).expect("c2").cycles, cycles + 1);
    let again = db.apply_retention(now).expect("run");
    assert_eq!((again.rows(), again.summaries_kept()), (1, 1), "{again:?}");
    assert_eq!(usage(&db, &victim).expect("c2").cycles, cycles + 1);
    assert_eq!(
        r.summaries_kept(),
        db.info().expect("info").streams[0].summary_windows
    );
    let others: Vec<String> = serials.iter().filter(|s| **s != victim).cloned().collect();
    let others_cells = device_cell_answers(&db, &others, &periods);

    // Erased: gone from every answer at once, the others unchanged.
    db.erase(&victim).expect("erase");
    assert!(usage(&db, &victim).is_err());
    assert_same_answers(
        "erased",
        &device_cell_answers(&db, &others, &periods),
        &others_cells,
    );
    // Purged: every summary holding the device's cells is rewritten without them.
    let summaries_before: Vec<String> = sim
        .list()
        .expect("list")
        .into_iter()
        .filter(|n| n.starts_with("sum-"))
        .collect();
    let p = db.purge().expect("purge");
    assert!(p.summaries_rewritten > 0, "{p:?}");
    let summaries_after: Vec<String> = sim
        .list()
        .expect("list")
        .into_iter()
        .filter(|n| n.starts_with("sum-"))
        .collect();
    let rewritten = summaries_before
        .iter()
        .filter(|n| !summaries_after.contains(n))
        .count() as u64;
    assert_eq!(rewritten, p.summaries_rewritten);
    let detail = db
        .audit_log()
        .expect("audit")
        .last()
        .expect("purge")
        .detail
        .clone();
    assert!(detail.contains("device summaries rewritten"), "{detail}");
    assert_same_answers(
        "purged",
        &device_cell_answers(&db, &others, &periods),
        &others_cells,
    );
    // No file holds the serial; the export of a new device of that serial is empty.
    for name in sim.list().expect("list") {
        let bytes = sim.read(&name).expect("read");
        assert!(
            !bytes.windows(victim.len()).any(|w| w == victim.as_bytes()),
            "{name} holds the serial after purge"
        );
    }
    drop(db);
    let db = Db::open_with(Arc::new(sim.clone()), options(&schema)).expect("reopen");
    assert_same_answers(
        "reopened",
        &device_cell_answers(&db, &others, &periods),
        &others_cells,
    );
    let v = Db::verify_storage(&sim).expect("verify");
    assert!(v.summaries > 0 && v.unreferenced_files.is_empty(), "{v:?}");
}
