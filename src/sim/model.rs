//! Households and their washes: who owns each machine, how often and how they wash, and the
//! physics that turns a wash into a `cycles` row and a 2 Hz `samples` trace.
//!
//! Everything a device does on a given day is a pure function of (seed, device, day): a
//! day can be generated for any device in any order, which keeps generation streaming and
//! lets [`Fleet::expected_unique_rows`](super::Fleet::expected_unique_rows) recount it
//! cheaply.

use super::rng::{self, exp, Rnd, Rng};
use super::tables::{err, prog, MODELS, PROGRAMS, REGIONS, SEGMENTS};
use super::{Fault, FleetConfig};
use crate::schema::DAY_MS;

pub(crate) const WEEK_MS: f64 = 7.0 * DAY_MS as f64;
/// Latest start of a wash, seconds after midnight (23:30).
const LAST_START_S: i64 = 23 * 3600 + 1800;
/// Earliest start (05:00): with washes at most 5 h long, a day's last wash always ends
/// before the next day's first starts, so a device's washes never overlap.
const FIRST_START_S: f64 = 5.0 * 3600.0;
const MAX_DURATION_S: f64 = 5.0 * 3600.0;

/// Purpose tags of the keyed random streams.
pub(crate) mod tag {
    pub const DEVICE: u64 = 1;
    pub const DAY: u64 = 2;
    pub const TRACE_DEVICE: u64 = 3;
    pub const TRACE_CYCLE: u64 = 4;
    pub const DELIVERY: u64 = 5;
    pub const NOISE: u64 = 6;
    pub const SAMPLE_DELIVERY: u64 = 7;
}

/// The traits of one household and its machine.
#[derive(Debug, Clone)]
pub(crate) struct Household {
    pub model: u8,
    pub region: u8,
    /// Usage band drawn for the household: 0 light, 1 medium, 2 heavy (ground truth for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub band: u8,
    pub installed_at: i64,
    pub rate_per_week: f64,
    pub prog_cdf: [f32; 12],
    /// Weight multipliers of 60 C and 90 C.
    pub hot60: f64,
    pub hot90: f64,
    /// Mean load as a fraction of what the program allows.
    pub fill_frac: f64,
    /// Detergent dose factor (over-dosers 1.4..2).
    pub dose: f64,
    /// Time to fill to the wash level, by the household's water pressure (s).
    pub fill_base_s: f64,
    /// Load-imbalance tendency (log-normal around 1).
    pub imbalance: f64,
    /// Shift of the household's wash times (hours).
    pub shift_h: f64,
    /// Probability of choosing a non-default spin.
    pub spin_alt: f64,
    /// Whether this device uploads 2 Hz traces.
    pub traced: bool,
    pub fault: Fault,
    /// Inlet valve: ln(1 + weekly fill-time drift); bearing: weekly vibration increase.
    pub fault_rate: f64,
}

