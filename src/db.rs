//! The database: ties schema, registry, log, memtables and segments together, and owns the
//! write path, flush, compaction, recovery and the read API.
//!
//! Write path: validate the whole batch (no lock) → under the write lock, map serials to ids
//! (registering new devices when allowed), drop duplicates (against this batch, the memtables
//! and the segments), insert the accepted rows into the active memtable, and append one log
//! record holding the registrations and the accepted rows → release the lock → wait until
//! the record is durable (group commit shares one fsync among concurrent writers).
//!
//! Flush: the active memtable is frozen (the log rotates to a new file at the same moment),
//! written as one segment per (stream, window), then a new manifest naming those segments,
//! the registry file and the checkpoint (the frozen memtable's last sequence number) is
//! published atomically; log files below the checkpoint are then removed.
//!
//! Compaction merges the segments of one (stream, window) into one, publishing likewise.
//!
//! Invariants:
//! - the key (stream, device, ts) is unique across the memtables and segments: the first
//!   write wins, later ones are dropped and counted;
//! - a reader sees the version (segments) and the memtables of one instant, taken under the
//!   write lock, so it never sees half a flush or compaction;
//! - after a failed fsync the database is poisoned and refuses writes until reopened.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};

use crate::batch::{self, Batch, Limits};
use crate::codec::ColumnHint;
use crate::error::{Error, InputError, Result};
use crate::files;
use crate::manifest::{Manifest, SegmentMeta};
use crate::memtable::{DeviceBuffer, Memtable};
use crate::record::{self, LogRecord};
use crate::registry::{self, DeviceInfo, PostcodeEntry, Registry};
use crate::rollup::file::{RollupWriter, SegmentRollup};
use crate::rollup::{self, Layouts, Rollups};
use crate::schema::Schema;
use crate::segment::{Decoded, DeviceRun, Segment, SegmentSummary, SegmentWriter};
use crate::storage::{DirStorage, Storage};
use crate::wal::{self, SyncPolicy, Wal};

/// What to do with rows of a device that is not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownDevices {
    /// Reject the batch with [`InputError::UnknownDevice`].
    #[default]
    Reject,
    /// Register the device with empty attributes.
    AutoRegister,
}

/// Options for [`Db::open`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The schema. Required to create a database; when opening an existing one it must equal
    /// the stored schema (or be `None` to use the stored one).
    pub schema: Option<Schema>,
    /// When appends are durable.
    pub sync: SyncPolicy,
    /// Accepted timestamps and batch size.
    pub limits: Limits,
    /// Rows of unregistered devices.
    pub unknown_devices: UnknownDevices,
    /// Buffered rows that trigger a flush.
    pub memtable_rows: usize,
    /// Segments of one (stream, window) that trigger a compaction.
    pub compaction_trigger: usize,
    /// Run flush and compaction on a background thread (otherwise inline, in the writer
    /// that crosses the threshold, and on explicit calls).
    pub background: bool,
    /// The database's k-anonymity setting (at least 1), stored in `PRIVACY`: `None` keeps
    /// the stored one (5 for a new database), `Some(k)` stores `k`.
    pub k_anonymity: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            schema: None,
            sync: SyncPolicy::default(),
            limits: Limits::default(),
            unknown_devices: UnknownDevices::default(),
            memtable_rows: 4_000_000,
            compaction_trigger: 4,
            background: true,
            k_anonymity: None,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppendReport {
    /// Rows stored.
    pub accepted: u64,
    /// Rows dropped because their (device, ts) was already stored (first write wins).
    pub duplicates: u64,
    /// Devices registered by this batch (auto-registration).
    pub registered: u64,
}

/// How [`Db::scan_split`] shares a scan among threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanSplit {
    /// At most this many threads.
    pub threads: usize,
    /// Each thread gets at least this many devices.
    pub min_devices_per_thread: usize,
}

/// One device's rows from a scan: stored values, sorted by timestamp, in projection order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceRows {
    /// Dense device id.
    pub device: u32,
    /// Timestamps (ms).
    pub ts: Vec<i64>,
    /// One vector of stored values per projected column (categorical: code; numeric: value
    /// times `10^decimals`; see [`crate::ColumnDef::decode_f64`]).
    pub columns: Vec<Vec<i64>>,
}

impl DeviceRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
}

/// Per-stream figures for [`Info`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StreamInfo {
    /// Stream name.
    pub name: String,
    /// Rows in segments.
    pub segment_rows: u64,
    /// Rows buffered in memory (and in the log).
    pub memtable_rows: u64,
    /// Segment files.
    pub segments: u64,
    /// Bytes of segment files.
    pub segment_bytes: u64,
    /// Segment bytes per segment row.
    pub bytes_per_row: f64,
    /// Bytes of each column's chunks in the segments, `ts` first, then the declared columns;
    /// the rest of `segment_bytes` is checksums, indexes and headers.
    pub column_bytes: Vec<(String, u64)>,
    /// Bytes of the segments' rollup files (cubes, device week cells, presence bits).
    pub rollup_bytes: u64,
    /// Windows whose raw rows retention dropped but whose device week cells are kept (one
    /// device-summary file each).
    pub summary_windows: u64,
    /// Bytes of those device-summary files.
    pub summary_bytes: u64,
}

/// What `hearth info` shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Info {
    /// Registered devices (erased ones not counted).
    pub devices: u64,
    /// Erased devices whose rows segment files still hold (invisible; gone at the next
    /// purge, or the compaction of their windows).
    pub erased_pending_purge: u64,
    /// Per stream.
    pub streams: Vec<StreamInfo>,
    /// Bytes of log files.
    pub log_bytes: u64,
    /// Bytes of every file of the database.
    pub total_bytes: u64,
    /// Log sequence number up to which everything is in segments.
    pub checkpoint_lsn: u64,
    /// Last log sequence number written.
    pub last_lsn: u64,
    /// Duplicates dropped since the database was opened.
    pub duplicates_dropped: u64,
    /// Log records replayed when the database was opened.
    pub log_records_replayed: u64,
    /// A torn log tail cut off when the database was opened: file, offset, bytes cut.
    pub log_tail_truncated: Option<(String, u64, u64)>,
}

/// What [`Db::verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Files whose every byte was checked.
    pub files_checked: u64,
    /// Segment files (every block decoded).
    pub segments: u64,
    /// Rows in those segments.
    pub segment_rows: u64,
    /// Device-summary files (every week cell decoded).
    pub summaries: u64,
    /// Log records checked (and decoded) after the checkpoint.
    pub log_records: u64,
    /// Registered devices in the registry file.
    pub devices: u64,
    /// Bytes read.
    pub bytes_checked: u64,
    /// Files in the directory that the database does not use (left by a crash; removed at
    /// the next open) or that are not hearth's.
    pub unreferenced_files: Vec<String>,
}

/// The segments of one published manifest.
#[derive(Debug, Default, Clone)]
struct Version {
    manifest: Manifest,
    /// Per (stream, window), oldest first.
    segments: BTreeMap<(u16, i64), Vec<Arc<Segment>>>,
    /// Erased devices whose rows segments may still hold (ascending): every read skips
    /// them, compaction drops them, a purge rewrites the segments holding them.
    erased: Vec<u32>,
    /// Device summaries per (stream, window): the week cells kept after retention dropped
    /// the window's raw rows (see `privacy::retention`). Per-device questions read them
    /// with the segments' rollup files; fleet rollups never do.
    summaries: BTreeMap<(u16, i64), Arc<SegmentRollup>>,
}

impl Version {
    fn is_erased(&self, device: u32) -> bool {
        self.erased.binary_search(&device).is_ok()
    }
}

struct State {
    active: Memtable,
    /// Frozen memtables waiting for flush, oldest first.
    frozen: Vec<Arc<Memtable>>,
    /// Per stream, per device id: largest timestamp in any segment.
    flushed_max: Vec<Vec<i64>>,
    version: Arc<Version>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    schema: Schema,
    opts: Options,
    hints: Vec<Vec<ColumnHint>>,
    wal: Wal,
    state: Mutex<State>,
    registry: RwLock<Registry>,
    /// Resolved rollup declarations, per stream.
    layouts: Vec<Layouts>,
    /// Fleet rollups of every row (segments and memtables). Lock order: `state`, then
    /// `registry`, then `rollups`.
    rollups: RwLock<Rollups>,
    /// Serialises flush and compaction (publication of manifests).
    maintenance: Mutex<()>,
    duplicates: AtomicU64,
    poisoned: Mutex<Option<String>>,
    recovery: wal::Recovery,
    /// Where the per-device questions find their columns and cubes (resolved on first use;
    /// `None` without the washing-machine preset's rollups).
    device_cols: std::sync::OnceLock<Option<crate::query::device::Cols>>,
    /// k-anonymity setting, pseudonym key, audit log.
    privacy: crate::privacy::Privacy,
}

/// An open database.
pub struct Db {
    inner: Arc<Inner>,
    worker: Option<(crossbeam_channel::Sender<Job>, JoinHandle<()>)>,
    /// The `LOCK` file, locked exclusively while the database is open (directories only).
    _lock: Option<std::fs::File>,
}

enum Job {
    Maintain,
    Stop,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("storage", &self.inner.storage.describe())
            .finish()
    }
}

const SCHEMA_VERSION: u32 = 1;

/// Frozen memtables allowed to wait for flush before writers wait too.
const MAX_FROZEN: usize = 2;

/// No device id (a serial the registry does not know), in [`Inner::lookup_ids`].
const NO_ID: u32 = u32::MAX;

fn hints(schema: &Schema) -> Vec<Vec<ColumnHint>> {
    schema
        .streams
        .iter()
        .map(|s| {
            s.columns
                .iter()
                .map(|c| {
                    if c.is_categorical() {
                        ColumnHint::Categorical
                    } else {
                        ColumnHint::Numeric
                    }
                })
                .collect()
        })
        .collect()
}

