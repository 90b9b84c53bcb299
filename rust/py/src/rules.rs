//! The rules and config keys of the core (`queuectl_core::rules`, `queuectl_core::config`)
//! as plain Python values and functions, so the Python side restates none of them.

use pyo3::prelude::*;
use pyo3::types::PyString;

use queuectl_core::rules::{self, ByIdChange};
use queuectl_core::{config, JobState};

use crate::errors::{py_err, InputError};

/// A Python string as Rust text (one that is not valid Unicode, as a lone surrogate from
/// a command line, with the replacement character for what cannot be encoded).
fn owned(s: &Bound<'_, PyString>) -> String {
    s.to_string_lossy().into_owned()
}

/// The stored name of a config key, any spelling (InputError naming the keys).
#[pyfunction]
fn config_key(key: &Bound<'_, PyString>) -> PyResult<&'static str> {
    config::canonical(&owned(key)).map(|k| k.name).map_err(py_err)
}

/// The stored name of a config key and the value as stored (InputError saying what is
/// allowed).
#[pyfunction]
fn config_normalize(key: &Bound<'_, PyString>, value: &Bound<'_, PyString>) -> PyResult<(&'static str, String)> {
    config::normalize(&owned(key), &owned(value)).map_err(py_err)
}

/// `30`, `1.5`, `30s`, `10m`, `2h`, `7d` as seconds (InputError saying what a duration is).
#[pyfunction]
fn parse_seconds(text: &Bound<'_, PyString>) -> PyResult<f64> {
    config::parse_seconds(&owned(text)).map_err(py_err)
}

fn job_state(name: &str) -> PyResult<JobState> {
    JobState::parse(name).ok_or_else(|| InputError::new_err(format!("unknown job state {name:?}")))
}

/// Whether a job in `state` may undergo `change` (retry-dead, retry, delete, cancel).
#[pyfunction]
fn change_allowed(change: &str, state: &str) -> PyResult<bool> {
    let c = ByIdChange::parse(change).ok_or_else(|| InputError::new_err(format!("unknown change {change:?}")))?;
    Ok(c.allows(job_state(state)?))
}

/// How many more times a job may run after `attempts` attempts, with `max_retries`.
#[pyfunction]
fn tries_left(attempts: u32, max_retries: u32) -> u32 {
    rules::tries_left(attempts, max_retries)
}

/// Whether a worker with this last heartbeat and lease is lost at `now_ms`.
#[pyfunction]
fn worker_lost(heartbeat_ms: i64, lease_ms: i64, now_ms: i64) -> bool {
    rules::worker_lost(heartbeat_ms, lease_ms, now_ms)
}

/// Adds the constants and functions to the module.
pub fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let keys: Vec<(&str, String, &str)> = config::KEYS.iter().map(|k| (k.name, k.default_text(), k.help)).collect();
    m.add("CONFIG_KEYS", keys)?;
    let finals: Vec<&str> = JobState::ALL.into_iter().filter(|s| s.is_final()).map(JobState::as_str).collect();
    m.add("FINAL_STATES", finals)?;
    m.add("CHANGES", ByIdChange::ALL.map(ByIdChange::as_str).to_vec())?;
    m.add_function(wrap_pyfunction!(config_key, m)?)?;
    m.add_function(wrap_pyfunction!(config_normalize, m)?)?;
    m.add_function(wrap_pyfunction!(parse_seconds, m)?)?;
    m.add_function(wrap_pyfunction!(change_allowed, m)?)?;
    m.add_function(wrap_pyfunction!(tries_left, m)?)?;
    m.add_function(wrap_pyfunction!(worker_lost, m)?)?;
    Ok(())
}
