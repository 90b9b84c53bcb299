//! The config keys of a queue, decided once: their names, defaults and meanings (the one
//! table, [`KEYS`]), how a key may be spelled, how a value is checked and stored, and the
//! durations people type (`30s`, `10m`). The core's own settings (`policy::WorkerSettings`,
//! `BackoffPolicy`, the runner's log limit) take their defaults from here; the Python side
//! reads the table, and checks values, through `_core`. The texts of the errors are the
//! product's (Python's `repr` quoting included), so the CLI says the same whoever checks.

use std::fmt::Write;

use crate::error::{Error, Result};

/// What a key's value is, and so how it is checked and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number from 0 to 2^31.
    Count,
    /// A finite number of at least 1.
    AtLeastOne,
    /// Seconds, or a number with s, m, h or d ([`parse_seconds`]).
    Seconds,
    /// Bytes, or a whole number with K, M or G (powers of 1024; `KiB`, `KB` too).
    Bytes,
    /// A number from 0 to 1.
    Fraction,
}

/// One config key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key {
    /// The stored name (hyphens, lower case).
    pub name: &'static str,
    /// The value a queue has until someone sets one (every key holds a number).
    pub default: f64,
    /// What it means, as `config list` shows it.
    pub help: &'static str,
    pub kind: Kind,
}

/// Retries after the first run; copied into each job at enqueue.
pub const MAX_RETRIES: Key = Key {
    name: "max-retries",
    default: 3.0,
    help: "retries after the first run (whole number >= 0)",
    kind: Kind::Count,
};
/// The base of the retry delay; workers read it.
pub const BACKOFF_BASE: Key = Key {
    name: "backoff-base",
    default: 2.0,
    help: "delay = base ^ attempts seconds (number >= 1)",
    kind: Kind::AtLeastOne,
};
/// The longest retry delay; workers read it.
pub const BACKOFF_MAX: Key = Key {
    name: "backoff-max",
    default: 3600.0,
    help: "longest retry delay (seconds, or 30s/10m/2h/1d)",
    kind: Kind::Seconds,
};
/// How much each retry delay is spread at random; workers read it.
pub const BACKOFF_JITTER: Key = Key {
    name: "backoff-jitter",
    default: 0.0,
    help: "spread of each retry delay: a random factor in [1 - j, 1 + j] (0 to 1)",
    kind: Kind::Fraction,
};
/// The timeout a job gets at enqueue when it names none.
pub const JOB_TIMEOUT: Key = Key {
    name: "job-timeout",
    default: 0.0,
    help: "default job timeout at enqueue (seconds; 0 = none)",
    kind: Kind::Seconds,
};
/// How much of each attempt's output a worker keeps; workers read it.
pub const LOG_MAX_BYTES: Key = Key {
    name: "log-max-bytes",
    default: 10.0 * 1024.0 * 1024.0,
    help: "newest output kept per attempt (bytes, K/M/G; 0 = all)",
    kind: Kind::Bytes,
};

/// Every key, in the order `config list` shows them.
pub static KEYS: [Key; 6] = [MAX_RETRIES, BACKOFF_BASE, BACKOFF_MAX, BACKOFF_JITTER, JOB_TIMEOUT, LOG_MAX_BYTES];

impl Key {
    /// The default as stored and shown.
    pub fn default_text(&self) -> String {
        format_number(self.default)
    }

    /// The value as stored, or why it is refused (the text after the key's name).
    fn check(&self, value: &str) -> std::result::Result<String, String> {
        match self.kind {
            Kind::Count => match py_int(py_strip(value)) {
                Some(n) if (0..=1 << 31).contains(&n) => Ok(n.to_string()),
                _ => Err("must be a whole number >= 0".into()),
            },
            Kind::AtLeastOne => match py_float(py_strip(value)) {
                Some(v) if v.is_finite() && v >= 1.0 => Ok(format_number(v)),
                _ => Err("must be a number >= 1".into()),
            },
            Kind::Fraction => match py_float(py_strip(value)) {
                Some(v) if (0.0..=1.0).contains(&v) => Ok(format_number(v)),
                _ => Err("must be a number from 0 to 1".into()),
            },
            Kind::Seconds => parse_seconds(value).map(format_number).map_err(|e| e.to_string()),
            Kind::Bytes => bytes(value)
                .filter(|n| (0..=1 << 50).contains(n))
                .map(|n| n.to_string())
                .ok_or_else(|| "must be a whole number of bytes >= 0, or with K, M or G".into()),
        }
    }
}

/// The key `key` names: hyphen and underscore spellings are the same key, in any case,
/// with spaces around ignored.
pub fn canonical(key: &str) -> Result<&'static Key> {
    let name = py_strip(key).to_lowercase().replace('_', "-");
    KEYS.iter().find(|k| k.name == name).ok_or_else(|| {
        let allowed: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        Error::InvalidInput(format!("unknown config key {} (allowed: {})", py_repr(key), allowed.join(", ")))
    })
}

