//! `hearth demo`: simulate a small fleet with `hearth::sim`, ingest it, and tell what hearth
//! did with it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use hearth::query::device::{last_weeks, AdviceConfig, Health, HealthConfig, Usage};
use hearth::query::fleet::{Bands, LoadDistribution, RareProgram, UsageBands};
use hearth::sim::{Fleet, FleetConfig};
use hearth::{
    Anova, Attribute, ChiSquare, ColumnKind, Db, DeviceInfo, DeviceRows, Grain, Info, Options,
    Plan, Schema, StreamDef,
};
use serde::Serialize;

use crate::cli::{DemoArgs, Format};
use crate::{info, out, time};

/// The file that marks a directory as a database this command created (and may replace).
const MARKER: &str = "HEARTH_DEMO";
/// Rows per batch handed to `Db::append`.
const BATCH_ROWS: usize = 10_000;
/// Cycles shown for the example device.
const LAST_CYCLES: usize = 5;

#[derive(Debug, Serialize)]
struct StreamStory {
    stream: String,
    rows_delivered: u64,
    rows_stored: u64,
    duplicates_dropped: u64,
    expected_unique: u64,
}

#[derive(Debug, Serialize)]
struct Story {
    devices: u64,
    days: u64,
    seed: u64,
    streams: Vec<StreamStory>,
    ingest_seconds: f64,
    rows_per_second: f64,
    flush_seconds: f64,
    compact_seconds: f64,
    windows_compacted: usize,
    example_device: Option<DeviceInfo>,
    /// The example device's last cycles: column name to value (text or number).
    last_cycles: Vec<serde_json::Map<String, serde_json::Value>>,
    answers: Answers,
    info: Info,
}

/// The three families of questions, answered from the rollups (see `hearth::query`).
#[derive(Debug, Serialize)]
struct Answers {
    /// Customer care: the example device's last 13 weeks, with advice.
    usage: Option<Usage>,
    /// Product support: the example device's health.
    health: Option<Health>,
    /// Product support: devices whose verdict is watch or service.
    flagged_devices: Vec<(String, String, Vec<String>)>,
    /// Design: loads per drum capacity.
    loads: LoadDistribution,
    /// Design: programs under 2% of a model's cycles.
    rare_programs: Vec<RareProgram>,
    /// Business intelligence: usage bands by segment.
    bands: UsageBands,
    /// Business intelligence: energy per cycle across segments.
    anova_energy_by_segment: Option<Anova>,
    /// Business intelligence: program choice against region.
    chi_square_program_by_region: Option<ChiSquare>,
    /// Microseconds each per-device answer took (usage, health), and milliseconds for the
    /// fleet ones together.
    timing: (f64, f64, f64),
}

fn answers(db: &Db, fleet: &Fleet, example: Option<&DeviceInfo>) -> Result<Answers> {
    let start = fleet.config().start_ms;
    let end = start + i64::from(fleet.config().days) * 86_400_000;
    let (from13, to13) = last_weeks(end - 1, 13);
    let t = Instant::now();
    let usage = match example {
        Some(d) => Some(db.usage(&d.serial, from13, to13, &AdviceConfig::default())?),
        None => None,
    };
    let usage_us = t.elapsed().as_secs_f64() * 1e6;
    let cfg = HealthConfig::default();
    let t = Instant::now();
    let health = match example {
        Some(d) => Some(db.health(&d.serial, end - 1, &cfg)?),
        None => None,
    };
    let health_us = t.elapsed().as_secs_f64() * 1e6;
    let snapshot = db.fleet_snapshot(end - 1, &cfg)?;
    let flagged_devices = snapshot
        .flagged
        .iter()
        .map(|h| {
            (
                h.serial.clone(),
                h.verdict.name().to_string(),
                h.evidence.clone(),
            )
        })
        .collect();
    let t = Instant::now();
    let loads = db.load_distribution(start, end, Plan::Auto)?;
    let rare_programs = db.rare_programs(Attribute::Model, 0.02, start, end, Plan::Auto)?;
    let bands = db.usage_bands(
        Attribute::Segment,
        &Bands::default(),
        start,
        end,
        Plan::Auto,
    )?;
    // A statistic needs at least two groups with data: tiny fleets may not have them.
    let anova = db
        .anova("energy_wh", Attribute::Segment, start, end, Plan::Auto)
        .ok()
        .map(|(a, _)| a);
    let chi = db
        .chi_square("program", Attribute::Region, start, end, Plan::Auto)
        .ok()
        .map(|(c, _)| c);
    let fleet_ms = t.elapsed().as_secs_f64() * 1e3;
    // One D1 query for the timing line's sake is part of `fleet_ms` above in spirit; run it
    // too so the demo exercises the month buckets.
    let _ = db.cycles_by(
        "program",
        Attribute::Region,
        Grain::Month,
        start,
        end,
        Plan::Auto,
    )?;
    Ok(Answers {
        usage,
        health,
        flagged_devices,
        loads,
        rare_programs,
        bands,
        anova_energy_by_segment: anova,
        chi_square_program_by_region: chi,
        timing: (usage_us, health_us, fleet_ms),
    })
}

