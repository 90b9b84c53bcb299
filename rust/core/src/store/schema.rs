//! The column lists (with the PostgreSQL type of each column), row decoding by column
//! name, and the statements both stores run as they are. The migrations are in
//! `migrations`.
//!
//! Adding a job field: a migration (both dialects), its entry in `columns!` for `jobs`, the
//! field in `Job` and in [`job_from`], and the insert of each store (their hot paths stay
//! dialect-specific). docs/internals/architecture.md lists these places too; `env`
//! (migration 3) was added that way.

use std::sync::LazyLock;

use crate::error::{Error, Result};
use crate::job::{Attempt, Job, JobState, Outcome};

use super::{ByIdChange, QueueChange, QueueRow, StopLevel, WorkerRow, WorkerState};

/// ?1 minute, ?2 queue, ?3 metric, ?4 the value to add.
pub(super) const STATS_ADD_SQL: &str = "INSERT INTO stats (minute_ms, queue, metric, value) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (minute_ms, queue, metric) DO UPDATE SET value = stats.value + excluded.value";
/// ?1: minutes before it are forgotten (the totals stay).
pub(super) const STATS_FORGET_SQL: &str = "DELETE FROM stats WHERE minute_ms > 0 AND minute_ms < ?1";
pub(super) const STATS_TOTALS_SQL: &str = "SELECT minute_ms, queue, metric, value FROM stats WHERE minute_ms = 0";
/// ?1 the first minute.
pub(super) const STATS_SINCE_SQL: &str =
    "SELECT minute_ms, queue, metric, value FROM stats WHERE minute_ms >= ?1 AND minute_ms > 0 ORDER BY minute_ms";

/// A row of the stats reads.
pub(super) fn stat_from(r: &impl Cells) -> Result<super::StatRow> {
    Ok(super::StatRow { minute_ms: r.int(0)?, queue: r.text(1)?, metric: r.text(2)?, value: r.int(3)? })
}

/// The page query's text (see `PageFilter`): `from` is the FROM clause with its state
/// condition (`jobs WHERE state = 'dead'`, or `jobs WHERE 1 = 1`), `contains` the
/// dialect's substring test with `{col}` and `?5` in it. ?1 limit, ?2 queue, ?3 below this
/// seq, ?4 at or above this seq, ?5 search text; a filter not given is bound to NULL and
/// written as a constant test, so that it never keeps an index from being used.
pub(super) fn page_sql(from: &str, queue: bool, search: bool, contains: &str) -> String {
    let queue = if queue { "queue = ?2" } else { "CAST(?2 AS TEXT) IS NULL" };
    let search = if search {
        format!("({} OR {})", contains.replace("{col}", "id"), contains.replace("{col}", "command"))
    } else {
        "CAST(?5 AS TEXT) IS NULL".to_string()
    };
    format!(
        "SELECT {} FROM {from} AND {queue} AND seq < ?3 AND seq >= ?4 AND {search} ORDER BY seq DESC LIMIT ?1",
        job_col::LIST
    )
}

/// The seqs a page reads: below the first, at or above the second; with `windowed`, at
/// most `PAGE_SCAN_WINDOW` of them.
pub(super) fn page_bounds(before: Option<i64>, max_seq: i64, windowed: bool) -> (i64, i64) {
    let upper = before.unwrap_or(i64::MAX).min(max_seq.saturating_add(1));
    let lower = if windowed { upper.saturating_sub(super::PAGE_SCAN_WINDOW).max(0) } else { 0 };
    (upper, lower)
}

/// The next page's cursor: the oldest job of a full page, else the window's lower bound
/// while older jobs may be left.
pub(super) fn page_next(jobs_seqs: &[i64], limit: u64, lower: i64, min_seq: i64) -> Option<i64> {
    if jobs_seqs.len() as u64 >= limit && limit > 0 {
        return jobs_seqs.last().copied();
    }
    (lower > min_seq).then_some(lower)
}

