//! `hearth dump`: raw rows of a stream, one device or all, over a period.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::DumpArgs;
use crate::common;
use crate::device::{push_rows, row_columns};
use crate::info::open_existing;
use crate::out::Rows;

pub fn run(args: &DumpArgs) -> Result<ExitCode> {
    let db = open_existing(&args.db)?;
    let def = common::stream(&db, &args.stream)?;
    let from = args.range.from.unwrap_or(i64::MIN);
    let to = args.range.to.unwrap_or(i64::MAX);
    if from >= to {
        return Err(crate::out::usage("empty period: --from is not before --to"));
    }
    let mut stdout = std::io::stdout().lock();
    let mut out = Rows::new(&mut stdout, args.format, row_columns(def))?;
    match &args.device {
        Some(serial) => {
            common::known_device(&db, &args.db, serial)?;
            let rows = db
                .scan_device(&args.stream, serial, from..to, &[])
                .with_context(|| format!("reading {} rows of {serial}", args.stream))?;
            push_rows(&mut out, def, serial, &rows, args.limit)?;
        }
        None => {
            // The scan visits devices one by one; a write error (a closed pipe) stops it at
            // the next device.
            let mut err = None;
            let mut serials: Vec<Option<String>> = Vec::new();
            db.scan(&args.stream, from..to, &[], |rows| {
                if err.is_some() || args.limit.is_some_and(|l| out.len() >= l) {
                    return;
                }
                let d = rows.device as usize;
                if serials.len() <= d {
                    serials.resize(d + 1, None);
                }
                let serial = serials[d]
                    .get_or_insert_with(|| {
                        db.device(rows.device)
                            .map_or_else(|| format!("#{}", rows.device), |i| i.serial)
                    })
                    .clone();
                if let Err(e) = push_rows(&mut out, def, &serial, rows, args.limit) {
                    err = Some(e);
                }
            })
            .with_context(|| format!("reading the {} stream", args.stream))?;
            if let Some(e) = err {
                return Err(e);
            }
        }
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}
