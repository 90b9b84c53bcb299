//! Store conformance: every rule of the `Store` trait, checked on a real SQLite file and
//! on the real PostgreSQL server (a fresh schema per test).
//!
//! Each check is a function of a store; `conformance!` runs every one of them once per
//! store kind, as `sqlite::name` and `postgres::name`.

mod common;

use queuectl_core::backoff::BackoffPolicy;
use std::time::{Duration, Instant};

use queuectl_core::policy::{self, AttemptEnd, WorkerSettings};
use queuectl_core::store::prelude::*;
use queuectl_core::store::{
    transfer, Beat, ByIdChange, ByIdParams, ClaimParams, Fence, InsertBatch, Inserted, ListFilter, PageFilter,
    PostgresStore, QueueChange, QueueFilter, QueueSetting, Registration, Setting, SettleParams, Settled, SqliteStore,
    StatRow, StopLevel, StoreOptions, WorkerState, SCHEMA_VERSION,
};
use queuectl_core::{Error, JobState, NewJob, Outcome};

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
    }
}

/// A job `id` of `queue`, priority `priority`.
fn queued(id: &str, queue: &str, priority: i64) -> NewJob {
    NewJob { queue: queue.into(), ..job(id, priority) }
}

/// What a claim by `worker` from `queues` takes.
fn claim_from(s: &mut dyn Store, worker: &str, now: i64, queues: &[&str]) -> Option<String> {
    let filter = QueueFilter::new(queues).unwrap();
    let p = ClaimParams { worker_id: worker, now_ms: now, lease_ms: 30_000, queues: Some(&filter), after_queue: None };
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
    })
    .unwrap()
}

fn set_queue(s: &mut dyn Store, name: &str, change: QueueChange) {
    s.queue_set(&QueueSetting { names: &[name.to_string()], change, now_ms: T0 }).unwrap();
}

fn claim(s: &mut dyn Store, worker: &str, now: i64) -> Option<String> {
    s.job_claim(&ClaimParams { worker_id: worker, now_ms: now, lease_ms: 30_000, queues: None, after_queue: None })
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
        exit_code: Some(0),
        error: None,
        output_tail: tail.into(),
    }
    .decide(&BackoffPolicy::default())
}

/// A rescue as a worker's heartbeat runs it.
fn rescue(s: &mut dyn Store, now: i64) -> Vec<(String, u32)> {
    let policy = WorkerSettings::load(s).unwrap().backoff;
    policy::rescue_expired(s, &policy, now).unwrap()
}

fn reg<'a>(id: &'a str, host: &'a str, pid: u32, lease_ms: i64, now_ms: i64) -> Registration<'a> {
    Registration { id, host, pid, lease_ms, now_ms, queues: None }
}

fn fence<'a>(id: &'a str, attempt: u32, worker_id: &'a str) -> Fence<'a> {
    Fence { id, attempt, worker_id }
}

fn set<'a>(key: &'a str, value: &'a str) -> Setting<'a> {
    Setting { key, value }
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

conformance!(
    claims_by_priority_then_fifo_and_only_when_due,
    insert_is_all_or_nothing,
    failures_back_off_then_die,
    backoff_follows_config,
    expired_lease_is_rescued_and_the_stale_worker_fenced,
    heartbeat_renews_the_lease_and_carries_stop_requests,
    silent_workers_are_reaped,
    dead_retry_is_all_or_nothing,
    counts_list_and_purge,
    settle_and_claim_is_one_step,
    config_round_trips,
    binary_output_is_kept,
    dead_retry_all_revives_every_dead_job,
    job_list_reads_every_state,
    a_rescue_leaves_a_job_whose_lease_was_renewed_alone,
    stop_requests_never_lower_the_level,
    retry_and_delete_by_id_are_all_or_nothing,
    a_jobs_env_round_trips,
    jobs_ahead_count_what_a_claim_takes_first,
    claims_take_turns_over_the_workers_queues,
    a_paused_queue_is_not_claimed_until_resumed,
    a_limit_caps_the_processing_jobs_of_a_queue,
    queue_list_counts_every_state_and_shows_settings,
    cancel_ends_waiting_jobs_and_asks_the_worker_of_a_running_one,
    a_running_job_cancelled_is_never_retried_however_its_attempt_ends,
    a_cancelled_job_that_finishes_first_keeps_its_result,
    a_unique_key_admits_one_unfinished_job,
    dependents_wait_for_every_parent_then_run,
    a_parent_that_does_not_complete_cancels_its_dependents_down_the_chain,
    a_parent_rescued_after_its_worker_died_still_releases_its_dependents,
    a_schedule_fires_each_occurrence_once,
    pages_run_newest_first_and_their_cursors_reach_every_job,
    stats_add_to_their_minute_and_to_the_total,
);

fn page_ids(s: &mut dyn Store, f: PageFilter<'_>) -> (Vec<String>, Option<i64>) {
    let page = s.job_page(&f).unwrap();
    (page.jobs.into_iter().map(|j| j.id).collect(), page.next)
}

fn pages_run_newest_first_and_their_cursors_reach_every_job(s: &mut dyn Store) {
    assert_eq!(page_ids(s, PageFilter { limit: 10, ..Default::default() }), (vec![], None));
    let jobs: Vec<NewJob> = (0..7)
        .map(|i| {
            let mut j = queued(&format!("j{i}"), if i % 2 == 0 { "even" } else { "odd" }, 0);
            j.command = format!("echo {}", if i == 3 { "needle" } else { "hay" });
            j.max_retries = 0;
            j
        })
        .collect();
    s.job_insert_many(&jobs, T0).unwrap();
    // Pages of three, newest first, each starting below the last one's oldest job.
    let (first, next) = page_ids(s, PageFilter { limit: 3, ..Default::default() });
    assert_eq!(first, ["j6", "j5", "j4"]);
    let (second, next) = page_ids(s, PageFilter { limit: 3, before: next, ..Default::default() });
    assert_eq!(second, ["j3", "j2", "j1"]);
    let (third, next) = page_ids(s, PageFilter { limit: 3, before: next, ..Default::default() });
    assert_eq!(third, ["j0"]);
    assert_eq!(next, None);
    // Filters: a queue, a state, a search in the command or the id.
    let (odd, _) = page_ids(s, PageFilter { queue: Some("odd"), limit: 10, ..Default::default() });
    assert_eq!(odd, ["j5", "j3", "j1"]);
    assert_eq!(claim(s, "w", T0).as_deref(), Some("j0"));
    settle(s, "j0", 1, "w", T0, false);
    let (dead, _) = page_ids(s, PageFilter { state: Some(JobState::Dead), limit: 10, ..Default::default() });
    assert_eq!(dead, ["j0"]);
    let (pending, _) = page_ids(
        s,
        PageFilter { state: Some(JobState::Pending), queue: Some("even"), limit: 10, ..Default::default() },
    );
    assert_eq!(pending, ["j6", "j4", "j2"]);
    let (found, next) = page_ids(s, PageFilter { search: Some("needle"), limit: 10, ..Default::default() });
    assert_eq!((found, next), (vec!["j3".to_string()], None));
    let (found, _) = page_ids(s, PageFilter { search: Some("j5"), limit: 10, ..Default::default() });
    assert_eq!(found, ["j5"]);
    // Text that means something to SQL is only text here.
    let (none, _) = page_ids(s, PageFilter { search: Some("%' OR 1=1 --"), limit: 10, ..Default::default() });
    assert!(none.is_empty());
}

fn stats_add_to_their_minute_and_to_the_total(s: &mut dyn Store) {
    let row = |minute_ms: i64, queue: &str, metric: &str, value: i64| StatRow {
        minute_ms,
        queue: queue.into(),
        metric: metric.into(),
        value,
    };
    let m1 = T0 / 60_000 * 60_000;
    let m2 = m1 + 60_000;
    s.stats_add(&[row(m1, "q", "completed", 3), row(m1, "q", "dead", 1)], 0).unwrap();
    s.stats_add(&[row(m1, "q", "completed", 2), row(m2, "q", "completed", 5)], 0).unwrap();
    let mut totals = s.stats_read(None).unwrap();
    totals.sort_by(|a, b| a.metric.cmp(&b.metric));
    assert_eq!(totals, [row(0, "q", "completed", 10), row(0, "q", "dead", 1)]);
    let minutes = s.stats_read(Some(m1)).unwrap();
    assert!(minutes.contains(&row(m1, "q", "completed", 5)));
    assert!(minutes.contains(&row(m2, "q", "completed", 5)));
    assert_eq!(s.stats_read(Some(m2)).unwrap(), [row(m2, "q", "completed", 5)]);
    // Forgetting old minutes keeps the totals.
    s.stats_add(&[row(m2, "q", "dead", 1)], m2).unwrap();
    assert!(s.stats_read(Some(0)).unwrap().iter().all(|r| r.minute_ms == m2));
    let total_dead = s.stats_read(None).unwrap().into_iter().find(|r| r.metric == "dead").map(|r| r.value);
    assert_eq!(total_dead, Some(2));
}

fn a_schedule_fires_each_occurrence_once(s: &mut dyn Store) {
    use queuectl_core::schedule::{new_schedule, occurrence_id};
    use queuectl_core::store::{Fire, ScheduleChange};
    let d = queuectl_core::spec::SpecDefaults { max_retries: 1, timeout_ms: 0, cwd: "/".into(), now_ms: T0 };
    let row = new_schedule("hourly", "@hourly", None, "skip", r#"{"command":"true","queue":"ops"}"#, &d).unwrap();
    s.schedule_add(&row).unwrap();
    let e = s.schedule_add(&row).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("exists")), "{e:?}");
    let listed = s.schedule_list(None, None).unwrap();
    assert_eq!(listed, std::slice::from_ref(&row));
    assert!(s.schedule_list(None, Some(row.next_fire_ms - 1)).unwrap().is_empty(), "not due yet");
    assert_eq!(s.schedule_list(None, Some(row.next_fire_ms)).unwrap().len(), 1);
    assert!(s.schedule_list(Some("other"), None).unwrap().is_empty());
    // Two firers of one occurrence: the first enqueues its job, the second changes nothing.
    let occ = row.next_fire_ms;
    let mut job = queuectl_core::spec::parse_one(&row.job, &d).unwrap();
    job.id = Some(occurrence_id("hourly", occ));
    let fire = Fire {
        name: "hourly",
        expected_next_ms: occ,
        occurrence_ms: occ,
        next_fire_ms: occ + 3_600_000,
        job: Some(&job),
        now_ms: occ,
    };
    assert!(s.schedule_fire(&fire).unwrap());
    assert!(!s.schedule_fire(&fire).unwrap());
    let fired = s.job_get(&occurrence_id("hourly", occ)).unwrap();
    assert_eq!((fired.state, fired.queue.as_str(), fired.max_retries), (JobState::Pending, "ops", 1));
    let now = s.schedule_list(Some("hourly"), None).unwrap().pop().unwrap();
    assert_eq!((now.next_fire_ms, now.fired, now.skipped), (occ + 3_600_000, 1, 0));
    assert_eq!((now.last_job_id.as_deref(), now.last_job_state), (fired.id.as_str().into(), Some(JobState::Pending)));
    // A skip moves it on and counts; a paused schedule is not fired and not due.
    let skip = Fire { expected_next_ms: occ + 3_600_000, next_fire_ms: occ + 7_200_000, job: None, ..fire };
    assert!(s.schedule_fire(&skip).unwrap());
    assert_eq!(s.schedule_list(Some("hourly"), None).unwrap()[0].skipped, 1);
    s.schedule_change("hourly", ScheduleChange::Pause, T0).unwrap();
    assert!(s.schedule_list(None, Some(i64::MAX)).unwrap().is_empty());
    let late = Fire { expected_next_ms: occ + 7_200_000, next_fire_ms: occ + 10_800_000, job: None, ..fire };
    assert!(!s.schedule_fire(&late).unwrap());
    s.schedule_change("hourly", ScheduleChange::Resume { next_fire_ms: occ + 36_000_000 }, T0).unwrap();
    let resumed = s.schedule_list(Some("hourly"), None).unwrap().pop().unwrap();
    assert_eq!((resumed.paused, resumed.next_fire_ms), (false, occ + 36_000_000));
    s.schedule_change("hourly", ScheduleChange::Remove, T0).unwrap();
    assert!(s.schedule_list(None, None).unwrap().is_empty());
    let e = s.schedule_change("hourly", ScheduleChange::Pause, T0).unwrap_err();
    assert!(e.to_string().contains("no schedule named"), "{e}");
}

