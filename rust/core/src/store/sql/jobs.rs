//! Statements on jobs for enqueues, people and maintenance: the insert, reads (one job,
//! a listing, the counts, how many are ahead, the expired leases), the lease renewal, the
//! changes by id (retry, cancel, delete) and the DLQ's retry of every dead job. The claim,
//! the settle and the requeue are in `claim`; the statements per state (SQLite's counts,
//! lists, purges) in `by_state`; the page in `page`.

use super::Sql;
use crate::rules::ByIdChange;
use crate::store::row::job_col;

/// The error a cancelled job records (the cancel and the requeue write it).
pub const CANCELLED_ERROR: &str = "cancelled on request";

/// An insert's conflict target for the unique partial index (the same predicate): a job
/// whose unique key an unfinished job holds is not inserted.
const UNIQUE_CONFLICT: &str = " ON CONFLICT (unique_key)
     WHERE unique_key IS NOT NULL AND state IN ('waiting', 'pending', 'processing', 'failed') DO NOTHING";

/// The unfinished job holding unique key ?1.
pub(crate) const UNIQUE_HOLDER: Sql = shared!(
    "SELECT id FROM jobs
     WHERE unique_key = ?1 AND state IN ('waiting', 'pending', 'processing', 'failed')"
);

/// An occurrence's job: ?1 id, ?2 command, ?3 max retries, ?4 priority, ?5 run at, ?6
/// timeout, ?7 cwd, ?8 now, ?9 env, ?10 queue, ?11 unique key, ?12 to ?15 flow control
/// (key, slots, retry rule, expiry). A job already there with its id (or its unique key)
/// leaves it at that.
pub(crate) const SCHEDULED_INSERT: Sql = shared!(
    "INSERT INTO jobs (id, command, state, max_retries, priority, run_at_ms, timeout_ms, cwd, created_at_ms, updated_at_ms, env, queue, unique_key,
                       flow_key, slots, retry_rule, expires_at_ms)
     VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) ON CONFLICT DO NOTHING"
);

/// The error an expired job records.
pub const EXPIRED_ERROR: &str = "expired";

/// Whether a job not started yet has passed its expiry at ?1 (a read through
/// jobs_expiring, so that the usual answer takes no write lock).
pub(crate) const EXPIRY_DUE: Sql = shared!(
    "SELECT 1 FROM jobs WHERE expires_at_ms IS NOT NULL AND state IN ('waiting', 'pending', 'failed')
         AND expires_at_ms <= ?1 LIMIT 1"
);

/// Cancels the jobs not started yet whose expiry passed at ?1, with
/// [`EXPIRED_ERROR`]. Returns what `dependencies::dependents_step` needs, then the id.
pub(crate) const EXPIRE: Sql = shared!(
    "UPDATE jobs SET state = 'cancelled', last_error = 'expired', waiting_on = 0, finished_at_ms = ?1, updated_at_ms = ?1
     WHERE expires_at_ms IS NOT NULL AND state IN ('waiting', 'pending', 'failed') AND expires_at_ms <= ?1
     RETURNING seq, state, has_dependents, id"
);

/// One job by id: ?1 id.
pub(crate) const GET: Sql = shared!("SELECT ", job_col::LIST, " FROM jobs WHERE id = ?1");

/// Whether job ?1 exists.
pub(crate) const EXISTS: Sql = shared!("SELECT 1 FROM jobs WHERE id = ?1");

/// Back to pending, attempts reset, runnable now: ?1 id, ?2 now. An expiry that has
/// passed is cleared (a retry asks for the job to run). A job that runs after
/// others counts again those that have not completed (a cancelled dependent, retried
/// while they still run, waits for them: [`RETRY_WAIT`]).
pub(crate) const RETRY: Sql = shared!(
    "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = ?2, updated_at_ms = ?2,
     worker_id = NULL, lease_expires_ms = NULL, cancel_requested_ms = NULL,
     expires_at_ms = CASE WHEN expires_at_ms <= ?2 THEN NULL ELSE expires_at_ms END,
     waiting_on = (SELECT count(*) FROM job_deps d JOIN jobs p ON p.seq = d.parent_seq
                   WHERE d.child_seq = jobs.seq AND p.state <> 'completed')
     WHERE id = ?1"
);

