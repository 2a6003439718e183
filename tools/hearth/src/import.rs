//! `hearth import`: CSV or JSON Lines files into a database.
//!
//! Every file is opened and its header checked against the schema before the database is
//! touched, so a wrong header changes nothing. Rows are then read in batches and appended;
//! a row that cannot be parsed (field count, number, timestamp) is rejected with its line
//! number, and a row the engine refuses (its error names the row within the batch) is
//! dropped from the batch, rejected with the engine's reason, and the rest of the batch is
//! appended again.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use hearth::{
    Batch, ColumnKind, Db, DeviceInfo, InputError, Options, PostcodeEntry, Schema, StreamDef,
    UnknownDevices, Values,
};
use serde::Serialize;

use crate::cli::{Format, ImportArgs};
use crate::out;
use crate::time::parse_ts;

/// How many rejection reasons a summary keeps per file.
const MAX_REASONS: usize = 20;

/// One rejected row.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    /// Line of the CSV file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    /// `devices`, `postcodes`, or the stream name.
    pub kind: String,
    pub path: PathBuf,
    /// Data rows read (excluding the header).
    pub rows_read: u64,
    /// Rows stored (devices registered, postcodes loaded).
    pub accepted: u64,
    /// Rows dropped because the same (device, ts) was already stored.
    pub duplicates: u64,
    /// Devices registered on the fly by `--auto-register`.
    pub auto_registered: u64,
    /// Rows refused.
    pub rejected: u64,
    /// The first rejections, with line numbers.
    pub reasons: Vec<Rejection>,
}

impl FileSummary {
    fn new(kind: &str, path: &Path) -> Self {
        FileSummary {
            kind: kind.to_string(),
            path: path.to_path_buf(),
            rows_read: 0,
            accepted: 0,
            duplicates: 0,
            auto_registered: 0,
            rejected: 0,
            reasons: Vec::new(),
        }
    }

    fn reject(&mut self, line: u64, reason: impl Into<String>) {
        self.rejected += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(Rejection {
                line,
                reason: reason.into(),
            });
        }
    }
}

/// The whole import, as `--format json` prints it.
#[derive(Debug, Serialize)]
struct Summary {
    database: PathBuf,
    created: bool,
    files: Vec<FileSummary>,
}

/// An open input file (CSV, or JSON Lines for `*.jsonl` and `*.ndjson`) with its header.
struct CsvFile {
    path: PathBuf,
    size: u64,
    reader: Reader,
    header: Vec<String>,
}

enum Reader {
    Csv(csv::Reader<File>),
    Jsonl(JsonlReader),
}

/// JSON Lines: the header is the first object's keys; every line is one object.
struct JsonlReader {
    lines: BufReader<File>,
    /// Line number of the last line read (1-based).
    line: u64,
    /// Bytes read so far.
    pos: u64,
    buf: String,
    /// The first object, read to learn the header, with its line.
    pending: Option<(u64, serde_json::Map<String, serde_json::Value>)>,
}

impl JsonlReader {
    /// The next non-empty line, with its number; `None` at the end.
    fn next_line(&mut self) -> std::io::Result<Option<u64>> {
        loop {
            self.buf.clear();
            let n = self.lines.read_line(&mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.pos += n as u64;
            self.line += 1;
            if !self.buf.trim().is_empty() {
                return Ok(Some(self.line));
            }
        }
    }

    /// Parses the current line as one JSON object.
    fn object(&self) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        match serde_json::from_str::<serde_json::Value>(self.buf.trim()) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => Err("the line is not a JSON object".into()),
            Err(e) => Err(format!("not valid JSON: {e}")),
        }
    }
}

fn is_jsonl(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"))
}

/// A JSON value as the text a CSV cell would hold.
fn json_cell(key: &str, v: &serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(s.trim().to_string()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Null => Ok(String::new()),
        _ => Err(format!(
            "key '{key}': expected a string or a number, found {v}"
        )),
    }
}

