//! Privacy: who may ask what, and what is kept about who asked.
//!
//! This module owns
//! - the database's privacy settings (`PRIVACY`: the k of k-anonymity and the key that
//!   pseudonymises serials in the audit log), created at the first open;
//! - the two **views** the API hands out instead of the database handle: [`Support`]
//!   (per-device questions, one named device per call, the support list of C5, exports)
//!   and [`Analytics`] (fleet questions only, every answer k-anonymous);
//! - **k-anonymity**: [`Analytics`] never reports a group with fewer than k distinct
//!   devices: such a group is left out of the answer and named in
//!   [`KAnonymous::suppressed`] (its size is not given);
//! - the **export** of everything held about one device ([`DeviceExport`]);
//! - the **audit log** (`audit.log`, format in `privacy/audit.rs` and docs/FORMAT.md): one record per export (and, when they
//!   come, per erase, purge and retention run), written and fsynced before the answer is
//!   handed out.
//!
//! Invariants:
//! - an [`Analytics`] value has no method that takes or returns a serial or a dense device
//!   id, and its answers' types have no field that could hold one (checked by a test that
//!   serialises every answer, and by a `compile_fail` example below);
//! - its k is never below the database's setting ([`Db::analytics_with_k`] refuses);
//! - whether a group has at least k distinct devices is decided exactly: from bounds on its
//!   count (the distinct devices per month, presence bit and attribute value kept with the
//!   rollups), and for the groups they leave open by counting its devices up to k (presence
//!   bits for whole months, the rows of the days at a period's edges, a scan for day or week
//!   buckets); so the rule holds on the rollup path and the scan path alike. Exact counts
//!   ([`crate::FleetQuery::devices`]) stay exact;
//! - an export is returned only after its audit record is durable; a failed export is
//!   recorded as failed; no audit record holds a serial or an error message.
//!
//! The database handle [`Db`] itself stays the operator's (ingest, maintenance, raw scans):
//! it is not restricted, and is not what an analyst or a support agent should hold.
//!
//! The analytics view answers fleet questions:
//!
//! ```
//! fn ask(a: &hearth::Analytics<'_>) -> u32 {
//!     a.k()
//! }
//! ```
//!
//! but cannot ask per-device questions; this does not compile:
//!
//! ```compile_fail
//! fn ask(a: &hearth::Analytics<'_>) {
//!     let _ = a.last_cycles("WM-00000001", 5);
//! }
//! ```

use std::collections::HashMap;
use std::ops::Range;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::db::{Db, DeviceRows};
use crate::error::{Error, InputError, Result};
use crate::files;
use crate::query::device::{AdviceConfig, CycleRow, FleetSnapshot, Health, HealthConfig, Usage};
use crate::query::fleet::{Bands, LoadDistribution, RareProgram, TimeOfDay, UsageBands};
use crate::query::{FleetQuery, FleetResult, Measure, Need, Plan, Source};
use crate::rollup::calendar::Grain;
use crate::schema::{Attribute, Dim};
use crate::stats::{self, Anova, ChiSquare, Moments};
use crate::storage::Storage;

pub(crate) mod audit;
mod erase;
mod export;
pub mod retention;

pub use audit::{AuditEntry, AuditKind, AuditOutcome};
pub use erase::{EraseReport, PurgeReport};
pub use export::{DeviceExport, ExportValue, StreamExport, WeekCell, WeekCells};

/// The settings file's name.
pub(crate) const SETTINGS: &str = files::PRIVACY;
/// Its envelope magic.
pub(crate) const SETTINGS_MAGIC: [u8; 8] = files::PRIVACY_MAGIC;
const SETTINGS_VERSION: u32 = 1;
/// k when a database is created without [`crate::Options::k_anonymity`].
pub const DEFAULT_K: u32 = 5;
const KEY_LEN: usize = 32;

