//! `hearth info`: what a database holds and what it costs on disk.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use hearth::{Db, Info, Options};

use crate::cli::{Format, InfoArgs};
use crate::out;

/// Opens an existing database; never creates one (a missing directory is an error, not a new
/// empty database).
pub fn open_existing(dir: &Path) -> Result<Db> {
    if !dir.is_dir() {
        bail!("{}: no such database directory", dir.display());
    }
    Db::open(dir, Options::default())
        .with_context(|| format!("cannot open database {}", dir.display()))
}

pub fn run(args: &InfoArgs) -> Result<ExitCode> {
    let db = open_existing(&args.db)?;
    let info = db.info().context("cannot read database figures")?;
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, &info)?;
            writeln!(stdout)?;
        }
        Format::Csv => {
            let mut rows = out::Rows::new(
                &mut stdout,
                Format::Csv,
                [
                    "stream",
                    "segment_rows",
                    "memtable_rows",
                    "segments",
                    "segment_bytes",
                    "bytes_per_row",
                    "rollup_bytes",
                    "summary_windows",
                    "summary_bytes",
                ]
                .iter()
                .map(|c| c.to_string())
                .collect(),
            )?;
            for s in &info.streams {
                rows.row(vec![
                    out::Cell::Text(s.name.clone()),
                    out::Cell::Count(s.segment_rows),
                    out::Cell::Count(s.memtable_rows),
                    out::Cell::Count(s.segments),
                    out::Cell::Count(s.segment_bytes),
                    out::Cell::Num(s.bytes_per_row, 2),
                    out::Cell::Count(s.rollup_bytes),
                    out::Cell::Count(s.summary_windows),
                    out::Cell::Count(s.summary_bytes),
                ])?;
            }
            rows.finish()?;
        }
        Format::Table => write_table(&mut stdout, &info)?,
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn right(table: &mut Table, from: usize) {
    for i in from..table.column_count() {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// The human form of [`Info`]: a per-stream table and a totals table.
pub fn write_table(w: &mut impl Write, info: &Info) -> std::io::Result<()> {
    let mut streams = Table::new();
    streams.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "stream",
        "rows",
        "in segments",
        "in memory",
        "segments",
        "on disk",
        "bytes/row",
        "rollups",
    ]);
    for s in &info.streams {
        streams.add_row(vec![
            s.name.clone(),
            out::count(s.segment_rows + s.memtable_rows),
            out::count(s.segment_rows),
            out::count(s.memtable_rows),
            out::count(s.segments),
            out::bytes(s.segment_bytes),
            if s.segment_rows == 0 {
                "-".to_string()
            } else {
                format!("{:.2}", s.bytes_per_row)
            },
            if s.rollup_bytes == 0 {
                "-".to_string()
            } else {
                out::bytes(s.rollup_bytes)
            },
        ]);
    }
    right(&mut streams, 1);

    let mut totals = Table::new();
    totals.load_preset(UTF8_FULL_CONDENSED);
    totals.add_row(vec!["devices".to_string(), out::count(info.devices)]);
    if info.erased_pending_purge > 0 {
        totals.add_row(vec![
            "erased, awaiting purge".to_string(),
            out::count(info.erased_pending_purge),
        ]);
    }
    for s in info.streams.iter().filter(|s| s.summary_windows > 0) {
        // Windows whose raw rows retention dropped, their week cells kept.
        totals.add_row(vec![
            format!("{}: device summaries", s.name),
            format!(
                "{} ({})",
                out::plural(s.summary_windows, "window"),
                out::bytes(s.summary_bytes)
            ),
        ]);
    }
    totals.add_row(vec!["log size".to_string(), out::bytes(info.log_bytes)]);
    totals.add_row(vec![
        "total on disk".to_string(),
        out::bytes(info.total_bytes),
    ]);
    totals.add_row(vec![
        "checkpoint / last LSN".to_string(),
        format!("{} / {}", info.checkpoint_lsn, info.last_lsn),
    ]);
    totals.add_row(vec![
        "log records replayed at open".to_string(),
        out::count(info.log_records_replayed),
    ]);
    if let Some((file, offset, cut)) = &info.log_tail_truncated {
        totals.add_row(vec![
            "torn log tail cut at open".to_string(),
            format!("{file} at offset {offset} ({})", out::bytes(*cut)),
        ]);
    }
    right(&mut totals, 1);
    writeln!(w, "{streams}")?;
    writeln!(w, "{totals}")
}