/// A retried job with parents still open waits for them: ?1 id.
pub(crate) const RETRY_WAIT: Sql = shared!("UPDATE jobs SET state = 'waiting' WHERE id = ?1 AND waiting_on > 0");

/// Every dead job back to pending: ?1 now.
pub(crate) const DEAD_RETRY_ALL: Sql = shared!(
    "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = ?1, updated_at_ms = ?1,
     worker_id = NULL, lease_expires_ms = NULL, cancel_requested_ms = NULL,
     expires_at_ms = CASE WHEN expires_at_ms <= ?1 THEN NULL ELSE expires_at_ms END WHERE state = 'dead'"
);

/// Cancel, for a processing job: the request its worker reads with its next heartbeat (an
/// earlier request keeps its time). ?1 id, ?2 now.
pub(crate) const CANCEL_RUNNING: Sql = shared!(
    "UPDATE jobs SET cancel_requested_ms = coalesce(cancel_requested_ms, ?2)
     WHERE id = ?1 AND state = 'processing'"
);

/// Cancel, for a job that is not running (waiting for its parents, pending, or failed
/// and waiting for its retry): ?1 id, ?2 now. The store then cancels its dependents
/// (`dependencies::JOB_END`, `dependencies::dependents_step`). The error written is
/// [`CANCELLED_ERROR`].
pub(crate) const CANCEL_WAITING: Sql = shared!(
    "UPDATE jobs SET state = 'cancelled', waiting_on = 0, finished_at_ms = ?2, updated_at_ms = ?2,
         last_error = 'cancelled on request'
     WHERE id = ?1 AND state IN ('waiting', 'pending', 'failed')"
);

/// The job row's delete, the last step of a delete by id: ?1 id.
pub(crate) const DELETE: Sql = shared!("DELETE FROM jobs WHERE id = ?1");

/// One statement of a change by id: its SQL, and whether it takes the time as ?2 (the id
/// is always ?1).
pub(crate) struct ChangeStep {
    pub sql: Sql,
    pub takes_now: bool,
}

/// The statements a change runs for each id, in order (the rules of `crate::rules` were
/// checked first).
pub(crate) fn change_steps(change: ByIdChange) -> Vec<ChangeStep> {
    match change {
        ByIdChange::RetryDead | ByIdChange::Retry => {
            vec![ChangeStep { sql: RETRY, takes_now: true }, ChangeStep { sql: RETRY_WAIT, takes_now: false }]
        }
        ByIdChange::Delete => vec![
            ChangeStep { sql: super::dependencies::DELETE_OF_JOB, takes_now: false },
            ChangeStep { sql: super::attempts::DELETE_OF_JOB, takes_now: false },
            ChangeStep { sql: DELETE, takes_now: false },
        ],
        ByIdChange::Cancel => {
            vec![
                ChangeStep { sql: CANCEL_RUNNING, takes_now: true },
                ChangeStep { sql: CANCEL_WAITING, takes_now: true },
            ]
        }
    }
}

/// SQLite's statements on jobs.
pub(crate) mod sqlite {
    use super::{job_col, UNIQUE_CONFLICT};

