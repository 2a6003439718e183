use std::collections::{HashMap, HashSet};

use super::model::WEEK_MS;
use super::*;
use crate::batch::{validate, Limits};
use crate::schema::Schema;

fn small(devices: usize, days: u32) -> FleetConfig {
    FleetConfig {
        devices,
        days,
        ..FleetConfig::default()
    }
}

fn with_samples(devices: usize, days: u32) -> FleetConfig {
    FleetConfig {
        samples: true,
        sample_device_share: 0.2,
        sample_cycle_share: 0.2,
        ..small(devices, days)
    }
}

fn col<'a>(b: &'a Batch, name: &str) -> &'a Values {
    &b.columns
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("column {name} missing"))
        .1
}

fn ints(b: &Batch, name: &str) -> Vec<i64> {
    match col(b, name) {
        Values::Int(v) => v.clone(),
        other => panic!("{name}: expected integers, got {other:?}"),
    }
}

fn floats(b: &Batch, name: &str) -> Vec<f64> {
    match col(b, name) {
        Values::Float(v) => v.clone(),
        other => panic!("{name}: expected floats, got {other:?}"),
    }
}

fn texts(b: &Batch, name: &str) -> Vec<String> {
    match col(b, name) {
        Values::Text(v) => v.clone(),
        other => panic!("{name}: expected text, got {other:?}"),
    }
}

/// A cycle row as read back from batches.
#[derive(Debug, Clone, PartialEq)]
struct Cyc {
    dev: usize,
    ts: i64,
    program: String,
    temp: i64,
    spin: i64,
    load: f64,
    duration: i64,
    energy: i64,
    water: f64,
    fill: i64,
    vib: f64,
    detergent: i64,
    error: String,
}

fn dev_index(serial: &str) -> usize {
    serial[3..].parse::<usize>().expect("serial number") - 1
}

fn cycles_of(b: &Batch) -> Vec<Cyc> {
    let (program, temp, spin, load) = (
        texts(b, "program"),
        ints(b, "temp_setting_c"),
        ints(b, "spin_setting_rpm"),
        floats(b, "load_kg"),
    );
    let (duration, energy, water, fill) = (
        ints(b, "duration_s"),
        ints(b, "energy_wh"),
        floats(b, "water_l"),
        ints(b, "fill_time_s"),
    );
    let (vib, detergent, error) = (
        floats(b, "max_vibration_g"),
        ints(b, "detergent_ml"),
        texts(b, "error_code"),
    );
    (0..b.len())
        .map(|i| Cyc {
            dev: dev_index(&b.device[i]),
            ts: b.ts[i],
            program: program[i].clone(),
            temp: temp[i],
            spin: spin[i],
            load: load[i],
            duration: duration[i],
            energy: energy[i],
            water: water[i],
            fill: fill[i],
            vib: vib[i],
            detergent: detergent[i],
            error: error[i].clone(),
        })
        .collect()
}

/// Unique cycles (first delivery wins) per device, sorted by time.
fn unique_cycles(fleet: &Fleet) -> Vec<Vec<Cyc>> {
    let mut per: Vec<Vec<Cyc>> = vec![Vec::new(); fleet.devices().len()];
    let mut seen = HashSet::new();
    for b in fleet.batches(5_000).filter(|b| b.stream == "cycles") {
        for c in cycles_of(&b) {
            if seen.insert((c.dev, c.ts)) {
                per[c.dev].push(c);
            }
        }
    }
    for v in &mut per {
        v.sort_by_key(|c| c.ts);
    }
    per
}

#[test]
fn same_config_same_batches_other_seed_differs() {
    let cfg = with_samples(40, 20);
    let a: Vec<Batch> = Fleet::new(cfg.clone()).batches(1_000).collect();
    let b: Vec<Batch> = Fleet::new(cfg.clone()).batches(1_000).collect();
    assert!(a.iter().any(|b| b.stream == "samples"), "samples generated");
    assert!(a.len() > 10);
    assert_eq!(a, b);
    // the `cycles` stream is the same with or without samples
    let no_samples: Vec<Batch> = Fleet::new(FleetConfig {
        samples: false,
        ..cfg.clone()
    })
    .batches(1_000)
    .collect();
    let cycles_only: Vec<&Batch> = a.iter().filter(|b| b.stream == "cycles").collect();
    assert_eq!(cycles_only, no_samples.iter().collect::<Vec<_>>());
    let c: Vec<Batch> = Fleet::new(FleetConfig {
        seed: 7,
        ..cfg.clone()
    })
    .batches(1_000)
    .collect();
    assert_ne!(a, c);
    assert_ne!(
        Fleet::new(cfg.clone()).devices(),
        Fleet::new(FleetConfig { seed: 7, ..cfg }).devices()
    );
}

