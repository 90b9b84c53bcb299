//! Schedules: when a job template fires, and what a schedule is ([`ScheduleRow`], which
//! the stores keep). Pure: every function takes the time it reasons about, so tests walk
//! daylight-saving days, month ends and leap days without waiting.
//!
//! A rule is a 5-field cron expression (or `@hourly`, `@daily`, `@weekly`, `@monthly`,
//! `@yearly`), read in an IANA time zone (UTC by default) by `croner` with `jiff`'s zone
//! database, or `@every DURATION`, a fixed interval counted from the Unix epoch (so
//! `@every 10m` fires at :00, :10, ...). Croner resolves daylight-saving changes as
//! vixie-cron does: a fixed time that a spring-forward skips fires at the first valid
//! moment after it, and one that a fall-back repeats fires once.

use std::fmt;

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use crate::error::{Error, Result};
use crate::job::JobState;
use crate::spec::{self, SpecDefaults};

/// What to do when an occurrence comes while the job of the previous one is unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Skip the occurrence (counted): at most one job of the schedule is unfinished.
    #[default]
    Skip,
    /// Enqueue it anyway.
    Allow,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
        }
    }

    pub fn parse(s: &str) -> Result<Overlap> {
        match s {
            "skip" => Ok(Overlap::Skip),
            "allow" => Ok(Overlap::Allow),
            other => Err(Error::InvalidInput(format!("overlap {other:?}: must be skip or allow"))),
        }
    }
}

enum Rule {
    Cron(Box<Cron>),
    /// Every this many milliseconds since the Unix epoch.
    Every(i64),
}

/// A parsed rule and its zone: when a schedule fires.
pub struct Timing {
    rule: Rule,
    tz: TimeZone,
    /// The zone's name as given ("UTC" by default).
    pub tz_name: String,
}

impl fmt::Debug for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timing").field("tz", &self.tz_name).finish_non_exhaustive()
    }
}

/// Longest and shortest `@every` interval.
const MIN_EVERY_MS: i64 = 1_000;
const MAX_EVERY_MS: i64 = 366 * 86_400_000;

/// `@every`'s duration: a whole number and a unit (s, m, h, d), e.g. `90s`, `10m`, `2h`.
fn every_ms(text: &str) -> Result<i64> {
    let bad = || {
        Error::InvalidInput(format!(
            "@every {text:?}: give a whole number and a unit s, m, h or d (e.g. @every 10m), from 1s to 366d"
        ))
    };
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
    if !(MIN_EVERY_MS..=MAX_EVERY_MS).contains(&ms) {
        return Err(bad());
    }
    Ok(ms)
}

impl Timing {
    /// Parses `expr` in zone `tz` (an IANA name; None: UTC). Every error is one line that
    /// names what was wrong.
    pub fn parse(expr: &str, tz: Option<&str>) -> Result<Timing> {
        let tz_name = tz.unwrap_or("UTC").to_string();
        let zone = TimeZone::get(&tz_name).map_err(|_| {
            Error::InvalidInput(format!("time zone {tz_name:?} is not in the time-zone database (e.g. Europe/Berlin)"))
        })?;
        let expr = expr.trim();
        let rule = if let Some(rest) = expr.strip_prefix("@every") {
            Rule::Every(every_ms(rest)?)
        } else {
            if expr.split_whitespace().count() != 5 && !expr.starts_with('@') {
                return Err(Error::InvalidInput(format!(
                    "cron {expr:?}: give 5 fields (minute hour day-of-month month day-of-week), or @hourly, @daily, @weekly, @monthly, @yearly, @every 10m"
                )));
            }
            // croner skips an empty item of a list: a field of only commas matches nothing,
            // and finding the next occurrence of `, 9-17 * * MON-FRI` then walked hour by hour
            // to the year 5000 (minutes of CPU in `schedule add`; found by fuzzing).
            if let Some(n) = expr.split_whitespace().position(|f| f.split(',').any(|item| item.is_empty())) {
                return Err(Error::InvalidInput(format!(
                    "cron {expr:?}: field {} has an empty item (a comma with nothing before or after it)",
                    n + 1
                )));
            }
            let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
            // croner's message quotes the rule's characters as they are: escaped, so that
            // the error stays one line with no escape sequence in it (found by fuzzing).
            let cron = parser.parse(expr).map_err(|e| {
                Error::InvalidInput(format!("cron {expr:?}: {}", spec::escape_controls(&e.to_string())))
            })?;
            Rule::Cron(Box::new(cron))
        };
        Ok(Timing { rule, tz: zone, tz_name })
    }