/// Schedules, by name, with the state of the last job each enqueued: ?1 one name (NULL:
/// all), ?2 only those not paused whose next occurrence is at or before it (NULL: any).
pub(super) const SCHEDULE_LIST_SQL: &str =
    "SELECT s.name, s.cron, s.tz, s.overlap, s.job, CAST(s.paused AS BIGINT), s.next_fire_ms, s.last_fire_ms,
            s.last_job_id, j.state, s.fired, s.skipped, s.created_at_ms, s.updated_at_ms
     FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id
     WHERE (CAST(?1 AS TEXT) IS NULL OR s.name = ?1)
       AND (CAST(?2 AS BIGINT) IS NULL OR (s.paused = 0 AND s.next_fire_ms <= ?2))
     ORDER BY s.name";

/// A schedule from a row of [`SCHEDULE_LIST_SQL`].
pub(super) fn schedule_from(r: &impl Cells) -> Result<super::ScheduleRow> {
    let overlap = r.text(3)?;
    Ok(super::ScheduleRow {
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

/// ?1 name, ?2 rule, ?3 zone, ?4 overlap, ?5 job, ?6 next occurrence, ?7 now; no row
/// when the name is taken.
pub(super) const SCHEDULE_ADD_SQL: &str =
    "INSERT INTO schedules (name, cron, tz, overlap, job, next_fire_ms, created_at_ms, updated_at_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT (name) DO NOTHING";

/// The error for a name taken.
pub(super) fn schedule_exists(name: &str) -> Error {
    Error::InvalidState(format!("a schedule named {name:?} exists (remove it first to replace it)"))
}

/// The error for an unknown name.
pub(super) fn no_schedule(name: &str) -> Error {
    Error::InvalidInput(format!("there is no schedule named {name:?} (see `queuectl schedule list`)"))
}

/// The compare-and-set of a firing: applies only while the schedule is still due at the
/// occurrence this firer read (?2), so one firer of each occurrence wins. ?1 name, ?3 next
/// occurrence, ?4 the occurrence, ?5 the job enqueued (NULL: skipped), ?6 1 when fired,
/// ?7 1 when skipped, ?8 now.
pub(super) const SCHEDULE_FIRE_SQL: &str =
    "UPDATE schedules SET next_fire_ms = ?3, last_fire_ms = ?4, last_job_id = coalesce(?5, last_job_id),
         fired = fired + ?6, skipped = skipped + ?7, updated_at_ms = ?8
     WHERE name = ?1 AND next_fire_ms = ?2 AND paused = 0";

/// Every schedule as [`SCHEDULE_COPY_SQL`] takes it (a copy between stores).
pub(super) const SCHEDULE_ROWS_SQL: &str =
    "SELECT name, cron, tz, overlap, job, CAST(paused AS BIGINT), next_fire_ms, last_fire_ms, last_job_id,
            fired, skipped, created_at_ms, updated_at_ms FROM schedules";

/// A schedule as a copy writes it (the source's wins over one of the same name).
pub(super) const SCHEDULE_COPY_SQL: &str =
    "INSERT INTO schedules (name, cron, tz, overlap, job, paused, next_fire_ms, last_fire_ms, last_job_id,
                            fired, skipped, created_at_ms, updated_at_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
     ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, tz = excluded.tz, overlap = excluded.overlap,
         job = excluded.job, paused = excluded.paused, next_fire_ms = excluded.next_fire_ms,
         last_fire_ms = excluded.last_fire_ms, last_job_id = excluded.last_job_id, fired = excluded.fired,
         skipped = excluded.skipped, created_at_ms = excluded.created_at_ms, updated_at_ms = excluded.updated_at_ms";

/// One row of [`SCHEDULE_ROWS_SQL`].
pub(super) type ScheduleCopy =
    (String, String, String, String, String, i64, i64, Option<i64>, Option<String>, i64, i64, i64, i64);

/// An occurrence's job: ?1 id, ?2 command, ?3 max retries, ?4 priority, ?5 run at, ?6
/// timeout, ?7 cwd, ?8 now, ?9 env, ?10 queue, ?11 unique key. A job already there with
/// its id (or its unique key) leaves it at that.
pub(super) const SCHEDULED_JOB_SQL: &str =
    "INSERT INTO jobs (id, command, state, max_retries, priority, run_at_ms, timeout_ms, cwd, created_at_ms, updated_at_ms, env, queue, unique_key)
     VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING";

/// The statement of a schedule change (?1 name, ?2 now, ?3 for a resume the next
/// occurrence) and whether it takes ?3.
pub(super) fn schedule_change_sql(change: super::ScheduleChange) -> (&'static str, Option<i64>) {
    match change {
        super::ScheduleChange::Pause => ("UPDATE schedules SET paused = 1, updated_at_ms = ?2 WHERE name = ?1", None),
        super::ScheduleChange::Resume { next_fire_ms } => (
            "UPDATE schedules SET paused = 0, next_fire_ms = ?3, updated_at_ms = ?2 WHERE name = ?1",
            Some(next_fire_ms),
        ),
        super::ScheduleChange::Remove => {
            ("DELETE FROM schedules WHERE name = ?1 AND CAST(?2 AS BIGINT) IS NOT NULL", None)
        }
    }
}

/// Marks job ?1 as having dependents and reads it (its row locked on PostgreSQL until the
/// enqueue commits, so a settle of it waits and then sees the new edge).
pub(super) const PARENT_MARK_SQL: &str = "UPDATE jobs SET has_dependents = 1 WHERE id = ?1 RETURNING seq, state";

/// One edge: ?1 the parent's seq, ?2 the dependent's.
pub(super) const DEP_INSERT_SQL: &str =
    "INSERT INTO job_deps (parent_seq, child_seq) VALUES (?1, ?2) ON CONFLICT DO NOTHING";

/// Counts one completed parent off its waiting dependents; the last makes each pending.
/// `which` is the condition on `seq` that selects the dependents, `now` the time parameter.
pub(super) fn release_sql(which: &str, now: &str) -> String {
    format!(
        "UPDATE jobs SET waiting_on = waiting_on - 1,
             state = CASE WHEN waiting_on <= 1 THEN 'pending' ELSE 'waiting' END, updated_at_ms = {now}
         WHERE state = 'waiting' AND {which}"
    )
}

/// [`release_sql`] for the dependents of the job with seq ?1, at ?2.
pub(super) static RELEASE_SQL: LazyLock<String> =
    LazyLock::new(|| release_sql("seq IN (SELECT child_seq FROM job_deps WHERE parent_seq = ?1)", "?2"));

/// The waiting jobs doomed by `anchor` (rows of dependent seq, the parent's id, how the
/// parent ended), and theirs down the chain: a recursive CTE named `doomed`.
pub(super) fn doomed_cte(anchor: &str) -> String {
    format!(
        "doomed(seq, cause, how) AS ({anchor}
         UNION SELECT d.child_seq, c.id, CAST('cancelled' AS TEXT) FROM doomed JOIN jobs c ON c.seq = doomed.seq
               JOIN job_deps d ON d.parent_seq = c.seq WHERE c.state = 'waiting')"
    )
}

/// Cancels the jobs of `doomed`, each naming the parent whose end doomed it; ?{now}.
pub(super) fn cascade_update(now: u8) -> String {
    format!(
        "UPDATE jobs SET state = 'cancelled', waiting_on = 0, finished_at_ms = ?{now}, updated_at_ms = ?{now},
             last_error = 'cancelled: it runs after job ' || doomed.cause || ', which ended ' || doomed.how
         FROM doomed WHERE jobs.seq = doomed.seq AND jobs.state = 'waiting'"
    )
}

/// The dependents of the parents `parents` selects (a condition on `p`) that ended dead or
/// cancelled, cancelled down the chain: one statement, ?{now} the time.
fn cascade_sql(parents: &str, now: u8) -> String {
    let anchor = format!(
        "SELECT d.child_seq, p.id, p.state FROM jobs p JOIN job_deps d ON d.parent_seq = p.seq
         WHERE {parents} AND p.state IN ('dead', 'cancelled')"
    );
    format!("WITH RECURSIVE {} {}", doomed_cte(&anchor), cascade_update(now))
}

/// The cascade from the job with seq ?1, at ?2.
pub(super) static CASCADE_SQL: LazyLock<String> = LazyLock::new(|| cascade_sql("p.seq = ?1", 2));

/// What [`dependents_step`] needs of job ?1 after a change by id (a cancel).
pub(super) const JOB_END_SQL: &str = "SELECT seq, state, has_dependents FROM jobs WHERE id = ?1";

/// The cascade from every job that ended dead or cancelled with waiting dependents, at
/// ?1 (a backup's copy, after its processing jobs were settled).
pub(super) static CASCADE_ALL_SQL: LazyLock<String> =
    LazyLock::new(|| cascade_sql("EXISTS (SELECT 1 FROM jobs w WHERE w.seq = d.child_seq AND w.state = 'waiting')", 1));

/// After a write that ended the job with seq `seq` as `state` (its row said
/// `has_dependents`): what its dependents need, as the statement to run with (seq, now).
pub(super) fn dependents_step(state: &str, has_dependents: bool) -> Option<&'static str> {
    if !has_dependents {
        return None;
    }
    match state {
        "completed" => Some(RELEASE_SQL.as_str()),
        "dead" | "cancelled" => Some(CASCADE_SQL.as_str()),
        _ => None,
    }
}

/// The jobs job ?1 runs after, oldest first: id, state.
pub(super) const PARENTS_SQL: &str = "SELECT p.id, p.state FROM job_deps d JOIN jobs p ON p.seq = d.parent_seq
     WHERE d.child_seq = (SELECT seq FROM jobs WHERE id = ?1) ORDER BY p.seq";

/// A parent from a row of [`PARENTS_SQL`].
pub(super) fn parent_from(r: &impl Cells) -> Result<(String, JobState)> {
    Ok((r.text(0)?, state_of(&r.text(1)?)?))
}

/// A job waiting to run after job ?1, if any.
pub(super) const WAITING_CHILD_SQL: &str = "SELECT c.id FROM job_deps d JOIN jobs c ON c.seq = d.child_seq
     WHERE d.parent_seq = (SELECT seq FROM jobs WHERE id = ?1) AND c.state = 'waiting' ORDER BY c.seq LIMIT 1";

/// Edges to or from jobs that no longer exist (after a purge).
pub(super) const DEPS_CLEAN_SQL: &str = "DELETE FROM job_deps
     WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE seq = job_deps.parent_seq)
        OR NOT EXISTS (SELECT 1 FROM jobs WHERE seq = job_deps.child_seq)";

