//! Macro benchmark of rollups and queries at realistic scale, on the simulated fleet's
//! `cycles` stream:
//!
//! - rollup upkeep: the same pre-generated cycle batches ingested (one writer, then flushed)
//!   into a database with the preset's rollups and into one without; the throughput ratio;
//! - per-device questions C1 (last 10 cycles), C2 (usage over 13 and 52 weeks) and C3
//!   (health) over random devices, warm: p50 and p99 latency;
//! - fleet questions D1–D8 from rollups: median and max of repeated runs;
//! - the scan fallback: rows per second of a filtered group-by over all cycles (on every core);
//! - rollup files on disk per cycle row, open time;
//! - peak resident memory (VmHWM, Linux only) of each phase and of the whole process.
//!
//! Run (defaults: 100,000 devices × 365 days ≈ 22 million cycles):
//!
//! ```sh
//! cargo bench --bench macro_queries
//! HEARTH_DEVICES=10000 cargo bench --bench macro_queries          # smaller
//! HEARTH_DAYS=3650 HEARTH_COMPACT=0 cargo bench --bench macro_queries  # 10× the rows
//! ```
//!
//! Environment: `HEARTH_DEVICES`, `HEARTH_DAYS`, `HEARTH_QUERIES` (per-device questions
//! timed, 20,000), `HEARTH_TIMED_ROWS` (cycle rows of the upkeep comparison, 3,000,000),
//! `HEARTH_COMPACT=0` (skip the final major compaction, e.g. at 10× the rows),
//! `HEARTH_SAME_DEVICE=1` (per-device questions all about one device: warm caches),
//! `HEARTH_ERASE` (devices erased at the end, then purged; 20, 0 to skip),
//! `HEARTH_DIR` (default: a temporary directory under `target/`).

use std::time::{Duration, Instant};

use hearth::query::device::{last_weeks, AdviceConfig, HealthConfig};
use hearth::query::fleet::Bands;
use hearth::query::{Filter, FleetQuery, Plan};
use hearth::schema::DAY_MS;
use hearth::sim::{Fleet, FleetConfig, DEFAULT_START_MS};
use hearth::{Attribute, Batch, Db, Dim, Grain, Schema};

mod common;
use common::{env, open, options, without_rollups};