impl Db {
    /// Opens (or creates) the database in directory `dir`.
    /// Another process (or handle) holding the database open is [`Error::Locked`].
    pub fn open(dir: impl AsRef<std::path::Path>, opts: Options) -> Result<Db> {
        let dir = dir.as_ref();
        let storage = DirStorage::new(dir)
            .map_err(|e| Error::io("create directory", dir.display().to_string(), e))?;
        let lock_path = dir.join(files::LOCK);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("open", files::LOCK, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked(dir.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", files::LOCK, e)),
        }
        let mut db = Db::open_with(Arc::new(storage), opts)?;
        db._lock = Some(lock);
        Ok(db)
    }

    /// Opens (or creates) the database on any storage (tests use [`crate::SimStorage`]).
    pub fn open_with(storage: Arc<dyn Storage>, opts: Options) -> Result<Db> {
        let names = storage
            .list()
            .map_err(|e| Error::io("list", storage.describe(), e))?;
        let has = |n: &str| names.iter().any(|x| x == n);
        if !has(files::MANIFEST) {
            let hearth_files = names.iter().any(|n| {
                files::parse_segment_name(n).is_some()
                    || files::parse_summary_name(n).is_some()
                    || files::parse_registry_name(n).is_some()
                    || n.starts_with("wal-")
            });
            if hearth_files {
                return Err(Error::corruption(
                    files::MANIFEST,
                    0,
                    "the manifest is missing but data files exist",
                ));
            }
            let schema = opts.schema.clone().ok_or_else(|| {
                Error::NotADatabase(format!(
                    "{} holds no hearth database and no schema was given to create one",
                    storage.describe()
                ))
            })?;
            schema.validate()?;
            write_schema(&*storage, &schema)?;
            Manifest::default().publish(&*storage)?;
        }
        Db::recover(storage, opts)
    }

    fn recover(storage: Arc<dyn Storage>, mut opts: Options) -> Result<Db> {
        let (mut stored, _) = load_schema(&*storage)?;
        if let Some(given) = &opts.schema {
            if let Some(diff) = stored.difference(given) {
                // Rollups can be added to a database written before they existed; changing
                // declared ones would need every rollup file rewritten (not supported).
                let had_none = stored.streams.iter().all(|s| s.rollups.is_empty());
                if !had_none || !stored.same_but_rollups(given) {
                    return Err(Error::IncompatibleSchema(diff));
                }
                // Only the rollups differ: adopt the given ones. Segments written without
                // them are rolled up from their rows at open until compaction rewrites them.
                given.validate()?;
                write_schema(&*storage, given)?;
                stored = given.clone();
            }
        }
        opts.schema = None;
        let schema = stored;
        let layouts: Vec<Layouts> = schema.streams.iter().map(Layouts::new).collect();
        let mut rollups = Rollups::new(&layouts);
        let manifest = Manifest::load(&*storage)?;

        let registry = match manifest.registry {
            Some(generation) => {
                let name = files::registry_name(generation);
                Registry::decode(&name, &files::read(&*storage, &name)?)?
            }
            None => Registry::default(),
        };
        for id in 0..registry.len() as u32 {
            if let Some(info) = registry.rollup_record(id) {
                rollups.attrs.set_device(id, info);
            }
        }

        let mut segments: BTreeMap<(u16, i64), Vec<Arc<Segment>>> = BTreeMap::new();
        let mut flushed_max: Vec<Vec<i64>> = vec![Vec::new(); schema.streams.len()];
        for meta in &manifest.segments {
            let mut seg = open_segment(&*storage, &schema, meta)?;
            let l = &layouts[usize::from(meta.stream)];
            if l.any() {
                let (r, fleet) = open_rollup(&*storage, l, &mut rollups.attrs, meta, &seg)?;
                rollups.streams[usize::from(meta.stream)].absorb(l, fleet);
                seg.rollup = Some(r);
            }
            let fm = flushed_max
                .get_mut(usize::from(meta.stream))
                .ok_or_else(|| {
                    Error::corruption(files::MANIFEST, 0, "segment of unknown stream")
                })?;
            note_flushed(fm, &seg);
            segments
                .entry((meta.stream, meta.window))
                .or_default()
                .push(Arc::new(seg));
        }

        let mut summaries: BTreeMap<(u16, i64), Arc<SegmentRollup>> = BTreeMap::new();
        for meta in &manifest.summaries {
            let r = open_summary(&*storage, &layouts, meta)?;
            summaries.insert((meta.stream, meta.window), Arc::new(r));
        }

        // Remove what a crash left behind: unpublished segments, summaries and registries,
        // temp files.
        let live_segments: Vec<u64> = manifest.segments.iter().map(|s| s.id).collect();
        let live_summaries: Vec<u64> = manifest.summaries.iter().map(|s| s.id).collect();
        let live_rollups: Vec<u64> = manifest
            .segments
            .iter()
            .filter(|s| s.rollup)
            .map(|s| s.id)
            .collect();
        let names = storage
            .list()
            .map_err(|e| Error::io("list", storage.describe(), e))?;
        let mut removed = false;
        for n in &names {
            let orphan = files::parse_segment_name(n)
                .is_some_and(|id| !live_segments.contains(&id))
                || files::parse_rollup_name(n).is_some_and(|id| !live_rollups.contains(&id))
                || files::parse_summary_name(n).is_some_and(|id| !live_summaries.contains(&id))
                || files::parse_registry_name(n).is_some_and(|g| Some(g) != manifest.registry)
                || n.ends_with(files::TEMP_SUFFIX);
            if orphan {
                storage.remove(n).map_err(|e| Error::io("remove", n, e))?;
                removed = true;
            }
        }
        if removed {
            storage
                .sync_dir()
                .map_err(|e| Error::io("fsync directory", storage.describe(), e))?;
        }

        let ncols: Vec<usize> = schema.streams.iter().map(|s| s.columns.len()).collect();
        let mut state = State {
            active: Memtable::new(ncols),
            frozen: Vec::new(),
            flushed_max,
            version: Arc::new(Version {
                manifest: manifest.clone(),
                segments,
                erased: registry.erased(),
                summaries,
            }),
        };
        let mut registry = registry;
        let mut consistent = true;
        let recovery = wal::recover(&*storage, manifest.checkpoint_lsn, |lsn, payload| {
            // Errors name an offset within the payload; the log names the file.
            let rec = LogRecord::decode(payload).map_err(|(at, what)| {
                Error::corruption("", at as u64, format!("undecodable record: {what}"))
            })?;
            consistent &= replay(
                &schema,
                &layouts,
                &mut registry,
                &mut rollups,
                &mut state,
                lsn,
                rec,
            )?;
            Ok(())
        })?;
        // Erased devices whose rows segments still hold: their rollup files count them.
        Arc::make_mut(&mut state.version).erased = registry.erased();
        consistent &= retract_erased_segment_rows(&schema, &layouts, &mut rollups, &state.version)?;
        let wal = Wal::open(Arc::clone(&storage), recovery.last_lsn + 1, opts.sync)?;
        let privacy = crate::privacy::Privacy::open(&*storage, opts.k_anonymity)?;
        let inner = Arc::new(Inner {
            privacy,
            hints: hints(&schema),
            storage,
            schema,
            wal,
            state: Mutex::new(state),
            registry: RwLock::new(registry),
            layouts,
            rollups: RwLock::new(rollups),
            maintenance: Mutex::new(()),
            duplicates: AtomicU64::new(0),
            poisoned: Mutex::new(None),
            recovery,
            opts,
            device_cols: std::sync::OnceLock::new(),
        });
        let worker = if inner.opts.background {
            let (tx, rx) = crossbeam_channel::unbounded::<Job>();
            let w = Arc::clone(&inner);
            let handle = std::thread::Builder::new()
                .name("hearth-maintenance".into())
                .spawn(move || {
                    // With SyncPolicy::Interval the thread also fsyncs the log when the
                    // interval passes without a job, so the bound on what a crash can lose
                    // holds even when writes stop.
                    let tick = match w.opts.sync {
                        SyncPolicy::Interval(d) => d,
                        _ => std::time::Duration::from_secs(3600),
                    };
                    loop {
                        let job = match rx.recv_timeout(tick) {
                            Ok(job) => job,
                            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                                if matches!(w.opts.sync, SyncPolicy::Interval(_))
                                    && w.wal.synced_lsn() < w.wal.last_lsn()
                                {
                                    if let Err(e) = w.wal.sync_all() {
                                        w.poison(&e);
                                    }
                                }
                                continue;
                            }
                            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                        };
                        match job {
                            // Errors poison the database; writers see them on their next call.
                            Job::Maintain => {
                                if let Err(e) = w.maintain() {
                                    w.poison(&e);
                                }
                            }
                            Job::Stop => break,
                        }
                    }
                })
                .map_err(|e| Error::io("spawn maintenance thread", "", e))?;
            Some((tx, handle))
        } else {
            None
        };
        if !consistent {
            inner.rebuild_rollups()?;
        }
        let db = Db {
            inner,
            worker,
            _lock: None,
        };
        if db.inner.state.lock().active.rows >= db.inner.opts.memtable_rows {
            db.flush()?;
        }
        Ok(db)
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// Registers a device (or replaces the attributes of a registered one); durable when it
    /// returns (per the sync policy). Region and segment are derived from the postcode table
    /// when empty. Returns the dense id.
    pub fn register(&self, info: DeviceInfo) -> Result<u32> {
        self.register_all(vec![info])
            .map(|ids| ids.first().copied().unwrap_or(0))
    }

    /// Registers several devices in one log record.
    pub fn register_all(&self, infos: Vec<DeviceInfo>) -> Result<Vec<u32>> {
        for i in &infos {
            i.validate()?;
        }
        let inner = &self.inner;
        inner.check_writable()?;
        let lsn = {
            let mut state = inner.state.lock();
            let mut reg = inner.registry.write();
            let mut rec = LogRecord::default();
            let mut next = reg.len() as u32;
            let mut ids = Vec::with_capacity(infos.len());
            let rollups = inner.rollups.read();
            for mut info in infos {
                reg.derive(&mut info);
                if let Some(id) = reg.id(&info.serial) {
                    let changed = reg
                        .get(id)
                        .and_then(|old| rollup::changed_attribute(old, &info));
                    if let Some(a) = changed.filter(|_| rollups.has_rows(id)) {
                        return Err(InputError::InvalidDevice {
                            serial: info.serial.clone(),
                            attribute: a.name(),
                            reason: "is fixed once the device has rows, because rollups are \
                                     keyed by it; erase the device to change it"
                                .into(),
                        }
                        .into());
                    }
                }
                let id = match reg.id(&info.serial).or_else(|| {
                    rec.registrations
                        .iter()
                        .find(|(_, d)| d.serial == info.serial)
                        .map(|(id, _)| *id)
                }) {
                    Some(id) => id,
                    None => {
                        next += 1;
                        next - 1
                    }
                };
                ids.push(id);
                rec.registrations.push((id, info));
            }
            let mut payload = Vec::new();
            rec.encode(&mut payload);
            drop(rollups);
            let lsn = inner.wal_append(&payload)?;
            let mut rollups = inner.rollups.write();
            for (id, info) in rec.registrations {
                rollups.attrs.set_device(id, &info);
                reg.apply_register(id, info, "registration")?;
            }
            drop(rollups);
            state.active.max_lsn = lsn;
            drop(reg);
            drop(state);
            (lsn, ids)
        };
        inner.wal_sync(lsn.0)?;
        Ok(lsn.1)
    }

    /// Loads (adds to) the postcode table used to derive region and segment at registration.
    /// Durable when it returns: a new registry file is published.
    pub fn set_postcodes(&self, table: &[PostcodeEntry]) -> Result<()> {
        let inner = &self.inner;
        inner.check_writable()?;
        let _m = inner.maintenance.lock();
        inner.registry.write().set_postcodes(table);
        let mut manifest = inner.state.lock().version.manifest.clone();
        let old = inner.write_registry(&mut manifest)?;
        manifest.publish(&*inner.storage)?;
        {
            let mut st = inner.state.lock();
            let segments = st.version.segments.clone();
            let erased = st.version.erased.clone();
            let summaries = st.version.summaries.clone();
            st.version = Arc::new(Version {
                manifest,
                segments,
                erased,
                summaries,
            });
        }
        inner.remove_registry(old)
    }

    /// Resolved rollup declarations, per stream.
    pub(crate) fn layouts(&self) -> &[Layouts] {
        &self.inner.layouts
    }

    /// Where the per-device questions find their columns and cubes.
    pub(crate) fn device_cols(&self) -> Option<&crate::query::device::Cols> {
        self.inner
            .device_cols
            .get_or_init(|| {
                crate::query::device::Cols::resolve(&self.inner.schema, &self.inner.layouts)
            })
            .as_ref()
    }

    /// The privacy settings and audit log.
    pub(crate) fn privacy(&self) -> &crate::privacy::Privacy {
        &self.inner.privacy
    }

    /// The storage the database lives on.
    pub(crate) fn storage(&self) -> &dyn Storage {
        &*self.inner.storage
    }

    /// The fleet rollups (read-locked).
    pub(crate) fn rollups(&self) -> parking_lot::RwLockReadGuard<'_, Rollups> {
        self.inner.rollups.read()
    }

    /// Calls `f` with every memtable row of `device` in `stream` (frozen memtables first, in
    /// no particular order) under the state lock, and returns the version of that instant
    /// and the device's largest flushed timestamp (`i64::MIN`: none).
    fn memtable_rows(
        &self,
        stream: usize,
        device: u32,
        mut f: impl FnMut(i64, &[i64]),
    ) -> (Arc<Version>, i64) {
        let st = self.inner.state.lock();
        for m in st
            .frozen
            .iter()
            .map(|m| &**m)
            .chain(std::iter::once(&st.active))
        {
            if let Some(b) = m.get(stream, device) {
                for (i, &t) in b.ts.iter().enumerate() {
                    f(t, b.row(i));
                }
            }
        }
        let flushed = st
            .flushed_max
            .get(stream)
            .and_then(|fm| fm.get(device as usize))
            .copied()
            .unwrap_or(i64::MIN);
        (Arc::clone(&st.version), flushed)
    }

    /// The newest rows of `device` in `stream`, at most `n` of them and oldest first, from
    /// the memtables and the tails kept in the rollup files of the latest window's segments;
    /// `None` when those may not hold all `n` newest rows (then a scan must answer).
    pub(crate) fn device_tail(
        &self,
        stream: usize,
        device: u32,
        n: usize,
    ) -> Result<Option<Vec<TailRow>>> {
        let Some(layout) = self
            .inner
            .layouts
            .get(stream)
            .and_then(|l| l.device.as_ref())
        else {
            return Ok(None);
        };
        if n > rollup::device::TAIL_ROWS {
            return Ok(None);
        }
        let mut rows: Vec<TailRow> = Vec::new();
        let (version, flushed) =
            self.memtable_rows(stream, device, |t, row| rows.push((t, row.to_vec())));
        if flushed != i64::MIN {
            // Windows from the one holding the device's newest flushed row backwards. A row
            // among the n (<= TAIL_ROWS) newest of the windows read so far is among the
            // newest TAIL_ROWS of its segment, so in that segment's tail.
            let def = &self.inner.schema.streams[stream];
            let newest_window = def.window_of(flushed);
            let windows = version
                .segments
                .range((stream as u16, i64::MIN)..=(stream as u16, newest_window))
                .rev();
            // The tails of the two newest windows (a window that began less than 16 rows ago
            // sends the read to the one before): start loading both before reading either.
            for seg in windows.clone().take(2).flat_map(|(_, segs)| segs) {
                if let Some(r) = &seg.rollup {
                    r.prefetch(device, rollup::file::TAIL_PREFETCH);
                }
            }
            for ((_, w), segs) in windows {
                for seg in segs {
                    let Some(r) = &seg.rollup else {
                        return Ok(None);
                    };
                    if let Some(blob) = r.checked_blob(device)? {
                        blob.tail_rows(layout, |t, v| rows.push((t, v.to_vec())))
                            .map_err(|what| {
                                Error::corruption(&r.name, blob.offset() as u64, what)
                            })?;
                    }
                }
                // Every row from this window's start on that could be among the n newest is
                // in hand; when n of them are, nothing older can be (memtable rows may be
                // older: they count only from the window's start).
                let start = w.saturating_mul(def.window_ms);
                if rows.iter().filter(|r| r.0 >= start).count() >= n {
                    break;
                }
            }
        }
        rows.sort_unstable_by_key(|r| r.0);
        let drop = rows.len().saturating_sub(n);
        Ok(Some(rows.split_off(drop)))
    }

    /// Calls `f` with every part of cube `cube` of `stream`: the cells of the rows in
    /// segments, then those of each memtable, all of one instant.
    pub(crate) fn with_cube<T>(
        &self,
        stream: usize,
        cube: usize,
        f: impl FnOnce(&[&rollup::cube::Cube]) -> T,
    ) -> T {
        let st = self.inner.state.lock();
        let active = st
            .active
            .cubes
            .get(stream)
            .and_then(|c| c.get(cube))
            .cloned();
        let frozen: Vec<Arc<Memtable>> = st.frozen.clone();
        // Taken before the state lock is released: a flush installing its cells (which
        // takes both) cannot come between the two reads.
        let rollups = self.inner.rollups.read();
        drop(st);
        let mut parts: Vec<&rollup::cube::Cube> = Vec::with_capacity(frozen.len() + 2);
        if let Some(c) = rollups.streams.get(stream).and_then(|s| s.cubes.get(cube)) {
            parts.push(c);
        }
        for m in &frozen {
            if let Some(c) = m.cubes.get(stream).and_then(|c| c.get(cube)) {
                parts.push(c);
            }
        }
        if let Some(c) = &active {
            parts.push(c);
        }
        f(&parts)
    }

