//! The job and its attempts: data only.

use std::fmt;

use crate::error::{Error, Result};

/// Where a job is in its life (docs/internals/life-of-a-job.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Enqueued to run after other jobs (`after`), not all of which have completed yet; in
    /// no claim index until the last of them completes.
    Waiting,
    /// Waiting to be claimed once `run_at` is reached.
    Pending,
    /// Claimed by a worker that holds a lease on it.
    Processing,
    /// Exited 0.
    Completed,
    /// Failed, with retries left; claimable again once `run_at` (the backoff) is reached.
    Failed,
    /// Failed with no retries left: the dead letter queue.
    Dead,
    /// Cancelled by `cancel` before it ran, or killed while it ran: never retried.
    Cancelled,
}

impl JobState {
    /// Every state, in the order `status` shows them.
    pub const ALL: [JobState; 7] = [
        JobState::Waiting,
        JobState::Pending,
        JobState::Processing,
        JobState::Completed,
        JobState::Failed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    /// Whether a job in this state has ended: it runs again only if someone retries it.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Completed | JobState::Dead | JobState::Cancelled)
    }

    /// The lower-case name stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Pending => "pending",
            JobState::Processing => "processing",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state named `name`, if any.
    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an attempt ended, as recorded in its history and decided by the core's policy
/// (`crate::policy`): the job's next state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Exited 0: the job is completed.
    Completed,
    /// Failed with retries left: runnable again after its backoff.
    Failed,
    /// Failed with no retries left: the dead letter queue.
    Dead,
    /// Killed because someone cancelled the job (or it ended after a cancel was asked for).
    Cancelled,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 4] = [Outcome::Completed, Outcome::Failed, Outcome::Dead, Outcome::Cancelled];

    /// The job state the outcome moves the job to.
    pub fn state(self) -> JobState {
        match self {
            Outcome::Completed => JobState::Completed,
            Outcome::Failed => JobState::Failed,
            Outcome::Dead => JobState::Dead,
            Outcome::Cancelled => JobState::Cancelled,
        }
    }

    /// The name stored in the database (the state's name).
    pub fn as_str(self) -> &'static str {
        self.state().as_str()
    }

    /// The outcome named `name`, if any.
    pub fn parse(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated job about to be enqueued. `id` is `None` when the store should generate one.
#[derive(Clone, PartialEq)]
pub struct NewJob {
    pub id: Option<String>,
    pub command: String,
    pub max_retries: u32,
    pub priority: i64,
    pub run_at_ms: i64,
    /// 0 means no timeout.
    pub timeout_ms: u64,
    pub cwd: String,
    /// Added to the job's environment (names and values); shown by name only.
    pub env: Vec<(String, String)>,
    /// The named queue it waits in ([`DEFAULT_QUEUE`] unless given).
    pub queue: String,
    /// While a job with this key is unfinished, enqueueing another adds nothing.
    pub unique_key: Option<String>,
    /// The ids of the jobs it runs after (each once): it waits until all of them have
    /// completed, and is cancelled when one ends dead or cancelled.
    pub after: Vec<String>,
    /// Flow control (DESIGN.md section 13): its key, slots, retry rule and expiry.
    pub flow: Flow,
}

/// A job's flow-control fields: what limits when it may start and how it is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// At most `queue key-limit` processing jobs of its queue share this key.
    pub key: Option<String>,
    /// How many of a worker process's slots it takes while it runs (1 to [`MAX_SLOTS`]).
    pub slots: u32,
    /// Which failures are retried and after how long.
    pub retry: RetryRule,
    /// A job not started by then ends cancelled ("expired") and never runs.
    pub expires_at_ms: Option<i64>,
}

impl Default for Flow {
    fn default() -> Self {
        Flow { key: None, slots: 1, retry: RetryRule::default(), expires_at_ms: None }
    }
}

/// A job's own retry rule. Empty: every failure is retried while retries are left, after
/// `backoff-base ^ attempts` seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryRule {
    /// The delay before retry k is the k-th entry (the last one repeats), in ms.
    pub delays_ms: Option<Vec<u64>>,
    /// Only failures with these exit codes are retried (a failure with no exit code, a
    /// timeout, a kill or a failed start, follows the normal rule).
    pub on: Option<Vec<i32>>,
    /// Failures with these exit codes go straight to dead.
    pub not_on: Option<Vec<i32>>,
    /// A failure with no exit code (a timeout, a kill, a failed start) goes straight to dead.
    pub not_on_timeout: bool,
}

impl RetryRule {
    /// The default rule, as a constant (`&RetryRule::NONE` lives forever).
    pub const NONE: RetryRule = RetryRule { delays_ms: None, on: None, not_on: None, not_on_timeout: false };

    /// Whether the rule is the default one (nothing stored).
    pub fn is_empty(&self) -> bool {
        *self == RetryRule::default()
    }

