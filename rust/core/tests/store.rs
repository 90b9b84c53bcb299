//! Store conformance: every rule of the `Store` trait, on a real SQLite file.
//!
//! Each check takes a fresh store from a factory, so the PostgreSQL store can run the same
//! suite against a real server.

use queuectl_core::backoff::BackoffPolicy;
use queuectl_core::store::{ClaimParams, SettleParams, Settled, SqliteStore, StoreOptions, STOP_FORCE};
use queuectl_core::{Error, JobState, NewJob, Store};

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
    }
}

fn claim(s: &mut dyn Store, worker: &str, now: i64) -> Option<String> {
    s.job_claim(&ClaimParams { worker_id: worker, now_ms: now, lease_ms: 30_000 }).unwrap().map(|j| j.id)
}

fn settle(s: &mut dyn Store, id: &str, attempt: u32, worker: &str, now: i64, success: bool) -> Settled {
    let max_retries = s.job_get(id).unwrap().max_retries;
    s.job_settle(&SettleParams {
        id,
        attempt,
        max_retries,
        worker_id: worker,
        now_ms: now,
        success,
        exit_code: Some(if success { 0 } else { 1 }),
        error: (!success).then(|| "exit code 1".to_string()),
        output_tail: "tail".into(),
    })
    .unwrap()
}

struct Sqlite {
    _dir: tempfile::TempDir,
}

fn sqlite() -> (Sqlite, Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("q.db"), &StoreOptions::default()).unwrap();
    (Sqlite { _dir: dir }, Box::new(store))
}

#[test]
fn claims_by_priority_then_fifo_and_only_when_due() {
    let (_g, mut s) = sqlite();
    let mut later = job("later", 100);
    later.run_at_ms = T0 + 5_000;
    s.job_insert_many(&[job("a", 0), job("b", 5), job("c", 0), job("d", 5), later], T0, None).unwrap();
    let order: Vec<_> = (0..4).map(|_| claim(s.as_mut(), "w", T0).unwrap()).collect();
    assert_eq!(order, ["b", "d", "a", "c"]);
    assert!(!s.job_due_exists(T0).unwrap());
    assert_eq!(claim(s.as_mut(), "w", T0), None);
    assert!(s.job_due_exists(T0 + 5_000).unwrap());
    assert_eq!(claim(s.as_mut(), "w", T0 + 5_000).as_deref(), Some("later"));
    let j = s.job_get("later").unwrap();
    assert_eq!((j.state, j.attempts, j.worker_id.as_deref()), (JobState::Processing, 1, Some("w")));
    assert_eq!(j.lease_expires_ms, Some(T0 + 35_000));
}

#[test]
fn insert_is_all_or_nothing() {
    let (_g, mut s) = sqlite();
    s.job_insert_many(&[job("x", 0)], T0, None).unwrap();
    let err = s.job_insert_many(&[job("y", 0), job("x", 0)], T0, None).unwrap_err();
    assert_eq!(err, Error::DuplicateId("x".into()));
    assert_eq!(s.job_list(None, None).unwrap().len(), 1);
    let mut generated = job("z", 0);
    generated.id = None;
    let ids = s.job_insert_many(&[generated.clone(), generated], T0, None).unwrap();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn failures_back_off_then_die() {
    let (_g, mut s) = sqlite();
    s.job_insert_many(&[job("f", 0)], T0, None).unwrap();
    let mut now = T0;
    for attempt in 1..=3u32 {
        assert_eq!(claim(s.as_mut(), "w", now).as_deref(), Some("f"));
        let got = settle(s.as_mut(), "f", attempt, "w", now, false);
        if attempt < 3 {
            let delay = BackoffPolicy::default().delay_ms(attempt);
            assert_eq!(got, Settled::Retry { run_at_ms: now + delay });
            assert_eq!(claim(s.as_mut(), "w", now + delay - 1), None, "claimed before its backoff ended");
            now += delay;
        } else {
            assert_eq!(got, Settled::Dead);
        }
    }
    let attempts = s.job_attempts("f").unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        [JobState::Failed, JobState::Failed, JobState::Dead]
    );
    assert_eq!(s.job_get("f").unwrap().state, JobState::Dead);
}

#[test]
fn backoff_follows_config() {
    let (_g, mut s) = sqlite();
    s.config_set("backoff-base", "3", T0).unwrap();
    s.config_set("backoff-max", "5", T0).unwrap();
    s.job_insert_many(&[job("f", 0)], T0, None).unwrap();
    claim(s.as_mut(), "w", T0);
    assert_eq!(settle(s.as_mut(), "f", 1, "w", T0, false), Settled::Retry { run_at_ms: T0 + 3_000 });
    claim(s.as_mut(), "w", T0 + 3_000);
    assert_eq!(settle(s.as_mut(), "f", 2, "w", T0 + 3_000, false), Settled::Retry { run_at_ms: T0 + 8_000 });
}

