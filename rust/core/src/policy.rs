//! What happens to a job when an attempt ends or its worker is lost: decided here, once,
//! for every store. The stores write what this module decides (fenced) and decide nothing.

use crate::backoff::BackoffPolicy;
use crate::error::Result;
use crate::job::Outcome;
use crate::schedule::{self, Timing};
use crate::spec::{self, SpecDefaults};
use crate::store::{ConfigStore, Fire, JobAdmin, SettleParams, Settled, Store};

/// Config keys the core itself reads; every other key is the Python side's.
pub mod keys {
    pub const BACKOFF_BASE: &str = "backoff-base";
    pub const BACKOFF_MAX: &str = "backoff-max";
    pub const LOG_MAX_BYTES: &str = "log-max-bytes";
}

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
            match key.as_str() {
                keys::BACKOFF_BASE => s.backoff.base = value.parse().unwrap_or(s.backoff.base),
                keys::BACKOFF_MAX => s.backoff.max_s = value.parse().unwrap_or(s.backoff.max_s),
                keys::LOG_MAX_BYTES => s.log_max_bytes = value.parse().unwrap_or(s.log_max_bytes),
                _ => {}
            }
        }
        s
    }

    /// Reads the settings from the store's config (one query).
    pub fn load(store: &mut (impl ConfigStore + ?Sized)) -> Result<WorkerSettings> {
        Ok(WorkerSettings::from_pairs(&store.config_list()?))
    }

    /// The config defaults the core applies, as the strings `config list` shows.
    pub fn default_pairs() -> [(&'static str, String); 3] {
        let d = WorkerSettings::default();
        [
            (keys::BACKOFF_BASE, format_number(d.backoff.base)),
            (keys::BACKOFF_MAX, format_number(d.backoff.max_s)),
            (keys::LOG_MAX_BYTES, d.log_max_bytes.to_string()),
        ]
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

/// The next state an attempt leads to: completed, failed with a backoff while
/// `attempts <= max_retries`, dead after that (docs/internals/life-of-a-job.md).
/// Returns the outcome and when the job may run next.
pub fn next_state(
    success: bool,
    attempts: u32,
    max_retries: u32,
    policy: &BackoffPolicy,
    now_ms: i64,
) -> (Outcome, i64) {
    if success {
        (Outcome::Completed, now_ms)
    } else if crate::rules::tries_left(attempts, max_retries) > 0 {
        (Outcome::Failed, now_ms.saturating_add(policy.delay_ms(attempts)))
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
            next_state(self.success, self.attempt, self.max_retries, policy, self.now_ms)
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

/// Settles, as failed attempts, every processing job whose lease ran out before `now_ms`.
/// Returns (id, attempt) of each job rescued. Two hosts rescuing at once are safe: each
/// write is fenced on the attempt and on the lease still having run out, so one of them
/// applies and the other finds the job already settled.
pub fn rescue_expired(
    store: &mut (impl JobAdmin + ?Sized),
    policy: &BackoffPolicy,
    now_ms: i64,
) -> Result<Vec<(String, u32)>> {
    let expired = store.job_get_expired(now_ms)?;
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let settles: Vec<SettleParams> = expired
        .iter()
        .map(|j| {
            let end = AttemptEnd {
                id: &j.id,
                attempt: j.attempt,
                max_retries: j.max_retries,
                worker_id: &j.worker_id,
                now_ms,
                success: false,
                cancelled: false,
                exit_code: None,
                error: Some(lost_worker_error(&j.worker_id)),
                output_tail: String::new(),
            };
            SettleParams { lease_expired_before: Some(now_ms), ..end.decide(policy) }
        })
        .collect();
    let settled = store.job_settle_many(&settles)?;
    Ok(expired
        .into_iter()
        .zip(settled)
        .filter(|(_, s)| *s != Settled::Fenced)
        .map(|(j, _)| (j.id, j.attempt))
        .collect())
}

/// Fires every schedule due at `now_ms` (see [`crate::schedule::firing`]): the latest
/// occurrence each has reached, as a job whose id is derived from the schedule and the
/// occurrence, or a skip when overlap is `skip` and the previous job is unfinished. Every
/// worker runs this with its heartbeat; the store's compare-and-set lets one of them win
/// each occurrence. Returns what this caller fired: (schedule, job id or None if skipped).
pub fn fire_schedules(store: &mut dyn Store, now_ms: i64) -> Result<Vec<(String, Option<String>)>> {
    let mut fired = Vec::new();
    for row in store.schedule_list(None, Some(now_ms))? {
        // Checked when it was added; a zone the database no longer has fires nothing.
        let Ok(timing) = Timing::parse(&row.cron, Some(&row.tz)) else { continue };
        let Some(f) = schedule::firing(&timing, row.next_fire_ms, row.overlap, row.last_job_state, now_ms) else {
            continue;
        };
        let job = if f.skip {
            None
        } else {
            // The template holds every field; these defaults are never used.
            let defaults = SpecDefaults { max_retries: 0, timeout_ms: 0, cwd: "/".into(), now_ms };
            let mut job = spec::parse_one(&row.job, &defaults)?;
            job.id = Some(schedule::occurrence_id(&row.name, f.occurrence_ms));
            job.run_at_ms = now_ms;
            Some(job)
        };
        let fire = Fire {
            name: &row.name,
            expected_next_ms: row.next_fire_ms,
            occurrence_ms: f.occurrence_ms,
            next_fire_ms: f.next_fire_ms,
            job: job.as_ref(),
            now_ms,
        };
        if store.schedule_fire(&fire)? {
            fired.push((row.name, job.and_then(|j| j.id)));
        }
    }
    Ok(fired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_runs_four_times() {
        let p = BackoffPolicy::default();
        assert_eq!(next_state(false, 1, 3, &p, 0), (Outcome::Failed, 2_000));
        assert_eq!(next_state(false, 3, 3, &p, 0), (Outcome::Failed, 8_000));
        assert_eq!(next_state(false, 4, 3, &p, 0), (Outcome::Dead, 0));
        assert_eq!(next_state(false, 1, 0, &p, 0), (Outcome::Dead, 0));
        assert_eq!(next_state(true, 4, 3, &p, 5), (Outcome::Completed, 5));
    }

    #[test]
    fn settings_read_the_core_keys_and_keep_defaults_for_the_rest() {
        let pairs = [
            ("backoff-base".to_string(), "3".to_string()),
            ("log-max-bytes".to_string(), "not a number".to_string()),
            ("max-retries".to_string(), "9".to_string()),
        ];
        let s = WorkerSettings::from_pairs(&pairs);
        assert_eq!(s.backoff, BackoffPolicy { base: 3.0, max_s: 3600.0 });
        assert_eq!(s.log_max_bytes, crate::runner::DEFAULT_LOG_MAX_BYTES);
        let defaults = WorkerSettings::default_pairs();
        assert_eq!(defaults[0], ("backoff-base", "2".to_string()));
        assert_eq!(defaults[1], ("backoff-max", "3600".to_string()));
        assert_eq!(defaults[2], ("log-max-bytes", "10485760".to_string()));
    }

    #[test]
    fn a_decided_settle_maps_to_what_it_did() {
        let end = AttemptEnd {
            id: "j",
            attempt: 1,
            max_retries: 1,
            worker_id: "w",
            now_ms: 1_000,
            success: false,
            cancelled: false,
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
}
