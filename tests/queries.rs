//! Every fleet answer from rollups equals the answer of a raw scan of the same rows: on a
//! simulated fleet with duplicates, late rows, several segments, compactions and rows still
//! in the memtable, before and after reopening; and for random questions (proptest).

use std::sync::{Arc, OnceLock};

use hearth::query::fleet::Bands;
use hearth::query::{Filter, FleetQuery, Measure, Plan, Source};
use hearth::schema::{Bins, DAY_MS};
use hearth::sim::{Fleet, FleetConfig, DEFAULT_START_MS};
use hearth::{Attribute, Db, Dim, Grain, Options, Schema, SimStorage, Storage, SyncPolicy};
use proptest::prelude::*;

const DAYS: u32 = 150;

fn options() -> Options {
    Options {
        schema: Some(Schema::washing_machine()),
        sync: SyncPolicy::Never,
        memtable_rows: 4_000,
        compaction_trigger: 3,
        background: false,
        ..Options::default()
    }
}

fn fleet() -> Fleet {
    Fleet::new(FleetConfig {
        devices: 150,
        days: DAYS,
        duplicate_rate: 0.03,
        late_rate: 0.05,
        fault_rate: 0.1,
        ..FleetConfig::default()
    })
}

/// A database holding the simulated fleet, shared by the tests of this file.
fn shared() -> &'static Db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| {
        let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
        let db = Db::open_with(Arc::clone(&storage), options()).expect("open");
        load(&db, &fleet());
        db
    })
}

fn load(db: &Db, f: &Fleet) {
    db.set_postcodes(&f.postcodes()).expect("postcodes");
    db.register_all(f.devices().to_vec()).expect("register");
    for b in f.batches(500) {
        db.append(&b).expect("append");
    }
}

const FROM: i64 = DEFAULT_START_MS;
const TO: i64 = DEFAULT_START_MS + DAYS as i64 * DAY_MS;

fn both(db: &Db, q: &FleetQuery) -> (hearth::FleetResult, hearth::FleetResult) {
    let rollup = db
        .fleet(&FleetQuery {
            plan: Plan::Auto,
            ..q.clone()
        })
        .expect("auto");
    let scan = db
        .fleet(&FleetQuery {
            plan: Plan::Scan,
            ..q.clone()
        })
        .expect("scan");
    (rollup, scan)
}

fn assert_same(db: &Db, q: &FleetQuery) {
    let (a, b) = both(db, q);
    assert!(matches!(b.source, Source::Scan { .. }));
    assert_eq!(a.rows, b.rows, "{q:?} answered from {:?}", a.source);
    assert_eq!((a.from_day, a.to_day), (b.from_day, b.to_day));
}

