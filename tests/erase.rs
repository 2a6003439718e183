//! Erasure: after `erase`, every question — fleet questions on the rollup and scan paths,
//! the per-device questions of every other device, the fleet snapshot — answers exactly as
//! on a database that never had the device; so after reopen (the erasure replayed from the
//! log, then from the registry), after purge and after compaction. The purge leaves no file
//! that names the serial, and rewrites only the segments that held the device.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use hearth::query::fleet::Bands;
use hearth::query::{FleetQuery, Measure, Plan};
use hearth::schema::DAY_MS;
use hearth::sim::{Fleet, FleetConfig, DEFAULT_START_MS};
use hearth::{
    AdviceConfig, Attribute, AuditKind, AuditOutcome, Batch, Db, Dim, Grain, HealthConfig, Options,
    Schema, SimStorage, Storage, SyncPolicy, Values,
};

const DAYS: u32 = 75;
const FROM: i64 = DEFAULT_START_MS;
const TO: i64 = DEFAULT_START_MS + DAYS as i64 * DAY_MS;

fn options() -> Options {
    Options {
        schema: Some(Schema::washing_machine()),
        sync: SyncPolicy::Never,
        memtable_rows: 4_000,
        background: false,
        ..Options::default()
    }
}

fn fleet() -> &'static Fleet {
    static F: OnceLock<Fleet> = OnceLock::new();
    F.get_or_init(|| {
        Fleet::new(FleetConfig {
            devices: 40,
            days: DAYS,
            seed: 5,
            samples: true,
            sample_device_share: 0.25,
            ..FleetConfig::default()
        })
    })
}

/// `b` without the rows of `serial`.
fn without(b: &Batch, serial: &str) -> Batch {
    let keep: Vec<usize> = (0..b.len()).filter(|&i| b.device[i] != serial).collect();
    let pick = |v: &Values| match v {
        Values::Float(x) => Values::Float(keep.iter().map(|&i| x[i]).collect()),
        Values::Int(x) => Values::Int(keep.iter().map(|&i| x[i]).collect()),
        Values::Text(x) => Values::Text(keep.iter().map(|&i| x[i].clone()).collect()),
    };
    Batch {
        stream: b.stream.clone(),
        ts: keep.iter().map(|&i| b.ts[i]).collect(),
        device: keep.iter().map(|&i| b.device[i].clone()).collect(),
        columns: b
            .columns
            .iter()
            .map(|(n, v)| (n.clone(), pick(v)))
            .collect(),
    }
}

/// The device to erase: the one with the most rows among those that upload traces, so it
/// has rows in both streams, in many cells, and is the extreme of some.
fn victim(batches: &[Batch]) -> String {
    let mut rows: HashMap<(&str, &str), usize> = HashMap::new();
    for b in batches {
        for d in &b.device {
            *rows.entry((b.stream.as_str(), d.as_str())).or_default() += 1;
        }
    }
    rows.iter()
        .filter(|((s, d), _)| *s == "cycles" && rows.contains_key(&("samples", *d)))
        .max_by_key(|((_, d), n)| (**n, *d))
        .map(|((_, d), _)| d.to_string())
        .expect("a device with samples")
}

/// Every fleet question, on `plan`, as comparable text.
fn fleet_answers(db: &Db, plan: Plan) -> Vec<String> {
    let mut out = Vec::new();
    let dims = [
        vec![Dim::column("program"), Dim::Attribute(Attribute::Region)],
        vec![Dim::Attribute(Attribute::Capacity)],
        vec![Dim::column("program"), Dim::column("temp_setting_c")],
        vec![
            Dim::Attribute(Attribute::Model),
            Dim::column("temp_setting_c"),
        ],
        vec![Dim::Attribute(Attribute::Segment)],
        vec![Dim::HourOfDay],
    ];
    for d in dims {
        for grain in [Grain::Day, Grain::Month] {
            let mut q = FleetQuery::count("cycles", FROM, TO, d.clone());
            q.grain = Some(grain);
            q.plan = plan;
            out.push(format!("{:?}", db.fleet(&q).map(|r| r.rows)));
            // Measures: min and max are not kept exact by retraction; on the auto plan
            // they come from a scan, on the rollup plan they are refused or exact.
            q.measures = vec![
                Measure::Mean("energy_wh".into()),
                Measure::Variance("load_kg".into()),
            ];
            out.push(format!("{:?}", db.fleet(&q).map(|r| r.rows)));
            if plan != Plan::Rollup {
                q.measures = vec![
                    Measure::Max("energy_wh".into()),
                    Measure::Min("water_l".into()),
                ];
                out.push(format!("{:?}", db.fleet(&q).map(|r| r.rows)));
            }
        }
    }
    // Distinct devices per group over whole months (presence bits) and not (a scan).
    for to in [DEFAULT_START_MS + 59 * DAY_MS, TO - 3 * DAY_MS] {
        let mut q = FleetQuery::count(
            "cycles",
            FROM,
            to,
            vec![Dim::column("program"), Dim::Attribute(Attribute::Model)],
        );
        q.devices = true;
        q.plan = plan;
        out.push(format!("{:?}", db.fleet(&q).map(|r| r.rows)));
    }
    // A filtered scan of the samples stream (no rollups).
    if plan != Plan::Rollup {
        let mut q = FleetQuery::count("samples", FROM, TO, vec![Dim::column("phase")]);
        q.measures = vec![Measure::Mean("power_w".into())];
        q.plan = plan;
        out.push(format!("{:?}", db.fleet(&q).map(|r| r.rows)));
    }
    for by in [Attribute::Region, Attribute::Segment, Attribute::Model] {
        out.push(format!(
            "{:?}",
            db.cycles_by("program", by, Grain::Week, FROM, TO, plan)
                .map(|r| r.rows)
        ));
        out.push(format!("{:?}", db.rare_programs(by, 0.05, FROM, TO, plan)));
        out.push(format!(
            "{:?}",
            db.usage_bands(by, &Bands::default(), FROM, TO, plan)
        ));
        for m in ["energy_wh", "load_kg", "cycles_per_week"] {
            out.push(format!(
                "{:?}",
                db.anova(m, by, FROM, TO, plan).map(|a| a.0)
            ));
        }
        out.push(format!(
            "{:?}",
            db.chi_square("temp_setting_c", by, FROM, TO, plan)
                .map(|a| a.0)
        ));
    }
    out.push(format!("{:?}", db.load_distribution(FROM, TO, plan)));
    out.push(format!(
        "{:?}",
        db.resources_by_setting(FROM, TO, plan).map(|r| r.rows)
    ));
    out.push(format!("{:?}", db.time_of_day(FROM, TO, plan)));
    out
}

