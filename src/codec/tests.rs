use proptest::prelude::*;

use super::*;

/// Encodes with the chosen codec, checks the round trip and the consumed length (also with
/// trailing bytes after the chunk), and returns the chunk.
fn round_trip(values: &[i64], hint: ColumnHint) -> Vec<u8> {
    let mut chunk = Vec::new();
    encode(values, hint, &mut chunk);
    assert!(
        chunk.len() <= 8 * values.len() + 12,
        "chunk larger than raw"
    );
    check_decodes(&chunk, values);
    chunk
}

fn check_decodes(chunk: &[u8], values: &[i64]) {
    let mut out = vec![7i64];
    let used = decode(chunk, values.len(), &mut out).expect("decodes");
    assert_eq!(used, chunk.len());
    assert_eq!(out.first(), Some(&7));
    assert_eq!(out.get(1..), Some(values));
    let mut padded = chunk.to_vec();
    padded.extend_from_slice(&[0xff, 0x00, 0x13]);
    let mut out = Vec::new();
    assert_eq!(decode(&padded, values.len(), &mut out), Ok(chunk.len()));
    assert_eq!(out, values);
}

fn forced(codec: Codec, values: &[i64]) -> Vec<u8> {
    let mut chunk = Vec::new();
    encode_with(codec, values, &mut chunk);
    check_decodes(&chunk, values);
    chunk
}

fn tag(chunk: &[u8]) -> Option<Codec> {
    chunk.first().and_then(|&t| Codec::from_tag(t))
}

/// Deterministic xorshift noise, so tests need no RNG crate.
fn noise(seed: &mut u64) -> i64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed % 1000) as i64
}

fn samples() -> Vec<(&'static str, Vec<i64>)> {
    let mut seed = 0x1234_5678_9abc_def1u64;
    let ts: Vec<i64> = (0..1000).map(|i| 1_700_000_000_000 + 500 * i).collect();
    let jittered: Vec<i64> = (0..1000)
        .map(|i| 1_700_000_000_000 + 500 * i + noise(&mut seed) % 7)
        .collect();
    let phases: Vec<i64> = (0..1000).map(|i| i / 180).collect();
    let rpm: Vec<i64> = (0..1000)
        .map(|i| {
            if i < 600 {
                50 + (i % 7)
            } else {
                1200 - (i % 3)
            }
        })
        .collect();
    let doses: Vec<i64> = (0..300).map(|i| [0, 35, 50, 70, 120][i % 5]).collect();
    let noisy: Vec<i64> = (0..1000).map(|_| 2000 + noise(&mut seed)).collect();
    let tens: Vec<i64> = (0..500).map(|_| 10 * noise(&mut seed)).collect();
    let extremes = vec![i64::MIN, i64::MAX, 0, -1, 1, i64::MIN, i64::MAX, i64::MAX];
    let wrapping = vec![i64::MAX, i64::MIN, i64::MAX, i64::MIN + 1, 0, i64::MIN];
    let wide: Vec<i64> = (0..200)
        .map(|_| {
            let a = noise(&mut seed) as u64;
            let b = noise(&mut seed) as u64;
            (a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (b << 40)) as i64
        })
        .collect();
    vec![
        ("empty", vec![]),
        ("one", vec![42]),
        ("one negative extreme", vec![i64::MIN]),
        ("two", vec![5, -5]),
        ("constant", vec![9; 300]),
        ("ts 2Hz", ts),
        ("ts jitter", jittered),
        ("phases", phases),
        ("rpm", rpm),
        ("doses", doses),
        ("noisy", noisy),
        ("multiples of 10", tens),
        ("extremes", extremes),
        ("wrapping deltas", wrapping),
        ("wide", wide),
    ]
}

#[test]
fn every_codec_round_trips_when_forced() {
    for (name, values) in samples() {
        for codec in Codec::ALL {
            let chunk = forced(codec, &values);
            let applies = estimate(codec, &values).is_some() || codec == Codec::Zstd;
            if applies {
                assert_eq!(tag(&chunk), Some(codec), "{name}: {codec:?}");
            }
        }
    }
}

#[test]
fn estimates_are_exact() {
    for (name, values) in samples() {
        for codec in Codec::ALL {
            if let Some(est) = estimate(codec, &values) {
                let mut chunk = Vec::new();
                encode_with(codec, &values, &mut chunk);
                assert_eq!(est, chunk.len(), "{name}: {codec:?}");
            }
        }
    }
}

#[test]
fn chosen_codec_round_trips_and_is_smallest_estimate() {
    for (name, values) in samples().into_iter().skip(1) {
        for hint in [
            ColumnHint::Timestamp,
            ColumnHint::Numeric,
            ColumnHint::Categorical,
        ] {
            let chunk = round_trip(&values, hint);
            let entropy = [Codec::Huffman, Codec::Classed, Codec::DeltaClassed];
            let fast = Codec::ALL
                .iter()
                .filter(|c| !entropy.contains(c))
                .filter_map(|&c| estimate(c, &values))
                .min()
                .unwrap_or(usize::MAX);
            let best = Codec::ALL
                .iter()
                .filter_map(|&c| estimate(c, &values))
                .min()
                .unwrap_or(usize::MAX);
            // The smallest estimate, or zstd when that is smaller still.
            assert!(
                chunk.len() <= fast,
                "{name} {hint:?}: {} > {fast}",
                chunk.len()
            );
            assert!(
                chunk.len() <= best,
                "{name} {hint:?}: {} > {best}",
                chunk.len()
            );
        }
    }
}