/// An insert's conflict target for the unique partial index (the same predicate).
pub(super) const UNIQUE_CONFLICT: &str = "ON CONFLICT (unique_key)
     WHERE unique_key IS NOT NULL AND state IN ('waiting', 'pending', 'processing', 'failed') DO NOTHING";

/// The unfinished job holding unique key ?1.
pub(super) const UNIQUE_HOLDER_SQL: &str = "SELECT id FROM jobs
     WHERE unique_key = ?1 AND state IN ('waiting', 'pending', 'processing', 'failed')";

/// `dead_retry_all`'s error when a dead job's unique key is held by an unfinished job (the
/// stores' constraint errors name the index or the column).
pub(super) fn retry_all_error(e: Error) -> Error {
    let text = e.to_string();
    if text.contains("jobs_unique") || text.contains("jobs.unique_key") {
        return Error::InvalidState(
            "a dead job cannot run again while another unfinished job has its unique_key: \
             nothing was retried (retry the others by id)"
                .into(),
        );
    }
    e
}

/// The error for a change that would make a second unfinished job with one unique key.
pub(super) fn key_taken(id: &str) -> Error {
    Error::InvalidState(format!(
        "job {id:?} cannot run again: another unfinished job has its unique_key (wait for it, or cancel it)"
    ))
}

