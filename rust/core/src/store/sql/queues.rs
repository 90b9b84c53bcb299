//! Statements on queues (their settings: paused, limit) and the counts of their jobs that
//! the queue list reads; a copy between stores moves their rows too. A claim reads the
//! queues table in `claim`.

use super::Sql;
use crate::store::QueueChange;

/// A queue's row as a copy from another store writes it (the source's settings win):
/// ?1 name, ?2 paused, ?3 limit, ?4 changed at.
pub(crate) const COPY: Sql = shared!(
    "INSERT INTO queues (name, paused, max_running, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, max_running = excluded.max_running,
         updated_at_ms = excluded.updated_at_ms"
);

/// Every queue row as [`COPY`] takes it.
pub(crate) const ROWS: Sql = shared!("SELECT name, CAST(paused AS BIGINT), max_running, updated_at_ms FROM queues");

/// The settings of every queue: name, paused, limit.
pub(crate) const SETTINGS: Sql = shared!("SELECT name, CAST(paused AS BIGINT), max_running FROM queues ORDER BY name");

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

/// The statement of a queue change (?1 name, ?2 now, for a limit ?3 the limit), and the
/// value of ?3 when it takes one.
pub(crate) fn change(change: QueueChange) -> (Sql, Option<i64>) {
    match change {
        QueueChange::Pause => (PAUSE, None),
        QueueChange::Resume => (RESUME, None),
        QueueChange::Limit(n) => (LIMIT, Some(i64::try_from(n).unwrap_or(i64::MAX))),
    }
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

    /// The limit of queue $1, its row locked: the claims of a limited queue on every host
    /// take this lock in turn to check the limit again.
    pub(crate) const LIMIT_LOCKED: &str = "SELECT max_running FROM queues WHERE name = $1 FOR UPDATE";

    /// The processing jobs of queue $1 other than job $2 (the claim being checked).
    pub(crate) const RUNNING_OTHERS: &str =
        "SELECT count(*) FROM jobs WHERE queue = $1 AND state = 'processing' AND id <> $2";
}

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    super::Texts {
        shared: vec![COPY, ROWS, SETTINGS, PAUSE, RESUME, LIMIT],
        sqlite: vec![sqlite::ENSURE, sqlite::JOBS],
        postgres: vec![postgres::ENSURE, postgres::COUNTS, postgres::LIMIT_LOCKED, postgres::RUNNING_OTHERS],
    }
}