/// The stored name of `key` and `value` as stored (`10m` as `600`, `64KiB` as `65536`);
/// an error naming what is allowed.
pub fn normalize(key: &str, value: &str) -> Result<(&'static str, String)> {
    let k = canonical(key)?;
    let stored = k
        .check(value)
        .map_err(|why| Error::InvalidInput(format!("invalid value {} for {}: {why}", py_repr(value), k.name)))?;
    Ok((k.name, stored))
}

/// `30`, `1.5`, `30s`, `10m`, `2h`, `7d` (any case, spaces around and before the unit
/// allowed) as seconds: 0, or from 0.001 (a millisecond) to 10^12; an error saying what a
/// duration is.
pub fn parse_seconds(text: &str) -> Result<f64> {
    let not_one = || {
        Error::InvalidInput(format!("{} is not a duration (use seconds, or a number with s, m, h or d)", py_repr(text)))
    };
    let lower = text.to_lowercase();
    let t = py_strip(&lower);
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let whole = digits(t);
    let number_len = match t[whole..].strip_prefix('.') {
        Some(rest) if whole > 0 || digits(rest) > 0 => whole + 1 + digits(rest),
        _ if whole > 0 => whole,
        _ => return Err(not_one()),
    };
    let (number, rest) = t.split_at(number_len);
    let factor = match rest.trim_start_matches(is_py_space) {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return Err(not_one()),
    };
    let value = number.parse::<f64>().map_err(|_| not_one())? * factor;
    if !value.is_finite() || value > 1e12 {
        return Err(Error::InvalidInput(format!("{} is too long a duration", py_repr(text))));
    }
    // Every duration becomes milliseconds: a shorter one would round to 0, which is "none"
    // for a timeout, and be stored as `1e-05`, which this function refuses to read back
    // (both found by fuzzing).
    if value > 0.0 && value < 0.001 {
        return Err(Error::InvalidInput(format!(
            "{} is shorter than a millisecond (the shortest duration is 0.001)",
            py_repr(text)
        )));
    }
    Ok(value)
}

/// A number as stored and shown: a whole one without a fraction (`3600`), any other as
/// Python's `repr` writes it (`1.5`, `1e-05`), so values read the same whoever wrote them.
pub fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 {
        return integer_text(v);
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        v.to_string()
    } else {
        format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// A whole finite number exactly, every digit (as Python's `str(int(v))`).
fn integer_text(v: f64) -> String {
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    if a < 1e18 {
        return format!("{sign}{}", a as u64);
    }
    // a = mantissa * 2^exp with exp > 0 here: double the decimal digits exp times.
    let bits = a.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32 - 1075;
    let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
    let mut digits: Vec<u8> = mantissa.to_string().bytes().rev().map(|b| b - b'0').collect();
    for _ in 0..exp {
        let mut carry = 0;
        for d in digits.iter_mut() {
            let x = *d * 2 + carry;
            *d = x % 10;
            carry = x / 10;
        }
        if carry > 0 {
            digits.push(carry);
        }
    }
    let mut out = sign.to_string();
    out.extend(digits.iter().rev().map(|d| char::from(b'0' + d)));
    out
}

/// Whether Python's `str.isspace` holds for `c` (Unicode white space and the four ASCII
/// separators), which its `strip()`, `int()`, `float()` and `\s` go by.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `s` without the underscores Python allows in a number (one at a time, between digits);
/// None when one stands elsewhere.
fn without_underscores(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        if c != '_' {
            out.push(c);
        } else if i == 0 || !b[i - 1].is_ascii_digit() || !b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return None;
        }
    }
    Some(out)
}