/// PostgreSQL types of the columns, for binary `COPY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ColType {
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
        pub(super) mod $module {
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
pub(super) trait Cells {
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn opt_int4(&self, i: usize) -> Result<Option<i32>>;
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
}

/// Implements [`Cells`] for a driver's row type through its getter (`get`, `try_get`).
macro_rules! impl_cells {
    ($row:ty, $get:ident) => {
        impl $crate::store::schema::Cells for $row {
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
pub(super) use impl_cells;

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The state a stored name means; an unknown one is a database error.
pub(super) fn state_of(s: &str) -> Result<JobState> {
    JobState::parse(s).ok_or_else(|| Error::Database(format!("unknown job state {s:?} in the database")))
}

/// A job from a row of `SELECT {job_col::LIST}` (or a `RETURNING` of it), starting at
/// column `at`.
pub(super) fn job_from(r: &impl Cells, at: usize) -> Result<Job> {
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
    })
}

/// A job's environment as stored: a JSON object of strings, NULL when it has none.
pub(super) fn env_text(env: &[(String, String)]) -> Option<String> {
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

/// A worker is busy while a job is processing under its id; `state` stores only whether it
/// has exited, so claims and settles never write the workers table. `{jobs}` is the join
/// of the job processing under the worker (SQLite names its index there).
pub(super) fn worker_list_sql(jobs: &str) -> String {
    format!(
        "SELECT w.id, w.host, w.pid,
             CASE WHEN w.state = 'exited' THEN 'exited' WHEN j.id IS NOT NULL THEN 'busy' ELSE 'idle' END,
             j.id, w.started_at_ms, w.heartbeat_ms, w.lease_ms, CAST(w.stop_requested AS BIGINT), w.exited_at_ms,
             w.queues
         FROM workers w LEFT JOIN {jobs} ON j.state = 'processing' AND j.worker_id = w.id
         WHERE ?1 OR w.state <> 'exited' ORDER BY w.started_at_ms DESC, w.id"
    )
}

/// A worker from a row of [`worker_list_sql`].
pub(super) fn worker_from(r: &impl Cells) -> Result<WorkerRow> {
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
    })
}

/// The attempts table, then a completed job's last attempt from its own row.
pub(super) const ATTEMPTS_SQL: &str =
    "SELECT a.attempt, a.worker_id, a.started_at_ms, a.finished_at_ms, a.exit_code, a.error, a.outcome,
            a.output_tail, a.run
     FROM attempts a JOIN jobs j ON j.seq = a.job_seq WHERE j.id = ?1
     UNION ALL
     SELECT attempts, worker_id, started_at_ms, finished_at_ms, exit_code, last_error, state,
            coalesce(output_tail, ''), runs
     FROM jobs WHERE id = ?1 AND state = 'completed'
     ORDER BY 9";

/// An attempt from a row of [`ATTEMPTS_SQL`].
pub(super) fn attempt_from(r: &impl Cells) -> Result<Attempt> {
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

/// The error a cancelled job records.
pub const CANCELLED_ERROR: &str = "cancelled on request";

/// Puts a processing job back to pending with its attempt uncounted (a forced stop, a
/// claim never confirmed, a backup's copy); `?{now}` is the parameter holding the time.
/// A job whose cancel was asked for ends `cancelled` instead.
pub(super) fn requeue_set(now: u8) -> String {
    format!(
        "state = CASE WHEN cancel_requested_ms IS NULL THEN 'pending' ELSE 'cancelled' END,
         finished_at_ms = CASE WHEN cancel_requested_ms IS NULL THEN finished_at_ms ELSE ?{now} END,
         last_error = CASE WHEN cancel_requested_ms IS NULL THEN last_error ELSE '{CANCELLED_ERROR}' END,
         attempts = attempts - 1, runs = runs - 1, worker_id = NULL,
         lease_expires_ms = NULL, started_at_ms = NULL, updated_at_ms = ?{now}"
    )
}

/// `job_requeue`: ?1 id, ?2 attempt, ?3 worker, ?4 now. Returns what
/// [`dependents_step`] needs.
pub(super) fn requeue_sql() -> String {
    format!(
        "UPDATE jobs SET {} WHERE id = ?1 AND state = 'processing' AND attempts = ?2 AND worker_id = ?3
         RETURNING seq, state, has_dependents",
        requeue_set(4)
    )
}

/// The claim's column changes: ?1 worker, ?2 now, ?3 lease end.
pub(super) const CLAIM_SET: &str = "state = 'processing', attempts = attempts + 1, runs = runs + 1, worker_id = ?1,
     started_at_ms = ?2, finished_at_ms = NULL, exit_code = NULL, last_error = NULL,
     lease_expires_ms = ?3, updated_at_ms = ?2";

/// The text of the fenced settle (see [`SETTLE_UPDATE`]), with `$guard` put in front of
/// the fence.
macro_rules! settle_update {
    ($guard:literal) => {
        concat!(
            "UPDATE jobs SET state = CASE WHEN cancel_requested_ms IS NULL OR ?4 = 'completed' THEN ?4 ELSE 'cancelled' END,
                 run_at_ms = ?5, finished_at_ms = ?6, updated_at_ms = ?6,
                 exit_code = ?7, last_error = ?8, lease_expires_ms = NULL, output_tail = ?9
             WHERE ",
            $guard,
            " id = ?1 AND state = 'processing' AND attempts = ?2 AND worker_id = ?3
               AND (CAST(?10 AS BIGINT) IS NULL OR lease_expires_ms < ?10)
             RETURNING seq, started_at_ms, runs, state, has_dependents"
        )
    };
}

/// The fenced settle: ?1 id, ?2 attempt, ?3 worker, ?4 state, ?5 run at, ?6 now, ?7 exit
/// code, ?8 error, ?9 the tail a completed job keeps in its row, ?10 for a rescue the time
/// the lease must still have run out by (NULL otherwise). An attempt whose cancel was asked
/// for ends `cancelled` unless it completed: it is never retried. Returns the state
/// written, and whether any job runs after it.
pub(super) const SETTLE_UPDATE: &str = settle_update!("");

/// [`SETTLE_UPDATE`] that leaves a job others run after alone: PostgreSQL's one-statement
/// settle, whose no-row answer sends it to the full statement that releases dependents.
pub(super) const SETTLE_UPDATE_NO_DEPENDENTS: &str = settle_update!("has_dependents IS NULL AND");

/// The history row of a settled attempt that did not complete: ?1 seq, ?2 run, ?3
/// attempt, ?4 worker, ?5 started, ?6 finished, ?7 exit code, ?8 error, ?9 outcome, ?10 tail.
pub(super) const ATTEMPT_INSERT: &str = "INSERT INTO attempts (job_seq, run, attempt, worker_id, started_at_ms, finished_at_ms, exit_code, error, outcome, output_tail)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Jobs whose lease ran out before ?1.
pub(super) const EXPIRED_SQL: &str = "SELECT id, attempts, max_retries, worker_id, lease_expires_ms FROM jobs
     WHERE state = 'processing' AND lease_expires_ms < ?1 ORDER BY seq";

/// An expired job from a row of [`EXPIRED_SQL`].
pub(super) fn expired_from(r: &impl Cells) -> Result<super::ExpiredJob> {
    Ok(super::ExpiredJob {
        id: r.text(0)?,
        attempt: u32_of(r.int(1)?),
        max_retries: u32_of(r.int(2)?),
        worker_id: r.opt_text(3)?.unwrap_or_default(),
        lease_expires_ms: r.opt_int(4)?.unwrap_or_default(),
    })
}

/// The state of one job, locked for the rest of the transaction where the dialect can.
pub(super) const JOB_STATE_SQL: &str = "SELECT state FROM jobs WHERE id = ?1";

/// Back to pending, attempts reset, runnable now: ?1 id, ?2 now. A job that runs after
/// others counts again those that have not completed (a cancelled dependent, retried
/// while they still run, waits for them: [`RETRY_WAIT_SQL`]).
const RETRY_SQL: &str = "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = ?2, updated_at_ms = ?2,
     worker_id = NULL, lease_expires_ms = NULL, cancel_requested_ms = NULL,
     waiting_on = (SELECT count(*) FROM job_deps d JOIN jobs p ON p.seq = d.parent_seq
                   WHERE d.child_seq = jobs.seq AND p.state <> 'completed')
     WHERE id = ?1";

/// A retried job with parents still open waits for them.
const RETRY_WAIT_SQL: &str = "UPDATE jobs SET state = 'waiting' WHERE id = ?1 AND waiting_on > 0";

/// Every dead job back to pending: ?1 now.
pub(super) const DEAD_RETRY_ALL_SQL: &str =
    "UPDATE jobs SET state = 'pending', attempts = 0, run_at_ms = ?1, updated_at_ms = ?1,
     worker_id = NULL, lease_expires_ms = NULL, cancel_requested_ms = NULL WHERE state = 'dead'";

/// Cancel, for a processing job: the request its worker reads with its next heartbeat (an
/// earlier request keeps its time). ?1 id, ?2 now.
const CANCEL_RUNNING_SQL: &str = "UPDATE jobs SET cancel_requested_ms = coalesce(cancel_requested_ms, ?2)
     WHERE id = ?1 AND state = 'processing'";

/// Cancel, for a job that is not running (waiting for its parents, pending, or failed
/// and waiting for its retry); the store then cancels its dependents ([`JOB_END_SQL`],
/// [`dependents_step`]).
static CANCEL_WAITING_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET state = 'cancelled', waiting_on = 0, finished_at_ms = ?2, updated_at_ms = ?2,
             last_error = '{CANCELLED_ERROR}'
         WHERE id = ?1 AND state IN ('waiting', 'pending', 'failed')"
    )
});

