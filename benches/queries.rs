//! Criterion benchmarks of the questions (issue 7): each per-device question C1–C5 over a
//! fixed-seed cycle of devices, each fleet question D1–D8 from rollups (`Plan::Rollup`, so a
//! silent fallback to a scan is an error, not a slow figure), one filtered group-by scan
//! (`Plan::Scan`, in rows per second), and the rollup upkeep: the same cycle batches appended
//! (and flushed) into a database whose schema declares the preset's rollups and into one
//! whose schema declares none.
//!
//! The database is built once, before the first benchmark: the simulated fleet
//! (`hearth::sim`, seed 42) of 5,000 washing machines × 365 days, `cycles` and `samples` (1%
//! of the devices send 2 Hz traces), `SyncPolicy::Never`, flushed, compacted and reopened.
//! About 20 s in release on 2 cores; the whole file runs in about 3 minutes.
//!
//! Run: `cargo bench --bench queries` (a subset: `cargo bench --bench queries -- fleet/`).
//! Environment: `HEARTH_DEVICES` (5,000), `HEARTH_DAYS` (365), `HEARTH_UPKEEP_ROWS` (cycle
//! rows of the upkeep comparison, 200,000). Figures: docs/BENCHMARKS.md.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput};
use hearth::query::device::{last_weeks, AdviceConfig, HealthConfig};
use hearth::query::fleet::Bands;
use hearth::query::{Filter, FleetQuery, Plan, Source};
use hearth::schema::DAY_MS;
use hearth::sim::{Fleet, FleetConfig, DEFAULT_START_MS};
use hearth::{Attribute, Batch, Db, Dim, Grain, Schema};

mod common;
use common::{env, open, options, without_rollups};

/// Devices in the fixed-seed cycle the per-device questions go round.
const ASKED: usize = 4_096;

/// splitmix64: the fixed-seed device cycle.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The database the questions are asked of, built once.
struct Fixture {
    fleet: Fleet,
    db: Db,
    /// First day after the simulated period (ms).
    end: i64,
    /// Serials of `ASKED` devices drawn with a fixed seed.
    serials: Vec<String>,
    /// (serial, start) of every traced wash.
    traces: Vec<(String, i64)>,
    /// The first `HEARTH_UPKEEP_ROWS` cycle rows, as delivered.
    upkeep: Vec<Batch>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn build() -> Fixture {
        let devices = env("HEARTH_DEVICES", 5_000);
        let days = env("HEARTH_DAYS", 365) as u32;
        let upkeep_rows = env("HEARTH_UPKEEP_ROWS", 200_000);
        let fleet = Fleet::new(FleetConfig {
            devices,
            days,
            samples: true,
            ..FleetConfig::default()
        });
        let t = Instant::now();
        let dir = tempfile::tempdir().expect("temp dir");
        let db = open(dir.path(), Schema::washing_machine(), &fleet);
        let mut traced = BTreeSet::new();
        let mut upkeep = Vec::new();
        let mut upkept = 0;
        let (mut cycles, mut samples) = (0u64, 0u64);
        for b in fleet.batches(10_000) {
            db.append(&b).expect("append");
            if b.stream == "samples" {
                samples += b.len() as u64;
                traced.extend(b.device.iter().cloned());
            } else {
                cycles += b.len() as u64;
                if upkept < upkeep_rows {
                    upkept += b.len();
                    upkeep.push(b);
                }
            }
        }
        db.flush().expect("flush");
        db.compact().expect("compact");
        db.close().expect("close");
        let db = Db::open(dir.path(), options(Schema::washing_machine())).expect("reopen");
        let end = DEFAULT_START_MS + i64::from(days) * DAY_MS;

        // Every wash with 2 Hz samples: a cycle whose run [start, start + duration] holds
        // samples.
        let mut traces = Vec::new();
        let mut trace_rows = 0usize;
        for serial in &traced {
            let c = db
                .scan_device("cycles", serial, i64::MIN..i64::MAX, &["duration_s"])
                .expect("cycles");
            let s = db
                .scan_device("samples", serial, i64::MIN..i64::MAX, &["phase"])
                .expect("samples");
            for (&start, &dur) in c.ts.iter().zip(&c.columns[0]) {
                let stop = start + (dur + 1) * 1000;
                let lo = s.ts.partition_point(|&t| t < start);
                let hi = s.ts.partition_point(|&t| t < stop);
                if hi > lo {
                    trace_rows += hi - lo;
                    traces.push((serial.clone(), start));
                }
            }
        }
        assert!(!traces.is_empty(), "no traced wash");
        let mut seed = 42u64;
        let serials = (0..ASKED)
            .map(|_| {
                let k = (splitmix(&mut seed) % devices as u64) as usize;
                fleet.devices()[k].serial.clone()
            })
            .collect();
        println!(
            "queries fixture: {devices} devices x {days} days, {cycles} cycle and {samples} sample rows delivered, \
             {} traced washes ({:.0} samples each on average), {upkept} cycle rows for upkeep; built in {:.1} s",
            traces.len(),
            trace_rows as f64 / traces.len() as f64,
            t.elapsed().as_secs_f64()
        );
        Fixture {
            fleet,
            db,
            end,
            serials,
            traces,
            upkeep,
            _dir: dir,
        }
    }
}

