//! `queuectl._core`: the Python face of queuectl-core. A thin layer with no logic of its
//! own: it converts values, releases the interpreter around every call that touches the
//! database, sleeps or waits for a child, and maps the core error to Python once.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use queuectl_core::clock;
use queuectl_core::spec::{self, SpecDefaults};
use queuectl_core::store::{open_store, StoreOptions, WorkerRow};
use queuectl_core::worker::{new_worker_id, Pool, WorkerConfig};
use queuectl_core::{jobid, Error, JobState};

create_exception!(_core, QueuectlError, PyException, "Base of every error queuectl raises.");
create_exception!(_core, InputError, QueuectlError, "Input breaks the job or config contract.");
create_exception!(_core, DuplicateJobError, QueuectlError, "A job with this id already exists.");
create_exception!(_core, JobNotFoundError, QueuectlError, "No job with this id.");
create_exception!(_core, JobStateError, QueuectlError, "The job is not in a state that allows this.");
create_exception!(_core, SchemaError, QueuectlError, "The database was written by a newer queuectl.");
create_exception!(_core, StoreError, QueuectlError, "The database or a file could not be used.");
create_exception!(_core, UnsupportedError, QueuectlError, "Not available in this build.");

/// The one place a core error becomes a Python exception.
fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::InvalidInput(_) => InputError::new_err(msg),
        Error::DuplicateId(_) => DuplicateJobError::new_err(msg),
        Error::NotFound(_) => JobNotFoundError::new_err(msg),
        Error::InvalidState(_) => JobStateError::new_err(msg),
        Error::SchemaTooNew { .. } => SchemaError::new_err(msg),
        Error::Database(_) | Error::Lasting(_) | Error::Io(_) => StoreError::new_err(msg),
        Error::Unsupported(_) => UnsupportedError::new_err(msg),
    }
}

fn parse_state(name: &str) -> PyResult<JobState> {
    JobState::parse(name).ok_or_else(|| InputError::new_err(format!("unknown state {name:?}")))
}

/// A job as stored; times are milliseconds since the Unix epoch.
#[pyclass(frozen, get_all, module = "queuectl._core")]
struct Job {
    id: String,
    command: String,
    state: String,
    attempts: u32,
    max_retries: u32,
    priority: i64,
    run_at_ms: i64,
    timeout_ms: u64,
    cwd: String,
    created_at_ms: i64,
    updated_at_ms: i64,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    exit_code: Option<i32>,
    last_error: Option<String>,
    worker_id: Option<String>,
    lease_expires_ms: Option<i64>,
}

impl From<queuectl_core::Job> for Job {
    fn from(j: queuectl_core::Job) -> Self {
        Job {
            id: j.id,
            command: j.command,
            state: j.state.as_str().to_string(),
            attempts: j.attempts,
            max_retries: j.max_retries,
            priority: j.priority,
            run_at_ms: j.run_at_ms,
            timeout_ms: j.timeout_ms,
            cwd: j.cwd,
            created_at_ms: j.created_at_ms,
            updated_at_ms: j.updated_at_ms,
            started_at_ms: j.started_at_ms,
            finished_at_ms: j.finished_at_ms,
            exit_code: j.exit_code,
            last_error: j.last_error,
            worker_id: j.worker_id,
            lease_expires_ms: j.lease_expires_ms,
        }
    }
}

#[pymethods]
impl Job {
    fn __repr__(&self) -> String {
        format!("Job(id={:?}, state={:?}, attempts={})", self.id, self.state, self.attempts)
    }
}

/// One finished attempt of a job.
#[pyclass(frozen, get_all, module = "queuectl._core")]
struct Attempt {
    attempt: u32,
    worker_id: Option<String>,
    started_at_ms: Option<i64>,
    finished_at_ms: i64,
    exit_code: Option<i32>,
    error: Option<String>,
    outcome: String,
    output_tail: String,
}

/// A registered worker.
#[pyclass(frozen, get_all, module = "queuectl._core")]
struct Worker {
    id: String,
    host: String,
    pid: u32,
    state: String,
    current_job: Option<String>,
    started_at_ms: i64,
    heartbeat_ms: i64,
    lease_ms: i64,
    stop_requested: u8,
    exited_at_ms: Option<i64>,
}

impl From<WorkerRow> for Worker {
    fn from(w: WorkerRow) -> Self {
        Worker {
            id: w.id,
            host: w.host,
            pid: w.pid,
            state: w.state,
            current_job: w.current_job,
            started_at_ms: w.started_at_ms,
            heartbeat_ms: w.heartbeat_ms,
            lease_ms: w.lease_ms,
            stop_requested: w.stop_requested,
            exited_at_ms: w.exited_at_ms,
        }
    }
}