#[test]
fn pinned_output() {
    // A golden value: any change of generated data (algorithm, platform) shows here. Update
    // it deliberately when the model changes.
    let fleet = Fleet::new(with_samples(5, 10));
    let mut h: u64 = 0;
    for b in fleet.batches(100) {
        for (i, &ts) in b.ts.iter().enumerate() {
            h = rng::splitmix64(h ^ ts as u64 ^ (dev_index(&b.device[i]) as u64) << 48);
        }
        for (_, v) in &b.columns {
            match v {
                Values::Int(v) => v.iter().for_each(|&x| h = rng::splitmix64(h ^ x as u64)),
                Values::Float(v) => v.iter().for_each(|&x| h = rng::splitmix64(h ^ x.to_bits())),
                Values::Text(v) => v.iter().for_each(|x| {
                    h = rng::splitmix64(h ^ x.len() as u64 ^ u64::from(x.as_bytes()[0]))
                }),
            }
        }
    }
    assert_eq!(h, PINNED, "generated data changed: {h:#x}");
}
const PINNED: u64 = 0xafe9_1768_0ff0_77c9;

#[test]
fn every_batch_validates_against_the_preset() {
    let schema = Schema::washing_machine();
    let fleet = Fleet::new(FleetConfig {
        fault_rate: 0.3,
        ..with_samples(120, 200)
    });
    let limits = Limits::default();
    let (mut cycles, mut samples) = (0, 0);
    for b in fleet.batches(4_096) {
        assert!(!b.is_empty() && b.len() <= 4_096);
        let def = schema.stream(&b.stream).expect("known stream");
        validate(def, &b, &limits).unwrap_or_else(|e| panic!("{}: {e}", b.stream));
        assert!(b
            .device
            .iter()
            .all(|d| d.len() == 11 && d.starts_with("WM-")));
        if b.stream == "cycles" {
            cycles += b.len();
            assert!(
                b.ts.iter().all(|t| t % 1000 == 0),
                "cycle ts in whole seconds"
            );
        } else {
            samples += b.len();
            assert!(
                b.ts.iter().all(|t| t % 500 == 0),
                "samples on the 500 ms grid"
            );
        }
        // every declared column is given (none left to defaults)
        assert_eq!(b.columns.len(), def.columns.len());
    }
    assert!(cycles > 10_000 && samples > 100_000, "{cycles} {samples}");
}

