//! The codec probe: bits per value and speed of hearth's pick on synthetic washing-machine
//! columns, next to the `pco` crate (pcodec) when built with `--cfg hearth_pco_probe`.
//!
//! hearth does not depend on pco (it did not win, see the table in the module doc of
//! `codec`), so comparing needs it added for the run:
//!
//! ```text
//! cargo add --dev pco@1.1.0
//! RUSTFLAGS="--cfg hearth_pco_probe" cargo test --release --lib codec::probe -- --ignored --nocapture
//! git checkout Cargo.toml Cargo.lock
//! ```
//! Without the cfg it prints hearth's columns only:
//! `cargo test --release --lib codec::probe -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use super::testdata::{cycles, samples};
use super::{decode, encode, Codec, ColumnHint};

struct Row {
    column: &'static str,
    n: usize,
    picks: String,
    bits: f64,
    enc_ns: f64,
    dec_ns: f64,
    pco: Option<PcoRow>,
}

#[cfg_attr(not(hearth_pco_probe), allow(dead_code))]
struct PcoRow {
    bits: f64,
    bits_unframed: f64,
    enc_ns: f64,
    dec_ns: f64,
}

/// Runs `f` until about 20 ms have passed; nanoseconds per call.
fn time<F: FnMut()>(mut f: F) -> f64 {
    let start = Instant::now();
    let mut calls = 0u32;
    while calls < 3 || start.elapsed().as_millis() < 20 {
        f();
        calls += 1;
    }
    start.elapsed().as_nanos() as f64 / f64::from(calls)
}

fn measure(column: &'static str, hint: ColumnHint, series: &[i64], n: usize) -> Row {
    let chunks: Vec<&[i64]> = series.chunks_exact(n).collect();
    let values = (chunks.len() * n) as f64;
    let mut encoded = Vec::new();
    let mut picks: BTreeMap<String, usize> = BTreeMap::new();
    let mut bytes = 0usize;
    for c in &chunks {
        let mut out = Vec::new();
        encode(c, hint, &mut out);
        let codec = out.first().and_then(|&t| Codec::from_tag(t));
        *picks.entry(format!("{codec:?}")).or_default() += 1;
        bytes += out.len();
        encoded.push(out);
    }
    let enc_ns = time(|| {
        for c in &chunks {
            let mut out = Vec::new();
            encode(black_box(c), hint, &mut out);
            black_box(out);
        }
    }) / values;
    let mut buf = Vec::with_capacity(n);
    let dec_ns = time(|| {
        for e in &encoded {
            buf.clear();
            let used = decode(black_box(e), n, &mut buf);
            assert!(used.is_ok());
            black_box(&buf);
        }
    }) / values;
    let mut back = Vec::new();
    for (e, c) in encoded.iter().zip(&chunks) {
        back.clear();
        assert_eq!(decode(e, n, &mut back).map(|_| ()), Ok(()));
        assert_eq!(&back[..], *c);
    }
    let picks = picks
        .into_iter()
        .map(|(k, v)| {
            if v == chunks.len() {
                k
            } else {
                format!("{k}×{v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    Row {
        column,
        n,
        picks,
        bits: bytes as f64 * 8.0 / values,
        enc_ns,
        dec_ns,
        pco: pco_measure(&chunks, values),
    }
}

#[cfg(hearth_pco_probe)]
fn pco_measure(chunks: &[&[i64]], values: f64) -> Option<PcoRow> {
    use pco::standalone::{simple_compress, simple_decompress};
    use pco::ChunkConfig;
    let config = ChunkConfig::default();
    // The standalone format's own framing (header, chunk count, footer): what an empty input
    // costs. A chunk embedded in a hearth segment would not need most of it.
    let framing = simple_compress::<i64>(&[], &config)
        .map(|v| v.len())
        .unwrap_or(0);
    let encoded: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| simple_compress(c, &config).unwrap_or_default())
        .collect();
    for (e, c) in encoded.iter().zip(chunks) {
        let back: Vec<i64> = simple_decompress(e).unwrap_or_default();
        assert_eq!(&back[..], *c, "pco round trip");
    }
    let bytes: usize = encoded.iter().map(Vec::len).sum();
    let unframed = bytes.saturating_sub(framing * chunks.len());
    let enc_ns = time(|| {
        for c in chunks {
            black_box(simple_compress(black_box(c), &config).ok());
        }
    }) / values;
    let dec_ns = time(|| {
        for e in &encoded {
            black_box(simple_decompress::<i64>(black_box(e)).ok());
        }
    }) / values;
    Some(PcoRow {
        bits: bytes as f64 * 8.0 / values,
        bits_unframed: unframed as f64 * 8.0 / values,
        enc_ns,
        dec_ns,
    })
}

#[cfg(not(hearth_pco_probe))]
fn pco_measure(_chunks: &[&[i64]], _values: f64) -> Option<PcoRow> {
    None
}

#[test]
#[ignore = "measurement, not a check: run in release with --nocapture"]
fn probe() {
    let s = samples(20_000, 7);
    let c = cycles(20_000, 11);
    let columns: [(&str, ColumnHint, &[i64]); 10] = [
        ("ts (2 Hz)", ColumnHint::Timestamp, &s.ts),
        ("phase", ColumnHint::Categorical, &s.phase),
        ("drum_rpm", ColumnHint::Numeric, &s.drum_rpm),
        ("water_temp_c ×10", ColumnHint::Numeric, &s.water_temp),
        ("power_w", ColumnHint::Numeric, &s.power_w),
        ("vibration_g ×100", ColumnHint::Numeric, &s.vibration),
        ("cycle start_ts", ColumnHint::Timestamp, &c.start_ts),
        ("load_kg ×10", ColumnHint::Numeric, &c.load_kg),
        ("energy_wh", ColumnHint::Numeric, &c.energy_wh),
        ("fill_time_s", ColumnHint::Numeric, &c.fill_time_s),
    ];
    println!(
        "| column | n | hearth pick | hearth bits/value | pco bits/value (unframed) | hearth enc / dec ns/value | pco enc / dec ns/value |"
    );
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: |");
    for (name, hint, series) in columns {
        for n in [50, 1_000, 10_000] {
            let r = measure(name, hint, series, n);
            let (pco_bits, pco_speed) = match &r.pco {
                Some(p) => (
                    format!("{:.2} ({:.2})", p.bits, p.bits_unframed),
                    format!("{:.1} / {:.1}", p.enc_ns, p.dec_ns),
                ),
                None => ("-".to_string(), "-".to_string()),
            };
            println!(
                "| {} | {} | {} | {:.2} | {} | {:.1} / {:.2} | {} |",
                r.column, r.n, r.picks, r.bits, pco_bits, r.enc_ns, r.dec_ns, pco_speed
            );
        }
    }
}
