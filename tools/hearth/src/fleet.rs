//! `hearth fleet DB <query>`: the fleet questions C5 and D1–D8.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hearth::query::fleet::Bands;
use hearth::query::Source;
use hearth::{
    Analytics, Anova, Attribute, ChiSquare, ChiSquareAnswer, Db, Dim, FleetQuery, HealthConfig,
    KAnonymous,
};
use serde_json::json;

use crate::cli::{By, FleetArgs, FleetQueryKind as Q, Format};
use crate::common::{self, plan};
use crate::info::open_existing;
use crate::out::{self, Cell, Rows};
use crate::time::{format_date, format_rfc3339, period_label};

/// The weekday names of D8, Monday first.
pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

fn name(q: Q) -> &'static str {
    match q {
        Q::Snapshot => "snapshot",
        Q::Service => "service",
        Q::Programs => "programs",
        Q::Loads => "loads",
        Q::Rare => "rare",
        Q::Energy => "energy",
        Q::Bands => "bands",
        Q::Anova => "anova",
        Q::Chi2 => "chi2",
        Q::Hours => "hours",
    }
}

/// Refuses options the query does not read, so that a typo does not go unnoticed.
fn check_options(a: &FleetArgs) -> Result<()> {
    let given = [
        (
            "--by",
            a.by.is_some(),
            &[Q::Programs, Q::Rare, Q::Bands, Q::Anova, Q::Chi2][..],
        ),
        ("--period", a.period.is_some(), &[Q::Programs][..]),
        ("--measure", a.measure.is_some(), &[Q::Anova][..]),
        (
            "--setting",
            a.setting.is_some(),
            &[Q::Programs, Q::Chi2][..],
        ),
        ("--devices", a.devices, &[Q::Programs][..]),
        (
            "--k",
            a.k.is_some(),
            &[
                Q::Programs,
                Q::Loads,
                Q::Rare,
                Q::Energy,
                Q::Bands,
                Q::Anova,
                Q::Chi2,
                Q::Hours,
            ][..],
        ),
        ("--max-share", a.max_share.is_some(), &[Q::Rare][..]),
        ("--light-below", a.light_below.is_some(), &[Q::Bands][..]),
        ("--heavy-above", a.heavy_above.is_some(), &[Q::Bands][..]),
        (
            "--from",
            a.range.from.is_some() && matches!(a.query, Q::Snapshot | Q::Service),
            &[][..],
        ),
    ];
    for (opt, set, queries) in given {
        if set && !queries.contains(&a.query) {
            return Err(out::usage(format!(
                "{opt} does not apply to `fleet ... {}` (see `hearth fleet --help`)",
                name(a.query)
            )));
        }
    }
    Ok(())
}

pub fn run(args: &FleetArgs) -> Result<ExitCode> {
    check_options(args)?;
    let db = open_existing(&args.db)?;
    let mut stdout = std::io::stdout().lock();
    let w: &mut dyn Write = &mut stdout;
    let what = name(args.query);
    answer(&db, args, w).with_context(|| format!("answering `fleet {what}`"))?;
    Ok(ExitCode::SUCCESS)
}

fn answer(db: &Db, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    // The support list names devices: it is the support view's. Every other question goes
    // through the analytics view, k-anonymous.
    match args.query {
        Q::Snapshot => return snapshot(db, args, w),
        Q::Service => return service(db, args, w),
        _ => {}
    }
    let an = analytics(db, args)?;
    match args.query {
        Q::Snapshot | Q::Service => Ok(()),
        Q::Programs => programs(db, &an, args, w),
        Q::Loads => loads(db, &an, args, w),
        Q::Rare => rare(db, &an, args, w),
        Q::Energy => energy(db, &an, args, w),
        Q::Bands => bands(db, &an, args, w),
        Q::Anova => anova(db, &an, args, w),
        Q::Chi2 => chi2(db, &an, args, w),
        Q::Hours => hours(db, &an, args, w),
    }
}

/// The analytics view with `--k` (never below the database's setting).
fn analytics<'d>(db: &'d Db, args: &FleetArgs) -> Result<Analytics<'d>> {
    let min = db.k_anonymity();
    match args.k {
        None => Ok(db.analytics()),
        Some(k) if k < min => Err(out::usage(format!(
            "--k {k} is below this database's k-anonymity setting ({min}); it may only be raised"
        ))),
        Some(k) => Ok(db.analytics_with_k(k)?),
    }
}

