//! Storage for queuectl: the traits every store implements, by role, and the values that
//! cross them.
//!
//! A store does fenced reads and writes and decides nothing: what a settle writes (the
//! next state, the retry time) and which jobs a rescue fails come from the core
//! (`crate::policy`), and reach the store as plain values. Methods are named
//! noun-then-verb and take `now_ms` from the caller, so tests fix the clock. Every write
//! after a claim is fenced on (id, attempt, worker): a worker whose job was rescued and
//! claimed again can never overwrite the newer attempt.
//!
//! The roles: [`JobQueue`] (the hot path: insert, claim, settle), [`JobAdmin`] (rescues,
//! purge, DLQ retry), [`JobInspect`] (reads for people: get, list, counts, history,
//! checks), [`QueueControl`] (named queues' pause and limit), [`WorkerRegistry`],
//! [`ConfigStore`], [`ScheduleStore`] and [`ChangeFeed`] (how idle workers
//! learn that something changed). [`Store`] is all of them, one connection.
//!
//! Inside: `sqlite` and `postgres` are the two stores; every statement they run on the
//! tables is in `sql` (one module per table, each statement whole, per dialect where the
//! dialects differ), every row they read is decoded in `row`, the migrations are in
//! `migrations`. `page` (a page's bounds), `queue_rows` (the queue list) and `refusal`
//! (the errors of refused writes) hold what both stores do alike; `transfer` copies whole
//! queues, `check` runs the queue's invariants.

pub mod check;
mod migrations;
mod page;
mod postgres;
mod queue_rows;
mod refusal;
mod row;
mod sql;
mod sqlite;
pub mod transfer;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use migrations::SCHEMA_VERSION;
pub use postgres::{redact, PostgresStore};
pub use sql::jobs::CANCELLED_ERROR;
pub use sqlite::SqliteStore;

use crate::error::{Error, Result};
use crate::job::{Attempt, Job, JobState, NewJob, Outcome};
use crate::schedule::Overlap;

/// The version of the SQLite library compiled in.
pub fn sqlite_library_version() -> &'static str {
    rusqlite::version()
}

/// How long a write waits for another writer by default.
pub const DEFAULT_BUSY_TIMEOUT_MS: u64 = 30_000;

/// How a store connection behaves.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Sync every commit to disk (enqueue and other user commands). Workers turn it off:
    /// after a power cut a settle may be lost, and the job then runs again (at least once).
    pub durable: bool,
    /// How long a write of this connection waits for another writer before giving up.
    pub busy_timeout_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { durable: true, busy_timeout_ms: DEFAULT_BUSY_TIMEOUT_MS }
    }
}

/// Whether a location names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgresql://") || location.starts_with("postgres://")
}

/// Opens the store a location names: a `postgresql://` URL or a SQLite file path.
pub fn open_store(location: &str, opts: &StoreOptions) -> Result<Box<dyn Store>> {
    if is_postgres(location) {
        return Ok(Box::new(PostgresStore::open(location, opts)?));
    }
    if let Some((scheme, _)) = location.split_once("://") {
        return Err(Error::InvalidInput(format!(
            "unsupported database URL scheme {scheme:?}: use postgresql://... or a SQLite file path"
        )));
    }
    Ok(Box::new(SqliteStore::open(&PathBuf::from(location), opts)?))
}

/// The queues a batch of jobs names, each once, in first-seen order.
fn distinct_queues(jobs: &[NewJob]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    jobs.iter().map(|j| j.queue.as_str()).filter(|q| seen.insert(*q)).collect()
}

/// The jobs a new job runs after, with the id of a job of its batch that was skipped for
/// its unique key replaced by the holder's (which stands for it).
fn parents_of<'a>(after: &'a [String], stand_in: &'a std::collections::HashMap<String, String>) -> Vec<&'a str> {
    after.iter().map(|a| stand_in.get(a).unwrap_or(a).as_str()).collect()
}

