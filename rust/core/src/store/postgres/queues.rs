//! Named queues on PostgreSQL: their settings and counts.

use super::{notify, PostgresStore};
use crate::error::Result;
use crate::store::queue_rows;
use crate::store::row;
use crate::store::sql::queues;
use crate::store::{FlowState, QueueControl, QueueRow, QueueSetting};

impl QueueControl for PostgresStore {
    fn queue_list(&mut self) -> Result<Vec<QueueRow>> {
        self.with(|c, _| {
            let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).start()?;
            let settings = tx
                .query(queues::SETTINGS.postgres, &[])?
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) != 0, [r.get(2), r.get(3), r.get(4), r.get(5)]))
                .collect();
            let mut counts = Vec::new();
            for r in tx.query(queues::postgres::COUNTS, &[])? {
                let name: &str = r.get(1);
                let state = row::state_of(name)?;
                counts.push((r.get::<_, String>(0), state, r.get::<_, i64>(2) as u64));
            }
            tx.commit()?;
            Ok(queue_rows::queue_rows(settings, &counts))
        })
    }

    fn queue_flow(&mut self, queue: &str, key: Option<&str>, now_ms: i64) -> Result<FlowState> {
        self.with(|c, _| {
            let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).start()?;
            let mut flow = FlowState::default();
            if let Some(r) = tx.query_opt(queues::starts::WINDOW.postgres, &[&queue, &now_ms])? {
                flow.starts_in_window = u64::try_from(r.get::<_, i64>(0)).unwrap_or(0);
                flow.window_opens_at_ms = r.get(1);
            }
            if let Some(key) = key {
                let running: i64 = tx.query_one(queues::starts::KEY_RUNNING.postgres, &[&queue, &key])?.get(0);
                flow.running_with_key = u64::try_from(running).unwrap_or(0);
            }
            tx.commit()?;
            Ok(flow)
        })
    }

    fn queue_rated(&mut self) -> Result<Vec<String>> {
        let st = self.prepared(queues::starts::RATED.postgres)?;
        self.with(|c, _| Ok(c.query(&st, &[])?.iter().map(|r| r.get(0)).collect()))
    }

    fn queue_set(&mut self, s: &QueueSetting<'_>) -> Result<u64> {
        s.check()?;
        let (sql, values) = queues::change(s.change);
        let st = self.prepared(sql.postgres)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            for name in s.names {
                let mut p: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![name, &s.now_ms];
                p.extend(values.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)));
                tx.execute(&st, &p)?;
            }
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(s.names.len() as u64)
        })
    }
}
