//! The shared store: one PostgreSQL database, workers on any number of hosts.
//!
//! A claim is one `UPDATE ... WHERE seq = (SELECT ... FOR UPDATE SKIP LOCKED)`: concurrent
//! claimers skip each other's rows instead of queueing on them. Every write after a claim
//! carries the same (id, attempt, worker) fence as the SQLite store. Idle workers wait on
//! `LISTEN`; enqueues and everything else that makes a job due send a `NOTIFY`.
//!
//! A lost connection (server restart, network) is dropped and opened again by the next
//! call; the worker loop's own retry pauses are the backoff.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::config::SslMode;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{next_state, ClaimParams, SettleParams, Settled, Store, StoreOptions, WorkerRow};
use crate::backoff::BackoffPolicy;
use crate::error::{Error, Result};
use crate::job::{Attempt, Job, JobState, NewJob};
use crate::jobid;

/// Forward migrations; `queuectl_schema.version` is the number applied so far.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE jobs (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    command          TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    runs             BIGINT NOT NULL DEFAULT 0,
    max_retries      BIGINT NOT NULL,
    priority         BIGINT NOT NULL DEFAULT 0,
    run_at_ms        BIGINT NOT NULL,
    timeout_ms       BIGINT NOT NULL,
    cwd              TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL,
    started_at_ms    BIGINT,
    finished_at_ms   BIGINT,
    exit_code        INTEGER,
    last_error       TEXT,
    worker_id        TEXT,
    lease_expires_ms BIGINT,
    output_tail      TEXT
);
CREATE INDEX jobs_due ON jobs (priority DESC, seq, run_at_ms) WHERE state IN ('pending', 'failed');
CREATE INDEX jobs_state ON jobs (state, seq);
CREATE INDEX jobs_processing ON jobs (worker_id) WHERE state = 'processing';
CREATE TABLE attempts (
    job_seq        BIGINT NOT NULL,
    run            BIGINT NOT NULL,
    attempt        BIGINT NOT NULL,
    worker_id      TEXT,
    started_at_ms  BIGINT,
    finished_at_ms BIGINT NOT NULL,
    exit_code      INTEGER,
    error          TEXT,
    outcome        TEXT NOT NULL,
    output_tail    TEXT NOT NULL,
    PRIMARY KEY (job_seq, run)
);
CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            BIGINT NOT NULL,
    state          TEXT NOT NULL,
    started_at_ms  BIGINT NOT NULL,
    heartbeat_ms   BIGINT NOT NULL,
    lease_ms       BIGINT NOT NULL,
    stop_requested SMALLINT NOT NULL DEFAULT 0,
    exited_at_ms   BIGINT
);
CREATE TABLE config (
    key           TEXT PRIMARY KEY,
    value         TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
"#];

/// The advisory lock key that serialises migrations across hosts ("queuectl" in ASCII).
const MIGRATION_LOCK: i64 = 0x7175_6575_6563_746c;

const JOB_COLS: &str = "id, command, state, attempts, max_retries, priority, run_at_ms, timeout_ms, cwd, \
     created_at_ms, updated_at_ms, started_at_ms, finished_at_ms, exit_code, last_error, worker_id, lease_expires_ms";

const WORKER_COLS: &str = "w.id, w.host, w.pid,
     CASE WHEN w.state = 'exited' THEN 'exited' WHEN j.id IS NOT NULL THEN 'busy' ELSE 'idle' END,
     j.id, w.started_at_ms, w.heartbeat_ms, w.lease_ms, w.stop_requested, w.exited_at_ms";

/// The claim, with its parameters named: worker id, now, lease end.
fn claim_update(worker: &str, now: &str, lease_until: &str) -> String {
    format!(
        "UPDATE jobs SET state = 'processing', attempts = attempts + 1, runs = runs + 1, worker_id = {worker},
             started_at_ms = {now}, finished_at_ms = NULL, exit_code = NULL, last_error = NULL,
             lease_expires_ms = {lease_until}, updated_at_ms = {now}
         WHERE seq = (SELECT seq FROM jobs
                      WHERE state IN ('pending', 'failed') AND run_at_ms <= {now}
                      ORDER BY priority DESC, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING {JOB_COLS}"
    )
}

static CLAIM_SQL: LazyLock<String> = LazyLock::new(|| claim_update("$1", "$2", "$3"));

/// The settle as two CTEs: the fenced update ($1 id, $2 attempt, $3 worker), then the
/// attempt's history row unless the job completed (a completed job keeps its last attempt
/// in its own row, $9 the output tail, as the SQLite store does).
const SETTLE_CTES: &str = "settled AS (
        UPDATE jobs SET state = $4, run_at_ms = $5, finished_at_ms = $6, updated_at_ms = $6,
            exit_code = $7, last_error = $8, lease_expires_ms = NULL, output_tail = $9
        WHERE id = $1 AND state = 'processing' AND attempts = $2 AND worker_id = $3
        RETURNING seq, started_at_ms, runs),
    history AS (
        INSERT INTO attempts (job_seq, run, attempt, worker_id, started_at_ms, finished_at_ms, exit_code, error, outcome, output_tail)
        SELECT seq, runs, $2, $3, started_at_ms, $6, $7, $8, $4, $10 FROM settled WHERE $4 <> 'completed')";

static SETTLE_SQL: LazyLock<String> = LazyLock::new(|| format!("WITH {SETTLE_CTES} SELECT count(*) FROM settled"));

/// Settle and claim in one statement, one round trip: what a busy worker does between jobs.
static SETTLE_AND_CLAIM_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {SETTLE_CTES}, claimed AS ({})
         SELECT claimed.*, (SELECT count(*) FROM settled) FROM (VALUES (1)) AS one LEFT JOIN claimed ON true",
        claim_update("$11", "$12", "$13")
    )
});

