//! The shared store: one PostgreSQL database, workers on any number of hosts.
//!
//! A claim is one `UPDATE ... WHERE seq = (SELECT ... FOR UPDATE SKIP LOCKED)`: concurrent
//! claimers skip each other's rows instead of queueing on them. Every write after a claim
//! carries the same (id, attempt, worker) fence as the SQLite store. Idle workers wait on
//! `LISTEN`; enqueues and everything else that makes a job due send a `NOTIFY`.
//!
//! A lost connection (server restart, network) is dropped and opened again by the next
//! call; the worker loop's own retry pauses are the backoff.

mod conn;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;
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
use super::schema::{self, job_col, ColType};
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

schema::impl_cells!(Row, try_get);

/// The PostgreSQL type of a column, for binary `COPY`.
pub(super) fn pg_type(t: ColType) -> Type {
    match t {
        ColType::Int8 => Type::INT8,
        ColType::Int4 => Type::INT4,
        ColType::Text => Type::TEXT,
    }
}

/// Makes sure the queues $1 (a text array) have their rows: $2 now.
const QUEUES_ENSURE_SQL: &str =
    "INSERT INTO queues (name, updated_at_ms) SELECT unnest($1::text[]), $2 ON CONFLICT (name) DO NOTHING";

/// A new job's values in the column types an enqueue writes: max_retries, timeout, env.
fn insert_values(j: &NewJob) -> (i64, i64, Option<String>) {
    (i64::from(j.max_retries), i64::try_from(j.timeout_ms).unwrap_or(i64::MAX), schema::env_text(&j.env))
}

/// The columns an enqueue writes, and their types.
const INSERT_COLUMNS: &str =
    "id, command, state, max_retries, priority, run_at_ms, timeout_ms, cwd, created_at_ms, updated_at_ms, env, queue";
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

/// Which queues may be claimed from, as the claim and `job_due_exists` share it: not
/// paused, among the worker's (?{queues}, a text array, NULL: every queue), not excluded
/// (?{queues + 1}: the queues a claim already found full), below its limit by the count of
/// this statement's snapshot. That count can be stale when two claims race: a claim in a
/// limited queue is checked again under the queue's row lock (`hold_within_limit`).
/// `settling` names the parameter of the job a settle+claim settles in the same statement:
/// its snapshot still sees it processing, but its slot is the one the claim may take.
fn open_queue(queues: u8, settling: Option<u8>) -> String {
    let excluded = queues + 1;
    let not_settling = settling.map(|p| format!("AND r.id <> ?{p}")).unwrap_or_default();
    format!(
        "q.paused = 0 AND (CAST(?{queues} AS TEXT[]) IS NULL OR q.name = ANY(?{queues}))
         AND NOT (q.name = ANY(CAST(?{excluded} AS TEXT[])))
         AND (q.max_running = 0 OR q.max_running > (SELECT count(*) FROM jobs r
                                                    WHERE r.queue = q.name AND r.state = 'processing' {not_settling}))"
    )
}

/// The claim, its parameters from `?{first}`: worker id, now, lease end, the worker's
/// queues, the queues to leave out, the queue of the worker's last job ('' for none).
/// Queues take turns: the head of the first open queue with a due job after that one, in
/// name order, then from the first queue on (each arm stops at its first hit). A queue's
/// head is its most urgent due job through jobs_due, locked, skipping rows other claims
/// hold. It returns the job and its queue's limit.
fn claim_update(first: u8, settling: Option<u8>) -> String {
    let set = schema::shift_params(schema::CLAIM_SET, first - 1);
    let now = first + 1;
    let after = first + 5;
    let open = open_queue(first + 3, settling);
    let arm = |range: &str| {
        format!(
            "(SELECT c.seq FROM queues q CROSS JOIN LATERAL (
                  SELECT d.seq FROM jobs d
                  WHERE d.queue = q.name AND d.state IN ('pending', 'failed') AND d.run_at_ms <= ?{now}
                  ORDER BY d.priority DESC, d.seq LIMIT 1 FOR UPDATE SKIP LOCKED) c
              WHERE q.name {range} CAST(?{after} AS TEXT) AND {open}
              ORDER BY q.name LIMIT 1)"
        )
    };
    format!(
        "UPDATE jobs SET {set}
         WHERE seq = ({} UNION ALL {} LIMIT 1)
         RETURNING {}, (SELECT max_running FROM queues WHERE name = jobs.queue)",
        arm(">"),
        arm("<="),
        job_col::LIST
    )
}

