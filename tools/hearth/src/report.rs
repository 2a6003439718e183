//! `hearth report`: one self-contained HTML page with inline SVG charts, drawn by hand (no
//! chart library, no script, no network): programs by region, load versus drum capacity,
//! usage bands by segment, and the weekly fill time and vibration of the devices flagged
//! for service. The fleet charts and tests come from the analytics view (k-anonymous: a
//! group of fewer than k distinct devices is left out, and the page says which); the
//! flagged devices come from the support list.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hearth::query::device::Trend;
use hearth::query::fleet::Bands;
use hearth::{Analytics, Attribute, Dim, FleetQuery, Health, HealthConfig, KAnonymous, Plan};

use crate::cli::ReportArgs;
use crate::common;
use crate::fleet::{anova_meaning, chi2_meaning_p, p_text, suppressed_line};
use crate::info::open_existing;
use crate::out;
use crate::time::format_date;

/// Series colours (colour-blind friendly, Okabe–Ito and Tableau).
const PALETTE: [&str; 12] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
    "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v` (axis tops).
fn nice_ceil(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&x| x >= v)
        .unwrap_or(10.0 * p)
}

/// An axis for values up to `max`: (top, step), about five round steps.
fn axis(max: f64) -> (f64, f64) {
    let step = nice_ceil(max / 5.0);
    let top = (max / step).ceil().max(1.0) * step;
    (top, step)
}

/// Tick values from 0 to `top` by `step`.
fn ticks(top: f64, step: f64) -> Vec<f64> {
    let n = (top / step).round() as usize;
    (0..=n.min(20)).map(|k| k as f64 * step).collect()
}

/// A legend: coloured squares with names, `per_row` in a row of items `item` wide.
fn legend(svg: &mut String, names: &[String], x: f64, y: f64, per_row: usize, item: f64) {
    for (i, n) in names.iter().enumerate() {
        let (cx, cy) = (
            x + (i % per_row) as f64 * item,
            y + (i / per_row) as f64 * 18.0,
        );
        let _ = write!(
            svg,
            r#"<rect x="{cx:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}" class="s">{}</text>"#,
            cy - 9.0,
            colour(i),
            cx + 14.0,
            cy,
            esc(n)
        );
    }
}

/// Horizontal bars, each split in shares of its total: `rows` are (label, values per series).
fn stacked_share_bars(rows: &[(String, Vec<u64>)], series: &[String]) -> String {
    let (left, width, bar, gap) = (170.0, 560.0, 16.0, 6.0);
    let legend_rows = series.len().div_ceil(6);
    let height = 30.0 + rows.len() as f64 * (bar + gap) + 20.0 + legend_rows as f64 * 18.0;
    let mut s = format!(
        r#"<svg viewBox="0 0 {} {height:.0}" width="100%" role="img">"#,
        left + width + 20.0
    );
    for pct in [0, 25, 50, 75, 100] {
        let x = left + width * f64::from(pct) / 100.0;
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="20" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="14" class="s" text-anchor="middle">{pct}%</text>"##,
            20.0 + rows.len() as f64 * (bar + gap)
        );
    }
    for (r, (label, values)) in rows.iter().enumerate() {
        let y = 22.0 + r as f64 * (bar + gap);
        let total: u64 = values.iter().sum();
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="s" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + bar - 4.0,
            esc(label)
        );
        let mut x = left;
        for (i, &v) in values.iter().enumerate() {
            let w = width * v as f64 / total.max(1) as f64;
            if w > 0.0 {
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.2}" height="{bar}" fill="{}"><title>{}: {} {} ({:.1}%)</title></rect>"#,
                    colour(i),
                    esc(label),
                    esc(&series[i]),
                    out::count(v),
                    100.0 * v as f64 / total.max(1) as f64
                );
            }
            x += w;
        }
    }
    legend(
        &mut s,
        series,
        left,
        40.0 + rows.len() as f64 * (bar + gap),
        6,
        95.0,
    );
    s.push_str("</svg>");
    s
}

