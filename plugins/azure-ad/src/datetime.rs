//! Graph's points in time (`lastPasswordChangeDateTime`, `onPremisesLastSyncDateTime`) are
//! ISO 8601 / RFC 3339 texts, in UTC with a `Z` (`2024-05-01T10:20:30Z`), sometimes with
//! fractional seconds (`…30.1234567Z`) or an offset. This parses them into unix seconds,
//! without a date crate: the proleptic Gregorian calendar fits in one function.

use std::time::{SystemTime, UNIX_EPOCH};

/// A fixed number of ASCII digits at the start of `text`, and the rest.
fn digits(text: &[u8], count: usize) -> Option<(i64, &[u8])> {
    let (head, rest) = text.split_at_checked(count)?;
    if !head.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = head
        .iter()
        .fold(0i64, |acc, digit| acc * 10 + i64::from(digit - b'0'));
    Some((value, rest))
}

/// `text` without its first byte when that byte is `expected`.
fn byte(text: &[u8], expected: u8) -> Option<&[u8]> {
    text.strip_prefix(&[expected])
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a valid date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12; // March = 0
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// An ISO 8601 date and time as unix seconds (fractions of a second dropped); none when it is
/// not one. Accepted: `YYYY-MM-DD`, then optionally `T` (or `t` or a space) and `hh:mm`,
/// `hh:mm:ss` or `hh:mm:ss.fff…`, then `Z`, `±hh:mm`, `±hhmm`, `±hh` or nothing (UTC, as
/// Graph means it).
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let text = text.trim().as_bytes();
    let (year, rest) = digits(text, 4)?;
    let (month, rest) = digits(byte(rest, b'-')?, 2)?;
    let (day, rest) = digits(byte(rest, b'-')?, 2)?;
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if rest.is_empty() {
        return Some(days * 86_400);
    }
    let rest = match rest.first() {
        Some(b'T' | b't' | b' ') => &rest[1..],
        _ => return None,
    };
    let (hour, rest) = digits(rest, 2)?;
    let (minute, mut rest) = digits(byte(rest, b':')?, 2)?;
    let mut second = 0;
    if let Some(after_colon) = byte(rest, b':') {
        (second, rest) = digits(after_colon, 2)?;
        if let Some(fraction) = byte(rest, b'.').or_else(|| byte(rest, b',')) {
            let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            if count == 0 {
                return None;
            }
            rest = &fraction[count..];
        }
    }
    // 60 is a leap second.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (hours, zone) = digits(zone, 2)?;
            let zone = byte(zone, b':').unwrap_or(zone);
            let (minutes, zone) = match zone {
                [] => (0, zone),
                _ => digits(zone, 2)?,
            };
            if !zone.is_empty() || hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Now, as unix seconds (WASI's wall clock inside the sandbox).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_utc_forms() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso8601("2024-05-01T10:20:30Z"), Some(1_714_558_830));
        assert_eq!(
            parse_iso8601("2024-05-01T10:20:30.1234567Z"),
            Some(1_714_558_830),
            "fractions are dropped"
        );
        assert_eq!(parse_iso8601("2024-05-01T10:20:30.9Z"), Some(1_714_558_830));
        assert_eq!(parse_iso8601(" 2024-05-01t10:20:30z "), Some(1_714_558_830));
        assert_eq!(parse_iso8601("2024-05-01T10:20:30"), Some(1_714_558_830));
        assert_eq!(parse_iso8601("2024-05-01 10:20:30Z"), Some(1_714_558_830));
        assert_eq!(parse_iso8601("2024-05-01T10:20Z"), Some(1_714_558_800));
        assert_eq!(parse_iso8601("2024-05-01"), Some(1_714_521_600));
    }

    #[test]
    fn offsets() {
        let utc = parse_iso8601("2024-05-01T10:20:30Z").unwrap();
        assert_eq!(parse_iso8601("2024-05-01T12:20:30+02:00"), Some(utc));
        assert_eq!(parse_iso8601("2024-05-01T12:20:30.5+0200"), Some(utc));
        assert_eq!(parse_iso8601("2024-05-01T05:20:30-05:00"), Some(utc));
        assert_eq!(parse_iso8601("2024-05-01T15:50:30+05:30"), Some(utc));
        assert_eq!(parse_iso8601("2024-05-01T11:20:30+01"), Some(utc));
        assert_eq!(parse_iso8601("2024-05-01T10:20:30+00:00"), Some(utc));
        assert_eq!(parse_iso8601("2024-05-01T10:20:30-00:00"), Some(utc));
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(parse_iso8601("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_iso8601("1969-12-31T23:59:59Z"), Some(-1));
        assert_eq!(parse_iso8601("1601-01-01T00:00:00Z"), Some(-11_644_473_600));
        assert_eq!(parse_iso8601("9999-12-31T23:59:59Z"), Some(253_402_300_799));
        assert_eq!(parse_iso8601("2016-12-31T23:59:60Z"), Some(1_483_228_800));
        // Days and months that do not exist.
        for text in [
            "1900-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-10T00:00:00Z",
            "2024-01-00T00:00:00Z",
        ] {
            assert_eq!(parse_iso8601(text), None, "{text}");
        }
    }

    #[test]
    fn not_dates() {
        for text in [
            "",
            "null",
            "2024",
            "2024-5-01T10:20:30Z",
            "2024-05-01T10:20:30ZZ",
            "2024-05-01T25:00:00Z",
            "2024-05-01T10:60:00Z",
            "2024-05-01T10:20:61Z",
            "2024-05-01T10:20:30.Z",
            "2024-05-01T10:20:30+2",
            "2024-05-01T10:20:30+02:0",
            "2024-05-01T10:20:30+24:00",
            "2024-05-01X10:20:30Z",
            "2024-05-01T10",
            "２０２４-05-01T10:20:30Z",
            "2024-05-01T10:20:30 Z",
        ] {
            assert_eq!(parse_iso8601(text), None, "{text:?}");
        }
    }
}