/// How many inserted rows pass between two progress reports of a batch.
pub const PROGRESS_EVERY: usize = 20_000;

/// What an insert did: the id of every job of the batch, in order, and the positions of
/// the jobs it skipped because an unfinished job already held their unique key (their id
/// is then that job's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inserted {
    pub ids: Vec<String>,
    pub skipped: Vec<usize>,
}

/// Jobs to add in one transaction.
pub struct InsertBatch<'a> {
    pub jobs: &'a [NewJob],
    pub now_ms: i64,
    /// Told how many rows are in, every [`PROGRESS_EVERY`].
    pub progress: Option<&'a mut dyn FnMut(usize)>,
}

/// Everything a worker needs to claim the next due job.
#[derive(Debug, Clone)]
pub struct ClaimParams<'a> {
    pub worker_id: &'a str,
    pub now_ms: i64,
    pub lease_ms: i64,
    /// The queues it may take from; `None`: every queue.
    pub queues: Option<&'a QueueFilter>,
    /// The queue of the worker's last job: queues take turns, in name order, from the one
    /// after it. `None`: from the first.
    pub after_queue: Option<&'a str>,
}

/// The named queues a worker serves: at least one, each a valid queue name, no repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFilter {
    names: Vec<String>,
    /// The names as a JSON array, as SQLite's `json_each` reads them.
    json: String,
}

impl QueueFilter {
    /// The filter for `names`, checked; repeats are dropped, order kept.
    pub fn new<S: AsRef<str>>(names: &[S]) -> Result<QueueFilter> {
        let mut kept: Vec<String> = Vec::with_capacity(names.len());
        for n in names {
            let n = n.as_ref();
            crate::job::validate_queue(n)?;
            if !kept.iter().any(|k| k == n) {
                kept.push(n.to_string());
            }
        }
        if kept.is_empty() {
            return Err(Error::InvalidInput("a worker's queue list must name at least one queue".into()));
        }
        let json = serde_json::Value::from(kept.clone()).to_string();
        Ok(QueueFilter { names: kept, json })
    }

    /// The queue names, in the order given.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether jobs of `queue` pass the filter.
    pub fn contains(&self, queue: &str) -> bool {
        self.names.iter().any(|n| n == queue)
    }

    pub(crate) fn json(&self) -> &str {
        &self.json
    }

    /// The names as a worker's row stores them: comma-separated (names hold no comma).
    pub(crate) fn stored(&self) -> String {
        self.names.join(",")
    }
}

/// What is stored about one named queue, with its jobs counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    pub name: String,
    pub paused: bool,
    /// At most this many of its jobs processing at once; 0: no limit.
    pub limit: u64,
    /// Jobs of the queue in every state, zeros included, in `JobState::ALL` order.
    pub counts: Vec<(JobState, u64)>,
}

/// A change to named queues' settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueChange {
    /// Its jobs are not claimed until resumed; running ones finish.
    Pause,
    Resume,
    /// At most N of its jobs processing at once over every worker; 0 lifts the limit.
    Limit(u64),
}

/// Which queues a [`QueueChange`] applies to (each a valid name; created when new).
#[derive(Debug, Clone, Copy)]
pub struct QueueSetting<'a> {
    pub names: &'a [String],
    pub change: QueueChange,
    pub now_ms: i64,
}

impl QueueSetting<'_> {
    /// Checks every name before a store writes any (all or nothing).
    pub(crate) fn check(&self) -> Result<()> {
        self.names.iter().try_for_each(|n| crate::job::validate_queue(n))
    }
}

/// Which jobs a listing returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListFilter<'a> {
    pub state: Option<JobState>,
    pub queue: Option<&'a str>,
    pub limit: Option<u64>,
}