impl Household {
    pub(crate) fn new(
        cfg: &FleetConfig,
        dev: usize,
        region: usize,
        segment: usize,
        rng: &mut Rng,
    ) -> Household {
        let seg = &SEGMENTS[segment];
        let reg = &REGIONS[region];
        let weights: Vec<f64> = MODELS
            .iter()
            .map(|m| m.weight * exp(seg.big * (m.capacity_kg - 8.0) / 2.0))
            .collect();
        let model = rng.pick(&weights);
        let period_ms = i64::from(cfg.days) * DAY_MS;
        // 85% installed in the four years before the period, 15% during its first quarter.
        let installed_at = if rng.chance(0.85) {
            cfg.start_ms - (rng.range(1.0, 4.0 * 365.0) * DAY_MS as f64) as i64
        } else {
            cfg.start_ms + (rng.f64() * 0.25 * period_ms as f64) as i64
        } / 1000
            * 1000;
        let band = rng.pick(&seg.bands);
        let u = rng.f64();
        let rate_per_week = match band {
            0 => 0.4 + 2.5 * u,
            1 => 3.0 + 4.0 * u * u,
            _ => 7.2 + 6.0 * u * u,
        };
        let mut cdf = [0f32; 12];
        let mut total = 0.0;
        for (p, spec) in PROGRAMS.iter().enumerate() {
            let p = p as u8;
            let m = match p {
                prog::ECO => seg.eco * reg.eco,
                prog::QUICK_15 | prog::QUICK_30 => seg.quick,
                prog::BEDDING | prog::SPORTSWEAR => seg.family,
                prog::COTTON => seg.family.sqrt(),
                prog::WOOL | prog::DELICATES => seg.delicate,
                _ => 1.0,
            };
            total += spec.weight * m * rng.lognormal(0.45);
            cdf[usize::from(p)] = total as f32;
        }
        let hot = seg.hot + reg.hot + 0.4 * rng.normal();
        let mut fill_frac = seg.fill + 0.1 * rng.normal();
        if rng.chance(0.15) {
            fill_frac *= 0.6; // under-loaders
        }
        let dose = if rng.chance(0.2) {
            rng.range(1.4, 2.0) // over-dosers
        } else {
            rng.lognormal(0.08)
        };
        let fill_base_s = (60.0 + 11.0 * rng.normal()).clamp(40.0, 90.0);
        let imbalance = rng.lognormal(0.25);
        let shift_h = 0.8 * rng.normal();
        let spin_alt = rng.range(0.05, 0.5);
        let traced = rng::unit(rng::key(cfg.seed, &[dev as u64, tag::TRACE_DEVICE]))
            < cfg.sample_device_share;
        let (fault, fault_rate) = if rng.chance(cfg.fault_rate) {
            let active = installed_at.max(cfg.start_ms);
            let first = active + 28 * DAY_MS;
            let last = (cfg.start_ms + period_ms * 6 / 10).max(first);
            let onset = (first + (rng.f64() * (last - first) as f64) as i64) / 1000 * 1000;
            if rng.chance(0.5) {
                let drift = rng.range(0.01, 0.03);
                (Fault::InletValve { onset_ms: onset }, rng::ln(1.0 + drift))
            } else {
                (
                    Fault::WornBearing { onset_ms: onset },
                    rng.range(0.02, 0.06),
                )
            }
        } else {
            (Fault::None, 0.0)
        };
        Household {
            model: model as u8,
            region: region as u8,
            band: band as u8,
            installed_at,
            rate_per_week,
            prog_cdf: cdf,
            hot60: exp(hot),
            hot90: exp(1.5 * hot),
            fill_frac: fill_frac.clamp(0.2, 0.95),
            dose,
            fill_base_s,
            imbalance,
            shift_h,
            spin_alt,
            traced,
            fault,
            fault_rate,
        }
    }
}

/// What is common to all devices on one day.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DayInfo {
    pub day: u32,
    pub start_ms: i64,
    pub weekend: bool,
    /// Activity multiplier (a little more washing in winter).
    pub season: f64,
    /// Mean mains water temperature (C).
    pub tin: f64,
}

impl DayInfo {
    pub(crate) fn new(cfg: &FleetConfig, day: u32) -> DayInfo {
        let start_ms = cfg.start_ms + i64::from(day) * DAY_MS;
        let epoch_day = start_ms.div_euclid(DAY_MS);
        let dow = (epoch_day + 3).rem_euclid(7); // 0 = Monday
        let year_angle = std::f64::consts::TAU * (epoch_day.rem_euclid(365) as f64) / 365.0;
        // epoch-day mod 365 is ~0 on 1 January; water is coldest in February, warmest in August.
        let c = rng::cos(year_angle - std::f64::consts::TAU * 40.0 / 365.0);
        DayInfo {
            day,
            start_ms,
            weekend: dow >= 5,
            season: 1.0 + 0.06 * rng::cos(year_angle - std::f64::consts::TAU * 15.0 / 365.0),
            tin: 11.0 - 5.0 * c,
        }
    }
}

/// One wash, with its values already rounded to the schema's decimals (as integers in the
/// column's unit: load in 0.1 kg, water in 0.1 l, vibration in 0.01 g).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CycleRow {
    pub dev: u32,
    pub ts_ms: i64,
    /// Index into the model table (not a column: the trace physics needs it).
    pub model: u8,
    pub program: u8,
    pub temp_c: u8,
    pub spin: u16,
    pub load_dkg: u16,
    pub duration_s: u32,
    pub energy_wh: u32,
    pub water_dl: u32,
    pub fill_s: u32,
    pub vib_cg: u32,
    pub detergent_ml: u16,
    pub error: u8,
    /// Uploads a 2 Hz trace.
    pub traced: bool,
    /// Mains water temperature, 0.1 C.
    pub tin_dc: i16,
    /// Bearing wear factor, percent (100 = healthy).
    pub wear_pct: u16,
}

