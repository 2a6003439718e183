//! Command-line arguments (clap derive). Every command's `--help` ends with an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// hearth: an embedded time-series store for washing-machine telemetry.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about, propagate_version = true)]
#[command(
    after_help = "Examples:\n  hearth demo\n  hearth gen --devices 500 --days 90 --out data\n  hearth import db --devices data/devices.csv --cycles data/cycles.csv\n  hearth device db WM-00000001 health\n  hearth fleet db programs --by region --period month\n  hearth report db --out report.html\n\nExit status: 0 success, 1 a data or I/O error, 2 a usage error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a fleet, ingest it and answer the brief's questions.
    Demo(DemoArgs),
    /// Write a simulated fleet's data as CSV or JSON Lines files.
    Gen(GenArgs),
    /// Import devices, postcodes, cycles and samples from CSV or JSON Lines files.
    Import(ImportArgs),
    /// Questions about one device: last cycles, usage summary, health, 2 Hz trace.
    Device(DeviceArgs),
    /// Fleet-wide questions: settings by region, loads, rare programs, statistics, ...
    Fleet(FleetArgs),
    /// Raw rows of a stream (one device or all).
    Dump(DumpArgs),
    /// Show devices, rows, segments and sizes of a database.
    Info(InfoArgs),
    /// Check every checksum of a database.
    Verify(VerifyArgs),
    /// Merge every time window's segments into one.
    Compact(CompactArgs),
    /// Write a self-contained HTML report with charts.
    Report(ReportArgs),
    /// Export everything held about one device (JSON, or CSV files); recorded in the audit log.
    Export(ExportArgs),
    /// Erase a device everywhere (right to erasure); recorded in the audit log.
    Erase(EraseArgs),
    /// Remove the last bytes of erased devices: rewrite only the segments holding them.
    Purge(PurgeArgs),
    /// List the audit log: exports, erasures, purges (and retention runs).
    Audit(AuditArgs),
    /// Time the per-device and fleet questions on a database: p50 and p99 per question.
    Bench(BenchArgs),
    /// Retention periods per stream: show them, set one (and apply it now), or apply them.
    Retention(RetentionArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable tables.
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// JSON: an array of row objects, or one object.
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = "CSV headers:\n  \
devices:   device_id,model,capacity_kg,firmware,installed_at,lat,lon,postcode,region,segment\n  \
postcodes: postcode,region,segment\n  \
cycles:    ts,device_id,program,temp_setting_c,spin_setting_rpm,load_kg,duration_s,energy_wh,\n             \
water_l,fill_time_s,max_vibration_g[,detergent_ml][,error_code]\n  \
samples:   ts,device_id,phase,drum_rpm,water_temp_c,power_w,vibration_g\n\
Columns may come in any order; `ts` is epoch milliseconds or RFC 3339.\n\
A file named *.jsonl or *.ndjson is read as JSON Lines: one object per line with the same keys \
(strings or numbers; a key missing from a line is an empty value; every line has only keys of \
the first line).\n\
Rows that cannot be parsed or that the engine refuses are skipped and listed with their line \
numbers; the exit status is 0 when the import ran, 1 when it could not (bad header, unreadable \
file, I/O error).\n\n\
Examples:\n  hearth import ./db --devices devices.csv --postcodes postcodes.csv --cycles cycles.csv\n  \
hearth import ./db --devices data/devices.jsonl --cycles data/cycles.jsonl --samples data/samples.jsonl")]
pub struct ImportArgs {
    /// Database directory (created with the washing-machine schema if it does not exist).
    pub db: PathBuf,
    /// Devices file (registered before any rows).
    #[arg(long, value_name = "FILE")]
    pub devices: PathBuf,
    /// Cycles file (one row per wash).
    #[arg(long, value_name = "FILE")]
    pub cycles: Option<PathBuf>,
    /// Samples file (2 Hz readings while a wash runs).
    #[arg(long, value_name = "FILE")]
    pub samples: Option<PathBuf>,
    /// Postcode table file; fills empty region and segment of devices.
    #[arg(long, value_name = "FILE")]
    pub postcodes: Option<PathBuf>,
    /// Rows per appended batch.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_rows: u64,
    /// Register devices that rows name but the devices file does not (empty attributes).
    #[arg(long)]
    pub auto_register: bool,
    /// Store this k-anonymity setting with the database: fleet answers never report a group
    /// of fewer distinct devices (default: keep the stored one; 5 for a new database).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub k_anonymity: Option<u32>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Summary format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  hearth info ./db\n  hearth info ./db --format json | jq '.streams[0].segment_rows'"
)]
pub struct InfoArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Opens the database (manifest, registry, schema, segment footers) and reads \
every row of every stream (every block checksum). Exits 0 when all is well, 1 on damage, naming \
the file and the byte offset.\n\nExample:\n  hearth verify ./db"
)]
pub struct VerifyArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  hearth demo\n  hearth demo /tmp/fleet --devices 500 --days 30 --seed 7"
)]
pub struct DemoArgs {
    /// Directory for the demo database; an earlier demo database there is replaced, anything
    /// else is left alone.
    #[arg(default_value = "hearth-demo-db")]
    pub dir: PathBuf,
    /// Simulated washing machines.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub devices: u64,
    /// Simulated days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub days: u64,
    /// Random seed (same seed, same fleet).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Output format of the final report.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `--from`/`--to`: a date (`2025-03-01`, its midnight UTC), an RFC 3339 date-time or
/// epoch milliseconds.
fn instant(s: &str) -> Result<i64, String> {
    crate::time::parse_instant(s)
}

/// A period: `--from` inclusive, `--to` exclusive.
#[derive(Debug, Clone, Copy, Args, Default)]
pub struct Period {
    /// Start of the period (inclusive): YYYY-MM-DD, RFC 3339 or epoch ms [default: the
    /// first day with data].
    #[arg(long, value_name = "WHEN", value_parser = instant)]
    pub from: Option<i64>,
    /// End of the period (exclusive): YYYY-MM-DD, RFC 3339 or epoch ms [default: the end of
    /// the last day with data].
    #[arg(long, value_name = "WHEN", value_parser = instant)]
    pub to: Option<i64>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Writes DIR/devices, DIR/postcodes, DIR/cycles and (unless --trace-share \
is 0) DIR/samples, as .csv or .jsonl, in the order an ingestion service receives them: with the \
simulator's planted faults (failing inlet valves, worn bearings), duplicate messages and late, \
out-of-order rows. `hearth import` reads them back.\n\n\
Examples:\n  hearth gen --devices 200 --days 60 --seed 7 --out data\n  \
hearth gen --devices 200 --days 60 --out data --format jsonl\n  \
hearth import db --devices data/devices.csv --postcodes data/postcodes.csv --cycles data/cycles.csv --samples data/samples.csv"
)]
pub struct GenArgs {
    /// Simulated washing machines.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub devices: u64,
    /// Simulated days (from 2025-01-01).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub days: u64,
    /// Random seed (same seed, same files).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory (created if missing; existing files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value_t)]
    pub format: FileFormat,
    /// Share of machines that upload 2 Hz traces of some washes (0 writes no samples file).
    #[arg(long, default_value_t = 0.05, value_parser = share)]
    pub trace_share: f64,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number between 0 and 1")),
    }
}

