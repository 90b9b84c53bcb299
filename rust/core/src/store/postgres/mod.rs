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

mod conn;

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::config::SslMode;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use self::conn::redact;
use self::conn::{parse_location, tls_connector};
use super::row::{self, job_col, ColType};
use super::sql::{attempts, claim, config, dependencies, jobs, page, queues, schedules, stats, workers};
use super::{page as page_bounds, queue_rows, refusal};
use super::{
    Beat, ByIdChange, ByIdParams, ChangeFeed, ClaimParams, ConfigStore, ExpiredJob, Fence, Fire, InsertBatch, Inserted,
    JobAdmin, JobInspect, JobQueue, ListFilter, Page, PageFilter, QueueControl, QueueRow, QueueSetting, Registration,
    ScheduleChange, ScheduleRow, ScheduleStore, Setting, SettleParams, Settled, StatRow, StatsStore, StopLevel,
    StoreOptions, Wakeups, WorkerRegistry, WorkerRow,
};
use crate::error::{Error, Result};
use crate::job::{Attempt, Job, JobState, NewJob, Outcome};
use crate::jobid;

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

/// The types of the columns an enqueue writes (`jobs::postgres::INSERT_COLUMNS`), in order.
const INSERT_TYPES: [Type; 12] = [
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
];

/// Checks a claim of `job` in a queue with a limit again, under the queue's row lock: the
/// claims of that queue on every host take the lock in turn, and each counts the others'
/// committed claims, so at most `limit` stay claimed. Over the limit, the claim is put
/// back, uncounted. Returns whether the job stays claimed.
fn hold_within_limit(c: &mut Client, channel: &str, job: &Job, worker_id: &str, now_ms: i64) -> Result<bool> {
    let mut tx = c.transaction()?;
    let limit: i64 = tx.query_one(queues::postgres::LIMIT_LOCKED, &[&job.queue])?.get(0);
    let others: i64 = tx.query_one(queues::postgres::RUNNING_OTHERS, &[&job.queue, &job.id])?.get(0);
    if limit == 0 || others < limit {
        tx.commit()?;
        return Ok(true);
    }
    let attempt = i64::from(job.attempts);
    let rows = tx.query(claim::REQUEUE.postgres, &[&job.id, &attempt, &worker_id, &now_ms])?;
    dependents_after(&mut tx, &rows, now_ms)?;
    notify(&mut tx, channel)?;
    tx.commit()?;
    Ok(false)
}

/// A claimed job from a row of a claim, with its queue's limit (column `at`).
fn claimed_from(row: &Row, at: usize) -> Result<Option<(Job, i64)>> {
    if row.try_get::<_, Option<String>>(job_col::id)?.is_none() {
        return Ok(None);
    }
    Ok(Some((row::job_from(row, 0)?, row.try_get::<_, Option<i64>>(at)?.unwrap_or(0))))
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

/// A settle's parameters as the settle statements take them (?1 to ?11).
struct SettleArgs<'a> {
    p: &'a SettleParams,
    attempt: i64,
    state: &'static str,
    error: Option<Cow<'a, str>>,
    output_tail: Cow<'a, str>,
    completed_tail: Option<Cow<'a, str>>,
}