/// The `PRIVACY` payload (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    /// Smallest number of distinct devices a fleet group must have to be reported.
    k: u32,
    /// Key of the keyed hash that pseudonymises serials in the audit log (hex).
    audit_key: String,
}

/// The privacy state of an open database.
#[derive(Debug)]
pub(crate) struct Privacy {
    k: u32,
    key: [u8; KEY_LEN],
    audit: audit::AuditLog,
    /// Bytes of a torn audit record cut at open.
    pub audit_cut: u64,
}

fn parse_hex(s: &str) -> Option<[u8; KEY_LEN]> {
    let b = s.as_bytes();
    if b.len() != 2 * KEY_LEN {
        return None;
    }
    let mut out = [0u8; KEY_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        let pair = std::str::from_utf8(b.get(2 * i..2 * i + 2)?).ok()?;
        *o = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

fn check_k(k: u32) -> Result<u32> {
    if k == 0 {
        return Err(InputError::Invalid("k-anonymity needs k of at least 1".into()).into());
    }
    Ok(k)
}

impl Privacy {
    /// Reads `PRIVACY` (creating it with a fresh random key and `k` or [`DEFAULT_K`] when it
    /// is missing, rewriting it when `k` is given and differs), then opens the audit log.
    pub(crate) fn open(storage: &dyn Storage, k: Option<u32>) -> Result<Privacy> {
        if let Some(k) = k {
            check_k(k)?;
        }
        let names = storage
            .list()
            .map_err(|e| Error::io("list", storage.describe(), e))?;
        let stored = if names.iter().any(|n| n == SETTINGS) {
            let bytes = files::read(storage, SETTINGS)?;
            let (_, payload) =
                files::decode_envelope(SETTINGS, &bytes, &SETTINGS_MAGIC, SETTINGS_VERSION)?;
            let s: Settings = serde_json::from_slice(payload).map_err(|e| {
                Error::corruption(SETTINGS, files::ENVELOPE_HEADER as u64, e.to_string())
            })?;
            let key = parse_hex(&s.audit_key).ok_or_else(|| {
                Error::corruption(SETTINGS, files::ENVELOPE_HEADER as u64, "malformed key")
            })?;
            if s.k == 0 {
                return Err(Error::corruption(
                    SETTINGS,
                    files::ENVELOPE_HEADER as u64,
                    "k is 0",
                ));
            }
            Some((s.k, key))
        } else {
            None
        };
        let (k, key) = match (stored, k) {
            (Some((old, key)), Some(k)) if old != k => {
                write_settings(storage, k, &key)?;
                (k, key)
            }
            (Some(s), _) => s,
            (None, _) if names.iter().any(|n| n == audit::NAME) => {
                // Its key is what names the devices in the log: a new one would hide them.
                return Err(Error::corruption(
                    SETTINGS,
                    0,
                    "the privacy settings are missing but the audit log exists",
                ));
            }
            (None, k) => {
                let mut key = [0u8; KEY_LEN];
                getrandom::fill(&mut key).map_err(|e| {
                    Error::io("random key", SETTINGS, std::io::Error::other(e.to_string()))
                })?;
                let k = k.unwrap_or(DEFAULT_K);
                write_settings(storage, k, &key)?;
                (k, key)
            }
        };
        let (audit, audit_cut) = audit::AuditLog::open(storage)?;
        Ok(Privacy {
            k,
            key,
            audit,
            audit_cut,
        })
    }

    fn pseudonym(&self, serial: &str) -> [u8; audit::PSEUDONYM_LEN] {
        let mut out = [0u8; audit::PSEUDONYM_LEN];
        // HMAC takes a key of any length: this cannot fail.
        if let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            mac.update(serial.as_bytes());
            let tag = mac.finalize().into_bytes();
            out.copy_from_slice(&tag[..audit::PSEUDONYM_LEN]);
        }
        out
    }
}

fn write_settings(storage: &dyn Storage, k: u32, key: &[u8; KEY_LEN]) -> Result<()> {
    let s = Settings {
        k,
        audit_key: audit::hex(key),
    };
    let json = serde_json::to_vec(&s)
        .map_err(|e| Error::io("encode settings", SETTINGS, std::io::Error::other(e)))?;
    files::write_atomic(
        storage,
        SETTINGS,
        &files::encode_envelope(&SETTINGS_MAGIC, SETTINGS_VERSION, &json),
    )
}

/// For `verify`: checks `PRIVACY` and the audit log (strictly: a torn tail is reported) and
/// returns the names and sizes of those present.
pub(crate) fn verify(storage: &dyn Storage) -> Result<Vec<(String, u64)>> {
    let names = storage
        .list()
        .map_err(|e| Error::io("list", storage.describe(), e))?;
    let mut out = Vec::new();
    if names.iter().any(|n| n == SETTINGS) {
        let bytes = files::read(storage, SETTINGS)?;
        let (_, payload) =
            files::decode_envelope(SETTINGS, &bytes, &SETTINGS_MAGIC, SETTINGS_VERSION)?;
        let s: Settings = serde_json::from_slice(payload).map_err(|e| {
            Error::corruption(SETTINGS, files::ENVELOPE_HEADER as u64, e.to_string())
        })?;
        if s.k == 0 || parse_hex(&s.audit_key).is_none() {
            return Err(Error::corruption(
                SETTINGS,
                files::ENVELOPE_HEADER as u64,
                "k is 0 or the key is malformed",
            ));
        }
        out.push((SETTINGS.to_string(), bytes.len() as u64));
    }
    if names.iter().any(|n| n == audit::NAME) {
        let bytes = files::read(storage, audit::NAME)?;
        audit::decode(audit::NAME, &bytes, true)?;
        out.push((audit::NAME.to_string(), bytes.len() as u64));
    }
    out.extend(retention::verify(storage)?);
    Ok(out)
}

/// A short, fixed description of an error for the audit log: never its message, which may
/// name a serial.
pub(crate) fn error_class(e: &Error) -> &'static str {
    match e {
        Error::Io { .. } => "failed: I/O error",
        Error::Corruption { .. } => "failed: corruption",
        Error::Input(InputError::UnknownDevice { .. }) => "failed: unknown device",
        Error::Input(_) => "failed: invalid input",
        Error::Poisoned(_) => "failed: database poisoned",
        Error::Closed => "failed: database closed",
        _ => "failed",
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Db {
    /// The database's k: fleet answers of the analytics view never report a group with
    /// fewer distinct devices (stored in `PRIVACY`; set with [`crate::Options::k_anonymity`]).
    pub fn k_anonymity(&self) -> u32 {
        self.privacy().k
    }

    /// The pseudonym under which the audit log names `serial`: the first 16 bytes of
    /// HMAC-SHA256 of the serial under the database's random key, in hex. Only someone who
    /// knows the serial (and can open the database) can find its records.
    pub fn pseudonym(&self, serial: &str) -> String {
        audit::hex(&self.privacy().pseudonym(serial))
    }

    /// Bytes of a torn audit record (a crash during an append) cut when the database was
    /// opened; 0 when none.
    pub fn audit_tail_truncated(&self) -> u64 {
        self.privacy().audit_cut
    }

    /// Every record of the audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        audit::read_all(self.storage())
    }

    /// Appends a durable audit record (the lead's erase, purge and retention runs call this
    /// too). `serial` is pseudonymised; `detail` must not hold a serial.
    pub(crate) fn audit(
        &self,
        kind: AuditKind,
        serial: Option<&str>,
        outcome: AuditOutcome,
        detail: &str,
    ) -> Result<u64> {
        let p = self.privacy();
        p.audit.record(
            self.storage(),
            now_ms(),
            kind,
            outcome,
            serial.map(|s| p.pseudonym(s)),
            detail,
        )
    }

    /// Everything held about one device (registry record, every row of every stream, its
    /// week cells), recorded in the audit log before it is returned. A failed export is
    /// recorded as failed.
    pub fn export_device(&self, serial: &str) -> Result<DeviceExport> {
        match export::export(self, serial) {
            Ok(e) => {
                let rows: usize = e.streams.iter().map(|s| s.rows.len()).sum();
                let cells: usize = e.week_cells.iter().map(|w| w.weeks.len()).sum();
                let detail = format!(
                    "{rows} rows in {} streams, {cells} week cells",
                    e.streams.len()
                );
                self.audit(AuditKind::Export, Some(serial), AuditOutcome::Ok, &detail)?;
                Ok(e)
            }
            Err(err) => {
                // The export's error is the one to report; a failure to record it is
                // secondary (and makes the next record fail too, if the log is poisoned).
                let _ = self.audit(
                    AuditKind::Export,
                    Some(serial),
                    AuditOutcome::Failed,
                    error_class(&err),
                );
                Err(err)
            }
        }
    }

    /// Loads an export (from this or another database) into this one: registers the device
    /// and appends its rows (duplicates dropped as usual). Week cells are not read: they are
    /// recomputed from the rows.
    pub fn import_device(&self, e: &DeviceExport) -> Result<u64> {
        export::import(self, e)
    }

    /// The support view: per-device questions, one named device per call.
    pub fn support(&self) -> Support<'_> {
        Support { db: self }
    }

    /// The analytics view with the database's k.
    pub fn analytics(&self) -> Analytics<'_> {
        Analytics {
            db: self,
            k: self.k_anonymity(),
        }
    }

    /// The analytics view with a larger k; a k below the database's is refused.
    pub fn analytics_with_k(&self, k: u32) -> Result<Analytics<'_>> {
        let min = self.k_anonymity();
        if k < min {
            return Err(InputError::Invalid(format!(
                "k = {k} is below this database's k-anonymity setting ({min}); it may only be raised"
            ))
            .into());
        }
        Ok(Analytics { db: self, k })
    }
}