    /// Calls `f` for every week cell of `device`'s rollup in `stream` whose week starts in
    /// `[first_week, end_week)` (days), from the rollup files of the segments, the device
    /// summaries of windows whose raw rows retention dropped, and the memtables' rows. A week split across sources comes as several cells. The sums of
    /// squares are not read (`CellView::sumsq` is empty), nor slots from `slots_below` on.
    pub(crate) fn device_cells(
        &self,
        stream: usize,
        device: u32,
        first_week: i64,
        end_week: i64,
        slots_below: usize,
        mut f: impl FnMut(&rollup::device::CellView<'_>),
    ) -> Result<()> {
        let Some(layout) = self
            .inner
            .layouts
            .get(stream)
            .and_then(|l| l.device.as_ref())
        else {
            return Ok(());
        };
        let def = &self.inner.schema.streams[stream];
        let day = crate::schema::DAY_MS;
        let range = first_week.saturating_mul(day)..end_week.saturating_mul(day);
        // The memtables' rows of this device are few: roll them up under the lock rather
        // than copying buffers out.
        let mut builder = rollup::device::BlobBuilder::new(layout);
        let (version, _) = self.memtable_rows(stream, device, |t, row| {
            if range.contains(&t) {
                builder.add(t, row);
            }
        });
        let mem_blob = (!builder.is_empty()).then(|| {
            let mut blob = Vec::new();
            builder.finish(&mut blob);
            blob
        });
        let (w0, w1) = def.windows_of(&range);
        let segments = version
            .segments
            .range((stream as u16, w0)..=(stream as u16, w1));
        // A random device's blobs are not in cache: start loading the head of each (its
        // lengths and newest cells) before reading any, so the misses overlap.
        for seg in segments.clone().flat_map(|(_, segs)| segs) {
            if let Some(r) = &seg.rollup {
                r.prefetch(device, rollup::file::BLOB_PREFETCH);
            }
        }
        for (_, segs) in segments {
            for seg in segs {
                let Some(r) = &seg.rollup else { continue };
                if let Some(blob) = r.checked_blob(device)? {
                    blob.cells(layout, first_week, end_week, slots_below, &mut f)
                        .map_err(|what| Error::corruption(&r.name, blob.offset() as u64, what))?;
                }
            }
        }
        // Windows whose raw rows retention dropped: their cells kept in a device summary.
        for (_, r) in version
            .summaries
            .range((stream as u16, w0)..=(stream as u16, w1))
        {
            if let Some(blob) = r.checked_blob(device)? {
                blob.cells(layout, first_week, end_week, slots_below, &mut f)
                    .map_err(|what| Error::corruption(&r.name, blob.offset() as u64, what))?;
            }
        }
        if let Some(blob) = mem_blob {
            rollup::device::CheckedBlob::trusted(&blob)
                .cells(layout, first_week, end_week, slots_below, &mut f)
                .map_err(|what| Error::corruption("memtable", 0, what))?;
        }
        Ok(())
    }

    /// The dense id of a serial.
    pub fn device_id(&self, serial: &str) -> Option<u32> {
        self.inner.registry.read().id(serial)
    }

    /// A registered device's attributes, by dense id.
    pub fn device(&self, id: u32) -> Option<DeviceInfo> {
        self.inner.registry.read().get(id).cloned()
    }

    /// Number of device ids in use: ids are dense (`0..device_count()`) and never reused,
    /// so erased devices keep theirs ([`Db::device`] is `None` for them).
    pub fn device_count(&self) -> usize {
        self.inner.registry.read().len()
    }

    /// Appends a batch. The whole batch is validated first; on any error nothing is written.
    /// Rows whose (device, ts) is already stored are dropped (first write wins) and counted.
    /// Returns when the batch is durable according to the [`SyncPolicy`].
    pub fn append(&self, batch: &Batch) -> Result<AppendReport> {
        let inner = &self.inner;
        inner.check_writable()?;
        let stream_idx = inner
            .schema
            .stream_index(&batch.stream)
            .ok_or_else(|| InputError::UnknownStream(batch.stream.clone()))?;
        let stream_def = &inner.schema.streams[stream_idx];
        let cols = batch::validate(stream_def, batch, &inner.opts.limits)?;
        let (lsn, report, should_flush) = inner.append_rows(stream_idx, batch, cols)?;
        inner.wal_sync(lsn)?;
        inner
            .duplicates
            .fetch_add(report.duplicates, Ordering::Relaxed);
        if should_flush {
            self.request_maintenance()?;
        }
        self.backpressure()?;
        Ok(report)
    }

    /// When more than [`MAX_FROZEN`] memtables wait for flush (ingest outruns the
    /// maintenance thread), the writer waits for the thread and helps flush, so memory stays
    /// bounded.
    fn backpressure(&self) -> Result<()> {
        if self.inner.state.lock().frozen.len() <= MAX_FROZEN {
            return Ok(());
        }
        let _m = self.inner.maintenance.lock();
        self.inner.flush_frozen()
    }

    fn request_maintenance(&self) -> Result<()> {
        match &self.worker {
            Some((tx, _)) => {
                let _ = tx.send(Job::Maintain);
                Ok(())
            }
            None => self.inner.maintain(),
        }
    }

    /// Writes every buffered row to segments and publishes them.
    pub fn flush(&self) -> Result<()> {
        self.inner.check_writable()?;
        let _m = self.inner.maintenance.lock();
        self.inner.freeze()?;
        self.inner.flush_frozen()
    }

    /// Merges the segments of every (stream, window) that has more than one, dropping
    /// duplicates. Returns the number of windows compacted.
    pub fn compact(&self) -> Result<usize> {
        self.inner.check_writable()?;
        let _m = self.inner.maintenance.lock();
        self.inner.compact(true)
    }

    /// Rows of one device in `range` (ms, end exclusive), sorted by timestamp, with the named
    /// columns (all declared columns when `columns` is empty).
    pub fn scan_device(
        &self,
        stream: &str,
        serial: &str,
        range: Range<i64>,
        columns: &[&str],
    ) -> Result<DeviceRows> {
        let (stream_idx, projection) = self.inner.projection(stream, columns)?;
        let device = self
            .device_id(serial)
            .ok_or_else(|| InputError::UnknownDevice {
                row: 0,
                serial: serial.to_string(),
            })?;
        self.inner
            .read_device(stream_idx, device, &range, &projection)
    }

    /// Rows of every device in `range`, one [`DeviceRows`] per device with rows, in device
    /// id order, each sorted by timestamp.
    pub fn scan(
        &self,
        stream: &str,
        range: Range<i64>,
        columns: &[&str],
        mut visit: impl FnMut(&DeviceRows),
    ) -> Result<u64> {
        self.scan_where(
            stream,
            range,
            columns,
            |_| true,
            |rows| {
                visit(rows);
                true
            },
        )
    }

    /// [`Db::scan`] of the devices for which `want` (asked in device order, just before the
    /// device would be read) is true, until `visit` returns false.
    pub(crate) fn scan_where(
        &self,
        stream: &str,
        range: Range<i64>,
        columns: &[&str],
        mut want: impl FnMut(u32) -> bool,
        mut visit: impl FnMut(&DeviceRows) -> bool,
    ) -> Result<u64> {
        let (stream_idx, projection) = self.inner.projection(stream, columns)?;
        let (version, mems) = self.inner.snapshot(stream_idx, None, &range);
        let devices = self.inner.devices_in(&version, &mems, stream_idx, &range);
        let mut total = 0;
        for d in devices {
            if !want(d) {
                continue;
            }
            let rows =
                self.inner
                    .merge_device(&version, &mems, stream_idx, d, &range, &projection)?;
            if !rows.is_empty() {
                total += rows.len() as u64;
                if !visit(&rows) {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// [`Db::scan`] on up to `split.threads` threads (fewer when there are fewer than
    /// `split.min_devices_per_thread` devices per thread): the devices of one snapshot are cut into
    /// contiguous runs, one per thread, and each thread folds its devices' rows into its own
    /// state (`init`, then `visit` per device with rows, in device order). Returns the states
    /// in device order and the rows read. Every device is read by exactly one thread, from
    /// the same snapshot, so the answer is the sequential scan's whatever `threads`.
    pub(crate) fn scan_split<T: Send>(
        &self,
        stream: &str,
        range: Range<i64>,
        columns: &[&str],
        split: ScanSplit,
        init: impl Fn() -> T + Sync,
        visit: impl Fn(&mut T, &DeviceRows) + Sync,
    ) -> Result<(Vec<T>, u64)> {
        let (stream_idx, projection) = self.inner.projection(stream, columns)?;
        let (version, mems) = self.inner.snapshot(stream_idx, None, &range);
        let devices = self.inner.devices_in(&version, &mems, stream_idx, &range);
        let part = |ids: &[u32]| -> Result<(T, u64)> {
            let mut state = init();
            let mut rows_read = 0u64;
            for &d in ids {
                let rows =
                    self.inner
                        .merge_device(&version, &mems, stream_idx, d, &range, &projection)?;
                if !rows.is_empty() {
                    rows_read += rows.len() as u64;
                    visit(&mut state, &rows);
                }
            }
            Ok((state, rows_read))
        };
        let threads = split.threads.clamp(
            1,
            (devices.len() / split.min_devices_per_thread.max(1)).max(1),
        );
        let results: Vec<Result<(T, u64)>> = if threads == 1 {
            vec![part(&devices)]
        } else {
            let chunk = devices.len().div_ceil(threads);
            std::thread::scope(|sc| {
                let handles: Vec<_> = devices
                    .chunks(chunk)
                    .map(|ids| sc.spawn(|| part(ids)))
                    .collect();
                handles
                    .into_iter()
                    // A panic in a thread is the sequential scan's panic: raised again.
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        let mut states = Vec::with_capacity(results.len());
        let mut total = 0;
        for r in results {
            let (state, rows) = r?;
            states.push(state);
            total += rows;
        }
        Ok((states, total))
    }

    /// Figures for `hearth info`.
    pub fn info(&self) -> Result<Info> {
        let inner = &self.inner;
        let (version, mem_rows) = {
            let st = inner.state.lock();
            let mut mem_rows = vec![0u64; inner.schema.streams.len()];
            for m in std::iter::once(&st.active).chain(st.frozen.iter().map(|m| &**m)) {
                for (i, s) in m.streams.iter().enumerate() {
                    mem_rows[i] += s.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
                }
            }
            (Arc::clone(&st.version), mem_rows)
        };
        let streams = inner
            .schema
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let segs: Vec<&SegmentMeta> = version
                    .manifest
                    .segments
                    .iter()
                    .filter(|m| usize::from(m.stream) == i)
                    .collect();
                let rows: u64 = segs.iter().map(|m| m.rows).sum();
                let bytes: u64 = segs.iter().map(|m| m.bytes).sum();
                let mut per_column = vec![0u64; s.columns.len() + 1];
                let mut rollup_bytes = 0u64;
                for (_, list) in version
                    .segments
                    .range((i as u16, i64::MIN)..=(i as u16, i64::MAX))
                {
                    for seg in list {
                        for (acc, b) in per_column.iter_mut().zip(seg.chunk_bytes()) {
                            *acc += b;
                        }
                        rollup_bytes += seg.rollup.as_ref().map_or(0, |r| r.size());
                    }
                }
                let (summary_windows, summary_bytes) = version
                    .summaries
                    .range((i as u16, i64::MIN)..=(i as u16, i64::MAX))
                    .fold((0u64, 0u64), |(n, b), (_, r)| (n + 1, b + r.size()));
                let column_bytes = std::iter::once("ts".to_string())
                    .chain(s.columns.iter().map(|c| c.name.clone()))
                    .zip(per_column)
                    .collect();
                StreamInfo {
                    name: s.name.clone(),
                    segment_rows: rows,
                    memtable_rows: mem_rows[i],
                    segments: segs.len() as u64,
                    segment_bytes: bytes,
                    column_bytes,
                    rollup_bytes,
                    summary_windows,
                    summary_bytes,
                    bytes_per_row: if rows == 0 {
                        0.0
                    } else {
                        bytes as f64 / rows as f64
                    },
                }
            })
            .collect();
        let mut total = 0;
        for n in inner
            .storage
            .list()
            .map_err(|e| Error::io("list", inner.storage.describe(), e))?
        {
            total += inner.storage.read(&n).map(|b| b.len() as u64).unwrap_or(0);
        }
        Ok(Info {
            devices: inner.registry.read().live() as u64,
            erased_pending_purge: version.erased.len() as u64,
            streams,
            log_bytes: inner.wal.size_bytes(),
            total_bytes: total,
            checkpoint_lsn: version.manifest.checkpoint_lsn,
            last_lsn: inner.wal.last_lsn(),
            duplicates_dropped: inner.duplicates.load(Ordering::Relaxed),
            log_records_replayed: inner.recovery.records_replayed,
            log_tail_truncated: inner.recovery.truncated.clone(),
        })
    }

    /// Checks every checksum of the database in `dir` and decodes every block and log
    /// record, without changing anything (a torn log tail, which the next open would cut, is
    /// reported as corruption here). Run it on a database no process has open for writing.
    pub fn verify(dir: impl AsRef<std::path::Path>) -> Result<VerifyReport> {
        let dir = dir.as_ref();
        let storage = DirStorage::new(dir)
            .map_err(|e| Error::io("open directory", dir.display().to_string(), e))?;
        Db::verify_storage(&storage)
    }

    /// [`Db::verify`] on any storage.
    pub fn verify_storage(storage: &dyn Storage) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let (schema, schema_len) = load_schema(storage)?;
        report.files_checked += 1;
        report.bytes_checked += schema_len;
        let manifest_bytes = files::read(storage, files::MANIFEST)?;
        let manifest = Manifest::decode(&manifest_bytes)?;
        report.files_checked += 1;
        report.bytes_checked += manifest_bytes.len() as u64;
        let mut used = vec![
            files::SCHEMA.to_string(),
            files::MANIFEST.to_string(),
            files::LOCK.to_string(),
        ];
        // Rollup files are checked against the registered devices, as `open` does.
        let mut attrs = rollup::AttrTable::default();
        if let Some(g) = manifest.registry {
            let name = files::registry_name(g);
            let bytes = files::read(storage, &name)?;
            let registry = Registry::decode(&name, &bytes)?;
            for id in 0..registry.len() as u32 {
                if let Some(info) = registry.rollup_record(id) {
                    attrs.set_device(id, info);
                }
            }
            report.devices = registry.len() as u64;
            report.files_checked += 1;
            report.bytes_checked += bytes.len() as u64;
            used.push(name);
        }
        for meta in &manifest.segments {
            let seg = open_segment(storage, &schema, meta)?;
            let rows = seg.verify()?;
            if rows != meta.rows {
                return Err(Error::corruption(
                    &seg.name,
                    0,
                    format!("segment holds {rows} rows, the manifest says {}", meta.rows),
                ));
            }
            report.segments += 1;
            report.segment_rows += rows;
            report.files_checked += 1;
            report.bytes_checked += seg.size();
            used.push(seg.name.clone());
            let l = Layouts::new(&schema.streams[usize::from(meta.stream)]);
            if meta.rollup && l.any() {
                let (r, _) = open_rollup(storage, &l, &mut attrs, meta, &seg)?;
                r.verify(&l)?;
                report.files_checked += 1;
                report.bytes_checked += r.size();
                used.push(r.name.clone());
            }
        }
        let layouts: Vec<Layouts> = schema.streams.iter().map(Layouts::new).collect();
        for meta in &manifest.summaries {
            let r = open_summary(storage, &layouts, meta)?;
            let cells = r.verify(&layouts[usize::from(meta.stream)])?;
            if cells != meta.cells {
                return Err(Error::corruption(
                    &r.name,
                    0,
                    format!(
                        "device summary holds {cells} week cells, the manifest says {}",
                        meta.cells
                    ),
                ));
            }
            report.summaries += 1;
            report.files_checked += 1;
            report.bytes_checked += r.size();
            used.push(r.name.clone());
        }
        let recovery = wal::recover_with_mode(
            storage,
            manifest.checkpoint_lsn,
            wal::RecoveryMode::Strict,
            |lsn, payload| {
                LogRecord::decode(payload)
                    .map(|_| ())
                    .map_err(|(at, what)| {
                        Error::corruption(
                            format!("log record {lsn}"),
                            at as u64,
                            format!("undecodable record: {what}"),
                        )
                    })
            },
        )?;
        report.log_records = recovery.records_replayed;
        for (name, bytes) in crate::privacy::verify(storage)? {
            report.files_checked += 1;
            report.bytes_checked += bytes;
            used.push(name);
        }
        let names = storage
            .list()
            .map_err(|e| Error::io("list", storage.describe(), e))?;
        for n in names {
            if wal::parse_file_name(&n).is_none() && !used.contains(&n) {
                report.unreferenced_files.push(n);
            }
        }
        Ok(report)
    }

    /// Waits for background work, flushes nothing, and closes. Buffered rows stay in the log.
    pub fn close(mut self) -> Result<()> {
        self.stop_worker();
        self.inner.wal.sync_all()
    }

    fn stop_worker(&mut self) {
        if let Some((tx, handle)) = self.worker.take() {
            let _ = tx.send(Job::Stop);
            let _ = handle.join();
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop_worker();
    }
}

/// Publishes the SCHEMA file.
fn write_schema(storage: &dyn Storage, schema: &Schema) -> Result<()> {
    let json = serde_json::to_vec(schema)
        .map_err(|e| Error::io("encode schema", files::SCHEMA, std::io::Error::other(e)))?;
    files::write_atomic(
        storage,
        files::SCHEMA,
        &files::encode_envelope(&files::SCHEMA_MAGIC, SCHEMA_VERSION, &json),
    )
}

/// Opens a segment's rollup file, or rolls the segment up from its rows when it has none
/// (segments written before the stream declared rollups) or an older version 1 file.
fn open_rollup(
    storage: &dyn Storage,
    layouts: &Layouts,
    attrs: &mut rollup::AttrTable,
    meta: &SegmentMeta,
    seg: &Segment,
) -> Result<(SegmentRollup, rollup::StreamRollups)> {
    let expect = (meta.stream, meta.window, meta.id);
    let name = files::rollup_name(meta.id);
    if meta.rollup {
        let bytes = files::read(storage, &name)?;
        if rollup::file::declared_version(&bytes) != Some(1) {
            return SegmentRollup::open(&name, bytes, layouts, attrs, expect);
        }
        // Version 1 (an older blob layout): roll the segment up again from its rows.
    }
    let all: Vec<usize> = (0..layouts.ncols).collect();
    let mut w = RollupWriter::new(layouts, attrs);
    for pos in 0..seg.entries().len() {
        let mut d = Decoded::default();
        seg.read(pos, &all, &mut d)?;
        let cols: Vec<&[i64]> = d.cols.iter().map(Vec::as_slice).collect();
        w.add_device(seg.entries()[pos].device, &d.ts, &cols);
    }
    let bytes = w.finish(meta.stream, meta.window, meta.id);
    let mut scratch = attrs.clone();
    SegmentRollup::open(
        &name,
        bytes::Bytes::from(bytes),
        layouts,
        &mut scratch,
        expect,
    )
}

/// Opens a device-summary file the manifest names, checked against its entry.
fn open_summary(
    storage: &dyn Storage,
    layouts: &[Layouts],
    meta: &crate::manifest::SummaryMeta,
) -> Result<SegmentRollup> {
    let name = files::summary_name(meta.id);
    let l = layouts
        .get(usize::from(meta.stream))
        .filter(|l| l.device.is_some())
        .ok_or_else(|| {
            Error::corruption(
                files::MANIFEST,
                0,
                format!(
                    "device summary {name} of stream {}, which keeps no device rollup",
                    meta.stream
                ),
            )
        })?;
    let bytes = files::read(storage, &name)?;
    let r = rollup::file::open_summary(&name, bytes, l, (meta.stream, meta.window, meta.id))?;
    if r.devices().len() as u64 != meta.devices || r.size() != meta.bytes {
        return Err(Error::corruption(
            &name,
            0,
            format!(
                "device summary holds {} devices in {} bytes, the manifest says {} in {}",
                r.devices().len(),
                r.size(),
                meta.devices,
                meta.bytes
            ),
        ));
    }
    Ok(r)
}

/// Reads and checks the SCHEMA file; returns the schema and the file's length.
pub(crate) fn load_schema(storage: &dyn Storage) -> Result<(Schema, u64)> {
    let bytes = files::read(storage, files::SCHEMA)?;
    let (_, payload) =
        files::decode_envelope(files::SCHEMA, &bytes, &files::SCHEMA_MAGIC, SCHEMA_VERSION)?;
    let schema: Schema = serde_json::from_slice(payload).map_err(|e| {
        Error::corruption(
            files::SCHEMA,
            files::ENVELOPE_HEADER as u64,
            format!("bad schema: {e}"),
        )
    })?;
    schema.validate().map_err(|e| {
        Error::corruption(
            files::SCHEMA,
            files::ENVELOPE_HEADER as u64,
            format!("stored schema invalid: {e}"),
        )
    })?;
    Ok((schema, bytes.len() as u64))
}

fn open_segment(storage: &dyn Storage, schema: &Schema, meta: &SegmentMeta) -> Result<Segment> {
    let name = files::segment_name(meta.id);
    let seg = Segment::open(&name, files::read(storage, &name)?)?;
    let ncols = schema
        .streams
        .get(usize::from(meta.stream))
        .map(|s| s.columns.len());
    if seg.stream != meta.stream || seg.window != meta.window || Some(seg.ncols()) != ncols {
        return Err(Error::corruption(
            &name,
            0,
            "segment header disagrees with the manifest or the schema",
        ));
    }
    Ok(seg)
}

/// Applies one replayed log record.
fn replay(
    schema: &Schema,
    layouts: &[Layouts],
    registry: &mut Registry,
    rollups: &mut Rollups,
    state: &mut State,
    lsn: u64,
    rec: LogRecord,
) -> Result<bool> {
    // An empty file name: the log fills in its own (see `wal::recover`).
    let file = "";
    if !rec.erased.is_empty() {
        let mut consistent = true;
        for &id in &rec.erased {
            registry.apply_erase(id, file)?;
            consistent &= erase_from_memtable(layouts, rollups, &mut state.active, id).0;
        }
        state.active.max_lsn = lsn;
        return Ok(consistent);
    }
    for (id, info) in rec.registrations {
        rollups.attrs.set_device(id, &info);
        registry.apply_register(id, info, file)?;
    }
    let stream = usize::from(rec.stream);
    let ncols = schema.streams.get(stream).map(|s| s.columns.len());
    if !rec.ts.is_empty() && ncols != Some(rec.cols.len()) {
        return Err(Error::corruption(
            file,
            0,
            "record does not match the schema",
        ));
    }
    for (i, (&d, &ts)) in rec.device.iter().zip(&rec.ts).enumerate() {
        let device = u32::try_from(d)
            .ok()
            .filter(|&d| (d as usize) < registry.len())
            .ok_or_else(|| {
                Error::corruption(file, 0, format!("row for unregistered device id {d}"))
            })?;
        let Some(buf) = state.active.buffer(stream, device) else {
            return Err(Error::corruption(file, 0, "bad stream"));
        };
        if buf.contains(ts) {
            continue;
        }
        let row: Vec<i64> = rec
            .cols
            .iter()
            .map(|c| c.get(i).copied().unwrap_or(0))
            .collect();
        buf.push(ts, row.iter().copied());
        if let Some(delta) = state.active.cubes.get_mut(stream) {
            rollups.add_memtable_row(layouts, delta, stream, device, ts, &row);
        }
        state.active.rows += 1;
    }
    state.active.max_lsn = lsn;
    Ok(true)
}

/// Takes an erased device's rows out of a memtable, and their cells out of its cube delta
/// and of the month counts. Returns false when the rollups did not hold some row (they
/// must then be rebuilt from the files), and the rows taken out.
fn erase_from_memtable(
    layouts: &[Layouts],
    rollups: &mut Rollups,
    m: &mut Memtable,
    device: u32,
) -> (bool, u64) {
    let mut consistent = true;
    let mut removed = 0;
    for (stream, buf) in m.remove_device(device).into_iter().enumerate() {
        let Some(buf) = buf else { continue };
        removed += buf.len() as u64;
        let rows: Vec<(i64, Vec<i64>)> = (0..buf.len())
            .map(|i| (buf.ts[i], buf.row(i).to_vec()))
            .collect();
        if let Some(delta) = m.cubes.get_mut(stream) {
            consistent &= rollups.retract_device(layouts, stream, device, &[], &rows, delta);
        }
    }
    (consistent, removed)
}

/// Every row of `device` that the segments of `stream` in `version` hold, each copy (a row
/// two segments hold twice was counted twice by their rollups), all columns.
fn segment_rows(
    version: &Version,
    schema: &Schema,
    stream: usize,
    device: u32,
) -> Result<Vec<(i64, Vec<i64>)>> {
    let ncols = schema.streams.get(stream).map_or(0, |s| s.columns.len());
    let all: Vec<usize> = (0..ncols).collect();
    let mut rows = Vec::new();
    for (_, segs) in version
        .segments
        .range((stream as u16, i64::MIN)..=(stream as u16, i64::MAX))
    {
        for seg in segs {
            let Some(pos) = seg.find(device) else {
                continue;
            };
            let mut d = Decoded::default();
            seg.read(pos, &all, &mut d)?;
            for (i, &t) in d.ts.iter().enumerate() {
                rows.push((t, d.cols.iter().map(|c| c[i]).collect()));
            }
        }
    }
    Ok(rows)
}

/// Takes the rows of erased devices that segments still hold out of `rollups` (whose cells
/// count them: rollup files are per segment). False when some row was not held.
fn retract_erased_segment_rows(
    schema: &Schema,
    layouts: &[Layouts],
    rollups: &mut Rollups,
    version: &Version,
) -> Result<bool> {
    let mut consistent = true;
    for &device in &version.erased {
        for (stream, l) in layouts.iter().enumerate() {
            if !l.any() {
                continue;
            }
            let rows = segment_rows(version, schema, stream, device)?;
            consistent &= rollups.retract_device(layouts, stream, device, &rows, &[], &mut []);
        }
    }
    Ok(consistent)
}

impl Inner {
    fn check_writable(&self) -> Result<()> {
        if let Some(p) = &*self.poisoned.lock() {
            return Err(Error::Poisoned(p.clone()));
        }
        if self.wal.is_poisoned() {
            return Err(Error::Poisoned("the write-ahead log failed to sync".into()));
        }
        Ok(())
    }

    fn poison(&self, e: &Error) {
        let mut p = self.poisoned.lock();
        if p.is_none() {
            *p = Some(e.to_string());
        }
    }

    fn wal_append(&self, payload: &[u8]) -> Result<u64> {
        self.wal.append(payload).inspect_err(|e| self.poison(e))
    }

    fn wal_sync(&self, lsn: u64) -> Result<()> {
        self.wal.sync_to(lsn).inspect_err(|e| self.poison(e))
    }

    /// Each row's device id as the registry knows it now ([`NO_ID`]: unknown), under the
    /// registry's read lock only. A live id keeps its serial until it is erased, so the
    /// write-locked part takes an id found here when its slot is still live.
    fn lookup_ids(&self, batch: &Batch) -> Vec<u32> {
        let reg = self.registry.read();
        let mut ids = Vec::with_capacity(batch.len());
        let mut last: Option<(&str, u32)> = None;
        for serial in &batch.device {
            let id = match last {
                Some((s, id)) if s == serial => id,
                _ => reg.id(serial).unwrap_or(NO_ID),
            };
            last = Some((serial, id));
            ids.push(id);
        }
        ids
    }

    /// The write-locked part of append. Returns the record's LSN.
    fn append_rows(
        &self,
        stream_idx: usize,
        batch: &Batch,
        cols: Vec<Vec<i64>>,
    ) -> Result<(u64, AppendReport, bool)> {
        // Serials to ids before the write lock, so concurrent writers hash in parallel;
        // checked again under the lock (an id found here may have been erased since).
        let known = self.lookup_ids(batch);
        let mut state = self.state.lock();
        let mut reg = self.registry.write();
        // Map serials to ids; collect registrations.
        let mut rec = LogRecord {
            stream: stream_idx as u16,
            ..LogRecord::default()
        };
        let mut new_ids: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let mut ids = Vec::with_capacity(batch.len());
        let mut last: Option<(&str, u32)> = None;
        for (row, serial) in batch.device.iter().enumerate() {
            if let Some((s, id)) = last {
                if s == serial {
                    ids.push(id);
                    continue;
                }
            }
            let found = match known.get(row) {
                Some(&id) if id != NO_ID && reg.state(id) == registry::SlotState::Live => Some(id),
                _ => reg.id(serial),
            };
            let id = match found.or_else(|| new_ids.get(serial.as_str()).copied()) {
                Some(id) => id,
                None => match self.opts.unknown_devices {
                    UnknownDevices::Reject => {
                        return Err(InputError::UnknownDevice {
                            row,
                            serial: serial.clone(),
                        }
                        .into())
                    }
                    UnknownDevices::AutoRegister => {
                        registry::validate_serial(serial)?;
                        let id = (reg.len() + new_ids.len()) as u32;
                        new_ids.insert(serial, id);
                        let mut info = DeviceInfo::unknown(serial);
                        reg.derive(&mut info);
                        rec.registrations.push((id, info));
                        id
                    }
                },
            };
            last = Some((serial, id));
            ids.push(id);
        }
        // Drop duplicates and insert, one run of same-device rows at a time (a failed log
        // write removes the accepted rows again).
        let State {
            active,
            frozen,
            flushed_max,
            version,
        } = &mut *state;
        let fmax = flushed_max.get(stream_idx);
        let n = batch.len();
        let mut accepted: Vec<u32> = Vec::with_capacity(n);
        let mut row = 0;
        while row < n {
            let device = ids[row];
            let end = row + ids[row..].iter().take_while(|&&d| d == device).count();
            let on_disk_max = fmax
                .and_then(|f| f.get(device as usize))
                .copied()
                .unwrap_or(i64::MIN);
            let Some(buf) = active.buffer(stream_idx, device) else {
                return Err(InputError::UnknownStream(batch.stream.clone()).into());
            };
            buf.reserve(end - row);
            for r in row..end {
                let ts = batch.ts[r];
                if buf.contains(ts)
                    || frozen
                        .iter()
                        .any(|m| m.frozen_contains(stream_idx, device, ts))
                    || (ts <= on_disk_max
                        && segments_contain(version, &self.schema, stream_idx, device, ts)?)
                {
                    continue;
                }
                buf.push(ts, cols.iter().map(|c| c[r]));
                accepted.push(r as u32);
            }
            row = end;
        }
        let report = AppendReport {
            accepted: accepted.len() as u64,
            duplicates: (n - accepted.len()) as u64,
            registered: rec.registrations.len() as u64,
        };
        if accepted.is_empty() && rec.registrations.is_empty() {
            return Ok((0, report, false));
        }
        let mut payload = Vec::with_capacity(64 + accepted.len() * 2 * (cols.len() + 2));
        if accepted.len() == n {
            let device: Vec<i64> = ids.iter().map(|&d| i64::from(d)).collect();
            record::encode_parts(
                &mut payload,
                &rec.registrations,
                rec.stream,
                &device,
                &batch.ts,
                &cols,
            );
        } else {
            rec.device = accepted
                .iter()
                .map(|&r| i64::from(ids[r as usize]))
                .collect();
            rec.ts = accepted.iter().map(|&r| batch.ts[r as usize]).collect();
            rec.cols = cols
                .iter()
                .map(|c| accepted.iter().map(|&r| c[r as usize]).collect())
                .collect();
            rec.encode(&mut payload);
        }
        let lsn = match self.wal_append(&payload) {
            Ok(lsn) => lsn,
            Err(e) => {
                for &r in accepted.iter().rev() {
                    let r = r as usize;
                    if let Some(b) = active.buffer(stream_idx, ids[r]) {
                        b.remove(batch.ts[r]);
                    }
                }
                return Err(e);
            }
        };
        {
            let mut rollups = self.rollups.write();
            for (id, info) in rec.registrations {
                rollups.attrs.set_device(id, &info);
                reg.apply_register(id, info, "registration")?;
            }
            if self.layouts[stream_idx].any() {
                let mut rows = Vec::with_capacity(accepted.len() * cols.len());
                for &r in &accepted {
                    rows.extend(cols.iter().map(|c| c[r as usize]));
                }
                let devices: Vec<u32> = accepted.iter().map(|&r| ids[r as usize]).collect();
                let ts: Vec<i64> = accepted.iter().map(|&r| batch.ts[r as usize]).collect();
                if let Some(delta) = active.cubes.get_mut(stream_idx) {
                    rollups.add_memtable_rows(
                        &self.layouts,
                        delta,
                        stream_idx,
                        &devices,
                        &ts,
                        &rows,
                    );
                }
            }
        }
        active.rows += accepted.len();
        active.max_lsn = lsn;
        let should_flush = active.rows >= self.opts.memtable_rows;
        if should_flush {
            drop(reg);
            self.freeze_locked(&mut state)?;
        }
        Ok((lsn, report, should_flush))
    }

    fn projection(&self, stream: &str, columns: &[&str]) -> Result<(usize, Vec<usize>)> {
        let stream_idx = self
            .schema
            .stream_index(stream)
            .ok_or_else(|| InputError::UnknownStream(stream.to_string()))?;
        let def = &self.schema.streams[stream_idx];
        let projection = if columns.is_empty() {
            (0..def.columns.len()).collect()
        } else {
            columns
                .iter()
                .map(|c| {
                    def.column_index(c).ok_or_else(|| {
                        Error::from(InputError::UnknownColumn {
                            stream: stream.to_string(),
                            column: c.to_string(),
                        })
                    })
                })
                .collect::<Result<Vec<_>>>()?
        };
        Ok((stream_idx, projection))
    }

    /// A consistent view: the published segments and the memtables (the active one copied
    /// for one device, or for the whole stream).
    fn snapshot(
        &self,
        stream: usize,
        device: Option<u32>,
        range: &Range<i64>,
    ) -> (Arc<Version>, Vec<Arc<Memtable>>) {
        let st = self.state.lock();
        let mut mems: Vec<Arc<Memtable>> = st.frozen.clone();
        let mut copy = Memtable::new(st.active.streams.iter().map(|_| 0).collect());
        if let (Some(src), Some(dst)) =
            (st.active.streams.get(stream), copy.streams.get_mut(stream))
        {
            match device {
                Some(d) => {
                    if let Some(b) = src.get(d) {
                        dst.insert(d, b.clone());
                    }
                }
                None => {
                    for (d, b) in src.iter() {
                        if b.ts.iter().any(|t| range.contains(t)) {
                            dst.insert(d, b.clone());
                        }
                    }
                }
            }
        }
        mems.push(Arc::new(copy));
        (Arc::clone(&st.version), mems)
    }

    /// The devices with rows of `stream` in any source of a snapshot whose windows meet
    /// `range`, ascending, erased devices left out.
    fn devices_in(
        &self,
        version: &Version,
        mems: &[Arc<Memtable>],
        stream_idx: usize,
        range: &Range<i64>,
    ) -> Vec<u32> {
        let def = &self.schema.streams[stream_idx];
        let (w0, w1) = def.windows_of(range);
        let mut devices: Vec<u32> = Vec::new();
        let stream = stream_idx as u16;
        for (_, segs) in version.segments.range((stream, w0)..=(stream, w1)) {
            for seg in segs {
                devices.extend(seg.entries().iter().map(|e| e.device));
            }
        }
        for m in mems {
            if let Some(s) = m.streams.get(stream_idx) {
                devices.extend(s.iter().map(|(d, _)| d));
            }
        }
        devices.sort_unstable();
        devices.dedup();
        devices.retain(|&d| !version.is_erased(d));
        devices
    }

    fn read_device(
        &self,
        stream: usize,
        device: u32,
        range: &Range<i64>,
        projection: &[usize],
    ) -> Result<DeviceRows> {
        let (version, mems) = self.snapshot(stream, Some(device), range);
        self.merge_device(&version, &mems, stream, device, range, projection)
    }

    /// Merges one device's rows from segments (older first) and memtables, in `range`.
    fn merge_device(
        &self,
        version: &Version,
        mems: &[Arc<Memtable>],
        stream: usize,
        device: u32,
        range: &Range<i64>,
        projection: &[usize],
    ) -> Result<DeviceRows> {
        let def = &self.schema.streams[stream];
        let (w0, w1) = def.windows_of(range);
        let mut parts: Vec<Decoded> = Vec::new();
        let key_lo = (stream as u16, w0);
        let key_hi = (stream as u16, w1);
        for (_, segs) in version.segments.range(key_lo..=key_hi) {
            for seg in segs {
                let Some(pos) = seg.find(device) else {
                    continue;
                };
                let e = seg.entries()[pos];
                if e.max_ts < range.start || e.min_ts >= range.end {
                    continue;
                }
                let mut d = Decoded::default();
                seg.read(pos, projection, &mut d)?;
                parts.push(clip(d, range));
            }
        }
        for m in mems {
            if let Some(b) = m.get(stream, device) {
                let (ts, cols) = b.select(range.start, range.end, projection);
                if !ts.is_empty() {
                    parts.push(Decoded { ts, cols });
                }
            }
        }
        Ok(merge_parts(device, parts, projection.len()))
    }

    /// Freezes the active memtable (rotating the log) if it holds rows.
    fn freeze(&self) -> Result<()> {
        let mut st = self.state.lock();
        self.freeze_locked(&mut st)
    }

    fn freeze_locked(&self, st: &mut State) -> Result<()> {
        if st.active.is_empty() {
            return Ok(());
        }
        self.freeze_always(st)
    }

    /// Freezes the active memtable even when it holds no rows, as long as the log holds
    /// records past the checkpoint (registrations, erasures): its flush then moves the
    /// checkpoint past them, so the log files holding them can go.
    fn freeze_all_logged(&self, st: &mut State) -> Result<()> {
        if st.active.is_empty() && st.active.max_lsn <= st.version.manifest.checkpoint_lsn {
            return Ok(());
        }
        self.freeze_always(st)
    }

    fn freeze_always(&self, st: &mut State) -> Result<()> {
        self.wal.rotate().inspect_err(|e| self.poison(e))?;
        let ncols = self
            .schema
            .streams
            .iter()
            .map(|s| s.columns.len())
            .collect();
        let mut m = std::mem::replace(&mut st.active, Memtable::new(ncols));
        m.freeze();
        st.frozen.push(Arc::new(m));
        Ok(())
    }

    /// Flush then compact as needed (the background job).
    fn maintain(&self) -> Result<()> {
        let _m = self.maintenance.lock();
        self.freeze()?;
        self.flush_frozen()?;
        self.compact(false)?;
        Ok(())
    }

    /// Writes each frozen memtable, oldest first. Caller holds `maintenance`.
    fn flush_frozen(&self) -> Result<()> {
        loop {
            let (m, version) = {
                let st = self.state.lock();
                match st.frozen.first() {
                    Some(m) => (Arc::clone(m), Arc::clone(&st.version)),
                    None => return Ok(()),
                }
            };
            self.flush_one(&m, &version)
                .inspect_err(|e| self.poison(e))?;
        }
    }

    fn flush_one(&self, m: &Arc<Memtable>, version: &Arc<Version>) -> Result<()> {
        let mut manifest = version.manifest.clone();
        let mut new_segments: Vec<(SegmentMeta, Segment)> = Vec::new();
        // Attributes as of now: every device with rows here was registered before its rows.
        let attrs = self.rollups.read().attrs.clone();
        for (stream_idx, devices) in m.streams.iter().enumerate() {
            let def = &self.schema.streams[stream_idx];
            let layouts = &self.layouts[stream_idx];
            // Split every device's sorted rows by window.
            let mut by_window: BTreeMap<i64, Vec<WindowRun<'_>>> = BTreeMap::new();
            for (device, buf) in devices.iter() {
                let mut start = 0;
                while start < buf.ts.len() {
                    let w = def.window_of(buf.ts[start]);
                    let end = start + buf.ts[start..].partition_point(|&t| def.window_of(t) == w);
                    by_window
                        .entry(w)
                        .or_default()
                        .push((device, buf, start..end));
                    start = end;
                }
            }
            for (window, runs) in by_window {
                let mut w =
                    SegmentWriter::new(stream_idx as u16, window, self.hints[stream_idx].clone());
                let mut rw = layouts.any().then(|| match m.cubes.get(stream_idx) {
                    // Day cells split cleanly by window when windows are whole days: the
                    // segment's cube cells are the memtable's, restricted to its days.
                    Some(delta) if def.window_ms % crate::schema::DAY_MS == 0 => {
                        let d0 = (window * def.window_ms).div_euclid(crate::schema::DAY_MS);
                        let d1 = d0 + def.window_ms / crate::schema::DAY_MS - 1;
                        RollupWriter::with_cubes(
                            layouts,
                            &attrs,
                            delta.iter().map(|c| c.days_between(d0, d1)).collect(),
                        )
                    }
                    _ => RollupWriter::new(layouts, &attrs),
                });
                // With rollups, the segment is encoded on a second thread while this one
                // rolls the same rows up: both only read the frozen memtable.
                let (runs, ncols) = (&runs, def.columns.len());
                let (bytes, summary) = match &mut rw {
                    Some(rw) => std::thread::scope(|sc| {
                        let seg = sc.spawn(move || {
                            for_each_run(runs, ncols, |run| w.add(run));
                            w.finish()
                        });
                        for_each_run(runs, ncols, |run| {
                            rw.add_device(run.device, run.ts, &run.cols)
                        });
                        seg.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
                    }),
                    None => {
                        for_each_run(runs, ncols, |run| w.add(run));
                        w.finish()
                    }
                };
                let mut meta = new_segment_meta(
                    &mut manifest,
                    stream_idx as u16,
                    window,
                    &summary,
                    bytes.len(),
                );
                let seg = self.write_segment_and_rollup(&mut meta, bytes, rw)?;
                new_segments.push((meta, seg));
            }
        }
        let old_registry = self.write_registry(&mut manifest)?;
        manifest.checkpoint_lsn = m.max_lsn.max(manifest.checkpoint_lsn);
        manifest
            .segments
            .extend(new_segments.iter().map(|(meta, _)| meta.clone()));
        manifest.publish(&*self.storage)?;

        // Install: new version, memtable gone (its cube cells joining the segments'), on-disk
        // maxima updated.
        {
            let mut st = self.state.lock();
            {
                let mut rollups = self.rollups.write();
                for (s, delta) in m.cubes.iter().enumerate() {
                    if let (Some(dst), Some(l)) = (rollups.streams.get_mut(s), self.layouts.get(s))
                    {
                        dst.merge_cubes(l, delta);
                    }
                }
            }
            let mut segments = st.version.segments.clone();
            for (meta, seg) in new_segments {
                let fm = &mut st.flushed_max[usize::from(meta.stream)];
                note_flushed(fm, &seg);
                segments
                    .entry((meta.stream, meta.window))
                    .or_default()
                    .push(Arc::new(seg));
            }
            let erased = st.version.erased.clone();
            let summaries = st.version.summaries.clone();
            st.version = Arc::new(Version {
                manifest: manifest.clone(),
                segments,
                erased,
                summaries,
            });
            st.frozen.retain(|f| !Arc::ptr_eq(f, m));
        }
        self.wal.remove_obsolete(manifest.checkpoint_lsn)?;
        self.remove_registry(old_registry)
    }

    /// Writes the registry as a new generation named by `manifest` (not yet published);
    /// returns the generation it replaces. The registry holds every registration whose log
    /// record was written; the log is synced first, so it holds none that a crash could
    /// still take back. Caller holds `maintenance`.
    fn write_registry(&self, manifest: &mut Manifest) -> Result<Option<u64>> {
        self.wal.sync_all().inspect_err(|e| self.poison(e))?;
        let bytes = self.registry.read().encode()?;
        let generation = manifest.next_file_id;
        manifest.next_file_id += 1;
        files::write_new(&*self.storage, &files::registry_name(generation), &bytes)?;
        Ok(manifest.registry.replace(generation))
    }

    /// Removes a registry generation that a published manifest no longer names.
    fn remove_registry(&self, generation: Option<u64>) -> Result<()> {
        if let Some(g) = generation {
            let name = files::registry_name(g);
            self.storage
                .remove(&name)
                .map_err(|e| Error::io("remove", &name, e))?;
        }
        Ok(())
    }

    /// Writes (and fsyncs) a segment and, when given, its rollup file, and opens them.
    /// Neither is live until a manifest naming the segment is published.
    fn write_segment_and_rollup(
        &self,
        meta: &mut SegmentMeta,
        bytes: Vec<u8>,
        rollup: Option<RollupWriter<'_>>,
    ) -> Result<Segment> {
        let name = files::segment_name(meta.id);
        files::write_new(&*self.storage, &name, &bytes)?;
        let mut seg = Segment::open(&name, files::read(&*self.storage, &name)?)?;
        if let Some(rw) = rollup {
            let rname = files::rollup_name(meta.id);
            let (rbytes, devices, offsets) = rw.finish_indexed(meta.stream, meta.window, meta.id);
            files::write_new(&*self.storage, &rname, &rbytes)?;
            meta.rollup = true;
            let r = SegmentRollup::written(
                &rname,
                files::read(&*self.storage, &rname)?,
                devices,
                offsets,
            )?;
            seg.rollup = Some(r);
        }
        Ok(seg)
    }

    /// Compacts windows. With `major`, merges every window's segments into one; otherwise
    /// size-tiered: segments of a window fall in tiers by row count (powers of 4), and a tier
    /// holding `compaction_trigger` segments is merged, so each row is rewritten only a
    /// logarithmic number of times. Caller holds `maintenance`.
    fn compact(&self, major: bool) -> Result<usize> {
        let version = Arc::clone(&self.state.lock().version);
        let trigger = self.opts.compaction_trigger.max(2);
        let mut done = 0;
        for ((stream, window), segs) in &version.segments {
            let pick: Vec<Arc<Segment>> = if major {
                if segs.len() < 2 {
                    continue;
                }
                segs.clone()
            } else {
                let tier = |s: &Segment| (64 - s.rows().max(1).leading_zeros()) / 2;
                let mut best: Option<Vec<Arc<Segment>>> = None;
                for t in segs.iter().map(|s| tier(s)) {
                    let same: Vec<Arc<Segment>> =
                        segs.iter().filter(|s| tier(s) == t).cloned().collect();
                    if same.len() >= trigger && best.as_ref().is_none_or(|b| same.len() > b.len()) {
                        best = Some(same);
                    }
                }
                match best {
                    Some(b) => b,
                    None => continue,
                }
            };
            self.compact_group(*stream, *window, &pick)
                .inspect_err(|e| self.poison(e))?;
            done += 1;
        }
        Ok(done)
    }

    /// Merges `segs` (of one window) into one segment, dropping duplicates and the rows of
    /// erased devices. Returns the new segment's bytes. Caller holds `maintenance`.
    fn compact_group(&self, stream: u16, window: i64, segs: &[Arc<Segment>]) -> Result<u64> {
        self.rewrite_group(stream, window, segs, false)
    }

    /// [`Inner::compact_group`]; with `copy` and one segment (a purge), every remaining
    /// device's block and blob are copied as they are (their CRCs checked), and the new
    /// rollup file's fleet state is the old file's with the erased devices' rows retracted,
    /// rather than everything encoded and rolled up again. Cells whose min or max an erased
    /// row may have set are written stale (answered by a scan).
    fn rewrite_group(
        &self,
        stream: u16,
        window: i64,
        segs: &[Arc<Segment>],
        copy: bool,
    ) -> Result<u64> {
        let s = usize::from(stream);
        let ncols = self.schema.streams[s].columns.len();
        let all: Vec<usize> = (0..ncols).collect();
        // Stable meanwhile: erasures hold `maintenance` too.
        let erased = self.state.lock().version.erased.clone();
        let mut devices: Vec<u32> = segs
            .iter()
            .flat_map(|g| g.entries().iter().map(|e| e.device))
            .collect();
        devices.sort_unstable();
        devices.dedup();
        // Rows of erased devices are already out of the fleet rollups.
        let erased_rows: u64 = segs
            .iter()
            .flat_map(|g| g.entries())
            .filter(|e| erased.binary_search(&e.device).is_ok())
            .map(|e| u64::from(e.rows))
            .sum();
        devices.retain(|d| erased.binary_search(d).is_err());
        let mut w = SegmentWriter::new(stream, window, self.hints[s].clone());
        let layouts = &self.layouts[s];
        let mut attrs = self.rollups.read().attrs.clone();
        let single = match segs {
            [seg] if copy => Some(seg),
            _ => None,
        };
        let kept_fleet = match single {
            Some(seg) if layouts.any() => {
                self.fleet_without_erased(s, seg, &erased, &mut attrs, &all)?
            }
            _ => None,
        };
        // Blobs are copied from the old rollup file when its fleet state is reused.
        let blobs_from = kept_fleet
            .as_ref()
            .and(single)
            .and_then(|g| g.rollup.as_ref());
        let attrs = attrs;
        let mut rw = layouts.any().then(|| match kept_fleet {
            Some(fleet) => RollupWriter::with_fleet(layouts, &attrs, fleet),
            None => RollupWriter::new(layouts, &attrs),
        });
        let rows_before: u64 = segs.iter().map(|g| g.rows()).sum();
        let mut rows_after = 0u64;
        for d in devices {
            if let Some(seg) = single {
                let Some(pos) = seg.find(d) else { continue };
                let mut dec = Decoded::default();
                seg.read(pos, &all, &mut dec)?;
                let (block, lens) = seg.raw_block(pos)?;
                let run = DeviceRun {
                    device: d,
                    ts: &dec.ts,
                    cols: dec.cols.iter().map(Vec::as_slice).collect(),
                };
                w.add_copied(&run, block, &lens);
                if let Some(rw) = &mut rw {
                    match blobs_from {
                        Some(r) => {
                            if r.checked_blob(d)?.is_some() {
                                if let Some((blob, _)) = r.blob(d) {
                                    rw.add_blob(d, blob);
                                }
                            }
                        }
                        None => rw.add_device(d, run.ts, &run.cols),
                    }
                }
                rows_after += dec.ts.len() as u64;
                continue;
            }
            let mut parts = Vec::new();
            for g in segs {
                if let Some(pos) = g.find(d) {
                    let mut dec = Decoded::default();
                    g.read(pos, &all, &mut dec)?;
                    parts.push(dec);
                }
            }
            let rows = merge_parts(d, parts, ncols);
            if rows.is_empty() {
                continue;
            }
            let run = DeviceRun {
                device: d,
                ts: &rows.ts,
                cols: rows.columns.iter().map(Vec::as_slice).collect(),
            };
            w.add(&run);
            if let Some(rw) = &mut rw {
                rw.add_device(d, run.ts, &run.cols);
            }
            rows_after += rows.ts.len() as u64;
        }
        let (bytes, summary) = w.finish();
        let written = bytes.len() as u64;
        let old_ids: Vec<u64> = segs
            .iter()
            .filter_map(|g| files::parse_segment_name(&g.name))
            .collect();
        // Publish under the state lock's view of the latest manifest.
        let mut st = self.state.lock();
        let mut manifest = st.version.manifest.clone();
        let mut meta = new_segment_meta(&mut manifest, stream, window, &summary, bytes.len());
        drop(st);
        let seg = self.write_segment_and_rollup(&mut meta, bytes, rw)?;
        st = self.state.lock();
        // The merged segment takes the place of the oldest one it replaces.
        let at = manifest
            .segments
            .iter()
            .position(|m| old_ids.contains(&m.id))
            .unwrap_or(manifest.segments.len());
        manifest.segments.retain(|m| !old_ids.contains(&m.id));
        manifest
            .segments
            .insert(at.min(manifest.segments.len()), meta);
        manifest.publish(&*self.storage)?;
        let mut segments = st.version.segments.clone();
        let list = segments.entry((stream, window)).or_default();
        let at = list
            .iter()
            .position(|g| segs.iter().any(|o| Arc::ptr_eq(g, o)))
            .unwrap_or(list.len());
        list.retain(|g| !segs.iter().any(|o| Arc::ptr_eq(g, o)));
        list.insert(at.min(list.len()), Arc::new(seg));
        let erased = st.version.erased.clone();
        let summaries = st.version.summaries.clone();
        st.version = Arc::new(Version {
            manifest,
            segments,
            erased,
            summaries,
        });
        drop(st);
        for g in segs {
            let Some(id) = files::parse_segment_name(&g.name) else {
                continue;
            };
            let mut names = vec![files::segment_name(id)];
            if g.rollup.is_some() {
                names.push(files::rollup_name(id));
            }
            for name in names {
                match self.storage.remove(&name) {
                    Ok(()) => {}
                    // A segment rolled up at open (written before rollups) has no file.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove", &name, e)),
                }
            }
        }
        if rows_after + erased_rows != rows_before {
            // Compaction dropped rows the memtables had let through twice: the fleet
            // rollups counted them, so recount from the files.
            self.rebuild_rollups()?;
        }
        self.storage
            .sync_dir()
            .map_err(|e| Error::io("fsync directory", self.storage.describe(), e))?;
        Ok(written)
    }
}

impl Inner {
    /// The fleet state of `seg`'s rollup file (cube cells, month counts, presence bits,
    /// latest rows) with the rows of erased devices taken out; `None` when the segment has
    /// no rollup file or a row was not held (then the caller rolls every
    /// row up again). Attribute values the file names are interned in `attrs` (the writer's
    /// table), so the cells' keys mean the same in the new file.
    fn fleet_without_erased(
        &self,
        stream: usize,
        seg: &Segment,
        erased: &[u32],
        attrs: &mut rollup::AttrTable,
        all: &[usize],
    ) -> Result<Option<rollup::StreamRollups>> {
        let Some(id) = files::parse_segment_name(&seg.name) else {
            return Ok(None);
        };
        let meta = {
            let st = self.state.lock();
            st.version
                .manifest
                .segments
                .iter()
                .find(|m| m.id == id)
                .cloned()
        };
        let Some(meta) = meta.filter(|m| m.rollup) else {
            return Ok(None);
        };
        if seg.rollup.is_none() {
            return Ok(None);
        }
        let layouts = &self.layouts[stream];
        // A version-1 file is rolled up from the segment's rows here, as at open (where
        // the segment's blobs in memory were built the same way): both are this version's.
        let (_, mut fleet) = open_rollup(&*self.storage, layouts, attrs, &meta, seg)?;
        for &d in erased {
            let Some(pos) = seg.find(d) else { continue };
            let mut dec = Decoded::default();
            seg.read(pos, all, &mut dec)?;
            let rows: Vec<Vec<i64>> = (0..dec.ts.len())
                .map(|i| dec.cols.iter().map(|c| c[i]).collect())
                .collect();
            let a = attrs.device(d);
            if !fleet.retract_rows(
                layouts,
                d,
                &a,
                dec.ts.iter().copied().zip(rows.iter().map(Vec::as_slice)),
                std::iter::empty(),
            ) {
                return Ok(None);
            }
        }
        Ok(Some(fleet))
    }

    /// Recomputes the fleet rollups from the live rollup files and the memtables. Holds the
    /// state lock throughout, so no row arrives meanwhile.
    fn rebuild_rollups(&self) -> Result<()> {
        let st = self.state.lock();
        let mut fresh = Rollups::new(&self.layouts);
        fresh.attrs = self.rollups.read().attrs.clone();
        for (meta, segs) in st.version.manifest.segments.iter().filter_map(|m| {
            st.version
                .segments
                .get(&(m.stream, m.window))
                .map(|list| (m, list))
        }) {
            let Some(seg) = segs
                .iter()
                .find(|g| files::parse_segment_name(&g.name) == Some(meta.id))
            else {
                continue;
            };
            let l = &self.layouts[usize::from(meta.stream)];
            if l.any() {
                let (_, fleet) = open_rollup(&*self.storage, l, &mut fresh.attrs, meta, seg)?;
                fresh.streams[usize::from(meta.stream)].absorb(l, fleet);
            }
        }
        for m in st
            .frozen
            .iter()
            .map(|m| &**m)
            .chain(std::iter::once(&st.active))
        {
            for (stream, devices) in m.streams.iter().enumerate() {
                if !self.layouts[stream].any() {
                    continue;
                }
                for (device, buf) in devices.iter() {
                    let ncols = self.layouts[stream].ncols;
                    let all: Vec<usize> = (0..ncols).collect();
                    let (ts, cols) = buf.select(i64::MIN, i64::MAX, &all);
                    let mut row = vec![0i64; ncols];
                    for (i, &t) in ts.iter().enumerate() {
                        for (dst, c) in row.iter_mut().zip(&cols) {
                            *dst = c[i];
                        }
                        // Cube cells of memtable rows live in the memtables' deltas.
                        let attrs = fresh.attrs.device(device);
                        if let Some(s) = fresh.streams.get_mut(stream) {
                            s.add_counts(&self.layouts[stream], device, &attrs, t, &row);
                        }
                    }
                }
            }
        }
        if !retract_erased_segment_rows(&self.schema, &self.layouts, &mut fresh, &st.version)? {
            return Err(Error::corruption(
                "rollup files",
                0,
                "the rollup files do not count the rows of an erased device that the segments hold",
            ));
        }
        *self.rollups.write() = fresh;
        Ok(())
    }
}

/// Takes the next file id from `manifest` and describes a segment about to be written.
fn new_segment_meta(
    manifest: &mut Manifest,
    stream: u16,
    window: i64,
    summary: &SegmentSummary,
    bytes: usize,
) -> SegmentMeta {
    let id = manifest.next_file_id;
    manifest.next_file_id += 1;
    SegmentMeta {
        id,
        stream,
        window,
        rows: summary.rows,
        devices: summary.devices,
        bytes: bytes as u64,
        min_ts: summary.min_ts,
        max_ts: summary.max_ts,
        rollup: false,
    }
}

/// Raises each device's largest on-disk timestamp (`flushed_max` of one stream) by a segment.
fn note_flushed(flushed_max: &mut Vec<i64>, seg: &Segment) {
    for e in seg.entries() {
        let i = e.device as usize;
        if flushed_max.len() <= i {
            flushed_max.resize(i + 1, i64::MIN);
        }
        flushed_max[i] = flushed_max[i].max(e.max_ts);
    }
}

/// A row of [`Db::device_tail`]: timestamp and stored values.
pub(crate) type TailRow = (i64, Vec<i64>);

/// One device's rows of one window in a frozen memtable: device, buffer, row range.
type WindowRun<'a> = (u32, &'a DeviceBuffer, Range<usize>);

/// Calls `f` with each run as columns (`ncols` declared columns).
fn for_each_run(runs: &[WindowRun<'_>], ncols: usize, mut f: impl FnMut(&DeviceRun<'_>)) {
    for (device, buf, r) in runs {
        let cols: Vec<Vec<i64>> = (0..ncols).map(|c| buf.column(c, r.clone())).collect();
        f(&DeviceRun {
            device: *device,
            ts: &buf.ts[r.clone()],
            cols: cols.iter().map(Vec::as_slice).collect(),
        });
    }
}

/// True when a segment of the stream holds a row of `device` at `ts`.
fn segments_contain(
    version: &Version,
    schema: &Schema,
    stream: usize,
    device: u32,
    ts: i64,
) -> Result<bool> {
    let Some(def) = schema.streams.get(stream) else {
        return Ok(false);
    };
    let Some(segs) = version.segments.get(&(stream as u16, def.window_of(ts))) else {
        return Ok(false);
    };
    for seg in segs {
        let Some(pos) = seg.find(device) else {
            continue;
        };
        let e = seg.entries()[pos];
        if ts < e.min_ts || ts > e.max_ts {
            continue;
        }
        let mut d = Decoded::default();
        seg.read(pos, &[], &mut d)?;
        if d.ts.binary_search(&ts).is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn clip(mut d: Decoded, range: &Range<i64>) -> Decoded {
    let lo = d.ts.partition_point(|&t| t < range.start);
    let hi = d.ts.partition_point(|&t| t < range.end);
    if lo == 0 && hi == d.ts.len() {
        return d;
    }
    d.ts = d.ts[lo..hi].to_vec();
    for c in &mut d.cols {
        *c = c[lo..hi].to_vec();
    }
    d
}

/// Merges sorted parts (earlier parts win on equal timestamps) into one sorted run.
fn merge_parts(device: u32, mut parts: Vec<Decoded>, ncols: usize) -> DeviceRows {
    parts.retain(|p| !p.ts.is_empty());
    if parts.len() == 1 {
        if let Some(p) = parts.pop() {
            let mut cols = p.cols;
            cols.resize_with(ncols, Vec::new);
            return DeviceRows {
                device,
                ts: p.ts,
                columns: cols,
            };
        }
    }
    let mut order: Vec<(i64, usize, usize)> = Vec::new();
    for (pi, p) in parts.iter().enumerate() {
        order.extend(p.ts.iter().enumerate().map(|(ri, &t)| (t, pi, ri)));
    }
    order.sort_unstable();
    order.dedup_by_key(|x| x.0);
    let mut out = DeviceRows {
        device,
        ts: Vec::with_capacity(order.len()),
        columns: vec![Vec::with_capacity(order.len()); ncols],
    };
    for (t, pi, ri) in order {
        out.ts.push(t);
        for (c, col) in out.columns.iter_mut().enumerate() {
            col.push(
                parts
                    .get(pi)
                    .and_then(|p| p.cols.get(c))
                    .and_then(|v| v.get(ri))
                    .copied()
                    .unwrap_or(0),
            );
        }
    }
    out
}

/// What [`Db::erase_device`] took out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Erased {
    /// The device's dense id (its slot stays, never reused).
    pub id: u32,
    /// Rows taken out of the memtable (and so out of the log's replay).
    pub memtable_rows: u64,
    /// Rows hidden in segments until they are purged.
    pub segment_rows: u64,
    /// Segments holding those rows.
    pub segments: u64,
}

/// What [`Db::purge_erased`] rewrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Purged {
    /// Erased devices whose last bytes were removed.
    pub devices: u64,
    /// Segments rewritten without them.
    pub segments_rewritten: u64,
    /// Rows of erased devices dropped from those segments.
    pub rows_dropped: u64,
    /// Bytes of the segments written (rollup files not counted).
    pub bytes_written: u64,
    /// Device summaries rewritten without them.
    pub summaries_rewritten: u64,
}

impl Db {
    /// Erases a device: one log record (durable when this returns), after which its serial
    /// is unknown, its memtable rows are gone, its segment rows are skipped by every read,
    /// and its rows are out of every fleet rollup. Bytes in segments stay until
    /// [`Db::purge_erased`] or a compaction of their window rewrites them. Frozen memtables
    /// are flushed first (readers share them, so they are never changed in place).
    pub(crate) fn erase_device(&self, serial: &str) -> Result<Erased> {
        let inner = &self.inner;
        inner.check_writable()?;
        let _m = inner.maintenance.lock();
        inner.flush_frozen()?;
        let id = self
            .device_id(serial)
            .ok_or_else(|| InputError::UnknownDevice {
                row: 0,
                serial: serial.to_string(),
            })?;
        // Stable until `maintenance` is released: flush and compaction hold it.
        let version = Arc::clone(&inner.state.lock().version);
        let mut out = Erased {
            id,
            ..Erased::default()
        };
        let mut seg_rows: Vec<Vec<(i64, Vec<i64>)>> = Vec::new();
        for (stream, l) in inner.layouts.iter().enumerate() {
            let rows = if l.any() {
                segment_rows(&version, &inner.schema, stream, id)?
            } else {
                Vec::new()
            };
            seg_rows.push(rows);
        }
        for segs in version.segments.values() {
            for seg in segs {
                if let Some(pos) = seg.find(id) {
                    out.segments += 1;
                    out.segment_rows += u64::from(seg.entries()[pos].rows);
                }
            }
        }
        let mut payload = Vec::new();
        LogRecord {
            erased: vec![id],
            ..LogRecord::default()
        }
        .encode(&mut payload);
        let (lsn, consistent) = {
            let mut st = inner.state.lock();
            let mut reg = inner.registry.write();
            let lsn = inner.wal_append(&payload)?;
            reg.apply_erase(id, "erasure")?;
            let mut rollups = inner.rollups.write();
            let (mut consistent, removed) =
                erase_from_memtable(&inner.layouts, &mut rollups, &mut st.active, id);
            for (stream, rows) in seg_rows.iter().enumerate() {
                consistent &=
                    rollups.retract_device(&inner.layouts, stream, id, rows, &[], &mut []);
            }
            out.memtable_rows = removed;
            st.active.max_lsn = lsn;
            let mut v = (*st.version).clone();
            if let Err(at) = v.erased.binary_search(&id) {
                v.erased.insert(at, id);
            }
            st.version = Arc::new(v);
            (lsn, consistent)
        };
        if !consistent {
            inner.rebuild_rollups()?;
        }
        // Durable whatever the sync policy: an erasure is never lost to a crash.
        inner
            .wal
            .sync_forced(lsn)
            .inspect_err(|e| inner.poison(e))?;
        Ok(out)
    }

    /// Removes the last bytes of erased devices: flushes the memtable (so no log file holds
    /// their rows or serials any more), rewrites every segment holding their rows without
    /// them (with its rollup file), and publishes a registry whose slots for them keep
    /// nothing. Every step is published like a flush or compaction, so a crash leaves the
    /// database before or after it, and the erasure holds either way.
    pub(crate) fn purge_erased(&self) -> Result<Purged> {
        let inner = &self.inner;
        inner.check_writable()?;
        let _m = inner.maintenance.lock();
        {
            let mut st = inner.state.lock();
            inner.freeze_all_logged(&mut st)?;
        }
        inner.flush_frozen()?;
        let version = Arc::clone(&inner.state.lock().version);
        let erased = version.erased.clone();
        let mut out = Purged {
            devices: erased.len() as u64,
            ..Purged::default()
        };
        for ((stream, window), segs) in &version.segments {
            for seg in segs {
                let rows: u64 = seg
                    .entries()
                    .iter()
                    .filter(|e| erased.binary_search(&e.device).is_ok())
                    .map(|e| u64::from(e.rows))
                    .sum();
                if seg
                    .entries()
                    .iter()
                    .any(|e| erased.binary_search(&e.device).is_ok())
                {
                    out.bytes_written += inner
                        .rewrite_group(*stream, *window, std::slice::from_ref(seg), true)
                        .inspect_err(|e| inner.poison(e))?;
                    out.segments_rewritten += 1;
                    out.rows_dropped += rows;
                }
            }
        }
        {
            let mut reg = inner.registry.write();
            for &d in &erased {
                reg.mark_purged(d);
            }
        }
        let current = Arc::clone(&inner.state.lock().version);
        let mut manifest = current.manifest.clone();
        // Device summaries holding erased devices' week cells: rewritten without them (or
        // dropped when no other device remains), published with the registry.
        let mut replaced: Vec<((u16, i64), String)> = Vec::new();
        let mut written: Vec<(crate::manifest::SummaryMeta, SegmentRollup)> = Vec::new();
        for (&(stream, window), r) in &current.summaries {
            if !r.devices().iter().any(|d| erased.binary_search(d).is_ok()) {
                continue;
            }
            let Some(layout) = inner
                .layouts
                .get(usize::from(stream))
                .and_then(|l| l.device.as_ref())
            else {
                continue;
            };
            let id = manifest.next_file_id;
            let w = inner
                .write_summary(stream, window, id, layout, &current, &[&**r])
                .inspect_err(|e| inner.poison(e))?;
            if let Some((meta, nr)) = w {
                manifest.next_file_id += 1;
                out.bytes_written += meta.bytes;
                written.push((meta, nr));
            }
            replaced.push(((stream, window), r.name.clone()));
            out.summaries_rewritten += 1;
        }
        manifest
            .summaries
            .retain(|m| !replaced.iter().any(|(k, _)| *k == (m.stream, m.window)));
        manifest
            .summaries
            .extend(written.iter().map(|(m, _)| m.clone()));
        manifest.summaries.sort_by_key(|m| (m.stream, m.window));
        let old = inner.write_registry(&mut manifest)?;
        manifest.publish(&*inner.storage)?;
        {
            let mut st = inner.state.lock();
            let mut v = (*st.version).clone();
            v.manifest = manifest;
            v.erased.retain(|d| !erased.contains(d));
            v.summaries
                .retain(|k, _| !replaced.iter().any(|(r, _)| r == k));
            for (meta, r) in written {
                v.summaries.insert((meta.stream, meta.window), Arc::new(r));
            }
            st.version = Arc::new(v);
        }
        for (_, name) in &replaced {
            match inner.storage.remove(name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    let e = Error::io("remove", name, e);
                    inner.poison(&e);
                    return Err(e);
                }
            }
        }
        inner.remove_registry(old)?;
        inner
            .storage
            .sync_dir()
            .map_err(|e| Error::io("fsync directory", inner.storage.describe(), e))?;
        Ok(out)
    }
}

/// What a retention run does with one (stream, window) (see `privacy::retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowFate {
    /// Nothing: the raw period has not ended.
    Keep,
    /// Drop the raw rows (segments, rollup files and everything derived from rows in them)
    /// but keep the devices' week cells in a device summary: the raw period ended, the
    /// device-rollup period has not.
    Summarise,
    /// Drop everything, the window's device summary included.
    Drop,
}

/// What [`Db::drop_windows`] took out of one (stream, window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DroppedWindow {
    pub stream: u16,
    pub window: i64,
    /// Segment files dropped.
    pub segments: u64,
    /// Rows in them.
    pub rows: u64,
    /// Bytes of the segment files, their rollup files and any device summary replaced or
    /// dropped.
    pub bytes: u64,
    /// The window's device week cells are kept in a (new) device summary of this many bytes.
    pub summary_bytes: Option<u64>,
    /// The window's device summary was dropped (its device-rollup period ended).
    pub summary_dropped: bool,
}

impl Db {
    /// Checks that the database takes writes, then takes the maintenance lock: while the
    /// guard lives no flush, compaction or other publication runs (retention runs and
    /// policy changes hold it).
    pub(crate) fn maintenance_guard(&self) -> Result<parking_lot::MutexGuard<'_, ()>> {
        self.inner.check_writable()?;
        Ok(self.inner.maintenance.lock())
    }

    /// Applies `fate` to every (stream, window) holding segments or a device summary: rows
    /// of windows not kept that are still in memtables are flushed first; then the device
    /// summaries of the windows to summarise are written (write, fsync, fsync dir: the week
    /// cells of the window's segments and of its previous summary, without tail rows and
    /// without erased devices); then a manifest without the dropped segments and summaries
    /// and with the new ones is published (the commit point), the new version installed,
    /// the fleet rollups recomputed from the remaining files and memtables when a segment
    /// went, and the files removed. `_held` is the caller's [`Db::maintenance_guard`]. Any
    /// failure after the first file written poisons the database, as a failed flush or
    /// compaction does (a summary written but never published is removed at the next
    /// open).
    pub(crate) fn drop_windows(
        &self,
        _held: &parking_lot::MutexGuard<'_, ()>,
        fate: &dyn Fn(u16, i64) -> WindowFate,
    ) -> Result<Vec<DroppedWindow>> {
        let inner = &self.inner;
        let in_memory = {
            let st = inner.state.lock();
            std::iter::once(&st.active)
                .chain(st.frozen.iter().map(|m| &**m))
                .any(|m| {
                    m.streams.iter().enumerate().any(|(s, devices)| {
                        let def = &inner.schema.streams[s];
                        devices.iter().any(|(_, b)| {
                            b.ts.iter()
                                .any(|&t| fate(s as u16, def.window_of(t)) != WindowFate::Keep)
                        })
                    })
                })
        };
        if in_memory {
            inner.freeze()?;
            inner.flush_frozen()?;
        }
        // Stable until the guard is released: every publication holds `maintenance`.
        let version = Arc::clone(&inner.state.lock().version);
        let mut manifest = version.manifest.clone();
        let mut out = Vec::new();
        let mut files_to_remove: Vec<String> = Vec::new();
        let mut ids: Vec<u64> = Vec::new();
        let mut new_summaries: Vec<(crate::manifest::SummaryMeta, SegmentRollup)> = Vec::new();
        let windows: std::collections::BTreeSet<(u16, i64)> = version
            .segments
            .keys()
            .chain(version.summaries.keys())
            .copied()
            .collect();
        let no_segments: Vec<Arc<Segment>> = Vec::new();
        for (stream, window) in windows {
            let f = fate(stream, window);
            if f == WindowFate::Keep {
                continue;
            }
            let segs = version
                .segments
                .get(&(stream, window))
                .unwrap_or(&no_segments);
            let old_summary = version.summaries.get(&(stream, window));
            let layout = inner
                .layouts
                .get(usize::from(stream))
                .and_then(|l| l.device.as_ref());
            let summarise = f == WindowFate::Summarise && layout.is_some();
            if summarise && segs.is_empty() {
                // Already summarised, and no late row arrived since.
                continue;
            }
            let mut d = DroppedWindow {
                stream,
                window,
                ..DroppedWindow::default()
            };
            for seg in segs {
                let Some(id) = files::parse_segment_name(&seg.name) else {
                    continue;
                };
                let Some(meta) = version.manifest.segments.iter().find(|m| m.id == id) else {
                    continue;
                };
                d.segments += 1;
                d.rows += meta.rows;
                d.bytes += meta.bytes;
                ids.push(id);
                files_to_remove.push(files::segment_name(id));
                if meta.rollup {
                    d.bytes += seg.rollup.as_ref().map_or(0, |r| r.size());
                    files_to_remove.push(files::rollup_name(id));
                }
            }
            if let Some(old) = old_summary {
                d.bytes += old.size();
                files_to_remove.push(old.name.clone());
                d.summary_dropped = !summarise;
            }
            if let (true, Some(layout)) = (summarise, layout) {
                let sources: Vec<&SegmentRollup> = segs
                    .iter()
                    .filter_map(|g| g.rollup.as_ref())
                    .chain(old_summary.map(|r| &**r))
                    .collect();
                let id = manifest.next_file_id;
                match inner.write_summary(stream, window, id, layout, &version, &sources) {
                    Ok(Some((meta, r))) => {
                        manifest.next_file_id += 1;
                        d.summary_bytes = Some(meta.bytes);
                        new_summaries.push((meta, r));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // Nothing is published: remove what this run wrote (the next open
                        // would otherwise), and report the first error.
                        for (meta, _) in &new_summaries {
                            let _ = inner.storage.remove(&files::summary_name(meta.id));
                        }
                        return Err(e);
                    }
                }
            }
            out.push(d);
        }
        if out.is_empty() {
            return Ok(out);
        }
        manifest.segments.retain(|m| !ids.contains(&m.id));
        manifest.summaries.retain(|m| {
            !out.iter()
                .any(|d| (d.stream, d.window) == (m.stream, m.window))
        });
        manifest
            .summaries
            .extend(new_summaries.iter().map(|(m, _)| m.clone()));
        manifest.summaries.sort_by_key(|m| (m.stream, m.window));
        manifest
            .publish(&*inner.storage)
            .inspect_err(|e| inner.poison(e))?;
        let segments_dropped = !ids.is_empty();
        {
            let mut st = inner.state.lock();
            let mut segments = st.version.segments.clone();
            segments.retain(|&(s, w), _| !out.iter().any(|d| (d.stream, d.window) == (s, w)));
            let mut summaries = st.version.summaries.clone();
            summaries.retain(|&(s, w), _| !out.iter().any(|d| (d.stream, d.window) == (s, w)));
            for (meta, r) in new_summaries {
                summaries.insert((meta.stream, meta.window), Arc::new(r));
            }
            // Largest flushed timestamps of what remains (only a shortcut of the duplicate
            // check, but kept exact).
            let mut flushed_max: Vec<Vec<i64>> = vec![Vec::new(); inner.schema.streams.len()];
            for ((s, _), list) in &segments {
                if let Some(fm) = flushed_max.get_mut(usize::from(*s)) {
                    for seg in list {
                        note_flushed(fm, seg);
                    }
                }
            }
            st.flushed_max = flushed_max;
            let erased = st.version.erased.clone();
            st.version = Arc::new(Version {
                manifest,
                segments,
                erased,
                summaries,
            });
        }
        if segments_dropped {
            inner.rebuild_rollups().inspect_err(|e| inner.poison(e))?;
        }
        for name in &files_to_remove {
            match inner.storage.remove(name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    let e = Error::io("remove", name, e);
                    inner.poison(&e);
                    return Err(e);
                }
            }
        }
        inner
            .storage
            .sync_dir()
            .map_err(|e| Error::io("fsync directory", inner.storage.describe(), e))
            .inspect_err(|e| inner.poison(e))?;
        Ok(out)
    }
}

