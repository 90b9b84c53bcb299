//! Group commit for the workers of one process: a settle+claim that finds the write lock
//! taken leaves its request for the lock's holder, who runs it in its own transaction
//! (one commit for several jobs) and hands back the result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::write::{claim_in, settle_in};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::store::{ClaimParams, QueueFilter, SettleParams, Settled};

/// What a settle+claim returns.
pub(super) type SettleAndClaim = Result<(Settled, Option<Job>)>;

/// What the threads of one process share about one database file.
pub(super) struct Shared {
    /// Threads (the workers of a pool) take it before `BEGIN IMMEDIATE`, so they queue on a
    /// mutex, woken the moment it is free, instead of polling SQLite's busy handler.
    pub(super) write_lock: Mutex<()>,
    /// Settle+claim requests of threads that found the write lock taken.
    pending: Mutex<Vec<Arc<Combined>>>,
}

/// The shared state of the database at `path` in this process.
pub(super) fn shared_for(path: &Path) -> &'static Shared {
    static ALL: Mutex<Option<HashMap<PathBuf, &'static Shared>>> = Mutex::new(None);
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut all = lock(&ALL);
    // Leaked on purpose: one small value per distinct database a process opens.
    all.get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(Shared { write_lock: Mutex::new(()), pending: Mutex::new(Vec::new()) })))
}

/// A poisoned lock still guards consistent data here (every holder leaves it whole).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One thread's settle+claim, run by whichever thread holds the write lock.
struct Combined {
    settle: SettleParams,
    worker_id: String,
    now_ms: i64,
    lease_ms: i64,
    queues: Option<QueueFilter>,
    after_queue: Option<String>,
    max_slots: u32,
    result: Mutex<Option<SettleAndClaim>>,
    ready: Condvar,
}

impl Combined {
    fn run(&self, tx: &rusqlite::Transaction<'_>) -> SettleAndClaim {
        let claim = ClaimParams {
            worker_id: &self.worker_id,
            now_ms: self.now_ms,
            lease_ms: self.lease_ms,
            queues: self.queues.as_ref(),
            after_queue: self.after_queue.as_deref(),
            max_slots: self.max_slots,
        };
        Ok((settle_in(tx, &self.settle)?, claim_in(tx, &claim)?))
    }

    fn finish(&self, r: SettleAndClaim) {
        *lock(&self.result) = Some(r);
        self.ready.notify_one();
    }

    fn take(&self) -> Option<SettleAndClaim> {
        lock(&self.result).take()
    }
}

/// Either the write lock, or the result another thread already produced for us.
enum Turn {
    Holder(MutexGuard<'static, ()>),
    Answered(Box<SettleAndClaim>),
}

/// Takes the write lock, or leaves the request for its holder and waits for the result or
/// the lock, whichever comes first. (Only the busy path copies the parameters.)
fn take_turn(shared: &'static Shared, s: &SettleParams, c: &ClaimParams<'_>) -> Turn {
    match shared.write_lock.try_lock() {
        Ok(g) => return Turn::Holder(g),
        Err(std::sync::TryLockError::Poisoned(p)) => return Turn::Holder(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => {}
    }
    let me = Arc::new(Combined {
        settle: s.clone(),
        worker_id: c.worker_id.to_string(),
        now_ms: c.now_ms,
        lease_ms: c.lease_ms,
        queues: c.queues.cloned(),
        after_queue: c.after_queue.map(str::to_string),
        max_slots: c.max_slots,
        result: Mutex::new(None),
        ready: Condvar::new(),
    });
    lock(&shared.pending).push(Arc::clone(&me));
    loop {
        {
            let slot = lock(&me.result);
            let (mut slot, _) = me
                .ready
                .wait_timeout_while(slot, Duration::from_micros(200), |r| r.is_none())
                .unwrap_or_else(|p| p.into_inner());
            if let Some(r) = slot.take() {
                return Turn::Answered(Box::new(r));
            }
        }
        if let Ok(g) = shared.write_lock.try_lock() {
            // A holder publishes what it took before it lets go, so the request is either
            // answered or still waiting in the list.
            if let Some(r) = me.take() {
                return Turn::Answered(Box::new(r));
            }
            lock(&shared.pending).retain(|r| !Arc::ptr_eq(r, &me));
            return Turn::Holder(g);
        }
    }
}

/// Settles and claims for this thread, and for every thread whose request is waiting, in
/// one transaction. Any error rolls the whole transaction back: nobody's settle or claim
/// happened, and each caller retries.
pub(super) fn settle_and_claim(
    conn: &mut Connection,
    shared: &'static Shared,
    s: &SettleParams,
    c: &ClaimParams<'_>,
) -> SettleAndClaim {
    let guard = match take_turn(shared, s, c) {
        Turn::Answered(r) => return *r,
        Turn::Holder(g) => g,
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mine = settle_in(&tx, s).and_then(|settled| Ok((settled, claim_in(&tx, c)?)));
    let others: Vec<Arc<Combined>> = std::mem::take(&mut *lock(&shared.pending));
    let mut results = Vec::with_capacity(others.len());
    let mut failed = mine.as_ref().err().cloned();
    for other in &others {
        if failed.is_some() {
            break;
        }
        match other.run(&tx) {
            Ok(r) => results.push(r),
            Err(e) => failed = Some(e),
        }
    }
    let committed = match failed {
        Some(e) => {
            drop(tx); // rolls back before the lock is let go
            Err(e)
        }
        None => tx.commit().map_err(Error::from),
    };
    match committed {
        Ok(()) => {
            for (other, r) in others.iter().zip(results) {
                other.finish(Ok(r));
            }
            drop(guard);
            mine
        }
        Err(e) => {
            for other in &others {
                other.finish(Err(e.clone()));
            }
            drop(guard);
            Err(e)
        }
    }
}
