//! The stats chore: the per-minute counts this process gathered since the last flush
//! (`crate::stats::Rollup`) are added to the store's `stats` table, and minutes past the
//! rollup's retention are forgotten, in one transaction. The worker also flushes once
//! more when it exits.

use super::Round;
use crate::error::Result;
use crate::stats::Rollup;
use crate::store::{StatsStore, Store};

/// Flushes `rollup` into the store, when the process keeps one; on an error the counts are
/// kept for the next flush.
pub fn flush(store: &mut (impl StatsStore + ?Sized), rollup: Option<&Rollup>) -> Result<()> {
    match rollup {
        Some(r) => r.flush(store),
        None => Ok(()),
    }
}

/// The chore: flushes the round's rollup.
pub(super) fn chore(store: &mut dyn Store, round: &Round<'_>) -> Result<()> {
    flush(store, round.rollup)
}