fn after(id: &str, parents: &[&str]) -> NewJob {
    NewJob { after: parents.iter().map(|p| p.to_string()).collect(), ..job(id, 0) }
}

fn state_of(s: &mut dyn Store, id: &str) -> (JobState, u32) {
    let j = s.job_get(id).unwrap();
    (j.state, j.waiting_on)
}

/// Claims every due job and settles it (success unless its id is in `fail`), as workers
/// would, until none is due; the ids in claim order.
fn drain(s: &mut dyn Store, now: i64, fail: &[&str]) -> Vec<String> {
    let mut ran = Vec::new();
    while let Some(id) = claim(s, "w", now) {
        let attempt = s.job_get(&id).unwrap().attempts;
        settle(s, &id, attempt, "w", now, !fail.contains(&id.as_str()));
        ran.push(id);
    }
    ran
}

fn dependents_wait_for_every_parent_then_run(s: &mut dyn Store) {
    // One batch: later jobs may name earlier ones.
    s.job_insert_many(&[job("a", 0), job("b", 0), after("c", &["a", "b"]), after("d", &["c"])], T0).unwrap();
    assert_eq!(state_of(s, "c"), (JobState::Waiting, 2));
    assert_eq!(state_of(s, "d"), (JobState::Waiting, 1));
    let parents = s.job_parents("c").unwrap();
    assert_eq!(parents, [("a".to_string(), JobState::Pending), ("b".to_string(), JobState::Pending)]);
    assert!(s.job_parents("a").unwrap().is_empty());
    let counts = s.job_count_by_state().unwrap();
    assert_eq!(counts[0], (JobState::Waiting, 2), "{counts:?}");
    let waiting: Vec<String> = s.job_list(Some(JobState::Waiting), None).unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(waiting, ["c", "d"]);
    // Waiting jobs are never claimed, whatever their priority or run_at.
    assert_eq!(claim(s, "w", T0).as_deref(), Some("a"));
    assert_eq!(claim(s, "w2", T0).as_deref(), Some("b"));
    assert_eq!(claim(s, "w3", T0), None);
    assert!(!due(s, T0 + 3_600_000, None));
    // The first parent to complete counts c down; the last makes it pending, and d waits on.
    assert_eq!(settle(s, "a", 1, "w", T0 + 1, true), Settled::Completed);
    assert_eq!(state_of(s, "c"), (JobState::Waiting, 1));
    assert_eq!(settle(s, "b", 1, "w2", T0 + 2, true), Settled::Completed);
    assert_eq!(state_of(s, "c"), (JobState::Pending, 0));
    assert_eq!(s.job_get("c").unwrap().updated_at_ms, T0 + 2);
    assert_eq!(state_of(s, "d"), (JobState::Waiting, 1));
    // A settle+claim that completes a parent releases the dependent in the same step.
    assert_eq!(claim(s, "w", T0 + 3).as_deref(), Some("c"));
    let claim_p = ClaimParams { worker_id: "w", now_ms: T0 + 4, lease_ms: 30_000, queues: None, after_queue: None };
    let (settled, next) = s.job_settle_and_claim(&succeeded("c", 1, "w", T0 + 4, ""), &claim_p).unwrap();
    assert_eq!(settled, Settled::Completed);
    assert_eq!(state_of(s, "d").1, 0);
    assert_ne!(state_of(s, "d").0, JobState::Waiting);
    // SQLite's claim in that transaction sees d already; PostgreSQL's statement cannot.
    if let Some(next) = next {
        assert_eq!(next.id, "d");
        assert_eq!(s.job_settle(&succeeded("d", 1, "w", T0 + 5, "")).unwrap(), Settled::Completed);
    }
    drain(s, T0 + 5, &[]);
    assert_eq!(state_of(s, "d"), (JobState::Completed, 0));
    // After a completed job: pending at once, the edge kept for people to read.
    s.job_insert_many(&[after("e", &["a"])], T0 + 6).unwrap();
    assert_eq!(state_of(s, "e"), (JobState::Pending, 0));
    assert_eq!(s.job_parents("e").unwrap(), [("a".to_string(), JobState::Completed)]);
    // A parent of the batch skipped for its unique key: the job it names instead is the
    // unfinished holder of the key.
    s.job_insert_many(&[keyed("holder", "k1")], T0 + 6).unwrap();
    let got = s.job_insert(InsertBatch {
        jobs: &[keyed("twin", "k1"), after("tail", &["twin"])],
        now_ms: T0 + 6,
        progress: None,
    });
    assert_eq!(got.unwrap().ids, ["holder", "tail"]);
    assert_eq!(s.job_parents("tail").unwrap(), [("holder".to_string(), JobState::Pending)]);
    drain(s, T0 + 7, &[]);
    // An unknown parent, or one later in the batch, fails the whole batch.
    let e = s.job_insert_many(&[job("f", 0), after("g", &["nope"])], T0).unwrap_err();
    assert!(matches!(&e, Error::InvalidInput(m) if m.contains("no job \"nope\"")), "{e:?}");
    let e = s.job_insert_many(&[after("g", &["h"]), job("h", 0)], T0).unwrap_err();
    assert!(matches!(&e, Error::InvalidInput(_)), "{e:?}");
    assert!(matches!(s.job_get("f"), Err(Error::NotFound(_))));
    assert!(matches!(s.job_get("h"), Err(Error::NotFound(_))));
    let report = queuectl_core::store::check::check(s, T0 + 10);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

fn a_parent_that_does_not_complete_cancels_its_dependents_down_the_chain(s: &mut dyn Store) {
    let mut p = job("p", 0);
    p.max_retries = 0;
    s.job_insert_many(&[p, job("other", 0)], T0).unwrap();
    s.job_insert_many(&[after("c1", &["p", "other"]), after("c2", &["c1"]), after("c3", &["c2"])], T0).unwrap();
    assert_eq!(drain(s, T0 + 1, &["p"]), ["p", "other"]);
    assert_eq!(s.job_get("p").unwrap().state, JobState::Dead);
    for (id, cause, how) in [("c1", "p", "dead"), ("c2", "c1", "cancelled"), ("c3", "c2", "cancelled")] {
        let j = s.job_get(id).unwrap();
        assert_eq!(j.state, JobState::Cancelled, "{id}");
        let want = format!("cancelled: it runs after job {cause}, which ended {how}");
        assert_eq!(j.last_error.as_deref(), Some(want.as_str()), "{id}");
        assert_eq!(j.finished_at_ms, Some(T0 + 1), "{id}");
    }
    // Nothing may run after a job that has ended so.
    let e = s.job_insert_many(&[after("late", &["p"])], T0).unwrap_err();
    assert!(matches!(&e, Error::InvalidInput(m) if m.contains("is dead")), "{e:?}");
    // A cancel by id cascades too, from a waiting job or a pending one.
    s.job_insert_many(&[job("q", 0), after("r", &["q"]), after("t", &["r"])], T0).unwrap();
    let e = by_id(s, ByIdChange::Delete, &["q"], T0 + 2).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("waiting to run after it")), "{e:?}");
    assert_eq!(by_id(s, ByIdChange::Cancel, &["r"], T0 + 2).unwrap(), 1);
    assert_eq!(s.job_get("r").unwrap().last_error.as_deref(), Some(queuectl_core::store::CANCELLED_ERROR));
    assert_eq!(
        s.job_get("t").unwrap().last_error.as_deref(),
        Some("cancelled: it runs after job r, which ended cancelled")
    );
    assert_eq!(s.job_get("q").unwrap().state, JobState::Pending, "a parent is left alone");
    // A dependent cannot be retried while a parent it runs after is dead or cancelled;
    // retried after it (one call, parent first), it waits for it again.
    let e = by_id(s, ByIdChange::Retry, &["c1"], T0 + 3).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("runs after job \"p\", which is dead")), "{e:?}");
    assert_eq!(by_id(s, ByIdChange::Retry, &["p", "c1", "c2"], T0 + 3).unwrap(), 3);
    assert_eq!(state_of(s, "c1"), (JobState::Waiting, 1), "other completed: one to go");
    assert_eq!(state_of(s, "c2"), (JobState::Waiting, 1));
    assert_eq!(drain(s, T0 + 4, &[]), ["p", "c1", "c2", "q"], "released in enqueue order");
    assert_eq!(s.job_get("c3").unwrap().state, JobState::Cancelled, "not retried, stays cancelled");
    // A running parent cancelled: its worker's settle cancels the dependents.
    s.job_insert_many(&[job("run", 0), after("dep", &["run"])], T0).unwrap();
    assert_eq!(claim(s, "w", T0 + 5).as_deref(), Some("run"));
    assert_eq!(by_id(s, ByIdChange::Cancel, &["run"], T0 + 5).unwrap(), 1);
    assert_eq!(s.job_get("dep").unwrap().state, JobState::Waiting, "until the kill is settled");
    assert_eq!(settle(s, "run", 1, "w", T0 + 6, false), Settled::Cancelled);
    assert_eq!(s.job_get("dep").unwrap().state, JobState::Cancelled);
    // A forced stop of a job whose cancel was asked for ends it cancelled: the same.
    s.job_insert_many(&[job("forced", 0), after("dep2", &["forced"])], T0).unwrap();
    assert_eq!(claim(s, "w", T0 + 7).as_deref(), Some("forced"));
    assert_eq!(by_id(s, ByIdChange::Cancel, &["forced"], T0 + 7).unwrap(), 1);
    assert!(s.job_requeue(&fence("forced", 1, "w"), T0 + 8).unwrap());
    assert_eq!(s.job_get("dep2").unwrap().state, JobState::Cancelled);
    // Deleting a dependent, then purging what ended, leaves no edge behind.
    assert_eq!(by_id(s, ByIdChange::Delete, &["c3"], T0 + 9).unwrap(), 1);
    s.job_purge(JobState::Cancelled, None).unwrap();
    s.job_purge(JobState::Completed, None).unwrap();
    let report = queuectl_core::store::check::check(s, T0 + 10);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

