//! `hearth gen`: the simulator's fleet as data files that `hearth import` reads.
//!
//! Rows are written in delivery order, as [`hearth::sim::Fleet::batches`] yields them: with
//! the duplicates and late rows of at-least-once delivery, so an import shows them dropped
//! and placed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use hearth::sim::{Fleet, FleetConfig};
use hearth::{Batch, DeviceInfo, PostcodeEntry, Values};
use serde::Serialize;

use crate::cli::{FileFormat, GenArgs};
use crate::out;
use crate::time::format_rfc3339;

/// Rows per simulated batch.
const BATCH_ROWS: usize = 10_000;

/// One output file being written.
struct Sink {
    path: PathBuf,
    format: FileFormat,
    w: BufWriter<File>,
    header: Vec<String>,
    rows: u64,
}

/// A cell of a generated row.
enum V<'a> {
    Text(&'a str),
    Int(i64),
    Float(f64),
}

impl Sink {
    fn create(dir: &Path, name: &str, format: FileFormat, header: &[&str]) -> Result<Sink> {
        let ext = match format {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
        };
        let path = dir.join(format!("{name}.{ext}"));
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut s = Sink {
            path,
            format,
            w: BufWriter::with_capacity(1 << 20, file),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: 0,
        };
        if format == FileFormat::Csv {
            let line = s.header.join(",");
            writeln!(s.w, "{line}").with_context(|| format!("writing {}", s.path.display()))?;
        }
        Ok(s)
    }

