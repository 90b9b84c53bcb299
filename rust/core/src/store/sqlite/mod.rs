//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes run in `BEGIN IMMEDIATE` so two writers never deadlock upgrading a read lock;
//! SQLite serialises them, which is what makes the one-statement claim atomic. Workers of
//! one process also queue on a mutex before that (see `combine`). The statements it runs
//! are in `store::sql` (the shared ones' `.sqlite` text and each table's `sqlite` part),
//! its rows are decoded by `store::row`.

mod combine;
mod file;

use std::ops::Deref;
use std::path::Path;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use self::combine::{shared_for, Shared};
use self::file::{create_private, install_busy_handler, FileIdentity};
use super::row::{self, job_col};
use super::sql::{attempts, by_state, claim, config, dependencies, jobs, page, queues, schedules, stats, workers};
use super::{page as page_bounds, queue_rows, refusal};
use super::{
    Beat, ByIdChange, ByIdParams, ChangeFeed, ClaimParams, ConfigStore, ExpiredJob, Fence, Fire, InsertBatch, Inserted,
    JobAdmin, JobInspect, JobQueue, ListFilter, Page, PageFilter, QueueControl, QueueRow, QueueSetting, Registration,
    ScheduleChange, ScheduleRow, ScheduleStore, Setting, SettleParams, Settled, StatRow, StatsStore, StopLevel,
    StoreOptions, Wakeups, WorkerRegistry, WorkerRow,
};
use crate::error::{Error, Result};
use crate::job::{Attempt, Job, JobState, Outcome};
use crate::jobid;

row::impl_cells!(Row<'_>, get);

/// Runs `f` on a row inside rusqlite's row mapping, carrying a decode error through it.
fn decode<T>(
    f: impl Fn(&Row<'_>) -> Result<T>,
) -> impl Fn(&Row<'_>) -> rusqlite::Result<std::result::Result<T, Error>> {
    move |r| Ok(f(r))
}

/// Collects mapped rows whose decoding may itself fail.
fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<Result<T>>>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for r in rows {
        out.push(r??);
    }
    Ok(out)
}

/// A connection to a queuectl SQLite database.
pub struct SqliteStore {
    conn: Connection,
    path: String,
    shared: &'static Shared,
    /// The last `PRAGMA data_version` seen by `wait_for_change`.
    seen_version: Option<i64>,
    /// Which file `path` named when it was opened; every heartbeat compares.
    identity: Option<FileIdentity>,
}

/// How often an idle worker reads `data_version`.
const CHANGE_POLL: Duration = Duration::from_millis(4);

impl SqliteStore {
    /// Opens (creating when absent) and migrates the database at `path`.
    ///
    /// First contact: when several processes open a file that does not exist yet at the
    /// same moment (a worker and an enqueue started together on a new home), one of them
    /// turns it to WAL and creates the schema while the others open it. SQLite answers some
    /// of those opens "busy" at once instead of calling the busy handler (a lock it cannot
    /// wait for without risking a deadlock, or a journal mode that could not change yet),
    /// so such an open starts again from the top, within the connection's busy timeout.
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<SqliteStore> {
        create_private(path)?;
        let deadline = Instant::now() + Duration::from_millis(opts.busy_timeout_ms);
        let mut pause = Duration::from_millis(1);
        loop {
            match SqliteStore::open_once(path, opts) {
                Ok(store) => return Ok(store),
                Err(OpenFailure::Busy(_)) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(25));
                }
                Err(OpenFailure::Busy(e) | OpenFailure::Other(e)) => return Err(e),
            }
        }
    }

    /// One attempt at [`SqliteStore::open`].
    fn open_once(path: &Path, opts: &StoreOptions) -> std::result::Result<SqliteStore, OpenFailure> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        install_busy_handler(&conn, opts.busy_timeout_ms)?;
        // Room for every statement a worker uses, so none is ever prepared twice.
        conn.set_prepared_statement_cache_capacity(64);
        // 2 KiB pages for a new database (an existing one keeps its own): a settle+claim
        // commit writes about five pages to the WAL, and halving their size took the engine
        // from about 13,400 to 16,900 pairs/s here; tails up to ~2 KB still fit in a row.
        conn.pragma_update(None, "page_size", 2048)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // SQLite answers with the mode it kept when another connection held a lock.
            return Err(OpenFailure::Busy(Error::Database(format!(
                "cannot switch the database to WAL mode (it is in {mode} mode)"
            ))));
        }
        // FULL syncs the WAL on every commit: an acknowledged enqueue survives a power cut.
        // NORMAL (workers) syncs at checkpoints only; a lost settle means the job runs again.
        conn.pragma_update(None, "synchronous", if opts.durable { "FULL" } else { "NORMAL" })?;
        // Checkpoint every 4,000 pages (16 MB of WAL) instead of 1,000: a quarter of the
        // fsyncs on a busy queue.
        conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
        let mut store = SqliteStore {
            conn,
            path: path.display().to_string(),
            shared: shared_for(path),
            seen_version: None,
            identity: FileIdentity::of(path).ok(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The connection, for copying the whole database elsewhere.
    pub(super) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The `synchronous` setting in force (2 = FULL, 1 = NORMAL), for tests of durability.
    pub fn synchronous(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    }

    /// Runs `PRAGMA integrity_check` and returns its verdict ("ok" when sound).
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    fn migrate(&mut self) -> std::result::Result<(), OpenFailure> {
        let current: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        super::migrations::check_version(current)?;
        if current == super::migrations::SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the write lock.
        let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if current == 0 {
            let tables: i64 =
                tx.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))?;
            if tables > 0 {
                return Err(Error::Lasting(format!(
                    "{} is a SQLite database of something else, not a queuectl queue: check --db or QUEUECTL_DB",
                    self.path
                ))
                .into());
            }
        }
        for (i, m) in super::migrations::MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
            tx.execute_batch(m.sqlite)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn immediate(&mut self) -> Result<WriteTx<'_>> {
        let lock = self.shared.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Ok(WriteTx { tx, _lock: lock })
    }

    /// One write statement in its own transaction; the number of rows it changed.
    fn write(&mut self, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
        let tx = self.immediate()?;
        let n = tx.prepare_cached(sql)?.execute(params)?;
        tx.commit()?;
        Ok(n)
    }
}

