//! Schedules on PostgreSQL: what people add and change, and the writes of a firing
//! (`store::fire` runs them).

use postgres::types::ToSql;

use super::{insert_values, PgTx, PostgresStore};
use crate::error::Result;
use crate::job::NewJob;
use crate::store::fire::{self, FireTx};
use crate::store::refusal;
use crate::store::row;
use crate::store::sql::{jobs, queues, schedules};
use crate::store::{Fire, ScheduleChange, ScheduleRow, ScheduleStore};

impl FireTx for PgTx<'_> {
    fn schedule_move(&mut self, f: &Fire<'_>) -> Result<u64> {
        let (job_id, fired, skipped) = fire::counts(f);
        let params: [&(dyn ToSql + Sync); 8] =
            [&f.name, &f.expected_next_ms, &f.next_fire_ms, &f.occurrence_ms, &job_id, &fired, &skipped, &f.now_ms];
        Ok(self.execute(schedules::FIRE.postgres, &params)?)
    }

    fn queue_ensure(&mut self, queue: &str, now_ms: i64) -> Result<()> {
        let queues = [queue];
        self.execute(queues::postgres::ENSURE, &[&&queues[..], &now_ms])?;
        Ok(())
    }

    fn job_insert_scheduled(&mut self, j: &NewJob, now_ms: i64) -> Result<()> {
        let (max_retries, timeout, env) = insert_values(j);
        let (key, slots, retry, expires) = row::flow_values(&j.flow);
        let params: [&(dyn ToSql + Sync); 15] = [
            &j.id,
            &j.command,
            &max_retries,
            &j.priority,
            &j.run_at_ms,
            &timeout,
            &j.cwd,
            &now_ms,
            &env,
            &j.queue,
            &j.unique_key,
            &key,
            &slots,
            &retry,
            &expires,
        ];
        self.execute(jobs::SCHEDULED_INSERT.postgres, &params)?;
        Ok(())
    }
}

impl ScheduleStore for PostgresStore {
    fn schedule_add(&mut self, r: &ScheduleRow) -> Result<()> {
        let overlap = r.overlap.as_str();
        let n = self.write(
            schedules::ADD.postgres,
            &[&r.name, &r.cron, &r.tz, &overlap, &r.job, &r.next_fire_ms, &r.created_at_ms],
            false,
        )?;
        if n == 0 {
            return Err(refusal::schedule_exists(&r.name));
        }
        Ok(())
    }

    fn schedule_list(&mut self, name: Option<&str>, due_by: Option<i64>) -> Result<Vec<ScheduleRow>> {
        self.read(schedules::LIST.postgres, &[&name, &due_by])?.iter().map(row::schedule_from).collect()
    }

    fn schedule_fire(&mut self, f: &Fire<'_>) -> Result<bool> {
        let prepared = [schedules::FIRE.postgres, jobs::SCHEDULED_INSERT.postgres]
            .into_iter()
            .map(|sql| Ok((sql, self.prepared(sql)?)))
            .collect::<Result<Vec<_>>>()?;
        self.with(|c, channel| fire::schedule_fire(PgTx { tx: c.transaction()?, channel, prepared: &prepared }, f))
    }

    fn schedule_change(&mut self, name: &str, change: ScheduleChange, now_ms: i64) -> Result<()> {
        let (sql, next) = schedules::change(change);
        let n = match next {
            Some(next) => self.write(sql.postgres, &[&name, &now_ms, &next], true)?,
            None => self.write(sql.postgres, &[&name, &now_ms], false)?,
        };
        if n == 0 {
            return Err(refusal::no_schedule(name));
        }
        Ok(())
    }
}
