//! Changing jobs after the fact: retry of dead jobs (by id and all at once), retry and
//! delete by id, purge.

use queuectl_core::{Error, JobState, Outcome};

use super::*;

conformance!(
    dead_retry_is_all_or_nothing,
    counts_list_and_purge,
    dead_retry_all_revives_every_dead_job,
    retry_and_delete_by_id_are_all_or_nothing,
);

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
