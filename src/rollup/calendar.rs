//! Calendar buckets of UTC time: day, week (from Monday), month, quarter, year.
//!
//! Rollups keep day cells; coarser buckets are merged from days at query time, so a bucket is
//! identified by its first day (days since 1970-01-01). Civil dates use the proleptic
//! Gregorian calendar (Howard Hinnant's `days_from_civil`/`civil_from_days`).

use serde::{Deserialize, Serialize};

use crate::schema::DAY_MS;

/// A time bucket size for fleet answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grain {
    /// One UTC day.
    Day,
    /// Monday to Sunday.
    Week,
    /// Calendar month.
    Month,
    /// Calendar quarter.
    Quarter,
    /// Calendar year.
    Year,
}

impl Grain {
    /// Every grain, finest first.
    pub const ALL: [Grain; 5] = [
        Grain::Day,
        Grain::Week,
        Grain::Month,
        Grain::Quarter,
        Grain::Year,
    ];

    /// Parses `day`, `week`, `month`, `quarter` or `year`.
    pub fn parse(s: &str) -> Option<Grain> {
        match s {
            "day" => Some(Grain::Day),
            "week" => Some(Grain::Week),
            "month" => Some(Grain::Month),
            "quarter" => Some(Grain::Quarter),
            "year" => Some(Grain::Year),
            _ => None,
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Grain::Day => "day",
            Grain::Week => "week",
            Grain::Month => "month",
            Grain::Quarter => "quarter",
            Grain::Year => "year",
        }
    }

    /// The first day of the bucket holding `day`.
    pub fn start(self, day: i64) -> i64 {
        match self {
            Grain::Day => day,
            Grain::Week => week_start(day),
            Grain::Month | Grain::Quarter | Grain::Year => {
                let (y, m, _) = civil_from_days(day);
                let m = match self {
                    Grain::Month => m,
                    Grain::Quarter => (m - 1) / 3 * 3 + 1,
                    _ => 1,
                };
                days_from_civil(y, m, 1)
            }
        }
    }
}

/// The day number (days since 1970-01-01) of a timestamp in ms.
pub fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(DAY_MS)
}

/// The Monday starting the week of `day` (1970-01-01 was a Thursday).
pub fn week_start(day: i64) -> i64 {
    day - (day + 3).rem_euclid(7)
}

/// The week number of `day` (weeks counted from the Monday 1969-12-29).
pub fn week_number(day: i64) -> i64 {
    (day + 3).div_euclid(7)
}

/// Day of week of `day`: 0 = Monday .. 6 = Sunday.
pub fn weekday(day: i64) -> u32 {
    (day + 3).rem_euclid(7) as u32
}

/// Hour of day (UTC) of a timestamp in ms.
pub fn hour_of(ts_ms: i64) -> u32 {
    (ts_ms.rem_euclid(DAY_MS) / 3_600_000) as u32
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month 1..=12, day 1..=31) of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` of a day number.
pub fn format_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A bucket's label: `2025-03-14` (day), `2025-03-10` (week, its Monday), `2025-03`,
/// `2025-Q1`, `2025`.
pub fn bucket_label(grain: Grain, start_day: i64) -> String {
    let (y, m, _) = civil_from_days(start_day);
    match grain {
        Grain::Day | Grain::Week => format_day(start_day),
        Grain::Month => format!("{y:04}-{m:02}"),
        Grain::Quarter => format!("{y:04}-Q{}", (m - 1) / 3 + 1),
        Grain::Year => format!("{y:04}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_and_known_dates() {
        for z in -800_000..800_000 {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(format_day(days_from_civil(2024, 2, 29)), "2024-02-29");
        assert_eq!(day_of(1_735_689_600_000), days_from_civil(2025, 1, 1));
    }

    #[test]
    fn buckets_start_where_the_calendar_says() {
        let d = days_from_civil(2025, 5, 17); // a Saturday
        assert_eq!(weekday(d), 5);
        assert_eq!(Grain::Week.start(d), days_from_civil(2025, 5, 12));
        assert_eq!(Grain::Month.start(d), days_from_civil(2025, 5, 1));
        assert_eq!(Grain::Quarter.start(d), days_from_civil(2025, 4, 1));
        assert_eq!(Grain::Year.start(d), days_from_civil(2025, 1, 1));
        assert_eq!(bucket_label(Grain::Quarter, d), "2025-Q2");
        assert_eq!(Grain::Week.start(-1), -3); // 1969-12-29 was a Monday
        assert_eq!(
            week_start(days_from_civil(2025, 1, 5)),
            days_from_civil(2024, 12, 30)
        );
        assert_eq!(hour_of(-1), 23);
    }
}