/// Lines over shared x labels: `lines` are (name, y per x).
fn line_chart(x_labels: &[String], lines: &[(String, Vec<Option<f64>>)], y_unit: &str) -> String {
    let (left, top, width, height) = (60.0, 16.0, 640.0, 220.0);
    let max = lines
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .fold(0.0_f64, |a, &b| a.max(b));
    let (max, step) = axis(max);
    let n = x_labels.len().max(2);
    let xs = |i: usize| left + width * i as f64 / (n - 1) as f64;
    let ys = |v: f64| top + height - height * v / max;
    let legend_rows = lines.len().div_ceil(3);
    let mut s = format!(
        r#"<svg viewBox="0 0 {} {:.0}" width="100%" role="img">"#,
        left + width + 30.0,
        top + height + 50.0 + legend_rows as f64 * 18.0
    );
    for v in ticks(max, step) {
        let y = ys(v);
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" class="s" text-anchor="end">{v}{y_unit}</text>"##,
            left + width,
            left - 6.0,
            y + 4.0
        );
    }
    for (i, l) in x_labels.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="s" text-anchor="middle">{}</text>"#,
            xs(i),
            top + height + 16.0,
            esc(l)
        );
    }
    for (k, (name, v)) in lines.iter().enumerate() {
        let pts: Vec<String> = v
            .iter()
            .enumerate()
            .filter_map(|(i, y)| y.map(|y| format!("{:.1},{:.1}", xs(i), ys(y))))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            colour(k),
            pts.join(" "),
            esc(name)
        );
    }
    let names: Vec<String> = lines.iter().map(|(n, _)| n.clone()).collect();
    legend(&mut s, &names, left, top + height + 38.0, 3, 215.0);
    s.push_str("</svg>");
    s
}

/// Vertical stacked bars (counts): `groups` are (label, values per series).
fn stacked_bars(groups: &[(String, Vec<u64>)], series: &[String]) -> String {
    let (left, top, height) = (50.0, 16.0, 200.0);
    let slot = 40.0;
    let width = slot * groups.len().max(1) as f64;
    let (max, step) = axis(
        groups
            .iter()
            .map(|(_, v)| v.iter().sum::<u64>())
            .max()
            .unwrap_or(0)
            .max(1) as f64,
    );
    let mut s = format!(
        r#"<svg viewBox="0 0 {:.0} {:.0}" width="100%" role="img">"#,
        (left + width + 20.0).max(420.0),
        top + height + 50.0
    );
    for v in ticks(max, step) {
        let y = top + height - height * v / max;
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" class="s" text-anchor="end">{v:.0}</text>"##,
            left + width,
            left - 6.0,
            y + 4.0
        );
    }
    for (g, (label, values)) in groups.iter().enumerate() {
        let x = left + g as f64 * slot + 6.0;
        let mut y = top + height;
        for (i, &v) in values.iter().enumerate() {
            let h = height * v as f64 / max;
            y -= h;
            if h > 0.0 {
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.2}" fill="{}"><title>{}: {} {}</title></rect>"#,
                    slot - 12.0,
                    colour(i),
                    esc(label),
                    out::count(v),
                    esc(&series[i])
                );
            }
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" class="s" text-anchor="middle">{}</text>"#,
            x + (slot - 12.0) / 2.0,
            top + height + 14.0,
            esc(label)
        );
    }
    legend(&mut s, series, left, top + height + 38.0, 3, 140.0);
    s.push_str("</svg>");
    s
}