/// The groups a k-anonymous answer left out, as one line (at most 12 named).
pub fn suppressed_line<T>(a: &KAnonymous<T>) -> Option<String> {
    if a.suppressed.is_empty() {
        return None;
    }
    let names: Vec<String> = a
        .suppressed
        .iter()
        .take(12)
        .map(|s| {
            let g = s.group.join(" × ");
            match &s.bucket {
                Some(b) => format!("{g} ({b})"),
                None => g,
            }
        })
        .collect();
    let more = a.suppressed.len().saturating_sub(names.len());
    Some(format!(
        "k-anonymity (k = {}): {} with fewer than {} distinct devices left out ({}): {}{}",
        a.k,
        out::plural(a.suppressed.len() as u64, "group"),
        a.k,
        a.dims.join(" × "),
        names.join(", "),
        if more > 0 {
            format!(", and {more} more")
        } else {
            String::new()
        }
    ))
}

/// Says what k-anonymity left out: under a table, or on stderr for CSV and JSON rows (so
/// that they stay pure).
fn note_suppressed<T>(w: &mut dyn Write, format: Format, a: &KAnonymous<T>) -> Result<()> {
    if let Some(line) = suppressed_line(a) {
        if format == Format::Table {
            writeln!(w, "{line}")?;
        } else {
            eprintln!("hearth: note: {line}");
        }
    }
    Ok(())
}

/// `k` and the suppressed groups, for object answers.
fn suppressed_json<T>(a: &KAnonymous<T>) -> serde_json::Value {
    json!({
        "k": a.k,
        "dims": a.dims,
        "groups": a.suppressed.iter().map(|s| json!({"bucket": s.bucket, "group": s.group})).collect::<Vec<_>>(),
    })
}

/// A table's footer: where the answer came from (tables only; JSON and CSV stay pure).
fn footer(w: &mut dyn Write, format: Format, source: &Source, from: i64, to: i64) -> Result<()> {
    if format == Format::Table {
        let how = match source {
            Source::Rollup { cube, cells } => {
                format!("from the rollup {cube} ({} cells)", out::count(*cells))
            }
            Source::Scan { rows } => format!("by scanning {}", out::plural(*rows, "row")),
        };
        writeln!(
            w,
            "{} to {}, answered {how}",
            format_date(from),
            format_date(to - 1)
        )?;
    }
    Ok(())
}

fn at_ms(db: &Db, args: &FleetArgs) -> Result<i64> {
    Ok(match args.range.to {
        Some(t) => t - 1,
        None => common::data_end(db)? - 1,
    })
}

/// C5: every device's latest cycle.
fn snapshot(db: &Db, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    let snap = db.fleet_snapshot(at_ms(db, args)?, &HealthConfig::default())?;
    let def = common::stream(db, "cycles")?;
    let mut cols = vec!["device_id".to_string(), "ts".to_string()];
    cols.extend(def.columns.iter().map(|c| c.name.clone()));
    let mut out = Rows::new(w, args.format, cols)?;
    for (serial, row) in &snap.latest {
        let mut cells = vec![
            Cell::Text(serial.clone()),
            Cell::Text(format_rfc3339(row.ts)),
        ];
        for c in &def.columns {
            cells.push(match row.get(&c.name) {
                Some(hearth::query::device::CellValue::Text(t)) => Cell::category(t),
                Some(hearth::query::device::CellValue::Number(x)) => {
                    Cell::Num(*x, common::decimals(def, &c.name))
                }
                None => Cell::Null,
            });
        }
        out.row(cells)?;
    }
    out.finish()
}

/// C5: the support list, service first.
fn service(db: &Db, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    let at = at_ms(db, args)?;
    let snap = db.fleet_snapshot(at, &HealthConfig::default())?;
    let mut out = Rows::new(
        w,
        args.format,
        vec!["device_id".into(), "verdict".into(), "reason".into()],
    )?;
    for h in &snap.flagged {
        out.row(vec![
            Cell::Text(h.serial.clone()),
            Cell::Text(h.verdict.name().into()),
            Cell::Text(h.evidence.join("; ")),
        ])?;
    }
    out.finish()?;
    if args.format == Format::Table {
        writeln!(
            w,
            "{} of {} devices with cycles need a look, as of {}",
            snap.flagged.len(),
            out::count(snap.latest.len() as u64),
            format_date(at)
        )?;
    }
    Ok(())
}

