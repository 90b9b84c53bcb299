//! The shared store: one PostgreSQL database, workers on any number of hosts.
//!
//! A claim is one `UPDATE ... WHERE seq = (SELECT ... FOR UPDATE SKIP LOCKED)`: concurrent
//! claimers skip each other's rows instead of queueing on them. Every write after a claim
//! carries the same (id, attempt, worker) fence as the SQLite store. Idle workers wait on
//! `LISTEN`; enqueues and everything else that makes a job due send a `NOTIFY`. The
//! statements it runs are in `store::sql` (the shared ones' `.postgres` text, made at
//! compile time, and each table's `postgres` part), prepared once per connection and
//! cached by their text; its rows are decoded by `store::row`.
//!
//! A lost connection (server restart, network) is dropped and opened again by the next
//! call; the worker loop's own retry pauses are the backoff.
//!
//! This module opens the database and holds the connection, its statements, the write
//! transaction of the flows above the stores and the change feed; each role's methods are
//! in a file of their own: `queue` (the hot path), `admin`, `inspect`, `queues`,
//! `registry`, `config` (config and stats) and `schedules`; `conn` reads the URL and
//! sets up TLS.

mod admin;
mod config;
mod conn;
mod inspect;
mod queue;
mod queues;
mod registry;
mod schedules;

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use self::conn::redact;
use self::conn::{parse_location, tls_connector};
use super::row::{self, ColType};
use super::sql::{claim, dependencies};
use super::tx::Tx;
use super::{ChangeFeed, StoreOptions, Wakeups};
use crate::error::{Error, Result};
use crate::job::NewJob;

/// The advisory lock key that serialises migrations across hosts ("queuectl" in ASCII).
const MIGRATION_LOCK: i64 = 0x7175_6575_6563_746c;

row::impl_cells!(Row, try_get);

/// The PostgreSQL type of a column, for binary `COPY`.
pub(super) fn pg_type(t: ColType) -> Type {
    match t {
        ColType::Int8 => Type::INT8,
        ColType::Int4 => Type::INT4,
        ColType::Text => Type::TEXT,
    }
}

/// A new job's values in the column types an enqueue writes: max_retries, timeout, env.
fn insert_values(j: &NewJob) -> (i64, i64, Option<String>) {
    (i64::from(j.max_retries), i64::try_from(j.timeout_ms).unwrap_or(i64::MAX), row::env_text(&j.env))
}

/// What the dependents of jobs just ended need, from rows of (seq, state, has_dependents)
/// (see [`dependencies::dependents_step`]).
fn dependents_after(tx: &mut impl GenericClient, rows: &[Row], now_ms: i64) -> Result<()> {
    for r in rows {
        let (seq, state, has): (i64, &str, Option<i64>) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        if let Some(sql) = dependencies::dependents_step(state, has.is_some()) {
            tx.execute(sql.postgres, &[&seq, &now_ms])?;
        }
    }
    Ok(())
}

/// A connection to a queuectl PostgreSQL database.
pub struct PostgresStore {
    config: postgres::Config,
    tls: MakeRustlsConnect,
    opts: StoreOptions,
    client: Option<Client>,
    /// `NOTIFY` channel of this queue: one per schema, so queues in different schemas of
    /// one database do not wake each other.
    channel: String,
    /// Whether this connection has run `LISTEN` (reset by a reconnect).
    listening: bool,
    /// A claim whose commit we never heard about: before the next claim, this worker's
    /// processing jobs (which it cannot be running) go back to pending.
    unsure_claim: Option<String>,
    /// Statements prepared on this connection, by their text.
    statements: HashMap<&'static str, Statement>,
    description: String,
}

impl PostgresStore {
    /// The `NOTIFY` channel of this queue.
    pub(super) fn channel(&self) -> &str {
        &self.channel
    }
}

