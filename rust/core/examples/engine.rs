//! Engine benchmark: claim and settle no-op jobs through the Store, no processes spawned.
//!
//! `cargo run --release -p queuectl-core --example engine -- JOBS PREFILL` prints one JSON
//! object: throughput with 2 threads, and claim latency on an empty table and on a table
//! holding PREFILL finished jobs. `scripts/bench.py` runs it and prints the figures.
//!
//! `... -- JOBS 0 postgresql://...` measures throughput on that (empty) PostgreSQL queue.
//!
//! Both also measure the throughput with the jobs spread over 10 named queues, 2 of them
//! limited to one running job (`throughput_10_queues_per_s`), and over 10 named queues
//! with flow control (`throughput_flow_per_s`): 2 with a rate (one that does not bind:
//! the cost of counting starts, not the wait), 2 with a limit of 1 per key and their jobs
//! keyed over 50 keys, in the same run.

use std::path::Path;
use std::time::Instant;

use queuectl_core::backoff::BackoffPolicy;
use queuectl_core::policy::AttemptEnd;
use queuectl_core::store::prelude::*;
use queuectl_core::store::{open_store, ClaimParams, QueueChange, QueueSetting, SqliteStore, StoreOptions};
use queuectl_core::{clock, NewJob};

fn noop(n: usize) -> Vec<NewJob> {
    spread(n, 1)
}

/// `n` no-op jobs over `queues` named queues in turn (one: the default queue).
fn spread(n: usize, queues: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob {
            id: None,
            command: "true".into(),
            max_retries: 0,
            priority: 0,
            run_at_ms: 0,
            timeout_ms: 0,
            cwd: "/".into(),
            env: Vec::new(),
            queue: if queues == 1 { queuectl_core::job::DEFAULT_QUEUE.into() } else { format!("q{}", i % queues) },
            unique_key: None,
            after: Vec::new(),
            flow: Default::default(),
        })
        .collect()
}

/// The settle of a job that exited 0, as the worker's policy decides it.
fn completed(job: &queuectl_core::Job, worker: &str, now: i64) -> queuectl_core::store::SettleParams {
    AttemptEnd {
        id: &job.id,
        attempt: job.attempts,
        max_retries: job.max_retries,
        worker_id: worker,
        now_ms: now,
        success: true,
        cancelled: false,
        timed_out: false,
        retry: &job.flow.retry,
        exit_code: Some(0),
        error: None,
        output_tail: String::new(),
    }
    .decide(&BackoffPolicy::default())
}

fn worker_store(db: &Path) -> SqliteStore {
    SqliteStore::open(db, &StoreOptions { durable: false, ..StoreOptions::default() }).unwrap()
}

/// Claims and settles until nothing is due, the way the worker loop does (settle one job
/// and claim the next in one transaction); returns how many it did.
fn drain(store: &mut dyn Store, worker: &str) -> u64 {
    fn claim<'a>(worker: &'a str, now: i64, after_queue: Option<&'a str>) -> ClaimParams<'a> {
        ClaimParams { worker_id: worker, now_ms: now, lease_ms: 30_000, queues: None, after_queue, max_slots: u32::MAX }
    }
    let mut done = 0;
    let mut next = store.job_claim(&claim(worker, clock::now_ms(), None)).unwrap();
    while let Some(job) = next {
        let now = clock::now_ms();
        let settle = completed(&job, worker, now);
        next = store.job_settle_and_claim(&settle, &claim(worker, now, Some(&job.queue))).unwrap().1;
        done += 1;
    }
    done
}

/// Mean microseconds of one claim (then settle, untimed) over `rounds` single jobs.
fn claim_latency_us(store: &mut dyn Store, rounds: usize) -> f64 {
    let mut total = 0.0;
    for _ in 0..rounds {
        store.job_insert_many(&noop(1), clock::now_ms()).unwrap();
        let now = clock::now_ms();
        let t = Instant::now();
        let job = store
            .job_claim(&ClaimParams {
                worker_id: "lat",
                now_ms: now,
                lease_ms: 30_000,
                queues: None,
                after_queue: None,
                max_slots: u32::MAX,
            })
            .unwrap()
            .unwrap();
        total += t.elapsed().as_secs_f64();
        let p = completed(&job, "lat", now);
        store.job_settle(&p).unwrap();
    }
    total / rounds as f64 * 1e6
}

/// The rules of the queues of a throughput run.
#[derive(Clone, Copy, PartialEq)]
enum Rules {
    /// None.
    Plain,
    /// The first 2 queues allow one running job.
    Limited,
    /// Queues q0 and q1 have a rate that does not bind; the jobs of q2 and q3 are keyed
    /// over 50 keys, their queues allowing one running job per key.
    Flow,
}