/// C1–C5.
fn device_questions(c: &mut Criterion, fx: &Fixture) {
    let db = &fx.db;
    let end = fx.end;
    let advice = AdviceConfig::default();
    let health = HealthConfig::default();
    let mut g = c.benchmark_group("device");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    let n = fx.serials.len();
    let mut i = 0usize;
    g.bench_function("C1_last_10_cycles", |b| {
        b.iter(|| {
            i += 1;
            black_box(db.last_cycles(&fx.serials[i % n], 10).expect("c1"))
        })
    });
    for weeks in [13, 52] {
        let (from, to) = last_weeks(end - 1, weeks);
        g.bench_function(format!("C2_usage_{weeks}_weeks_with_advice"), |b| {
            b.iter(|| {
                i += 1;
                black_box(db.usage(&fx.serials[i % n], from, to, &advice).expect("c2"))
            })
        });
    }
    g.bench_function("C3_health", |b| {
        b.iter(|| {
            i += 1;
            black_box(db.health(&fx.serials[i % n], end - 1, &health).expect("c3"))
        })
    });
    let t = fx.traces.len();
    g.bench_function("C4_trace_of_one_wash", |b| {
        b.iter(|| {
            i += 1;
            let (serial, start) = &fx.traces[i % t];
            black_box(db.trace(serial, *start).expect("c4"))
        })
    });
    g.finish();

    // C5 runs C3 for every device: milliseconds, so fewer samples.
    let mut g = c.benchmark_group("device");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(fx.fleet.devices().len() as u64));
    g.bench_function("C5_fleet_snapshot", |b| {
        b.iter(|| black_box(db.fleet_snapshot(end - 1, &health).expect("c5")))
    });
    g.finish();
}

fn rollup(source: &Source, what: &str) {
    assert!(
        matches!(source, Source::Rollup { .. }),
        "{what} answered from {source:?}"
    );
}

