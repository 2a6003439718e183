//! Files written by every format generation are kept in `tests/data/<generation>/` and read
//! on every test run: a change that can no longer read them fails here. Each directory holds
//! every file kind (schema, manifest, registry, segments, a log with records after the
//! checkpoint); `v1` has version-1 segments (raw footers), `v2` version-2 segments
//! (compressed footers, entropy-coded chunks), `v3` version-1 rollup files (device cells
//! oldest week first; read by rolling their segment up again from its rows), `v4` version-2
//! registries with an erased device whose rows segments still hold (a slot keeping only its
//! rollup attributes) and an erasure record in the log after the checkpoint, `v5` a
//! version-2 `RETENTION` (a device-rollup period) and a version-2 manifest naming device
//! summaries (the week cells of a cycles window whose raw rows a retention run dropped).
//!
//! Add the current generation's directory (never rewrite an old one to paper over a break):
//! `HEARTH_COMPAT=v6 cargo test --test compat -- --ignored write_current_files`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use hearth::query::{FleetQuery, Plan};
use hearth::{Attribute, Db, Dim, Schema};

const GENERATIONS: &[&str] = &["v1", "v2", "v3", "v4", "v5"];

fn data_dir(generation: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(generation)
}

/// The rows the v1 database holds, stored beside it (so a change to the test generator
/// cannot move the goalposts): one JSON array `[stream, serial, ts, [values...]]` per row.
fn expected_file(generation: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{generation}-rows.json"))
}

fn model_to_json(m: &Model) -> String {
    let rows: Vec<serde_json::Value> = m
        .rows
        .iter()
        .map(|((s, d, t), v)| serde_json::json!([s, d, t, v]))
        .collect();
    serde_json::to_string_pretty(&rows).expect("json")
}

/// The rows the stored database holds, and the steps that wrote it.
fn write(dir: &Path) -> Model {
    let schema = Schema::washing_machine();
    let db = Db::open(dir, options()).expect("open");
    let mut model = Model::default();
    let mut previous = Vec::new();
    let mut rng = Rng(2026);
    for day in 0..6 {
        for stream in ["cycles", "samples"] {
            let rows = gen_rows(&mut rng, stream, 25, 4, 100 + day * 10, &previous);
            previous.extend(rows.iter().cloned());
            db.append(&to_batch(&schema, stream, &rows))
                .expect("append");
            model.apply(&rows);
        }
        if day == 3 {
            db.flush().expect("flush");
        }
        // Since v4: an erasure the registry file records (its rows still in segments), and
        // one only the log records.
        if day == 4 {
            db.erase("WM-00000001").expect("erase");
            model.erase("WM-00000001");
            db.flush().expect("flush");
        }
        if day == 5 {
            db.erase("WM-00000003").expect("erase");
            model.erase("WM-00000003");
        }
    }
    // Since v5: cycles of the next yearly window, then a retention run that drops the raw
    // cycles of the first (to 2025-12-18) and keeps their week cells in device summaries;
    // then rows that stay in the log.
    let rows = gen_rows(&mut rng, "cycles", 25, 4, 400, &previous);
    previous.extend(rows.iter().cloned());
    db.append(&to_batch(&schema, "cycles", &rows))
        .expect("append");
    model.apply(&rows);
    const DAY: i64 = 86_400_000;
    db.set_retention_with_device_rollups("cycles", 30 * DAY, 36_500 * DAY)
        .expect("policy");
    let now = T0 + 430 * DAY;
    let report = db.apply_retention(now).expect("retention");
    assert!(report.summaries_kept() > 0, "{report:?}");
    let window = schema.stream("cycles").expect("cycles").window_ms;
    model.rows.retain(|(stream, _, ts), _| {
        stream != "cycles" || (ts.div_euclid(window) + 1) * window > now - 30 * DAY
    });
    for stream in ["cycles", "samples"] {
        let rows = gen_rows(&mut rng, stream, 10, 4, 420, &previous);
        previous.extend(rows.iter().cloned());
        db.append(&to_batch(&schema, stream, &rows))
            .expect("append");
        model.apply(&rows);
    }
    db.close().expect("close");
    model
}

#[test]
#[ignore = "writes tests/data/$HEARTH_COMPAT; run by hand only"]
fn write_current_files() {
    let generation = std::env::var("HEARTH_COMPAT").expect("HEARTH_COMPAT=vN");
    let dir = data_dir(&generation);
    assert!(
        !dir.exists(),
        "{} exists: old generations are never rewritten",
        dir.display()
    );
    let model = write(&dir);
    let _ = std::fs::remove_file(dir.join("LOCK"));
    std::fs::write(expected_file(&generation), model_to_json(&model)).expect("write rows");
}

#[test]
fn reads_every_generation() {
    for generation in GENERATIONS {
        reads(generation);
    }
}

fn reads(generation: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(data_dir(generation)).expect("tests/data/<generation> exists") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).expect("copy");
    }
    let report = Db::verify(tmp.path()).expect("old files verify");
    assert!(report.segments > 0 && report.log_records > 0, "{report:?}");
    let summaries = report.summaries;
    if *generation >= *"v5" {
        assert!(summaries > 0, "{generation}: {report:?}");
    }
    let expected = std::fs::read_to_string(expected_file(generation)).expect("expected rows");
    let db = Db::open(tmp.path(), options()).expect("open old files");
    assert_eq!(model_to_json(&read_all(&db).expect("read")), expected);
    // The rollups of old files (rolled up at open, or read) answer as a scan does.
    let mut q = FleetQuery::count(
        "cycles",
        0,
        4_102_444_800_000, // 2100-01-01
        vec![Dim::column("program"), Dim::Attribute(Attribute::Region)],
    );
    q.plan = Plan::Rollup;
    let rollup = db.fleet(&q).expect("rollup answer");
    q.plan = Plan::Scan;
    assert_eq!(
        rollup.rows,
        db.fleet(&q).expect("scan answer").rows,
        "{generation}"
    );
    assert!(rollup.rows.iter().map(|r| r.rows).sum::<u64>() > 0);
    // Erasure and purge on old files (segments without rollup files, version-1 rollup files
    // rolled up again): the rewritten files still answer as a scan does, and verify.
    // Device summaries answer C2 over the weeks whose raw rows are gone.
    let summarised = db
        .usage("WM-00000000", 0, T0 + 300 * 86_400_000, &Default::default())
        .expect("usage")
        .cycles;
    let raw = read_all(&db)
        .expect("read")
        .rows
        .keys()
        .filter(|(s, d, t)| s == "cycles" && d == "WM-00000000" && *t < T0 + 300 * 86_400_000)
        .count() as u64;
    if summaries > 0 {
        assert!(
            summarised > raw,
            "{generation}: {summarised} cycles, {raw} raw rows"
        );
    } else {
        assert_eq!(summarised, raw, "{generation}");
    }
    db.erase("WM-00000002").expect("erase");
    db.purge().expect("purge");
    q.plan = Plan::Rollup;
    let rollup = db.fleet(&q).expect("rollup answer after purge");
    q.plan = Plan::Scan;
    assert_eq!(
        rollup.rows,
        db.fleet(&q).expect("scan answer after purge").rows,
        "{generation} after purge"
    );
    drop(db);
    let after = Db::verify(tmp.path()).expect("verify after purge");
    assert!(after.summaries <= summaries && after.unreferenced_files.is_empty());
}
