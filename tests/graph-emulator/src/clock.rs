//! Time as Microsoft writes it: Graph's `DateTimeOffset` properties
//! (`2026-11-30T10:00:00Z`, whole seconds), the `date` of an error's `innerError`
//! (`2026-11-30T10:00:00`, no zone), Entra's token-error `timestamp` (`2026-11-30 10:00:00Z`),
//! and Active Directory's FILETIME (100 ns intervals since 1601-01-01 UTC).
//!
//! Everything else in the crate keeps `SystemTime`; only this module formats or parses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds between 1601-01-01 and 1970-01-01, the FILETIME and Unix epochs.
const FILETIME_UNIX_OFFSET_SECONDS: u64 = 11_644_473_600;

fn utc(at: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(at)
}

/// Graph's `DateTimeOffset` as users' properties carry it: `2026-11-30T10:00:00Z`.
pub(crate) fn graph_datetime(at: SystemTime) -> String {
    let t = utc(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The `date` of an error body's `innerError`: `2026-11-30T10:00:00`.
pub(crate) fn inner_error_date(at: SystemTime) -> String {
    let mut text = graph_datetime(at);
    text.pop();
    text
}

/// Entra's token-error `timestamp` (and the description's "Timestamp:" line).
pub(crate) fn token_error_timestamp(at: SystemTime) -> String {
    graph_datetime(at).replacen('T', " ", 1)
}

/// Parses a Graph `DateTimeOffset` (`2026-11-30T10:00:00Z`, or with a fraction or an offset).
pub fn parse_graph_datetime(text: &str) -> Option<SystemTime> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    Some(SystemTime::from(parsed))
}

/// A FILETIME (as AD's `pwdLastSet` holds it) as a `SystemTime`; `None` for 0 ("must change")
/// and other values before 1970.
pub(crate) fn from_filetime(filetime: i64) -> Option<SystemTime> {
    let ticks = u64::try_from(filetime).ok()?;
    let unix_seconds = (ticks / 10_000_000).checked_sub(FILETIME_UNIX_OFFSET_SECONDS)?;
    let nanos = (ticks % 10_000_000) * 100;
    Some(UNIX_EPOCH + Duration::from_secs(unix_seconds) + Duration::from_nanos(nanos))
}

/// A `SystemTime` as a FILETIME (0 for times before 1970, which never happen here).
pub(crate) fn to_filetime(at: SystemTime) -> i64 {
    let since_unix = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let ticks = (since_unix.as_secs() + FILETIME_UNIX_OFFSET_SECONDS) * 10_000_000
        + u64::from(since_unix.subsec_nanos()) / 100;
    i64::try_from(ticks).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_graph_and_entra() {
        let at = UNIX_EPOCH + Duration::from_millis(1_796_032_800_250); // 2026-11-30T10:00:00.25Z
        assert_eq!(graph_datetime(at), "2026-11-30T10:00:00Z");
        assert_eq!(inner_error_date(at), "2026-11-30T10:00:00");
        assert_eq!(token_error_timestamp(at), "2026-11-30 10:00:00Z");
        assert_eq!(
            parse_graph_datetime("2026-11-30T10:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1_796_032_800))
        );
        assert_eq!(parse_graph_datetime("yesterday"), None);
    }

    #[test]
    fn filetime_round_trips() {
        // 2026-11-30T10:00:00Z as AD stores it.
        let filetime = (1_796_032_800 + 11_644_473_600) * 10_000_000;
        let at = from_filetime(filetime).expect("after 1970");
        assert_eq!(graph_datetime(at), "2026-11-30T10:00:00Z");
        assert_eq!(to_filetime(at), filetime);
        assert_eq!(from_filetime(0), None);
    }
}
