//! Shared helpers for the integration tests: a tiny deterministic RNG, a row generator for
//! the washing-machine preset, and a plain in-memory model of what the database must hold.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth::{Batch, Db, Options, Schema, Storage, SyncPolicy, UnknownDevices, Values};

/// SplitMix64: deterministic across platforms.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub const T0: i64 = 1_735_689_600_000; // 2025-01-01
pub const DAY: i64 = 86_400_000;

/// Key of a row: (stream, serial, ts).
pub type Key = (String, String, i64);

/// What the database must hold: first write wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    pub rows: BTreeMap<Key, Vec<i64>>,
}

impl Model {
    /// Applies a batch of stored values (as the engine would store them).
    pub fn apply(&mut self, rows: &[(Key, Vec<i64>)]) {
        for (k, v) in rows {
            self.rows.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// Forgets every row of a device (an erasure).
    pub fn erase(&mut self, serial: &str) {
        self.rows.retain(|k, _| k.1 != serial);
    }
}

/// One generated row: key and stored values (in the preset's declared column order).
pub type Row = (Key, Vec<i64>);

/// A batch of `n` rows for `stream` over `devices` devices around day `day`, with
/// out-of-order rows, late rows (days earlier) and repeats of `previous` rows.
pub fn gen_rows(
    rng: &mut Rng,
    stream: &str,
    n: usize,
    devices: u64,
    day: i64,
    previous: &[Row],
) -> Vec<Row> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if !previous.is_empty() && rng.below(10) == 0 {
            let r = &previous[rng.below(previous.len() as u64) as usize];
            if r.0 .0 == stream {
                out.push(r.clone());
                continue;
            }
        }
        let dev = format!("WM-{:08}", rng.below(devices));
        let late = if rng.below(8) == 0 {
            rng.below(40) as i64
        } else {
            0
        };
        let ts = T0 + (day - late) * DAY + rng.below(DAY as u64 / 1000) as i64 * 1000;
        let vals = match stream {
            "cycles" => vec![
                rng.below(12) as i64,
                rng.below(6) as i64,
                rng.below(8) as i64,
                10 + rng.below(80) as i64,
                1800 + rng.below(5000) as i64,
                200 + rng.below(2000) as i64,
                300 + rng.below(500) as i64,
                40 + rng.below(60) as i64,
                10 + rng.below(200) as i64,
                rng.below(120) as i64,
                if rng.below(20) == 0 {
                    1 + rng.below(6) as i64
                } else {
                    0
                },
            ],
            _ => vec![
                rng.below(5) as i64,
                rng.below(1600) as i64,
                100 + rng.below(600) as i64,
                rng.below(2500) as i64,
                rng.below(300) as i64,
            ],
        };
        out.push(((stream.to_string(), dev, ts), vals));
    }
    out
}

/// Turns generated rows into a `Batch` the engine accepts (values given in stored form
/// converted back to caller units).
pub fn to_batch(schema: &Schema, stream: &str, rows: &[Row]) -> Batch {
    let def = schema.stream(stream).expect("stream");
    let mut b = Batch::new(stream);
    b.ts = rows.iter().map(|r| r.0 .2).collect();
    b.device = rows.iter().map(|r| r.0 .1.clone()).collect();
    for (i, c) in def.columns.iter().enumerate() {
        let v = if c.is_categorical() {
            Values::Text(
                rows.iter()
                    .map(|r| c.category_name(r.1[i]).expect("category").to_string())
                    .collect(),
            )
        } else {
            Values::Float(rows.iter().map(|r| c.decode_f64(r.1[i])).collect())
        };
        b.columns.push((c.name.clone(), v));
    }
    b
}

pub fn options() -> Options {
    Options {
        schema: Some(Schema::washing_machine()),
        sync: SyncPolicy::Always,
        unknown_devices: UnknownDevices::AutoRegister,
        memtable_rows: usize::MAX,
        background: false,
        ..Options::default()
    }
}

pub fn open(storage: Arc<dyn Storage>) -> hearth::Result<Db> {
    Db::open_with(storage, options())
}

/// Everything the database returns, as a model.
pub fn read_all(db: &Db) -> hearth::Result<Model> {
    let mut m = Model::default();
    for s in ["cycles", "samples"] {
        db.scan(s, i64::MIN..i64::MAX, &[], |rows| {
            let serial = db.device(rows.device).expect("registered").serial;
            for (i, &ts) in rows.ts.iter().enumerate() {
                let vals: Vec<i64> = rows.columns.iter().map(|c| c[i]).collect();
                let prev = m.rows.insert((s.to_string(), serial.clone(), ts), vals);
                assert!(prev.is_none(), "row returned twice: {s} {serial} {ts}");
            }
        })?;
    }
    Ok(m)
}