/// Ingests `batches` on one thread, then flushes; returns the wall time of the appends and
/// of the whole (appends and flush).
fn ingest(db: &Db, batches: &[Batch]) -> (Duration, Duration) {
    let t = Instant::now();
    for b in batches {
        db.append(b).expect("append");
    }
    let appends = t.elapsed();
    db.flush().expect("flush");
    (appends, t.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Times `f` over `n` calls; prints p50/p99 in µs.
fn latency(what: &str, n: usize, mut f: impl FnMut(usize)) {
    let mut t = Vec::with_capacity(n);
    for i in 0..n {
        let s = Instant::now();
        f(i);
        t.push(s.elapsed());
    }
    t.sort();
    println!(
        "{what}: p50 {:.2} µs, p99 {:.2} µs, max {:.0} µs ({n} calls)",
        percentile(&t, 0.5),
        percentile(&t, 0.99),
        percentile(&t, 1.0)
    );
}

/// Runs `f` `n` times; prints the median and max in ms.
fn repeat(what: &str, n: usize, mut f: impl FnMut()) {
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        f();
        t.push(s.elapsed());
    }
    t.sort();
    println!(
        "{what}: median {:.3} ms, max {:.3} ms ({n} runs)",
        percentile(&t, 0.5) / 1e3,
        percentile(&t, 1.0) / 1e3
    );
}

fn main() {
    let mut peak = common::PeakRss::start();
    let devices = env("HEARTH_DEVICES", 100_000);
    let days = env("HEARTH_DAYS", 365) as u32;
    let queries = env("HEARTH_QUERIES", 20_000);
    let timed_rows = env("HEARTH_TIMED_ROWS", 3_000_000);
    let base = std::env::var("HEARTH_DIR").unwrap_or_else(|_| "target".into());
    let fleet = Fleet::new(FleetConfig {
        devices,
        days,
        samples: false,
        ..FleetConfig::default()
    });
    let (want_cycles, _) = fleet.expected_unique_rows();
    println!("hearth query benchmark: {devices} devices x {days} days = {want_cycles} cycle rows");

    // Upkeep: the same batches with and without rollups (alternating, best of 2 each).
    let mut gen = fleet.batches(10_000);
    let mut timed = Vec::new();
    let mut n = 0usize;
    for b in gen.by_ref() {
        n += b.len();
        timed.push(b);
        if n >= timed_rows {
            break;
        }
    }
    println!(
        "RSS after pre-generating {} cycle batches for the upkeep comparison: {} (Linux only)",
        timed.len(),
        common::mib(common::status_bytes("VmRSS"))
    );
    let (mut with, mut without) = (
        (Duration::MAX, Duration::MAX),
        (Duration::MAX, Duration::MAX),
    );
    for _ in 0..2 {
        for rollups in [false, true] {
            let dir = tempfile::tempdir_in(&base).expect("temp dir");
            let schema = if rollups {
                Schema::washing_machine()
            } else {
                without_rollups()
            };
            let db = open(dir.path(), schema, &fleet);
            let t = ingest(&db, &timed);
            let slot = if rollups { &mut with } else { &mut without };
            *slot = (slot.0.min(t.0), slot.1.min(t.1));
        }
    }
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "upkeep, appends: {n} cycle rows, without rollups {:.0} rows/s, with {:.0} rows/s: rollups cost {:.1}% of append throughput",
        rate(without.0),
        rate(with.0),
        (1.0 - rate(with.0) / rate(without.0)) * 100.0
    );
    println!(
        "upkeep, appends and flush: without rollups {:.0} rows/s, with {:.0} rows/s: rollups cost {:.1}%",
        rate(without.1),
        rate(with.1),
        (1.0 - rate(with.1) / rate(without.1)) * 100.0
    );

    peak.phase("upkeep comparison (the pre-generated batches into four databases)");

    // The whole fleet.
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let db = open(dir.path(), Schema::washing_machine(), &fleet);
    let t = Instant::now();
    for b in timed.into_iter().chain(gen) {
        db.append(&b).expect("append");
    }
    db.flush().expect("flush");
    // At 10x the rows the final major compaction takes longer than the rest of the run;
    // queries from rollups do not need it (the rollup files hold the same cells).
    let compact = env("HEARTH_COMPACT", 1) != 0;
    if compact {
        db.compact().expect("compact");
    }
    println!(
        "fleet ingested, flushed{} in {:.1} s",
        if compact {
            " and compacted"
        } else {
            " (not compacted)"
        },
        t.elapsed().as_secs_f64()
    );
    let info = db.info().expect("info");
    let cycles = &info.streams[0];
    if compact {
        assert_eq!(cycles.segment_rows, want_cycles);
    } else {
        println!(
            "rows in segments: {} (unique rows generated: {want_cycles})",
            cycles.segment_rows
        );
    }
    let rollup_bytes: u64 = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".hrlp"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "on disk: segments {:.2} bytes/row, rollup files {:.2} bytes/row ({} bytes)",
        cycles.bytes_per_row,
        rollup_bytes as f64 / want_cycles as f64,
        rollup_bytes
    );
    db.close().expect("close");
    peak.phase("ingest phase (the whole year: appends, flush, compaction, close)");
    let mut opens = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        drop(Db::open(dir.path(), options(Schema::washing_machine())).expect("reopen"));
        opens.push(t.elapsed());
    }
    opens.sort();
    println!("open time: median {:.1} ms", opens[1].as_secs_f64() * 1e3);
    let db = Db::open(dir.path(), options(Schema::washing_machine())).expect("reopen");

    let end = DEFAULT_START_MS + i64::from(days) * DAY_MS;
    let from = end - 365 * DAY_MS;
    let serial = |i: usize| {
        let k = (i.wrapping_mul(2_654_435_761)) % devices;
        fleet.devices()[k].serial.clone()
    };
    // HEARTH_SAME_DEVICE=1: every per-device question asks about one device (hot caches),
    // to tell memory stalls from computing.
    let same = env("HEARTH_SAME_DEVICE", 0) != 0;
    let serials: Vec<String> = (0..queries)
        .map(|i| serial(if same { 7 } else { i }))
        .collect();
    // Warm the page cache and the code paths once.
    for s in serials.iter().take(queries / 4) {
        let _ = db.last_cycles(s, 10).expect("c1");
    }
    let advice = AdviceConfig::default();
    let health = HealthConfig::default();
    latency("C1 last 10 cycles", queries, |i| {
        std::hint::black_box(db.last_cycles(&serials[i], 10).expect("c1"));
    });
    let (q13_from, q13_to) = last_weeks(end - 1, 13);
    latency("C2 usage over 13 weeks", queries, |i| {
        std::hint::black_box(
            db.usage(&serials[i], q13_from, q13_to, &advice)
                .expect("c2"),
        );
    });
    let (y_from, y_to) = last_weeks(end - 1, 52);
    latency("C2 usage over 52 weeks", queries, |i| {
        std::hint::black_box(db.usage(&serials[i], y_from, y_to, &advice).expect("c2"));
    });
    latency("C3 health", queries, |i| {
        std::hint::black_box(db.health(&serials[i], end - 1, &health).expect("c3"));
    });

    let runs = 30;
    repeat(
        "D1 cycles by program x region x month, one year",
        runs,
        || {
            std::hint::black_box(
                db.cycles_by(
                    "program",
                    Attribute::Region,
                    Grain::Month,
                    from,
                    end,
                    Plan::Rollup,
                )
                .expect("d1"),
            );
        },
    );
    repeat(
        "D1 cycles by temperature x segment x quarter, one year",
        runs,
        || {
            std::hint::black_box(
                db.cycles_by(
                    "temp_setting_c",
                    Attribute::Segment,
                    Grain::Quarter,
                    from,
                    end,
                    Plan::Rollup,
                )
                .expect("d1"),
            );
        },
    );
    // D1 with distinct devices per group, from presence bits: whole months of the data.
    let months_from = DEFAULT_START_MS;
    let months_to = DEFAULT_START_MS + 334 * DAY_MS; // January to November 2025
    let mut dq = FleetQuery::count(
        "cycles",
        months_from,
        months_to,
        vec![Dim::column("program"), Dim::Attribute(Attribute::Region)],
    );
    dq.grain = Some(Grain::Month);
    dq.devices = true;
    dq.plan = Plan::Rollup;
    // The first question counting devices after open builds the distinct-device counts
    // from the presence bits (kept up to date afterwards).
    let t = Instant::now();
    std::hint::black_box(db.fleet(&dq).expect("d1 devices"));
    println!(
        "first question counting devices after open (builds the distinct-device counts): {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    repeat(
        "D1 program x region x month with distinct devices, 11 months",
        runs,
        || {
            std::hint::black_box(db.fleet(&dq).expect("d1 devices"));
        },
    );
    repeat("D2 load distribution per capacity", runs, || {
        std::hint::black_box(db.load_distribution(from, end, Plan::Rollup).expect("d2"));
    });
    repeat("D3 rare programs per model", runs, || {
        std::hint::black_box(
            db.rare_programs(Attribute::Model, 0.02, from, end, Plan::Rollup)
                .expect("d3"),
        );
    });
    repeat("D4 energy and water by program x temperature", runs, || {
        std::hint::black_box(
            db.resources_by_setting(from, end, Plan::Rollup)
                .expect("d4"),
        );
    });
    repeat("D5 usage bands by segment", runs, || {
        std::hint::black_box(
            db.usage_bands(
                Attribute::Segment,
                &Bands::default(),
                from,
                end,
                Plan::Rollup,
            )
            .expect("d5"),
        );
    });
    repeat("D6 ANOVA of energy_wh across segments", runs, || {
        std::hint::black_box(
            db.anova("energy_wh", Attribute::Segment, from, end, Plan::Rollup)
                .expect("d6"),
        );
    });
    repeat("D6 ANOVA of cycles per week across regions", runs, || {
        std::hint::black_box(
            db.anova(
                "cycles_per_week",
                Attribute::Region,
                from,
                end,
                Plan::Rollup,
            )
            .expect("d6"),
        );
    });
    repeat("D7 chi-square program x region", runs, || {
        std::hint::black_box(
            db.chi_square("program", Attribute::Region, from, end, Plan::Rollup)
                .expect("d7"),
        );
    });
    repeat("D8 weekday x hour of day", runs, || {
        std::hint::black_box(db.time_of_day(from, end, Plan::Rollup).expect("d8"));
    });

    // The analytics view: the same questions, k-anonymous (k = 5), so every group's distinct
    // devices are counted: from presence bits over whole months, by a scan otherwise.
    let an = db.analytics();
    repeat(
        "analytics D1 program x region x month (k = 5), 11 whole months",
        runs,
        || {
            std::hint::black_box(
                an.cycles_by(
                    "program",
                    Attribute::Region,
                    Grain::Month,
                    months_from,
                    months_to,
                    Plan::Rollup,
                )
                .expect("d1 k"),
            );
        },
    );
    let ragged_from = months_from + 3 * DAY_MS;
    repeat(
        "analytics D1 program x region x month (k = 5), 11 months less 3 days",
        3,
        || {
            std::hint::black_box(
                an.cycles_by(
                    "program",
                    Attribute::Region,
                    Grain::Month,
                    ragged_from,
                    months_to,
                    Plan::Rollup,
                )
                .expect("d1 k ragged"),
            );
        },
    );
    repeat(
        "analytics D6 ANOVA of energy_wh across segments (k = 5), 11 whole months",
        runs,
        || {
            std::hint::black_box(
                an.anova(
                    "energy_wh",
                    Attribute::Segment,
                    months_from,
                    months_to,
                    Plan::Rollup,
                )
                .expect("d6 k"),
            );
        },
    );
    repeat(
        "analytics D7 chi-square program x region (k = 5), 11 whole months",
        runs,
        || {
            std::hint::black_box(
                an.chi_square(
                    "program",
                    Attribute::Region,
                    months_from,
                    months_to,
                    Plan::Rollup,
                )
                .expect("d7 k"),
            );
        },
    );
    repeat("analytics D8 weekday x hour (k = 5), one year", 3, || {
        std::hint::black_box(an.time_of_day(from, end, Plan::Rollup).expect("d8 k"));
    });

    // Scan fallback: a filtered group-by no cube covers.
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
    // The scan shares the devices among the cores (at least 2,048 devices a thread).
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get().min(8))
        .min((devices / 2048).max(1));
    for _ in 0..2 {
        let t = Instant::now();
        let r = db.fleet(&q).expect("scan");
        let secs = t.elapsed().as_secs_f64();
        if let hearth::query::Source::Scan { rows } = r.source {
            println!(
                "scan fallback (program x segment where load_kg >= 5; ts, program and load_kg decoded, {threads} threads): {rows} rows in {:.2} s = {:.0} rows/s, {:.0} rows/s per thread",
                secs,
                rows as f64 / secs,
                rows as f64 / secs / threads as f64
            );
        }
    }
    peak.phase("reopens and queries");

    // Erasure (right to erasure) of random devices, then one purge of them all.
    let erasures = env("HEARTH_ERASE", 20);
    if erasures > 0 {
        let mut t = Vec::with_capacity(erasures);
        let mut hidden = 0u64;
        for i in 0..erasures {
            let k = (i * 7_919 + 13) % fleet.devices().len();
            let serial = &fleet.devices()[k].serial;
            let s = Instant::now();
            match db.erase(serial) {
                Ok(r) => hidden += r.segment_rows + r.memtable_rows,
                // Drawn twice: already erased.
                Err(_) => continue,
            }
            t.push(s.elapsed());
        }
        t.sort();
        println!(
            "erase one device: median {:.2} ms, max {:.2} ms ({} devices, {hidden} rows; durable: one log record and fsync each)",
            percentile(&t, 0.5) / 1e3,
            percentile(&t, 1.0) / 1e3,
            t.len()
        );
        let s = Instant::now();
        let p = db.purge().expect("purge");
        println!(
            "purge: {:.2} s, {} segments rewritten ({} bytes), {} rows dropped",
            s.elapsed().as_secs_f64(),
            p.segments_rewritten,
            p.bytes_written,
            p.rows_dropped
        );
        peak.phase("erasure and purge");
    }
    peak.total();
}