/// Data file format of `hearth gen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FileFormat {
    /// Comma-separated values with a header line.
    #[default]
    Csv,
    /// JSON Lines: one object per line.
    Jsonl,
}

/// What `hearth device` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceQuery {
    /// C1: the last cycles, newest first (--n).
    Last,
    /// C2: usage over whole weeks (default: the last 13 weeks), with advice.
    Summary,
    /// C3: health verdict (ok, watch, service) with its evidence, at --to.
    Health,
    /// C4: the 2 Hz samples of one wash (--cycle; default: the last traced wash).
    Trace,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Answers from the per-device rollups (summary, health) or the device's \
newest rows (last, trace). An unknown serial is an error (exit 1).\n\n\
Examples:\n  hearth device db WM-00000001 last --n 5\n  \
hearth device db WM-00000001 summary --from 2025-01-06 --to 2025-04-07\n  \
hearth device db WM-00000001 health --format json\n  \
hearth device db WM-00000001 trace --cycle 2025-03-01T07:30:00Z --format csv"
)]
pub struct DeviceArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Device serial, e.g. WM-00000001.
    pub serial: String,
    /// The question.
    #[arg(value_enum)]
    pub query: DeviceQuery,
    #[command(flatten)]
    pub range: Period,
    /// Cycles to show (last).
    #[arg(long, short, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub n: u64,
    /// Start of the wash to trace (trace): YYYY-MM-DD, RFC 3339 or epoch ms, exactly as `last`
    /// shows it.
    #[arg(long, value_name = "WHEN", value_parser = instant)]
    pub cycle: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// What `hearth fleet` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetQueryKind {
    /// C5: every device's latest cycle.
    Snapshot,
    /// C5: devices whose health verdict is watch or service (the support list).
    Service,
    /// D1: cycles by a setting (--setting) and an attribute (--by), per --period.
    Programs,
    /// D2: loads per drum capacity.
    Loads,
    /// D3: programs used in less than --max-share of a group's cycles (--by, default model).
    Rare,
    /// D4: energy and water per cycle by program and temperature.
    Energy,
    /// D5: light, medium and heavy users per group (--by, default segment).
    Bands,
    /// D6: one-way ANOVA of --measure across groups (--by, default segment).
    Anova,
    /// D7: chi-square test of --setting against --by (default region).
    Chi2,
    /// D8: cycles by hour of day (UTC) and weekday.
    Hours,
}

