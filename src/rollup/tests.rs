//! Retraction: taking rows back out of the rollups equals never having added them.

use super::cube::{Cube, MEASURE_SLOTS, M_MAX, M_MIN};
use super::*;
use crate::batch::{Batch, Values};
use crate::query::{FleetQuery, Measure, Plan, Source};
use crate::schema::{Schema, DAY_MS};
use crate::sim::{Fleet, FleetConfig, DEFAULT_START_MS};
use crate::storage::SimStorage;
use crate::{Db, Dim, Grain, Options, SyncPolicy};
use std::sync::Arc;

/// SplitMix64: enough randomness for row values.
struct Mix(u64);

impl Mix {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

#[test]
fn retracting_rows_equals_never_adding_them() {
    let schema = Schema::washing_machine();
    let layouts = Layouts::new(&schema.streams[0]);
    let mut rng = Mix(7);
    let attrs: Vec<DeviceAttrs> = (0..4)
        .map(|i| DeviceAttrs {
            codes: [i + 1, (i % 2) + 1, i + 1, (i % 3) + 1],
            capacity_kg: 6.0 + f64::from(i),
        })
        .collect();
    let rows: Vec<(usize, i64, Vec<i64>)> = (0..3_000)
        .map(|_| {
            let ts = DEFAULT_START_MS + (rng.next(20 * 24) as i64) * 3_600_000;
            let vals = (0..layouts.ncols).map(|_| rng.next(6) as i64).collect();
            (rng.next(4) as usize, ts, vals)
        })
        .collect();
    let (mut all, mut kept) = (Vec::new(), Vec::new());
    for (i, (a, ts, vals)) in rows.iter().enumerate() {
        add_to_cubes(&layouts, &mut all, &attrs[*a], *ts, vals);
        if i % 3 != 0 {
            add_to_cubes(&layouts, &mut kept, &attrs[*a], *ts, vals);
        }
    }
    for (a, ts, vals) in rows.iter().step_by(3) {
        assert!(retract_from_cubes(
            &layouts, &mut all, &attrs[*a], *ts, vals
        ));
    }
    // A row never added is refused.
    let absent = vec![0i64; layouts.ncols];
    assert!(!retract_from_cubes(
        &layouts, &mut all, &attrs[0], 0, &absent
    ));
    let (mut stale, mut exact) = (0, 0);
    for ((l, got), want) in layouts.cubes.iter().zip(&all).zip(&kept) {
        assert_eq!(
            got.cells(),
            want.cells(),
            "cube {}: cells without rows removed",
            l.name
        );
        let counted: usize = got.days().map(|(_, d)| d.keys.len()).sum();
        assert_eq!(got.cells(), counted, "cube {}: the cell count kept", l.name);
        for (day, dc) in want.days() {
            let gd = got.days_in(day, day).next().map(|(_, d)| d);
            for &key in &dc.keys {
                let w = dc.cell(l, key).expect("cell");
                let g = gd.and_then(|d| d.cell(l, key)).expect("same cells");
                for (slot, (x, y)) in g.iter().zip(w).enumerate() {
                    let m = slot.wrapping_sub(1) % MEASURE_SLOTS;
                    let extreme = slot >= 1
                        && slot < 1 + l.measures.len() * MEASURE_SLOTS
                        && (m == M_MIN || m == M_MAX);
                    if extreme && l.is_stale(g) {
                        continue;
                    }
                    assert_eq!(x, y, "cube {} day {day} key {key} slot {slot}", l.name);
                }
                if !l.measures.is_empty() {
                    if l.is_stale(g) {
                        stale += 1;
                    } else {
                        exact += 1;
                    }
                }
            }
        }
    }
    assert!(stale > 0 && exact > 0, "stale {stale}, exact {exact}");
    // A stale cell stays stale through merges.
    let l = &layouts.cubes[0];
    let mut merged = Cube::default();
    for c in [&all[0], &kept[0]] {
        merged.merge(l, c);
    }
    let stale_in_merge = merged
        .days()
        .flat_map(|(_, d)| d.data.chunks_exact(l.stride))
        .any(|c| l.is_stale(c));
    let stale_in_all = all[0]
        .days()
        .flat_map(|(_, d)| d.data.chunks_exact(l.stride))
        .any(|c| l.is_stale(c));
    assert_eq!(stale_in_merge, stale_in_all);
}

fn options() -> Options {
    Options {
        schema: Some(Schema::washing_machine()),
        sync: SyncPolicy::Never,
        memtable_rows: 3_000,
        background: false,
        ..Options::default()
    }
}

/// `b` without the rows of `serial`.
fn without(b: &Batch, serial: &str) -> Batch {
    let keep: Vec<usize> = (0..b.len()).filter(|&i| b.device[i] != serial).collect();
    let pick = |v: &Values| match v {
        Values::Float(x) => Values::Float(keep.iter().map(|&i| x[i]).collect()),
        Values::Int(x) => Values::Int(keep.iter().map(|&i| x[i]).collect()),
        Values::Text(x) => Values::Text(keep.iter().map(|&i| x[i].clone()).collect()),
    };
    Batch {
        stream: b.stream.clone(),
        ts: keep.iter().map(|&i| b.ts[i]).collect(),
        device: keep.iter().map(|&i| b.device[i].clone()).collect(),
        columns: b
            .columns
            .iter()
            .map(|(n, v)| (n.clone(), pick(v)))
            .collect(),
    }
}

/// The rollups of a database whose device's rows were taken out answer every question as
/// the rollups of a database that never had them; min and max, no longer known from the
/// cells, come from a scan.
#[test]
fn retracted_device_answers_like_a_database_without_it() {
    let days = 62;
    let fleet = Fleet::new(FleetConfig {
        devices: 40,
        days,
        samples: false,
        ..FleetConfig::default()
    });
    let batches: Vec<Batch> = fleet.batches(500).collect();
    // The busiest machine: its rows are in many cells, extremes of some.
    let mut rows = std::collections::HashMap::<&str, usize>::new();
    for b in &batches {
        for d in &b.device {
            *rows.entry(d.as_str()).or_default() += 1;
        }
    }
    let serial = rows
        .iter()
        .max_by_key(|(s, n)| (**n, *s))
        .map(|(s, _)| s.to_string())
        .expect("rows");
    let open = || {
        let db = Db::open_with(Arc::new(SimStorage::new()), options()).expect("open");
        db.set_postcodes(&fleet.postcodes()).expect("postcodes");
        db.register_all(fleet.devices().to_vec()).expect("register");
        db
    };
    let (a, b) = (open(), open());
    for batch in &batches {
        a.append(batch).expect("append");
        let rest = without(batch, &serial);
        if !rest.is_empty() {
            b.append(&rest).expect("append");
        }
    }
    for db in [&a, &b] {
        db.flush().expect("flush");
    }
    assert!(a.retract_device_rollups("cycles", &serial));
    let (from, to) = (
        DEFAULT_START_MS,
        DEFAULT_START_MS + i64::from(days) * DAY_MS,
    );
    let rollup = |db: &Db, q: &FleetQuery| {
        let mut q = q.clone();
        q.plan = Plan::Rollup;
        db.fleet(&q).expect("rollup answer")
    };
    let dims = [
        vec![Dim::column("program"), Dim::Attribute(Attribute::Region)],
        vec![Dim::Attribute(Attribute::Capacity)],
        vec![Dim::column("program"), Dim::column("temp_setting_c")],
        vec![
            Dim::Attribute(Attribute::Model),
            Dim::column("temp_setting_c"),
        ],
        vec![Dim::Attribute(Attribute::Model)],
        vec![Dim::Attribute(Attribute::Segment)],
        vec![Dim::HourOfDay],
    ];
    let mut answered = 0;
    for d in dims {
        for m in [
            "energy_wh",
            "load_kg",
            "water_l",
            "fill_time_s",
            "max_vibration_g",
        ] {
            let mut q = FleetQuery::count("cycles", from, to, d.clone());
            q.grain = Some(Grain::Week);
            q.measures = vec![Measure::Mean(m.into()), Measure::Variance(m.into())];
            q.plan = Plan::Rollup;
            match (a.fleet(&q), b.fleet(&q)) {
                (Ok(x), Ok(y)) => {
                    assert_eq!(x.rows, y.rows, "{q:?}");
                    answered += 1;
                }
                (x, y) => assert_eq!(x.is_err(), y.is_err(), "{q:?}"),
            }
        }
        let q = FleetQuery::count("cycles", from, to, d);
        assert_eq!(rollup(&a, &q).rows, rollup(&b, &q).rows, "{q:?}");
    }
    assert!(
        answered >= 6,
        "{answered} questions with measures answered from rollups"
    );
    // Distinct devices per group, from presence bits (whole months).
    let mut q = FleetQuery::count(
        "cycles",
        from,
        DEFAULT_START_MS + 59 * DAY_MS,
        vec![Dim::column("program"), Dim::Attribute(Attribute::Model)],
    );
    q.grain = Some(Grain::Month);
    q.devices = true;
    assert_eq!(rollup(&a, &q).rows, rollup(&b, &q).rows);
    // The fleet questions built on the rollups.
    assert_eq!(
        a.load_distribution(from, to, Plan::Rollup).expect("d2"),
        b.load_distribution(from, to, Plan::Rollup).expect("d2")
    );
    assert_eq!(
        a.resources_by_setting(from, to, Plan::Rollup)
            .expect("d4")
            .rows,
        b.resources_by_setting(from, to, Plan::Rollup)
            .expect("d4")
            .rows
    );
    let bands = crate::query::fleet::Bands::default();
    assert_eq!(
        a.usage_bands(Attribute::Segment, &bands, from, to, Plan::Rollup)
            .expect("d5"),
        b.usage_bands(Attribute::Segment, &bands, from, to, Plan::Rollup)
            .expect("d5")
    );
    for m in ["energy_wh", "cycles_per_week"] {
        let x = a
            .anova(m, Attribute::Region, from, to, Plan::Rollup)
            .expect("d6");
        let y = b
            .anova(m, Attribute::Region, from, to, Plan::Rollup)
            .expect("d6");
        assert_eq!(x.0, y.0, "{m}");
    }
    // Min and max: the device held extremes of some cells; those are not trusted.
    let mut q = FleetQuery::count(
        "cycles",
        from,
        to,
        vec![Dim::column("program"), Dim::column("temp_setting_c")],
    );
    q.grain = Some(Grain::Day);
    q.measures = vec![
        Measure::Max("energy_wh".into()),
        Measure::Min("water_l".into()),
    ];
    assert!(matches!(
        b.fleet(&q).expect("b").source,
        Source::Rollup { .. }
    ));
    assert!(matches!(
        a.fleet(&q).expect("a").source,
        Source::Scan { .. }
    ));
    q.plan = Plan::Rollup;
    assert!(a.fleet(&q).is_err());
}

/// The distinct-device counts kept as bits flip (rows added after they were built, rows
/// retracted, a merge) equal a count of the bits, device by device.
#[test]
fn device_counts_follow_the_presence_bits() {
    let schema = Schema::washing_machine();
    let layouts = Layouts::new(&schema.streams[0]);
    let mut table = AttrTable::default();
    let mut rng = Mix(11);
    for id in 0..12u32 {
        let info = DeviceInfo {
            model: format!("M{}", id % 3),
            capacity_kg: 6.0 + f64::from(id % 2),
            region: format!("R{}", id % 5),
            segment: format!("S{}", id % 4),
            ..DeviceInfo::unknown(&format!("WM-{id:08}"))
        };
        table.set_device(id, &info);
    }
    let row = |rng: &mut Mix| {
        let ts = DEFAULT_START_MS + (rng.next(120 * 24) as i64) * 3_600_000;
        let vals: Vec<i64> = (0..layouts.ncols).map(|_| rng.next(5) as i64).collect();
        (rng.next(12) as u32, ts, vals)
    };
    let w = layouts.presence.words;
    let check = |s: &StreamRollups, what: &str| {
        let built = s.counts.built().expect("built");
        for (&month, bits) in &s.presence {
            for b in 0..w * 64 {
                let mut want = [
                    HashMap::<u32, u32>::new(),
                    HashMap::new(),
                    HashMap::new(),
                    HashMap::new(),
                ];
                let mut all = 0;
                for (d, dev) in bits.chunks_exact(w).enumerate() {
                    if dev[b / 64] & (1 << (b % 64)) != 0 {
                        all += 1;
                        for (a, m) in want.iter_mut().enumerate() {
                            *m.entry(table.device(d as u32).codes[a]).or_default() += 1;
                        }
                    }
                }
                assert_eq!(
                    built.get(month, b, ALL_DEVICES, 0),
                    all,
                    "{what}: {month} {b}"
                );
                for (a, m) in want.iter().enumerate() {
                    for code in 0..table.values(a).len() as u32 {
                        let n = m.get(&code).copied().unwrap_or(0);
                        assert_eq!(
                            built.get(month, b, a, code),
                            n,
                            "{what}: {month} {b} {a} {code}"
                        );
                    }
                }
            }
        }
    };
    let mut s = StreamRollups::new(&layouts);
    let mut held: Vec<(u32, i64, Vec<i64>)> = Vec::new();
    for _ in 0..400 {
        let (d, ts, vals) = row(&mut rng);
        s.add_row(&layouts, d, &table.device(d), ts, &vals);
        held.push((d, ts, vals));
    }
    s.counts.get_or_build(w, &table, &s.presence);
    check(&s, "built");
    for _ in 0..400 {
        let (d, ts, vals) = row(&mut rng);
        s.add_row(&layouts, d, &table.device(d), ts, &vals);
        held.push((d, ts, vals));
    }
    check(&s, "rows added after");
    // Device 3 loses every other row, device 5 all of them.
    for (victim, keep_every) in [(3u32, 2usize), (5, usize::MAX)] {
        let mine: Vec<&(u32, i64, Vec<i64>)> = held.iter().filter(|r| r.0 == victim).collect();
        let (gone, kept): (Vec<_>, Vec<_>) = mine
            .iter()
            .enumerate()
            .partition(|(i, _)| keep_every == usize::MAX || i % keep_every == 0);
        assert!(s.retract_rows(
            &layouts,
            victim,
            &table.device(victim),
            gone.iter().map(|(_, r)| (r.1, r.2.as_slice())),
            kept.iter().map(|(_, r)| (r.1, r.2.as_slice())),
        ));
        check(&s, "after retraction");
    }
    // A merge drops the counts; the next use rebuilds them from the merged bits.
    let other = s.clone();
    s.merge(&layouts, &other);
    assert!(s.counts.built().is_none());
    s.counts.get_or_build(w, &table, &s.presence);
    check(&s, "after merge");
}

#[test]
fn adding_a_batch_equals_adding_its_rows_one_by_one() {
    let schema = Schema::washing_machine();
    let layouts = vec![Layouts::new(&schema.streams[0])];
    let ncols = layouts[0].ncols;
    let mut rng = Mix(11);
    let mut one = Rollups::new(&layouts);
    let mut batch = Rollups::new(&layouts);
    for r in [&mut one, &mut batch] {
        for id in 0..6u32 {
            let mut info = DeviceInfo::unknown(&format!("WM-{id:08}"));
            info.model = format!("M{}", id % 3);
            info.capacity_kg = 6.0 + f64::from(id % 4);
            info.region = format!("R{}", id % 2);
            r.attrs.set_device(id, &info);
        }
    }
    let (mut d1, mut d2) = (Vec::new(), Vec::new());
    // Several batches, spanning month ends, days out of order and late rows.
    for b in 0..5 {
        let n = 200 + b * 37;
        let devices: Vec<u32> = (0..n).map(|_| rng.next(6) as u32).collect();
        let ts: Vec<i64> = (0..n)
            .map(|i| {
                let base = DEFAULT_START_MS + 28 * DAY_MS + (b as i64) * DAY_MS;
                if i % 17 == 0 {
                    base - (rng.next(40) as i64) * DAY_MS
                } else {
                    base + (rng.next(3 * 24 * 60) as i64) * 60_000
                }
            })
            .collect();
        let rows: Vec<i64> = (0..n * ncols).map(|_| rng.next(9) as i64).collect();
        for i in 0..n {
            one.add_memtable_row(
                &layouts,
                &mut d1,
                0,
                devices[i],
                ts[i],
                &rows[i * ncols..(i + 1) * ncols],
            );
        }
        batch.add_memtable_rows(&layouts, &mut d2, 0, &devices, &ts, &rows);
    }
    assert_eq!(d1, d2, "the memtable's cube cells");
    for (a, b) in d1.iter().zip(&d2) {
        assert_eq!(a.cells(), b.cells());
    }
    assert_eq!(
        one.streams, batch.streams,
        "month counts, presence, latest rows"
    );
}

#[test]
fn histogram_bins_are_the_floor_clamped() {
    use crate::schema::Bins;
    let reference = |b: &Bins, stored: i64, scale: f64, cap: f64| -> usize {
        let last = b.count().saturating_sub(1);
        let x = match b {
            Bins::Fixed { lo, width, .. } => ((stored as f64 / scale - lo) / width).floor(),
            Bins::ShareOfCapacity { width_pct, .. } => {
                if cap > 0.0 {
                    (stored as f64 / scale / cap * 100.0 / width_pct).floor()
                } else {
                    last as f64
                }
            }
        };
        if x.is_nan() || x < 0.0 {
            0
        } else if x >= last as f64 {
            last
        } else {
            x as usize
        }
    };
    let bins = [
        Bins::Fixed {
            lo: 0.0,
            width: 0.5,
            count: 30,
        },
        Bins::Fixed {
            lo: -3.0,
            width: 0.02,
            count: 250,
        },
        Bins::ShareOfCapacity {
            width_pct: 10.0,
            count: 11,
        },
    ];
    for b in &bins {
        for stored in -2_000..2_000i64 {
            for (scale, cap) in [(100.0, 7.0), (10.0, 8.5), (1.0, 0.0), (1000.0, 6.0)] {
                assert_eq!(
                    b.bin(stored, scale, cap),
                    reference(b, stored, scale, cap),
                    "{b:?} {stored} {scale} {cap}"
                );
            }
        }
    }
}
