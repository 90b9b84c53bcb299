//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes run in `BEGIN IMMEDIATE` so two writers never deadlock upgrading a read lock;
//! SQLite serialises them, which is what makes the one-statement claim atomic.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use super::{next_state, ClaimParams, SettleParams, Settled, Store, StoreOptions, WorkerRow};
use crate::error::{Error, Result};
use crate::job::{Attempt, Job, JobState, NewJob};
use crate::jobid;

/// Forward migrations; `PRAGMA user_version` is the number applied so far.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY,   -- enqueue order: FIFO among equal priorities
    id               TEXT NOT NULL UNIQUE,
    command          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,  -- counted toward max_retries; reset by dlq retry
    runs             INTEGER NOT NULL DEFAULT 0,  -- executions ever; keys the attempt history
    max_retries      INTEGER NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at_ms        INTEGER NOT NULL,
    timeout_ms       INTEGER NOT NULL,
    cwd              TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    started_at_ms    INTEGER,
    finished_at_ms   INTEGER,
    exit_code        INTEGER,
    last_error       TEXT,
    worker_id        TEXT,
    lease_expires_ms INTEGER,
    -- A completed job's last attempt lives in this row (started_at_ms to worker_id, and
    -- this tail) rather than in attempts: one row fewer to write for every job that works.
    output_tail      TEXT
);
-- The claim walks this index in priority order and stops at the first due row; it holds
-- only runnable jobs, so finished ones (millions, eventually) never slow it down.
CREATE INDEX jobs_due ON jobs (priority DESC, seq, run_at_ms) WHERE state IN ('pending', 'failed');
-- list --state, status counts and purge.
CREATE INDEX jobs_state ON jobs (state, seq);
CREATE TABLE attempts (
    job_seq        INTEGER NOT NULL,
    run            INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    worker_id      TEXT,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER NOT NULL,
    exit_code      INTEGER,
    error          TEXT,
    outcome        TEXT NOT NULL,
    output_tail    TEXT NOT NULL,
    -- Clustered by job: one b-tree, and a job's history is one range.
    PRIMARY KEY (job_seq, run)
) WITHOUT ROWID;
CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    state          TEXT NOT NULL,  -- running or exited; idle/busy come from its processing job
    started_at_ms  INTEGER NOT NULL,
    heartbeat_ms   INTEGER NOT NULL,
    lease_ms       INTEGER NOT NULL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    exited_at_ms   INTEGER
);
CREATE TABLE config (
    key           TEXT PRIMARY KEY,
    value         TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
"#,
    r#"
-- Every job changes state twice per attempt, and each change moved two entries of
-- jobs_state (in three places of the index for a settle+claim). Small partial indexes
-- instead: completed jobs, most of the table, are in none and are counted as the rest.
DROP INDEX jobs_state;
-- Heartbeats, lease rescue, worker list, list --state processing.
CREATE INDEX jobs_processing ON jobs (worker_id) WHERE state = 'processing';
-- The DLQ: list, count, retry, purge.
CREATE INDEX jobs_dead ON jobs (seq) WHERE state = 'dead';
-- The narrowest index of every job, on a column that never changes after enqueue: status
-- counts all jobs by counting its cells (a third of the pages of the id index).
CREATE INDEX jobs_all ON jobs (max_retries);
"#,
];

const JOB_COLS: &str = "id, command, state, attempts, max_retries, priority, run_at_ms, timeout_ms, cwd, \
     created_at_ms, updated_at_ms, started_at_ms, finished_at_ms, exit_code, last_error, worker_id, lease_expires_ms";

/// A worker is busy while a job is processing under its id; `state` stores only whether it
/// has exited, so claims and settles never write the workers table.
const WORKER_COLS: &str = "w.id, w.host, w.pid,
     CASE WHEN w.state = 'exited' THEN 'exited' WHEN j.id IS NOT NULL THEN 'busy' ELSE 'idle' END,
     j.id, w.started_at_ms, w.heartbeat_ms, w.lease_ms, w.stop_requested, w.exited_at_ms";

