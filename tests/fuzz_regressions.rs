//! Inputs the fuzzers once crashed on, kept as regression tests: every file under
//! `tests/data/fuzz/<target>/` is fed to that target's entry point on every test run (a
//! well-formed file may sit beside them, so the success path runs too). (The fuzzers build
//! with overflow checks; `cargo test` without `--release` does too.)

use std::path::Path;

fn each(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("regression folder") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        run(&bytes);
        n += 1;
    }
    n
}

#[test]
fn segment_footer_regressions() {
    assert!(each("segment_footer", hearth::fuzzing::segment_file) >= 1);
}

#[test]
fn rollup_file_regressions() {
    assert!(each("rollup_file", hearth::fuzzing::rollup_file) >= 1);
}

#[test]
fn audit_log_regressions() {
    assert!(each("audit_log", hearth::fuzzing::audit_log) >= 1);
}

#[test]
fn retention_policy_regressions() {
    assert!(each("retention_policy", hearth::fuzzing::retention_policy) >= 1);
}