#[test]
fn duplicates_and_late_rows_at_configured_rates() {
    let cfg = FleetConfig {
        duplicate_rate: 0.03,
        late_rate: 0.05,
        ..with_samples(150, 120)
    };
    let fleet = Fleet::new(cfg.clone());
    let (exp_c, exp_s) = fleet.expected_unique_rows();
    let mut seen = HashSet::new();
    let mut total = [0u64; 2];
    let mut late = [0u64; 2];
    let mut newest = [i64::MIN; 2];
    let mut last_of_device: HashMap<(usize, usize), i64> = HashMap::new();
    let mut out_of_order = 0u64;
    let mut dup_in_later_batch = 0u64;
    let mut first_batch: HashMap<(usize, usize, i64), usize> = HashMap::new();
    for (bi, b) in fleet.batches(2_000).enumerate() {
        let s = usize::from(b.stream == "samples");
        for (i, &ts) in b.ts.iter().enumerate() {
            let dev = dev_index(&b.device[i]);
            total[s] += 1;
            if seen.insert((s, dev, ts)) {
                first_batch.insert((s, dev, ts), bi);
                // a first delivery far behind what this stream has already delivered
                if ts < newest[s].saturating_sub(6 * 3_600_000) {
                    late[s] += 1;
                }
                let last = last_of_device.entry((s, dev)).or_insert(i64::MIN);
                if ts < *last {
                    out_of_order += 1;
                }
                *last = (*last).max(ts);
            } else if first_batch.get(&(s, dev, ts)) != Some(&bi) {
                dup_in_later_batch += 1;
            }
        }
        newest[s] = newest[s].max(b.ts.iter().copied().max().unwrap_or(i64::MIN));
    }
    let unique_c = seen.iter().filter(|k| k.0 == 0).count() as u64;
    let unique_s = seen.len() as u64 - unique_c;
    assert_eq!((unique_c, unique_s), (exp_c, exp_s));
    assert!(exp_s > 200_000, "{exp_s}");
    for s in 0..2 {
        let unique = [unique_c, unique_s][s] as f64;
        let dup = (total[s] as f64 - unique) / unique;
        assert!(
            (0.6 * 0.03..1.5 * 0.03).contains(&dup),
            "stream {s}: dup {dup}"
        );
        // delays are log-uniform over 1..72 h: about 60% of late rows are 6 h behind
        let l = late[s] as f64 / unique;
        assert!(
            (0.3 * 0.05..1.1 * 0.05).contains(&l),
            "stream {s}: late {l}"
        );
    }
    assert!(out_of_order > 100, "{out_of_order}");
    assert!(dup_in_later_batch > 100, "{dup_in_later_batch}");

    // Without quirks: every row once, and each device's rows in time order.
    let clean = Fleet::new(FleetConfig {
        duplicate_rate: 0.0,
        late_rate: 0.0,
        ..cfg
    });
    let mut last: HashMap<(String, String), i64> = HashMap::new();
    let mut rows = 0u64;
    for b in clean.batches(2_000) {
        for (i, &ts) in b.ts.iter().enumerate() {
            rows += 1;
            let l = last
                .entry((b.stream.clone(), b.device[i].clone()))
                .or_insert(i64::MIN);
            assert!(
                ts > *l,
                "in order without late rows: {} {} {ts} {}",
                b.stream,
                b.device[i],
                *l
            );
            *l = ts;
        }
    }
    assert_eq!(rows, exp_c + exp_s);
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / f64::from(n))
}

/// Mean of `f` over the first and the last four weeks of a device's washes.
fn first_last(
    cycles: &[Cyc],
    start: i64,
    end: i64,
    keep: impl Fn(&Cyc) -> bool,
    f: impl Fn(&Cyc) -> f64,
) -> Option<(f64, f64)> {
    let four = (4.0 * WEEK_MS) as i64;
    let first = mean(
        cycles
            .iter()
            .filter(|c| c.ts < start + four && keep(c))
            .map(&f),
    )?;
    let last = mean(
        cycles
            .iter()
            .filter(|c| c.ts >= end - four && keep(c))
            .map(&f),
    )?;
    Some((first, last))
}

