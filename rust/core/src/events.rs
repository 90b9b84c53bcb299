//! What workers report as they go, through one seam: the worker loop tells an
//! [`Observer`] every event; the stderr log ([`StderrLog`]) and the counters metrics read
//! ([`Counters`]) are two observers, and [`Observers`] hands each event to several.
//!
//! A leaf of the worker side: the worker loop, the maintenance chores and the stats rollup
//! depend on it, and it on none of them (so what a worker reports at exit,
//! [`WorkerSummary`], is defined here, with the event that carries it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{format_iso8601, now_ms};
use crate::error::Error;
use crate::store::Settled;

/// The store operation that failed (and will be tried again) in [`Event::StoreTrouble`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    Heartbeat,
    Rescue,
    Reap,
    /// Firing due schedules.
    Schedule,
    /// Adding the per-minute counts to the store.
    Stats,
    /// Cancelling the jobs whose expiry passed.
    Expire,
    /// Claiming failed; the worker tries again after the pause.
    Claim {
        retry_in: Duration,
    },
    /// A settle or requeue failed; it is retried until it succeeds.
    Write,
}

/// What one worker did before it exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    pub completed: u64,
    pub failed: u64,
    pub dead: u64,
    pub cancelled: u64,
    pub requeued: u64,
}

impl WorkerSummary {
    /// Adds what another worker did (a pool's total).
    pub(crate) fn add(&mut self, other: &WorkerSummary) {
        self.completed += other.completed;
        self.failed += other.failed;
        self.dead += other.dead;
        self.cancelled += other.cancelled;
        self.requeued += other.requeued;
    }
}