/// The support view: questions about one device at a time, each naming it by serial, the
/// support list (C5), and exports for access requests. It has no fleet aggregates.
#[derive(Debug, Clone, Copy)]
pub struct Support<'db> {
    db: &'db Db,
}

impl<'db> Support<'db> {
    /// C1: the device's last `n` cycles, newest first.
    pub fn last_cycles(&self, serial: &str, n: usize) -> Result<Vec<CycleRow<'db>>> {
        self.db.last_cycles(serial, n)
    }

    /// C2: usage over whole weeks, with advice.
    pub fn usage(
        &self,
        serial: &str,
        from_ms: i64,
        to_ms: i64,
        cfg: &AdviceConfig,
    ) -> Result<Usage> {
        self.db.usage(serial, from_ms, to_ms, cfg)
    }

    /// C3: the health verdict at `at_ms`.
    pub fn health(&self, serial: &str, at_ms: i64, cfg: &HealthConfig) -> Result<Health> {
        self.db.health(serial, at_ms, cfg)
    }

    /// C4: the 2 Hz trace of the wash starting at `cycle_ts`.
    pub fn trace(&self, serial: &str, cycle_ts: i64) -> Result<DeviceRows> {
        self.db.trace(serial, cycle_ts)
    }

    /// The device's raw rows of a stream (see [`Db::scan_device`]).
    pub fn rows(
        &self,
        stream: &str,
        serial: &str,
        range: Range<i64>,
        columns: &[&str],
    ) -> Result<DeviceRows> {
        self.db.scan_device(stream, serial, range, columns)
    }

    /// The device's registry record.
    pub fn device(&self, serial: &str) -> Option<crate::DeviceInfo> {
        self.db.device_id(serial).and_then(|id| self.db.device(id))
    }

    /// C5: every device's latest cycle and the support list (serials: support only).
    pub fn fleet_snapshot(&self, at_ms: i64, cfg: &HealthConfig) -> Result<FleetSnapshot<'db>> {
        self.db.fleet_snapshot(at_ms, cfg)
    }

    /// Everything held about the device, audited (see [`Db::export_device`]).
    pub fn export(&self, serial: &str) -> Result<DeviceExport> {
        self.db.export_device(serial)
    }
}

