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
use hearth::sim::{Fault, Fleet, FleetConfig};
use hearth::{
    Anova, Attribute, ChiSquare, ColumnKind, Db, DeviceInfo, DeviceRows, Grain, Info, Options,
    Plan, Schema, StreamDef, Verdict,
};
use serde::Serialize;

use crate::cli::{DemoArgs, Format};
use crate::{device, fleet, info, out, time};

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
    /// Customer care: the household whose card is shown (a healthy machine with advice,
    /// when there is one).
    household: Option<String>,
    /// Customer care: its last 13 weeks, with advice.
    usage: Option<Usage>,
    /// Product support: its health.
    health: Option<Health>,
    /// Product support: devices whose verdict is watch or service.
    flagged_devices: Vec<(String, String, Vec<String>)>,
    /// Product support: the machine shown as found before its owner calls, with its health
    /// and the fault the simulator planted in it.
    failing: Option<Failing>,
    /// Product support: the flags against the simulator's ground truth.
    faults: FaultCheck,
    /// Business intelligence: cycles by program and region (D1).
    programs_by_region: Vec<RegionPrograms>,
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

/// A flagged machine with a planted fault.
#[derive(Debug, Serialize)]
struct Failing {
    health: Health,
    /// `inlet_valve` or `worn_bearing`.
    planted_fault: String,
    /// When the simulator started the fault (RFC 3339).
    fault_onset: String,
}

/// The health flags against the simulator's planted faults.
#[derive(Debug, Serialize)]
struct FaultCheck {
    /// Devices flagged watch or service.
    flagged: usize,
    /// Of those, devices with a planted fault.
    flagged_with_fault: usize,
    /// Devices whose fault began at least 6 weeks before the end of the data.
    established_faults: usize,
    /// Of those, devices flagged.
    established_found: usize,
}

/// One region's cycles by program, most used first.
#[derive(Debug, Serialize)]
struct RegionPrograms {
    region: String,
    cycles: u64,
    /// (program, share of the region's cycles)
    programs: Vec<(String, f64)>,
}

fn fault_of(f: Fault) -> Option<(&'static str, i64)> {
    match f {
        Fault::None => None,
        Fault::InletValve { onset_ms } => Some(("inlet_valve", onset_ms)),
        Fault::WornBearing { onset_ms } => Some(("worn_bearing", onset_ms)),
    }
}

fn programs_by_region(db: &Db, start: i64, end: i64) -> Result<Vec<RegionPrograms>> {
    let r = db.cycles_by(
        "program",
        Attribute::Region,
        Grain::Month,
        start,
        end,
        Plan::Auto,
    )?;
    let mut by: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
        std::collections::BTreeMap::new();
    for row in &r.rows {
        let (Some(p), Some(g)) = (row.keys.first(), row.keys.get(1)) else {
            continue;
        };
        *by.entry(g.clone())
            .or_default()
            .entry(p.clone())
            .or_default() += row.rows;
    }
    let mut out: Vec<RegionPrograms> = by
        .into_iter()
        .map(|(region, m)| {
            let cycles: u64 = m.values().sum();
            let mut programs: Vec<(String, f64)> = m
                .into_iter()
                .map(|(p, n)| (p, n as f64 / cycles.max(1) as f64))
                .collect();
            programs.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            RegionPrograms {
                region,
                cycles,
                programs,
            }
        })
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.cycles));
    Ok(out)
}