impl CycleRow {
    /// Rows this wash contributes to `samples` when traced: 2 Hz over its duration.
    pub(crate) fn sample_rows(&self) -> u64 {
        if self.traced {
            2 * u64::from(self.duration_s)
        } else {
            0
        }
    }
}

/// Phase boundaries of a wash, seconds from its start, and its heating.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub fill_end: f64,
    pub wash_end: f64,
    pub rinse_end: f64,
    pub spin_end: f64,
    pub duration: f64,
    pub tin: f64,
    /// Heating rate (K/s) and how long the heater runs flat out in the wash phase.
    pub heat_rate: f64,
    pub heat_time: f64,
    /// Temperature the heater holds (C).
    pub target: f64,
    /// Heater duty holding the target (0..1).
    pub hold_duty: f64,
    pub heater_w: f64,
    pub motor_w: f64,
    pub tumble_on: u32,
    pub tumble_period: u32,
}

impl Layout {
    pub(crate) fn of(row: &CycleRow, water_l: f64) -> Layout {
        let model = &MODELS[usize::from(row.model)];
        let spec = &PROGRAMS[usize::from(row.program)];
        let d = f64::from(row.duration_s);
        let load = f64::from(row.load_dkg) / 10.0;
        let tin = f64::from(row.tin_dc) / 10.0;
        let aborted = row.error == err::DOOR;
        let motor_w = 130.0 + 6.0 * load;
        let mut l = Layout {
            fill_end: 0.0,
            wash_end: 0.0,
            rinse_end: 0.0,
            spin_end: 0.0,
            duration: d,
            tin,
            heat_rate: 0.0,
            heat_time: 0.0,
            target: tin,
            hold_duty: 0.0,
            heater_w: model.heater_w,
            motor_w,
            tumble_on: spec.tumble_on,
            tumble_period: spec.tumble_on + spec.tumble_off,
        };
        if aborted || row.program == prog::DRAIN {
            return l; // all drain
        }
        let fill = f64::from(row.fill_s).min(0.3 * d);
        let spin = if row.spin == 0 {
            0.0
        } else if row.program == prog::QUICK_15 {
            150.0
        } else {
            (300.0 + 240.0 * load / model.capacity_kg).min(0.3 * d)
        };
        let drain = 60.0f64.min(0.1 * d);
        let rest = (d - fill - spin - drain).max(0.0);
        let rinse = if row.program == prog::RINSE_SPIN {
            rest
        } else {
            0.3 * rest
        };
        l.fill_end = fill;
        l.wash_end = fill + rest - rinse;
        l.rinse_end = fill + rest;
        l.spin_end = fill + rest + spin;
        let temp = f64::from(row.temp_c);
        if temp > tin {
            let target = tin + (temp - tin) * spec.heat_frac;
            let heated_l = water_l.min(8.0 + 1.6 * load);
            let capacity_j_per_k = heated_l * 4186.0 + load * 1400.0 + 8000.0;
            l.heat_rate = model.heater_w / capacity_j_per_k;
            let wash_len = l.wash_end - l.fill_end;
            l.heat_time = ((target - tin) / l.heat_rate).min(wash_len);
            l.target = tin + l.heat_rate * l.heat_time;
            l.hold_duty = (2.5 * (target - tin) / model.heater_w).min(0.5);
        }
        l
    }

    /// Energy of the wash by integrating the power model (Wh).
    pub(crate) fn energy_wh(&self, spin_rpm: f64) -> f64 {
        let wash_len = self.wash_end - self.fill_end;
        let rinse_len = self.rinse_end - self.wash_end;
        let spin_len = self.spin_end - self.rinse_end;
        let drain_len = self.duration - self.spin_end;
        let duty = f64::from(self.tumble_on) / f64::from(self.tumble_period.max(1));
        let joules = self.heater_w * self.heat_time
            + self.heater_w * self.hold_duty * (wash_len - self.heat_time)
            + self.motor_w * duty * (wash_len + rinse_len)
            + spin_power(spin_rpm) * spin_len
            + 35.0 * drain_len
            + 8.0 * self.fill_end
            + 6.0 * self.duration;
        joules / 3600.0
    }
}

fn spin_power(rpm: f64) -> f64 {
    if rpm > 0.0 {
        250.0 + 250.0 * rpm / 1600.0 + 35.0
    } else {
        35.0
    }
}

