//! The worker loop (claim, run, settle, heartbeat) and a pool of worker threads.
//!
//! Here: a worker's settings, its id, the loop and [`run_worker`]; the heartbeat and the
//! maintenance round it starts are in `beat.rs` (the chores themselves in
//! `crate::maintenance`), the pool of threads in `pool.rs`.
//!
//! A stop request arrives either through the shared flag (signals, set by the caller) or
//! through the store (`worker stop` from any terminal or host); the loop reads both. What
//! happens to a job is decided by `crate::policy`; what the loop does is told to the
//! observer in its config (`crate::events`), and the time it writes comes from the clock
//! in its config.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::events::{Event, Observer, StderrLog, Trouble};
use crate::job::{Job, JobState};
use crate::jobid;
use crate::maintenance::stats_flush;
use crate::policy::{AttemptEnd, WorkerSettings};
use crate::runner::{self, Control, RunOutcome, RunSpec};
use crate::stats::Rollup;
use crate::store::{ClaimParams, Fence, QueueFilter, Registration, Settled, StopLevel, Store};
use lease::{LeaseClock, Watch};

mod beat;
mod lease;
mod pool;
mod slots;

/// At its old path for callers: the summary travels with the exit event, so it is defined
/// with the events.
pub use crate::events::WorkerSummary;
pub use pool::Pool;
pub use slots::Slots;

/// A job whose worker misses heartbeats this long is rescued by another worker.
pub const DEFAULT_LEASE_MS: i64 = 30_000;
/// How often a worker renews its lease and reads stop requests and config.
pub const DEFAULT_HEARTBEAT_MS: u64 = 1_000;
/// Longest pause between looks for due jobs while idle.
pub const DEFAULT_POLL_MS: u64 = 100;
/// Between the polite signal to a job's tree and the forced kill.
pub const DEFAULT_KILL_GRACE_MS: u64 = 2_000;

/// Settings of one worker, resolved by the caller.
#[derive(Clone)]
pub struct WorkerConfig {
    pub worker_id: String,
    pub host: String,
    pub pid: u32,
    pub logs_dir: PathBuf,
    /// A job whose worker misses heartbeats this long is rescued by another worker.
    pub lease_ms: i64,
    pub heartbeat_ms: u64,
    /// Longest pause between looks for due jobs while idle; a commit by anyone (through
    /// [`Wake`]) ends the pause early. It bounds how late a delayed job or a retry starts.
    pub poll_ms: u64,
    pub kill_grace_ms: u64,
    /// Exit when no job is due instead of waiting for one.
    pub burst: bool,
    /// Told everything the worker does (by default, a line on stderr per event).
    pub observer: Arc<dyn Observer>,
    /// The time written into the store.
    pub clock: Arc<dyn Clock>,
    /// The named queues it takes jobs from; `None`: every queue.
    pub queues: Option<QueueFilter>,
    /// The process's per-minute counts (also one of its observers), added to the store
    /// with every heartbeat and when the worker exits.
    pub rollup: Option<Arc<Rollup>>,
    /// The slots of its process, shared by the workers of a pool.
    pub slots: Arc<Slots>,
}

impl WorkerConfig {
    /// Defaults for a worker with the given id: 30 s lease, 1 s heartbeat, a stderr log,
    /// the system clock.
    pub fn new(worker_id: String, host: String, pid: u32, logs_dir: PathBuf) -> WorkerConfig {
        WorkerConfig {
            worker_id,
            host,
            pid,
            logs_dir,
            lease_ms: DEFAULT_LEASE_MS,
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            poll_ms: DEFAULT_POLL_MS,
            kill_grace_ms: DEFAULT_KILL_GRACE_MS,
            burst: false,
            observer: Arc::new(StderrLog),
            clock: Arc::new(SystemClock),
            queues: None,
            rollup: None,
            slots: Arc::new(Slots::new(1)),
        }
    }
}

impl WorkerConfig {
    /// What a claim of this worker at `now_ms` asks for, its last job from `after_queue`.
    fn claim_params<'a>(&'a self, now_ms: i64, after_queue: Option<&'a str>) -> ClaimParams<'a> {
        ClaimParams {
            worker_id: &self.worker_id,
            now_ms,
            lease_ms: self.lease_ms,
            queues: self.queues.as_ref(),
            after_queue,
            max_slots: self.slots.free(),
        }
    }

