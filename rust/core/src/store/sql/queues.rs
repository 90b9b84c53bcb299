//! Statements on queues (their settings: paused, limit, rate, key limit) and the counts of their jobs that
//! the queue list reads; a copy between stores moves their rows too. A claim reads the
//! queues table in `claim`.

use super::Sql;
use crate::store::QueueChange;

/// A queue's row as a copy from another store writes it (the source's settings win):
/// ?1 name, ?2 paused, ?3 limit, ?4 changed at, ?5 and ?6 its rate (starts, period),
/// ?7 its key limit.
pub(crate) const COPY: Sql = shared!(
    "INSERT INTO queues (name, paused, max_running, updated_at_ms, rate_n, rate_period_ms, key_limit)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, max_running = excluded.max_running,
         updated_at_ms = excluded.updated_at_ms, rate_n = excluded.rate_n,
         rate_period_ms = excluded.rate_period_ms, key_limit = excluded.key_limit"
);

/// Every queue row as [`COPY`] takes it.
pub(crate) const ROWS: Sql = shared!(
    "SELECT name, CAST(paused AS BIGINT), max_running, updated_at_ms, rate_n, rate_period_ms, key_limit FROM queues"
);

/// The settings of every queue: name, paused, limit, rate (starts, period), key limit.
pub(crate) const SETTINGS: Sql = shared!(
    "SELECT name, CAST(paused AS BIGINT), max_running, rate_n, rate_period_ms, key_limit FROM queues ORDER BY name"
);

/// Pauses queue ?1 at ?2 (its row made when new).
pub(crate) const PAUSE: Sql = shared!(
    "INSERT INTO queues (name, paused, updated_at_ms) VALUES (?1, 1, ?2)
             ON CONFLICT (name) DO UPDATE SET paused = 1, updated_at_ms = excluded.updated_at_ms"
);

/// Resumes queue ?1 at ?2 (its row made when new).
pub(crate) const RESUME: Sql = shared!(
    "INSERT INTO queues (name, paused, updated_at_ms) VALUES (?1, 0, ?2)
             ON CONFLICT (name) DO UPDATE SET paused = 0, updated_at_ms = excluded.updated_at_ms"
);

/// Sets queue ?1's limit to ?3 at ?2 (its row made when new).
pub(crate) const LIMIT: Sql = shared!(
    "INSERT INTO queues (name, max_running, updated_at_ms) VALUES (?1, ?3, ?2)
             ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running, updated_at_ms = excluded.updated_at_ms"
);

/// Sets queue ?1's rate to ?3 starts in any ?4 ms at ?2 (0 starts: none). The starts
/// recorded stay: a new rate counts the starts of its window that happened already.
pub(crate) const RATE: Sql = shared!(
    "INSERT INTO queues (name, rate_n, rate_period_ms, updated_at_ms) VALUES (?1, ?3, ?4, ?2)
             ON CONFLICT (name) DO UPDATE SET rate_n = excluded.rate_n, rate_period_ms = excluded.rate_period_ms,
                 updated_at_ms = excluded.updated_at_ms"
);

/// Sets queue ?1's limit per key to ?3 at ?2 (its row made when new).
pub(crate) const KEY_LIMIT: Sql = shared!(
    "INSERT INTO queues (name, key_limit, updated_at_ms) VALUES (?1, ?3, ?2)
             ON CONFLICT (name) DO UPDATE SET key_limit = excluded.key_limit, updated_at_ms = excluded.updated_at_ms"
);

/// The statement of a queue change (?1 name, ?2 now, then what it sets from ?3 on), and
/// the values from ?3 on.
pub(crate) fn change(change: QueueChange) -> (Sql, Vec<i64>) {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    match change {
        QueueChange::Pause => (PAUSE, vec![]),
        QueueChange::Resume => (RESUME, vec![]),
        QueueChange::Limit(v) => (LIMIT, vec![n(v)]),
        QueueChange::Rate { starts, period_ms } => (RATE, vec![n(starts), n(period_ms)]),
        QueueChange::KeyLimit(v) => (KEY_LIMIT, vec![n(v)]),
    }
}

/// The starts of a queue with a rate, numbered per queue: recorded by each claim in it.
/// A window is full when the start numbered `latest - rate_n + 1` (the rate_n-th latest)
/// is within the period; a claim reads the latest's number and that row, however high
/// the rate.
pub(crate) mod starts {
    use super::Sql;

    /// Records a start of queue ?1 at ?2, numbered one past its latest. Returns the number.
    pub(crate) const RECORD: Sql = shared!(
        "INSERT INTO queue_starts (queue, n, at_ms)
         SELECT ?1, coalesce(max(n), 0) + 1, ?2 FROM queue_starts WHERE queue = ?1 RETURNING n"
    );

    /// Every how many starts of a queue [`PRUNE`] runs: a queue keeps at most this many
    /// starts beyond those that can still fill a window.
    pub(crate) const PRUNE_EVERY: i64 = 32;

