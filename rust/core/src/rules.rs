//! The rules of what people may do to jobs, decided once for every store and for the
//! Python side (which reads them through `_core`): which changes by id a state allows,
//! what may be purged, what a dependency on a job in a given state means, how many tries a
//! job has left, and when a worker counts as lost. The stores run the statements; they
//! ask this module first. The final states are `JobState::is_final`, with the type.

use crate::error::{Error, Result};
use crate::job::JobState;

/// A change people make to jobs named by id: to all of them, or (when any is unknown or
/// in a state that does not allow it) to none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByIdChange {
    /// Dead jobs back to pending, attempts 0 (`dlq retry`).
    RetryDead,
    /// Failed, dead or cancelled jobs back to pending, attempts 0, runnable now (`retry`).
    Retry,
    /// Jobs that are not processing removed with their history (`delete`).
    Delete,
    /// Waiting, pending or failed jobs to cancelled; processing ones flagged, for their
    /// worker to kill within a heartbeat and settle as cancelled (`cancel`).
    Cancel,
}

impl ByIdChange {
    /// Every change.
    pub const ALL: [ByIdChange; 4] = [ByIdChange::RetryDead, ByIdChange::Retry, ByIdChange::Delete, ByIdChange::Cancel];

    /// The name the Python side uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ByIdChange::RetryDead => "retry-dead",
            ByIdChange::Retry => "retry",
            ByIdChange::Delete => "delete",
            ByIdChange::Cancel => "cancel",
        }
    }

    /// The change a name means.
    pub fn parse(name: &str) -> Option<ByIdChange> {
        ByIdChange::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether a job in `state` may undergo this change.
    pub fn allows(self, state: JobState) -> bool {
        match self {
            ByIdChange::RetryDead => state == JobState::Dead,
            ByIdChange::Retry => matches!(state, JobState::Failed | JobState::Dead | JobState::Cancelled),
            ByIdChange::Delete => state != JobState::Processing,
            ByIdChange::Cancel => !state.is_final(),
        }
    }

    /// What a store reads before it applies this change to a job: its parents (a retry
    /// must not run a job whose parent will never complete), a job waiting for it (a
    /// delete must not strand one). Other changes read neither.
    pub fn dependency_reads(self) -> (bool, bool) {
        (matches!(self, ByIdChange::Retry | ByIdChange::RetryDead), self == ByIdChange::Delete)
    }
}

/// Whether a job in `state` (None: no such job) may undergo `change`; the error names the
/// job and why not.
pub fn check_change(change: ByIdChange, id: &str, state: Option<JobState>) -> Result<()> {
    let Some(state) = state else {
        return Err(Error::NotFound(id.to_string()));
    };
    if change.allows(state) {
        return Ok(());
    }
    Err(Error::InvalidState(match change {
        ByIdChange::RetryDead => format!("job {id:?} is not in the DLQ (it is {state})"),
        ByIdChange::Retry => format!("job {id:?} is {state}: only failed, dead or cancelled jobs can be retried"),
        ByIdChange::Delete => format!("job {id:?} is processing: a running job cannot be deleted (cancel it first)"),
        ByIdChange::Cancel => format!("job {id:?} is {state}: it has ended and cannot be cancelled"),
    }))
}

/// Whether a job may run after a job `id` in `state` (None: no such job): true when it has
/// to wait for it, false when that job has completed already; an error when it never will.
pub fn parent_open(id: &str, state: Option<JobState>) -> Result<bool> {
    match state {
        None => Err(Error::InvalidInput(format!(
            "after: there is no job {id:?} (a job can only run after one enqueued before it)"
        ))),
        Some(JobState::Completed) => Ok(false),
        Some(s @ (JobState::Dead | JobState::Cancelled)) => Err(Error::InvalidInput(format!(
            "after: job {id:?} is {s}, so a job after it would never run (retry it first)"
        ))),
        Some(_) => Ok(true),
    }
}