impl CsvFile {
    fn open(path: &Path) -> Result<CsvFile> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (reader, header) = if is_jsonl(path) {
            let mut r = JsonlReader {
                lines: BufReader::new(file),
                line: 0,
                pos: 0,
                buf: String::new(),
                pending: None,
            };
            let Some(line) = r
                .next_line()
                .with_context(|| format!("cannot read {}", path.display()))?
            else {
                bail!("{}: the file is empty", path.display());
            };
            let first = r
                .object()
                .map_err(|why| anyhow::anyhow!("{}: line {line}: {why}", path.display()))?;
            let header: Vec<String> = first.keys().cloned().collect();
            r.pending = Some((line, first));
            (Reader::Jsonl(r), header)
        } else {
            let mut reader = csv::ReaderBuilder::new()
                .flexible(true)
                .trim(csv::Trim::All)
                .from_reader(file);
            let header: Vec<String> = reader
                .headers()
                .with_context(|| format!("cannot read the header of {}", path.display()))?
                .iter()
                .map(str::to_string)
                .collect();
            (Reader::Csv(reader), header)
        };
        if header.iter().all(String::is_empty) {
            bail!("{}: the file is empty or has no header", path.display());
        }
        for (i, h) in header.iter().enumerate() {
            if header[..i].contains(h) {
                bail!(
                    "{}: column '{h}' appears twice in the header",
                    path.display()
                );
            }
        }
        Ok(CsvFile {
            path: path.to_path_buf(),
            size,
            reader,
            header,
        })
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Fails unless every header is one of `known` and every one of `required` is present.
    fn check_header(&self, what: &str, known: &[&str], required: &[&str]) -> Result<()> {
        if let Some(h) = self.header.iter().find(|h| !known.contains(&h.as_str())) {
            bail!(
                "{}: unknown column '{h}' in the header ({what} columns are: {})",
                self.path.display(),
                known.join(", ")
            );
        }
        if let Some(r) = required.iter().find(|r| self.index(r).is_none()) {
            bail!(
                "{}: the header lacks the required column '{r}' ({what} columns are: {})",
                self.path.display(),
                known.join(", ")
            );
        }
        Ok(())
    }

    /// The next record with its line number, or `None` at the end. A record that is not
    /// valid CSV (bad UTF-8) or JSON is an `Err` with the line.
    fn next(&mut self, record: &mut csv::StringRecord) -> Result<Option<u64>, (u64, String)> {
        match &mut self.reader {
            Reader::Csv(r) => match r.read_record(record) {
                Ok(true) => Ok(Some(record.position().map_or(0, |p| p.line()))),
                Ok(false) => Ok(None),
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    Err((line, e.to_string()))
                }
            },
            Reader::Jsonl(r) => {
                let (line, obj) = match r.pending.take() {
                    Some(p) => p,
                    None => {
                        let line = match r.next_line() {
                            Ok(Some(l)) => l,
                            Ok(None) => return Ok(None),
                            Err(e) => return Err((r.line + 1, e.to_string())),
                        };
                        (line, r.object().map_err(|why| (line, why))?)
                    }
                };
                if let Some(k) = obj.keys().find(|k| !self.header.contains(k)) {
                    return Err((
                        line,
                        format!("key '{k}' is not among the first line's keys"),
                    ));
                }
                record.clear();
                for h in &self.header {
                    match obj.get(h) {
                        Some(v) => record.push_field(&json_cell(h, v).map_err(|why| (line, why))?),
                        None => record.push_field(""),
                    }
                }
                Ok(Some(line))
            }
        }
    }

    fn byte_pos(&self) -> u64 {
        match &self.reader {
            Reader::Csv(r) => r.position().byte(),
            Reader::Jsonl(r) => r.pos,
        }
    }

    fn field_count_ok(&self, record: &csv::StringRecord) -> Result<(), String> {
        if record.len() == self.header.len() {
            Ok(())
        } else {
            Err(format!(
                "expected {} fields, found {}",
                self.header.len(),
                record.len()
            ))
        }
    }
}

/// The header of a devices file, as `import` reads it and `gen` and `export` write it.
pub const DEVICE_COLUMNS: &[&str] = &[
    "device_id",
    "model",
    "capacity_kg",
    "firmware",
    "installed_at",
    "lat",
    "lon",
    "postcode",
    "region",
    "segment",
];
/// The header of a postcode table.
pub const POSTCODE_COLUMNS: &[&str] = &["postcode", "region", "segment"];

/// Where each stored column comes from in a stream file.
struct StreamLayout {
    stream: StreamDef,
    ts: usize,
    device: usize,
    /// (CSV field, schema column) for each column the file has.
    columns: Vec<(usize, usize)>,
}

