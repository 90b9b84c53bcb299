//! The hot path on SQLite: insert, claim, settle and requeue (the statements inside a
//! transaction are in `write`, which `combine` runs for several workers at once too).

use rusqlite::{params, OptionalExtension};

use super::write::{claim_in, dependents_in, parents_in, settle_in};
use super::SqliteStore;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::jobid;
use crate::store::row;
use crate::store::sql::{claim, dependencies, jobs, queues};
use crate::store::{ClaimParams, Fence, InsertBatch, Inserted, JobQueue, SettleParams, Settled};

impl JobQueue for SqliteStore {
    fn job_insert(&mut self, batch: InsertBatch<'_>) -> Result<Inserted> {
        let InsertBatch { jobs, now_ms, mut progress } = batch;
        let tx = self.immediate()?;
        let mut ids = Vec::with_capacity(jobs.len());
        let mut skipped = Vec::new();
        let mut stand_in = std::collections::HashMap::new();
        {
            let mut ensure = tx.prepare_cached(queues::sqlite::ENSURE)?;
            for queue in crate::store::distinct_queues(jobs) {
                ensure.execute(params![queue, now_ms])?;
            }
            let mut ins = tx.prepare_cached(jobs::sqlite::INSERT)?;
            for j in jobs {
                let id = match &j.id {
                    Some(id) => id.clone(),
                    None => jobid::generate(now_ms),
                };
                let timeout = i64::try_from(j.timeout_ms).unwrap_or(i64::MAX);
                let env = row::env_text(&j.env);
                let (key, slots, retry, expires) = row::flow_values(&j.flow);
                let (parents, waiting_on) = if j.after.is_empty() {
                    (Vec::new(), 0)
                } else {
                    parents_in(&tx, &crate::store::parents_of(&j.after, &stand_in))?
                };
                match ins.execute(params![
                    id,
                    j.command,
                    j.max_retries,
                    j.priority,
                    j.run_at_ms,
                    timeout,
                    j.cwd,
                    now_ms,
                    env,
                    j.queue,
                    j.unique_key,
                    waiting_on,
                    key,
                    slots,
                    retry,
                    expires
                ]) {
                    Ok(n) => {
                        if n == 0 {
                            // The key is held: the holder's id stands for this job.
                            let key = j.unique_key.as_deref().unwrap_or_default();
                            let holder: String =
                                tx.prepare_cached(jobs::UNIQUE_HOLDER.sqlite)?.query_row(params![key], |r| r.get(0))?;
                            skipped.push(ids.len());
                            if let Some(given) = &j.id {
                                stand_in.insert(given.clone(), holder.clone());
                            }
                            ids.push(holder);
                        } else {
                            let seq = tx.last_insert_rowid();
                            let mut edge = tx.prepare_cached(dependencies::INSERT.sqlite)?;
                            for parent in parents {
                                edge.execute(params![parent, seq])?;
                            }
                            ids.push(id);
                        }
                        if ids.len() % crate::store::PROGRESS_EVERY == 0 {
                            if let Some(report) = progress.as_mut() {
                                report(ids.len());
                            }
                        }
                    }
                    Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                        return Err(Error::DuplicateId(id));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        tx.commit()?;
        Ok(Inserted { ids, skipped })
    }

    fn job_due_exists(&mut self, p: &ClaimParams<'_>) -> Result<bool> {
        let mut st = self.conn.prepare_cached(claim::sqlite::DUE)?;
        let queues = p.queues.map(|q| q.json());
        Ok(st.exists(params![None::<i64>, p.now_ms, None::<i64>, queues, None::<i64>, p.free_slots()])?)
    }

    fn job_claim(&mut self, p: &ClaimParams<'_>) -> Result<Option<Job>> {
        let tx = self.immediate()?;
        let job = claim_in(&tx, p)?;
        tx.commit()?;
        Ok(job)
    }

    fn job_settle(&mut self, p: &SettleParams) -> Result<Settled> {
        let tx = self.immediate()?;
        let settled = settle_in(&tx, p)?;
        tx.commit()?;
        Ok(settled)
    }

    fn job_settle_and_claim(&mut self, s: &SettleParams, c: &ClaimParams<'_>) -> Result<(Settled, Option<Job>)> {
        super::combine::settle_and_claim(&mut self.conn, self.shared, s, c)
    }

    fn job_requeue(&mut self, f: &Fence<'_>, now_ms: i64) -> Result<bool> {
        let tx = self.immediate()?;
        let row: Option<(i64, String, Option<i64>)> = tx
            .prepare_cached(claim::REQUEUE.sqlite)?
            .query_row(params![f.id, f.attempt, f.worker_id, now_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((seq, state, has_dependents)) = &row {
            dependents_in(&tx, *seq, state, has_dependents.is_some(), now_ms)?;
        }
        tx.commit()?;
        Ok(row.is_some())
    }
}