impl Inner {
    /// Writes device summary `id` of (stream, window): per device of `sources` (rollup files
    /// of the window's segments, its previous summary) that is not erased, its week cells
    /// added up, without tail rows. Written and fsynced (with the directory) but not
    /// published. `None` when no device has a cell left.
    fn write_summary(
        &self,
        stream: u16,
        window: i64,
        id: u64,
        layout: &rollup::device::DeviceLayout,
        version: &Version,
        sources: &[&SegmentRollup],
    ) -> Result<Option<(crate::manifest::SummaryMeta, SegmentRollup)>> {
        let mut devices: Vec<u32> = sources
            .iter()
            .flat_map(|r| r.devices().iter().copied())
            .filter(|&d| !version.is_erased(d))
            .collect();
        devices.sort_unstable();
        devices.dedup();
        let mut blobs: Vec<(u32, Vec<u8>)> = Vec::with_capacity(devices.len());
        let mut cells = 0u64;
        for d in devices {
            let mut parts: Vec<&[u8]> = Vec::with_capacity(sources.len());
            let mut first: Option<(&str, usize)> = None;
            for r in sources {
                // Checked here so a damaged blob is named by its file and offset.
                if r.checked_blob(d)?.is_some() {
                    if let Some((b, at)) = r.blob(d) {
                        parts.push(b);
                        first.get_or_insert((&r.name, at));
                    }
                }
            }
            // A cell that does not decode (its blob's CRC matched) is named by the first
            // file holding the device's blob.
            let (file, at) = first.unwrap_or(("", 0));
            if let Some((blob, n)) = rollup::device::summary_blob(layout, &parts)
                .map_err(|what| Error::corruption(file, at as u64, format!("device {d}: {what}")))?
            {
                cells += n;
                blobs.push((d, blob));
            }
        }
        if blobs.is_empty() {
            return Ok(None);
        }
        let layouts = &self.layouts[usize::from(stream)];
        let name = files::summary_name(id);
        let (bytes, devs, offsets) =
            rollup::file::write_summary(layouts, stream, window, id, &blobs);
        files::write_new(&*self.storage, &name, &bytes)?;
        let r = SegmentRollup::written(&name, files::read(&*self.storage, &name)?, devs, offsets)?;
        let meta = crate::manifest::SummaryMeta {
            id,
            stream,
            window,
            devices: r.devices().len() as u64,
            cells,
            bytes: r.size(),
        };
        Ok(Some((meta, r)))
    }
}

