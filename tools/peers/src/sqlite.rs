//! SQLite's per-device questions (C1–C3) timed from Rust with rusqlite, on the database
//! `peers.py` built, linked to the system's libsqlite3 (the library Python's `sqlite3` uses):
//! SQLite's cost without an interpreter between the caller and the library, in process like
//! hearth. `peers.py` runs it as `hearth-peers sqlite --dir DIR --db FILE` after writing
//! `DIR/sqlite-in.json` (the SQL, the devices' models and the models' fleet medians); it
//! prints the figures and the answers as JSON on stdout, and `peers.py` checks the answers.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags};
use serde_json::{json, Value};

/// One `cycles` row as C1 returns it.
struct Cycle {
    ts: i64,
    program: String,
    temp: i64,
    spin: i64,
    load: f64,
    duration: i64,
    energy: i64,
    water: f64,
    fill: i64,
    vibration: f64,
    detergent: i64,
    error: String,
}

/// C2's summary, folded from the grouped rows.
#[derive(Default)]
struct Usage {
    cycles: i64,
    load: f64,
    energy: i64,
    water: f64,
    programs: HashMap<String, i64>,
    temperatures: HashMap<i64, i64>,
    /// The grouped rows, kept for the answer check.
    rows: Vec<(String, i64, i64, f64, i64, f64)>,
}

/// C3's inputs: weekly (week, cycles, mean fill, mean vibration) and the model's medians.
struct Health {
    weeks: Vec<(i64, i64, f64, f64)>,
    medians: Option<(f64, f64)>,
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// One untimed pass (its answers kept), then one timed pass; p50 and p99 in µs.
fn per_device<T>(
    serials: &[String],
    mut f: impl FnMut(&str) -> T,
    answer: impl Fn(&T) -> Value,
) -> (Value, Value) {
    let answers: Vec<Value> = serials.iter().map(|s| answer(&f(s))).collect();
    let mut t = Vec::with_capacity(serials.len());
    for s in serials {
        let start = Instant::now();
        let r = f(s);
        t.push(start.elapsed());
        drop(std::hint::black_box(r));
    }
    t.sort();
    (
        json!({"p50_us": pct(&t, 0.5), "p99_us": pct(&t, 0.99), "calls": t.len()}),
        Value::Array(answers),
    )
}

pub fn run(dir: &Path, db: &Path) {
    let params = read_json(&dir.join("params.json"));
    let input = read_json(&dir.join("sqlite-in.json"));
    let serials: Vec<String> = params["serials"]
        .as_array()
        .expect("serials")
        .iter()
        .map(|s| s.as_str().expect("serial").to_string())
        .collect();
    let range = |k: &str| {
        (
            params[k]["from_ms"].as_i64().expect("from_ms"),
            params[k]["to_ms"].as_i64().expect("to_ms"),
        )
    };
    let (c2_from, c2_to) = range("c2");
    let (c3_from, c3_to) = range("c3");
    let sql = |k: &str| input["sql"][k].as_str().expect("sql").to_string();
    let models: HashMap<String, String> = input["models"]
        .as_object()
        .expect("models")
        .iter()
        .map(|(d, m)| (d.clone(), m.as_str().expect("model").to_string()))
        .collect();
    let medians: HashMap<String, (f64, f64)> = input["medians"]
        .as_object()
        .expect("medians")
        .iter()
        .map(|(m, v)| {
            let x = |i: usize| v[i].as_f64().expect("median");
            (m.clone(), (x(0), x(1)))
        })
        .collect();

    let con = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the SQLite database");
    con.execute_batch("PRAGMA cache_size=-1048576")
        .expect("cache_size");
    let version: String = con
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .expect("version");
    let mut c1 = con.prepare(&sql("C1")).expect("prepare C1");
    let mut c2 = con.prepare(&sql("C2")).expect("prepare C2");
    let mut c3 = con.prepare(&sql("C3")).expect("prepare C3");

    let (f1, a1) = per_device(
        &serials,
        |dev| {
            c1.query_map(params![dev], |r| {
                Ok(Cycle {
                    ts: r.get(0)?,
                    program: r.get(1)?,
                    temp: r.get(2)?,
                    spin: r.get(3)?,
                    load: r.get(4)?,
                    duration: r.get(5)?,
                    energy: r.get(6)?,
                    water: r.get(7)?,
                    fill: r.get(8)?,
                    vibration: r.get(9)?,
                    detergent: r.get(10)?,
                    error: r.get(11)?,
                })
            })
            .expect("C1")
            .collect::<Result<Vec<Cycle>, _>>()
            .expect("C1 rows")
        },
        |rows| {
            Value::Array(
                rows.iter()
                    .map(|c| {
                        json!([
                            c.ts,
                            c.program,
                            c.temp,
                            c.spin,
                            c.load,
                            c.duration,
                            c.energy,
                            c.water,
                            c.fill,
                            c.vibration,
                            c.detergent,
                            c.error
                        ])
                    })
                    .collect(),
            )
        },
    );
    let (f2, a2) = per_device(
        &serials,
        |dev| {
            let mut u = Usage::default();
            let mut rows = c2.query(params![dev, c2_from, c2_to]).expect("C2");
            while let Some(r) = rows.next().expect("C2 row") {
                let row: (String, i64, i64, f64, i64, f64) = (
                    r.get(0).expect("program"),
                    r.get(1).expect("temp"),
                    r.get(2).expect("count"),
                    r.get(3).expect("load"),
                    r.get(4).expect("energy"),
                    r.get(5).expect("water"),
                );
                u.cycles += row.2;
                u.load += row.3;
                u.energy += row.4;
                u.water += row.5;
                *u.programs.entry(row.0.clone()).or_default() += row.2;
                *u.temperatures.entry(row.1).or_default() += row.2;
                u.rows.push(row);
            }
            u
        },
        |u| {
            json!(u
                .rows
                .iter()
                .map(|r| json!([r.0, r.1, r.2, r.3, r.4, r.5]))
                .collect::<Vec<_>>())
        },
    );
    let (f3, a3) = per_device(
        &serials,
        |dev| {
            let weeks = c3
                .query_map(params![dev, c3_from, c3_to], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .expect("C3")
                .collect::<Result<Vec<_>, _>>()
                .expect("C3 rows");
            let medians = models.get(dev).and_then(|m| medians.get(m)).copied();
            Health { weeks, medians }
        },
        |h| {
            json!({
                "weeks": h.weeks.iter().map(|w| json!([w.0, w.1, w.2, w.3])).collect::<Vec<_>>(),
                "medians": h.medians.map(|m| json!([m.0, m.1])),
            })
        },
    );
    let out = json!({
        "version": format!("SQLite {version} (Rust, rusqlite)"),
        "figures": {"C1": f1, "C2": f2, "C3": f3},
        "answers": {"C1": a1, "C2": a2, "C3": a3},
    });
    println!("{out}");
}