const DUE_SQL: &str = "SELECT 1 FROM jobs WHERE state IN ('pending', 'failed') AND run_at_ms <= $1 LIMIT 1";

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn state_of(s: &str) -> Result<JobState> {
    JobState::parse(s).ok_or_else(|| Error::Database(format!("unknown job state {s:?} in the database")))
}

fn job_from_row(r: &Row) -> Result<Job> {
    job_from_row_at(r, 0)
}

/// A job from the 17 columns of `JOB_COLS` starting at column `at`.
fn job_from_row_at(r: &Row, at: usize) -> Result<Job> {
    Ok(Job {
        id: r.try_get(at)?,
        command: r.try_get(at + 1)?,
        state: state_of(r.try_get(at + 2)?)?,
        attempts: u32_of(r.try_get(at + 3)?),
        max_retries: u32_of(r.try_get(at + 4)?),
        priority: r.try_get(at + 5)?,
        run_at_ms: r.try_get(at + 6)?,
        timeout_ms: u64::try_from(r.try_get::<_, i64>(at + 7)?).unwrap_or(0),
        cwd: r.try_get(at + 8)?,
        created_at_ms: r.try_get(at + 9)?,
        updated_at_ms: r.try_get(at + 10)?,
        started_at_ms: r.try_get(at + 11)?,
        finished_at_ms: r.try_get(at + 12)?,
        exit_code: r.try_get(at + 13)?,
        last_error: r.try_get(at + 14)?,
        worker_id: r.try_get(at + 15)?,
        lease_expires_ms: r.try_get(at + 16)?,
    })
}

fn worker_from_row(r: &Row) -> Result<WorkerRow> {
    Ok(WorkerRow {
        id: r.try_get(0)?,
        host: r.try_get(1)?,
        pid: u32_of(r.try_get(2)?),
        state: r.try_get(3)?,
        current_job: r.try_get(4)?,
        started_at_ms: r.try_get(5)?,
        heartbeat_ms: r.try_get(6)?,
        lease_ms: r.try_get(7)?,
        stop_requested: u8::try_from(r.try_get::<_, i16>(8)?).unwrap_or(0),
        exited_at_ms: r.try_get(9)?,
    })
}

fn jobs_from(rows: Vec<Row>) -> Result<Vec<Job>> {
    rows.iter().map(job_from_row).collect()
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            return classify_db_error(db);
        }
        if e.is_closed() {
            return Error::Database("lost the connection to PostgreSQL".into());
        }
        let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
        Error::Database(format!("cannot reach PostgreSQL: {e}{cause}"))
    }
}

