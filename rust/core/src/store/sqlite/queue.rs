//! The hot path on SQLite: insert, claim, settle and requeue, and the settle and claim
//! inside a transaction that `combine` runs for several workers at once.

use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::error::{Error, Result};
use crate::job::{Job, Outcome};
use crate::jobid;
use crate::store::row;
use crate::store::sql::{attempts, claim, dependencies, jobs, queues};
use crate::store::{ClaimParams, Fence, InsertBatch, Inserted, JobQueue, SettleParams, Settled};

/// What a settle's RETURNING gives: seq, started at, run, the state stored, whether any
/// job runs after it.
type SettledRow = (i64, Option<i64>, i64, String, Option<i64>);

/// Writes one decided settle inside `tx`, fenced on (id, attempt, worker).
pub(super) fn settle_in(tx: &rusqlite::Transaction<'_>, p: &SettleParams) -> Result<Settled> {
    let completed = p.outcome == Outcome::Completed;
    let tail = completed.then_some(p.output_tail.as_str());
    // One statement: the fence (still processing, same attempt, same worker) and the write.
    let row: Option<SettledRow> = tx
        .prepare_cached(claim::sqlite::SETTLE)?
        .query_row(
            params![
                p.id,
                p.attempt,
                p.worker_id,
                p.outcome.as_str(),
                p.run_at_ms,
                p.now_ms,
                p.exit_code,
                p.error,
                tail,
                p.lease_expired_before
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((seq, started_at_ms, run, stored, has_dependents)) = row else {
        return Ok(Settled::Fenced);
    };
    let settled = p.settled_as(Some(&stored));
    dependents_in(tx, seq, &stored, has_dependents.is_some(), p.now_ms)?;
    if !completed {
        tx.prepare_cached(attempts::sqlite::INSERT)?.execute(params![
            seq,
            run,
            p.attempt,
            p.worker_id,
            started_at_ms,
            p.now_ms,
            p.exit_code,
            p.error,
            stored,
            p.output_tail
        ])?;
    }
    Ok(settled)
}

/// What the jobs that run after job `seq` need now that it is `state`: counted down when it
/// completed, cancelled down the chain when it ended otherwise (see
/// [`dependencies::dependents_step`]).
pub(super) fn dependents_in(
    tx: &rusqlite::Transaction<'_>,
    seq: i64,
    state: &str,
    has_dependents: bool,
    now_ms: i64,
) -> Result<()> {
    if let Some(sql) = dependencies::dependents_step(state, has_dependents) {
        tx.prepare_cached(sql.sqlite)?.execute(params![seq, now_ms])?;
    }
    Ok(())
}

/// The seq of each job of `after`, marked as having dependents, and how many of them have
/// not completed yet (an unknown, dead or cancelled one is an error).
fn parents_in(tx: &rusqlite::Transaction<'_>, after: &[&str]) -> Result<(Vec<i64>, i64)> {
    let mut st = tx.prepare_cached(dependencies::PARENT_MARK.sqlite)?;
    let mut seqs = Vec::with_capacity(after.len());
    let mut open = 0;
    for id in after {
        let row: Option<(i64, String)> = st.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        if crate::rules::parent_open(id, row.as_ref().map(|r| row::state_of(&r.1)).transpose()?)? {
            open += 1;
        }
        seqs.extend(row.map(|r| r.0));
    }
    Ok((seqs, open))
}

/// Claims the next due job inside `tx` for `p.worker_id`.
pub(super) fn claim_in(tx: &rusqlite::Transaction<'_>, p: &ClaimParams<'_>) -> Result<Option<Job>> {
    let mut st = tx.prepare_cached(claim::sqlite::CLAIM)?;
    let queues = p.queues.map(|q| q.json());
    let after = p.after_queue.unwrap_or("");
    let mut rows = st.query(params![p.worker_id, p.now_ms, p.now_ms + p.lease_ms, queues, after])?;
    rows.next()?.map(|r| row::job_from(r, 0)).transpose()
}

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
                    waiting_on
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
        Ok(st.exists(params![None::<i64>, p.now_ms, None::<i64>, p.queues.map(|q| q.json())])?)
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
