//! The `Store` class: one connection to a queuectl database, every call made with the
//! interpreter released.

use std::sync::Mutex;

use pyo3::prelude::*;

use queuectl_core::maintenance;
use queuectl_core::policy::WorkerSettings;
use queuectl_core::spec::{self, SpecDefaults};
use std::time::Duration;

use queuectl_core::schedule::{self, Timing};
use queuectl_core::store::{
    open_store, ByIdChange, ByIdParams, InsertBatch, ListFilter, PageFilter, QueueChange, QueueSetting, ScheduleChange,
    Setting, StoreOptions, DEFAULT_BUSY_TIMEOUT_MS,
};
use queuectl_core::{clock, JobState};

use crate::errors::{py_err, InputError};
use crate::stop_level;
use crate::values::{Attempt, Job, Queue, Schedule, Worker};

fn parse_state(name: &str) -> PyResult<JobState> {
    JobState::parse(name).ok_or_else(|| InputError::new_err(format!("unknown state {name:?}")))
}

/// A connection to a queuectl database (a SQLite path or a PostgreSQL URL).
#[pyclass(frozen, module = "queuectl._core")]
pub struct Store {
    inner: Mutex<Box<dyn queuectl_core::Store>>,
}

impl Store {
    /// Applies a change by id to all of `ids` or none.
    fn change(&self, py: Python<'_>, ids: &[String], change: ByIdChange) -> PyResult<u64> {
        self.with(py, |s| s.job_change_by_id(&ByIdParams { ids, change, now_ms: clock::now_ms() }))
    }

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
    #[pyo3(signature = (location, durable = true, busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS))]
    fn new(py: Python<'_>, location: String, durable: bool, busy_timeout_ms: u64) -> PyResult<Self> {
        let opts = StoreOptions { durable, busy_timeout_ms };
        let store = py.detach(|| open_store(&location, &opts)).map_err(py_err)?;
        Ok(Store { inner: Mutex::new(store) })
    }

