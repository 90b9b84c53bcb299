//! The lease of the job a worker runs, seen from the worker: while the job runs, its
//! heartbeats go on a thread of their own (a store call may hang on a network that
//! dropped, and nothing may then hold up the job's watch), and the job's process tree is
//! stopped before the lease can run out when they fail.
//!
//! The lease in the store ends `lease` after the `now` that the claim or the last
//! successful renewal wrote. The worker keeps the instant it read just before it sent that
//! write: the lease cannot end earlier than `lease` after it. When no renewal has succeeded
//! for `lease - grace - margin`, the runner signals the tree and kills it `grace` later, so
//! that it is gone `margin` before another host may rescue the job.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::store::StopLevel;

/// When a job whose lease cannot be renewed must be stopped.
#[derive(Debug, Clone, Copy)]
pub(super) struct LeaseClock {
    lease: Duration,
    /// Between the polite signal and the forced kill, for a lease that is running out.
    pub(super) grace: Duration,
    /// Left between the forced kill and the end of the lease.
    margin: Duration,
}

impl LeaseClock {
    /// The kill grace is the worker's own, but at most a fifth of the lease; the margin a
    /// tenth of the lease (at least 100 ms).
    pub(super) fn new(lease_ms: i64, kill_grace_ms: u64) -> LeaseClock {
        let lease = Duration::from_millis(u64::try_from(lease_ms).unwrap_or(0));
        LeaseClock {
            lease,
            grace: Duration::from_millis(kill_grace_ms).min(lease / 5),
            margin: (lease / 10).max(Duration::from_millis(100)),
        }
    }

    /// When to begin stopping a job whose lease was last renewed at `renewed`.
    pub(super) fn stop_at(&self, renewed: Instant) -> Instant {
        renewed + self.lease.saturating_sub(self.grace + self.margin)
    }
}

/// What the heartbeat thread tells the thread that watches the running job.
pub(super) struct Watch {
    base: Instant,
    /// Microseconds after `base` of the last renewal's instant.
    renewed_us: AtomicU64,
    cancel: AtomicBool,
    requested: AtomicU8,
    fault: AtomicBool,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Watch {
    pub(super) fn new(renewed: Instant, requested: StopLevel) -> Watch {
        let w = Watch {
            base: renewed,
            renewed_us: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            requested: AtomicU8::new(requested.as_u8()),
            fault: AtomicBool::new(false),
            done: Mutex::new(false),
            cv: Condvar::new(),
        };
        w.renewed(renewed);
        w
    }

    /// A renewal sent at `at` succeeded.
    pub(super) fn renewed(&self, at: Instant) {
        let us = u64::try_from(at.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX);
        self.renewed_us.fetch_max(us, Ordering::SeqCst);
    }

    pub(super) fn last_renewed(&self) -> Instant {
        self.base + Duration::from_micros(self.renewed_us.load(Ordering::SeqCst))
    }

    /// What the last heartbeat read: a cancel of the job, a stop asked through the store,
    /// a lasting fault.
    pub(super) fn publish(&self, cancel: bool, requested: StopLevel, fault: bool) {
        self.cancel.store(cancel, Ordering::SeqCst);
        self.requested.fetch_max(requested.as_u8(), Ordering::SeqCst);
        self.fault.store(fault, Ordering::SeqCst);
    }

    pub(super) fn cancel(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    pub(super) fn requested(&self) -> StopLevel {
        StopLevel::from_u8(self.requested.load(Ordering::SeqCst))
    }

    pub(super) fn fault(&self) -> bool {
        self.fault.load(Ordering::SeqCst)
    }

    /// The job has ended: the heartbeat thread returns after its current beat.
    pub(super) fn finish(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Waits up to `timeout`; true once the job has ended.
    pub(super) fn wait_done(&self, timeout: Duration) -> bool {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let (done, _) = self.cv.wait_timeout_while(done, timeout, |d| !*d).unwrap_or_else(|p| p.into_inner());
        *done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_is_gone_before_the_lease_ends() {
        let now = Instant::now();
        let c = LeaseClock::new(30_000, 2_000);
        assert_eq!(c.stop_at(now), now + Duration::from_millis(25_000));
        // A short lease shortens the grace: signal at 3.5 s, killed at 4.5 s, lease ends at 5 s.
        let c = LeaseClock::new(5_000, 2_000);
        assert_eq!(c.grace, Duration::from_millis(1_000));
        assert_eq!(c.stop_at(now), now + Duration::from_millis(3_500));
        assert!(c.stop_at(now) + c.grace + Duration::from_millis(100) <= now + Duration::from_millis(5_000));
    }

    #[test]
    fn renewals_only_move_forward() {
        let start = Instant::now();
        let w = Watch::new(start, StopLevel::None);
        w.renewed(start + Duration::from_secs(2));
        w.renewed(start + Duration::from_secs(1));
        assert_eq!(w.last_renewed(), start + Duration::from_secs(2));
        assert!(!w.wait_done(Duration::from_millis(1)));
        w.finish();
        assert!(w.wait_done(Duration::from_secs(5)));
    }
}
