//! The hot path's statements on jobs: the claim, the check that a claim would find a job,
//! the fenced settle (alone, with its dependents, and with the next claim), the requeue of
//! a claimed job, and PostgreSQL's release of a claim never confirmed.
//!
//! A claim takes the head of the first open queue with a due job, in name order after the
//! queue of the worker's last job ('' for none), then from the first queue on: queues take
//! turns, so a flood in one cannot starve the others; each arm walks the queues table in
//! key order and stops at the first hit, so a busy claim probes one or two queues however
//! many there are, and a paused or full queue costs a row read. A queue's head is its most
//! urgent due job (priority high to low, then enqueue order) through jobs_due.
//!
//! Every settle is fenced: it applies only while the job is processing the same attempt
//! under the same worker. An attempt whose cancel was asked for ends `cancelled` unless it
//! completed: it is never retried.

use super::Sql;
use crate::store::row::job_col;

/// `job_requeue`: puts a processing job back to pending with its attempt uncounted (a
/// forced stop), fenced: ?1 id, ?2 attempt, ?3 worker, ?4 now. A job whose cancel was
/// asked for ends `cancelled` instead, with [`super::jobs::CANCELLED_ERROR`]. Returns
/// what `dependencies::dependents_step` needs.
pub(crate) const REQUEUE: Sql = shared!(
    "UPDATE jobs SET state = CASE WHEN cancel_requested_ms IS NULL THEN 'pending' ELSE 'cancelled' END,
         finished_at_ms = CASE WHEN cancel_requested_ms IS NULL THEN finished_at_ms ELSE ?4 END,
         last_error = CASE WHEN cancel_requested_ms IS NULL THEN last_error ELSE 'cancelled on request' END,
         attempts = attempts - 1, runs = runs - 1, worker_id = NULL,
         lease_expires_ms = NULL, started_at_ms = NULL, updated_at_ms = ?4
     WHERE id = ?1 AND state = 'processing' AND attempts = ?2 AND worker_id = ?3
     RETURNING seq, state, has_dependents"
);

/// SQLite's claim and settle. Writes run in `BEGIN IMMEDIATE`: no other claim runs in
/// between, so a queue's limit holds by the count the claim itself reads.
pub(crate) mod sqlite {
    use super::job_col;