/// The renewal of a worker's lease with its heartbeat: ?1 worker, ?2 new lease end.
/// Returns, per job, when its cancel was asked for (NULL: not).
pub(super) const LEASE_RENEW_SQL: &str =
    "UPDATE jobs SET lease_expires_ms = ?2 WHERE worker_id = ?1 AND state = 'processing' RETURNING cancel_requested_ms";

/// One statement of a change by id: its SQL, and whether it takes the time as ?2 (the id
/// is always ?1).
pub(super) struct ChangeStep {
    pub sql: &'static str,
    pub takes_now: bool,
}

/// The statements a change runs for each id, in order.
pub(super) fn change_steps(change: ByIdChange) -> Vec<ChangeStep> {
    match change {
        ByIdChange::RetryDead | ByIdChange::Retry => {
            vec![ChangeStep { sql: RETRY_SQL, takes_now: true }, ChangeStep { sql: RETRY_WAIT_SQL, takes_now: false }]
        }
        ByIdChange::Delete => vec![
            ChangeStep {
                sql: "DELETE FROM job_deps WHERE child_seq = (SELECT seq FROM jobs WHERE id = ?1)
                      OR parent_seq = (SELECT seq FROM jobs WHERE id = ?1)",
                takes_now: false,
            },
            ChangeStep {
                sql: "DELETE FROM attempts WHERE job_seq = (SELECT seq FROM jobs WHERE id = ?1)",
                takes_now: false,
            },
            ChangeStep { sql: "DELETE FROM jobs WHERE id = ?1", takes_now: false },
        ],
        ByIdChange::Cancel => vec![
            ChangeStep { sql: CANCEL_RUNNING_SQL, takes_now: true },
            ChangeStep { sql: CANCEL_WAITING_SQL.as_str(), takes_now: true },
        ],
    }
}