/// D1: cycles by setting and attribute, per period.
fn programs(db: &Db, an: &Analytics<'_>, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    let (from, to) = common::period(db, &args.range)?;
    let setting = args.setting.clone().unwrap_or_else(|| "program".into());
    let by = args.by.unwrap_or(By::Region).attribute();
    let mut q = FleetQuery::count(
        "cycles",
        from,
        to,
        vec![Dim::column(&setting), Dim::Attribute(by)],
    );
    q.grain = args.period.map(|p| p.grain());
    q.devices = args.devices;
    q.plan = plan(args.plan);
    let a = an.fleet(&q)?;
    let r = &a.answer;
    let mut cols = Vec::new();
    if args.period.is_some() {
        cols.push("period".to_string());
    }
    cols.push(setting.clone());
    cols.push(by.name().to_string());
    cols.push("cycles".into());
    if args.devices {
        cols.push("devices".into());
    }
    let mut out = Rows::new(w, args.format, cols)?;
    for row in &r.rows {
        let mut cells = Vec::new();
        if let (Some(g), Some(d)) = (args.period, row.bucket_day) {
            cells.push(Cell::Text(period_label(g.grain(), d)));
        }
        cells.push(key(&setting, row.keys.first()));
        cells.push(key(by.name(), row.keys.get(1)));
        cells.push(Cell::Count(row.rows));
        if args.devices {
            cells.push(row.devices.map_or(Cell::Null, Cell::Count));
        }
        out.row(cells)?;
    }
    out.finish()?;
    footer(w, args.format, &r.source, from, to)?;
    note_suppressed(w, args.format, &a)
}

/// A group key as a cell: numbers stay numbers in JSON (`capacity_kg`, `temp_setting_c`,
/// `spin_setting_rpm`, `hour`).
fn key(dim: &str, v: Option<&String>) -> Cell {
    let Some(v) = v else { return Cell::Null };
    let numeric = matches!(
        dim,
        "capacity_kg" | "temp_setting_c" | "spin_setting_rpm" | "hour"
    );
    if numeric {
        if let Ok(i) = v.parse::<i64>() {
            return Cell::Int(i);
        }
        if let Ok(x) = v.parse::<f64>() {
            return Cell::Num(x, 1);
        }
    }
    Cell::Text(v.clone())
}

/// D2: loads per drum capacity.
fn loads(db: &Db, an: &Analytics<'_>, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    let (from, to) = common::period(db, &args.range)?;
    let a = an.load_distribution(from, to, plan(args.plan))?;
    let d = &a.answer;
    let mut caps = d.by_capacity.clone();
    caps.sort_by(|a, b| {
        let kg = |s: &str| s.parse::<f64>().unwrap_or(f64::MAX);
        kg(&a.capacity_kg).total_cmp(&kg(&b.capacity_kg))
    });
    let mut out = Rows::new(
        w,
        args.format,
        vec![
            "capacity_kg".into(),
            "cycles".into(),
            "mean_load_kg".into(),
            "mean_fill".into(),
            "share_under_50pct".into(),
            "share_at_least_90pct".into(),
        ],
    )?;
    for c in &caps {
        let cap: Option<f64> = c.capacity_kg.parse().ok().filter(|&x: &f64| x > 0.0);
        let under: u64 = c.share_bins.iter().take(5).map(|(_, n)| n).sum();
        out.row(vec![
            key("capacity_kg", Some(&c.capacity_kg)),
            Cell::Count(c.cycles),
            Cell::num(c.mean_load_kg, 1),
            match (c.mean_load_kg, cap) {
                (Some(m), Some(k)) => Cell::Share(m / k),
                _ => Cell::Null,
            },
            Cell::Share(under as f64 / c.cycles.max(1) as f64),
            Cell::Share(c.share_at_least_90pct),
        ])?;
    }
    out.finish()?;
    footer(w, args.format, &d.source, from, to)?;
    note_suppressed(w, args.format, &a)
}

