//! The per-minute rollup behind metrics and the dashboard's charts: what workers did,
//! counted in memory as it happens ([`Rollup`] is an [`Observer`]) and added to the
//! store's `stats` table with each heartbeat, so a reader never scans the jobs to learn
//! throughput, outcomes or how long jobs ran and waited.
//!
//! Each row is one counter: (minute, queue, metric) and a value. Minute 0 holds the totals
//! since the database began (Prometheus counters); other minutes are kept for
//! [`RETENTION_MS`]. What a worker counted but had not flushed is lost with it if the
//! process dies (at most a heartbeat's worth).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::clock::now_ms;
use crate::error::Result;
use crate::events::{Event, Observer};
use crate::store::{Settled, StatRow, StatsStore};

/// Minutes older than this are forgotten; their counts stay in the totals.
pub const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
const MINUTE_MS: i64 = 60_000;

/// Upper bounds of the duration and wait histograms' buckets, in milliseconds; a last
/// bucket holds the rest (`+Inf`).
pub const BUCKET_BOUNDS_MS: [u64; 14] =
    [10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000];
const BUCKETS: usize = BUCKET_BOUNDS_MS.len() + 1;

/// The counters kept per queue and minute, by their metric names in the store.
const SCALARS: [&str; 9] =
    ["started", "completed", "retried", "dead", "cancelled", "fenced", "run_ms_sum", "wait_ms_sum", "requeued"];
const STARTED: usize = 0;
const RUN_MS: usize = 6;
const WAIT_MS: usize = 7;
const REQUEUED: usize = 8;

/// The metric name of a histogram bucket: `run_le_250`, `wait_le_inf`.
pub fn bucket_metric(histogram: &str, bucket: usize) -> String {
    match BUCKET_BOUNDS_MS.get(bucket) {
        Some(ms) => format!("{histogram}_le_{ms}"),
        None => format!("{histogram}_le_inf"),
    }
}

fn bucket_of(ms: u64) -> usize {
    BUCKET_BOUNDS_MS.iter().position(|b| ms <= *b).unwrap_or(BUCKET_BOUNDS_MS.len())
}

#[derive(Debug, Clone, Default)]
struct Counts {
    scalars: [i64; SCALARS.len()],
    run: [i64; BUCKETS],
    wait: [i64; BUCKETS],
    /// Leases that ran out (jobs this worker rescued from lost workers): kept on the queue
    /// "" since a rescue does not read the job's queue.
    leases_expired: i64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        let sum = |a: &mut [i64], b: &[i64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        sum(&mut self.scalars, &other.scalars);
        sum(&mut self.run, &other.run);
        sum(&mut self.wait, &other.wait);
        self.leases_expired += other.leases_expired;
    }

    fn rows(&self, minute_ms: i64, queue: &str, out: &mut Vec<StatRow>) {
        let mut push = |metric: String, value: i64| {
            if value != 0 {
                out.push(StatRow { minute_ms, queue: queue.to_string(), metric, value });
            }
        };
        for (name, v) in SCALARS.iter().zip(self.scalars) {
            push((*name).to_string(), v);
        }
        for (i, v) in self.run.iter().enumerate() {
            push(bucket_metric("run", i), *v);
        }
        for (i, v) in self.wait.iter().enumerate() {
            push(bucket_metric("wait", i), *v);
        }
        push("leases_expired".to_string(), self.leases_expired);
    }
}

type Pending = BTreeMap<i64, HashMap<String, Counts>>;

/// Counts worker events by minute and queue until [`Rollup::flush`] adds them to the
/// store. One per worker process, shared by its workers.
#[derive(Debug, Default)]
pub struct Rollup {
    pending: Mutex<Pending>,
}

impl Rollup {
    fn count(&self, queue: &str, f: impl FnOnce(&mut Counts)) {
        let minute = now_ms() / MINUTE_MS * MINUTE_MS;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let queues = pending.entry(minute).or_default();
        match queues.get_mut(queue) {
            Some(c) => f(c),
            None => f(queues.entry(queue.to_string()).or_default()),
        }
    }

