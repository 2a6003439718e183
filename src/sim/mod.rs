//! The fleet simulator: a deterministic, streaming generator of washing-machine telemetry for
//! the washing-machine preset ([`Schema::washing_machine`](crate::Schema::washing_machine)),
//! used by the tests, the benchmarks, the demo and `hearth gen`.
//!
//! # What it simulates
//!
//! A fleet of households across 12 UK regions, each in a postcode district with a
//! socio-economic segment (`A`..`O`), owning one of five machine models (6 to 10 kg). Each
//! household has a usage band (light < 3, medium 3..7, heavy > 7 washes a week, shares by
//! segment), program and temperature preferences (by segment, region and household), a typical
//! load (some under-load), a detergent habit (some over-dose), a water pressure (fill time
//! 40..90 s) and a load-imbalance tendency. Washes start mornings and evenings on weekdays,
//! later on weekends. A planted share of devices develops a fault: a failing inlet valve (fill
//! time drifting up 1..3 %/week, more `E10_fill`) or a worn bearing (max vibration rising
//! 2..6 %/week of its healthy value, more `E40_unbalance`). [`Fleet::fault`] tells the truth.
//!
//! # Volume
//!
//! `cycles`: about 223 rows per device and year (about 22 million for 100,000 devices).
//! `samples` (when [`FleetConfig::samples`]): 2 Hz over the whole wash (a 2-hour wash is 14,400
//! rows), which for every wash of every device would be some 3 million rows per device and
//! year. Only a share of the devices upload traces ([`FleetConfig::sample_device_share`],
//! default 1 %), and of those only a share of washes ([`FleetConfig::sample_cycle_share`],
//! default 1 in 40): about 780 rows per device and year averaged over the fleet, about 78
//! million for 100,000 devices and a year. Traces are complete (fill to drain), never cut.
//!
//! # Delivery
//!
//! [`Fleet::batches`] yields what an ingestion service receives, day by simulated day (memory
//! holds one day plus the rows still in flight): each wash's row is sent when it ends, samples
//! in one-minute messages while it runs. A message is re-sent (a duplicate, identical) with
//! probability [`FleetConfig::duplicate_rate`], from a second to a day later, and delayed (late,
//! out of order for its device) with probability [`FleetConfig::late_rate`], by one hour to
//! three days. A batch holds one stream, at most `batch_rows` rows, and is cut at the end of
//! each simulated day.
//!
//! # Determinism
//!
//! Everything is a function of the configuration: a device's day is drawn from its own keyed
//! random stream (xoshiro256** seeded by SplitMix64 from seed, device and day), and the
//! floating-point math uses only correctly rounded IEEE operations (no platform `libm`), so the
//! same configuration gives byte-identical batches everywhere.

mod model;
mod rng;
mod tables;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::batch::{Batch, Values};
use crate::registry::{DeviceInfo, PostcodeEntry};
use crate::schema::{DAY_MS, ERROR_CODES, PHASES, PROGRAMS};

use model::{tag, CycleRow, DayInfo, Household, Layout};
use rng::Rng;
use tables::{FIRMWARE, MODELS, REGIONS, SEGMENTS, SEGMENT_LETTERS};

/// 2025-01-01T00:00:00Z in milliseconds.
pub const DEFAULT_START_MS: i64 = 1_735_689_600_000;

/// Rows of one `samples` message (one minute at 2 Hz).
const SAMPLE_CHUNK: u32 = 120;
const HOUR_MS: f64 = 3_600_000.0;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Number of devices.
    pub devices: usize,
    /// Simulated period in days.
    pub days: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// First day of the period (UTC midnight, ms).
    pub start_ms: i64,
    /// Also generate the 2 Hz `samples` stream.
    pub samples: bool,
    /// Share of messages delivered twice.
    pub duplicate_rate: f64,
    /// Share of messages delivered late (one hour to three days after they were due).
    pub late_rate: f64,
    /// Share of devices with a planted fault.
    pub fault_rate: f64,
    /// Share of devices that upload 2 Hz traces (when `samples`).
    pub sample_device_share: f64,
    /// Share of a tracing device's washes that are traced.
    pub sample_cycle_share: f64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            devices: 1_000,
            days: 365,
            seed: 42,
            start_ms: DEFAULT_START_MS,
            samples: false,
            duplicate_rate: 0.01,
            late_rate: 0.02,
            fault_rate: 0.04,
            sample_device_share: 0.01,
            sample_cycle_share: 0.025,
        }
    }
}