/// D3: rarely used programs per group.
fn rare(db: &Db, an: &Analytics<'_>, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    let (from, to) = common::period(db, &args.range)?;
    let by = args.by.unwrap_or(By::Model).attribute();
    let max = args.max_share.unwrap_or(0.02);
    let a = an.rare_programs(by, max, from, to, plan(args.plan))?;
    let list = &a.answer;
    let mut out = Rows::new(
        w,
        args.format,
        vec![
            by.name().to_string(),
            "program".into(),
            "cycles".into(),
            "share".into(),
        ],
    )?;
    for r in list {
        out.row(vec![
            key(by.name(), Some(&r.group)),
            Cell::Text(r.program.clone()),
            Cell::Count(r.cycles),
            Cell::Share(r.share),
        ])?;
    }
    out.finish()?;
    if args.format == Format::Table {
        writeln!(
            w,
            "programs under {:.1}% of a {}'s cycles, {} to {}",
            max * 100.0,
            noun(by).0,
            format_date(from),
            format_date(to - 1)
        )?;
    }
    note_suppressed(w, args.format, &a)
}

/// D4: energy and water by program and temperature.
fn energy(db: &Db, an: &Analytics<'_>, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    let (from, to) = common::period(db, &args.range)?;
    let a = an.resources_by_setting(from, to, plan(args.plan))?;
    let r = &a.answer;
    let mut out = Rows::new(
        w,
        args.format,
        vec![
            "program".into(),
            "temp_setting_c".into(),
            "cycles".into(),
            "mean_energy_wh".into(),
            "mean_water_l".into(),
            "energy_kwh".into(),
            "water_l".into(),
        ],
    )?;
    for row in &r.rows {
        let v = |i: usize| row.values.get(i).and_then(hearth::query::Value::number);
        out.row(vec![
            key("program", row.keys.first()),
            key("temp_setting_c", row.keys.get(1)),
            Cell::Count(row.rows),
            Cell::num(v(0), 0),
            Cell::num(v(1), 1),
            Cell::num(v(2).map(|x| x / 1000.0), 1),
            Cell::num(v(3), 0),
        ])?;
    }
    out.finish()?;
    footer(w, args.format, &r.source, from, to)?;
    note_suppressed(w, args.format, &a)
}

/// D5: usage bands.
fn bands(db: &Db, an: &Analytics<'_>, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    let (from, to) = common::period(db, &args.range)?;
    let by = args.by.unwrap_or(By::Segment).attribute();
    let def = Bands::default();
    let b = Bands {
        light_below: args.light_below.unwrap_or(def.light_below),
        heavy_above: args.heavy_above.unwrap_or(def.heavy_above),
    };
    if !(b.light_below.is_finite() && b.heavy_above.is_finite() && b.light_below <= b.heavy_above) {
        return Err(out::usage(
            "--light-below must be a number no larger than --heavy-above",
        ));
    }
    let a = an.usage_bands(by, &b, from, to, plan(args.plan))?;
    let u = &a.answer;
    let mut out = Rows::new(
        w,
        args.format,
        vec![
            by.name().to_string(),
            "devices".into(),
            "light".into(),
            "medium".into(),
            "heavy".into(),
        ],
    )?;
    for g in &u.groups {
        out.row(vec![
            key(by.name(), Some(&g.group)),
            Cell::Count(g.light + g.medium + g.heavy),
            Cell::Count(g.light),
            Cell::Count(g.medium),
            Cell::Count(g.heavy),
        ])?;
    }
    out.finish()?;
    if args.format == Format::Table {
        writeln!(
            w,
            "devices by cycles a week: light < {}, medium, heavy > {}; over the whole months {} to {} ({:.1} weeks)",
            b.light_below,
            b.heavy_above,
            hearth::calendar::format_day(u.from_day),
            hearth::calendar::format_day(u.to_day - 1),
            u.weeks
        )?;
    }
    footer(w, args.format, &u.source, from, to)?;
    note_suppressed(w, args.format, &a)
}

/// `= 1.2e-5`, or `< 1e-300`.
pub fn p_text(p: f64) -> String {
    if p < 1e-300 {
        "p < 1e-300".into()
    } else if p < 0.001 {
        format!("p = {p:.1e}")
    } else {
        format!("p = {p:.3}")
    }
}

