//! UTC timestamps with nanosecond resolution.
//!
//! A [`Timestamp`] is nanoseconds since the Unix epoch (UTC) in an `i64`, which
//! covers the years 1678–2262. In JSON it is an integer. Conversions never read
//! a clock; [`Timestamp::now`] is the only place that does, and callers pass its
//! value down (a connector takes `ts_received` at socket read and hands it in).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

/// Why a text is not an RFC 3339 UTC timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp (e.g. 2024-05-01T13:45:00.123456789Z): {0:?}")]
pub struct TimestampError(pub String);

impl Timestamp {
    /// The epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(ns: i64) -> Self {
        Timestamp(ns)
    }
    /// From microseconds since the epoch (saturating).
    pub const fn from_micros(us: i64) -> Self {
        Timestamp(us.saturating_mul(1_000))
    }
    /// From milliseconds since the epoch (saturating).
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms.saturating_mul(1_000_000))
    }
    /// From seconds since the epoch (saturating).
    pub const fn from_secs(s: i64) -> Self {
        Timestamp(s.saturating_mul(1_000_000_000))
    }
    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> i64 {
        self.0
    }
    /// Milliseconds since the epoch (floor).
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// The system clock, now. The one place mdhub reads wall time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    /// Signed nanoseconds from `earlier` to `self`.
    pub fn nanos_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Add nanoseconds (saturating).
    pub fn add_nanos(self, ns: i64) -> Self {
        Timestamp(self.0.saturating_add(ns))
    }

    /// The UTC calendar date as `YYYY-MM-DD` (the lake's partition key).
    pub fn date_string(self) -> String {
        let (y, m, d) = civil_from_days(self.0.div_euclid(NANOS_PER_DAY));
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Parse `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; a fraction of up to
    /// nine digits is kept exactly. A bare date (`YYYY-MM-DD`) is midnight UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Self, TimestampError> {
        parse_rfc3339(text.trim()).ok_or_else(|| TimestampError(text.chars().take(64).collect()))
    }
}

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

// Howard Hinnant's days_from_civil / civil_from_days.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn num(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
}

fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if b.len() == 10 {
        return days.checked_mul(NANOS_PER_DAY).map(Timestamp);
    }
    if b.len() < 20 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, se) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                frac = frac * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            frac *= 10;
        }
    }
    let offset_s = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), hh1, hh2, b':', mm1, mm2] => {
            let v = num(&[*hh1, *hh2])? * 3600 + num(&[*mm1, *mm2])? * 60;
            if *sign == b'+' { v } else { -v }
        }
        _ => return None,
    };
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_s;
    secs.checked_mul(1_000_000_000)?
        .checked_add(frac)
        .map(Timestamp)
}

/// RFC 3339 in UTC with all nine fractional digits: `2024-05-01T13:45:00.123456789Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(NANOS_PER_DAY);
        let rem = self.0.rem_euclid(NANOS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let secs = rem / 1_000_000_000;
        let ns = rem % 1_000_000_000;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ns:09}Z",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_nanoseconds() {
        let t = Timestamp::from_nanos(1_714_571_100_123_456_789);
        assert_eq!(t.to_string(), "2024-05-01T13:45:00.123456789Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
        assert_eq!(t.date_string(), "2024-05-01");
        assert_eq!(
            Timestamp::parse_rfc3339("2024-05-01T15:45:00.123456789+02:00").unwrap(),
            t
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2024-05-01").unwrap(),
            Timestamp::from_secs(1_714_521_600)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2024-05-01T13:45:00.5Z")
                .unwrap()
                .as_nanos()
                % 1_000_000_000,
            500_000_000
        );
        assert_eq!(
            Timestamp::EPOCH.to_string(),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            Timestamp::from_nanos(-1).to_string(),
            "1969-12-31T23:59:59.999999999Z"
        );
        for bad in [
            "",
            "2024-13-01",
            "2024-05-01T25:00:00Z",
            "2024-05-01T13:45:00",
            "yesterday",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
