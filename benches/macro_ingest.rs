//! Macro benchmark of the storage core at realistic scale, on the simulated fleet:
//!
//! - durable ingest (default `SyncPolicy::Always`, batches of 10,000 rows, `WRITERS` writer
//!   threads sharing group commit) of pre-generated batches, samples and cycles separately;
//! - bytes on disk per row after compaction, per stream;
//! - open time (median of 5 reopens);
//! - resident memory per registered idle device;
//! - peak resident memory (VmHWM, Linux only) of the ingest phase and of the whole process.
//!
//! Run (defaults: 100,000 devices × 365 days):
//!
//! ```sh
//! cargo bench --bench macro_ingest
//! HEARTH_DEVICES=10000 HEARTH_DAYS=90 cargo bench --bench macro_ingest   # smaller
//! ```
//!
//! Environment: `HEARTH_DEVICES`, `HEARTH_DAYS`, `HEARTH_WRITERS` (2), `HEARTH_TIMED_ROWS`
//! (rows pre-generated per stream for the timed ingest, 10,000,000), `HEARTH_DIR` (a
//! directory on the disk to measure; default a temporary directory under `target/`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hearth::sim::{Fleet, FleetConfig};
use hearth::{Batch, Db, Options, Schema, SyncPolicy, UnknownDevices};

mod common;
use common::env;

fn rss_bytes() -> u64 {
    common::status_bytes("VmRSS").unwrap_or(0)
}

fn options(sync: SyncPolicy) -> Options {
    Options {
        schema: Some(Schema::washing_machine()),
        sync,
        unknown_devices: UnknownDevices::Reject,
        ..Options::default()
    }
}

/// Appends `batches` from `writers` threads; returns (rows offered, wall time).
fn ingest(db: &Db, batches: &[Batch], writers: usize) -> (u64, Duration) {
    let next = AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..writers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(b) = batches.get(i) else { break };
                db.append(b).expect("append");
            });
        }
    });
    (batches.iter().map(|b| b.len() as u64).sum(), t.elapsed())
}

