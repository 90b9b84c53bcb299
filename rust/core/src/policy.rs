//! What happens to a job when an attempt ends or its worker is lost, and what a due
//! schedule fires: decided here, once, for every store. The stores write what this module
//! decides (fenced) and decide nothing; the maintenance chores (`crate::maintenance`) read,
//! ask this module, and write.

use crate::backoff::{random_unit, BackoffPolicy};
use crate::config;
use crate::error::Result;
use crate::job::{NewJob, Outcome, RetryRule};
use crate::schedule::{self, Firing, Timing};
use crate::spec::{self, SpecDefaults};
use crate::store::{ConfigStore, ExpiredJob, ScheduleRow, SettleParams};

/// The settings a worker reads from the queue's config: at start and with every
/// heartbeat, so that `config set` reaches running workers within a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerSettings {
    pub backoff: BackoffPolicy,
    pub log_max_bytes: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings { backoff: BackoffPolicy::default(), log_max_bytes: crate::runner::DEFAULT_LOG_MAX_BYTES }
    }
}

impl WorkerSettings {
    /// The settings from stored config pairs; a key unset (or unreadable) keeps its default.
    pub fn from_pairs(pairs: &[(String, String)]) -> WorkerSettings {
        let mut s = WorkerSettings::default();
        for (key, value) in pairs {
            let key = key.as_str();
            if key == config::BACKOFF_BASE.name {
                s.backoff.base = value.parse().unwrap_or(s.backoff.base);
            } else if key == config::BACKOFF_MAX.name {
                s.backoff.max_s = value.parse().unwrap_or(s.backoff.max_s);
            } else if key == config::BACKOFF_JITTER.name {
                s.backoff.jitter = value.parse().unwrap_or(s.backoff.jitter);
            } else if key == config::LOG_MAX_BYTES.name {
                s.log_max_bytes = value.parse().unwrap_or(s.log_max_bytes);
            }
        }
        s
    }

    /// Reads the settings from the store's config (one query).
    pub fn load(store: &mut (impl ConfigStore + ?Sized)) -> Result<WorkerSettings> {
        Ok(WorkerSettings::from_pairs(&store.config_list()?))
    }
}

/// The next state an attempt leads to: completed, failed with a backoff while
/// `attempts <= max_retries` and the job's retry rule retries such a failure, dead after
/// that (docs/internals/life-of-a-job.md). `exit_code` is None for a failure with no exit
/// code (a timeout, a kill, a failed start). Returns the outcome and when the job may run
/// next.
pub fn next_state(
    success: bool,
    exit_code: Option<i32>,
    attempts: u32,
    max_retries: u32,
    rule: &RetryRule,
    policy: &BackoffPolicy,
    now_ms: i64,
) -> (Outcome, i64) {
    if success {
        (Outcome::Completed, now_ms)
    } else if crate::rules::tries_left(attempts, max_retries) > 0 && rule.retries(exit_code) {
        let delay = policy.retry_delay_ms(attempts, rule.delays_ms.as_deref(), random_unit());
        (Outcome::Failed, now_ms.saturating_add(delay))
    } else {
        (Outcome::Dead, now_ms)
    }
}

/// The end of one attempt, as the worker saw it.
#[derive(Clone)]
pub struct AttemptEnd<'a> {
    pub id: &'a str,
    /// The attempt number the claim returned.
    pub attempt: u32,
    /// The job's `max_retries`, as the claim returned it (it never changes after enqueue).
    pub max_retries: u32,
    pub worker_id: &'a str,
    pub now_ms: i64,
    pub success: bool,
    /// It was killed because someone cancelled the job: it ends cancelled, never retried.
    pub cancelled: bool,
    /// It ran past its timeout (its exit code, if any, is the kill's).
    pub timed_out: bool,
    /// The job's retry rule.
    pub retry: &'a RetryRule,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub output_tail: String,
}

impl AttemptEnd<'_> {
    /// The settle this end leads to under `policy`.
    pub fn decide(self, policy: &BackoffPolicy) -> SettleParams {
        let (outcome, run_at_ms) = if self.cancelled {
            (Outcome::Cancelled, self.now_ms)
        } else {
            let code = if self.timed_out { None } else { self.exit_code };
            next_state(self.success, code, self.attempt, self.max_retries, self.retry, policy, self.now_ms)
        };
        SettleParams {
            id: self.id.to_string(),
            attempt: self.attempt,
            worker_id: self.worker_id.to_string(),
            now_ms: self.now_ms,
            outcome,
            run_at_ms,
            exit_code: self.exit_code,
            error: self.error,
            output_tail: self.output_tail,
            lease_expired_before: None,
        }
    }
}

