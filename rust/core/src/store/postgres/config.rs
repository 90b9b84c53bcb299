//! What every worker of a PostgreSQL queue shares: the config and the per-minute stats.

use super::PostgresStore;
use crate::error::Result;
use crate::store::row;
use crate::store::sql::{config, stats};
use crate::store::{ConfigStore, Setting, StatRow, StatsStore};

impl ConfigStore for PostgresStore {
    fn config_get(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self.read(config::GET.postgres, &[&key])?.first().map(|r| r.get(0)))
    }

    fn config_set(&mut self, s: Setting<'_>, now_ms: i64) -> Result<()> {
        self.write(config::SET.postgres, &[&s.key, &s.value, &now_ms], false)?;
        Ok(())
    }

    fn config_list(&mut self) -> Result<Vec<(String, String)>> {
        Ok(self.read(config::LIST.postgres, &[])?.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

impl StatsStore for PostgresStore {
    fn stats_add(&mut self, rows: &[StatRow], forget_before_ms: i64) -> Result<()> {
        let add = self.prepared(stats::ADD.postgres)?;
        let forget = self.prepared(stats::FORGET.postgres)?;
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            // Rows come sorted, so that concurrent flushes take their row locks in one order.
            for r in rows {
                tx.execute(&add, &[&r.minute_ms, &r.queue, &r.metric, &r.value])?;
            }
            for r in rows {
                tx.execute(&add, &[&0i64, &r.queue, &r.metric, &r.value])?;
            }
            tx.execute(&forget, &[&forget_before_ms])?;
            Ok(tx.commit()?)
        })
    }

    fn stats_read(&mut self, since_ms: Option<i64>) -> Result<Vec<StatRow>> {
        let rows = match since_ms {
            None => self.read(stats::TOTALS.postgres, &[])?,
            Some(t) => self.read(stats::SINCE.postgres, &[&t])?,
        };
        rows.iter().map(row::stat_from).collect()
    }
}