/// A planted fault: the ground truth the health checks should find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A healthy device.
    None,
    /// The inlet valve fails from `onset_ms`: fill time drifts upward, `E10_fill` recurs.
    InletValve {
        /// When the drift starts (ms).
        onset_ms: i64,
    },
    /// The drum bearing wears from `onset_ms`: vibration rises, `E40_unbalance` recurs.
    WornBearing {
        /// When the wear starts (ms).
        onset_ms: i64,
    },
}

/// A postcode district of the fixed reference table.
#[derive(Debug, Clone)]
struct Postcode {
    code: String,
    region: u8,
    segment: u8,
    lat: f64,
    lon: f64,
}

/// Seed of the postcode table: reference data, the same for every fleet.
const POSTCODE_SEED: u64 = 0x6865_6172_7468_0001;

fn postcode_table() -> Vec<Postcode> {
    let mut out = Vec::new();
    for (r, region) in REGIONS.iter().enumerate() {
        let weights: Vec<f64> = SEGMENTS
            .iter()
            .zip(SEGMENT_LETTERS)
            .map(|(s, letter)| {
                let tilt = region
                    .tilt
                    .iter()
                    .find(|(l, _)| l == letter)
                    .map_or(1.0, |t| t.1);
                s.weight * tilt
            })
            .collect();
        for (a, &(area, districts)) in region.areas.iter().enumerate() {
            for d in 1..=u64::from(districts) {
                let mut rng = Rng::new(rng::key(POSTCODE_SEED, &[r as u64, a as u64, d]));
                let segment = rng.pick(&weights) as u8;
                let lat = region.lat + region.spread * rng.range(-1.0, 1.0);
                let lon = region.lon + 1.6 * region.spread * rng.range(-1.0, 1.0);
                out.push(Postcode {
                    code: format!("{area}{d}"),
                    region: r as u8,
                    segment,
                    lat,
                    lon,
                });
            }
        }
    }
    out
}

/// A simulated fleet: devices, their households, and the telemetry they send.
#[derive(Debug)]
pub struct Fleet {
    cfg: FleetConfig,
    devices: Vec<DeviceInfo>,
    households: Vec<Household>,
    postcodes: Vec<Postcode>,
}

impl Fleet {
    /// Draws the devices and households of a fleet (generation of telemetry is lazy).
    pub fn new(cfg: FleetConfig) -> Fleet {
        let postcodes = postcode_table();
        let mut by_region: Vec<Vec<usize>> = vec![Vec::new(); REGIONS.len()];
        for (i, p) in postcodes.iter().enumerate() {
            by_region[usize::from(p.region)].push(i);
        }
        let region_weights: Vec<f64> = REGIONS.iter().map(|r| r.weight).collect();
        let mut devices = Vec::with_capacity(cfg.devices);
        let mut households = Vec::with_capacity(cfg.devices);
        for dev in 0..cfg.devices {
            let mut rng = Rng::new(rng::key(cfg.seed, &[dev as u64, tag::DEVICE]));
            let region = rng.pick(&region_weights);
            let list = &by_region[region];
            let pc = &postcodes[list[rng.below(list.len() as u64) as usize]];
            let h = Household::new(&cfg, dev, region, usize::from(pc.segment), &mut rng);
            let model = &MODELS[usize::from(h.model)];
            let shipped_day = h.installed_at.div_euclid(DAY_MS);
            let start_day = cfg.start_ms.div_euclid(DAY_MS);
            let fw_day = if rng.chance(0.5) {
                shipped_day.max(start_day) // updated over the air
            } else {
                shipped_day
            };
            let firmware = FIRMWARE
                .iter()
                .rev()
                .find(|f| f.1 <= fw_day)
                .map_or(FIRMWARE[0].0, |f| f.0);
            devices.push(DeviceInfo {
                serial: format!("WM-{:08}", dev + 1),
                model: model.name.to_string(),
                capacity_kg: model.capacity_kg,
                firmware: firmware.to_string(),
                installed_at: h.installed_at,
                lat: rng::round_to((pc.lat + 0.03 * rng.normal()).clamp(49.9, 60.9), 1e5),
                lon: rng::round_to((pc.lon + 0.05 * rng.normal()).clamp(-8.2, 1.8), 1e5),
                postcode: pc.code.clone(),
                region: REGIONS[region].name.to_string(),
                segment: char::from(SEGMENT_LETTERS[usize::from(pc.segment)]).to_string(),
            });
            households.push(h);
        }
        Fleet {
            cfg,
            devices,
            households,
            postcodes,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.cfg
    }

    /// The devices, in serial order (`WM-00000001`, ...).
    pub fn devices(&self) -> &[DeviceInfo] {
        &self.devices
    }

    /// The postcode table: (postcode district, region, segment). Every device's postcode is in
    /// it; a postcode has exactly one region and one segment. The table is reference data,
    /// the same whatever the configuration.
    pub fn postcodes(&self) -> Vec<PostcodeEntry> {
        self.postcodes
            .iter()
            .map(|p| PostcodeEntry {
                postcode: p.code.clone(),
                region: REGIONS[usize::from(p.region)].name.to_string(),
                segment: char::from(SEGMENT_LETTERS[usize::from(p.segment)]).to_string(),
            })
            .collect()
    }

    /// The fault planted in a device (`Fault::None` for healthy ones and out-of-range
    /// indexes).
    pub fn fault(&self, device_index: usize) -> Fault {
        self.households
            .get(device_index)
            .map_or(Fault::None, |h| h.fault)
    }

    /// The batches an ingestion service would receive, in delivery order, each of one
    /// stream and at most `batch_rows` rows (at least 1), with duplicates, late and
    /// out-of-order rows as configured. Lazy: memory stays bounded by about one simulated day.
    pub fn batches(&self, batch_rows: usize) -> Batches<'_> {
        let batch_rows = batch_rows.max(1);
        Batches {
            fleet: self,
            batch_rows,
            day: 0,
            heap: BinaryHeap::new(),
            due: Vec::new(),
            frontier: i64::MIN,
            seq: 0,
            cycles: CycleBuilder::new(batch_rows),
            samples: SampleBuilder::new(batch_rows),
            ready: VecDeque::new(),
            scratch: Vec::new(),
            done: false,
        }
    }