    /// A queue's head, as a claim with ?6 free slots at ?2 takes it: its most urgent due
    /// job (priority high to low, then enqueue order) that fits the free slots, has not
    /// expired, and whose key (if any) is below the queue's limit per key (counted through
    /// jobs_keyed). Read through jobs_due, which leads with the queue and holds every
    /// column tested here: `INDEXED BY` because without statistics the planner preferred
    /// other indexes and sorted every runnable row.
    const HEAD: &str = "(SELECT d.seq FROM jobs d INDEXED BY jobs_due
             WHERE d.queue = q.name AND d.state IN ('pending', 'failed') AND d.run_at_ms <= ?2
               AND d.slots <= ?6 AND (d.expires_at_ms IS NULL OR d.expires_at_ms > ?2)
               AND (d.flow_key IS NULL OR q.key_limit = 0
                    OR q.key_limit > (SELECT count(*) FROM jobs k INDEXED BY jobs_keyed
                                      WHERE k.state = 'processing' AND k.queue = q.name AND k.flow_key = d.flow_key))
             ORDER BY d.priority DESC, d.seq LIMIT 1)";

    /// Whether queue q may be claimed from at ?2: not paused, among the worker's queues
    /// (?4, a JSON array; NULL: all), below its limit (its processing jobs counted through
    /// jobs_processing, which holds one row per busy worker), and below its rate (its
    /// rate_n-th latest start, one row of queue_starts, is out of the period).
    const OPEN: &str = "q.paused = 0
               AND (?4 IS NULL OR q.name IN (SELECT value FROM json_each(?4)))
               AND (q.max_running = 0 OR q.max_running > (SELECT count(*) FROM jobs r INDEXED BY jobs_processing
                                                          WHERE r.state = 'processing' AND r.queue = q.name))
               AND (q.rate_n = 0 OR NOT EXISTS (SELECT 1 FROM queue_starts s
                                                WHERE s.queue = q.name AND s.n = (SELECT max(m.n) FROM queue_starts m WHERE m.queue = q.name) - q.rate_n + 1
                                                  AND s.at_ms > ?2 - q.rate_period_ms))";

    /// The claim, one statement: ?1 worker, ?2 now, ?3 lease end, ?4 the worker's queues
    /// (a JSON array; NULL: all), ?5 the queue of its last job ('' for none), ?6 the slots
    /// its process has free. Returns the job claimed, then its queue's rate period when
    /// the queue has a rate (the store then records the start). A queue may be claimed
    /// from when [`OPEN`]; its [`HEAD`] is the job.
    pub(crate) const CLAIM: &str = text!(
        "UPDATE jobs SET state = 'processing', attempts = attempts + 1, runs = runs + 1, worker_id = ?1,
             started_at_ms = ?2, finished_at_ms = NULL, exit_code = NULL, last_error = NULL,
             lease_expires_ms = ?3, updated_at_ms = ?2
         WHERE seq = (
             SELECT seq FROM (
                 SELECT ",
        HEAD,
        " AS seq
                 FROM queues q
                 WHERE q.name > ?5 AND ",
        OPEN,
        " AND ",
        HEAD,
        " IS NOT NULL
                 ORDER BY q.name LIMIT 1)
             UNION ALL
             SELECT seq FROM (
                 SELECT ",
        HEAD,
        " AS seq
                 FROM queues q
                 WHERE q.name <= ?5 AND ",
        OPEN,
        " AND ",
        HEAD,
        " IS NOT NULL
                 ORDER BY q.name LIMIT 1)
             LIMIT 1)
         RETURNING ",
        job_col::LIST,
        ", (SELECT rate_period_ms FROM queues WHERE name = jobs.queue AND rate_n > 0)"
    );

    /// Whether a claim would find a job (any queue open as [`CLAIM`] opens it with a
    /// head): ?2 now, ?4 the worker's queues, ?6 its free slots (?1, ?3 and ?5 are bound
    /// to NULL, unread).
    pub(crate) const DUE: &str = text!("SELECT 1 FROM queues q WHERE ", OPEN, " AND ", HEAD, " IS NOT NULL LIMIT 1");

    /// The fenced settle: ?1 id, ?2 attempt, ?3 worker, ?4 state, ?5 run at, ?6 now, ?7
    /// exit code, ?8 error, ?9 the tail a completed job keeps in its row, ?10 for a rescue
    /// the time the lease must still have run out by (NULL otherwise). Returns seq, started
    /// at, run, the state written, and whether any job runs after it; the store then
    /// writes the attempt's history row (`attempts::sqlite::INSERT`) and what its
    /// dependents need.
    pub(crate) const SETTLE: &str =
        "UPDATE jobs SET state = CASE WHEN cancel_requested_ms IS NULL OR ?4 = 'completed' THEN ?4 ELSE 'cancelled' END,
             run_at_ms = ?5, finished_at_ms = ?6, updated_at_ms = ?6,
             exit_code = ?7, last_error = ?8, lease_expires_ms = NULL, output_tail = ?9
         WHERE id = ?1 AND state = 'processing' AND attempts = ?2 AND worker_id = ?3
           AND (CAST(?10 AS BIGINT) IS NULL OR lease_expires_ms < ?10)
         RETURNING seq, started_at_ms, runs, state, has_dependents";

    /// A backup's copy: every processing job back to pending with its attempt uncounted
    /// (in the copy it has no worker), as [`super::REQUEUE`] does, at ?1.
    pub(crate) const REQUEUE_ALL: &str =
        "UPDATE jobs SET state = CASE WHEN cancel_requested_ms IS NULL THEN 'pending' ELSE 'cancelled' END,
         finished_at_ms = CASE WHEN cancel_requested_ms IS NULL THEN finished_at_ms ELSE ?1 END,
         last_error = CASE WHEN cancel_requested_ms IS NULL THEN last_error ELSE 'cancelled on request' END,
         attempts = attempts - 1, runs = runs - 1, worker_id = NULL,
         lease_expires_ms = NULL, started_at_ms = NULL, updated_at_ms = ?1
     WHERE state = 'processing'";
}

