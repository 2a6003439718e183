//! Storage-core micro-benchmarks: durable append of 10,000 sample rows per `SyncPolicy`, and
//! reading one device's rows back from segments.
//!
//! Run: `cargo bench --bench storage`. Figures and their meaning: docs/BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hearth::{Batch, Db, DeviceInfo, Options, Schema, SyncPolicy, Values};

const ROWS: usize = 10_000;
const DEVICES: usize = 100;

/// 10,000 rows of the `samples` stream: 100 devices × 100 consecutive 2 Hz readings starting
/// at `start` (ms).
fn samples_batch(start: i64) -> Batch {
    let mut b = Batch::new("samples");
    let mut phase = Vec::with_capacity(ROWS);
    let (mut rpm, mut temp, mut power, mut vib) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for d in 0..DEVICES {
        for k in 0..ROWS / DEVICES {
            b.ts.push(start + k as i64 * 500);
            b.device.push(format!("WM-{d:08}"));
            let t = (start / 500) as usize + k;
            phase.push(["fill", "wash", "rinse", "spin", "drain"][(t / 600) % 5].to_string());
            rpm.push(((t * 7 + d) % 1400) as f64);
            temp.push(20.0 + ((t + d) % 200) as f64 / 10.0);
            power.push(((t * 13 + d * 7) % 2200) as f64);
            vib.push(((t + d) % 90) as f64 / 100.0);
        }
    }
    b.columns = vec![
        ("phase".into(), Values::Text(phase)),
        ("drum_rpm".into(), Values::Float(rpm)),
        ("water_temp_c".into(), Values::Float(temp)),
        ("power_w".into(), Values::Float(power)),
        ("vibration_g".into(), Values::Float(vib)),
    ];
    b
}

fn open(dir: &std::path::Path, sync: SyncPolicy) -> Db {
    let db = Db::open(
        dir,
        Options {
            schema: Some(Schema::washing_machine()),
            sync,
            memtable_rows: 2_000_000,
            ..Options::default()
        },
    )
    .expect("open");
    let devices = (0..DEVICES)
        .map(|d| DeviceInfo::unknown(&format!("WM-{d:08}")))
        .collect();
    db.register_all(devices).expect("register");
    db
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_10k_samples");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.sample_size(20);
    for (name, sync) in [
        ("always", SyncPolicy::Always),
        (
            "interval_10ms",
            SyncPolicy::Interval(std::time::Duration::from_millis(10)),
        ),
        ("never", SyncPolicy::Never),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path(), sync);
        let mut start = 1_735_689_600_000i64;
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    start += (ROWS / DEVICES) as i64 * 500;
                    samples_batch(start)
                },
                |batch| black_box(db.append(batch).expect("append")),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn scan_device(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path(), SyncPolicy::Never);
    let start = 1_735_689_600_000i64;
    for i in 0..50 {
        db.append(&samples_batch(start + i * 50_000))
            .expect("append");
    }
    db.flush().expect("flush");
    db.compact().expect("compact");
    let mut g = c.benchmark_group("scan_device");
    g.throughput(Throughput::Elements(5_000));
    g.bench_function("samples_5000_rows_all_columns", |b| {
        b.iter(|| {
            black_box(
                db.scan_device("samples", "WM-00000042", 0..i64::MAX, &[])
                    .expect("scan"),
            )
        })
    });
    g.bench_function("samples_100_rows_one_column", |b| {
        b.iter(|| {
            black_box(
                db.scan_device(
                    "samples",
                    "WM-00000042",
                    start..start + 50_000,
                    &["power_w"],
                )
                .expect("scan"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, append, scan_device);
criterion_main!(benches);