/// A group left out of an answer because fewer than k distinct devices are behind it. Its
/// size is not given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppressed {
    /// The time bucket's label, when the answer has buckets.
    pub bucket: Option<String>,
    /// The group's values, as the answer names them (`["wool", "North East"]`), one per
    /// dimension listed in [`KAnonymous::dims`].
    pub group: Vec<String>,
}

/// An answer of the analytics view: every group it reports has at least `k` distinct
/// devices; the others are listed in `suppressed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KAnonymous<T> {
    /// The answer, without the suppressed groups.
    pub answer: T,
    /// The k applied.
    pub k: u32,
    /// The dimensions that name a suppressed group (e.g. `["program", "region"]`).
    pub dims: Vec<String>,
    /// Groups left out, in the answer's order.
    pub suppressed: Vec<Suppressed>,
}

/// D7 through the analytics view: the test over the rows and columns with at least k
/// devices; the cells of the table with fewer than k devices are withheld (`None`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChiSquareAnswer {
    /// Row labels (the setting's values kept).
    pub rows: Vec<String>,
    /// Column labels (the attribute's values kept).
    pub columns: Vec<String>,
    /// Observed counts, `None` where fewer than k devices are behind the cell.
    pub observed: Vec<Vec<Option<u64>>>,
    /// Expected counts under independence (from the margins).
    pub expected: Vec<Vec<f64>>,
    /// Pearson's statistic over the kept rows and columns.
    pub statistic: f64,
    /// Degrees of freedom.
    pub df: u64,
    /// Upper tail of chi-squared(df) at `statistic`.
    pub p_value: f64,
}