#[test]
fn planted_faults_are_visible() {
    let cfg = FleetConfig {
        fault_rate: 0.3,
        ..small(300, 365)
    };
    let fleet = Fleet::new(cfg.clone());
    let per = unique_cycles(&fleet);
    let end = cfg.start_ms + i64::from(cfg.days) * DAY_MS;
    let (mut valve, mut bearing, mut healthy_fill, mut healthy_vib) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut e10 = [0u64; 2];
    let mut e10_n = [0u64; 2];
    for (dev, cycles) in per.iter().enumerate() {
        let start = fleet.devices()[dev].installed_at.max(cfg.start_ms);
        let fill = first_last(cycles, start, end, |c| c.fill > 0, |c| c.fill as f64);
        let vib = first_last(cycles, start, end, |c| c.spin >= 1000, |c| c.vib);
        let (Some(fill), Some(vib)) = (fill, vib) else {
            continue;
        };
        let ratio = |(a, b): (f64, f64)| b / a;
        let fault = fleet.fault(dev);
        let faulty = usize::from(fault != Fault::None);
        e10_n[faulty] += cycles.len() as u64;
        e10[faulty] += cycles.iter().filter(|c| c.error == "E10_fill").count() as u64;
        match fault {
            Fault::InletValve { onset_ms } => {
                assert!(onset_ms >= start + 28 * DAY_MS && onset_ms < end);
                valve.push(ratio(fill));
            }
            Fault::WornBearing { onset_ms } => {
                assert!(onset_ms >= start + 28 * DAY_MS && onset_ms < end);
                bearing.push(ratio(vib));
            }
            Fault::None => {
                healthy_fill.push(ratio(fill));
                healthy_vib.push(ratio(vib));
            }
        }
    }
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let share_over =
        |v: &[f64], x: f64| v.iter().filter(|&&r| r > x).count() as f64 / v.len() as f64;
    assert!(valve.len() > 20 && bearing.len() > 20 && healthy_fill.len() > 100);
    assert!(avg(&valve) > 1.10, "valve {valve:?}");
    assert!(share_over(&valve, 1.10) > 0.85, "valve {valve:?}");
    assert!(avg(&bearing) > 1.10, "bearing {bearing:?}");
    assert!(share_over(&bearing, 1.10) > 0.85, "bearing {bearing:?}");
    assert!(
        (0.97..1.03).contains(&avg(&healthy_fill)),
        "{}",
        avg(&healthy_fill)
    );
    assert!(
        (0.95..1.05).contains(&avg(&healthy_vib)),
        "{}",
        avg(&healthy_vib)
    );
    assert!(share_over(&healthy_fill, 1.10) < 0.05);
    assert!(share_over(&healthy_vib, 1.25) < 0.1, "{healthy_vib:?}");
    let rate = |i: usize| e10[i] as f64 / e10_n[i] as f64;
    assert!(
        rate(1) > 5.0 * rate(0),
        "E10 faulty {} healthy {}",
        rate(1),
        rate(0)
    );
}

#[test]
fn usage_bands_and_segments() {
    let cfg = small(1_500, 364);
    let fleet = Fleet::new(cfg.clone());
    let end = cfg.start_ms + i64::from(cfg.days) * DAY_MS;
    let mut bands = [0usize; 3];
    let mut by_segment: HashMap<String, (f64, f64)> = HashMap::new();
    let mut agree = 0;
    for dev in 0..cfg.devices {
        let cycles = fleet.device_cycles(dev);
        let info = &fleet.devices()[dev];
        let weeks = (end - info.installed_at.max(cfg.start_ms)) as f64 / WEEK_MS;
        let per_week = cycles.len() as f64 / weeks;
        let band = if per_week < 3.0 {
            0
        } else if per_week <= 7.0 {
            1
        } else {
            2
        };
        bands[band] += 1;
        agree += usize::from(band == usize::from(fleet.households[dev].band));
        let e = by_segment.entry(info.segment.clone()).or_default();
        e.0 += per_week;
        e.1 += 1.0;
    }
    let share = |i: usize| bands[i] as f64 / cfg.devices as f64;
    assert!((0.2..0.5).contains(&share(0)), "light {bands:?}");
    assert!((0.35..0.6).contains(&share(1)), "medium {bands:?}");
    assert!((0.08..0.3).contains(&share(2)), "heavy {bands:?}");
    assert!(
        agree as f64 > 0.85 * cfg.devices as f64,
        "drawn bands show in the data"
    );
    let seg_mean = |segs: &str| {
        let (s, n) = segs
            .chars()
            .filter_map(|c| by_segment.get(&c.to_string()))
            .fold((0.0, 0.0), |(s, n), e| (s + e.0, n + e.1));
        s / n
    };
    assert!(
        seg_mean("GHI") > 1.5 * seg_mean("ELM"),
        "families wash more: {} vs {}",
        seg_mean("GHI"),
        seg_mean("ELM")
    );
    assert_eq!(by_segment.len(), 15, "all segments present");
}