/// A device attribute to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// Region.
    Region,
    /// Socio-economic segment (A..O).
    Segment,
    /// Machine model.
    Model,
    /// Drum capacity (kg).
    #[value(alias = "capacity_kg")]
    Capacity,
}

impl By {
    /// The library's attribute.
    pub fn attribute(self) -> hearth::Attribute {
        match self {
            By::Region => hearth::Attribute::Region,
            By::Segment => hearth::Attribute::Segment,
            By::Model => hearth::Attribute::Model,
            By::Capacity => hearth::Attribute::Capacity,
        }
    }
}

/// A calendar bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PeriodGrain {
    /// UTC day (YYYY-MM-DD).
    Day,
    /// Monday to Sunday (YYYY-Www, ISO 8601).
    Week,
    /// Calendar month (YYYY-MM).
    Month,
    /// Calendar quarter (YYYY-Qn).
    Quarter,
    /// Calendar year (YYYY).
    Year,
}

impl PeriodGrain {
    /// The library's grain.
    pub fn grain(self) -> hearth::Grain {
        match self {
            PeriodGrain::Day => hearth::Grain::Day,
            PeriodGrain::Week => hearth::Grain::Week,
            PeriodGrain::Month => hearth::Grain::Month,
            PeriodGrain::Quarter => hearth::Grain::Quarter,
            PeriodGrain::Year => hearth::Grain::Year,
        }
    }
}

/// How a fleet question is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum PlanArg {
    /// From a rollup when one covers the question, else by scanning raw rows.
    #[default]
    Auto,
    /// From a rollup only (an error when none covers the question).
    Rollup,
    /// By scanning raw rows (same answer, slower: a cross-check).
    Scan,
}

