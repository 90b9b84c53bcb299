//! Row decoding, in one place: the column lists of the tables read whole (one declaration
//! gives each list, its PostgreSQL types and each column's position), [`Cells`] (what a
//! decoder needs of a SQLite or a PostgreSQL row) and a decoder per kind of row the
//! statements of `store::sql` return.
//!
//! Adding a job field: a migration (both dialects, `store::migrations`), its entry in
//! `columns!` for `jobs` below, the field in `Job` and in [`job_from`], and the inserts in
//! `sql::jobs` (their hot paths stay dialect-specific). docs/internals/architecture.md lists
//! these places too; `env` (migration 3) was added that way.

use crate::error::{Error, Result};
use crate::job::{Attempt, Flow, Job, JobState, Outcome};
use crate::spec::retry_rule_from_json;

use super::{ExpiredJob, ScheduleRow, StatRow, StopLevel, WorkerRow, WorkerState};

/// PostgreSQL types of the columns, for binary `COPY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColType {
    Int8,
    Int4,
    Text,
}

/// A table's column list from one declaration: the comma-separated names (`LIST`), the
/// PostgreSQL types in the same order (`TYPES`), and a constant per column holding its
/// position, so rows are decoded by name and the three can never disagree.
macro_rules! columns {
    ($module:ident { $($name:ident: $ty:ident),* $(,)? }) => {
        #[allow(non_upper_case_globals, dead_code)]
        pub(crate) mod $module {
            use super::ColType;
            pub const LIST: &str = columns!(@join $($name),*);
            pub const TYPES: &[ColType] = &[$(ColType::$ty),*];
            pub const COUNT: usize = TYPES.len();
            columns!(@index 0usize; $($name),*);
        }
    };
    (@join $first:ident $(, $rest:ident)*) => { concat!(stringify!($first) $(, ", ", stringify!($rest))*) };
    (@index $n:expr; $first:ident $(, $rest:ident)*) => {
        pub const $first: usize = $n;
        columns!(@index $n + 1usize; $($rest),*);
    };
    (@index $n:expr;) => {};
}

columns!(job_col {
    seq: Int8,
    id: Text,
    command: Text,
    state: Text,
    attempts: Int8,
    runs: Int8,
    max_retries: Int8,
    priority: Int8,
    run_at_ms: Int8,
    timeout_ms: Int8,
    cwd: Text,
    created_at_ms: Int8,
    updated_at_ms: Int8,
    started_at_ms: Int8,
    finished_at_ms: Int8,
    exit_code: Int4,
    last_error: Text,
    worker_id: Text,
    lease_expires_ms: Int8,
    output_tail: Text,
    env: Text,
    queue: Text,
    cancel_requested_ms: Int8,
    unique_key: Text,
    waiting_on: Int8,
    has_dependents: Int8,
    flow_key: Text,
    slots: Int8,
    retry_rule: Text,
    expires_at_ms: Int8,
});

columns!(attempt_col {
    job_seq: Int8,
    run: Int8,
    attempt: Int8,
    worker_id: Text,
    started_at_ms: Int8,
    finished_at_ms: Int8,
    exit_code: Int4,
    error: Text,
    outcome: Text,
    output_tail: Text,
});

/// Read access to one result row, by position, in the types queuectl stores: what the
/// decoders below need from a SQLite row and from a PostgreSQL row.
pub(crate) trait Cells {
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn opt_int4(&self, i: usize) -> Result<Option<i32>>;
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
}

/// Implements [`Cells`] for a driver's row type through its getter (`get`, `try_get`).
macro_rules! impl_cells {
    ($row:ty, $get:ident) => {
        impl $crate::store::row::Cells for $row {
            fn int(&self, i: usize) -> $crate::error::Result<i64> {
                Ok(self.$get(i)?)
            }
            fn opt_int(&self, i: usize) -> $crate::error::Result<Option<i64>> {
                Ok(self.$get(i)?)
            }
            fn opt_int4(&self, i: usize) -> $crate::error::Result<Option<i32>> {
                Ok(self.$get(i)?)
            }
            fn text(&self, i: usize) -> $crate::error::Result<String> {
                Ok(self.$get(i)?)
            }
            fn opt_text(&self, i: usize) -> $crate::error::Result<Option<String>> {
                Ok(self.$get(i)?)
            }
        }
    };
}
pub(crate) use impl_cells;

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The state a stored name means; an unknown one is a database error.
pub(crate) fn state_of(s: &str) -> Result<JobState> {
    JobState::parse(s).ok_or_else(|| Error::Database(format!("unknown job state {s:?} in the database")))
}