#[test]
fn settings_and_physics_are_plausible() {
    let fleet = Fleet::new(small(600, 182));
    let per = unique_cycles(&fleet);
    let all: Vec<&Cyc> = per.iter().flatten().collect();
    let n = all.len() as f64;
    let share = |f: &dyn Fn(&Cyc) -> bool| all.iter().filter(|c| f(c)).count() as f64 / n;
    let wool = share(&|c| c.program == "wool");
    assert!((0.003..0.025).contains(&wool), "wool {wool}");
    for rare in ["drain", "rinse_spin"] {
        let s = share(&|c| c.program == rare);
        assert!(s > 0.002 && s < 0.04, "{rare} {s}");
    }
    let eco = share(&|c| c.program == "eco_40_60");
    assert!((0.1..0.3).contains(&eco), "eco {eco}");
    let errors = share(&|c| c.error != "none");
    assert!((0.003..0.05).contains(&errors), "errors {errors}");

    // by segment: hot washes in older segments, eco in prestige ones
    let seg = |c: &Cyc| fleet.devices()[c.dev].segment.clone();
    let share_in = |segs: &str, f: &dyn Fn(&Cyc) -> bool| {
        let v: Vec<&&Cyc> = all
            .iter()
            .filter(|c| segs.contains(seg(c).as_str()))
            .collect();
        v.iter().filter(|c| f(c)).count() as f64 / v.len() as f64
    };
    let hot = |c: &Cyc| c.temp >= 60;
    assert!(share_in("ELM", &hot) > 1.3 * share_in("AJO", &hot));
    let is_eco = |c: &Cyc| c.program == "eco_40_60";
    assert!(share_in("BC", &is_eco) > 1.4 * share_in("JK", &is_eco));

    // loads within capacity, small for wool, large for cotton
    let mut by_prog: HashMap<&str, Vec<f64>> = HashMap::new();
    for c in &all {
        let cap = fleet.devices()[c.dev].capacity_kg;
        assert!(c.load > 0.0 && c.load <= cap, "{c:?} cap {cap}");
        by_prog
            .entry(c.program.as_str())
            .or_default()
            .push(c.load / cap);
    }
    let avg = |p: &str| mean(by_prog[p].iter().copied()).expect("present");
    assert!(
        avg("cotton") > 2.0 * avg("wool"),
        "{} {}",
        avg("cotton"),
        avg("wool")
    );
    assert!(avg("bedding") > avg("delicates"));

    // energy: heating water dominates
    let energy = |t: i64| {
        mean(
            all.iter()
                .filter(|c| c.program == "cotton" && c.temp == t && c.error == "none")
                .map(|c| c.energy as f64),
        )
        .expect("present")
    };
    let (e30, e40, e60, e90) = (energy(30), energy(40), energy(60), energy(90));
    assert!(
        e30 < e40 && e40 < e60 && e60 < e90,
        "{e30} {e40} {e60} {e90}"
    );
    assert!(
        (600.0..1500.0).contains(&e40) && (1600.0..3200.0).contains(&e90),
        "{e40} {e90}"
    );
    let cotton60: Vec<&&Cyc> = all
        .iter()
        .filter(|c| c.program == "cotton" && c.temp == 60 && c.error == "none")
        .collect();
    let heavy = mean(
        cotton60
            .iter()
            .filter(|c| c.load >= 5.0)
            .map(|c| c.energy as f64),
    );
    let light = mean(
        cotton60
            .iter()
            .filter(|c| c.load < 3.0)
            .map(|c| c.energy as f64),
    );
    assert!(heavy > light, "{heavy:?} {light:?}");
    // durations, water, fill, spin by program
    for c in &all {
        if c.error == "E30_door" {
            assert!(c.duration < 200 && c.water == 0.0);
            continue;
        }
        match c.program.as_str() {
            _ if c.error != "none" => {}
            "quick_15" => assert!((700..1500).contains(&c.duration), "{c:?}"),
            "cotton" | "eco_40_60" => assert!((5_000..18_001).contains(&c.duration), "{c:?}"),
            "drain" => assert!(c.spin == 0 && c.water == 0.0 && c.fill == 0),
            _ => {}
        }
        if c.program != "drain" {
            assert!(c.water >= 15.0 && c.water < 150.0, "{c:?}");
            assert!(c.fill >= 30, "{c:?}");
        }
        assert!(c.vib > 0.0 && c.vib < 10.0, "{c:?}");
    }
    let fill = mean(all.iter().filter(|c| c.fill > 0).map(|c| c.fill as f64)).expect("some");
    assert!((50.0..75.0).contains(&fill), "{fill}");
    // some households over-dose
    let mut dose: Vec<f64> = per
        .iter()
        .filter_map(|v| {
            mean(
                v.iter()
                    .filter(|c| c.program == "cotton")
                    .map(|c| c.detergent as f64 / (40.0 + 5.0 * c.load)),
            )
        })
        .collect();
    dose.sort_by(f64::total_cmp);
    let q = |p: f64| dose[(p * (dose.len() - 1) as f64) as usize];
    assert!(
        q(0.95) > 1.35 * q(0.5),
        "over-dosers: {} vs {}",
        q(0.95),
        q(0.5)
    );
}

