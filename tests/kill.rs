//! Real crash: a writer process is killed with SIGKILL at random moments; after reopening,
//! every batch it reported as acknowledged is there, and every batch is all-or-nothing.
//!
//! The writer is this test binary itself, started with `HEARTH_KILL_CHILD=<dir>` to run the
//! `child_writer` test. `kill_writer_soak` (ignored) repeats the kill 200 times:
//! `cargo test --release --test kill -- --ignored kill_writer_soak`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hearth::{Db, Options, Schema};

const ENV: &str = "HEARTH_KILL_CHILD";
const ROWS: usize = 50;

fn batch_rows(i: u64) -> Vec<Row> {
    // Batch i holds its own rows: device and ts derived from i, so batches never overlap.
    let mut rng = Rng(i);
    (0..ROWS)
        .map(|k| {
            let dev = format!("WM-{:08}", i % 7);
            let ts = T0 + (i as i64) * 1_000_000 + k as i64 * 1000;
            let vals = gen_rows(&mut rng, "samples", 1, 1, 0, &[]).remove(0).1;
            (("samples".to_string(), dev, ts), vals)
        })
        .collect()
}

fn db_options() -> Options {
    Options {
        memtable_rows: 2_000,
        background: true,
        ..options()
    }
}

/// The writer: appends batches forever, printing the number of each acknowledged batch.
#[test]
#[ignore = "run by the kill tests as a child process"]
fn child_writer() {
    let Ok(dir) = std::env::var(ENV) else { return };
    let schema = Schema::washing_machine();
    let db = Db::open(&dir, db_options()).expect("child open");
    let start: u64 = std::env::var("HEARTH_KILL_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for i in start.. {
        db.append(&to_batch(&schema, "samples", &batch_rows(i)))
            .expect("append");
        println!("acked {i}");
    }
}

/// Kills in groups of 25 rounds, each group on a fresh database, so every round's check
/// stays cheap however many rounds run.
fn kill_rounds(rounds: u64) {
    let mut done = 0;
    while done < rounds {
        let n = (rounds - done).min(25);
        kill_rounds_on_one_database(n, done);
        done += n;
    }
}

fn kill_rounds_on_one_database(rounds: u64, seed: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("exe");
    let mut rng = Rng(99 + seed);
    let mut next = 0u64;
    let mut acked_total = 0u64;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "child_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, dir.path())
            .env("HEARTH_KILL_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().expect("stdout");
        let wait = Duration::from_millis(50 + rng.below(400));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("acked ") {
                    if let Ok(n) = n.parse::<u64>() {
                        let _ = tx.send(n);
                    }
                }
            }
        });
        let t = Instant::now();
        let mut last_acked: Option<u64> = None;
        while t.elapsed() < wait {
            if let Ok(n) = rx.recv_timeout(Duration::from_millis(5)) {
                last_acked = Some(n);
            }
        }
        child.kill().expect("kill");
        child.wait().expect("wait");
        let _ = reader.join();
        while let Ok(n) = rx.try_recv() {
            last_acked = Some(n);
        }
        // Reopen and check every batch up to the last acknowledged, all-or-nothing after.
        let db = Db::open(
            dir.path(),
            Options {
                background: false,
                ..db_options()
            },
        )
        .expect("reopen after kill");
        let model = read_all(&db).expect("read");
        drop(db);
        // Batches before `next` were checked in earlier rounds: check a sample of them again
        // and all the new ones; the row count below covers the rest.
        let mut present_until = next;
        for i in (0..next).step_by(1 + next as usize / 20) {
            let rows = batch_rows(i);
            for (k, v) in &rows {
                assert_eq!(
                    model.rows.get(k),
                    Some(v),
                    "round {round}: old batch {i} changed"
                );
            }
        }
        for i in next..next + 100_000 {
            let rows = batch_rows(i);
            let have = rows
                .iter()
                .filter(|(k, _)| model.rows.contains_key(k))
                .count();
            if have == 0 {
                present_until = i;
                break;
            }
            assert_eq!(have, ROWS, "round {round}: batch {i} is partly present");
            for (k, v) in &rows {
                assert_eq!(
                    model.rows.get(k),
                    Some(v),
                    "round {round}: batch {i} has wrong values"
                );
            }
        }
        if let Some(n) = last_acked {
            assert!(
                present_until > n,
                "round {round}: acknowledged batch {n} lost (present until {present_until})"
            );
        }
        assert_eq!(
            model.rows.len() as u64,
            present_until * ROWS as u64,
            "round {round}: stray rows"
        );
        acked_total += last_acked.map_or(0, |n| n + 1 - next.min(n + 1));
        next = present_until;
    }
    eprintln!(
        "kill rounds: {rounds}, batches acknowledged: {acked_total}, batches on disk: {next}"
    );
}

#[test]
fn kill_writer_20_times() {
    kill_rounds(20);
}

#[test]
#[ignore = "soak: 200 kills, run with --ignored"]
fn kill_writer_soak() {
    kill_rounds(200);
}