/// Whether job `id` may be changed so, given the jobs it runs after (`parents`, id and
/// state) and a job waiting to run after it (`waiting_child`): read as
/// [`ByIdChange::dependency_reads`] says.
pub fn check_dependencies(
    change: ByIdChange,
    id: &str,
    parents: &[(String, JobState)],
    waiting_child: Option<&str>,
) -> Result<()> {
    match change {
        ByIdChange::Retry | ByIdChange::RetryDead => {
            if let Some((p, state)) = parents.iter().find(|(_, s)| matches!(s, JobState::Dead | JobState::Cancelled)) {
                return Err(Error::InvalidState(format!(
                    "job {id:?} runs after job {p:?}, which is {state}: retry that first (name it before this one)"
                )));
            }
        }
        ByIdChange::Delete => {
            if let Some(child) = waiting_child {
                return Err(Error::InvalidState(format!(
                    "job {id:?} has jobs waiting to run after it (job {child:?}): cancel it instead, which cancels them too"
                )));
            }
        }
        ByIdChange::Cancel => {}
    }
    Ok(())
}

/// Whether jobs in `state` may be purged: only those that have ended.
pub fn check_purgeable(state: JobState) -> Result<()> {
    if state.is_final() {
        Ok(())
    } else {
        Err(Error::InvalidInput("only completed, dead or cancelled jobs can be purged".into()))
    }
}

/// How many more times a job may run after `attempts` counted attempts: the first run and
/// `max_retries` retries, so a failed attempt is retried while this is above zero.
pub fn tries_left(attempts: u32, max_retries: u32) -> u32 {
    (u64::from(max_retries) + 1).saturating_sub(u64::from(attempts)).try_into().unwrap_or(u32::MAX)
}

/// Whether a worker whose last heartbeat was at `heartbeat_ms`, holding leases of
/// `lease_ms`, is lost at `now_ms`: its heartbeat is older than its lease. A lost worker is
/// reaped (marked exited), and the leases of its jobs have run out by then too. The stores'
/// reap statement says the same in SQL (`heartbeat_ms + lease_ms < now`).
pub fn worker_lost(heartbeat_ms: i64, lease_ms: i64, now_ms: i64) -> bool {
    heartbeat_ms.saturating_add(lease_ms) < now_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_allows_the_states_it_names() {
        use JobState::*;
        let allowed = |c: ByIdChange| JobState::ALL.into_iter().filter(|s| c.allows(*s)).collect::<Vec<_>>();
        assert_eq!(allowed(ByIdChange::RetryDead), [Dead]);
        assert_eq!(allowed(ByIdChange::Retry), [Failed, Dead, Cancelled]);
        assert_eq!(allowed(ByIdChange::Delete), [Waiting, Pending, Completed, Failed, Dead, Cancelled]);
        assert_eq!(allowed(ByIdChange::Cancel), [Waiting, Pending, Processing, Failed]);
        for c in ByIdChange::ALL {
            assert_eq!(ByIdChange::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn refusals_name_the_job_and_why() {
        let e = check_change(ByIdChange::Cancel, "a", Some(JobState::Completed)).unwrap_err();
        assert_eq!(e.to_string(), "job \"a\" is completed: it has ended and cannot be cancelled");
        assert!(matches!(check_change(ByIdChange::Retry, "b", None), Err(Error::NotFound(_))));
        assert!(check_purgeable(JobState::Pending).is_err());
        assert!(check_purgeable(JobState::Cancelled).is_ok());
    }

    #[test]
    fn tries_and_lost_workers() {
        assert_eq!(tries_left(0, 3), 4);
        assert_eq!(tries_left(4, 3), 0);
        assert_eq!(tries_left(9, 3), 0);
        assert!(!worker_lost(1_000, 500, 1_500));
        assert!(worker_lost(1_000, 500, 1_501));
    }
}