/// Claims and settles `jobs` no-op jobs with 2 threads on `location`, the jobs spread over
/// `queues` named queues under `rules`; jobs per second.
fn throughput(location: &str, jobs: usize, queues: usize, rules: Rules) -> f64 {
    let opts = StoreOptions { durable: false, ..StoreOptions::default() };
    let mut store = open_store(location, &opts).unwrap();
    let mut batch = spread(jobs, queues);
    if rules == Rules::Flow {
        for (i, j) in batch.iter_mut().enumerate() {
            if j.queue == "q2" || j.queue == "q3" {
                j.flow.key = Some(format!("key{}", i % 50));
            }
        }
    }
    store.job_insert_many(&batch, clock::now_ms()).unwrap();
    let set = |store: &mut Box<dyn Store>, names: &[&str], change: QueueChange| {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        store.queue_set(&QueueSetting { names: &names, change, now_ms: clock::now_ms() }).unwrap();
    };
    match rules {
        Rules::Plain => {}
        Rules::Limited => set(&mut store, &["q0", "q1"], QueueChange::Limit(1)),
        Rules::Flow => {
            set(&mut store, &["q0", "q1"], QueueChange::Rate { starts: 1_000_000, period_ms: 1_000 });
            set(&mut store, &["q2", "q3"], QueueChange::KeyLimit(1));
        }
    }
    let t = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let (location, opts) = (location.to_string(), opts.clone());
            std::thread::spawn(move || drain(open_store(&location, &opts).unwrap().as_mut(), &format!("w{i}")))
        })
        .collect();
    let done: u64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(done as usize, jobs);
    done as f64 / t.elapsed().as_secs_f64()
}

/// What the per-minute rollup costs a worker: the two events of every job counted
/// (ns per job, one thread), and one heartbeat's flush of a minute's counts to a SQLite
/// file (ms).
fn rollup_cost(db: &Path) -> (f64, f64) {
    use queuectl_core::events::{Event, Observer};
    use queuectl_core::stats::Rollup;
    let r = Rollup::default();
    let n = 1_000_000u64;
    let t = Instant::now();
    for i in 0..n {
        let queue = if i % 2 == 0 { "default" } else { "mail" };
        r.on_event(&Event::Started { worker: "w", job: "j", attempt: 1, queue, wait_ms: i % 700 });
        r.on_event(&Event::Finished {
            worker: "w",
            job: "j",
            attempt: 1,
            queue,
            settled: queuectl_core::store::Settled::Completed,
            duration_ms: i % 3000,
            error: None,
            by_rule: false,
        });
    }
    let per_job_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let mut store = worker_store(db);
    r.flush(&mut store).unwrap(); // the first flush creates the rows
    let mut flush_ms = Vec::new();
    for _ in 0..20 {
        r.on_event(&Event::Started { worker: "w", job: "j", attempt: 1, queue: "default", wait_ms: 5 });
        let t = Instant::now();
        r.flush(&mut store).unwrap();
        flush_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    flush_ms.sort_by(f64::total_cmp);
    (per_job_ns, flush_ms[flush_ms.len() / 2])
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| raw.get(i).map_or(default, |a| a.parse().expect("numbers"));
    let jobs = number(0, 20_000);
    let prefill = number(1, 1_000_000);
    if let Some(url) = raw.get(2) {
        let rate = throughput(url, jobs, 1, Rules::Plain);
        let queues_rate = throughput(url, jobs, 10, Rules::Limited);
        let flow_rate = throughput(url, jobs, 10, Rules::Flow);
        println!(
            "{{\"jobs\": {jobs}, \"throughput_per_s\": {rate:.0}, \"throughput_10_queues_per_s\": {queues_rate:.0}, \
             \"throughput_flow_per_s\": {flow_rate:.0}}}"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    let throughput_10 = throughput(dir.path().join("queues.db").to_str().unwrap(), jobs, 10, Rules::Limited);
    let throughput_flow = throughput(dir.path().join("flow.db").to_str().unwrap(), jobs, 10, Rules::Flow);
    let throughput = throughput(dir.path().join("throughput.db").to_str().unwrap(), jobs, 1, Rules::Plain);

    let db = dir.path().join("latency.db");
    let mut store = worker_store(&db);
    let empty_us = claim_latency_us(&mut store, 2_000);
    store.job_insert_many(&noop(prefill), clock::now_ms()).unwrap();
    let raw = rusqlite::Connection::open(&db).unwrap();
    raw.execute("UPDATE jobs SET state = 'completed', finished_at_ms = updated_at_ms WHERE state = 'pending'", [])
        .unwrap();
    drop(raw);
    let full_us = claim_latency_us(&mut store, 2_000);
    let (rollup_ns, flush_ms) = rollup_cost(&dir.path().join("rollup.db"));
    println!(
        "{{\"jobs\": {jobs}, \"throughput_per_s\": {throughput:.0}, \"throughput_10_queues_per_s\": {throughput_10:.0}, \
         \"throughput_flow_per_s\": {throughput_flow:.0}, \
         \"claim_us_empty\": {empty_us:.1}, \"claim_us_full\": {full_us:.1}, \"prefill\": {prefill}, \
         \"rollup_ns_per_job\": {rollup_ns:.0}, \"rollup_flush_ms\": {flush_ms:.2}}}"
    );
}
