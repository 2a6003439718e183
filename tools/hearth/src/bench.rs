//! `hearth bench`: times the per-device (C1–C3) and fleet (D1–D8) questions in process on an
//! existing database, so anyone can measure their own data: per question, `runs` calls
//! (per-device questions each about a device drawn at random, the same draw for every
//! question), after one untimed call; p50 and p99 of the calls.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hearth::query::device::last_weeks;
use hearth::query::fleet::Bands;
use hearth::{AdviceConfig, Attribute, Db, Grain, HealthConfig, Plan};

use crate::cli::{BenchArgs, Format};
use crate::common::data_span;
use crate::info::open_existing;
use crate::out::{self, Cell, Rows};

/// The questions, in the order they are timed.
pub const QUERIES: [&str; 11] = [
    "c1", "c2", "c3", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8",
];

const DAY_MS: i64 = 86_400_000;

/// SplitMix64: the device draw.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Asks question `q` once; `i` picks the device of a per-device question.
fn ask(
    db: &Db,
    q: &str,
    serials: &[String],
    i: usize,
    (from, end, weeks): (i64, i64, u32),
) -> Result<()> {
    let serial = &serials[i % serials.len()];
    let plan = Plan::Auto;
    match q {
        "c1" => drop(db.last_cycles(serial, 10)?),
        "c2" => {
            let (f, t) = last_weeks(end - 1, weeks);
            drop(db.usage(serial, f, t, &AdviceConfig::default())?);
        }
        "c3" => drop(db.health(serial, end - 1, &HealthConfig::default())?),
        "d1" => drop(db.cycles_by("program", Attribute::Region, Grain::Month, from, end, plan)?),
        "d2" => drop(db.load_distribution(from, end, plan)?),
        "d3" => drop(db.rare_programs(Attribute::Model, 0.02, from, end, plan)?),
        "d4" => drop(db.resources_by_setting(from, end, plan)?),
        "d5" => drop(db.usage_bands(Attribute::Segment, &Bands::default(), from, end, plan)?),
        "d6" => drop(db.anova("energy_wh", Attribute::Segment, from, end, plan)?),
        "d7" => drop(db.chi_square("program", Attribute::Region, from, end, plan)?),
        "d8" => drop(db.time_of_day(from, end, plan)?),
        other => return Err(out::usage(format!("unknown question '{other}'"))),
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

pub fn run(args: &BenchArgs) -> Result<ExitCode> {
    let queries: Vec<String> = match &args.queries {
        Some(list) => list.split(',').map(|q| q.trim().to_lowercase()).collect(),
        None => QUERIES.iter().map(|q| q.to_string()).collect(),
    };
    if let Some(bad) = queries.iter().find(|q| !QUERIES.contains(&q.as_str())) {
        return Err(out::usage(format!(
            "unknown question '{bad}' in --queries (known: {})",
            QUERIES.join(",")
        )));
    }
    let db = open_existing(&args.db)?;
    let Some((first, end)) = data_span(&db)? else {
        anyhow::bail!(
            "{}: the database holds no cycles: nothing to time",
            args.db.display()
        );
    };
    // The last year of the data (or all of it when shorter).
    let from = first.max(end - 365 * DAY_MS);
    let n = db.device_count();
    if n == 0 {
        anyhow::bail!("{}: no registered devices", args.db.display());
    }
    let runs = usize::try_from(args.runs).unwrap_or(usize::MAX).max(1);
    let serials: Vec<String> = (0..runs)
        .filter_map(|i| db.device((mix(args.seed ^ i as u64) % n as u64) as u32))
        .map(|d| d.serial)
        .collect();
    let mut w = std::io::stdout().lock();
    let columns = ["query", "runs", "p50_us", "p99_us"];
    let mut rows = Rows::new(&mut w, args.format, columns.map(String::from).to_vec())?;
    for q in &queries {
        ask(&db, q, &serials, 0, (from, end, args.c2_weeks))
            .with_context(|| format!("question {q}"))?;
        let mut times = Vec::with_capacity(runs);
        for i in 0..runs {
            let t = Instant::now();
            ask(&db, q, &serials, i, (from, end, args.c2_weeks))
                .with_context(|| format!("question {q}"))?;
            times.push(t.elapsed());
        }
        times.sort();
        rows.row(vec![
            Cell::Text(q.clone()),
            Cell::Count(times.len() as u64),
            Cell::Num(percentile(&times, 0.5), 2),
            Cell::Num(percentile(&times, 0.99), 2),
        ])?;
    }
    rows.finish()?;
    if args.format == Format::Table {
        eprintln!(
            "per-device questions over {} devices drawn at random (seed {}); fleet questions over {} to {}",
            out::count(serials.len() as u64),
            args.seed,
            crate::time::format_date(from),
            crate::time::format_date(end - 1),
        );
    }
    Ok(ExitCode::SUCCESS)
}
