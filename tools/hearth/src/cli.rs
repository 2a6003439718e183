//! Command-line arguments (clap derive). Every command's `--help` ends with an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// hearth: an embedded time-series store for washing-machine telemetry.
#[derive(Debug, Parser)]
#[command(name = "hearth", version, about, propagate_version = true)]
#[command(
    after_help = "Examples:\n  hearth demo\n  hearth import db --devices devices.csv --cycles cycles.csv\n  hearth info db --format json\n  hearth verify db"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import devices, postcodes, cycles and samples from CSV files.
    Import(ImportArgs),
    /// Show devices, rows, segments and sizes of a database.
    Info(InfoArgs),
    /// Check every checksum of a database.
    Verify(VerifyArgs),
    /// Simulate a small fleet, ingest it and show what hearth stores.
    Demo(DemoArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable tables.
    #[default]
    Table,
    /// One JSON document on stdout.
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
Rows that cannot be parsed or that the engine refuses are skipped and listed with their line \
numbers; the exit status is 0 when the import ran, 1 when it could not (bad header, unreadable \
file, I/O error).\n\n\
Example:\n  hearth import ./db --devices devices.csv --postcodes postcodes.csv --cycles cycles.csv")]
pub struct ImportArgs {
    /// Database directory (created with the washing-machine schema if it does not exist).
    pub db: PathBuf,
    /// Devices CSV file (registered before any rows).
    #[arg(long, value_name = "FILE")]
    pub devices: PathBuf,
    /// Cycles CSV file (one row per wash).
    #[arg(long, value_name = "FILE")]
    pub cycles: Option<PathBuf>,
    /// Samples CSV file (2 Hz readings while a wash runs).
    #[arg(long, value_name = "FILE")]
    pub samples: Option<PathBuf>,
    /// Postcode table CSV file; fills empty region and segment of devices.
    #[arg(long, value_name = "FILE")]
    pub postcodes: Option<PathBuf>,
    /// Rows per appended batch.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_rows: u64,
    /// Register devices that rows name but the devices file does not (empty attributes).
    #[arg(long)]
    pub auto_register: bool,
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
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=3650))]
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