impl ChiSquareAnswer {
    fn new(c: ChiSquare, withheld: &dyn Fn(&str, &str) -> bool) -> ChiSquareAnswer {
        let observed = c
            .observed
            .iter()
            .zip(&c.rows)
            .map(|(row, r)| {
                row.iter()
                    .zip(&c.columns)
                    .map(|(&n, col)| (!withheld(r, col)).then_some(n))
                    .collect()
            })
            .collect();
        ChiSquareAnswer {
            rows: c.rows,
            columns: c.columns,
            observed,
            expected: c.expected,
            statistic: c.statistic,
            df: c.df,
            p_value: c.p_value,
        }
    }
}

const CYCLES: &str = "cycles";

/// The analytics view: fleet questions only, every answer k-anonymous. It has no method
/// that takes a serial, and no answer of it carries a serial or a device id.
#[derive(Debug, Clone, Copy)]
pub struct Analytics<'db> {
    db: &'db Db,
    k: u32,
}

/// Distinct devices per (bucket label, group values).
type DeviceCounts = HashMap<(Option<String>, Vec<String>), u64>;

impl Analytics<'_> {
    /// The k applied.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// True when a group of `devices` distinct devices may be reported. With k = 1 every
    /// group with rows may, and no device is counted.
    fn keep(&self, devices: u64) -> bool {
        self.k <= 1 || devices >= u64::from(self.k)
    }

    /// How exactly devices are counted for suppression alone: whether each group reaches k.
    fn need(&self) -> Need {
        Need::AtLeast(u64::from(self.k))
    }

    /// Keeps the items of `items` whose group passes `keep`, and names the others (no
    /// bucket) by `group`.
    fn retain_groups<T>(
        items: &mut Vec<T>,
        mut keep: impl FnMut(&T) -> bool,
        group: impl Fn(&T) -> Vec<String>,
    ) -> Vec<Suppressed> {
        let mut suppressed = Vec::new();
        items.retain(|x| {
            let k = keep(x);
            if !k {
                suppressed.push(Suppressed {
                    bucket: None,
                    group: group(x),
                });
            }
            k
        });
        suppressed
    }

    /// Distinct devices per group of a count question over `group_by` (empty with k = 1:
    /// nothing needs counting).
    fn devices_by(
        &self,
        group_by: Vec<Dim>,
        grain: Option<Grain>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<DeviceCounts> {
        if self.k <= 1 {
            return Ok(HashMap::new());
        }
        let mut q = FleetQuery::count(CYCLES, from_ms, to_ms, group_by);
        q.grain = grain;
        q.devices = true;
        let r = self.db.fleet_need(&q, self.need())?;
        Ok(r.rows
            .into_iter()
            .map(|row| ((row.bucket, row.keys), row.devices.unwrap_or(0)))
            .collect())
    }

    /// Any fleet question ([`Db::fleet`]); groups with fewer than k distinct devices are
    /// left out. Rows carry their distinct devices when `q.devices` asks for them.
    pub fn fleet(&self, q: &FleetQuery) -> Result<KAnonymous<FleetResult>> {
        let mut counted = q.clone();
        counted.devices = q.devices || self.k > 1;
        // Exact counts when the question asks for them; otherwise only whether each group
        // reaches k.
        let need = if q.devices { Need::Exact } else { self.need() };
        let mut r = self.db.fleet_need(&counted, need)?;
        let mut suppressed = Vec::new();
        r.rows.retain_mut(|row| {
            let keep = self.keep(row.devices.unwrap_or(0));
            if !keep {
                suppressed.push(Suppressed {
                    bucket: row.bucket.clone(),
                    group: row.keys.clone(),
                });
            }
            if !q.devices {
                row.devices = None;
            }
            keep
        });
        Ok(KAnonymous {
            dims: r.dims.clone(),
            answer: r,
            k: self.k,
            suppressed,
        })
    }

    /// D1 ([`Db::cycles_by`]), k-anonymous.
    pub fn cycles_by(
        &self,
        setting: &str,
        by: Attribute,
        grain: Grain,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<KAnonymous<FleetResult>> {
        let def = self
            .db
            .schema()
            .stream(CYCLES)
            .ok_or_else(|| InputError::UnknownStream(CYCLES.into()))?;
        let setting = crate::query::parse_dim(def, setting)?;
        let mut q = FleetQuery::count(CYCLES, from_ms, to_ms, vec![setting, Dim::Attribute(by)]);
        q.grain = Some(grain);
        q.plan = plan;
        self.fleet(&q)
    }

    /// D2 ([`Db::load_distribution`]): capacities with fewer than k devices left out.
    pub fn load_distribution(
        &self,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<KAnonymous<LoadDistribution>> {
        let mut d = self.db.load_distribution(from_ms, to_ms, plan)?;
        let devices = self.devices_by(
            vec![Dim::Attribute(Attribute::Capacity)],
            None,
            from_ms,
            to_ms,
        )?;
        let suppressed = Self::retain_groups(
            &mut d.by_capacity,
            |c| {
                let n = devices.get(&(None, vec![c.capacity_kg.clone()]));
                self.keep(n.copied().unwrap_or(0))
            },
            |c| vec![c.capacity_kg.clone()],
        );
        Ok(KAnonymous {
            answer: d,
            k: self.k,
            dims: vec![Attribute::Capacity.name().into()],
            suppressed,
        })
    }

    /// D3 ([`Db::rare_programs`]): groups with fewer than k devices left out, and within
    /// the others the programs used by fewer than k devices (never-used ones stay: that no
    /// one in a group of k or more used a program names no one).
    pub fn rare_programs(
        &self,
        by: Attribute,
        max_share: f64,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<KAnonymous<Vec<RareProgram>>> {
        let mut rare = self.db.rare_programs(by, max_share, from_ms, to_ms, plan)?;
        let groups = self.devices_by(vec![Dim::Attribute(by)], None, from_ms, to_ms)?;
        let cells = self.devices_by(
            vec![Dim::Attribute(by), Dim::column("program")],
            None,
            from_ms,
            to_ms,
        )?;
        let suppressed = Self::retain_groups(
            &mut rare,
            |r| {
                let g = groups.get(&(None, vec![r.group.clone()]));
                let c = cells.get(&(None, vec![r.group.clone(), r.program.clone()]));
                let c = c.copied().unwrap_or(0);
                self.keep(g.copied().unwrap_or(0)) && (c == 0 || self.keep(c))
            },
            |r| vec![r.group.clone(), r.program.clone()],
        );
        Ok(KAnonymous {
            answer: rare,
            k: self.k,
            dims: vec![by.name().into(), "program".into()],
            suppressed,
        })
    }

    /// D4 ([`Db::resources_by_setting`]), k-anonymous.
    pub fn resources_by_setting(
        &self,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<KAnonymous<FleetResult>> {
        let mut q = FleetQuery::count(
            CYCLES,
            from_ms,
            to_ms,
            vec![Dim::column("program"), Dim::column("temp_setting_c")],
        );
        q.plan = plan;
        q.measures = vec![
            Measure::Mean("energy_wh".into()),
            Measure::Mean("water_l".into()),
            Measure::Sum("energy_wh".into()),
            Measure::Sum("water_l".into()),
        ];
        self.fleet(&q)
    }

    /// D5 ([`Db::usage_bands`]): groups with fewer than k devices (light + medium + heavy)
    /// left out.
    pub fn usage_bands(
        &self,
        by: Attribute,
        bands: &Bands,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<KAnonymous<UsageBands>> {
        let mut u = self.db.usage_bands(by, bands, from_ms, to_ms, plan)?;
        let suppressed = Self::retain_groups(
            &mut u.groups,
            |g| self.keep(g.light + g.medium + g.heavy),
            |g| vec![g.group.clone()],
        );
        Ok(KAnonymous {
            answer: u,
            k: self.k,
            dims: vec![by.name().into()],
            suppressed,
        })
    }

    /// D6 ([`Db::anova`]): groups with fewer than k devices are left out of the test and
    /// named.
    pub fn anova(
        &self,
        measure: &str,
        by: Attribute,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<(KAnonymous<Anova>, Source)> {
        let g = self.db.anova_groups(
            measure,
            by,
            from_ms,
            to_ms,
            plan,
            (self.k > 1).then(|| self.need()),
        )?;
        let k = self.k;
        let mut suppressed = Vec::new();
        let mut kept: Vec<(String, Moments)> = Vec::new();
        for (name, m, devices) in g.groups {
            if self.keep(devices) {
                kept.push((name, m));
            } else {
                suppressed.push(Suppressed {
                    bucket: None,
                    group: vec![name],
                });
            }
        }
        let a = stats::anova(&kept, g.scale)
            .map_err(|e| InputError::Invalid(format!("{e} (after k-anonymity, k = {k})")))?;
        Ok((
            KAnonymous {
                answer: a,
                k: self.k,
                dims: vec![by.name().into()],
                suppressed,
            },
            g.source,
        ))
    }

    /// D7 ([`Db::chi_square`]): the setting's values and the attribute's values with fewer
    /// than k devices are left out of the table and named (`[value, "*"]` for a setting's
    /// value, `["*", value]` for an attribute's); cells with fewer than k devices are
    /// withheld from `observed` (the statistic still counts them) and named `[setting's
    /// value, attribute's value]`.
    pub fn chi_square(
        &self,
        setting: &str,
        by: Attribute,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<(KAnonymous<ChiSquareAnswer>, Source)> {
        let def = self
            .db
            .schema()
            .stream(CYCLES)
            .ok_or_else(|| InputError::UnknownStream(CYCLES.into()))?;
        let sdim = crate::query::parse_dim(def, setting)?;
        let mut q = FleetQuery::count(
            CYCLES,
            from_ms,
            to_ms,
            vec![sdim.clone(), Dim::Attribute(by)],
        );
        q.plan = plan;
        q.devices = self.k > 1;
        let r = self.db.fleet_need(&q, self.need())?;
        let by_row = self.devices_by(vec![sdim], None, from_ms, to_ms)?;
        let by_col = self.devices_by(vec![Dim::Attribute(by)], None, from_ms, to_ms)?;
        let k = self.k;
        let ok = |m: &DeviceCounts, v: &str| {
            self.keep(m.get(&(None, vec![v.to_string()])).copied().unwrap_or(0))
        };
        let (mut rows, mut cols) = crate::query::fleet::two_way_labels(&r);
        let mut suppressed = Vec::new();
        for x in &rows {
            if !ok(&by_row, x) {
                suppressed.push(Suppressed {
                    bucket: None,
                    group: vec![x.clone(), "*".into()],
                });
            }
        }
        for x in &cols {
            if !ok(&by_col, x) {
                suppressed.push(Suppressed {
                    bucket: None,
                    group: vec!["*".into(), x.clone()],
                });
            }
        }
        rows.retain(|x| ok(&by_row, x));
        cols.retain(|x| ok(&by_col, x));
        let mut table = vec![vec![0u64; cols.len()]; rows.len()];
        let mut small: Vec<(String, String)> = Vec::new();
        for x in &r.rows {
            let (Some(a), Some(b)) = (x.keys.first(), x.keys.get(1)) else {
                continue;
            };
            if let (Ok(i), Ok(j)) = (rows.binary_search(a), cols.binary_search(b)) {
                table[i][j] += x.rows;
                if !self.keep(x.devices.unwrap_or(0)) {
                    small.push((a.clone(), b.clone()));
                    suppressed.push(Suppressed {
                        bucket: None,
                        group: vec![a.clone(), b.clone()],
                    });
                }
            }
        }
        let c = stats::chi_square(&rows, &cols, &table)
            .map_err(|e| InputError::Invalid(format!("{e} (after k-anonymity, k = {k})")))?;
        let withheld = |a: &str, b: &str| small.iter().any(|(x, y)| x == a && y == b);
        Ok((
            KAnonymous {
                answer: ChiSquareAnswer::new(c, &withheld),
                k: self.k,
                dims: vec![setting.to_string(), by.name().into()],
                suppressed,
            },
            r.source,
        ))
    }

    /// D8 ([`Db::time_of_day`]): (weekday, hour) cells with fewer than k devices are
    /// reported as 0 and named in `suppressed`. No rollup keeps the weekday per device: a
    /// cell of fewer than k cycles, or whose hour has fewer than k devices in the presence
    /// bits, is decided at once; the others from the cycles' timestamps, device by device
    /// (only devices with a bit of an open hour), until each has k devices.
    pub fn time_of_day(
        &self,
        from_ms: i64,
        to_ms: i64,
        plan: Plan,
    ) -> Result<KAnonymous<TimeOfDay>> {
        let mut t = self.db.time_of_day(from_ms, to_ms, plan)?;
        if self.k <= 1 {
            return Ok(KAnonymous {
                answer: t,
                k: self.k,
                dims: vec!["weekday".into(), "hour".into()],
                suppressed: Vec::new(),
            });
        }
        let devices = self
            .db
            .weekday_hour_devices(from_ms, to_ms, &t.cycles, u64::from(self.k))?;
        let mut suppressed = Vec::new();
        for (w, row) in t.cycles.iter_mut().enumerate() {
            for (h, c) in row.iter_mut().enumerate() {
                let n = devices[w % 7][h % 24];
                if *c > 0 && !self.keep(n) {
                    *c = 0;
                    suppressed.push(Suppressed {
                        bucket: None,
                        group: vec![WEEKDAYS[w % 7].to_string(), h.to_string()],
                    });
                }
            }
        }
        Ok(KAnonymous {
            answer: t,
            k: self.k,
            dims: vec!["weekday".into(), "hour".into()],
            suppressed,
        })
    }
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