/// A small chart of a trend's weekly means with its baseline (dashed).
fn sparkline(t: &Trend, unit: &str, decimals: usize) -> String {
    let (w, h, pad) = (300.0, 90.0, 22.0);
    let vals: Vec<f64> = t.weekly.iter().map(|m| m.mean).collect();
    let mut s = format!(
        r#"<svg viewBox="0 0 {w} {:.0}" width="300" role="img">"#,
        h + 30.0
    );
    if vals.is_empty() {
        s.push_str(r#"<text x="10" y="40" class="s">no cycles</text></svg>"#);
        return s;
    }
    let hi = vals
        .iter()
        .copied()
        .chain(t.baseline_mean)
        .fold(f64::MIN, f64::max);
    let lo = vals
        .iter()
        .copied()
        .chain(t.baseline_mean)
        .fold(f64::MAX, f64::min);
    let span = (hi - lo).max(hi.abs() * 0.05).max(1e-9);
    let n = vals.len().max(2);
    let xs = |i: usize| pad + (w - 2.0 * pad) * i as f64 / (n - 1) as f64;
    let ys = |v: f64| 8.0 + h - 8.0 - (h - 16.0) * (v - lo) / span;
    if let Some(b) = t.baseline_mean {
        let _ = write!(
            s,
            r##"<line x1="{pad}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#888" stroke-dasharray="4 3"><title>baseline {b:.dec$}{unit}</title></line>"##,
            w - pad,
            y = ys(b),
            dec = decimals
        );
    }
    let pts: Vec<String> = vals
        .iter()
        .enumerate()
        .map(|(i, &v)| format!("{:.1},{:.1}", xs(i), ys(v)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#D55E00" stroke-width="2" points="{}"/>"##,
        pts.join(" ")
    );
    let _ = write!(
        s,
        r#"<text x="{pad}" y="{:.0}" class="s">{} {:.dec$}{unit} → {:.dec$}{unit} (baseline {}{unit})</text>"#,
        h + 22.0,
        esc(&t.column),
        vals.first().copied().unwrap_or(0.0),
        vals.last().copied().unwrap_or(0.0),
        t.baseline_mean
            .map_or("-".into(), |b| format!("{b:.decimals$}")),
        dec = decimals
    );
    s.push_str("</svg>");
    s
}

/// The line saying what k-anonymity left out of a chart, if anything.
fn k_note<T>(a: &KAnonymous<T>) -> String {
    suppressed_line(a).map_or(String::new(), |l| {
        format!("<p class=\"note\">{}</p>", esc(&l))
    })
}

fn programs_by_region(an: &Analytics<'_>, from: i64, to: i64) -> Result<String> {
    let q = FleetQuery::count(
        "cycles",
        from,
        to,
        vec![Dim::column("program"), Dim::Attribute(Attribute::Region)],
    );
    let a = an.fleet(&q)?;
    let r = &a.answer;
    let mut programs: BTreeMap<String, u64> = BTreeMap::new();
    let mut regions: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for row in &r.rows {
        let (Some(p), Some(g)) = (row.keys.first(), row.keys.get(1)) else {
            continue;
        };
        *programs.entry(p.clone()).or_default() += row.rows;
        *regions
            .entry(g.clone())
            .or_default()
            .entry(p.clone())
            .or_default() += row.rows;
    }
    // Programs by overall popularity, most used first.
    let mut series: Vec<(String, u64)> = programs.into_iter().collect();
    series.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let names: Vec<String> = series.iter().map(|(n, _)| n.clone()).collect();
    let rows: Vec<(String, Vec<u64>)> = regions
        .into_iter()
        .map(|(g, m)| {
            let v = names
                .iter()
                .map(|n| m.get(n).copied().unwrap_or(0))
                .collect();
            (if g.is_empty() { "(unknown)".into() } else { g }, v)
        })
        .collect();
    Ok(stacked_share_bars(&rows, &names) + &k_note(&a))
}

fn load_vs_capacity(an: &Analytics<'_>, from: i64, to: i64) -> Result<String> {
    let a = an.load_distribution(from, to, Plan::Auto)?;
    let d = &a.answer;
    let mut caps = d.by_capacity.clone();
    caps.sort_by(|a, b| {
        let kg = |s: &str| s.parse::<f64>().unwrap_or(f64::MAX);
        kg(&a.capacity_kg).total_cmp(&kg(&b.capacity_kg))
    });
    let labels: Vec<String> = caps
        .first()
        .map(|c| {
            c.share_bins
                .iter()
                .map(|(lo, _)| format!("{lo:.0}%"))
                .collect()
        })
        .unwrap_or_default();
    let lines: Vec<(String, Vec<Option<f64>>)> = caps
        .iter()
        .map(|c| {
            let n = c.cycles.max(1) as f64;
            (
                format!(
                    "{} kg drum (mean {})",
                    c.capacity_kg,
                    c.mean_load_kg.map_or("-".into(), |m| format!("{m:.1} kg"))
                ),
                c.share_bins
                    .iter()
                    .map(|(_, k)| Some(100.0 * *k as f64 / n))
                    .collect(),
            )
        })
        .collect();
    Ok(line_chart(&labels, &lines, "%") + &k_note(&a))
}

fn bands_by_segment(an: &Analytics<'_>, from: i64, to: i64) -> Result<String> {
    let a = an.usage_bands(Attribute::Segment, &Bands::default(), from, to, Plan::Auto)?;
    let b = &a.answer;
    let groups: Vec<(String, Vec<u64>)> = b
        .groups
        .iter()
        .map(|g| (g.group.clone(), vec![g.light, g.medium, g.heavy]))
        .collect();
    let series = vec![
        "light (< 3 a week)".to_string(),
        "medium".to_string(),
        "heavy (> 7 a week)".to_string(),
    ];
    Ok(stacked_bars(&groups, &series) + &k_note(&a))
}

fn flagged_section(flagged: &[Health], limit: usize) -> String {
    let mut s = String::new();
    if flagged.is_empty() {
        s.push_str("<p>No device is flagged.</p>");
        return s;
    }
    s.push_str("<table><tr><th>device_id</th><th>verdict</th><th>reason</th></tr>");
    for h in flagged {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(&h.serial),
            h.verdict.name(),
            h.verdict.name(),
            esc(&h.evidence.join("; "))
        );
    }
    s.push_str("</table>");
    for h in flagged.iter().take(limit) {
        let _ = write!(
            s,
            "<div class=\"dev\"><h3>{} <span class=\"{}\">{}</span></h3>{}{}</div>",
            esc(&h.serial),
            h.verdict.name(),
            h.verdict.name(),
            sparkline(&h.fill_time, " s", 0),
            sparkline(&h.vibration, " g", 2)
        );
    }
    s
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}\
.s{font-size:11px;fill:#333}table{border-collapse:collapse;font-size:13px;margin:1em 0}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
.service{color:#b00;font-weight:bold}.watch{color:#a60;font-weight:bold}\
.dev{display:inline-block;margin:0 1em 1em 0;vertical-align:top}.dev h3{font-size:14px;margin:.3em 0}\
.note{color:#555;font-size:13px}";

pub fn run(args: &ReportArgs) -> Result<ExitCode> {
    let db = open_existing(&args.db)?;
    let an = db.analytics();
    let (from, to) = common::period(&db, &args.range)?;
    let info = db.info().context("reading the database's figures")?;
    let cycles: u64 = info
        .streams
        .iter()
        .filter(|s| s.name == "cycles")
        .map(|s| s.segment_rows + s.memtable_rows)
        .sum();
    let snap = db
        .fleet_snapshot(to - 1, &HealthConfig::default())
        .context("judging the devices' health")?;
    let mut html = String::with_capacity(1 << 16);
    let title = format!("hearth report: {}", args.db.display());
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(&title)
    );
    let _ = write!(
        html,
        "<h1>{}</h1><p>{} devices, {} cycles; period {} to {}. Every chart is answered from the rollups; fleet charts and tests leave out groups of fewer than {} distinct devices (k-anonymity).</p>",
        esc(&title),
        out::count(info.devices),
        out::count(cycles),
        format_date(from),
        format_date(to - 1),
        an.k()
    );
    let _ = write!(
        html,
        "<h2>Programs by region</h2><p class=\"note\">Share of each region's cycles per program.</p>{}",
        programs_by_region(&an, from, to).context("programs by region")?
    );
    if let Ok((k, _)) = an.chi_square("program", Attribute::Region, from, to, Plan::Auto) {
        let c = &k.answer;
        let _ = write!(
            html,
            "<p>Chi-square of program against region: statistic {:.1} (df {}), {}. {}.</p>{}",
            c.statistic,
            c.df,
            p_text(c.p_value),
            esc(&chi2_meaning_p(c.p_value, "program", Attribute::Region)),
            k_note(&k)
        );
    }
    let _ = write!(
        html,
        "<h2>Load versus drum capacity</h2><p class=\"note\">Share of cycles (y) by load as a share of the drum's capacity (x, 10% bins; the last is full or over).</p>{}",
        load_vs_capacity(&an, from, to).context("loads per capacity")?
    );
    let _ = write!(
        html,
        "<h2>Usage bands by segment</h2><p class=\"note\">Devices by cycles a week over the whole months of the period.</p>{}",
        bands_by_segment(&an, from, to).context("usage bands")?
    );
    if let Ok((k, _)) = an.anova("energy_wh", Attribute::Segment, from, to, Plan::Auto) {
        let a = &k.answer;
        let _ = write!(
            html,
            "<p>One-way ANOVA of energy per cycle across segments: F = {:.2} (df {}, {}), {}. {}.</p>{}",
            a.f,
            a.df_between,
            a.df_within,
            p_text(a.p_value),
            esc(&anova_meaning(a, "energy_wh", Attribute::Segment)),
            k_note(&k)
        );
    }
    let _ = write!(
        html,
        "<h2>Devices flagged for service</h2><p class=\"note\">{} of {} devices with cycles need a look as of {}. Weekly mean fill time and drum vibration (orange) against the device's baseline (dashed).</p>{}",
        snap.flagged.len(),
        out::count(snap.latest.len() as u64),
        format_date(to - 1),
        flagged_section(&snap.flagged, args.flagged as usize)
    );
    html.push_str("<p class=\"note\">Made by <code>hearth report</code>.</p></body></html>\n");
    std::fs::write(&args.out, &html)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "Wrote {} ({}): 4 charts, {} flagged devices listed",
        args.out.display(),
        out::bytes(html.len() as u64),
        snap.flagged.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceil(26.4), 50.0);
        assert_eq!(nice_ceil(21.0), 25.0);
        assert_eq!(nice_ceil(1.0), 1.0);
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(f64::NAN), 1.0);
        assert_eq!(nice_ceil(1234.0), 2000.0);
        assert_eq!(axis(26.4), (30.0, 10.0));
        assert_eq!(axis(24.0), (25.0, 5.0));
        assert_eq!(axis(21.0), (25.0, 5.0));
        assert_eq!(axis(3.0), (3.0, 1.0));
        assert_eq!(ticks(30.0, 5.0).len(), 7);
        assert_eq!(esc("a<b&\"c\">"), "a&lt;b&amp;&quot;c&quot;&gt;");
    }
}