/// A server error as one line (SQLSTATE, message, detail, hint), sorted into what may pass
/// (serialization failures, lock timeouts, a server shutting down) and what will not.
fn classify_db_error(db: &postgres::error::DbError) -> Error {
    use postgres::error::SqlState;
    let mut text = format!("PostgreSQL error {}: {}", db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" ({detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    let next = match db.code() {
        c if *c == SqlState::DISK_FULL => "free space on the database server, then start the workers again",
        c if *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
            "the database is read-only (a standby, or default_transaction_read_only): point --db at the primary"
        }
        c if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
            "the server reports corruption: stop the workers, run `queuectl check`, and restore a backup"
        }
        c if *c == SqlState::UNDEFINED_TABLE => {
            "the queue's tables are gone (dropped while workers ran?): start the workers again to create them"
        }
        c if *c == SqlState::INVALID_CATALOG_NAME => "the database does not exist: check --db or QUEUECTL_DB",
        c if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            "the server refused these credentials: check the user and password in --db"
        }
        c if *c == SqlState::INSUFFICIENT_PRIVILEGE => "grant this user the rights on the queue's schema",
        _ => return Error::Database(text),
    };
    Error::Lasting(format!("{text}: {next}"))
}

/// Whether a TLS certificate is checked: `sslmode=verify-ca|verify-full` check it against
/// the system's roots; `prefer` and `require` encrypt without checking, as libpq does.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_connector(verify: bool) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Database(format!("cannot set up TLS: {e}")))?;
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A certificate the system store holds but rustls cannot parse is skipped.
            let _ = roots.add(cert);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider))).with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Parses a connection URL (or libpq key=value string). `verify-ca` and `verify-full`,
/// which the driver does not know, become `require` with certificate checks.
fn parse_location(location: &str) -> Result<(postgres::Config, bool)> {
    let mut verify = false;
    let mut text = location.to_string();
    for mode in ["sslmode=verify-full", "sslmode=verify-ca"] {
        if text.contains(mode) {
            verify = true;
            text = text.replace(mode, "sslmode=require");
        }
    }
    let mut config: postgres::Config =
        text.parse().map_err(|e| Error::InvalidInput(format!("invalid PostgreSQL URL {}: {e}", redact(location))))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("queuectl");
    }
    Ok((config, verify))
}

