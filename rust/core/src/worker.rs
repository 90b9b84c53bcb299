//! The worker loop (claim, run, settle, heartbeat) and a pool of worker threads.
//!
//! A stop request arrives either through the shared flag (signals, set by the caller) or
//! through the store (`worker stop` from any terminal or host); the loop reads both.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::{format_iso8601, now_ms};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::jobid;
use crate::runner::{self, Control, RunSpec};
use crate::store::{open_store, ClaimParams, SettleParams, Settled, Store, StoreOptions, STOP_FORCE, STOP_GRACEFUL};

/// Settings of one worker, resolved by the caller.
#[derive(Debug, Clone)]
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
    /// Write a line to stderr for every job started and settled.
    pub verbose: bool,
}

impl WorkerConfig {
    /// Defaults for a worker with the given id: 30 s lease, 1 s heartbeat.
    pub fn new(worker_id: String, host: String, pid: u32, logs_dir: PathBuf) -> WorkerConfig {
        WorkerConfig {
            worker_id,
            host,
            pid,
            logs_dir,
            lease_ms: 30_000,
            heartbeat_ms: 1_000,
            poll_ms: 100,
            kill_grace_ms: 2_000,
            burst: false,
            verbose: true,
        }
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

/// What one worker did before it exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    pub completed: u64,
    pub failed: u64,
    pub dead: u64,
    pub requeued: u64,
}

struct Loop<'a> {
    store: &'a mut dyn Store,
    cfg: &'a WorkerConfig,
    signal: &'a AtomicU8,
    wake: Option<&'a Wake>,
    /// The stop level the store asked for.
    requested: u8,
    /// Config `log-max-bytes`, read at start and at every heartbeat.
    log_max_bytes: u64,
    last_beat: Instant,
    /// Declared lost and not registered again yet: no claims until it is.
    unregistered: bool,
    /// A lasting store fault met by a heartbeat: the worker stops on it.
    fault: Option<Error>,
}