#[test]
fn expected_codecs_are_picked() {
    let data: Vec<(&str, Vec<i64>)> = samples();
    let get = |name: &str| {
        data.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let ts = round_trip(&get("ts 2Hz"), ColumnHint::Timestamp);
    // Constant deltas: Delta (one byte smaller) or delta-of-delta, ~0 bits per value.
    assert!(matches!(tag(&ts), Some(Codec::Delta | Codec::DeltaOfDelta)));
    assert!(ts.len() <= 16, "2 Hz timestamps take {} bytes", ts.len());
    let phases = round_trip(&get("phases"), ColumnHint::Categorical);
    assert_eq!(tag(&phases), Some(Codec::RunLength));
    let doses = round_trip(&get("doses"), ColumnHint::Numeric);
    // A few doses, unevenly used: the Huffman-coded dictionary.
    assert_eq!(tag(&doses), Some(Codec::Huffman));
    let constant = round_trip(&get("constant"), ColumnHint::Numeric);
    assert_eq!(constant, vec![Codec::Constant as u8, 18]);
    let tens = round_trip(&get("multiples of 10"), ColumnHint::Numeric);
    assert_eq!(tag(&tens), Some(Codec::For));
    // 0..9990 step 10: 10 bits per value after dividing by the GCD.
    assert!(tens.len() <= 1 + 3 + 1 + 1 + 500 * 10 / 8 + 1);
    let empty = round_trip(&[], ColumnHint::Timestamp);
    assert_eq!(empty, vec![Codec::Constant as u8, 0]);
}

#[test]
fn zstd_is_picked_when_it_wins() {
    // A repeating pattern of wide values: bit-packing needs ~40 bits, zstd finds the period.
    let pattern = [
        1_000_003i64,
        7,
        999_999_999_937,
        -12_345_678_901,
        42,
        65_537,
    ];
    let values: Vec<i64> = (0..2000).map(|i| pattern[i % pattern.len()]).collect();
    let chunk = round_trip(&values, ColumnHint::Numeric);
    // Six values, evenly used: Huffman codes of 2 or 3 bits beat the 3-bit dictionary.
    assert_eq!(tag(&chunk), Some(Codec::Huffman));
    let values: Vec<i64> = (0..2000)
        .map(|i| pattern[i % pattern.len()] + (i as i64 % 97) * 1_000_000_007)
        .collect();
    let chunk = round_trip(&values, ColumnHint::Numeric);
    assert_eq!(tag(&chunk), Some(Codec::Zstd));
}

#[test]
fn small_chunks() {
    for values in [
        vec![],
        vec![0],
        vec![i64::MAX],
        vec![i64::MIN],
        vec![i64::MIN, i64::MAX],
        vec![i64::MAX, i64::MIN],
        vec![1, 2, 3],
    ] {
        round_trip(&values, ColumnHint::Numeric);
        for codec in Codec::ALL {
            forced(codec, &values);
        }
    }
}

#[test]
fn truncated_chunks_are_errors() {
    for (name, values) in samples() {
        let mut chunks = vec![round_trip(&values, ColumnHint::Numeric)];
        for codec in Codec::ALL {
            chunks.push(forced(codec, &values));
        }
        for chunk in chunks {
            for cut in 0..chunk.len() {
                let prefix = chunk.get(..cut).unwrap_or_default();
                let mut out = vec![1, 2];
                let res = decode(prefix, values.len(), &mut out);
                assert!(
                    res.is_err(),
                    "{name}: prefix {cut} of {} decoded",
                    chunk.len()
                );
                assert_eq!(out, vec![1, 2], "output touched on error");
            }
        }
    }
}

#[test]
fn malformed_chunks_are_errors() {
    let mut out = Vec::new();
    assert!(decode(&[0], 0, &mut out).is_err(), "tag 0");
    assert!(decode(&[200, 0], 1, &mut out).is_err(), "unknown tag");
    // FOR block with width 65.
    assert!(decode(&[2, 0, 1, 65], 1, &mut out).is_err());
    // FOR block with divisor 0.
    assert!(decode(&[2, 0, 0, 0], 1, &mut out).is_err());
    // Dictionary claiming a billion entries.
    assert!(decode(&[6, 0x80, 0x94, 0xeb, 0xdc, 0x03, 0], 10, &mut out).is_err());
    // Dictionary of 3 entries (indices of 2 bits): index 2 is fine, index 3 is not.
    assert_eq!(decode(&[6, 3, 0, 1, 1, 0b00_1010], 3, &mut out), Ok(6));
    assert!(decode(&[6, 3, 0, 1, 1, 0b00_1110], 3, &mut out).is_err());
    assert!(
        decode(&[6, 3, 0, 1, 1, 0b00_1010], 2, &mut out).is_err(),
        "k > n"
    );
    // Run length whose lengths do not add up.
    let mut chunk = Vec::new();
    encode_with(Codec::RunLength, &[1, 1, 2, 2, 2], &mut chunk);
    assert!(decode(&chunk, 5, &mut out).is_ok());
    assert!(decode(&chunk, 4, &mut out).is_err());
    assert!(decode(&chunk, 6, &mut out).is_err());
    // A damaged value count is an error, not an abort.
    assert!(decode(&[1, 0], usize::MAX / 2, &mut out).is_err());
    assert!(decode(&[2, 0, 1, 0], 1 << 60, &mut out).is_err());
    // Raw with a count so large that 8n overflows.
    assert!(decode(&[8], usize::MAX, &mut out).is_err());
    // Delta codecs need enough values.
    assert!(decode(&[3, 0, 0, 1, 0], 0, &mut out).is_err());
    assert!(decode(&[4, 0, 0, 0, 1, 0], 1, &mut out).is_err());
    // zstd garbage.
    assert!(decode(&[7, 0, 3, 1, 2, 3], 10, &mut out).is_err());
}

#[test]
fn error_messages_name_the_offset() {
    let err = decode(&[2, 0, 1, 65], 1, &mut Vec::new()).err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some("bit width above 64 at byte 3 of the chunk".to_string())
    );
}

