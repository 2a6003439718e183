//! `hearth retention DB`: the retention policies; with `--stream S --keep 400d
//! [--keep-device-rollups 1095d]`, sets one and applies the policies now; with `--apply`,
//! applies the stored ones.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hearth::{Db, RetentionReport};

use crate::cli::{Format, RetentionArgs};
use crate::common;
use crate::info::open_existing;
use crate::out::{self, Cell, Rows};
use crate::time::format_rfc3339;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Parses `--keep`: a whole number of days (`400d`) or hours (`12h`), at least 1.
pub fn parse_keep(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, 'd')) => (&t[..i], DAY_MS),
        Some((i, 'h')) => (&t[..i], HOUR_MS),
        _ => {
            return Err(format!(
                "'{t}' is not a period like 400d (days) or 12h (hours)"
            ))
        }
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("'{t}' is not a period like 400d (days) or 12h (hours)"))?;
    if n < 1 {
        return Err(format!("'{t}': a retention period must be at least 1 hour"));
    }
    n.checked_mul(unit)
        .ok_or_else(|| format!("'{t}' is too long a period"))
}

/// A period in ms as `400d`, `12h` or `90000ms`.
fn period(ms: i64) -> String {
    if ms % DAY_MS == 0 {
        format!("{}d", ms / DAY_MS)
    } else if ms % HOUR_MS == 0 {
        format!("{}h", ms / HOUR_MS)
    } else {
        format!("{ms}ms")
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn run(args: &RetentionArgs) -> Result<ExitCode> {
    let applying = args.apply || args.keep.is_some();
    if args.stream.is_some() && args.keep.is_none() && !args.clear {
        return Err(out::usage(
            "--stream needs --keep PERIOD (set and apply) or --clear (remove)",
        ));
    }
    if args.now.is_some() && !applying {
        return Err(out::usage(
            "--now applies only to a run: give --keep or --apply",
        ));
    }
    let db = open_existing(&args.db)?;
    let dir = args.db.display();
    if let Some(name) = &args.stream {
        common::stream(&db, name)?;
        if args.clear {
            db.clear_retention(name)
                .with_context(|| format!("removing the retention policy of '{name}' in {dir}"))?;
        } else if let Some(keep) = args.keep {
            match args.keep_device_rollups {
                Some(device) => db.set_retention_with_device_rollups(name, keep, device),
                None => db.set_retention(name, keep),
            }
            .with_context(|| format!("setting the retention policy of '{name}' in {dir}"))?;
        }
    }
    if !applying {
        return show(&db, args.format);
    }
    let at = args.now.unwrap_or_else(now_ms);
    let started = std::time::Instant::now();
    let report = db
        .apply_retention(at)
        .with_context(|| format!("applying retention to {dir}"))?;
    let seconds = started.elapsed().as_secs_f64();
    print_report(&report, seconds, args.format)?;
    Ok(ExitCode::SUCCESS)
}

fn show(db: &Db, format: Format) -> Result<ExitCode> {
    let policies = db.retention().context("reading the retention policies")?;
    let mut stdout = std::io::stdout().lock();
    if format == Format::Table && policies.is_empty() {
        writeln!(
            stdout,
            "No retention policy: every row is kept (set one with --stream S --keep 400d)"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Rows::new(
        &mut stdout,
        format,
        [
            "stream",
            "keep",
            "keep_ms",
            "keep_device_rollups",
            "keep_device_rollups_ms",
            "window",
            "window_ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )?;
    for p in &policies {
        rows.row(vec![
            Cell::Text(p.stream.clone()),
            Cell::Text(period(p.keep_ms)),
            Cell::Int(p.keep_ms),
            p.keep_device_rollups_ms
                .map_or(Cell::Null, |k| Cell::Text(period(k))),
            p.keep_device_rollups_ms.map_or(Cell::Null, Cell::Int),
            Cell::Text(period(p.window_ms)),
            Cell::Int(p.window_ms),
        ])?;
    }
    rows.finish()?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &RetentionReport, seconds: f64, format: Format) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    let mut rows = Rows::new(
        &mut stdout,
        format,
        [
            "stream",
            "keep",
            "cutoff",
            "windows",
            "segments",
            "rows",
            "bytes",
            "summaries_kept",
            "summaries_dropped",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )?;
    for s in &report.streams {
        rows.row(vec![
            Cell::Text(s.stream.clone()),
            Cell::Text(period(s.keep_ms)),
            Cell::Text(format_rfc3339(s.cutoff_ms)),
            Cell::Count(s.windows),
            Cell::Count(s.segments),
            Cell::Count(s.rows),
            Cell::Count(s.bytes),
            Cell::Count(s.summaries_kept),
            Cell::Count(s.summaries_dropped),
        ])?;
    }
    rows.finish()?;
    if format == Format::Table {
        let bytes: u64 = report.streams.iter().map(|s| s.bytes).sum();
        if report.streams.is_empty() {
            writeln!(stdout, "No retention policy: nothing dropped")?;
        } else {
            writeln!(
                stdout,
                "Retention at {}: dropped {} in {} ({}) in {:.2} s; windows ending at or before the cutoff go whole",
                format_rfc3339(report.now_ms),
                out::plural(report.rows(), "row"),
                out::plural(report.windows(), "window"),
                out::bytes(bytes),
                seconds
            )?;
            if report.summaries_kept() + report.summaries_dropped() > 0 {
                writeln!(
                    stdout,
                    "Device rollups: week cells of {} kept in device summaries; {} device \
                     summaries dropped (their device-rollup period ended)",
                    out::plural(report.summaries_kept(), "window"),
                    out::count(report.summaries_dropped()),
                )?;
            }
        }
    }
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_takes_days_or_hours() {
        assert_eq!(parse_keep("400d"), Ok(400 * DAY_MS));
        assert_eq!(parse_keep("12h"), Ok(12 * HOUR_MS));
        for bad in [
            "",
            "d",
            "400",
            "0d",
            "-3d",
            "1.5d",
            "3w",
            "400 d",
            "99999999999999999d",
        ] {
            assert!(parse_keep(bad).is_err(), "{bad}");
        }
        assert_eq!(period(400 * DAY_MS), "400d");
        assert_eq!(period(36 * HOUR_MS), "36h");
        assert_eq!(period(1), "1ms");
    }
}