impl<'a> SettleArgs<'a> {
    fn new(p: &'a SettleParams) -> SettleArgs<'a> {
        let output_tail = pg_text(&p.output_tail);
        SettleArgs {
            p,
            attempt: i64::from(p.attempt),
            state: p.outcome.as_str(),
            error: p.error.as_deref().map(pg_text),
            completed_tail: (p.outcome == Outcome::Completed).then(|| output_tail.clone()),
            output_tail,
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.p.id,
            &self.attempt,
            &self.p.worker_id,
            &self.state,
            &self.p.run_at_ms,
            &self.p.now_ms,
            &self.p.exit_code,
            &self.error,
            &self.completed_tail,
            &self.p.lease_expired_before,
            &self.output_tail,
        ]
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

/// The id a unique violation of `jobs.id` names ("Key (id)=(x) already exists.").
fn duplicate_id(e: &postgres::Error) -> Option<String> {
    let db = e.as_db_error()?;
    if db.code() != &SqlState::UNIQUE_VIOLATION {
        return None;
    }
    let detail = db.detail()?;
    let id = detail.strip_prefix("Key (id)=(")?.strip_suffix(") already exists.")?;
    Some(id.to_string())
}

impl PostgresStore {
    /// Claims for `p`, leaving out the queues in `excluded`; a claim in a limited queue
    /// that finds the queue full on its second look is put back and that queue left out.
    /// An insert of a batch with unique keys or dependencies: a statement per job. One
    /// whose key an unfinished job holds is skipped (a concurrent insert of the key waits
    /// for the other transaction, then skips) and stands for the holder's id. One that
    /// runs after others locks and marks them first (a settle of one of them waits for
    /// this commit, then sees the edge), and waits for those not completed yet.
    fn insert_rows(&mut self, jobs: &[NewJob], ids: Vec<String>, queues: &[&str], now_ms: i64) -> Result<Inserted> {
        let ins = self.prepared(jobs::postgres::INSERT)?;
        let holder = self.prepared(jobs::UNIQUE_HOLDER.postgres)?;
        let mark = self.prepared(dependencies::PARENT_MARK.postgres)?;
        let edge = self.prepared(dependencies::INSERT.postgres)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            tx.execute(queues::postgres::ENSURE, &[&queues, &now_ms])?;
            let mut out = Inserted { ids: Vec::with_capacity(jobs.len()), skipped: Vec::new() };
            let mut stand_in = HashMap::new();
            for (j, id) in jobs.iter().zip(&ids) {
                let (max_retries, timeout, env) = insert_values(j);
                let mut parents = Vec::with_capacity(j.after.len());
                let mut waiting_on: i64 = 0;
                for parent in super::parents_of(&j.after, &stand_in) {
                    let row = tx.query_opt(&mark, &[&parent])?;
                    let state = row.as_ref().map(|r| row::state_of(r.get::<_, &str>(1))).transpose()?;
                    if crate::rules::parent_open(parent, state)? {
                        waiting_on += 1;
                    }
                    parents.extend(row.map(|r| r.get::<_, i64>(0)));
                }
                let params: [&(dyn ToSql + Sync); 12] = [
                    id,
                    &j.command,
                    &max_retries,
                    &j.priority,
                    &j.run_at_ms,
                    &timeout,
                    &j.cwd,
                    &now_ms,
                    &env,
                    &j.queue,
                    &j.unique_key,
                    &waiting_on,
                ];
                let row = tx
                    .query_opt(&ins, &params)
                    .map_err(|e| duplicate_id(&e).map_or_else(|| e.into(), Error::DuplicateId))?;
                match row {
                    None => {
                        out.skipped.push(out.ids.len());
                        let held: String = tx.query_one(&holder, &[&j.unique_key])?.get(0);
                        stand_in.insert(id.clone(), held.clone());
                        out.ids.push(held);
                    }
                    Some(row) => {
                        let seq: i64 = row.get(0);
                        for parent in parents {
                            tx.execute(&edge, &[&parent, &seq])?;
                        }
                        out.ids.push(id.clone());
                    }
                }
            }
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// The settle of a job the fast statement left alone: fenced, or one others run after
    /// (`claim::postgres::SETTLE_FULL`); wakes idle workers when it made dependents pending.
    fn settle_full(&mut self, p: &SettleParams) -> Result<Settled> {
        let args = SettleArgs::new(p);
        let st = self.prepared(claim::postgres::SETTLE_FULL)?;
        self.with(|c, channel| {
            let row = c.query_one(&st, &args.params())?;
            if row.try_get::<_, i64>(1)? > 0 {
                notify(c, channel)?;
            }
            Ok(p.settled_as(row.get::<_, Option<&str>>(0)))
        })
    }

    fn claim_excluding(&mut self, p: &ClaimParams<'_>, mut excluded: Vec<String>) -> Result<Option<Job>> {
        let st = self.prepared(claim::postgres::CLAIM)?;
        let lease_until = p.now_ms + p.lease_ms;
        let queues = p.queues.map(|q| q.names());
        let after = p.after_queue.unwrap_or("");
        loop {
            let claimed = self.claiming(p.worker_id, None, p.now_ms, |c| {
                let row = c.query_opt(&st, &[&p.worker_id, &p.now_ms, &lease_until, &queues, &excluded, &after])?;
                row.map(|r| claimed_from(&r, job_col::COUNT)).transpose().map(Option::flatten)
            })?;
            match claimed {
                None => return Ok(None),
                Some((job, 0)) => return Ok(Some(job)),
                Some((job, _)) => {
                    let kept = self.with(|c, channel| hold_within_limit(c, channel, &job, p.worker_id, p.now_ms))?;
                    if kept {
                        return Ok(Some(job));
                    }
                    excluded.push(job.queue);
                }
            }
        }
    }

    /// After a settle+claim took `job` from a limited queue: keeps it when the queue's
    /// limit allows, else puts it back and claims from the other queues.
    fn keep_or_claim_again(&mut self, p: &ClaimParams<'_>, job: Job) -> Result<Option<Job>> {
        if self.with(|c, channel| hold_within_limit(c, channel, &job, p.worker_id, p.now_ms))? {
            return Ok(Some(job));
        }
        self.claim_excluding(p, vec![job.queue])
    }
}

impl JobQueue for PostgresStore {
    fn job_insert(&mut self, batch: InsertBatch<'_>) -> Result<Inserted> {
        let InsertBatch { jobs, now_ms, mut progress } = batch;
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone().unwrap_or_else(|| jobid::generate(now_ms))).collect();
        let queues: Vec<&str> = super::distinct_queues(jobs);
        if jobs.iter().any(|j| j.unique_key.is_some() || !j.after.is_empty()) {
            return self.insert_rows(jobs, ids, &queues, now_ms);
        }
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            tx.execute(queues::postgres::ENSURE, &[&queues, &now_ms])?;
            // COPY in binary: a million rows in one stream, no statement per row.
            let copy = tx.copy_in(jobs::postgres::COPY_IN)?;
            let mut writer = BinaryCopyInWriter::new(copy, &INSERT_TYPES);
            let written = (|| -> std::result::Result<u64, postgres::Error> {
                for (n, (j, id)) in jobs.iter().zip(&ids).enumerate() {
                    let (max_retries, timeout, env) = insert_values(j);
                    writer.write(&[
                        id,
                        &j.command,
                        &"pending",
                        &max_retries,
                        &j.priority,
                        &j.run_at_ms,
                        &timeout,
                        &j.cwd,
                        &now_ms,
                        &now_ms,
                        &env,
                        &j.queue,
                    ])?;
                    if (n + 1) % super::PROGRESS_EVERY == 0 {
                        if let Some(report) = progress.as_mut() {
                            report(n + 1);
                        }
                    }
                }
                writer.finish()
            })();
            if let Err(e) = written {
                return Err(duplicate_id(&e).map_or_else(|| e.into(), Error::DuplicateId));
            }
            notify(&mut tx, channel)?;
            tx.commit().map_err(|e| duplicate_id(&e).map_or_else(|| e.into(), Error::DuplicateId))
        })?;
        Ok(Inserted { ids, skipped: Vec::new() })
    }

    fn job_due_exists(&mut self, p: &ClaimParams<'_>) -> Result<bool> {
        let st = self.prepared(claim::postgres::DUE)?;
        let queues = p.queues.map(|q| q.names());
        let none: &[String] = &[];
        self.with(|c, _| Ok(c.query_opt(&st, &[&p.now_ms, &queues, &none])?.is_some()))
    }

    fn job_claim(&mut self, p: &ClaimParams<'_>) -> Result<Option<Job>> {
        self.claim_excluding(p, Vec::new())
    }

    fn job_settle(&mut self, p: &SettleParams) -> Result<Settled> {
        let args = SettleArgs::new(p);
        let st = self.prepared(claim::postgres::SETTLE)?;
        let stored = self.with(|c, _| Ok(c.query_one(&st, &args.params())?.get::<_, Option<String>>(0)))?;
        match stored {
            Some(state) => Ok(p.settled_as(Some(&state))),
            None => self.settle_full(p),
        }
    }

    fn job_settle_and_claim(&mut self, s: &SettleParams, p: &ClaimParams<'_>) -> Result<(Settled, Option<Job>)> {
        let args = SettleArgs::new(s);
        let st = self.prepared(claim::postgres::SETTLE_AND_CLAIM)?;
        let lease_until = p.now_ms + p.lease_ms;
        let queues = p.queues.map(|q| q.names());
        let none: &[String] = &[];
        let after = p.after_queue.unwrap_or("");
        let (stored, claimed) = self.claiming(p.worker_id, Some(&s.id), p.now_ms, |c| {
            let mut params: Vec<&(dyn ToSql + Sync)> = args.params().to_vec();
            params.extend_from_slice(&[&p.worker_id, &p.now_ms, &lease_until, &queues, &none, &after]);
            let row = c.query_one(&st, &params)?;
            Ok((row.try_get::<_, Option<String>>(job_col::COUNT + 1)?, claimed_from(&row, job_col::COUNT)?))
        })?;
        // No row: fenced, or a job others run after, which the full statement settles.
        let settled = match stored {
            Some(state) => s.settled_as(Some(&state)),
            None => self.settle_full(s)?,
        };
        let job = match claimed {
            Some((job, limit)) if limit > 0 => self.keep_or_claim_again(p, job)?,
            other => other.map(|(job, _)| job),
        };
        Ok((settled, job))
    }

    fn job_requeue(&mut self, f: &Fence<'_>, now_ms: i64) -> Result<bool> {
        let attempt = i64::from(f.attempt);
        let st = self.prepared(claim::REQUEUE.postgres)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let rows = tx.query(&st, &[&f.id, &attempt, &f.worker_id, &now_ms])?;
            if !rows.is_empty() {
                dependents_after(&mut tx, &rows, now_ms)?;
                notify(&mut tx, channel)?;
            }
            tx.commit()?;
            Ok(!rows.is_empty())
        })
    }
}

