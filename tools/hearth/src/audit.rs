//! `hearth audit DB`: the audit log, oldest first.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::AuditArgs;
use crate::info::open_existing;
use crate::out::{Cell, Rows};
use crate::time::format_rfc3339;

pub fn run(args: &AuditArgs) -> Result<ExitCode> {
    let db = open_existing(&args.db)?;
    let log = db.audit_log().context("reading the audit log")?;
    let only = args.device.as_deref().map(|s| db.pseudonym(s));
    let mut stdout = std::io::stdout().lock();
    let w: &mut dyn Write = &mut stdout;
    let mut out = Rows::new(
        w,
        args.format,
        ["seq", "time", "kind", "outcome", "device", "detail"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )?;
    for e in &log {
        if only.is_some() && e.device != only {
            continue;
        }
        out.row(vec![
            Cell::Int(e.seq as i64),
            Cell::Text(format_rfc3339(e.time_ms)),
            Cell::Text(e.kind.name().into()),
            Cell::Text(e.outcome.name().into()),
            e.device.clone().map_or(Cell::Null, Cell::Text),
            Cell::Text(e.detail.clone()),
        ])?;
    }
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}
