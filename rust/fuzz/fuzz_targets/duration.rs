//! What people type as durations and config values (`--timeout`, `--delay`, `config set`,
//! `purge --older-than`, `backoff-max`), and times (`--run-at`, `run_at`).
//!
//! A duration that parses is a finite number of seconds from 0 to 10^12, and its stored
//! form reads back as the same number; a config value that is accepted is stored in a
//! form that is accepted again unchanged; a time that parses is written as an ISO time that
//! parses to the same instant; a refusal is one input error fit for one line of a terminal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use queuectl_core::clock::{format_iso8601, parse_iso8601};
use queuectl_core::config::{self, format_number, parse_seconds, KEYS};
use queuectl_fuzz::check_refusal;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_seconds(text) {
        Ok(secs) => {
            assert!(secs.is_finite() && (0.0..=1e12).contains(&secs), "{text:?} parsed to {secs}");
            let stored = format_number(secs);
            assert_eq!(stored.parse::<f64>().ok(), Some(secs), "{text:?} stored as {stored:?}");
        }
        Err(e) => check_refusal(&e, text),
    }
    for key in &KEYS {
        match config::normalize(key.name, text) {
            Ok((name, stored)) => {
                assert_eq!(name, key.name);
                let again = config::normalize(name, &stored)
                    .unwrap_or_else(|e| panic!("{name} {text:?} is stored as {stored:?}, which is refused: {e}"));
                assert_eq!(again, (name, stored.clone()), "{name} {text:?}: the stored form changes");
            }
            Err(e) => check_refusal(&e, text),
        }
    }
    if let Some(ms) = parse_iso8601(text) {
        let written = format_iso8601(ms);
        assert_eq!(parse_iso8601(&written), Some(ms), "{text:?} is written as {written:?}");
    }
});
