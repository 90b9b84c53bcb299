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
//! Inside: the traits are in `roles`, the values that cross them in `params`. `sqlite`
//! and `postgres` are the two stores; every statement they run on the tables is in `sql` (one module per table, each statement whole, per dialect where the
//! dialects differ), every row they read is decoded in `row`, the migrations are in
//! `migrations`. What both stores do alike is written once above them: `change` (a
//! change by id) and `fire` (a schedule's firing), generic over the store's open
//! transaction (`tx`); `page` (a page's bounds), `queue_rows` (the queue list) and
//! `refusal` (the errors of refused writes). `transfer` copies whole queues, `check` runs
//! the queue's invariants.

mod change;
pub mod check;
mod fire;
mod migrations;
mod page;
mod params;
mod postgres;
mod queue_rows;
mod refusal;
mod roles;
mod row;
mod sql;
mod sqlite;
pub mod transfer;
mod tx;

use std::path::PathBuf;

pub use migrations::SCHEMA_VERSION;
pub use params::{
    Beat, ByIdParams, Changed, ClaimParams, ExpiredJob, Fence, Fire, FlowState, InsertBatch, Inserted, ListFilter,
    Page, PageFilter, QueueChange, QueueFilter, QueueRow, QueueSetting, Registration, ScheduleChange, Setting,
    SettleParams, Settled, StatRow, StopLevel, Wakeups, WorkerRow, WorkerState, MAX_RATE_PERIOD_MS, MAX_RATE_STARTS,
    PAGE_SCAN_WINDOW, PROGRESS_EVERY,
};
pub use postgres::{redact, PostgresStore};
pub use roles::{
    ChangeFeed, ConfigStore, JobAdmin, JobInspect, JobQueue, QueueControl, ScheduleStore, StatsStore, Store,
    WorkerRegistry,
};
pub use sql::jobs::{CANCELLED_ERROR, EXPIRED_ERROR};
pub use sqlite::SqliteStore;

pub use crate::rules::ByIdChange;
pub use crate::schedule::ScheduleRow;

use crate::error::{Error, Result};
use crate::job::NewJob;

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

/// The traits of every role, for callers that use a store through `dyn Store`.
pub mod prelude {
    pub use super::{
        ChangeFeed, ConfigStore, JobAdmin, JobInspect, JobQueue, QueueControl, ScheduleStore, StatsStore, Store,
        WorkerRegistry,
    };
}
