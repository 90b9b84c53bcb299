//! Statements on attempts, the history of a job's finished attempts (a completed job keeps
//! its last attempt in its own row). PostgreSQL writes the history row inside its settle
//! statements (`claim::postgres`); SQLite's purge of a state's history is in `by_state`.

use super::Sql;

/// The attempts of job ?1, oldest first: the attempts table, then a completed job's last
/// attempt from its own row.
pub(crate) const LIST: Sql = shared!(
    "SELECT a.attempt, a.worker_id, a.started_at_ms, a.finished_at_ms, a.exit_code, a.error, a.outcome,
            a.output_tail, a.run
     FROM attempts a JOIN jobs j ON j.seq = a.job_seq WHERE j.id = ?1
     UNION ALL
     SELECT attempts, worker_id, started_at_ms, finished_at_ms, exit_code, last_error, state,
            coalesce(output_tail, ''), runs
     FROM jobs WHERE id = ?1 AND state = 'completed'
     ORDER BY 9"
);

/// The history of job ?1, deleted with it (a delete by id).
pub(crate) const DELETE_OF_JOB: Sql =
    shared!("DELETE FROM attempts WHERE job_seq = (SELECT seq FROM jobs WHERE id = ?1)");

/// SQLite's statements on attempts.
pub(crate) mod sqlite {
    /// The history row of a settled attempt that did not complete: ?1 seq, ?2 run, ?3
    /// attempt, ?4 worker, ?5 started, ?6 finished, ?7 exit code, ?8 error, ?9 outcome,
    /// ?10 tail.
    pub(crate) const INSERT: &str = "INSERT INTO attempts (job_seq, run, attempt, worker_id, started_at_ms, finished_at_ms, exit_code, error, outcome, output_tail)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
}

/// PostgreSQL's statements on attempts.
pub(crate) mod postgres {
    /// The history of the purged jobs whose seqs are $1 (an array).
    pub(crate) const PURGE: &str = "DELETE FROM attempts WHERE job_seq = ANY($1)";
}

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    super::Texts { shared: vec![LIST, DELETE_OF_JOB], sqlite: vec![sqlite::INSERT], postgres: vec![postgres::PURGE] }
}
