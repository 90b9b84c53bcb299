//! Dependencies: dependents waiting for their parents, released or cancelled down the
//! chain by how the parents end (also with many connections settling the parents).

use queuectl_core::store::{InsertBatch, StoreOptions};
use queuectl_core::{Error, JobState};

use super::*;

conformance!(
    dependents_wait_for_every_parent_then_run,
    a_parent_that_does_not_complete_cancels_its_dependents_down_the_chain,
    a_parent_rescued_after_its_worker_died_still_releases_its_dependents,
);

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
    let claim_p = ClaimParams {
        worker_id: "w",
        now_ms: T0 + 4,
        lease_ms: 30_000,
        queues: None,
        after_queue: None,
        max_slots: u32::MAX,
    };
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