/// How many due jobs of its queue a claim would take before job ?1 at time ?2 (higher
/// priority, or the same priority and enqueued earlier); no row when there is no such job.
pub(super) const AHEAD_SQL: &str = "SELECT (SELECT count(*) FROM jobs o
         WHERE o.queue = j.queue AND o.state IN ('pending', 'failed') AND o.run_at_ms <= ?2
           AND (o.priority > j.priority OR (o.priority = j.priority AND o.seq < j.seq)))
     FROM jobs j WHERE j.id = ?1";

/// Makes sure queue ?1 has its row (the claim walks the queues table): ?2 now.
pub(super) const QUEUE_ENSURE_SQL: &str =
    "INSERT INTO queues (name, updated_at_ms) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING";

/// A queue's row as a copy from another store writes it (the source's settings win):
/// ?1 name, ?2 paused, ?3 limit, ?4 changed at.
pub(super) const QUEUE_COPY_SQL: &str =
    "INSERT INTO queues (name, paused, max_running, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, max_running = excluded.max_running,
         updated_at_ms = excluded.updated_at_ms";

/// Every queue row as [`QUEUE_COPY_SQL`] takes it.
pub(super) const QUEUE_ROWS_SQL: &str = "SELECT name, CAST(paused AS BIGINT), max_running, updated_at_ms FROM queues";