impl StreamLayout {
    fn new(file: &CsvFile, stream: &StreamDef) -> Result<StreamLayout> {
        let mut known = vec!["ts", "device_id"];
        known.extend(stream.columns.iter().map(|c| c.name.as_str()));
        let required: Vec<&str> = ["ts", "device_id"]
            .into_iter()
            .chain(
                stream
                    .columns
                    .iter()
                    .filter(|c| c.default.is_none())
                    .map(|c| c.name.as_str()),
            )
            .collect();
        file.check_header(&format!("'{}'", stream.name), &known, &required)?;
        let columns = stream
            .columns
            .iter()
            .enumerate()
            .filter_map(|(ci, c)| file.index(&c.name).map(|fi| (fi, ci)))
            .collect();
        Ok(StreamLayout {
            stream: stream.clone(),
            ts: file.index("ts").unwrap_or(0),
            device: file.index("device_id").unwrap_or(0),
            columns,
        })
    }

    fn empty_batch(&self, capacity: usize) -> (Batch, Vec<u64>) {
        let mut b = Batch::new(&self.stream.name);
        b.ts.reserve(capacity);
        b.device.reserve(capacity);
        for &(_, ci) in &self.columns {
            let c = &self.stream.columns[ci];
            let values = if c.is_categorical() {
                Values::Text(Vec::with_capacity(capacity))
            } else {
                Values::Float(Vec::with_capacity(capacity))
            };
            b.columns.push((c.name.clone(), values));
        }
        (b, Vec::with_capacity(capacity))
    }

    /// Parses one record into the batch; on error the batch is unchanged.
    fn push(&self, record: &csv::StringRecord, batch: &mut Batch) -> Result<(), String> {
        let field = |i: usize| record.get(i).unwrap_or("");
        let ts = parse_ts(field(self.ts))?;
        let device = field(self.device);
        if device.is_empty() {
            return Err("empty device_id".into());
        }
        // Parse every cell before pushing any, so a bad cell leaves the batch unchanged.
        let mut floats: Vec<f64> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        for &(fi, ci) in &self.columns {
            let col = &self.stream.columns[ci];
            let mut cell = field(fi);
            if cell.is_empty() {
                match &col.default {
                    Some(d) => cell = d.as_str(),
                    None => return Err(format!("column '{}': empty value", col.name)),
                }
            }
            match col.kind {
                ColumnKind::Categorical { .. } => texts.push(cell.to_string()),
                ColumnKind::Numeric { .. } => floats.push(
                    cell.parse::<f64>()
                        .map_err(|_| format!("column '{}': '{cell}' is not a number", col.name))?,
                ),
            }
        }
        batch.ts.push(ts);
        batch.device.push(device.to_string());
        let (mut f, mut t) = (floats.into_iter(), texts.into_iter());
        for (_, values) in &mut batch.columns {
            match values {
                Values::Float(v) => v.extend(f.next()),
                Values::Text(v) => v.extend(t.next()),
                Values::Int(_) => {}
            }
        }
        Ok(())
    }
}

fn remove_row(batch: &mut Batch, row: usize) {
    batch.ts.remove(row);
    batch.device.remove(row);
    for (_, values) in &mut batch.columns {
        match values {
            Values::Float(v) => {
                v.remove(row);
            }
            Values::Int(v) => {
                v.remove(row);
            }
            Values::Text(v) => {
                v.remove(row);
            }
        }
    }
}

/// The batch row an engine error blames, if it blames one.
fn blamed_row(err: &InputError, batch: &Batch) -> Option<usize> {
    match err {
        InputError::NotFinite { row, .. }
        | InputError::OutOfRange { row, .. }
        | InputError::UnknownCategory { row, .. }
        | InputError::TimestampOutOfRange { row, .. }
        | InputError::UnknownDevice { row, .. } => Some(*row),
        InputError::InvalidSerial { serial, .. } => batch.device.iter().position(|d| d == serial),
        _ => None,
    }
    .filter(|&r| r < batch.len())
}

/// The engine's message without its batch-relative `row N, ` prefix (the line replaces it).
fn reason_without_row(err: &InputError) -> String {
    let msg = err.to_string();
    match msg.strip_prefix("row ").and_then(|r| r.split_once(", ")) {
        Some((n, rest)) if n.bytes().all(|b| b.is_ascii_digit()) => rest.to_string(),
        _ => msg,
    }
}