/// The per-device questions of every serial in `serials`, and the fleet snapshot.
fn device_answers(db: &Db, serials: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let health = HealthConfig::default();
    for s in serials {
        out.push(format!("{:?}", db.last_cycles(s, 5)));
        out.push(format!(
            "{:?}",
            db.usage(s, FROM, TO, &AdviceConfig::default())
        ));
        out.push(format!("{:?}", db.health(s, TO, &health)));
    }
    out.push(format!("{:?}", db.fleet_snapshot(TO, &health)));
    out
}

/// `s` without the cell counts of rollup sources: they count cells of every part read
/// (segments and memtable deltas), which depends on when each database flushed.
fn answer(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("cells: ") {
        out.push_str(&rest[..at + 7]);
        rest = rest[at + 7..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push('_');
    }
    out.push_str(rest);
    out
}

fn assert_same(a: &[String], b: &[String], what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let (x, y) = (answer(x), answer(y));
        if x != y {
            let at = x.bytes().zip(y.bytes()).take_while(|(p, q)| p == q).count();
            let from = at.saturating_sub(200);
            panic!(
                "{what}: answer {i} differs at byte {at}:\n  {}\n  {}",
                &x[from..(at + 200).min(x.len())],
                &y[from..(at + 200).min(y.len())]
            );
        }
    }
}

/// `a` (erased) answers as `b` (never had the device) on every path. With `devices`, both
/// are flushed first and the per-device questions are compared too: their fleet reference
/// figures (a model's energy per temperature, its median fill time) come from the rows in
/// segments, so they agree only when both databases hold the same rows there.
fn check(a: &Db, b: &Db, others: &[String], victim: &str, devices: bool, what: &str) {
    for plan in [Plan::Auto, Plan::Scan, Plan::Rollup] {
        assert_same(
            &fleet_answers(a, plan),
            &fleet_answers(b, plan),
            &format!("{what}, {plan:?}"),
        );
    }
    if devices {
        a.flush().expect("flush");
        b.flush().expect("flush");
        assert_same(
            &device_answers(a, others),
            &device_answers(b, others),
            &format!("{what}, per device"),
        );
    }
    assert_eq!(a.device_id(victim), None, "{what}");
    assert!(a.last_cycles(victim, 5).is_err(), "{what}");
    for stream in ["cycles", "samples"] {
        let mut ra = Vec::new();
        a.scan(stream, i64::MIN..i64::MAX, &[], |r| {
            ra.push((a.device(r.device).map(|d| d.serial), r.ts.clone()))
        })
        .expect("scan");
        let mut rb = Vec::new();
        b.scan(stream, i64::MIN..i64::MAX, &[], |r| {
            rb.push((b.device(r.device).map(|d| d.serial), r.ts.clone()))
        })
        .expect("scan");
        ra.sort();
        rb.sort();
        assert_eq!(ra, rb, "{what}: raw rows of {stream}");
    }
}

