//! The firing of one schedule occurrence, written once for both stores: the
//! compare-and-set that moves the schedule on, then the queue ensured and the
//! occurrence's job inserted, in one transaction. The stores supply the writes
//! ([`FireTx`]).

use super::params::Fire;
use super::tx::Tx;
use crate::error::Result;
use crate::job::NewJob;

/// The writes of a firing, in a store's open write transaction.
pub(super) trait FireTx: Tx {
    /// Moves the schedule on to `f.next_fire_ms`, counting the occurrence fired or skipped
    /// (see [`counts`]), if it is still due at `f.expected_next_ms` (`schedules::FIRE`);
    /// how many rows changed (0: another firer or a pause came first). On PostgreSQL the
    /// row lock makes a second firer wait, then find `next_fire_ms` moved on.
    fn schedule_move(&mut self, f: &Fire<'_>) -> Result<u64>;
    /// Makes sure the queue `queue` exists.
    fn queue_ensure(&mut self, queue: &str, now_ms: i64) -> Result<()>;
    /// Inserts the occurrence's job (`jobs::SCHEDULED_INSERT`).
    fn job_insert_scheduled(&mut self, job: &NewJob, now_ms: i64) -> Result<()>;
}

/// What `schedules::FIRE` records of a firing: the job's id (None when skipped), and 1
/// for fired or for skipped.
pub(super) fn counts<'a>(f: &Fire<'a>) -> (Option<&'a str>, i64, i64) {
    let fired = i64::from(f.job.is_some());
    (f.job.and_then(|j| j.id.as_deref()), fired, 1 - fired)
}

/// Fires `f` in `tx`: true when it moved the schedule on (and inserted the job) and
/// committed; false, with nothing changed, when the schedule was no longer due at
/// `f.expected_next_ms`.
pub(super) fn schedule_fire(mut tx: impl FireTx, f: &Fire<'_>) -> Result<bool> {
    if tx.schedule_move(f)? == 0 {
        return Ok(false); // dropped: rolled back
    }
    if let Some(j) = f.job {
        tx.queue_ensure(&j.queue, f.now_ms)?;
        tx.job_insert_scheduled(j, f.now_ms)?;
        tx.wake()?;
    }
    tx.commit()?;
    Ok(true)
}
