//! The worker's heartbeat: renewing its lease, reading stop and cancel requests and the
//! queue's config, registering again after being declared lost, and then the maintenance
//! chores (`crate::maintenance`), at most once per `heartbeat_ms`.

use std::time::{Duration, Instant};

use super::lease::Watch;
use super::Loop;
use crate::error::Error;
use crate::events::{Event, Trouble};
use crate::maintenance::Round;
use crate::policy::WorkerSettings;

impl Loop<'_> {
    /// Heartbeat when one is due: renew the lease and read stop and cancel requests, read
    /// the config, then run a round of maintenance chores (rescue the jobs of lost
    /// workers, reap lost workers, fire due schedules, flush the per-minute counts). A
    /// lasting store fault is kept in `fault` (the worker stops on it) and ends the beat.
    pub(super) fn beat_if_due(&mut self) {
        if let Some(now) = self.renew_if_due() {
            self.maintain(now);
        }
    }

    /// The first half of a beat, when one is due: the renewal, then the config. Returns
    /// the beat's time when the chores should follow.
    fn renew_if_due(&mut self) -> Option<i64> {
        if !self.beat_due() {
            return None;
        }
        self.last_beat = Instant::now();
        // Read before the clock that the renewal writes: the lease in the store cannot end
        // earlier than a lease after this instant.
        let sent = Instant::now();
        let now = self.now();
        match self.store.worker_heartbeat(&self.cfg.worker_id, now) {
            Ok(Some(beat)) => {
                self.renewed_at = self.renewed_at.max(sent);
                self.requested = self.requested.max(beat.stop);
                self.cancel_current = beat.cancel;
                self.store_ok();
            }
            Ok(None) => {
                self.store_ok();
                self.register_again(now);
            }
            Err(e) if e.is_lasting() => {
                self.fault = Some(e);
                return None;
            }
            Err(e) => {
                // The store does not answer: the chores would fail the same way.
                self.trouble(Trouble::Heartbeat, &e);
                return None;
            }
        }
        self.read_settings();
        Some(now)
    }

    /// The second half of a beat: a round of maintenance chores at `now`.
    fn maintain(&mut self, now: i64) {
        let cfg = self.cfg;
        let round = Round {
            worker_id: &cfg.worker_id,
            now_ms: now,
            backoff: self.settings.backoff,
            observer: cfg.observer.as_ref(),
            rollup: cfg.rollup.as_deref(),
        };
        if let Err(e) = round.run(self.store) {
            self.fault = Some(e);
        }
    }

    /// Whether a heartbeat is due.
    pub(super) fn beat_due(&self) -> bool {
        self.last_beat.elapsed() >= Duration::from_millis(self.cfg.heartbeat_ms)
    }

    /// The heartbeats while a job runs, on a thread of their own: what each one learns
    /// goes to the thread that watches the job through `watch`, until the job ends.
    pub(super) fn beat_while_running(&mut self, watch: &Watch) {
        loop {
            // What the renewal learnt is told before the chores, which may take a while.
            let chores = self.renew_if_due();
            watch.renewed(self.renewed_at);
            watch.publish(self.cancel_current, self.requested, self.fault.is_some());
            if let Some(now) = chores {
                self.maintain(now);
                watch.publish(self.cancel_current, self.requested, self.fault.is_some());
            }
            let next = (self.last_beat + Duration::from_millis(self.cfg.heartbeat_ms))
                .saturating_duration_since(Instant::now());
            if watch.wait_done(next) {
                return;
            }
        }
    }

    /// A store call failed for a reason that may pass: one line when the trouble begins,
    /// none for the failures that follow until the store answers again.
    pub(super) fn trouble(&mut self, what: Trouble, error: &Error) {
        if self.troubled.is_none() {
            self.troubled = Some(Instant::now());
            self.emit(Event::StoreTrouble { worker: &self.cfg.worker_id, what, error });
        }
    }

    /// A store call succeeded: the end of a trouble, if one was told.
    pub(super) fn store_ok(&mut self) {
        if let Some(since) = self.troubled.take() {
            let after_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.emit(Event::StoreBack { worker: &self.cfg.worker_id, after_ms });
        }
    }

    /// The store says this worker is not registered: others declared it lost (it missed
    /// heartbeats for longer than its lease: the process was paused, or the machine slept)
    /// and rescued its job, whose result will now be fenced off. It registers again before
    /// it claims anything, so that `worker list` and `worker stop` see it; until that
    /// succeeds it claims nothing.
    fn register_again(&mut self, now: i64) {
        let cfg = self.cfg;
        match self.store.worker_register(&cfg.registration(now)) {
            Ok(()) => {
                self.unregistered = false;
                self.emit(Event::RegisteredAgain { worker: &cfg.worker_id });
            }
            Err(e) => {
                self.unregistered = true;
                self.emit(Event::CannotRegister { worker: &cfg.worker_id, error: &e });
            }
        }
    }

    /// Reads the config the worker caches; an unreadable config keeps what it had.
    pub(super) fn read_settings(&mut self) {
        if let Ok(s) = WorkerSettings::load(self.store) {
            self.settings = s;
        }
    }
}
