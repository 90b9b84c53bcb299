//! The rescue chore: jobs whose worker was lost (its lease ran out) are settled as failed
//! attempts, so they are retried elsewhere or moved to the DLQ. What each settle writes is
//! [`crate::policy::lost_attempt`]'s decision.

use super::Round;
use crate::backoff::BackoffPolicy;
use crate::error::Result;
use crate::events::Event;
use crate::policy;
use crate::store::{JobAdmin, SettleParams, Settled, Store};

/// Settles, as failed attempts, every processing job whose lease ran out before `now_ms`.
/// Returns (id, attempt) of each job rescued. Two hosts rescuing at once are safe: each
/// write is fenced on the attempt and on the lease still having run out, so one of them
/// applies and the other finds the job already settled.
pub fn rescue_expired(
    store: &mut (impl JobAdmin + ?Sized),
    policy: &BackoffPolicy,
    now_ms: i64,
) -> Result<Vec<(String, u32)>> {
    let expired = store.job_get_expired(now_ms)?;
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let settles: Vec<SettleParams> = expired.iter().map(|j| policy::lost_attempt(j, policy, now_ms)).collect();
    let settled = store.job_settle_many(&settles)?;
    Ok(expired
        .into_iter()
        .zip(settled)
        .filter(|(_, s)| *s != Settled::Fenced)
        .map(|(j, _)| (j.id, j.attempt))
        .collect())
}

/// The chore: rescues under the queue's backoff and tells the observer of each job.
pub(super) fn chore(store: &mut dyn Store, round: &Round<'_>) -> Result<()> {
    for (id, attempt) in rescue_expired(store, &round.backoff, round.now_ms)? {
        round.observer.on_event(&Event::Rescued { worker: round.worker_id, job: &id, attempt });
    }
    Ok(())
}
