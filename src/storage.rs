//! The storage trait: every byte hearth reads or writes goes through [`Storage`].
//!
//! A database lives in one flat directory. Files are written append-only and published by
//! name: a file is created, appended to, synced, and (for metadata) renamed into place, after
//! which the directory is synced. Readers take a whole file as [`Bytes`]; on disk this is a
//! memory map, in tests a copy of memory.
//!
//! Two implementations ship: [`DirStorage`] (the real file system, memory maps for reads) and
//! [`SimStorage`] (memory only, keeps what was written apart from what was synced, can fail
//! the N-th sync or cut the power at it, then hand back the disk as a crash would leave it).
//! The crash tests drive the engine over `SimStorage` and cut the power at every sync point.
//!
//! Assumed of a real disk (see docs/FORMAT.md): `fsync` of a file makes its data durable,
//! `fsync` of the directory makes creations, renames and removals durable, rename within a
//! directory is atomic, and a crash may leave any prefix of unsynced appended bytes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

/// A flat directory of files.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates `name` empty (truncating it if it exists) and opens it for appending.
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    /// The whole content of a file (a memory map on disk).
    fn read(&self, name: &str) -> io::Result<Bytes>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Names of all files.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Makes creations, renames and removals durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// Where the files live, for messages.
    fn describe(&self) -> String;
}

/// A file open for appending.
pub trait StorageFile: Send {
    /// Appends bytes at the end.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> u64;
    /// True when the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Truncates the file to `len` bytes (only ever shorter).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Makes the appended bytes durable.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The real file system, one directory.
#[derive(Debug, Clone)]
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    /// Uses (and creates if needed) the directory `dir`.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        Ok(DirStorage { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

struct DirFile {
    file: File,
    len: u64,
}

impl StorageFile for DirFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.len = len;
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Storage for DirStorage {
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.dir.join(name))?;
        Ok(Box::new(DirFile { file, len: 0 }))
    }
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().append(true).open(self.dir.join(name))?;
        let len = file.metadata()?.len();
        Ok(Box::new(DirFile { file, len }))
    }
    fn read(&self, name: &str) -> io::Result<Bytes> {
        let file = File::open(self.dir.join(name))?;
        if file.metadata()?.len() == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: hearth never modifies a file it maps: segment, manifest, registry and
        // schema files are write-once, and the log is mapped only during recovery before
        // it is truncated or appended to. A file changed by another program while mapped
        // is outside what hearth can defend against (documented in docs/FORMAT.md).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Bytes::from_owner(map))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.dir.join(from), self.dir.join(to))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.dir.join(name))
    }
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(n) = entry.file_name().to_str() {
                    names.push(n.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

/// What the simulated disk does at a given sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimFault {
    /// The sync with this number (counted from 1) fails with an I/O error; the disk goes on.
    FailSync(u64),
    /// The power is cut just before the sync with this number: it and every later call fail.
    PowerCut(u64),
}

#[derive(Debug, Default)]
struct SimFile {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct SimState {
    files: HashMap<u64, SimFile>,
    live_dir: BTreeMap<String, u64>,
    durable_dir: BTreeMap<String, u64>,
    next_id: u64,
    syncs: u64,
    fault: Option<SimFault>,
    dead: bool,
}

/// A simulated disk in memory. Clones share the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<SimState>>,
}

fn power_cut() -> io::Error {
    io::Error::other("simulated power cut")
}

impl SimState {
    fn check(&self) -> io::Result<()> {
        if self.dead {
            Err(power_cut())
        } else {
            Ok(())
        }
    }

    /// Counts a sync and applies the fault plan; `Ok(true)` means the sync takes effect.
    fn sync_point(&mut self) -> io::Result<()> {
        self.check()?;
        self.syncs += 1;
        match self.fault {
            Some(SimFault::PowerCut(n)) if n == self.syncs => {
                self.dead = true;
                Err(power_cut())
            }
            Some(SimFault::FailSync(n)) if n == self.syncs => {
                Err(io::Error::other("simulated fsync failure"))
            }
            _ => Ok(()),
        }
    }

    fn lookup(&self, name: &str) -> io::Result<u64> {
        self.live_dir
            .get(name)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_string()))
    }
}

struct SimHandle {
    state: Arc<Mutex<SimState>>,
    id: u64,
}

impl StorageFile for SimHandle {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check()?;
        let f = s.files.entry(self.id).or_default();
        f.live.extend_from_slice(data);
        Ok(())
    }
    fn len(&self) -> u64 {
        let s = self.state.lock();
        s.files.get(&self.id).map_or(0, |f| f.live.len() as u64)
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check()?;
        let f = s.files.entry(self.id).or_default();
        let len = usize::try_from(len).map_err(io::Error::other)?;
        f.live.truncate(len);
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        let mut s = self.state.lock();
        s.sync_point()?;
        let f = s.files.entry(self.id).or_default();
        f.durable = f.live.clone();
        Ok(())
    }
}

impl SimStorage {
    /// An empty simulated disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the fault plan (replacing any earlier one).
    pub fn set_fault(&self, fault: Option<SimFault>) {
        self.state.lock().fault = fault;
    }