/// Which jobs a page of the dashboard's job list holds: newest first, below a cursor.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageFilter<'a> {
    pub state: Option<JobState>,
    pub queue: Option<&'a str>,
    /// Jobs whose id or command contains this text.
    pub search: Option<&'a str>,
    /// Only jobs enqueued before the job at this position (a previous page's `next`).
    pub before: Option<i64>,
    pub limit: u64,
}

/// One page of jobs, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub jobs: Vec<Job>,
    /// Where the next (older) page starts; None when no older job is left to look at.
    pub next: Option<i64>,
}

/// How many enqueue positions a page looks through at most when no index holds its
/// filter (a search, or a state whose jobs no index keeps in order): a page may then hold
/// fewer than its limit and still have a next one, and it never reads a million rows.
pub const PAGE_SCAN_WINDOW: i64 = 50_000;

/// One counter of the per-minute rollup (see `crate::stats`): minute 0 is the total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    pub minute_ms: i64,
    /// "" for counts that belong to no queue.
    pub queue: String,
    pub metric: String,
    pub value: i64,
}

/// Which attempt a write belongs to: it applies only while the job is processing this
/// attempt under this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence<'a> {
    pub id: &'a str,
    /// The attempt number the claim returned.
    pub attempt: u32,
    pub worker_id: &'a str,
}

/// A settle as the core decided it: the fenced write of an attempt's end.
#[derive(Clone, PartialEq)]
pub struct SettleParams {
    pub id: String,
    /// The attempt number the claim returned; the fence.
    pub attempt: u32,
    pub worker_id: String,
    pub now_ms: i64,
    /// The job's next state.
    pub outcome: Outcome,
    /// When a failed job may run again (`now_ms` otherwise).
    pub run_at_ms: i64,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub output_tail: String,
    /// For a rescue: write only if the lease still ran out before this time, so that a
    /// worker that renewed it since the job was read keeps its job.
    pub lease_expired_before: Option<i64>,
}

impl SettleParams {
    /// What the settle did, given whether the fenced write applied.
    pub fn settled(&self, applied: bool) -> Settled {
        match (applied, self.outcome) {
            (false, _) => Settled::Fenced,
            (true, Outcome::Completed) => Settled::Completed,
            (true, Outcome::Failed) => Settled::Retry { run_at_ms: self.run_at_ms },
            (true, Outcome::Dead) => Settled::Dead,
            (true, Outcome::Cancelled) => Settled::Cancelled,
        }
    }

    /// What the settle did, given the state the fenced write stored (`None`: it did not
    /// apply). A cancel asked for while the attempt ran stores `cancelled` for anything
    /// but a completion.
    pub fn settled_as(&self, stored: Option<&str>) -> Settled {
        match stored {
            Some(s) if s == JobState::Cancelled.as_str() => Settled::Cancelled,
            other => self.settled(other.is_some()),
        }
    }
}

/// Output tails and errors may hold whatever a job printed: Debug shows their sizes.
impl fmt::Debug for SettleParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettleParams")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("worker_id", &self.worker_id)
            .field("outcome", &self.outcome)
            .field("run_at_ms", &self.run_at_ms)
            .field("output_tail", &format_args!("<{} bytes>", self.output_tail.len()))
            .finish_non_exhaustive()
    }
}

/// What settling did to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Completed,
    /// Failed with retries left; runnable again at `run_at_ms`.
    Retry {
        run_at_ms: i64,
    },
    Dead,
    /// Cancelled while it ran: never retried.
    Cancelled,
    /// The job no longer belongs to this attempt (its lease ran out and it was rescued);
    /// nothing was written.
    Fenced,
}

pub use crate::rules::ByIdChange;

/// The jobs a [`ByIdChange`] applies to.
#[derive(Debug, Clone, Copy)]
pub struct ByIdParams<'a> {
    pub ids: &'a [String],
    pub change: ByIdChange,
    pub now_ms: i64,
}

