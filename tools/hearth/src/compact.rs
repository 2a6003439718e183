//! `hearth compact`: flush, then merge every time window's segments into one.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{CompactArgs, Format};
use crate::info::open_existing;
use crate::out;

#[derive(Debug, Serialize)]
struct Compaction {
    windows_compacted: usize,
    segments_before: u64,
    segments_after: u64,
    bytes_before: u64,
    bytes_after: u64,
    seconds: f64,
}

pub fn run(args: &CompactArgs) -> Result<ExitCode> {
    let db = open_existing(&args.db)?;
    let before = db.info().context("reading the database's figures")?;
    let bar = out::spinner(args.quiet, "compacting");
    let started = Instant::now();
    db.flush()
        .with_context(|| format!("flushing {}", args.db.display()))?;
    let windows = db
        .compact()
        .with_context(|| format!("compacting {}", args.db.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let after = db.info().context("reading the database's figures")?;
    let segs = |i: &hearth::Info| i.streams.iter().map(|s| s.segments).sum::<u64>();
    let c = Compaction {
        windows_compacted: windows,
        segments_before: segs(&before),
        segments_after: segs(&after),
        bytes_before: before.total_bytes,
        bytes_after: after.total_bytes,
        seconds,
    };
    let mut w = std::io::stdout().lock();
    match args.format {
        Format::Json => out::write_json(&mut w, &serde_json::to_value(&c)?)?,
        Format::Csv => out::write_flat_csv(&mut w, &serde_json::to_value(&c)?)?,
        Format::Table => {
            writeln!(
                w,
                "Compacted {} in {:.2} s: {} → {}, {} → {} on disk",
                out::plural(c.windows_compacted as u64, "window"),
                c.seconds,
                out::plural(c.segments_before, "segment"),
                out::plural(c.segments_after, "segment"),
                out::bytes(c.bytes_before),
                out::bytes(c.bytes_after),
            )?;
        }
    }
    w.flush()?;
    Ok(ExitCode::SUCCESS)
}
