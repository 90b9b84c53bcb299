//! Named queues on SQLite: their settings and counts.

use super::SqliteStore;
use crate::error::Result;
use crate::job::JobState;
use crate::store::queue_rows;
use crate::store::sql::{by_state, queues};
use rusqlite::OptionalExtension;

use crate::store::{FlowState, QueueControl, QueueRow, QueueSetting};

impl QueueControl for SqliteStore {
    fn queue_list(&mut self) -> Result<Vec<QueueRow>> {
        // Counted as job_count_by_state counts, per queue: completed jobs are each queue's
        // total (the cells of jobs_all, which is on the queue) minus the rest.
        let tx = self.conn.transaction()?;
        let settings = {
            let mut st = tx.prepare_cached(queues::SETTINGS.sqlite)?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0, [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?]))
            })?;
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

    fn queue_flow(&mut self, queue: &str, key: Option<&str>, now_ms: i64) -> Result<FlowState> {
        let tx = self.conn.transaction()?;
        let mut flow = FlowState::default();
        let window: Option<(i64, Option<i64>)> = tx
            .prepare_cached(queues::starts::WINDOW.sqlite)?
            .query_row(rusqlite::params![queue, now_ms], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((count, opens)) = window {
            flow.starts_in_window = u64::try_from(count).unwrap_or(0);
            flow.window_opens_at_ms = opens;
        }
        if let Some(key) = key {
            let running: i64 = tx
                .prepare_cached(queues::starts::KEY_RUNNING.sqlite)?
                .query_row(rusqlite::params![queue, key], |r| r.get(0))?;
            flow.running_with_key = u64::try_from(running).unwrap_or(0);
        }
        tx.commit()?;
        Ok(flow)
    }

    fn queue_rated(&mut self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(queues::starts::RATED.sqlite)?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
    }

    fn queue_set(&mut self, s: &QueueSetting<'_>) -> Result<u64> {
        s.check()?;
        let (sql, values) = queues::change(s.change);
        let tx = self.immediate()?;
        {
            let mut st = tx.prepare_cached(sql.sqlite)?;
            for name in s.names {
                let mut p: Vec<&dyn rusqlite::ToSql> = vec![name, &s.now_ms];
                p.extend(values.iter().map(|v| v as &dyn rusqlite::ToSql));
                st.execute(p.as_slice())?;
            }
        }
        tx.commit()?;
        Ok(s.names.len() as u64)
    }
}
