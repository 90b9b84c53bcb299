//! The enqueue input: JSON objects checked field by field into [`NewJob`]s.
//!
//! Parsing lives in the core because bulk enqueue reads millions of lines; every error
//! names the field (and, in a batch, the line or index) so the user can fix the input.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::clock::parse_iso8601;
use crate::error::{Error, Result};
use crate::job::{
    validate_queue, validate_unique_key, Flow, NewJob, RetryRule, DEFAULT_QUEUE, MAX_AFTER, MAX_KEY_CHARS,
    MAX_QUEUE_CHARS, MAX_SLOTS,
};
use crate::jobid;

/// What a job gets for each field its JSON leaves out.
#[derive(Debug, Clone)]
pub struct SpecDefaults {
    pub max_retries: u32,
    pub timeout_ms: u64,
    pub cwd: String,
    pub now_ms: i64,
}

const FIELDS: &str = "id, command, max_retries, priority, run_at, timeout, cwd, env, queue, unique_key, after, \
     key, slots, retry_delays, retry_on, no_retry_on, expires_at, state, attempts, created_at, updated_at";

/// Most entries of `retry_delays`.
pub const MAX_RETRY_DELAYS: usize = 100;

/// `text` with its control characters escaped (`\n`, `\u{1b}`), for an error that quotes
/// the input: it stays one line, and sends no escape sequence to the terminal it is shown on.
pub fn escape_controls(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

fn bad(field: &str, why: &str) -> Error {
    Error::InvalidInput(format!("field '{field}': {why}"))
}

/// Converts seconds given as a JSON number or on the command line into milliseconds.
pub fn seconds_to_ms(field: &str, secs: f64) -> Result<u64> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(bad(field, "must be a number of seconds >= 0"));
    }
    if secs > 1e12 {
        return Err(bad(field, "is too large"));
    }
    Ok((secs * 1000.0).round() as u64)
}

/// A job's `env`: an object of strings, names that a process environment can hold.
fn env_of(value: &Value) -> Result<Vec<(String, String)>> {
    let obj = value.as_object().ok_or_else(|| bad("env", "must be an object of names to strings"))?;
    let mut env = Vec::with_capacity(obj.len());
    for (name, v) in obj {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(bad("env", &format!("{name:?} is not a variable name (non-empty, no '=' or NUL)")));
        }
        // The name is quoted as it is (unlike above, where Debug quoting shows it): its
        // control characters escaped, so the error stays one line (found by fuzzing).
        let shown = escape_controls(name);
        let v = v.as_str().ok_or_else(|| bad("env", &format!("the value of {shown} must be a string")))?;
        if v.contains('\0') {
            return Err(bad("env", &format!("the value of {shown} must not contain a NUL character")));
        }
        env.push((name.clone(), v.to_string()));
    }
    Ok(env)
}