/// The location with any password left out, for messages and `--version`.
pub fn redact(location: &str) -> String {
    // postgresql://user:secret@host/db -> postgresql://user@host/db
    if let Some((scheme, rest)) = location.split_once("://") {
        let (auth, tail) = match rest.find('@') {
            Some(at) if !rest[..at].contains('/') => (&rest[..at], &rest[at..]),
            _ => return location.to_string(),
        };
        let user = auth.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}{tail}");
    }
    location.split_whitespace().filter(|kv| !kv.starts_with("password=")).collect::<Vec<_>>().join(" ")
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
    /// The hot statements, prepared once per connection.
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

    /// `sql` prepared on the current connection (once per connection).
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
        let latest = MIGRATIONS.len() as i64;
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            // Hosts starting at once queue here; the first one migrates, the rest see it done.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
            let exists: bool = tx.query_one("SELECT to_regclass('queuectl_schema') IS NOT NULL", &[])?.get(0);
            let current: i64 =
                if exists { tx.query_one("SELECT max(version) FROM queuectl_schema", &[])?.get(0) } else { 0 };
            if current > latest {
                return Err(Error::SchemaTooNew { found: current, supported: latest });
            }
            if current == latest {
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
            for sql in MIGRATIONS.iter().skip(current.max(0) as usize) {
                tx.batch_execute(sql)?;
            }
            tx.execute("UPDATE queuectl_schema SET version = $1", &[&latest])?;
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
        self.with(|c, channel| {
            let n = c.execute(
                "UPDATE jobs SET state = 'pending', attempts = attempts - 1, runs = runs - 1, worker_id = NULL,
                     lease_expires_ms = NULL, started_at_ms = NULL, updated_at_ms = $2
                 WHERE worker_id = $1 AND state = 'processing' AND id IS DISTINCT FROM $3",
                &[&worker_id, &now_ms, &settling],
            )?;
            if n > 0 {
                notify(c, channel)?;
            }
            Ok(())
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

    fn policy_for(&mut self, success: bool) -> Result<BackoffPolicy> {
        if success {
            Ok(BackoffPolicy::default())
        } else {
            self.backoff_policy()
        }
    }
}

/// Wakes idle workers on every host; delivered when the surrounding transaction commits.
pub(super) fn notify(c: &mut impl GenericClient, channel: &str) -> Result<()> {
    c.execute("SELECT pg_notify($1, '')", &[&channel])?;
    Ok(())
}

/// A settle's parameters as the settle statements take them ($1 to $10), and the outcome
/// it leads to when the fence holds.
struct SettleArgs<'a> {
    p: &'a SettleParams<'a>,
    attempt: i64,
    state: &'static str,
    run_at_ms: i64,
    error: Option<Cow<'a, str>>,
    output_tail: Cow<'a, str>,
    completed_tail: Option<Cow<'a, str>>,
    outcome: Settled,
}

impl<'a> SettleArgs<'a> {
    fn new(p: &'a SettleParams<'a>, policy: &BackoffPolicy) -> SettleArgs<'a> {
        let (state, run_at_ms) = next_state(p.success, p.attempt, p.max_retries, policy, p.now_ms);
        let output_tail = pg_text(&p.output_tail);
        let outcome = match state {
            JobState::Completed => Settled::Completed,
            JobState::Dead => Settled::Dead,
            _ => Settled::Retry { run_at_ms },
        };
        SettleArgs {
            p,
            attempt: i64::from(p.attempt),
            state: state.as_str(),
            run_at_ms,
            error: p.error.as_deref().map(pg_text),
            completed_tail: (state == JobState::Completed).then(|| output_tail.clone()),
            output_tail,
            outcome,
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.p.id,
            &self.attempt,
            &self.p.worker_id,
            &self.state,
            &self.run_at_ms,
            &self.p.now_ms,
            &self.p.exit_code,
            &self.error,
            &self.completed_tail,
            &self.output_tail,
        ]
    }

    /// The outcome, given how many rows the fenced update changed.
    fn outcome(&self, settled_rows: i64) -> Settled {
        if settled_rows == 1 {
            self.outcome
        } else {
            Settled::Fenced
        }
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

impl Store for PostgresStore {
    fn job_insert_many(
        &mut self,
        jobs: &[NewJob],
        now_ms: i64,
        mut progress: Option<&mut dyn FnMut(usize)>,
    ) -> Result<Vec<String>> {
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone().unwrap_or_else(|| jobid::generate(now_ms))).collect();
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            // COPY in binary: a million rows in one stream, no statement per row.
            let copy = tx.copy_in(
                "COPY jobs (id, command, state, max_retries, priority, run_at_ms, timeout_ms, cwd, created_at_ms, updated_at_ms)
                 FROM STDIN (FORMAT binary)",
            )?;
            let types = [
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
            ];
            let mut writer = BinaryCopyInWriter::new(copy, &types);
            let written = (|| -> std::result::Result<u64, postgres::Error> {
                for (n, (j, id)) in jobs.iter().zip(&ids).enumerate() {
                    let timeout = i64::try_from(j.timeout_ms).unwrap_or(i64::MAX);
                    let max_retries = i64::from(j.max_retries);
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
        Ok(ids)
    }

    fn job_due_exists(&mut self, now_ms: i64) -> Result<bool> {
        let st = self.prepared(DUE_SQL)?;
        self.with(|c, _| Ok(c.query_opt(&st, &[&now_ms])?.is_some()))
    }

    fn job_claim(&mut self, p: &ClaimParams<'_>) -> Result<Option<Job>> {
        let st = self.prepared(&CLAIM_SQL)?;
        let lease_until = p.now_ms + p.lease_ms;
        self.claiming(p.worker_id, None, p.now_ms, |c| {
            let row = c.query_opt(&st, &[&p.worker_id, &p.now_ms, &lease_until])?;
            row.as_ref().map(job_from_row).transpose()
        })
    }

    fn job_settle(&mut self, p: &SettleParams<'_>) -> Result<Settled> {
        let args = SettleArgs::new(p, &self.policy_for(p.success)?);
        let st = self.prepared(&SETTLE_SQL)?;
        self.with(|c, _| Ok(args.outcome(c.query_one(&st, &args.params())?.get(0))))
    }

    fn job_settle_and_claim(&mut self, s: &SettleParams<'_>, p: &ClaimParams<'_>) -> Result<(Settled, Option<Job>)> {
        let args = SettleArgs::new(s, &self.policy_for(s.success)?);
        let st = self.prepared(&SETTLE_AND_CLAIM_SQL)?;
        let lease_until = p.now_ms + p.lease_ms;
        self.claiming(p.worker_id, Some(s.id), p.now_ms, |c| {
            let mut params: Vec<&(dyn ToSql + Sync)> = args.params().to_vec();
            params.extend_from_slice(&[&p.worker_id, &p.now_ms, &lease_until]);
            let row = c.query_one(&st, &params)?;
            let settled = args.outcome(row.try_get(17)?);
            let claimed = row.try_get::<_, Option<String>>(0)?.is_some();
            Ok((settled, if claimed { Some(job_from_row(&row)?) } else { None }))
        })
    }

    fn job_requeue(&mut self, id: &str, attempt: u32, worker_id: &str, now_ms: i64) -> Result<bool> {
        let attempt = i64::from(attempt);
        self.with(|c, channel| {
            let n = c.execute(
                "UPDATE jobs SET state = 'pending', attempts = attempts - 1, runs = runs - 1, worker_id = NULL,
                     lease_expires_ms = NULL, started_at_ms = NULL, updated_at_ms = $4
                 WHERE id = $1 AND state = 'processing' AND attempts = $2 AND worker_id = $3",
                &[&id, &attempt, &worker_id, &now_ms],
            )?;
            if n == 1 {
                notify(c, channel)?;
            }
            Ok(n == 1)
        })
    }

    fn job_rescue_expired(&mut self, now_ms: i64) -> Result<Vec<(String, u32)>> {
        let any = self.with(|c, _| {
            Ok(c.query_opt(
                "SELECT 1 FROM jobs WHERE state = 'processing' AND lease_expires_ms < $1 LIMIT 1",
                &[&now_ms],
            )?
            .is_some())
        })?;
        if !any {
            return Ok(Vec::new());
        }
        let policy = self.backoff_policy()?;
        let settle = self.prepared(&SETTLE_SQL)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            // SKIP LOCKED: two hosts rescuing at once split the expired jobs between them.
            let expired = tx.query(
                "SELECT id, attempts, worker_id, max_retries FROM jobs
                 WHERE state = 'processing' AND lease_expires_ms < $1 FOR UPDATE SKIP LOCKED",
                &[&now_ms],
            )?;
            let mut rescued = Vec::new();
            for r in &expired {
                let (id, attempt, worker_id): (String, i64, Option<String>) = (r.get(0), r.get(1), r.get(2));
                let worker_id = worker_id.unwrap_or_default();
                let p = SettleParams {
                    id: &id,
                    attempt: u32_of(attempt),
                    max_retries: u32_of(r.get(3)),
                    worker_id: &worker_id,
                    now_ms,
                    success: false,
                    exit_code: None,
                    error: Some(format!("worker {worker_id} was lost (its lease expired)")),
                    output_tail: String::new(),
                };
                let args = SettleArgs::new(&p, &policy);
                if args.outcome(tx.query_one(&settle, &args.params())?.get(0)) != Settled::Fenced {
                    rescued.push((id, u32_of(attempt)));
                }
            }
            if !rescued.is_empty() {
                notify(&mut tx, channel)?;
            }
            tx.commit()?;
            Ok(rescued)
        })
    }

    fn job_get(&mut self, id: &str) -> Result<Job> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1");
        let row = self.with(|c, _| Ok(c.query_opt(&sql, &[&id])?))?;
        row.as_ref().map(job_from_row).transpose()?.ok_or_else(|| Error::NotFound(id.to_string()))
    }

    fn job_list(&mut self, state: Option<JobState>, limit: Option<u64>) -> Result<Vec<Job>> {
        let limit = limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let rows = self.with(|c, _| {
            Ok(match state {
                Some(state) => c.query(
                    &format!("SELECT {JOB_COLS} FROM jobs WHERE state = $1 ORDER BY seq LIMIT $2"),
                    &[&state.as_str(), &limit],
                )?,
                None => c.query(&format!("SELECT {JOB_COLS} FROM jobs ORDER BY seq LIMIT $1"), &[&limit])?,
            })
        })?;
        jobs_from(rows)
    }

    fn job_count_by_state(&mut self) -> Result<Vec<(JobState, u64)>> {
        let rows = self.with(|c, _| Ok(c.query("SELECT state, count(*) FROM jobs GROUP BY state", &[])?))?;
        let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        for r in &rows {
            let state = state_of(r.get(0))?;
            let n: i64 = r.get(1);
            if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
                slot.1 = n as u64;
            }
        }
        Ok(counts)
    }

    fn job_attempts(&mut self, id: &str) -> Result<Vec<Attempt>> {
        let rows = self.with(|c, _| {
            if c.query_opt("SELECT 1 FROM jobs WHERE id = $1", &[&id])?.is_none() {
                return Err(Error::NotFound(id.to_string()));
            }
            Ok(c.query(
                "SELECT a.attempt, a.worker_id, a.started_at_ms, a.finished_at_ms, a.exit_code, a.error, a.outcome,
                        a.output_tail, a.run
                 FROM attempts a JOIN jobs j ON j.seq = a.job_seq WHERE j.id = $1
                 UNION ALL
                 SELECT attempts, worker_id, started_at_ms, finished_at_ms, exit_code, last_error, state,
                        coalesce(output_tail, ''), runs
                 FROM jobs WHERE id = $1 AND state = 'completed'
                 ORDER BY 9",
                &[&id],
            )?)
        })?;
        rows.iter()
            .map(|r| {
                Ok(Attempt {
                    attempt: u32_of(r.try_get(0)?),
                    worker_id: r.try_get(1)?,
                    started_at_ms: r.try_get(2)?,
                    finished_at_ms: r.try_get::<_, Option<i64>>(3)?.unwrap_or_default(),
                    exit_code: r.try_get(4)?,
                    error: r.try_get(5)?,
                    outcome: state_of(r.try_get(6)?)?,
                    output_tail: r.try_get(7)?,
                })
            })
            .collect()
    }

    fn job_purge(&mut self, state: JobState, cutoff_ms: Option<i64>) -> Result<Vec<String>> {
        if !matches!(state, JobState::Completed | JobState::Dead) {
            return Err(Error::InvalidInput("only completed or dead jobs can be purged".into()));
        }
        let cutoff = cutoff_ms.unwrap_or(i64::MAX);
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            let rows = tx.query(
                "DELETE FROM jobs WHERE state = $1 AND updated_at_ms <= $2 RETURNING id, seq",
                &[&state.as_str(), &cutoff],
            )?;
            let seqs: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
            tx.execute("DELETE FROM attempts WHERE job_seq = ANY($1)", &[&seqs])?;
            tx.commit()?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn dead_retry(&mut self, ids: &[String], now_ms: i64) -> Result<u64> {
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            for id in ids {
                let row = tx.query_opt("SELECT state FROM jobs WHERE id = $1 FOR UPDATE", &[id])?;
                match row.as_ref().map(|r| r.get::<_, String>(0)).as_deref() {
                    None => return Err(Error::NotFound(id.clone())),
                    Some("dead") => {}
                    Some(s) => return Err(Error::InvalidState(format!("job {id:?} is not in the DLQ (it is {s})"))),
                }
                tx.execute(
                    "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = $2, updated_at_ms = $2,
                         worker_id = NULL, lease_expires_ms = NULL WHERE id = $1",
                    &[id, &now_ms],
                )?;
            }
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(ids.len() as u64)
        })
    }

    fn dead_retry_all(&mut self, now_ms: i64) -> Result<u64> {
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = $1, updated_at_ms = $1,
                     worker_id = NULL, lease_expires_ms = NULL WHERE state = 'dead'",
                &[&now_ms],
            )?;
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn config_get(&mut self, key: &str) -> Result<Option<String>> {
        self.with(|c, _| Ok(c.query_opt("SELECT value FROM config WHERE key = $1", &[&key])?.map(|r| r.get(0))))
    }

    fn config_set(&mut self, key: &str, value: &str, now_ms: i64) -> Result<()> {
        self.with(|c, _| {
            c.execute(
                "INSERT INTO config (key, value, updated_at_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
                &[&key, &value, &now_ms],
            )?;
            Ok(())
        })
    }

    fn config_list(&mut self) -> Result<Vec<(String, String)>> {
        let rows = self.with(|c, _| Ok(c.query("SELECT key, value FROM config ORDER BY key", &[])?))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn worker_register(&mut self, id: &str, host: &str, pid: u32, lease_ms: i64, now_ms: i64) -> Result<()> {
        let pid = i64::from(pid);
        self.with(|c, _| {
            // The WHERE leaves a registration that is still running alone: 0 rows, an error.
            let n = c.execute(
                "INSERT INTO workers (id, host, pid, state, started_at_ms, heartbeat_ms, lease_ms)
                 VALUES ($1, $2, $3, 'running', $4, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, state = 'running',
                     started_at_ms = excluded.started_at_ms, heartbeat_ms = excluded.heartbeat_ms,
                     lease_ms = excluded.lease_ms, stop_requested = 0, exited_at_ms = NULL
                 WHERE workers.state = 'exited'",
                &[&id, &host, &pid, &now_ms, &lease_ms],
            )?;
            if n == 0 {
                return Err(Error::InvalidState(format!("worker {id} is already registered")));
            }
            Ok(())
        })
    }

    fn worker_heartbeat(&mut self, id: &str, now_ms: i64) -> Result<Option<u8>> {
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            let row = tx.query_opt(
                "UPDATE workers SET heartbeat_ms = $2 WHERE id = $1 AND state != 'exited'
                 RETURNING stop_requested, lease_ms",
                &[&id, &now_ms],
            )?;
            let Some(row) = row else {
                tx.commit()?;
                return Ok(None);
            };
            let (stop, lease_ms): (i16, i64) = (row.get(0), row.get(1));
            let until = now_ms + lease_ms;
            tx.execute(
                "UPDATE jobs SET lease_expires_ms = $2 WHERE worker_id = $1 AND state = 'processing'",
                &[&id, &until],
            )?;
            tx.commit()?;
            Ok(Some(u8::try_from(stop).unwrap_or(0)))
        })
    }

    fn worker_exit(&mut self, id: &str, now_ms: i64) -> Result<()> {
        self.with(|c, _| {
            c.execute(
                "UPDATE workers SET state = 'exited', heartbeat_ms = $2, exited_at_ms = $2 WHERE id = $1",
                &[&id, &now_ms],
            )?;
            Ok(())
        })
    }

    fn worker_list(&mut self, include_exited: bool) -> Result<Vec<WorkerRow>> {
        let sql = format!(
            "SELECT {WORKER_COLS} FROM workers w
             LEFT JOIN jobs j ON j.state = 'processing' AND j.worker_id = w.id
             WHERE $1 OR w.state != 'exited' ORDER BY w.started_at_ms DESC, w.id"
        );
        let rows = self.with(|c, _| Ok(c.query(&sql, &[&include_exited])?))?;
        rows.iter().map(worker_from_row).collect()
    }

    fn worker_request_stop(&mut self, level: u8, host: Option<&str>) -> Result<u64> {
        let level = i16::from(level);
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE workers SET stop_requested = greatest(stop_requested, $1)
                 WHERE state != 'exited' AND ($2::text IS NULL OR host = $2)",
                &[&level, &host],
            )?;
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn worker_reap(&mut self, now_ms: i64) -> Result<u64> {
        self.with(|c, _| {
            Ok(c.execute(
                "UPDATE workers SET state = 'exited', exited_at_ms = $1
                 WHERE state != 'exited' AND heartbeat_ms + lease_ms < $1",
                &[&now_ms],
            )?)
        })
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

    fn schema_version(&mut self) -> Result<i64> {
        self.with(|c, _| Ok(c.query_one("SELECT max(version) FROM queuectl_schema", &[])?.get(0)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgresql://u:secret@db.example/q"), "postgresql://u@db.example/q");
        assert_eq!(redact("postgresql://db.example/q"), "postgresql://db.example/q");
        assert_eq!(redact("host=db password=secret dbname=q"), "host=db dbname=q");
    }

    #[test]
    fn verify_modes_become_require_with_checks() {
        let (c, verify) = parse_location("postgresql://u@h/db?sslmode=verify-full").unwrap();
        assert!(verify);
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        let (c, verify) = parse_location("postgresql://u@h/db").unwrap();
        assert!(!verify);
        assert_eq!(c.get_ssl_mode(), SslMode::Prefer);
        assert!(matches!(parse_location("postgresql://u@h/db?sslmode=bogus"), Err(Error::InvalidInput(_))));
    }
}