impl JobAdmin for PostgresStore {
    fn job_get_expired(&mut self, now_ms: i64) -> Result<Vec<ExpiredJob>> {
        self.read(jobs::postgres::EXPIRED, &[&now_ms])?.iter().map(row::expired_from).collect()
    }

    fn job_settle_many(&mut self, settles: &[SettleParams]) -> Result<Vec<Settled>> {
        let st = self.prepared(claim::postgres::SETTLE_FULL)?;
        // A rescue's row is locked with SKIP LOCKED first (claim::postgres::RESCUE_LOCK).
        let lock = self.prepared(claim::postgres::RESCUE_LOCK)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let mut out = Vec::with_capacity(settles.len());
            for p in settles {
                if let Some(before) = p.lease_expired_before {
                    if tx.query_opt(&lock, &[&p.id, &before])?.is_none() {
                        out.push(Settled::Fenced);
                        continue;
                    }
                }
                let row = tx.query_one(&st, &SettleArgs::new(p).params())?;
                out.push(p.settled_as(row.get::<_, Option<&str>>(0)));
            }
            if out.iter().any(|s| *s != Settled::Fenced) {
                notify(&mut tx, channel)?;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn job_purge(&mut self, state: JobState, cutoff_ms: Option<i64>) -> Result<Vec<String>> {
        crate::rules::check_purgeable(state)?;
        let cutoff = cutoff_ms.unwrap_or(i64::MAX);
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            let rows = tx.query(jobs::postgres::PURGE, &[&state.as_str(), &cutoff])?;
            let seqs: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
            tx.execute(attempts::postgres::PURGE, &[&seqs])?;
            tx.execute(dependencies::CLEAN.postgres, &[])?;
            tx.commit()?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn job_change_by_id(&mut self, p: &ByIdParams<'_>) -> Result<u64> {
        let state_sql = jobs::postgres::STATE_LOCKED;
        // The parents locked against a settle until this commits (see PARENTS_LOCKED).
        let parents_sql = dependencies::postgres::PARENTS_LOCKED;
        let child_sql = dependencies::WAITING_CHILD.postgres;
        let end_sql = dependencies::JOB_END.postgres;
        let steps = jobs::change_steps(p.change)
            .iter()
            .map(|step| Ok((self.prepared(step.sql.postgres)?, step.takes_now)))
            .collect::<Result<Vec<_>>>()?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            for id in p.ids {
                let row = tx.query_opt(state_sql, &[id])?;
                let state = row.as_ref().map(|r| row::state_of(r.get::<_, &str>(0))).transpose()?;
                crate::rules::check_change(p.change, id, state)?;
                let (read_parents, read_child) = p.change.dependency_reads();
                let mut parents: Vec<(String, JobState)> = Vec::new();
                if read_parents {
                    parents = tx.query(parents_sql, &[id])?.iter().map(row::parent_from).collect::<Result<_>>()?;
                }
                let mut child = None;
                if read_child {
                    child = tx.query_opt(child_sql, &[id])?.map(|r| r.get::<_, String>(0));
                }
                crate::rules::check_dependencies(p.change, id, &parents, child.as_deref())?;
                for (st, takes_now) in &steps {
                    let done = if *takes_now { tx.execute(st, &[id, &p.now_ms]) } else { tx.execute(st, &[id]) };
                    if let Err(e) = done {
                        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                            return Err(refusal::key_taken(id));
                        }
                        return Err(e.into());
                    }
                }
                if p.change == ByIdChange::Cancel {
                    let end = tx.query(end_sql, &[id])?;
                    dependents_after(&mut tx, &end, p.now_ms)?;
                }
            }
            if p.change != ByIdChange::Delete {
                notify(&mut tx, channel)?;
            }
            tx.commit()?;
            Ok(p.ids.len() as u64)
        })
    }

