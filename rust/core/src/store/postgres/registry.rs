//! Who is working, on PostgreSQL: registrations, heartbeats, stop requests.

use super::{notify, PostgresStore};
use crate::error::Result;
use crate::store::refusal;
use crate::store::row;
use crate::store::sql::workers;
use crate::store::{Beat, Registration, StopLevel, WorkerRegistry, WorkerRow};

impl WorkerRegistry for PostgresStore {
    fn worker_register(&mut self, r: &Registration<'_>) -> Result<()> {
        let pid = i64::from(r.pid);
        let queues = r.queues.map(|q| q.stored());
        let n = self.write(
            workers::REGISTER.postgres,
            &[&r.id, &r.host, &pid, &r.now_ms, &r.lease_ms, &queues, &i64::from(r.slots)],
            false,
        )?;
        if n == 0 {
            return Err(refusal::already_registered(r.id));
        }
        Ok(())
    }

    fn worker_heartbeat(&mut self, id: &str, now_ms: i64) -> Result<Option<Beat>> {
        // One round trip: on a slow link, the lease is renewed soon after it is sent.
        let beat = self.prepared(workers::postgres::BEAT_AND_RENEW)?;
        let Some(row) = self.with(|c, _| Ok(c.query_opt(&beat, &[&id, &now_ms])?))? else {
            return Ok(None);
        };
        let (stop, cancel): (i64, bool) = (row.try_get(0)?, row.try_get(2)?);
        Ok(Some(Beat { stop: StopLevel::from_u8(u8::try_from(stop).unwrap_or(0)), cancel }))
    }

    fn worker_exit(&mut self, id: &str, now_ms: i64) -> Result<()> {
        self.write(workers::EXIT.postgres, &[&id, &now_ms], false)?;
        Ok(())
    }

    fn worker_list(&mut self, include_exited: bool) -> Result<Vec<WorkerRow>> {
        self.read(workers::postgres::LIST, &[&include_exited])?.iter().map(row::worker_from).collect()
    }

    fn worker_request_stop(&mut self, level: StopLevel, host: Option<&str>, worker: Option<&str>) -> Result<u64> {
        let level = i16::from(level.as_u8());
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let n = tx.execute(workers::STOP.postgres, &[&level, &host, &worker])?;
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(n)
        })
    }

    fn worker_reap(&mut self, now_ms: i64) -> Result<u64> {
        self.write(workers::REAP.postgres, &[&now_ms], false)
    }
}
