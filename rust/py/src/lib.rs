//! `queuectl._core`: the Python face of queuectl-core. A thin layer with no logic of its
//! own: it converts values, releases the interpreter around every call that touches the
//! database, sleeps or waits for a child, and maps the core error to Python once
//! (`errors`). The values are in `values`, the `Store` class in `store`, the `WorkerPool`
//! class in `pool`, the rules and config keys in `rules`; the constants Python must not
//! repeat are exported here.

mod errors;
mod pool;
mod rules;
mod store;
mod values;
#[cfg(windows)]
mod winsvc;

use std::path::PathBuf;

use pyo3::prelude::*;

use queuectl_core::store::{open_store, StopLevel, StoreOptions, DEFAULT_BUSY_TIMEOUT_MS};
use queuectl_core::worker::{DEFAULT_HEARTBEAT_MS, DEFAULT_KILL_GRACE_MS, DEFAULT_LEASE_MS, DEFAULT_POLL_MS};
use queuectl_core::{clock, jobid, JobState};

use crate::errors::{py_err, InputError};

/// A stop level from Python: 1 graceful, 2 force.
fn stop_level(level: u8) -> PyResult<StopLevel> {
    match level {
        1 => Ok(StopLevel::Graceful),
        2 => Ok(StopLevel::Force),
        _ => Err(InputError::new_err(format!("stop level must be 1 (graceful) or 2 (force), got {level}"))),
    }
}

/// Whether a location names a PostgreSQL database rather than a SQLite file.
#[pyfunction]
fn is_postgres_location(location: &str) -> bool {
    queuectl_core::store::is_postgres(location)
}

/// Checks a queue name (InputError saying what a name may hold).
#[pyfunction]
fn validate_queue(name: &str) -> PyResult<()> {
    queuectl_core::job::validate_queue(name).map_err(py_err)
}

/// The log file of job `id` inside `logs_dir`; never outside it, whatever the id.
#[pyfunction]
fn log_path(logs_dir: PathBuf, id: &str) -> PathBuf {
    jobid::log_path(&logs_dir, id)
}

/// Milliseconds since the Unix epoch, by the clock the core uses.
#[pyfunction]
fn now_ms() -> i64 {
    clock::now_ms()
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
#[pyfunction]
fn format_time(ms: i64) -> String {
    clock::format_iso8601(ms)
}

/// Parses an ISO-8601 instant (no offset means UTC) to milliseconds, or raises InputError.
#[pyfunction]
fn parse_time(text: &str) -> PyResult<i64> {
    clock::parse_iso8601(text).ok_or_else(|| InputError::new_err(format!("{text:?} is not an ISO-8601 time")))
}

/// The version of the bundled SQLite library.
#[pyfunction]
fn sqlite_version() -> &'static str {
    queuectl_core::store::sqlite_library_version()
}

/// Copies the SQLite queue at `source` (jobs, attempt history, config) into the PostgreSQL
/// queue at `target` in one transaction. Returns (jobs, attempts, config keys) copied.
#[pyfunction]
fn copy_sqlite_to_postgres(py: Python<'_>, source: PathBuf, target: String) -> PyResult<(u64, u64, u64)> {
    let r = py
        .detach(|| queuectl_core::store::transfer::sqlite_to_postgres(&source, &target, &StoreOptions::default()))
        .map_err(py_err)?;
    Ok((r.jobs, r.attempts, r.config))
}

/// Copies the PostgreSQL queue at `source` into the SQLite file `target` (created when
/// absent) in one transaction. Returns (jobs, attempts, config keys) copied.
#[pyfunction]
fn copy_postgres_to_sqlite(py: Python<'_>, source: String, target: PathBuf) -> PyResult<(u64, u64, u64)> {
    let r = py
        .detach(|| queuectl_core::store::transfer::postgres_to_sqlite(&source, &target, &StoreOptions::default()))
        .map_err(py_err)?;
    Ok((r.jobs, r.attempts, r.config))
}