/// The statement of a queue change (?1 name, ?2 now, for a limit ?3 the limit) and whether
/// it takes the limit.
pub(super) fn queue_set_sql(change: QueueChange) -> (&'static str, Option<i64>) {
    match change {
        QueueChange::Pause => (
            "INSERT INTO queues (name, paused, updated_at_ms) VALUES (?1, 1, ?2)
             ON CONFLICT (name) DO UPDATE SET paused = 1, updated_at_ms = excluded.updated_at_ms",
            None,
        ),
        QueueChange::Resume => (
            "INSERT INTO queues (name, paused, updated_at_ms) VALUES (?1, 0, ?2)
             ON CONFLICT (name) DO UPDATE SET paused = 0, updated_at_ms = excluded.updated_at_ms",
            None,
        ),
        QueueChange::Limit(n) => (
            "INSERT INTO queues (name, max_running, updated_at_ms) VALUES (?1, ?3, ?2)
             ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running, updated_at_ms = excluded.updated_at_ms",
            Some(i64::try_from(n).unwrap_or(i64::MAX)),
        ),
    }
}

/// The settings of every queue: name, paused, limit.
pub(super) const QUEUE_SETTINGS_SQL: &str =
    "SELECT name, CAST(paused AS BIGINT), max_running FROM queues ORDER BY name";

