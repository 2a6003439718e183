//! What several commands share: the period a question covers, stored values as cells.

use anyhow::{bail, Context, Result};
use hearth::{ColumnKind, Db, FleetQuery, Grain, Limits, Plan, StreamDef};

use crate::cli::{Period, PlanArg};
use crate::out::{self, Cell};
use crate::time;

/// The days holding cycles: `[midnight of the first, midnight after the last)`, or `None`
/// for a database without cycles. From the rollups (a count by day), not from the rows.
pub fn data_span(db: &Db) -> Result<Option<(i64, i64)>> {
    let limits = Limits::default();
    let mut q = FleetQuery::count("cycles", limits.min_ts, limits.max_ts, Vec::new());
    q.grain = Some(Grain::Day);
    let r = db.fleet(&q).context("finding the days that hold cycles")?;
    let days: Vec<i64> = r.rows.iter().filter_map(|row| row.bucket_day).collect();
    Ok(match (days.iter().min(), days.iter().max()) {
        (Some(&a), Some(&b)) => Some((a * 86_400_000, (b + 1) * 86_400_000)),
        _ => None,
    })
}

/// The period of a question: `--from`/`--to`, each defaulting to the edge of the data.
pub fn period(db: &Db, p: &Period) -> Result<(i64, i64)> {
    let span = match (p.from, p.to) {
        (Some(f), Some(t)) => (f, t),
        _ => {
            let Some((f, t)) = data_span(db)? else {
                bail!("the database holds no cycles: nothing to answer (give --from and --to to ask anyway)");
            };
            (p.from.unwrap_or(f), p.to.unwrap_or(t))
        }
    };
    if span.0 >= span.1 {
        return Err(out::usage(format!(
            "empty period: --from {} is not before --to {}",
            time::format_rfc3339(span.0),
            time::format_rfc3339(span.1)
        )));
    }
    Ok(span)
}

/// The end of the last day with cycles (the default end of a question), or an error saying
/// that the database holds no cycles.
pub fn data_end(db: &Db) -> Result<i64> {
    match data_span(db)? {
        Some((_, t)) => Ok(t),
        None => bail!("the database holds no cycles: nothing to answer (give --to to ask anyway)"),
    }
}

/// The library's plan.
pub fn plan(p: PlanArg) -> Plan {
    match p {
        PlanArg::Auto => Plan::Auto,
        PlanArg::Rollup => Plan::Rollup,
        PlanArg::Scan => Plan::Scan,
    }
}

/// A stored value as a cell: a category's name, a number at its column's decimals.
pub fn stored_cell(def: &StreamDef, col: usize, stored: i64) -> Cell {
    let Some(c) = def.columns.get(col) else {
        return Cell::Null;
    };
    match &c.kind {
        ColumnKind::Categorical { .. } => {
            c.category_name(stored).map_or(Cell::Null, Cell::category)
        }
        ColumnKind::Numeric { decimals, .. } => {
            Cell::Num(c.decode_f64(stored), usize::from(*decimals))
        }
    }
}

/// Decimals a numeric column is stored with (0 for anything else).
pub fn decimals(def: &StreamDef, name: &str) -> usize {
    def.column_index(name)
        .and_then(|i| def.columns.get(i))
        .map_or(0, |c| match c.kind {
            ColumnKind::Numeric { decimals, .. } => usize::from(decimals),
            ColumnKind::Categorical { .. } => 0,
        })
}

/// The stream's definition, or a usage error listing the streams.
pub fn stream<'d>(db: &'d Db, name: &str) -> Result<&'d StreamDef> {
    db.schema().stream(name).ok_or_else(|| {
        let names: Vec<&str> = db
            .schema()
            .streams
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        out::usage(format!(
            "unknown stream '{name}' (this database has: {})",
            names.join(", ")
        ))
    })
}

/// Fails with a clear message unless `serial` is registered.
pub fn known_device(db: &Db, dir: &std::path::Path, serial: &str) -> Result<()> {
    if db.device_id(serial).is_none() {
        bail!(
            "unknown device '{serial}': {} has {} registered devices, and this is not one of them",
            dir.display(),
            out::count(db.device_count() as u64)
        );
    }
    Ok(())
}