#[test]
fn expired_lease_is_rescued_and_the_stale_worker_fenced() {
    let (_g, mut s) = sqlite();
    s.job_insert_many(&[job("r", 0)], T0, None).unwrap();
    claim(s.as_mut(), "old", T0);
    assert!(s.job_rescue_expired(T0 + 29_999).unwrap().is_empty());
    assert_eq!(s.job_rescue_expired(T0 + 30_001).unwrap(), [("r".to_string(), 1)]);
    let j = s.job_get("r").unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert!(j.last_error.unwrap().contains("lost"));
    // A new worker claims the retry; the old one wakes up and tries to settle attempt 1.
    let retry_at = j.run_at_ms;
    assert_eq!(claim(s.as_mut(), "new", retry_at).as_deref(), Some("r"));
    assert_eq!(settle(s.as_mut(), "r", 1, "old", retry_at, true), Settled::Fenced);
    assert!(!s.job_requeue("r", 1, "old", retry_at).unwrap());
    let j = s.job_get("r").unwrap();
    assert_eq!((j.state, j.attempts, j.worker_id.as_deref()), (JobState::Processing, 2, Some("new")));
    assert_eq!(settle(s.as_mut(), "r", 2, "new", retry_at, true), Settled::Completed);
}

#[test]
fn heartbeat_renews_the_lease_and_carries_stop_requests() {
    let (_g, mut s) = sqlite();
    s.worker_register("w", "host", 1, 30_000, T0).unwrap();
    s.job_insert_many(&[job("h", 0)], T0, None).unwrap();
    claim(s.as_mut(), "w", T0);
    assert_eq!(s.worker_heartbeat("w", T0 + 20_000).unwrap(), 0);
    assert!(s.job_rescue_expired(T0 + 40_000).unwrap().is_empty());
    assert_eq!(s.job_get("h").unwrap().lease_expires_ms, Some(T0 + 50_000));
    let w = &s.worker_list(false).unwrap()[0];
    assert_eq!((w.state.as_str(), w.current_job.as_deref()), ("busy", Some("h")));
    assert_eq!(s.worker_request_stop(STOP_FORCE, Some("elsewhere")).unwrap(), 0);
    assert_eq!(s.worker_request_stop(STOP_FORCE, None).unwrap(), 1);
    assert_eq!(s.worker_heartbeat("w", T0 + 21_000).unwrap(), STOP_FORCE);
    assert!(s.job_requeue("h", 1, "w", T0 + 21_000).unwrap());
    let j = s.job_get("h").unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Pending, 0));
    s.worker_exit("w", T0 + 22_000).unwrap();
    assert!(s.worker_list(false).unwrap().is_empty());
    assert_eq!(s.worker_list(true).unwrap().len(), 1);
}

#[test]
fn silent_workers_are_reaped() {
    let (_g, mut s) = sqlite();
    s.worker_register("gone", "host", 1, 1_000, T0).unwrap();
    assert_eq!(s.worker_reap(T0 + 500).unwrap(), 0);
    assert_eq!(s.worker_reap(T0 + 1_500).unwrap(), 1);
    assert_eq!(s.worker_list(true).unwrap()[0].state, "exited");
}

#[test]
fn dead_retry_is_all_or_nothing() {
    let (_g, mut s) = sqlite();
    let mut dies = job("dies", 0);
    dies.max_retries = 0;
    s.job_insert_many(&[dies, job("waits", 0)], T0, None).unwrap();
    claim(s.as_mut(), "w", T0);
    assert_eq!(settle(s.as_mut(), "dies", 1, "w", T0, false), Settled::Dead);
    let e = s.dead_retry(&["dies".into(), "waits".into()], T0).unwrap_err();
    assert!(matches!(e, Error::InvalidState(_)), "{e:?}");
    assert!(matches!(s.dead_retry(&["nope".into()], T0).unwrap_err(), Error::NotFound(_)));
    assert_eq!(s.job_get("dies").unwrap().state, JobState::Dead);
    assert_eq!(s.dead_retry(&["dies".into()], T0 + 1).unwrap(), 1);
    let j = s.job_get("dies").unwrap();
    assert_eq!((j.state, j.attempts, j.run_at_ms), (JobState::Pending, 0, T0 + 1));
}

#[test]
fn counts_list_and_purge() {
    let (_g, mut s) = sqlite();
    s.job_insert_many(&[job("a", 0), job("b", 0), job("c", 0)], T0, None).unwrap();
    claim(s.as_mut(), "w", T0);
    settle(s.as_mut(), "a", 1, "w", T0, true);
    claim(s.as_mut(), "w", T0 + 10_000);
    settle(s.as_mut(), "b", 1, "w", T0 + 10_000, true);
    let counts = s.job_count_by_state().unwrap();
    assert_eq!(counts.len(), 5);
    assert_eq!(counts.iter().find(|c| c.0 == JobState::Completed).unwrap().1, 2);
    assert_eq!(s.job_list(Some(JobState::Pending), None).unwrap().len(), 1);
    assert_eq!(s.job_list(None, Some(2)).unwrap().len(), 2);
    assert!(s.job_purge(JobState::Pending, None).is_err());
    assert_eq!(s.job_purge(JobState::Completed, Some(T0 + 5_000)).unwrap(), ["a"]);
    assert_eq!(s.job_purge(JobState::Completed, None).unwrap(), ["b"]);
    assert!(matches!(s.job_attempts("a").unwrap_err(), Error::NotFound(_)));
    assert_eq!(s.job_list(None, None).unwrap().len(), 1);
}

#[test]
fn schema_migrates_once_and_refuses_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    drop(SqliteStore::open(&path, &StoreOptions::default()).unwrap());
    let mut again = SqliteStore::open(&path, &StoreOptions::default()).unwrap();
    again.job_insert_many(&[job("kept", 0)], T0, None).unwrap();
    drop(again);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 42).unwrap();
    drop(raw);
    let err = SqliteStore::open(&path, &StoreOptions::default()).err().unwrap();
    assert_eq!(err, Error::SchemaTooNew { found: 42, supported: 1 });
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