    /// The number of distinct rows (by device and timestamp) of `cycles` and of `samples`
    /// over all batches: what a database holds after ingesting them all. Recounts the washes
    /// without building rows, samples or deliveries.
    pub fn expected_unique_rows(&self) -> (u64, u64) {
        let mut scratch = Vec::new();
        let (mut cycles, mut samples) = (0u64, 0u64);
        for day in 0..self.cfg.days {
            let di = DayInfo::new(&self.cfg, day);
            for (dev, h) in self.households.iter().enumerate() {
                scratch.clear();
                model::device_day(&self.cfg, h, dev, &di, &mut scratch);
                cycles += scratch.len() as u64;
                samples += scratch.iter().map(CycleRow::sample_rows).sum::<u64>();
            }
        }
        (cycles, samples)
    }

    /// All washes of one device in the period, in time order (no delivery quirks).
    #[cfg(test)]
    fn device_cycles(&self, dev: usize) -> Vec<CycleRow> {
        let mut out = Vec::new();
        if let Some(h) = self.households.get(dev) {
            for day in 0..self.cfg.days {
                model::device_day(&self.cfg, h, dev, &DayInfo::new(&self.cfg, day), &mut out);
            }
        }
        out
    }
}

/// One message in flight: a `cycles` row, or a run of samples of one wash.
#[derive(Debug, Clone)]
struct Msg {
    deliver: i64,
    seq: u64,
    row: CycleRow,
    /// `None` for the cycle row, else the sample index range.
    samples: Option<(u32, u32)>,
}

impl PartialEq for Msg {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Msg {}
impl PartialOrd for Msg {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Msg {
    /// Reversed, so that the max-heap pops the earliest delivery first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .deliver
            .cmp(&self.deliver)
            .then(other.seq.cmp(&self.seq))
    }
}

/// The iterator of [`Fleet::batches`].
#[derive(Debug)]
pub struct Batches<'a> {
    fleet: &'a Fleet,
    batch_rows: usize,
    day: u32,
    /// Messages due after the current day.
    heap: BinaryHeap<Msg>,
    /// Messages due within the current day (sorted before delivery: cheaper than the heap).
    due: Vec<Msg>,
    /// End of the current day: messages due before it go to `due`.
    frontier: i64,
    seq: u64,
    cycles: CycleBuilder,
    samples: SampleBuilder,
    ready: VecDeque<Batch>,
    scratch: Vec<CycleRow>,
    done: bool,
}