    /// This worker's registration at `now_ms`: at start, and again after being declared lost.
    fn registration(&self, now_ms: i64) -> Registration<'_> {
        Registration {
            id: &self.worker_id,
            host: &self.host,
            pid: self.pid,
            lease_ms: self.lease_ms,
            now_ms,
            queues: self.queues.as_ref(),
            slots: self.slots.total(),
        }
    }
}

impl fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("worker_id", &self.worker_id)
            .field("host", &self.host)
            .field("pid", &self.pid)
            .field("logs_dir", &self.logs_dir)
            .field("lease_ms", &self.lease_ms)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("poll_ms", &self.poll_ms)
            .field("burst", &self.burst)
            .field("queues", &self.queues.as_ref().map(QueueFilter::names))
            .finish_non_exhaustive()
    }
}

/// A new worker id: short, random, unique enough across hosts.
pub fn new_worker_id() -> String {
    format!("w-{}", jobid::random_token(8))
}

/// Wakes idle workers of one process when the store changes or a stop is requested.
#[derive(Default)]
pub struct Wake {
    generation: Mutex<u64>,
    cv: Condvar,
}

impl Wake {
    /// Tells every waiter that something may have changed.
    pub fn bump(&self) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.cv.notify_all();
    }

    /// The current generation, to pass to [`Wake::wait`].
    pub fn current(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the generation differs from `seen` or `timeout` passes.
    pub fn wait(&self, seen: u64, timeout: Duration) {
        let g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.cv.wait_timeout_while(g, timeout, |g| *g == seen);
    }
}

/// The stop flag shared by the workers of one process (signals set it), as a level.
fn flag_level(signal: &AtomicU8) -> StopLevel {
    StopLevel::from_u8(signal.load(Ordering::SeqCst))
}

struct Loop<'a> {
    store: &'a mut dyn Store,
    cfg: &'a WorkerConfig,
    signal: &'a AtomicU8,
    wake: Option<&'a Wake>,
    /// The stop level the store asked for.
    requested: StopLevel,
    /// The last heartbeat said the running job was cancelled: kill it.
    cancel_current: bool,
    /// Backoff policy and log cap from the queue's config, read at start and at every
    /// heartbeat.
    settings: WorkerSettings,
    last_beat: Instant,
    /// The lease of the job in hand cannot end earlier than `lease_ms` after this: read
    /// just before the claim, or the last renewal that succeeded, was sent.
    renewed_at: Instant,
    /// Since when the store has not answered (one line is told per such trouble).
    troubled: Option<Instant>,
    /// Declared lost and not registered again yet: no claims until it is.
    unregistered: bool,
    /// A lasting store fault met by a heartbeat: the worker stops on it.
    fault: Option<Error>,
    summary: WorkerSummary,
}