/// A connection to a queuectl database (a SQLite path or a PostgreSQL URL).
#[pyclass(frozen, module = "queuectl._core")]
struct Store {
    inner: Mutex<Box<dyn queuectl_core::Store>>,
}

impl Store {
    /// Runs `f` on the connection with the interpreter released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn queuectl_core::Store) -> queuectl_core::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            f(guard.as_mut())
        })
        .map_err(py_err)
    }
}

#[pymethods]
impl Store {
    #[new]
    #[pyo3(signature = (location, durable = true, busy_timeout_ms = 30_000))]
    fn new(py: Python<'_>, location: String, durable: bool, busy_timeout_ms: u64) -> PyResult<Self> {
        let opts = StoreOptions { durable, busy_timeout_ms };
        let store = py.detach(|| open_store(&location, &opts)).map_err(py_err)?;
        Ok(Store { inner: Mutex::new(store) })
    }

    /// Parses JSON (one object, or with `batch` a JSON array or JSON Lines) and enqueues
    /// every job in one transaction. Returns the ids.
    /// `progress(done, total)` is called now and then while a large batch is written.
    #[pyo3(signature = (text, *, batch, max_retries, timeout_ms, cwd, progress = None))]
    #[allow(clippy::too_many_arguments)]
    fn enqueue_json(
        &self,
        py: Python<'_>,
        text: String,
        batch: bool,
        max_retries: u32,
        timeout_ms: u64,
        cwd: String,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        self.with(py, |s| {
            let now = clock::now_ms();
            let d = SpecDefaults { max_retries, timeout_ms, cwd, now_ms: now };
            let jobs = if batch { spec::parse_many(&text, &d)? } else { vec![spec::parse_one(&text, &d)?] };
            let total = jobs.len();
            let mut report = |done: usize| {
                if let Some(cb) = &progress {
                    // A broken progress display must not fail the batch.
                    Python::attach(|py| drop(cb.call1(py, (done, total))));
                }
            };
            s.job_insert_many(&jobs, now, Some(&mut report))
        })
    }

    fn get(&self, py: Python<'_>, id: String) -> PyResult<Job> {
        self.with(py, |s| s.job_get(&id)).map(Job::from)
    }

    #[pyo3(signature = (state = None, limit = None))]
    fn jobs(&self, py: Python<'_>, state: Option<&str>, limit: Option<u64>) -> PyResult<Vec<Job>> {
        let state = state.map(parse_state).transpose()?;
        let jobs = self.with(py, |s| s.job_list(state, limit))?;
        Ok(jobs.into_iter().map(Job::from).collect())
    }

    /// Number of jobs per state, every state included.
    fn counts(&self, py: Python<'_>) -> PyResult<Vec<(String, u64)>> {
        let c = self.with(py, |s| s.job_count_by_state())?;
        Ok(c.into_iter().map(|(st, n)| (st.as_str().to_string(), n)).collect())
    }

    fn attempts(&self, py: Python<'_>, id: String) -> PyResult<Vec<Attempt>> {
        let rows = self.with(py, |s| s.job_attempts(&id))?;
        Ok(rows
            .into_iter()
            .map(|a| Attempt {
                attempt: a.attempt,
                worker_id: a.worker_id,
                started_at_ms: a.started_at_ms,
                finished_at_ms: a.finished_at_ms,
                exit_code: a.exit_code,
                error: a.error,
                outcome: a.outcome.as_str().to_string(),
                output_tail: a.output_tail,
            })
            .collect())
    }

    /// Deletes completed or dead jobs changed at or before `cutoff_ms`; returns their ids.
    #[pyo3(signature = (state, cutoff_ms = None))]
    fn purge(&self, py: Python<'_>, state: &str, cutoff_ms: Option<i64>) -> PyResult<Vec<String>> {
        let state = parse_state(state)?;
        self.with(py, |s| s.job_purge(state, cutoff_ms))
    }

    fn dead_retry(&self, py: Python<'_>, ids: Vec<String>) -> PyResult<u64> {
        self.with(py, |s| s.dead_retry(&ids, clock::now_ms()))
    }