/// Bearing wear factor of a row (1 = healthy).
pub(crate) fn wear_of(row: &CycleRow) -> f64 {
    f64::from(row.wear_pct) / 100.0
}

/// Appends the washes of device `dev` on one day, in start order.
pub(crate) fn device_day(
    cfg: &FleetConfig,
    h: &Household,
    dev: usize,
    di: &DayInfo,
    out: &mut Vec<CycleRow>,
) {
    if di.start_ms + DAY_MS <= h.installed_at {
        return;
    }
    let mut rng = Rng::new(rng::key(
        cfg.seed,
        &[dev as u64, u64::from(di.day), tag::DAY],
    ));
    let day_factor = if di.weekend { 1.3 } else { 0.88 };
    let mu = h.rate_per_week / 7.0 * day_factor * di.season;
    let n = rng.poisson(mu).min(6) as usize;
    if n == 0 {
        return;
    }
    let mut starts = [0i64; 6];
    for s in starts.iter_mut().take(n) {
        let (mean, sd) = if di.weekend {
            match rng.pick(&[0.55, 0.45]) {
                0 => (10.5, 1.4),
                _ => (15.0, 2.2),
            }
        } else {
            match rng.pick(&[0.32, 0.18, 0.50]) {
                0 => (7.5, 0.9),
                1 => (12.5, 1.8),
                _ => (19.0, 1.4),
            }
        };
        let mut hours = mean + sd * rng.normal() + h.shift_h;
        // reflect the tails into the waking day rather than piling them up on its edges
        if hours < 5.0 {
            hours = 10.0 - hours;
        } else if hours > 23.0 {
            hours = 46.0 - hours;
        }
        *s = (hours * 3600.0).clamp(FIRST_START_S, 23.0 * 3600.0) as i64;
    }
    starts[..n].sort_unstable();
    let mut prev_end = i64::MIN;
    for &start in &starts[..n] {
        let mut t = start;
        if prev_end != i64::MIN {
            t = t.max(prev_end + rng.range(300.0, 1800.0) as i64);
        }
        if t > LAST_START_S {
            break;
        }
        let ts_ms = di.start_ms + t * 1000;
        if ts_ms < h.installed_at {
            continue;
        }
        let row = make_cycle(cfg, h, dev, di, ts_ms, &mut rng);
        prev_end = t + i64::from(row.duration_s);
        out.push(row);
    }
}