/// A whole number as Python's `int()` reads text: white space around (not the ASCII
/// separators `strip()` takes too), a sign, digits with single underscores between them.
fn py_int(s: &str) -> Option<i128> {
    let t = without_underscores(s.trim())?;
    let digits = t.strip_prefix(['+', '-']).unwrap_or(&t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// A number as Python's `float()` reads text (white space around as `int()` takes it,
/// underscores between digits).
fn py_float(s: &str) -> Option<f64> {
    without_underscores(s.trim())?.parse().ok()
}

/// A byte count: a whole number, or one with K, M or G (and an optional `i` and `B`).
fn bytes(text: &str) -> Option<i128> {
    let lower = py_strip(text).to_lowercase();
    let t = lower.strip_suffix('b').unwrap_or(&lower);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (number, unit) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    py_int(number)?.checked_mul(unit)
}

/// `s` quoted as Python's `repr` quotes a string, so messages read as they always have.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c if u32::from(c) < 0x100 => write!(out, "\\x{:02x}", u32::from(c)).unwrap_or(()),
            c if u32::from(c) < 0x10000 => write!(out, "\\u{:04x}", u32::from(c)).unwrap_or(()),
            c => write!(out, "\\U{:08x}", u32::from(c)).unwrap_or(()),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable` for one character: not a control, format, private-use,
/// unassigned or separator character, bar the space. Rust's debug escaping leaves exactly
/// those alone (apart from grapheme extenders at the start of a string, so it is asked
/// about `c` after a letter).
fn is_printable(c: char) -> bool {
    if c.is_ascii() {
        return c == ' ' || c.is_ascii_graphic();
    }
    let probe: String = ['a', c].into_iter().collect();
    probe.escape_debug().count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_its_defaults() {
        let shown: Vec<(&str, String)> = KEYS.iter().map(|k| (k.name, k.default_text())).collect();
        assert_eq!(
            shown,
            [
                ("max-retries", "3".to_string()),
                ("backoff-base", "2".to_string()),
                ("backoff-max", "3600".to_string()),
                ("backoff-jitter", "0".to_string()),
                ("job-timeout", "0".to_string()),
                ("log-max-bytes", "10485760".to_string()),
            ]
        );
        for k in &KEYS {
            assert_eq!(normalize(k.name, &k.default_text()).unwrap(), (k.name, k.default_text()));
        }
    }

    #[test]
    fn spellings_are_one_key() {
        for spelling in ["backoff-base", "backoff_base", " BACKOFF_BASE ", "Backoff-Base"] {
            assert_eq!(canonical(spelling).unwrap().name, "backoff-base");
        }
        assert_eq!(
            canonical("colour").unwrap_err().to_string(),
            "unknown config key 'colour' (allowed: max-retries, backoff-base, backoff-max, backoff-jitter, job-timeout, log-max-bytes)"
        );
    }

    #[test]
    fn values_are_stored_normalized() {
        let n = |k: &str, v: &str| normalize(k, v).map(|(_, s)| s).map_err(|e| e.to_string());
        assert_eq!(n("max-retries", " +007 "), Ok("7".into()));
        assert_eq!(n("max-retries", "1_000"), Ok("1000".into()));
        assert_eq!(n("max-retries", "2147483648"), Ok("2147483648".into()));
        assert_eq!(
            n("max-retries", "2147483649"),
            Err("invalid value '2147483649' for max-retries: must be a whole number >= 0".into())
        );
        assert!(n("max-retries", "1__0").is_err() && n("max-retries", "_1").is_err());
        assert_eq!(n("backoff-base", "1.5"), Ok("1.5".into()));
        assert_eq!(n("backoff-base", "2.0"), Ok("2".into()));
        assert_eq!(n("backoff-base", "1e20"), Ok("100000000000000000000".into()));
        assert_eq!(n("backoff-base", "nan"), Err("invalid value 'nan' for backoff-base: must be a number >= 1".into()));
        assert!(n("backoff-base", "inf").is_err() && n("backoff-base", "0.5").is_err());
        assert_eq!(n("backoff-max", "10m"), Ok("600".into()));
        assert_eq!(n("job-timeout", "0.001"), Ok("0.001".into()));
        assert_eq!(
            n("job-timeout", "0.00001"),
            Err("invalid value '0.00001' for job-timeout: '0.00001' is shorter than a millisecond (the shortest duration is 0.001)".into())
        );
        assert_eq!(
            n("job-timeout", "-5"),
            Err("invalid value '-5' for job-timeout: '-5' is not a duration (use seconds, or a number with s, m, h or d)"
                .into())
        );
        assert_eq!(n("log-max-bytes", "64KiB"), Ok("65536".into()));
        assert_eq!(n("log-max-bytes", " 2 mb"), Ok("2097152".into()));
        assert_eq!(n("log-max-bytes", "\x1f2\x1f"), Ok("2".into()));
        assert!(n("log-max-bytes", "2\x1fk").is_err() && n("max-retries", "\u{2003}2\u{a0}").is_ok());
        assert_eq!(n("log-max-bytes", "1g"), Ok("1073741824".into()));
        assert!(n("log-max-bytes", "kb").is_err() && n("log-max-bytes", "-1").is_err());
        assert!(n("log-max-bytes", "2000000g").is_err());
    }

    #[test]
    fn durations() {
        for (text, secs) in [
            ("30", 30.0),
            ("1.5", 1.5),
            ("30s", 30.0),
            (" 10 M ", 600.0),
            ("2h", 7200.0),
            ("7d", 604800.0),
            (".5", 0.5),
            ("5.", 5.0),
        ] {
            assert_eq!(parse_seconds(text).unwrap(), secs, "{text}");
        }
        for text in ["", ".", "-1", "1x", "1 s s", "1e3", "s", "1_0"] {
            assert!(parse_seconds(text).is_err(), "{text}");
        }
        assert_eq!(
            parse_seconds("1e3").unwrap_err().to_string(),
            "'1e3' is not a duration (use seconds, or a number with s, m, h or d)"
        );
        assert_eq!(parse_seconds("20000000d").unwrap_err().to_string(), "'20000000d' is too long a duration");
    }

    #[test]
    fn numbers_and_quotes_as_python_writes_them() {
        assert_eq!(format_number(1e300).len(), 301);
        assert!(format_number(1e300).starts_with("1000000000000000052504760255204420248"));
        assert_eq!(format_number(6.000000000000001), "6.000000000000001");
        assert_eq!(format_number(0.0001), "0.0001");
        assert_eq!(format_number(1.5e-7), "1.5e-07");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(py_repr("\t\u{7}\u{a0}é\u{200b}\u{301}"), "'\\t\\x07\\xa0é\\u200b\u{301}'");
        assert_eq!(py_repr("\u{e0001}"), "'\\U000e0001'");
    }
}