fn a_parent_rescued_after_its_worker_died_still_releases_its_dependents(s: &mut dyn Store) {
    s.job_insert_many(&[job("p", 0), after("c", &["p"])], T0).unwrap();
    assert_eq!(claim(s, "lost", T0).as_deref(), Some("p"));
    // Its worker died: the rescue counts the attempt as failed; the dependent waits on.
    assert_eq!(rescue(s, T0 + 60_000), [("p".to_string(), 1)]);
    assert_eq!(state_of(s, "c"), (JobState::Waiting, 1));
    assert_eq!(drain(s, T0 + 120_000, &[]), ["p", "c"]);
    assert_eq!(state_of(s, "c"), (JobState::Completed, 0));
}

/// Eight connections settle the 200 parents of one job at once (and then run it): the
/// last parent's settle, whichever connection runs it, makes the job pending, exactly once.
fn fan_in_race(location: &str) {
    let mut s = queuectl_core::open_store(location, &StoreOptions::default()).unwrap();
    let parents: Vec<NewJob> = (0..200).map(|i| job(&format!("p{i}"), 0)).collect();
    s.job_insert_many(&parents, T0).unwrap();
    let names: Vec<String> = parents.iter().map(|p| p.id.clone().unwrap()).collect();
    let child = NewJob { after: names, ..job("child", 0) };
    s.job_insert_many(&[child], T0).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let location = location.to_string();
            std::thread::spawn(move || {
                let mut s = queuectl_core::open_store(&location, &StoreOptions::default()).unwrap();
                let worker = format!("w{t}");
                let mut ran = Vec::new();
                while let Some(id) = claim(s.as_mut(), &worker, T0 + 1) {
                    s.job_settle(&succeeded(&id, 1, &worker, T0 + 1, "")).unwrap();
                    ran.push(id);
                }
                ran
            })
        })
        .collect();
    let ran: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    // A thread that found nothing due stops; the child may have been released after all
    // of them stopped: run what is left.
    let mut rest = Vec::new();
    while let Some(id) = claim(s.as_mut(), "last", T0 + 2) {
        s.job_settle(&succeeded(&id, 1, "last", T0 + 2, "")).unwrap();
        rest.push(id);
    }
    assert_eq!(ran.len() + rest.len(), 201, "every job ran once");
    assert_eq!(ran.iter().chain(&rest).filter(|id| *id == "child").count(), 1);
    assert_eq!(s.job_get("child").unwrap().state, JobState::Completed);
}

#[test]
fn fan_in_holds_when_many_connections_settle_the_parents_at_once_on_sqlite() {
    let (g, _s) = common::sqlite();
    fan_in_race(g.dir.path().join("q.db").to_str().unwrap());
}

#[test]
fn fan_in_holds_when_many_connections_settle_the_parents_at_once_on_postgres() {
    let Some(schema) = common::PgSchema::create() else { return };
    fan_in_race(&schema.url);
}

fn keyed(id: &str, key: &str) -> NewJob {
    NewJob { unique_key: Some(key.into()), ..job(id, 0) }
}

fn a_unique_key_admits_one_unfinished_job(s: &mut dyn Store) {
    let batch =
        |s: &mut dyn Store, jobs: &[NewJob]| s.job_insert(InsertBatch { jobs, now_ms: T0, progress: None }).unwrap();
    assert_eq!(batch(s, &[keyed("a", "k")]), Inserted { ids: vec!["a".into()], skipped: vec![] });
    assert_eq!(s.job_get("a").unwrap().unique_key.as_deref(), Some("k"));
    // While "a" is unfinished (pending, processing, failed), the key adds nothing: the id
    // given back is a's, and jobs without a key or with another key are added as usual.
    let got = batch(s, &[job("plain", 0), keyed("b", "k"), keyed("c", "other"), keyed("d", "other")]);
    assert_eq!(got.ids, ["plain", "a", "c", "c"]);
    assert_eq!(got.skipped, [1, 3]);
    assert!(matches!(s.job_get("b"), Err(Error::NotFound(_))));
    assert_eq!(claim(s, "w", T0).as_deref(), Some("a"));
    assert_eq!(batch(s, &[keyed("b", "k")]).ids, ["a"]);
    assert_eq!(settle(s, "a", 1, "w", T0, false), Settled::Retry { run_at_ms: T0 + 2_000 });
    assert_eq!(batch(s, &[keyed("b", "k")]).ids, ["a"]);
    // A duplicate id is still an error, and the whole batch is not added.
    let e = s.job_insert_many(&[keyed("e", "new"), job("plain", 0)], T0).unwrap_err();
    assert_eq!(e, Error::DuplicateId("plain".into()));
    assert!(matches!(s.job_get("e"), Err(Error::NotFound(_))));
    // Once it has ended, the key is free again.
    assert_eq!(by_id(s, ByIdChange::Cancel, &["a"], T0 + 1).unwrap(), 1);
    assert_eq!(batch(s, &[keyed("b", "k")]), Inserted { ids: vec!["b".into()], skipped: vec![] });
    // The ended one cannot run again while the new one is unfinished: nothing changes.
    let e = by_id(s, ByIdChange::Retry, &["a"], T0 + 2).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("unique_key")), "{e:?}");
    assert_eq!(s.job_get("a").unwrap().state, JobState::Cancelled);
    assert_eq!(by_id(s, ByIdChange::Cancel, &["b"], T0 + 3).unwrap(), 1);
    assert_eq!(by_id(s, ByIdChange::Retry, &["a"], T0 + 4).unwrap(), 1);
    assert_eq!(s.job_get("a").unwrap().state, JobState::Pending);
    // The same for every dead job at once: an error, and none of them retried.
    let mut dies = keyed("dies", "d");
    dies.max_retries = 0;
    s.job_insert_many(&[dies], T0).unwrap();
    while let Some(id) = claim(s, "w", T0 + 5) {
        let ok = id != "dies";
        let attempt = s.job_get(&id).unwrap().attempts;
        settle(s, &id, attempt, "w", T0 + 5, ok);
    }
    assert_eq!(s.job_get("dies").unwrap().state, JobState::Dead);
    assert_eq!(batch(s, &[keyed("twin", "d")]).ids, ["twin"]);
    let e = s.dead_retry_all(T0 + 6).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("unique_key")), "{e:?}");
    assert_eq!(s.job_get("dies").unwrap().state, JobState::Dead);
}