/// `= 3.1e-5`, or `< 1e-300` when the p-value underflows.
fn p_value(p: f64) -> String {
    if p < 1e-300 {
        "< 1e-300".into()
    } else {
        format!("= {p:.2e}")
    }
}

fn write_answers(w: &mut impl Write, a: &Answers, example: Option<&DeviceInfo>) -> Result<()> {
    if let (Some(u), Some(d)) = (&a.usage, example) {
        writeln!(
            w,
            "\nCustomer care, {} over the last {} weeks ({:.0} µs): {:.1} cycles a week, average load {}, {:.1} kWh, {:.0} l of water; mostly {} at {} °C, usually started around {}:00 UTC.",
            d.serial,
            u.weeks,
            a.timing.0,
            u.cycles_per_week,
            match (u.mean_load_kg, u.load_share_of_capacity) {
                (Some(kg), Some(share)) => format!("{kg:.1} kg ({:.0}% of the drum)", share * 100.0),
                (Some(kg), None) => format!("{kg:.1} kg"),
                _ => "-".into(),
            },
            u.energy_kwh,
            u.water_l,
            u.programs.first().map_or("-", |p| p.name.as_str()),
            u.temperatures.first().map_or("-", |p| p.name.as_str()),
            u.usual_hours.first().map_or("-".into(), |h| h.to_string()),
        )?;
        for adv in &u.advice {
            writeln!(w, "  advice ({}): {}", adv.kind, adv.message)?;
        }
    }
    if let Some(h) = &a.health {
        writeln!(
            w,
            "Product support, {} health ({:.0} µs): {}{}",
            h.serial,
            a.timing.1,
            h.verdict.name(),
            if h.evidence.is_empty() {
                String::new()
            } else {
                format!(": {}", h.evidence.join("; "))
            }
        )?;
    }
    writeln!(
        w,
        "Proactive support: {} of the fleet's machines need a look (watch or service){}",
        a.flagged_devices.len(),
        a.flagged_devices
            .first()
            .map(|(s, v, e)| format!(", e.g. {s} ({v}): {}", e.join("; ")))
            .unwrap_or_default()
    )?;
    writeln!(
        w,
        "\nProduct design (fleet answers from rollups, {:.2} ms together with the BI ones below):",
        a.timing.2
    )?;
    let mut caps: Vec<_> = a.loads.by_capacity.iter().collect();
    caps.sort_by(|x, y| {
        let kg = |s: &str| s.parse::<f64>().unwrap_or(f64::MAX);
        kg(&x.capacity_kg).total_cmp(&kg(&y.capacity_kg))
    });
    for c in caps {
        writeln!(
            w,
            "  {} kg drums: {} cycles, average load {}, {:.1}% of cycles at 90% of capacity or more",
            c.capacity_kg,
            out::count(c.cycles),
            c.mean_load_kg.map_or("-".into(), |m| format!("{m:.1} kg")),
            c.share_at_least_90pct * 100.0
        )?;
    }
    let rare: Vec<String> = a
        .rare_programs
        .iter()
        .filter(|r| r.cycles > 0)
        .take(6)
        .map(|r| format!("{} on {} ({:.1}%)", r.program, r.group, r.share * 100.0))
        .collect();
    if !rare.is_empty() {
        writeln!(
            w,
            "  rarely used programs (< 2% of a model's cycles): {}",
            rare.join(", ")
        )?;
    }
    writeln!(w, "\nBusiness intelligence:")?;
    let bands: Vec<String> = a
        .bands
        .groups
        .iter()
        .take(8)
        .map(|g| format!("{} {}/{}/{}", g.group, g.light, g.medium, g.heavy))
        .collect();
    writeln!(
        w,
        "  light/medium/heavy users (< 3, 3-7, > 7 cycles a week) by segment: {}",
        bands.join(", ")
    )?;
    if let Some(an) = &a.anova_energy_by_segment {
        writeln!(
            w,
            "  energy per cycle across segments: one-way ANOVA F = {:.2} (df {}, {}), p {}",
            an.f,
            an.df_between,
            an.df_within,
            p_value(an.p_value)
        )?;
    }
    if let Some(c) = &a.chi_square_program_by_region {
        writeln!(
            w,
            "  program choice against region: chi-square = {:.1} (df {}), p {}",
            c.statistic,
            c.df,
            p_value(c.p_value)
        )?;
    }
    Ok(())
}