    /// Drops the starts of queue ?1 older than its last rate_n (?2 is the latest's number)
    /// that also began at or before ?3 minus the period (out of the window): neither can
    /// fill a window again, whatever the rate becomes.
    pub(crate) const PRUNE: Sql = shared!(
        "DELETE FROM queue_starts WHERE queue = ?1
           AND n <= ?2 - (SELECT rate_n FROM queues WHERE name = ?1)
           AND at_ms <= ?3 - (SELECT rate_period_ms FROM queues WHERE name = ?1)"
    );

    /// Queue ?1's rate at time ?2: the starts of its window, and when the window opens again if it is full (the rate_n-th latest start
    /// plus the period; NULL when it has room). No row: no rate.
    pub(crate) const WINDOW: Sql = shared!(
        "SELECT (SELECT count(*) FROM queue_starts s WHERE s.queue = q.name AND s.at_ms > ?2 - q.rate_period_ms),
                (SELECT s.at_ms + q.rate_period_ms FROM queue_starts s
                 WHERE s.queue = q.name AND s.n = (SELECT max(m.n) FROM queue_starts m WHERE m.queue = q.name) - q.rate_n + 1
                   AND s.at_ms > ?2 - q.rate_period_ms)
         FROM queues q WHERE q.name = ?1 AND q.rate_n > 0"
    );

    /// The queues with a rate that are not paused: a worker with nothing to claim sleeps
    /// until the first of their full windows opens.
    pub(crate) const RATED: Sql = shared!("SELECT name FROM queues WHERE rate_n > 0 AND paused = 0 ORDER BY name");

    /// The processing jobs of queue ?1 with key ?2.
    pub(crate) const KEY_RUNNING: Sql =
        shared!("SELECT count(*) FROM jobs WHERE state = 'processing' AND queue = ?1 AND flow_key = CAST(?2 AS TEXT)");
}

/// SQLite's statements on queues. Its counts per state and queue are in `by_state`.
pub(crate) mod sqlite {
    /// Makes sure queue ?1 has its row (the claim walks the queues table): ?2 now.
    pub(crate) const ENSURE: &str =
        "INSERT INTO queues (name, updated_at_ms) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING";

    /// Every queue's jobs, counted as SQLite counts every job: the cells of jobs_all,
    /// which leads with the queue. A queue's completed jobs are this total minus the rest.
    pub(crate) const JOBS: &str = "SELECT queue, count(*) FROM jobs INDEXED BY jobs_all GROUP BY queue";
}

/// PostgreSQL's statements on queues.
pub(crate) mod postgres {
    /// Makes sure the queues $1 (a text array) have their rows: $2 now.
    pub(crate) const ENSURE: &str =
        "INSERT INTO queues (name, updated_at_ms) SELECT unnest($1::text[]), $2 ON CONFLICT (name) DO NOTHING";

    /// The jobs of each queue in each state.
    pub(crate) const COUNTS: &str = "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state";

    /// The rules of queue $1, its row locked: the claims of a guarded queue on every host
    /// take this lock in turn to check its rules again. Returns its limit, its rate's
    /// starts and its limit per key.
    pub(crate) const RULES_LOCKED: &str =
        "SELECT max_running, rate_n, key_limit FROM queues WHERE name = $1 FOR UPDATE";

    /// What the rules of queue $1 count for the claim of job $2 with key $3 (NULL: none)
    /// at $4 (now): its other processing jobs, its other processing jobs with the key, and
    /// whether its rate's window is full.
    pub(crate) const COUNTS_FOR_CLAIM: &str = "SELECT
         (SELECT count(*) FROM jobs WHERE queue = $1 AND state = 'processing' AND id <> $2),
         (SELECT count(*) FROM jobs WHERE queue = $1 AND state = 'processing' AND id <> $2
              AND flow_key = CAST($3 AS TEXT)),
         EXISTS (SELECT 1 FROM queues q JOIN queue_starts s
                   ON s.queue = q.name AND s.n = (SELECT max(m.n) FROM queue_starts m WHERE m.queue = q.name) - q.rate_n + 1
                 WHERE q.name = $1 AND q.rate_n > 0 AND s.at_ms > $4 - q.rate_period_ms)";
}

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    super::Texts {
        shared: vec![
            COPY,
            ROWS,
            SETTINGS,
            PAUSE,
            RESUME,
            LIMIT,
            RATE,
            KEY_LIMIT,
            starts::RECORD,
            starts::PRUNE,
            starts::WINDOW,
            starts::RATED,
            starts::KEY_RUNNING,
        ],
        sqlite: vec![sqlite::ENSURE, sqlite::JOBS],
        postgres: vec![postgres::ENSURE, postgres::COUNTS, postgres::RULES_LOCKED, postgres::COUNTS_FOR_CLAIM],
    }
}