/// Eight connections enqueue the same keys at once, each key many times: each key gets
/// exactly one job, and every connection is told its id.
fn unique_race(location: &str) {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let location = location.to_string();
            std::thread::spawn(move || {
                let mut s = queuectl_core::open_store(&location, &StoreOptions::default()).unwrap();
                (0..20)
                    .map(|k| {
                        let jobs = [keyed(&format!("t{t}k{k}"), &format!("key{k}"))];
                        s.job_insert(InsertBatch { jobs: &jobs, now_ms: T0, progress: None }).unwrap().ids.remove(0)
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let told: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut s = queuectl_core::open_store(location, &StoreOptions::default()).unwrap();
    let jobs = s.job_list(None, None).unwrap();
    assert_eq!(jobs.len(), 20, "one job per key");
    for k in 0..20 {
        let key = format!("key{k}");
        let holder = jobs.iter().find(|j| j.unique_key.as_deref() == Some(&key)).unwrap();
        assert!(told.iter().all(|ids| ids[k] == holder.id), "every enqueue of {key} names {}", holder.id);
    }
}

#[test]
fn a_unique_key_holds_when_many_connections_enqueue_at_once_on_sqlite() {
    let (g, _s) = common::sqlite();
    unique_race(g.dir.path().join("q.db").to_str().unwrap());
}

#[test]
fn a_unique_key_holds_when_many_connections_enqueue_at_once_on_postgres() {
    let Some(schema) = common::PgSchema::create() else { return };
    unique_race(&schema.url);
}

fn by_id(s: &mut dyn Store, change: ByIdChange, ids: &[&str], now_ms: i64) -> queuectl_core::Result<u64> {
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    s.job_change_by_id(&ByIdParams { ids: &ids, change, now_ms })
}

fn cancel_ends_waiting_jobs_and_asks_the_worker_of_a_running_one(s: &mut dyn Store) {
    s.worker_register(&reg("w", "host", 1, 30_000, T0)).unwrap();
    one_job_per_state(s);
    // An ended job fails the whole call, naming it; nothing changes.
    let e = by_id(s, ByIdChange::Cancel, &["p", "c"], T0 + 9).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("\"c\" is completed")), "{e:?}");
    assert_eq!(by_id(s, ByIdChange::Cancel, &["p", "nope"], T0 + 9).unwrap_err(), Error::NotFound("nope".into()));
    assert_eq!(s.job_get("p").unwrap().state, JobState::Pending);
    assert_eq!(s.worker_heartbeat("w", T0 + 5).unwrap().map(|b| b.cancel), Some(false));
    assert_eq!(by_id(s, ByIdChange::Cancel, &["p", "f", "r"], T0 + 9).unwrap(), 3);
    for id in ["p", "f"] {
        let j = s.job_get(id).unwrap();
        assert_eq!(
            (j.state, j.finished_at_ms, j.last_error.as_deref()),
            (JobState::Cancelled, Some(T0 + 9), Some(queuectl_core::store::CANCELLED_ERROR)),
            "{id}"
        );
    }
    // The running job stays processing until its worker, told by its next heartbeat,
    // kills it; a second cancel keeps the time of the first.
    let r = s.job_get("r").unwrap();
    assert_eq!((r.state, r.cancel_requested_ms), (JobState::Processing, Some(T0 + 9)));
    assert_eq!(by_id(s, ByIdChange::Cancel, &["r"], T0 + 50).unwrap(), 1);
    assert_eq!(s.job_get("r").unwrap().cancel_requested_ms, Some(T0 + 9));
    assert_eq!(s.worker_heartbeat("w", T0 + 10).unwrap(), Some(Beat { stop: StopLevel::None, cancel: true }));
    // Cancelled jobs are claimed never again, and cannot be cancelled twice.
    assert!(!due(s, T0 + 3_600_000, None));
    assert_eq!(claim(s, "w2", T0 + 3_600_000), None);
    let e = by_id(s, ByIdChange::Cancel, &["x"], T0 + 9).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("\"x\" is cancelled")), "{e:?}");
    // The worker settles the killed attempt: cancelled, with its history.
    let end = AttemptEnd {
        id: "r",
        attempt: 1,
        max_retries: 2,
        worker_id: "w",
        now_ms: T0 + 20,
        success: false,
        cancelled: true,
        exit_code: None,
        error: Some("killed: cancelled on request".into()),
        output_tail: String::new(),
    };
    assert_eq!(s.job_settle(&end.decide(&BackoffPolicy::default())).unwrap(), Settled::Cancelled);
    assert_eq!(s.job_attempts("r").unwrap().last().map(|a| a.outcome), Some(Outcome::Cancelled));
    // Counted, listed and filtered as a state of its own.
    let counts = s.job_count_by_state().unwrap();
    assert_eq!(counts.iter().find(|(st, _)| *st == JobState::Cancelled), Some(&(JobState::Cancelled, 4)));
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 6);
    let listed: Vec<String> = s.job_list(Some(JobState::Cancelled), None).unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(listed, ["f", "r", "p", "x"]);
    let q = s.queue_list().unwrap();
    assert_eq!(q[0].counts.iter().find(|(st, _)| *st == JobState::Cancelled), Some(&(JobState::Cancelled, 4)));
    // Retried by id like a dead job; purged like one.
    assert_eq!(by_id(s, ByIdChange::Retry, &["r"], T0 + 30).unwrap(), 1);
    let r = s.job_get("r").unwrap();
    assert_eq!((r.state, r.attempts, r.cancel_requested_ms), (JobState::Pending, 0, None));
    let mut purged = s.job_purge(JobState::Cancelled, None).unwrap();
    purged.sort();
    assert_eq!(purged, ["f", "p", "x"]);
    assert!(s.job_list(Some(JobState::Cancelled), None).unwrap().is_empty());
    let report = queuectl_core::store::check::check(s, T0 + 40);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

fn a_running_job_cancelled_is_never_retried_however_its_attempt_ends(s: &mut dyn Store) {
    s.job_insert_many(&[job("fails", 0), job("lost", 0)], T0).unwrap();
    assert_eq!(claim(s, "w0", T0).as_deref(), Some("fails"));
    assert_eq!(claim(s, "w1", T0).as_deref(), Some("lost"));
    assert_eq!(by_id(s, ByIdChange::Cancel, &["fails", "lost"], T0 + 1).unwrap(), 2);
    // It failed by itself before its worker heard of the cancel: cancelled, not retried.
    assert_eq!(settle(s, "fails", 1, "w0", T0 + 2, false), Settled::Cancelled);
    let j = s.job_get("fails").unwrap();
    assert_eq!((j.state, j.last_error.as_deref()), (JobState::Cancelled, Some("exit code 1")));
    assert_eq!(s.job_attempts("fails").unwrap()[0].outcome, Outcome::Cancelled);
    // Its worker was lost: the rescue ends it cancelled too.
    assert_eq!(rescue(s, T0 + 60_000), [("lost".to_string(), 1)]);
    assert_eq!(s.job_get("lost").unwrap().state, JobState::Cancelled);
    assert_eq!(s.job_attempts("lost").unwrap()[0].outcome, Outcome::Cancelled);
}

fn a_cancelled_job_that_finishes_first_keeps_its_result(s: &mut dyn Store) {
    s.job_insert_many(&[job("done", 0), job("stopped", 0)], T0).unwrap();
    assert_eq!(claim(s, "w", T0).as_deref(), Some("done"));
    assert_eq!(claim(s, "v", T0).as_deref(), Some("stopped"));
    assert_eq!(by_id(s, ByIdChange::Cancel, &["done", "stopped"], T0 + 1).unwrap(), 2);
    // It completed before its worker heard of the cancel: the work was done, it stays done.
    assert_eq!(settle(s, "done", 1, "w", T0 + 2, true), Settled::Completed);
    // Its worker was stopped by force: not back to pending, but cancelled.
    assert!(s.job_requeue(&fence("stopped", 1, "v"), T0 + 3).unwrap());
    let j = s.job_get("stopped").unwrap();
    assert_eq!((j.state, j.attempts, j.finished_at_ms), (JobState::Cancelled, 0, Some(T0 + 3)));
    // A retry clears the request: it runs normally again.
    assert_eq!(by_id(s, ByIdChange::Retry, &["stopped"], T0 + 4).unwrap(), 1);
    assert_eq!(claim(s, "v", T0 + 4).as_deref(), Some("stopped"));
    assert_eq!(settle(s, "stopped", 1, "v", T0 + 5, false), Settled::Retry { run_at_ms: T0 + 2_005 });
}

fn claims_take_turns_over_the_workers_queues(s: &mut dyn Store) {
    s.job_insert_many(
        &[queued("a1", "a", 0), queued("b1", "b", 5), queued("a2", "a", 5), queued("a3", "a", 0), job("d1", 9)],
        T0,
    )
    .unwrap();
    assert_eq!(s.job_get("a1").unwrap().queue, "a");
    assert_eq!(s.job_get("d1").unwrap().queue, "default");
    assert!(!due(s, T0, Some(&["nothing-here"])));
    assert!(due(s, T0, Some(&["b"])));
    // Queues take turns in name order after the last job's queue, wrapping around; within
    // a queue, priority then FIFO.
    let filter = QueueFilter::new(&["a", "b"]).unwrap();
    let mut after: Option<String> = None;
    let mut order = Vec::new();
    for _ in 0..4 {
        let p = ClaimParams {
            worker_id: "w",
            now_ms: T0,
            lease_ms: 30_000,
            queues: Some(&filter),
            after_queue: after.as_deref(),
        };
        let Some(j) = s.job_claim(&p).unwrap() else { break };
        order.push(j.id);
        after = Some(j.queue);
    }
    assert_eq!(order, ["a2", "b1", "a1", "a3"], "a, b, then a again as b is empty");
    assert_eq!(claim_from(s, "w", T0, &["a", "b"]), None);
    assert_eq!(claim(s, "w", T0).as_deref(), Some("d1"), "no filter: every queue");
    let bad = QueueFilter::new(&["a", "no spaces"]).unwrap_err();
    assert!(matches!(bad, Error::InvalidInput(_)), "{bad:?}");
    assert!(QueueFilter::new::<&str>(&[]).is_err());
}

fn a_paused_queue_is_not_claimed_until_resumed(s: &mut dyn Store) {
    // A queue may be paused before it has any job.
    set_queue(s, "slow", QueueChange::Pause);
    s.job_insert_many(&[queued("s1", "slow", 9), job("d1", 0)], T0).unwrap();
    assert_eq!(claim(s, "w", T0).as_deref(), Some("d1"), "the paused queue's more urgent job is skipped");
    assert_eq!(claim(s, "w", T0), None);
    assert!(!due(s, T0, None));
    set_queue(s, "slow", QueueChange::Resume);
    assert!(due(s, T0, None));
    assert_eq!(claim(s, "w", T0).as_deref(), Some("s1"));
}

fn a_limit_caps_the_processing_jobs_of_a_queue(s: &mut dyn Store) {
    set_queue(s, "two", QueueChange::Limit(2));
    s.job_insert_many(&[queued("t1", "two", 0), queued("t2", "two", 0), queued("t3", "two", 0), job("d1", 0)], T0)
        .unwrap();
    assert_eq!(claim_from(s, "w1", T0, &["two"]).as_deref(), Some("t1"));
    assert_eq!(claim_from(s, "w2", T0, &["two"]).as_deref(), Some("t2"));
    assert_eq!(claim_from(s, "w3", T0, &["two"]), None, "the queue is full");
    assert_eq!(claim(s, "w3", T0).as_deref(), Some("d1"), "the full queue is skipped, not waited on");
    assert_eq!(claim(s, "w4", T0), None);
    assert!(!due(s, T0, Some(&["two"])));
    // A settle frees a slot, and a settle+claim may take it.
    let (settled, next) = s
        .job_settle_and_claim(
            &succeeded("t1", 1, "w1", T0 + 1, ""),
            &ClaimParams { worker_id: "w1", now_ms: T0 + 1, lease_ms: 30_000, queues: None, after_queue: None },
        )
        .unwrap();
    assert_eq!((settled, next.map(|j| j.id).as_deref()), (Settled::Completed, Some("t3")));
    assert_eq!(claim(s, "w4", T0 + 1), None);
    // 0 lifts the limit.
    set_queue(s, "two", QueueChange::Limit(0));
    s.job_insert_many(&[queued("t4", "two", 0)], T0 + 2).unwrap();
    assert_eq!(claim(s, "w4", T0 + 2).as_deref(), Some("t4"));
}

