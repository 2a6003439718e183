//! Output helpers: human units, error chains, broken pipes, progress bars.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::Format;

/// True when the error (or any cause) is a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        let io = e.downcast_ref::<std::io::Error>().map(std::io::Error::kind);
        // serde_json wraps the writer's error in its own type.
        let json = e
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind);
        io.or(json) == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, skipping causes the message already includes.
pub fn chain(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 segment`, `2 segments`, `1,000 rows`.
pub fn plural(n: u64, what: &str) -> String {
    format!("{} {what}{}", count(n), if n == 1 { "" } else { "s" })
}

/// A progress bar on stderr, hidden when stderr is not a terminal or when `quiet`.
/// With `bytes` the bar counts bytes (of an input file), otherwise rows.
pub fn progress(len: u64, quiet: bool, prefix: &str, bytes: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = if bytes {
        "{prefix:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
    } else {
        "{prefix:>10} [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, {eta})"
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len)
        .with_style(style)
        .with_prefix(prefix.to_string())
}

/// A usage error found after argument parsing (a wrong value for the database at hand):
/// `main` exits with 2 for it, as clap does for its own.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns a usage error (exit status 2).
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// True when the error is a usage error.
pub fn is_usage(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<UsageError>())
}

/// One value of an answer's row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value (JSON `null`, empty in CSV, `-` in a table).
    Null,
    /// Text.
    Text(String),
    /// An integer shown as is (a setting, an hour, a year).
    Int(i64),
    /// A count: thousands separators in a table.
    Count(u64),
    /// A number shown with this many decimals in a table (full precision in JSON and CSV).
    Num(f64, usize),
    /// A share (0..=1): a percentage in a table, the fraction in JSON and CSV.
    Share(f64),
}

impl Cell {
    /// A number, `Null` when absent or not finite.
    pub fn num(v: Option<f64>, decimals: usize) -> Cell {
        match v {
            Some(x) if x.is_finite() => Cell::Num(x, decimals),
            _ => Cell::Null,
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Text(s) => s.clone().into(),
            Cell::Int(i) => (*i).into(),
            Cell::Count(n) => (*n).into(),
            // A whole number shown without decimals is an integer in JSON too.
            Cell::Num(x, 0) if x.fract() == 0.0 && x.abs() < 9.0e15 => (*x as i64).into(),
            Cell::Num(x, _) | Cell::Share(x) => serde_json::Number::from_f64(*x)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
        }
    }

    /// A category's name: an integer when it is one (`temp_setting_c` 40), else text.
    pub fn category(name: &str) -> Cell {
        match name.parse::<i64>() {
            Ok(i) => Cell::Int(i),
            Err(_) => Cell::Text(name.to_string()),
        }
    }

    fn csv(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Count(n) => n.to_string(),
            Cell::Num(x, _) | Cell::Share(x) => x.to_string(),
        }
    }

    fn human(&self) -> String {
        match self {
            Cell::Null => "-".into(),
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Count(n) => count(*n),
            Cell::Num(x, d) => format!("{x:.*}", *d),
            Cell::Share(x) => format!("{:.1}%", x * 100.0),
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(
            self,
            Cell::Int(_) | Cell::Count(_) | Cell::Num(..) | Cell::Share(_)
        )
    }
}

/// Writes rows of named columns as a table, CSV (with a header) or one JSON array of
/// objects (keys = column names). Table rows are buffered; CSV and JSON rows are written as
/// they come, so a dump of millions of rows does not sit in memory.
pub struct Rows<'w> {
    w: &'w mut dyn Write,
    format: Format,
    columns: Vec<String>,
    table: Option<Table>,
    numeric: Vec<bool>,
    written: u64,
}

/// Writes one CSV record (fields quoted when they need it) and a newline.
pub fn write_csv_record<S: AsRef<str>>(w: &mut dyn Write, fields: &[S]) -> std::io::Result<()> {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        write_csv_field(w, f.as_ref())?;
    }
    w.write_all(b"\n")
}

/// Writes one CSV field, quoted when it holds a comma, a quote, a line break or edge spaces.
pub fn write_csv_field(w: &mut dyn Write, t: &str) -> std::io::Result<()> {
    if t.contains([',', '"', '\n', '\r']) || t.starts_with(' ') || t.ends_with(' ') {
        write!(w, "\"{}\"", t.replace('"', "\"\""))
    } else {
        w.write_all(t.as_bytes())
    }
}

impl<'w> Rows<'w> {
    /// Starts an answer with these column names.
    pub fn new(w: &'w mut dyn Write, format: Format, columns: Vec<String>) -> Result<Rows<'w>> {
        let mut rows = Rows {
            w,
            format,
            numeric: vec![false; columns.len()],
            columns,
            table: None,
            written: 0,
        };
        match format {
            Format::Table => {
                let mut t = Table::new();
                // On a terminal, wide tables wrap to its width; elsewhere nothing wraps.
                t.load_preset(UTF8_FULL_CONDENSED)
                    .set_content_arrangement(ContentArrangement::Dynamic)
                    .set_header(rows.columns.clone());
                rows.table = Some(t);
            }
            Format::Csv => write_csv_record(rows.w, &rows.columns)?,
            Format::Json => rows.w.write_all(b"[")?,
        }
        Ok(rows)
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<Cell>) -> Result<()> {
        match self.format {
            Format::Table => {
                for (n, c) in self.numeric.iter_mut().zip(&cells) {
                    *n |= c.is_numeric();
                }
                if let Some(t) = &mut self.table {
                    t.add_row(cells.iter().map(Cell::human).collect::<Vec<_>>());
                }
            }
            Format::Csv => {
                let fields: Vec<String> = cells.iter().map(Cell::csv).collect();
                write_csv_record(self.w, &fields)?;
            }
            Format::Json => {
                // Written by hand to keep the keys in column order.
                self.w.write_all(if self.written == 0 {
                    b"\n  {"
                } else {
                    b",\n  {"
                })?;
                for (i, (k, c)) in self.columns.iter().zip(&cells).enumerate() {
                    if i > 0 {
                        self.w.write_all(b", ")?;
                    }
                    serde_json::to_writer(&mut *self.w, k)?;
                    self.w.write_all(b": ")?;
                    serde_json::to_writer(&mut *self.w, &c.json())?;
                }
                self.w.write_all(b"}")?;
            }
        }
        self.written += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Ends the answer.
    pub fn finish(mut self) -> Result<()> {
        match self.format {
            Format::Table => {
                if let Some(mut t) = self.table.take() {
                    for (i, &n) in self.numeric.iter().enumerate() {
                        if n {
                            if let Some(c) = t.column_mut(i) {
                                c.set_cell_alignment(CellAlignment::Right);
                            }
                        }
                    }
                    if self.written == 0 {
                        writeln!(self.w, "(no rows)")?;
                    } else {
                        writeln!(self.w, "{t}")?;
                    }
                }
            }
            Format::Csv => {}
            Format::Json => {
                self.w
                    .write_all(if self.written == 0 { b"]\n" } else { b"\n]\n" })?;
            }
        }
        self.w.flush()?;
        Ok(())
    }
}

/// Writes one JSON object (pretty) followed by a newline.
pub fn write_json(w: &mut dyn Write, v: &serde_json::Value) -> Result<()> {
    serde_json::to_writer_pretty(&mut *w, v)?;
    writeln!(w)?;
    Ok(())
}

/// Writes an object as CSV `field,value` rows, nested fields flattened with dots
/// (`groups.0.mean`).
pub fn write_flat_csv(w: &mut dyn Write, v: &serde_json::Value) -> Result<()> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        let key = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    walk(&key(k), x, out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(&key(&i.to_string()), x, out);
                }
            }
            serde_json::Value::Null => out.push((prefix.to_string(), String::new())),
            serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut pairs = Vec::new();
    walk("", v, &mut pairs);
    write_csv_record(w, &["field", "value"])?;
    for (k, x) in pairs {
        write_csv_record(w, &[k, x])?;
    }
    w.flush()?;
    Ok(())
}

/// The library's serialised answers, in the tool's JSON vocabulary: `serial` becomes
/// `device_id`, and day numbers (`*_day` keys) become `YYYY-MM-DD` dates.
pub fn tool_json(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .map(|(k, x)| {
                    let k = if k == "serial" {
                        "device_id".to_string()
                    } else {
                        k
                    };
                    let x = match (&x, k.ends_with("_day")) {
                        (serde_json::Value::Number(n), true) => n
                            .as_i64()
                            .map_or(x.clone(), |d| hearth::calendar::format_day(d).into()),
                        _ => tool_json(x),
                    };
                    (k, x)
                })
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(tool_json).collect())
        }
        other => other,
    }
}

/// A spinner on stderr for work without a known length (hidden like [`progress`]).
pub fn spinner(quiet: bool, msg: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bar = ProgressBar::new_spinner()
        .with_style(style)
        .with_message(msg.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn broken_pipe_is_found_in_the_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe");
        let err = anyhow::Error::new(io).context("writing the table");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe");
        assert!(is_broken_pipe(&anyhow::Error::new(serde_json::Error::io(
            io
        ))));
    }
}