static CLAIM_SQL: LazyLock<String> = LazyLock::new(|| claim_update(1, None));

/// The attempt's history row unless the job completed (a completed job keeps its last
/// attempt in its own row, as the SQLite store does), as a CTE after `settled`; ?11 the
/// output tail. The outcome recorded is the state the update stored (`cancelled` when a
/// cancel was asked for).
const HISTORY_CTE: &str = "history AS (
    INSERT INTO attempts (job_seq, run, attempt, worker_id, started_at_ms, finished_at_ms, exit_code, error, outcome, output_tail)
    SELECT seq, runs, ?2, ?3, started_at_ms, ?6, ?7, ?8, state, ?11 FROM settled WHERE state <> 'completed')";

/// The fast settle's CTEs: the fenced update of a job nobody runs after
/// (`schema::SETTLE_UPDATE_NO_DEPENDENTS`, ?1 to ?10), then its history. A job others run
/// after is left alone (no row, as when fenced), and [`SETTLE_FULL_SQL`] settles it.
static SETTLE_CTES: LazyLock<String> =
    LazyLock::new(|| format!("settled AS ({}), {HISTORY_CTE}", schema::SETTLE_UPDATE_NO_DEPENDENTS));

/// The settle of any job in one statement: the fenced update (`schema::SETTLE_UPDATE`)
/// and its history, and for a job others run after, their count-down when it completed
/// (`released`) or their cancel down the chain when it ended otherwise. The extra CTEs
/// cost every settle about a sixth of the engine's PostgreSQL throughput, so only jobs
/// with dependents (and rescues) come here. The dependents are gathered into arrays
/// (`ARRAY(...)`, `unnest`): joined directly, the planner sized its hash tables by the
/// edges of the busiest parent (with 200,000 edges one such settle took 700 ms); an
/// array's estimate is small. Returns the state stored and how many jobs became pending.
static SETTLE_FULL_SQL: LazyLock<String> = LazyLock::new(|| {
    let edges = "SELECT d.child_seq FROM settled s JOIN job_deps d ON d.parent_seq = s.seq
                 WHERE s.has_dependents IS NOT NULL AND s.state";
    let released = format!("seq = ANY (ARRAY({edges} = 'completed'))");
    let doomed = schema::doomed_cte(&format!(
        "SELECT c, CAST(?1 AS TEXT), CAST((SELECT state FROM settled) AS TEXT)
         FROM unnest(ARRAY({edges} IN ('dead', 'cancelled'))) c"
    ));
    format!(
        "WITH RECURSIVE settled AS ({}), {HISTORY_CTE},
         released AS ({} RETURNING state),
         {doomed},
         cascaded AS ({})
         SELECT (SELECT state FROM settled), (SELECT count(*) FROM released WHERE state = 'pending')",
        schema::SETTLE_UPDATE,
        schema::release_sql(&released, "?6"),
        schema::cascade_update(6)
    )
});

/// The fast settle alone.
static SETTLE_SQL: LazyLock<String> =
    LazyLock::new(|| format!("WITH {} SELECT (SELECT state FROM settled)", *SETTLE_CTES));