impl Loop<'_> {
    fn emit(&self, event: Event<'_>) {
        self.cfg.observer.on_event(&event);
    }

    fn now(&self) -> i64 {
        self.cfg.clock.now_ms()
    }

    fn stop_level(&self) -> StopLevel {
        flag_level(self.signal).max(self.requested)
    }

    /// Sleeps up to `total`, waking early for a stop signal.
    fn nap(&self, total: Duration) {
        let until = Instant::now() + total;
        while self.signal.load(Ordering::SeqCst) == 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Waits for a change in the store, the poll interval, or the moment the first full
    /// window of a queue with a rate opens, whichever is first: a queue at its rate
    /// starts its next job as its window allows, not up to a poll interval later.
    fn idle(&mut self, seen: Option<u64>) {
        let mut pause = Duration::from_millis(self.cfg.poll_ms);
        if let Ok(Some(opens_at)) = self.rate_opens_at() {
            let wait_ms = u64::try_from(opens_at - self.now()).unwrap_or(0);
            pause = pause.min(Duration::from_millis(wait_ms));
        }
        match (self.wake, seen) {
            (Some(w), Some(seen)) => w.wait(seen, pause),
            _ => self.nap(pause),
        }
    }

    /// When the first full window among the rated queues this worker serves opens again;
    /// `None` when none is full (or none has a rate: one small read).
    fn rate_opens_at(&mut self) -> Result<Option<i64>> {
        let now = self.now();
        let mut first: Option<i64> = None;
        for name in self.store.queue_rated()? {
            if self.cfg.queues.as_ref().is_none_or(|f| f.names().contains(&name)) {
                let opens = self.store.queue_flow(&name, None, now)?.window_opens_at_ms;
                first = match (first, opens) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Ok(first)
    }

    /// Claims the next due job that fits the process's free slots, skipping the write
    /// lock when none is due.
    fn claim(&mut self) -> Result<Option<Job>> {
        self.renewed_at = Instant::now();
        let now = self.now();
        let claim = self.cfg.claim_params(now, None);
        if claim.max_slots == 0 || !self.store.job_due_exists(&claim)? {
            return Ok(None);
        }
        let job = self.store.job_claim(&claim)?;
        self.hold_slots(job)
    }

    /// Takes the slots of a job just claimed; a job whose slots another worker of the
    /// process took meanwhile goes back to pending, uncounted.
    fn hold_slots(&mut self, job: Option<Job>) -> Result<Option<Job>> {
        match job {
            Some(job) if !self.cfg.slots.take(job.flow.slots) => {
                self.requeue(&job)?;
                Ok(None)
            }
            other => Ok(other),
        }
    }

    /// Whether jobs will become claimable without anyone enqueueing: jobs waiting for
    /// parents that are running now, pending jobs of a queue at its rate, or due jobs that
    /// only the slots other workers of the process hold now keep back. A burst worker then
    /// stays for them (idle until something commits) rather than leave them to nobody.
    fn jobs_to_come(&mut self) -> Result<bool> {
        if !self.store.job_list(Some(JobState::Waiting), Some(1))?.is_empty()
            && !self.store.job_list(Some(JobState::Processing), Some(1))?.is_empty()
        {
            return Ok(true);
        }
        let all_slots = ClaimParams { max_slots: self.cfg.slots.total(), ..self.cfg.claim_params(self.now(), None) };
        if all_slots.max_slots > self.cfg.slots.free() && self.store.job_due_exists(&all_slots)? {
            return Ok(true);
        }
        let queues = self.store.queue_list()?;
        let pending = |q: &crate::store::QueueRow| q.counts.iter().any(|(s, n)| *s == JobState::Pending && *n > 0);
        let serves = |name: &str| self.cfg.queues.as_ref().is_none_or(|f| f.names().iter().any(|n| n == name));
        Ok(queues.iter().any(|q| q.rate_n > 0 && !q.paused && serves(&q.name) && pending(q)))
    }

    fn run(&mut self) -> Result<()> {
        let mut error_pause = Duration::from_millis(100);
        loop {
            self.beat_if_due();
            if let Some(e) = self.fault.take() {
                return Err(e);
            }
            if self.stop_level() > StopLevel::None {
                return Ok(());
            }
            if self.unregistered {
                self.nap(Duration::from_millis(self.cfg.heartbeat_ms));
                continue;
            }
            // Read before looking at the queue, so a commit in between still wakes us.
            let seen = self.wake.map(Wake::current);
            match self.claim() {
                Ok(Some(job)) => {
                    self.store_ok();
                    error_pause = Duration::from_millis(100);
                    self.work_through(job)?;
                }
                Ok(None) if self.cfg.burst && !self.jobs_to_come()? => {
                    // Its last look: what expired while it ran ends now, not with the next
                    // worker's heartbeat.
                    self.store.job_expire(self.now())?;
                    return Ok(());
                }
                Ok(None) => {
                    self.store_ok();
                    error_pause = Duration::from_millis(100);
                    self.idle(seen);
                }
                Err(e) if e.is_lasting() => return Err(e),
                Err(e) => {
                    self.trouble(Trouble::Claim { retry_in: error_pause }, &e);
                    self.nap(error_pause);
                    error_pause = (error_pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Runs `job`, and while the queue is busy the jobs each settle claims in the same
    /// transaction, until none is claimed or a stop is asked for.
    fn work_through(&mut self, job: Job) -> Result<()> {
        let mut next = Some(job);
        while let Some(job) = next.take() {
            if self.stop_level() > StopLevel::None {
                // Claimed but not started: back to pending, uncounted.
                self.cfg.slots.give(job.flow.slots);
                self.requeue(&job)?;
                break;
            }
            next = self.execute(job)?;
            self.beat_if_due();
        }
        Ok(())
    }

    /// Puts a claimed job back to pending, uncounted.
    fn requeue(&mut self, job: &Job) -> Result<bool> {
        let fence = Fence { id: &job.id, attempt: job.attempts, worker_id: &self.cfg.worker_id };
        let clock = Arc::clone(&self.cfg.clock);
        self.retry_store(|s| s.job_requeue(&fence, clock.now_ms()))
    }

    /// Runs one attempt of `job` to its end. Once a heartbeat falls due, the heartbeats
    /// go on a thread of their own while this one watches the job (see `lease.rs`): a forced
    /// stop or a lasting store fault kills it, a cancel cancels it, and a lease that could
    /// not be renewed stops it before the lease runs out.
    fn attempt(&mut self, job: &Job) -> RunOutcome {
        let cfg = self.cfg;
        let log_path = jobid::log_path(&cfg.logs_dir, &job.id);
        let cwd = PathBuf::from(&job.cwd);
        let spec = RunSpec {
            command: &job.command,
            cwd: &cwd,
            // The job's own variables first, so that queuectl's own always win.
            env: job
                .env
                .iter()
                .cloned()
                .chain([
                    ("QUEUECTL_JOB_ID".to_string(), job.id.clone()),
                    ("QUEUECTL_ATTEMPT".to_string(), job.attempts.to_string()),
                ])
                .collect(),
            log_path: &log_path,
            attempt: job.attempts,
            timeout_ms: job.timeout_ms,
            kill_grace_ms: cfg.kill_grace_ms,
            log_max_bytes: self.settings.log_max_bytes,
        };
        // A request read before this attempt began was for the job this worker ran
        // before; this job's own request (kept in its row) comes with the next beat.
        self.cancel_current = false;
        let tick_every = Duration::from_millis(cfg.heartbeat_ms.clamp(10, 200));
        let lease = LeaseClock::new(cfg.lease_ms, cfg.kill_grace_ms);
        let watch = Watch::new(self.renewed_at, self.requested);
        let signal = self.signal;
        std::thread::scope(|scope| {
            let mut idle_loop = Some(&mut *self);
            let mut beats = None;
            let outcome = {
                let mut tick = || {
                    if let Some(lp) = idle_loop.take_if(|lp| lp.beat_due()) {
                        let watch = &watch;
                        beats = Some(scope.spawn(move || lp.beat_while_running(watch)));
                    }
                    // A lasting fault: the result could not be recorded, so the job is
                    // stopped now and left to the lease; it runs again once the store is
                    // repaired or restored.
                    if flag_level(signal).max(watch.requested()) >= StopLevel::Force || watch.fault() {
                        Control::Kill
                    } else if watch.cancel() {
                        Control::Cancel
                    } else if Instant::now() >= lease.stop_at(watch.last_renewed()) {
                        Control::LeaseLost(lease.grace)
                    } else {
                        Control::Continue
                    }
                };
                // (A log that cannot be written never fails the attempt: the runner says so
                // in the tail. What is left is an error before the job could run.)
                runner::run(&spec, tick_every, &mut tick).unwrap_or_else(|e| RunOutcome::not_run(e.to_string(), 0))
            };
            watch.finish();
            if let Some(beats) = beats {
                if let Err(panic) = beats.join() {
                    std::panic::resume_unwind(panic);
                }
            }
            outcome
        })
    }

    /// Runs one claimed job and settles it; returns the next job when it could claim one.
    fn execute(&mut self, job: Job) -> Result<Option<Job>> {
        let attempt = job.attempts;
        let due = job.run_at_ms.max(job.created_at_ms);
        let wait_ms = u64::try_from(self.now() - due).unwrap_or(0);
        self.emit(Event::Started { worker: &self.cfg.worker_id, job: &job.id, attempt, queue: &job.queue, wait_ms });
        let outcome = self.attempt(&job);
        // Its slots are free again: the next claim (with the settle) may use them.
        self.cfg.slots.give(job.flow.slots);
        if let Some(e) = self.fault.take() {
            return Err(e);
        }
        if outcome.lease_lost() {
            // Settle nothing: the attempt's end may not be ours to tell. Once the store
            // answers, the job goes back to pending unless another worker has rescued it.
            let silent_ms = u64::try_from(self.renewed_at.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.emit(Event::LeaseLost { worker: &self.cfg.worker_id, job: &job.id, attempt, silent_ms });
            self.requeue(&job)?;
            return Ok(None);
        }
        if outcome.killed_on_request() {
            self.requeue(&job)?;
            self.summary.requeued += 1;
            self.emit(Event::Requeued { worker: &self.cfg.worker_id, job: &job.id });
            return Ok(None);
        }
        // A worker that was paused through the whole job learns here, before it claims the
        // next one, whether it was declared lost in the meantime.
        self.beat_if_due();
        let claim_next = self.stop_level() == StopLevel::None && !self.unregistered;
        let before_claim = Instant::now();
        let (settled, next) = self.settle(&job, &outcome, claim_next)?;
        let next = self.hold_slots(next)?;
        if next.is_some() {
            self.renewed_at = before_claim;
        }
        match settled {
            Settled::Completed => self.summary.completed += 1,
            Settled::Retry { .. } => self.summary.failed += 1,
            Settled::Dead => self.summary.dead += 1,
            Settled::Cancelled => self.summary.cancelled += 1,
            Settled::Fenced => {}
        }
        self.emit(Event::Finished {
            worker: &self.cfg.worker_id,
            job: &job.id,
            attempt,
            queue: &job.queue,
            settled,
            duration_ms: outcome.duration_ms,
            error: outcome.error.as_deref(),
            by_rule: settled == Settled::Dead && crate::rules::tries_left(attempt, job.max_retries) > 0,
        });
        Ok(next)
    }

    /// Settles the attempt as the policy decides, claiming the next job in the same
    /// transaction when `claim_next`.
    fn settle(&mut self, job: &Job, outcome: &RunOutcome, claim_next: bool) -> Result<(Settled, Option<Job>)> {
        let (cfg, policy, clock) = (self.cfg, self.settings.backoff, Arc::clone(&self.cfg.clock));
        self.retry_store(|s| {
            let now = clock.now_ms();
            let settle = AttemptEnd {
                id: &job.id,
                attempt: job.attempts,
                max_retries: job.max_retries,
                worker_id: &cfg.worker_id,
                now_ms: now,
                success: outcome.success(),
                cancelled: outcome.cancelled(),
                timed_out: outcome.end == runner::RunEnd::TimedOut,
                retry: &job.flow.retry,
                exit_code: outcome.exit_code,
                error: outcome.error.clone(),
                output_tail: outcome.output_tail.clone(),
            }
            .decide(&policy);
            if claim_next {
                s.job_settle_and_claim(&settle, &cfg.claim_params(now, Some(&job.queue)))
            } else {
                s.job_settle(&settle).map(|settled| (settled, None))
            }
        })
    }

    /// Retries a store write that must not be dropped (a settle, a requeue) until it
    /// succeeds, however long the store is away (a network down, a server restarting, a
    /// full disk): one line when the trouble begins, one when it ends. Only a lasting fault
    /// or a forced stop ends the wait; the job's lease then runs out and it is rescued.
    fn retry_store<T>(&mut self, mut f: impl FnMut(&mut dyn Store) -> Result<T>) -> Result<T> {
        let mut pause = Duration::from_millis(50);
        loop {
            match f(self.store) {
                Ok(v) => {
                    self.store_ok();
                    return Ok(v);
                }
                Err(e) if !e.is_lasting() && self.stop_level() < StopLevel::Force => {
                    self.trouble(Trouble::Write, &e);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Runs one worker on `store` until it is asked to stop (or, in burst mode, until no job
/// is due). Registers it first and marks it exited last.
pub fn run_worker(
    store: &mut dyn Store,
    cfg: &WorkerConfig,
    signal: &AtomicU8,
    wake: Option<&Wake>,
) -> Result<WorkerSummary> {
    let mut lp = Loop {
        store,
        cfg,
        signal,
        wake,
        requested: StopLevel::None,
        cancel_current: false,
        settings: WorkerSettings::default(),
        last_beat: Instant::now(),
        renewed_at: Instant::now(),
        troubled: None,
        unregistered: false,
        fault: None,
        summary: WorkerSummary::default(),
    };
    lp.read_settings();
    let result = lp.run();
    if let Err(e) = &result {
        if e.is_lasting() {
            // The other workers of this process share the store: they finish their current
            // job (or meet the fault themselves) and exit too.
            signal.fetch_max(StopLevel::Graceful.as_u8(), Ordering::SeqCst);
            if let Some(w) = wake {
                w.bump();
            }
            lp.emit(Event::Stopping { worker: &cfg.worker_id, cause: e });
        }
    }
    let _ = stats_flush::flush(lp.store, cfg.rollup.as_deref());
    let _ = lp.store.worker_exit(&cfg.worker_id, cfg.clock.now_ms());
    lp.emit(Event::Exited { worker: &cfg.worker_id, summary: &lp.summary, error: result.as_ref().err() });
    result.map(|()| lp.summary)
}
