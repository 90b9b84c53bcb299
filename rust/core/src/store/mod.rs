//! The `Store` trait: every read and state change of jobs, workers and config.
//!
//! Methods are named noun-then-verb and take `now_ms` from the caller, so tests fix the
//! clock. Every write after a claim is fenced on (id, attempt, worker): a worker whose job
//! was rescued and claimed again can never overwrite the newer attempt.

pub mod check;
mod postgres;
mod sqlite;
pub mod transfer;

use std::path::PathBuf;

pub use postgres::{redact, PostgresStore};
pub use sqlite::SqliteStore;

/// The version of the SQLite library compiled in.
pub fn sqlite_library_version() -> &'static str {
    rusqlite::version()
}

use crate::backoff::BackoffPolicy;
use crate::error::{Error, Result};
use crate::job::{Attempt, Job, JobState, NewJob};

/// How a store connection behaves.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Sync every commit to disk (enqueue and other user commands). Workers turn it off:
    /// after a power cut a settle may be lost, and the job then runs again (at least once).
    pub durable: bool,
    /// How long a write waits for another writer before giving up.
    pub busy_timeout_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { durable: true, busy_timeout_ms: 30_000 }
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

/// Everything a worker needs to claim the next due job.
#[derive(Debug, Clone)]
pub struct ClaimParams<'a> {
    pub worker_id: &'a str,
    pub now_ms: i64,
    pub lease_ms: i64,
}

/// The end of one attempt, as the worker saw it.
#[derive(Debug, Clone)]
pub struct SettleParams<'a> {
    pub id: &'a str,
    /// The attempt number the claim returned; the fence.
    pub attempt: u32,
    /// The job's `max_retries`, as the claim returned it (it never changes after enqueue).
    pub max_retries: u32,
    pub worker_id: &'a str,
    pub now_ms: i64,
    pub success: bool,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub output_tail: String,
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
    /// The job no longer belongs to this attempt (its lease ran out and it was rescued);
    /// nothing was written.
    Fenced,
}

/// A worker as registered in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// idle, busy (a job is processing under its id) or exited.
    pub state: String,
    pub current_job: Option<String>,
    pub started_at_ms: i64,
    pub heartbeat_ms: i64,
    pub lease_ms: i64,
    /// 0 none, 1 finish the current job and exit, 2 kill it, requeue it and exit.
    pub stop_requested: u8,
    pub exited_at_ms: Option<i64>,
}

/// How many inserted rows pass between two progress reports of a batch.
pub const PROGRESS_EVERY: usize = 20_000;

/// A stop request level, as stored in `WorkerRow::stop_requested`.
pub const STOP_GRACEFUL: u8 = 1;
/// Kill the running job, put it back to pending uncounted, and exit.
pub const STOP_FORCE: u8 = 2;