fn queue_list_counts_every_state_and_shows_settings(s: &mut dyn Store) {
    set_queue(s, "held", QueueChange::Pause);
    set_queue(s, "capped", QueueChange::Limit(3));
    s.job_insert_many(&[queued("c1", "capped", 0), queued("c2", "capped", 0), job("d1", 0), job("d2", 0)], T0).unwrap();
    assert_eq!(claim(s, "w", T0).as_deref(), Some("c1"));
    assert_eq!(settle(s, "c1", 1, "w", T0 + 1, true), Settled::Completed);
    assert_eq!(claim(s, "w", T0 + 1).as_deref(), Some("c2"));
    let rows = s.queue_list().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["capped", "default", "held"]);
    let count = |name: &str, state: JobState| {
        let row = rows.iter().find(|r| r.name == name).unwrap();
        assert_eq!(row.counts.len(), JobState::ALL.len(), "every state, zeros included");
        row.counts.iter().find(|(s, _)| *s == state).unwrap().1
    };
    assert_eq!((count("capped", JobState::Completed), count("capped", JobState::Processing)), (1, 1));
    assert_eq!((count("default", JobState::Pending), count("default", JobState::Completed)), (2, 0));
    assert_eq!(count("held", JobState::Pending), 0);
    let held = rows.iter().find(|r| r.name == "held").unwrap();
    let capped = rows.iter().find(|r| r.name == "capped").unwrap();
    assert!(held.paused && !capped.paused);
    assert_eq!((held.limit, capped.limit), (0, 3));
    // A queue with neither jobs nor settings is left out; a bad name changes nothing.
    set_queue(s, "held", QueueChange::Resume);
    assert!(!s.queue_list().unwrap().iter().any(|r| r.name == "held"));
    let names = ["ok".to_string(), "not ok".to_string()];
    let err = s.queue_set(&QueueSetting { names: &names, change: QueueChange::Pause, now_ms: T0 }).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(!s.queue_list().unwrap().iter().any(|r| r.name == "ok"));
    let listed: Vec<String> = s
        .job_list_where(&ListFilter { queue: Some("capped"), ..Default::default() })
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, ["c1", "c2"]);
}

fn jobs_ahead_count_what_a_claim_takes_first(s: &mut dyn Store) {
    let mut later = job("later", 9);
    later.run_at_ms = T0 + 60_000;
    s.job_insert_many(&[job("a", 0), job("b", 5), job("c", 0), later, job("d", 5)], T0).unwrap();
    let ahead = |s: &mut dyn Store, id: &str, now| s.job_ahead(id, now).unwrap();
    // Claim order at T0: b, d (priority 5), then a, c; "later" is not due yet.
    assert_eq!((ahead(s, "b", T0), ahead(s, "d", T0), ahead(s, "a", T0), ahead(s, "c", T0)), (0, 1, 2, 3));
    assert_eq!(ahead(s, "later", T0), 0, "nothing due outranks it");
    assert_eq!(ahead(s, "c", T0 + 60_000), 4, "once due, the priority-9 job is ahead too");
    assert_eq!(claim(s, "w", T0).as_deref(), Some("b"));
    assert_eq!(ahead(s, "c", T0), 2, "a claimed job is no longer ahead");
    assert!(matches!(s.job_ahead("nope", T0), Err(Error::NotFound(_))));
}

fn a_jobs_env_round_trips(s: &mut dyn Store) {
    let mut with_env = job("e", 1);
    with_env.env = vec![("TOKEN".into(), "s3cr3t".into()), ("EMPTY".into(), String::new())];
    s.job_insert_many(&[with_env, job("plain", 0)], T0).unwrap();
    let claimed = s
        .job_claim(&ClaimParams { worker_id: "w", now_ms: T0, lease_ms: 30_000, queues: None, after_queue: None })
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, "e");
    let mut got = claimed.env.clone();
    got.sort();
    assert_eq!(got, [("EMPTY".to_string(), String::new()), ("TOKEN".to_string(), "s3cr3t".to_string())]);
    assert!(!format!("{claimed:?}").contains("s3cr3t"), "Debug shows names only");
    assert!(s.job_get("plain").unwrap().env.is_empty());
}

fn retry_and_delete_by_id_are_all_or_nothing(s: &mut dyn Store) {
    one_job_per_state(s);
    let ids = |v: &[&str]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
    fn change(change: ByIdChange, ids: &[String]) -> ByIdParams<'_> {
        ByIdParams { ids, change, now_ms: T0 + 9 }
    }
    // A completed job cannot be retried: nothing changes, the error names it.
    let e = s.job_change_by_id(&change(ByIdChange::Retry, &ids(&["f", "d", "c"]))).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("\"c\" is completed")), "{e:?}");
    assert_eq!((s.job_get("f").unwrap().state, s.job_get("d").unwrap().state), (JobState::Failed, JobState::Dead));
    assert_eq!(s.job_change_by_id(&change(ByIdChange::Retry, &ids(&["f", "d"]))).unwrap(), 2);
    for id in ["f", "d"] {
        let j = s.job_get(id).unwrap();
        assert_eq!((j.state, j.attempts, j.run_at_ms), (JobState::Pending, 0, T0 + 9), "{id}");
    }
    // A processing job cannot be deleted; an unknown one is not found; both change nothing.
    let e = s.job_change_by_id(&change(ByIdChange::Delete, &ids(&["c", "r"]))).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("processing")), "{e:?}");
    let e = s.job_change_by_id(&change(ByIdChange::Delete, &ids(&["c", "nope"]))).unwrap_err();
    assert_eq!(e, Error::NotFound("nope".into()));
    assert_eq!(s.job_get("c").unwrap().state, JobState::Completed);
    assert_eq!(s.job_change_by_id(&change(ByIdChange::Delete, &ids(&["c", "d"]))).unwrap(), 2);
    assert!(matches!(s.job_get("c"), Err(Error::NotFound(_))));
    assert!(matches!(s.job_attempts("d"), Err(Error::NotFound(_))));
    // The history of the deleted jobs went with them: check finds no orphaned attempts.
    let report = queuectl_core::store::check::check(s, T0 + 9);
    assert!(!report.problems.iter().any(|p| p.contains("belongs to no job")), "{:?}", report.problems);
    assert_eq!(s.job_list(None, None).unwrap().len(), 4);
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

fn job_list_reads_every_state(s: &mut dyn Store) {
    one_job_per_state(s);
    s.job_insert_many(&[after("wt", &["p"])], T0).unwrap();
    for (state, id) in [
        (JobState::Waiting, "wt"),
        (JobState::Pending, "p"),
        (JobState::Processing, "r"),
        (JobState::Completed, "c"),
        (JobState::Failed, "f"),
        (JobState::Dead, "d"),
        (JobState::Cancelled, "x"),
    ] {
        let listed: Vec<String> = s.job_list(Some(state), None).unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(listed, [id], "{state}");
        assert!(s.job_list(Some(state), Some(0)).unwrap().is_empty(), "{state}");
    }
    let counts = s.job_count_by_state().unwrap();
    assert_eq!(counts, JobState::ALL.map(|st| (st, 1)).to_vec());
    let all: Vec<String> = s.job_list(None, None).unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(all, ["c", "f", "d", "r", "p", "x", "wt"], "enqueue order");
}

fn dead_retry_all_revives_every_dead_job(s: &mut dyn Store) {
    one_job_per_state(s);
    let mut dies = job("d2", 0);
    dies.max_retries = 0;
    s.job_insert_many(&[dies], T0).unwrap();
    assert_eq!(claim(s, "w", T0).as_deref(), Some("p"));
    assert_eq!(claim(s, "w", T0).as_deref(), Some("d2"));
    assert_eq!(settle(s, "d2", 1, "w", T0, false), Settled::Dead);
    assert_eq!(s.dead_retry_all(T0 + 7).unwrap(), 2);
    for id in ["d", "d2"] {
        let j = s.job_get(id).unwrap();
        assert_eq!((j.state, j.attempts, j.run_at_ms, j.worker_id), (JobState::Pending, 0, T0 + 7, None), "{id}");
    }
    // The jobs in other states are as they were, and nothing is dead any more.
    assert_eq!(s.job_get("f").unwrap().state, JobState::Failed);
    assert_eq!(s.job_get("r").unwrap().state, JobState::Processing);
    assert_eq!(s.dead_retry_all(T0 + 8).unwrap(), 0);
    // Their history stays: the dead attempt is still listed.
    assert_eq!(s.job_attempts("d").unwrap().iter().map(|a| a.outcome).collect::<Vec<_>>(), [Outcome::Dead]);
}

fn a_rescue_leaves_a_job_whose_lease_was_renewed_alone(s: &mut dyn Store) {
    s.worker_register(&reg("w", "host", 1, 30_000, T0)).unwrap();
    s.job_insert_many(&[job("slow", 0)], T0).unwrap();
    claim(s, "w", T0);
    // Another host reads the job as expired, then the worker's heartbeat renews the lease
    // before the rescue writes: the rescue must not take the job.
    let expired = s.job_get_expired(T0 + 30_001).unwrap();
    assert_eq!(expired.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["slow"]);
    assert_eq!(s.worker_heartbeat("w", T0 + 30_000).unwrap().map(|b| b.stop), Some(StopLevel::None));
    let decided = AttemptEnd {
        id: "slow",
        attempt: 1,
        max_retries: 2,
        worker_id: "w",
        now_ms: T0 + 30_001,
        success: false,
        cancelled: false,
        exit_code: None,
        error: Some(policy::lost_worker_error("w")),
        output_tail: String::new(),
    }
    .decide(&BackoffPolicy::default());
    let rescue = SettleParams { lease_expired_before: Some(T0 + 30_001), ..decided };
    assert_eq!(s.job_settle_many(&[rescue]).unwrap(), [Settled::Fenced]);
    let j = s.job_get("slow").unwrap();
    assert_eq!((j.state, j.lease_expires_ms), (JobState::Processing, Some(T0 + 60_000)));
}