/// A job from a row of `SELECT {job_col::LIST}` (or a `RETURNING` of it), starting at
/// column `at`.
pub(crate) fn job_from(r: &impl Cells, at: usize) -> Result<Job> {
    use job_col as c;
    Ok(Job {
        id: r.text(at + c::id)?,
        command: r.text(at + c::command)?,
        state: state_of(&r.text(at + c::state)?)?,
        attempts: u32_of(r.int(at + c::attempts)?),
        max_retries: u32_of(r.int(at + c::max_retries)?),
        priority: r.int(at + c::priority)?,
        run_at_ms: r.int(at + c::run_at_ms)?,
        timeout_ms: u64::try_from(r.int(at + c::timeout_ms)?).unwrap_or(0),
        cwd: r.text(at + c::cwd)?,
        created_at_ms: r.int(at + c::created_at_ms)?,
        updated_at_ms: r.int(at + c::updated_at_ms)?,
        started_at_ms: r.opt_int(at + c::started_at_ms)?,
        finished_at_ms: r.opt_int(at + c::finished_at_ms)?,
        exit_code: r.opt_int4(at + c::exit_code)?,
        last_error: r.opt_text(at + c::last_error)?,
        worker_id: r.opt_text(at + c::worker_id)?,
        lease_expires_ms: r.opt_int(at + c::lease_expires_ms)?,
        env: env_from(r.opt_text(at + c::env)?.as_deref())?,
        queue: r.text(at + c::queue)?,
        cancel_requested_ms: r.opt_int(at + c::cancel_requested_ms)?,
        unique_key: r.opt_text(at + c::unique_key)?,
        waiting_on: u32_of(r.int(at + c::waiting_on)?),
        flow: Flow {
            key: r.opt_text(at + c::flow_key)?,
            slots: u32_of(r.int(at + c::slots)?).max(1),
            retry: r.opt_text(at + c::retry_rule)?.as_deref().map(retry_rule_from_json).unwrap_or_default(),
            expires_at_ms: r.opt_int(at + c::expires_at_ms)?,
        },
    })
}

/// A job's flow-control fields as stored: key, slots, retry rule (JSON or NULL), expiry.
pub(crate) fn flow_values(f: &crate::job::Flow) -> (Option<&str>, i64, Option<String>, Option<i64>) {
    (f.key.as_deref(), i64::from(f.slots), f.retry.to_json(), f.expires_at_ms)
}

/// A job's environment as stored: a JSON object of strings, NULL when it has none.
pub(crate) fn env_text(env: &[(String, String)]) -> Option<String> {
    if env.is_empty() {
        return None;
    }
    let map: serde_json::Map<String, serde_json::Value> =
        env.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    Some(serde_json::Value::Object(map).to_string())
}

fn env_from(text: Option<&str>) -> Result<Vec<(String, String)>> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let bad = || Error::Database("a job's env in the database is not a JSON object of strings".into());
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
    let obj = value.as_object().ok_or_else(bad)?;
    obj.iter().map(|(k, v)| Ok((k.clone(), v.as_str().ok_or_else(bad)?.to_string()))).collect()
}