#[test]
fn every_preset_cube_answers_like_a_scan() {
    let db = shared();
    let def = db.schema().stream("cycles").expect("cycles").clone();
    let mut used = 0;
    for cube in &def.rollups.cubes {
        let mut q = FleetQuery::count(
            "cycles",
            FROM + 3 * DAY_MS,
            TO - 10 * DAY_MS,
            cube.dims.clone(),
        );
        q.grain = Some(Grain::Month);
        q.measures = cube
            .measures
            .iter()
            .flat_map(|m| {
                [
                    Measure::Sum(m.clone()),
                    Measure::Mean(m.clone()),
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
        let (a, _) = both(db, &q);
        assert!(
            matches!(&a.source, Source::Rollup { cube: c, .. } if c == &cube.name),
            "{} not answered from its cube: {:?}",
            cube.name,
            a.source
        );
        assert!(!a.rows.is_empty());
        assert_same(db, &q);
        used += 1;
    }
    assert!(used >= 10);
}

#[test]
fn distinct_devices_from_presence_bits_equal_a_scan() {
    let db = shared();
    let def = db.schema().stream("cycles").expect("cycles").clone();
    // Whole months: January to April 2025.
    let to = FROM + (31 + 28 + 31 + 30) * DAY_MS;
    for cube in &def.rollups.cubes {
        for grain in [
            None,
            Some(Grain::Month),
            Some(Grain::Quarter),
            Some(Grain::Year),
        ] {
            let mut q = FleetQuery::count("cycles", FROM, to, cube.dims.clone());
            q.grain = grain;
            q.devices = true;
            let (a, b) = both(db, &q);
            assert!(
                matches!(a.source, Source::Rollup { .. }),
                "{}: {:?}",
                cube.name,
                a.source
            );
            assert!(a.rows.iter().all(|r| r.devices.is_some_and(|d| d >= 1)));
            assert_eq!(a.rows, b.rows, "{} {grain:?}", cube.name);
            // Fewer dimensions than the cube: devices are not the sum of the cells'.
            if let Some(first) = cube.dims.first() {
                let mut q = FleetQuery::count("cycles", FROM, to, vec![first.clone()]);
                q.grain = grain;
                q.devices = true;
                let (a, b) = both(db, &q);
                assert_eq!(a.rows, b.rows, "{} by {first:?}", cube.name);
            }
        }
    }
    // A period of partial months: its whole months from the bits, the days at its edges
    // scanned, the union per device; equal to a scan. Day buckets are scanned.
    for (from, to) in [
        (FROM + DAY_MS, to - 3 * DAY_MS),
        (FROM + 40 * DAY_MS, FROM + 50 * DAY_MS),
        (FROM, to + 5 * DAY_MS),
    ] {
        for grain in [None, Some(Grain::Month), Some(Grain::Quarter)] {
            for dims in [
                vec![Dim::column("program")],
                vec![Dim::column("program"), Dim::Attribute(Attribute::Region)],
                vec![Dim::HourOfDay],
            ] {
                let mut q = FleetQuery::count("cycles", from, to, dims);
                q.grain = grain;
                q.devices = true;
                let (a, b) = both(db, &q);
                assert!(matches!(a.source, Source::Rollup { .. }), "{:?}", a.source);
                assert_eq!(a.rows, b.rows, "{from}..{to} {grain:?}");
            }
        }
    }
    let mut q = FleetQuery::count("cycles", FROM + DAY_MS, to, vec![Dim::column("program")]);
    q.devices = true;
    q.grain = Some(Grain::Day);
    assert!(matches!(
        db.fleet(&q).expect("q").source,
        Source::Scan { .. }
    ));
}

/// A value named twice in a filter, or two filters on one dimension, count each device
/// once (the distinct-device counts summed a device per accepted code).
#[test]
fn repeated_filter_values_count_devices_once() {
    let db = shared();
    let month = DEFAULT_START_MS + 31 * DAY_MS;
    let region = |values: &[&str]| Filter::In {
        dim: Dim::Attribute(Attribute::Region),
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let filters = [
        vec![region(&["London", "London"])],
        vec![region(&["London", "Scotland"]), region(&["London"])],
        vec![region(&["London"]), region(&["Scotland"])],
    ];
    for (by, f) in [vec![], vec![Dim::column("program")]]
        .into_iter()
        .flat_map(|by| filters.iter().map(move |f| (by.clone(), f.clone())))
    {
        let mut q = FleetQuery::count("cycles", FROM, month, by);
        q.filters = f;
        q.devices = true;
        assert_same(db, &q);
    }
    let mut q = FleetQuery::count("cycles", FROM, month, vec![]);
    q.filters = vec![region(&["London", "London"])];
    q.devices = true;
    let once = {
        let mut q = q.clone();
        q.filters = vec![region(&["London"])];
        db.fleet(&q).expect("once").rows
    };
    assert_eq!(db.fleet(&q).expect("twice").rows, once);
}

#[test]
fn d1_to_d8_answer_alike_both_ways() {
    let db = shared();
    for setting in ["program", "temp_setting_c", "spin_setting_rpm"] {
        for by in [Attribute::Region, Attribute::Segment, Attribute::Model] {
            for grain in Grain::ALL {
                let a = db
                    .cycles_by(setting, by, grain, FROM, TO, Plan::Auto)
                    .expect("d1");
                let b = db
                    .cycles_by(setting, by, grain, FROM, TO, Plan::Scan)
                    .expect("d1");
                assert!(matches!(a.source, Source::Rollup { .. }));
                assert_eq!(a.rows, b.rows);
            }
        }
    }
    let a = db.load_distribution(FROM, TO, Plan::Auto).expect("d2");
    let b = db.load_distribution(FROM, TO, Plan::Scan).expect("d2");
    assert!(matches!(a.source, Source::Rollup { .. }));
    assert_eq!(a.by_capacity, b.by_capacity);
    assert!(a.by_capacity.iter().all(|c| c.share_at_least_90pct <= 1.0));
    for by in [Attribute::Model, Attribute::Region] {
        assert_eq!(
            db.rare_programs(by, 0.02, FROM, TO, Plan::Auto)
                .expect("d3"),
            db.rare_programs(by, 0.02, FROM, TO, Plan::Scan)
                .expect("d3")
        );
    }
    let a = db.resources_by_setting(FROM, TO, Plan::Auto).expect("d4");
    let b = db.resources_by_setting(FROM, TO, Plan::Scan).expect("d4");
    assert!(matches!(a.source, Source::Rollup { .. }));
    assert_eq!(a.rows, b.rows);
    for by in [Attribute::Segment, Attribute::Region] {
        let a = db
            .usage_bands(by, &Bands::default(), FROM, TO, Plan::Auto)
            .expect("d5");
        let b = db
            .usage_bands(by, &Bands::default(), FROM, TO, Plan::Scan)
            .expect("d5");
        assert_eq!(a.groups, b.groups);
        assert!(
            a.groups
                .iter()
                .map(|g| g.light + g.medium + g.heavy)
                .sum::<u64>()
                > 100
        );
        for m in ["energy_wh", "load_kg", "water_l", "cycles_per_week"] {
            let (a, sa) = db.anova(m, by, FROM, TO, Plan::Auto).expect("d6");
            let (b, _) = db.anova(m, by, FROM, TO, Plan::Scan).expect("d6");
            assert!(matches!(sa, Source::Rollup { .. }), "{m}: {sa:?}");
            assert_eq!(a, b, "{m}");
        }
        for s in ["program", "temp_setting_c"] {
            let (a, _) = db.chi_square(s, by, FROM, TO, Plan::Auto).expect("d7");
            let (b, _) = db.chi_square(s, by, FROM, TO, Plan::Scan).expect("d7");
            assert_eq!(a, b);
        }
    }
    let a = db.time_of_day(FROM, TO, Plan::Auto).expect("d8");
    let b = db.time_of_day(FROM, TO, Plan::Scan).expect("d8");
    assert!(matches!(a.source, Source::Rollup { .. }));
    assert_eq!(a.cycles, b.cycles);
}

#[test]
fn rollups_survive_reopen_and_equal_a_fresh_ingest() {
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let f = Fleet::new(FleetConfig {
        devices: 60,
        days: 60,
        duplicate_rate: 0.05,
        late_rate: 0.1,
        ..FleetConfig::default()
    });
    let q = {
        let mut q = FleetQuery::count(
            "cycles",
            FROM,
            FROM + 60 * DAY_MS,
            vec![Dim::column("program"), Dim::Attribute(Attribute::Region)],
        );
        q.grain = Some(Grain::Week);
        q
    };
    let before = {
        let db = Db::open_with(Arc::clone(&storage), options()).expect("open");
        load(&db, &f);
        let r = db.fleet(&q).expect("query");
        db.close().expect("close");
        r
    };
    let db = Db::open_with(Arc::clone(&storage), options()).expect("reopen");
    let after = db.fleet(&q).expect("query");
    assert_eq!(before.rows, after.rows);
    assert_same(&db, &q);
    // Presence bits come back from the rollup files too: devices over January and February.
    let mut dq = FleetQuery::count(
        "cycles",
        FROM,
        FROM + 59 * DAY_MS,
        vec![Dim::column("program"), Dim::Attribute(Attribute::Region)],
    );
    dq.grain = Some(Grain::Month);
    dq.devices = true;
    let (a, _) = both(&db, &dq);
    assert!(matches!(a.source, Source::Rollup { .. }));
    assert_same(&db, &dq);
    db.compact().expect("compact");
    assert_eq!(db.fleet(&q).expect("query").rows, after.rows);
    db.flush().expect("flush");
    drop(db);
    let db = Db::open_with(storage, options()).expect("reopen");
    assert_eq!(db.fleet(&q).expect("query").rows, after.rows);
}

fn dims() -> Vec<Dim> {
    vec![
        Dim::column("program"),
        Dim::column("temp_setting_c"),
        Dim::column("spin_setting_rpm"),
        Dim::column("error_code"),
        Dim::Attribute(Attribute::Region),
        Dim::Attribute(Attribute::Segment),
        Dim::Attribute(Attribute::Model),
        Dim::Attribute(Attribute::Capacity),
        Dim::HourOfDay,
    ]
}

fn arb_query() -> impl Strategy<Value = FleetQuery> {
    (
        0i64..(DAYS as i64 * DAY_MS),
        1i64..(DAYS as i64 * DAY_MS),
        prop::collection::vec(0usize..9, 0..3),
        prop::option::of(0usize..5),
        prop::option::of((0usize..9, prop::collection::vec(0usize..4, 1..3))),
        prop::collection::vec(0usize..6, 0..3),
        prop::option::of((0.0f64..10.0, 0.0f64..10.0)),
        prop::option::of((0usize..3, 1usize..3)),
    )
        .prop_map(|(start, len, g, grain, filter, measures, range, months)| {
            let all = dims();
            let mut group_by: Vec<Dim> = Vec::new();
            for i in g {
                if !group_by.contains(&all[i]) {
                    group_by.push(all[i].clone());
                }
            }
            let mut q = FleetQuery::count("cycles", FROM + start, FROM + start + len, group_by);
            q.grain = grain.map(|i| Grain::ALL[i]);
            // Some questions ask for devices over whole months (January 2025 is day 20089).
            if let Some((first, n)) = months {
                let starts = [0i64, 31, 59, 90, 120];
                q.from_ms = FROM + starts[first] * DAY_MS;
                q.to_ms = FROM + starts[first + n] * DAY_MS;
                q.devices = true;
            }
            let values: [&[&str]; 9] = [
                &["cotton", "wool", "eco_40_60", "quick_30"],
                &["30", "40", "60", "90"],
                &["800", "1200", "1400", "0"],
                &["none", "E10_fill", "E40_unbalance", "E20_drain"],
                &["London", "Scotland", "Wales", "North West"],
                &["A", "C", "E", "K"],
                &["AquaLine 7", "AquaLine 8", "AquaMax 9", "nonexistent"],
                &["7", "8", "9", "10"],
                &["7", "12", "18", "21"],
            ];
            if let Some((d, vs)) = filter {
                q.filters.push(Filter::In {
                    dim: all[d].clone(),
                    values: vs.iter().map(|&v| values[d][v].to_string()).collect(),
                });
            }
            if let Some((a, b)) = range {
                q.filters.push(Filter::Range {
                    column: "load_kg".into(),
                    min: a.min(b),
                    max: a.max(b),
                });
            }
            let cols = ["energy_wh", "water_l", "load_kg"];
            for m in measures {
                q.measures.push(match m {
                    0 => Measure::Sum(cols[m % 3].into()),
                    1 => Measure::Mean(cols[m % 3].into()),
                    2 => Measure::Variance(cols[m % 3].into()),
                    3 => Measure::Min("energy_wh".into()),
                    4 => Measure::Max("load_kg".into()),
                    _ => Measure::Histogram {
                        column: "load_kg".into(),
                        bins: Bins::Fixed {
                            lo: 0.0,
                            width: 0.5,
                            count: 30,
                        },
                    },
                });
            }
            q
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_questions_answer_alike(q in arb_query()) {
        let db = shared();
        let (a, b) = both(db, &q);
        prop_assert_eq!(&a.rows, &b.rows, "{:?} from {:?}", q, a.source);
    }
}

#[test]
fn memtable_cells_split_exactly_at_a_window_boundary() {
    // `cycles` windows are 365 days from the epoch; day 20440 (2025-12-19) starts one. A
    // memtable spanning it is flushed into two segments whose rollup files take the
    // memtable's cube cells of their own days.
    let start = 20_420 * DAY_MS;
    let f = Fleet::new(FleetConfig {
        devices: 80,
        days: 40,
        start_ms: start,
        late_rate: 0.2,
        ..FleetConfig::default()
    });
    let storage: Arc<dyn Storage> = Arc::new(SimStorage::new());
    let db = Db::open_with(
        Arc::clone(&storage),
        Options {
            memtable_rows: 100_000,
            ..options()
        },
    )
    .expect("open");
    load(&db, &f);
    db.flush().expect("flush");
    assert!(db.info().expect("info").streams[0].segments >= 2);
    let def = db.schema().stream("cycles").expect("cycles").clone();
    for cube in &def.rollups.cubes {
        let mut q = FleetQuery::count("cycles", start, start + 40 * DAY_MS, cube.dims.clone());
        q.grain = Some(Grain::Week);
        assert_same(&db, &q);
    }
    drop(db);
    let db = Db::open_with(storage, options()).expect("reopen");
    for cube in &def.rollups.cubes {
        let q = FleetQuery::count("cycles", start, start + 40 * DAY_MS, cube.dims.clone());
        assert_same(&db, &q);
    }
}

/// A period of centuries costs what the data costs (it once walked every month of it), and
/// a health check asked for billions of weeks is refused rather than allocating them.
#[test]
fn huge_periods_are_answered_or_refused_quickly() {
    let db = shared();
    let t = std::time::Instant::now();
    for grain in [None, Some(Grain::Month), Some(Grain::Year)] {
        let mut q = FleetQuery::count(
            "cycles",
            i64::MIN / 2,
            i64::MAX / 2,
            vec![Dim::column("program"), Dim::Attribute(Attribute::Region)],
        );
        q.grain = grain;
        assert_same(db, &q);
    }
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    let serial = fleet().devices()[0].serial.clone();
    let cfg = hearth::HealthConfig {
        history_weeks: u32::MAX,
        ..Default::default()
    };
    assert!(matches!(
        db.health(&serial, DEFAULT_START_MS, &cfg),
        Err(hearth::Error::Input(_))
    ));
    db.usage(&serial, i64::MIN / 2, i64::MAX / 2, &Default::default())
        .expect("usage over any period");
}
