//! `hearth verify`: check every checksum of a database without changing it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use hearth::{Db, VerifyReport};

use crate::cli::{Format, VerifyArgs};
use crate::out;

/// Checks a database read-only: schema, manifest, registry, every segment block and every
/// log record after the checkpoint (the library's [`Db::verify`]).
pub fn verify_db(dir: &Path) -> hearth::Result<VerifyReport> {
    Db::verify(dir)
}

pub fn run(args: &VerifyArgs) -> Result<ExitCode> {
    // `Db::verify` would create a missing directory; a typo must not leave one behind.
    if !args.db.is_dir() {
        bail!("{}: no such database directory", args.db.display());
    }
    let report = verify_db(&args.db)
        .with_context(|| format!("verification of {} failed", args.db.display()))?;
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report)?;
            writeln!(stdout)?;
        }
        Format::Csv => out::write_flat_csv(&mut stdout, &serde_json::to_value(&report)?)?,
        Format::Table => {
            writeln!(
                stdout,
                "OK: {} checked ({}): {} with {}, {} after the checkpoint, {}",
                out::plural(report.files_checked, "file"),
                out::bytes(report.bytes_checked),
                out::plural(report.segments, "segment"),
                out::plural(report.segment_rows, "row"),
                out::plural(report.log_records, "log record"),
                out::plural(report.devices, "device"),
            )?;
            if report.summaries > 0 {
                writeln!(
                    stdout,
                    "{} (week cells kept by retention) checked",
                    out::plural(report.summaries, "device summary file"),
                )?;
            }
            if !report.unreferenced_files.is_empty() {
                writeln!(
                    stdout,
                    "note: files the database does not use: {}",
                    report.unreferenced_files.join(", ")
                )?;
            }
        }
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