/// A job's `after`: a job id, or an array of them; repeats are dropped, order kept.
fn after_of(value: &Value) -> Result<Vec<String>> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    if items.len() > MAX_AFTER {
        return Err(bad("after", &format!("names more than {MAX_AFTER} jobs")));
    }
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    for v in items {
        let id = v.as_str().ok_or_else(|| bad("after", "must be a job id or an array of job ids"))?;
        jobid::validate(id).map_err(|e| bad("after", &e.to_string()))?;
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

/// A list of exit codes (`retry_on`, `no_retry_on`): integers 0 to 255, and in
/// `no_retry_on` the string "timeout". Returns the codes and whether "timeout" was named.
fn exit_codes_of(field: &str, value: &Value, timeout_allowed: bool) -> Result<(Vec<i32>, bool)> {
    let why = if timeout_allowed {
        "must be an array of exit codes (0 to 255) and \"timeout\""
    } else {
        "must be an array of exit codes (0 to 255)"
    };
    let items = value.as_array().ok_or_else(|| bad(field, why))?;
    if items.is_empty() || items.len() > 256 {
        return Err(bad(field, why));
    }
    let (mut codes, mut timeout) = (Vec::new(), false);
    for v in items {
        match (v.as_u64(), v.as_str()) {
            (Some(n), _) if n <= 255 => {
                let n = i32::try_from(n).unwrap_or_default();
                if !codes.contains(&n) {
                    codes.push(n);
                }
            }
            (_, Some("timeout")) if timeout_allowed => timeout = true,
            _ => return Err(bad(field, why)),
        }
    }
    Ok((codes, timeout))
}

/// A job's `retry_delays`: 1 to [`MAX_RETRY_DELAYS`] numbers of seconds.
fn delays_of(value: &Value) -> Result<Vec<u64>> {
    let why = format!("must be an array of 1 to {MAX_RETRY_DELAYS} numbers of seconds >= 0");
    let items = value.as_array().ok_or_else(|| bad("retry_delays", &why))?;
    if items.is_empty() || items.len() > MAX_RETRY_DELAYS {
        return Err(bad("retry_delays", &why));
    }
    items
        .iter()
        .map(|v| {
            let secs = v.as_f64().filter(|_| v.is_number()).ok_or_else(|| bad("retry_delays", &why))?;
            seconds_to_ms("retry_delays", secs)
        })
        .collect()
}

/// Sets the flow-control field `key` of `flow` from `value`; false when `key` is not one.
fn flow_field(flow: &mut Flow, key: &str, value: &Value, now_ms: i64) -> Result<bool> {
    match key {
        "key" => {
            let k = value.as_str().ok_or_else(|| bad("key", "must be a string"))?;
            let n = k.chars().count();
            if n == 0 || n > MAX_KEY_CHARS || k.chars().any(char::is_control) {
                return Err(bad("key", &format!("must be 1 to {MAX_KEY_CHARS} characters, no control characters")));
            }
            flow.key = Some(k.to_string());
        }
        "slots" => {
            let why = format!("must be an integer from 1 to {MAX_SLOTS}");
            let n = value.as_u64().filter(|n| (1..=u64::from(MAX_SLOTS)).contains(n));
            flow.slots = u32::try_from(n.ok_or_else(|| bad("slots", &why))?).unwrap_or(1);
        }
        "retry_delays" => flow.retry.delays_ms = Some(delays_of(value)?),
        "retry_on" => flow.retry.on = Some(exit_codes_of("retry_on", value, false)?.0),
        "no_retry_on" => {
            let (codes, timeout) = exit_codes_of("no_retry_on", value, true)?;
            flow.retry.not_on = (!codes.is_empty()).then_some(codes);
            flow.retry.not_on_timeout = timeout;
        }
        "expires_at" => {
            let s = value.as_str().ok_or_else(|| bad("expires_at", "must be an ISO-8601 string"))?;
            let at = parse_iso8601(s).ok_or_else(|| bad("expires_at", &format!("{s:?} is not an ISO-8601 time")))?;
            if at <= now_ms {
                return Err(bad("expires_at", &format!("{s:?} has already passed")));
            }
            flow.expires_at_ms = Some(at);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A stored retry rule (the JSON [`RetryRule::to_json`] wrote) back as the rule; what
/// cannot be read is the default rule.
pub fn retry_rule_from_json(text: &str) -> RetryRule {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) else { return RetryRule::default() };
    let mut flow = Flow::default();
    for (k, v) in &obj {
        let _ = flow_field(&mut flow, k, v, i64::MIN);
    }
    flow.retry
}

/// Checks one JSON object and turns it into a job.
pub fn job_from_object(obj: &Map<String, Value>, d: &SpecDefaults) -> Result<NewJob> {
    let mut job = NewJob {
        id: None,
        command: String::new(),
        max_retries: d.max_retries,
        priority: 0,
        run_at_ms: d.now_ms,
        timeout_ms: d.timeout_ms,
        cwd: d.cwd.clone(),
        env: Vec::new(),
        queue: DEFAULT_QUEUE.to_string(),
        unique_key: None,
        after: Vec::new(),
        flow: Flow::default(),
    };
    let mut has_command = false;
    for (key, value) in obj {
        if value.is_null() && key != "command" {
            continue;
        }
        match key.as_str() {
            "id" => {
                let id = value.as_str().ok_or_else(|| bad("id", "must be a string"))?;
                jobid::validate(id)?;
                job.id = Some(id.to_string());
            }
            "command" => {
                let c = value.as_str().ok_or_else(|| bad("command", "must be a string"))?;
                if c.trim().is_empty() {
                    return Err(bad("command", "must not be empty"));
                }
                if c.contains('\0') {
                    return Err(bad("command", "must not contain a NUL character"));
                }
                job.command = c.to_string();
                has_command = true;
            }
            "max_retries" => {
                let n = value.as_u64().ok_or_else(|| bad("max_retries", "must be an integer >= 0"))?;
                job.max_retries = u32::try_from(n).map_err(|_| bad("max_retries", "is too large"))?;
            }
            "priority" => {
                job.priority = value.as_i64().ok_or_else(|| bad("priority", "must be an integer"))?;
            }
            "run_at" => {
                let s = value.as_str().ok_or_else(|| bad("run_at", "must be an ISO-8601 string"))?;
                job.run_at_ms =
                    parse_iso8601(s).ok_or_else(|| bad("run_at", &format!("{s:?} is not an ISO-8601 time")))?;
            }
            "timeout" => {
                let secs = value.as_f64().filter(|_| value.is_number());
                let secs = secs.ok_or_else(|| bad("timeout", "must be a number of seconds >= 0"))?;
                job.timeout_ms = seconds_to_ms("timeout", secs)?;
            }
            "cwd" => {
                let s = value.as_str().ok_or_else(|| bad("cwd", "must be a string"))?;
                if s.is_empty() || s.contains('\0') {
                    return Err(bad("cwd", "must be a non-empty path"));
                }
                job.cwd = s.to_string();
            }
            "env" => job.env = env_of(value)?,
            "queue" => {
                let q = value.as_str().ok_or_else(|| bad("queue", "must be a string"))?;
                validate_queue(q).map_err(|_| {
                    bad("queue", &format!("{q:?} must be 1 to {MAX_QUEUE_CHARS} letters, digits, '.', '_' or '-'"))
                })?;
                job.queue = q.to_string();
            }
            "unique_key" => {
                let k = value.as_str().ok_or_else(|| bad("unique_key", "must be a string"))?;
                validate_unique_key(k)
                    .map_err(|_| bad("unique_key", "must be 1 to 255 characters, no control characters"))?;
                job.unique_key = Some(k.to_string());
            }
            "after" => job.after = after_of(value)?,
            "state" => {
                if value.as_str() != Some("pending") {
                    return Err(bad("state", "a new job can only be \"pending\""));
                }
            }
            "attempts" => {
                if value.as_u64() != Some(0) {
                    return Err(bad("attempts", "a new job can only have 0"));
                }
            }
            "created_at" | "updated_at" => {
                let ok = value.as_str().and_then(parse_iso8601).is_some();
                if !ok {
                    return Err(bad(key, "must be an ISO-8601 string"));
                }
            }
            other if flow_field(&mut job.flow, other, value, d.now_ms)? => {}
            other => {
                let other = escape_controls(other);
                return Err(Error::InvalidInput(format!("unknown field '{other}' (allowed: {FIELDS})")));
            }
        }
    }
    if !has_command {
        return Err(bad("command", "is required"));
    }
    if job.id.is_some() && job.after.iter().any(|a| Some(a) == job.id.as_ref()) {
        return Err(bad("after", "a job cannot run after itself"));
    }
    Ok(job)
}

fn job_from_value(v: &Value, d: &SpecDefaults) -> Result<NewJob> {
    match v {
        Value::Object(obj) => job_from_object(obj, d),
        _ => Err(Error::InvalidInput("a job must be a JSON object".into())),
    }
}

fn json_error(e: &serde_json::Error) -> Error {
    Error::InvalidInput(format!("invalid JSON: {e}"))
}

/// Parses one job from a JSON object text.
pub fn parse_one(text: &str, d: &SpecDefaults) -> Result<NewJob> {
    let v: Value = serde_json::from_str(text).map_err(|e| json_error(&e))?;
    job_from_value(&v, d)
}

/// Parses a batch: a JSON array of objects, or JSON Lines (one object per line, blank lines
/// ignored). Any error fails the whole batch and names the line or index. Ids repeated
/// within the batch are an error too.
pub fn parse_many(text: &str, d: &SpecDefaults) -> Result<Vec<NewJob>> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let jobs = if trimmed.starts_with('[') {
        let v: Vec<Value> = serde_json::from_str(trimmed).map_err(|e| json_error(&e))?;
        v.iter()
            .enumerate()
            .map(|(i, v)| job_from_value(v, d).map_err(|e| at(&format!("item {}", i + 1), e)))
            .collect::<Result<Vec<_>>>()?
    } else {
        let mut out = Vec::new();
        for (i, line) in trimmed.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let where_ = format!("line {}", i + 1);
            let v: Value = serde_json::from_str(line).map_err(|e| at(&where_, json_error(&e)))?;
            out.push(job_from_value(&v, d).map_err(|e| at(&where_, e))?);
        }
        out
    };
    let mut seen = HashSet::new();
    for j in &jobs {
        if let Some(id) = &j.id {
            if !seen.insert(id.as_str()) {
                return Err(Error::InvalidInput(format!("id {id:?} appears twice in the batch")));
            }
        }
    }
    // A job may run after an earlier job of the batch, never a later one (so there is no
    // cycle): name the first that tries.
    let mut before = HashSet::new();
    for (n, j) in jobs.iter().enumerate() {
        if let Some(later) = j.after.iter().find(|a| seen.contains(a.as_str()) && !before.contains(a.as_str())) {
            return Err(Error::InvalidInput(format!(
                "job {} of the batch: field 'after': job {later:?} comes later in the batch (a job can only run after one enqueued before it)",
                n + 1
            )));
        }
        if let Some(id) = &j.id {
            before.insert(id.as_str());
        }
    }
    Ok(jobs)
}

fn at(place: &str, e: Error) -> Error {
    match e {
        Error::InvalidInput(m) => Error::InvalidInput(format!("{place}: {m}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> SpecDefaults {
        SpecDefaults { max_retries: 3, timeout_ms: 0, cwd: "/tmp".into(), now_ms: 1000 }
    }

    fn err(text: &str) -> String {
        parse_one(text, &d()).unwrap_err().to_string()
    }

    #[test]
    fn the_spec_example_enqueues() {
        let j = parse_one(
            r#"{"id":"job1","command":"sleep 2","state":"pending","attempts":0,"max_retries":3,
               "created_at":"2025-11-04T10:30:00Z","updated_at":"2025-11-04T10:30:00Z"}"#,
            &d(),
        )
        .unwrap();
        assert_eq!(j.id.as_deref(), Some("job1"));
        assert_eq!(j.command, "sleep 2");
        assert_eq!(j.run_at_ms, 1000);
    }

    #[test]
    fn env_is_an_object_of_strings() {
        let d = d();
        let job = parse_one(r#"{"command":"true","env":{"A":"s3cr3t","B_2":""}}"#, &d).unwrap();
        assert_eq!(job.env, [("A".to_string(), "s3cr3t".to_string()), ("B_2".to_string(), String::new())]);
        let e = parse_one(r#"{"command":"true","env":{"A\tB\u001b":1}}"#, &d).unwrap_err();
        assert_eq!(e.to_string(), "field 'env': the value of A\\tB\\u{1b} must be a string");
        for bad_env in [r#""x""#, r#"{"A":1}"#, r#"{"":"x"}"#, r#"{"A=B":"x"}"#] {
            let e = parse_one(&format!(r#"{{"command":"true","env":{bad_env}}}"#), &d).unwrap_err();
            assert!(e.to_string().contains("field 'env'"), "{bad_env}: {e}");
        }
        assert!(!format!("{job:?}").contains("s3cr3t"), "Debug shows the names only: {job:?}");
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err(r#"{"command":""}"#).contains("'command'"));
        assert!(err(r#"{"command":"   "}"#).contains("'command'"));
        assert!(err(r#"{"id":"x"}"#).contains("'command': is required"));
        assert!(err(r#"{"command":"true","priority":"high"}"#).contains("'priority'"));
        assert!(err(r#"{"command":"true","max_retries":-1}"#).contains("'max_retries'"));
        assert!(err(r#"{"command":"true","timeout":"5"}"#).contains("'timeout'"));
        assert!(err(r#"{"command":"true","run_at":"soon"}"#).contains("'run_at'"));
        assert!(err(r#"{"command":"true","state":"dead"}"#).contains("'state'"));
        assert!(err(r#"{"command":"true","attempts":2}"#).contains("'attempts'"));
        assert!(err(r#"{"command":"true","colour":"red"}"#).contains("unknown field 'colour'"));
        // Found by the fuzzer: a field name with a control character, quoted raw, broke the
        // one-line error (and could carry a terminal escape sequence).
        assert_eq!(
            err("{\"command\":\"true\",\"a\\tb\\u001b[31m\\n\":1}").split(" (allowed").next(),
            Some("unknown field 'a\\tb\\u{1b}[31m\\n'")
        );
        assert!(err(r#"{"command":"true""#).starts_with("invalid JSON"));
        assert!(err(r#"["true"]"#).contains("JSON object"));
    }

    #[test]
    fn batches_report_the_line_and_duplicates() {
        let e = parse_many("{\"command\":\"a\"}\n\n{\"command\":5}\n", &d()).unwrap_err();
        assert!(e.to_string().starts_with("line 3: field 'command'"), "{e}");
        let e = parse_many(r#"[{"command":"a"},{"cmd":"b"}]"#, &d()).unwrap_err();
        assert!(e.to_string().starts_with("item 2: unknown field"), "{e}");
        let e = parse_many("{\"id\":\"x\",\"command\":\"a\"}\n{\"id\":\"x\",\"command\":\"b\"}", &d()).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert_eq!(parse_many("{\"command\":\"a\"}\n{\"command\":\"b\"}", &d()).unwrap().len(), 2);
    }

    #[test]
    fn after_names_earlier_jobs() {
        let one = parse_one(r#"{"command":"true","after":"a"}"#, &d()).unwrap();
        assert_eq!(one.after, ["a"]);
        let many = parse_one(r#"{"command":"true","after":["a","b","a"]}"#, &d()).unwrap();
        assert_eq!(many.after, ["a", "b"], "repeats are dropped");
        assert!(err(r#"{"command":"true","after":[1]}"#).contains("field 'after'"));
        assert!(err(r#"{"command":"true","after":[""]}"#).contains("field 'after'"));
        assert!(err(r#"{"id":"x","command":"true","after":["x"]}"#).contains("itself"));
        let batch = "{\"id\":\"a\",\"command\":\"x\"}\n{\"id\":\"b\",\"command\":\"y\",\"after\":[\"a\"]}";
        assert_eq!(parse_many(batch, &d()).unwrap()[1].after, ["a"]);
        let e = parse_many("{\"id\":\"b\",\"command\":\"y\",\"after\":\"a\"}\n{\"id\":\"a\",\"command\":\"x\"}", &d())
            .unwrap_err();
        assert!(e.to_string().contains("comes later in the batch"), "{e}");
    }
}