    fn zoned(&self, ms: i64) -> Option<Zoned> {
        Some(Timestamp::from_millisecond(ms).ok()?.to_zoned(self.tz.clone()))
    }

    /// The first occurrence strictly after `ms`, if there is one.
    pub fn next_after(&self, ms: i64) -> Option<i64> {
        match &self.rule {
            Rule::Every(every) => Some((ms.div_euclid(*every) + 1) * every),
            Rule::Cron(cron) => {
                let next = cron.find_next_occurrence(&self.zoned(ms)?, false).ok()?;
                Some(next.timestamp().as_millisecond())
            }
        }
    }

    /// The last occurrence at or before `ms`, if there is one.
    pub fn latest_at_or_before(&self, ms: i64) -> Option<i64> {
        match &self.rule {
            Rule::Every(every) => Some(ms.div_euclid(*every) * every),
            Rule::Cron(cron) => {
                let prev = cron.find_previous_occurrence(&self.zoned(ms)?, true).ok()?;
                Some(prev.timestamp().as_millisecond())
            }
        }
    }

    /// The next `count` occurrences after `ms`.
    pub fn upcoming(&self, ms: i64, count: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(count);
        let mut at = ms;
        while out.len() < count {
            match self.next_after(at) {
                Some(next) if next > at => {
                    out.push(next);
                    at = next;
                }
                _ => break,
            }
        }
        out
    }

    /// `ms` as local time in the schedule's zone, e.g. `2026-03-29T03:00:00+02:00[Europe/Berlin]`.
    pub fn local(&self, ms: i64) -> String {
        self.zoned(ms).map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()).unwrap_or_default()
    }
}

/// Checks a schedule name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!("schedule name {name:?}: must be 1 to 64 letters, digits, '.', '_' or '-'")))
    }
}

/// The id of the job an occurrence enqueues: the schedule's name and the occurrence in
/// UTC to the second, so every worker that fires it names the same job.
pub fn occurrence_id(name: &str, occurrence_ms: i64) -> String {
    let stamp = Timestamp::from_millisecond(occurrence_ms).map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string());
    format!("{name}-{}", stamp.unwrap_or_else(|_| occurrence_ms.to_string()))
}

/// The job template of a schedule from enqueue JSON: one object without `id` (each
/// occurrence's job gets one from the schedule), `run_at` (it runs at the occurrence) or
/// `after`; `max_retries`, `timeout` and `cwd` are filled in from `d` when absent, so a
/// firing never depends on the config of the worker that fires it. Returns the JSON stored.
pub fn template(text: &str, d: &SpecDefaults) -> Result<String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::InvalidInput(format!("invalid JSON: {e}")))?;
    let serde_json::Value::Object(mut obj) = value else {
        return Err(Error::InvalidInput("a schedule's job must be a JSON object".into()));
    };
    for (field, why) in [
        ("id", "each occurrence's job gets its id from the schedule and the occurrence"),
        ("run_at", "the job runs at each occurrence"),
        ("after", "a scheduled job cannot run after other jobs"),
        ("expires_at", "every occurrence's job would expire at that one time"),
    ] {
        if obj.contains_key(field) {
            return Err(Error::InvalidInput(format!("field '{field}': leave it out of a schedule's job ({why})")));
        }
    }
    obj.entry("max_retries").or_insert_with(|| d.max_retries.into());
    obj.entry("timeout").or_insert_with(|| (d.timeout_ms as f64 / 1000.0).into());
    obj.entry("cwd").or_insert_with(|| d.cwd.clone().into());
    spec::job_from_object(&obj, d)?;
    Ok(serde_json::Value::Object(obj).to_string())
}