#[test]
fn erased_device_answers_like_a_database_without_it() {
    let f = fleet();
    let batches: Vec<Batch> = f.batches(1_500).collect();
    let victim = victim(&batches);
    let others: Vec<String> = f
        .devices()
        .iter()
        .map(|d| d.serial.clone())
        .filter(|s| *s != victim)
        .collect();
    let sim = SimStorage::new();
    let a = Db::open_with(Arc::new(sim.clone()), options()).expect("open");
    let b = Db::open_with(Arc::new(SimStorage::new()), options()).expect("open");
    for db in [&a, &b] {
        db.set_postcodes(&f.postcodes()).expect("postcodes");
    }
    a.register_all(f.devices().to_vec()).expect("register");
    b.register_all(
        f.devices()
            .iter()
            .filter(|d| d.serial != victim)
            .cloned()
            .collect(),
    )
    .expect("register");
    for batch in &batches {
        a.append(batch).expect("append");
        let rest = without(batch, &victim);
        if !rest.is_empty() {
            b.append(&rest).expect("append");
        }
    }
    let report = a.erase(&victim).expect("erase");
    assert!(
        report.memtable_rows > 0 && report.segment_rows > 0 && report.segments > 1,
        "the device had rows in memory and in several segments: {report:?}"
    );
    check(&a, &b, &others, &victim, false, "after erase");
    assert!(
        a.erase(&victim).is_err(),
        "a second erasure finds no device"
    );

    // Reopen: the erasure comes back from the log.
    drop(a);
    let a = Db::open_with(Arc::new(sim.clone()), options()).expect("reopen");
    check(&a, &b, &others, &victim, true, "after reopen");
    // Flushed: the erasure is now in the registry file, the log is gone.
    drop(a);
    let a = Db::open_with(Arc::new(sim.clone()), options()).expect("reopen");
    check(&a, &b, &others, &victim, true, "after flush and reopen");

    // Purge: only the segments that held the device are rewritten.
    let before: Vec<String> = sim.list().expect("list");
    let p = a.purge().expect("purge");
    assert_eq!(p.devices, 1);
    assert_eq!(p.rows_dropped, report.segment_rows);
    assert!(p.segments_rewritten >= report.segments);
    let after: Vec<String> = sim.list().expect("list");
    let kept = before.iter().filter(|n| after.contains(n)).count();
    assert!(
        kept > 0,
        "segments without the device were not rewritten ({} files before)",
        before.len()
    );
    check(&a, &b, &others, &victim, true, "after purge");
    for name in &after {
        let bytes = sim.read(name).expect("read");
        assert!(
            !bytes.windows(victim.len()).any(|w| w == victim.as_bytes()),
            "{name} holds the serial after purge"
        );
    }
    drop(a);
    let a = Db::open_with(Arc::new(sim.clone()), options()).expect("reopen");
    check(&a, &b, &others, &victim, true, "after purge and reopen");
    a.compact().expect("compact");
    b.compact().expect("compact");
    check(&a, &b, &others, &victim, true, "after compaction");
    let kinds: Vec<(AuditKind, AuditOutcome)> = a
        .audit_log()
        .expect("audit")
        .iter()
        .map(|e| (e.kind, e.outcome))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (AuditKind::Erase, AuditOutcome::Ok),
            (AuditKind::Erase, AuditOutcome::Failed),
            (AuditKind::Purge, AuditOutcome::Ok),
        ]
    );
    let pseudonym = a.pseudonym(&victim);
    assert!(a
        .audit_log()
        .expect("audit")
        .iter()
        .filter(|e| e.kind == AuditKind::Erase)
        .all(|e| e.device.as_deref() == Some(pseudonym.as_str())));
}

/// Compaction drops an erased device's rows (its window's bytes are gone without a purge),
/// and the serial registered again is a new device that starts empty.
#[test]
fn compaction_drops_erased_rows_and_a_new_registration_starts_empty() {
    let f = fleet();
    let batches: Vec<Batch> = f.batches(1_500).collect();
    let victim = victim(&batches);
    let a = Db::open_with(Arc::new(SimStorage::new()), options()).expect("open");
    a.set_postcodes(&f.postcodes()).expect("postcodes");
    a.register_all(f.devices().to_vec()).expect("register");
    for batch in &batches {
        a.append(batch).expect("append");
    }
    a.flush().expect("flush");
    let info = a
        .device(a.device_id(&victim).expect("id"))
        .expect("registered");
    let old_id = a.device_id(&victim).expect("id");
    let segment_rows = |db: &Db| -> u64 {
        db.info()
            .expect("info")
            .streams
            .iter()
            .map(|s| s.segment_rows)
            .sum()
    };
    let rows_before = segment_rows(&a);
    let report = a.erase(&victim).expect("erase");
    assert_eq!(report.memtable_rows, 0);
    a.compact().expect("compact");
    // Windows with one segment are not compacted: purge takes what is left.
    let p = a.purge().expect("purge");
    assert_eq!(
        segment_rows(&a),
        rows_before - report.segment_rows,
        "every row of the device is gone from the segments"
    );
    assert!(p.rows_dropped <= report.segment_rows);
    let id = a.register(info).expect("register again");
    assert_ne!(id, old_id, "ids are never reused");
    assert!(a.last_cycles(&victim, 5).expect("known again").is_empty());
}
