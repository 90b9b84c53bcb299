//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes run in `BEGIN IMMEDIATE` so two writers never deadlock upgrading a read lock;
//! SQLite serialises them, which is what makes the one-statement claim atomic. Workers of
//! one process also queue on a mutex before that (see `combine`). The statements it runs
//! are in `store::sql` (the shared ones' `.sqlite` text and each table's `sqlite` part),
//! its rows are decoded by `store::row`.
//!
//! This module opens the file and holds the connection, its write transaction and the
//! change feed; each role's methods are in a file of their own: `queue` (the hot path),
//! `admin`, `inspect`, `queues`, `registry`, `config` (config and stats) and
//! `schedules`; `file` is the file itself.

mod admin;
mod combine;
mod config;
mod file;
mod inspect;
mod queue;
mod queues;
mod registry;
mod schedules;
mod write;

use std::ops::Deref;
use std::path::Path;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, Row, TransactionBehavior};

use self::combine::{shared_for, Shared};
use self::file::{create_private, install_busy_handler, FileIdentity};
use super::row;
use super::tx::Tx;
use super::{ChangeFeed, StoreOptions, Wakeups};
use crate::error::{Error, Result};

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

impl Tx for WriteTx<'_> {
    fn wake(&mut self) -> Result<()> {
        Ok(()) // idle workers poll data_version
    }

    fn commit(self) -> Result<()> {
        WriteTx::commit(self)
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