impl Loop<'_> {
    fn say(&self, msg: impl FnOnce() -> String) {
        if self.cfg.verbose {
            eprintln!("{} {} {}", format_iso8601(now_ms()), self.cfg.worker_id, msg());
        }
    }

    fn stop_level(&self) -> u8 {
        self.signal.load(Ordering::SeqCst).max(self.requested)
    }

    /// Heartbeat when one is due: renew the lease, read stop requests, rescue the jobs of
    /// lost workers. A store error here is reported and retried at the next beat.
    fn beat_if_due(&mut self) {
        if self.last_beat.elapsed() < Duration::from_millis(self.cfg.heartbeat_ms) {
            return;
        }
        self.last_beat = Instant::now();
        let now = now_ms();
        self.read_log_cap();
        match self.store.worker_heartbeat(&self.cfg.worker_id, now) {
            Ok(Some(level)) => self.requested = self.requested.max(level),
            Ok(None) => self.register_again(now),
            Err(e) if e.is_lasting() => {
                self.fault = Some(e);
                return;
            }
            Err(e) => self.say(|| format!("heartbeat failed: {e}")),
        }
        match self.store.job_rescue_expired(now) {
            Ok(rescued) => {
                for (id, attempt) in rescued {
                    self.say(|| format!("rescued job {id} (attempt {attempt}) from a lost worker"));
                }
            }
            Err(e) if e.is_lasting() => {
                self.fault = Some(e);
                return;
            }
            Err(e) => self.say(|| format!("lease rescue failed: {e}")),
        }
        match self.store.worker_reap(now) {
            Ok(_) => {}
            Err(e) if e.is_lasting() => self.fault = Some(e),
            Err(e) => self.say(|| format!("reaping lost workers failed: {e}")),
        }
    }

    /// The store says this worker is not registered: others declared it lost (it missed
    /// heartbeats for longer than its lease: the process was paused, or the machine slept)
    /// and rescued its job, whose result will now be fenced off. It registers again before
    /// it claims anything, so that `worker list` and `worker stop` see it; until that
    /// succeeds it claims nothing.
    fn register_again(&mut self, now: i64) {
        let cfg = self.cfg;
        match self.store.worker_register(&cfg.worker_id, &cfg.host, cfg.pid, cfg.lease_ms, now) {
            Ok(()) => {
                self.unregistered = false;
                self.say(|| {
                    "was declared lost (no heartbeat for longer than its lease: paused or asleep?); \
                     registered again; a job it was running was rescued and its result will be dropped"
                        .to_string()
                });
            }
            Err(e) => {
                self.unregistered = true;
                self.say(|| format!("was declared lost and cannot register again: {e}; claiming nothing"));
            }
        }
    }

    fn read_log_cap(&mut self) {
        if let Ok(v) = self.store.config_get("log-max-bytes") {
            self.log_max_bytes = v.and_then(|v| v.parse().ok()).unwrap_or(runner::DEFAULT_LOG_MAX_BYTES);
        }
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

    fn run(&mut self) -> Result<WorkerSummary> {
        let mut summary = WorkerSummary::default();
        let mut error_pause = Duration::from_millis(100);
        loop {
            self.beat_if_due();
            if let Some(e) = self.fault.take() {
                return Err(e);
            }
            if self.stop_level() > 0 {
                break;
            }
            if self.unregistered {
                self.nap(Duration::from_millis(self.cfg.heartbeat_ms));
                continue;
            }
            // Read before looking at the queue, so a commit in between still wakes us.
            let seen = self.wake.map(Wake::current);
            let now = now_ms();
            let claimed = self.store.job_due_exists(now).and_then(|due| {
                if !due {
                    return Ok(None);
                }
                self.store.job_claim(&ClaimParams {
                    worker_id: &self.cfg.worker_id,
                    now_ms: now,
                    lease_ms: self.cfg.lease_ms,
                })
            });
            match claimed {
                Ok(Some(job)) => {
                    error_pause = Duration::from_millis(100);
                    // While the queue is busy, each settle claims the next job in the
                    // same transaction.
                    let mut next = Some(job);
                    while let Some(job) = next.take() {
                        if self.stop_level() > 0 {
                            // Claimed but not started: back to pending, uncounted.
                            self.retry_store(|s| s.job_requeue(&job.id, job.attempts, &self.cfg.worker_id, now_ms()))?;
                            break;
                        }
                        next = self.execute(job, &mut summary)?;
                        self.beat_if_due();
                    }
                }
                Ok(None) if self.cfg.burst => break,
                Ok(None) => {
                    error_pause = Duration::from_millis(100);
                    match (self.wake, seen) {
                        (Some(w), Some(seen)) => w.wait(seen, Duration::from_millis(self.cfg.poll_ms)),
                        _ => self.nap(Duration::from_millis(self.cfg.poll_ms)),
                    }
                }
                Err(e) if e.is_lasting() => return Err(e),
                Err(e) => {
                    self.say(|| format!("cannot claim a job: {e}; trying again in {:.1}s", error_pause.as_secs_f64()));
                    self.nap(error_pause);
                    error_pause = (error_pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        Ok(summary)
    }

    /// Runs one claimed job and settles it; returns the next job when it could claim one.
    fn execute(&mut self, job: Job, summary: &mut WorkerSummary) -> Result<Option<Job>> {
        let attempt = job.attempts;
        self.say(|| format!("started job {} (attempt {attempt})", job.id));
        let log_path = jobid::log_path(&self.cfg.logs_dir, &job.id);
        let cwd = PathBuf::from(&job.cwd);
        let spec = RunSpec {
            command: &job.command,
            cwd: &cwd,
            env: vec![("QUEUECTL_JOB_ID", job.id.clone()), ("QUEUECTL_ATTEMPT", attempt.to_string())],
            log_path: &log_path,
            attempt,
            timeout_ms: job.timeout_ms,
            kill_grace_ms: self.cfg.kill_grace_ms,
            log_max_bytes: self.log_max_bytes,
        };
        let tick_every = Duration::from_millis(self.cfg.heartbeat_ms.clamp(10, 200));
        let outcome = {
            let mut tick = || {
                self.beat_if_due();
                // A lasting fault: the result could not be recorded, so the job is
                // stopped now and left to the lease; it runs again once the store is
                // repaired or restored.
                if self.stop_level() >= STOP_FORCE || self.fault.is_some() {
                    Control::Kill
                } else {
                    Control::Continue
                }
            };
            runner::run(&spec, tick_every, &mut tick)
        };
        if let Some(e) = self.fault.take() {
            return Err(e);
        }
        let outcome = match outcome {
            Ok(o) => o,
            // The log could not be written (full disk, permissions): the attempt fails
            // without running, so the job is retried rather than lost.
            Err(e) => runner::RunOutcome {
                success: false,
                exit_code: None,
                error: Some(e.to_string()),
                output_tail: String::new(),
                duration_ms: 0,
                killed_on_request: false,
            },
        };
        if outcome.killed_on_request {
            self.retry_store(|s| s.job_requeue(&job.id, attempt, &self.cfg.worker_id, now_ms()))?;
            summary.requeued += 1;
            self.say(|| format!("killed job {} and put it back to pending", job.id));
            return Ok(None);
        }
        let secs = outcome.duration_ms as f64 / 1000.0;
        // A worker that was paused through the whole job learns here, before it claims the
        // next one, whether it was declared lost in the meantime.
        self.beat_if_due();
        let claim_next = self.stop_level() == 0 && !self.unregistered;
        let (settled, next) = self.retry_store(|s| {
            let now = now_ms();
            let settle = SettleParams {
                id: &job.id,
                attempt,
                max_retries: job.max_retries,
                worker_id: &self.cfg.worker_id,
                now_ms: now,
                success: outcome.success,
                exit_code: outcome.exit_code,
                error: outcome.error.clone(),
                output_tail: outcome.output_tail.clone(),
            };
            if claim_next {
                let claim = ClaimParams { worker_id: &self.cfg.worker_id, now_ms: now, lease_ms: self.cfg.lease_ms };
                s.job_settle_and_claim(&settle, &claim)
            } else {
                s.job_settle(&settle).map(|settled| (settled, None))
            }
        })?;
        let why = outcome.error.as_deref().unwrap_or("");
        match settled {
            Settled::Completed => {
                summary.completed += 1;
                self.say(|| format!("completed job {} in {secs:.3}s", job.id));
            }
            Settled::Retry { run_at_ms } => {
                summary.failed += 1;
                self.say(|| format!("job {} failed ({why}); retry at {}", job.id, format_iso8601(run_at_ms)));
            }
            Settled::Dead => {
                summary.dead += 1;
                self.say(|| format!("job {} failed ({why}); no retries left, moved to the DLQ", job.id));
            }
            Settled::Fenced => {
                self.say(|| format!("job {} was taken over after this worker's lease expired; result dropped", job.id));
            }
        }
        Ok(next)
    }

    /// Retries a store write that must not be dropped (a settle) until it succeeds or the
    /// lease would have run out anyway, in which case the job is rescued elsewhere.
    fn retry_store<T>(&mut self, mut f: impl FnMut(&mut dyn Store) -> Result<T>) -> Result<T> {
        let give_up = Instant::now() + Duration::from_millis(self.cfg.lease_ms.max(0) as u64);
        let mut pause = Duration::from_millis(50);
        loop {
            match f(self.store) {
                Ok(v) => return Ok(v),
                Err(e) if !e.is_lasting() && Instant::now() < give_up => {
                    self.say(|| format!("store write failed: {e}; retrying"));
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
        requested: 0,
        last_beat: Instant::now(),
        log_max_bytes: runner::DEFAULT_LOG_MAX_BYTES,
        unregistered: false,
        fault: None,
    };
    lp.read_log_cap();
    let result = lp.run();
    if matches!(&result, Err(e) if e.is_lasting()) {
        // The other workers of this process share the store: they finish their current
        // job (or meet the fault themselves) and exit too.
        signal.fetch_max(STOP_GRACEFUL, Ordering::SeqCst);
        if let Some(w) = wake {
            w.bump();
        }
    }
    let _ = lp.store.worker_exit(&cfg.worker_id, now_ms());
    match &result {
        Ok(s) => lp.say(|| {
            format!("exiting: {} completed, {} failed, {} dead, {} requeued", s.completed, s.failed, s.dead, s.requeued)
        }),
        Err(e) if e.is_lasting() => lp.say(|| format!("stopping: {e}")),
        Err(e) => lp.say(|| format!("exiting on error: {e}")),
    }
    result
}

/// Worker threads of one process, sharing one stop flag.
pub struct Pool {
    handles: Vec<JoinHandle<Result<WorkerSummary>>>,
    ids: Vec<String>,
    signal: Arc<AtomicU8>,
    running: Arc<(Mutex<usize>, Condvar)>,
    wake: Arc<Wake>,
}

impl Pool {
    /// Opens a store connection per worker and registers every worker before starting any
    /// thread, so that on return all of them are visible to `worker list`.
    pub fn start(location: &str, opts: &StoreOptions, cfgs: Vec<WorkerConfig>) -> Result<Pool> {
        let mut stores = Vec::with_capacity(cfgs.len());
        for cfg in &cfgs {
            let mut store = open_store(location, opts)?;
            store.worker_register(&cfg.worker_id, &cfg.host, cfg.pid, cfg.lease_ms, now_ms())?;
            stores.push(store);
        }
        let signal = Arc::new(AtomicU8::new(0));
        let running = Arc::new((Mutex::new(cfgs.len()), Condvar::new()));
        let wake = Arc::new(Wake::default());
        // One watcher per process, whatever the worker count: it waits for commits by
        // anyone and wakes the idle workers.
        let mut watcher_store = open_store(location, opts)?;
        {
            let (signal, running, wake) = (Arc::clone(&signal), Arc::clone(&running), Arc::clone(&wake));
            std::thread::Builder::new()
                .name("queuectl-watcher".into())
                .spawn(move || loop {
                    let workers_left = *running.0.lock().unwrap_or_else(|p| p.into_inner());
                    if workers_left == 0 || signal.load(Ordering::SeqCst) > 0 {
                        break;
                    }
                    match watcher_store.wait_for_change(Duration::from_millis(200)) {
                        Ok(true) => wake.bump(),
                        Ok(false) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(200)),
                    }
                })
                .map_err(|e| Error::Io(format!("cannot start the watcher thread: {e}")))?;
        }
        let ids = cfgs.iter().map(|c| c.worker_id.clone()).collect();
        let mut handles = Vec::new();
        for (cfg, mut store) in cfgs.into_iter().zip(stores) {
            let (signal, running, wake) = (Arc::clone(&signal), Arc::clone(&running), Arc::clone(&wake));
            let h = std::thread::Builder::new()
                .name(cfg.worker_id.clone())
                .spawn(move || {
                    let r = run_worker(store.as_mut(), &cfg, &signal, Some(&wake));
                    let (count, cv) = &*running;
                    *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
                    cv.notify_all();
                    r
                })
                .map_err(|e| Error::Io(format!("cannot start a worker thread: {e}")))?;
            handles.push(h);
        }
        Ok(Pool { handles, ids, signal, running, wake })
    }

    /// The ids of the pool's workers.
    pub fn worker_ids(&self) -> &[String] {
        &self.ids
    }

    /// Asks every worker of the pool to stop: 1 after the current job, 2 killing it.
    pub fn request_stop(&self, level: u8) {
        self.signal.fetch_max(level.clamp(STOP_GRACEFUL, STOP_FORCE), Ordering::SeqCst);
        self.wake.bump();
    }

    /// Waits up to `timeout` for every worker to exit; true when all have.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (count, cv) = &*self.running;
        let guard = count.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = cv.wait_timeout_while(guard, timeout, |n| *n > 0).unwrap_or_else(|p| p.into_inner());
        *guard == 0
    }

    /// Waits for every worker and adds up what they did; the first error wins.
    pub fn join(self) -> Result<WorkerSummary> {
        let mut total = WorkerSummary::default();
        let mut first_err = None;
        for h in self.handles {
            match h.join() {
                Ok(Ok(s)) => {
                    total.completed += s.completed;
                    total.failed += s.failed;
                    total.dead += s.dead;
                    total.requeued += s.requeued;
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(Error::Io("a worker thread panicked".into()));
                }
            }
        }
        first_err.map_or(Ok(total), Err)
    }
}
