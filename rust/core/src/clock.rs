//! Wall-clock time as milliseconds since the Unix epoch, and its ISO-8601 spelling.
//!
//! Every store operation takes `now_ms` as a parameter, so tests fix the clock; the worker
//! loop reads its time from the [`Clock`] in its config, and the extension reads the real
//! one, through [`now_ms`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Where a worker gets the time it writes into the store (claims, leases, settles,
/// backoffs). Pauses and heartbeat intervals use the monotonic clock instead.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        now_ms()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn at(ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(ms))
    }

    /// Moves the clock by `ms` (negative moves it back).
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `ms`.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number, inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_iso8601(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Parses an ISO-8601 / RFC 3339 instant: `YYYY-MM-DD`, optionally followed by `T` (or a
/// space) and `HH:MM[:SS[.fff]]`, optionally followed by `Z` or `+HH:MM` / `-HH:MM`.
/// A time without an offset is taken as UTC, the zone queuectl speaks everywhere. The
/// instant must fall in the years 0000 to 9999 in UTC, the ones [`format_iso8601`] writes
/// as ISO-8601: `0000-01-01T00:00+01:00` (year -1 in UTC) was taken, and shown as
/// `-001-12-31T23:00:00.000Z`, which nothing reads back (found by fuzzing).
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let first_ms = days_from_civil(0, 1, 1) * 86_400_000;
    let end_ms = days_from_civil(10_000, 1, 1) * 86_400_000;
    parse_iso8601_any_year(text).filter(|ms| (first_ms..end_ms).contains(ms))
}

fn parse_iso8601_any_year(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    if !matches!(rest[0], b'T' | b't' | b' ') || rest.len() < 6 || rest[3] != b':' {
        return None;
    }
    let (h, mi) = (num(&rest[1..3])?, num(&rest[4..6])?);
    if h > 23 || mi > 59 {
        return None;
    }
    ms += h * 3_600_000 + mi * 60_000;
    rest = &rest[6..];
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        let s = num(&rest[1..3])?;
        if s > 60 {
            return None;
        }
        ms += s * 1000;
        rest = &rest[3..];
        if matches!(rest.first(), Some(b'.') | Some(b',')) {
            let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            let frac = &rest[1..1 + digits.min(3)];
            let mut f = num(frac)?;
            for _ in frac.len()..3 {
                f *= 10;
            }
            ms += f;
            rest = &rest[1 + digits..];
        }
    }
    match rest {
        [] | [b'Z'] | [b'z'] => Some(ms),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let oh = num(&[*h1, *h2])?;
            let om = num(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = (oh * 60 + om) * 60_000;
            Some(if *sign == b'+' { ms - off } else { ms + off })
        }
        _ => None,
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_instants() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(format_iso8601(0), "1970-01-01T00:00:00.000Z");
        let ms = parse_iso8601("2026-11-27T19:36:24.5Z").unwrap();
        assert_eq!(ms, 1_795_808_184_500);
        assert_eq!(format_iso8601(ms), "2026-11-27T19:36:24.500Z");
    }

    #[test]
    fn offsets_and_naive_times() {
        let z = parse_iso8601("2024-02-29T12:00:00Z").unwrap();
        assert_eq!(parse_iso8601("2024-02-29T14:00:00+02:00"), Some(z));
        assert_eq!(parse_iso8601("2024-02-29T07:00:00-0500"), Some(z));
        assert_eq!(parse_iso8601("2024-02-29 12:00:00"), Some(z));
        assert_eq!(parse_iso8601("2024-02-29T12:00"), Some(z));
        assert_eq!(parse_iso8601("2024-02-29"), Some(z - 12 * 3_600_000));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "yesterday",
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T25:00",
            "2024-01-01T10:00:00Q",
            "2024-01-01T10:00:00.",
            // Years -1 and 10000 in UTC: no ISO time to show them as.
            "0000-01-01T00:00+01:00",
            "9999-12-31T23:59-01:00",
            "9999-12-31T23:59:60Z",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
        for edge in ["0000-01-01T00:00Z", "9999-12-31T23:59:59.999Z"] {
            let ms = parse_iso8601(edge).unwrap();
            assert_eq!(parse_iso8601(&format_iso8601(ms)), Some(ms), "{edge}");
        }
    }
}