/// Appends a batch, dropping (and rejecting) each row the engine blames, until the rest is
/// accepted or the batch is empty.
fn append_batch(
    db: &Db,
    mut batch: Batch,
    mut lines: Vec<u64>,
    summary: &mut FileSummary,
) -> Result<()> {
    while !batch.is_empty() {
        match db.append(&batch) {
            Ok(report) => {
                summary.accepted += report.accepted;
                summary.duplicates += report.duplicates;
                summary.auto_registered += report.registered;
                return Ok(());
            }
            Err(hearth::Error::Input(e)) => {
                let Some(row) = blamed_row(&e, &batch) else {
                    return Err(anyhow::Error::new(e)
                        .context(format!("{}: the batch was refused", summary.path.display())));
                };
                summary.reject(lines[row], reason_without_row(&e));
                remove_row(&mut batch, row);
                lines.remove(row);
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "appending rows from {} (before line {})",
                    summary.path.display(),
                    lines.first().copied().unwrap_or(0)
                )))
            }
        }
    }
    Ok(())
}

fn import_stream(
    db: &Db,
    mut file: CsvFile,
    layout: &StreamLayout,
    args: &ImportArgs,
) -> Result<FileSummary> {
    let mut summary = FileSummary::new(&layout.stream.name, &file.path);
    let cap = args.batch_rows as usize;
    let bar = out::progress(file.size, args.quiet, &layout.stream.name, true);
    let mut record = csv::StringRecord::new();
    let (mut batch, mut lines) = layout.empty_batch(cap);
    loop {
        let line = match file.next(&mut record) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err((line, why)) => {
                summary.rows_read += 1;
                summary.reject(line, why);
                continue;
            }
        };
        summary.rows_read += 1;
        let parsed = file
            .field_count_ok(&record)
            .and_then(|()| layout.push(&record, &mut batch));
        match parsed {
            Ok(()) => lines.push(line),
            Err(why) => summary.reject(line, why),
        }
        if batch.len() >= cap {
            let (next, next_lines) = layout.empty_batch(cap);
            append_batch(
                db,
                std::mem::replace(&mut batch, next),
                std::mem::replace(&mut lines, next_lines),
                &mut summary,
            )?;
            bar.set_position(file.byte_pos());
        }
    }
    append_batch(db, batch, lines, &mut summary)?;
    bar.finish_and_clear();
    Ok(summary)
}

fn parse_device(file: &CsvFile, record: &csv::StringRecord) -> Result<DeviceInfo, String> {
    file.field_count_ok(record)?;
    let get = |name: &str| file.index(name).and_then(|i| record.get(i)).unwrap_or("");
    let num = |name: &str| -> Result<f64, String> {
        let v = get(name);
        if v.is_empty() {
            return Ok(0.0);
        }
        v.parse::<f64>()
            .map_err(|_| format!("column '{name}': '{v}' is not a number"))
    };
    let serial = get("device_id");
    if serial.is_empty() {
        return Err("empty device_id".into());
    }
    let installed = get("installed_at");
    Ok(DeviceInfo {
        serial: serial.to_string(),
        model: get("model").to_string(),
        capacity_kg: num("capacity_kg")?,
        firmware: get("firmware").to_string(),
        installed_at: if installed.is_empty() {
            0
        } else {
            parse_ts(installed).map_err(|e| format!("column 'installed_at': {e}"))?
        },
        lat: num("lat")?,
        lon: num("lon")?,
        postcode: get("postcode").to_string(),
        region: get("region").to_string(),
        segment: get("segment").to_string(),
    })
}

fn register_chunk(
    db: &Db,
    mut devices: Vec<(u64, DeviceInfo)>,
    summary: &mut FileSummary,
) -> Result<()> {
    while !devices.is_empty() {
        let infos: Vec<DeviceInfo> = devices.iter().map(|(_, d)| d.clone()).collect();
        match db.register_all(infos) {
            Ok(ids) => {
                summary.accepted += ids.len() as u64;
                return Ok(());
            }
            Err(hearth::Error::Input(e)) => {
                let serial = match &e {
                    InputError::InvalidDevice { serial, .. }
                    | InputError::InvalidSerial { serial, .. } => serial,
                    _ => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("{}: registration refused", summary.path.display())))
                    }
                };
                let Some(pos) = devices.iter().position(|(_, d)| &d.serial == serial) else {
                    return Err(anyhow::Error::new(e)
                        .context(format!("{}: registration refused", summary.path.display())));
                };
                let (line, _) = devices.remove(pos);
                summary.reject(line, e.to_string());
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "registering devices from {}",
                    summary.path.display()
                )))
            }
        }
    }
    Ok(())
}