    fn dead_retry_all(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| s.dead_retry_all(clock::now_ms()))
    }

    fn config_get(&self, py: Python<'_>, key: String) -> PyResult<Option<String>> {
        self.with(py, |s| s.config_get(&key))
    }

    fn config_set(&self, py: Python<'_>, key: String, value: String) -> PyResult<()> {
        self.with(py, |s| s.config_set(&key, &value, clock::now_ms()))
    }

    fn config_list(&self, py: Python<'_>) -> PyResult<Vec<(String, String)>> {
        self.with(py, |s| s.config_list())
    }

    #[pyo3(signature = (include_exited = false))]
    fn workers(&self, py: Python<'_>, include_exited: bool) -> PyResult<Vec<Worker>> {
        let rows = self.with(py, |s| s.worker_list(include_exited))?;
        Ok(rows.into_iter().map(Worker::from).collect())
    }

    /// Asks running workers to stop (1 graceful, 2 force); returns how many were asked.
    #[pyo3(signature = (level, host = None))]
    fn request_stop(&self, py: Python<'_>, level: u8, host: Option<String>) -> PyResult<u64> {
        self.with(py, |s| s.worker_request_stop(level, host.as_deref()))
    }

    /// Marks workers whose heartbeat ran out as exited, and rescues their jobs.
    fn reap(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| {
            let now = clock::now_ms();
            s.job_rescue_expired(now)?;
            s.worker_reap(now)
        })
    }

    fn describe(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |s| Ok(s.describe()))
    }
}

/// Worker threads running in this process.
#[pyclass(frozen, module = "queuectl._core")]
struct WorkerPool {
    pool: RwLock<Option<Pool>>,
    ids: Vec<String>,
}

#[pymethods]
impl WorkerPool {
    /// Registers `count` workers and starts them; returns once all are registered.
    #[new]
    #[pyo3(signature = (location, count, *, logs_dir, host, pid, lease_ms = 30_000, heartbeat_ms = 1_000,
                        poll_ms = 100, kill_grace_ms = 2_000, burst = false, verbose = true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        location: String,
        count: usize,
        logs_dir: PathBuf,
        host: String,
        pid: u32,
        lease_ms: i64,
        heartbeat_ms: u64,
        poll_ms: u64,
        kill_grace_ms: u64,
        burst: bool,
        verbose: bool,
    ) -> PyResult<Self> {
        let cfgs: Vec<WorkerConfig> = (0..count)
            .map(|_| WorkerConfig {
                lease_ms,
                heartbeat_ms,
                poll_ms,
                kill_grace_ms,
                burst,
                verbose,
                ..WorkerConfig::new(new_worker_id(), host.clone(), pid, logs_dir.clone())
            })
            .collect();
        let opts = StoreOptions { durable: false, ..StoreOptions::default() };
        let pool = py.detach(|| Pool::start(&location, &opts, cfgs)).map_err(py_err)?;
        let ids = pool.worker_ids().to_vec();
        Ok(WorkerPool { pool: RwLock::new(Some(pool)), ids })
    }

    #[getter]
    fn worker_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// Asks every worker of the pool to stop: 1 after its current job, 2 killing it.
    fn request_stop(&self, level: u8) {
        if let Some(p) = self.pool.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            p.request_stop(level);
        }
    }

    /// Waits up to `timeout_s` for every worker to exit; true when all have.
    fn wait(&self, py: Python<'_>, timeout_s: f64) -> bool {
        py.detach(|| match self.pool.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(p) => p.wait(Duration::from_secs_f64(timeout_s.max(0.0))),
            None => true,
        })
    }

    /// Joins the workers; returns what they did as a dict.
    fn join(&self, py: Python<'_>) -> PyResult<std::collections::HashMap<&'static str, u64>> {
        let pool = self.pool.write().unwrap_or_else(|p| p.into_inner()).take();
        let Some(pool) = pool else {
            return Ok(Default::default());
        };
        let s = py.detach(|| pool.join()).map_err(py_err)?;
        Ok([("completed", s.completed), ("failed", s.failed), ("dead", s.dead), ("requeued", s.requeued)].into())
    }
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
#[pyfunction]
fn redact_location(location: &str) -> String {
    queuectl_core::store::redact(location)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("QueuectlError", py.get_type::<QueuectlError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("DuplicateJobError", py.get_type::<DuplicateJobError>())?;
    m.add("JobNotFoundError", py.get_type::<JobNotFoundError>())?;
    m.add("JobStateError", py.get_type::<JobStateError>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    m.add("StoreError", py.get_type::<StoreError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add_class::<Job>()?;
    m.add_class::<Attempt>()?;
    m.add_class::<Worker>()?;
    m.add_class::<Store>()?;
    m.add_class::<WorkerPool>()?;
    m.add_function(wrap_pyfunction!(log_path, m)?)?;
    m.add_function(wrap_pyfunction!(now_ms, m)?)?;
    m.add_function(wrap_pyfunction!(format_time, m)?)?;
    m.add_function(wrap_pyfunction!(parse_time, m)?)?;
    m.add_function(wrap_pyfunction!(sqlite_version, m)?)?;
    m.add_function(wrap_pyfunction!(redact_location, m)?)?;
    m.add_function(wrap_pyfunction!(copy_sqlite_to_postgres, m)?)?;
    m.add_function(wrap_pyfunction!(copy_postgres_to_sqlite, m)?)?;
    m.add_function(wrap_pyfunction!(backup, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    Ok(())
}