fn main() {
    if let Ok(dir) = std::env::var(IDLE_CHILD) {
        return memory_child(&dir);
    }
    let mut peak = common::PeakRss::start();
    let devices = env("HEARTH_DEVICES", 100_000);
    let days = env("HEARTH_DAYS", 365) as u32;
    let writers = env("HEARTH_WRITERS", 2).max(1);
    let timed_rows = env("HEARTH_TIMED_ROWS", 10_000_000);
    let base = std::env::var("HEARTH_DIR").unwrap_or_else(|_| "target".into());
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    println!(
        "hearth macro benchmark: {devices} devices x {days} days, {writers} writers, dir {}",
        dir.path().display()
    );

    let fleet = Fleet::new(FleetConfig {
        devices,
        days,
        samples: true,
        ..FleetConfig::default()
    });
    let (want_cycles, want_samples) = fleet.expected_unique_rows();
    println!("fleet: {want_cycles} unique cycle rows, {want_samples} unique sample rows");

    let db = Db::open(dir.path(), options(SyncPolicy::Always)).expect("open");
    let table = fleet.postcodes();
    db.set_postcodes(&table).expect("postcodes");
    for chunk in fleet.devices().chunks(10_000) {
        db.register_all(chunk.to_vec()).expect("register");
    }

    // Pre-generate the first batches of each stream so the timed part is the engine alone.
    let mut gen = fleet.batches(10_000);
    let (mut timed_samples, mut timed_cycles, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ns, mut nc) = (0usize, 0usize);
    for b in gen.by_ref() {
        match b.stream.as_str() {
            "samples" if ns < timed_rows => {
                ns += b.len();
                timed_samples.push(b);
            }
            "cycles" if nc < timed_rows => {
                nc += b.len();
                timed_cycles.push(b);
            }
            _ => rest.push(b),
        }
        if ns >= timed_rows && nc >= timed_rows.min(want_cycles as usize / 2) {
            break;
        }
    }
    println!(
        "RSS after pre-generating {} sample and {} cycle batches: {} (Linux only)",
        timed_samples.len(),
        timed_cycles.len(),
        common::mib(common::status_bytes("VmRSS"))
    );
    let (rows, t) = ingest(&db, &timed_samples, writers);
    println!(
        "durable ingest, samples: {rows} rows in {:.2} s = {:.0} rows/s ({} batches)",
        t.as_secs_f64(),
        rows as f64 / t.as_secs_f64(),
        timed_samples.len()
    );
    let (rows, t) = ingest(&db, &timed_cycles, writers);
    println!(
        "durable ingest, cycles: {rows} rows in {:.2} s = {:.0} rows/s ({} batches)",
        t.as_secs_f64(),
        rows as f64 / t.as_secs_f64(),
        timed_cycles.len()
    );
    drop((timed_samples, timed_cycles));

    // The rest of the year, untimed (generation interleaved).
    let t = Instant::now();
    for b in rest.into_iter().chain(gen) {
        db.append(&b).expect("append");
    }
    db.flush().expect("flush");
    db.compact().expect("compact");
    println!(
        "rest of the fleet ingested, flushed and compacted in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let info = db.info().expect("info");
    for s in &info.streams {
        println!(
            "{}: {} rows in {} segments, {} bytes = {:.2} bytes/row",
            s.name, s.segment_rows, s.segments, s.segment_bytes, s.bytes_per_row
        );
        let cols: Vec<String> = s
            .column_bytes
            .iter()
            .map(|(c, b)| format!("{c} {:.2}", *b as f64 / s.segment_rows.max(1) as f64))
            .collect();
        println!("  bytes/row by column: {}", cols.join(", "));
    }
    println!(
        "total on disk: {} bytes, log {} bytes",
        info.total_bytes, info.log_bytes
    );
    assert_eq!(info.streams[0].segment_rows, want_cycles, "cycle rows");
    assert_eq!(info.streams[1].segment_rows, want_samples, "sample rows");
    db.close().expect("close");
    peak.phase(
        "ingest phase (pre-generated batches, timed and untimed ingest, flush, compaction, close)",
    );

    // Open time: median of 5.
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let db = Db::open(dir.path(), options(SyncPolicy::Always)).expect("reopen");
        opens.push(t.elapsed());
        drop(db);
    }
    opens.sort();
    println!(
        "open time with {} cycle rows flushed: median {:.1} ms (min {:.1}, max {:.1})",
        want_cycles,
        opens[2].as_secs_f64() * 1e3,
        opens[0].as_secs_f64() * 1e3,
        opens[4].as_secs_f64() * 1e3
    );

    // Memory per registered idle device: a database holding only the registry, opened in a
    // fresh process so the allocator holds nothing from the work above.
    let idle_dir = tempfile::tempdir_in(&base).expect("temp dir");
    {
        let db = Db::open(idle_dir.path(), options(SyncPolicy::Never)).expect("open");
        db.set_postcodes(&table).expect("postcodes");
        db.register_all(fleet.devices().to_vec()).expect("register");
        db.flush().expect("flush");
    }
    for (what, path) in [
        ("registered idle device", idle_dir.path()),
        ("device of the full database", dir.path()),
    ] {
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env(IDLE_CHILD, path)
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        let delta: u64 = text.trim().parse().unwrap_or(0);
        println!(
            "memory: {:.0} bytes per {what} (RSS growth of a fresh process opening it: {delta} bytes for {devices} devices)",
            delta as f64 / devices as f64
        );
    }
    peak.phase("reopens and the idle-device probe (its child processes not included)");
    peak.total();
}

const IDLE_CHILD: &str = "HEARTH_MEMORY_CHILD";

/// In a child process: print the RSS growth caused by opening the database at `dir`.
fn memory_child(dir: &str) {
    let before = rss_bytes();
    let db = Db::open(dir, options(SyncPolicy::Never)).expect("open");
    let after = rss_bytes();
    println!("{}", after.saturating_sub(before));
    drop(db);
}
