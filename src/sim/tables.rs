//! Reference tables of the simulated fleet: UK regions and postcode areas, socio-economic
//! segments, machine models, and the physics of each wash program.
//!
//! The numbers are plausible rather than measured: shares of population by region follow the
//! UK census roughly, program and temperature shares follow published surveys of laundry habits
//! loosely, and the program physics (durations, water, energy) are those of a current A-rated
//! front loader.

/// A UK region.
pub(crate) struct Region {
    pub name: &'static str,
    /// Share of households (millions, relative).
    pub weight: f64,
    pub lat: f64,
    pub lon: f64,
    /// Half-spread of district centres around the centroid, degrees.
    pub spread: f64,
    /// Postcode areas and their number of districts.
    pub areas: &'static [(&'static str, u8)],
    /// Added to the household's log-preference for 60 and 90 C.
    pub hot: f64,
    /// Multiplier of the eco_40_60 share.
    pub eco: f64,
    /// Water hardness: detergent dose factor.
    pub hardness: f64,
    /// Multipliers of segment shares, by segment letter.
    pub tilt: &'static [(u8, f64)],
}

pub(crate) const REGIONS: &[Region] = &[
    Region {
        name: "London",
        weight: 8.8,
        lat: 51.51,
        lon: -0.12,
        spread: 0.14,
        areas: &[
            ("E", 18),
            ("EC", 4),
            ("N", 22),
            ("NW", 11),
            ("SE", 28),
            ("SW", 20),
            ("W", 14),
            ("WC", 2),
        ],
        hot: -0.15,
        eco: 1.0,
        hardness: 1.2,
        tilt: &[
            (b'A', 5.0),
            (b'O', 3.0),
            (b'N', 2.5),
            (b'J', 1.5),
            (b'C', 0.05),
            (b'D', 0.05),
            (b'M', 0.5),
            (b'E', 0.6),
        ],
    },
    Region {
        name: "South East",
        weight: 9.3,
        lat: 51.2,
        lon: -0.7,
        spread: 0.6,
        areas: &[
            ("BN", 12),
            ("CT", 10),
            ("GU", 14),
            ("HP", 10),
            ("ME", 10),
            ("MK", 12),
            ("OX", 12),
            ("PO", 12),
            ("RG", 14),
            ("RH", 12),
            ("SL", 8),
            ("SO", 14),
            ("TN", 12),
        ],
        hot: 0.0,
        eco: 1.15,
        hardness: 1.15,
        tilt: &[(b'B', 1.6), (b'G', 1.3), (b'F', 1.2), (b'K', 0.7)],
    },
    Region {
        name: "East of England",
        weight: 6.3,
        lat: 52.2,
        lon: 0.5,
        spread: 0.5,
        areas: &[
            ("AL", 8),
            ("CB", 10),
            ("CM", 14),
            ("CO", 10),
            ("IP", 14),
            ("LU", 7),
            ("NR", 14),
            ("PE", 16),
            ("SG", 12),
            ("SS", 10),
        ],
        hot: 0.0,
        eco: 1.1,
        hardness: 1.2,
        tilt: &[
            (b'C', 2.0),
            (b'D', 1.5),
            (b'A', 0.3),
            (b'O', 0.5),
            (b'N', 0.4),
        ],
    },
    Region {
        name: "South West",
        weight: 5.7,
        lat: 50.9,
        lon: -3.5,
        spread: 0.8,
        areas: &[
            ("BA", 12),
            ("BH", 14),
            ("BS", 16),
            ("DT", 10),
            ("EX", 14),
            ("GL", 12),
            ("PL", 12),
            ("SN", 12),
            ("SP", 8),
            ("TA", 12),
            ("TQ", 10),
            ("TR", 12),
        ],
        hot: 0.05,
        eco: 1.1,
        hardness: 1.05,
        tilt: &[
            (b'C', 2.0),
            (b'D', 2.0),
            (b'E', 1.3),
            (b'A', 0.3),
            (b'O', 0.5),
            (b'N', 0.3),
        ],
    },
    Region {
        name: "West Midlands",
        weight: 6.0,
        lat: 52.5,
        lon: -2.2,
        spread: 0.5,
        areas: &[
            ("B", 40),
            ("CV", 14),
            ("DY", 12),
            ("HR", 8),
            ("ST", 14),
            ("TF", 10),
            ("WR", 14),
            ("WS", 14),
            ("WV", 14),
        ],
        hot: 0.05,
        eco: 0.95,
        hardness: 1.05,
        tilt: &[(b'H', 1.3), (b'I', 1.2), (b'N', 1.3), (b'A', 0.5)],
    },
    Region {
        name: "East Midlands",
        weight: 4.9,
        lat: 52.9,
        lon: -0.9,
        spread: 0.5,
        areas: &[("DE", 20), ("LE", 16), ("LN", 12), ("NG", 22), ("NN", 16)],
        hot: 0.05,
        eco: 1.0,
        hardness: 1.05,
        tilt: &[(b'H', 1.3), (b'I', 1.2), (b'D', 1.3), (b'A', 0.4)],
    },
    Region {
        name: "Yorkshire and the Humber",
        weight: 5.5,
        lat: 53.85,
        lon: -1.3,
        spread: 0.5,
        areas: &[
            ("BD", 20),
            ("DN", 22),
            ("HD", 9),
            ("HG", 5),
            ("HU", 17),
            ("HX", 7),
            ("LS", 29),
            ("S", 40),
            ("WF", 17),
            ("YO", 26),
        ],
        hot: 0.1,
        eco: 0.95,
        hardness: 1.0,
        tilt: &[(b'K', 1.5), (b'M', 1.5), (b'L', 1.3), (b'A', 0.5)],
    },
    Region {
        name: "North West",
        weight: 7.4,
        lat: 53.7,
        lon: -2.6,
        spread: 0.5,
        areas: &[
            ("BB", 12),
            ("BL", 9),
            ("CA", 20),
            ("CH", 8),
            ("CW", 12),
            ("FY", 8),
            ("L", 40),
            ("LA", 23),
            ("M", 35),
            ("OL", 16),
            ("PR", 26),
            ("SK", 17),
            ("WA", 16),
            ("WN", 8),
        ],
        hot: 0.1,
        eco: 0.95,
        hardness: 0.9,
        tilt: &[(b'K', 1.5), (b'M', 1.5), (b'L', 1.3), (b'A', 0.6)],
    },
    Region {
        name: "North East",
        weight: 2.7,
        lat: 54.9,
        lon: -1.6,
        spread: 0.35,
        areas: &[("DH", 9), ("DL", 17), ("NE", 40), ("SR", 9), ("TS", 29)],
        hot: 0.15,
        eco: 0.9,
        hardness: 0.95,
        tilt: &[
            (b'K', 1.8),
            (b'M', 1.6),
            (b'L', 1.3),
            (b'A', 0.3),
            (b'B', 0.6),
        ],
    },
    Region {
        name: "Wales",
        weight: 3.1,
        lat: 52.3,
        lon: -3.6,
        spread: 0.6,
        areas: &[
            ("CF", 24),
            ("LD", 8),
            ("LL", 20),
            ("NP", 20),
            ("SA", 30),
            ("SY", 12),
        ],
        hot: 0.1,
        eco: 0.95,
        hardness: 0.85,
        tilt: &[
            (b'C', 1.6),
            (b'D', 2.0),
            (b'M', 1.4),
            (b'A', 0.3),
            (b'O', 0.5),
        ],
    },
    Region {
        name: "Scotland",
        weight: 5.5,
        lat: 56.4,
        lon: -3.9,
        spread: 0.9,
        areas: &[
            ("AB", 30),
            ("DD", 11),
            ("DG", 16),
            ("EH", 30),
            ("FK", 20),
            ("G", 40),
            ("IV", 20),
            ("KA", 20),
            ("KY", 16),
            ("ML", 12),
            ("PA", 20),
            ("PH", 20),
            ("TD", 15),
        ],
        hot: 0.15,
        eco: 0.95,
        hardness: 0.8,
        tilt: &[(b'C', 1.4), (b'D', 1.6), (b'K', 1.5), (b'A', 0.5)],
    },
    Region {
        name: "Northern Ireland",
        weight: 1.9,
        lat: 54.6,
        lon: -6.6,
        spread: 0.4,
        areas: &[("BT", 82)],
        hot: 0.25,
        eco: 0.85,
        hardness: 0.85,
        tilt: &[
            (b'C', 1.5),
            (b'D', 2.2),
            (b'A', 0.2),
            (b'O', 0.4),
            (b'N', 0.3),
        ],
    },
];