    /// Whether a failure with `exit_code` (None: a timeout, a kill, a failed start) may be
    /// retried at all under this rule.
    pub fn retries(&self, exit_code: Option<i32>) -> bool {
        match exit_code {
            None => !self.not_on_timeout,
            Some(code) => {
                !self.not_on.as_ref().is_some_and(|c| c.contains(&code))
                    && self.on.as_ref().is_none_or(|c| c.contains(&code))
            }
        }
    }

    /// The stored form: the JSON fields of enqueue (`retry_delays` in seconds,
    /// `retry_on`, `no_retry_on`), or None for the default rule.
    pub fn to_json(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut m = serde_json::Map::new();
        if let Some(d) = &self.delays_ms {
            let secs: Vec<serde_json::Value> = d.iter().map(|ms| ms_to_seconds_value(*ms)).collect();
            m.insert("retry_delays".into(), secs.into());
        }
        if let Some(on) = &self.on {
            m.insert("retry_on".into(), on.clone().into());
        }
        if self.not_on.is_some() || self.not_on_timeout {
            let mut v: Vec<serde_json::Value> =
                self.not_on.iter().flatten().map(|c| serde_json::Value::from(*c)).collect();
            if self.not_on_timeout {
                v.push("timeout".into());
            }
            m.insert("no_retry_on".into(), v.into());
        }
        Some(serde_json::Value::Object(m).to_string())
    }
}

/// Milliseconds as a JSON number of seconds: an integer when whole.
pub fn ms_to_seconds_value(ms: u64) -> serde_json::Value {
    if ms.is_multiple_of(1000) {
        (ms / 1000).into()
    } else {
        (ms as f64 / 1000.0).into()
    }
}

/// Most slots a job may need.
pub const MAX_SLOTS: u32 = 1024;

/// Longest flow-control key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 200;

/// Most jobs one job may run after.
pub const MAX_AFTER: usize = 10_000;

/// The queue of a job that names none.
pub const DEFAULT_QUEUE: &str = "default";

/// Longest queue name accepted, in characters.
pub const MAX_QUEUE_CHARS: usize = 64;

/// Longest unique key accepted, in characters.
pub const MAX_UNIQUE_KEY_CHARS: usize = 255;

/// Checks a unique key: 1 to 255 characters, none of them a control character.
pub fn validate_unique_key(key: &str) -> Result<()> {
    let n = key.chars().count();
    if n == 0 || n > MAX_UNIQUE_KEY_CHARS || key.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "unique_key {key:?}: must be 1 to {MAX_UNIQUE_KEY_CHARS} characters, no control characters"
        )));
    }
    Ok(())
}

/// Checks a queue name: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn validate_queue(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_QUEUE_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "queue name {name:?}: must be 1 to {MAX_QUEUE_CHARS} letters, digits, '.', '_' or '-'"
        )))
    }
}

/// A job as stored. Fields of the latest attempt are `None` until a worker claims it.
#[derive(Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub command: String,
    pub state: JobState,
    pub attempts: u32,
    pub max_retries: u32,
    pub priority: i64,
    pub run_at_ms: i64,
    pub timeout_ms: u64,
    pub cwd: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub last_error: Option<String>,
    pub worker_id: Option<String>,
    pub lease_expires_ms: Option<i64>,
    /// Added to the job's environment (names and values); shown by name only.
    pub env: Vec<(String, String)>,
    pub queue: String,
    /// When `cancel` asked for this processing job to be killed; its worker kills it within
    /// a heartbeat. `None` otherwise; a job that completed before its worker heard of the
    /// cancel keeps the time (a retry clears it).
    pub cancel_requested_ms: Option<i64>,
    /// While this job is unfinished, no other job with the key is enqueued.
    pub unique_key: Option<String>,
    /// How many of the jobs it runs after have not completed yet (0 unless waiting).
    pub waiting_on: u32,
    /// Flow control: its key, slots, retry rule and expiry.
    pub flow: Flow,
}

impl Job {
    /// The names of the job's own environment variables (their values may be secrets).
    pub fn env_names(&self) -> Vec<String> {
        self.env.iter().map(|(k, _)| k.clone()).collect()
    }
}

/// Commands may hold secrets and Debug output ends up in bug reports: show their length only.
impl fmt::Debug for NewJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewJob")
            .field("id", &self.id)
            .field("command", &format_args!("<{} bytes>", self.command.len()))
            .field("max_retries", &self.max_retries)
            .field("priority", &self.priority)
            .field("run_at_ms", &self.run_at_ms)
            .field("queue", &self.queue)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("command", &format_args!("<{} bytes>", self.command.len()))
            .field("state", &self.state)
            .field("queue", &self.queue)
            .field("attempts", &self.attempts)
            .field("max_retries", &self.max_retries)
            .field("worker_id", &self.worker_id)
            .field("env", &self.env_names())
            .finish_non_exhaustive()
    }
}

/// One finished execution of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub attempt: u32,
    pub worker_id: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: i64,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// The state the job moved to when this attempt was settled.
    pub outcome: Outcome,
    /// The last few KiB of the attempt's stdout and stderr.
    pub output_tail: String,
}