impl PostgresStore {
    /// Connects to the database `location` names and migrates it.
    pub fn open(location: &str, opts: &StoreOptions) -> Result<PostgresStore> {
        let (config, verify) = parse_location(location)?;
        let mut store = PostgresStore {
            config,
            tls: tls_connector(verify)?,
            opts: opts.clone(),
            client: None,
            channel: String::new(),
            listening: false,
            unsure_claim: None,
            statements: HashMap::new(),
            description: String::new(),
        };
        let client = store.connect()?;
        let version: String = client.query_one("SHOW server_version", &[])?.get(0);
        let schema: Option<String> = client.query_one("SELECT current_schema()", &[])?.get(0);
        let Some(schema) = schema else {
            return Err(Error::Database("the PostgreSQL search_path names no schema that exists".into()));
        };
        store.channel = format!("queuectl_{schema}").chars().take(63).collect();
        store.description = format!("postgresql {version} at {}", redact(location));
        store.migrate()?;
        Ok(store)
    }

    /// The connection, opened again when the last one was lost.
    pub(super) fn connect(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut client = match self.config.connect(self.tls.clone()) {
                Ok(c) => c,
                // No TLS on the server, or a broken handshake: `prefer` goes on without.
                Err(e) if self.config.get_ssl_mode() == SslMode::Prefer && e.as_db_error().is_none() => {
                    let mut plain = self.config.clone();
                    plain.ssl_mode(SslMode::Disable);
                    plain.connect(self.tls.clone()).map_err(|_| Error::from(e))?
                }
                Err(e) => return Err(e.into()),
            };
            // Workers commit without waiting for the WAL flush, like SQLite's NORMAL: a
            // server crash can lose a settle, and the job then runs again.
            let mut setup = format!("SET lock_timeout = {}", self.opts.busy_timeout_ms);
            if !self.opts.durable {
                setup.push_str("; SET synchronous_commit = off");
            }
            client.batch_execute(&setup)?;
            self.client = Some(client);
            self.listening = false;
            self.statements.clear();
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Runs `f` on the connection; a connection error drops the connection so that the
    /// next call opens a new one.
    fn with<T>(&mut self, f: impl FnOnce(&mut Client, &str) -> Result<T>) -> Result<T> {
        let channel = self.channel.clone();
        let client = self.connect()?;
        let result = f(client, &channel);
        if result.is_err() {
            // A server shutting down says so with an error and then closes the connection,
            // which the driver may not have noticed yet: ask the connection itself.
            let alive =
                self.client.as_mut().is_some_and(|c| !c.is_closed() && c.is_valid(Duration::from_secs(2)).is_ok());
            if !alive {
                self.client = None;
            }
        }
        result
    }

    /// `sql` (PostgreSQL text, `$N` parameters, from `store::sql`) prepared on the current
    /// connection, once per connection.
    fn prepared(&mut self, sql: &'static str) -> Result<Statement> {
        self.connect()?;
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.with(|c, _| Ok(c.prepare(sql)?))?;
        self.statements.insert(sql, st.clone());
        Ok(st)
    }

    fn migrate(&mut self) -> Result<()> {
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            // Hosts starting at once queue here; the first one migrates, the rest see it done.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            let exists: bool = tx.query_one("SELECT to_regclass('queuectl_schema') IS NOT NULL", &[])?.get(0);
            let current: i64 =
                if exists { tx.query_one("SELECT max(version) FROM queuectl_schema", &[])?.get(0) } else { 0 };
            super::migrations::check_version(current)?;
            if current == super::migrations::SCHEMA_VERSION {
                return Ok(tx.commit()?);
            }
            if !exists {
                let foreign: bool = tx.query_one("SELECT to_regclass('jobs') IS NOT NULL", &[])?.get(0);
                if foreign {
                    return Err(Error::Lasting(
                        "this PostgreSQL schema has a jobs table that queuectl did not create: give queuectl a \
                         schema of its own (?options=-csearch_path%3DNAME in the URL)"
                            .into(),
                    ));
                }
                tx.batch_execute("CREATE TABLE queuectl_schema (version BIGINT NOT NULL)")?;
                tx.execute("INSERT INTO queuectl_schema VALUES (0)", &[])?;
            }
            for m in super::migrations::MIGRATIONS.iter().skip(current.max(0) as usize) {
                tx.batch_execute(m.postgres)?;
            }
            tx.execute("UPDATE queuectl_schema SET version = $1", &[&super::migrations::SCHEMA_VERSION])?;
            Ok(tx.commit()?)
        })
    }

    /// Returns this worker's processing jobs to pending, uncounted, when a claim's commit
    /// was never confirmed: the worker is about to claim, so it runs none of them, except
    /// `settling`, the job it ran and is about to settle.
    fn release_unsure_claim(&mut self, worker_id: &str, settling: Option<&str>, now_ms: i64) -> Result<()> {
        if self.unsure_claim.as_deref() != Some(worker_id) {
            return Ok(());
        }
        let st = self.prepared(claim::postgres::RELEASE_UNSURE)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let rows = tx.query(&st, &[&worker_id, &now_ms, &settling])?;
            if !rows.is_empty() {
                dependents_after(&mut tx, &rows, now_ms)?;
                notify(&mut tx, channel)?;
            }
            Ok(tx.commit()?)
        })?;
        self.unsure_claim = None;
        Ok(())
    }

    /// Runs a claim (alone, or after settling the job `settling`) and remembers when its
    /// outcome is unknown.
    fn claiming<T>(
        &mut self,
        worker_id: &str,
        settling: Option<&str>,
        now_ms: i64,
        f: impl FnOnce(&mut Client) -> Result<T>,
    ) -> Result<T> {
        self.release_unsure_claim(worker_id, settling, now_ms)?;
        let result = self.with(|c, _| f(c));
        if result.is_err() && self.client.is_none() {
            self.unsure_claim = Some(worker_id.to_string());
        }
        result
    }

    /// One prepared write on its own; the number of rows it changed. With `wake`, idle
    /// workers everywhere are told when it changed any.
    fn write(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)], wake: bool) -> Result<u64> {
        let st = self.prepared(sql)?;
        self.with(|c, channel| {
            if !wake {
                return Ok(c.execute(&st, params)?);
            }
            let mut tx = c.transaction()?;
            let n = tx.execute(&st, params)?;
            if n > 0 {
                notify(&mut tx, channel)?;
            }
            tx.commit()?;
            Ok(n)
        })
    }

    /// One prepared read; its rows.
    fn read(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let st = self.prepared(sql)?;
        self.with(|c, _| Ok(c.query(&st, params)?))
    }
}