/// One thing a worker did or met.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A claimed job started running.
    /// `wait_ms`: from when the job was due (its run_at, or its enqueue if later) to now.
    Started { worker: &'a str, job: &'a str, attempt: u32, queue: &'a str, wait_ms: u64 },
    /// An attempt ended and was settled.
    Finished {
        worker: &'a str,
        job: &'a str,
        attempt: u32,
        queue: &'a str,
        settled: Settled,
        duration_ms: u64,
        error: Option<&'a str>,
        /// It went to the DLQ with retries left: its own retry rule does not retry such
        /// a failure (`retry_on`, `no_retry_on`).
        by_rule: bool,
    },
    /// A job was stopped on request (or claimed while stopping) and put back to pending.
    Requeued { worker: &'a str, job: &'a str },
    /// This worker settled a lost worker's job as a failed attempt.
    Rescued { worker: &'a str, job: &'a str, attempt: u32 },
    /// This worker fired an occurrence of a schedule: enqueued `job`, or skipped it (None)
    /// because the previous occurrence's job is unfinished.
    Fired { worker: &'a str, schedule: &'a str, job: Option<&'a str> },
    /// The worker had been declared lost (paused past its lease) and registered again.
    RegisteredAgain { worker: &'a str },
    /// The worker had been declared lost and cannot register again; it claims nothing.
    CannotRegister { worker: &'a str, error: &'a Error },
    /// A store operation failed for a reason that may pass (told once per trouble: the
    /// failures that follow are not, until [`Event::StoreBack`]).
    StoreTrouble { worker: &'a str, what: Trouble, error: &'a Error },
    /// The store answers again after a trouble that began `after_ms` ago.
    StoreBack { worker: &'a str, after_ms: u64 },
    /// No lease renewal for `silent_ms`: the job's process tree was stopped before the
    /// lease could run out, and nothing of the attempt is recorded.
    LeaseLost { worker: &'a str, job: &'a str, attempt: u32, silent_ms: u64 },
    /// A lasting fault: the worker stops.
    Stopping { worker: &'a str, cause: &'a Error },
    /// The worker exited, with what it did, or the error that ended it.
    Exited { worker: &'a str, summary: &'a WorkerSummary, error: Option<&'a Error> },
}

/// Receives the events of workers; called on the worker's own thread, so it must be quick.
pub trait Observer: Send + Sync {
    fn on_event(&self, event: &Event<'_>);
}

/// Writes one line per event to stderr: `TIME WORKER what happened`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrLog;

impl StderrLog {
    /// The line for an event, without time and worker.
    pub fn describe(event: &Event<'_>) -> String {
        match *event {
            Event::Started { job, attempt, .. } => format!("started job {job} (attempt {attempt})"),
            Event::Finished { job, settled, duration_ms, error, by_rule, .. } => {
                let why = error.unwrap_or("");
                match settled {
                    Settled::Completed => format!("completed job {job} in {:.3}s", duration_ms as f64 / 1000.0),
                    Settled::Retry { run_at_ms } => {
                        format!("job {job} failed ({why}); retry at {}", format_iso8601(run_at_ms))
                    }
                    Settled::Dead if by_rule => {
                        format!("job {job} failed ({why}); its retry rule does not retry this, moved to the DLQ")
                    }
                    Settled::Dead => format!("job {job} failed ({why}); no retries left, moved to the DLQ"),
                    Settled::Cancelled => format!("job {job} was cancelled ({why}); it will not be retried"),
                    Settled::Fenced => {
                        format!("job {job} was taken over after this worker's lease expired; result dropped")
                    }
                }
            }
            Event::Requeued { job, .. } => format!("killed job {job} and put it back to pending"),
            Event::Rescued { job, attempt, .. } => format!("rescued job {job} (attempt {attempt}) from a lost worker"),
            Event::Fired { schedule, job: Some(job), .. } => format!("schedule {schedule} fired: enqueued job {job}"),
            Event::Fired { schedule, job: None, .. } => {
                format!("schedule {schedule} skipped an occurrence: its previous job is unfinished")
            }
            Event::RegisteredAgain { .. } => "was declared lost (no heartbeat for longer than its lease: paused or \
                 asleep?); registered again; a job it was running was rescued and its result will be dropped"
                .to_string(),
            Event::CannotRegister { error, .. } => {
                format!("was declared lost and cannot register again: {error}; claiming nothing")
            }
            Event::StoreTrouble { what, error, .. } => match what {
                Trouble::Heartbeat => format!("heartbeat failed: {error}; trying again with every beat"),
                Trouble::Rescue => format!("lease rescue failed: {error}"),
                Trouble::Reap => format!("reaping lost workers failed: {error}"),
                Trouble::Schedule => format!("firing schedules failed: {error}"),
                Trouble::Stats => format!("writing the per-minute counts failed: {error}"),
                Trouble::Expire => format!("cancelling expired jobs failed: {error}"),
                Trouble::Claim { retry_in } => {
                    format!("cannot claim a job: {error}; trying again in {:.1}s", retry_in.as_secs_f64())
                }
                Trouble::Write => format!("store write failed: {error}; retrying until it succeeds"),
            },
            Event::StoreBack { after_ms, .. } => {
                format!("the store answers again, after {:.1}s", after_ms as f64 / 1000.0)
            }
            Event::LeaseLost { job, attempt, silent_ms, .. } => format!(
                "stopped job {job} (attempt {attempt}): its lease could not be renewed for {:.1}s, so \
                 another worker may take it over; nothing of this attempt is recorded",
                silent_ms as f64 / 1000.0
            ),
            Event::Stopping { cause, .. } => format!("stopping: {cause}"),
            Event::Exited { summary: s, error: None, .. } => format!(
                "exiting: {} completed, {} failed, {} dead, {} cancelled, {} requeued",
                s.completed, s.failed, s.dead, s.cancelled, s.requeued
            ),
            Event::Exited { error: Some(e), .. } => format!("exiting on error: {e}"),
        }
    }
}

fn worker_of<'a>(event: &Event<'a>) -> &'a str {
    match *event {
        Event::Started { worker, .. }
        | Event::Finished { worker, .. }
        | Event::Requeued { worker, .. }
        | Event::Rescued { worker, .. }
        | Event::Fired { worker, .. }
        | Event::RegisteredAgain { worker }
        | Event::CannotRegister { worker, .. }
        | Event::StoreTrouble { worker, .. }
        | Event::StoreBack { worker, .. }
        | Event::LeaseLost { worker, .. }
        | Event::Stopping { worker, .. }
        | Event::Exited { worker, .. } => worker,
    }
}

impl Observer for StderrLog {
    fn on_event(&self, event: &Event<'_>) {
        // A lasting fault has its own `stopping:` line; the exit after it adds nothing.
        if matches!(event, Event::Exited { error: Some(e), .. } if e.is_lasting()) {
            return;
        }
        eprintln!("{} {} {}", format_iso8601(now_ms()), worker_of(event), StderrLog::describe(event));
    }
}

/// Ignores every event (workers that run quietly).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {
    fn on_event(&self, _event: &Event<'_>) {}
}

/// Hands every event to each observer in turn.
#[derive(Clone, Default)]
pub struct Observers(pub Vec<Arc<dyn Observer>>);

impl Observer for Observers {
    fn on_event(&self, event: &Event<'_>) {
        for o in &self.0 {
            o.on_event(event);
        }
    }
}

/// Running totals of what workers did, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    cancelled: AtomicU64,
    fenced: AtomicU64,
    requeued: AtomicU64,
    rescued: AtomicU64,
    registered_again: AtomicU64,
    store_errors: AtomicU64,
    run_ms: AtomicU64,
}

/// The totals at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Attempts started.
    pub started: u64,
    /// Attempts that completed their job.
    pub completed: u64,
    /// Failed attempts with retries left.
    pub retried: u64,
    /// Failed attempts that moved their job to the DLQ.
    pub dead: u64,
    /// Attempts that ended because their job was cancelled.
    pub cancelled: u64,
    /// Attempts whose result was dropped: the job had been rescued meanwhile.
    pub fenced: u64,
    /// Jobs put back to pending by a forced stop.
    pub requeued: u64,
    /// Jobs of lost workers settled by these workers.
    pub rescued: u64,
    /// Times a worker found itself declared lost and registered again.
    pub registered_again: u64,
    /// Store troubles met (each told once, however many retries it took).
    pub store_errors: u64,
    /// Milliseconds spent running settled attempts.
    pub run_ms: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            started: get(&self.started),
            completed: get(&self.completed),
            retried: get(&self.retried),
            dead: get(&self.dead),
            cancelled: get(&self.cancelled),
            fenced: get(&self.fenced),
            requeued: get(&self.requeued),
            rescued: get(&self.rescued),
            registered_again: get(&self.registered_again),
            store_errors: get(&self.store_errors),
            run_ms: get(&self.run_ms),
        }
    }
}