/// A schedule as stored, with the state of the last job it enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    pub name: String,
    /// The rule: 5 cron fields, a nickname, or `@every DURATION`.
    pub cron: String,
    /// The IANA zone the rule is read in.
    pub tz: String,
    pub overlap: Overlap,
    /// The job each occurrence enqueues, as enqueue JSON.
    pub job: String,
    pub paused: bool,
    /// The next occurrence, not yet fired.
    pub next_fire_ms: i64,
    /// The occurrence last fired or skipped.
    pub last_fire_ms: Option<i64>,
    pub last_job_id: Option<String>,
    /// None when it has enqueued nothing yet, or that job is gone (purged, deleted).
    pub last_job_state: Option<JobState>,
    /// Occurrences that enqueued a job, and those skipped for an unfinished one.
    pub fired: u64,
    pub skipped: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A new schedule, every part checked: its name, rule, zone, overlap and job (see
/// [`template`]); it fires first at the first occurrence after `d.now_ms`.
pub fn new_schedule(
    name: &str,
    cron: &str,
    tz: Option<&str>,
    overlap: &str,
    job: &str,
    d: &SpecDefaults,
) -> Result<ScheduleRow> {
    validate_name(name)?;
    let timing = Timing::parse(cron, tz)?;
    let overlap = Overlap::parse(overlap)?;
    let job = template(job, d)?;
    let next_fire_ms = timing
        .next_after(d.now_ms)
        .ok_or_else(|| Error::InvalidInput(format!("cron {cron:?} never fires after now")))?;
    Ok(ScheduleRow {
        name: name.to_string(),
        cron: cron.trim().to_string(),
        tz: timing.tz_name.clone(),
        overlap,
        job,
        paused: false,
        next_fire_ms,
        last_fire_ms: None,
        last_job_id: None,
        last_job_state: None,
        fired: 0,
        skipped: 0,
        created_at_ms: d.now_ms,
        updated_at_ms: d.now_ms,
    })
}

/// What a worker does about a schedule that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firing {
    /// The occurrence it fires: the latest at or before now (earlier missed ones are not
    /// enqueued).
    pub occurrence_ms: i64,
    /// The occurrence after now, when it is due next.
    pub next_fire_ms: i64,
    /// The previous occurrence's job is unfinished and overlap is `skip`: no job.
    pub skip: bool,
}

