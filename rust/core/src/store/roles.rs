//! The store's traits, one per role: [`JobQueue`] (the hot path), [`JobAdmin`],
//! [`JobInspect`], [`WorkerRegistry`], [`ConfigStore`], [`QueueControl`],
//! [`ScheduleStore`], [`StatsStore`] and [`ChangeFeed`]; [`Store`] is all of them.

use std::time::Duration;

use super::params::{
    Beat, ByIdParams, Changed, ClaimParams, ExpiredJob, Fence, Fire, FlowState, InsertBatch, Inserted, ListFilter,
    Page, PageFilter, QueueRow, QueueSetting, Registration, ScheduleChange, Setting, SettleParams, Settled, StatRow,
    StopLevel, Wakeups, WorkerRow,
};
use crate::error::Result;
use crate::job::{Attempt, Job, JobState, NewJob};
use crate::rules::ByIdChange;
use crate::schedule::ScheduleRow;

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
    /// does not allow it fails the whole call, naming the job. Returns what it did to each
    /// job, in the order of `p.ids`.
    fn job_change_by_id_each(&mut self, p: &ByIdParams<'_>) -> Result<Vec<Changed>>;
    /// [`JobAdmin::job_change_by_id_each`]; how many changed.
    fn job_change_by_id(&mut self, p: &ByIdParams<'_>) -> Result<u64> {
        Ok(self.job_change_by_id_each(p)?.len() as u64)
    }
    /// Puts dead jobs back to pending with attempts 0: all of `ids`, or none when any is
    /// unknown or not dead.
    fn dead_retry(&mut self, ids: &[String], now_ms: i64) -> Result<u64> {
        self.job_change_by_id(&ByIdParams { ids, change: ByIdChange::RetryDead, now_ms })
    }
    /// Puts every dead job back to pending with attempts 0.
    fn dead_retry_all(&mut self, now_ms: i64) -> Result<u64>;
    /// Cancels the jobs not started yet (waiting, pending, failed) whose expiry passed by
    /// `now_ms`, and what runs after them down the chain; returns their ids.
    fn job_expire(&mut self, now_ms: i64) -> Result<Vec<String>>;
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
    /// A page of jobs newest first (see [`PageFilter`], [`PAGE_SCAN_WINDOW`](super::PAGE_SCAN_WINDOW)).
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
    /// Runs one of [`check::check`](super::check::check)'s invariant queries, `$1` bound to `now_ms`: one text
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
    /// Where queue `queue`'s rate and a key's limit stand at `now_ms` (for `explain`).
    fn queue_flow(&mut self, queue: &str, key: Option<&str>, now_ms: i64) -> Result<FlowState>;
    /// The names of the queues with a rate that are not paused.
    fn queue_rated(&mut self) -> Result<Vec<String>>;
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