impl Observer for Counters {
    fn on_event(&self, event: &Event<'_>) {
        let add = |c: &AtomicU64, n: u64| {
            c.fetch_add(n, Ordering::Relaxed);
        };
        match *event {
            Event::Started { .. } => add(&self.started, 1),
            Event::Finished { settled, duration_ms, .. } => {
                add(&self.run_ms, duration_ms);
                match settled {
                    Settled::Completed => add(&self.completed, 1),
                    Settled::Retry { .. } => add(&self.retried, 1),
                    Settled::Dead => add(&self.dead, 1),
                    Settled::Cancelled => add(&self.cancelled, 1),
                    Settled::Fenced => add(&self.fenced, 1),
                }
            }
            Event::Requeued { .. } => add(&self.requeued, 1),
            Event::Rescued { .. } => add(&self.rescued, 1),
            Event::RegisteredAgain { .. } => add(&self.registered_again, 1),
            Event::StoreTrouble { .. } => add(&self.store_errors, 1),
            Event::CannotRegister { .. }
            | Event::Stopping { .. }
            | Event::Exited { .. }
            | Event::Fired { .. }
            | Event::StoreBack { .. }
            | Event::LeaseLost { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_each_kind() {
        let c = Counters::default();
        let ev = |settled| Event::Finished {
            worker: "w",
            job: "j",
            attempt: 1,
            queue: "default",
            settled,
            duration_ms: 5,
            error: None,
            by_rule: false,
        };
        c.on_event(&Event::Started { worker: "w", job: "j", attempt: 1, queue: "default", wait_ms: 0 });
        c.on_event(&ev(Settled::Completed));
        c.on_event(&ev(Settled::Retry { run_at_ms: 9 }));
        c.on_event(&ev(Settled::Dead));
        c.on_event(&ev(Settled::Cancelled));
        c.on_event(&Event::Rescued { worker: "w", job: "k", attempt: 2 });
        let s = c.snapshot();
        assert_eq!((s.started, s.completed, s.retried, s.dead, s.cancelled, s.rescued), (1, 1, 1, 1, 1, 1));
        assert_eq!(s.run_ms, 20);
    }

    #[test]
    fn the_log_line_names_what_happened() {
        let e = Event::Finished {
            worker: "w",
            job: "j",
            attempt: 1,
            queue: "default",
            settled: Settled::Dead,
            duration_ms: 0,
            error: Some("exit code 3"),
            by_rule: false,
        };
        assert_eq!(StderrLog::describe(&e), "job j failed (exit code 3); no retries left, moved to the DLQ");
    }
}