/// Segment letters in code order.
pub(crate) const SEGMENT_LETTERS: &[u8; 15] = b"ABCDEFGHIJKLMNO";

/// How a socio-economic segment washes.
pub(crate) struct Segment {
    /// Mosaic-style group name (documentation only).
    #[allow(dead_code)]
    pub name: &'static str,
    /// Base share of households (%).
    pub weight: f64,
    /// Shares of light / medium / heavy households.
    pub bands: [f64; 3],
    /// Log-preference for 60 and 90 C.
    pub hot: f64,
    /// Multipliers of program shares: eco, quick, family (cotton, bedding, sportswear),
    /// delicate (wool, delicates).
    pub eco: f64,
    pub quick: f64,
    pub family: f64,
    pub delicate: f64,
    /// Mean load as a fraction of what the program allows.
    pub fill: f64,
    /// Preference for a larger drum (log-weight per kg above 8).
    pub big: f64,
}

#[allow(clippy::too_many_arguments)]
const fn seg(
    name: &'static str,
    weight: f64,
    bands: [f64; 3],
    hot: f64,
    eco: f64,
    quick: f64,
    family: f64,
    delicate: f64,
    fill: f64,
    big: f64,
) -> Segment {
    Segment {
        name,
        weight,
        bands,
        hot,
        eco,
        quick,
        family,
        delicate,
        fill,
        big,
    }
}

