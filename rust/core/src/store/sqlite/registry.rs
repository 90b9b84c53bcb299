//! Who is working, on SQLite: registrations, heartbeats, stop requests.

use rusqlite::{params, OptionalExtension};

use super::{collect, decode, SqliteStore};
use crate::error::Result;
use crate::store::refusal;
use crate::store::row;
use crate::store::sql::{jobs, workers};
use crate::store::{Beat, Registration, StopLevel, WorkerRegistry, WorkerRow};

impl WorkerRegistry for SqliteStore {
    fn worker_register(&mut self, r: &Registration<'_>) -> Result<()> {
        let queues = r.queues.map(|q| q.stored());
        let n =
            self.write(workers::REGISTER.sqlite, params![r.id, r.host, r.pid, r.now_ms, r.lease_ms, queues, r.slots])?;
        if n == 0 {
            return Err(refusal::already_registered(r.id));
        }
        Ok(())
    }

    fn worker_heartbeat(&mut self, id: &str, now_ms: i64) -> Result<Option<Beat>> {
        if let Some(identity) = self.identity {
            identity.check(&self.path)?;
        }
        let tx = self.immediate()?;
        let row: Option<(i64, i64)> = tx
            .prepare_cached(workers::BEAT.sqlite)?
            .query_row(params![id, now_ms], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((stop, lease_ms)) = row else {
            tx.commit()?;
            return Ok(None);
        };
        let cancel = {
            let mut st = tx.prepare_cached(jobs::sqlite::LEASE_RENEW)?;
            let flags = st.query_map(params![id, now_ms + lease_ms], |r| r.get::<_, Option<i64>>(0))?;
            flags.collect::<rusqlite::Result<Vec<_>>>()?.iter().any(Option::is_some)
        };
        tx.commit()?;
        Ok(Some(Beat { stop: StopLevel::from_u8(u8::try_from(stop).unwrap_or(0)), cancel }))
    }

    fn worker_exit(&mut self, id: &str, now_ms: i64) -> Result<()> {
        self.write(workers::EXIT.sqlite, params![id, now_ms])?;
        Ok(())
    }

    fn worker_list(&mut self, include_exited: bool) -> Result<Vec<WorkerRow>> {
        let mut st = self.conn.prepare_cached(workers::sqlite::LIST)?;
        let rows = st.query_map(params![include_exited], decode(|r| row::worker_from(r)))?;
        collect(rows)
    }

    fn worker_request_stop(&mut self, level: StopLevel, host: Option<&str>, worker: Option<&str>) -> Result<u64> {
        Ok(self.write(workers::STOP.sqlite, params![level.as_u8(), host, worker])? as u64)
    }

    fn worker_reap(&mut self, now_ms: i64) -> Result<u64> {
        if !self.conn.prepare_cached(workers::sqlite::ANY_SILENT)?.exists(params![now_ms])? {
            return Ok(0);
        }
        Ok(self.write(workers::REAP.sqlite, params![now_ms])? as u64)
    }
}