    fn dead_retry_all(&mut self, now_ms: i64) -> Result<u64> {
        self.write(jobs::DEAD_RETRY_ALL.postgres, &[&now_ms], true).map_err(refusal::retry_all_error)
    }
}

impl JobInspect for PostgresStore {
    fn job_get(&mut self, id: &str) -> Result<Job> {
        let rows = self.read(jobs::GET.postgres, &[&id])?;
        rows.first().map(|r| row::job_from(r, 0)).transpose()?.ok_or_else(|| Error::NotFound(id.to_string()))
    }

    fn job_list_where(&mut self, f: &ListFilter<'_>) -> Result<Vec<Job>> {
        let limit = f.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let state = f.state.map(JobState::as_str);
        let rows = self.read(jobs::postgres::LIST, &[&state, &f.queue, &limit])?;
        rows.iter().map(|r| row::job_from(r, 0)).collect()
    }

    fn job_page(&mut self, f: &PageFilter<'_>) -> Result<Page> {
        // jobs_state (state, seq) holds every state in seq order; a queue or a search is
        // read newest first from the table, at most a window of it per page.
        let windowed = f.search.is_some() || f.queue.is_some();
        let sql = page::postgres(f.state, f.queue.is_some(), f.search.is_some());
        let limit = i64::try_from(f.limit).unwrap_or(i64::MAX);
        let (before, queue, search) = (f.before, f.queue, f.search);
        let (bounds, rows) = self.with(|c, _| {
            let mut tx = c.build_transaction().read_only(true).start()?;
            let b = tx.query_one(jobs::postgres::SEQ_BOUNDS, &[])?;
            let (max, min): (Option<i64>, Option<i64>) = (b.get(0), b.get(1));
            let (Some(max), Some(min)) = (max, min) else {
                return Ok((None, Vec::new()));
            };
            let (upper, lower) = page_bounds::bounds(before, max, windowed);
            let rows = tx.query(sql, &[&limit, &queue, &upper, &lower, &search])?;
            tx.commit()?;
            Ok((Some((lower, min)), rows))
        })?;
        let Some((lower, min)) = bounds else {
            return Ok(Page::default());
        };
        let mut seqs = Vec::with_capacity(rows.len());
        let mut jobs = Vec::with_capacity(rows.len());
        for r in &rows {
            seqs.push(r.get::<_, i64>(job_col::seq));
            jobs.push(row::job_from(r, 0)?);
        }
        Ok(Page { jobs, next: page_bounds::next(&seqs, f.limit, lower, min) })
    }

