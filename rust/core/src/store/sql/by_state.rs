//! SQLite's statements per job state: a job count, a listing, a count per queue, and the
//! purge of jobs and their history. Each names its state literally and the partial index
//! that holds it (`INDEXED BY`), so that SQLite can prove which index to use (a bound
//! parameter cannot); completed jobs are in no index and are read from the table itself.
//!
//! The variants are joined at compile time by `text!` from named parts: the `WHERE` of
//! each state below ([`WAITING`] ... [`CANCELLED`]) and the statement around it; one `fn`
//! per statement `match`es the state to its variant. `page` uses the same parts.

use crate::job::JobState;
use crate::store::row::job_col;

/// Waiting jobs, through jobs_waiting.
pub(crate) const WAITING: &str = "INDEXED BY jobs_waiting WHERE state = 'waiting'";
/// Pending jobs, through jobs_due (which holds pending and failed jobs): its own
/// condition is repeated, as SQLite does not see that `state = 'pending'` implies it.
pub(crate) const PENDING: &str = "INDEXED BY jobs_due WHERE state IN ('pending', 'failed') AND state = 'pending'";
/// Processing jobs, through jobs_processing.
pub(crate) const PROCESSING: &str = "INDEXED BY jobs_processing WHERE state = 'processing'";
/// Completed jobs: in no index.
pub(crate) const COMPLETED: &str = "WHERE state = 'completed'";
/// Failed jobs waiting for their retry, through jobs_due (see [`PENDING`]).
pub(crate) const FAILED: &str = "INDEXED BY jobs_due WHERE state IN ('pending', 'failed') AND state = 'failed'";
/// Dead jobs, through jobs_dead.
pub(crate) const DEAD: &str = "INDEXED BY jobs_dead WHERE state = 'dead'";
/// Cancelled jobs, through jobs_cancelled.
pub(crate) const CANCELLED: &str = "INDEXED BY jobs_cancelled WHERE state = 'cancelled'";

/// The variant of a statement for `$state`: `text!` of the parts before, the state's
/// `WHERE`, and the parts after.
macro_rules! per_state {
    ($state:expr, [$($before:expr),+], [$($after:expr),*]) => {
        match $state {
            JobState::Waiting => text!($($before,)+ WAITING $(, $after)*),
            JobState::Pending => text!($($before,)+ PENDING $(, $after)*),
            JobState::Processing => text!($($before,)+ PROCESSING $(, $after)*),
            JobState::Completed => text!($($before,)+ COMPLETED $(, $after)*),
            JobState::Failed => text!($($before,)+ FAILED $(, $after)*),
            JobState::Dead => text!($($before,)+ DEAD $(, $after)*),
            JobState::Cancelled => text!($($before,)+ CANCELLED $(, $after)*),
        }
    };
}

/// The jobs of `state`. Completed jobs are best counted as the total minus the rest
/// (`jobs::sqlite::COUNT_ALL`).
pub(crate) fn count(state: JobState) -> &'static str {
    per_state!(state, ["SELECT count(*) FROM jobs "], [])
}

/// The jobs of `state` in enqueue order, optionally of queue ?2 (NULL: all), at most ?1
/// (-1: no limit). Completed jobs come first in the table itself, where they are read.
pub(crate) fn list(state: JobState) -> &'static str {
    per_state!(
        state,
        ["SELECT ", job_col::LIST, " FROM jobs "],
        [" AND (?2 IS NULL OR queue = ?2) ORDER BY seq LIMIT ?1"]
    )
}

/// The jobs of `state` of each queue.
pub(crate) fn count_by_queue(state: JobState) -> &'static str {
    per_state!(state, ["SELECT queue, count(*) FROM jobs "], [" GROUP BY queue"])
}

/// The history of the jobs of `state` last changed at or before ?1, deleted before them.
pub(crate) fn purge_attempts(state: JobState) -> &'static str {
    per_state!(state, ["DELETE FROM attempts WHERE job_seq IN (SELECT seq FROM jobs "], [" AND updated_at_ms <= ?1)"])
}

/// The jobs of `state` last changed at or before ?1, deleted: their ids.
pub(crate) fn purge(state: JobState) -> &'static str {
    per_state!(state, ["DELETE FROM jobs "], [" AND updated_at_ms <= ?1 RETURNING id"])
}

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    let mut sqlite = Vec::new();
    for state in JobState::ALL {
        sqlite.extend([count(state), list(state), count_by_queue(state), purge_attempts(state), purge(state)]);
    }
    super::Texts { sqlite, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_names_its_state() {
        for state in JobState::ALL {
            let named = format!("state = '{}'", state.as_str());
            for sql in [count(state), list(state), count_by_queue(state), purge_attempts(state), purge(state)] {
                assert!(sql.contains(&named), "{sql}");
            }
        }
        assert_eq!(count(JobState::Dead), "SELECT count(*) FROM jobs INDEXED BY jobs_dead WHERE state = 'dead'");
        assert_eq!(
            purge(JobState::Completed),
            "DELETE FROM jobs WHERE state = 'completed' AND updated_at_ms <= ?1 RETURNING id"
        );
    }
}