/// The error recorded for an attempt whose worker was lost.
pub fn lost_worker_error(worker_id: &str) -> String {
    format!("worker {worker_id} was lost (its lease expired)")
}

/// The settle a lost worker's attempt leads to: a failed attempt (retried or dead as any
/// failure is) with the lost-worker error, written only if the job's lease has still run
/// out at `now_ms` (so a rescue never settles a job whose worker came back).
pub fn lost_attempt(job: &ExpiredJob, policy: &BackoffPolicy, now_ms: i64) -> SettleParams {
    let end = AttemptEnd {
        id: &job.id,
        attempt: job.attempt,
        max_retries: job.max_retries,
        worker_id: &job.worker_id,
        now_ms,
        success: false,
        cancelled: false,
        timed_out: false,
        retry: &job.retry,
        exit_code: None,
        error: Some(lost_worker_error(&job.worker_id)),
        output_tail: String::new(),
    };
    SettleParams { lease_expired_before: Some(now_ms), ..end.decide(policy) }
}

/// What the schedule `row` fires at `now_ms` (see [`crate::schedule::firing`]): None when
/// nothing (its next occurrence is ahead, its rule has no occurrence left, or its zone is
/// one the database no longer has); else the firing and the occurrence's job, built from
/// the schedule's template with an id derived from the schedule and the occurrence (None
/// when overlap is `skip` and the previous job is unfinished).
pub fn schedule_firing(row: &ScheduleRow, now_ms: i64) -> Result<Option<(Firing, Option<NewJob>)>> {
    // Checked when it was added; a zone the database no longer has fires nothing.
    let Ok(timing) = Timing::parse(&row.cron, Some(&row.tz)) else { return Ok(None) };
    let Some(f) = schedule::firing(&timing, row.next_fire_ms, row.overlap, row.last_job_state, now_ms) else {
        return Ok(None);
    };
    if f.skip {
        return Ok(Some((f, None)));
    }
    // The template holds every field; these defaults are never used.
    let defaults = SpecDefaults { max_retries: 0, timeout_ms: 0, cwd: "/".into(), now_ms };
    let mut job = spec::parse_one(&row.job, &defaults)?;
    job.id = Some(schedule::occurrence_id(&row.name, f.occurrence_ms));
    job.run_at_ms = now_ms;
    Ok(Some((f, Some(job))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Settled;

    #[test]
    fn default_policy_runs_four_times() {
        let (p, none) = (BackoffPolicy::default(), RetryRule::default());
        assert_eq!(next_state(false, Some(1), 1, 3, &none, &p, 0), (Outcome::Failed, 2_000));
        assert_eq!(next_state(false, Some(1), 3, 3, &none, &p, 0), (Outcome::Failed, 8_000));
        assert_eq!(next_state(false, Some(1), 4, 3, &none, &p, 0), (Outcome::Dead, 0));
        assert_eq!(next_state(false, Some(1), 1, 0, &none, &p, 0), (Outcome::Dead, 0));
        assert_eq!(next_state(true, Some(0), 4, 3, &none, &p, 5), (Outcome::Completed, 5));
    }

    #[test]
    fn settings_read_the_core_keys_and_keep_defaults_for_the_rest() {
        let pairs = [
            ("backoff-base".to_string(), "3".to_string()),
            ("log-max-bytes".to_string(), "not a number".to_string()),
            ("max-retries".to_string(), "9".to_string()),
        ];
        let s = WorkerSettings::from_pairs(&pairs);
        assert_eq!(s.backoff, BackoffPolicy { base: 3.0, max_s: 3600.0, jitter: 0.0 });
        assert_eq!(s.log_max_bytes, crate::runner::DEFAULT_LOG_MAX_BYTES);
        // The defaults are the config table's (its test checks them as `config list` shows them).
        let d = WorkerSettings::default();
        assert_eq!((d.backoff.base, d.backoff.max_s), (2.0, 3600.0));
        assert_eq!(d.log_max_bytes, 10_485_760);
    }

    #[test]
    fn a_decided_settle_maps_to_what_it_did() {
        let rule = RetryRule::default();
        let end = AttemptEnd {
            id: "j",
            attempt: 1,
            max_retries: 1,
            worker_id: "w",
            now_ms: 1_000,
            success: false,
            cancelled: false,
            timed_out: false,
            retry: &rule,
            exit_code: Some(1),
            error: None,
            output_tail: String::new(),
        };
        let p = end.clone().decide(&BackoffPolicy::default());
        assert_eq!((p.outcome, p.run_at_ms), (Outcome::Failed, 3_000));
        assert_eq!(p.settled(true), Settled::Retry { run_at_ms: 3_000 });
        assert_eq!(p.settled(false), Settled::Fenced);
        let p = AttemptEnd { attempt: 2, ..end.clone() }.decide(&BackoffPolicy::default());
        assert_eq!(p.settled(true), Settled::Dead);
        // A cancelled attempt is never retried, whatever retries are left; and a failure
        // the store stored as cancelled (a cancel asked for while it ran) says so.
        let p = AttemptEnd { cancelled: true, ..end.clone() }.decide(&BackoffPolicy::default());
        assert_eq!((p.outcome, p.run_at_ms, p.settled(true)), (Outcome::Cancelled, 1_000, Settled::Cancelled));
        let p = end.decide(&BackoffPolicy::default());
        assert_eq!(p.settled_as(Some("cancelled")), Settled::Cancelled);
        assert_eq!(p.settled_as(Some("failed")), Settled::Retry { run_at_ms: 3_000 });
        assert_eq!(p.settled_as(None), Settled::Fenced);
    }

    #[test]
    fn a_lost_attempt_fails_with_the_lost_worker_error_fenced_on_its_lease() {
        let job = ExpiredJob {
            id: "j".into(),
            attempt: 2,
            max_retries: 3,
            worker_id: "w".into(),
            lease_expires_ms: 5,
            retry: RetryRule::default(),
        };
        let p = lost_attempt(&job, &BackoffPolicy::default(), 1_000);
        assert_eq!((p.outcome, p.run_at_ms, p.lease_expired_before), (Outcome::Failed, 5_000, Some(1_000)));
        assert_eq!((p.id.as_str(), p.attempt, p.worker_id.as_str()), ("j", 2, "w"));
        assert_eq!(p.error.as_deref(), Some("worker w was lost (its lease expired)"));
        let p = lost_attempt(&ExpiredJob { attempt: 4, ..job }, &BackoffPolicy::default(), 1_000);
        assert_eq!(p.outcome, Outcome::Dead);
    }

    #[test]
    fn exit_code_rules_send_each_code_where_they_say() {
        let p = BackoffPolicy::default();
        let rule = RetryRule { on: Some(vec![75, 111]), not_on: Some(vec![2]), ..RetryRule::default() };
        let outcome = |code| next_state(false, code, 1, 3, &rule, &p, 0).0;
        assert_eq!(outcome(Some(75)), Outcome::Failed);
        assert_eq!(outcome(Some(111)), Outcome::Failed);
        assert_eq!(outcome(Some(1)), Outcome::Dead, "not in retry_on");
        assert_eq!(outcome(Some(2)), Outcome::Dead, "in no_retry_on");
        assert_eq!(outcome(None), Outcome::Failed, "a timeout follows the normal rule");
        let no_timeout = RetryRule { not_on_timeout: true, ..RetryRule::default() };
        assert_eq!(next_state(false, None, 1, 3, &no_timeout, &p, 0).0, Outcome::Dead);
        assert_eq!(next_state(false, Some(1), 1, 3, &no_timeout, &p, 0).0, Outcome::Failed);
        let delays = RetryRule { delays_ms: Some(vec![10_000, 60_000]), ..RetryRule::default() };
        let at = |attempt| next_state(false, Some(1), attempt, 5, &delays, &p, 1_000).1;
        assert_eq!((at(1), at(2), at(3)), (11_000, 61_000, 61_000));
    }

    #[test]
    fn a_due_schedule_fires_a_job_named_by_its_occurrence_or_a_skip() {
        let d = SpecDefaults { max_retries: 1, timeout_ms: 0, cwd: "/tmp".into(), now_ms: 0 };
        let row = schedule::new_schedule("tick", "@every 1m", None, "skip", r#"{"command": "true"}"#, &d).unwrap();
        assert_eq!(row.next_fire_ms, 60_000);
        assert_eq!(schedule_firing(&row, 59_999).unwrap(), None);
        let (f, job) = schedule_firing(&row, 150_000).unwrap().unwrap();
        assert_eq!((f.occurrence_ms, f.next_fire_ms, f.skip), (120_000, 180_000, false));
        let job = job.unwrap();
        assert_eq!(
            (job.id.as_deref(), job.run_at_ms, job.command.as_str()),
            (Some("tick-19700101T000200Z"), 150_000, "true")
        );
        let busy = ScheduleRow { last_job_state: Some(crate::job::JobState::Processing), ..row.clone() };
        let (f, job) = schedule_firing(&busy, 150_000).unwrap().unwrap();
        assert!(f.skip && job.is_none());
        let gone = ScheduleRow { tz: "Nowhere/Atlantis".into(), ..row };
        assert_eq!(schedule_firing(&gone, 150_000).unwrap(), None);
    }
}