fn answers(db: &Db, fleet: &Fleet) -> Result<Answers> {
    let start = fleet.config().start_ms;
    let end = start + i64::from(fleet.config().days) * 86_400_000;
    let (from13, to13) = last_weeks(end - 1, 13);
    let from13 = from13.max(start);
    let cfg = HealthConfig::default();
    let snapshot = db.fleet_snapshot(end - 1, &cfg)?;
    let flagged: std::collections::HashSet<&str> =
        snapshot.flagged.iter().map(|h| h.serial.as_str()).collect();
    // The household: the first healthy machine with advice for its owner (else the first).
    let mut household = None;
    for d in fleet.devices().iter().take(200) {
        if flagged.contains(d.serial.as_str()) {
            continue;
        }
        let u = db.usage(&d.serial, from13, to13, &AdviceConfig::default())?;
        if !u.advice.is_empty() && u.cycles >= 8 {
            household = Some(d.serial.clone());
            break;
        }
    }
    let household = household.or_else(|| fleet.devices().first().map(|d| d.serial.clone()));
    let t = Instant::now();
    let usage = match &household {
        Some(s) => Some(db.usage(s, from13, to13, &AdviceConfig::default())?),
        None => None,
    };
    let usage_us = t.elapsed().as_secs_f64() * 1e6;
    let t = Instant::now();
    let health = match &household {
        Some(s) => Some(db.health(s, end - 1, &cfg)?),
        None => None,
    };
    let health_us = t.elapsed().as_secs_f64() * 1e6;
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
    // The simulator's truth: which flagged machines really carry a fault.
    let index: std::collections::HashMap<&str, usize> = fleet
        .devices()
        .iter()
        .enumerate()
        .map(|(i, d)| (d.serial.as_str(), i))
        .collect();
    let truth = |serial: &str| index.get(serial).and_then(|&i| fault_of(fleet.fault(i)));
    let mut failing = None;
    for h in &snapshot.flagged {
        if let Some((kind, onset)) = truth(&h.serial) {
            if h.verdict == Verdict::Service {
                failing = Some(Failing {
                    health: h.clone(),
                    planted_fault: kind.to_string(),
                    fault_onset: time::format_rfc3339(onset),
                });
                break;
            }
        }
    }
    let established =
        |i: usize| fault_of(fleet.fault(i)).is_some_and(|(_, onset)| onset < end - 42 * 86_400_000);
    let faults = FaultCheck {
        flagged: snapshot.flagged.len(),
        flagged_with_fault: snapshot
            .flagged
            .iter()
            .filter(|h| truth(&h.serial).is_some())
            .count(),
        established_faults: (0..fleet.devices().len())
            .filter(|&i| established(i))
            .count(),
        established_found: snapshot
            .flagged
            .iter()
            .filter(|h| {
                index
                    .get(h.serial.as_str())
                    .is_some_and(|&i| established(i))
            })
            .count(),
    };
    let t = Instant::now();
    let programs_by_region = programs_by_region(db, start, end)?;
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
    Ok(Answers {
        household,
        usage,
        health,
        flagged_devices,
        failing,
        faults,
        programs_by_region,
        loads,
        rare_programs,
        bands,
        anova_energy_by_segment: anova,
        chi_square_program_by_region: chi,
        timing: (usage_us, health_us, fleet_ms),
    })
}