impl Batches<'_> {
    fn push(&mut self, deliver: i64, row: CycleRow, samples: Option<(u32, u32)>, rng: &mut Rng) {
        let cfg = &self.fleet.cfg;
        let mut deliver = deliver;
        if rng.chance(cfg.late_rate) {
            deliver += (rng.log_uniform(1.0, 72.0) * HOUR_MS) as i64;
        }
        self.enqueue(deliver, row, samples);
        if rng.chance(cfg.duplicate_rate) {
            let again = deliver + (rng.log_uniform(1.0, 86_400.0) * 1000.0) as i64;
            self.enqueue(again, row, samples);
        }
    }

    fn enqueue(&mut self, deliver: i64, row: CycleRow, samples: Option<(u32, u32)>) {
        self.seq += 1;
        let msg = Msg {
            deliver,
            seq: self.seq,
            row,
            samples,
        };
        if deliver < self.frontier {
            self.due.push(msg);
        } else {
            self.heap.push(msg);
        }
    }

    fn simulate_day(&mut self) {
        let fleet = self.fleet;
        let di = DayInfo::new(&fleet.cfg, self.day);
        self.frontier = di.start_ms + DAY_MS;
        let mut scratch = std::mem::take(&mut self.scratch);
        for (dev, h) in fleet.households.iter().enumerate() {
            scratch.clear();
            model::device_day(&fleet.cfg, h, dev, &di, &mut scratch);
            if scratch.is_empty() {
                continue;
            }
            let mut rng = Rng::new(rng::key(
                fleet.cfg.seed,
                &[dev as u64, u64::from(self.day), tag::DELIVERY],
            ));
            for row in &scratch {
                let end = row.ts_ms + i64::from(row.duration_s) * 1000;
                let deliver = end + (rng.range(1.0, 30.0) * 1000.0) as i64;
                self.push(deliver, *row, None, &mut rng);
                let n = (row.sample_rows()).min(u64::from(u32::MAX)) as u32;
                if n == 0 {
                    continue;
                }
                // own stream, so that `cycles` deliveries do not depend on `samples`
                let mut rng = Rng::new(rng::key(
                    fleet.cfg.seed,
                    &[dev as u64, row.ts_ms as u64, tag::SAMPLE_DELIVERY],
                ));
                let mut from = 0;
                let latency = (rng.range(1.0, 10.0) * 1000.0) as i64;
                while from < n {
                    let to = (from + SAMPLE_CHUNK).min(n);
                    let deliver = row.ts_ms + i64::from(to) * 500 + latency;
                    self.push(deliver, *row, Some((from, to)), &mut rng);
                    from = to;
                }
            }
        }
        self.scratch = scratch;
        self.release(di.start_ms + DAY_MS);
        self.flush();
        self.day += 1;
    }

    /// Delivers every message due before `frontier`.
    fn release(&mut self, frontier: i64) {
        while self.heap.peek().is_some_and(|m| m.deliver < frontier) {
            let Some(msg) = self.heap.pop() else { break };
            self.due.push(msg);
        }
        let mut due = std::mem::take(&mut self.due);
        due.sort_unstable_by_key(|m| (m.deliver, m.seq));
        for msg in due.drain(..) {
            let serial = &self.fleet.devices[msg.row.dev as usize].serial;
            match msg.samples {
                None => {
                    self.cycles.push(&msg.row, serial);
                    if self.cycles.len() >= self.batch_rows {
                        self.ready.push_back(self.cycles.take());
                    }
                }
                Some((from, to)) => {
                    let layout = Layout::of(&msg.row, f64::from(msg.row.water_dl) / 10.0);
                    let noise = rng::key(
                        self.fleet.cfg.seed,
                        &[u64::from(msg.row.dev), msg.row.ts_ms as u64, tag::NOISE],
                    );
                    for i in from..to {
                        let s = model::sample(&msg.row, &layout, noise, i);
                        self.samples
                            .push(msg.row.ts_ms + i64::from(i) * 500, serial, &s);
                        if self.samples.len() >= self.batch_rows {
                            self.ready.push_back(self.samples.take());
                        }
                    }
                }
            }
        }
        self.due = due;
    }

    fn flush(&mut self) {
        if self.cycles.len() > 0 {
            self.ready.push_back(self.cycles.take());
        }
        if self.samples.len() > 0 {
            self.ready.push_back(self.samples.take());
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                return Some(b);
            }
            if self.done {
                return None;
            }
            if self.day < self.fleet.cfg.days {
                self.simulate_day();
            } else {
                self.release(i64::MAX);
                self.flush();
                self.done = true;
            }
        }
    }
}

/// Column vectors of a `cycles` batch being filled.
#[derive(Debug, Default)]
struct CycleBuilder {
    cap: usize,
    ts: Vec<i64>,
    device: Vec<String>,
    program: Vec<String>,
    temp: Vec<i64>,
    spin: Vec<i64>,
    load: Vec<f64>,
    duration: Vec<i64>,
    energy: Vec<i64>,
    water: Vec<f64>,
    fill: Vec<i64>,
    vibration: Vec<f64>,
    detergent: Vec<i64>,
    error: Vec<String>,
}