#[derive(Debug, Args)]
#[command(after_help = "Queries and their options:\n  \
snapshot   every device's latest cycle\n  \
service    devices whose health verdict is watch or service (device_id, verdict, reason); --to\n  \
programs   cycles by --setting (program) and --by (region), per --period; --devices\n  \
loads      loads per drum capacity\n  \
rare       programs under --max-share (0.02) of a group's cycles; --by (model)\n  \
energy     energy and water per cycle by program and temperature\n  \
bands      light (< --light-below 3), medium, heavy (> --heavy-above 7 cycles a week) users; --by (segment)\n  \
anova      one-way ANOVA of --measure (energy_wh) across --by (segment)\n  \
chi2       chi-square of --setting (program) against --by (region)\n  \
hours      cycles by hour of day (UTC) and weekday\n\
Every query takes --from/--to (default: all data) and --format; `--plan scan` answers from raw \
rows instead of the rollups (the same answer).\n\
Every query but snapshot and service (support-side: they list devices) is k-anonymous: a group \
with fewer than k distinct devices is left out and named; k is the database's setting (5 unless \
`import --k-anonymity` stored another) and `--k N` raises it, never lowers it.\n\n\
Examples:\n  hearth fleet db programs --by region --period month\n  \
hearth fleet db anova --measure energy_wh --by segment\n  \
hearth fleet db chi2 --setting program --by region --format json\n  \
hearth fleet db service --format csv")]
pub struct FleetArgs {
    /// Database directory.
    pub db: PathBuf,
    /// The question.
    #[arg(value_enum)]
    pub query: FleetQueryKind,
    #[command(flatten)]
    pub range: Period,
    /// Device attribute to group by.
    #[arg(long, value_enum)]
    pub by: Option<By>,
    /// Time buckets (programs): day, week, month, quarter or year.
    #[arg(long = "period", value_enum, value_name = "GRAIN")]
    pub period: Option<PeriodGrain>,
    /// The measure compared (anova): energy_wh, load_kg, water_l (per cycle) or
    /// cycles_per_week (per device).
    #[arg(long, value_parser = ["energy_wh", "load_kg", "water_l", "cycles_per_week"])]
    pub measure: Option<String>,
    /// The setting (programs, chi2): program, temp_setting_c or spin_setting_rpm.
    #[arg(long, value_parser = ["program", "temp_setting_c", "spin_setting_rpm"])]
    pub setting: Option<String>,
    /// Also count distinct devices per group (programs).
    #[arg(long)]
    pub devices: bool,
    /// Largest share of a group's cycles that counts as rare (rare).
    #[arg(long, value_parser = share)]
    pub max_share: Option<f64>,
    /// Light users run fewer cycles a week than this (bands).
    #[arg(long)]
    pub light_below: Option<f64>,
    /// Heavy users run more cycles a week than this (bands).
    #[arg(long)]
    pub heavy_above: Option<f64>,
    /// How to answer.
    #[arg(long, value_enum, default_value_t)]
    pub plan: PlanArg,
    /// Leave out groups with fewer than K distinct devices (at least the database's
    /// k-anonymity setting, which is the default).
    #[arg(long, value_name = "K")]
    pub k: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Rows come sorted by device, then time; `ts` in RFC 3339 (UTC). The CSV \
form is what `hearth import` reads.\n\n\
Examples:\n  hearth dump db --stream cycles --device WM-00000001 --from 2025-03-01\n  \
hearth dump db --stream cycles --format csv > cycles.csv\n  \
hearth dump db --stream samples --device WM-00000007 --format json | jq length"
)]
pub struct DumpArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Stream: cycles or samples.
    #[arg(long)]
    pub stream: String,
    /// Only this device.
    #[arg(long, value_name = "SERIAL")]
    pub device: Option<String>,
    #[command(flatten)]
    pub range: Period,
    /// At most this many rows.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Flushes rows still in memory, then merges each time window's \
segments into one (duplicates dropped, rollup files recomputed). Queries answer the same \
before and after.\n\nExample:\n  hearth compact ./db"
)]
pub struct CompactArgs {
    /// Database directory.
    pub db: PathBuf,
    /// No progress indicator.
    #[arg(long, short)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Times each question in this process on the database's own files: per-device \
questions (c1 last 10 cycles, c2 usage over --c2-weeks weeks, 13 by default, c3 health) each call about a device drawn \
at random; fleet questions (d1 programs by region and month, d2 loads, d3 rare programs, d4 \
energy and water, d5 usage bands, d6 ANOVA, d7 chi-square, d8 hours) over the last year of \
the data. One untimed call first, then --runs timed calls: p50 and p99 in microseconds. JSON \
rows: {\"query\", \"runs\", \"p50_us\", \"p99_us\"}.\n\n\
Example:\n  hearth bench ./db --queries c1,c2,d1 --runs 1000 --format json"
)]
pub struct BenchArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Questions to time, comma-separated (default: c1,c2,c3,d1,...,d8).
    #[arg(long)]
    pub queries: Option<String>,
    /// Timed calls per question.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub runs: u64,
    /// Seed of the device draw.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Weeks of the usage summary (c2), ending with the data's last week.
    #[arg(long, default_value_t = 13, value_parser = clap::value_parser!(u32).range(1..=520))]
    pub c2_weeks: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "One HTML file with inline SVG charts and no external resources: \
programs by region, load versus drum capacity, usage bands by segment, and the weekly fill \
time and vibration of the devices flagged for service.\n\n\
Example:\n  hearth report ./db --out report.html"
)]
pub struct ReportArgs {
    /// Database directory.
    pub db: PathBuf,
    /// The HTML file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub range: Period,
    /// Flagged devices to chart (worst first).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(0..=50))]
    pub flagged: u64,
}

