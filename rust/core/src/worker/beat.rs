//! The worker's heartbeat: renewing its lease, reading stop and cancel requests and the
//! queue's config, registering again after being declared lost, and then the maintenance
//! chores (`crate::maintenance`), at most once per `heartbeat_ms`.

use std::time::{Duration, Instant};

use super::Loop;
use crate::events::{Event, Trouble};
use crate::maintenance::Round;
use crate::policy::WorkerSettings;

impl Loop<'_> {
    /// Heartbeat when one is due: read the config, renew the lease and read stop and
    /// cancel requests, then run a round of maintenance chores (rescue the jobs of lost
    /// workers, reap lost workers, fire due schedules, flush the per-minute counts). A
    /// lasting store fault is kept in `fault` (the worker stops on it) and ends the beat.
    pub(super) fn beat_if_due(&mut self) {
        if self.last_beat.elapsed() < Duration::from_millis(self.cfg.heartbeat_ms) {
            return;
        }
        self.last_beat = Instant::now();
        let now = self.now();
        self.read_settings();
        match self.store.worker_heartbeat(&self.cfg.worker_id, now) {
            Ok(Some(beat)) => {
                self.requested = self.requested.max(beat.stop);
                self.cancel_current = beat.cancel;
            }
            Ok(None) => self.register_again(now),
            Err(e) if e.is_lasting() => self.fault = Some(e),
            Err(e) => {
                self.emit(Event::StoreTrouble { worker: &self.cfg.worker_id, what: Trouble::Heartbeat, error: &e })
            }
        }
        if self.fault.is_some() {
            return;
        }
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