/// PostgreSQL's claim and settles. A claim is one `UPDATE ... WHERE seq = (SELECT ... FOR
/// UPDATE SKIP LOCKED)`: concurrent claimers skip each other's rows instead of queueing
/// on them. Which queues may be claimed from: not paused, among the worker's (a text
/// array, NULL: every queue), not excluded (the queues a claim already found full), below
/// its limit by the count of this statement's snapshot. That count can be stale when two
/// claims race: a claim in a limited queue is checked again under the queue's row lock
/// (`queues::postgres::RULES_LOCKED`).
pub(crate) mod postgres {
    use super::job_col;

    /// A queue's head, as a claim with $7 free slots at $2 takes it (as SQLite's `HEAD`),
    /// locked, skipping rows other claims hold.
    const HEAD: &str = "SELECT d.seq FROM jobs d
                  WHERE d.queue = q.name AND d.state IN ('pending', 'failed') AND d.run_at_ms <= $2
                    AND d.slots <= $7 AND (d.expires_at_ms IS NULL OR d.expires_at_ms > $2)
                    AND (d.flow_key IS NULL OR q.key_limit = 0
                         OR q.key_limit > (SELECT count(*) FROM jobs k
                                           WHERE k.state = 'processing' AND k.queue = q.name AND k.flow_key = d.flow_key))
                  ORDER BY d.priority DESC, d.seq LIMIT 1 FOR UPDATE SKIP LOCKED";

    /// Whether queue q may be claimed from at $2 (as SQLite's `OPEN`), not left out ($5).
    const OPEN: &str = "q.paused = 0 AND (CAST($4 AS TEXT[]) IS NULL OR q.name = ANY($4))
                AND NOT (q.name = ANY(CAST($5 AS TEXT[])))
                AND (q.max_running = 0 OR q.max_running > (SELECT count(*) FROM jobs r
                                                           WHERE r.queue = q.name AND r.state = 'processing'))
                AND (q.rate_n = 0 OR NOT EXISTS (SELECT 1 FROM queue_starts s
                                                 WHERE s.queue = q.name AND s.n = (SELECT max(m.n) FROM queue_starts m WHERE m.queue = q.name) - q.rate_n + 1
                                                   AND s.at_ms > $2 - q.rate_period_ms))";