/// Settle and claim in one statement, one round trip: what a busy worker does between jobs.
static SETTLE_AND_CLAIM_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {}, claimed AS ({})
         SELECT claimed.*, (SELECT state FROM settled) FROM (VALUES (1)) AS one LEFT JOIN claimed ON true",
        *SETTLE_CTES,
        claim_update(12, Some(1))
    )
});

/// ?1 now, ?2 the worker's queues, ?3 none left out.
static DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT 1 FROM queues q WHERE {} AND EXISTS (
             SELECT 1 FROM jobs d WHERE d.queue = q.name AND d.state IN ('pending', 'failed') AND d.run_at_ms <= ?1)
         LIMIT 1",
        open_queue(2, None)
    )
});

/// Checks a claim of `job` in a queue with a limit again, under the queue's row lock: the
/// claims of that queue on every host take the lock in turn, and each counts the others'
/// committed claims, so at most `limit` stay claimed. Over the limit, the claim is put
/// back, uncounted. Returns whether the job stays claimed.
fn hold_within_limit(c: &mut Client, channel: &str, job: &Job, worker_id: &str, now_ms: i64) -> Result<bool> {
    let mut tx = c.transaction()?;
    let limit: i64 = tx.query_one("SELECT max_running FROM queues WHERE name = $1 FOR UPDATE", &[&job.queue])?.get(0);
    let others: i64 = tx
        .query_one(
            "SELECT count(*) FROM jobs WHERE queue = $1 AND state = 'processing' AND id <> $2",
            &[&job.queue, &job.id],
        )?
        .get(0);
    if limit == 0 || others < limit {
        tx.commit()?;
        return Ok(true);
    }
    let attempt = i64::from(job.attempts);
    let rows = tx.query(&schema::to_postgres(&REQUEUE_SQL), &[&job.id, &attempt, &worker_id, &now_ms])?;
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
    Ok(Some((schema::job_from(row, 0)?, row.try_get::<_, Option<i64>>(at)?.unwrap_or(0))))
}

static REQUEUE_SQL: LazyLock<String> = LazyLock::new(schema::requeue_sql);

/// What the dependents of jobs just ended need, from rows of (seq, state, has_dependents)
/// (see [`schema::dependents_step`]).
fn dependents_after(tx: &mut impl GenericClient, rows: &[Row], now_ms: i64) -> Result<()> {
    for r in rows {
        let (seq, state, has): (i64, &str, Option<i64>) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        if let Some(sql) = schema::dependents_step(state, has.is_some()) {
            tx.execute(&schema::to_postgres(sql), &[&seq, &now_ms])?;
        }
    }
    Ok(())
}

/// A claim whose commit was never confirmed: this worker's processing jobs go back to
/// pending, except the one it is settling (?3). ?1 worker, ?2 now.
static RELEASE_UNSURE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET {} WHERE worker_id = ?1 AND state = 'processing' AND id IS DISTINCT FROM ?3
         RETURNING seq, state, has_dependents",
        schema::requeue_set(2)
    )
});