fn import_devices(db: &Db, mut file: CsvFile, args: &ImportArgs) -> Result<FileSummary> {
    let mut summary = FileSummary::new("devices", &file.path);
    let bar = out::progress(file.size, args.quiet, "devices", true);
    let mut record = csv::StringRecord::new();
    let mut chunk = Vec::new();
    loop {
        let line = match file.next(&mut record) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err((line, why)) => {
                summary.rows_read += 1;
                summary.reject(line, why);
                continue;
            }
        };
        summary.rows_read += 1;
        match parse_device(&file, &record) {
            Ok(d) => chunk.push((line, d)),
            Err(why) => summary.reject(line, why),
        }
        if chunk.len() as u64 >= args.batch_rows {
            register_chunk(db, std::mem::take(&mut chunk), &mut summary)?;
            bar.set_position(file.byte_pos());
        }
    }
    register_chunk(db, chunk, &mut summary)?;
    bar.finish_and_clear();
    Ok(summary)
}

fn import_postcodes(db: &Db, mut file: CsvFile) -> Result<FileSummary> {
    let mut summary = FileSummary::new("postcodes", &file.path);
    let (p, r, s) = (
        file.index("postcode").unwrap_or(0),
        file.index("region").unwrap_or(1),
        file.index("segment").unwrap_or(2),
    );
    let mut record = csv::StringRecord::new();
    let mut table = Vec::new();
    loop {
        let line = match file.next(&mut record) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err((line, why)) => {
                summary.rows_read += 1;
                summary.reject(line, why);
                continue;
            }
        };
        summary.rows_read += 1;
        if let Err(why) = file.field_count_ok(&record) {
            summary.reject(line, why);
            continue;
        }
        let get = |i: usize| record.get(i).unwrap_or("").to_string();
        if get(p).is_empty() {
            summary.reject(line, "empty postcode");
            continue;
        }
        table.push(PostcodeEntry {
            postcode: get(p),
            region: get(r),
            segment: get(s),
        });
    }
    db.set_postcodes(&table)
        .with_context(|| format!("loading the postcode table from {}", file.path.display()))?;
    summary.accepted = table.len() as u64;
    Ok(summary)
}

/// True when `dir` holds a hearth database (its manifest).
pub fn is_database(dir: &Path) -> bool {
    dir.join("MANIFEST").is_file()
}