    /// Number of syncs (file and directory) so far.
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// True once the power has been cut.
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// The disk as a crash now would leave it: only synced directory entries survive; each
    /// surviving file holds its synced bytes plus a prefix of its unsynced appended bytes
    /// whose length is chosen by `torn(name, unsynced_len)`. The result is a new,
    /// independent, healthy disk with a zeroed sync count.
    pub fn crash(&self, mut torn: impl FnMut(&str, usize) -> usize) -> SimStorage {
        let s = self.state.lock();
        let mut next = SimState::default();
        for (name, id) in &s.durable_dir {
            let Some(f) = s.files.get(id) else { continue };
            let mut content = f.durable.clone();
            if f.live.len() > f.durable.len() && f.live.starts_with(&f.durable) {
                let extra = &f.live[f.durable.len()..];
                let keep = torn(name, extra.len()).min(extra.len());
                content.extend_from_slice(&extra[..keep]);
            }
            let new_id = next.next_id;
            next.next_id += 1;
            next.files.insert(
                new_id,
                SimFile {
                    live: content.clone(),
                    durable: content,
                },
            );
            next.live_dir.insert(name.clone(), new_id);
            next.durable_dir.insert(name.clone(), new_id);
        }
        SimStorage {
            state: Arc::new(Mutex::new(next)),
        }
    }

    /// Overwrites one byte of a file (live and durable), for corruption tests.
    pub fn corrupt(&self, name: &str, offset: usize, xor: u8) -> io::Result<()> {
        let mut s = self.state.lock();
        let id = s.lookup(name)?;
        let f = s.files.entry(id).or_default();
        for v in [&mut f.live, &mut f.durable] {
            if let Some(b) = v.get_mut(offset) {
                *b ^= xor;
            }
        }
        Ok(())
    }
}

impl Storage for SimStorage {
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let mut s = self.state.lock();
        s.check()?;
        let id = s.next_id;
        s.next_id += 1;
        s.files.insert(id, SimFile::default());
        s.live_dir.insert(name.to_string(), id);
        Ok(Box::new(SimHandle {
            state: Arc::clone(&self.state),
            id,
        }))
    }
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let s = self.state.lock();
        s.check()?;
        let id = s.lookup(name)?;
        Ok(Box::new(SimHandle {
            state: Arc::clone(&self.state),
            id,
        }))
    }
    fn read(&self, name: &str) -> io::Result<Bytes> {
        let s = self.state.lock();
        s.check()?;
        let id = s.lookup(name)?;
        Ok(Bytes::copy_from_slice(
            s.files.get(&id).map_or(&[][..], |f| &f.live),
        ))
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check()?;
        let id = s.lookup(from)?;
        s.live_dir.remove(from);
        s.live_dir.insert(to.to_string(), id);
        Ok(())
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        let mut s = self.state.lock();
        s.check()?;
        s.lookup(name)?;
        s.live_dir.remove(name);
        Ok(())
    }
    fn list(&self) -> io::Result<Vec<String>> {
        let s = self.state.lock();
        s.check()?;
        Ok(s.live_dir.keys().cloned().collect())
    }
    fn sync_dir(&self) -> io::Result<()> {
        let mut s = self.state.lock();
        s.sync_point()?;
        s.durable_dir = s.live_dir.clone();
        Ok(())
    }
    fn describe(&self) -> String {
        "<simulated disk>".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_names_and_bytes_vanish_in_a_crash() {
        let sim = SimStorage::new();
        let mut f = sim.create("a").expect("create");
        f.append(b"hello").expect("append");
        f.sync_data().expect("sync");
        sim.sync_dir().expect("sync dir");
        f.append(b" world").expect("append");
        let mut g = sim.create("b").expect("create");
        g.append(b"x").expect("append");
        g.sync_data().expect("sync");
        let after = sim.crash(|_, _| 0);
        assert_eq!(after.list().expect("list"), vec!["a".to_string()]);
        assert_eq!(&after.read("a").expect("read")[..], b"hello");
        let torn = sim.crash(|_, n| n / 2);
        assert_eq!(&torn.read("a").expect("read")[..], b"hello wo");
    }

    #[test]
    fn power_cut_stops_everything() {
        let sim = SimStorage::new();
        sim.set_fault(Some(SimFault::PowerCut(2)));
        let mut f = sim.create("a").expect("create");
        f.sync_data().expect("first sync works");
        assert!(f.sync_data().is_err());
        assert!(sim.is_dead());
        assert!(sim.create("c").is_err());
    }

    #[test]
    fn dir_storage_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = DirStorage::new(dir.path()).expect("dir");
        let mut f = st.create("x.tmp").expect("create");
        f.append(b"abc").expect("append");
        f.sync_data().expect("sync");
        drop(f);
        st.rename("x.tmp", "x").expect("rename");
        st.sync_dir().expect("sync dir");
        assert_eq!(&st.read("x").expect("read")[..], b"abc");
        assert_eq!(st.list().expect("list"), vec!["x".to_string()]);
        let mut f = st.open_append("x").expect("open");
        f.append(b"def").expect("append");
        f.truncate(4).expect("truncate");
        drop(f);
        assert_eq!(&st.read("x").expect("read")[..], b"abcd");
    }
}
