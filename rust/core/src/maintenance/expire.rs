//! The expiry chore: a job not started by its `expires_at` ends cancelled ("expired") and
//! never runs; what runs after it is cancelled down the chain, as after any cancel. The
//! claim already skips such a job, so a late chore never lets one run.

use super::Round;
use crate::error::Result;
use crate::store::Store;

/// The chore: cancels the jobs whose expiry passed, quietly (each is `cancelled` with
/// `last_error` "expired", which `show` and `explain` read).
pub(super) fn chore(store: &mut dyn Store, round: &Round<'_>) -> Result<()> {
    store.job_expire(round.now_ms).map(drop)
}