    /// The insert of an enqueue, a statement per job: ?1 id, ?2 command, ?3 max retries,
    /// ?4 priority, ?5 run at, ?6 timeout, ?7 cwd, ?8 now, ?9 env, ?10 queue, ?11 unique
    /// key, ?12 how many of its parents have not completed (it waits while any has not),
    /// ?13 to ?16 flow control (key, slots, retry rule, expiry). No row when its unique key
    /// is held.
    pub(crate) const INSERT: &str = text!(
        "INSERT INTO jobs (id, command, state, max_retries, priority, run_at_ms, timeout_ms, cwd, created_at_ms, updated_at_ms, env, queue, unique_key, waiting_on,
                           flow_key, slots, retry_rule, expires_at_ms)
         VALUES (?1, ?2, CASE WHEN ?12 > 0 THEN 'waiting' ELSE 'pending' END, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12,
                 ?13, ?14, ?15, ?16)",
        UNIQUE_CONFLICT
    );

    /// Every job in enqueue order, optionally of queue ?2 (NULL: all), at most ?1 (-1: no
    /// limit). The listings of one state are in `by_state`.
    pub(crate) const LIST_ALL_STATES: &str =
        text!("SELECT ", job_col::LIST, " FROM jobs WHERE ?2 IS NULL OR queue = ?2 ORDER BY seq LIMIT ?1");

    /// The newest job's seq (NULL: no job).
    pub(crate) const MAX_SEQ: &str = "SELECT max(seq) FROM jobs";
    /// The oldest job's seq (NULL: no job).
    pub(crate) const MIN_SEQ: &str = "SELECT min(seq) FROM jobs";

    /// Every job: SQLite's count of the cells of jobs_all, page by page (about 8 ms for a
    /// million jobs here; walking a million index entries takes 45). Completed jobs, in no
    /// index, are this total minus the rest.
    pub(crate) const COUNT_ALL: &str = "SELECT count(*) FROM jobs INDEXED BY jobs_all";

    /// How many due jobs of its queue a claim would take before job ?1 at time ?2 (higher
    /// priority, or the same priority and enqueued earlier); no row when there is no such
    /// job. The runnable jobs are read through jobs_due, the index that holds them.
    pub(crate) const AHEAD: &str = "SELECT (SELECT count(*) FROM jobs o INDEXED BY jobs_due
         WHERE o.queue = j.queue AND o.state IN ('pending', 'failed') AND o.run_at_ms <= ?2
           AND (o.priority > j.priority OR (o.priority = j.priority AND o.seq < j.seq)))
     FROM jobs j WHERE j.id = ?1";

    /// Jobs whose lease ran out before ?1, through the small index of processing jobs: a
    /// heartbeat runs this every second.
    pub(crate) const EXPIRED: &str =
        "SELECT id, attempts, max_retries, worker_id, lease_expires_ms, retry_rule FROM jobs INDEXED BY jobs_processing
     WHERE state = 'processing' AND lease_expires_ms < ?1 ORDER BY seq";

    /// The renewal of a worker's lease with its heartbeat, through the index of processing
    /// jobs: ?1 worker, ?2 new lease end. Returns, per job, when its cancel was asked for
    /// (NULL: not).
    pub(crate) const LEASE_RENEW: &str = "UPDATE jobs INDEXED BY jobs_processing SET lease_expires_ms = ?2 WHERE worker_id = ?1 AND state = 'processing' RETURNING cancel_requested_ms";

    /// The state of job ?1 (the write lock of `BEGIN IMMEDIATE` holds it still).
    pub(crate) const STATE: &str = "SELECT state FROM jobs WHERE id = ?1";
}

/// PostgreSQL's statements on jobs.
pub(crate) mod postgres {
    use super::{job_col, UNIQUE_CONFLICT};

    /// The columns an enqueue writes, in the order of `COPY_IN` and of the store's
    /// `INSERT_TYPES`.
    pub(crate) const INSERT_COLUMNS: &str = "id, command, state, max_retries, priority, run_at_ms, timeout_ms, cwd, \
         created_at_ms, updated_at_ms, env, queue, flow_key, slots, retry_rule, expires_at_ms";

    /// A batch with no unique key and no dependency: every row in one binary stream.
    pub(crate) const COPY_IN: &str = text!("COPY jobs (", INSERT_COLUMNS, ") FROM STDIN (FORMAT binary)");

    /// The insert of a job of a batch with unique keys or dependencies: $1 id, $2
    /// command, $3 max retries, $4 priority, $5 run at, $6 timeout, $7 cwd, $8 now, $9 env,
    /// $10 queue, $11 unique key, $12 how many of its parents have not completed, $13 to
    /// $16 flow control (key, slots, retry rule, expiry). Returns its seq; no row when its
    /// unique key is held.
    pub(crate) const INSERT: &str = text!(
        "INSERT INTO jobs (",
        INSERT_COLUMNS,
        ", unique_key, waiting_on)
                 VALUES ($1, $2, CASE WHEN CAST($12 AS BIGINT) > 0 THEN 'waiting' ELSE 'pending' END,
                         $3, $4, $5, $6, $7, $8, $8, $9, $10, $13, $14, $15, $16, $11, $12)",
        UNIQUE_CONFLICT,
        " RETURNING seq"
    );