fn make_cycle(
    cfg: &FleetConfig,
    h: &Household,
    dev: usize,
    di: &DayInfo,
    ts_ms: i64,
    rng: &mut Rng,
) -> CycleRow {
    let model = &MODELS[usize::from(h.model)];
    let p = rng.pick_cdf(&h.prog_cdf) as u8;
    let spec = &PROGRAMS[usize::from(p)];

    let mut tw = [0f64; 5];
    for (w, &(t, base)) in tw.iter_mut().zip(spec.temps) {
        *w = base
            * match t {
                60 => h.hot60,
                90 => h.hot90,
                _ => 1.0,
            };
    }
    let temp = spec.temps[rng.pick(&tw[..spec.temps.len()])].0;

    let mut spin = if spec.spins.len() > 1 && rng.chance(h.spin_alt) {
        spec.spins[1 + rng.below(spec.spins.len() as u64 - 1) as usize]
    } else {
        spec.spins[0]
    };
    spin = spin.min(model.max_spin);

    let cap = model.capacity_kg;
    let frac = if p == prog::DRAIN {
        rng.range(0.05, 0.7)
    } else {
        (h.fill_frac + 0.12 * rng.normal()).clamp(0.04, 1.0)
    };
    let load = rng::round_to(cap * spec.max_frac * frac, 10.0).clamp(0.1, cap);

    let (mut fill_mult, mut wear) = (1.0, 1.0);
    match h.fault {
        Fault::InletValve { onset_ms } if ts_ms > onset_ms => {
            fill_mult = exp((ts_ms - onset_ms) as f64 / WEEK_MS * h.fault_rate);
        }
        Fault::WornBearing { onset_ms } if ts_ms > onset_ms => {
            wear = 1.0 + (ts_ms - onset_ms) as f64 / WEEK_MS * h.fault_rate;
        }
        _ => {}
    }
    let mut fill = if p == prog::DRAIN {
        0.0
    } else {
        h.fill_base_s * spec.fill * fill_mult * (1.0 + 0.04 * rng.normal())
    };

    // Error codes: rare background rates, raised by the planted faults.
    let p_fill = if p == prog::DRAIN {
        0.0
    } else {
        0.001 + (0.8 * (fill_mult - 1.0)).min(0.3)
    };
    let p_unbalance = if spin == 0 {
        0.0
    } else {
        0.0008 * h.imbalance + (0.12 * (wear - 1.0)).min(0.2)
    };
    let p_heater = if temp >= 40 { 0.0004 } else { 0.0 };
    let error = rng.pick(&[
        1.0 - 0.003 - 0.002 - p_fill - p_unbalance - 0.0002 - p_heater,
        p_fill,
        0.002,
        0.003,
        p_unbalance,
        0.0002,
        p_heater,
    ]) as u8;
    let aborted = error == err::DOOR;
    if error == err::FILL {
        fill *= rng.range(1.5, 3.0);
    }
    if aborted {
        fill = 0.0;
    }
    let fill = fill.rnd().clamp(0.0, 7200.0);

    let temp_f = f64::from(temp);
    let mut duration = if aborted {
        rng.range(20.0, 120.0)
    } else if p == prog::DRAIN {
        rng.range(150.0, 210.0)
    } else {
        let base = (spec.minutes + spec.minutes_per_deg * temp_f) * 60.0;
        let load_factor = if spec.load_sensing {
            0.75 + 0.3 * load / (cap * spec.max_frac)
        } else {
            1.0
        };
        // three fills (wash, two rinses) take longer when filling is slow
        base * load_factor * (1.0 + 0.03 * rng.normal()) + 3.0 * (fill - 60.0)
    };
    match error {
        err::DRAIN => duration += rng.range(600.0, 1200.0),
        err::UNBALANCE => duration += rng.range(120.0, 600.0),
        _ => {}
    }
    let duration = duration.rnd().clamp(20.0, MAX_DURATION_S);

    let water = if aborted || p == prog::DRAIN {
        0.0
    } else {
        rng::round_to(
            (spec.water_l + spec.water_per_kg * load) * rng.lognormal(0.05),
            10.0,
        )
        .min(1000.0)
    };

    let vib = if aborted {
        0.02
    } else if spin == 0 {
        (0.04 + 0.02 * rng.f64()) * wear
    } else {
        let mut imb = h.imbalance * rng.lognormal(0.25);
        if load / cap < 0.15 {
            imb *= 1.5;
        }
        if p == prog::BEDDING {
            imb *= 1.4;
        }
        let r = f64::from(spin) / 1000.0;
        let mut v = (0.1 + 0.55 * r * r * imb) * model.vib * wear;
        if error == err::UNBALANCE {
            v *= 1.4;
        }
        v
    };
    let vib = rng::round_to(vib, 100.0).clamp(0.01, 50.0);

    let detergent = if aborted || spec.detergent_ml == 0.0 {
        0.0
    } else {
        ((spec.detergent_ml + 5.0 * load)
            * REGIONS[usize::from(h.region)].hardness
            * h.dose
            * rng.lognormal(0.08))
        .rnd()
        .min(1000.0)
    };

    let tin = (di.tin + 0.8 * rng.normal()).clamp(3.0, 25.0);
    let traced = cfg.samples
        && h.traced
        && !aborted
        && rng::unit(rng::key(
            cfg.seed,
            &[dev as u64, ts_ms as u64, tag::TRACE_CYCLE],
        )) < cfg.sample_cycle_share;
    let mut row = CycleRow {
        dev: dev as u32,
        ts_ms,
        model: h.model,
        program: p,
        temp_c: temp,
        spin,
        load_dkg: (load * 10.0).rnd() as u16,
        duration_s: duration as u32,
        energy_wh: 0,
        water_dl: (water * 10.0).rnd() as u32,
        fill_s: fill as u32,
        vib_cg: (vib * 100.0).rnd() as u32,
        detergent_ml: detergent as u16,
        error,
        traced,
        tin_dc: (tin * 10.0).rnd() as i16,
        wear_pct: (wear * 100.0).rnd().min(60_000.0) as u16,
    };
    let energy = if aborted {
        rng.range(0.5, 3.0)
    } else {
        Layout::of(&row, water).energy_wh(f64::from(spin)) * (1.0 + 0.02 * rng.normal())
    };
    row.energy_wh = energy.rnd().clamp(0.0, 20_000.0) as u32;
    row
}