    fn job_count_by_state(&mut self) -> Result<Vec<(JobState, u64)>> {
        let rows = self.with(|c, _| Ok(c.query(jobs::postgres::COUNT_BY_STATE, &[])?))?;
        let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        for r in &rows {
            let name: &str = r.get(0);
            let state = row::state_of(name)?;
            let n: i64 = r.get(1);
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
                slot.1 = n as u64;
            }
        }
        Ok(counts)
    }

    fn job_parents(&mut self, id: &str) -> Result<Vec<(String, JobState)>> {
        self.read(dependencies::PARENTS.postgres, &[&id])?.iter().map(row::parent_from).collect()
    }

    fn job_attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        if self.read(jobs::EXISTS.postgres, &[&id])?.is_empty() {
            return Err(Error::NotFound(id.to_string()));
        }
        self.read(attempts::LIST.postgres, &[&id])?.iter().map(row::attempt_from).collect()
    }

    fn job_ahead(&mut self, id: &str, now_ms: i64) -> Result<u64> {
        let rows = self.read(jobs::postgres::AHEAD, &[&id, &now_ms])?;
        let n: i64 = rows.first().map(|r| r.get(0)).ok_or_else(|| Error::NotFound(id.to_string()))?;
        Ok(n as u64)
    }

    fn schema_version(&mut self) -> Result<i64> {
        self.with(|c, _| Ok(c.query_one("SELECT max(version) FROM queuectl_schema", &[])?.get(0)))
    }

    fn table_columns(&mut self, table: &str) -> Result<Vec<String>> {
        let rows = self.read(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn file_integrity(&mut self, _limit: usize) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn check_rows(&mut self, sql: &str, now_ms: i64) -> Result<Vec<String>> {
        self.with(|c, _| {
            let st = c.prepare(sql)?;
            let now: &[&(dyn ToSql + Sync)] = if st.params().is_empty() { &[] } else { &[&now_ms] };
            Ok(c.query(&st, now)?.iter().map(|r| r.get(0)).collect())
        })
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

impl QueueControl for PostgresStore {
    fn queue_list(&mut self) -> Result<Vec<QueueRow>> {
        self.with(|c, _| {
            let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).start()?;
            let settings = tx
                .query(queues::SETTINGS.postgres, &[])?
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) != 0, r.get::<_, i64>(2)))
                .collect();
            let mut counts = Vec::new();
            for r in tx.query(queues::postgres::COUNTS, &[])? {
                let name: &str = r.get(1);
                let state = row::state_of(name)?;
                counts.push((r.get::<_, String>(0), state, r.get::<_, i64>(2) as u64));
            }
            tx.commit()?;
            Ok(queue_rows::queue_rows(settings, &counts))
        })
    }

    fn queue_set(&mut self, s: &QueueSetting<'_>) -> Result<u64> {
        s.check()?;
        let (sql, limit) = queues::change(s.change);
        let st = self.prepared(sql.postgres)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            for name in s.names {
                match limit {
                    Some(n) => tx.execute(&st, &[name, &s.now_ms, &n])?,
                    None => tx.execute(&st, &[name, &s.now_ms])?,
                };
            }
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(s.names.len() as u64)
        })
    }
}