#[cfg(test)]
impl Db {
    /// Takes every row of `serial` in `stream` out of the fleet rollups (the rows stay in
    /// the segments): the rollup half of an erasure, for tests of retraction.
    pub(crate) fn retract_device_rollups(&self, stream: &str, serial: &str) -> bool {
        let Ok(rows) = self.scan_device(stream, serial, i64::MIN..i64::MAX, &[]) else {
            return false;
        };
        let Some(s) = self.inner.schema.stream_index(stream) else {
            return false;
        };
        let ncols = self.inner.layouts[s].ncols;
        let vals: Vec<Vec<i64>> = (0..rows.len())
            .map(|i| (0..ncols).map(|c| rows.columns[c][i]).collect())
            .collect();
        let _st = self.inner.state.lock();
        let mut r = self.inner.rollups.write();
        let attrs = r.attrs.device(rows.device);
        r.streams[s].retract_rows(
            &self.inner.layouts[s],
            rows.device,
            &attrs,
            rows.ts.iter().copied().zip(vals.iter().map(Vec::as_slice)),
            std::iter::empty(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    fn opts() -> Options {
        Options {
            schema: Some(Schema::washing_machine()),
            background: false,
            unknown_devices: UnknownDevices::AutoRegister,
            ..Options::default()
        }
    }

    #[test]
    fn undecodable_log_record_is_reported_with_the_log_file_and_offset() {
        let sim = SimStorage::new();
        let db = Db::open_with(Arc::new(sim.clone()), opts()).expect("open");
        db.register(DeviceInfo::unknown("WM-1")).expect("register");
        drop(db);
        let log = sim
            .list()
            .expect("list")
            .into_iter()
            .find(|n| wal::parse_file_name(n).is_some())
            .expect("a log file");
        let len = sim.read(&log).expect("read").len() as u64;
        // A well-framed record (valid CRC, next LSN) whose payload is not a batch.
        let mut rec = Vec::new();
        wal::encode_record(&mut rec, 2, &[1, 0, 9]);
        let mut f = sim.open_append(&log).expect("open log");
        f.append(&rec).expect("append");
        f.sync_data().expect("sync");
        drop(f);
        let err = Db::open_with(Arc::new(sim), opts()).expect_err("undecodable record");
        match err {
            Error::Corruption { file, offset, .. } => {
                assert_eq!(file, log);
                assert!(
                    offset >= len && offset <= len + rec.len() as u64,
                    "offset {offset}"
                );
            }
            other => panic!("expected corruption, got {other}"),
        }
    }

    #[test]
    fn a_directory_is_opened_by_one_handle_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), opts()).expect("open");
        let err = Db::open(dir.path(), opts()).expect_err("second handle");
        assert!(matches!(err, Error::Locked(_)), "{err}");
        drop(db);
        Db::open(dir.path(), opts()).expect("open after the first closed");
    }

