//! The hearth side of the peer comparison (see `run.sh` and `peers.py` beside this crate).
//!
//! 1. Simulates a fleet with `hearth::sim` and keeps each (device, ts) once, in delivery
//!    order, re-cut into batches of exactly `--batch` rows: the data every engine gets.
//! 2. Writes it as CSV (`devices.csv`, `cycles.csv`) for the peers.
//! 3. Ingests the same batches into a fresh hearth database (`SyncPolicy::Always`: each
//!    `append` returns after its log record is fsynced), then flushes and compacts.
//! 4. Reopens the database and times the questions (C1–C3 over the same random devices as
//!    the peers, D1–D7 and a filtered scan, median of `--runs`).
//! 5. Writes `params.json` (the devices and periods the peers must use) and `hearth.json`
//!    (hearth's figures and answers, which `peers.py` compares with every peer's).
//!
//! ```sh
//! cargo run --release -- --devices 10000 --days 365 --dir /tmp/peers
//! ```
//!
//! `hearth-peers sqlite --dir DIR --db FILE` times SQLite's C1–C3 from Rust instead (see
//! [`sqlite`]); `peers.py` runs it.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth::calendar;
use hearth::query::device::{last_weeks, AdviceConfig, HealthConfig};
use hearth::query::fleet::Bands;
use hearth::query::{Filter, FleetQuery, Plan, Source};
use hearth::schema::DAY_MS;
use hearth::sim::{Fleet, FleetConfig, DEFAULT_START_MS};
use hearth::{Attribute, Batch, Db, Dim, Grain, Options, Schema, SyncPolicy, Values};
use serde_json::{json, Value};

mod sqlite;

/// The `cycles` columns in the order of the CSV (after `ts` and `device_id`).
const COLUMNS: [&str; 11] = [
    "program",
    "temp_setting_c",
    "spin_setting_rpm",
    "load_kg",
    "duration_s",
    "energy_wh",
    "water_l",
    "fill_time_s",
    "max_vibration_g",
    "detergent_ml",
    "error_code",
];

struct Args {
    devices: usize,
    days: u32,
    seed: u64,
    dir: PathBuf,
    queries: usize,
    runs: usize,
    batch: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: hearth-peers [--devices N (10000)] [--days D (365)] [--seed S (42)] \
         [--queries Q (1000)] [--runs R (30)] [--batch ROWS (10000)] --dir DIR\n       \
         hearth-peers sqlite --dir DIR --db FILE"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        devices: 10_000,
        days: 365,
        seed: 42,
        dir: PathBuf::new(),
        queries: 1_000,
        runs: 30,
        batch: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(v) = it.next() else { usage() };
        let num = |v: &str| -> usize { v.parse().unwrap_or_else(|_| usage()) };
        match flag.as_str() {
            "--devices" => a.devices = num(&v),
            "--days" => a.days = u32::try_from(num(&v)).unwrap_or_else(|_| usage()),
            "--seed" => a.seed = num(&v) as u64,
            "--queries" => a.queries = num(&v),
            "--runs" => a.runs = num(&v).max(1),
            "--batch" => a.batch = num(&v).max(1),
            "--dir" => a.dir = PathBuf::from(v),
            _ => usage(),
        }
    }
    if a.dir.as_os_str().is_empty() || a.devices == 0 || a.days == 0 {
        usage()
    }
    a
}

fn empty_like(b: &Batch, cap: usize) -> Batch {
    Batch {
        stream: b.stream.clone(),
        ts: Vec::with_capacity(cap),
        device: Vec::with_capacity(cap),
        columns: b
            .columns
            .iter()
            .map(|(n, v)| {
                let v = match v {
                    Values::Float(_) => Values::Float(Vec::with_capacity(cap)),
                    Values::Int(_) => Values::Int(Vec::with_capacity(cap)),
                    Values::Text(_) => Values::Text(Vec::with_capacity(cap)),
                };
                (n.clone(), v)
            })
            .collect(),
    }
}

fn push_row(dst: &mut Batch, src: &Batch, i: usize) {
    dst.ts.push(src.ts[i]);
    dst.device.push(src.device[i].clone());
    for ((_, d), (_, s)) in dst.columns.iter_mut().zip(&src.columns) {
        match (d, s) {
            (Values::Float(d), Values::Float(s)) => d.push(s[i]),
            (Values::Int(d), Values::Int(s)) => d.push(s[i]),
            (Values::Text(d), Values::Text(s)) => d.push(s[i].clone()),
            _ => panic!("the simulator changed a column's type between batches"),
        }
    }
}

