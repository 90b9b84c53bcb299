//! Named queues on SQLite: their settings and counts.

use rusqlite::params;

use super::SqliteStore;
use crate::error::Result;
use crate::job::JobState;
use crate::store::queue_rows;
use crate::store::sql::{by_state, queues};
use crate::store::{QueueControl, QueueRow, QueueSetting};

impl QueueControl for SqliteStore {
    fn queue_list(&mut self) -> Result<Vec<QueueRow>> {
        // Counted as job_count_by_state counts, per queue: completed jobs are each queue's
        // total (the cells of jobs_all, which is on the queue) minus the rest.
        let tx = self.conn.transaction()?;
        let settings = {
            let mut st = tx.prepare_cached(queues::SETTINGS.sqlite)?;
            let rows =
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0, r.get::<_, i64>(2)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        let mut counts: Vec<(String, JobState, u64)> = Vec::new();
        let mut others: Vec<(String, u64)> = Vec::new();
        for s in JobState::ALL {
            if s == JobState::Completed {
                continue;
            }
            let mut st = tx.prepare_cached(by_state::count_by_queue(s))?;
            for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (queue, n) = row?;
                others.push((queue.clone(), n as u64));
                counts.push((queue, s, n as u64));
            }
        }
        let mut st = tx.prepare_cached(queues::sqlite::JOBS)?;
        for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (queue, total) = row?;
            let rest: u64 = others.iter().filter(|(q, _)| *q == queue).map(|(_, n)| n).sum();
            counts.push((queue, JobState::Completed, (total as u64).saturating_sub(rest)));
        }
        drop(st);
        tx.commit()?;
        Ok(queue_rows::queue_rows(settings, &counts))
    }

    fn queue_set(&mut self, s: &QueueSetting<'_>) -> Result<u64> {
        s.check()?;
        let (sql, limit) = queues::change(s.change);
        let tx = self.immediate()?;
        {
            let mut st = tx.prepare_cached(sql.sqlite)?;
            for name in s.names {
                match limit {
                    Some(n) => st.execute(params![name, s.now_ms, n])?,
                    None => st.execute(params![name, s.now_ms])?,
                };
            }
        }
        tx.commit()?;
        Ok(s.names.len() as u64)
    }
}
