//! Go durations and Docker's timestamps, parsed once for the CLI and the daemon (moby's
//! `api/types/time` and Go's `time.ParseDuration`).
//!
//! Docker takes a point in time as a duration before now (`10m`, `1h30m`, `2.5h`), a Unix
//! time (`1700000000`, `1700000000.5`) or a date (`2023-11-14`, `2023-11-14T22:13:20Z`):
//! `logs --since/--until`, `events --since/--until` and every `until` filter of the prunes
//! and lists take all three.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use berth_api::time::{Timestamp, parse_go_duration, parse_timestamp};
//!
//! assert_eq!(parse_go_duration("1h30m").unwrap(), 5_400_000_000_000);
//! let now = UNIX_EPOCH + Duration::from_secs(10_000);
//! assert_eq!(parse_timestamp("1h30m", now).unwrap(), Timestamp { secs: 4_600, nanos: 0 });
//! assert_eq!(parse_timestamp("1700000000.5", now).unwrap().to_string(), "1700000000.500000000");
//! ```
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A value that is neither a Go duration nor a time Docker accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not a Go duration (Go's own message).
    #[error("time: invalid duration \"{value}\"")]
    InvalidDuration {
        /// The value as given.
        value: String,
    },
    /// Not a duration, a Unix time or a date (the docker CLI's message).
    #[error("failed to parse value as time or duration: \"{value}\"")]
    InvalidTimestamp {
        /// The value as given.
        value: String,
    },
}

/// Go's `time.ParseDuration`: signed nanoseconds from `[-+]?(<number><unit>)+`, where a
/// number may have a fraction (`2.5h`, `.5s`) and a unit is `ns`, `us` (`µs`), `ms`, `s`, `m`
/// or `h`; `0` alone needs no unit. Out of `i64` range is an error, as in Go.
pub fn parse_go_duration(value: &str) -> Result<i64, TimeError> {
    let invalid = || TimeError::InvalidDuration {
        value: value.to_owned(),
    };
    let (negative, mut rest) = match value.as_bytes().first() {
        Some(b'-') => (true, &value[1..]),
        Some(b'+') => (false, &value[1..]),
        _ => (false, value),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        let number: f64 = number.parse().map_err(|_| invalid())?;
        total += number * nanos_per_unit;
        rest = after;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}

/// Go's `time.Duration.String()`: `30s`, `1m0s`, `1h2m3.5s`, `1.5ms`, `500µs`, `0s` (how
/// Docker prints durations in its messages, e.g. a healthcheck's timeout).
pub fn format_go_duration(nanos: i64) -> String {
    fn fraction(v: u64, div: u64, digits: usize) -> String {
        let (whole, part) = (v / div, v % div);
        if part == 0 {
            return whole.to_string();
        }
        let part = format!("{part:0digits$}");
        format!("{whole}.{}", part.trim_end_matches('0'))
    }
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", fraction(u, 1_000, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", fraction(u, 1_000_000, 6))
    } else {
        let (h, rest) = (u / 3_600_000_000_000, u % 3_600_000_000_000);
        let (m, s) = (rest / 60_000_000_000, rest % 60_000_000_000);
        let secs = format!("{}s", fraction(s, 1_000_000_000, 9));
        match (h, m) {
            (0, 0) => secs,
            (0, m) => format!("{m}m{secs}"),
            (h, m) => format!("{h}h{m}m{secs}"),
        }
    };
    format!("{sign}{body}")
}

/// A point in time as the API carries it: Unix seconds and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (negative before it).
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

impl Timestamp {
    /// `time` as a timestamp.
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self {
                secs: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
                nanos: after.subsec_nanos(),
            },
            Err(before) => {
                Self::from_nanos(-i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX))
            }
        }
    }

    /// Nanoseconds since the epoch as a timestamp.
    fn from_nanos(nanos: i128) -> Self {
        Self {
            secs: i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(if nanos < 0 {
                i64::MIN
            } else {
                i64::MAX
            }),
            nanos: u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
        }
    }

    fn as_nanos(self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }

    /// The timestamp as fractional seconds (as `since`/`until` query values are read).
    pub fn as_secs_f64(self) -> f64 {
        self.secs as f64 + f64::from(self.nanos) / 1e9
    }
}

impl fmt::Display for Timestamp {
    /// `<secs>.<nanos, 9 digits>`, the form the docker CLI sends.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.secs, self.nanos)
    }
}

