//! The reap chore: workers whose heartbeat is older than their lease are marked exited,
//! so `worker list` shows them gone and, should one come back, its next heartbeat finds
//! it unregistered (it registers again before it claims; see `crate::worker`).

use super::Round;
use crate::error::Result;
use crate::store::{Store, WorkerRegistry};

/// Marks the workers lost by `now_ms` as exited; returns how many.
pub fn reap(store: &mut (impl WorkerRegistry + ?Sized), now_ms: i64) -> Result<u64> {
    store.worker_reap(now_ms)
}

/// The chore: reaps, quietly.
pub(super) fn chore(store: &mut dyn Store, round: &Round<'_>) -> Result<()> {
    reap(store, round.now_ms).map(drop)
}