fn state_of(s: &str) -> rusqlite::Result<JobState> {
    JobState::parse(s).ok_or_else(|| rusqlite::Error::InvalidColumnType(0, s.to_string(), rusqlite::types::Type::Text))
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        command: r.get(1)?,
        state: state_of(&r.get::<_, String>(2)?)?,
        attempts: r.get(3)?,
        max_retries: r.get(4)?,
        priority: r.get(5)?,
        run_at_ms: r.get(6)?,
        timeout_ms: r.get::<_, i64>(7)? as u64,
        cwd: r.get(8)?,
        created_at_ms: r.get(9)?,
        updated_at_ms: r.get(10)?,
        started_at_ms: r.get(11)?,
        finished_at_ms: r.get(12)?,
        exit_code: r.get(13)?,
        last_error: r.get(14)?,
        worker_id: r.get(15)?,
        lease_expires_ms: r.get(16)?,
    })
}

fn worker_from_row(r: &Row<'_>) -> rusqlite::Result<WorkerRow> {
    Ok(WorkerRow {
        id: r.get(0)?,
        host: r.get(1)?,
        pid: r.get(2)?,
        state: r.get(3)?,
        current_job: r.get(4)?,
        started_at_ms: r.get(5)?,
        heartbeat_ms: r.get(6)?,
        lease_ms: r.get(7)?,
        stop_requested: r.get(8)?,
        exited_at_ms: r.get(9)?,
    })
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

/// A file's identity on its filesystem: (device, inode) on POSIX. Windows does not let a
/// file SQLite holds open be deleted or replaced, so there only its presence is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    #[cfg(unix)]
    dev_ino: (u64, u64),
}

impl FileIdentity {
    /// The identity of the file at `path` now (by `stat`, which opens nothing: see
    /// `private_file::check_writable` for why nothing may open a database beside SQLite).
    fn of(path: &Path) -> std::io::Result<FileIdentity> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Ok(FileIdentity { dev_ino: (meta.dev(), meta.ino()) })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Ok(FileIdentity {})
        }
    }
}

/// What the threads of one process share about one database file.
struct Shared {
    /// Threads (the workers of a pool) take it before `BEGIN IMMEDIATE`, so they queue on a
    /// mutex, woken the moment it is free, instead of polling SQLite's busy handler.
    write_lock: Mutex<()>,
    /// Settle+claim requests of threads that found the write lock taken: its holder runs
    /// them in its own transaction (one commit for several jobs) and hands back results.
    pending: Mutex<Vec<Arc<Combined>>>,
}

/// What a settle+claim returns.
type SettleAndClaim = Result<(Settled, Option<Job>)>;

/// One thread's settle+claim, run by whichever thread holds the write lock.
struct Combined {
    settle: OwnedSettle,
    worker_id: String,
    now_ms: i64,
    lease_ms: i64,
    policy: crate::backoff::BackoffPolicy,
    result: Mutex<Option<SettleAndClaim>>,
    ready: Condvar,
}

/// `SettleParams` that can cross threads.
struct OwnedSettle {
    id: String,
    attempt: u32,
    max_retries: u32,
    worker_id: String,
    now_ms: i64,
    success: bool,
    exit_code: Option<i32>,
    error: Option<String>,
    output_tail: String,
}

impl Combined {
    fn run(&self, tx: &rusqlite::Transaction<'_>) -> SettleAndClaim {
        let s = &self.settle;
        let settle = SettleParams {
            id: &s.id,
            attempt: s.attempt,
            max_retries: s.max_retries,
            worker_id: &s.worker_id,
            now_ms: s.now_ms,
            success: s.success,
            exit_code: s.exit_code,
            error: s.error.clone(),
            output_tail: s.output_tail.clone(),
        };
        let claim = ClaimParams { worker_id: &self.worker_id, now_ms: self.now_ms, lease_ms: self.lease_ms };
        settle_and_claim_in(tx, &settle, &claim, &self.policy)
    }

    fn finish(&self, r: SettleAndClaim) {
        *self.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        self.ready.notify_one();
    }

    fn take(&self) -> Option<SettleAndClaim> {
        self.result.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The shared state of the database at `path` in this process.
fn shared_for(path: &Path) -> &'static Shared {
    static ALL: Mutex<Option<HashMap<PathBuf, &'static Shared>>> = Mutex::new(None);
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut all = ALL.lock().unwrap_or_else(|p| p.into_inner());
    // Leaked on purpose: one small value per distinct database a process opens.
    all.get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(Shared { write_lock: Mutex::new(()), pending: Mutex::new(Vec::new()) })))
}