/// A worker from a row of `sql::workers`' list.
pub(crate) fn worker_from(r: &impl Cells) -> Result<WorkerRow> {
    let state = r.text(3)?;
    Ok(WorkerRow {
        id: r.text(0)?,
        host: r.text(1)?,
        pid: u32_of(r.int(2)?),
        state: WorkerState::parse(&state)
            .ok_or_else(|| Error::Database(format!("unknown worker state {state:?} in the database")))?,
        current_job: r.opt_text(4)?,
        started_at_ms: r.int(5)?,
        heartbeat_ms: r.int(6)?,
        lease_ms: r.int(7)?,
        stop_requested: StopLevel::from_u8(u8::try_from(r.int(8)?).unwrap_or(0)),
        exited_at_ms: r.opt_int(9)?,
        queues: r.opt_text(10)?.map(|q| q.split(',').map(str::to_string).collect()),
        slots: r.opt_int(11)?.map(u32_of),
    })
}

/// An attempt from a row of `sql::attempts::LIST`.
pub(crate) fn attempt_from(r: &impl Cells) -> Result<Attempt> {
    let outcome = r.text(6)?;
    Ok(Attempt {
        attempt: u32_of(r.int(0)?),
        worker_id: r.opt_text(1)?,
        started_at_ms: r.opt_int(2)?,
        finished_at_ms: r.opt_int(3)?.unwrap_or_default(),
        exit_code: r.opt_int4(4)?,
        error: r.opt_text(5)?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| Error::Database(format!("unknown attempt outcome {outcome:?} in the database")))?,
        output_tail: r.text(7)?,
    })
}

/// A row of the stats reads (`sql::stats`).
pub(crate) fn stat_from(r: &impl Cells) -> Result<StatRow> {
    Ok(StatRow { minute_ms: r.int(0)?, queue: r.text(1)?, metric: r.text(2)?, value: r.int(3)? })
}

/// A schedule from a row of `sql::schedules::LIST`.
pub(crate) fn schedule_from(r: &impl Cells) -> Result<ScheduleRow> {
    let overlap = r.text(3)?;
    Ok(ScheduleRow {
        name: r.text(0)?,
        cron: r.text(1)?,
        tz: r.text(2)?,
        overlap: crate::schedule::Overlap::parse(&overlap)
            .map_err(|_| Error::Database(format!("unknown overlap {overlap:?} in the database")))?,
        job: r.text(4)?,
        paused: r.int(5)? != 0,
        next_fire_ms: r.int(6)?,
        last_fire_ms: r.opt_int(7)?,
        last_job_id: r.opt_text(8)?,
        last_job_state: r.opt_text(9)?.as_deref().map(state_of).transpose()?,
        fired: u64::try_from(r.int(10)?).unwrap_or(0),
        skipped: u64::try_from(r.int(11)?).unwrap_or(0),
        created_at_ms: r.int(12)?,
        updated_at_ms: r.int(13)?,
    })
}

/// One row of `sql::schedules::ROWS` (what `sql::schedules::COPY` takes).
pub(crate) type ScheduleCopy =
    (String, String, String, String, String, i64, i64, Option<i64>, Option<String>, i64, i64, i64, i64);

/// A parent from a row of `sql::dependencies::PARENTS`.
pub(crate) fn parent_from(r: &impl Cells) -> Result<(String, JobState)> {
    Ok((r.text(0)?, state_of(&r.text(1)?)?))
}

/// An expired job from a row of `sql::jobs`' expired jobs.
pub(crate) fn expired_from(r: &impl Cells) -> Result<ExpiredJob> {
    Ok(ExpiredJob {
        id: r.text(0)?,
        attempt: u32_of(r.int(1)?),
        max_retries: u32_of(r.int(2)?),
        worker_id: r.opt_text(3)?.unwrap_or_default(),
        lease_expires_ms: r.opt_int(4)?.unwrap_or_default(),
        retry: r.opt_text(5)?.as_deref().map(retry_rule_from_json).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_and_positions_agree() {
        assert!(job_col::LIST.starts_with("seq, id, command, state"));
        assert_eq!(job_col::LIST.split(", ").count(), job_col::COUNT);
        assert_eq!(job_col::LIST.split(", ").position(|c| c == "exit_code"), Some(job_col::exit_code));
        assert_eq!(job_col::TYPES[job_col::exit_code], ColType::Int4);
        assert_eq!(attempt_col::LIST.split(", ").nth(attempt_col::outcome), Some("outcome"));
    }
}
