//! Changes people and maintenance make on SQLite: rescues' settles, purge, the DLQ, and
//! the reads and writes of a change by id (`store::change` runs them).

use rusqlite::{params, OptionalExtension};

use super::write::settle_in;
use super::{collect, decode, SqliteStore, WriteTx};
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::store::change::{self, ChangeTx, Written};
use crate::store::refusal;
use crate::store::row;
use crate::store::sql::jobs::ChangeStep;
use crate::store::sql::Sql;
use crate::store::sql::{by_state, dependencies, jobs};
use crate::store::{ByIdParams, Changed, ExpiredJob, JobAdmin, SettleParams, Settled};

/// Whether a write failed on a constraint (a unique index).
fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// A change by id under the write lock, which holds the whole file until it commits.
impl ChangeTx for WriteTx<'_> {
    fn state_locked(&mut self, id: &str) -> Result<Option<JobState>> {
        let state: Option<String> =
            self.prepare_cached(jobs::sqlite::STATE)?.query_row(params![id], |r| r.get(0)).optional()?;
        state.as_deref().map(row::state_of).transpose()
    }

    fn parents_locked(&mut self, id: &str) -> Result<Vec<(String, JobState)>> {
        let mut st = self.prepare_cached(dependencies::PARENTS.sqlite)?;
        let rows = st.query_map(params![id], decode(|r| row::parent_from(r)))?;
        collect(rows)
    }

    fn waiting_child(&mut self, id: &str) -> Result<Option<String>> {
        Ok(self.prepare_cached(dependencies::WAITING_CHILD.sqlite)?.query_row(params![id], |r| r.get(0)).optional()?)
    }

    fn step(&mut self, step: &ChangeStep, id: &str, now_ms: i64) -> Result<Written> {
        let mut st = self.prepare_cached(step.sql.sqlite)?;
        let done = if step.takes_now { st.execute(params![id, now_ms]) } else { st.execute(params![id]) };
        match done {
            Err(e) if is_constraint(&e) => Ok(Written::UniqueViolation),
            other => other.map(|_| Written::Done).map_err(Error::from),
        }
    }

    fn job_end(&mut self, id: &str) -> Result<(i64, String, bool)> {
        let (seq, state, has): (i64, String, Option<i64>) = self
            .prepare_cached(dependencies::JOB_END.sqlite)?
            .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok((seq, state, has.is_some()))
    }

    fn dependents(&mut self, sql: Sql, seq: i64, now_ms: i64) -> Result<()> {
        self.prepare_cached(sql.sqlite)?.execute(params![seq, now_ms])?;
        Ok(())
    }
}

impl JobAdmin for SqliteStore {
    fn job_get_expired(&mut self, now_ms: i64) -> Result<Vec<ExpiredJob>> {
        let mut st = self.conn.prepare_cached(jobs::sqlite::EXPIRED)?;
        let rows = st.query_map(params![now_ms], decode(|r| row::expired_from(r)))?;
        collect(rows)
    }

    fn job_settle_many(&mut self, settles: &[SettleParams]) -> Result<Vec<Settled>> {
        let tx = self.immediate()?;
        let settled = settles.iter().map(|p| settle_in(&tx, p)).collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(settled)
    }

    fn job_purge(&mut self, state: JobState, cutoff_ms: Option<i64>) -> Result<Vec<String>> {
        crate::rules::check_purgeable(state)?;
        let cutoff = cutoff_ms.unwrap_or(i64::MAX);
        let tx = self.immediate()?;
        tx.execute(by_state::purge_attempts(state), params![cutoff])?;
        let ids = {
            let mut st = tx.prepare(by_state::purge(state))?;
            let rows = st.query_map(params![cutoff], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()?
        };
        tx.execute(dependencies::CLEAN.sqlite, [])?;
        tx.commit()?;
        Ok(ids)
    }

    fn job_change_by_id_each(&mut self, p: &ByIdParams<'_>) -> Result<Vec<Changed>> {
        change::change_by_id(self.immediate()?, p)
    }

    fn dead_retry_all(&mut self, now_ms: i64) -> Result<u64> {
        Ok(self.write(jobs::DEAD_RETRY_ALL.sqlite, params![now_ms]).map_err(refusal::retry_all_error)? as u64)
    }

    fn job_expire(&mut self, now_ms: i64) -> Result<Vec<String>> {
        if !self.conn.prepare_cached(jobs::EXPIRY_DUE.sqlite)?.exists(params![now_ms])? {
            return Ok(Vec::new());
        }
        let tx = self.immediate()?;
        let rows: Vec<(i64, String, Option<i64>, String)> = {
            let mut st = tx.prepare_cached(jobs::EXPIRE.sqlite)?;
            let rows = st.query_map(params![now_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (seq, state, has_dependents, _) in &rows {
            super::write::dependents_in(&tx, *seq, state, has_dependents.is_some(), now_ms)?;
        }
        tx.commit()?;
        Ok(rows.into_iter().map(|r| r.3).collect())
    }
}
