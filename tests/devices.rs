//! Per-device questions: the usage summary (C2) read from week rollups equals the same
//! figures computed from the raw rows; health verdicts (C3) find the simulator's planted
//! faults and leave healthy devices alone; last cycles (C1), traces (C4) and the fleet
//! snapshot (C5) return what was stored.

use std::sync::{Arc, OnceLock};

use hearth::query::device::{last_weeks, AdviceConfig, HealthConfig, Verdict};
use hearth::schema::DAY_MS;
use hearth::sim::{Fault, Fleet, FleetConfig, DEFAULT_START_MS};
use hearth::{Db, Options, Schema, SimStorage, Storage, SyncPolicy};

const DAYS: u32 = 365;

fn options(memtable_rows: usize) -> Options {
    Options {
        schema: Some(Schema::washing_machine()),
        sync: SyncPolicy::Never,
        memtable_rows,
        background: false,
        ..Options::default()
    }
}

fn fleet() -> &'static Fleet {
    static F: OnceLock<Fleet> = OnceLock::new();
    F.get_or_init(|| {
        Fleet::new(FleetConfig {
            devices: 500,
            days: DAYS,
            fault_rate: 0.12,
            seed: 7,
            samples: true,
            sample_device_share: 0.05,
            ..FleetConfig::default()
        })
    })
}

fn shared() -> &'static Db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| {
        let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
        let db = Db::open_with(storage, options(200_000)).expect("open");
        let f = fleet();
        db.set_postcodes(&f.postcodes()).expect("postcodes");
        db.register_all(f.devices().to_vec()).expect("register");
        for b in f.batches(5_000) {
            db.append(&b).expect("append");
        }
        db
    })
}

const END: i64 = DEFAULT_START_MS + DAYS as i64 * DAY_MS;

#[test]
fn usage_summary_equals_the_raw_rows() {
    let db = shared();
    let def = db.schema().stream("cycles").expect("cycles").clone();
    let col = |n: &str| def.column_index(n).expect("column");
    for (i, d) in fleet().devices().iter().enumerate().step_by(37) {
        for weeks in [1u32, 4, 13, 52] {
            let at = END - (i as i64 % 60) * DAY_MS;
            let (from, to) = last_weeks(at, weeks);
            let u = db
                .usage(&d.serial, from, to, &AdviceConfig::default())
                .expect("usage");
            let rows = db
                .scan_device("cycles", &d.serial, from..to, &[])
                .expect("scan");
            assert_eq!(u.cycles, rows.len() as u64, "{} {weeks}", d.serial);
            assert_eq!((u.from_day * DAY_MS, u.to_day * DAY_MS), (from, to));
            let sum = |n: &str| rows.columns[col(n)].iter().sum::<i64>() as f64;
            assert!((u.energy_kwh - sum("energy_wh") / 1000.0).abs() < 1e-9);
            assert!((u.water_l - sum("water_l") / 10.0).abs() < 1e-9);
            if !rows.is_empty() {
                let n = rows.len() as f64;
                let mean = u.mean_load_kg.expect("mean load");
                assert!((mean - sum("load_kg") / 10.0 / n).abs() < 1e-9);
            }
            for s in &u.programs {
                let code = def.columns[col("program")]
                    .category_code(&s.name)
                    .expect("program");
                let c = rows.columns[col("program")]
                    .iter()
                    .filter(|&&v| v == code)
                    .count();
                assert_eq!(s.cycles, c as u64);
            }
            let mut hours = vec![0u64; 24];
            for &t in &rows.ts {
                hours[(t.rem_euclid(DAY_MS) / 3_600_000) as usize] += 1;
            }
            assert_eq!(u.hours, hours);
        }
    }
}