pub(crate) const SEGMENTS: [Segment; 15] = [
    seg(
        "City Prosperity",
        4.0,
        [0.45, 0.45, 0.10],
        -0.4,
        1.0,
        1.8,
        0.6,
        1.8,
        0.50,
        -0.2,
    ),
    seg(
        "Prestige Positions",
        7.0,
        [0.28, 0.50, 0.22],
        -0.1,
        1.8,
        0.8,
        1.1,
        1.5,
        0.62,
        0.4,
    ),
    seg(
        "Country Living",
        6.0,
        [0.30, 0.50, 0.20],
        0.1,
        1.6,
        0.7,
        1.1,
        1.3,
        0.65,
        0.3,
    ),
    seg(
        "Rural Reality",
        6.0,
        [0.30, 0.50, 0.20],
        0.4,
        1.0,
        0.7,
        1.1,
        0.8,
        0.70,
        0.2,
    ),
    seg(
        "Senior Security",
        8.0,
        [0.62, 0.33, 0.05],
        0.6,
        0.9,
        0.5,
        0.5,
        1.2,
        0.50,
        -0.4,
    ),
    seg(
        "Suburban Stability",
        6.0,
        [0.30, 0.52, 0.18],
        0.1,
        1.3,
        0.8,
        1.0,
        1.0,
        0.65,
        0.1,
    ),
    seg(
        "Domestic Success",
        8.0,
        [0.12, 0.50, 0.38],
        0.0,
        1.4,
        1.0,
        1.6,
        1.0,
        0.72,
        0.6,
    ),
    seg(
        "Aspiring Homemakers",
        10.0,
        [0.18, 0.52, 0.30],
        0.0,
        1.1,
        1.2,
        1.4,
        0.9,
        0.70,
        0.4,
    ),
    seg(
        "Family Basics",
        8.0,
        [0.15, 0.47, 0.38],
        0.1,
        0.7,
        1.1,
        1.6,
        0.7,
        0.75,
        0.3,
    ),
    seg(
        "Transient Renters",
        6.0,
        [0.50, 0.42, 0.08],
        -0.3,
        0.6,
        1.7,
        0.6,
        0.8,
        0.55,
        -0.6,
    ),
    seg(
        "Municipal Tenants",
        7.0,
        [0.35, 0.45, 0.20],
        0.3,
        0.6,
        1.0,
        1.0,
        0.7,
        0.65,
        -0.2,
    ),
    seg(
        "Vintage Value",
        6.0,
        [0.66, 0.29, 0.05],
        0.7,
        0.7,
        0.5,
        0.4,
        0.9,
        0.50,
        -0.5,
    ),
    seg(
        "Modest Traditions",
        5.0,
        [0.50, 0.42, 0.08],
        0.5,
        0.8,
        0.6,
        0.7,
        0.9,
        0.55,
        -0.2,
    ),
    seg(
        "Urban Cohesion",
        6.0,
        [0.20, 0.50, 0.30],
        0.2,
        0.8,
        1.0,
        1.4,
        0.8,
        0.70,
        0.2,
    ),
    seg(
        "Rental Hubs",
        7.0,
        [0.45, 0.45, 0.10],
        -0.4,
        0.8,
        1.9,
        0.6,
        1.0,
        0.50,
        -0.6,
    ),
];