static WORKER_LIST_SQL: LazyLock<String> = LazyLock::new(|| schema::worker_list_sql("jobs j"));
static WORKER_REAP_SQL: LazyLock<String> =
    LazyLock::new(|| format!("UPDATE workers SET state = 'exited', exited_at_ms = ?1 {}", schema::WORKER_SILENT_SQL));

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

    /// `sql` (with `?N` or `$N` parameters) prepared on the current connection, once per
    /// connection.
    fn prepared(&mut self, sql: &'static str) -> Result<Statement> {
        self.connect()?;
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let text = schema::to_postgres(sql);
        let st = self.with(|c, _| Ok(c.prepare(&text)?))?;
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
        let st = self.prepared(&RELEASE_UNSURE_SQL)?;
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
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO jobs ({INSERT_COLUMNS}, unique_key, waiting_on)
                 VALUES ($1, $2, CASE WHEN CAST($12 AS BIGINT) > 0 THEN 'waiting' ELSE 'pending' END,
                         $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12) {} RETURNING seq",
                schema::UNIQUE_CONFLICT
            )
        });
        let ins = self.prepared(&SQL)?;
        let holder = self.prepared(schema::UNIQUE_HOLDER_SQL)?;
        let mark = self.prepared(schema::PARENT_MARK_SQL)?;
        let edge = self.prepared(schema::DEP_INSERT_SQL)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            tx.execute(QUEUES_ENSURE_SQL, &[&queues, &now_ms])?;
            let mut out = Inserted { ids: Vec::with_capacity(jobs.len()), skipped: Vec::new() };
            let mut stand_in = HashMap::new();
            for (j, id) in jobs.iter().zip(&ids) {
                let (max_retries, timeout, env) = insert_values(j);
                let mut parents = Vec::with_capacity(j.after.len());
                let mut waiting_on: i64 = 0;
                for parent in super::parents_of(&j.after, &stand_in) {
                    let row = tx.query_opt(&mark, &[&parent])?;
                    let state = row.as_ref().map(|r| schema::state_of(r.get::<_, &str>(1))).transpose()?;
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
    /// ([`SETTLE_FULL_SQL`]); wakes idle workers when it made dependents pending.
    fn settle_full(&mut self, p: &SettleParams) -> Result<Settled> {
        let args = SettleArgs::new(p);
        let st = self.prepared(&SETTLE_FULL_SQL)?;
        self.with(|c, channel| {
            let row = c.query_one(&st, &args.params())?;
            if row.try_get::<_, i64>(1)? > 0 {
                notify(c, channel)?;
            }
            Ok(p.settled_as(row.get::<_, Option<&str>>(0)))
        })
    }

    fn claim_excluding(&mut self, p: &ClaimParams<'_>, mut excluded: Vec<String>) -> Result<Option<Job>> {
        let st = self.prepared(&CLAIM_SQL)?;
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
            tx.execute(QUEUES_ENSURE_SQL, &[&queues, &now_ms])?;
            // COPY in binary: a million rows in one stream, no statement per row.
            let copy = tx.copy_in(&format!("COPY jobs ({INSERT_COLUMNS}) FROM STDIN (FORMAT binary)"))?;
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
        let st = self.prepared(&DUE_SQL)?;
        let queues = p.queues.map(|q| q.names());
        let none: &[String] = &[];
        self.with(|c, _| Ok(c.query_opt(&st, &[&p.now_ms, &queues, &none])?.is_some()))
    }

    fn job_claim(&mut self, p: &ClaimParams<'_>) -> Result<Option<Job>> {
        self.claim_excluding(p, Vec::new())
    }

    fn job_settle(&mut self, p: &SettleParams) -> Result<Settled> {
        let args = SettleArgs::new(p);
        let st = self.prepared(&SETTLE_SQL)?;
        let stored = self.with(|c, _| Ok(c.query_one(&st, &args.params())?.get::<_, Option<String>>(0)))?;
        match stored {
            Some(state) => Ok(p.settled_as(Some(&state))),
            None => self.settle_full(p),
        }
    }

    fn job_settle_and_claim(&mut self, s: &SettleParams, p: &ClaimParams<'_>) -> Result<(Settled, Option<Job>)> {
        let args = SettleArgs::new(s);
        let st = self.prepared(&SETTLE_AND_CLAIM_SQL)?;
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
        let st = self.prepared(&REQUEUE_SQL)?;
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
        self.read(schema::EXPIRED_SQL, &[&now_ms])?.iter().map(schema::expired_from).collect()
    }

    fn job_settle_many(&mut self, settles: &[SettleParams]) -> Result<Vec<Settled>> {
        let st = self.prepared(&SETTLE_FULL_SQL)?;
        // A rescue's row is locked with SKIP LOCKED first: every worker of every host runs
        // rescues, and one that finds the row taken by another rescuer (or by the worker's
        // own heartbeat) moves on instead of waiting for it; the fence settles the rest.
        let lock = self.prepared(
            "SELECT 1 FROM jobs WHERE id = $1 AND state = 'processing' AND lease_expires_ms < $2 FOR UPDATE SKIP LOCKED",
        )?;
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
            let rows = tx.query(
                "DELETE FROM jobs WHERE state = $1 AND updated_at_ms <= $2 RETURNING id, seq",
                &[&state.as_str(), &cutoff],
            )?;
            let seqs: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
            tx.execute("DELETE FROM attempts WHERE job_seq = ANY($1)", &[&seqs])?;
            tx.execute(schema::DEPS_CLEAN_SQL, &[])?;
            tx.commit()?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn job_change_by_id(&mut self, p: &ByIdParams<'_>) -> Result<u64> {
        let state_sql = format!("{} FOR UPDATE", schema::to_postgres(schema::JOB_STATE_SQL));
        // The parents locked against a settle until this commits: a retried job counts
        // those not completed, and a parent completing meanwhile must see it waiting.
        let parents_sql = format!("{} FOR SHARE OF p", schema::to_postgres(schema::PARENTS_SQL));
        let child_sql = schema::to_postgres(schema::WAITING_CHILD_SQL);
        let end_sql = schema::to_postgres(schema::JOB_END_SQL);
        let steps = schema::change_steps(p.change)
            .iter()
            .map(|step| Ok((self.prepared(step.sql)?, step.takes_now)))
            .collect::<Result<Vec<_>>>()?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            for id in p.ids {
                let row = tx.query_opt(&state_sql, &[id])?;
                let state = row.as_ref().map(|r| schema::state_of(r.get::<_, &str>(0))).transpose()?;
                crate::rules::check_change(p.change, id, state)?;
                let (read_parents, read_child) = p.change.dependency_reads();
                let mut parents: Vec<(String, JobState)> = Vec::new();
                if read_parents {
                    parents = tx.query(&parents_sql, &[id])?.iter().map(schema::parent_from).collect::<Result<_>>()?;
                }
                let mut child = None;
                if read_child {
                    child = tx.query_opt(&child_sql, &[id])?.map(|r| r.get::<_, String>(0));
                }
                crate::rules::check_dependencies(p.change, id, &parents, child.as_deref())?;
                for (st, takes_now) in &steps {
                    let done = if *takes_now { tx.execute(st, &[id, &p.now_ms]) } else { tx.execute(st, &[id]) };
                    if let Err(e) = done {
                        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                            return Err(schema::key_taken(id));
                        }
                        return Err(e.into());
                    }
                }
                if p.change == ByIdChange::Cancel {
                    let end = tx.query(&end_sql, &[id])?;
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
        self.write(schema::DEAD_RETRY_ALL_SQL, &[&now_ms], true).map_err(schema::retry_all_error)
    }
}

impl JobInspect for PostgresStore {
    fn job_get(&mut self, id: &str) -> Result<Job> {
        static SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {} FROM jobs WHERE id = $1", job_col::LIST));
        let rows = self.read(&SQL, &[&id])?;
        rows.first().map(|r| schema::job_from(r, 0)).transpose()?.ok_or_else(|| Error::NotFound(id.to_string()))
    }

    fn job_list_where(&mut self, f: &ListFilter<'_>) -> Result<Vec<Job>> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {} FROM jobs WHERE (CAST(?1 AS TEXT) IS NULL OR state = ?1) AND (CAST(?2 AS TEXT) IS NULL OR queue = ?2)
                 ORDER BY seq LIMIT ?3",
                job_col::LIST
            )
        });
        let limit = f.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let state = f.state.map(JobState::as_str);
        let rows = self.read(&SQL, &[&state, &f.queue, &limit])?;
        rows.iter().map(|r| schema::job_from(r, 0)).collect()
    }

    fn job_page(&mut self, f: &PageFilter<'_>) -> Result<Page> {
        // jobs_state (state, seq) holds every state in seq order; a queue or a search is
        // read newest first from the table, at most a window of it per page.
        let from = match f.state {
            Some(s) => format!("jobs WHERE state = '{}'", s.as_str()),
            None => "jobs WHERE 1 = 1".to_string(),
        };
        let windowed = f.search.is_some() || f.queue.is_some();
        let sql = schema::to_postgres(&schema::page_sql(
            &from,
            f.queue.is_some(),
            f.search.is_some(),
            "strpos({col}, ?5) > 0",
        ));
        let limit = i64::try_from(f.limit).unwrap_or(i64::MAX);
        let (before, queue, search) = (f.before, f.queue, f.search);
        let (bounds, rows) = self.with(|c, _| {
            let mut tx = c.build_transaction().read_only(true).start()?;
            let b = tx.query_one("SELECT max(seq), min(seq) FROM jobs", &[])?;
            let (max, min): (Option<i64>, Option<i64>) = (b.get(0), b.get(1));
            let (Some(max), Some(min)) = (max, min) else {
                return Ok((None, Vec::new()));
            };
            let (upper, lower) = schema::page_bounds(before, max, windowed);
            let rows = tx.query(&sql, &[&limit, &queue, &upper, &lower, &search])?;
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
            jobs.push(schema::job_from(r, 0)?);
        }
        Ok(Page { jobs, next: schema::page_next(&seqs, f.limit, lower, min) })
    }

    fn job_count_by_state(&mut self) -> Result<Vec<(JobState, u64)>> {
        let rows = self.with(|c, _| Ok(c.query("SELECT state, count(*) FROM jobs GROUP BY state", &[])?))?;
        let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        for r in &rows {
            let name: &str = r.get(0);
            let state = JobState::parse(name)
                .ok_or_else(|| Error::Database(format!("unknown job state {name:?} in the database")))?;
            let n: i64 = r.get(1);
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
                slot.1 = n as u64;
            }
        }
        Ok(counts)
    }

    fn job_parents(&mut self, id: &str) -> Result<Vec<(String, JobState)>> {
        self.read(schema::PARENTS_SQL, &[&id])?.iter().map(schema::parent_from).collect()
    }

    fn job_attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        if self.read("SELECT 1 FROM jobs WHERE id = $1", &[&id])?.is_empty() {
            return Err(Error::NotFound(id.to_string()));
        }
        self.read(schema::ATTEMPTS_SQL, &[&id])?.iter().map(schema::attempt_from).collect()
    }

    fn job_ahead(&mut self, id: &str, now_ms: i64) -> Result<u64> {
        let rows = self.read(schema::AHEAD_SQL, &[&id, &now_ms])?;
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
                .query(schema::QUEUE_SETTINGS_SQL, &[])?
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) != 0, r.get::<_, i64>(2)))
                .collect();
            let mut counts = Vec::new();
            for r in tx.query("SELECT queue, state, count(*) FROM jobs GROUP BY queue, state", &[])? {
                let name: &str = r.get(1);
                let state = JobState::parse(name)
                    .ok_or_else(|| Error::Database(format!("unknown job state {name:?} in the database")))?;
                counts.push((r.get::<_, String>(0), state, r.get::<_, i64>(2) as u64));
            }
            tx.commit()?;
            Ok(schema::queue_rows(settings, &counts))
        })
    }

    fn queue_set(&mut self, s: &QueueSetting<'_>) -> Result<u64> {
        s.check()?;
        let (sql, limit) = schema::queue_set_sql(s.change);
        let st = self.prepared(sql)?;
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
        Ok(self.read(schema::CONFIG_GET_SQL, &[&key])?.first().map(|r| r.get(0)))
    }

    fn config_set(&mut self, s: Setting<'_>, now_ms: i64) -> Result<()> {
        self.write(schema::CONFIG_SET_SQL, &[&s.key, &s.value, &now_ms], false)?;
        Ok(())
    }

    fn config_list(&mut self) -> Result<Vec<(String, String)>> {
        Ok(self.read(schema::CONFIG_LIST_SQL, &[])?.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl WorkerRegistry for PostgresStore {
    fn worker_register(&mut self, r: &Registration<'_>) -> Result<()> {
        let pid = i64::from(r.pid);
        let queues = r.queues.map(|q| q.stored());
        let n =
            self.write(schema::WORKER_REGISTER_SQL, &[&r.id, &r.host, &pid, &r.now_ms, &r.lease_ms, &queues], false)?;
        if n == 0 {
            return Err(schema::already_registered(r.id));
        }
        Ok(())
    }

    fn worker_heartbeat(&mut self, id: &str, now_ms: i64) -> Result<Option<Beat>> {
        let beat = self.prepared(schema::WORKER_BEAT_SQL)?;
        let renew = self.prepared(schema::LEASE_RENEW_SQL)?;
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
        self.write(schema::WORKER_EXIT_SQL, &[&id, &now_ms], false)?;
        Ok(())
    }

    fn worker_list(&mut self, include_exited: bool) -> Result<Vec<WorkerRow>> {
        self.read(&WORKER_LIST_SQL, &[&include_exited])?.iter().map(schema::worker_from).collect()
    }

    fn worker_request_stop(&mut self, level: StopLevel, host: Option<&str>, worker: Option<&str>) -> Result<u64> {
        let level = i16::from(level.as_u8());
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let n = tx.execute(&schema::to_postgres(schema::WORKER_STOP_SQL), &[&level, &host, &worker])?;
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn worker_reap(&mut self, now_ms: i64) -> Result<u64> {
        self.write(&WORKER_REAP_SQL, &[&now_ms], false)
    }
}

impl ScheduleStore for PostgresStore {
    fn schedule_add(&mut self, r: &ScheduleRow) -> Result<()> {
        let overlap = r.overlap.as_str();
        let n = self.write(
            schema::SCHEDULE_ADD_SQL,
            &[&r.name, &r.cron, &r.tz, &overlap, &r.job, &r.next_fire_ms, &r.created_at_ms],
            false,
        )?;
        if n == 0 {
            return Err(schema::schedule_exists(&r.name));
        }
        Ok(())
    }

    fn schedule_list(&mut self, name: Option<&str>, due_by: Option<i64>) -> Result<Vec<ScheduleRow>> {
        self.read(schema::SCHEDULE_LIST_SQL, &[&name, &due_by])?.iter().map(schema::schedule_from).collect()
    }

    fn schedule_fire(&mut self, f: &Fire<'_>) -> Result<bool> {
        let fire = self.prepared(schema::SCHEDULE_FIRE_SQL)?;
        let insert = self.prepared(schema::SCHEDULED_JOB_SQL)?;
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
                tx.execute(QUEUES_ENSURE_SQL, &[&&queues[..], &f.now_ms])?;
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
        let (sql, next) = schema::schedule_change_sql(change);
        let n = match next {
            Some(next) => self.write(sql, &[&name, &now_ms, &next], true)?,
            None => self.write(sql, &[&name, &now_ms], false)?,
        };
        if n == 0 {
            return Err(schema::no_schedule(name));
        }
        Ok(())
    }
}

impl StatsStore for PostgresStore {
    fn stats_add(&mut self, rows: &[StatRow], forget_before_ms: i64) -> Result<()> {
        let add = self.prepared(schema::STATS_ADD_SQL)?;
        let forget = self.prepared(schema::STATS_FORGET_SQL)?;
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
            None => self.read(schema::STATS_TOTALS_SQL, &[])?,
            Some(t) => self.read(schema::STATS_SINCE_SQL, &[&t])?,
        };
        rows.iter().map(schema::stat_from).collect()
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
