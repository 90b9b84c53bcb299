//! The values `queuectl._core` hands to Python: jobs, attempts, workers, as frozen
//! classes with plain fields (times in milliseconds since the Unix epoch).

use pyo3::prelude::*;

use queuectl_core::store::{QueueRow, ScheduleRow, WorkerRow};

/// A job as stored; times are milliseconds since the Unix epoch.
#[pyclass(frozen, get_all, module = "queuectl._core")]
pub struct Job {
    id: String,
    command: String,
    state: &'static str,
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
    /// The names of the job's own environment variables; their values never reach Python.
    env_names: Vec<String>,
    queue: String,
    /// When a cancel was asked for while it runs (its worker kills it); None otherwise.
    cancel_requested_ms: Option<i64>,
    /// While it is unfinished, no other job with this key is enqueued.
    unique_key: Option<String>,
    /// How many of the jobs it runs after have not completed (0 unless waiting).
    waiting_on: u32,
    /// Flow control: at most `queue key-limit` processing jobs of its queue share the key.
    key: Option<String>,
    /// The slots it takes in its worker process while it runs.
    slots: u32,
    /// Its own retry delays in ms (the k-th before retry k, the last repeating); None: the
    /// config's backoff.
    retry_delays_ms: Option<Vec<u64>>,
    /// Only failures with these exit codes are retried; None: any.
    retry_on: Option<Vec<i32>>,
    /// Failures with these exit codes are not retried.
    no_retry_on: Option<Vec<i32>>,
    /// A failure with no exit code (a timeout, a kill, a failed start) is not retried.
    no_retry_timeout: bool,
    /// A job not started by then is cancelled ("expired").
    expires_at_ms: Option<i64>,
}

impl From<queuectl_core::Job> for Job {
    fn from(j: queuectl_core::Job) -> Self {
        Job {
            env_names: j.env_names(),
            id: j.id,
            command: j.command,
            state: j.state.as_str(),
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
            queue: j.queue,
            cancel_requested_ms: j.cancel_requested_ms,
            unique_key: j.unique_key,
            waiting_on: j.waiting_on,
            key: j.flow.key,
            slots: j.flow.slots,
            retry_delays_ms: j.flow.retry.delays_ms,
            retry_on: j.flow.retry.on,
            no_retry_on: j.flow.retry.not_on,
            no_retry_timeout: j.flow.retry.not_on_timeout,
            expires_at_ms: j.flow.expires_at_ms,
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
pub struct Attempt {
    attempt: u32,
    worker_id: Option<String>,
    started_at_ms: Option<i64>,
    finished_at_ms: i64,
    exit_code: Option<i32>,
    error: Option<String>,
    outcome: &'static str,
    output_tail: String,
}

impl From<queuectl_core::Attempt> for Attempt {
    fn from(a: queuectl_core::Attempt) -> Self {
        Attempt {
            attempt: a.attempt,
            worker_id: a.worker_id,
            started_at_ms: a.started_at_ms,
            finished_at_ms: a.finished_at_ms,
            exit_code: a.exit_code,
            error: a.error,
            outcome: a.outcome.as_str(),
            output_tail: a.output_tail,
        }
    }
}

/// A registered worker.
#[pyclass(frozen, get_all, module = "queuectl._core")]
pub struct Worker {
    id: String,
    host: String,
    pid: u32,
    state: &'static str,
    current_job: Option<String>,
    started_at_ms: i64,
    heartbeat_ms: i64,
    lease_ms: i64,
    stop_requested: u8,
    exited_at_ms: Option<i64>,
    /// The queues it serves; None: every queue.
    queues: Option<Vec<String>>,
    /// The slots of its process; None for a worker registered before slots existed.
    slots: Option<u32>,
}

impl From<WorkerRow> for Worker {
    fn from(w: WorkerRow) -> Self {
        Worker {
            id: w.id,
            host: w.host,
            pid: w.pid,
            state: w.state.as_str(),
            current_job: w.current_job,
            started_at_ms: w.started_at_ms,
            heartbeat_ms: w.heartbeat_ms,
            lease_ms: w.lease_ms,
            stop_requested: w.stop_requested.as_u8(),
            exited_at_ms: w.exited_at_ms,
            queues: w.queues,
            slots: w.slots,
        }
    }
}

/// A named queue: its settings and its jobs counted by state.
#[pyclass(frozen, get_all, module = "queuectl._core")]
pub struct Queue {
    name: String,
    paused: bool,
    /// At most this many of its jobs processing at once; 0: no limit.
    limit: u64,
    /// At most `rate_n` of its jobs start in any window of `rate_period_ms`; 0: no rate.
    rate_n: u64,
    rate_period_ms: u64,
    /// At most this many of its processing jobs share one key; 0: no limit.
    key_limit: u64,
    /// (state, count) for every state, zeros included.
    counts: Vec<(&'static str, u64)>,
}

impl From<QueueRow> for Queue {
    fn from(q: QueueRow) -> Self {
        Queue {
            name: q.name,
            paused: q.paused,
            limit: q.limit,
            rate_n: q.rate_n,
            rate_period_ms: q.rate_period_ms,
            key_limit: q.key_limit,
            counts: q.counts.into_iter().map(|(s, n)| (s.as_str(), n)).collect(),
        }
    }
}

/// A schedule as stored, with the state of the last job it enqueued.
#[pyclass(frozen, get_all, module = "queuectl._core")]
pub struct Schedule {
    name: String,
    cron: String,
    tz: String,
    overlap: &'static str,
    /// The enqueue JSON of each occurrence's job.
    job: String,
    paused: bool,
    next_fire_ms: i64,
    last_fire_ms: Option<i64>,
    last_job_id: Option<String>,
    last_job_state: Option<&'static str>,
    fired: u64,
    skipped: u64,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<ScheduleRow> for Schedule {
    fn from(r: ScheduleRow) -> Self {
        Schedule {
            name: r.name,
            cron: r.cron,
            tz: r.tz,
            overlap: r.overlap.as_str(),
            job: r.job,
            paused: r.paused,
            next_fire_ms: r.next_fire_ms,
            last_fire_ms: r.last_fire_ms,
            last_job_id: r.last_job_id,
            last_job_state: r.last_job_state.map(|s| s.as_str()),
            fired: r.fired,
            skipped: r.skipped,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        }
    }
}

#[pymethods]
impl Schedule {
    fn __repr__(&self) -> String {
        format!("Schedule(name={:?}, cron={:?}, tz={:?})", self.name, self.cron, self.tz)
    }
}
