//! LDAP GeneralizedTime (RFC 4517 3.3.13), as ppolicy writes `pwdChangedTime`,
//! `pwdAccountLockedTime` and `pwdFailureTime`: `YYYYMMDDHHMMSS[.fraction]Z` (slapd always
//! writes UTC; an explicit `+hhmm`/`-hhmm` offset is accepted too). Minutes and seconds may be
//! left out, as the syntax allows.

/// The value ppolicy writes in `pwdAccountLockedTime` for a lock that only an administrator
/// can clear ("000001010000Z").
pub const PERMANENT_LOCK: &str = "000001010000Z";

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn number(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let digits = text.get(range)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Seconds since 1970 (UTC) of a GeneralizedTime; none when it is not one.
pub fn parse(text: &str) -> Option<i64> {
    let text = text.trim();
    // The zone: Z, or +hhmm / -hhmm.
    let (body, offset) = if let Some(body) = text.strip_suffix('Z') {
        (body, 0)
    } else {
        let at = text.rfind(['+', '-'])?;
        let zone = &text[at..];
        if zone.len() != 5 {
            return None;
        }
        let minutes = number(zone, 1..3)? * 60 + number(zone, 3..5)?;
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        (&text[..at], sign * minutes * 60)
    };
    // The fraction (of the last unit given) is dropped: whole seconds are enough here.
    let body = body.split(['.', ',']).next()?;
    if !matches!(body.len(), 10 | 12 | 14) {
        return None;
    }
    let year = number(body, 0..4)?;
    let month = number(body, 4..6)?;
    let day = number(body, 6..8)?;
    let hour = number(body, 8..10)?;
    let minute = if body.len() >= 12 {
        number(body, 10..12)?
    } else {
        0
    };
    let second = if body.len() == 14 {
        number(body, 12..14)?
    } else {
        0
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_slapd_writes() {
        assert_eq!(parse("19700101000000Z"), Some(0));
        // pwdChangedTime seen on the test slapd.
        assert_eq!(parse("20261130103106Z"), Some(1_796_034_666));
        // pwdFailureTime carries a fraction.
        assert_eq!(parse("20261130103106.096917Z"), Some(1_796_034_666));
        assert_eq!(parse("20000229235960Z"), Some(951_868_800));
    }

    #[test]
    fn offsets_and_short_forms() {
        assert_eq!(parse("20261130113106+0100"), Some(1_796_034_666));
        assert_eq!(parse("20261130093106-0100"), Some(1_796_034_666));
        assert_eq!(parse("2026113010Z"), Some(1_796_032_800));
        assert_eq!(parse("202611301031Z"), Some(1_796_034_660));
    }

    #[test]
    fn garbage_is_none() {
        for garbage in [
            "",
            "Z",
            "2026",
            "20261330103106Z",
            "20261130253106Z",
            "2026113010310Z",
            "20261130103106",
            "20261130103106+01",
            "2026-11-30T10:31:06Z",
            "２０２６1130103106Z",
        ] {
            assert_eq!(parse(garbage), None, "{garbage:?}");
        }
        // The permanent lock is a valid time, far in the past.
        assert!(parse(PERMANENT_LOCK).is_some_and(|t| t < 0));
    }
}
