//! Active Directory's two time encodings. Points in time (`pwdLastSet`, `lockoutTime`) are
//! FILETIMEs: 100-ns ticks since 1601-01-01 UTC. Durations in policies (`minPwdAge`,
//! `maxPwdAge`, and their PSO counterparts) are negative tick counts: -864000000000 is one day.

use std::time::{SystemTime, UNIX_EPOCH};

const TICKS_PER_SECOND: i64 = 10_000_000;

/// Seconds from 1601-01-01 to 1970-01-01.
const SECONDS_1601_TO_1970: i64 = 11_644_473_600;

/// A FILETIME as unix seconds; none for 0 (AD's "never", or "must change at next logon" in
/// `pwdLastSet`) and for negative values, which AD never stores as a point in time.
pub fn filetime_to_unix(ticks: i64) -> Option<i64> {
    if ticks <= 0 {
        return None;
    }
    Some(ticks / TICKS_PER_SECOND - SECONDS_1601_TO_1970)
}

/// A policy duration as whole seconds, rounded up (a minimum age must not come out shorter
/// than the DC's). 0 stays 0. AD writes these negative; a positive value is read as its
/// magnitude rather than refused, since its meaning is not in doubt.
pub fn interval_seconds(ticks: i64) -> u64 {
    if ticks == i64::MIN {
        return u64::MAX;
    }
    ticks
        .unsigned_abs()
        .div_ceil(TICKS_PER_SECOND.unsigned_abs())
}

/// A maximum password age as seconds; none when passwords never expire, which AD writes as 0
/// or as the most negative 64-bit value (0x8000000000000000).
pub fn max_age_seconds(ticks: i64) -> Option<u64> {
    if ticks == 0 || ticks == i64::MIN {
        return None;
    }
    Some(ticks.unsigned_abs() / TICKS_PER_SECOND.unsigned_abs())
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
    fn filetime_points() {
        assert_eq!(filetime_to_unix(0), None);
        assert_eq!(filetime_to_unix(-1), None);
        // 1970-01-01 itself.
        assert_eq!(filetime_to_unix(116_444_736_000_000_000), Some(0));
        // A pwdLastSet seen on the test DC: 2026-11-30.
        assert_eq!(
            filetime_to_unix(134_404_826_204_088_650),
            Some(1_796_009_020)
        );
        assert_eq!(filetime_to_unix(i64::MAX), Some(910_692_730_085));
    }

    #[test]
    fn durations() {
        assert_eq!(interval_seconds(-864_000_000_000), 86_400);
        assert_eq!(interval_seconds(0), 0);
        assert_eq!(interval_seconds(-1), 1, "rounded up");
        assert_eq!(interval_seconds(864_000_000_000), 86_400);
        assert_eq!(interval_seconds(i64::MIN), u64::MAX);
        assert_eq!(max_age_seconds(-36_288_000_000_000), Some(42 * 86_400));
        assert_eq!(max_age_seconds(0), None);
        assert_eq!(max_age_seconds(i64::MIN), None);
    }
}