#[test]
fn wash_times_follow_the_week() {
    let fleet = Fleet::new(small(400, 91));
    let per = unique_cycles(&fleet);
    let (mut wd, mut we) = (Vec::new(), Vec::new());
    let mut hours = [0u32; 24];
    for c in per.iter().flatten() {
        let day = c.ts.div_euclid(DAY_MS);
        let hour = (c.ts - day * DAY_MS) as f64 / 3_600_000.0;
        hours[hour as usize] += 1;
        if (day + 3).rem_euclid(7) >= 5 {
            we.push(hour);
        } else {
            wd.push(hour);
        }
    }
    let per_day_we = we.len() as f64 / 2.0;
    let per_day_wd = wd.len() as f64 / 5.0;
    assert!(per_day_we > 1.2 * per_day_wd, "more washing at weekends");
    let morning =
        |v: &[f64]| v.iter().filter(|&&h| (6.0..9.0).contains(&h)).count() as f64 / v.len() as f64;
    assert!(
        morning(&wd) > 1.5 * morning(&we),
        "weekday mornings, later at weekends"
    );
    assert!(
        hours[2] == 0 && hours[3] == 0,
        "nobody washes at 3 am: {hours:?}"
    );
    assert!(hours[19] > hours[14] && hours[7] > hours[5]);
}

#[test]
fn devices_and_postcodes() {
    let fleet = Fleet::new(small(3_000, 1));
    let table = fleet.postcodes();
    let mut map: HashMap<&str, (&str, &str)> = HashMap::new();
    for e in &table {
        let (p, r, s) = (&e.postcode, &e.region, &e.segment);
        assert!(map.insert(p, (r, s)).is_none(), "postcode {p} listed twice");
        assert!(s.len() == 1 && ("A"..="O").contains(&s.as_str()));
    }
    let regions: HashSet<&str> = table.iter().map(|t| t.region.as_str()).collect();
    assert_eq!(regions.len(), 12);
    let mut models = HashSet::new();
    let mut serials = HashSet::new();
    for (i, d) in fleet.devices().iter().enumerate() {
        assert_eq!(d.serial, format!("WM-{:08}", i + 1));
        assert!(serials.insert(d.serial.clone()));
        assert_eq!(
            map.get(d.postcode.as_str()),
            Some(&(d.region.as_str(), d.segment.as_str()))
        );
        assert!(
            (49.9..=60.9).contains(&d.lat) && (-8.2..=1.8).contains(&d.lon),
            "{d:?}"
        );
        let cap: f64 = d
            .model
            .rsplit(' ')
            .next()
            .and_then(|c| c.parse().ok())
            .expect("capacity in name");
        assert_eq!(cap, d.capacity_kg);
        assert!(!d.firmware.is_empty());
        assert!(d.installed_at < DEFAULT_START_MS + 100 * DAY_MS);
        models.insert(d.model.clone());
    }
    assert_eq!(models.len(), 5);
    let london: Vec<_> = fleet
        .devices()
        .iter()
        .filter(|d| d.region == "London")
        .collect();
    assert!(london.len() > 150);
    assert!(london.iter().all(|d| (51.2..51.8).contains(&d.lat)));
    // Londoners are more often in the city segments than the Welsh
    let city = |r: &str| {
        let v: Vec<_> = fleet.devices().iter().filter(|d| d.region == r).collect();
        v.iter()
            .filter(|d| "AJNO".contains(d.segment.as_str()))
            .count() as f64
            / v.len() as f64
    };
    assert!(city("London") > 2.0 * city("Wales"));
}

