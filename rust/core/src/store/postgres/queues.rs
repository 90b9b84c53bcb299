//! Named queues on PostgreSQL: their settings and counts.

use super::{notify, PostgresStore};
use crate::error::Result;
use crate::store::queue_rows;
use crate::store::row;
use crate::store::sql::queues;
use crate::store::{QueueControl, QueueRow, QueueSetting};

impl QueueControl for PostgresStore {
    fn queue_list(&mut self) -> Result<Vec<QueueRow>> {
        self.with(|c, _| {
            let mut tx = c.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).start()?;
            let settings = tx
                .query(queues::SETTINGS.postgres, &[])?
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) != 0, r.get::<_, i64>(2)))
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

    fn queue_set(&mut self, s: &QueueSetting<'_>) -> Result<u64> {
        s.check()?;
        let (sql, limit) = queues::change(s.change);
        let st = self.prepared(sql.postgres)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            for name in s.names {
                match limit {
                    Some(n) => tx.execute(&st, &[name, &s.now_ms, &n])?,
                    None => tx.execute(&st, &[name, &s.now_ms])?,
                };
            }
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(s.names.len() as u64)
        })
    }
}