/// An attribute as prose: (singular, plural).
fn noun(by: Attribute) -> (&'static str, &'static str) {
    match by {
        Attribute::Region => ("region", "regions"),
        Attribute::Segment => ("segment", "segments"),
        Attribute::Model => ("model", "models"),
        Attribute::Capacity => ("drum capacity", "drum capacities"),
    }
}

/// One line saying what an ANOVA means.
pub fn anova_meaning(a: &Anova, measure: &str, by: Attribute) -> String {
    let (hi, lo) = extremes(a);
    if a.p_value < 0.05 {
        format!(
            "{measure} differs between {} more than chance explains ({}): highest in {hi}, lowest in {lo}",
            noun(by).1,
            p_text(a.p_value)
        )
    } else {
        format!(
            "no evidence that {measure} differs between {} ({}): the groups' means are within chance of each other",
            noun(by).1,
            p_text(a.p_value)
        )
    }
}

fn extremes(a: &Anova) -> (String, String) {
    let mut g: Vec<_> = a.groups.iter().collect();
    g.sort_by(|x, y| y.mean.total_cmp(&x.mean));
    let f = |x: Option<&&hearth::AnovaGroup>| {
        x.map_or("-".into(), |g| format!("{} ({:.1})", g.name, g.mean))
    };
    (f(g.first()), f(g.last()))
}

/// One line saying what a chi-square test means.
pub fn chi2_meaning(c: &ChiSquare, setting: &str, by: Attribute) -> String {
    chi2_meaning_p(c.p_value, setting, by)
}

/// One line saying what a chi-square test's p-value means.
pub fn chi2_meaning_p(p_value: f64, setting: &str, by: Attribute) -> String {
    if p_value < 0.05 {
        format!(
            "the choice of {setting} depends on the {} ({}): the mix is not the same everywhere",
            noun(by).0,
            p_text(p_value)
        )
    } else {
        format!(
            "no evidence that the choice of {setting} depends on the {} ({})",
            noun(by).0,
            p_text(p_value)
        )
    }
}

/// D6: one-way ANOVA.
fn anova(db: &Db, an: &Analytics<'_>, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    let (from, to) = common::period(db, &args.range)?;
    let measure = args.measure.clone().unwrap_or_else(|| "energy_wh".into());
    let by = args.by.unwrap_or(By::Segment).attribute();
    let (k, source) = an.anova(&measure, by, from, to, plan(args.plan))?;
    let a = &k.answer;
    let mut v = anova_json(a, &measure, by, from, to, &source);
    v["suppressed"] = suppressed_json(&k);
    match args.format {
        Format::Json => out::write_json(w, &v)?,
        Format::Csv => out::write_flat_csv(w, &v)?,
        Format::Table => {
            writeln!(
                w,
                "One-way ANOVA of {measure} across {}: F = {:.2} (df {}, {}), {}",
                noun(by).1,
                a.f,
                a.df_between,
                a.df_within,
                p_text(a.p_value)
            )?;
            writeln!(w, "Meaning: {}", anova_meaning(a, &measure, by))?;
            let mut out = Rows::new(
                w,
                Format::Table,
                vec![by.name().to_string(), "n".into(), format!("mean {measure}")],
            )?;
            for g in &a.groups {
                out.row(vec![
                    key(by.name(), Some(&g.name)),
                    Cell::Count(g.n),
                    Cell::Num(g.mean, 2),
                ])?;
            }
            out.finish()?;
            footer(w, Format::Table, &source, from, to)?;
            note_suppressed(w, Format::Table, &k)?;
        }
    }
    Ok(())
}

fn source_json(s: &Source) -> serde_json::Value {
    serde_json::to_value(s).unwrap_or(serde_json::Value::Null)
}

/// D6's JSON object.
pub fn anova_json(
    a: &Anova,
    measure: &str,
    by: Attribute,
    from: i64,
    to: i64,
    source: &Source,
) -> serde_json::Value {
    json!({
        "test": "anova",
        "measure": measure,
        "by": by.name(),
        "from": format_date(from),
        "to": format_date(to - 1),
        "f": a.f,
        "df_between": a.df_between,
        "df_within": a.df_within,
        "p_value": a.p_value,
        "grand_mean": a.grand_mean,
        "groups": a.groups.iter().map(|g| json!({ by.name(): g.name, "n": g.n, "mean": g.mean })).collect::<Vec<_>>(),
        "meaning": anova_meaning(a, measure, by),
        "source": source_json(source),
    })
}

