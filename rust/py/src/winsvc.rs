//! The Windows service manager for `queuectl service` on Windows: install, query, start,
//! stop, uninstall, and `run` (what the service manager starts: it hosts the workers in
//! this process until the service is stopped). Windows only.

use std::time::Duration;

use pyo3::prelude::*;

use queuectl_core::winservice::{self, HostConfig, InstallSpec};

use crate::errors::py_err;

/// Creates the service `name` running `executable` with `arguments` (automatic start,
/// restarts after failures, `account` or NT AUTHORITY\LocalService).
#[pyfunction]
#[pyo3(signature = (name, executable, arguments, description, account = None))]
fn winservice_install(
    py: Python<'_>,
    name: String,
    executable: String,
    arguments: Vec<String>,
    description: String,
    account: Option<String>,
) -> PyResult<Vec<String>> {
    let spec = InstallSpec {
        name,
        description,
        executable: executable.into(),
        arguments: arguments.into_iter().map(Into::into).collect(),
        account,
    };
    py.detach(|| winservice::install(&spec)).map_err(py_err)
}

/// The service's state (e.g. "Running") and process id.
#[pyfunction]
fn winservice_query(py: Python<'_>, name: String) -> PyResult<(String, Option<u32>)> {
    let (state, pid) = py.detach(|| winservice::query(&name)).map_err(py_err)?;
    Ok((format!("{state:?}"), pid))
}

#[pyfunction]
fn winservice_start(py: Python<'_>, name: String, wait_s: f64) -> PyResult<()> {
    py.detach(|| {
        winservice::start(&name)?;
        winservice::wait_for(&name, winservice::State::Running, Duration::from_secs_f64(wait_s))
    })
    .map_err(py_err)
}

#[pyfunction]
fn winservice_stop(py: Python<'_>, name: String, wait_s: f64) -> PyResult<()> {
    py.detach(|| {
        winservice::stop(&name)?;
        winservice::wait_for(&name, winservice::State::Stopped, Duration::from_secs_f64(wait_s))
    })
    .map_err(py_err)
}

#[pyfunction]
fn winservice_uninstall(py: Python<'_>, name: String, wait_s: f64) -> PyResult<()> {
    py.detach(|| winservice::uninstall(&name, Duration::from_secs_f64(wait_s))).map_err(py_err)
}

/// Hosts the service `name` in this process until it is stopped.
#[pyfunction]
#[pyo3(signature = (name, location, logs_dir, log_file, count, lease_ms, stop_timeout_s, host, queues = None, slots = None))]
#[allow(clippy::too_many_arguments)]
fn winservice_run(
    py: Python<'_>,
    name: String,
    location: String,
    logs_dir: String,
    log_file: String,
    count: usize,
    lease_ms: i64,
    stop_timeout_s: f64,
    host: String,
    queues: Option<Vec<String>>,
    slots: Option<u32>,
) -> PyResult<()> {
    let cfg = HostConfig {
        name,
        location,
        logs_dir: logs_dir.into(),
        log_file: log_file.into(),
        count,
        lease_ms,
        stop_timeout: Duration::from_secs_f64(stop_timeout_s.max(0.0)),
        queues,
        slots,
        host,
    };
    py.detach(|| winservice::run(cfg)).map_err(py_err)
}

pub(crate) fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(winservice_install, m)?)?;
    m.add_function(wrap_pyfunction!(winservice_query, m)?)?;
    m.add_function(wrap_pyfunction!(winservice_start, m)?)?;
    m.add_function(wrap_pyfunction!(winservice_stop, m)?)?;
    m.add_function(wrap_pyfunction!(winservice_uninstall, m)?)?;
    m.add_function(wrap_pyfunction!(winservice_run, m)?)?;
    Ok(())
}