    /// Whether the claimed job's queue has a rule a race can break (a limit, a rate, or a
    /// limit per key and the job a key): the store then checks the claim again under the
    /// queue's row lock (`hold_within_rules`).
    const GUARDED: &str =
        ", (SELECT CASE WHEN max_running > 0 OR rate_n > 0 OR (key_limit > 0 AND jobs.flow_key IS NOT NULL)
                    THEN CAST(1 AS BIGINT) ELSE 0 END FROM queues WHERE name = jobs.queue)";

    /// The claim: $1 worker, $2 now, $3 lease end, $4 the worker's queues, $5 the queues
    /// to leave out, $6 the queue of the worker's last job ('' for none), $7 the slots its
    /// process has free. Returns the job and whether its queue is guarded.
    pub(crate) const CLAIM: &str = text!(
        "UPDATE jobs SET state = 'processing', attempts = attempts + 1, runs = runs + 1, worker_id = $1,
             started_at_ms = $2, finished_at_ms = NULL, exit_code = NULL, last_error = NULL,
             lease_expires_ms = $3, updated_at_ms = $2
         WHERE seq = (
             (SELECT c.seq FROM queues q CROSS JOIN LATERAL (",
        HEAD,
        ") c
              WHERE q.name > CAST($6 AS TEXT) AND ",
        OPEN,
        "
              ORDER BY q.name LIMIT 1)
             UNION ALL
             (SELECT c.seq FROM queues q CROSS JOIN LATERAL (",
        HEAD,
        ") c
              WHERE q.name <= CAST($6 AS TEXT) AND ",
        OPEN,
        "
              ORDER BY q.name LIMIT 1)
             LIMIT 1)
         RETURNING ",
        job_col::LIST,
        GUARDED
    );

    /// Whether a claim would find a job: $2 now, $4 the worker's queues, $5 none left out,
    /// $7 its free slots, in [`CLAIM`]'s numbering so that both share [`OPEN`]: $1, $3 and
    /// $6 are bound to NULL and only tested as such (PostgreSQL must see each parameter
    /// to know its type).
    pub(crate) const DUE: &str = text!(
        "SELECT 1 FROM queues q WHERE ", OPEN, " AND EXISTS (",
        "SELECT d.seq FROM jobs d
                  WHERE d.queue = q.name AND d.state IN ('pending', 'failed') AND d.run_at_ms <= $2
                    AND d.slots <= $7 AND (d.expires_at_ms IS NULL OR d.expires_at_ms > $2)
                    AND (d.flow_key IS NULL OR q.key_limit = 0
                         OR q.key_limit > (SELECT count(*) FROM jobs k
                                           WHERE k.state = 'processing' AND k.queue = q.name AND k.flow_key = d.flow_key))",
        ") AND CAST($1 AS TEXT) IS NULL AND CAST($3 AS BIGINT) IS NULL AND CAST($6 AS TEXT) IS NULL LIMIT 1"
    );

    /// The fast settle, of a job nobody runs after: $1 id, $2 attempt, $3 worker, $4
    /// state, $5 run at, $6 now, $7 exit code, $8 error, $9 the tail a completed job keeps
    /// in its row, $10 for a rescue the time the lease must still have run out by (NULL
    /// otherwise), $11 the output tail. `settled` is the fenced update (as SQLite's
    /// `SETTLE`) of a job with no dependents; `history` the attempt's history row unless
    /// the job completed (a completed job keeps its last attempt in its own row, as the
    /// SQLite store does), its outcome the state the update stored (`cancelled` when a
    /// cancel was asked for). A job others run after is left alone (no row, as when
    /// fenced), and [`SETTLE_FULL`] settles it. Returns the state stored.
    pub(crate) const SETTLE: &str = "WITH settled AS (
         UPDATE jobs SET state = CASE WHEN cancel_requested_ms IS NULL OR $4 = 'completed' THEN $4 ELSE 'cancelled' END,
             run_at_ms = $5, finished_at_ms = $6, updated_at_ms = $6,
             exit_code = $7, last_error = $8, lease_expires_ms = NULL, output_tail = $9
         WHERE has_dependents IS NULL AND id = $1 AND state = 'processing' AND attempts = $2 AND worker_id = $3
           AND (CAST($10 AS BIGINT) IS NULL OR lease_expires_ms < $10)
         RETURNING seq, started_at_ms, runs, state, has_dependents),
     history AS (
         INSERT INTO attempts (job_seq, run, attempt, worker_id, started_at_ms, finished_at_ms, exit_code, error, outcome, output_tail)
         SELECT seq, runs, $2, $3, started_at_ms, $6, $7, $8, state, $11 FROM settled WHERE state <> 'completed')
     SELECT (SELECT state FROM settled)";

    /// The settle of any job in one statement ($1 to $11 as [`SETTLE`]): the fenced update
    /// and its history, and for a job others run after, their count-down when it
    /// completed (`released`: the last parent makes each pending) or their cancel down the
    /// chain when it ended otherwise (`doomed`: the waiting dependents, each naming the
    /// parent whose end doomed it, and theirs down the chain; `cascaded` cancels them).
    /// The extra CTEs cost every settle about a sixth of the engine's PostgreSQL
    /// throughput, so only jobs with dependents (and rescues) come here. The dependents
    /// are gathered into arrays (`ARRAY(...)`, `unnest`): joined directly, the planner
    /// sized its hash tables by the edges of the busiest parent (with 200,000 edges one
    /// such settle took 700 ms); an array's estimate is small. Returns the state stored
    /// and how many jobs became pending.
    pub(crate) const SETTLE_FULL: &str = "WITH RECURSIVE settled AS (
         UPDATE jobs SET state = CASE WHEN cancel_requested_ms IS NULL OR $4 = 'completed' THEN $4 ELSE 'cancelled' END,
             run_at_ms = $5, finished_at_ms = $6, updated_at_ms = $6,
             exit_code = $7, last_error = $8, lease_expires_ms = NULL, output_tail = $9
         WHERE id = $1 AND state = 'processing' AND attempts = $2 AND worker_id = $3
           AND (CAST($10 AS BIGINT) IS NULL OR lease_expires_ms < $10)
         RETURNING seq, started_at_ms, runs, state, has_dependents),
     history AS (
         INSERT INTO attempts (job_seq, run, attempt, worker_id, started_at_ms, finished_at_ms, exit_code, error, outcome, output_tail)
         SELECT seq, runs, $2, $3, started_at_ms, $6, $7, $8, state, $11 FROM settled WHERE state <> 'completed'),
     released AS (
         UPDATE jobs SET waiting_on = waiting_on - 1,
             state = CASE WHEN waiting_on <= 1 THEN 'pending' ELSE 'waiting' END, updated_at_ms = $6
         WHERE state = 'waiting'
           AND seq = ANY (ARRAY(SELECT d.child_seq FROM settled s JOIN job_deps d ON d.parent_seq = s.seq
                                WHERE s.has_dependents IS NOT NULL AND s.state = 'completed'))
         RETURNING state),
     doomed(seq, cause, how) AS (
         SELECT c, CAST($1 AS TEXT), CAST((SELECT state FROM settled) AS TEXT)
         FROM unnest(ARRAY(SELECT d.child_seq FROM settled s JOIN job_deps d ON d.parent_seq = s.seq
                           WHERE s.has_dependents IS NOT NULL AND s.state IN ('dead', 'cancelled'))) c
         UNION SELECT d.child_seq, c.id, CAST('cancelled' AS TEXT) FROM doomed JOIN jobs c ON c.seq = doomed.seq
               JOIN job_deps d ON d.parent_seq = c.seq WHERE c.state = 'waiting'),
     cascaded AS (
         UPDATE jobs SET state = 'cancelled', waiting_on = 0, finished_at_ms = $6, updated_at_ms = $6,
             last_error = 'cancelled: it runs after job ' || doomed.cause || ', which ended ' || doomed.how
         FROM doomed WHERE jobs.seq = doomed.seq AND jobs.state = 'waiting')
     SELECT (SELECT state FROM settled), (SELECT count(*) FROM released WHERE state = 'pending')";

    /// [`HEAD`] in [`SETTLE_AND_CLAIM`]'s numbering ($13 now, $18 free slots), the settled
    /// job ($1) left out of the count of its key.
    const HEAD_AFTER_SETTLE: &str = "SELECT d.seq FROM jobs d
                  WHERE d.queue = q.name AND d.state IN ('pending', 'failed') AND d.run_at_ms <= $13
                    AND d.slots <= $18 AND (d.expires_at_ms IS NULL OR d.expires_at_ms > $13)
                    AND (d.flow_key IS NULL OR q.key_limit = 0
                         OR q.key_limit > (SELECT count(*) FROM jobs k
                                           WHERE k.state = 'processing' AND k.queue = q.name AND k.flow_key = d.flow_key AND k.id <> $1))
                  ORDER BY d.priority DESC, d.seq LIMIT 1 FOR UPDATE SKIP LOCKED";

    /// [`OPEN`] in [`SETTLE_AND_CLAIM`]'s numbering ($13 now, $15 the worker's queues, $16
    /// none left out), the settled job ($1) left out of the count of the queue's
    /// processing jobs.
    const OPEN_AFTER_SETTLE: &str = "q.paused = 0 AND (CAST($15 AS TEXT[]) IS NULL OR q.name = ANY($15))
                AND NOT (q.name = ANY(CAST($16 AS TEXT[])))
                AND (q.max_running = 0 OR q.max_running > (SELECT count(*) FROM jobs r
                                                           WHERE r.queue = q.name AND r.state = 'processing' AND r.id <> $1))
                AND (q.rate_n = 0 OR NOT EXISTS (SELECT 1 FROM queue_starts s
                                                 WHERE s.queue = q.name AND s.n = (SELECT max(m.n) FROM queue_starts m WHERE m.queue = q.name) - q.rate_n + 1
                                                   AND s.at_ms > $13 - q.rate_period_ms))";

    /// Settle and claim in one statement, one round trip: what a busy worker does between
    /// jobs. $1 to $11 settle as [`SETTLE`] (a job others run after is left alone); $12 to
    /// $18 claim as [`CLAIM`]'s $1 to $7 (worker, now, lease end, the worker's queues, the
    /// queues to leave out, the queue of its last job, its free slots). The claim's
    /// snapshot still sees the settled job processing, but its place is the one the claim
    /// may take: the counts of a queue's and a key's processing jobs leave it out (`r.id
    /// <> $1`, `k.id <> $1`). Returns one row: the claimed job's columns and whether its
    /// queue is guarded (NULL when none was claimed), then the state the settle stored.
    pub(crate) const SETTLE_AND_CLAIM: &str = text!(
        "WITH settled AS (
         UPDATE jobs SET state = CASE WHEN cancel_requested_ms IS NULL OR $4 = 'completed' THEN $4 ELSE 'cancelled' END,
             run_at_ms = $5, finished_at_ms = $6, updated_at_ms = $6,
             exit_code = $7, last_error = $8, lease_expires_ms = NULL, output_tail = $9
         WHERE has_dependents IS NULL AND id = $1 AND state = 'processing' AND attempts = $2 AND worker_id = $3
           AND (CAST($10 AS BIGINT) IS NULL OR lease_expires_ms < $10)
         RETURNING seq, started_at_ms, runs, state, has_dependents),
     history AS (
         INSERT INTO attempts (job_seq, run, attempt, worker_id, started_at_ms, finished_at_ms, exit_code, error, outcome, output_tail)
         SELECT seq, runs, $2, $3, started_at_ms, $6, $7, $8, state, $11 FROM settled WHERE state <> 'completed'),
     claimed AS (
         UPDATE jobs SET state = 'processing', attempts = attempts + 1, runs = runs + 1, worker_id = $12,
             started_at_ms = $13, finished_at_ms = NULL, exit_code = NULL, last_error = NULL,
             lease_expires_ms = $14, updated_at_ms = $13
         WHERE seq = (
             (SELECT c.seq FROM queues q CROSS JOIN LATERAL (", HEAD_AFTER_SETTLE, ") c
              WHERE q.name > CAST($17 AS TEXT) AND ", OPEN_AFTER_SETTLE, "
              ORDER BY q.name LIMIT 1)
             UNION ALL
             (SELECT c.seq FROM queues q CROSS JOIN LATERAL (", HEAD_AFTER_SETTLE, ") c
              WHERE q.name <= CAST($17 AS TEXT) AND ", OPEN_AFTER_SETTLE, "
              ORDER BY q.name LIMIT 1)
             LIMIT 1)
         RETURNING ",
        job_col::LIST,
        GUARDED,
        ")
     SELECT claimed.*, (SELECT state FROM settled) FROM (VALUES (1)) AS one LEFT JOIN claimed ON true"
    );

    /// A rescue's lock of job $1, taken with SKIP LOCKED while its lease still ran out
    /// before $2: every worker of every host runs rescues, and one that finds the row
    /// taken by another rescuer (or by the worker's own heartbeat) moves on instead of
    /// waiting for it; the fence settles the rest.
    pub(crate) const RESCUE_LOCK: &str =
        "SELECT 1 FROM jobs WHERE id = $1 AND state = 'processing' AND lease_expires_ms < $2 FOR UPDATE SKIP LOCKED";

    /// A claim whose commit was never confirmed: this worker's processing jobs go back to
    /// pending, uncounted (as [`super::REQUEUE`] puts one back), except the one it is
    /// settling ($3). $1 worker, $2 now. Returns what `dependencies::dependents_step`
    /// needs.
    pub(crate) const RELEASE_UNSURE: &str =
        "UPDATE jobs SET state = CASE WHEN cancel_requested_ms IS NULL THEN 'pending' ELSE 'cancelled' END,
         finished_at_ms = CASE WHEN cancel_requested_ms IS NULL THEN finished_at_ms ELSE $2 END,
         last_error = CASE WHEN cancel_requested_ms IS NULL THEN last_error ELSE 'cancelled on request' END,
         attempts = attempts - 1, runs = runs - 1, worker_id = NULL,
         lease_expires_ms = NULL, started_at_ms = NULL, updated_at_ms = $2
     WHERE worker_id = $1 AND state = 'processing' AND id IS DISTINCT FROM $3
     RETURNING seq, state, has_dependents";
}

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    super::Texts {
        shared: vec![REQUEUE],
        sqlite: vec![sqlite::CLAIM, sqlite::DUE, sqlite::SETTLE, sqlite::REQUEUE_ALL],
        postgres: vec![
            postgres::CLAIM,
            postgres::DUE,
            postgres::SETTLE,
            postgres::SETTLE_FULL,
            postgres::SETTLE_AND_CLAIM,
            postgres::RESCUE_LOCK,
            postgres::RELEASE_UNSURE,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sql` with runs of white space made one space, to compare statements written
    /// with other line breaks.
    fn flat(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// `sql` with every `$N` renumbered `$(N + by)`.
    fn shifted(sql: &str, by: u32) -> String {
        let mut out = String::new();
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                out.push_str(&(rest[..digits].parse::<u32>().unwrap() + by).to_string());
                rest = &rest[digits..];
            }
        }
        out + rest
    }

    #[test]
    fn the_settle_and_claim_is_the_settle_then_the_claim() {
        let settle = flat(postgres::SETTLE);
        let ctes = settle.strip_prefix("WITH ").unwrap().strip_suffix(" SELECT (SELECT state FROM settled)").unwrap();
        let claim = flat(&shifted(postgres::CLAIM, 11))
            .replace("r.state = 'processing'))", "r.state = 'processing' AND r.id <> $1))")
            .replace("k.flow_key = d.flow_key))", "k.flow_key = d.flow_key AND k.id <> $1))");
        let expected = format!(
            "WITH {ctes}, claimed AS ( {claim}) SELECT claimed.*, (SELECT state FROM settled) FROM (VALUES (1)) AS one LEFT JOIN claimed ON true"
        );
        assert_eq!(flat(postgres::SETTLE_AND_CLAIM), expected);
    }

    #[test]
    fn every_fenced_update_is_the_same() {
        let sqlite = flat(sqlite::SETTLE).replace('?', "$");
        let update = sqlite.strip_suffix(" RETURNING seq, started_at_ms, runs, state, has_dependents").unwrap();
        assert!(flat(postgres::SETTLE_FULL).contains(update));
        let no_dependents = update.replace("WHERE id = $1", "WHERE has_dependents IS NULL AND id = $1");
        assert!(flat(postgres::SETTLE).contains(&no_dependents));
        assert!(flat(postgres::SETTLE_AND_CLAIM).contains(&no_dependents));
    }

    #[test]
    fn every_requeue_sets_the_same() {
        let set = |sql: &str, now: &str| {
            let sql = flat(sql).replace(now, "NOW");
            sql[..sql.find(" WHERE ").unwrap()].to_string()
        };
        let requeue = set(REQUEUE.sqlite, "?4");
        assert_eq!(set(sqlite::REQUEUE_ALL, "?1"), requeue);
        assert_eq!(set(postgres::RELEASE_UNSURE, "$2"), requeue);
        assert!(requeue.contains(&format!("'{}'", super::super::jobs::CANCELLED_ERROR)));
    }

    #[test]
    fn the_dialects_claim_alike() {
        let set = |sql: &str| {
            let sql = flat(sql);
            sql[..sql.find(" WHERE seq").unwrap()].replace('$', "?")
        };
        assert_eq!(set(sqlite::CLAIM), set(postgres::CLAIM));
        assert!(sqlite::CLAIM.contains(&format!("RETURNING {},", job_col::LIST)));
    }
}