/// A processing job whose lease ran out, as a rescue reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredJob {
    pub id: String,
    pub attempt: u32,
    pub max_retries: u32,
    /// The worker that held it (empty if none was recorded).
    pub worker_id: String,
    pub lease_expires_ms: i64,
}

/// A stop request, as stored with a worker's registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum StopLevel {
    #[default]
    None,
    /// Finish the current job, then exit.
    Graceful,
    /// Kill the running job, put it back to pending uncounted, and exit.
    Force,
}

impl StopLevel {
    /// The number stored in the database and passed to Python.
    pub fn as_u8(self) -> u8 {
        match self {
            StopLevel::None => 0,
            StopLevel::Graceful => 1,
            StopLevel::Force => 2,
        }
    }

    /// The level a stored number means; anything above 2 is a forced stop.
    pub fn from_u8(n: u8) -> StopLevel {
        match n {
            0 => StopLevel::None,
            1 => StopLevel::Graceful,
            _ => StopLevel::Force,
        }
    }
}

/// What a heartbeat tells a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Beat {
    /// The stop level requested for it.
    pub stop: StopLevel,
    /// Someone cancelled the job it is running: kill it.
    pub cancel: bool,
}

/// A worker's state as the store reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerState {
    /// Registered, no job processing under its id.
    Idle,
    /// A job is processing under its id.
    Busy,
    /// Exited, or declared lost and reaped.
    Exited,
}

impl WorkerState {
    /// Every state.
    pub const ALL: [WorkerState; 3] = [WorkerState::Idle, WorkerState::Busy, WorkerState::Exited];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::Exited => "exited",
        }
    }

    pub fn parse(name: &str) -> Option<WorkerState> {
        WorkerState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A worker as registered in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub state: WorkerState,
    pub current_job: Option<String>,
    pub started_at_ms: i64,
    pub heartbeat_ms: i64,
    pub lease_ms: i64,
    pub stop_requested: StopLevel,
    pub exited_at_ms: Option<i64>,
    /// The queues it serves; `None`: every queue.
    pub queues: Option<Vec<String>>,
}

impl WorkerRow {
    /// Whether this worker takes jobs of `queue`.
    pub fn serves(&self, queue: &str) -> bool {
        self.queues.as_ref().is_none_or(|q| q.iter().any(|n| n == queue))
    }
}

/// A worker about to register.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    pub id: &'a str,
    pub host: &'a str,
    pub pid: u32,
    pub lease_ms: i64,
    pub now_ms: i64,
    pub queues: Option<&'a QueueFilter>,
}

/// How a store tells waiting workers that another connection committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeups {
    /// The server pushes a notification (PostgreSQL `LISTEN`/`NOTIFY`).
    Pushed,
    /// The store polls a cheap change counter this often (SQLite `data_version`).
    Polled(Duration),
}