    /// Parses JSON (one object, or with `batch` a JSON array or JSON Lines) and enqueues
    /// every job in one transaction. Returns the ids, and the positions of the jobs skipped
    /// because an unfinished job holds their unique key (their id is that job's).
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
    ) -> PyResult<(Vec<String>, Vec<usize>)> {
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
            let done = s.job_insert(InsertBatch { jobs: &jobs, now_ms: now, progress: Some(&mut report) })?;
            Ok((done.ids, done.skipped))
        })
    }

    fn get(&self, py: Python<'_>, id: String) -> PyResult<Job> {
        self.with(py, |s| s.job_get(&id)).map(Job::from)
    }

    #[pyo3(signature = (state = None, limit = None, queue = None))]
    fn jobs(
        &self,
        py: Python<'_>,
        state: Option<&str>,
        limit: Option<u64>,
        queue: Option<String>,
    ) -> PyResult<Vec<Job>> {
        let state = state.map(parse_state).transpose()?;
        let jobs = self.with(py, |s| s.job_list_where(&ListFilter { state, queue: queue.as_deref(), limit }))?;
        Ok(jobs.into_iter().map(Job::from).collect())
    }

    /// Every queue that has jobs or settings, by name.
    fn queues(&self, py: Python<'_>) -> PyResult<Vec<Queue>> {
        let rows = self.with(py, |s| s.queue_list())?;
        Ok(rows.into_iter().map(Queue::from).collect())
    }

    /// Pauses or resumes queues (all or none); returns how many.
    fn queue_pause(&self, py: Python<'_>, names: Vec<String>, paused: bool) -> PyResult<u64> {
        let change = if paused { QueueChange::Pause } else { QueueChange::Resume };
        self.with(py, |s| s.queue_set(&QueueSetting { names: &names, change, now_ms: clock::now_ms() }))
    }

    /// Sets a queue's limit of processing jobs (0: none).
    fn queue_limit(&self, py: Python<'_>, name: String, limit: u64) -> PyResult<u64> {
        let names = [name];
        let change = QueueChange::Limit(limit);
        self.with(py, |s| s.queue_set(&QueueSetting { names: &names, change, now_ms: clock::now_ms() }))
    }

    /// Sets a queue's rate: at most `n` starts in any `period_ms` (n 0: no rate).
    fn queue_rate(&self, py: Python<'_>, name: String, n: u64, period_ms: u64) -> PyResult<u64> {
        let names = [name];
        let change = QueueChange::Rate { starts: n, period_ms };
        self.with(py, |s| s.queue_set(&QueueSetting { names: &names, change, now_ms: clock::now_ms() }))
    }

    /// Sets a queue's limit of processing jobs per key (0: none).
    fn queue_key_limit(&self, py: Python<'_>, name: String, limit: u64) -> PyResult<u64> {
        let names = [name];
        let change = QueueChange::KeyLimit(limit);
        self.with(py, |s| s.queue_set(&QueueSetting { names: &names, change, now_ms: clock::now_ms() }))
    }

    /// Where queue `queue`'s rate and key `key`'s limit stand now: (starts in the rate's
    /// window, when the full window opens again or None, processing jobs with the key).
    #[pyo3(signature = (queue, key = None))]
    fn flow_state(&self, py: Python<'_>, queue: String, key: Option<String>) -> PyResult<(u64, Option<i64>, u64)> {
        let f = self.with(py, |s| s.queue_flow(&queue, key.as_deref(), clock::now_ms()))?;
        Ok((f.starts_in_window, f.window_opens_at_ms, f.running_with_key))
    }

    /// A page of jobs newest first, filtered, below the cursor `before` (a previous page's
    /// `next`): (jobs, next), next None when no older job is left.
    #[pyo3(signature = (state = None, queue = None, search = None, before = None, limit = 50))]
    fn jobs_page(
        &self,
        py: Python<'_>,
        state: Option<&str>,
        queue: Option<String>,
        search: Option<String>,
        before: Option<i64>,
        limit: u64,
    ) -> PyResult<(Vec<Job>, Option<i64>)> {
        let state = state.map(parse_state).transpose()?;
        let f = PageFilter { state, queue: queue.as_deref(), search: search.as_deref(), before, limit };
        let page = self.with(py, |s| s.job_page(&f))?;
        Ok((page.jobs.into_iter().map(Job::from).collect(), page.next))
    }

    /// The per-minute rollup: the totals when `since_ms` is None, else every minute from
    /// it on, as (minute_ms, queue, metric, value).
    #[pyo3(signature = (since_ms = None))]
    fn stats(&self, py: Python<'_>, since_ms: Option<i64>) -> PyResult<Vec<(i64, String, String, i64)>> {
        let rows = self.with(py, |s| s.stats_read(since_ms))?;
        Ok(rows.into_iter().map(|r| (r.minute_ms, r.queue, r.metric, r.value)).collect())
    }

    /// Number of jobs per state, every state included.
    fn counts(&self, py: Python<'_>) -> PyResult<Vec<(String, u64)>> {
        let c = self.with(py, |s| s.job_count_by_state())?;
        Ok(c.into_iter().map(|(st, n)| (st.as_str().to_string(), n)).collect())
    }

    fn attempts(&self, py: Python<'_>, id: String) -> PyResult<Vec<Attempt>> {
        let rows = self.with(py, |s| s.job_attempts(&id))?;
        Ok(rows.into_iter().map(Attempt::from).collect())
    }

    /// The jobs job `id` runs after, in enqueue order: (id, state).
    fn parents(&self, py: Python<'_>, id: String) -> PyResult<Vec<(String, &'static str)>> {
        let rows = self.with(py, |s| s.job_parents(&id))?;
        Ok(rows.into_iter().map(|(id, st)| (id, st.as_str())).collect())
    }

    /// Adds a schedule (see `queuectl schedule add`); `job` is the enqueue JSON of each
    /// occurrence's job, completed with the defaults given.
    #[pyo3(signature = (name, cron, *, tz, overlap, job, max_retries, timeout_ms, cwd))]
    #[allow(clippy::too_many_arguments)]
    fn schedule_add(
        &self,
        py: Python<'_>,
        name: String,
        cron: String,
        tz: Option<String>,
        overlap: String,
        job: String,
        max_retries: u32,
        timeout_ms: u64,
        cwd: String,
    ) -> PyResult<Schedule> {
        self.with(py, |s| {
            let d = SpecDefaults { max_retries, timeout_ms, cwd, now_ms: clock::now_ms() };
            let row = schedule::new_schedule(&name, &cron, tz.as_deref(), &overlap, &job, &d)?;
            s.schedule_add(&row)?;
            Ok(row)
        })
        .map(Schedule::from)
    }

    /// Schedules by name (only `name` when given).
    #[pyo3(signature = (name = None))]
    fn schedules(&self, py: Python<'_>, name: Option<String>) -> PyResult<Vec<Schedule>> {
        let rows = self.with(py, |s| s.schedule_list(name.as_deref(), None))?;
        Ok(rows.into_iter().map(Schedule::from).collect())
    }

    /// Pauses, resumes ("resume": from the next occurrence after now) or removes one.
    fn schedule_change(&self, py: Python<'_>, name: String, change: &str) -> PyResult<()> {
        self.with(py, |s| {
            let now = clock::now_ms();
            let change = match change {
                "pause" => ScheduleChange::Pause,
                "remove" => ScheduleChange::Remove,
                _ => {
                    let Some(row) = s.schedule_list(Some(&name), None)?.pop() else {
                        return s.schedule_change(&name, ScheduleChange::Pause, now);
                    };
                    let timing = Timing::parse(&row.cron, Some(&row.tz))?;
                    ScheduleChange::Resume { next_fire_ms: timing.next_after(now).unwrap_or(i64::MAX) }
                }
            };
            s.schedule_change(&name, change, now)
        })
    }

    /// Fires the schedules due now, as a worker's heartbeat does; (schedule, job id or
    /// None when skipped) for each occurrence this call fired.
    fn schedule_fire_due(&self, py: Python<'_>) -> PyResult<Vec<(String, Option<String>)>> {
        self.with(py, |s| maintenance::schedules::fire_due(s, clock::now_ms()))
    }

    /// How many due jobs a claim now would take before job `id`.
    fn ahead(&self, py: Python<'_>, id: String) -> PyResult<u64> {
        self.with(py, |s| s.job_ahead(&id, clock::now_ms()))
    }

    /// Deletes completed, dead or cancelled jobs changed at or before `cutoff_ms`; returns their ids.
    #[pyo3(signature = (state, cutoff_ms = None))]
    fn purge(&self, py: Python<'_>, state: &str, cutoff_ms: Option<i64>) -> PyResult<Vec<String>> {
        let state = parse_state(state)?;
        self.with(py, |s| s.job_purge(state, cutoff_ms))
    }

    fn dead_retry(&self, py: Python<'_>, ids: Vec<String>) -> PyResult<u64> {
        self.with(py, |s| s.dead_retry(&ids, clock::now_ms()))
    }

    /// Failed, dead or cancelled jobs back to pending with attempts 0, runnable now: all of `ids`, or
    /// none when any is unknown or in another state.
    fn retry(&self, py: Python<'_>, ids: Vec<String>) -> PyResult<u64> {
        self.change(py, &ids, ByIdChange::Retry)
    }

    /// Pending or failed jobs to cancelled, processing ones killed by their worker within a
    /// heartbeat and settled cancelled: all of `ids`, or none when any is unknown or ended.
    /// Returns (the ids cancelled at once, the ids of running jobs whose worker was asked to
    /// kill them), each in the order of `ids`, as the store found each job under its lock.
    fn cancel(&self, py: Python<'_>, ids: Vec<String>) -> PyResult<(Vec<String>, Vec<String>)> {
        let p = ByIdParams { ids: &ids, change: ByIdChange::Cancel, now_ms: clock::now_ms() };
        let done = self.with(py, |s| s.job_change_by_id_each(&p))?;
        let (killing, cancelled): (Vec<_>, Vec<_>) = done.into_iter().partition(|c| c.killing());
        Ok((cancelled.into_iter().map(|c| c.id).collect(), killing.into_iter().map(|c| c.id).collect()))
    }

    /// Removes jobs that are not processing, with their history: all of `ids`, or none.
    fn delete(&self, py: Python<'_>, ids: Vec<String>) -> PyResult<u64> {
        self.change(py, &ids, ByIdChange::Delete)
    }

    /// Waits up to `timeout_s` for another connection to commit something; true when one
    /// did (or may have). The first call on a connection starts listening.
    fn wait_for_change(&self, py: Python<'_>, timeout_s: f64) -> PyResult<bool> {
        let timeout = Duration::from_secs_f64(timeout_s.clamp(0.0, 86_400.0));
        self.with(py, |s| s.wait_for_change(timeout))
    }

    fn dead_retry_all(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| s.dead_retry_all(clock::now_ms()))
    }

    fn config_get(&self, py: Python<'_>, key: String) -> PyResult<Option<String>> {
        self.with(py, |s| s.config_get(&key))
    }

    fn config_set(&self, py: Python<'_>, key: String, value: String) -> PyResult<()> {
        self.with(py, |s| s.config_set(Setting { key: &key, value: &value }, clock::now_ms()))
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
    #[pyo3(signature = (level, host = None, worker = None))]
    fn request_stop(&self, py: Python<'_>, level: u8, host: Option<String>, worker: Option<String>) -> PyResult<u64> {
        let level = stop_level(level)?;
        self.with(py, |s| s.worker_request_stop(level, host.as_deref(), worker.as_deref()))
    }

    /// Marks workers whose heartbeat ran out as exited, and rescues their jobs.
    fn reap(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |s| {
            let now = clock::now_ms();
            let settings = WorkerSettings::load(s)?;
            maintenance::rescue::rescue_expired(s, &settings.backoff, now)?;
            s.worker_reap(now)
        })
    }

    fn describe(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |s| Ok(s.describe()))
    }
}