/// The queue rows from the settings and (queue, state, count) triples; queues with no
/// job and no setting are left out.
pub(super) fn queue_rows(settings: Vec<(String, bool, i64)>, counts: &[(String, JobState, u64)]) -> Vec<QueueRow> {
    let mut rows: Vec<QueueRow> = settings
        .into_iter()
        .map(|(name, paused, limit)| QueueRow {
            name,
            paused,
            limit: u64::try_from(limit).unwrap_or(0),
            counts: JobState::ALL.iter().map(|s| (*s, 0)).collect(),
        })
        .collect();
    for (queue, state, n) in counts {
        if let Some(row) = rows.iter_mut().find(|r| &r.name == queue) {
            if let Some(c) = row.counts.iter_mut().find(|(s, _)| s == state) {
                c.1 += n;
            }
        }
    }
    rows.retain(|r| r.paused || r.limit > 0 || r.counts.iter().any(|(_, n)| *n > 0));
    rows
}

pub(super) const CONFIG_GET_SQL: &str = "SELECT value FROM config WHERE key = ?1";
pub(super) const CONFIG_SET_SQL: &str = "INSERT INTO config (key, value, updated_at_ms) VALUES (?1, ?2, ?3)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms";
pub(super) const CONFIG_LIST_SQL: &str = "SELECT key, value FROM config ORDER BY key";

/// ?1 id, ?2 host, ?3 pid, ?4 now, ?5 lease, ?6 its queues (comma-separated, NULL: all).
/// The WHERE leaves a registration that is still running alone: 0 rows, an error.
pub(super) const WORKER_REGISTER_SQL: &str =
    "INSERT INTO workers (id, host, pid, state, started_at_ms, heartbeat_ms, lease_ms, queues)
     VALUES (?1, ?2, ?3, 'running', ?4, ?4, ?5, ?6)
     ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, state = 'running',
         started_at_ms = excluded.started_at_ms, heartbeat_ms = excluded.heartbeat_ms,
         lease_ms = excluded.lease_ms, stop_requested = 0, exited_at_ms = NULL, queues = excluded.queues
     WHERE workers.state = 'exited'";

/// The error for a registration that is still running.
pub(super) fn already_registered(id: &str) -> Error {
    Error::InvalidState(format!("worker {id} is already registered"))
}

/// ?1 id, ?2 now.
pub(super) const WORKER_BEAT_SQL: &str = "UPDATE workers SET heartbeat_ms = ?2 WHERE id = ?1 AND state <> 'exited'
     RETURNING CAST(stop_requested AS BIGINT), lease_ms";
pub(super) const WORKER_EXIT_SQL: &str =
    "UPDATE workers SET state = 'exited', heartbeat_ms = ?2, exited_at_ms = ?2 WHERE id = ?1";
/// ?1 level, ?2 host or NULL for every host, ?3 one worker's id or NULL for all.
pub(super) const WORKER_STOP_SQL: &str =
    "UPDATE workers SET stop_requested = CASE WHEN stop_requested > ?1 THEN stop_requested ELSE ?1 END
     WHERE state <> 'exited' AND (CAST(?2 AS TEXT) IS NULL OR host = ?2) AND (CAST(?3 AS TEXT) IS NULL OR id = ?3)";
/// ?1 now.
pub(super) const WORKER_SILENT_SQL: &str = "WHERE state <> 'exited' AND heartbeat_ms + lease_ms < ?1";

/// The same statement with PostgreSQL's `$N` parameters instead of `?N`.
pub(super) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// The statement with every `?N` parameter renumbered `?(N + by)`, to embed it after
/// another statement's parameters.
pub(super) fn shift_params(sql: &str, by: u8) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('?') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let n: u32 = rest[..digits].parse().unwrap_or(0);
            out.push_str(&(n + u32::from(by)).to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
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

    #[test]
    fn postgres_parameters() {
        assert_eq!(to_postgres("a = ?1 AND b = ?12 OR c = '?'"), "a = $1 AND b = $12 OR c = '?'");
        assert_eq!(shift_params("a = ?1, b = ?3 ?", 11), "a = ?12, b = ?14 ?");
    }
}
