//! Cancel: waiting jobs ended at once, a running one flagged for its worker, how a
//! flagged attempt ends, and what a change by id reports it did to each job.

use queuectl_core::store::{Beat, Changed, StopLevel};
use queuectl_core::{Error, JobState, Outcome};

use super::*;

conformance!(
    cancel_ends_waiting_jobs_and_asks_the_worker_of_a_running_one,
    a_running_job_cancelled_is_never_retried_however_its_attempt_ends,
    a_cancelled_job_that_finishes_first_keeps_its_result,
    a_change_reports_the_state_it_found_each_job_in,
);

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
        timed_out: false,
        retry: &queuectl_core::job::RetryRule::NONE,
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

/// A change by id of `ids`: what it did to each job, as (id, state found, killing).
fn each(
    s: &mut dyn Store,
    change: ByIdChange,
    ids: &[&str],
    now_ms: i64,
) -> queuectl_core::Result<Vec<(String, JobState, bool)>> {
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let done: Vec<Changed> = s.job_change_by_id_each(&ByIdParams { ids: &ids, change, now_ms })?;
    Ok(done.into_iter().map(|c| (c.id.clone(), c.found, c.killing())).collect())
}

fn a_change_reports_the_state_it_found_each_job_in(s: &mut dyn Store) {
    use JobState::*;
    one_job_per_state(s);
    s.job_insert_many(&[after("a", &["r"])], T0).unwrap();
    // In the order asked: the running job flagged for its worker, the others cancelled.
    let done = each(s, ByIdChange::Cancel, &["r", "p", "a", "f"], T0 + 9).unwrap();
    let want = |v: &[(&str, JobState, bool)]| v.iter().map(|(i, st, k)| (i.to_string(), *st, *k)).collect::<Vec<_>>();
    assert_eq!(
        done,
        want(&[("r", Processing, true), ("p", Pending, false), ("a", Waiting, false), ("f", Failed, false)])
    );
    // It says what the jobs show.
    let r = s.job_get("r").unwrap();
    assert_eq!((r.state, r.cancel_requested_ms), (Processing, Some(T0 + 9)));
    for id in ["p", "a", "f"] {
        assert_eq!(s.job_get(id).unwrap().state, Cancelled, "{id}");
    }
    // Cancelled again while it still runs: flagged again (the first request's time kept).
    assert_eq!(each(s, ByIdChange::Cancel, &["r"], T0 + 50).unwrap(), want(&[("r", Processing, true)]));
    assert_eq!(s.job_get("r").unwrap().cancel_requested_ms, Some(T0 + 9));
    // A refused change reports nothing and changes nothing.
    let e = each(s, ByIdChange::Cancel, &["r", "p"], T0 + 60).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("\"p\" is cancelled")), "{e:?}");
    // Every change reports so: a retry finds them cancelled; the count is the report's length.
    assert_eq!(
        each(s, ByIdChange::Retry, &["p", "f"], T0 + 70).unwrap(),
        want(&[("p", Cancelled, false), ("f", Cancelled, false)])
    );
    assert_eq!(by_id(s, ByIdChange::Delete, &["p", "f"], T0 + 80).unwrap(), 2);
}