/// Writes a consistent snapshot of the queue at `location` to the new SQLite file `path`.
/// Returns the counts copied: jobs, attempts, config, and requeued (jobs that were
/// processing, pending in the copy).
#[pyfunction]
fn backup(py: Python<'_>, location: String, path: PathBuf) -> PyResult<std::collections::HashMap<&'static str, u64>> {
    let r = py
        .detach(|| queuectl_core::store::transfer::backup(&location, &path, &StoreOptions::default()))
        .map_err(py_err)?;
    Ok([("jobs", r.jobs), ("attempts", r.attempts), ("config", r.config), ("requeued", r.requeued)].into())
}

/// Checks the queue at `location`: (schema version, problems). A queue that cannot be
/// opened is reported as a problem with no version.
#[pyfunction]
fn check(py: Python<'_>, location: String) -> (Option<i64>, Vec<String>) {
    py.detach(|| match open_store(&location, &StoreOptions::default()) {
        Ok(mut store) => {
            let r = queuectl_core::store::check::check(store.as_mut(), clock::now_ms());
            (Some(r.schema_version), r.problems)
        }
        Err(e) => (None, vec![format!("cannot open the queue: {e}")]),
    })
}

/// A store location with any password left out, fit to print.
/// The next `count` occurrences of a rule after `after_ms`: (ms, local time in its zone).
#[pyfunction]
#[pyo3(signature = (cron, tz, after_ms, count))]
fn schedule_times(cron: &str, tz: Option<&str>, after_ms: i64, count: usize) -> PyResult<Vec<(i64, String)>> {
    let timing = queuectl_core::schedule::Timing::parse(cron, tz).map_err(errors::py_err)?;
    Ok(timing.upcoming(after_ms, count.min(1000)).into_iter().map(|ms| (ms, timing.local(ms))).collect())
}

#[pyfunction]
fn redact_location(location: &str) -> String {
    queuectl_core::store::redact(location)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<values::Job>()?;
    m.add_class::<values::Attempt>()?;
    m.add_class::<values::Worker>()?;
    m.add_class::<values::Queue>()?;
    m.add_class::<values::Schedule>()?;
    m.add_class::<store::Store>()?;
    m.add_class::<pool::WorkerPool>()?;
    m.add("JOB_STATES", JobState::ALL.map(JobState::as_str).to_vec())?;
    m.add("STOP_GRACEFUL", StopLevel::Graceful.as_u8())?;
    m.add("STOP_FORCE", StopLevel::Force.as_u8())?;
    m.add("DEFAULT_LEASE_MS", DEFAULT_LEASE_MS)?;
    m.add("DEFAULT_HEARTBEAT_MS", DEFAULT_HEARTBEAT_MS)?;
    m.add("DEFAULT_POLL_MS", DEFAULT_POLL_MS)?;
    m.add("DEFAULT_KILL_GRACE_MS", DEFAULT_KILL_GRACE_MS)?;
    m.add("DEFAULT_BUSY_TIMEOUT_MS", DEFAULT_BUSY_TIMEOUT_MS)?;
    m.add("DEFAULT_QUEUE", queuectl_core::job::DEFAULT_QUEUE)?;
    rules::add(m)?;
    m.add_function(wrap_pyfunction!(is_postgres_location, m)?)?;
    m.add_function(wrap_pyfunction!(log_path, m)?)?;
    m.add_function(wrap_pyfunction!(now_ms, m)?)?;
    m.add_function(wrap_pyfunction!(format_time, m)?)?;
    m.add_function(wrap_pyfunction!(parse_time, m)?)?;
    m.add_function(wrap_pyfunction!(sqlite_version, m)?)?;
    m.add_function(wrap_pyfunction!(redact_location, m)?)?;
    m.add_function(wrap_pyfunction!(copy_sqlite_to_postgres, m)?)?;
    m.add_function(wrap_pyfunction!(validate_queue, m)?)?;
    m.add_function(wrap_pyfunction!(copy_postgres_to_sqlite, m)?)?;
    m.add_function(wrap_pyfunction!(backup, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(schedule_times, m)?)?;
    #[cfg(windows)]
    winsvc::add(m)?;
    Ok(())
}
