//! Who is working, on PostgreSQL: registrations, heartbeats, stop requests.

use super::{notify, PostgresStore};
use crate::error::Result;
use crate::store::refusal;
use crate::store::row;
use crate::store::sql::{jobs, workers};
use crate::store::{Beat, Registration, StopLevel, WorkerRegistry, WorkerRow};

impl WorkerRegistry for PostgresStore {
    fn worker_register(&mut self, r: &Registration<'_>) -> Result<()> {
        let pid = i64::from(r.pid);
        let queues = r.queues.map(|q| q.stored());
        let n =
            self.write(workers::REGISTER.postgres, &[&r.id, &r.host, &pid, &r.now_ms, &r.lease_ms, &queues], false)?;
        if n == 0 {
            return Err(refusal::already_registered(r.id));
        }
        Ok(())
    }

    fn worker_heartbeat(&mut self, id: &str, now_ms: i64) -> Result<Option<Beat>> {
        let beat = self.prepared(workers::BEAT.postgres)?;
        let renew = self.prepared(jobs::postgres::LEASE_RENEW)?;
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt(&beat, &[&id, &now_ms])? else {
                tx.commit()?;
                return Ok(None);
            };
            let (stop, lease_ms): (i64, i64) = (row.get(0), row.get(1));
            let jobs = tx.query(&renew, &[&id, &(now_ms + lease_ms)])?;
            let cancel = jobs.iter().any(|r| r.get::<_, Option<i64>>(0).is_some());
            tx.commit()?;
            Ok(Some(Beat { stop: StopLevel::from_u8(u8::try_from(stop).unwrap_or(0)), cancel }))
        })
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
