//! Timestamps as the CSV files write them: epoch milliseconds, or RFC 3339 date-times
//! (`2025-03-01T07:30:00Z`, `2025-03-01T08:30:00+01:00`, `2025-03-01T07:30:00.250Z`).
//!
//! No calendar crate: dates become day numbers with the library's calendar
//! (`hearth::calendar`, Howard Hinnant's `days_from_civil`).

pub use hearth::calendar::{civil_from_days, days_from_civil};

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

/// Parses a timestamp cell: an integer is epoch milliseconds, anything else must be an
/// RFC 3339 date-time. The error says what is wrong.
pub fn parse_ts(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty timestamp".into());
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<i64>()
            .map_err(|_| format!("timestamp '{t}' does not fit in 64 bits"));
    }
    parse_rfc3339(t)
        .map_err(|why| format!("timestamp '{t}' is neither epoch milliseconds nor RFC 3339: {why}"))
}

/// Parses an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|-HH:MM]`) into epoch
/// milliseconds. Fractional digits beyond milliseconds are truncated. `t` may also be a
/// space or lower-case `t`, and `z` lower case, as RFC 3339 allows.
pub fn parse_rfc3339(s: &str) -> Result<i64, &'static str> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Result<u32, &'static str> {
        let part = b.get(from..from + len).ok_or("too short")?;
        let mut v = 0u32;
        for &c in part {
            if !c.is_ascii_digit() {
                return Err("expected a digit");
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Ok(v)
    };
    let expect = |at: usize, what: &[u8], msg: &'static str| -> Result<(), &'static str> {
        match b.get(at) {
            Some(c) if what.contains(c) => Ok(()),
            _ => Err(msg),
        }
    };
    let year = i64::from(num(0, 4)?);
    expect(4, b"-", "expected '-' after the year")?;
    let month = num(5, 2)?;
    expect(7, b"-", "expected '-' after the month")?;
    let day = num(8, 2)?;
    expect(10, b"Tt ", "expected 'T' between date and time")?;
    let hour = num(11, 2)?;
    expect(13, b":", "expected ':' after the hour")?;
    let minute = num(14, 2)?;
    expect(16, b":", "expected ':' after the minute")?;
    let second = num(17, 2)?;
    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err("day out of range for the month");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time out of range");
    }
    // A leap second is folded onto the last second of the minute.
    let second = second.min(59);
    let mut at = 19;
    let mut millis = 0u32;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 3 {
                millis = millis * 10 + u32::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return Err("expected digits after '.'");
        }
        for _ in (at - start)..3 {
            millis *= 10;
        }
    }
    let offset_min: i64 = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = num(at + 1, 2)?;
            expect(at + 3, b":", "expected ':' in the UTC offset")?;
            let om = num(at + 4, 2)?;
            if oh > 23 || om > 59 {
                return Err("UTC offset out of range");
            }
            at += 6;
            let m = i64::from(oh * 60 + om);
            if sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return Err("missing UTC offset ('Z' or +HH:MM)"),
    };
    if at != b.len() {
        return Err("trailing characters");
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_min * 60;
    Ok(secs * 1000 + i64::from(millis))
}

/// Formats epoch milliseconds as RFC 3339 in UTC, with milliseconds only when non-zero.
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, sod % 3600 / 60, sod % 60);
    if millis == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{millis:03}Z")
    }
}

/// Parses a `--from`/`--to` value: a date `YYYY-MM-DD` (its midnight, UTC), an RFC 3339
/// date-time, or epoch milliseconds.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let b = t.as_bytes();
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        return parse_rfc3339(&format!("{t}T00:00:00Z"))
            .map_err(|why| format!("'{t}' is not a date YYYY-MM-DD: {why}"));
    }
    parse_ts(t).map_err(|e| format!("{e} (nor a date YYYY-MM-DD)"))
}

/// `YYYY-MM-DD` of epoch milliseconds (UTC).
pub fn format_date(ms: i64) -> String {
    hearth::calendar::format_day(ms.div_euclid(86_400_000))
}