fn stop_requests_never_lower_the_level(s: &mut dyn Store) {
    s.worker_register(&reg("a", "h1", 1, 30_000, T0)).unwrap();
    s.worker_register(&reg("b", "h2", 2, 30_000, T0)).unwrap();
    assert_eq!(s.worker_request_stop(StopLevel::Force, Some("h1"), None).unwrap(), 1);
    assert_eq!(s.worker_request_stop(StopLevel::Graceful, None, Some("nobody")).unwrap(), 0);
    assert_eq!(s.worker_request_stop(StopLevel::Graceful, None, None).unwrap(), 2);
    let levels: Vec<(String, StopLevel)> =
        s.worker_list(false).unwrap().into_iter().map(|w| (w.id, w.stop_requested)).collect();
    assert!(levels.contains(&("a".to_string(), StopLevel::Force)), "{levels:?}");
    assert!(levels.contains(&("b".to_string(), StopLevel::Graceful)), "{levels:?}");
}

fn claims_by_priority_then_fifo_and_only_when_due(s: &mut dyn Store) {
    let mut later = job("later", 100);
    later.run_at_ms = T0 + 5_000;
    s.job_insert_many(&[job("a", 0), job("b", 5), job("c", 0), job("d", 5), later], T0).unwrap();
    let order: Vec<_> = (0..4).map(|_| claim(s, "w", T0).unwrap()).collect();
    assert_eq!(order, ["b", "d", "a", "c"]);
    assert!(!due(s, T0, None));
    assert_eq!(claim(s, "w", T0), None);
    assert!(due(s, T0 + 5_000, None));
    assert_eq!(claim(s, "w", T0 + 5_000).as_deref(), Some("later"));
    let j = s.job_get("later").unwrap();
    assert_eq!((j.state, j.attempts, j.worker_id.as_deref()), (JobState::Processing, 1, Some("w")));
    assert_eq!(j.lease_expires_ms, Some(T0 + 35_000));
}

fn insert_is_all_or_nothing(s: &mut dyn Store) {
    s.job_insert_many(&[job("x", 0)], T0).unwrap();
    let err = s.job_insert_many(&[job("y", 0), job("x", 0)], T0).unwrap_err();
    assert_eq!(err, Error::DuplicateId("x".into()));
    assert_eq!(s.job_list(None, None).unwrap().len(), 1);
    let mut generated = job("z", 0);
    generated.id = None;
    let ids = s.job_insert_many(&[generated.clone(), generated], T0).unwrap();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

fn failures_back_off_then_die(s: &mut dyn Store) {
    s.job_insert_many(&[job("f", 0)], T0).unwrap();
    let mut now = T0;
    for attempt in 1..=3u32 {
        assert_eq!(claim(s, "w", now).as_deref(), Some("f"));
        let got = settle(s, "f", attempt, "w", now, false);
        if attempt < 3 {
            let delay = BackoffPolicy::default().delay_ms(attempt);
            assert_eq!(got, Settled::Retry { run_at_ms: now + delay });
            assert_eq!(claim(s, "w", now + delay - 1), None, "claimed before its backoff ended");
            now += delay;
        } else {
            assert_eq!(got, Settled::Dead);
        }
    }
    let attempts = s.job_attempts("f").unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        [Outcome::Failed, Outcome::Failed, Outcome::Dead]
    );
    assert_eq!(s.job_get("f").unwrap().state, JobState::Dead);
}

fn backoff_follows_config(s: &mut dyn Store) {
    s.config_set(set("backoff-base", "3"), T0).unwrap();
    s.config_set(set("backoff-max", "5"), T0).unwrap();
    s.job_insert_many(&[job("f", 0)], T0).unwrap();
    claim(s, "w", T0);
    assert_eq!(settle(s, "f", 1, "w", T0, false), Settled::Retry { run_at_ms: T0 + 3_000 });
    claim(s, "w", T0 + 3_000);
    assert_eq!(settle(s, "f", 2, "w", T0 + 3_000, false), Settled::Retry { run_at_ms: T0 + 8_000 });
}

fn expired_lease_is_rescued_and_the_stale_worker_fenced(s: &mut dyn Store) {
    s.job_insert_many(&[job("r", 0)], T0).unwrap();
    claim(s, "old", T0);
    assert!(rescue(s, T0 + 29_999).is_empty());
    assert_eq!(rescue(s, T0 + 30_001), [("r".to_string(), 1)]);
    let j = s.job_get("r").unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert!(j.last_error.unwrap().contains("lost"));
    // A new worker claims the retry; the old one wakes up and tries to settle attempt 1.
    let retry_at = j.run_at_ms;
    assert_eq!(claim(s, "new", retry_at).as_deref(), Some("r"));
    assert_eq!(settle(s, "r", 1, "old", retry_at, true), Settled::Fenced);
    assert!(!s.job_requeue(&fence("r", 1, "old"), retry_at).unwrap());
    let j = s.job_get("r").unwrap();
    assert_eq!((j.state, j.attempts, j.worker_id.as_deref()), (JobState::Processing, 2, Some("new")));
    assert_eq!(settle(s, "r", 2, "new", retry_at, true), Settled::Completed);
}

fn heartbeat_renews_the_lease_and_carries_stop_requests(s: &mut dyn Store) {
    s.worker_register(&reg("w", "host", 1, 30_000, T0)).unwrap();
    s.job_insert_many(&[job("h", 0)], T0).unwrap();
    claim(s, "w", T0);
    assert_eq!(s.worker_heartbeat("w", T0 + 20_000).unwrap().map(|b| b.stop), Some(StopLevel::None));
    assert!(rescue(s, T0 + 40_000).is_empty());
    assert_eq!(s.job_get("h").unwrap().lease_expires_ms, Some(T0 + 50_000));
    let w = &s.worker_list(false).unwrap()[0];
    assert_eq!((w.state.as_str(), w.current_job.as_deref()), ("busy", Some("h")));
    assert_eq!(s.worker_request_stop(StopLevel::Force, Some("elsewhere"), None).unwrap(), 0);
    assert_eq!(s.worker_request_stop(StopLevel::Force, None, None).unwrap(), 1);
    assert_eq!(s.worker_heartbeat("w", T0 + 21_000).unwrap().map(|b| b.stop), Some(StopLevel::Force));
    assert!(s.job_requeue(&fence("h", 1, "w"), T0 + 21_000).unwrap());
    let j = s.job_get("h").unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Pending, 0));
    s.worker_exit("w", T0 + 22_000).unwrap();
    assert!(s.worker_list(false).unwrap().is_empty());
    assert_eq!(s.worker_list(true).unwrap().len(), 1);
}

fn silent_workers_are_reaped(s: &mut dyn Store) {
    s.worker_register(&reg("gone", "host", 1, 1_000, T0)).unwrap();
    assert_eq!(s.worker_reap(T0 + 500).unwrap(), 0);
    assert_eq!(s.worker_reap(T0 + 1_500).unwrap(), 1);
    assert_eq!(s.worker_list(true).unwrap()[0].state, WorkerState::Exited);
    // It comes back (paused, then resumed): its heartbeat says it is not registered, and
    // the heartbeat leaves the exited registration as it was.
    assert_eq!(s.worker_heartbeat("gone", T0 + 2_000).unwrap(), None);
    assert!(s.worker_list(false).unwrap().is_empty());
    // Registering again brings it back, visible and reachable by a stop request.
    s.worker_register(&reg("gone", "host", 2, 1_000, T0 + 2_000)).unwrap();
    let w = &s.worker_list(false).unwrap()[0];
    assert_eq!((w.id.as_str(), w.pid, w.exited_at_ms), ("gone", 2, None));
    assert_eq!(s.worker_request_stop(StopLevel::Graceful, None, None).unwrap(), 1);
    assert_eq!(s.worker_heartbeat("gone", T0 + 2_100).unwrap().map(|b| b.stop), Some(StopLevel::Graceful));
    // A registration that is still running cannot be taken over.
    assert!(matches!(s.worker_register(&reg("gone", "host", 3, 1_000, T0 + 2_200)), Err(Error::InvalidState(_))));
    assert_eq!(s.worker_list(false).unwrap()[0].pid, 2);
}

fn dead_retry_is_all_or_nothing(s: &mut dyn Store) {
    let mut dies = job("dies", 0);
    dies.max_retries = 0;
    s.job_insert_many(&[dies, job("waits", 0)], T0).unwrap();
    claim(s, "w", T0);
    assert_eq!(settle(s, "dies", 1, "w", T0, false), Settled::Dead);
    let e = s.dead_retry(&["dies".into(), "waits".into()], T0).unwrap_err();
    assert!(matches!(e, Error::InvalidState(_)), "{e:?}");
    assert!(matches!(s.dead_retry(&["nope".into()], T0).unwrap_err(), Error::NotFound(_)));
    assert_eq!(s.job_get("dies").unwrap().state, JobState::Dead);
    assert_eq!(s.dead_retry(&["dies".into()], T0 + 1).unwrap(), 1);
    let j = s.job_get("dies").unwrap();
    assert_eq!((j.state, j.attempts, j.run_at_ms), (JobState::Pending, 0, T0 + 1));
}

fn counts_list_and_purge(s: &mut dyn Store) {
    s.job_insert_many(&[job("a", 0), job("b", 0), job("c", 0)], T0).unwrap();
    claim(s, "w", T0);
    settle(s, "a", 1, "w", T0, true);
    claim(s, "w", T0 + 10_000);
    settle(s, "b", 1, "w", T0 + 10_000, true);
    let counts = s.job_count_by_state().unwrap();
    assert_eq!(counts.len(), JobState::ALL.len());
    assert_eq!(counts.iter().find(|c| c.0 == JobState::Completed).unwrap().1, 2);
    assert_eq!(s.job_list(Some(JobState::Pending), None).unwrap().len(), 1);
    assert_eq!(s.job_list(None, Some(2)).unwrap().len(), 2);
    assert!(s.job_purge(JobState::Pending, None).is_err());
    assert_eq!(s.job_purge(JobState::Completed, Some(T0 + 5_000)).unwrap(), ["a"]);
    assert_eq!(s.job_purge(JobState::Completed, None).unwrap(), ["b"]);
    assert!(matches!(s.job_attempts("a").unwrap_err(), Error::NotFound(_)));
    assert_eq!(s.job_list(None, None).unwrap().len(), 1);
}

