//! Files written by format version 1 are kept in `tests/data/v1/` and read on every test run:
//! a change that can no longer read them fails here. The directory holds every file kind
//! (schema, manifest, registry, segments, a log with records after the checkpoint).
//!
//! Regenerate (only when adding a new version's directory, never to paper over a break):
//! `cargo test --test compat -- --ignored write_v1_files`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use hearth::{Db, Schema};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1")
}

/// The rows the v1 database holds, stored beside it (so a change to the test generator
/// cannot move the goalposts): one JSON array `[stream, serial, ts, [values...]]` per row.
fn expected_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1-rows.json")
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
    }
    db.close().expect("close");
    model
}

#[test]
#[ignore = "writes tests/data/v1; run by hand only"]
fn write_v1_files() {
    let dir = data_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let model = write(&dir);
    std::fs::write(expected_file(), model_to_json(&model)).expect("write expected rows");
}

#[test]
fn reads_v1_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(data_dir()).expect("tests/data/v1 exists") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).expect("copy");
    }
    let report = Db::verify(tmp.path()).expect("v1 files verify");
    assert!(report.segments > 0 && report.log_records > 0, "{report:?}");
    let expected = std::fs::read_to_string(expected_file()).expect("expected rows");
    let db = Db::open(tmp.path(), options()).expect("open v1 files");
    assert_eq!(model_to_json(&read_all(&db).expect("read")), expected);
}
