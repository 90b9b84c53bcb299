//! Statements on dependencies (the job_deps edges, and the jobs' own `waiting_on` and
//! `has_dependents`): a new edge, the count-down when a parent completes, the cancel down
//! the chain when one ends otherwise, the reads the rules need, and [`dependents_step`],
//! which chooses what a job's end asks of its dependents. PostgreSQL's settle does the
//! same inside its one statement (`claim::postgres::SETTLE_FULL`).

use super::Sql;

/// Marks job ?1 as having dependents and reads it (its row locked on PostgreSQL until the
/// enqueue commits, so a settle of it waits and then sees the new edge).
pub(crate) const PARENT_MARK: Sql = shared!("UPDATE jobs SET has_dependents = 1 WHERE id = ?1 RETURNING seq, state");

/// One edge: ?1 the parent's seq, ?2 the dependent's.
pub(crate) const INSERT: Sql =
    shared!("INSERT INTO job_deps (parent_seq, child_seq) VALUES (?1, ?2) ON CONFLICT DO NOTHING");

/// Counts the completed job with seq ?1 off its waiting dependents, at ?2; the last
/// parent makes each pending.
pub(crate) const RELEASE: Sql = shared!(
    "UPDATE jobs SET waiting_on = waiting_on - 1,
         state = CASE WHEN waiting_on <= 1 THEN 'pending' ELSE 'waiting' END, updated_at_ms = ?2
     WHERE state = 'waiting' AND seq IN (SELECT child_seq FROM job_deps WHERE parent_seq = ?1)"
);

/// The waiting dependents of the job with seq ?1 if it ended dead or cancelled, and
/// theirs down the chain (`doomed`: rows of dependent seq, the parent's id, how the
/// parent ended), cancelled at ?2, each naming the parent whose end doomed it.
pub(crate) const CASCADE: Sql = shared!(
    "WITH RECURSIVE doomed(seq, cause, how) AS (
         SELECT d.child_seq, p.id, p.state FROM jobs p JOIN job_deps d ON d.parent_seq = p.seq
         WHERE p.seq = ?1 AND p.state IN ('dead', 'cancelled')
         UNION SELECT d.child_seq, c.id, CAST('cancelled' AS TEXT) FROM doomed JOIN jobs c ON c.seq = doomed.seq
               JOIN job_deps d ON d.parent_seq = c.seq WHERE c.state = 'waiting')
     UPDATE jobs SET state = 'cancelled', waiting_on = 0, finished_at_ms = ?2, updated_at_ms = ?2,
         last_error = 'cancelled: it runs after job ' || doomed.cause || ', which ended ' || doomed.how
     FROM doomed WHERE jobs.seq = doomed.seq AND jobs.state = 'waiting'"
);

/// What [`dependents_step`] needs of job ?1 after a change by id (a cancel).
pub(crate) const JOB_END: Sql = shared!("SELECT seq, state, has_dependents FROM jobs WHERE id = ?1");

/// The jobs job ?1 runs after, oldest first: id, state.
pub(crate) const PARENTS: Sql = shared!(
    "SELECT p.id, p.state FROM job_deps d JOIN jobs p ON p.seq = d.parent_seq
     WHERE d.child_seq = (SELECT seq FROM jobs WHERE id = ?1) ORDER BY p.seq"
);

/// A job waiting to run after job ?1, if any.
pub(crate) const WAITING_CHILD: Sql = shared!(
    "SELECT c.id FROM job_deps d JOIN jobs c ON c.seq = d.child_seq
     WHERE d.parent_seq = (SELECT seq FROM jobs WHERE id = ?1) AND c.state = 'waiting' ORDER BY c.seq LIMIT 1"
);

/// Edges to or from jobs that no longer exist (after a purge).
pub(crate) const CLEAN: Sql = shared!(
    "DELETE FROM job_deps
     WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE seq = job_deps.parent_seq)
        OR NOT EXISTS (SELECT 1 FROM jobs WHERE seq = job_deps.child_seq)"
);

/// The edges to and from job ?1, deleted with it (a delete by id).
pub(crate) const DELETE_OF_JOB: Sql = shared!(
    "DELETE FROM job_deps WHERE child_seq = (SELECT seq FROM jobs WHERE id = ?1)
                      OR parent_seq = (SELECT seq FROM jobs WHERE id = ?1)"
);

/// After a write that ended a job as `state` (its row said `has_dependents`): what its
/// dependents need, as the statement to run with (its seq, now): [`RELEASE`] when it
/// completed, [`CASCADE`] when it ended dead or cancelled.
pub(crate) fn dependents_step(state: &str, has_dependents: bool) -> Option<Sql> {
    if !has_dependents {
        return None;
    }
    match state {
        "completed" => Some(RELEASE),
        "dead" | "cancelled" => Some(CASCADE),
        _ => None,
    }
}

/// SQLite's statements on dependencies.
pub(crate) mod sqlite {
    /// A backup's copy, after its processing jobs were settled: the cascade of
    /// [`super::CASCADE`] from every job that ended dead or cancelled with waiting
    /// dependents, at ?1.
    pub(crate) const CASCADE_ALL: &str = "WITH RECURSIVE doomed(seq, cause, how) AS (
         SELECT d.child_seq, p.id, p.state FROM jobs p JOIN job_deps d ON d.parent_seq = p.seq
         WHERE EXISTS (SELECT 1 FROM jobs w WHERE w.seq = d.child_seq AND w.state = 'waiting')
           AND p.state IN ('dead', 'cancelled')
         UNION SELECT d.child_seq, c.id, CAST('cancelled' AS TEXT) FROM doomed JOIN jobs c ON c.seq = doomed.seq
               JOIN job_deps d ON d.parent_seq = c.seq WHERE c.state = 'waiting')
     UPDATE jobs SET state = 'cancelled', waiting_on = 0, finished_at_ms = ?1, updated_at_ms = ?1,
         last_error = 'cancelled: it runs after job ' || doomed.cause || ', which ended ' || doomed.how
     FROM doomed WHERE jobs.seq = doomed.seq AND jobs.state = 'waiting'";
}

/// PostgreSQL's statements on dependencies.
pub(crate) mod postgres {
    /// The jobs job $1 runs after, oldest first (id, state), locked against a settle until
    /// a change by id commits: a retried job counts those not completed, and a parent
    /// completing meanwhile must see it waiting.
    pub(crate) const PARENTS_LOCKED: &str = "SELECT p.id, p.state FROM job_deps d JOIN jobs p ON p.seq = d.parent_seq
     WHERE d.child_seq = (SELECT seq FROM jobs WHERE id = $1) ORDER BY p.seq FOR SHARE OF p";
}

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    super::Texts {
        shared: vec![PARENT_MARK, INSERT, RELEASE, CASCADE, JOB_END, PARENTS, WAITING_CHILD, CLEAN, DELETE_OF_JOB],
        sqlite: vec![sqlite::CASCADE_ALL],
        postgres: vec![postgres::PARENTS_LOCKED],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locked_read_of_parents_is_the_read_locked() {
        assert_eq!(postgres::PARENTS_LOCKED, format!("{} FOR SHARE OF p", PARENTS.postgres));
    }

    #[test]
    fn dependents_by_how_their_parent_ended() {
        assert_eq!(dependents_step("completed", true), Some(RELEASE));
        assert_eq!(dependents_step("dead", true), Some(CASCADE));
        assert_eq!(dependents_step("cancelled", true), Some(CASCADE));
        assert_eq!(dependents_step("pending", true), None);
        assert_eq!(dependents_step("completed", false), None);
    }
}
