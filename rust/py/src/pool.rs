//! The `WorkerPool` class: worker threads of this process, started and stopped from Python.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use pyo3::prelude::*;

use queuectl_core::events::{Counters, Observer, Observers, StderrLog};
use queuectl_core::stats::Rollup;
use queuectl_core::store::{QueueFilter, StoreOptions};
use queuectl_core::worker::{
    new_worker_id, Pool, Slots, WorkerConfig, DEFAULT_HEARTBEAT_MS, DEFAULT_KILL_GRACE_MS, DEFAULT_LEASE_MS,
    DEFAULT_POLL_MS,
};

use crate::errors::py_err;
use crate::stop_level;

/// Worker threads running in this process.
#[pyclass(frozen, module = "queuectl._core")]
pub struct WorkerPool {
    pool: RwLock<Option<Pool>>,
    ids: Vec<String>,
    counters: Arc<Counters>,
}

#[pymethods]
impl WorkerPool {
    /// Registers `count` workers and starts them; returns once all are registered.
    #[new]
    #[pyo3(signature = (location, count, *, logs_dir, host, pid, lease_ms = DEFAULT_LEASE_MS,
                        heartbeat_ms = DEFAULT_HEARTBEAT_MS, poll_ms = DEFAULT_POLL_MS,
                        kill_grace_ms = DEFAULT_KILL_GRACE_MS, burst = false, verbose = true, queues = None,
                        slots = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        location: String,
        count: usize,
        logs_dir: PathBuf,
        host: String,
        pid: u32,
        lease_ms: i64,
        heartbeat_ms: u64,
        poll_ms: u64,
        kill_grace_ms: u64,
        burst: bool,
        verbose: bool,
        queues: Option<Vec<String>>,
        slots: Option<u32>,
    ) -> PyResult<Self> {
        // The slots of the process, shared by its workers; as many as workers by default.
        let slots = Arc::new(Slots::new(slots.unwrap_or_else(|| u32::try_from(count).unwrap_or(u32::MAX))));
        let queues = queues.map(|q| QueueFilter::new(&q)).transpose().map_err(py_err)?;
        let counters = Arc::new(Counters::default());
        let rollup = Arc::new(Rollup::default());
        let mut observers: Vec<Arc<dyn Observer>> = vec![counters.clone(), rollup.clone()];
        if verbose {
            observers.push(Arc::new(StderrLog));
        }
        let observer: Arc<dyn Observer> = Arc::new(Observers(observers));
        let cfgs: Vec<WorkerConfig> = (0..count)
            .map(|_| WorkerConfig {
                lease_ms,
                heartbeat_ms,
                poll_ms,
                kill_grace_ms,
                burst,
                observer: Arc::clone(&observer),
                queues: queues.clone(),
                rollup: Some(Arc::clone(&rollup)),
                slots: Arc::clone(&slots),
                ..WorkerConfig::new(new_worker_id(), host.clone(), pid, logs_dir.clone())
            })
            .collect();
        let opts = StoreOptions { durable: false, ..StoreOptions::default() };
        let pool = py.detach(|| Pool::start(&location, &opts, cfgs)).map_err(py_err)?;
        let ids = pool.worker_ids().to_vec();
        Ok(WorkerPool { pool: RwLock::new(Some(pool)), ids, counters })
    }

    #[getter]
    fn worker_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// Asks every worker of the pool to stop: 1 after its current job, 2 killing it.
    fn request_stop(&self, level: u8) -> PyResult<()> {
        let level = stop_level(level)?;
        if let Some(p) = self.pool.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            p.request_stop(level);
        }
        Ok(())
    }

    /// What the pool's workers have done so far, counted from their events.
    fn counters(&self) -> HashMap<&'static str, u64> {
        let c = self.counters.snapshot();
        [
            ("started", c.started),
            ("completed", c.completed),
            ("retried", c.retried),
            ("dead", c.dead),
            ("cancelled", c.cancelled),
            ("fenced", c.fenced),
            ("requeued", c.requeued),
            ("rescued", c.rescued),
            ("registered_again", c.registered_again),
            ("store_errors", c.store_errors),
            ("run_ms", c.run_ms),
        ]
        .into()
    }

    /// Waits up to `timeout_s` for every worker to exit; true when all have.
    fn wait(&self, py: Python<'_>, timeout_s: f64) -> bool {
        py.detach(|| match self.pool.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(p) => p.wait(Duration::from_secs_f64(timeout_s.max(0.0))),
            None => true,
        })
    }

    /// Joins the workers; returns what they did as a dict.
    fn join(&self, py: Python<'_>) -> PyResult<HashMap<&'static str, u64>> {
        let pool = self.pool.write().unwrap_or_else(|p| p.into_inner()).take();
        let Some(pool) = pool else {
            return Ok(Default::default());
        };
        let s = py.detach(|| pool.join()).map_err(py_err)?;
        Ok([
            ("completed", s.completed),
            ("failed", s.failed),
            ("dead", s.dead),
            ("cancelled", s.cancelled),
            ("requeued", s.requeued),
        ]
        .into())
    }
}