/// ts, phase, rpm, water temperature, power, vibration
type SampleRow = (i64, String, i64, f64, i64, f64);

#[test]
fn sample_traces_follow_the_wash() {
    let fleet = Fleet::new(FleetConfig {
        duplicate_rate: 0.0,
        late_rate: 0.0,
        ..with_samples(60, 30)
    });
    let mut cycles: HashMap<(usize, i64), Cyc> = HashMap::new();
    let mut traces: HashMap<usize, Vec<SampleRow>> = HashMap::new();
    for b in fleet.batches(10_000) {
        if b.stream == "cycles" {
            for c in cycles_of(&b) {
                cycles.insert((c.dev, c.ts), c);
            }
        } else {
            let (ph, rpm, t, p, v) = (
                texts(&b, "phase"),
                ints(&b, "drum_rpm"),
                floats(&b, "water_temp_c"),
                ints(&b, "power_w"),
                floats(&b, "vibration_g"),
            );
            for i in 0..b.len() {
                traces.entry(dev_index(&b.device[i])).or_default().push((
                    b.ts[i],
                    ph[i].clone(),
                    rpm[i],
                    t[i],
                    p[i],
                    v[i],
                ));
            }
        }
    }
    let mut checked = 0;
    for (dev, rows) in &traces {
        // split the device's samples into washes: each starts at a cycle's ts
        let mut i = 0;
        while i < rows.len() {
            let c = cycles
                .get(&(*dev, rows[i].0))
                .expect("trace starts with its wash");
            let n = 2 * c.duration as usize;
            let trace = &rows[i..i + n];
            for (k, r) in trace.iter().enumerate() {
                assert_eq!(r.0, c.ts + 500 * k as i64, "2 Hz grid");
            }
            let order = ["fill", "wash", "rinse", "spin", "drain"];
            let pos: Vec<usize> = trace
                .iter()
                .map(|r| order.iter().position(|p| *p == r.1).expect("phase"))
                .collect();
            assert!(pos.windows(2).all(|w| w[0] <= w[1]), "phases in order");
            let fill_rows = pos.iter().filter(|&&p| p == 0).count() as i64;
            if c.program != "drain" {
                assert!(
                    (fill_rows - 2 * c.fill).abs() <= 2,
                    "fill phase = fill_time_s"
                );
                assert!(trace.iter().filter(|r| r.1 == "fill").all(|r| r.2 == 0));
                let tumble = trace.iter().filter(|r| r.1 == "wash" || r.1 == "rinse");
                let tumble_rpm = tumble.map(|r| r.2).max();
                assert!(matches!(tumble_rpm, Some(40..=60)), "{tumble_rpm:?}");
            }
            let max_rpm = trace.iter().map(|r| r.2).max().unwrap_or(0) as f64;
            if c.spin > 0 {
                assert!(
                    (max_rpm - c.spin as f64).abs() < 0.02 * c.spin as f64 + 2.0,
                    "{max_rpm} {c:?}"
                );
                let spin_vib = trace
                    .iter()
                    .filter(|r| r.1 == "spin")
                    .map(|r| r.5)
                    .fold(0.0, f64::max);
                assert!(
                    spin_vib <= c.vib + 0.01 && spin_vib > 0.8 * c.vib,
                    "{spin_vib} {c:?}"
                );
            }
            let max_t = trace.iter().map(|r| r.3).fold(f64::MIN, f64::max);
            assert!(max_t <= c.temp.max(25) as f64 + 1.0, "{max_t} {c:?}");
            if c.temp >= 40 && c.program == "cotton" {
                assert!(
                    max_t > c.temp as f64 - 3.0,
                    "heats to the setting: {max_t} {c:?}"
                );
                assert!(trace.iter().any(|r| r.4 > 1_700), "heater on");
            }
            let wh: f64 = trace.iter().map(|r| r.4 as f64 * 0.5 / 3600.0).sum();
            assert!(
                (wh - c.energy as f64).abs() < 0.1 * c.energy as f64 + 5.0,
                "{wh} {c:?}"
            );
            checked += 1;
            i += n;
        }
    }
    assert!(checked > 20, "{checked}");
}