/// The ISO 8601 week label (`2025-W03`) of the week starting on Monday `day`.
pub fn iso_week(monday: i64) -> String {
    // The ISO year is the year of the week's Thursday; week 1 holds the year's first Thursday.
    let thursday = monday + 3;
    let (y, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(y, 1, 1)) / 7 + 1;
    format!("{y:04}-W{week:02}")
}

/// The label of a period bucket: `YYYY-MM-DD`, `YYYY-Www`, `YYYY-MM`, `YYYY-Qn` or `YYYY`.
pub fn period_label(grain: hearth::Grain, start_day: i64) -> String {
    match grain {
        hearth::Grain::Week => iso_week(start_day),
        g => hearth::calendar::bucket_label(g, start_day),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_labels() {
        assert_eq!(parse_instant("2025-03-01"), Ok(1_740_787_200_000));
        assert_eq!(parse_instant("2025-03-01T07:30:00Z"), Ok(1_740_814_200_000));
        assert_eq!(parse_instant("1740787200000"), Ok(1_740_787_200_000));
        assert!(parse_instant("2025-02-30").is_err());
        assert!(parse_instant("March").is_err());
        // 2024-12-30 (a Monday) starts ISO week 1 of 2025; 2021-01-04 week 1 of 2021;
        // 2020-12-28 week 53 of 2020.
        assert_eq!(iso_week(days_from_civil(2024, 12, 30)), "2025-W01");
        assert_eq!(iso_week(days_from_civil(2021, 1, 4)), "2021-W01");
        assert_eq!(iso_week(days_from_civil(2020, 12, 28)), "2020-W53");
        assert_eq!(iso_week(days_from_civil(2025, 3, 10)), "2025-W11");
        assert_eq!(
            period_label(hearth::Grain::Quarter, days_from_civil(2025, 4, 1)),
            "2025-Q2"
        );
    }

    #[test]
    fn known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2025-03-01T07:30:00Z"), Ok(1_740_814_200_000));
        assert_eq!(
            parse_rfc3339("2025-03-01T08:30:00+01:00"),
            Ok(1_740_814_200_000)
        );
        assert_eq!(
            parse_rfc3339("2025-03-01T02:00:00-05:30"),
            Ok(1_740_814_200_000)
        );
        assert_eq!(
            parse_rfc3339("2025-03-01T07:30:00.25Z"),
            Ok(1_740_814_200_250)
        );
        assert_eq!(
            parse_rfc3339("2025-03-01T07:30:00.123456789Z"),
            Ok(1_740_814_200_123)
        );
        assert_eq!(parse_rfc3339("2025-03-01 07:30:00z"), Ok(1_740_814_200_000));
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00Z"), Ok(946_684_800_000));
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59Z"), Ok(1_709_251_199_000));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Ok(-1));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2025-03-01",
            "2025-03-01T07:30:00",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-03-01T24:00:00Z",
            "2025-03-01T07:60:00Z",
            "2025-03-01T07:30:00.Z",
            "2025-03-01T07:30:00+1:00",
            "2025-03-01T07:30:00+01:00x",
            "2025/03/01T07:30:00Z",
            "25-03-01T07:30:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn civil_round_trip() {
        for z in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
            assert!(d >= 1 && d <= days_in_month(y, m));
        }
    }

    #[test]
    fn format_parses_back() {
        for ms in [
            0,
            1,
            999,
            1_740_814_200_000,
            1_740_814_200_250,
            4_102_444_799_999,
            -1,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Ok(ms), "{ms}");
        }
    }

    #[test]
    fn cells_take_both_forms() {
        assert_eq!(parse_ts(" 1740814200000 "), Ok(1_740_814_200_000));
        assert_eq!(parse_ts("2025-03-01T07:30:00Z"), Ok(1_740_814_200_000));
        assert_eq!(parse_ts("-5"), Ok(-5));
        assert!(parse_ts("").is_err());
        assert!(parse_ts("yesterday").unwrap_err().contains("yesterday"));
        assert!(parse_ts("99999999999999999999").is_err());
    }
}
