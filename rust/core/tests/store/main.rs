//! Store conformance: every rule of the `Store` trait, checked on a real SQLite file and
//! on the real PostgreSQL server (a fresh schema per test). This file is the harness: the
//! fixtures and helpers every area shares, and `conformance!`.
//!
//! Each check is a function of a store; `conformance!`, called once in each area's module,
//! runs every check it names once per store kind, as `area::sqlite::name` and
//! `area::postgres::name`. Tests of one store alone, or of connections racing, are plain
//! `#[test]` functions of their area.

#[path = "../common/mod.rs"]
mod common;

use queuectl_core::backoff::BackoffPolicy;
use queuectl_core::policy::{self, AttemptEnd, WorkerSettings};
use queuectl_core::store::prelude::*;
use queuectl_core::store::{
    ByIdChange, ByIdParams, ClaimParams, Fence, QueueChange, QueueFilter, QueueSetting, Registration, Setting,
    SettleParams, Settled,
};
use queuectl_core::NewJob;

const T0: i64 = 1_800_000_000_000;

fn job(id: &str, priority: i64) -> NewJob {
    NewJob {
        id: Some(id.into()),
        command: format!("echo {id}"),
        max_retries: 2,
        priority,
        run_at_ms: T0,
        timeout_ms: 0,
        cwd: "/".into(),
        env: Vec::new(),
        queue: queuectl_core::job::DEFAULT_QUEUE.into(),
        unique_key: None,
        after: Vec::new(),
        flow: Default::default(),
    }
}

/// A job `id` of `queue`, priority `priority`.
fn queued(id: &str, queue: &str, priority: i64) -> NewJob {
    NewJob { queue: queue.into(), ..job(id, priority) }
}

/// What a claim by `worker` from `queues` takes.
fn claim_from(s: &mut dyn Store, worker: &str, now: i64, queues: &[&str]) -> Option<String> {
    let filter = QueueFilter::new(queues).unwrap();
    let p = ClaimParams {
        worker_id: worker,
        now_ms: now,
        lease_ms: 30_000,
        queues: Some(&filter),
        after_queue: None,
        max_slots: u32::MAX,
    };
    s.job_claim(&p).unwrap().map(|j| j.id)
}

/// Whether a claim from `queues` (None: all) would find a job.
fn due(s: &mut dyn Store, now: i64, queues: Option<&[&str]>) -> bool {
    let filter = queues.map(|q| QueueFilter::new(q).unwrap());
    s.job_due_exists(&ClaimParams {
        worker_id: "w",
        now_ms: now,
        lease_ms: 30_000,
        queues: filter.as_ref(),
        after_queue: None,
        max_slots: u32::MAX,
    })
    .unwrap()
}

fn set_queue(s: &mut dyn Store, name: &str, change: QueueChange) {
    s.queue_set(&QueueSetting { names: &[name.to_string()], change, now_ms: T0 }).unwrap();
}

fn claim(s: &mut dyn Store, worker: &str, now: i64) -> Option<String> {
    s.job_claim(&ClaimParams {
        worker_id: worker,
        now_ms: now,
        lease_ms: 30_000,
        queues: None,
        after_queue: None,
        max_slots: u32::MAX,
    })
    .unwrap()
    .map(|j| j.id)
}

/// Settles as a worker does: the policy (from the queue's config) decides, the store writes.
fn settle(s: &mut dyn Store, id: &str, attempt: u32, worker: &str, now: i64, success: bool) -> Settled {
    let max_retries = s.job_get(id).unwrap().max_retries;
    let policy = WorkerSettings::load(s).unwrap().backoff;
    let end = AttemptEnd {
        id,
        attempt,
        max_retries,
        worker_id: worker,
        now_ms: now,
        success,
        cancelled: false,
        timed_out: false,
        retry: &queuectl_core::job::RetryRule::NONE,
        exit_code: Some(if success { 0 } else { 1 }),
        error: (!success).then(|| "exit code 1".to_string()),
        output_tail: "tail".into(),
    };
    s.job_settle(&end.decide(&policy)).unwrap()
}

/// The decided settle of a successful attempt (max_retries 2, the default policy).
fn succeeded(id: &str, attempt: u32, worker: &str, now: i64, tail: &str) -> SettleParams {
    AttemptEnd {
        id,
        attempt,
        max_retries: 2,
        worker_id: worker,
        now_ms: now,
        success: true,
        cancelled: false,
        timed_out: false,
        retry: &queuectl_core::job::RetryRule::NONE,
        exit_code: Some(0),
        error: None,
        output_tail: tail.into(),
    }
    .decide(&BackoffPolicy::default())
}

/// A rescue as a worker's heartbeat runs it.
fn rescue(s: &mut dyn Store, now: i64) -> Vec<(String, u32)> {
    let policy = WorkerSettings::load(s).unwrap().backoff;
    queuectl_core::maintenance::rescue::rescue_expired(s, &policy, now).unwrap()
}

fn reg<'a>(id: &'a str, host: &'a str, pid: u32, lease_ms: i64, now_ms: i64) -> Registration<'a> {
    Registration { id, host, pid, lease_ms, now_ms, queues: None, slots: 1 }
}

fn fence<'a>(id: &'a str, attempt: u32, worker_id: &'a str) -> Fence<'a> {
    Fence { id, attempt, worker_id }
}

fn set<'a>(key: &'a str, value: &'a str) -> Setting<'a> {
    Setting { key, value }
}

fn by_id(s: &mut dyn Store, change: ByIdChange, ids: &[&str], now_ms: i64) -> queuectl_core::Result<u64> {
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    s.job_change_by_id(&ByIdParams { ids: &ids, change, now_ms })
}

/// One job in every state: pending "p", processing "r", completed "c", failed "f", dead "d",
/// cancelled "x".
fn one_job_per_state(s: &mut dyn Store) {
    let mut dies = job("d", 4);
    dies.max_retries = 0;
    s.job_insert_many(&[job("c", 5), job("f", 4), dies, job("r", 3), job("p", 0)], T0).unwrap();
    assert_eq!(claim(s, "w", T0).as_deref(), Some("c"));
    assert_eq!(settle(s, "c", 1, "w", T0, true), Settled::Completed);
    assert_eq!(claim(s, "w", T0).as_deref(), Some("f"));
    assert_eq!(settle(s, "f", 1, "w", T0, false), Settled::Retry { run_at_ms: T0 + 2_000 });
    assert_eq!(claim(s, "w", T0).as_deref(), Some("d"));
    assert_eq!(settle(s, "d", 1, "w", T0, false), Settled::Dead);
    assert_eq!(claim(s, "w", T0).as_deref(), Some("r"));
    s.job_insert_many(&[job("x", 0)], T0).unwrap();
    assert_eq!(by_id(s, ByIdChange::Cancel, &["x"], T0).unwrap(), 1);
}

fn after(id: &str, parents: &[&str]) -> NewJob {
    NewJob { after: parents.iter().map(|p| p.to_string()).collect(), ..job(id, 0) }
}

fn keyed(id: &str, key: &str) -> NewJob {
    NewJob { unique_key: Some(key.into()), ..job(id, 0) }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { let (_g, mut s) = crate::common::sqlite(); super::$name(s.as_mut()); } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                let Some((_g, mut s)) = crate::common::postgres() else { return };
                super::$name(s.as_mut());
            } )*
        }
    };
}

mod admin;
mod cancel;
mod config;
mod dependencies;
mod flow;
mod inspect;
mod jobs;
mod postgres_only;
mod queues;
mod schedules;
mod schema;
mod sqlite_only;
mod stats;
mod unique_keys;
mod workers;