fn settle_and_claim_is_one_step(s: &mut dyn Store) {
    s.job_insert_many(&[job("one", 0), job("two", 0)], T0).unwrap();
    assert_eq!(claim(s, "w", T0).as_deref(), Some("one"));
    let settle = succeeded("one", 1, "w", T0 + 1, "done\n");
    let claim_next = ClaimParams { worker_id: "w", now_ms: T0 + 1, lease_ms: 30_000, queues: None, after_queue: None };
    let (settled, next) = s.job_settle_and_claim(&settle, &claim_next).unwrap();
    assert_eq!((settled, next.map(|j| j.id).as_deref()), (Settled::Completed, Some("two")));
    // The same settle again is fenced; the claim finds nothing more.
    let (settled, next) = s.job_settle_and_claim(&settle, &claim_next).unwrap();
    assert_eq!((settled, next.is_none()), (Settled::Fenced, true));
    let attempts = s.job_attempts("one").unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].outcome, attempts[0].output_tail.as_str()), (Outcome::Completed, "done\n"));
}

fn binary_output_is_kept(s: &mut dyn Store) {
    s.job_insert_many(&[job("bin", 0)], T0).unwrap();
    for (attempt, success) in [(1, false), (2, true)] {
        claim(s, "w", T0 + 60_000 * attempt);
        let p = AttemptEnd {
            id: "bin",
            attempt: attempt as u32,
            max_retries: 2,
            worker_id: "w",
            now_ms: T0 + 60_000 * attempt,
            success,
            cancelled: false,
            exit_code: Some(0),
            error: (!success).then(|| "bad\0byte".into()),
            output_tail: "a\0b\n".into(),
        }
        .decide(&BackoffPolicy::default());
        assert_ne!(s.job_settle(&p).unwrap(), Settled::Fenced);
    }
    let attempts = s.job_attempts("bin").unwrap();
    assert_eq!(attempts.len(), 2);
    for a in &attempts {
        // SQLite keeps the NUL; PostgreSQL text cannot, and stores U+FFFD instead.
        assert!(["a\0b\n", "a\u{fffd}b\n"].contains(&a.output_tail.as_str()), "{:?}", a.output_tail);
    }
}

fn config_round_trips(s: &mut dyn Store) {
    assert_eq!(s.config_get("max-retries").unwrap(), None);
    s.config_set(set("max-retries", "5"), T0).unwrap();
    s.config_set(set("max-retries", "7"), T0 + 1).unwrap();
    s.config_set(set("backoff-base", "3"), T0).unwrap();
    assert_eq!(s.config_get("max-retries").unwrap().as_deref(), Some("7"));
    assert_eq!(
        s.config_list().unwrap(),
        [("backoff-base".to_string(), "3".to_string()), ("max-retries".to_string(), "7".to_string())]
    );
}

#[test]
fn schema_migrates_once_and_refuses_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    drop(SqliteStore::open(&path, &StoreOptions::default()).unwrap());
    let mut again = SqliteStore::open(&path, &StoreOptions::default()).unwrap();
    again.job_insert_many(&[job("kept", 0)], T0).unwrap();
    drop(again);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 42).unwrap();
    drop(raw);
    let err = SqliteStore::open(&path, &StoreOptions::default()).err().unwrap();
    assert_eq!(err, Error::SchemaTooNew { found: 42, supported: SCHEMA_VERSION });
}

#[test]
fn both_stores_have_one_schema() {
    let (_g, mut lite) = common::sqlite();
    let Some((_s, mut pg)) = common::postgres() else { return };
    assert_eq!(lite.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(pg.schema_version().unwrap(), SCHEMA_VERSION);
    for table in ["jobs", "attempts", "workers", "config", "queues"] {
        let columns = lite.table_columns(table).unwrap();
        assert!(!columns.is_empty(), "{table}");
        assert_eq!(columns, pg.table_columns(table).unwrap(), "{table}");
    }
}

#[test]
fn a_sqlite_waiter_wakes_on_another_connections_commit() {
    let (g, mut writer) = common::sqlite();
    let mut waiter = SqliteStore::open(&g.dir.path().join("q.db"), &StoreOptions::default()).unwrap();
    // The first wait only learns the current version; nothing changed since.
    assert!(!waiter.wait_for_change(Duration::from_millis(20)).unwrap());
    assert!(!waiter.wait_for_change(Duration::from_millis(50)).unwrap());
    let t = Instant::now();
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        writer.job_insert_many(&[job("n", 0)], T0).unwrap();
    });
    assert!(waiter.wait_for_change(Duration::from_secs(5)).unwrap());
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(90) && waited < Duration::from_secs(2), "woke after {waited:?}");
    handle.join().unwrap();
    assert!(matches!(waiter.wakeups(), queuectl_core::store::Wakeups::Polled(_)));
}

#[test]
fn each_sqlite_connection_keeps_its_own_busy_timeout() {
    // Opening a second connection with a long timeout (a foreground worker pool) must not
    // change the timeout of the first (the CLI's QUEUECTL_BUSY_TIMEOUT).
    let (g, _s) = common::sqlite();
    let path = g.dir.path().join("q.db");
    let mut short =
        SqliteStore::open(&path, &StoreOptions { busy_timeout_ms: 100, ..StoreOptions::default() }).unwrap();
    let _long = SqliteStore::open(&path, &StoreOptions { busy_timeout_ms: 20_000, ..StoreOptions::default() }).unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t = Instant::now();
    let err = short.job_insert_many(&[job("blocked", 0)], T0).unwrap_err();
    let waited = t.elapsed();
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}: the other connection's timeout applied");
    holder.execute_batch("ROLLBACK").unwrap();
    short.job_insert_many(&[job("free", 0)], T0).unwrap();
}

#[test]
fn enqueue_connections_sync_every_commit_and_workers_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let durable = SqliteStore::open(&path, &StoreOptions::default()).unwrap();
    assert_eq!(durable.synchronous().unwrap(), 2, "enqueue must use synchronous=FULL");
    let worker = SqliteStore::open(&path, &StoreOptions { durable: false, ..StoreOptions::default() }).unwrap();
    assert_eq!(worker.synchronous().unwrap(), 1);
    assert_eq!(durable.integrity_check().unwrap(), "ok");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn opening_in_a_missing_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(&dir.path().join("no/such/q.db"), &StoreOptions::default()).err().unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

// PostgreSQL only: what a shared server adds (migrations racing, lost connections,
// notifications).

#[test]
fn postgres_hosts_starting_at_once_migrate_once_and_a_newer_schema_is_refused() {
    let Some(schema) = common::PgSchema::create() else { return };
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = schema.url.clone();
            std::thread::spawn(move || PostgresStore::open(&url, &StoreOptions::default()).map(drop))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let mut admin = schema.admin();
    let version: i64 = admin.query_one("SELECT version FROM queuectl_schema", &[]).unwrap().get(0);
    assert_eq!(version, SCHEMA_VERSION);
    admin.execute("UPDATE queuectl_schema SET version = 42", &[]).unwrap();
    let err = PostgresStore::open(&schema.url, &StoreOptions::default()).err().unwrap();
    assert_eq!(err, Error::SchemaTooNew { found: 42, supported: SCHEMA_VERSION });
}

#[test]
fn postgres_a_rescue_skips_a_row_another_connection_holds() {
    // Every worker of every host rescues at each heartbeat: one that meets a row another
    // rescuer has locked must move on, not wait (its heartbeat runs inside a job's tick).
    let Some(schema) = common::PgSchema::create() else { return };
    let mut s = schema.open(&StoreOptions { busy_timeout_ms: 20_000, ..StoreOptions::default() });
    s.job_insert_many(&[job("held", 0)], T0).unwrap();
    claim(&mut s, "gone", T0);
    let mut other = schema.admin();
    let mut tx = other.transaction().unwrap();
    tx.query("SELECT 1 FROM jobs WHERE id = 'held' FOR UPDATE", &[]).unwrap();
    let t = Instant::now();
    assert!(rescue(&mut s, T0 + 60_000).is_empty());
    assert!(t.elapsed() < Duration::from_secs(5), "the rescue waited {:?} for the lock", t.elapsed());
    tx.rollback().unwrap();
    assert_eq!(rescue(&mut s, T0 + 60_000), [("held".to_string(), 1)]);
}

/// Ends every queuectl connection of one test schema, as a server restart would.
fn kill_connections(schema: &common::PgSchema) -> u64 {
    schema
        .admin()
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", &[&schema.name])
        .unwrap()
}

#[test]
fn postgres_store_reconnects_after_losing_its_connection() {
    let Some(schema) = common::PgSchema::create() else { return };
    let mut s = schema.open(&StoreOptions::default());
    s.job_insert_many(&[job("before", 0)], T0).unwrap();
    assert_eq!(kill_connections(&schema), 1);
    // The first call may fail with a clear error; the next one reconnects.
    let first = s.job_get("before");
    if let Err(e) = &first {
        assert!(e.to_string().contains("PostgreSQL"), "{e}");
    }
    assert_eq!(s.job_get("before").unwrap().state, JobState::Pending);
    s.job_insert_many(&[job("after", 0)], T0).unwrap();
    assert_eq!(s.job_list(None, None).unwrap().len(), 2);
}

#[test]
fn postgres_claim_lost_in_flight_goes_back_to_pending() {
    let Some(schema) = common::PgSchema::create() else { return };
    let mut s = schema.open(&StoreOptions::default());
    let mut later = job("j", 0);
    later.run_at_ms = T0 + 60_000;
    s.job_insert_many(&[later], T0).unwrap();
    assert_eq!(claim(&mut s, "w", T0), None);
    // Simulate a claim that committed but whose reply never arrived: the row says claimed
    // by "w", and the connection dies under the next claim.
    let mut admin = schema.admin();
    admin
        .execute(
            "UPDATE jobs SET state = 'processing', attempts = 1, runs = 1, worker_id = 'w', run_at_ms = $1,
                 lease_expires_ms = $2",
            &[&T0, &(T0 + 30_000)],
        )
        .unwrap();
    assert_eq!(kill_connections(&schema), 1);
    let err =
        s.job_claim(&ClaimParams { worker_id: "w", now_ms: T0, lease_ms: 30_000, queues: None, after_queue: None });
    assert!(err.is_err(), "a claim on a killed connection cannot succeed");
    // The next claim by the same worker first releases what it cannot be running.
    assert_eq!(claim(&mut s, "w", T0).as_deref(), Some("j"));
    let j = s.job_get("j").unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Processing, 1));
}

