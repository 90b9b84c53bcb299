//! The maintenance chores: the work on the shared queue that no one job asks for, done by
//! every worker with its heartbeat, as River's `internal/maintenance` does. One file per
//! chore; this module says what runs when.
//!
//! With each heartbeat, once the worker has renewed its own lease (see `crate::worker`),
//! it runs one [`Round`]: every chore once, in this order:
//!
//! 1. [`rescue`]: jobs whose lease ran out (their worker was lost) are settled as failed
//!    attempts, as `crate::policy` decides;
//! 2. [`reap`]: workers whose heartbeat is older than their lease are marked exited;
//! 3. [`schedules`]: the schedules that are due fire their occurrence;
//! 4. [`stats_flush`]: the per-minute counts the process gathered are added to the store;
//! 5. [`expire`]: jobs not started by their expiry are cancelled.
//!
//! Every worker runs every chore: the stores fence each write, so two workers doing the
//! same chore at once do it once. The retention chore (forgetting finished jobs past their
//! age) is coming and will be a fifth file here, run from the same round.
//!
//! A chore decides nothing itself: it reads, asks `crate::policy` (or `crate::schedule`)
//! what to write, writes through the store, and tells the observer what it did.

pub mod expire;
pub mod reap;
pub mod rescue;
pub mod schedules;
pub mod stats_flush;

use crate::backoff::BackoffPolicy;
use crate::error::Result;
use crate::events::{Event, Observer, Trouble};
use crate::stats::Rollup;
use crate::store::Store;

/// One round of chores, as one worker's heartbeat runs it.
pub struct Round<'a> {
    /// The worker running the round, named in the events it causes.
    pub worker_id: &'a str,
    /// The time of the heartbeat, written into the store.
    pub now_ms: i64,
    /// The backoff the queue's config asks for: a rescued attempt with retries left is
    /// retried after it.
    pub backoff: BackoffPolicy,
    /// Told what each chore did, and the failures that may pass.
    pub observer: &'a dyn Observer,
    /// The process's per-minute counts, when it keeps them.
    pub rollup: Option<&'a Rollup>,
}

/// A chore: one step of a round.
type Chore = fn(&mut dyn Store, &Round<'_>) -> Result<()>;

/// The chores in the order a round runs them, each with what its failure is reported as.
const CHORES: [(Chore, Trouble); 5] = [
    (rescue::chore, Trouble::Rescue),
    (reap::chore, Trouble::Reap),
    (schedules::chore, Trouble::Schedule),
    (stats_flush::chore, Trouble::Stats),
    (expire::chore, Trouble::Expire),
];

impl Round<'_> {
    /// Runs every chore once, in order. A failure that may pass is reported
    /// ([`Event::StoreTrouble`]) and the next chore runs (the failed one is tried again
    /// with the next heartbeat); a lasting fault ends the round and is returned: the
    /// worker stops on it.
    pub fn run(&self, store: &mut dyn Store) -> Result<()> {
        for (chore, what) in CHORES {
            if let Err(e) = chore(store, self) {
                if e.is_lasting() {
                    return Err(e);
                }
                self.observer.on_event(&Event::StoreTrouble { worker: self.worker_id, what, error: &e });
            }
        }
        Ok(())
    }
}