    /// Jobs in enqueue order, optionally of state $1 and of queue $2 (NULL: any), at most
    /// $3 (NULL: all). jobs_state (state, seq) holds every state in seq order.
    pub(crate) const LIST: &str = text!(
        "SELECT ",
        job_col::LIST,
        " FROM jobs WHERE (CAST($1 AS TEXT) IS NULL OR state = $1) AND (CAST($2 AS TEXT) IS NULL OR queue = $2)
                 ORDER BY seq LIMIT $3"
    );

    /// The newest and the oldest job's seq (NULL: no job).
    pub(crate) const SEQ_BOUNDS: &str = "SELECT max(seq), min(seq) FROM jobs";

    /// The jobs of each state.
    pub(crate) const COUNT_BY_STATE: &str = "SELECT state, count(*) FROM jobs GROUP BY state";

    /// How many due jobs of its queue a claim would take before job $1 at time $2 (higher
    /// priority, or the same priority and enqueued earlier); no row when there is no such
    /// job.
    pub(crate) const AHEAD: &str = "SELECT (SELECT count(*) FROM jobs o
         WHERE o.queue = j.queue AND o.state IN ('pending', 'failed') AND o.run_at_ms <= $2
           AND (o.priority > j.priority OR (o.priority = j.priority AND o.seq < j.seq)))
     FROM jobs j WHERE j.id = $1";

    /// Jobs whose lease ran out before $1.
    pub(crate) const EXPIRED: &str =
        "SELECT id, attempts, max_retries, worker_id, lease_expires_ms, retry_rule FROM jobs
     WHERE state = 'processing' AND lease_expires_ms < $1 ORDER BY seq";

    /// The state of job $1, its row locked until the change by id commits.
    pub(crate) const STATE_LOCKED: &str = "SELECT state FROM jobs WHERE id = $1 FOR UPDATE";

    /// Deletes the jobs of state $1 last changed at or before $2: their ids and seqs.
    pub(crate) const PURGE: &str = "DELETE FROM jobs WHERE state = $1 AND updated_at_ms <= $2 RETURNING id, seq";
}

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    super::Texts {
        shared: vec![
            EXPIRY_DUE,
            EXPIRE,
            UNIQUE_HOLDER,
            SCHEDULED_INSERT,
            GET,
            EXISTS,
            RETRY,
            RETRY_WAIT,
            DEAD_RETRY_ALL,
            CANCEL_RUNNING,
            CANCEL_WAITING,
            DELETE,
        ],
        sqlite: vec![
            sqlite::INSERT,
            sqlite::LIST_ALL_STATES,
            sqlite::MAX_SEQ,
            sqlite::MIN_SEQ,
            sqlite::COUNT_ALL,
            sqlite::AHEAD,
            sqlite::EXPIRED,
            sqlite::LEASE_RENEW,
            sqlite::STATE,
        ],
        postgres: vec![
            postgres::INSERT_COLUMNS,
            postgres::COPY_IN,
            postgres::INSERT,
            postgres::LIST,
            postgres::SEQ_BOUNDS,
            postgres::COUNT_BY_STATE,
            postgres::AHEAD,
            postgres::EXPIRED,
            postgres::STATE_LOCKED,
            postgres::PURGE,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cancel_writes_the_cancelled_error() {
        assert!(CANCEL_WAITING.sqlite.contains(&format!("'{CANCELLED_ERROR}'")));
    }

    #[test]
    fn the_dialects_ahead_and_expired_differ_only_in_the_index() {
        let dollars = |s: &str| s.replace("?1", "$1").replace("?2", "$2");
        assert_eq!(dollars(sqlite::AHEAD).replace(" INDEXED BY jobs_due", ""), postgres::AHEAD);
        assert_eq!(dollars(sqlite::EXPIRED).replace(" INDEXED BY jobs_processing", ""), postgres::EXPIRED);
    }
}
