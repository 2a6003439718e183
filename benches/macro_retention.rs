//! Macro benchmark of a retention run (`Db::apply_retention`) on a simulated fleet: ingest
//! `HEARTH_DEVICES` × `HEARTH_DAYS` (default 10,000 × 730: two years of cycles from
//! 2025-01-01), flush and compact, keep cycles (and samples, with `HEARTH_SAMPLES=1`) for 365
//! days, and run retention at the end of the period: the preset's yearly cycle window of
//! 2025 (to 2025-12-18) is dropped. Prints what was dropped, the run's wall time (publishing
//! the manifest, recomputing the fleet rollups from the remaining rollup files, removing the
//! files), the same on a run that finds rows of the dropped window in the memtable (it
//! flushes them first), and the open time of the database after the run (which reads the same
//! fleet sections the rollups are recomputed from).
//!
//! ```sh
//! cargo bench --bench macro_retention
//! HEARTH_DEVICES=1000 HEARTH_DAYS=800 HEARTH_SAMPLES=1 cargo bench --bench macro_retention
//! ```
//!
//! Environment: `HEARTH_DEVICES`, `HEARTH_DAYS`, `HEARTH_SAMPLES=1`, `HEARTH_DIR` (default:
//! a temporary directory under `target/`).

use std::time::Instant;

use hearth::query::Plan;
use hearth::schema::DAY_MS;
use hearth::sim::{Fleet, FleetConfig, DEFAULT_START_MS};
use hearth::{Attribute, Db, Grain, Options, Schema, SyncPolicy};

mod common;
use common::env;

fn options() -> Options {
    Options {
        schema: Some(Schema::washing_machine()),
        sync: SyncPolicy::Never,
        ..Options::default()
    }
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let devices = env("HEARTH_DEVICES", 10_000);
    let days = env("HEARTH_DAYS", 730) as u32;
    let samples = env("HEARTH_SAMPLES", 0) == 1;
    let base = std::env::var("HEARTH_DIR").unwrap_or_else(|_| "target".into());
    let fleet = Fleet::new(FleetConfig {
        devices,
        days,
        samples,
        ..FleetConfig::default()
    });
    let (cycles, sample_rows) = fleet.expected_unique_rows();
    println!(
        "hearth retention benchmark: {devices} devices x {days} days = {cycles} cycle rows, {sample_rows} sample rows"
    );
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let path = dir.path().join("db");
    let db = Db::open(&path, options()).expect("open");
    db.set_postcodes(&fleet.postcodes()).expect("postcodes");
    for chunk in fleet.devices().chunks(10_000) {
        db.register_all(chunk.to_vec()).expect("register");
    }
    let t = Instant::now();
    for b in fleet.batches(10_000) {
        db.append(&b).expect("append");
    }
    db.flush().expect("flush");
    db.compact().expect("compact");
    println!(
        "ingested, flushed and compacted in {:.1} s: {:.1} MiB on disk",
        t.elapsed().as_secs_f64(),
        dir_bytes(&path) as f64 / 1048576.0
    );
    let now = DEFAULT_START_MS + i64::from(days) * DAY_MS;
    db.set_retention("cycles", 365 * DAY_MS).expect("policy");
    if samples {
        db.set_retention("samples", 365 * DAY_MS).expect("policy");
    }
    let d1 = |db: &Db, plan| {
        db.cycles_by(
            "program",
            Attribute::Region,
            Grain::Month,
            DEFAULT_START_MS,
            now,
            plan,
        )
        .expect("d1")
        .rows
    };
    let t = Instant::now();
    let report = db.apply_retention(now).expect("retention");
    let run = t.elapsed();
    for s in &report.streams {
        println!(
            "{}: {} windows, {} segments, {} rows, {:.1} MiB dropped",
            s.stream,
            s.windows,
            s.segments,
            s.rows,
            s.bytes as f64 / 1048576.0
        );
    }
    println!(
        "apply_retention: {:.1} ms ({:.1} MiB left on disk)",
        run.as_secs_f64() * 1e3,
        dir_bytes(&path) as f64 / 1048576.0
    );
    assert_eq!(
        d1(&db, Plan::Auto),
        d1(&db, Plan::Scan),
        "rollups equal a scan"
    );

    // A run with nothing to drop: reads the policy, writes its audit record.
    let t = Instant::now();
    db.apply_retention(now).expect("retention");
    println!(
        "apply_retention with nothing to drop: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    // Late rows of the dropped window arrive (1,000 rows re-sent): the next run flushes the
    // memtable first, then drops the window again.
    let late = fleet
        .batches(1_000)
        .find(|b| b.stream == "cycles")
        .expect("a batch of cycles");
    let t = Instant::now();
    db.append(&late).expect("late rows");
    let r = db.apply_retention(now).expect("retention");
    println!(
        "apply_retention after {} late rows of the dropped window: {} rows dropped in {:.1} ms",
        late.len(),
        r.rows(),
        t.elapsed().as_secs_f64() * 1e3
    );
    db.close().expect("close");

    let t = Instant::now();
    let db = Db::open(&path, options()).expect("reopen");
    println!(
        "open after retention: {:.1} ms (reads the fleet sections a run recomputes the rollups from)",
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(db);
}
