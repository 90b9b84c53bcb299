//! Jobs: insert, claim order, settle, backoff, leases rescued and stale workers fenced,
//! settle+claim, and what a job carries (output, env).

use queuectl_core::store::StopLevel;
use queuectl_core::{Error, JobState, Outcome};

use super::*;

conformance!(
    claims_by_priority_then_fifo_and_only_when_due,
    insert_is_all_or_nothing,
    failures_back_off_then_die,
    backoff_follows_config,
    expired_lease_is_rescued_and_the_stale_worker_fenced,
    settle_and_claim_is_one_step,
    binary_output_is_kept,
    a_rescue_leaves_a_job_whose_lease_was_renewed_alone,
    a_jobs_env_round_trips,
);

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
        timed_out: false,
        retry: &queuectl_core::job::RetryRule::NONE,
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

fn settle_and_claim_is_one_step(s: &mut dyn Store) {
    s.job_insert_many(&[job("one", 0), job("two", 0)], T0).unwrap();
    assert_eq!(claim(s, "w", T0).as_deref(), Some("one"));
    let settle = succeeded("one", 1, "w", T0 + 1, "done\n");
    let claim_next = ClaimParams {
        worker_id: "w",
        now_ms: T0 + 1,
        lease_ms: 30_000,
        queues: None,
        after_queue: None,
        max_slots: u32::MAX,
    };
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
            timed_out: false,
            retry: &queuectl_core::job::RetryRule::NONE,
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

fn a_jobs_env_round_trips(s: &mut dyn Store) {
    let mut with_env = job("e", 1);
    with_env.env = vec![("TOKEN".into(), "s3cr3t".into()), ("EMPTY".into(), String::new())];
    s.job_insert_many(&[with_env, job("plain", 0)], T0).unwrap();
    let claimed = s
        .job_claim(&ClaimParams {
            worker_id: "w",
            now_ms: T0,
            lease_ms: 30_000,
            queues: None,
            after_queue: None,
            max_slots: u32::MAX,
        })
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, "e");
    let mut got = claimed.env.clone();
    got.sort();
    assert_eq!(got, [("EMPTY".to_string(), String::new()), ("TOKEN".to_string(), "s3cr3t".to_string())]);
    assert!(!format!("{claimed:?}").contains("s3cr3t"), "Debug shows names only");
    assert!(s.job_get("plain").unwrap().env.is_empty());
}
