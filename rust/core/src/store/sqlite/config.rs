//! What every worker of a SQLite queue shares: the config and the per-minute stats.

use rusqlite::{params, OptionalExtension};

use super::{collect, decode, SqliteStore};
use crate::error::Result;
use crate::store::row;
use crate::store::sql::{config, stats};
use crate::store::{ConfigStore, Setting, StatRow, StatsStore};

impl ConfigStore for SqliteStore {
    fn config_get(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self.conn.prepare_cached(config::GET.sqlite)?.query_row(params![key], |r| r.get(0)).optional()?)
    }

    fn config_set(&mut self, s: Setting<'_>, now_ms: i64) -> Result<()> {
        self.write(config::SET.sqlite, params![s.key, s.value, now_ms])?;
        Ok(())
    }

    fn config_list(&mut self) -> Result<Vec<(String, String)>> {
        let mut st = self.conn.prepare_cached(config::LIST.sqlite)?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl StatsStore for SqliteStore {
    fn stats_add(&mut self, rows: &[StatRow], forget_before_ms: i64) -> Result<()> {
        let tx = self.immediate()?;
        {
            let mut add = tx.prepare_cached(stats::ADD.sqlite)?;
            for r in rows {
                add.execute(params![r.minute_ms, r.queue, r.metric, r.value])?;
                add.execute(params![0, r.queue, r.metric, r.value])?;
            }
        }
        tx.prepare_cached(stats::FORGET.sqlite)?.execute(params![forget_before_ms])?;
        tx.commit()?;
        Ok(())
    }

    fn stats_read(&mut self, since_ms: Option<i64>) -> Result<Vec<StatRow>> {
        let mut st = match since_ms {
            None => self.conn.prepare_cached(stats::TOTALS.sqlite)?,
            Some(_) => self.conn.prepare_cached(stats::SINCE.sqlite)?,
        };
        let rows = match since_ms {
            None => st.query_map([], decode(|r| row::stat_from(r)))?.collect::<Vec<_>>(),
            Some(t) => st.query_map(params![t], decode(|r| row::stat_from(r)))?.collect::<Vec<_>>(),
        };
        collect(rows.into_iter())
    }
}
