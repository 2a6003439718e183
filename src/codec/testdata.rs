//! Synthetic washing-machine telemetry for the codec probe and benchmarks: deterministic (a
//! fixed-seed xorshift), shaped like real columns, stored as hearth stores them (scaled i64).

/// A tiny deterministic PRNG (xorshift64*), so no RNG crate is needed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1) as u64;
        lo + (self.next_u64() % span) as i64
    }

    /// Approximately normal noise with standard deviation `sd` (sum of uniforms).
    pub fn noise(&mut self, sd: f64) -> f64 {
        let s: f64 = (0..4)
            .map(|_| (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
            .sum();
        (s - 2.0) * sd * 1.732
    }
}

/// One washing cycle sampled at 2 Hz: every column of the `samples` stream.
pub struct Samples {
    pub ts: Vec<i64>,
    pub phase: Vec<i64>,
    pub drum_rpm: Vec<i64>,
    pub water_temp: Vec<i64>,
    pub power_w: Vec<i64>,
    pub vibration: Vec<i64>,
}

/// Phases of a cycle: (phase code, seconds).
const PHASES: [(i64, i64); 7] = [
    (0, 240),  // fill
    (1, 2400), // heat + wash
    (2, 300),  // drain
    (3, 900),  // rinse
    (4, 240),  // drain
    (5, 720),  // spin
    (6, 200),  // done / cool-down
];

/// Cycles of 2 Hz samples back to back until `n` samples exist.
pub fn samples(n: usize, seed: u64) -> Samples {
    let mut rng = Rng::new(seed);
    let mut s = Samples {
        ts: Vec::with_capacity(n),
        phase: Vec::with_capacity(n),
        drum_rpm: Vec::with_capacity(n),
        water_temp: Vec::with_capacity(n),
        power_w: Vec::with_capacity(n),
        vibration: Vec::with_capacity(n),
    };
    let mut t0 = 1_735_689_600_000i64; // 2025-01-01
    let mut temp = 150.0f64; // 15.0 °C
    let mut rpm = 0.0f64;
    while s.ts.len() < n {
        let mut k = 0i64;
        for (phase, secs) in PHASES {
            for i in 0..secs * 2 {
                if s.ts.len() == n {
                    return s;
                }
                // 500 ms nominal; one sample in twenty a few ms late.
                let jitter = if rng.range(0, 19) == 0 {
                    rng.range(1, 4)
                } else {
                    0
                };
                s.ts.push(t0 + 500 * k + jitter);
                k += 1;
                s.phase.push(phase);
                // Drum: wash tumbles 12 s at ~50 rpm, rests 3 s; spin ramps to 1200.
                let target = match phase {
                    1 | 3 if (i / 2) % 15 < 12 => 50.0,
                    5 => (f64::from(i as i32) * 2.0).min(1200.0),
                    _ => 0.0,
                };
                rpm += (target - rpm) * 0.3;
                let drum = if target > 0.0 {
                    rpm + rng.noise(1.0)
                } else {
                    rpm
                };
                s.drum_rpm.push(drum.round().max(0.0) as i64);
                // Water: heats to 40.0 °C during the wash, cools in the rinse.
                let heating = phase == 1 && temp < 400.0;
                match phase {
                    1 if heating => temp += 0.2,
                    3 => temp += (250.0 - temp) * 0.002,
                    _ => temp += (200.0 - temp) * 0.0005,
                }
                s.water_temp.push((temp + rng.noise(0.4)).round() as i64);
                let power = match phase {
                    1 if heating => 2000.0 + rng.noise(40.0),
                    1 | 3 => 150.0 + rng.noise(30.0),
                    5 => 100.0 + rpm * 0.4 + rng.noise(60.0),
                    0 | 2 | 4 => 30.0 + rng.noise(5.0),
                    _ => 3.0 + rng.noise(1.0),
                };
                s.power_w.push(power.round().max(0.0) as i64);
                let vib = if phase == 5 {
                    20.0 + rpm * 0.08 + rng.noise(15.0)
                } else if rpm > 1.0 {
                    8.0 + rng.noise(3.0)
                } else {
                    1.0 + rng.noise(0.5)
                };
                s.vibration.push(vib.round().max(0.0) as i64);
            }
        }
        // Next cycle a few hours later, at a whole second.
        t0 += 500 * k + 3_600_000 * rng.range(2, 30) + 1000 * rng.range(0, 3599);
        temp = 150.0;
    }
    s
}

/// The `cycles` stream of one device: one row per cycle.
pub struct Cycles {
    pub start_ts: Vec<i64>,
    pub load_kg: Vec<i64>,
    pub energy_wh: Vec<i64>,
    pub fill_time_s: Vec<i64>,
}

/// `n` cycles, 1 to 3 days apart, starts in whole seconds.
pub fn cycles(n: usize, seed: u64) -> Cycles {
    let mut rng = Rng::new(seed);
    let mut c = Cycles {
        start_ts: Vec::with_capacity(n),
        load_kg: Vec::with_capacity(n),
        energy_wh: Vec::with_capacity(n),
        fill_time_s: Vec::with_capacity(n),
    };
    let mut t = 1_735_689_600_000i64;
    for _ in 0..n {
        t += 1000 * rng.range(86_400, 3 * 86_400);
        c.start_ts.push(t);
        c.load_kg.push(rng.range(20, 80));
        c.energy_wh.push(rng.range(300, 2000));
        c.fill_time_s.push(rng.range(40, 90));
    }
    c
}
