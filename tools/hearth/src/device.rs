//! `hearth device DB SERIAL last|summary|health|trace`: the per-device questions C1–C4.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use hearth::query::device::{last_weeks, CellValue, Health, Usage};
use hearth::{AdviceConfig, Db, DeviceRows, HealthConfig};

use crate::cli::{DeviceArgs, DeviceQuery, Format};
use crate::common::{self, decimals, stored_cell};
use crate::info::open_existing;
use crate::out::{self, Cell, Rows};
use crate::time::{format_date, format_rfc3339};

pub fn run(args: &DeviceArgs) -> Result<ExitCode> {
    let db = open_existing(&args.db)?;
    common::known_device(&db, &args.db, &args.serial)?;
    let mut stdout = std::io::stdout().lock();
    let w: &mut dyn Write = &mut stdout;
    match args.query {
        DeviceQuery::Last => last(&db, args, w)?,
        DeviceQuery::Summary => summary(&db, args, w)?,
        DeviceQuery::Health => health(&db, args, w)?,
        DeviceQuery::Trace => trace(&db, args, w)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn reject_options(args: &DeviceArgs, allowed: &[&str]) -> Result<()> {
    let given = [
        ("--from", args.range.from.is_some()),
        ("--to", args.range.to.is_some()),
        ("--cycle", args.cycle.is_some()),
    ];
    for (name, set) in given {
        if set && !allowed.contains(&name) {
            return Err(out::usage(format!(
                "{name} does not apply to `device ... {}`",
                query_name(args.query)
            )));
        }
    }
    Ok(())
}

fn query_name(q: DeviceQuery) -> &'static str {
    match q {
        DeviceQuery::Last => "last",
        DeviceQuery::Summary => "summary",
        DeviceQuery::Health => "health",
        DeviceQuery::Trace => "trace",
    }
}

/// C1: the last cycles, newest first.
fn last(db: &Db, args: &DeviceArgs, w: &mut dyn Write) -> Result<()> {
    reject_options(args, &[])?;
    let rows = db
        .last_cycles(&args.serial, args.n as usize)
        .with_context(|| format!("reading the last cycles of {}", args.serial))?;
    let def = common::stream(db, "cycles")?;
    let mut cols = vec!["ts".to_string()];
    cols.extend(def.columns.iter().map(|c| c.name.clone()));
    let mut out = Rows::new(w, args.format, cols)?;
    for r in &rows {
        let mut cells = vec![Cell::Text(format_rfc3339(r.ts))];
        for c in &def.columns {
            cells.push(match r.get(&c.name) {
                Some(CellValue::Text(t)) => Cell::category(t),
                Some(CellValue::Number(x)) => Cell::Num(*x, decimals(def, &c.name)),
                None => Cell::Null,
            });
        }
        out.row(cells)?;
    }
    out.finish()
}

/// C2: usage over whole weeks, with advice.
fn summary(db: &Db, args: &DeviceArgs, w: &mut dyn Write) -> Result<()> {
    reject_options(args, &["--from", "--to"])?;
    let to = match args.range.to {
        Some(t) => t,
        None => common::data_end(db)?,
    };
    // By default the last 13 weeks, but not weeks before the first data.
    let from = match args.range.from {
        Some(f) => f,
        None => {
            let first = common::data_span(db)?.map_or(i64::MIN, |(f, _)| f);
            last_weeks(to - 1, 13).0.max(first)
        }
    };
    if from >= to {
        return Err(out::usage("empty period: --from is not before --to"));
    }
    let u = db
        .usage(&args.serial, from, to, &AdviceConfig::default())
        .with_context(|| format!("summarising the usage of {}", args.serial))?;
    match args.format {
        Format::Table => write_usage(w, &u)?,
        Format::Json => out::write_json(w, &out::tool_json(serde_json::to_value(&u)?))?,
        Format::Csv => out::write_flat_csv(w, &out::tool_json(serde_json::to_value(&u)?))?,
    }
    Ok(())
}

/// The human form of C2: one card.
pub fn write_usage(w: &mut dyn Write, u: &Usage) -> Result<()> {
    writeln!(
        w,
        "{}: {} weeks from {} to {} (Monday to Sunday, UTC)",
        u.serial,
        u.weeks,
        hearth::calendar::format_day(u.from_day),
        hearth::calendar::format_day(u.to_day - 1)
    )?;
    writeln!(
        w,
        "  {} cycles, {:.1} a week; average load {}",
        out::count(u.cycles),
        u.cycles_per_week,
        match (u.mean_load_kg, u.load_share_of_capacity) {
            (Some(kg), Some(s)) => format!("{kg:.1} kg ({:.0}% of the drum)", s * 100.0),
            (Some(kg), None) => format!("{kg:.1} kg"),
            _ => "-".into(),
        }
    )?;
    writeln!(
        w,
        "  energy {:.1} kWh, water {:.0} l, detergent {} a cycle",
        u.energy_kwh,
        u.water_l,
        u.mean_detergent_ml
            .map_or("-".into(), |d| format!("{d:.0} ml"))
    )?;
    let top = |v: &[hearth::query::device::Share], suffix: &str| -> String {
        v.iter()
            .take(3)
            .map(|s| format!("{}{suffix} {:.0}%", s.name, s.share * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(w, "  programs: {}", top(&u.programs, ""))?;
    writeln!(w, "  temperatures: {}", top(&u.temperatures, " °C"))?;
    writeln!(
        w,
        "  usually started at: {}",
        u.usual_hours
            .iter()
            .map(|h| format!("{h:02}:00"))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    if u.advice.is_empty() {
        writeln!(w, "  advice: none, the machine is used well")?;
    }
    for a in &u.advice {
        writeln!(w, "  advice ({}): {}", a.kind, a.message)?;
    }
    w.flush()?;
    Ok(())
}

/// C3: the health verdict at the end of `--to` (default: the end of the data).
fn health(db: &Db, args: &DeviceArgs, w: &mut dyn Write) -> Result<()> {
    reject_options(args, &["--to"])?;
    let at = match args.range.to {
        Some(t) => t - 1,
        None => common::data_end(db)? - 1,
    };
    let h = db
        .health(&args.serial, at, &HealthConfig::default())
        .with_context(|| format!("judging the health of {}", args.serial))?;
    match args.format {
        Format::Table => write_health(w, &h)?,
        Format::Json => out::write_json(w, &out::tool_json(serde_json::to_value(&h)?))?,
        Format::Csv => out::write_flat_csv(w, &out::tool_json(serde_json::to_value(&h)?))?,
    }
    Ok(())
}

fn opt(v: Option<f64>, d: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.d$}"))
}

/// The human form of C3: verdict, evidence, the two trends and the errors.
pub fn write_health(w: &mut dyn Write, h: &Health) -> Result<()> {
    writeln!(
        w,
        "{}: {} (recent weeks up to {})",
        h.serial,
        h.verdict.name().to_uppercase(),
        hearth::calendar::format_day(h.to_day - 1)
    )?;
    for e in &h.evidence {
        writeln!(w, "  - {e}")?;
    }
    let mut t = Rows::new(
        w,
        Format::Table,
        vec![
            "measure".into(),
            "baseline".into(),
            "recent".into(),
            "recent / baseline".into(),
            "model median".into(),
        ],
    )?;
    for (name, tr, d) in [
        ("fill time (s)", &h.fill_time, 1),
        ("max vibration (g)", &h.vibration, 2),
    ] {
        t.row(vec![
            Cell::Text(name.into()),
            Cell::Text(opt(tr.baseline_mean, d)),
            Cell::Text(opt(tr.recent_mean, d)),
            Cell::Text(opt(tr.vs_baseline, 2)),
            Cell::Text(opt(tr.fleet_median, d)),
        ])?;
    }
    t.finish()?;
    if !h.errors.is_empty() {
        let list: Vec<String> = h
            .errors
            .iter()
            .map(|e| format!("{} ({} recent, {} earlier)", e.code, e.recent, e.earlier))
            .collect();
        writeln!(w, "  errors: {}", list.join(", "))?;
    }
    // The weekly means, oldest first: the drift at a glance.
    let weeks: Vec<String> = h
        .fill_time
        .weekly
        .iter()
        .rev()
        .take(12)
        .rev()
        .map(|m| format!("{:.0}", m.mean))
        .collect();
    if !weeks.is_empty() {
        writeln!(w, "  fill time by week (last 12): {}", weeks.join(" "))?;
    }
    let weeks: Vec<String> = h
        .vibration
        .weekly
        .iter()
        .rev()
        .take(12)
        .rev()
        .map(|m| format!("{:.2}", m.mean))
        .collect();
    if !weeks.is_empty() {
        writeln!(w, "  vibration by week (last 12): {}", weeks.join(" "))?;
    }
    w.flush()?;
    Ok(())
}

/// The start of the device's last wash that has 2 Hz samples.
fn last_traced_cycle(db: &Db, serial: &str) -> Result<Option<i64>> {
    let samples = db.scan_device("samples", serial, i64::MIN..i64::MAX, &["phase"])?;
    let Some(&last) = samples.ts.last() else {
        return Ok(None);
    };
    let cycles = db.scan_device(
        "cycles",
        serial,
        i64::MIN..last.saturating_add(1),
        &["duration_s"],
    )?;
    Ok(cycles.ts.last().copied())
}

/// C4: the 2 Hz samples of one wash.
fn trace(db: &Db, args: &DeviceArgs, w: &mut dyn Write) -> Result<()> {
    reject_options(args, &["--cycle"])?;
    let cycle = match args.cycle {
        Some(c) => c,
        None => match last_traced_cycle(db, &args.serial)? {
            Some(c) => c,
            None => bail!(
                "{} uploaded no 2 Hz samples: there is no trace to show",
                args.serial
            ),
        },
    };
    let rows = db.trace(&args.serial, cycle).with_context(|| {
        format!(
            "tracing the wash of {} that started at {} (`hearth device DB {} last` lists starts)",
            args.serial,
            format_rfc3339(cycle),
            args.serial
        )
    })?;
    let def = common::stream(db, "samples")?;
    write_rows(w, args.format, def, &args.serial, &rows, None)?;
    if args.format == Format::Table {
        writeln!(
            w,
            "{} samples of the wash that started at {} ({})",
            out::count(rows.len() as u64),
            format_rfc3339(cycle),
            format_date(cycle)
        )?;
    }
    Ok(())
}

/// Writes raw rows of one device: `ts`, `device_id`, then every column.
pub fn write_rows(
    w: &mut dyn Write,
    format: Format,
    def: &hearth::StreamDef,
    serial: &str,
    rows: &DeviceRows,
    limit: Option<u64>,
) -> Result<u64> {
    let mut out = Rows::new(w, format, row_columns(def))?;
    let n = push_rows(&mut out, def, serial, rows, limit)?;
    out.finish()?;
    Ok(n)
}

/// `ts`, `device_id` and the stream's columns: the header `hearth import` reads.
pub fn row_columns(def: &hearth::StreamDef) -> Vec<String> {
    let mut cols = vec!["ts".to_string(), "device_id".to_string()];
    cols.extend(def.columns.iter().map(|c| c.name.clone()));
    cols
}

/// Adds a device's rows (all columns, in schema order) to an answer, at most `limit` in
/// all. Returns the rows added.
pub fn push_rows(
    out: &mut Rows<'_>,
    def: &hearth::StreamDef,
    serial: &str,
    rows: &DeviceRows,
    limit: Option<u64>,
) -> Result<u64> {
    let mut n = 0;
    for i in 0..rows.len() {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let mut cells = vec![
            Cell::Text(format_rfc3339(rows.ts[i])),
            Cell::Text(serial.to_string()),
        ];
        for (ci, col) in rows.columns.iter().enumerate() {
            cells.push(col.get(i).map_or(Cell::Null, |&v| stored_cell(def, ci, v)));
        }
        out.row(cells)?;
        n += 1;
    }
    Ok(n)
}