/// How long a writer waits for another process's write lock, shared by the busy handler.
static BUSY_TIMEOUT_MS: AtomicU64 = AtomicU64::new(30_000);

/// Waits for another process's write lock in short steps (50 us for the first 10 ms, then
/// 1 ms) rather than SQLite's default schedule, whose first waits are already milliseconds.
fn busy_wait(count: i32) -> bool {
    let count = u64::try_from(count).unwrap_or(0);
    if count < 200 {
        std::thread::sleep(Duration::from_micros(50));
        return true;
    }
    if count - 200 >= BUSY_TIMEOUT_MS.load(Ordering::Relaxed) {
        return false;
    }
    std::thread::sleep(Duration::from_millis(1));
    true
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

/// Creates the database file owner-only before SQLite sees it; SQLite gives its `-wal` and
/// `-shm` files the same permissions.
fn create_private(path: &Path) -> Result<()> {
    if path.exists() {
        // SQLite would only say "unable to open database file"; this names the reason
        // (a read-only filesystem, missing permissions).
        return crate::private_file::check_writable(path)
            .map_err(|e| Error::Io(format!("cannot write the database {}: {e}", path.display())));
    }
    crate::private_file::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(|_| ())
        .map_err(|e| Error::Io(format!("cannot create the database {}: {e}", path.display())))
}

impl SqliteStore {
    /// Opens (creating when absent) and migrates the database at `path`.
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(Error::Io(format!("the folder {} of the database does not exist", dir.display())));
            }
        }
        create_private(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        BUSY_TIMEOUT_MS.store(opts.busy_timeout_ms, Ordering::Relaxed);
        conn.busy_handler(Some(busy_wait))?;
        // Room for every statement a worker uses, so none is ever prepared twice.
        conn.set_prepared_statement_cache_capacity(64);
        // 2 KiB pages for a new database (an existing one keeps its own): a settle+claim
        // commit writes about five pages to the WAL, and halving their size took the engine
        // from about 13,400 to 16,900 pairs/s here; tails up to ~2 KB still fit in a row.
        conn.pragma_update(None, "page_size", 2048)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Database(format!("cannot switch the database to WAL mode (it is in {mode} mode)")));
        }
        // FULL syncs the WAL on every commit: an acknowledged enqueue survives a power cut.
        // NORMAL (workers) syncs at checkpoints only; a lost settle means the job runs again.
        conn.pragma_update(None, "synchronous", if opts.durable { "FULL" } else { "NORMAL" })?;
        // Checkpoint every 4,000 pages (16 MB of WAL) instead of 1,000: a quarter of the
        // fsyncs on a busy queue.
        conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
        let shared = shared_for(path);
        let identity = FileIdentity::of(path).ok();
        let mut store = SqliteStore { conn, path: path.display().to_string(), shared, seen_version: None, identity };
        store.migrate()?;
        Ok(store)
    }

    /// Fails with a lasting error when the path no longer names the file this connection
    /// has open: it was deleted (people do `rm qctl.db*` to start over) or replaced (a
    /// restore copied over it). Writes would go on into the unlinked file and be lost,
    /// while new jobs went to a new file that nobody works on.
    fn check_file_identity(&self) -> Result<()> {
        let Some(opened) = self.identity else {
            return Ok(());
        };
        match FileIdentity::of(Path::new(&self.path)) {
            Ok(now) if now == opened => Ok(()),
            Ok(_) => Err(Error::Lasting(format!(
                "the database file {} was replaced by another file while this worker had it open: \
                 start the workers again to use the new file",
                self.path
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Lasting(format!(
                "the database file {} was deleted while this worker had it open: its jobs are gone \
                 unless a backup exists; start the workers again to use a new queue",
                self.path
            ))),
            // A passing failure of stat itself (a network filesystem): not a verdict.
            Err(_) => Ok(()),
        }
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

    fn migrate(&mut self) -> Result<()> {
        let latest = MIGRATIONS.len() as i64;
        let current: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if current == latest {
            return Ok(());
        }
        if current > latest {
            return Err(Error::SchemaTooNew { found: current, supported: latest });
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
                )));
            }
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
            tx.execute_batch(sql)?;
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
}

