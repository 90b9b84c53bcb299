//! A pool of worker threads in one process: one store connection per worker, one shared
//! stop flag, and one watcher thread that wakes idle workers when anyone commits.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{run_worker, Wake, WorkerConfig};
use crate::error::{Error, Result};
use crate::events::WorkerSummary;
use crate::store::{open_store, StopLevel, StoreOptions};

/// How long a pool starting keeps trying a store that does not answer (a connection
/// reset, a server restarting, a database locked by another process's first contact).
const START_PATIENCE: Duration = Duration::from_secs(30);

/// Runs `f` until it succeeds, fails for a reason that will not pass (a bad URL, a lasting
/// fault), or [`START_PATIENCE`] has passed.
fn patiently<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let give_up = Instant::now() + START_PATIENCE;
    let mut pause = Duration::from_millis(100);
    loop {
        match f() {
            Err(Error::Database(_)) if Instant::now() + pause < give_up => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
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
        for _ in &cfgs {
            stores.push(patiently(|| open_store(location, opts))?);
        }
        let mut watcher_store = patiently(|| open_store(location, opts))?;
        // Registered once every connection is open, just before the threads start: on a
        // slow link, opening them takes seconds, and a worker registered first would
        // otherwise look silent to the others before its first heartbeat.
        for (cfg, store) in cfgs.iter().zip(stores.iter_mut()) {
            let mut unsure = false;
            patiently(|| match store.worker_register(&cfg.registration(cfg.clock.now_ms())) {
                // A registration whose answer was lost did commit.
                Err(Error::InvalidState(_)) if unsure => Ok(()),
                Err(e) => {
                    unsure |= matches!(e, Error::Database(_));
                    Err(e)
                }
                ok => ok,
            })?;
        }
        let signal = Arc::new(AtomicU8::new(0));
        let running = Arc::new((Mutex::new(cfgs.len()), Condvar::new()));
        let wake = Arc::new(Wake::default());
        // One watcher per process, whatever the worker count: it waits for commits by
        // anyone and wakes the idle workers.
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

    /// Asks every worker of the pool to stop: gracefully after the current job, or by
    /// force, killing it. (`StopLevel::None` asks for nothing.)
    pub fn request_stop(&self, level: StopLevel) {
        self.signal.fetch_max(level.as_u8(), Ordering::SeqCst);
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
                Ok(Ok(s)) => total.add(&s),
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