/// D7: chi-square of a setting against an attribute.
fn chi2(db: &Db, an: &Analytics<'_>, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    let (from, to) = common::period(db, &args.range)?;
    let setting = args.setting.clone().unwrap_or_else(|| "program".into());
    let by = args.by.unwrap_or(By::Region).attribute();
    let (k, source) = an.chi_square(&setting, by, from, to, plan(args.plan))?;
    let c = &k.answer;
    let mut v = chi2_answer_json(c, &setting, by, from, to, &source);
    v["suppressed"] = suppressed_json(&k);
    match args.format {
        Format::Json => out::write_json(w, &v)?,
        Format::Csv => out::write_flat_csv(w, &v)?,
        Format::Table => {
            writeln!(
                w,
                "Chi-square test of {setting} against {}: statistic = {:.1} (df {}), {}",
                by.name(),
                c.statistic,
                c.df,
                p_text(c.p_value)
            )?;
            writeln!(w, "Meaning: {}", chi2_meaning_p(c.p_value, &setting, by))?;
            // Observed counts, settings down, groups across; numeric labels (temperatures,
            // capacities) in numeric order.
            let (ri, ci) = (label_order(&c.rows), label_order(&c.columns));
            let mut cols = vec![setting.clone()];
            cols.extend(ci.iter().map(|&j| c.columns[j].clone()));
            let mut out = Rows::new(w, Format::Table, cols)?;
            for &i in &ri {
                let mut cells = vec![Cell::Text(c.rows[i].clone())];
                for &j in &ci {
                    // A withheld cell (fewer than k devices) shows as `-`.
                    cells.push(
                        c.observed
                            .get(i)
                            .and_then(|row| row.get(j))
                            .copied()
                            .flatten()
                            .map_or(Cell::Null, Cell::Count),
                    );
                }
                out.row(cells)?;
            }
            out.finish()?;
            footer(w, Format::Table, &source, from, to)?;
            note_suppressed(w, Format::Table, &k)?;
        }
    }
    Ok(())
}

/// Indexes of `labels` in display order: numeric when every label is a number, else as given.
fn label_order(labels: &[String]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..labels.len()).collect();
    let nums: Option<Vec<f64>> = labels.iter().map(|l| l.parse::<f64>().ok()).collect();
    if let Some(n) = nums {
        idx.sort_by(|&a, &b| n[a].total_cmp(&n[b]));
    }
    idx
}

/// D7's JSON object through the analytics view (withheld cells are `null`).
fn chi2_answer_json(
    c: &ChiSquareAnswer,
    setting: &str,
    by: Attribute,
    from: i64,
    to: i64,
    source: &Source,
) -> serde_json::Value {
    json!({
        "test": "chi_square",
        "setting": setting,
        "by": by.name(),
        "from": format_date(from),
        "to": format_date(to - 1),
        "statistic": c.statistic,
        "df": c.df,
        "p_value": c.p_value,
        "rows": c.rows,
        "columns": c.columns,
        "observed": c.observed,
        "expected": c.expected,
        "meaning": chi2_meaning_p(c.p_value, setting, by),
        "source": source_json(source),
    })
}

/// D8: cycles by hour of day and weekday.
fn hours(db: &Db, an: &Analytics<'_>, args: &FleetArgs, w: &mut dyn Write) -> Result<()> {
    let (from, to) = common::period(db, &args.range)?;
    let a = an.time_of_day(from, to, plan(args.plan))?;
    let t = &a.answer;
    let mut cols = vec!["hour".to_string()];
    cols.extend(WEEKDAYS.iter().map(|d| d.to_string()));
    cols.push("cycles".into());
    let mut out = Rows::new(w, args.format, cols)?;
    for h in 0..24 {
        let mut cells = vec![Cell::Int(h as i64)];
        let mut total = 0;
        for day in &t.cycles {
            let n = day.get(h).copied().unwrap_or(0);
            total += n;
            cells.push(Cell::Count(n));
        }
        cells.push(Cell::Count(total));
        out.row(cells)?;
    }
    out.finish()?;
    footer(w, args.format, &t.source, from, to)?;
    note_suppressed(w, args.format, &a)
}