/// A machine model.
pub(crate) struct Model {
    pub name: &'static str,
    pub capacity_kg: f64,
    /// Highest spin setting (rpm).
    pub max_spin: u16,
    /// Heater power (W).
    pub heater_w: f64,
    /// Vibration factor of the chassis.
    pub vib: f64,
    /// Base share (%).
    pub weight: f64,
}

pub(crate) const MODELS: &[Model] = &[
    Model {
        name: "CompactWash 6",
        capacity_kg: 6.0,
        max_spin: 1200,
        heater_w: 1800.0,
        vib: 1.25,
        weight: 12.0,
    },
    Model {
        name: "AquaLine 7",
        capacity_kg: 7.0,
        max_spin: 1400,
        heater_w: 2000.0,
        vib: 1.1,
        weight: 26.0,
    },
    Model {
        name: "AquaLine 8",
        capacity_kg: 8.0,
        max_spin: 1400,
        heater_w: 2000.0,
        vib: 1.0,
        weight: 30.0,
    },
    Model {
        name: "AquaMax 9",
        capacity_kg: 9.0,
        max_spin: 1600,
        heater_w: 2200.0,
        vib: 0.95,
        weight: 21.0,
    },
    Model {
        name: "AquaMax 10",
        capacity_kg: 10.0,
        max_spin: 1600,
        heater_w: 2200.0,
        vib: 0.9,
        weight: 11.0,
    },
];

/// Firmware versions and the epoch-day from which devices ship with them.
pub(crate) const FIRMWARE: &[(&str, i64)] = &[
    ("1.8.2", 0),
    ("2.1.0", 19_358), // 2023-01-01
    ("2.4.3", 19_723), // 2024-01-01
    ("3.0.1", 20_089), // 2025-01-01
];

/// Program codes (index into `schema::PROGRAMS`).
#[allow(dead_code)]
pub(crate) mod prog {
    pub const COTTON: u8 = 0;
    pub const ECO: u8 = 1;
    pub const SYNTHETICS: u8 = 2;
    pub const MIXED: u8 = 3;
    pub const WOOL: u8 = 4;
    pub const DELICATES: u8 = 5;
    pub const QUICK_15: u8 = 6;
    pub const QUICK_30: u8 = 7;
    pub const BEDDING: u8 = 8;
    pub const SPORTSWEAR: u8 = 9;
    pub const RINSE_SPIN: u8 = 10;
    pub const DRAIN: u8 = 11;
}