/// The firing of a schedule whose next occurrence (`next_fire_ms`) has come by `now_ms`,
/// given its overlap rule and the state of the last job it enqueued. None when nothing is
/// due (its next occurrence is still ahead) or its rule has no occurrence left.
pub fn firing(
    timing: &Timing,
    next_fire_ms: i64,
    overlap: Overlap,
    last_job: Option<JobState>,
    now_ms: i64,
) -> Option<Firing> {
    if next_fire_ms > now_ms {
        return None;
    }
    let occurrence_ms = timing.latest_at_or_before(now_ms)?.max(next_fire_ms);
    let next_fire_ms = timing.next_after(now_ms).unwrap_or(i64::MAX);
    let skip = overlap == Overlap::Skip && last_job.is_some_and(|s| !s.is_final());
    Some(Firing { occurrence_ms, next_fire_ms, skip })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{format_iso8601, parse_iso8601};

    fn at(iso: &str) -> i64 {
        parse_iso8601(iso).unwrap()
    }

    fn next_n(t: &Timing, from: &str, n: usize) -> Vec<String> {
        t.upcoming(at(from), n).into_iter().map(format_iso8601).collect()
    }

    #[test]
    fn five_fields_and_nicknames_in_utc() {
        let t = Timing::parse("*/15 9-17 * * MON-FRI", None).unwrap();
        assert_eq!(
            next_n(&t, "2026-12-04T16:50:00Z", 3),
            ["2026-12-04T17:00:00.000Z", "2026-12-04T17:15:00.000Z", "2026-12-04T17:30:00.000Z"]
        );
        // Friday 17:45 -> Monday 09:00.
        assert_eq!(next_n(&t, "2026-12-04T17:45:00Z", 1), ["2026-12-07T09:00:00.000Z"]);
        let daily = Timing::parse("@daily", None).unwrap();
        assert_eq!(next_n(&daily, "2026-12-31T23:59:59Z", 1), ["2027-01-01T00:00:00.000Z"]);
        let hourly = Timing::parse("@hourly", None).unwrap();
        assert_eq!(hourly.latest_at_or_before(at("2026-12-03T15:59:59Z")), Some(at("2026-12-03T15:00:00Z")));
        assert_eq!(hourly.latest_at_or_before(at("2026-12-03T15:00:00Z")), Some(at("2026-12-03T15:00:00Z")));
        let weekly = Timing::parse("@weekly", None).unwrap();
        assert_eq!(next_n(&weekly, "2026-12-03T00:00:00Z", 1), ["2026-12-06T00:00:00.000Z"], "Sunday");
    }

    #[test]
    fn every_counts_from_the_epoch() {
        let t = Timing::parse("@every 10m", None).unwrap();
        assert_eq!(next_n(&t, "2026-12-03T15:03:00Z", 2), ["2026-12-03T15:10:00.000Z", "2026-12-03T15:20:00.000Z"]);
        assert_eq!(t.latest_at_or_before(at("2026-12-03T15:10:00Z")), Some(at("2026-12-03T15:10:00Z")));
        assert_eq!(Timing::parse("@every 90s", None).unwrap().next_after(0), Some(90_000));
        for bad in ["@every", "@every 0s", "@every 10", "@every 5w", "@every 400d", "@every -1m"] {
            assert!(Timing::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_rules_and_zones_are_clear_errors() {
        for (expr, tz, says) in [
            ("* * * *", None, "5 fields"),
            ("* * * * * *", None, "5 fields"),
            ("61 * * * *", None, "cron"),
            ("@fortnightly", None, "cron"),
            ("0 0 * * *", Some("Mars/Olympus"), "time-zone database"),
            (", 9-17 * * MON-FRI", None, "field 1 has an empty item"),
            ("0 9,,17 * * *", None, "field 2 has an empty item"),
            ("0 9 * * 1,", None, "field 5 has an empty item"),
            // croner quotes the character it refuses: escaped, not sent to the terminal.
            ("0 0 * * *\u{1b}[31m", None, "\\u{1b}"),
        ] {
            let e = Timing::parse(expr, tz).unwrap_err().to_string();
            assert!(e.contains(says), "{expr}: {e}");
            assert!(!e.chars().any(char::is_control), "{e}");
        }
    }

    #[test]
    fn spring_forward_fires_once_at_the_first_valid_time() {
        // Berlin skips 02:00-03:00 on 2026-03-29: 02:30 happens at 03:00 local (01:00Z).
        let t = Timing::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            next_n(&t, "2026-03-27T12:00:00Z", 3),
            ["2026-03-28T01:30:00.000Z", "2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"]
        );
        assert_eq!(t.local(at("2026-03-29T01:00:00Z")), "2026-03-29T03:00:00+02:00");
        // An hourly rule has no 02:00 that day: 24 occurrences become 23, none twice.
        let hourly = Timing::parse("0 * * * *", Some("Europe/Berlin")).unwrap();
        let day = hourly.upcoming(at("2026-03-28T22:59:59Z"), 30);
        let that_day: Vec<_> =
            day.iter().filter(|&&ms| ms < at("2026-03-29T22:00:00Z")).map(|&ms| hourly.local(ms)).collect();
        assert_eq!(that_day.len(), 23, "{that_day:?}");
        assert!(!that_day.iter().any(|l| l.contains("T02:")), "{that_day:?}");
    }

    #[test]
    fn fall_back_fires_once_not_twice() {
        // New York repeats 01:00-02:00 on 2026-11-01: 01:30 fires once, in daylight time.
        let t = Timing::parse("30 1 * * *", Some("America/New_York")).unwrap();
        assert_eq!(
            next_n(&t, "2026-10-31T12:00:00Z", 3),
            ["2026-11-01T05:30:00.000Z", "2026-11-02T06:30:00.000Z", "2026-11-03T06:30:00.000Z"]
        );
        assert_eq!(t.local(at("2026-11-01T05:30:00Z")), "2026-11-01T01:30:00-04:00");
    }

    #[test]
    fn month_ends_and_leap_days() {
        let t31 = Timing::parse("0 0 31 * *", None).unwrap();
        assert_eq!(
            next_n(&t31, "2027-01-31T00:00:00Z", 3),
            ["2027-03-31T00:00:00.000Z", "2027-05-31T00:00:00.000Z", "2027-07-31T00:00:00.000Z"]
        );
        let last = Timing::parse("0 12 L * *", None).unwrap();
        assert_eq!(next_n(&last, "2028-01-31T13:00:00Z", 2), ["2028-02-29T12:00:00.000Z", "2028-03-31T12:00:00.000Z"]);
        let leap = Timing::parse("0 6 29 2 *", Some("Europe/Berlin")).unwrap();
        assert_eq!(next_n(&leap, "2026-12-03T00:00:00Z", 2), ["2028-02-29T05:00:00.000Z", "2032-02-29T05:00:00.000Z"]);
        // The latest occurrence before a day years later is still found.
        assert_eq!(leap.latest_at_or_before(at("2031-06-01T00:00:00Z")), Some(at("2028-02-29T05:00:00Z")));
    }

    #[test]
    fn a_gap_fires_only_the_latest_missed_occurrence() {
        let t = Timing::parse("@hourly", None).unwrap();
        let next = at("2026-12-03T10:00:00Z");
        // Nobody ran from 10:00 to 15:20: one firing, for 15:00; next due at 16:00.
        let f = firing(&t, next, Overlap::Skip, Some(JobState::Completed), at("2026-12-03T15:20:00Z")).unwrap();
        assert_eq!(
            f,
            Firing { occurrence_ms: at("2026-12-03T15:00:00Z"), next_fire_ms: at("2026-12-03T16:00:00Z"), skip: false }
        );
        assert_eq!(firing(&t, next, Overlap::Skip, None, at("2026-12-03T09:59:59Z")), None, "not due yet");
        // The previous job unfinished: skipped with skip, fired with allow.
        for (state, skip) in [(JobState::Processing, true), (JobState::Failed, true), (JobState::Dead, false)] {
            assert_eq!(firing(&t, next, Overlap::Skip, Some(state), next).unwrap().skip, skip, "{state}");
            assert!(!firing(&t, next, Overlap::Allow, Some(state), next).unwrap().skip);
        }
    }

    #[test]
    fn a_template_is_checked_and_completed() {
        let d =
            SpecDefaults { max_retries: 2, timeout_ms: 1500, cwd: "/srv".into(), now_ms: at("2026-12-03T15:00:00Z") };
        let text = template(r#"{"command":"backup.sh","queue":"ops"}"#, &d).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (v["max_retries"].as_u64(), v["timeout"].as_f64(), v["cwd"].as_str()),
            (Some(2), Some(1.5), Some("/srv"))
        );
        for (bad, says) in [
            (r#"{"command":"x","id":"a"}"#, "field 'id'"),
            (r#"{"command":"x","after":"a"}"#, "field 'after'"),
            (r#"{"command":"x","run_at":"2027-01-01"}"#, "field 'run_at'"),
            (r#"{"command":""}"#, "field 'command'"),
            (r#"["x"]"#, "JSON object"),
        ] {
            let e = template(bad, &d).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let row =
            new_schedule("nightly", "0 2 * * *", Some("Europe/Berlin"), "skip", r#"{"command":"x"}"#, &d).unwrap();
        assert_eq!(row.next_fire_ms, at("2026-12-04T01:00:00Z"));
        assert!(new_schedule("n", "0 2 * * *", None, "sometimes", r#"{"command":"x"}"#, &d).is_err());
    }

    #[test]
    fn occurrence_ids_are_stable_and_readable() {
        assert_eq!(occurrence_id("nightly", at("2026-12-03T02:00:00Z")), "nightly-20261203T020000Z");
        assert!(validate_name("a.b_c-1").is_ok());
        assert!(validate_name("").is_err() && validate_name("a b").is_err());
    }
}
