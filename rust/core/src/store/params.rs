//! The values that cross the store's traits: what a caller asks of a store (an insert, a
//! claim, a settle, a change by id, a listing, a registration, a firing) and what it gets
//! back (what was inserted, settled or changed, rows of queues, workers and stats).

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::job::{Job, JobState, NewJob, Outcome};
use crate::rules::ByIdChange;

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
    /// The slots its process has free: only a job needing at most this many is claimed.
    pub max_slots: u32,
}

impl ClaimParams<'_> {
    /// [`Self::max_slots`] as the statements bind it.
    pub(crate) fn free_slots(&self) -> i64 {
        i64::from(self.max_slots)
    }
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
    /// At most `rate_n` of its jobs start in any window of `rate_period_ms`; 0: no rate.
    pub rate_n: u64,
    pub rate_period_ms: u64,
    /// At most this many of its processing jobs share one key; 0: no limit.
    pub key_limit: u64,
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
    /// At most `starts` of its jobs start in any window of `period_ms`; 0 starts: no rate.
    Rate {
        starts: u64,
        period_ms: u64,
    },
    /// At most N of its processing jobs share one key; 0 lifts the limit.
    KeyLimit(u64),
}

/// Most starts a queue's rate may allow per period.
pub const MAX_RATE_STARTS: u64 = 1_000_000;
/// Longest period of a queue's rate: 30 days.
pub const MAX_RATE_PERIOD_MS: u64 = 30 * 86_400_000;

/// Where a queue's rate and a key's limit stand at one moment (for `explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowState {
    /// Its jobs started within the last period of its rate (0 without a rate).
    pub starts_in_window: u64,
    /// When a start leaves the window, when it is full; `None` when it has room.
    pub window_opens_at_ms: Option<i64>,
    /// Its processing jobs with the key (0 without a key).
    pub running_with_key: u64,
}

/// Which queues a [`QueueChange`] applies to (each a valid name; created when new).
#[derive(Debug, Clone, Copy)]
pub struct QueueSetting<'a> {
    pub names: &'a [String],
    pub change: QueueChange,
    pub now_ms: i64,
}

impl QueueSetting<'_> {
    /// Checks every name and the value before a store writes any (all or nothing).
    pub(crate) fn check(&self) -> Result<()> {
        if let QueueChange::Rate { starts, period_ms } = self.change {
            if starts > MAX_RATE_STARTS {
                return Err(Error::InvalidInput(format!("a rate allows at most {MAX_RATE_STARTS} starts per period")));
            }
            if starts > 0 && !(1..=MAX_RATE_PERIOD_MS).contains(&period_ms) {
                return Err(Error::InvalidInput("a rate's period must be from 1 ms to 30 days".into()));
            }
        }
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

/// The jobs a [`ByIdChange`] applies to.
#[derive(Debug, Clone, Copy)]
pub struct ByIdParams<'a> {
    pub ids: &'a [String],
    pub change: ByIdChange,
    pub now_ms: i64,
}

/// What a change by id did to one job: the state it found the job in, under its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub id: String,
    /// The job's state when the change read it, before it changed.
    pub found: JobState,
}

impl Changed {
    /// For a cancel: whether the job was running, so that it was flagged for its worker to
    /// kill (it ends `cancelled` within about a heartbeat, or keeps a result it reached
    /// first) rather than cancelled at once.
    pub fn killing(&self) -> bool {
        self.found == JobState::Processing
    }
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
    /// Its retry rule (a lost worker's attempt is a failure with no exit code).
    pub retry: crate::job::RetryRule,
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
    /// The slots of its process; `None` for a worker registered before slots existed.
    pub slots: Option<u32>,
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
    /// The slots of its process (`worker start --slots`).
    pub slots: u32,
}

/// How a store tells waiting workers that another connection committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeups {
    /// The server pushes a notification (PostgreSQL `LISTEN`/`NOTIFY`).
    Pushed,
    /// The store polls a cheap change counter this often (SQLite `data_version`).
    Polled(Duration),
}

/// A config key and the value to store for it.
#[derive(Debug, Clone, Copy)]
pub struct Setting<'a> {
    pub key: &'a str,
    pub value: &'a str,
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
