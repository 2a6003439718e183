//! `hearth erase DB SERIAL [--purge]` and `hearth purge DB`: the right to erasure.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{EraseArgs, Format, PurgeArgs};
use crate::info::open_existing;
use crate::out;

#[derive(Debug, Serialize)]
struct Erasure {
    memtable_rows: u64,
    segment_rows: u64,
    segments: u64,
    erase_ms: f64,
    purge: Option<Purge>,
}

#[derive(Debug, Serialize)]
struct Purge {
    devices: u64,
    segments_rewritten: u64,
    rows_dropped: u64,
    bytes_written: u64,
    /// Device summaries (week cells kept by retention) rewritten without the devices.
    summaries_rewritten: u64,
    purge_ms: f64,
}

fn purge(db: &hearth::Db, dir: &std::path::Path) -> Result<Purge> {
    let started = Instant::now();
    let p = db
        .purge()
        .with_context(|| format!("purging {}", dir.display()))?;
    Ok(Purge {
        devices: p.devices,
        segments_rewritten: p.segments_rewritten,
        rows_dropped: p.rows_dropped,
        bytes_written: p.bytes_written,
        summaries_rewritten: p.summaries_rewritten,
        purge_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

fn purge_line(p: &Purge) -> String {
    let summaries = if p.summaries_rewritten > 0 {
        format!(
            " and {} device summaries",
            out::count(p.summaries_rewritten)
        )
    } else {
        String::new()
    };
    format!(
        "Purged {} in {:.1} ms: {} dropped, {}{summaries} rewritten ({})",
        out::plural(p.devices, "erased device"),
        p.purge_ms,
        out::plural(p.rows_dropped, "row"),
        out::plural(p.segments_rewritten, "segment"),
        out::bytes(p.bytes_written),
    )
}

pub fn run_erase(args: &EraseArgs) -> Result<ExitCode> {
    let db = open_existing(&args.db)?;
    let started = Instant::now();
    let e = db
        .erase(&args.serial)
        .with_context(|| format!("erasing {} in {}", args.serial, args.db.display()))?;
    let erase_ms = started.elapsed().as_secs_f64() * 1e3;
    let purged = if args.purge {
        Some(purge(&db, &args.db)?)
    } else {
        None
    };
    let r = Erasure {
        memtable_rows: e.memtable_rows,
        segment_rows: e.segment_rows,
        segments: e.segments,
        erase_ms,
        purge: purged,
    };
    let mut w = std::io::stdout().lock();
    match args.format {
        Format::Json => out::write_json(&mut w, &serde_json::to_value(&r)?)?,
        Format::Csv => out::write_flat_csv(&mut w, &serde_json::to_value(&r)?)?,
        Format::Table => {
            writeln!(
                w,
                "Erased {} in {:.1} ms: {} in memory removed, {} in {} hidden{}",
                args.serial,
                r.erase_ms,
                out::plural(r.memtable_rows, "row"),
                out::plural(r.segment_rows, "row"),
                out::plural(r.segments, "segment"),
                if r.purge.is_some() {
                    ""
                } else {
                    " until `hearth purge`"
                },
            )?;
            if let Some(p) = &r.purge {
                writeln!(w, "{}", purge_line(p))?;
            }
        }
    }
    w.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_purge(args: &PurgeArgs) -> Result<ExitCode> {
    let db = open_existing(&args.db)?;
    let p = purge(&db, &args.db)?;
    let mut w = std::io::stdout().lock();
    match args.format {
        Format::Json => out::write_json(&mut w, &serde_json::to_value(&p)?)?,
        Format::Csv => out::write_flat_csv(&mut w, &serde_json::to_value(&p)?)?,
        Format::Table => writeln!(w, "{}", purge_line(&p))?,
    }
    w.flush()?;
    Ok(ExitCode::SUCCESS)
}