/// Calls `f` with each batch of the fleet's unique `cycles` rows (first delivery of each
/// (device, ts) kept), in delivery order, `rows` rows a batch (the last may be shorter).
fn unique_batches(fleet: &Fleet, rows: usize, mut f: impl FnMut(&Batch)) {
    let mut seen: HashSet<u64> = HashSet::new();
    let mut cur: Option<Batch> = None;
    for b in fleet.batches(rows) {
        if b.stream != "cycles" {
            continue;
        }
        for i in 0..b.len() {
            let dev: u64 = b.device[i]
                .get(3..)
                .and_then(|d| d.parse().ok())
                .expect("simulator serials are WM-NNNNNNNN");
            let ts = u64::try_from(b.ts[i]).expect("timestamps after 1970");
            assert!(ts < 1 << 42 && dev < 1 << 21, "key does not fit 63 bits");
            if !seen.insert(dev << 42 | ts) {
                continue;
            }
            let out = cur.get_or_insert_with(|| empty_like(&b, rows));
            push_row(out, &b, i);
            if out.len() == rows {
                f(out);
                cur = None;
            }
        }
    }
    if let Some(out) = cur {
        if !out.is_empty() {
            f(&out);
        }
    }
}

fn csv_field(s: &str) -> &str {
    assert!(
        !s.contains([',', '"', '\n']),
        "CSV field needs quoting: {s:?}"
    );
    s
}

fn write_csv(fleet: &Fleet, dir: &Path, rows: usize) -> u64 {
    let mut w = BufWriter::new(File::create(dir.join("devices.csv")).expect("devices.csv"));
    writeln!(
        w,
        "device_id,model,capacity_kg,firmware,installed_at,lat,lon,postcode,region,segment"
    )
    .expect("write");
    for d in fleet.devices() {
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{},{}",
            csv_field(&d.serial),
            csv_field(&d.model),
            d.capacity_kg,
            csv_field(&d.firmware),
            d.installed_at,
            d.lat,
            d.lon,
            csv_field(&d.postcode),
            csv_field(&d.region),
            csv_field(&d.segment)
        )
        .expect("write");
    }
    w.flush().expect("flush");
    let mut w = BufWriter::with_capacity(
        1 << 20,
        File::create(dir.join("cycles.csv")).expect("cycles.csv"),
    );
    writeln!(w, "ts,device_id,{}", COLUMNS.join(",")).expect("write");
    let mut n = 0u64;
    let mut line = String::new();
    unique_batches(fleet, rows, |b| {
        let names: Vec<&str> = b.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, COLUMNS, "the simulator's cycles columns changed");
        for i in 0..b.len() {
            use std::fmt::Write as _;
            line.clear();
            let _ = write!(line, "{},{}", b.ts[i], b.device[i]);
            for (_, v) in &b.columns {
                let _ = match v {
                    Values::Float(v) => write!(line, ",{}", v[i]),
                    Values::Int(v) => write!(line, ",{}", v[i]),
                    Values::Text(v) => write!(line, ",{}", csv_field(&v[i])),
                };
            }
            line.push('\n');
            w.write_all(line.as_bytes()).expect("write");
        }
        n += b.len() as u64;
    });
    w.flush().expect("flush");
    n
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Times `f(i)` for every device of the list, after one untimed pass whose answers are
/// kept (turned into JSON by `answer`, outside the timed calls); returns the figures (µs)
/// and the answers.
fn per_device<T>(
    n: usize,
    mut f: impl FnMut(usize) -> T,
    answer: impl Fn(&T) -> Value,
) -> (Value, Vec<Value>) {
    let answers: Vec<Value> = (0..n).map(|i| answer(&f(i))).collect();
    let mut t = Vec::with_capacity(n);
    for i in 0..n {
        let s = Instant::now();
        let r = f(i);
        t.push(s.elapsed());
        drop(std::hint::black_box(r));
    }
    t.sort();
    (
        json!({"p50_us": pct(&t, 0.5), "p99_us": pct(&t, 0.99), "calls": n}),
        answers,
    )
}

/// Runs `f` once untimed (its answer kept as JSON), then `runs` times; median in ms.
fn repeat<T>(
    runs: usize,
    mut f: impl FnMut() -> T,
    answer: impl Fn(&T) -> Value,
) -> (Value, Value) {
    let first = answer(&f());
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let s = Instant::now();
        let r = f();
        t.push(s.elapsed());
        drop(std::hint::black_box(r));
    }
    t.sort();
    (
        json!({"median_ms": pct(&t, 0.5) / 1e3, "runs": runs}),
        first,
    )
}