impl ConfigStore for PostgresStore {
    fn config_get(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self.read(config::GET.postgres, &[&key])?.first().map(|r| r.get(0)))
    }

    fn config_set(&mut self, s: Setting<'_>, now_ms: i64) -> Result<()> {
        self.write(config::SET.postgres, &[&s.key, &s.value, &now_ms], false)?;
        Ok(())
    }

    fn config_list(&mut self) -> Result<Vec<(String, String)>> {
        Ok(self.read(config::LIST.postgres, &[])?.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl WorkerRegistry for PostgresStore {
    fn worker_register(&mut self, r: &Registration<'_>) -> Result<()> {
        let pid = i64::from(r.pid);
        let queues = r.queues.map(|q| q.stored());
        let n =
            self.write(workers::REGISTER.postgres, &[&r.id, &r.host, &pid, &r.now_ms, &r.lease_ms, &queues], false)?;
        if n == 0 {
            return Err(refusal::already_registered(r.id));
        }
        Ok(())
    }

    fn worker_heartbeat(&mut self, id: &str, now_ms: i64) -> Result<Option<Beat>> {
        let beat = self.prepared(workers::BEAT.postgres)?;
        let renew = self.prepared(jobs::postgres::LEASE_RENEW)?;
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt(&beat, &[&id, &now_ms])? else {
                tx.commit()?;
                return Ok(None);
            };
            let (stop, lease_ms): (i64, i64) = (row.get(0), row.get(1));
            let jobs = tx.query(&renew, &[&id, &(now_ms + lease_ms)])?;
            let cancel = jobs.iter().any(|r| r.get::<_, Option<i64>>(0).is_some());
            tx.commit()?;
            Ok(Some(Beat { stop: StopLevel::from_u8(u8::try_from(stop).unwrap_or(0)), cancel }))
        })
    }

    fn worker_exit(&mut self, id: &str, now_ms: i64) -> Result<()> {
        self.write(workers::EXIT.postgres, &[&id, &now_ms], false)?;
        Ok(())
    }

    fn worker_list(&mut self, include_exited: bool) -> Result<Vec<WorkerRow>> {
        self.read(workers::postgres::LIST, &[&include_exited])?.iter().map(row::worker_from).collect()
    }

    fn worker_request_stop(&mut self, level: StopLevel, host: Option<&str>, worker: Option<&str>) -> Result<u64> {
        let level = i16::from(level.as_u8());
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let n = tx.execute(workers::STOP.postgres, &[&level, &host, &worker])?;
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn worker_reap(&mut self, now_ms: i64) -> Result<u64> {
        self.write(workers::REAP.postgres, &[&now_ms], false)
    }
}

impl ScheduleStore for PostgresStore {
    fn schedule_add(&mut self, r: &ScheduleRow) -> Result<()> {
        let overlap = r.overlap.as_str();
        let n = self.write(
            schedules::ADD.postgres,
            &[&r.name, &r.cron, &r.tz, &overlap, &r.job, &r.next_fire_ms, &r.created_at_ms],
            false,
        )?;
        if n == 0 {
            return Err(refusal::schedule_exists(&r.name));
        }
        Ok(())
    }

    fn schedule_list(&mut self, name: Option<&str>, due_by: Option<i64>) -> Result<Vec<ScheduleRow>> {
        self.read(schedules::LIST.postgres, &[&name, &due_by])?.iter().map(row::schedule_from).collect()
    }

    fn schedule_fire(&mut self, f: &Fire<'_>) -> Result<bool> {
        let fire = self.prepared(schedules::FIRE.postgres)?;
        let insert = self.prepared(jobs::SCHEDULED_INSERT.postgres)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let job_id = f.job.and_then(|j| j.id.as_deref());
            let fired = i64::from(f.job.is_some());
            let skipped = 1 - fired;
            // The row lock makes a second firer wait, then find next_fire_ms moved on.
            let moved = tx.execute(
                &fire,
                &[
                    &f.name,
                    &f.expected_next_ms,
                    &f.next_fire_ms,
                    &f.occurrence_ms,
                    &job_id,
                    &fired,
                    &skipped,
                    &f.now_ms,
                ],
            )?;
            if moved == 0 {
                return Ok(false);
            }
            if let Some(j) = f.job {
                let queues = [j.queue.as_str()];
                tx.execute(queues::postgres::ENSURE, &[&&queues[..], &f.now_ms])?;
                let (max_retries, timeout, env) = insert_values(j);
                tx.execute(
                    &insert,
                    &[
                        &j.id,
                        &j.command,
                        &max_retries,
                        &j.priority,
                        &j.run_at_ms,
                        &timeout,
                        &j.cwd,
                        &f.now_ms,
                        &env,
                        &j.queue,
                        &j.unique_key,
                    ],
                )?;
                notify(&mut tx, channel)?;
            }
            tx.commit()?;
            Ok(true)
        })
    }

    fn schedule_change(&mut self, name: &str, change: ScheduleChange, now_ms: i64) -> Result<()> {
        let (sql, next) = schedules::change(change);
        let n = match next {
            Some(next) => self.write(sql.postgres, &[&name, &now_ms, &next], true)?,
            None => self.write(sql.postgres, &[&name, &now_ms], false)?,
        };
        if n == 0 {
            return Err(refusal::no_schedule(name));
        }
        Ok(())
    }
}

impl StatsStore for PostgresStore {
    fn stats_add(&mut self, rows: &[StatRow], forget_before_ms: i64) -> Result<()> {
        let add = self.prepared(stats::ADD.postgres)?;
        let forget = self.prepared(stats::FORGET.postgres)?;
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            // Rows come sorted, so that concurrent flushes take their row locks in one order.
            for r in rows {
                tx.execute(&add, &[&r.minute_ms, &r.queue, &r.metric, &r.value])?;
            }
            for r in rows {
                tx.execute(&add, &[&0i64, &r.queue, &r.metric, &r.value])?;
            }
            tx.execute(&forget, &[&forget_before_ms])?;
            Ok(tx.commit()?)
        })
    }

    fn stats_read(&mut self, since_ms: Option<i64>) -> Result<Vec<StatRow>> {
        let rows = match since_ms {
            None => self.read(stats::TOTALS.postgres, &[])?,
            Some(t) => self.read(stats::SINCE.postgres, &[&t])?,
        };
        rows.iter().map(row::stat_from).collect()
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
