//! Encode and decode throughput of the column codecs per column kind.
//!
//! `cargo bench --bench codec` (about a minute). The codec is crate-private, so the bench
//! compiles the module's source directly; the data comes from the same generator as the
//! codec probe.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[allow(dead_code, unused_imports, clippy::duplicate_mod)]
#[path = "../src/codec.rs"]
mod codec;
// Under `cargo clippy --all-targets` the bench is checked with cfg(test), where `codec` loads
// `testdata` too.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../src/codec/testdata.rs"]
mod testdata;

use codec::{decode, encode, ColumnHint};

fn columns() -> Vec<(&'static str, ColumnHint, Vec<i64>)> {
    let s = testdata::samples(10_000, 7);
    let c = testdata::cycles(10_000, 11);
    vec![
        ("ts_2hz", ColumnHint::Timestamp, s.ts),
        ("phase", ColumnHint::Categorical, s.phase),
        ("drum_rpm", ColumnHint::Numeric, s.drum_rpm),
        ("water_temp", ColumnHint::Numeric, s.water_temp),
        ("power_w", ColumnHint::Numeric, s.power_w),
        ("cycle_start_ts", ColumnHint::Timestamp, c.start_ts),
        ("load_kg", ColumnHint::Numeric, c.load_kg),
        ("energy_wh", ColumnHint::Numeric, c.energy_wh),
    ]
}

fn bench(c: &mut Criterion) {
    for (name, hint, series) in columns() {
        let mut group = c.benchmark_group(name);
        group
            .sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(700));
        for n in [1_000usize, 10_000] {
            let values = &series[..n];
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new("encode", n), values, |b, v| {
                let mut out = Vec::with_capacity(8 * n + 16);
                b.iter(|| {
                    out.clear();
                    encode(black_box(v), hint, &mut out);
                    black_box(out.len())
                })
            });
            let mut chunk = Vec::new();
            encode(values, hint, &mut chunk);
            group.bench_with_input(BenchmarkId::new("decode", n), &chunk, |b, chunk| {
                let mut out = Vec::with_capacity(n);
                b.iter(|| {
                    out.clear();
                    black_box(decode(black_box(chunk), n, &mut out).is_ok())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