/// Settles one processing job inside `tx`, fenced on (id, attempt, worker).
fn settle_in(
    tx: &rusqlite::Transaction<'_>,
    p: &SettleParams<'_>,
    policy: &crate::backoff::BackoffPolicy,
) -> Result<Settled> {
    let (state, run_at_ms) = next_state(p.success, p.attempt, p.max_retries, policy, p.now_ms);
    let completed = state == JobState::Completed;
    let tail = completed.then_some(p.output_tail.as_str());
    // One statement: the fence (still processing, same attempt, same worker) and the write.
    let row: Option<(i64, Option<i64>, i64)> = tx
        .prepare_cached(
            "UPDATE jobs SET state = ?4, run_at_ms = ?5, finished_at_ms = ?6, updated_at_ms = ?6,
                 exit_code = ?7, last_error = ?8, lease_expires_ms = NULL, output_tail = ?9
             WHERE id = ?1 AND state = 'processing' AND attempts = ?2 AND worker_id = ?3
             RETURNING seq, started_at_ms, runs",
        )?
        .query_row(
            params![p.id, p.attempt, p.worker_id, state.as_str(), run_at_ms, p.now_ms, p.exit_code, p.error, tail],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((seq, started_at_ms, run)) = row else {
        return Ok(Settled::Fenced);
    };
    if completed {
        return Ok(Settled::Completed);
    }
    let mut ins = tx.prepare_cached(
        "INSERT INTO attempts (job_seq, run, attempt, worker_id, started_at_ms, finished_at_ms, exit_code, error, outcome, output_tail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    ins.execute(params![
        seq,
        run,
        p.attempt,
        p.worker_id,
        started_at_ms,
        p.now_ms,
        p.exit_code,
        p.error,
        state.as_str(),
        p.output_tail
    ])?;
    Ok(match state {
        JobState::Completed => Settled::Completed,
        JobState::Dead => Settled::Dead,
        _ => Settled::Retry { run_at_ms },
    })
}

/// The claim: one statement that picks the most urgent due job through jobs_due and takes
/// it. INDEXED BY because without statistics the planner preferred another index and sorted
/// every runnable row: a claim grew linear in the queue length. The write lock of
/// BEGIN IMMEDIATE means no other claim runs in between.
static CLAIM_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE jobs SET state = 'processing', attempts = attempts + 1, runs = runs + 1, worker_id = ?1,
             started_at_ms = ?2, finished_at_ms = NULL, exit_code = NULL, last_error = NULL,
             lease_expires_ms = ?3, updated_at_ms = ?2
         WHERE seq = (SELECT seq FROM jobs INDEXED BY jobs_due
                      WHERE state IN ('pending', 'failed') AND run_at_ms <= ?2
                      ORDER BY priority DESC, seq LIMIT 1)
         RETURNING {JOB_COLS}"
    )
});

/// Settles one job and claims the next inside `tx`: a busy worker's step between jobs.
fn settle_and_claim_in(
    tx: &rusqlite::Transaction<'_>,
    s: &SettleParams<'_>,
    c: &ClaimParams<'_>,
    policy: &crate::backoff::BackoffPolicy,
) -> SettleAndClaim {
    Ok((settle_in(tx, s, policy)?, claim_in(tx, c)?))
}

/// Claims the most urgent due job inside `tx` for `p.worker_id`.
fn claim_in(tx: &rusqlite::Transaction<'_>, p: &ClaimParams<'_>) -> Result<Option<Job>> {
    let job = tx
        .prepare_cached(&CLAIM_SQL)?
        .query_row(params![p.worker_id, p.now_ms, p.now_ms + p.lease_ms], job_from_row)
        .optional()?;
    Ok(job)
}