#[test]
fn postgres_settle_retried_after_a_lost_connection_still_settles() {
    // Found by restarting the server under two busy workers: the retry released the very
    // job it was settling, which then ran twice.
    let Some(schema) = common::PgSchema::create() else { return };
    let mut s = schema.open(&StoreOptions::default());
    s.job_insert_many(&[job("a", 0), job("b", 0)], T0).unwrap();
    assert_eq!(claim(&mut s, "w", T0).as_deref(), Some("a"));
    let settle = succeeded("a", 1, "w", T0 + 1, "");
    let next = ClaimParams { worker_id: "w", now_ms: T0 + 1, lease_ms: 30_000, queues: None, after_queue: None };
    assert_eq!(kill_connections(&schema), 1);
    assert!(s.job_settle_and_claim(&settle, &next).is_err());
    let (settled, claimed) = s.job_settle_and_claim(&settle, &next).unwrap();
    assert_eq!((settled, claimed.map(|j| j.id).as_deref()), (Settled::Completed, Some("b")));
    assert_eq!(s.job_get("a").unwrap().attempts, 1);
}

#[test]
fn postgres_notify_wakes_a_listener() {
    let Some(schema) = common::PgSchema::create() else { return };
    let mut listener = schema.open(&StoreOptions::default());
    let mut writer = schema.open(&StoreOptions::default());
    // The first wait subscribes and says "look now".
    assert!(listener.wait_for_change(Duration::from_millis(10)).unwrap());
    assert!(!listener.wait_for_change(Duration::from_millis(50)).unwrap());
    let t = Instant::now();
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        writer.job_insert_many(&[job("n", 0)], T0).unwrap();
    });
    assert!(listener.wait_for_change(Duration::from_secs(5)).unwrap());
    assert!(t.elapsed() < Duration::from_secs(2), "woke after {:?}", t.elapsed());
    handle.join().unwrap();
    // A queue in another schema of the same database does not wake this one.
    let other = common::PgSchema::create().unwrap();
    other.open(&StoreOptions::default()).job_insert_many(&[job("elsewhere", 0)], T0).unwrap();
    assert!(!listener.wait_for_change(Duration::from_millis(200)).unwrap());
}

#[test]
fn a_sqlite_queue_copies_into_postgres_whole_or_not_at_all() {
    let Some(schema) = common::PgSchema::create() else { return };
    let (g, mut src) = common::sqlite();
    let mut dies = job("dies", 0);
    dies.max_retries = 0;
    src.job_insert_many(&[job("done", 0), job("retrying", 3), dies, job("waiting", 1)], T0).unwrap();
    src.config_set(set("max-retries", "6"), T0).unwrap();
    assert_eq!(claim(src.as_mut(), "w", T0).as_deref(), Some("retrying"));
    assert_eq!(settle(src.as_mut(), "retrying", 1, "w", T0, false), Settled::Retry { run_at_ms: T0 + 2_000 });
    assert_eq!(claim(src.as_mut(), "w", T0).as_deref(), Some("waiting"));
    assert_eq!(settle(src.as_mut(), "waiting", 1, "w", T0, true), Settled::Completed);
    assert_eq!(claim(src.as_mut(), "w", T0).as_deref(), Some("done"));
    assert_eq!(settle(src.as_mut(), "done", 1, "w", T0, true), Settled::Completed);
    assert_eq!(claim(src.as_mut(), "w", T0).as_deref(), Some("dies"));
    assert_eq!(settle(src.as_mut(), "dies", 1, "w", T0, false), Settled::Dead);
    src.job_insert_many(&[job("fresh", 0), after("child", &["fresh", "done"])], T0 + 1).unwrap();
    let d = queuectl_core::spec::SpecDefaults { max_retries: 1, timeout_ms: 0, cwd: "/".into(), now_ms: T0 };
    let daily = queuectl_core::schedule::new_schedule("daily", "@daily", None, "skip", r#"{"command":"x"}"#, &d);
    src.schedule_add(&daily.unwrap()).unwrap();

    let path = g.dir.path().join("q.db");
    let report = transfer::sqlite_to_postgres(&path, &schema.url, &StoreOptions::default()).unwrap();
    assert_eq!(report, transfer::CopyReport { jobs: 6, attempts: 2, config: 1, requeued: 0 });
    let mut dst = schema.open(&StoreOptions::default());
    assert_eq!(dst.job_list(None, None).unwrap(), src.job_list(None, None).unwrap());
    for id in ["done", "retrying", "dies", "waiting", "fresh", "child"] {
        assert_eq!(dst.job_attempts(id).unwrap(), src.job_attempts(id).unwrap(), "{id}");
    }
    assert_eq!(dst.job_parents("child").unwrap(), src.job_parents("child").unwrap());
    assert_eq!(dst.schedule_list(None, None).unwrap(), src.schedule_list(None, None).unwrap());
    // And back into a new SQLite file: the edges and the schedule come along.
    let back = g.dir.path().join("back.db");
    transfer::postgres_to_sqlite(&schema.url, &back, &StoreOptions::default()).unwrap();
    let mut again = queuectl_core::open_store(back.to_str().unwrap(), &StoreOptions::default()).unwrap();
    assert_eq!(again.job_parents("child").unwrap(), src.job_parents("child").unwrap());
    assert_eq!(again.schedule_list(None, None).unwrap(), src.schedule_list(None, None).unwrap());
    assert_eq!(dst.config_list().unwrap(), src.config_list().unwrap());
    assert_eq!(dst.job_count_by_state().unwrap(), src.job_count_by_state().unwrap());
    // The retry keeps its priority (3) and due time: it comes before the fresh job.
    assert_eq!(claim(&mut dst, "w", T0 + 2_000).as_deref(), Some("retrying"));

    // Copying again clashes on the first id and adds nothing.
    let err = transfer::sqlite_to_postgres(&path, &schema.url, &StoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::DuplicateId(_)), "{err:?}");
    assert_eq!(dst.job_list(None, None).unwrap().len(), 6);
}

#[test]
fn a_new_sqlite_queue_uses_small_pages() {
    let (g, mut s) = common::sqlite();
    s.job_insert_many(&[job("p", 0)], T0).unwrap();
    let raw = rusqlite::Connection::open(g.dir.path().join("q.db")).unwrap();
    let size: i64 = raw.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert_eq!(size, 2048);
}

#[test]
fn sqlite_settle_and_claim_from_many_threads_runs_each_job_once() {
    // Threads that meet at the write lock have their settle+claim run by the holder, in
    // its transaction: every job must still be claimed once, settled once, in order.
    let (g, mut s) = common::sqlite();
    let jobs: Vec<NewJob> = (0..2_000).map(|i| job(&format!("j{i:04}"), 0)).collect();
    s.job_insert_many(&jobs, T0).unwrap();
    let path = g.dir.path().join("q.db");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let opts = StoreOptions { durable: false, ..StoreOptions::default() };
                let mut s = SqliteStore::open(&path, &opts).unwrap();
                let worker = format!("w{t}");
                let mut done = Vec::new();
                let mut next = claim(&mut s, &worker, T0);
                while let Some(id) = next.take() {
                    let settle = succeeded(&id, 1, &worker, T0, "");
                    let c = ClaimParams {
                        worker_id: &worker,
                        now_ms: T0,
                        lease_ms: 30_000,
                        queues: None,
                        after_queue: None,
                    };
                    let (settled, claimed) = s.job_settle_and_claim(&settle, &c).unwrap();
                    assert_eq!(settled, Settled::Completed, "{id}");
                    done.push(id);
                    next = claimed.map(|j| j.id);
                }
                done
            })
        })
        .collect();
    let mut all: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(all.len(), 2_000);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 2_000, "a job was settled twice");
    let listed = s.job_list(None, None).unwrap();
    assert!(listed.iter().all(|j| j.state == JobState::Completed && j.attempts == 1));
}

/// Eight connections claim from a queue limited to 2 as fast as they can, each holding
/// its job 2 ms (long beside a settle's round trip, so two held jobs overlap even on a
/// loaded machine): an in-process count of the jobs held (up after a claim returns, down
/// before the settle) never passes the limit. On PostgreSQL the claims race on snapshots
/// (without the second look under the queue's row lock this counts 4 or 5); the second
/// look is what keeps the limit.
fn limit_race(location: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut s = queuectl_core::open_store(location, &StoreOptions::default()).unwrap();
    s.queue_set(&QueueSetting { names: &["lim".to_string()], change: QueueChange::Limit(2), now_ms: T0 }).unwrap();
    let jobs: Vec<NewJob> = (0..200).map(|i| queued(&format!("j{i:03}"), "lim", 0)).collect();
    s.job_insert_many(&jobs, T0).unwrap();
    let held = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let location = location.to_string();
            let (held, peak) = (Arc::clone(&held), Arc::clone(&peak));
            std::thread::spawn(move || {
                let opts = StoreOptions { durable: false, ..StoreOptions::default() };
                let mut s = queuectl_core::open_store(&location, &opts).unwrap();
                let worker = format!("w{t}");
                let (mut done, mut idle) = (0, 0);
                while idle < 200 {
                    let Some(id) = claim(s.as_mut(), &worker, T0) else {
                        idle += 1;
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    };
                    idle = 0;
                    let now_held = held.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now_held, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                    held.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(s.job_settle(&succeeded(&id, 1, &worker, T0, "")).unwrap(), Settled::Completed);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let done: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(done, 200, "every job ran once");
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 2, "{peak} jobs of a queue limited to 2 were held at once");
    // That the race reached the limit shows the test raced. Under Wine the threads are too
    // slow to overlap reliably, so there it proves only the cap.
    if !cfg!(windows) {
        assert_eq!(peak, 2, "the limit was reached");
    }
}
#[test]
fn a_limit_holds_when_many_connections_claim_at_once_on_sqlite() {
    let (g, _s) = common::sqlite();
    limit_race(g.dir.path().join("q.db").to_str().unwrap());
}

#[test]
fn a_limit_holds_when_many_connections_claim_at_once_on_postgres() {
    let Some(schema) = common::PgSchema::create() else { return };
    limit_race(&schema.url);
}