/// Storage for queuectl. One value is one connection; it is `Send` but not shared between
/// threads: each worker thread opens its own.
pub trait Store: Send {
    /// Adds all `jobs` in one transaction, or none of them. Returns their ids in order.
    /// `progress`, when given, is told how many rows are in every `PROGRESS_EVERY`.
    fn job_insert_many(
        &mut self,
        jobs: &[NewJob],
        now_ms: i64,
        progress: Option<&mut dyn FnMut(usize)>,
    ) -> Result<Vec<String>>;
    /// Whether a job is due: a cheap read that lets idle workers skip the write lock.
    fn job_due_exists(&mut self, now_ms: i64) -> Result<bool>;
    /// Atomically claims the most urgent due job (priority high to low, then enqueue
    /// order), counting the attempt and taking a lease on it for `worker_id`.
    fn job_claim(&mut self, p: &ClaimParams<'_>) -> Result<Option<Job>>;
    /// Records the end of an attempt and moves the job to completed, failed or dead.
    fn job_settle(&mut self, p: &SettleParams<'_>) -> Result<Settled>;
    /// Settles one attempt and claims the next due job in one transaction: what a busy
    /// worker does between two jobs, at the cost of one commit instead of two.
    fn job_settle_and_claim(
        &mut self,
        settle: &SettleParams<'_>,
        claim: &ClaimParams<'_>,
    ) -> Result<(Settled, Option<Job>)> {
        let settled = self.job_settle(settle)?;
        Ok((settled, self.job_claim(claim)?))
    }
    /// Puts a claimed job back to pending without counting the attempt (forced stop).
    /// Returns false when the fence no longer holds.
    fn job_requeue(&mut self, id: &str, attempt: u32, worker_id: &str, now_ms: i64) -> Result<bool>;
    /// Settles, as failed attempts, every processing job whose lease ran out. Returns
    /// (id, attempt) of each job rescued.
    fn job_rescue_expired(&mut self, now_ms: i64) -> Result<Vec<(String, u32)>>;
    /// One job by id.
    fn job_get(&mut self, id: &str) -> Result<Job>;
    /// Jobs in enqueue order, optionally of one state, optionally at most `limit`.
    fn job_list(&mut self, state: Option<JobState>, limit: Option<u64>) -> Result<Vec<Job>>;
    /// The number of jobs in every state, zeros included, in `JobState::ALL` order.
    fn job_count_by_state(&mut self) -> Result<Vec<(JobState, u64)>>;
    /// The finished attempts of a job, oldest first.
    fn job_attempts(&mut self, id: &str) -> Result<Vec<Attempt>>;
    /// Deletes jobs in `state` (completed or dead) last changed at or before `cutoff_ms`.
    /// Returns the ids deleted, so the caller can delete their logs.
    fn job_purge(&mut self, state: JobState, cutoff_ms: Option<i64>) -> Result<Vec<String>>;
    /// Puts dead jobs back to pending with attempts 0: all of `ids`, or none when any is
    /// unknown or not dead.
    fn dead_retry(&mut self, ids: &[String], now_ms: i64) -> Result<u64>;
    /// Puts every dead job back to pending with attempts 0.
    fn dead_retry_all(&mut self, now_ms: i64) -> Result<u64>;
    /// A stored config value.
    fn config_get(&mut self, key: &str) -> Result<Option<String>>;
    /// Stores a config value (already validated by the caller).
    fn config_set(&mut self, key: &str, value: &str, now_ms: i64) -> Result<()>;
    /// Every stored config value, by key.
    fn config_list(&mut self) -> Result<Vec<(String, String)>>;
    /// Registers a worker as idle. An id whose registration has exited (a worker that was
    /// declared lost and came back) is registered afresh; an id that is still registered
    /// is an error.
    fn worker_register(&mut self, id: &str, host: &str, pid: u32, lease_ms: i64, now_ms: i64) -> Result<()>;
    /// Renews the worker's heartbeat and the lease of its job; returns the stop level
    /// requested for it (0 when none), or `None` when the worker is not registered: it was
    /// declared lost (its heartbeat older than its lease, then reaped) and must not claim
    /// another job under that registration.
    fn worker_heartbeat(&mut self, id: &str, now_ms: i64) -> Result<Option<u8>>;
    /// Marks the worker as exited.
    fn worker_exit(&mut self, id: &str, now_ms: i64) -> Result<()>;
    /// Registered workers, newest first; with `include_exited` also those that exited.
    fn worker_list(&mut self, include_exited: bool) -> Result<Vec<WorkerRow>>;
    /// Asks every worker that has not exited (optionally only those on `host`) to stop at
    /// `level`. Returns how many were asked.
    fn worker_request_stop(&mut self, level: u8, host: Option<&str>) -> Result<u64>;
    /// Marks workers whose heartbeat is older than their lease as exited.
    fn worker_reap(&mut self, now_ms: i64) -> Result<u64>;
    /// The backoff policy currently configured (defaults when unset).
    fn backoff_policy(&mut self) -> Result<BackoffPolicy> {
        let mut p = BackoffPolicy::default();
        if let Some(v) = self.config_get("backoff-base")?.and_then(|v| v.parse().ok()) {
            p.base = v;
        }
        if let Some(v) = self.config_get("backoff-max")?.and_then(|v| v.parse().ok()) {
            p.max_s = v;
        }
        Ok(p)
    }
    /// Waits up to `timeout` for another connection to commit something; true when one
    /// did. Idle workers wake on it instead of polling the queue. The default just sleeps
    /// and says yes, which turns the caller into a poller.
    fn wait_for_change(&mut self, timeout: std::time::Duration) -> Result<bool> {
        std::thread::sleep(timeout);
        Ok(true)
    }
    /// The schema version recorded in the database.
    fn schema_version(&mut self) -> Result<i64>;
    /// The store's own check of its files: at most `limit` lines of what is wrong, none
    /// when sound. PostgreSQL checks its own pages as it reads them and adds nothing here.
    fn file_integrity(&mut self, limit: usize) -> Result<Vec<String>>;
    /// Runs one of [`check::check`]'s invariant queries, `$1` bound to `now_ms`: one text
    /// column, one problem per row.
    fn check_rows(&mut self, sql: &str, now_ms: i64) -> Result<Vec<String>>;
    /// A one-line description of the store for `--version`.
    fn describe(&self) -> String;
}

/// The state a failed or successful attempt leads to (DESIGN.md section 4): completed,
/// failed with a backoff while `attempts <= max_retries`, dead after that.
pub fn next_state(
    success: bool,
    attempts: u32,
    max_retries: u32,
    policy: &BackoffPolicy,
    now_ms: i64,
) -> (JobState, i64) {
    if success {
        (JobState::Completed, now_ms)
    } else if attempts <= max_retries {
        (JobState::Failed, now_ms.saturating_add(policy.delay_ms(attempts)))
    } else {
        (JobState::Dead, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_runs_four_times() {
        let p = BackoffPolicy::default();
        assert_eq!(next_state(false, 1, 3, &p, 0), (JobState::Failed, 2_000));
        assert_eq!(next_state(false, 3, 3, &p, 0), (JobState::Failed, 8_000));
        assert_eq!(next_state(false, 4, 3, &p, 0), (JobState::Dead, 0));
        assert_eq!(next_state(false, 1, 0, &p, 0), (JobState::Dead, 0));
        assert_eq!(next_state(true, 4, 3, &p, 5), (JobState::Completed, 5));
    }
}