fn column() -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        // Anything, extremes included.
        proptest::collection::vec(any::<i64>(), 0..300),
        proptest::collection::vec(
            prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), Just(-1i64)],
            0..50
        ),
        // Small ranges around an arbitrary base, optionally scaled.
        (
            any::<i64>(),
            1i64..1000,
            1i64..100,
            proptest::collection::vec(0i64..1000, 0..400)
        )
            .prop_map(|(base, range, scale, xs)| xs
                .into_iter()
                .map(|x| base.wrapping_add((x % range) * scale))
                .collect()),
        // Monotone with small, sometimes regular steps.
        (any::<i64>(), proptest::collection::vec(0i64..5, 0..400)).prop_map(|(start, steps)| {
            let mut v = start;
            steps
                .into_iter()
                .map(|s| {
                    v = v.wrapping_add(500 + if s == 0 { 1 } else { 0 });
                    v
                })
                .collect()
        }),
        // Runs.
        proptest::collection::vec((any::<i16>(), 1usize..60), 0..30).prop_map(|runs| runs
            .into_iter()
            .flat_map(|(v, len)| std::iter::repeat_n(i64::from(v), len))
            .collect()),
        // Few distinct wide values.
        (
            proptest::collection::vec(any::<i64>(), 1..6),
            proptest::collection::vec(0usize..6, 0..300)
        )
            .prop_map(|(dict, idx)| idx.into_iter().map(|i| dict[i % dict.len()]).collect()),
    ]
}

proptest! {
    #[test]
    fn prop_round_trip(values in column()) {
        for hint in [ColumnHint::Timestamp, ColumnHint::Numeric, ColumnHint::Categorical] {
            round_trip(&values, hint);
        }
        for codec in Codec::ALL {
            forced(codec, &values);
            if let Some(est) = estimate(codec, &values) {
                let mut chunk = Vec::new();
                encode_with(codec, &values, &mut chunk);
                prop_assert_eq!(est, chunk.len());
            }
        }
    }

    #[test]
    fn prop_decoding_garbage_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        n in 0usize..10_000,
    ) {
        let mut out = Vec::new();
        if let Ok(used) = decode(&bytes, n, &mut out) {
            prop_assert!(used <= bytes.len());
            prop_assert_eq!(out.len(), n);
            // What decodes re-encodes to something that decodes to the same values.
            let mut chunk = Vec::new();
            encode(&out, ColumnHint::Numeric, &mut chunk);
            let mut back = Vec::new();
            prop_assert_eq!(decode(&chunk, n, &mut back), Ok(chunk.len()));
            prop_assert_eq!(back, out);
        } else {
            prop_assert!(out.is_empty());
        }
    }

    #[test]
    fn prop_garbage_with_valid_tags(
        tag in 1u8..=8,
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        n in 0usize..10_000,
    ) {
        let mut input = vec![tag];
        input.extend_from_slice(&bytes);
        let mut out = Vec::new();
        if decode(&input, n, &mut out).is_ok() {
            prop_assert_eq!(out.len(), n);
        }
    }
}

#[test]
fn fuzzing_entry_point_round_trips_valid_chunks() {
    for (_, values) in samples() {
        let Ok(n) = u16::try_from(values.len()) else {
            continue;
        };
        let mut data = n.to_le_bytes().to_vec();
        encode(&values, ColumnHint::Numeric, &mut data);
        crate::fuzzing::column_chunk(&data);
    }
    crate::fuzzing::column_chunk(&[]);
    crate::fuzzing::column_chunk(&[5, 0, 2, 0, 1, 3, 0xff]);
}