    #[test]
    fn postcode_table_is_durable_when_set_postcodes_returns() {
        let sim = SimStorage::new();
        let db = Db::open_with(Arc::new(sim.clone()), opts()).expect("open");
        db.set_postcodes(&[PostcodeEntry {
            postcode: "SW1A".into(),
            region: "London".into(),
            segment: "A".into(),
        }])
        .expect("set");
        drop(db);
        let db = Db::open_with(Arc::new(sim.crash(|_, _| 0)), opts()).expect("reopen");
        let id = db
            .register(DeviceInfo {
                postcode: "SW1A".into(),
                ..DeviceInfo::unknown("WM-9")
            })
            .expect("register");
        let d = db.device(id).expect("device");
        assert_eq!((d.region.as_str(), d.segment.as_str()), ("London", "A"));
    }

    #[test]
    fn late_row_lands_in_its_window_and_duplicates_are_counted() {
        let db = Db::open_with(Arc::new(SimStorage::new()), opts()).expect("open");
        let batch = |ts: Vec<i64>| {
            let n = ts.len();
            let mut b = Batch::new("samples");
            b.device = vec!["WM-1".to_string(); n];
            b.ts = ts;
            b.with("phase", crate::Values::Text(vec!["wash".into(); n]))
                .with("drum_rpm", crate::Values::Float(vec![50.0; n]))
                .with("water_temp_c", crate::Values::Float(vec![40.0; n]))
                .with("power_w", crate::Values::Float(vec![200.0; n]))
                .with("vibration_g", crate::Values::Float(vec![0.1; n]))
        };
        let day = crate::schema::DAY_MS;
        let t0 = 1_735_689_600_000;
        db.append(&batch(vec![t0 + 30 * day, t0 + 30 * day + 500]))
            .expect("append");
        db.flush().expect("flush");
        // A late row for a week long flushed, one duplicate of a flushed row, one within.
        let r = db
            .append(&batch(vec![t0 + 2 * day, t0 + 30 * day, t0 + 2 * day]))
            .expect("append");
        assert_eq!((r.accepted, r.duplicates), (1, 2));
        db.flush().expect("flush");
        let version = Arc::clone(&db.inner.state.lock().version);
        let windows: Vec<i64> = version.segments.keys().map(|k| k.1).collect();
        let def = &db.schema().streams[1];
        assert_eq!(
            windows,
            vec![def.window_of(t0 + 2 * day), def.window_of(t0 + 30 * day)]
        );
        let rows = db
            .scan_device("samples", "WM-1", 0..i64::MAX, &[])
            .expect("scan");
        assert_eq!(
            rows.ts,
            vec![t0 + 2 * day, t0 + 30 * day, t0 + 30 * day + 500]
        );
        assert_eq!(db.info().expect("info").duplicates_dropped, 2);
    }