/// moby's `GetTimestamp`: `value` as a point in time, relative to `now` for durations.
///
/// In order: a Go duration before `now` (`10m`; but `0` is the epoch); a Unix time with an
/// optional fraction; RFC 3339 with a zone (`2023-11-14T22:13:20.5+01:00`); a date and time
/// without a zone (`2023-11-14T22:13:20`, `…T22:13`, `…T22`) or a date (`2023-11-14`), read as
/// UTC (moby reads those in the daemon's local zone; berth's hosts run in UTC).
pub fn parse_timestamp(value: &str, now: SystemTime) -> Result<Timestamp, TimeError> {
    if value != "0"
        && let Ok(nanos) = parse_go_duration(value)
    {
        let now = Timestamp::from_system_time(now);
        return Ok(Timestamp::from_nanos(now.as_nanos() - i128::from(nanos)));
    }
    if let Some(unix) = parse_unix(value) {
        return Ok(unix);
    }
    parse_date(value).ok_or_else(|| TimeError::InvalidTimestamp {
        value: value.to_owned(),
    })
}

/// `1700000000` or `1700000000.123` (moby's `ParseTimestamps`).
fn parse_unix(value: &str) -> Option<Timestamp> {
    let (secs, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = secs.strip_prefix('-').unwrap_or(secs);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 9
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    Some(Timestamp { secs, nanos })
}

fn parse_date(value: &str) -> Option<Timestamp> {
    let from = |t: chrono::DateTime<chrono::Utc>| Timestamp {
        secs: t.timestamp(),
        nanos: t.timestamp_subsec_nanos(),
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Some(from(t.to_utc()));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, format) {
            return Some(from(t.and_utc()));
        }
    }
    // `2023-11-14T22`: an hour alone, which chrono cannot parse without minutes.
    if value.len() == 13
        && value.as_bytes().get(10) == Some(&b'T')
        && let Ok(t) =
            chrono::NaiveDateTime::parse_from_str(&format!("{value}:00"), "%Y-%m-%dT%H:%M")
    {
        return Some(from(t.and_utc()));
    }
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| from(t.and_utc()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_durations_print_as_go_does() {
        use super::format_go_duration as f;
        assert_eq!(f(0), "0s");
        assert_eq!(f(30_000_000_000), "30s");
        assert_eq!(f(60_000_000_000), "1m0s");
        assert_eq!(f(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(f(1_500_000), "1.5ms");
        assert_eq!(f(1_000_000), "1ms");
        assert_eq!(f(500_000), "500µs");
        assert_eq!(f(999), "999ns");
        assert_eq!(f(-2_000_000_000), "-2s");
    }

    use std::time::Duration;

    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m"), Ok(H + H / 2));
        assert_eq!(parse_go_duration("10m"), Ok(H / 6));
        assert_eq!(parse_go_duration("2.5h"), Ok(5 * H / 2));
        assert_eq!(parse_go_duration("90s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration("1.5ms"), Ok(1_500_000));
        assert_eq!(parse_go_duration("3us"), Ok(3_000));
        assert_eq!(parse_go_duration("3µs"), Ok(3_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("-1h"), Ok(-H));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("0s"), Ok(0));
        for bad in [
            "", "10", "h", "1x", "soon", "1h30", ".h", "1..5s", "-", "3000000h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_go_duration("soon").expect_err("bad").to_string(),
            "time: invalid duration \"soon\""
        );
    }

    #[test]
    fn timestamps_from_durations_unix_times_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(100_000);
        let at = |secs, nanos| Timestamp { secs, nanos };
        assert_eq!(parse_timestamp("24h", now), Ok(at(100_000 - 86_400, 0)));
        assert_eq!(parse_timestamp("1h30m", now), Ok(at(100_000 - 5_400, 0)));
        assert_eq!(parse_timestamp("2.5h", now), Ok(at(100_000 - 9_000, 0)));
        assert_eq!(parse_timestamp("0", now), Ok(at(0, 0)));
        assert_eq!(parse_timestamp("10", now), Ok(at(10, 0)));
        assert_eq!(parse_timestamp("1700000000", now), Ok(at(1_700_000_000, 0)));
        assert_eq!(
            parse_timestamp("1700000000.5", now),
            Ok(at(1_700_000_000, 500_000_000))
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z", now),
            Ok(at(1_700_000_000, 0))
        );
        assert_eq!(
            parse_timestamp("2023-11-14T23:13:20.25+01:00", now),
            Ok(at(1_700_000_000, 250_000_000))
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20", now),
            Ok(at(1_700_000_000, 0))
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22:13", now),
            Ok(at(1_700_000_000 - 20, 0))
        );
        assert_eq!(
            parse_timestamp("2023-11-14T22", now),
            Ok(at(1_700_000_000 - 13 * 60 - 20, 0))
        );
        assert_eq!(
            parse_timestamp("2023-11-14", now),
            Ok(at(1_700_000_000 - 80_000, 0))
        );
        for bad in ["soon", "10x", "2023-13-45", "1.2.3", ""] {
            assert_eq!(
                parse_timestamp(bad, now),
                Err(TimeError::InvalidTimestamp { value: bad.into() }),
                "{bad:?}"
            );
        }
        assert_eq!(at(5, 7).to_string(), "5.000000007");
        assert!(at(5, 7) < at(6, 0));
    }
}