    fn row(&mut self, cells: &[V<'_>]) -> Result<()> {
        let r = match self.format {
            FileFormat::Csv => {
                let mut first = true;
                let mut res = Ok(());
                for c in cells {
                    if !first {
                        res = res.and(self.w.write_all(b","));
                    }
                    first = false;
                    res = res.and(match c {
                        V::Text(t) => out::write_csv_field(&mut self.w, t),
                        V::Int(i) => write!(self.w, "{i}"),
                        V::Float(x) => write!(self.w, "{x}"),
                    });
                }
                res.and(self.w.write_all(b"\n"))
            }
            FileFormat::Jsonl => {
                let mut m = serde_json::Map::new();
                for (k, c) in self.header.iter().zip(cells) {
                    let v = match c {
                        V::Text(t) => serde_json::Value::from(*t),
                        V::Int(i) => serde_json::Value::from(*i),
                        V::Float(x) => serde_json::Number::from_f64(*x)
                            .map_or(serde_json::Value::Null, serde_json::Value::Number),
                    };
                    m.insert(k.clone(), v);
                }
                serde_json::to_writer(&mut self.w, &m)
                    .map_err(std::io::Error::from)
                    .and_then(|()| self.w.write_all(b"\n"))
            }
        };
        r.with_context(|| format!("writing {}", self.path.display()))?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<FileReport> {
        self.w
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(FileReport {
            path: self.path,
            rows: self.rows,
        })
    }
}

#[derive(Debug, Serialize)]
struct FileReport {
    path: PathBuf,
    rows: u64,
}

#[derive(Debug, Serialize)]
struct GenReport {
    devices: u64,
    days: u64,
    seed: u64,
    files: Vec<FileReport>,
}

fn write_devices(dir: &Path, format: FileFormat, devices: &[DeviceInfo]) -> Result<FileReport> {
    let mut s = Sink::create(dir, "devices", format, crate::import::DEVICE_COLUMNS)?;
    for d in devices {
        let installed = format_rfc3339(d.installed_at);
        s.row(&[
            V::Text(&d.serial),
            V::Text(&d.model),
            V::Float(d.capacity_kg),
            V::Text(&d.firmware),
            V::Text(&installed),
            V::Float(d.lat),
            V::Float(d.lon),
            V::Text(&d.postcode),
            V::Text(&d.region),
            V::Text(&d.segment),
        ])?;
    }
    s.finish()
}

fn write_postcodes(
    dir: &Path,
    format: FileFormat,
    postcodes: &[PostcodeEntry],
) -> Result<FileReport> {
    let mut s = Sink::create(dir, "postcodes", format, crate::import::POSTCODE_COLUMNS)?;
    for p in postcodes {
        s.row(&[
            V::Text(&p.postcode),
            V::Text(&p.region),
            V::Text(&p.segment),
        ])?;
    }
    s.finish()
}

/// Writes one simulated batch, row by row, into the stream's file (created on first use
/// with the batch's columns as its header).
fn write_batch(
    dir: &Path,
    format: FileFormat,
    sinks: &mut Vec<Sink>,
    names: &mut Vec<String>,
    b: &Batch,
) -> Result<()> {
    let i = match names.iter().position(|n| *n == b.stream) {
        Some(i) => i,
        None => {
            let mut header = vec!["ts", "device_id"];
            header.extend(b.columns.iter().map(|(n, _)| n.as_str()));
            sinks.push(Sink::create(dir, &b.stream, format, &header)?);
            names.push(b.stream.clone());
            sinks.len() - 1
        }
    };
    let sink = &mut sinks[i];
    for r in 0..b.len() {
        let ts = format_rfc3339(b.ts[r]);
        let mut cells: Vec<V<'_>> = Vec::with_capacity(b.columns.len() + 2);
        cells.push(V::Text(&ts));
        cells.push(V::Text(&b.device[r]));
        for (_, values) in &b.columns {
            cells.push(match values {
                Values::Text(v) => V::Text(v.get(r).map_or("", String::as_str)),
                Values::Int(v) => V::Int(v.get(r).copied().unwrap_or(0)),
                Values::Float(v) => V::Float(v.get(r).copied().unwrap_or(0.0)),
            });
        }
        sink.row(&cells)?;
    }
    Ok(())
}

pub fn run(args: &GenArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let fleet = Fleet::new(FleetConfig {
        devices: args.devices as usize,
        days: args.days as u32,
        seed: args.seed,
        samples: args.trace_share > 0.0,
        sample_device_share: args.trace_share,
        ..FleetConfig::default()
    });
    let mut files = vec![
        write_devices(&args.out, args.format, fleet.devices())?,
        write_postcodes(&args.out, args.format, &fleet.postcodes())?,
    ];
    let bar = out::progress(0, args.quiet, "gen", false);
    if !bar.is_hidden() {
        // Counting the rows costs a pass of the simulator: only worth it for a visible bar.
        let (c, s) = fleet.expected_unique_rows();
        bar.set_length(c + s);
    }
    let mut sinks = Vec::new();
    let mut names = Vec::new();
    for b in fleet.batches(BATCH_ROWS) {
        check_columns(&sinks, &names, &b)?;
        write_batch(&args.out, args.format, &mut sinks, &mut names, &b)?;
        bar.inc(b.len() as u64);
    }
    // A stream without rows still gets its file (a header, or nothing for JSON Lines).
    let schema = hearth::Schema::washing_machine();
    for name in ["cycles", "samples"] {
        if names.iter().any(|n| n == name) || (name == "samples" && args.trace_share == 0.0) {
            continue;
        }
        if let Some(def) = schema.stream(name) {
            let mut header = vec!["ts", "device_id"];
            header.extend(def.columns.iter().map(|c| c.name.as_str()));
            sinks.push(Sink::create(&args.out, name, args.format, &header)?);
            names.push(name.to_string());
        }
    }
    bar.finish_and_clear();
    for s in sinks {
        files.push(s.finish()?);
    }
    let report = GenReport {
        devices: args.devices,
        days: args.days,
        seed: args.seed,
        files,
    };
    let mut w = std::io::stdout().lock();
    {
        writeln!(
            w,
            "Simulated {} washing machines over {} days (seed {}):",
            out::count(report.devices),
            report.days,
            report.seed
        )?;
        for f in &report.files {
            writeln!(
                w,
                "  {:<40} {:>12} rows",
                f.path.display().to_string(),
                out::count(f.rows)
            )?;
        }
        writeln!(
            w,
            "Rows are in delivery order, with duplicates and late rows; `hearth import` drops and places them."
        )?;
    }
    w.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The simulator's batches carry the preset's columns in its order; a file's header was
/// written from them, so every batch must match it.
fn check_columns(sinks: &[Sink], names: &[String], b: &Batch) -> Result<()> {
    if let Some(i) = names.iter().position(|n| *n == b.stream) {
        let cols: Vec<&str> = b.columns.iter().map(|(n, _)| n.as_str()).collect();
        let header: Vec<&str> = sinks[i].header[2..].iter().map(String::as_str).collect();
        if cols != header {
            anyhow::bail!(
                "internal: the simulator's '{}' columns {cols:?} differ from the file header {header:?}",
                b.stream
            );
        }
    }
    Ok(())
}