pub fn run(args: &ImportArgs) -> Result<ExitCode> {
    // Open every file and check every header before the database is created or touched.
    let postcodes = args.postcodes.as_deref().map(CsvFile::open).transpose()?;
    let devices = CsvFile::open(&args.devices)?;
    let cycles = args.cycles.as_deref().map(CsvFile::open).transpose()?;
    let samples = args.samples.as_deref().map(CsvFile::open).transpose()?;
    if let Some(f) = &postcodes {
        f.check_header("postcode table", POSTCODE_COLUMNS, POSTCODE_COLUMNS)?;
    }
    devices.check_header("devices", DEVICE_COLUMNS, &["device_id"])?;

    let exists = is_database(&args.db);
    let (db, schema) = if exists {
        let db = open(args, None)?;
        let schema = db.schema().clone();
        (Some(db), schema)
    } else {
        (None, Schema::washing_machine())
    };
    let stream_layout = |file: &CsvFile, name: &str| -> Result<StreamLayout> {
        let def = schema
            .stream(name)
            .with_context(|| format!("the database has no '{name}' stream"))?;
        StreamLayout::new(file, def)
    };
    let cycles = cycles
        .map(|f| stream_layout(&f, "cycles").map(|l| (f, l)))
        .transpose()?;
    let samples = samples
        .map(|f| stream_layout(&f, "samples").map(|l| (f, l)))
        .transpose()?;
    let db = match db {
        Some(db) => db,
        None => open(args, Some(schema))?,
    };

    let mut files = Vec::new();
    if let Some(f) = postcodes {
        files.push(import_postcodes(&db, f)?);
    }
    files.push(import_devices(&db, devices, args)?);
    for (file, layout) in cycles.into_iter().chain(samples) {
        files.push(import_stream(&db, file, &layout, args)?);
    }
    db.flush()
        .with_context(|| format!("flushing {}", args.db.display()))?;

    let summary = Summary {
        database: args.db.clone(),
        created: !exists,
        files,
    };
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, &summary)?;
            writeln!(stdout)?;
        }
        Format::Csv => {
            let mut rows = out::Rows::new(
                &mut stdout,
                Format::Csv,
                [
                    "file",
                    "kind",
                    "rows_read",
                    "accepted",
                    "duplicates",
                    "auto_registered",
                    "rejected",
                ]
                .iter()
                .map(|c| c.to_string())
                .collect(),
            )?;
            for f in &summary.files {
                rows.row(vec![
                    out::Cell::Text(f.path.display().to_string()),
                    out::Cell::Text(f.kind.clone()),
                    out::Cell::Count(f.rows_read),
                    out::Cell::Count(f.accepted),
                    out::Cell::Count(f.duplicates),
                    out::Cell::Count(f.auto_registered),
                    out::Cell::Count(f.rejected),
                ])?;
            }
            rows.finish()?;
        }
        Format::Table => write_summary(&mut stdout, &summary)?,
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn open(args: &ImportArgs, schema: Option<Schema>) -> Result<Db> {
    let opts = Options {
        schema,
        unknown_devices: if args.auto_register {
            UnknownDevices::AutoRegister
        } else {
            UnknownDevices::Reject
        },
        k_anonymity: args.k_anonymity,
        ..Options::default()
    };
    Db::open(&args.db, opts).with_context(|| format!("cannot open database {}", args.db.display()))
}

fn write_summary(w: &mut impl Write, s: &Summary) -> std::io::Result<()> {
    writeln!(
        w,
        "Imported into {} ({})",
        s.database.display(),
        if s.created {
            "new database"
        } else {
            "existing database"
        }
    )?;
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "file",
        "kind",
        "rows read",
        "accepted",
        "duplicates dropped",
        "rejected",
    ]);
    for f in &s.files {
        t.add_row(vec![
            f.path.display().to_string(),
            f.kind.clone(),
            out::count(f.rows_read),
            out::count(f.accepted),
            out::count(f.duplicates),
            out::count(f.rejected),
        ]);
    }
    for i in 2..6 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    writeln!(w, "{t}")?;
    for f in &s.files {
        if f.auto_registered > 0 {
            writeln!(
                w,
                "{}: {} devices registered automatically",
                f.path.display(),
                out::count(f.auto_registered)
            )?;
        }
        if f.rejected == 0 {
            continue;
        }
        writeln!(w, "Rejected rows in {}:", f.path.display())?;
        for r in &f.reasons {
            writeln!(w, "  line {}: {}", r.line, r.reason)?;
        }
        if f.rejected > f.reasons.len() as u64 {
            writeln!(
                w,
                "  ... and {} more",
                out::count(f.rejected - f.reasons.len() as u64)
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_reason_loses_the_batch_row() {
        let e = InputError::OutOfRange {
            row: 12,
            column: "load_kg".into(),
            value: 45.0,
            min: 0.0,
            max: 30.0,
        };
        assert_eq!(
            reason_without_row(&e),
            "column 'load_kg': 45 is outside [0, 30]"
        );
        let e = InputError::Invalid("rows 1, 2".into());
        assert_eq!(reason_without_row(&e), "rows 1, 2");
    }

    #[test]
    fn removing_a_row_keeps_columns_aligned() {
        let mut b = Batch::new("cycles")
            .with("load_kg", Values::Float(vec![1.0, 2.0, 3.0]))
            .with(
                "program",
                Values::Text(vec!["a".into(), "b".into(), "c".into()]),
            );
        b.ts = vec![10, 20, 30];
        b.device = vec!["x".into(), "y".into(), "z".into()];
        remove_row(&mut b, 1);
        assert_eq!(b.ts, vec![10, 30]);
        assert_eq!(b.device, vec!["x".to_string(), "z".to_string()]);
        assert_eq!(b.columns[0].1, Values::Float(vec![1.0, 3.0]));
        assert_eq!(b.columns[1].1, Values::Text(vec!["a".into(), "c".into()]));
    }
}
