//! `hearth export DB SERIAL`: everything held about one device, as one JSON document or a
//! directory of CSV files; the library records each export in the audit log.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use hearth::privacy::ExportValue;
use hearth::DeviceExport;

use crate::cli::{ExportArgs, ExportFormat};
use crate::common;
use crate::info::open_existing;
use crate::time::format_rfc3339;

pub fn run(args: &ExportArgs) -> Result<ExitCode> {
    if args.format == ExportFormat::Csv && args.out.is_none() {
        return Err(crate::out::usage(
            "--format csv writes several files: give a directory with --out",
        ));
    }
    let db = open_existing(&args.db)?;
    // The library records the attempt, failed or not, in the audit log.
    let e = match db.export_device(&args.serial) {
        Ok(e) => e,
        Err(err) => {
            common::known_device(&db, &args.db, &args.serial)?;
            return Err(err).with_context(|| format!("exporting {}", args.serial));
        }
    };
    match (args.format, &args.out) {
        (ExportFormat::Json, None) => {
            let mut stdout = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut stdout, &e)?;
            writeln!(stdout)?;
        }
        (ExportFormat::Json, Some(path)) => {
            let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut w = BufWriter::new(f);
            serde_json::to_writer_pretty(&mut w, &e)?;
            writeln!(w)?;
            w.flush()?;
            eprintln!("Wrote {}", path.display());
        }
        (ExportFormat::Csv, Some(dir)) => {
            let files = write_csv(&e, dir)?;
            for f in files {
                eprintln!("Wrote {}", f.display());
            }
        }
        (ExportFormat::Csv, None) => bail!("--format csv needs --out"),
    }
    Ok(ExitCode::SUCCESS)
}

fn value(v: &ExportValue) -> String {
    match v {
        ExportValue::Int(i) => i.to_string(),
        ExportValue::Number(x) => x.to_string(),
        ExportValue::Text(t) => t.clone(),
    }
}

/// `device.csv` (the devices header `import` reads), `<stream>.csv` per stream with rows
/// (`ts` in RFC 3339, `device_id`, the columns), `<stream>_weeks.csv` per device rollup.
fn write_csv(e: &DeviceExport, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let open = |name: &str| -> Result<(csv::Writer<File>, std::path::PathBuf)> {
        let path = dir.join(name);
        let w = csv::Writer::from_path(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok((w, path))
    };
    let d = &e.device;
    let (mut w, path) = open("device.csv")?;
    w.write_record(crate::import::DEVICE_COLUMNS)?;
    w.write_record([
        d.serial.clone(),
        d.model.clone(),
        d.capacity_kg.to_string(),
        d.firmware.clone(),
        d.installed_at.to_string(),
        d.lat.to_string(),
        d.lon.to_string(),
        d.postcode.clone(),
        d.region.clone(),
        d.segment.clone(),
    ])?;
    w.flush()?;
    written.push(path);
    for s in &e.streams {
        if s.rows.is_empty() {
            continue;
        }
        let (mut w, path) = open(&format!("{}.csv", s.name))?;
        let mut header = vec!["ts".to_string(), "device_id".to_string()];
        header.extend(s.columns.iter().skip(1).cloned());
        w.write_record(&header)?;
        for r in &s.rows {
            let mut rec = Vec::with_capacity(header.len());
            rec.push(match r.first() {
                Some(ExportValue::Int(t)) => format_rfc3339(*t),
                Some(v) => value(v),
                None => String::new(),
            });
            rec.push(d.serial.clone());
            rec.extend(r.iter().skip(1).map(value));
            w.write_record(&rec)?;
        }
        w.flush()?;
        written.push(path);
    }
    for c in &e.week_cells {
        let (mut w, path) = open(&format!("{}_weeks.csv", c.stream))?;
        let mut header = vec!["week".to_string(), "rows".to_string()];
        header.extend(c.sums.iter().map(|s| format!("sum_{s}")));
        header.extend(c.counts.iter().cloned());
        w.write_record(&header)?;
        for wk in &c.weeks {
            let mut rec = vec![wk.week.clone(), wk.rows.to_string()];
            rec.extend(wk.sums.iter().map(|x| x.to_string()));
            rec.extend(wk.counts.iter().map(|x| x.to_string()));
            w.write_record(&rec)?;
        }
        w.flush()?;
        written.push(path);
    }
    Ok(written)
}