/// What a program does.
pub(crate) struct Program {
    /// Base share of cycles (%).
    pub weight: f64,
    /// Temperature settings (C) and their base weights.
    pub temps: &'static [(u8, f64)],
    /// Spin settings: the default first, then the alternatives a household may prefer.
    pub spins: &'static [u16],
    /// Largest load as a fraction of the drum's capacity.
    pub max_frac: f64,
    /// Duration at a full load: minutes at 0 C plus minutes per degree.
    pub minutes: f64,
    pub minutes_per_deg: f64,
    /// Whether duration adapts to the load (auto-load sensing).
    pub load_sensing: bool,
    /// Water: litres plus litres per kg of load.
    pub water_l: f64,
    pub water_per_kg: f64,
    /// Detergent base dose (ml); 0 means none.
    pub detergent_ml: f64,
    /// Relative time to fill to the wash level.
    pub fill: f64,
    /// Drum tumbling: seconds on, seconds off; motor power when on (W).
    pub tumble_on: u32,
    pub tumble_off: u32,
    /// Fraction of the heater's nominal target actually reached (eco programs soak longer at a
    /// lower real temperature).
    pub heat_frac: f64,
}

pub(crate) const PROGRAMS: [Program; 12] = [
    // cotton
    Program {
        weight: 22.0,
        temps: &[(20, 3.0), (30, 15.0), (40, 45.0), (60, 30.0), (90, 7.0)],
        spins: &[1400, 1200, 1600, 1000],
        max_frac: 1.0,
        minutes: 150.0,
        minutes_per_deg: 0.6,
        load_sensing: true,
        water_l: 30.0,
        water_per_kg: 4.0,
        detergent_ml: 40.0,
        fill: 1.05,
        tumble_on: 12,
        tumble_off: 6,
        heat_frac: 1.0,
    },
    // eco_40_60
    Program {
        weight: 18.0,
        temps: &[(40, 70.0), (60, 30.0)],
        spins: &[1400, 1200, 1600, 1000],
        max_frac: 1.0,
        minutes: 200.0,
        minutes_per_deg: 0.4,
        load_sensing: true,
        water_l: 24.0,
        water_per_kg: 3.5,
        detergent_ml: 40.0,
        fill: 1.0,
        tumble_on: 6,
        tumble_off: 12,
        heat_frac: 0.65,
    },
    // synthetics
    Program {
        weight: 10.0,
        temps: &[(20, 5.0), (30, 35.0), (40, 50.0), (60, 10.0)],
        spins: &[1000, 1200, 800],
        max_frac: 0.5,
        minutes: 95.0,
        minutes_per_deg: 0.4,
        load_sensing: true,
        water_l: 30.0,
        water_per_kg: 5.0,
        detergent_ml: 35.0,
        fill: 1.0,
        tumble_on: 12,
        tumble_off: 6,
        heat_frac: 1.0,
    },
    // mixed
    Program {
        weight: 16.0,
        temps: &[(20, 10.0), (30, 40.0), (40, 45.0), (60, 5.0)],
        spins: &[1200, 1000, 1400, 800],
        max_frac: 0.6,
        minutes: 75.0,
        minutes_per_deg: 0.4,
        load_sensing: true,
        water_l: 30.0,
        water_per_kg: 4.0,
        detergent_ml: 35.0,
        fill: 1.0,
        tumble_on: 12,
        tumble_off: 6,
        heat_frac: 1.0,
    },
    // wool
    Program {
        weight: 1.0,
        temps: &[(0, 10.0), (20, 30.0), (30, 60.0)],
        spins: &[800, 600, 400],
        max_frac: 0.25,
        minutes: 40.0,
        minutes_per_deg: 0.3,
        load_sensing: false,
        water_l: 35.0,
        water_per_kg: 3.0,
        detergent_ml: 25.0,
        fill: 1.1,
        tumble_on: 4,
        tumble_off: 11,
        heat_frac: 1.0,
    },
    // delicates
    Program {
        weight: 4.0,
        temps: &[(0, 10.0), (20, 30.0), (30, 60.0)],
        spins: &[600, 400, 800],
        max_frac: 0.3,
        minutes: 45.0,
        minutes_per_deg: 0.3,
        load_sensing: false,
        water_l: 35.0,
        water_per_kg: 3.0,
        detergent_ml: 25.0,
        fill: 1.1,
        tumble_on: 4,
        tumble_off: 11,
        heat_frac: 1.0,
    },
    // quick_15
    Program {
        weight: 6.0,
        temps: &[(0, 10.0), (20, 40.0), (30, 50.0)],
        spins: &[800, 1000, 1200],
        max_frac: 0.3,
        minutes: 15.0,
        minutes_per_deg: 0.0,
        load_sensing: false,
        water_l: 22.0,
        water_per_kg: 3.0,
        detergent_ml: 25.0,
        fill: 0.9,
        tumble_on: 12,
        tumble_off: 3,
        heat_frac: 1.0,
    },
    // quick_30
    Program {
        weight: 10.0,
        temps: &[(20, 20.0), (30, 50.0), (40, 30.0)],
        spins: &[1000, 1200, 800],
        max_frac: 0.45,
        minutes: 30.0,
        minutes_per_deg: 0.0,
        load_sensing: false,
        water_l: 26.0,
        water_per_kg: 3.0,
        detergent_ml: 30.0,
        fill: 0.95,
        tumble_on: 12,
        tumble_off: 4,
        heat_frac: 1.0,
    },
    // bedding
    Program {
        weight: 5.0,
        temps: &[(40, 40.0), (60, 55.0), (90, 5.0)],
        spins: &[1200, 1000, 1400],
        max_frac: 0.75,
        minutes: 110.0,
        minutes_per_deg: 0.5,
        load_sensing: true,
        water_l: 40.0,
        water_per_kg: 6.0,
        detergent_ml: 40.0,
        fill: 1.15,
        tumble_on: 10,
        tumble_off: 8,
        heat_frac: 1.0,
    },
    // sportswear
    Program {
        weight: 5.0,
        temps: &[(20, 20.0), (30, 60.0), (40, 20.0)],
        spins: &[800, 1000, 600],
        max_frac: 0.45,
        minutes: 70.0,
        minutes_per_deg: 0.3,
        load_sensing: true,
        water_l: 30.0,
        water_per_kg: 4.0,
        detergent_ml: 30.0,
        fill: 1.0,
        tumble_on: 10,
        tumble_off: 6,
        heat_frac: 1.0,
    },
    // rinse_spin
    Program {
        weight: 2.0,
        temps: &[(0, 1.0)],
        spins: &[1200, 1000, 800, 1400],
        max_frac: 1.0,
        minutes: 20.0,
        minutes_per_deg: 0.0,
        load_sensing: false,
        water_l: 18.0,
        water_per_kg: 2.0,
        detergent_ml: 0.0,
        fill: 0.9,
        tumble_on: 12,
        tumble_off: 6,
        heat_frac: 1.0,
    },
    // drain
    Program {
        weight: 1.0,
        temps: &[(0, 1.0)],
        spins: &[0],
        max_frac: 1.0,
        minutes: 3.0,
        minutes_per_deg: 0.0,
        load_sensing: false,
        water_l: 0.0,
        water_per_kg: 0.0,
        detergent_ml: 0.0,
        fill: 0.0,
        tumble_on: 0,
        tumble_off: 1,
        heat_frac: 1.0,
    },
];

/// Error codes (index into `schema::ERROR_CODES`).
#[allow(dead_code)]
pub(crate) mod err {
    pub const NONE: u8 = 0;
    pub const FILL: u8 = 1;
    pub const DRAIN: u8 = 2;
    pub const DOOR: u8 = 3;
    pub const UNBALANCE: u8 = 4;
    pub const MOTOR: u8 = 5;
    pub const HEATER: u8 = 6;
}