/// Wakes idle workers on every host; delivered when the surrounding transaction commits.
pub(super) fn notify(c: &mut impl GenericClient, channel: &str) -> Result<()> {
    c.execute("SELECT pg_notify($1, '')", &[&channel])?;
    Ok(())
}

/// A write transaction as the flows above the stores (`change`, `fire`) run it: the
/// statements they name that this connection has prepared are run prepared, the others
/// by their text.
struct PgTx<'a> {
    tx: postgres::Transaction<'a>,
    channel: &'a str,
    /// Statements prepared on this connection, by their text.
    prepared: &'a [(&'static str, Statement)],
}

impl PgTx<'_> {
    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<u64, postgres::Error> {
        match self.prepared.iter().find(|(text, _)| *text == sql) {
            Some((_, st)) => self.tx.execute(st, params),
            None => self.tx.execute(sql, params),
        }
    }
}

impl Tx for PgTx<'_> {
    fn wake(&mut self) -> Result<()> {
        notify(&mut self.tx, self.channel)
    }

    fn commit(self) -> Result<()> {
        Ok(self.tx.commit()?)
    }
}

/// PostgreSQL text cannot hold NUL, which job output may: it is stored as U+FFFD.
pub(super) fn pg_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

impl ChangeFeed for PostgresStore {
    fn wakeups(&self) -> Wakeups {
        Wakeups::Pushed
    }

    fn wait_for_change(&mut self, timeout: Duration) -> Result<bool> {
        let listening = self.listening && self.client.as_ref().is_some_and(|c| !c.is_closed());
        if !listening {
            let channel = self.channel.clone();
            self.with(|c, _| Ok(c.batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "\"\"")))?))?;
            self.listening = true;
            // Whatever was sent before LISTEN is lost: tell the caller to look.
            return Ok(true);
        }
        self.with(|c, _| {
            let mut notes = c.notifications();
            let got = notes.timeout_iter(timeout).next()?.is_some();
            if got {
                // One wake-up covers every notification that has already arrived.
                while notes.iter().next()?.is_some() {}
            }
            Ok(got)
        })
    }
}