/// `INDEXED BY` and the start of a `WHERE` that selects the jobs of `state` through the
/// partial index holding them (none for completed jobs). The index's own condition is
/// repeated: SQLite does not see that `state = 'pending'` implies `state IN (...)`.
fn where_state(state: JobState) -> String {
    let index = match state {
        JobState::Pending | JobState::Failed => "INDEXED BY jobs_due WHERE state IN ('pending', 'failed') AND",
        JobState::Processing => "INDEXED BY jobs_processing WHERE",
        JobState::Dead => "INDEXED BY jobs_dead WHERE",
        JobState::Completed => "WHERE",
    };
    format!("{index} state = '{}'", state.as_str())
}

impl Store for SqliteStore {
    fn job_insert_many(
        &mut self,
        jobs: &[NewJob],
        now_ms: i64,
        mut progress: Option<&mut dyn FnMut(usize)>,
    ) -> Result<Vec<String>> {
        let tx = self.immediate()?;
        let mut ids = Vec::with_capacity(jobs.len());
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO jobs (id, command, state, max_retries, priority, run_at_ms, timeout_ms, cwd, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            )?;
            for j in jobs {
                let id = match &j.id {
                    Some(id) => id.clone(),
                    None => jobid::generate(now_ms),
                };
                let timeout = i64::try_from(j.timeout_ms).unwrap_or(i64::MAX);
                match ins.execute(params![
                    id,
                    j.command,
                    j.max_retries,
                    j.priority,
                    j.run_at_ms,
                    timeout,
                    j.cwd,
                    now_ms
                ]) {
                    Ok(_) => {
                        ids.push(id);
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
        Ok(ids)
    }

    fn job_due_exists(&mut self, now_ms: i64) -> Result<bool> {
        let mut st = self.conn.prepare_cached(
            "SELECT 1 FROM jobs INDEXED BY jobs_due WHERE state IN ('pending', 'failed') AND run_at_ms <= ?1 LIMIT 1",
        )?;
        Ok(st.exists(params![now_ms])?)
    }

    fn job_claim(&mut self, p: &ClaimParams<'_>) -> Result<Option<Job>> {
        let tx = self.immediate()?;
        let job = claim_in(&tx, p)?;
        tx.commit()?;
        Ok(job)
    }

    fn job_settle(&mut self, p: &SettleParams<'_>) -> Result<Settled> {
        // Only a failure needs the policy; a success saves two reads.
        let policy = if p.success { Default::default() } else { self.backoff_policy()? };
        let tx = self.immediate()?;
        let settled = settle_in(&tx, p, &policy)?;
        tx.commit()?;
        Ok(settled)
    }

    fn job_settle_and_claim(&mut self, s: &SettleParams<'_>, c: &ClaimParams<'_>) -> Result<(Settled, Option<Job>)> {
        let policy = if s.success { Default::default() } else { self.backoff_policy()? };
        let shared = self.shared;
        let guard = match shared.write_lock.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                // Busy: leave the request for the holder, then wait for its result, or for
                // the lock, whichever comes first. (Only this path copies the parameters.)
                let me = Arc::new(Combined {
                    settle: OwnedSettle {
                        id: s.id.to_string(),
                        attempt: s.attempt,
                        max_retries: s.max_retries,
                        worker_id: s.worker_id.to_string(),
                        now_ms: s.now_ms,
                        success: s.success,
                        exit_code: s.exit_code,
                        error: s.error.clone(),
                        output_tail: s.output_tail.clone(),
                    },
                    worker_id: c.worker_id.to_string(),
                    now_ms: c.now_ms,
                    lease_ms: c.lease_ms,
                    policy,
                    result: Mutex::new(None),
                    ready: Condvar::new(),
                });
                shared.pending.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::clone(&me));
                loop {
                    {
                        let slot = me.result.lock().unwrap_or_else(|p| p.into_inner());
                        let (mut slot, _) = me
                            .ready
                            .wait_timeout_while(slot, Duration::from_micros(200), |r| r.is_none())
                            .unwrap_or_else(|p| p.into_inner());
                        if let Some(r) = slot.take() {
                            return r;
                        }
                    }
                    if let Ok(g) = shared.write_lock.try_lock() {
                        // A holder publishes what it took before it lets go, so the request
                        // is either answered or still waiting in the list.
                        if let Some(r) = me.take() {
                            return r;
                        }
                        shared.pending.lock().unwrap_or_else(|p| p.into_inner()).retain(|r| !Arc::ptr_eq(r, &me));
                        break g;
                    }
                }
            }
        };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mine = settle_and_claim_in(&tx, s, c, &policy);
        let others: Vec<Arc<Combined>> = std::mem::take(&mut *shared.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut results = Vec::with_capacity(others.len());
        let mut failed = mine.as_ref().err().cloned();
        for other in &others {
            if failed.is_some() {
                break;
            }
            match other.run(&tx) {
                Ok(r) => results.push(r),
                Err(e) => failed = Some(e),
            }
        }
        let committed = match failed {
            Some(e) => {
                drop(tx); // rolls back before the lock is let go
                Err(e)
            }
            None => tx.commit().map_err(Error::from),
        };
        match committed {
            Ok(()) => {
                for (other, r) in others.iter().zip(results) {
                    other.finish(Ok(r));
                }
                drop(guard);
                mine
            }
            Err(e) => {
                // Rolled back: nobody's settle or claim happened; each retries.
                for other in &others {
                    other.finish(Err(e.clone()));
                }
                drop(guard);
                Err(e)
            }
        }
    }

    fn job_requeue(&mut self, id: &str, attempt: u32, worker_id: &str, now_ms: i64) -> Result<bool> {
        let tx = self.immediate()?;
        let n = tx.execute(
            "UPDATE jobs SET state = 'pending', attempts = attempts - 1, runs = runs - 1, worker_id = NULL,
                 lease_expires_ms = NULL, started_at_ms = NULL, updated_at_ms = ?4
             WHERE id = ?1 AND state = 'processing' AND attempts = ?2 AND worker_id = ?3",
            params![id, attempt, worker_id, now_ms],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn job_rescue_expired(&mut self, now_ms: i64) -> Result<Vec<(String, u32)>> {
        let expired_exists = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM jobs INDEXED BY jobs_processing WHERE state = 'processing' AND lease_expires_ms < ?1 LIMIT 1",
            )?
            .exists(params![now_ms])?;
        if !expired_exists {
            return Ok(Vec::new());
        }
        let policy = self.backoff_policy()?;
        let tx = self.immediate()?;
        let expired: Vec<(String, u32, String, u32)> = {
            let mut st = tx.prepare(
                "SELECT id, attempts, worker_id, max_retries FROM jobs INDEXED BY jobs_processing
                 WHERE state = 'processing' AND lease_expires_ms < ?1",
            )?;
            let rows = st.query_map(params![now_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, Option<String>>(2)?.unwrap_or_default(), r.get(3)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut rescued = Vec::new();
        for (id, attempt, worker_id, max_retries) in expired {
            let p = SettleParams {
                id: &id,
                attempt,
                max_retries,
                worker_id: &worker_id,
                now_ms,
                success: false,
                exit_code: None,
                error: Some(format!("worker {worker_id} was lost (its lease expired)")),
                output_tail: String::new(),
            };
            if settle_in(&tx, &p, &policy)? != Settled::Fenced {
                rescued.push((id, attempt));
            }
        }
        tx.commit()?;
        Ok(rescued)
    }

    fn job_get(&mut self, id: &str) -> Result<Job> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1");
        self.conn
            .prepare_cached(&sql)?
            .query_row(params![id], job_from_row)
            .optional()?
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    fn job_list(&mut self, state: Option<JobState>, limit: Option<u64>) -> Result<Vec<Job>> {
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        // One statement per state, naming it literally, so that SQLite can prove which
        // partial index holds it (a bound parameter cannot). Completed jobs are in no index:
        // they are read in enqueue order from the table itself, where they come first.
        let sql = match state {
            Some(state) => format!("SELECT {JOB_COLS} FROM jobs {} ORDER BY seq LIMIT ?1", where_state(state)),
            None => format!("SELECT {JOB_COLS} FROM jobs ORDER BY seq LIMIT ?1"),
        };
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(params![limit], job_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn job_count_by_state(&mut self) -> Result<Vec<(JobState, u64)>> {
        // Completed jobs are most of a long-lived queue and in no index: they are the total
        // minus the rest. The total is SQLite's count of the cells of jobs_all, page by page
        // (about 8 ms for a million jobs here; walking a million index entries takes 45).
        let tx = self.conn.transaction()?;
        let total: i64 =
            tx.prepare_cached("SELECT count(*) FROM jobs INDEXED BY jobs_all")?.query_row([], |r| r.get(0))?;
        let mut counts = Vec::with_capacity(JobState::ALL.len());
        let mut others = 0;
        for s in JobState::ALL {
            if s != JobState::Completed {
                let sql = format!("SELECT count(*) FROM jobs {}", where_state(s));
                let n: i64 = tx.prepare_cached(&sql)?.query_row([], |r| r.get(0))?;
                others += n;
                counts.push((s, n as u64));
            }
        }
        tx.commit()?;
        let at = JobState::ALL.iter().position(|s| *s == JobState::Completed).unwrap_or(0);
        counts.insert(at, (JobState::Completed, (total - others).max(0) as u64));
        Ok(counts)
    }

    fn job_attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        let job_exists = self.conn.prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")?.exists(params![id])?;
        if !job_exists {
            return Err(Error::NotFound(id.to_string()));
        }
        // The attempts table, then a completed job's last attempt from its own row.
        let mut st = self.conn.prepare_cached(
            "SELECT a.attempt, a.worker_id, a.started_at_ms, a.finished_at_ms, a.exit_code, a.error, a.outcome,
                    a.output_tail, a.run
             FROM attempts a JOIN jobs j ON j.seq = a.job_seq WHERE j.id = ?1
             UNION ALL
             SELECT attempts, worker_id, started_at_ms, finished_at_ms, exit_code, last_error, state,
                    coalesce(output_tail, ''), runs
             FROM jobs WHERE id = ?1 AND state = 'completed'
             ORDER BY 9",
        )?;
        let rows = st.query_map(params![id], |r| {
            Ok(Attempt {
                attempt: r.get(0)?,
                worker_id: r.get(1)?,
                started_at_ms: r.get(2)?,
                finished_at_ms: r.get(3)?,
                exit_code: r.get(4)?,
                error: r.get(5)?,
                outcome: state_of(&r.get::<_, String>(6)?)?,
                output_tail: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn job_purge(&mut self, state: JobState, cutoff_ms: Option<i64>) -> Result<Vec<String>> {
        if !matches!(state, JobState::Completed | JobState::Dead) {
            return Err(Error::InvalidInput("only completed or dead jobs can be purged".into()));
        }
        let cutoff = cutoff_ms.unwrap_or(i64::MAX);
        let which = format!("{} AND updated_at_ms <= ?1", where_state(state));
        let tx = self.immediate()?;
        tx.execute(&format!("DELETE FROM attempts WHERE job_seq IN (SELECT seq FROM jobs {which})"), params![cutoff])?;
        let ids = {
            let mut st = tx.prepare(&format!("DELETE FROM jobs {which} RETURNING id"))?;
            let rows = st.query_map(params![cutoff], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()?
        };
        tx.commit()?;
        Ok(ids)
    }

    fn dead_retry(&mut self, ids: &[String], now_ms: i64) -> Result<u64> {
        let tx = self.immediate()?;
        for id in ids {
            let state: Option<String> =
                tx.query_row("SELECT state FROM jobs WHERE id = ?1", params![id], |r| r.get(0)).optional()?;
            match state.as_deref() {
                None => return Err(Error::NotFound(id.clone())),
                Some("dead") => {}
                Some(s) => return Err(Error::InvalidState(format!("job {id:?} is not in the DLQ (it is {s})"))),
            }
            tx.execute(
                "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = ?2, updated_at_ms = ?2,
                     worker_id = NULL, lease_expires_ms = NULL WHERE id = ?1",
                params![id, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(ids.len() as u64)
    }

    fn dead_retry_all(&mut self, now_ms: i64) -> Result<u64> {
        let tx = self.immediate()?;
        let n = tx.execute(
            "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = ?1, updated_at_ms = ?1,
                 worker_id = NULL, lease_expires_ms = NULL WHERE state = 'dead'",
            params![now_ms],
        )?;
        tx.commit()?;
        Ok(n as u64)
    }

    fn config_get(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM config WHERE key = ?1")?
            .query_row(params![key], |r| r.get(0))
            .optional()?)
    }

    fn config_set(&mut self, key: &str, value: &str, now_ms: i64) -> Result<()> {
        let tx = self.immediate()?;
        tx.execute(
            "INSERT INTO config (key, value, updated_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
            params![key, value, now_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn config_list(&mut self) -> Result<Vec<(String, String)>> {
        let mut st = self.conn.prepare_cached("SELECT key, value FROM config ORDER BY key")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn worker_register(&mut self, id: &str, host: &str, pid: u32, lease_ms: i64, now_ms: i64) -> Result<()> {
        let tx = self.immediate()?;
        // The WHERE leaves a registration that is still running alone: 0 rows, an error.
        let n = tx.execute(
            "INSERT INTO workers (id, host, pid, state, started_at_ms, heartbeat_ms, lease_ms) VALUES (?1, ?2, ?3, 'running', ?4, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, state = 'running',
                 started_at_ms = excluded.started_at_ms, heartbeat_ms = excluded.heartbeat_ms,
                 lease_ms = excluded.lease_ms, stop_requested = 0, exited_at_ms = NULL
             WHERE workers.state = 'exited'",
            params![id, host, pid, now_ms, lease_ms],
        )?;
        if n == 0 {
            return Err(Error::InvalidState(format!("worker {id} is already registered")));
        }
        tx.commit()?;
        Ok(())
    }

    fn worker_heartbeat(&mut self, id: &str, now_ms: i64) -> Result<Option<u8>> {
        self.check_file_identity()?;
        let tx = self.immediate()?;
        let row: Option<(u8, i64)> = tx
            .prepare_cached(
                "UPDATE workers SET heartbeat_ms = ?2 WHERE id = ?1 AND state != 'exited' RETURNING stop_requested, lease_ms",
            )?
            .query_row(params![id, now_ms], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((stop, lease_ms)) = row else {
            tx.commit()?;
            return Ok(None);
        };
        tx.prepare_cached(
            "UPDATE jobs INDEXED BY jobs_processing SET lease_expires_ms = ?2 WHERE worker_id = ?1 AND state = 'processing'",
        )?
            .execute(params![id, now_ms + lease_ms])?;
        tx.commit()?;
        Ok(Some(stop))
    }

    fn worker_exit(&mut self, id: &str, now_ms: i64) -> Result<()> {
        let tx = self.immediate()?;
        tx.execute(
            "UPDATE workers SET state = 'exited', heartbeat_ms = ?2, exited_at_ms = ?2 WHERE id = ?1",
            params![id, now_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn worker_list(&mut self, include_exited: bool) -> Result<Vec<WorkerRow>> {
        let sql = format!(
            "SELECT {WORKER_COLS} FROM workers w
             LEFT JOIN jobs j INDEXED BY jobs_processing ON j.state = 'processing' AND j.worker_id = w.id
             WHERE ?1 OR w.state != 'exited' ORDER BY w.started_at_ms DESC, w.id"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(params![include_exited], worker_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn worker_request_stop(&mut self, level: u8, host: Option<&str>) -> Result<u64> {
        let tx = self.immediate()?;
        let n = tx.execute(
            "UPDATE workers SET stop_requested = max(stop_requested, ?1)
             WHERE state != 'exited' AND (?2 IS NULL OR host = ?2)",
            params![level, host],
        )?;
        tx.commit()?;
        Ok(n as u64)
    }

    fn worker_reap(&mut self, now_ms: i64) -> Result<u64> {
        let silent = self
            .conn
            .prepare_cached("SELECT 1 FROM workers WHERE state != 'exited' AND heartbeat_ms + lease_ms < ?1 LIMIT 1")?
            .exists(params![now_ms])?;
        if !silent {
            return Ok(0);
        }
        let tx = self.immediate()?;
        let n = tx.execute(
            "UPDATE workers SET state = 'exited', exited_at_ms = ?1
             WHERE state != 'exited' AND heartbeat_ms + lease_ms < ?1",
            params![now_ms],
        )?;
        tx.commit()?;
        Ok(n as u64)
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
            std::thread::sleep(left.min(Duration::from_millis(4)));
        }
    }

    fn schema_version(&mut self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    fn file_integrity(&mut self, limit: usize) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(&format!("PRAGMA integrity_check({limit})"))?;
        let lines = st.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
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
