//! Changes people and maintenance make on PostgreSQL: rescues' settles, purge, the DLQ,
//! and the reads and writes of a change by id (`store::change` runs them), each job's
//! row locked `FOR UPDATE` and its parents `FOR SHARE`.

use postgres::error::SqlState;

use super::queue::SettleArgs;
use super::{notify, PgTx, PostgresStore};
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::store::change::{self, ChangeTx, Written};
use crate::store::refusal;
use crate::store::row;
use crate::store::sql::jobs::ChangeStep;
use crate::store::sql::Sql;
use crate::store::sql::{attempts, claim, dependencies, jobs};
use crate::store::{ByIdParams, Changed, ExpiredJob, JobAdmin, SettleParams, Settled};

/// A change by id with the job's row locked `FOR UPDATE` and its parents `FOR SHARE`.
impl ChangeTx for PgTx<'_> {
    fn state_locked(&mut self, id: &str) -> Result<Option<JobState>> {
        let row = self.tx.query_opt(jobs::postgres::STATE_LOCKED, &[&id])?;
        row.as_ref().map(|r| row::state_of(r.get::<_, &str>(0))).transpose()
    }

    fn parents_locked(&mut self, id: &str) -> Result<Vec<(String, JobState)>> {
        self.tx.query(dependencies::postgres::PARENTS_LOCKED, &[&id])?.iter().map(row::parent_from).collect()
    }

    fn waiting_child(&mut self, id: &str) -> Result<Option<String>> {
        Ok(self.tx.query_opt(dependencies::WAITING_CHILD.postgres, &[&id])?.map(|r| r.get::<_, String>(0)))
    }

    fn step(&mut self, step: &ChangeStep, id: &str, now_ms: i64) -> Result<Written> {
        let done = if step.takes_now {
            self.execute(step.sql.postgres, &[&id, &now_ms])
        } else {
            self.execute(step.sql.postgres, &[&id])
        };
        match done {
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(Written::UniqueViolation),
            other => other.map(|_| Written::Done).map_err(Error::from),
        }
    }

    fn job_end(&mut self, id: &str) -> Result<(i64, String, bool)> {
        let r = self.tx.query_one(dependencies::JOB_END.postgres, &[&id])?;
        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get::<_, Option<i64>>(2)?.is_some()))
    }

    fn dependents(&mut self, sql: Sql, seq: i64, now_ms: i64) -> Result<()> {
        self.tx.execute(sql.postgres, &[&seq, &now_ms])?;
        Ok(())
    }
}

impl JobAdmin for PostgresStore {
    fn job_get_expired(&mut self, now_ms: i64) -> Result<Vec<ExpiredJob>> {
        self.read(jobs::postgres::EXPIRED, &[&now_ms])?.iter().map(row::expired_from).collect()
    }

    fn job_settle_many(&mut self, settles: &[SettleParams]) -> Result<Vec<Settled>> {
        let st = self.prepared(claim::postgres::SETTLE_FULL)?;
        // A rescue's row is locked with SKIP LOCKED first (claim::postgres::RESCUE_LOCK).
        let lock = self.prepared(claim::postgres::RESCUE_LOCK)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let mut out = Vec::with_capacity(settles.len());
            for p in settles {
                if let Some(before) = p.lease_expired_before {
                    if tx.query_opt(&lock, &[&p.id, &before])?.is_none() {
                        out.push(Settled::Fenced);
                        continue;
                    }
                }
                let row = tx.query_one(&st, &SettleArgs::new(p).params())?;
                out.push(p.settled_as(row.get::<_, Option<&str>>(0)));
            }
            if out.iter().any(|s| *s != Settled::Fenced) {
                notify(&mut tx, channel)?;
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn job_purge(&mut self, state: JobState, cutoff_ms: Option<i64>) -> Result<Vec<String>> {
        crate::rules::check_purgeable(state)?;
        let cutoff = cutoff_ms.unwrap_or(i64::MAX);
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            let rows = tx.query(jobs::postgres::PURGE, &[&state.as_str(), &cutoff])?;
            let seqs: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
            tx.execute(attempts::postgres::PURGE, &[&seqs])?;
            tx.execute(dependencies::CLEAN.postgres, &[])?;
            tx.commit()?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn job_change_by_id_each(&mut self, p: &ByIdParams<'_>) -> Result<Vec<Changed>> {
        let steps = jobs::change_steps(p.change)
            .iter()
            .map(|step| Ok((step.sql.postgres, self.prepared(step.sql.postgres)?)))
            .collect::<Result<Vec<_>>>()?;
        self.with(|c, channel| change::change_by_id(PgTx { tx: c.transaction()?, channel, prepared: &steps }, p))
    }

    fn dead_retry_all(&mut self, now_ms: i64) -> Result<u64> {
        self.write(jobs::DEAD_RETRY_ALL.postgres, &[&now_ms], true).map_err(refusal::retry_all_error)
    }

    fn job_expire(&mut self, now_ms: i64) -> Result<Vec<String>> {
        let due = self.prepared(jobs::EXPIRY_DUE.postgres)?;
        let expire = self.prepared(jobs::EXPIRE.postgres)?;
        self.with(|c, _| {
            if c.query_opt(&due, &[&now_ms])?.is_none() {
                return Ok(Vec::new());
            }
            let mut tx = c.transaction()?;
            let rows = tx.query(&expire, &[&now_ms])?;
            super::dependents_after(&mut tx, &rows, now_ms)?;
            tx.commit()?;
            Ok(rows.iter().map(|r| r.get(3)).collect())
        })
    }
}
