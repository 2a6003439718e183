//! Shared by the benchmarks: environment knobs, the simulated fleet's database (with or
//! without the preset's rollups), and resident memory of the process, from
//! `/proc/self/status` (Linux only; elsewhere the figures print as "n/a").

// Each bench binary uses its own part of this module.
#![allow(dead_code)]

use hearth::schema::RollupDefs;
use hearth::sim::Fleet;
use hearth::{Db, Options, Schema, SyncPolicy};

/// The environment variable `name` as a number, or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `schema`, nothing synced (the figures are CPU cost, not fsync latency).
pub fn options(schema: Schema) -> Options {
    Options {
        schema: Some(schema),
        sync: SyncPolicy::Never,
        ..Options::default()
    }
}

/// The washing-machine preset without its rollups (the upkeep comparisons).
pub fn without_rollups() -> Schema {
    let mut s = Schema::washing_machine();
    for st in &mut s.streams {
        st.rollups = RollupDefs::default();
    }
    s
}

/// Opens a database at `path` with the fleet's postcodes and devices registered.
pub fn open(path: &std::path::Path, schema: Schema, fleet: &Fleet) -> Db {
    let db = Db::open(path, options(schema)).expect("open");
    db.set_postcodes(&fleet.postcodes()).expect("postcodes");
    for chunk in fleet.devices().chunks(10_000) {
        db.register_all(chunk.to_vec()).expect("register");
    }
    db
}

/// A `/proc/self/status` field given in kB (`VmRSS`, `VmHWM`), in bytes; `None` off Linux.
pub fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// `bytes` in MiB, or "n/a".
pub fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "n/a".into(),
        |b| format!("{:.1} MiB", b as f64 / 1048576.0),
    )
}

/// Peak resident memory (VmHWM) per phase of a run. Between phases the kernel's high-water
/// mark is reset to the current RSS (writing 5 to `/proc/self/clear_refs`, Linux 4.0 on), so
/// each phase's figure is its own peak; the process's peak is the largest of them. A phase
/// starts from the RSS the previous ones left, which includes memory freed but kept by the
/// allocator: that RSS is printed beside the peak.
pub struct PeakRss {
    max: Option<u64>,
    /// The last reset worked, so the next figure covers one phase only.
    reset: bool,
    /// RSS when the current phase started.
    start: Option<u64>,
}

impl PeakRss {
    /// Starts the first phase.
    pub fn start() -> PeakRss {
        PeakRss {
            max: None,
            reset: false,
            start: status_bytes("VmRSS"),
        }
    }

    /// Ends the phase `what`: prints its peak and starts the next.
    pub fn phase(&mut self, what: &str) {
        let peak = status_bytes("VmHWM");
        self.max = self.max.max(peak);
        let since = if self.reset {
            ""
        } else {
            ", peak since the process started"
        };
        println!(
            "peak RSS (VmHWM, Linux only), {what}: {} (RSS at the phase's start {}{since})",
            mib(peak),
            mib(self.start)
        );
        self.reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        self.start = status_bytes("VmRSS");
    }

    /// Prints the process's peak over all phases so far.
    pub fn total(&self) {
        println!(
            "peak RSS (VmHWM, Linux only) of the whole process: {}",
            mib(self.max.max(status_bytes("VmHWM")))
        );
    }
}