impl CycleBuilder {
    fn new(batch_rows: usize) -> Self {
        let mut b = CycleBuilder {
            cap: batch_rows.min(1 << 16),
            ..CycleBuilder::default()
        };
        b.reserve();
        b
    }

    fn reserve(&mut self) {
        let c = self.cap;
        self.ts.reserve(c);
        self.device.reserve(c);
        self.program.reserve(c);
        self.temp.reserve(c);
        self.spin.reserve(c);
        self.load.reserve(c);
        self.duration.reserve(c);
        self.energy.reserve(c);
        self.water.reserve(c);
        self.fill.reserve(c);
        self.vibration.reserve(c);
        self.detergent.reserve(c);
        self.error.reserve(c);
    }

    fn len(&self) -> usize {
        self.ts.len()
    }

    fn push(&mut self, r: &CycleRow, serial: &str) {
        self.ts.push(r.ts_ms);
        self.device.push(serial.to_string());
        self.program
            .push(PROGRAMS[usize::from(r.program)].to_string());
        self.temp.push(i64::from(r.temp_c));
        self.spin.push(i64::from(r.spin));
        self.load.push(f64::from(r.load_dkg) / 10.0);
        self.duration.push(i64::from(r.duration_s));
        self.energy.push(i64::from(r.energy_wh));
        self.water.push(f64::from(r.water_dl) / 10.0);
        self.fill.push(i64::from(r.fill_s));
        self.vibration.push(f64::from(r.vib_cg) / 100.0);
        self.detergent.push(i64::from(r.detergent_ml));
        self.error
            .push(ERROR_CODES[usize::from(r.error)].to_string());
    }

    fn take(&mut self) -> Batch {
        use std::mem::take as t;
        let b = Batch {
            stream: "cycles".into(),
            ts: t(&mut self.ts),
            device: t(&mut self.device),
            columns: vec![
                ("program".into(), Values::Text(t(&mut self.program))),
                ("temp_setting_c".into(), Values::Int(t(&mut self.temp))),
                ("spin_setting_rpm".into(), Values::Int(t(&mut self.spin))),
                ("load_kg".into(), Values::Float(t(&mut self.load))),
                ("duration_s".into(), Values::Int(t(&mut self.duration))),
                ("energy_wh".into(), Values::Int(t(&mut self.energy))),
                ("water_l".into(), Values::Float(t(&mut self.water))),
                ("fill_time_s".into(), Values::Int(t(&mut self.fill))),
                (
                    "max_vibration_g".into(),
                    Values::Float(t(&mut self.vibration)),
                ),
                ("detergent_ml".into(), Values::Int(t(&mut self.detergent))),
                ("error_code".into(), Values::Text(t(&mut self.error))),
            ],
        };
        self.reserve();
        b
    }
}

/// Column vectors of a `samples` batch being filled.
#[derive(Debug, Default)]
struct SampleBuilder {
    cap: usize,
    ts: Vec<i64>,
    device: Vec<String>,
    phase: Vec<String>,
    rpm: Vec<i64>,
    temp: Vec<f64>,
    power: Vec<i64>,
    vibration: Vec<f64>,
}

impl SampleBuilder {
    fn new(batch_rows: usize) -> Self {
        SampleBuilder {
            cap: batch_rows.min(1 << 16),
            ..SampleBuilder::default()
        }
    }

    fn len(&self) -> usize {
        self.ts.len()
    }

    fn push(&mut self, ts: i64, serial: &str, s: &model::Sample) {
        if self.ts.capacity() == 0 {
            let c = self.cap;
            self.ts.reserve(c);
            self.device.reserve(c);
            self.phase.reserve(c);
            self.rpm.reserve(c);
            self.temp.reserve(c);
            self.power.reserve(c);
            self.vibration.reserve(c);
        }
        self.ts.push(ts);
        self.device.push(serial.to_string());
        self.phase.push(PHASES[usize::from(s.phase)].to_string());
        self.rpm.push(s.rpm);
        self.temp.push(s.temp);
        self.power.push(s.power);
        self.vibration.push(s.vib);
    }

    fn take(&mut self) -> Batch {
        use std::mem::take as t;
        Batch {
            stream: "samples".into(),
            ts: t(&mut self.ts),
            device: t(&mut self.device),
            columns: vec![
                ("phase".into(), Values::Text(t(&mut self.phase))),
                ("drum_rpm".into(), Values::Int(t(&mut self.rpm))),
                ("water_temp_c".into(), Values::Float(t(&mut self.temp))),
                ("power_w".into(), Values::Int(t(&mut self.power))),
                ("vibration_g".into(), Values::Float(t(&mut self.vibration))),
            ],
        }
    }
}
