//! `queuectl schedule add --cron RULE --tz ZONE`: a cron rule, a nickname or `@every`, read
//! in a time zone, and its occurrences around an instant the input chooses.
//!
//! The input is a zone byte (one of a few zones with odd daylight-saving rules, or the zone
//! name given in the text before a `|`), four bytes of seconds since 1970, then the rule.
//! For a rule that parses: the next occurrence is after the instant, the latest is at or
//! before it and the one after the latest is after the instant (what a firing relies on:
//! nothing fires twice, nothing is skipped), upcoming occurrences increase, and
//! `new_schedule` agrees; a refusal is one input error fit for one line of a terminal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use queuectl_core::schedule::{firing, new_schedule, Overlap, Timing};
use queuectl_fuzz::{check_refusal, defaults};

const ZONES: [&str; 8] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe", // a 30-minute daylight-saving shift
    "Asia/Kathmandu",      // +05:45
    "Pacific/Chatham",     // +12:45 / +13:45
    "Europe/Dublin",       // "negative" daylight saving in the zone database
    "Pacific/Apia",        // skipped 30 December 2011 entirely
];

fuzz_target!(|data: &[u8]| {
    let Some((&zone, rest)) = data.split_first() else { return };
    let Some((when, rest)) = rest.split_first_chunk::<4>() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let (tz, rule) = match zone {
        0xff => match text.split_once('|') {
            Some((tz, rule)) => (Some(tz), rule),
            None => return,
        },
        0xfe => (None, text),
        z => (Some(ZONES[usize::from(z) % ZONES.len()]), text),
    };
    let t = i64::from(u32::from_le_bytes(*when)) * 1000;
    let mut d = defaults();
    d.now_ms = t;
    let made = new_schedule("fuzz", rule, tz, "skip", r#"{"command":"true"}"#, &d);
    let timing = match Timing::parse(rule, tz) {
        Ok(timing) => timing,
        Err(e) => {
            check_refusal(&e, text);
            assert!(made.is_err(), "new_schedule accepts {rule:?} that Timing refuses");
            return;
        }
    };
    let next = timing.next_after(t);
    if let Some(next) = next {
        assert!(next > t, "{rule:?} in {tz:?}: next after {t} is {next}");
        assert_eq!(timing.latest_at_or_before(next), Some(next), "{rule:?} in {tz:?}: {next} is no occurrence");
    }
    if let Some(latest) = timing.latest_at_or_before(t) {
        assert!(latest <= t, "{rule:?} in {tz:?}: latest at or before {t} is {latest}");
        assert_eq!(timing.next_after(latest), next, "{rule:?} in {tz:?}: from {latest} and {t}");
    }
    let upcoming = timing.upcoming(t, 4);
    assert!(upcoming.windows(2).all(|w| w[0] < w[1]), "{rule:?} in {tz:?}: {upcoming:?}");
    assert_eq!(upcoming.first().copied(), next);
    match (made, next) {
        (Ok(row), Some(next)) => {
            assert_eq!(row.next_fire_ms, next);
            let f = firing(&timing, next, Overlap::Skip, None, next).expect("a due schedule fires");
            assert_eq!(f.occurrence_ms, next, "{rule:?} in {tz:?}");
            assert!(f.next_fire_ms > next, "{rule:?} in {tz:?}: fires {next} again");
            assert!(!timing.local(next).is_empty());
        }
        (Err(e), None) => check_refusal(&e, rule),
        (made, next) => panic!("{rule:?} in {tz:?}: new_schedule {made:?} but next {next:?}"),
    }
});