/// Why one attempt at opening the database failed: busy (worth another attempt while the
/// busy timeout lasts), or anything else.
enum OpenFailure {
    Busy(Error),
    Other(Error),
}

impl From<rusqlite::Error> for OpenFailure {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        let busy = matches!(
            &e,
            rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        );
        if busy {
            OpenFailure::Busy(e.into())
        } else {
            OpenFailure::Other(e.into())
        }
    }
}

impl From<Error> for OpenFailure {
    fn from(e: Error) -> Self {
        OpenFailure::Other(e)
    }
}

/// A write transaction that also holds this process's write lock of the database.
struct WriteTx<'c> {
    // Declared first so it ends (commits or rolls back) before the lock is released.
    tx: rusqlite::Transaction<'c>,
    _lock: MutexGuard<'static, ()>,
}

impl<'c> Deref for WriteTx<'c> {
    type Target = rusqlite::Transaction<'c>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl WriteTx<'_> {
    fn commit(self) -> Result<()> {
        Ok(self.tx.commit()?)
    }
}

/// What a settle's RETURNING gives: seq, started at, run, the state stored, whether any
/// job runs after it.
type SettledRow = (i64, Option<i64>, i64, String, Option<i64>);

/// Writes one decided settle inside `tx`, fenced on (id, attempt, worker).
pub(super) fn settle_in(tx: &rusqlite::Transaction<'_>, p: &SettleParams) -> Result<Settled> {
    let completed = p.outcome == Outcome::Completed;
    let tail = completed.then_some(p.output_tail.as_str());
    // One statement: the fence (still processing, same attempt, same worker) and the write.
    let row: Option<SettledRow> = tx
        .prepare_cached(claim::sqlite::SETTLE)?
        .query_row(
            params![
                p.id,
                p.attempt,
                p.worker_id,
                p.outcome.as_str(),
                p.run_at_ms,
                p.now_ms,
                p.exit_code,
                p.error,
                tail,
                p.lease_expired_before
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((seq, started_at_ms, run, stored, has_dependents)) = row else {
        return Ok(Settled::Fenced);
    };
    let settled = p.settled_as(Some(&stored));
    dependents_in(tx, seq, &stored, has_dependents.is_some(), p.now_ms)?;
    if !completed {
        tx.prepare_cached(attempts::sqlite::INSERT)?.execute(params![
            seq,
            run,
            p.attempt,
            p.worker_id,
            started_at_ms,
            p.now_ms,
            p.exit_code,
            p.error,
            stored,
            p.output_tail
        ])?;
    }
    Ok(settled)
}

/// What the jobs that run after job `seq` need now that it is `state`: counted down when it
/// completed, cancelled down the chain when it ended otherwise (see
/// [`dependencies::dependents_step`]).
fn dependents_in(
    tx: &rusqlite::Transaction<'_>,
    seq: i64,
    state: &str,
    has_dependents: bool,
    now_ms: i64,
) -> Result<()> {
    if let Some(sql) = dependencies::dependents_step(state, has_dependents) {
        tx.prepare_cached(sql.sqlite)?.execute(params![seq, now_ms])?;
    }
    Ok(())
}

/// The seq of each job of `after`, marked as having dependents, and how many of them have
/// not completed yet (an unknown, dead or cancelled one is an error).
fn parents_in(tx: &rusqlite::Transaction<'_>, after: &[&str]) -> Result<(Vec<i64>, i64)> {
    let mut st = tx.prepare_cached(dependencies::PARENT_MARK.sqlite)?;
    let mut seqs = Vec::with_capacity(after.len());
    let mut open = 0;
    for id in after {
        let row: Option<(i64, String)> = st.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        if crate::rules::parent_open(id, row.as_ref().map(|r| row::state_of(&r.1)).transpose()?)? {
            open += 1;
        }
        seqs.extend(row.map(|r| r.0));
    }
    Ok((seqs, open))
}

/// Claims the next due job inside `tx` for `p.worker_id`.
pub(super) fn claim_in(tx: &rusqlite::Transaction<'_>, p: &ClaimParams<'_>) -> Result<Option<Job>> {
    let mut st = tx.prepare_cached(claim::sqlite::CLAIM)?;
    let queues = p.queues.map(|q| q.json());
    let after = p.after_queue.unwrap_or("");
    let mut rows = st.query(params![p.worker_id, p.now_ms, p.now_ms + p.lease_ms, queues, after])?;
    rows.next()?.map(|r| row::job_from(r, 0)).transpose()
}

impl JobQueue for SqliteStore {
    fn job_insert(&mut self, batch: InsertBatch<'_>) -> Result<Inserted> {
        let InsertBatch { jobs, now_ms, mut progress } = batch;
        let tx = self.immediate()?;
        let mut ids = Vec::with_capacity(jobs.len());
        let mut skipped = Vec::new();
        let mut stand_in = std::collections::HashMap::new();
        {
            let mut ensure = tx.prepare_cached(queues::sqlite::ENSURE)?;
            for queue in super::distinct_queues(jobs) {
                ensure.execute(params![queue, now_ms])?;
            }
            let mut ins = tx.prepare_cached(jobs::sqlite::INSERT)?;
            for j in jobs {
                let id = match &j.id {
                    Some(id) => id.clone(),
                    None => jobid::generate(now_ms),
                };
                let timeout = i64::try_from(j.timeout_ms).unwrap_or(i64::MAX);
                let env = row::env_text(&j.env);
                let (parents, waiting_on) = if j.after.is_empty() {
                    (Vec::new(), 0)
                } else {
                    parents_in(&tx, &super::parents_of(&j.after, &stand_in))?
                };
                match ins.execute(params![
                    id,
                    j.command,
                    j.max_retries,
                    j.priority,
                    j.run_at_ms,
                    timeout,
                    j.cwd,
                    now_ms,
                    env,
                    j.queue,
                    j.unique_key,
                    waiting_on
                ]) {
                    Ok(n) => {
                        if n == 0 {
                            // The key is held: the holder's id stands for this job.
                            let key = j.unique_key.as_deref().unwrap_or_default();
                            let holder: String =
                                tx.prepare_cached(jobs::UNIQUE_HOLDER.sqlite)?.query_row(params![key], |r| r.get(0))?;
                            skipped.push(ids.len());
                            if let Some(given) = &j.id {
                                stand_in.insert(given.clone(), holder.clone());
                            }
                            ids.push(holder);
                        } else {
                            let seq = tx.last_insert_rowid();
                            let mut edge = tx.prepare_cached(dependencies::INSERT.sqlite)?;
                            for parent in parents {
                                edge.execute(params![parent, seq])?;
                            }
                            ids.push(id);
                        }
                        if ids.len() % super::PROGRESS_EVERY == 0 {
                            if let Some(report) = progress.as_mut() {
                                report(ids.len());
                            }
                        }
                    }
                    Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                        return Err(Error::DuplicateId(id));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        tx.commit()?;
        Ok(Inserted { ids, skipped })
    }

    fn job_due_exists(&mut self, p: &ClaimParams<'_>) -> Result<bool> {
        let mut st = self.conn.prepare_cached(claim::sqlite::DUE)?;
        Ok(st.exists(params![None::<i64>, p.now_ms, None::<i64>, p.queues.map(|q| q.json())])?)
    }

    fn job_claim(&mut self, p: &ClaimParams<'_>) -> Result<Option<Job>> {
        let tx = self.immediate()?;
        let job = claim_in(&tx, p)?;
        tx.commit()?;
        Ok(job)
    }

    fn job_settle(&mut self, p: &SettleParams) -> Result<Settled> {
        let tx = self.immediate()?;
        let settled = settle_in(&tx, p)?;
        tx.commit()?;
        Ok(settled)
    }

    fn job_settle_and_claim(&mut self, s: &SettleParams, c: &ClaimParams<'_>) -> Result<(Settled, Option<Job>)> {
        combine::settle_and_claim(&mut self.conn, self.shared, s, c)
    }

    fn job_requeue(&mut self, f: &Fence<'_>, now_ms: i64) -> Result<bool> {
        let tx = self.immediate()?;
        let row: Option<(i64, String, Option<i64>)> = tx
            .prepare_cached(claim::REQUEUE.sqlite)?
            .query_row(params![f.id, f.attempt, f.worker_id, now_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((seq, state, has_dependents)) = &row {
            dependents_in(&tx, *seq, state, has_dependents.is_some(), now_ms)?;
        }
        tx.commit()?;
        Ok(row.is_some())
    }
}

impl JobAdmin for SqliteStore {
    fn job_get_expired(&mut self, now_ms: i64) -> Result<Vec<ExpiredJob>> {
        let mut st = self.conn.prepare_cached(jobs::sqlite::EXPIRED)?;
        let rows = st.query_map(params![now_ms], decode(|r| row::expired_from(r)))?;
        collect(rows)
    }

    fn job_settle_many(&mut self, settles: &[SettleParams]) -> Result<Vec<Settled>> {
        let tx = self.immediate()?;
        let settled = settles.iter().map(|p| settle_in(&tx, p)).collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(settled)
    }

    fn job_purge(&mut self, state: JobState, cutoff_ms: Option<i64>) -> Result<Vec<String>> {
        crate::rules::check_purgeable(state)?;
        let cutoff = cutoff_ms.unwrap_or(i64::MAX);
        let tx = self.immediate()?;
        tx.execute(by_state::purge_attempts(state), params![cutoff])?;
        let ids = {
            let mut st = tx.prepare(by_state::purge(state))?;
            let rows = st.query_map(params![cutoff], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()?
        };
        tx.execute(dependencies::CLEAN.sqlite, [])?;
        tx.commit()?;
        Ok(ids)
    }

    fn job_change_by_id(&mut self, p: &ByIdParams<'_>) -> Result<u64> {
        let tx = self.immediate()?;
        for id in p.ids {
            let state: Option<String> =
                tx.prepare_cached(jobs::sqlite::STATE)?.query_row(params![id], |r| r.get(0)).optional()?;
            crate::rules::check_change(p.change, id, state.as_deref().map(row::state_of).transpose()?)?;
            let (read_parents, read_child) = p.change.dependency_reads();
            let mut parents: Vec<(String, JobState)> = Vec::new();
            if read_parents {
                let mut st = tx.prepare_cached(dependencies::PARENTS.sqlite)?;
                let rows = st.query_map(params![id], decode(|r| row::parent_from(r)))?;
                parents = collect(rows)?;
            }
            let child: Option<String> = if read_child {
                tx.prepare_cached(dependencies::WAITING_CHILD.sqlite)?
                    .query_row(params![id], |r| r.get(0))
                    .optional()?
            } else {
                None
            };
            crate::rules::check_dependencies(p.change, id, &parents, child.as_deref())?;
            for step in jobs::change_steps(p.change) {
                let mut st = tx.prepare_cached(step.sql.sqlite)?;
                let done = if step.takes_now { st.execute(params![id, p.now_ms]) } else { st.execute(params![id]) };
                match done {
                    Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                        return Err(refusal::key_taken(id));
                    }
                    other => other?,
                };
            }
            if p.change == ByIdChange::Cancel {
                let end: (i64, String, Option<i64>) = tx
                    .prepare_cached(dependencies::JOB_END.sqlite)?
                    .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                dependents_in(&tx, end.0, &end.1, end.2.is_some(), p.now_ms)?;
            }
        }
        tx.commit()?;
        Ok(p.ids.len() as u64)
    }

    fn dead_retry_all(&mut self, now_ms: i64) -> Result<u64> {
        Ok(self.write(jobs::DEAD_RETRY_ALL.sqlite, params![now_ms]).map_err(refusal::retry_all_error)? as u64)
    }
}

impl JobInspect for SqliteStore {
    fn job_get(&mut self, id: &str) -> Result<Job> {
        let mut st = self.conn.prepare_cached(jobs::GET.sqlite)?;
        let mut rows = st.query(params![id])?;
        match rows.next()? {
            Some(r) => row::job_from(r, 0),
            None => Err(Error::NotFound(id.to_string())),
        }
    }

    fn job_list_where(&mut self, f: &ListFilter<'_>) -> Result<Vec<Job>> {
        let limit = f.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        // One statement per state, naming it literally, so that SQLite can prove which
        // partial index holds it (a bound parameter cannot). Completed jobs are in no index:
        // they are read in enqueue order from the table itself, where they come first.
        let sql = match f.state {
            Some(state) => by_state::list(state),
            None => jobs::sqlite::LIST_ALL_STATES,
        };
        let mut st = self.conn.prepare_cached(sql)?;
        let rows = st.query_map(params![limit, f.queue], decode(|r| row::job_from(r, 0)))?;
        collect(rows)
    }

    fn job_page(&mut self, f: &PageFilter<'_>) -> Result<Page> {
        // Dead, cancelled and waiting jobs have partial indexes in seq order, and a queue
        // has jobs_all (queue, seq): those pages read only what they return. The rest are
        // read newest first from the table itself, at most a window of it per page.
        let windowed = f.search.is_some()
            || (f.state.is_some() && f.queue.is_some())
            || matches!(f.state, Some(JobState::Pending | JobState::Failed | JobState::Completed));
        let sql = page::sqlite(f.state, f.queue.is_some(), f.search.is_some());
        let tx = self.conn.transaction()?;
        let max: Option<i64> = tx.prepare_cached(jobs::sqlite::MAX_SEQ)?.query_row([], |r| r.get(0))?;
        let min: Option<i64> = tx.prepare_cached(jobs::sqlite::MIN_SEQ)?.query_row([], |r| r.get(0))?;
        let (Some(max), Some(min)) = (max, min) else {
            return Ok(Page::default());
        };
        let (upper, lower) = page_bounds::bounds(f.before, max, windowed);
        let limit = i64::try_from(f.limit).unwrap_or(i64::MAX);
        let found: Vec<(i64, Job)> = {
            let mut st = tx.prepare_cached(sql)?;
            let rows = st.query_map(
                params![limit, f.queue, upper, lower, f.search],
                decode(|r| Ok((r.get::<_, i64>(job_col::seq)?, row::job_from(r, 0)?))),
            )?;
            collect(rows)?
        };
        tx.commit()?;
        let (seqs, jobs): (Vec<i64>, Vec<Job>) = found.into_iter().unzip();
        Ok(Page { jobs, next: page_bounds::next(&seqs, f.limit, lower, min) })
    }

    fn job_count_by_state(&mut self) -> Result<Vec<(JobState, u64)>> {
        // Completed jobs are most of a long-lived queue and in no index: they are the total
        // (jobs::sqlite::COUNT_ALL) minus the rest.
        let tx = self.conn.transaction()?;
        let total: i64 = tx.prepare_cached(jobs::sqlite::COUNT_ALL)?.query_row([], |r| r.get(0))?;
        let mut counts = Vec::with_capacity(JobState::ALL.len());
        let mut others = 0;
        for s in JobState::ALL {
            if s != JobState::Completed {
                let n: i64 = tx.prepare_cached(by_state::count(s))?.query_row([], |r| r.get(0))?;
                others += n;
                counts.push((s, n as u64));
            }
        }
        tx.commit()?;
        let at = JobState::ALL.iter().position(|s| *s == JobState::Completed).unwrap_or(0);
        counts.insert(at, (JobState::Completed, (total - others).max(0) as u64));
        Ok(counts)
    }

    fn job_parents(&mut self, id: &str) -> Result<Vec<(String, JobState)>> {
        let mut st = self.conn.prepare_cached(dependencies::PARENTS.sqlite)?;
        let rows = st.query_map(params![id], decode(|r| row::parent_from(r)))?;
        collect(rows)
    }

    fn job_attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        let job_exists = self.conn.prepare_cached(jobs::EXISTS.sqlite)?.exists(params![id])?;
        if !job_exists {
            return Err(Error::NotFound(id.to_string()));
        }
        let mut st = self.conn.prepare_cached(attempts::LIST.sqlite)?;
        let rows = st.query_map(params![id], decode(|r| row::attempt_from(r)))?;
        collect(rows)
    }

    fn job_ahead(&mut self, id: &str, now_ms: i64) -> Result<u64> {
        let n: Option<i64> =
            self.conn.prepare_cached(jobs::sqlite::AHEAD)?.query_row(params![id, now_ms], |r| r.get(0)).optional()?;
        n.map(|n| n as u64).ok_or_else(|| Error::NotFound(id.to_string()))
    }

    fn schema_version(&mut self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn table_columns(&mut self, table: &str) -> Result<Vec<String>> {
        let mut st = self.conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
        let rows = st.query_map(params![table], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn file_integrity(&mut self, limit: usize) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        self.conn.pragma(None, "integrity_check", limit as i64, |r| {
            lines.push(r.get::<_, String>(0)?);
            Ok(())
        })?;
        Ok(lines.into_iter().filter(|l| l != "ok").collect())
    }

    fn check_rows(&mut self, sql: &str, now_ms: i64) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(sql)?;
        let uses_now = st.parameter_count() > 0;
        let now: &[&dyn rusqlite::ToSql] = if uses_now { &[&now_ms] } else { &[] };
        let rows = st.query_map(now, |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn describe(&self) -> String {
        format!("sqlite {} at {}", rusqlite::version(), self.path)
    }
}

impl QueueControl for SqliteStore {
    fn queue_list(&mut self) -> Result<Vec<QueueRow>> {
        // Counted as job_count_by_state counts, per queue: completed jobs are each queue's
        // total (the cells of jobs_all, which is on the queue) minus the rest.
        let tx = self.conn.transaction()?;
        let settings = {
            let mut st = tx.prepare_cached(queues::SETTINGS.sqlite)?;
            let rows =
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0, r.get::<_, i64>(2)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        let mut counts: Vec<(String, JobState, u64)> = Vec::new();
        let mut others: Vec<(String, u64)> = Vec::new();
        for s in JobState::ALL {
            if s == JobState::Completed {
                continue;
            }
            let mut st = tx.prepare_cached(by_state::count_by_queue(s))?;
            for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (queue, n) = row?;
                others.push((queue.clone(), n as u64));
                counts.push((queue, s, n as u64));
            }
        }
        let mut st = tx.prepare_cached(queues::sqlite::JOBS)?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (queue, total) = row?;
            let rest: u64 = others.iter().filter(|(q, _)| *q == queue).map(|(_, n)| n).sum();
            counts.push((queue, JobState::Completed, (total as u64).saturating_sub(rest)));
        }
        drop(st);
        tx.commit()?;
        Ok(queue_rows::queue_rows(settings, &counts))
    }

    fn queue_set(&mut self, s: &QueueSetting<'_>) -> Result<u64> {
        s.check()?;
        let (sql, limit) = queues::change(s.change);
        let tx = self.immediate()?;
        {
            let mut st = tx.prepare_cached(sql.sqlite)?;
            for name in s.names {
                match limit {
                    Some(n) => st.execute(params![name, s.now_ms, n])?,
                    None => st.execute(params![name, s.now_ms])?,
                };
            }
        }
        tx.commit()?;
        Ok(s.names.len() as u64)
    }
}

impl ConfigStore for SqliteStore {
    fn config_get(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.prepare_cached(config::GET.sqlite)?.query_row(params![key], |r| r.get(0)).optional()?)
    }

    fn config_set(&mut self, s: Setting<'_>, now_ms: i64) -> Result<()> {
        self.write(config::SET.sqlite, params![s.key, s.value, now_ms])?;
        Ok(())
    }

    fn config_list(&mut self) -> Result<Vec<(String, String)>> {
        let mut st = self.conn.prepare_cached(config::LIST.sqlite)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl WorkerRegistry for SqliteStore {
    fn worker_register(&mut self, r: &Registration<'_>) -> Result<()> {
        let queues = r.queues.map(|q| q.stored());
        let n = self.write(workers::REGISTER.sqlite, params![r.id, r.host, r.pid, r.now_ms, r.lease_ms, queues])?;
        if n == 0 {
            return Err(refusal::already_registered(r.id));
        }
        Ok(())
    }

    fn worker_heartbeat(&mut self, id: &str, now_ms: i64) -> Result<Option<Beat>> {
        if let Some(identity) = self.identity {
            identity.check(&self.path)?;
        }
        let tx = self.immediate()?;
        let row: Option<(i64, i64)> = tx
            .prepare_cached(workers::BEAT.sqlite)?
            .query_row(params![id, now_ms], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((stop, lease_ms)) = row else {
            tx.commit()?;
            return Ok(None);
        };
        let cancel = {
            let mut st = tx.prepare_cached(jobs::sqlite::LEASE_RENEW)?;
            let flags = st.query_map(params![id, now_ms + lease_ms], |r| r.get::<_, Option<i64>>(0))?;
            flags.collect::<rusqlite::Result<Vec<_>>>()?.iter().any(Option::is_some)
        };
        tx.commit()?;
        Ok(Some(Beat { stop: StopLevel::from_u8(u8::try_from(stop).unwrap_or(0)), cancel }))
    }

    fn worker_exit(&mut self, id: &str, now_ms: i64) -> Result<()> {
        self.write(workers::EXIT.sqlite, params![id, now_ms])?;
        Ok(())
    }

    fn worker_list(&mut self, include_exited: bool) -> Result<Vec<WorkerRow>> {
        let mut st = self.conn.prepare_cached(workers::sqlite::LIST)?;
        let rows = st.query_map(params![include_exited], decode(|r| row::worker_from(r)))?;
        collect(rows)
    }

    fn worker_request_stop(&mut self, level: StopLevel, host: Option<&str>, worker: Option<&str>) -> Result<u64> {
        Ok(self.write(workers::STOP.sqlite, params![level.as_u8(), host, worker])? as u64)
    }

    fn worker_reap(&mut self, now_ms: i64) -> Result<u64> {
        if !self.conn.prepare_cached(workers::sqlite::ANY_SILENT)?.exists(params![now_ms])? {
            return Ok(0);
        }
        Ok(self.write(workers::REAP.sqlite, params![now_ms])? as u64)
    }
}

impl ScheduleStore for SqliteStore {
    fn schedule_add(&mut self, r: &ScheduleRow) -> Result<()> {
        let n = self.write(
            schedules::ADD.sqlite,
            params![r.name, r.cron, r.tz, r.overlap.as_str(), r.job, r.next_fire_ms, r.created_at_ms],
        )?;
        if n == 0 {
            return Err(refusal::schedule_exists(&r.name));
        }
        Ok(())
    }

    fn schedule_list(&mut self, name: Option<&str>, due_by: Option<i64>) -> Result<Vec<ScheduleRow>> {
        let mut st = self.conn.prepare_cached(schedules::LIST.sqlite)?;
        let rows = st.query_map(params![name, due_by], decode(|r| row::schedule_from(r)))?;
        collect(rows)
    }

    fn schedule_fire(&mut self, f: &Fire<'_>) -> Result<bool> {
        let tx = self.immediate()?;
        let job_id = f.job.and_then(|j| j.id.as_deref());
        let fired = i64::from(f.job.is_some());
        let moved = tx.prepare_cached(schedules::FIRE.sqlite)?.execute(params![
            f.name,
            f.expected_next_ms,
            f.next_fire_ms,
            f.occurrence_ms,
            job_id,
            fired,
            1 - fired,
            f.now_ms
        ])?;
        if moved == 0 {
            return Ok(false);
        }
        if let Some(j) = f.job {
            tx.prepare_cached(queues::sqlite::ENSURE)?.execute(params![j.queue, f.now_ms])?;
            let timeout = i64::try_from(j.timeout_ms).unwrap_or(i64::MAX);
            tx.prepare_cached(jobs::SCHEDULED_INSERT.sqlite)?.execute(params![
                j.id,
                j.command,
                j.max_retries,
                j.priority,
                j.run_at_ms,
                timeout,
                j.cwd,
                f.now_ms,
                row::env_text(&j.env),
                j.queue,
                j.unique_key
            ])?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn schedule_change(&mut self, name: &str, change: ScheduleChange, now_ms: i64) -> Result<()> {
        let (sql, next) = schedules::change(change);
        let n = match next {
            Some(next) => self.write(sql.sqlite, params![name, now_ms, next])?,
            None => self.write(sql.sqlite, params![name, now_ms])?,
        };
        if n == 0 {
            return Err(refusal::no_schedule(name));
        }
        Ok(())
    }
}

impl StatsStore for SqliteStore {
    fn stats_add(&mut self, rows: &[StatRow], forget_before_ms: i64) -> Result<()> {
        let tx = self.immediate()?;
        {
            let mut add = tx.prepare_cached(stats::ADD.sqlite)?;
            for r in rows {
                add.execute(params![r.minute_ms, r.queue, r.metric, r.value])?;
                add.execute(params![0, r.queue, r.metric, r.value])?;
            }
        }
        tx.prepare_cached(stats::FORGET.sqlite)?.execute(params![forget_before_ms])?;
        tx.commit()?;
        Ok(())
    }

    fn stats_read(&mut self, since_ms: Option<i64>) -> Result<Vec<StatRow>> {
        let mut st = match since_ms {
            None => self.conn.prepare_cached(stats::TOTALS.sqlite)?,
            Some(_) => self.conn.prepare_cached(stats::SINCE.sqlite)?,
        };
        let rows = match since_ms {
            None => st.query_map([], decode(|r| row::stat_from(r)))?.collect::<Vec<_>>(),
            Some(t) => st.query_map(params![t], decode(|r| row::stat_from(r)))?.collect::<Vec<_>>(),
        };
        collect(rows.into_iter())
    }
}

impl ChangeFeed for SqliteStore {
    fn wakeups(&self) -> Wakeups {
        Wakeups::Polled(CHANGE_POLL)
    }

    fn wait_for_change(&mut self, timeout: Duration) -> Result<bool> {
        // data_version changes when another connection commits. Reading it touches only
        // the WAL index in shared memory, so a 4 ms poll costs a fraction of a percent of
        // one core and keeps the pickup latency at a few milliseconds.
        let until = std::time::Instant::now() + timeout;
        loop {
            let v: i64 = self.conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))?;
            let changed = self.seen_version.is_some_and(|seen| seen != v);
            self.seen_version = Some(v);
            if changed {
                return Ok(true);
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            std::thread::sleep(left.min(CHANGE_POLL));
        }
    }
}