/// Makes `dir` ready for a fresh demo database: absent or empty is fine; an earlier demo
/// database (marker and manifest) is removed; anything else is refused.
fn prepare(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = dir
            .read_dir()
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            if !(dir.join(MARKER).is_file() && dir.join("MANIFEST").is_file()) {
                bail!(
                    "{} exists and is not a database made by `hearth demo`; choose another directory",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir).with_context(|| {
                format!("cannot remove the old demo database {}", dir.display())
            })?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "created by `hearth demo`; `hearth demo` may replace this directory\n",
    )
    .with_context(|| format!("cannot write {}", dir.join(MARKER).display()))?;
    Ok(())
}

/// One stored value as a person reads it: category names, numbers at the column's decimals.
fn cell(def: &StreamDef, col: usize, stored: i64) -> serde_json::Value {
    let Some(c) = def.columns.get(col) else {
        return serde_json::Value::Null;
    };
    match &c.kind {
        ColumnKind::Categorical { .. } => c
            .category_name(stored)
            .map_or(serde_json::Value::Null, |n| n.into()),
        ColumnKind::Numeric { .. } => c.decode_f64(stored).into(),
    }
}

fn cell_text(def: &StreamDef, col: usize, stored: i64) -> String {
    match def.columns.get(col) {
        Some(c) => match &c.kind {
            ColumnKind::Categorical { .. } => c.category_name(stored).unwrap_or("?").to_string(),
            ColumnKind::Numeric { decimals, .. } => {
                format!("{:.*}", usize::from(*decimals), c.decode_f64(stored))
            }
        },
        None => String::new(),
    }
}

/// The last `n` rows of a scan, as JSON objects with `ts` first.
fn rows_as_json(
    def: &StreamDef,
    rows: &DeviceRows,
    n: usize,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let start = rows.len().saturating_sub(n);
    (start..rows.len())
        .map(|r| {
            let mut m = serde_json::Map::new();
            m.insert("ts".into(), time::format_rfc3339(rows.ts[r]).into());
            for (ci, c) in def.columns.iter().enumerate() {
                let v = rows
                    .columns
                    .get(ci)
                    .and_then(|col| col.get(r))
                    .copied()
                    .unwrap_or(0);
                m.insert(c.name.clone(), cell(def, ci, v));
            }
            m
        })
        .collect()
}

