//! Statements on workers: registration, heartbeat, exit, stop requests, the list, and the
//! reaping of workers whose heartbeat is older than their lease. A worker is busy while a
//! job is processing under its id; `state` stores only whether it has exited, so claims
//! and settles never write the workers table.

use super::Sql;

/// ?1 id, ?2 host, ?3 pid, ?4 now, ?5 lease, ?6 its queues (comma-separated, NULL: all),
/// ?7 the slots of its process.
/// The WHERE leaves a registration that is still running alone: 0 rows, an error.
pub(crate) const REGISTER: Sql = shared!(
    "INSERT INTO workers (id, host, pid, state, started_at_ms, heartbeat_ms, lease_ms, queues, slots)
     VALUES (?1, ?2, ?3, 'running', ?4, ?4, ?5, ?6, ?7)
     ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, state = 'running',
         started_at_ms = excluded.started_at_ms, heartbeat_ms = excluded.heartbeat_ms,
         lease_ms = excluded.lease_ms, stop_requested = 0, exited_at_ms = NULL, queues = excluded.queues,
         slots = excluded.slots
     WHERE workers.state = 'exited'"
);

/// A heartbeat: ?1 id, ?2 now. Returns the stop level asked for and the lease; no row
/// when the worker is not registered.
pub(crate) const BEAT: Sql = shared!(
    "UPDATE workers SET heartbeat_ms = ?2 WHERE id = ?1 AND state <> 'exited'
     RETURNING CAST(stop_requested AS BIGINT), lease_ms"
);

/// Worker ?1 exits at ?2.
pub(crate) const EXIT: Sql =
    shared!("UPDATE workers SET state = 'exited', heartbeat_ms = ?2, exited_at_ms = ?2 WHERE id = ?1");

/// ?1 level, ?2 host or NULL for every host, ?3 one worker's id or NULL for all; a request
/// never lowers an earlier one.
pub(crate) const STOP: Sql = shared!(
    "UPDATE workers SET stop_requested = CASE WHEN stop_requested > ?1 THEN stop_requested ELSE ?1 END
     WHERE state <> 'exited' AND (CAST(?2 AS TEXT) IS NULL OR host = ?2) AND (CAST(?3 AS TEXT) IS NULL OR id = ?3)"
);

/// Marks the workers silent at ?1 (heartbeat older than their lease) as exited.
pub(crate) const REAP: Sql = shared!(
    "UPDATE workers SET state = 'exited', exited_at_ms = ?1 WHERE state <> 'exited' AND heartbeat_ms + lease_ms < ?1"
);

/// SQLite's statements on workers.
pub(crate) mod sqlite {
    /// Registered workers, newest first (?1: with those that exited), each with the job
    /// processing under it, found through jobs_processing.
    pub(crate) const LIST: &str = "SELECT w.id, w.host, w.pid,
             CASE WHEN w.state = 'exited' THEN 'exited' WHEN j.id IS NOT NULL THEN 'busy' ELSE 'idle' END,
             j.id, w.started_at_ms, w.heartbeat_ms, w.lease_ms, CAST(w.stop_requested AS BIGINT), w.exited_at_ms,
             w.queues, w.slots
         FROM workers w LEFT JOIN jobs j INDEXED BY jobs_processing ON j.state = 'processing' AND j.worker_id = w.id
         WHERE ?1 OR w.state <> 'exited' ORDER BY w.started_at_ms DESC, w.id";

    /// Whether any worker is silent at ?1 (as [`super::REAP`] finds them): a read, so that
    /// the usual answer takes no write lock.
    pub(crate) const ANY_SILENT: &str =
        "SELECT 1 FROM workers WHERE state <> 'exited' AND heartbeat_ms + lease_ms < ?1 LIMIT 1";

    /// A backup's copy: every worker it lists exited at ?1, its stop request cleared.
    pub(crate) const EXIT_ALL: &str =
        "UPDATE workers SET state = 'exited', exited_at_ms = ?1, stop_requested = 0 WHERE state <> 'exited'";
}

/// PostgreSQL's statements on workers.
pub(crate) mod postgres {
    /// Registered workers, newest first ($1: with those that exited), each with the job
    /// processing under it.
    pub(crate) const LIST: &str = "SELECT w.id, w.host, w.pid,
             CASE WHEN w.state = 'exited' THEN 'exited' WHEN j.id IS NOT NULL THEN 'busy' ELSE 'idle' END,
             j.id, w.started_at_ms, w.heartbeat_ms, w.lease_ms, CAST(w.stop_requested AS BIGINT), w.exited_at_ms,
             w.queues, w.slots
         FROM workers w LEFT JOIN jobs j ON j.state = 'processing' AND j.worker_id = w.id
         WHERE $1 OR w.state <> 'exited' ORDER BY w.started_at_ms DESC, w.id";

    /// The heartbeat in one round trip: [`super::BEAT`] of worker $1 at $2 and the renewal
    /// of its jobs' lease (to $2 plus its lease), in one statement that commits by itself.
    /// No row: the worker is not registered (declared lost). Otherwise its stop request,
    /// its lease, and whether a job it runs was asked to cancel.
    pub(crate) const BEAT_AND_RENEW: &str = "WITH beat AS (
             UPDATE workers SET heartbeat_ms = $2 WHERE id = $1 AND state <> 'exited'
             RETURNING CAST(stop_requested AS BIGINT) AS stop, lease_ms),
         renewed AS (
             UPDATE jobs SET lease_expires_ms = $2 + (SELECT lease_ms FROM beat)
             WHERE worker_id = $1 AND state = 'processing' AND EXISTS (SELECT 1 FROM beat)
             RETURNING cancel_requested_ms)
         SELECT stop, lease_ms, EXISTS (SELECT 1 FROM renewed WHERE cancel_requested_ms IS NOT NULL) FROM beat";
}

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    super::Texts {
        shared: vec![REGISTER, BEAT, EXIT, STOP, REAP],
        sqlite: vec![sqlite::LIST, sqlite::ANY_SILENT, sqlite::EXIT_ALL],
        postgres: vec![postgres::LIST, postgres::BEAT_AND_RENEW],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialects_list_alike() {
        let sqlite = sqlite::LIST.replace(" INDEXED BY jobs_processing", "").replace("?1", "$1");
        assert_eq!(sqlite, postgres::LIST);
    }
}