/// The hot path: what every worker does for every job.
pub trait JobQueue {
    /// Adds all jobs of the batch in one transaction, or none of them; a job whose unique
    /// key an unfinished job holds (one of the batch's earlier jobs included) is skipped,
    /// exactly once however many connections enqueue it at once.
    fn job_insert(&mut self, batch: InsertBatch<'_>) -> Result<Inserted>;
    /// [`JobQueue::job_insert`] without progress reports; the ids.
    fn job_insert_many(&mut self, jobs: &[NewJob], now_ms: i64) -> Result<Vec<String>> {
        Ok(self.job_insert(InsertBatch { jobs, now_ms, progress: None })?.ids)
    }
    /// Whether a job a claim with `p` could take is due (in a queue of `p.queues` that is
    /// neither paused nor at its limit): a cheap read that lets idle workers skip the
    /// write lock.
    fn job_due_exists(&mut self, p: &ClaimParams<'_>) -> Result<bool>;
    /// Atomically claims a due job for `worker_id`, counting the attempt and taking a lease
    /// on it: from the queues `p.queues` names that are not paused and below their limit,
    /// taking turns (the first such queue with a due job after `p.after_queue`, in name
    /// order, wrapping around), and within the queue the most urgent job (priority high to
    /// low, then enqueue order). A queue's limit holds against every other claim on every
    /// host.
    fn job_claim(&mut self, p: &ClaimParams<'_>) -> Result<Option<Job>>;
    /// Writes the end of an attempt as decided, fenced.
    fn job_settle(&mut self, p: &SettleParams) -> Result<Settled>;
    /// Settles one attempt and claims the next due job in one transaction: what a busy
    /// worker does between two jobs, at the cost of one commit instead of two.
    fn job_settle_and_claim(
        &mut self,
        settle: &SettleParams,
        claim: &ClaimParams<'_>,
    ) -> Result<(Settled, Option<Job>)>;
    /// Puts a claimed job back to pending without counting the attempt (forced stop).
    /// Returns false when the fence no longer holds.
    fn job_requeue(&mut self, fence: &Fence<'_>, now_ms: i64) -> Result<bool>;
}

/// Changes people and maintenance make: rescues, purge, the DLQ.
pub trait JobAdmin {
    /// Processing jobs whose lease ran out before `now_ms`.
    fn job_get_expired(&mut self, now_ms: i64) -> Result<Vec<ExpiredJob>>;
    /// Writes several decided settles in one transaction; what each did, in order.
    fn job_settle_many(&mut self, settles: &[SettleParams]) -> Result<Vec<Settled>>;
    /// Deletes jobs in `state` (completed, dead or cancelled) last changed at or before `cutoff_ms`.
    /// Returns the ids deleted, so the caller can delete their logs.
    fn job_purge(&mut self, state: JobState, cutoff_ms: Option<i64>) -> Result<Vec<String>>;
    /// Applies a change to every job of `p.ids`, or to none: an unknown id or a state that
    /// does not allow it fails the whole call, naming the job. Returns how many changed.
    fn job_change_by_id(&mut self, p: &ByIdParams<'_>) -> Result<u64>;
    /// Puts dead jobs back to pending with attempts 0: all of `ids`, or none when any is
    /// unknown or not dead.
    fn dead_retry(&mut self, ids: &[String], now_ms: i64) -> Result<u64> {
        self.job_change_by_id(&ByIdParams { ids, change: ByIdChange::RetryDead, now_ms })
    }
    /// Puts every dead job back to pending with attempts 0.
    fn dead_retry_all(&mut self, now_ms: i64) -> Result<u64>;
}

/// Reads for people and for `check`.
pub trait JobInspect {
    /// One job by id.
    fn job_get(&mut self, id: &str) -> Result<Job>;
    /// Jobs in enqueue order that pass `f`.
    fn job_list_where(&mut self, f: &ListFilter<'_>) -> Result<Vec<Job>>;
    /// Jobs in enqueue order, optionally of one state, optionally at most `limit`.
    fn job_list(&mut self, state: Option<JobState>, limit: Option<u64>) -> Result<Vec<Job>> {
        self.job_list_where(&ListFilter { state, queue: None, limit })
    }
    /// A page of jobs newest first (see [`PageFilter`], [`PAGE_SCAN_WINDOW`]).
    fn job_page(&mut self, f: &PageFilter<'_>) -> Result<Page>;
    /// The number of jobs in every state, zeros included, in `JobState::ALL` order.
    fn job_count_by_state(&mut self) -> Result<Vec<(JobState, u64)>>;
    /// The jobs job `id` runs after (`after`), in enqueue order, with their states; empty
    /// for a job that runs after none (or an unknown id).
    fn job_parents(&mut self, id: &str) -> Result<Vec<(String, JobState)>>;
    /// The finished attempts of a job, oldest first.
    fn job_attempts(&mut self, id: &str) -> Result<Vec<Attempt>>;
    /// How many due jobs a claim at `now_ms` would take before job `id`.
    fn job_ahead(&mut self, id: &str, now_ms: i64) -> Result<u64>;
    /// The schema version recorded in the database.
    fn schema_version(&mut self) -> Result<i64>;
    /// The columns of a table, in table order (for the conformance test of the schema).
    fn table_columns(&mut self, table: &str) -> Result<Vec<String>>;
    /// The store's own check of its files: at most `limit` lines of what is wrong, none
    /// when sound. PostgreSQL checks its own pages as it reads them and adds nothing here.
    fn file_integrity(&mut self, limit: usize) -> Result<Vec<String>>;
    /// Runs one of [`check::check`]'s invariant queries, `$1` bound to `now_ms`: one text
    /// column, one problem per row.
    fn check_rows(&mut self, sql: &str, now_ms: i64) -> Result<Vec<String>>;
    /// A one-line description of the store for `--version`.
    fn describe(&self) -> String;
}

/// Who is working: registrations, heartbeats, stop requests.
pub trait WorkerRegistry {
    /// Registers a worker as idle. An id whose registration has exited (a worker that was
    /// declared lost and came back) is registered afresh; an id that is still registered
    /// is an error.
    fn worker_register(&mut self, r: &Registration<'_>) -> Result<()>;
    /// Renews the worker's heartbeat and the lease of its job; returns the stop level
    /// requested for it and whether its job was cancelled, or `None` when the worker is
    /// not registered: it was declared lost (its heartbeat older than its lease, then
    /// reaped) and must not claim another job under that registration.
    fn worker_heartbeat(&mut self, id: &str, now_ms: i64) -> Result<Option<Beat>>;
    /// Marks the worker as exited.
    fn worker_exit(&mut self, id: &str, now_ms: i64) -> Result<()>;
    /// Registered workers, newest first; with `include_exited` also those that exited.
    fn worker_list(&mut self, include_exited: bool) -> Result<Vec<WorkerRow>>;
    /// Asks every worker that has not exited (optionally only those on `host`, only the
    /// worker `worker`) to stop at `level` (a request never lowers an earlier one).
    /// Returns how many were asked.
    fn worker_request_stop(&mut self, level: StopLevel, host: Option<&str>, worker: Option<&str>) -> Result<u64>;
    /// Marks workers whose heartbeat is older than their lease as exited.
    fn worker_reap(&mut self, now_ms: i64) -> Result<u64>;
}

/// A config key and the value to store for it.
#[derive(Debug, Clone, Copy)]
pub struct Setting<'a> {
    pub key: &'a str,
    pub value: &'a str,
}

/// Settings shared by every worker of the queue.
pub trait ConfigStore {
    /// A stored config value.
    fn config_get(&mut self, key: &str) -> Result<Option<String>>;
    /// Stores a config value (already validated by the caller).
    fn config_set(&mut self, setting: Setting<'_>, now_ms: i64) -> Result<()>;
    /// Every stored config value, by key.
    fn config_list(&mut self) -> Result<Vec<(String, String)>>;
}

/// Named queues: their settings and counts.
pub trait QueueControl {
    /// Every queue that has jobs or settings, by name.
    fn queue_list(&mut self) -> Result<Vec<QueueRow>>;
    /// Applies `s.change` to every queue of `s.names` in one transaction (a queue not seen
    /// before is created with it); wakes idle workers. Returns how many queues changed.
    fn queue_set(&mut self, s: &QueueSetting<'_>) -> Result<u64>;
}

/// A schedule as stored, with the state of the last job it enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    pub name: String,
    /// The rule: 5 cron fields, a nickname, or `@every DURATION`.
    pub cron: String,
    /// The IANA zone the rule is read in.
    pub tz: String,
    pub overlap: Overlap,
    /// The job each occurrence enqueues, as enqueue JSON.
    pub job: String,
    pub paused: bool,
    /// The next occurrence, not yet fired.
    pub next_fire_ms: i64,
    /// The occurrence last fired or skipped.
    pub last_fire_ms: Option<i64>,
    pub last_job_id: Option<String>,
    /// None when it has enqueued nothing yet, or that job is gone (purged, deleted).
    pub last_job_state: Option<JobState>,
    /// Occurrences that enqueued a job, and those skipped for an unfinished one.
    pub fired: u64,
    pub skipped: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One firing of a due schedule, as the core decided it.
#[derive(Debug, Clone, Copy)]
pub struct Fire<'a> {
    pub name: &'a str,
    /// The next occurrence the firer read: the fence, so an occurrence fires once.
    pub expected_next_ms: i64,
    pub occurrence_ms: i64,
    pub next_fire_ms: i64,
    /// The occurrence's job; None when it is skipped.
    pub job: Option<&'a NewJob>,
    pub now_ms: i64,
}

/// A change people make to a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleChange {
    /// No firing until resumed.
    Pause,
    /// Firing again from `next_fire_ms` (occurrences while it was paused are not fired).
    Resume {
        next_fire_ms: i64,
    },
    Remove,
}

/// Schedules: what people add and workers fire.
pub trait ScheduleStore {
    /// Adds a schedule; an error when its name is taken.
    fn schedule_add(&mut self, row: &ScheduleRow) -> Result<()>;
    /// Schedules by name: only `name` when given (an empty list when there is none), only
    /// those due by `due_by` (not paused, next occurrence at or before it) when given.
    fn schedule_list(&mut self, name: Option<&str>, due_by: Option<i64>) -> Result<Vec<ScheduleRow>>;
    /// Fires one occurrence: moves the schedule on and enqueues the job, in one
    /// transaction, if the schedule is still due at `f.expected_next_ms`; false when
    /// another firer (or a pause) came first, and nothing changed.
    fn schedule_fire(&mut self, f: &Fire<'_>) -> Result<bool>;
    /// Pauses, resumes or removes the schedule `name`; an error when there is none.
    fn schedule_change(&mut self, name: &str, change: ScheduleChange, now_ms: i64) -> Result<()>;
}

/// The per-minute rollup of what workers did.
pub trait StatsStore {
    /// Adds each row's value to its minute and to the total (minute 0), and forgets the
    /// minutes before `forget_before_ms`, in one transaction.
    fn stats_add(&mut self, rows: &[StatRow], forget_before_ms: i64) -> Result<()>;
    /// The totals (minute 0) when `since_ms` is None, else every minute from `since_ms` on.
    fn stats_read(&mut self, since_ms: Option<i64>) -> Result<Vec<StatRow>>;
}

/// How idle workers learn that something changed without polling the queue itself.
pub trait ChangeFeed {
    /// How this store delivers wake-ups.
    fn wakeups(&self) -> Wakeups;
    /// Waits up to `timeout` for another connection to commit something; true when one
    /// did (or may have: a caller then looks at the queue).
    fn wait_for_change(&mut self, timeout: Duration) -> Result<bool>;
}

/// Storage for queuectl. One value is one connection; it is `Send` but not shared between
/// threads: each worker thread opens its own.
pub trait Store:
    JobQueue
    + JobAdmin
    + JobInspect
    + QueueControl
    + WorkerRegistry
    + ConfigStore
    + ScheduleStore
    + StatsStore
    + ChangeFeed
    + Send
{
}

impl<
        T: JobQueue
            + JobAdmin
            + JobInspect
            + QueueControl
            + WorkerRegistry
            + ConfigStore
            + ScheduleStore
            + StatsStore
            + ChangeFeed
            + Send,
    > Store for T
{
}

/// The traits of every role, for callers that use a store through `dyn Store`.
pub mod prelude {
    pub use super::{
        ChangeFeed, ConfigStore, JobAdmin, JobInspect, JobQueue, QueueControl, ScheduleStore, StatsStore, Store,
        WorkerRegistry,
    };
}