#[test]
fn default_volume() {
    let fleet = Fleet::new(FleetConfig {
        devices: 2_000,
        samples: true,
        ..FleetConfig::default()
    });
    let (c, s) = fleet.expected_unique_rows();
    let per_device = |x: u64| x as f64 / 2_000.0;
    assert!(
        (180.0..250.0).contains(&per_device(c)),
        "cycles {}",
        per_device(c)
    );
    // >= 50 million samples for 100,000 devices and a year
    assert!(
        (500.0..1_500.0).contains(&per_device(s)),
        "samples {}",
        per_device(s)
    );
}

/// Generation speed: `cargo test --release --lib sim::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput() {
    for samples in [false, true] {
        let fleet = Fleet::new(FleetConfig {
            devices: 20_000,
            samples,
            ..FleetConfig::default()
        });
        let t = std::time::Instant::now();
        let (mut rows, mut values) = ([0u64; 2], 0u64);
        for b in fleet.batches(10_000) {
            let s = usize::from(b.stream == "samples");
            rows[s] += b.len() as u64;
            values += b.len() as u64 * (2 + b.columns.len() as u64);
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "samples={samples}: {} cycle rows, {} sample rows in {secs:.2} s: {:.2} M rows/s, {:.1} M values/s",
            rows[0],
            rows[1],
            (rows[0] + rows[1]) as f64 / secs / 1e6,
            values as f64 / secs / 1e6
        );
    }
}

/// Volume at scale: `cargo test --release --lib sim::tests::volume_100k -- --ignored --nocapture`
#[test]
#[ignore]
fn volume_100k() {
    let fleet = Fleet::new(FleetConfig {
        devices: 100_000,
        samples: true,
        ..FleetConfig::default()
    });
    let t = std::time::Instant::now();
    let (c, s) = fleet.expected_unique_rows();
    println!(
        "100,000 devices x 365 days: {c} cycle rows ({:.0}/device), {s} sample rows ({:.0}/device), counted in {:.1} s",
        c as f64 / 1e5,
        s as f64 / 1e5,
        t.elapsed().as_secs_f64()
    );
}

/// Summary of the generated data: `cargo test --release --lib sim::tests::report -- --ignored --nocapture`
#[test]
#[ignore]
fn report() {
    let fleet = Fleet::new(small(5_000, 365));
    let per = unique_cycles(&fleet);
    let all: Vec<&Cyc> = per.iter().flatten().collect();
    let n = all.len() as f64;
    println!("{} cycles, {:.0} per device", all.len(), n / 5_000.0);
    let count = |f: &dyn Fn(&Cyc) -> String| {
        let mut m: HashMap<String, (f64, f64, f64, f64)> = HashMap::new();
        for c in &all {
            let e = m.entry(f(c)).or_default();
            e.0 += 1.0;
            e.1 += c.energy as f64;
            e.2 += c.load / fleet.devices()[c.dev].capacity_kg;
            e.3 += c.duration as f64 / 60.0;
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, (c, e, l, d)) in v {
            println!(
                "  {k:<22} {:5.1}%  {:6.0} Wh  load {:3.0}% of drum  {:4.0} min",
                100.0 * c / n,
                e / c,
                100.0 * l / c,
                d / c
            );
        }
    };
    println!("program:");
    count(&|c| c.program.clone());
    println!("program/temp (cotton, eco):");
    count(&|c| {
        if c.program == "cotton" || c.program == "eco_40_60" {
            format!("{} {}", c.program, c.temp)
        } else {
            "other".into()
        }
    });
    println!("temperature:");
    count(&|c| format!("{:02}", c.temp));
    println!("spin:");
    count(&|c| format!("{:04}", c.spin));
    println!("error:");
    count(&|c| c.error.clone());
    println!("segment:");
    count(&|c| fleet.devices()[c.dev].segment.clone());
    println!("region:");
    count(&|c| fleet.devices()[c.dev].region.clone());
    println!("hour:");
    count(&|c| format!("{:02}", (c.ts % DAY_MS) / 3_600_000));
}