fn to_json<T: serde::Serialize>(x: &T) -> Value {
    serde_json::to_value(x).expect("serialize")
}

fn options(sync: SyncPolicy) -> Options {
    Options {
        schema: Some(Schema::washing_machine()),
        sync,
        ..Options::default()
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("sqlite") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        let get = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .map(PathBuf::from)
                .unwrap_or_else(|| usage())
        };
        sqlite::run(&get("--dir"), &get("--db"));
        return;
    }
    let a = parse_args();
    fs::create_dir_all(&a.dir).expect("create --dir");
    let fleet = Fleet::new(FleetConfig {
        devices: a.devices,
        days: a.days,
        seed: a.seed,
        samples: false,
        ..FleetConfig::default()
    });
    let (want, _) = fleet.expected_unique_rows();

    let t = Instant::now();
    let written = write_csv(&fleet, &a.dir, a.batch);
    assert_eq!(
        written, want,
        "unique rows written differ from the simulator's count"
    );
    eprintln!(
        "hearth-peers: {} devices x {} days: {written} unique cycle rows written as CSV in {:.1} s",
        a.devices,
        a.days,
        t.elapsed().as_secs_f64()
    );

    // Ingest: the same batches, durable appends, one writer.
    let path = a.dir.join("hearth");
    if path.exists() {
        fs::remove_dir_all(&path).expect("remove old database");
    }
    let db = Db::open(&path, options(SyncPolicy::Always)).expect("open");
    db.set_postcodes(&fleet.postcodes()).expect("postcodes");
    for chunk in fleet.devices().chunks(10_000) {
        db.register_all(chunk.to_vec()).expect("register");
    }
    let mut appends = Duration::ZERO;
    let mut rows = 0u64;
    let mut batches = 0u64;
    unique_batches(&fleet, a.batch, |b| {
        let s = Instant::now();
        let r = db.append(b).expect("append");
        appends += s.elapsed();
        assert_eq!(r.duplicates, 0, "unique rows reported as duplicates");
        rows += b.len() as u64;
        batches += 1;
    });
    let s = Instant::now();
    db.flush().expect("flush");
    db.compact().expect("compact");
    let finalize = s.elapsed();
    let info = db.info().expect("info");
    let cycles = &info.streams[0];
    assert_eq!(cycles.segment_rows, want);
    db.close().expect("close");
    let total_bytes = dir_bytes(&path);
    eprintln!(
        "hearth-peers: hearth ingested {rows} rows in {batches} batches: {:.0} rows/s (appends), \
         flush and compaction {:.1} s, {:.2} bytes/row on disk",
        rows as f64 / appends.as_secs_f64(),
        finalize.as_secs_f64(),
        total_bytes as f64 / rows as f64
    );

    // Questions, on the reopened database.
    let db = Db::open(&path, options(SyncPolicy::Never)).expect("reopen");
    let end = DEFAULT_START_MS + i64::from(a.days) * DAY_MS;
    let from = end - i64::from(a.days.min(365)) * DAY_MS;
    let serials: Vec<String> = (0..a.queries)
        .map(|i| {
            let k = (i.wrapping_mul(2_654_435_761) ^ 0x5bd1) % a.devices;
            fleet.devices()[k].serial.clone()
        })
        .collect();
    let advice = AdviceConfig::default();
    let health_cfg = HealthConfig::default();
    let (c2_from, c2_to) = last_weeks(end - 1, 13);
    let (_, c3_end) = last_weeks(end - 1, 0);
    let c3_end_day = calendar::day_of(c3_end);
    let recent_start = c3_end_day - 7 * i64::from(health_cfg.recent_weeks);
    let history_start = recent_start - 7 * i64::from(health_cfg.history_weeks);
    // D5's whole months covering the period.
    let m0 = Grain::Month.start(calendar::day_of(from));
    let (y, m, _) = calendar::civil_from_days(Grain::Month.start(calendar::day_of(end - 1)));
    let m1 = if m == 12 {
        calendar::days_from_civil(y + 1, 1, 1)
    } else {
        calendar::days_from_civil(y, m + 1, 1)
    };
    let bands = Bands::default();

    let mut figures = serde_json::Map::new();
    let mut answers = serde_json::Map::new();
    let (fig, ans) = per_device(
        serials.len(),
        |i| db.last_cycles(&serials[i], 10).expect("c1"),
        to_json,
    );
    figures.insert("C1".into(), fig);
    answers.insert("C1".into(), Value::Array(ans));
    let (fig, ans) = per_device(
        serials.len(),
        |i| db.usage(&serials[i], c2_from, c2_to, &advice).expect("c2"),
        to_json,
    );
    figures.insert("C2".into(), fig);
    answers.insert("C2".into(), Value::Array(ans));
    let (fig, ans) = per_device(
        serials.len(),
        |i| db.health(&serials[i], end - 1, &health_cfg).expect("c3"),
        to_json,
    );
    figures.insert("C3".into(), fig);
    answers.insert("C3".into(), Value::Array(ans));

    let mut record = |name: &str, (fig, ans): (Value, Value)| {
        eprintln!("hearth-peers: hearth {name}: {fig}");
        figures.insert(name.into(), fig);
        answers.insert(name.into(), ans);
    };
    let runs = a.runs;
    record(
        "D1",
        repeat(
            runs,
            || {
                db.cycles_by(
                    "program",
                    Attribute::Region,
                    Grain::Month,
                    from,
                    end,
                    Plan::Rollup,
                )
                .expect("d1")
            },
            to_json,
        ),
    );
    record(
        "D2",
        repeat(
            runs,
            || db.load_distribution(from, end, Plan::Rollup).expect("d2"),
            to_json,
        ),
    );
    record(
        "D3",
        repeat(
            runs,
            || {
                db.rare_programs(Attribute::Model, 0.02, from, end, Plan::Rollup)
                    .expect("d3")
            },
            to_json,
        ),
    );
    record(
        "D4",
        repeat(
            runs,
            || {
                db.resources_by_setting(from, end, Plan::Rollup)
                    .expect("d4")
            },
            to_json,
        ),
    );
    record(
        "D5",
        repeat(
            runs,
            || {
                db.usage_bands(Attribute::Segment, &bands, from, end, Plan::Rollup)
                    .expect("d5")
            },
            to_json,
        ),
    );
    record(
        "D6",
        repeat(
            runs,
            || {
                db.anova("energy_wh", Attribute::Segment, from, end, Plan::Rollup)
                    .expect("d6")
            },
            |r| to_json(&r.0),
        ),
    );
    record(
        "D7",
        repeat(
            runs,
            || {
                db.chi_square("program", Attribute::Region, from, end, Plan::Rollup)
                    .expect("d7")
            },
            |r| to_json(&r.0),
        ),
    );
    let mut scan = FleetQuery::count(
        "cycles",
        from,
        end,
        vec![Dim::column("program"), Dim::Attribute(Attribute::Segment)],
    );
    scan.filters.push(Filter::Range {
        column: "load_kg".into(),
        min: 5.0,
        max: 30.0,
    });
    scan.plan = Plan::Scan;
    record(
        "scan",
        repeat(
            runs.min(5),
            || db.fleet(&scan).expect("scan"),
            |r| {
                assert!(matches!(r.source, Source::Scan { .. }), "not a scan");
                to_json(r)
            },
        ),
    );

    let params = json!({
        "devices": a.devices,
        "days": a.days,
        "seed": a.seed,
        "rows": rows,
        "batch_rows": a.batch,
        "runs": a.runs,
        "serials": serials,
        "period": {"from_ms": from, "to_ms": end},
        "c2": {"from_ms": c2_from, "to_ms": c2_to},
        "c3": {"from_ms": history_start * DAY_MS, "to_ms": c3_end_day * DAY_MS,
               "recent_from_ms": recent_start * DAY_MS},
        "d3_max_share": 0.02,
        "d5": {"from_ms": m0 * DAY_MS, "to_ms": m1 * DAY_MS,
               "weeks": (m1 - m0) as f64 / 7.0,
               "light_below": bands.light_below, "heavy_above": bands.heavy_above},
        "scan_min_load_kg": 5.0,
    });
    let hearth = json!({
        "ingest": {
            "rows": rows,
            "batches": batches,
            "append_s": appends.as_secs_f64(),
            "rows_per_s": rows as f64 / appends.as_secs_f64(),
            "finalize_s": finalize.as_secs_f64(),
            "sync": "SyncPolicy::Always (each append returns after its log record is fsynced)",
        },
        "bytes": {
            "total": total_bytes,
            "segments": cycles.segment_bytes,
            "rollups": cycles.rollup_bytes,
            "per_row": total_bytes as f64 / rows as f64,
            "segments_per_row": cycles.segment_bytes as f64 / rows as f64,
        },
        "figures": figures,
        "answers": answers,
    });
    let write = |name: &str, v: &Value| {
        fs::write(
            a.dir.join(name),
            serde_json::to_string(v).expect("json") + "\n",
        )
        .expect("write json");
    };
    write("params.json", &params);
    write("hearth.json", &hearth);
    eprintln!("hearth-peers: wrote params.json and hearth.json");
}