fn rows_as_table(def: &StreamDef, rows: &DeviceRows, n: usize) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec!["ts".to_string()];
    header.extend(def.columns.iter().map(|c| c.name.clone()));
    t.set_header(header);
    for r in rows.len().saturating_sub(n)..rows.len() {
        let mut line = vec![time::format_rfc3339(rows.ts[r])];
        for ci in 0..def.columns.len() {
            let v = rows
                .columns
                .get(ci)
                .and_then(|col| col.get(r))
                .copied()
                .unwrap_or(0);
            line.push(cell_text(def, ci, v));
        }
        t.add_row(line);
    }
    for (ci, c) in def.columns.iter().enumerate() {
        if !c.is_categorical() {
            if let Some(col) = t.column_mut(ci + 1) {
                col.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    t
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    let dir = &args.dir;
    prepare(dir)?;
    let schema = Schema::washing_machine();
    let db = Db::open(
        dir,
        Options {
            schema: Some(schema.clone()),
            ..Options::default()
        },
    )
    .with_context(|| format!("cannot create the demo database in {}", dir.display()))?;

    let cfg = FleetConfig {
        devices: args.devices as usize,
        days: args.days as u32,
        seed: args.seed,
        samples: true,
        // One machine in twenty uploads 2 Hz traces of some washes: enough samples to see
        // how they compress, few enough for the demo to take seconds.
        sample_device_share: 0.05,
        ..FleetConfig::default()
    };
    let fleet = Fleet::new(cfg);
    let postcodes = fleet.postcodes();
    db.set_postcodes(&postcodes)?;
    db.register_all(fleet.devices().to_vec())
        .context("registering the simulated devices")?;

    let (exp_cycles, exp_samples) = fleet.expected_unique_rows();
    let bar = out::progress(exp_cycles + exp_samples, args.quiet, "ingest", false);
    let names: Vec<String> = schema.streams.iter().map(|s| s.name.clone()).collect();
    let mut delivered = vec![0u64; names.len()];
    let mut stored = vec![0u64; names.len()];
    let mut dups = vec![0u64; names.len()];
    let started = Instant::now();
    for batch in fleet.batches(BATCH_ROWS) {
        let report = db
            .append(&batch)
            .with_context(|| format!("appending a simulated '{}' batch", batch.stream))?;
        if let Some(i) = names.iter().position(|n| *n == batch.stream) {
            delivered[i] += batch.len() as u64;
            stored[i] += report.accepted;
            dups[i] += report.duplicates;
        }
        bar.inc(report.accepted);
    }
    let ingest = started.elapsed();
    bar.finish_and_clear();
    let t = Instant::now();
    db.flush().context("flushing the demo database")?;
    let flush = t.elapsed();
    let t = Instant::now();
    let windows_compacted = db.compact().context("compacting the demo database")?;
    let compact = t.elapsed();
    let info_now = db.info()?;

    // The example: the first simulated device, its last cycles.
    let cycles_def = schema
        .stream("cycles")
        .context("the preset has a cycles stream")?;
    let example = fleet.devices().first().cloned();
    let last = match &example {
        Some(d) => Some(db.scan_device("cycles", &d.serial, i64::MIN..i64::MAX, &[])?),
        None => None,
    };

    let answers = answers(&db, &fleet, example.as_ref())?;
    let total_delivered: u64 = delivered.iter().sum();
    let story = Story {
        devices: args.devices,
        days: args.days,
        seed: args.seed,
        streams: names
            .iter()
            .enumerate()
            .map(|(i, n)| StreamStory {
                stream: n.clone(),
                rows_delivered: delivered[i],
                rows_stored: stored[i],
                duplicates_dropped: dups[i],
                expected_unique: if n == "cycles" {
                    exp_cycles
                } else {
                    exp_samples
                },
            })
            .collect(),
        ingest_seconds: secs(ingest),
        rows_per_second: total_delivered as f64 / secs(ingest).max(1e-9),
        flush_seconds: secs(flush),
        compact_seconds: secs(compact),
        windows_compacted,
        example_device: example.clone(),
        last_cycles: last
            .as_ref()
            .map(|r| rows_as_json(cycles_def, r, LAST_CYCLES))
            .unwrap_or_default(),
        answers,
        info: info_now,
    };

    let mut w = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut w, &story)?;
            writeln!(w)?;
        }
        Format::Csv => out::write_flat_csv(&mut w, &serde_json::to_value(&story)?)?,
        Format::Table => {
            writeln!(
                w,
                "Simulated {} washing machines over {} days (seed {}) into {}\n",
                out::count(story.devices),
                story.days,
                story.seed,
                dir.display()
            )?;
            info::write_table(&mut w, &story.info)?;
            writeln!(w)?;
            for s in &story.streams {
                let check = if s.rows_stored == s.expected_unique {
                    "= the simulator's unique rows".to_string()
                } else {
                    format!(
                        "(simulator expected {} unique)",
                        out::count(s.expected_unique)
                    )
                };
                writeln!(
                    w,
                    "{:>8}: {} rows delivered, {} stored {check}, {} duplicates dropped (at-least-once delivery)",
                    s.stream,
                    out::count(s.rows_delivered),
                    out::count(s.rows_stored),
                    out::count(s.duplicates_dropped),
                )?;
            }
            writeln!(
                w,
                "  ingest: {} rows in {:.2} s = {} rows/s (batches of {}, each fsynced to the log)",
                out::count(total_delivered),
                story.ingest_seconds,
                out::count(story.rows_per_second as u64),
                out::count(BATCH_ROWS as u64),
            )?;
            writeln!(
                w,
                "   flush: {:.2} s to segments; compaction: {}",
                story.flush_seconds,
                if story.windows_compacted == 0 {
                    "nothing to merge (one segment per window)".to_string()
                } else {
                    format!(
                        "{} in {:.2} s",
                        out::plural(story.windows_compacted as u64, "window"),
                        story.compact_seconds
                    )
                },
            )?;
            if let (Some(d), Some(rows)) = (&example, &last) {
                writeln!(
                    w,
                    "\nOne machine, {}: {} ({} kg, firmware {}) in {} {}, segment {}; {}, the last {LAST_CYCLES} cycles:",
                    d.serial,
                    d.model,
                    d.capacity_kg,
                    d.firmware,
                    d.postcode,
                    d.region,
                    d.segment,
                    out::plural(rows.len() as u64, "cycle"),
                )?;
                writeln!(w, "{}", rows_as_table(cycles_def, rows, LAST_CYCLES))?;
            }
            write_answers(&mut w, &story.answers, example.as_ref())?;
            writeln!(
                w,
                "\nNext: `hearth info {0} --format json`, `hearth verify {0}`",
                dir.display()
            )?;
        }
    }
    w.flush()?;
    Ok(ExitCode::SUCCESS)
}
