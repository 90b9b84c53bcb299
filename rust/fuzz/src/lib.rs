//! What the fuzz targets share: the defaults a parse gets, the job JSON written back from a
//! parsed job, and the checks every accepted job and every refusal must pass.

use queuectl_core::clock::format_iso8601;
use queuectl_core::job::{validate_queue, validate_unique_key, MAX_AFTER, MAX_KEY_CHARS, MAX_SLOTS};
use queuectl_core::spec::SpecDefaults;
use queuectl_core::{jobid, Error, NewJob};
use serde_json::{json, Map, Value};

/// 2023-11-14T22:13:20Z: the "now" every parse is given, so a run is reproducible.
pub const NOW_MS: i64 = 1_700_000_000_000;

/// What `enqueue` passes in when the JSON leaves a field out (a config of max-retries 3, no
/// job timeout, the caller's folder).
pub fn defaults() -> SpecDefaults {
    SpecDefaults { max_retries: 3, timeout_ms: 0, cwd: "/tmp".into(), now_ms: NOW_MS }
}

/// The job as enqueue JSON, every field written out: what `queuectl show --json` would
/// give back, fit to enqueue again.
pub fn job_json(job: &NewJob) -> Value {
    let mut obj = Map::new();
    if let Some(id) = &job.id {
        obj.insert("id".into(), id.clone().into());
    }
    obj.insert("command".into(), job.command.clone().into());
    obj.insert("max_retries".into(), job.max_retries.into());
    obj.insert("priority".into(), job.priority.into());
    obj.insert("run_at".into(), format_iso8601(job.run_at_ms).into());
    obj.insert("timeout".into(), json!(job.timeout_ms as f64 / 1000.0));
    obj.insert("cwd".into(), job.cwd.clone().into());
    let env: Map<String, Value> = job.env.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
    obj.insert("env".into(), env.into());
    obj.insert("queue".into(), job.queue.clone().into());
    if let Some(key) = &job.unique_key {
        obj.insert("unique_key".into(), key.clone().into());
    }
    obj.insert("after".into(), job.after.clone().into());
    let flow = &job.flow;
    if let Some(key) = &flow.key {
        obj.insert("key".into(), key.clone().into());
    }
    obj.insert("slots".into(), flow.slots.into());
    if let Some(at) = flow.expires_at_ms {
        obj.insert("expires_at".into(), format_iso8601(at).into());
    }
    // The retry rule is stored as these fields: its own JSON, merged in.
    if let Some(Value::Object(rule)) = flow.retry.to_json().map(|t| serde_json::from_str(&t).unwrap()) {
        obj.extend(rule);
    }
    Value::Object(obj)
}

/// What every accepted job holds, whatever the input was.
pub fn check_job(job: &NewJob) {
    assert!(!job.command.trim().is_empty(), "an accepted job has a command: {job:?}");
    assert!(!job.command.contains('\0'), "a command with a NUL cannot be run: {job:?}");
    if let Some(id) = &job.id {
        jobid::validate(id).expect("an accepted id passes the id check");
        assert!(!job.after.contains(id), "a job runs after itself: {job:?}");
    }
    validate_queue(&job.queue).expect("an accepted queue name passes the queue check");
    if let Some(key) = &job.unique_key {
        validate_unique_key(key).expect("an accepted unique key passes its check");
    }
    assert!(job.after.len() <= MAX_AFTER, "too many parents accepted: {}", job.after.len());
    for (i, parent) in job.after.iter().enumerate() {
        jobid::validate(parent).expect("every parent id passes the id check");
        assert!(!job.after[..i].contains(parent), "a parent named twice: {job:?}");
    }
    assert!((1..=MAX_SLOTS).contains(&job.flow.slots), "slots out of range: {job:?}");
    if let Some(key) = &job.flow.key {
        assert!(!key.is_empty() && key.chars().count() <= MAX_KEY_CHARS && !key.chars().any(char::is_control));
    }
    assert!(job.flow.retry.delays_ms.as_ref().is_none_or(|d| !d.is_empty()), "an empty list of delays");
    for (name, value) in &job.env {
        assert!(!name.is_empty() && !name.contains(['=', '\0']) && !value.contains('\0'), "env {name:?}");
    }
    assert!(!job.cwd.is_empty() && !job.cwd.contains('\0'), "cwd {:?}", job.cwd);
    assert!(job.timeout_ms <= 1_000_000_000_000_000, "timeout {} ms", job.timeout_ms);
}

/// A refusal is an input error whose text is fit for one line of a terminal: no line
/// break, no escape sequence, nothing that rewrites what the user sees.
pub fn check_refusal(e: &Error, input: &str) {
    let Error::InvalidInput(text) = e else {
        panic!("bad input must be an input error, got {e:?} for {input:?}");
    };
    assert!(!text.is_empty(), "an empty error for {input:?}");
    assert!(!text.chars().any(char::is_control), "a control character in the error {text:?} for {input:?}");
}