    /// Adds what was counted since the last flush to the store, in one transaction, and
    /// forgets minutes older than [`RETENTION_MS`]. Nothing counted: no write. On an
    /// error the counts are kept for the next flush.
    pub fn flush(&self, store: &mut (impl StatsStore + ?Sized)) -> Result<()> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if taken.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::new();
        for (minute, queues) in &taken {
            let mut names: Vec<&String> = queues.keys().collect();
            names.sort();
            for q in names {
                queues[q].rows(*minute, q, &mut rows);
            }
        }
        // One order for every writer: concurrent flushes lock rows in the same order.
        rows.sort_by(|a, b| (a.minute_ms, &a.queue, &a.metric).cmp(&(b.minute_ms, &b.queue, &b.metric)));
        if let Err(e) = store.stats_add(&rows, now_ms() - RETENTION_MS) {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (minute, queues) in taken {
                let slot = pending.entry(minute).or_default();
                for (q, c) in queues {
                    slot.entry(q).or_default().add(&c);
                }
            }
            return Err(e);
        }
        Ok(())
    }
}

impl Observer for Rollup {
    fn on_event(&self, event: &Event<'_>) {
        match *event {
            Event::Started { queue, wait_ms, .. } => self.count(queue, |c| {
                c.scalars[STARTED] += 1;
                c.scalars[WAIT_MS] += wait_ms as i64;
                c.wait[bucket_of(wait_ms)] += 1;
            }),
            Event::Finished { queue, settled, duration_ms, .. } => self.count(queue, |c| {
                let outcome = match settled {
                    Settled::Completed => 1,
                    Settled::Retry { .. } => 2,
                    Settled::Dead => 3,
                    Settled::Cancelled => 4,
                    Settled::Fenced => 5,
                };
                c.scalars[outcome] += 1;
                c.scalars[RUN_MS] += duration_ms as i64;
                c.run[bucket_of(duration_ms)] += 1;
            }),
            Event::Requeued { .. } => self.count("", |c| c.scalars[REQUEUED] += 1),
            Event::Rescued { .. } => self.count("", |c| c.leases_expired += 1),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_bounds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(10), 0);
        assert_eq!(bucket_of(11), 1);
        assert_eq!(bucket_of(3_600_000), 13);
        assert_eq!(bucket_of(3_600_001), 14);
        assert_eq!(bucket_metric("run", 3), "run_le_250");
        assert_eq!(bucket_metric("wait", 14), "wait_le_inf");
    }

    #[test]
    fn events_become_rows_by_queue_and_metric() {
        let r = Rollup::default();
        r.on_event(&Event::Started { worker: "w", job: "a", attempt: 1, queue: "q", wait_ms: 70 });
        r.on_event(&Event::Finished {
            worker: "w",
            job: "a",
            attempt: 1,
            queue: "q",
            settled: Settled::Dead,
            duration_ms: 300,
            error: None,
            by_rule: false,
        });
        r.on_event(&Event::Rescued { worker: "w", job: "b", attempt: 2 });
        let pending = r.pending.lock().unwrap();
        let mut rows = Vec::new();
        for (m, qs) in pending.iter() {
            for (q, c) in qs {
                c.rows(*m, q, &mut rows);
            }
        }
        let get = |q: &str, m: &str| rows.iter().find(|r| r.queue == q && r.metric == m).map(|r| r.value);
        assert_eq!(get("q", "started"), Some(1));
        assert_eq!(get("q", "dead"), Some(1));
        assert_eq!(get("q", "completed"), None);
        assert_eq!(get("q", "run_ms_sum"), Some(300));
        assert_eq!(get("q", "run_le_500"), Some(1));
        assert_eq!(get("q", "wait_le_100"), Some(1));
        assert_eq!(get("", "leases_expired"), Some(1));
    }
}
