//! Schedules on SQLite: what people add and change, and the writes of a firing
//! (`store::fire` runs them).

use rusqlite::params;

use super::{collect, decode, SqliteStore, WriteTx};
use crate::error::Result;
use crate::job::NewJob;
use crate::store::fire::{self, FireTx};
use crate::store::refusal;
use crate::store::row;
use crate::store::sql::{jobs, queues, schedules};
use crate::store::{Fire, ScheduleChange, ScheduleRow, ScheduleStore};

impl FireTx for WriteTx<'_> {
    fn schedule_move(&mut self, f: &Fire<'_>) -> Result<u64> {
        let (job_id, fired, skipped) = fire::counts(f);
        let n = self.prepare_cached(schedules::FIRE.sqlite)?.execute(params![
            f.name,
            f.expected_next_ms,
            f.next_fire_ms,
            f.occurrence_ms,
            job_id,
            fired,
            skipped,
            f.now_ms
        ])?;
        Ok(n as u64)
    }

    fn queue_ensure(&mut self, queue: &str, now_ms: i64) -> Result<()> {
        self.prepare_cached(queues::sqlite::ENSURE)?.execute(params![queue, now_ms])?;
        Ok(())
    }

    fn job_insert_scheduled(&mut self, j: &NewJob, now_ms: i64) -> Result<()> {
        let timeout = i64::try_from(j.timeout_ms).unwrap_or(i64::MAX);
        let (key, slots, retry, expires) = row::flow_values(&j.flow);
        self.prepare_cached(jobs::SCHEDULED_INSERT.sqlite)?.execute(params![
            j.id,
            j.command,
            j.max_retries,
            j.priority,
            j.run_at_ms,
            timeout,
            j.cwd,
            now_ms,
            row::env_text(&j.env),
            j.queue,
            j.unique_key,
            key,
            slots,
            retry,
            expires
        ])?;
        Ok(())
    }
}

impl ScheduleStore for SqliteStore {
    fn schedule_add(&mut self, r: &ScheduleRow) -> Result<()> {
        let n = self.write(
            schedules::ADD.sqlite,
            params![r.name, r.cron, r.tz, r.overlap.as_str(), r.job, r.next_fire_ms, r.created_at_ms],
        )?;
        if n == 0 {
            return Err(refusal::schedule_exists(&r.name));
        }
        Ok(())
    }

    fn schedule_list(&mut self, name: Option<&str>, due_by: Option<i64>) -> Result<Vec<ScheduleRow>> {
        let mut st = self.conn.prepare_cached(schedules::LIST.sqlite)?;
        let rows = st.query_map(params![name, due_by], decode(|r| row::schedule_from(r)))?;
        collect(rows)
    }

    fn schedule_fire(&mut self, f: &Fire<'_>) -> Result<bool> {
        fire::schedule_fire(self.immediate()?, f)
    }

    fn schedule_change(&mut self, name: &str, change: ScheduleChange, now_ms: i64) -> Result<()> {
        let (sql, next) = schedules::change(change);
        let n = match next {
            Some(next) => self.write(sql.sqlite, params![name, now_ms, next])?,
            None => self.write(sql.sqlite, params![name, now_ms])?,
        };
        if n == 0 {
            return Err(refusal::no_schedule(name));
        }
        Ok(())
    }
}
