//! `queuectl enqueue JSON` (and `--command`, which the CLI turns into the same JSON), and a
//! schedule's job template: the text exactly as the CLI hands it to the core.
//!
//! An accepted job passes every field check, and written back as enqueue JSON (run_at as
//! the ISO time `show` prints) it parses to the same job; a template stored by `schedule
//! add` is a job and stores unchanged a second time; a refusal is one input error fit for
//! one line of a terminal.

#![no_main]

use libfuzzer_sys::fuzz_target;
use queuectl_core::schedule::template;
use queuectl_core::spec::parse_one;
use queuectl_fuzz::{check_job, check_refusal, defaults, job_json};

fuzz_target!(|data: &[u8]| {
    // Python passes the core a str: always UTF-8.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let d = defaults();
    match parse_one(text, &d) {
        Ok(job) => {
            check_job(&job);
            let written = job_json(&job).to_string();
            let back = parse_one(&written, &d)
                .unwrap_or_else(|e| panic!("{written} (an accepted job written back) is refused: {e}"));
            assert!(back == job, "{written} parses to another job: {}", job_json(&back));
        }
        Err(e) => check_refusal(&e, text),
    }
    match template(text, &d) {
        Ok(stored) => {
            let job = parse_one(&stored, &d).unwrap_or_else(|e| panic!("stored template {stored} is refused: {e}"));
            check_job(&job);
            let again = template(&stored, &d).unwrap_or_else(|e| panic!("stored template {stored} is refused: {e}"));
            assert_eq!(again, stored, "a stored template changes when stored again");
        }
        Err(e) => check_refusal(&e, text),
    }
});