/// Export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ExportFormat {
    /// One JSON document: registry record, rows of every stream, week cells.
    #[default]
    Json,
    /// A directory of CSV files: `device.csv`, one per stream, one of week cells per stream
    /// with a device rollup (the device and stream files are what `hearth import` reads).
    Csv,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Everything the database holds about the device: its registry record, every row of every stream and its weekly rollups. Each export (and each failed one) is recorded in the database's audit log under a pseudonym of the serial (see `hearth audit`).

Examples:
  hearth export db WM-00000007 --out WM-00000007.json
  hearth export db WM-00000007 --format csv --out WM-00000007/
  hearth import copy --devices WM-00000007/device.csv --cycles WM-00000007/cycles.csv"
)]
pub struct ExportArgs {
    /// Database directory.
    pub db: PathBuf,
    /// The device's serial.
    pub serial: String,
    /// Where to write: a file for JSON (default: stdout), a directory for CSV (required).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ExportFormat,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The device's registry entry (the serial is forgotten at once), its rows in every stream and its contribution to every fleet and device rollup are gone from every answer when the command returns, and the erasure is durable. The bytes of its rows in segment files stay until `hearth purge` (or the compaction of their time window) rewrites them. Recorded in the audit log under a pseudonym of the serial.

Examples:
  hearth erase db WM-00000007
  hearth erase db WM-00000007 --purge"
)]
pub struct EraseArgs {
    /// Database directory.
    pub db: PathBuf,
    /// The device's serial.
    pub serial: String,
    /// Purge right after: rewrite the segments holding its rows now.
    #[arg(long)]
    pub purge: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Flushes buffered rows (so no log file keeps an erased device's rows or serial), rewrites only the segment files that hold rows of erased devices, and publishes a registry that keeps nothing of them. Recorded in the audit log.

Example:
  hearth purge db"
)]
pub struct PurgeArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Each record: sequence number, time (UTC), what was done, the outcome, the device's pseudonym (a keyed hash of its serial; never the serial) and a detail.

Examples:
  hearth audit db
  hearth audit db --device WM-00000007 --format json"
)]
pub struct AuditArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Only the records about this device (matched by its pseudonym).
    #[arg(long, value_name = "SERIAL")]
    pub device: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Without options: lists the policies. With --stream S --keep P: stores S's \
retention period, then applies every policy now. With --apply: applies the stored policies \
(e.g. from a daily job). A run drops each time window of a stream whose whole window ended at \
or before now minus the period (segments, rollup files and the fleet rollups of those rows), \
so a row is kept at least the period and at most the period plus the stream's window (cycles: \
365 days, samples: 7 days). Rows that arrive later for a dropped window are kept until the \
next run. Each run is recorded in the audit log (see `hearth audit`).

Examples:
  hearth retention db
  hearth retention db --stream samples --keep 90d
  hearth retention db --stream cycles --keep 400d --format json
  hearth retention db --apply
  hearth retention db --stream samples --clear"
)]
pub struct RetentionArgs {
    /// Database directory.
    pub db: PathBuf,
    /// The stream whose policy to set (with --keep) or remove (with --clear).
    #[arg(long, value_name = "STREAM")]
    pub stream: Option<String>,
    /// Keep rows at least this long: days (400d) or hours (12h); sets the policy and applies
    /// every policy now.
    #[arg(long, value_name = "PERIOD", value_parser = crate::retention::parse_keep, requires = "stream", conflicts_with = "clear")]
    pub keep: Option<i64>,
    /// With --keep: keep the stream's per-device weekly summaries (what `device usage` and
    /// `device health` read) this long, at least --keep, in device summaries once the raw
    /// rows are gone. Without it the summaries go with the raw rows.
    #[arg(long, value_name = "PERIOD", value_parser = crate::retention::parse_keep, requires = "keep")]
    pub keep_device_rollups: Option<i64>,
    /// Remove the stream's policy (nothing is dropped).
    #[arg(long, requires = "stream")]
    pub clear: bool,
    /// Apply the stored policies now.
    #[arg(long, conflicts_with = "clear")]
    pub apply: bool,
    /// The instant a run applies the policies at (default: now): YYYY-MM-DD, RFC 3339 or
    /// epoch ms.
    #[arg(long, value_name = "WHEN", value_parser = instant)]
    pub now: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}