#[test]
fn health_verdicts_find_planted_faults() {
    let db = shared();
    let cfg = HealthConfig::default();
    let (mut faulty, mut caught, mut healthy, mut false_alarms) = (0, 0, 0, 0);
    let mut missed = Vec::new();
    for (i, d) in fleet().devices().iter().enumerate() {
        let h = db.health(&d.serial, END - 1, &cfg).expect("health");
        match fleet().fault(i) {
            Fault::None => {
                healthy += 1;
                if h.verdict != Verdict::Ok {
                    false_alarms += 1;
                }
            }
            _ => {
                faulty += 1;
                if h.verdict != Verdict::Ok {
                    caught += 1;
                } else {
                    missed.push((
                        d.serial.clone(),
                        h.evidence.clone(),
                        h.fill_time.vs_baseline,
                        h.vibration.vs_baseline,
                    ));
                }
            }
        }
    }
    println!("faulty {faulty}, flagged {caught}; healthy {healthy}, flagged {false_alarms}; missed {missed:?}");
    assert!(faulty >= 30, "too few planted faults to judge: {faulty}");
    assert!(
        caught * 10 >= faulty * 9,
        "flagged {caught} of {faulty} faulty devices: {missed:?}"
    );
    assert!(
        false_alarms * 20 <= healthy,
        "flagged {false_alarms} of {healthy} healthy devices"
    );
}

#[test]
fn last_cycles_traces_and_snapshot_return_stored_rows() {
    let db = shared();
    let d = &fleet().devices()[3];
    let last = db.last_cycles(&d.serial, 5).expect("c1");
    let all = db
        .scan_device("cycles", &d.serial, i64::MIN..i64::MAX, &[])
        .expect("scan");
    assert_eq!(last.len(), 5.min(all.len()));
    for (k, row) in last.iter().enumerate() {
        assert_eq!(row.ts, all.ts[all.len() - 1 - k]);
    }
    let snap = db
        .fleet_snapshot(END - 1, &HealthConfig::default())
        .expect("c5");
    let mine = snap
        .latest
        .iter()
        .find(|(s, _)| s == &d.serial)
        .expect("device in snapshot");
    assert_eq!(Some(mine.1.ts), all.ts.last().copied());
    assert!(!snap.flagged.is_empty());
    assert!(snap
        .flagged
        .windows(2)
        .all(|w| w[0].verdict >= w[1].verdict));
    // A traced wash: some device with samples.
    let traced = fleet()
        .devices()
        .iter()
        .find_map(|d| {
            let s = db
                .scan_device("samples", &d.serial, i64::MIN..i64::MAX, &["phase"])
                .ok()?;
            let first = *s.ts.first()?;
            let cycles = db
                .scan_device("cycles", &d.serial, first - 4 * 3_600_000..first + 1, &[])
                .ok()?;
            Some((d.serial.clone(), *cycles.ts.last()?, first))
        })
        .expect("a traced device");
    let trace = db.trace(&traced.0, traced.1).expect("c4");
    assert!(!trace.is_empty());
    assert!(trace.ts[0] >= traced.1);
}

#[test]
fn last_cycles_are_the_newest_even_when_the_memtable_holds_late_rows() {
    use hearth::sim::FleetConfig;
    // 355 days from 2025-01-01: the newest `cycles` window (from 2025-12-19) holds only a few
    // days, so the n newest rows span two windows while older rows wait in the memtable.
    let f = Fleet::new(FleetConfig {
        devices: 3,
        days: 355,
        duplicate_rate: 0.0,
        late_rate: 0.0,
        ..FleetConfig::default()
    });
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let db = Db::open_with(storage, options(usize::MAX)).expect("open");
    db.register_all(f.devices().to_vec()).expect("register");
    // Every batch of the second half first and flushed, then the first half (older rows,
    // spanning the previous window) left in the memtable.
    let batches: Vec<_> = f.batches(1_000).filter(|b| b.stream == "cycles").collect();
    let (old, new) = batches.split_at(batches.len() / 2);
    for b in new {
        db.append(b).expect("append");
    }
    db.flush().expect("flush");
    for b in old {
        db.append(b).expect("append");
    }
    for d in f.devices() {
        let all = db
            .scan_device("cycles", &d.serial, i64::MIN..i64::MAX, &[])
            .expect("scan");
        for n in [1usize, 10, 16] {
            let got: Vec<i64> = db
                .last_cycles(&d.serial, n)
                .expect("c1")
                .iter()
                .map(|r| r.ts)
                .collect();
            let want: Vec<i64> = all.ts.iter().rev().take(n).copied().collect();
            assert_eq!(got, want, "{} n={n}", d.serial);
        }
    }
}