    /// An erasure is durable when it returns even when appends are not (`SyncPolicy::Never`):
    /// a crash that loses every unsynced byte keeps it.
    #[test]
    fn an_erasure_is_durable_under_any_sync_policy() {
        let sim = SimStorage::new();
        let opts = Options {
            sync: SyncPolicy::Never,
            ..opts()
        };
        let db = Db::open_with(Arc::new(sim.clone()), opts.clone()).expect("open");
        db.register(DeviceInfo::unknown("WM-1")).expect("register");
        db.register(DeviceInfo::unknown("WM-2")).expect("register");
        db.flush().expect("flush");
        db.erase_device("WM-1").expect("erase");
        drop(db);
        let db = Db::open_with(Arc::new(sim.crash(|_, _| 0)), opts).expect("reopen");
        assert_eq!(db.device_id("WM-1"), None, "the erasure survived the crash");
        assert!(db.device_id("WM-2").is_some());
    }

    /// After a purge no file of the database holds anything of the erased device: not the
    /// serial (raw bytes of every file, and the decoded registry), not a row (every live
    /// segment, every log record left), not a cell (every rollup file's device blobs, month
    /// counts, presence bits and latest rows), and no file is left that the database does
    /// not use.
    #[test]
    fn purge_leaves_no_file_holding_the_device() {
        use crate::sim::{Fleet, FleetConfig};
        let fleet = Fleet::new(FleetConfig {
            devices: 12,
            days: 40,
            samples: true,
            sample_device_share: 0.5,
            ..FleetConfig::default()
        });
        let sim = SimStorage::new();
        // Weekly cycle windows, so that a retention run summarises some of them.
        let mut schema = Schema::washing_machine();
        schema.streams[0].window_ms = 7 * crate::schema::DAY_MS;
        let opts = Options {
            memtable_rows: 2_000,
            sync: SyncPolicy::Never,
            schema: Some(schema),
            ..opts()
        };
        let db = Db::open_with(Arc::new(sim.clone()), opts.clone()).expect("open");
        db.set_postcodes(&fleet.postcodes()).expect("postcodes");
        db.register_all(fleet.devices().to_vec()).expect("register");
        let mut rows: BTreeMap<String, usize> = BTreeMap::new();
        let batches: Vec<Batch> = fleet.batches(700).collect();
        let half = batches.len() / 2;
        for (i, b) in batches.iter().enumerate() {
            for d in &b.device {
                *rows.entry(d.clone()).or_default() += 1;
            }
            db.append(b).expect("append");
            if i == half {
                // Raw cycles of the first weeks dropped, their week cells kept in device
                // summaries, which the purge must rewrite too.
                let day = crate::schema::DAY_MS;
                db.set_retention_with_device_rollups("cycles", 7 * day, 1000 * day)
                    .expect("policy");
                let r = db
                    .apply_retention(crate::sim::DEFAULT_START_MS + 30 * day)
                    .expect("run");
                assert!(r.summaries_kept() > 1, "{r:?}");
            }
        }
        let serial = rows
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(s, _)| s.clone())
            .expect("rows");
        let id = db.device_id(&serial).expect("id");
        let summaries = |db: &Db| {
            let v = Arc::clone(&db.inner.state.lock().version);
            v.summaries
                .values()
                .map(|r| r.devices().contains(&id))
                .collect::<Vec<bool>>()
        };
        assert!(
            summaries(&db).iter().any(|&held| held),
            "the device is summarised"
        );
        let e = db.erase_device(&serial).expect("erase");
        assert!(e.segment_rows > 0 && e.memtable_rows > 0, "{e:?}");
        let p = db.purge_erased().expect("purge");
        assert!(p.summaries_rewritten > 0, "{p:?}");
        drop(db);
        let db = Db::open_with(Arc::new(sim.clone()), opts).expect("reopen");

