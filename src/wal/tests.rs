use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::storage::{SimFault, SimStorage};

type Replayed = Vec<(Lsn, Vec<u8>)>;

/// Deterministic payload of varying length (0..=60 bytes) for `lsn`.
fn payload(lsn: Lsn) -> Vec<u8> {
    let len = ((lsn * 37) % 61) as usize;
    (0..len)
        .map(|i| (lsn as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn recover_all(st: &dyn Storage, checkpoint: Lsn) -> Result<(Recovery, Replayed)> {
    let mut got = Vec::new();
    let rec = recover(st, checkpoint, |lsn, p| {
        got.push((lsn, p.to_vec()));
        Ok(())
    })?;
    Ok((rec, got))
}

fn expect_records(got: &Replayed, from: Lsn, to: Lsn) {
    let want: Replayed = (from..=to).map(|l| (l, payload(l))).collect();
    assert_eq!(got, &want, "replayed records {from}..={to}");
}

fn open(sim: &SimStorage, next: Lsn, policy: SyncPolicy) -> Wal {
    Wal::open(Arc::new(sim.clone()), next, policy).expect("open wal")
}

/// Writes a log whose files hold `per_file[i]` records each (rotating in between), all
/// synced. Returns the last LSN.
fn build(sim: &SimStorage, per_file: &[u64]) -> Lsn {
    let wal = open(sim, 1, SyncPolicy::Never);
    for (i, &n) in per_file.iter().enumerate() {
        if i > 0 {
            wal.rotate().expect("rotate");
        }
        for _ in 0..n {
            let lsn = wal.last_lsn() + 1;
            assert_eq!(wal.append(&payload(lsn)).expect("append"), lsn);
        }
    }
    wal.sync_all().expect("sync all");
    wal.last_lsn()
}

/// Start offsets of the records of a file holding `first..=last`.
fn record_offsets(first: Lsn, last: Lsn) -> Vec<usize> {
    let mut pos = FILE_HEADER_LEN;
    let mut v = Vec::new();
    for l in first..=last {
        v.push(pos);
        pos += RECORD_HEADER_LEN + payload(l).len();
    }
    v
}

fn corruption_at(err: Error) -> (String, u64) {
    match err {
        Error::Corruption { file, offset, .. } => (file, offset),
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn layout_constants_and_names() {
    assert_eq!(
        (
            VERSION_OFFSET,
            FIRST_LSN_OFFSET,
            HEADER_CRC_OFFSET,
            FILE_HEADER_LEN
        ),
        (8, 12, 20, 24)
    );
    assert_eq!(
        (REC_LSN_OFFSET, REC_CRC_OFFSET, RECORD_HEADER_LEN),
        (4, 12, 16)
    );
    let h = encode_header(42);
    assert_eq!(&h[..8], MAGIC);
    assert_eq!(decode_header("x", &h).expect("valid header"), 42);
    assert_eq!(file_name(7), "wal-00000000000000000007.log");
    assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
    assert_eq!(parse_file_name("wal-7.log"), None);
    assert_eq!(parse_file_name("wal-0000000000000000000x.log"), None);
    assert_eq!(parse_file_name("manifest"), None);
}

#[test]
fn empty_directory_recovers_to_checkpoint() {
    let sim = SimStorage::new();
    let (rec, got) = recover_all(&sim, 17).expect("recover");
    assert_eq!(rec.last_lsn, 17);
    assert!(got.is_empty());
    let wal = open(&sim, 18, SyncPolicy::Always);
    assert_eq!(wal.append(b"x").expect("append"), 18);
    wal.sync_to(18).expect("sync");
    assert_eq!(sim.list().expect("list"), vec![file_name(18)]);
    let (rec, got) = recover_all(&sim, 17).expect("recover");
    assert_eq!((rec.last_lsn, got), (18, vec![(18, b"x".to_vec())]));
}

#[test]
fn round_trip_across_rotations() {
    let sim = SimStorage::new();
    let last = build(&sim, &[5, 0, 7, 1, 3]);
    assert_eq!(last, 16);
    // The empty second file makes the rotation after it a no-op: 4 files.
    assert_eq!(
        sim.list().expect("list"),
        vec![file_name(1), file_name(6), file_name(13), file_name(14)]
    );
    let (rec, got) = recover_all(&sim, 0).expect("recover");
    assert_eq!(
        rec,
        Recovery {
            last_lsn: 16,
            records_replayed: 16,
            truncated: None
        }
    );
    expect_records(&got, 1, 16);

    // Reopen, append more, recover again.
    let wal = open(&sim, 17, SyncPolicy::Always);
    for l in 17..=20 {
        assert_eq!(wal.append(&payload(l)).expect("append"), l);
    }
    wal.sync_to(20).expect("sync");
    assert_eq!(wal.last_lsn(), 20);
    let on_disk: u64 = sim
        .list()
        .expect("list")
        .iter()
        .map(|n| sim.read(n).expect("read").len() as u64)
        .sum();
    assert_eq!(wal.size_bytes(), on_disk);
    drop(wal);
    let (rec, got) = recover_all(&sim.crash(|_, _| 0), 0).expect("recover");
    assert_eq!(rec.last_lsn, 20);
    expect_records(&got, 1, 20);
}

#[test]
fn checkpoint_skips_records_and_whole_files() {
    let sim = SimStorage::new();
    build(&sim, &[4, 4, 4]); // files start at 1, 5, 9
                             // Records <= checkpoint inside the first relevant file are read but not applied.
    let (rec, got) = recover_all(&sim, 6).expect("recover");
    assert_eq!((rec.last_lsn, rec.records_replayed), (12, 6));
    expect_records(&got, 7, 12);

    // Files fully below the checkpoint are not read: damage there goes unnoticed...
    sim.corrupt(&file_name(1), 30, 0xff).expect("corrupt");
    sim.corrupt(&file_name(1), 3, 0x01).expect("corrupt header");
    let (rec, got) = recover_all(&sim, 4).expect("recover skips file 1");
    assert_eq!(rec.last_lsn, 12);
    expect_records(&got, 5, 12);
    let (_, got) = recover_all(&sim, 8).expect("recover skips files 1 and 2");
    expect_records(&got, 9, 12);
    // ...but is found as soon as the file is needed.
    let (file, offset) = corruption_at(recover_all(&sim, 3).expect_err("file 1 is needed"));
    assert_eq!((file.as_str(), offset), (file_name(1).as_str(), 0));

    // A checkpoint past the end of the log: every record applied already.
    let (rec, got) = recover_all(&sim, 12).expect("recover");
    assert_eq!((rec.last_lsn, got.len()), (12, 0));
}

#[test]
fn log_starting_after_the_checkpoint_or_ending_before_it_is_corruption() {
    let sim = SimStorage::new();
    build(&sim, &[4, 4]);
    sim.remove(&file_name(1)).expect("remove");
    let (file, _) = corruption_at(recover_all(&sim, 2).expect_err("records 3, 4 missing"));
    assert_eq!(file, file_name(5));
    recover_all(&sim, 4).expect("nothing missing");
    let (file, offset) = corruption_at(recover_all(&sim, 9).expect_err("log ends at 8"));
    assert_eq!(file, file_name(5));
    assert_eq!(offset, sim.read(&file_name(5)).expect("read").len() as u64);
}

#[test]
fn gap_between_files_is_corruption() {
    let sim = SimStorage::new();
    build(&sim, &[3, 3, 3]);
    sim.remove(&file_name(4)).expect("remove middle file");
    let (file, offset) = corruption_at(recover_all(&sim, 0).expect_err("gap"));
    assert_eq!((file, offset), (file_name(7), 0));
}

#[test]
fn torn_tail_is_truncated_at_every_cut_length() {
    let sim = SimStorage::new();
    let last = build(&sim, &[3, 4]);
    let last_file = file_name(4);
    let wal = open(&sim, last + 1, SyncPolicy::Never);
    let lsn = wal.append(&payload(last + 1)).expect("append");
    let record_len = RECORD_HEADER_LEN + payload(lsn).len();
    let synced_len = sim.read(&last_file).expect("read").len() - record_len;
    for k in 0..=record_len {
        let disk = sim.crash(|_, n| {
            assert_eq!(n, record_len);
            k
        });
        let (rec, got) = recover_all(&disk, 0).expect("torn tail recovers");
        if k == record_len {
            assert_eq!(rec.truncated, None);
            assert_eq!(rec.last_lsn, lsn);
            expect_records(&got, 1, lsn);
        } else {
            let want = (k > 0).then(|| (last_file.clone(), synced_len as u64, k as u64));
            assert_eq!(rec.truncated, want, "cut at {k}");
            assert_eq!(rec.last_lsn, lsn - 1);
            expect_records(&got, 1, lsn - 1);
            assert_eq!(disk.read(&last_file).expect("read").len(), synced_len);
        }
        // Appends continue with the right LSN and survive the next recovery.
        let next = rec.last_lsn + 1;
        let wal2 = open(&disk, next, SyncPolicy::Always);
        assert_eq!(wal2.append(&payload(next)).expect("append"), next);
        wal2.sync_to(next).expect("sync");
        let (rec2, got2) = recover_all(&disk.crash(|_, _| 0), 0).expect("recover again");
        assert_eq!((rec2.last_lsn, rec2.truncated), (next, None));
        expect_records(&got2, 1, next);
    }
}

#[test]
fn torn_creation_is_repaired() {
    for k in 0..=FILE_HEADER_LEN {
        let sim = SimStorage::new();
        build(&sim, &[3]);
        let name = file_name(4);
        let mut f = sim.create(&name).expect("create");
        let mut bytes = encode_header(4);
        if k == FILE_HEADER_LEN {
            bytes[FILE_HEADER_LEN - 1] ^= 1; // complete but unverified header
        }
        f.append(&bytes[..k]).expect("append");
        let (rec, got) = recover_all(&sim, 0).expect("recover");
        assert_eq!(rec.last_lsn, 3);
        assert_eq!(rec.truncated, Some((name.clone(), 0, k as u64)));
        expect_records(&got, 1, 3);
        assert_eq!(&sim.read(&name).expect("read")[..], &encode_header(4)[..]);
        let wal = open(&sim, 4, SyncPolicy::Always);
        assert_eq!(wal.append(&payload(4)).expect("append"), 4);
        wal.sync_to(4).expect("sync");
        let (_, got) = recover_all(&sim.crash(|_, _| 0), 0).expect("recover");
        expect_records(&got, 1, 4);
    }
    // Strict mode refuses instead.
    let sim = SimStorage::new();
    build(&sim, &[3]);
    sim.create(&file_name(4)).expect("create");
    let err = recover_with_mode(&sim, 0, RecoveryMode::Strict, |_, _| Ok(())).expect_err("strict");
    assert_eq!(corruption_at(err), (file_name(4), 0));
}

#[test]
fn short_header_in_a_non_last_file_is_corruption() {
    let sim = SimStorage::new();
    build(&sim, &[3, 3]);
    sim.create(&file_name(1))
        .expect("truncate first file to nothing");
    let (file, offset) = corruption_at(recover_all(&sim, 0).expect_err("corrupt"));
    assert_eq!((file, offset), (file_name(1), 0));
}

#[test]
fn strict_mode_reports_a_torn_tail() {
    let sim = SimStorage::new();
    build(&sim, &[2]);
    let wal = open(&sim, 3, SyncPolicy::Never);
    wal.append(&payload(3)).expect("append");
    let disk = sim.crash(|_, n| n - 1);
    let err = recover_with_mode(&disk, 0, RecoveryMode::Strict, |_, _| Ok(())).expect_err("strict");
    let offsets = record_offsets(1, 3);
    assert_eq!(corruption_at(err), (file_name(1), offsets[2] as u64));
    let (rec, _) = recover_all(&disk, 0).expect("lenient");
    assert_eq!(
        rec.truncated,
        Some((
            file_name(1),
            offsets[2] as u64,
            (RECORD_HEADER_LEN + payload(3).len() - 1) as u64
        ))
    );
}

#[test]
fn damage_in_a_non_last_file_is_corruption_at_the_record() {
    let sim = SimStorage::new();
    build(&sim, &[4, 4]);
    let offsets = record_offsets(1, 4);
    // Payload byte of record 2, then the length field of the last record of the file.
    for (at, rec) in [(offsets[1] + RECORD_HEADER_LEN, 1), (offsets[3], 3)] {
        let disk = sim.crash(|_, n| n);
        disk.corrupt(&file_name(1), at, 0x40).expect("corrupt");
        let (file, offset) = corruption_at(recover_all(&disk, 0).expect_err("corrupt"));
        assert_eq!((file, offset), (file_name(1), offsets[rec] as u64));
    }
    // Cutting the last record off a non-last file is a corruption, not a torn tail.
    let disk = sim.crash(|_, n| n);
    disk.open_append(&file_name(1))
        .expect("open")
        .truncate(offsets[3] as u64 + 5)
        .expect("truncate");
    let (file, offset) = corruption_at(recover_all(&disk, 0).expect_err("corrupt"));
    assert_eq!((file, offset), (file_name(1), offsets[3] as u64));
}

#[test]
fn damage_in_the_middle_of_the_last_file_is_corruption_not_truncation() {
    let sim = SimStorage::new();
    build(&sim, &[2, 5]);
    let name = file_name(3);
    let offsets = record_offsets(3, 7);
    let cases = [
        (offsets[1] + RECORD_HEADER_LEN, 0x01), // payload: bad CRC with bytes after
        (offsets[1] + 3, 0x7f),                 // length runs past the end of file
        (offsets[2] + REC_LSN_OFFSET, 0x02),    // LSN
        (offsets[3] + REC_CRC_OFFSET, 0x80),    // CRC
    ];
    for (at, xor) in cases {
        let disk = sim.crash(|_, n| n);
        disk.corrupt(&name, at, xor).expect("corrupt");
        let (file, offset) = corruption_at(recover_all(&disk, 0).expect_err("corrupt"));
        let rec = offsets.iter().rposition(|&o| o <= at).expect("record");
        assert_eq!(
            (file, offset),
            (name.clone(), offsets[rec] as u64),
            "flip at {at}"
        );
    }
    // A length that makes record 2 swallow exactly the rest of the file.
    let disk = sim.crash(|_, n| n);
    let len = disk.read(&name).expect("read").len() - offsets[1] - RECORD_HEADER_LEN;
    let old = payload(4).len();
    for (i, (a, b)) in (len as u32)
        .to_le_bytes()
        .iter()
        .zip((old as u32).to_le_bytes())
        .enumerate()
    {
        disk.corrupt(&name, offsets[1] + i, a ^ b).expect("corrupt");
    }
    let (file, offset) = corruption_at(recover_all(&disk, 0).expect_err("corrupt"));
    assert_eq!((file, offset), (name, offsets[1] as u64));
}

#[test]
fn wrong_lsn_with_valid_crc_is_corruption() {
    let sim = SimStorage::new();
    let wal = open(&sim, 1, SyncPolicy::Never);
    wal.append(b"one").expect("append");
    wal.sync_all().expect("sync");
    drop(wal);
    // Hand-frame a record with a valid CRC but LSN 5 after LSN 1.
    let mut f = sim.open_append(&file_name(1)).expect("open");
    let mut buf = Vec::new();
    encode_record(&mut buf, 5, b"five");
    f.append(&buf).expect("append");
    let at = FILE_HEADER_LEN + RECORD_HEADER_LEN + 3;
    let (file, offset) = corruption_at(recover_all(&sim, 0).expect_err("wrong lsn"));
    assert_eq!((file, offset), (file_name(1), at as u64));
}

#[test]
fn zero_filled_tail_is_torn() {
    let sim = SimStorage::new();
    build(&sim, &[3]);
    let len = sim.read(&file_name(1)).expect("read").len();
    let mut f = sim.open_append(&file_name(1)).expect("open");
    f.append(&[0u8; 100]).expect("append zeros");
    let (rec, got) = recover_all(&sim, 0).expect("recover");
    assert_eq!(rec.truncated, Some((file_name(1), len as u64, 100)));
    expect_records(&got, 1, 3);
}

#[test]
fn failed_fsync_poisons() {
    let sim = SimStorage::new();
    let wal = open(&sim, 1, SyncPolicy::Always);
    let lsn = wal.append(b"a").expect("append");
    wal.sync_to(lsn).expect("first sync works");
    sim.set_fault(Some(SimFault::FailSync(sim.sync_count() + 1)));
    let lsn = wal.append(b"b").expect("append");
    let err = wal.sync_to(lsn).expect_err("sync fails");
    assert!(
        matches!(&err, Error::Poisoned(t) if t.contains("simulated fsync failure")),
        "{err}"
    );
    assert!(wal.is_poisoned());
    sim.set_fault(None);
    assert!(matches!(wal.append(b"c"), Err(Error::Poisoned(_))));
    assert!(matches!(wal.sync_to(lsn), Err(Error::Poisoned(_))));
    assert!(matches!(wal.sync_to(1), Err(Error::Poisoned(_))));
    assert!(matches!(wal.sync_all(), Err(Error::Poisoned(_))));
    assert!(matches!(wal.rotate(), Err(Error::Poisoned(_))));
    assert!(matches!(wal.remove_obsolete(100), Err(Error::Poisoned(_))));

    // A failed fsync during rotation poisons too.
    let sim = SimStorage::new();
    let wal = open(&sim, 1, SyncPolicy::Never);
    wal.append(b"a").expect("append");
    sim.set_fault(Some(SimFault::FailSync(sim.sync_count() + 2)));
    assert!(matches!(wal.rotate(), Err(Error::Poisoned(_))));
    assert!(wal.is_poisoned());
    assert!(matches!(wal.append(b"c"), Err(Error::Poisoned(_))));
}

#[test]
fn synced_records_survive_a_power_cut() {
    let sim = SimStorage::new();
    let wal = open(&sim, 1, SyncPolicy::Always);
    for l in 1..=10 {
        wal.append(&payload(l)).expect("append");
        wal.sync_to(l).expect("sync");
        if l == 6 {
            wal.rotate().expect("rotate");
        }
    }
    for l in 11..=13 {
        wal.append(&payload(l)).expect("append, not synced");
    }
    let (rec, got) = recover_all(&sim.crash(|_, _| 0), 0).expect("recover");
    assert_eq!(rec.last_lsn, 10);
    expect_records(&got, 1, 10);
    let (rec, got) = recover_all(&sim.crash(|_, n| n), 0).expect("recover");
    assert_eq!(rec.last_lsn, 13);
    expect_records(&got, 1, 13);
}

#[test]
fn power_cut_at_every_sync_point_keeps_acknowledged_records() {
    for cut in 1..=30 {
        let sim = SimStorage::new();
        sim.set_fault(Some(SimFault::PowerCut(cut)));
        let mut acked = 0;
        if let Ok(wal) = Wal::open(Arc::new(sim.clone()), 1, SyncPolicy::Always) {
            for l in 1..=20 {
                if wal.append(&payload(l)).is_err() || wal.sync_to(l).is_err() {
                    break;
                }
                acked = l;
                if l % 7 == 0 && wal.rotate().is_err() {
                    break;
                }
            }
        }
        for torn in [0usize, 1, 5, usize::MAX] {
            let disk = sim.crash(|_, n| torn.min(n));
            let (rec, got) = recover_all(&disk, 0).expect("recover after power cut");
            assert!(
                rec.last_lsn >= acked,
                "cut {cut}: lost acknowledged records"
            );
            expect_records(&got, 1, rec.last_lsn);
            // The log is usable afterwards.
            let wal = open(&disk, rec.last_lsn + 1, SyncPolicy::Always);
            let l = wal.append(b"after").expect("append");
            wal.sync_to(l).expect("sync");
        }
    }
}

/// A storage whose fsyncs take time, so that concurrent writers pile up behind them.
#[derive(Debug)]
struct SlowSync {
    inner: SimStorage,
    delay: Duration,
}

struct SlowFile {
    inner: Box<dyn StorageFile>,
    delay: Duration,
}

impl StorageFile for SlowFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.append(data)
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.sync_data()
    }
}

impl Storage for SlowSync {
    fn create(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let inner = self.inner.create(name)?;
        Ok(Box::new(SlowFile {
            inner,
            delay: self.delay,
        }))
    }
    fn open_append(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let inner = self.inner.open_append(name)?;
        Ok(Box::new(SlowFile {
            inner,
            delay: self.delay,
        }))
    }
    fn read(&self, name: &str) -> io::Result<Bytes> {
        self.inner.read(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn hammer(wal: &Arc<Wal>, threads: u64, per_thread: u64) {
    std::thread::scope(|s| {
        for t in 0..threads {
            let wal = Arc::clone(wal);
            s.spawn(move || {
                for i in 0..per_thread {
                    let lsn = wal.append(format!("t{t}-{i}").as_bytes()).expect("append");
                    wal.sync_to(lsn).expect("sync");
                    assert!(wal.synced_lsn() >= lsn);
                }
            });
        }
    });
}

#[test]
fn group_commit_shares_fsyncs_between_threads() {
    let sim = SimStorage::new();
    let storage = Arc::new(SlowSync {
        inner: sim.clone(),
        delay: Duration::from_millis(1),
    });
    let wal = Arc::new(Wal::open(storage, 1, SyncPolicy::Always).expect("open"));
    let before = sim.sync_count();
    hammer(&wal, 4, 100);
    let syncs = sim.sync_count() - before;
    assert_eq!(wal.last_lsn(), 400);
    assert!(
        syncs < 400,
        "{syncs} fsyncs for 400 appends: no group commit"
    );
    // Every record whose sync_to returned is durable.
    let (rec, got) = recover_all(&sim.crash(|_, _| 0), 0).expect("recover");
    assert_eq!((rec.last_lsn, got.len()), (400, 400));
    for t in 0..4 {
        let mine: Vec<String> = got
            .iter()
            .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
            .filter(|p| p.starts_with(&format!("t{t}-")))
            .collect();
        let want: Vec<String> = (0..100).map(|i| format!("t{t}-{i}")).collect();
        assert_eq!(mine, want, "thread {t}'s records in order");
    }
}

#[test]
fn group_commit_on_a_fast_disk_is_still_correct() {
    let sim = SimStorage::new();
    let wal = Arc::new(open(&sim, 1, SyncPolicy::Always));
    hammer(&wal, 4, 100);
    let (rec, got) = recover_all(&sim.crash(|_, _| 0), 0).expect("recover");
    assert_eq!((rec.last_lsn, got.len()), (400, 400));
}

#[test]
fn sync_policies() {
    // Never: no fsync on sync_to, only on sync_all.
    let sim = SimStorage::new();
    let wal = open(&sim, 1, SyncPolicy::Never);
    let before = sim.sync_count();
    let lsn = wal.append(b"a").expect("append");
    wal.sync_to(lsn).expect("sync");
    assert_eq!(sim.sync_count(), before);
    assert!(recover_all(&sim.crash(|_, _| 0), 0)
        .expect("recover")
        .1
        .is_empty());
    wal.sync_all().expect("sync all");
    assert_eq!(sim.sync_count(), before + 1);
    wal.sync_all().expect("nothing new: no fsync");
    assert_eq!(sim.sync_count(), before + 1);
    assert_eq!(
        recover_all(&sim.crash(|_, _| 0), 0)
            .expect("recover")
            .1
            .len(),
        1
    );

    // Interval: a long interval defers, an expired one syncs.
    let sim = SimStorage::new();
    let wal = open(&sim, 1, SyncPolicy::Interval(Duration::from_secs(3600)));
    let before = sim.sync_count();
    let lsn = wal.append(b"a").expect("append");
    wal.sync_to(lsn).expect("sync");
    assert_eq!(sim.sync_count(), before);
    let sim = SimStorage::new();
    let wal = open(&sim, 1, SyncPolicy::Interval(Duration::from_millis(5)));
    let before = sim.sync_count();
    std::thread::sleep(Duration::from_millis(10));
    let lsn = wal.append(b"a").expect("append");
    wal.sync_to(lsn).expect("sync");
    assert_eq!(sim.sync_count(), before + 1);
    assert_eq!(wal.synced_lsn(), lsn);

    // Always: one fsync per sync_to, none when already synced.
    let sim = SimStorage::new();
    let wal = open(&sim, 1, SyncPolicy::Always);
    let before = sim.sync_count();
    let lsn = wal.append(b"a").expect("append");
    wal.sync_to(lsn).expect("sync");
    wal.sync_to(lsn).expect("sync again");
    assert_eq!(sim.sync_count(), before + 1);
}

#[test]
fn rotate_and_remove_obsolete() {
    let sim = SimStorage::new();
    let wal = open(&sim, 1, SyncPolicy::Never);
    for l in 1..=9 {
        wal.append(&payload(l)).expect("append");
        if l % 3 == 0 {
            wal.rotate().expect("rotate");
        }
    }
    wal.rotate().expect("rotate of an empty file is a no-op");
    // Files: 1..3, 4..6, 7..9, 10.. (empty, current).
    let all = vec![file_name(1), file_name(4), file_name(7), file_name(10)];
    assert_eq!(wal.file_names(), all);
    assert_eq!(sim.list().expect("list"), all);
    let size = wal.size_bytes();

    wal.remove_obsolete(2).expect("nothing obsolete");
    assert_eq!(sim.list().expect("list"), all);
    wal.remove_obsolete(3).expect("first file obsolete");
    assert_eq!(sim.list().expect("list"), all[1..].to_vec());
    let first_size = (FILE_HEADER_LEN
        + (1..=3)
            .map(|l| RECORD_HEADER_LEN + payload(l).len())
            .sum::<usize>()) as u64;
    assert_eq!(wal.size_bytes(), size - first_size);
    wal.remove_obsolete(1000).expect("all but the current");
    assert_eq!(sim.list().expect("list"), vec![file_name(10)]);
    assert_eq!(wal.file_names(), vec![file_name(10)]);
    assert_eq!(wal.size_bytes(), FILE_HEADER_LEN as u64);

    // Removals are durable, and recovery from the checkpoint works on what is left.
    let disk = sim.crash(|_, _| 0);
    assert_eq!(disk.list().expect("list"), vec![file_name(10)]);
    let (rec, got) = recover_all(&disk, 9).expect("recover");
    assert_eq!((rec.last_lsn, got.len()), (9, 0));
    let wal = open(&disk, 10, SyncPolicy::Always);
    assert_eq!(wal.append(b"ten").expect("append"), 10);
}

#[test]
fn rotation_syncs_the_old_file() {
    // With SyncPolicy::Never, a crash after rotate must not leave a gap at the boundary.
    let sim = SimStorage::new();
    let wal = open(&sim, 1, SyncPolicy::Never);
    for l in 1..=4 {
        wal.append(&payload(l)).expect("append");
    }
    wal.rotate().expect("rotate");
    wal.append(&payload(5)).expect("append");
    let (rec, got) = recover_all(&sim.crash(|_, _| 0), 0).expect("recover");
    assert_eq!(rec.last_lsn, 4);
    expect_records(&got, 1, 4);
}

#[test]
fn open_checks_next_lsn_against_the_files() {
    let sim = SimStorage::new();
    assert!(Wal::open(Arc::new(sim.clone()), 0, SyncPolicy::Always).is_err());
    let wal = open(&sim, 5, SyncPolicy::Never);
    wal.rotate().expect("no-op");
    drop(wal);
    assert_eq!(sim.list().expect("list"), vec![file_name(5)]);
    let err =
        Wal::open(Arc::new(sim.clone()), 3, SyncPolicy::Always).expect_err("file starts after 3");
    assert!(err.is_corruption());
    let err = Wal::open(Arc::new(sim.clone()), 7, SyncPolicy::Always)
        .expect_err("empty file starts at 5, not 7");
    assert!(err.is_corruption());
    open(&sim, 5, SyncPolicy::Always);
}

#[test]
fn apply_errors_propagate() {
    let sim = SimStorage::new();
    build(&sim, &[3]);
    let err = recover(
        &sim,
        0,
        |lsn, _| {
            if lsn == 2 {
                Err(Error::Closed)
            } else {
                Ok(())
            }
        },
    )
    .expect_err("apply error");
    assert!(matches!(err, Error::Closed));
}

/// The log used by the flip property: three files, the last with several records.
fn flip_fixture() -> (SimStorage, Vec<(String, Lsn, Lsn)>) {
    let sim = SimStorage::new();
    build(&sim, &[3, 4, 5]);
    let files = vec![
        (file_name(1), 1, 3),
        (file_name(4), 4, 7),
        (file_name(8), 8, 12),
    ];
    (sim, files)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn byte_flips_are_detected_and_only_the_last_record_is_ever_cut(
        file in 0usize..3,
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let (sim, files) = flip_fixture();
        let disk = sim.crash(|_, n| n);
        let (name, first, last) = &files[file];
        let len = disk.read(name).expect("read").len();
        let at = at.index(len);
        disk.corrupt(name, at, xor).expect("corrupt");
        let offsets = record_offsets(*first, *last);
        let bad_record = offsets.iter().rposition(|&o| o <= at);
        let want_offset = bad_record.map_or(0, |r| offsets[r] as u64);
        let in_last_record = file == 2 && bad_record == Some(offsets.len() - 1);
        match recover_all(&disk, 0) {
            Ok((rec, got)) => {
                prop_assert!(in_last_record, "flip at {at} of {name} went unreported: {rec:?}");
                prop_assert_eq!(rec.truncated, Some((name.clone(), want_offset, (len as u64) - want_offset)));
                prop_assert_eq!(rec.last_lsn, 11);
                prop_assert_eq!(got.len(), 11);
            }
            Err(Error::Corruption { file: f, offset, .. }) => {
                prop_assert_eq!(&f, name);
                prop_assert_eq!(offset, want_offset);
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    #[test]
    fn arbitrary_tails_never_panic(tail in prop::collection::vec(any::<u8>(), 0..200), checkpoint in 0u64..8) {
        let sim = SimStorage::new();
        build(&sim, &[2, 3]);
        let mut f = sim.open_append(&file_name(3)).expect("open");
        f.append(&tail).expect("append");
        if let Ok((rec, got)) = recover_all(&sim, checkpoint) {
            prop_assert!(rec.last_lsn >= 4);
            expect_records(&got, checkpoint + 1, rec.last_lsn);
        }
    }
}

/// Throughput probe on the real disk: `cargo test --release --lib wal::tests::throughput_probe
/// -- --ignored --nocapture`. Set `HEARTH_PROBE_DIR` to choose the directory (default: a
/// temporary directory under `/work`, else the system temp dir).
#[test]
#[ignore]
fn throughput_probe() {
    use crate::storage::DirStorage;
    let base = std::env::var("HEARTH_PROBE_DIR").unwrap_or_else(|_| "/work".to_string());
    let dir = tempfile::tempdir_in(&base)
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir");
    println!("probe directory: {}", dir.path().display());

    // Raw fsync latency: 4 KiB append + fdatasync.
    let st = DirStorage::new(dir.path().join("raw")).expect("dir");
    let mut f = st.create("raw").expect("create");
    let block = vec![7u8; 4096];
    let n = 200;
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        f.append(&block).expect("append");
        let t = Instant::now();
        f.sync_data().expect("fsync");
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "raw fdatasync after 4 KiB append: median {:?}, p90 {:?}, max {:?}",
        lat[n / 2],
        lat[n * 9 / 10],
        lat[n - 1]
    );

    let payload = vec![0x5au8; 400 * 1024];
    for threads in [1u64, 2] {
        let st = DirStorage::new(dir.path().join(format!("t{threads}"))).expect("dir");
        let wal = Arc::new(Wal::open(Arc::new(st), 1, SyncPolicy::Always).expect("open"));
        let per_thread = 200 / threads;
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                let wal = Arc::clone(&wal);
                let payload = &payload;
                s.spawn(move || {
                    for _ in 0..per_thread {
                        let lsn = wal.append(payload).expect("append");
                        wal.sync_to(lsn).expect("sync");
                    }
                });
            }
        });
        let secs = t.elapsed().as_secs_f64();
        let records = (per_thread * threads) as f64;
        println!(
            "{threads} thread(s), 400 KiB records, SyncPolicy::Always: {records} records in {secs:.2} s = {:.1} records/s, {:.1} MB/s",
            records / secs,
            records * payload.len() as f64 / secs / 1e6
        );
    }
}