fn write_answers(
    w: &mut dyn Write,
    a: &Answers,
    fleet: &Fleet,
    last: Option<(&StreamDef, &DeviceRows)>,
) -> Result<()> {
    writeln!(w, "\n== 1. Customer care: one household's card ==")?;
    if let (Some(u), Some(serial)) = (&a.usage, &a.household) {
        if let Some(d) = fleet.devices().iter().find(|d| &d.serial == serial) {
            writeln!(
                w,
                "{}: {}, {} kg drum, firmware {}, in {} {}, segment {}.",
                d.serial, d.model, d.capacity_kg, d.firmware, d.postcode, d.region, d.segment
            )?;
        }
        if let Some((def, rows)) = last {
            writeln!(w, "Its last {LAST_CYCLES} cycles (C1):")?;
            writeln!(w, "{}", rows_as_table(def, rows, LAST_CYCLES))?;
        }
        writeln!(
            w,
            "Its owner opens the app: the last weeks' usage (C2, {:.0} µs from the week rollups):",
            a.timing.0
        )?;
        device::write_usage(w, u)?;
    }
    if let Some(h) = &a.health {
        writeln!(
            w,
            "  health ({:.0} µs): {}{}",
            a.timing.1,
            h.verdict.name(),
            if h.evidence.is_empty() {
                ": fill time and drum vibration as in its first weeks, no recurring error"
                    .to_string()
            } else {
                format!(": {}", h.evidence.join("; "))
            }
        )?;
    }

    writeln!(
        w,
        "\n== 2. Product support: a failing machine, found before its owner calls =="
    )?;
    match &a.failing {
        Some(f) => {
            writeln!(
                w,
                "The nightly health check (C5) flags {} machines. One of them:",
                a.faults.flagged
            )?;
            device::write_health(w, &f.health)?;
            writeln!(
                w,
                "The simulator planted a {} in {} on {}: hearth found it from the device's weekly rollups, without a call from its owner.",
                match f.planted_fault.as_str() {
                    "inlet_valve" => "failing inlet valve",
                    "worn_bearing" => "worn drum bearing",
                    other => other,
                },
                f.health.serial,
                f.fault_onset.get(..10).unwrap_or(&f.fault_onset)
            )?;
        }
        None => writeln!(
            w,
            "No machine with a planted fault reached the service verdict in this short simulation (try more --days)."
        )?,
    }
    writeln!(
        w,
        "Against the simulator's truth: {} of the {} flagged machines carry a planted fault; {} of the {} machines whose fault began at least 6 weeks before the end are flagged.",
        a.faults.flagged_with_fault,
        a.faults.flagged,
        a.faults.established_found,
        a.faults.established_faults
    )?;

    writeln!(
        w,
        "\n== 3. Business intelligence: programs by region, segments compared ({:.2} ms for every fleet answer below, from rollups) ==",
        a.timing.2
    )?;
    let mut t = out::Rows::new(
        w,
        Format::Table,
        vec![
            "region".into(),
            "cycles".into(),
            "1st program".into(),
            "2nd".into(),
            "3rd".into(),
        ],
    )?;
    for r in &a.programs_by_region {
        let p = |i: usize| {
            r.programs.get(i).map_or(out::Cell::Null, |(n, s)| {
                out::Cell::Text(format!("{n} {:.0}%", s * 100.0))
            })
        };
        t.row(vec![
            out::Cell::Text(r.region.clone()),
            out::Cell::Count(r.cycles),
            p(0),
            p(1),
            p(2),
        ])?;
    }
    t.finish()?;
    if let Some(c) = &a.chi_square_program_by_region {
        writeln!(
            w,
            "Chi-square, program × region: {:.1} (df {}), {}.\n  Meaning: {}.",
            c.statistic,
            c.df,
            fleet::p_text(c.p_value),
            fleet::chi2_meaning(c, "program", Attribute::Region)
        )?;
    }
    if let Some(an) = &a.anova_energy_by_segment {
        writeln!(
            w,
            "One-way ANOVA, energy per cycle across the {} segments: F = {:.2} (df {}, {}), {}.\n  Meaning: {}.",
            an.groups.len(),
            an.f,
            an.df_between,
            an.df_within,
            fleet::p_text(an.p_value),
            fleet::anova_meaning(an, "energy per cycle (Wh)", Attribute::Segment)
        )?;
    }
    let bands: Vec<String> = a
        .bands
        .groups
        .iter()
        .map(|g| format!("{} {}/{}/{}", g.group, g.light, g.medium, g.heavy))
        .collect();
    writeln!(
        w,
        "Light/medium/heavy users (< 3, 3-7, > 7 cycles a week) by segment: {}",
        bands.join(", ")
    )?;

    writeln!(w, "\n== 4. Product design: which machines to build ==")?;
    let mut caps: Vec<_> = a.loads.by_capacity.iter().collect();
    caps.sort_by(|x, y| {
        let kg = |s: &str| s.parse::<f64>().unwrap_or(f64::MAX);
        kg(&x.capacity_kg).total_cmp(&kg(&y.capacity_kg))
    });
    for c in caps {
        let cap: f64 = c.capacity_kg.parse().unwrap_or(0.0);
        writeln!(
            w,
            "  {:>2} kg drums: {:>7} cycles, average load {} ({}), {:.1}% of cycles at 90% of capacity or more",
            c.capacity_kg,
            out::count(c.cycles),
            c.mean_load_kg.map_or("-".into(), |m| format!("{m:.1} kg")),
            match c.mean_load_kg {
                Some(m) if cap > 0.0 => format!("{:.0}% of the drum", 100.0 * m / cap),
                _ => "-".into(),
            },
            c.share_at_least_90pct * 100.0
        )?;
    }
    let cycles: u64 = a.loads.by_capacity.iter().map(|c| c.cycles).sum();
    let under_half: u64 = a
        .loads
        .by_capacity
        .iter()
        .flat_map(|c| c.share_bins.iter().take(5).map(|(_, n)| *n))
        .sum();
    let near_full: f64 = a
        .loads
        .by_capacity
        .iter()
        .map(|c| c.share_at_least_90pct * c.cycles as f64)
        .sum();
    if cycles > 0 {
        let under = under_half as f64 / cycles as f64;
        let full = near_full / cycles as f64;
        writeln!(
            w,
            "  Finding: {:.0}% of all washes use less than half the drum, {:.1}% reach 90% of it{}",
            under * 100.0,
            full * 100.0,
            if under > 0.5 && full < 0.1 {
                ": owners buy more drum than they fill; a larger drum is not what they need"
            } else {
                ""
            }
        )?;
    }
    let mut rare: std::collections::BTreeMap<&str, Vec<String>> = std::collections::BTreeMap::new();
    for r in a.rare_programs.iter() {
        rare.entry(r.program.as_str())
            .or_default()
            .push(r.group.clone());
    }
    let mut rare: Vec<(&str, Vec<String>)> = rare.into_iter().collect();
    rare.sort_by(|x, y| y.1.len().cmp(&x.1.len()).then(x.0.cmp(y.0)));
    let models = a
        .rare_programs
        .iter()
        .map(|r| r.group.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    for (program, groups) in rare.iter().take(4) {
        writeln!(
            w,
            "  Rarely used: {program} is under 2% of the cycles on {} of {} models{}",
            groups.len(),
            models.max(groups.len()),
            if groups.len() == models {
                ": a candidate to drop"
            } else {
                ""
            }
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
    let spin = out::spinner(args.quiet, "flushing and compacting");
    let t = Instant::now();
    db.flush().context("flushing the demo database")?;
    let flush = t.elapsed();
    let t = Instant::now();
    let windows_compacted = db.compact().context("compacting the demo database")?;
    let compact = t.elapsed();
    spin.finish_and_clear();
    let info_now = db.info()?;

    let answers = answers(&db, &fleet)?;
    // The household of the card, and its last cycles (C1).
    let cycles_def = schema
        .stream("cycles")
        .context("the preset has a cycles stream")?;
    let example = answers
        .household
        .as_ref()
        .and_then(|s| fleet.devices().iter().find(|d| &d.serial == s))
        .cloned();
    let last = match &example {
        Some(d) => Some(db.scan_device("cycles", &d.serial, i64::MIN..i64::MAX, &[])?),
        None => None,
    };
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
            write_answers(
                &mut w,
                &story.answers,
                &fleet,
                last.as_ref().map(|r| (cycles_def, r)),
            )?;
            writeln!(
                w,
                "\nNext: `hearth fleet {0} service`, `hearth device {0} {1} health`, `hearth fleet {0} programs --by region --period month`,\n      `hearth report {0} --out report.html`, `hearth verify {0}`",
                dir.display(),
                story.answers.household.as_deref().unwrap_or("WM-00000001")
            )?;
        }
    }
    w.flush()?;
    Ok(ExitCode::SUCCESS)
}