/// One 2 Hz sample: phase code, drum rpm, water temperature (C, 0.1), power (W), vibration
/// (g, 0.01).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub phase: u8,
    pub rpm: i64,
    pub temp: f64,
    pub power: i64,
    pub vib: f64,
}

/// The phase codes of `schema::PHASES`.
const FILL: u8 = 0;
const WASH: u8 = 1;
const RINSE: u8 = 2;
const SPIN: u8 = 3;
const DRAIN: u8 = 4;

/// Sample `i` (at `i * 500` ms from the start) of a traced wash. A pure function of the row,
/// its layout, a noise key and `i`, so any chunk of a trace can be generated on its own.
pub(crate) fn sample(row: &CycleRow, l: &Layout, noise_key: u64, i: u32) -> Sample {
    let h = rng::splitmix64(noise_key ^ u64::from(i));
    let u = |k: u32| f64::from(((h >> (16 * k)) & 0xffff) as u32) / 65536.0;
    let n = u(0) + u(1) - 1.0; // triangular noise in (-1, 1)
    let t = f64::from(i) * 0.5;
    let wear = wear_of(row);
    let max_vib = f64::from(row.vib_cg) / 100.0;
    let spin_set = f64::from(row.spin);
    let tumble = |tau: f64| -> bool { (tau as u32) % l.tumble_period.max(1) < l.tumble_on };
    let cooling = |tau: f64| -> f64 {
        l.tin + (l.target - l.tin) * (0.3 + 0.7 * exp(-tau / 60.0)) * exp(-tau / 1800.0)
    };
    let (phase, rpm, temp, power, vib) = if t < l.fill_end {
        (FILL, 0.0, l.tin, 14.0, 0.01 + 0.01 * u(2))
    } else if t < l.wash_end {
        let tau = t - l.fill_end;
        let on = tumble(tau);
        let (temp, heater) = if tau < l.heat_time {
            (l.tin + l.heat_rate * tau, l.heater_w)
        } else {
            // the heater pulses to hold the target: on for `hold_duty` of every 5 minutes
            let pulse = (tau - l.heat_time) % 300.0 < 300.0 * l.hold_duty;
            (l.target, if pulse { l.heater_w } else { 0.0 })
        };
        let rpm = if on { 48.0 + 4.0 * u(2) } else { 0.0 };
        let motor = if on { l.motor_w } else { 0.0 };
        let vib = if on {
            (0.05 + 0.03 * u(3)) * wear
        } else {
            0.01
        };
        (WASH, rpm, temp, 6.0 + heater + motor, vib)
    } else if t < l.rinse_end {
        let tau = t - l.wash_end;
        let on = tumble(tau);
        let rpm = if on { 48.0 + 4.0 * u(2) } else { 0.0 };
        let motor = if on { l.motor_w } else { 0.0 };
        let vib = if on {
            (0.05 + 0.03 * u(3)) * wear
        } else {
            0.01
        };
        (RINSE, rpm, cooling(tau), 6.0 + motor, vib)
    } else if t < l.spin_end {
        let tau = t - l.rinse_end;
        let len = l.spin_end - l.rinse_end;
        let up = 90.0f64.min(len / 3.0);
        let down = 30.0f64.min(len / 6.0);
        let f = if tau < up {
            tau / up
        } else if tau > len - down {
            (len - tau) / down
        } else {
            1.0
        };
        let rpm = spin_set * f * (1.0 + 0.005 * n);
        let boost = if tau < up { 100.0 } else { 0.0 };
        let vib = max_vib * f * f * (0.88 + 0.12 * u(3));
        (
            SPIN,
            rpm,
            cooling(t - l.wash_end),
            6.0 + spin_power(rpm) + boost,
            vib,
        )
    } else {
        let tau = t - l.wash_end;
        (DRAIN, 0.0, cooling(tau), 41.0, 0.01 + 0.01 * u(3))
    };
    Sample {
        phase,
        rpm: rpm.rnd().clamp(0.0, 2000.0) as i64,
        temp: rng::round_to((temp + 0.15 * n).clamp(-20.0, 110.0), 10.0),
        power: (power * (1.0 + 0.03 * n)).rnd().clamp(0.0, 10_000.0) as i64,
        vib: rng::round_to(vib.clamp(0.0, 50.0), 100.0),
    }
}
