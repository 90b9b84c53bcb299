//! `queuectl enqueue --file`: a JSON array of jobs or JSON Lines, all or nothing.
//!
//! An accepted batch is jobs that each pass every field check, with no id twice and no job
//! after a later one of the batch; JSON Lines give one job per non-blank line; written back
//! as JSON Lines and as an array it parses to the same jobs; a refusal is one input error
//! fit for one line of a terminal.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use queuectl_core::spec::parse_many;
use queuectl_fuzz::{check_job, check_refusal, defaults, job_json};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let d = defaults();
    let jobs = match parse_many(text, &d) {
        Ok(jobs) => jobs,
        Err(e) => return check_refusal(&e, text),
    };
    let mut earlier = HashSet::new();
    let ids: HashSet<&str> = jobs.iter().filter_map(|j| j.id.as_deref()).collect();
    for job in &jobs {
        check_job(job);
        for parent in &job.after {
            assert!(!ids.contains(parent.as_str()) || earlier.contains(parent.as_str()), "after a later job");
        }
        if let Some(id) = job.id.as_deref() {
            assert!(earlier.insert(id), "id {id:?} twice in one batch");
        }
    }
    let body = text.trim_start_matches('\u{feff}').trim_start();
    if !body.starts_with('[') {
        let lines = body.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(lines, jobs.len(), "JSON Lines: one job per non-blank line");
    }
    let as_lines: Vec<String> = jobs.iter().map(|j| job_json(j).to_string()).collect();
    let as_lines = as_lines.join("\n");
    let back = parse_many(&as_lines, &d).unwrap_or_else(|e| panic!("{as_lines} (written back) is refused: {e}"));
    assert!(back == jobs, "{as_lines} parses to other jobs");
    let as_array = Value::Array(jobs.iter().map(job_json).collect()).to_string();
    let back = parse_many(&as_array, &d).unwrap_or_else(|e| panic!("{as_array} (written back) is refused: {e}"));
    assert!(back == jobs, "{as_array} parses to other jobs");
});