/// D1–D8 from rollups over the last 365 days, and the scan fallback.
fn fleet_questions(c: &mut Criterion, fx: &Fixture) {
    let db = &fx.db;
    let end = fx.end;
    let from = end - 365 * DAY_MS;
    let mut g = c.benchmark_group("fleet");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for (name, setting, by, grain) in [
        (
            "D1_program_x_region_x_month",
            "program",
            Attribute::Region,
            Grain::Month,
        ),
        (
            "D1_temperature_x_segment_x_quarter",
            "temp_setting_c",
            Attribute::Segment,
            Grain::Quarter,
        ),
    ] {
        let d1 = || {
            db.cycles_by(setting, by, grain, from, end, Plan::Rollup)
                .expect("d1")
        };
        rollup(&d1().source, name);
        g.bench_function(name, |b| b.iter(|| black_box(d1())));
    }
    rollup(
        &db.load_distribution(from, end, Plan::Rollup)
            .expect("d2")
            .source,
        "D2",
    );
    g.bench_function("D2_load_distribution_per_capacity", |b| {
        b.iter(|| black_box(db.load_distribution(from, end, Plan::Rollup).expect("d2")))
    });
    g.bench_function("D3_rare_programs_per_model", |b| {
        b.iter(|| {
            black_box(
                db.rare_programs(Attribute::Model, 0.02, from, end, Plan::Rollup)
                    .expect("d3"),
            )
        })
    });
    rollup(
        &db.resources_by_setting(from, end, Plan::Rollup)
            .expect("d4")
            .source,
        "D4",
    );
    g.bench_function("D4_energy_water_by_program_x_temperature", |b| {
        b.iter(|| {
            black_box(
                db.resources_by_setting(from, end, Plan::Rollup)
                    .expect("d4"),
            )
        })
    });
    let bands = Bands::default();
    g.bench_function("D5_usage_bands_by_segment", |b| {
        b.iter(|| {
            black_box(
                db.usage_bands(Attribute::Segment, &bands, from, end, Plan::Rollup)
                    .expect("d5"),
            )
        })
    });
    for (name, measure, by) in [
        (
            "D6_anova_energy_by_segment",
            "energy_wh",
            Attribute::Segment,
        ),
        (
            "D6_anova_cycles_per_week_by_region",
            "cycles_per_week",
            Attribute::Region,
        ),
    ] {
        let d6 = || db.anova(measure, by, from, end, Plan::Rollup).expect("d6");
        rollup(&d6().1, name);
        g.bench_function(name, |b| b.iter(|| black_box(d6())));
    }
    let d7 = || {
        db.chi_square("program", Attribute::Region, from, end, Plan::Rollup)
            .expect("d7")
    };
    rollup(&d7().1, "D7");
    g.bench_function("D7_chi_square_program_x_region", |b| {
        b.iter(|| black_box(d7()))
    });
    rollup(
        &db.time_of_day(from, end, Plan::Rollup).expect("d8").source,
        "D8",
    );
    g.bench_function("D8_weekday_x_hour", |b| {
        b.iter(|| black_box(db.time_of_day(from, end, Plan::Rollup).expect("d8")))
    });
    g.finish();

    // The scan fallback: a filtered group-by no cube covers, over the whole history.
    let mut q = FleetQuery::count(
        "cycles",
        DEFAULT_START_MS,
        end,
        vec![Dim::column("program"), Dim::Attribute(Attribute::Segment)],
    );
    q.filters.push(Filter::Range {
        column: "load_kg".into(),
        min: 5.0,
        max: 30.0,
    });
    q.plan = Plan::Scan;
    let Source::Scan { rows } = db.fleet(&q).expect("scan").source else {
        panic!("Plan::Scan answered from a rollup");
    };
    let mut g = c.benchmark_group("fleet");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(rows));
    g.bench_function("scan_program_x_segment_where_load_ge_5", |b| {
        b.iter(|| black_box(db.fleet(&q).expect("scan")))
    });
    g.finish();
}

/// Appends the same cycle batches into a fresh database with the preset's rollups and into
/// one without; with and without the flush that writes segments (and rollup files).
fn upkeep(c: &mut Criterion, fx: &Fixture) {
    let rows: u64 = fx.upkeep.iter().map(|b| b.len() as u64).sum();
    let mut g = c.benchmark_group("upkeep");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(rows));
    for flush in [false, true] {
        for (name, schema) in [
            ("no_rollups", without_rollups as fn() -> Schema),
            ("preset_rollups", Schema::washing_machine),
        ] {
            let id = format!(
                "{}/{name}",
                if flush {
                    "appends_and_flush"
                } else {
                    "appends"
                }
            );
            bench_upkeep(&mut g, &id, fx, schema, flush);
        }
    }
    g.finish();
}

fn bench_upkeep(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    fx: &Fixture,
    schema: fn() -> Schema,
    flush: bool,
) {
    g.bench_function(id, |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let db = open(dir.path(), schema(), &fx.fleet);
                (dir, db)
            },
            |(dir, db)| {
                for batch in &fx.upkeep {
                    db.append(batch).expect("append");
                }
                if flush {
                    db.flush().expect("flush");
                }
                // Returned, so the close and the directory's removal are not timed.
                (dir, db)
            },
            BatchSize::PerIteration,
        )
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let fx = Fixture::build();
    device_questions(&mut c, &fx);
    fleet_questions(&mut c, &fx);
    upkeep(&mut c, &fx);
    drop(fx);
    c.final_summary();
}