        let names = sim.list().expect("list");
        for n in &names {
            let bytes = sim.read(n).expect("read");
            assert!(
                !bytes.windows(serial.len()).any(|w| w == serial.as_bytes()),
                "{n} holds the serial"
            );
        }
        let report = Db::verify_storage(&sim).expect("verify");
        assert!(report.unreferenced_files.is_empty(), "{report:?}");
        // The device summaries, read back from their files: none holds the device.
        let held = summaries(&db);
        assert!(held.len() > 1 && !held.iter().any(|&h| h), "{held:?}");
        assert_eq!(report.summaries, held.len() as u64);

        let version = Arc::clone(&db.inner.state.lock().version);
        assert!(version.erased.is_empty());
        let g = version.manifest.registry.expect("a registry");
        let name = files::registry_name(g);
        let reg = Registry::decode(&name, &sim.read(&name).expect("read")).expect("decode");
        assert_eq!(reg.state(id), registry::SlotState::Purged);
        assert_eq!(reg.rollup_record(id), None);
        assert_eq!(reg.id(&serial), None);
        for d in 0..reg.len() as u32 {
            if let Some(info) = reg.get(d) {
                assert_ne!(info.serial, serial);
            }
        }

        let mut segments = 0;
        for meta in &version.manifest.segments {
            let seg = open_segment(&sim, &db.inner.schema, meta).expect("segment");
            assert!(
                seg.find(id).is_none(),
                "{} holds rows of the device",
                seg.name
            );
            let l = &db.inner.layouts[usize::from(meta.stream)];
            if l.any() {
                let mut attrs = db.inner.rollups.read().attrs.clone();
                let (r, fleet) = open_rollup(&sim, l, &mut attrs, meta, &seg).expect("rollup");
                assert!(r.checked_blob(id).expect("blob").is_none());
                let d = id as usize;
                assert!(fleet.last_ts.get(d).is_none_or(|&t| t == i64::MIN));
                assert!(fleet
                    .months
                    .values()
                    .all(|c| c.get(d).is_none_or(|&n| n == 0)));
                let w = l.presence.words;
                assert!(fleet.presence.values().all(|b| b
                    .get(d * w..(d + 1) * w)
                    .is_none_or(|x| x.iter().all(|&v| v == 0))));
            }
            segments += 1;
        }
        assert!(segments > 2);

        let mut records = 0;
        // Recovery from LSN 0 would fail if any log file from before the checkpoint were
        // left: every record still on disk is read here.
        let checkpoint = version.manifest.checkpoint_lsn;
        let first = sim
            .list()
            .expect("list")
            .iter()
            .filter_map(|n| wal::parse_file_name(n))
            .min()
            .expect("a log file");
        assert_eq!(
            first,
            checkpoint + 1,
            "a log file from before the purge is left"
        );
        wal::recover_with_mode(&sim, checkpoint, wal::RecoveryMode::Strict, |_, payload| {
            let rec = LogRecord::decode(payload).expect("record");
            assert!(rec
                .registrations
                .iter()
                .all(|(d, i)| *d != id && i.serial != serial));
            assert!(rec.device.iter().all(|&d| d != i64::from(id)));
            records += 1;
            Ok(())
        })
        .expect("log");
        // Whatever the log still holds came after the purge's checkpoint.
        assert_eq!(records, 0);
    }
}
