//! The hot path on PostgreSQL: insert (binary COPY, or a statement per job when keys or
//! dependencies need one), claim within queues' limits, settle, and requeue.

use std::borrow::Cow;
use std::collections::HashMap;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, Row};

use super::{dependents_after, insert_values, notify, pg_text, PostgresStore};
use crate::error::{Error, Result};
use crate::job::{Job, NewJob, Outcome};
use crate::jobid;
use crate::store::row::{self, job_col};
use crate::store::sql::{claim, dependencies, jobs, queues};
use crate::store::{ClaimParams, Fence, InsertBatch, Inserted, JobQueue, SettleParams, Settled};

/// The types of the columns an enqueue writes (`jobs::postgres::INSERT_COLUMNS`), in order.
const INSERT_TYPES: [Type; 16] = [
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
];

/// Checks a claim of `job` in a guarded queue again, under the queue's row lock: the
/// claims of that queue on every host take the lock in turn, and each counts the others'
/// committed claims and starts, so at most `limit` stay claimed, at most `key_limit` of
/// one key, and at most `rate_n` start in any period (the start is recorded here, and
/// the starts that left every window dropped). Past a rule, the claim is put back,
/// uncounted. Returns whether the job stays claimed.
fn hold_within_rules(c: &mut Client, channel: &str, job: &Job, worker_id: &str, now_ms: i64) -> Result<bool> {
    let mut tx = c.transaction()?;
    let rules = tx.query_one(queues::postgres::RULES_LOCKED, &[&job.queue])?;
    let (limit, rate_n, key_limit): (i64, i64, i64) = (rules.get(0), rules.get(1), rules.get(2));
    let counts = tx.query_one(queues::postgres::COUNTS_FOR_CLAIM, &[&job.queue, &job.id, &job.flow.key, &now_ms])?;
    let (running, running_key, window_full): (i64, i64, bool) = (counts.get(0), counts.get(1), counts.get(2));
    let within = (limit == 0 || running < limit)
        && (key_limit == 0 || job.flow.key.is_none() || running_key < key_limit)
        && (rate_n == 0 || !window_full);
    if within {
        if rate_n > 0 {
            let n: i64 = tx.query_one(queues::starts::RECORD.postgres, &[&job.queue, &now_ms])?.get(0);
            if n % queues::starts::PRUNE_EVERY == 0 {
                tx.execute(queues::starts::PRUNE.postgres, &[&job.queue, &n, &now_ms])?;
            }
        }
        tx.commit()?;
        return Ok(true);
    }
    let attempt = i64::from(job.attempts);
    let rows = tx.query(claim::REQUEUE.postgres, &[&job.id, &attempt, &worker_id, &now_ms])?;
    dependents_after(&mut tx, &rows, now_ms)?;
    notify(&mut tx, channel)?;
    tx.commit()?;
    Ok(false)
}

/// A claimed job from a row of a claim, with whether its queue is guarded (column `at`).
fn claimed_from(row: &Row, at: usize) -> Result<Option<(Job, i64)>> {
    if row.try_get::<_, Option<String>>(job_col::id)?.is_none() {
        return Ok(None);
    }
    Ok(Some((row::job_from(row, 0)?, row.try_get::<_, Option<i64>>(at)?.unwrap_or(0))))
}

/// A settle's parameters as the settle statements take them (?1 to ?11).
pub(super) struct SettleArgs<'a> {
    p: &'a SettleParams,
    attempt: i64,
    state: &'static str,
    error: Option<Cow<'a, str>>,
    output_tail: Cow<'a, str>,
    completed_tail: Option<Cow<'a, str>>,
}

impl<'a> SettleArgs<'a> {
    pub(super) fn new(p: &'a SettleParams) -> SettleArgs<'a> {
        let output_tail = pg_text(&p.output_tail);
        SettleArgs {
            p,
            attempt: i64::from(p.attempt),
            state: p.outcome.as_str(),
            error: p.error.as_deref().map(pg_text),
            completed_tail: (p.outcome == Outcome::Completed).then(|| output_tail.clone()),
            output_tail,
        }
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.p.id,
            &self.attempt,
            &self.p.worker_id,
            &self.state,
            &self.p.run_at_ms,
            &self.p.now_ms,
            &self.p.exit_code,
            &self.error,
            &self.completed_tail,
            &self.p.lease_expired_before,
            &self.output_tail,
        ]
    }
}

/// The id a unique violation of `jobs.id` names ("Key (id)=(x) already exists.").
fn duplicate_id(e: &postgres::Error) -> Option<String> {
    let db = e.as_db_error()?;
    if db.code() != &SqlState::UNIQUE_VIOLATION {
        return None;
    }
    let detail = db.detail()?;
    let id = detail.strip_prefix("Key (id)=(")?.strip_suffix(") already exists.")?;
    Some(id.to_string())
}

impl PostgresStore {
    /// Claims for `p`, leaving out the queues in `excluded`; a claim in a guarded queue
    /// that breaks a rule on its second look is put back and that queue left out.
    /// An insert of a batch with unique keys or dependencies: a statement per job. One
    /// whose key an unfinished job holds is skipped (a concurrent insert of the key waits
    /// for the other transaction, then skips) and stands for the holder's id. One that
    /// runs after others locks and marks them first (a settle of one of them waits for
    /// this commit, then sees the edge), and waits for those not completed yet.
    fn insert_rows(&mut self, jobs: &[NewJob], ids: Vec<String>, queues: &[&str], now_ms: i64) -> Result<Inserted> {
        let ins = self.prepared(jobs::postgres::INSERT)?;
        let holder = self.prepared(jobs::UNIQUE_HOLDER.postgres)?;
        let mark = self.prepared(dependencies::PARENT_MARK.postgres)?;
        let edge = self.prepared(dependencies::INSERT.postgres)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            tx.execute(queues::postgres::ENSURE, &[&queues, &now_ms])?;
            let mut out = Inserted { ids: Vec::with_capacity(jobs.len()), skipped: Vec::new() };
            let mut stand_in = HashMap::new();
            for (j, id) in jobs.iter().zip(&ids) {
                let (max_retries, timeout, env) = insert_values(j);
                let mut parents = Vec::with_capacity(j.after.len());
                let mut waiting_on: i64 = 0;
                for parent in crate::store::parents_of(&j.after, &stand_in) {
                    let row = tx.query_opt(&mark, &[&parent])?;
                    let state = row.as_ref().map(|r| row::state_of(r.get::<_, &str>(1))).transpose()?;
                    if crate::rules::parent_open(parent, state)? {
                        waiting_on += 1;
                    }
                    parents.extend(row.map(|r| r.get::<_, i64>(0)));
                }
                let (key, slots, retry, expires) = row::flow_values(&j.flow);
                let params: [&(dyn ToSql + Sync); 16] = [
                    id,
                    &j.command,
                    &max_retries,
                    &j.priority,
                    &j.run_at_ms,
                    &timeout,
                    &j.cwd,
                    &now_ms,
                    &env,
                    &j.queue,
                    &j.unique_key,
                    &waiting_on,
                    &key,
                    &slots,
                    &retry,
                    &expires,
                ];
                let row = tx
                    .query_opt(&ins, &params)
                    .map_err(|e| duplicate_id(&e).map_or_else(|| e.into(), Error::DuplicateId))?;
                match row {
                    None => {
                        out.skipped.push(out.ids.len());
                        let held: String = tx.query_one(&holder, &[&j.unique_key])?.get(0);
                        stand_in.insert(id.clone(), held.clone());
                        out.ids.push(held);
                    }
                    Some(row) => {
                        let seq: i64 = row.get(0);
                        for parent in parents {
                            tx.execute(&edge, &[&parent, &seq])?;
                        }
                        out.ids.push(id.clone());
                    }
                }
            }
            notify(&mut tx, channel)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// The settle of a job the fast statement left alone: fenced, or one others run after
    /// (`claim::postgres::SETTLE_FULL`); wakes idle workers when it made dependents pending.
    fn settle_full(&mut self, p: &SettleParams) -> Result<Settled> {
        let args = SettleArgs::new(p);
        let st = self.prepared(claim::postgres::SETTLE_FULL)?;
        self.with(|c, channel| {
            let row = c.query_one(&st, &args.params())?;
            if row.try_get::<_, i64>(1)? > 0 {
                notify(c, channel)?;
            }
            Ok(p.settled_as(row.get::<_, Option<&str>>(0)))
        })
    }

    fn claim_excluding(&mut self, p: &ClaimParams<'_>, mut excluded: Vec<String>) -> Result<Option<Job>> {
        let st = self.prepared(claim::postgres::CLAIM)?;
        let lease_until = p.now_ms + p.lease_ms;
        let queues = p.queues.map(|q| q.names());
        let after = p.after_queue.unwrap_or("");
        loop {
            let claimed = self.claiming(p.worker_id, None, p.now_ms, |c| {
                let row = c.query_opt(
                    &st,
                    &[&p.worker_id, &p.now_ms, &lease_until, &queues, &excluded, &after, &p.free_slots()],
                )?;
                row.map(|r| claimed_from(&r, job_col::COUNT)).transpose().map(Option::flatten)
            })?;
            match claimed {
                None => return Ok(None),
                Some((job, 0)) => return Ok(Some(job)),
                Some((job, _)) => {
                    let kept = self.with(|c, channel| hold_within_rules(c, channel, &job, p.worker_id, p.now_ms))?;
                    if kept {
                        return Ok(Some(job));
                    }
                    excluded.push(job.queue);
                }
            }
        }
    }

    /// After a settle+claim took `job` from a guarded queue: keeps it when the queue's
    /// rules allow, else puts it back and claims from the other queues.
    fn keep_or_claim_again(&mut self, p: &ClaimParams<'_>, job: Job) -> Result<Option<Job>> {
        if self.with(|c, channel| hold_within_rules(c, channel, &job, p.worker_id, p.now_ms))? {
            return Ok(Some(job));
        }
        self.claim_excluding(p, vec![job.queue])
    }
}

impl JobQueue for PostgresStore {
    fn job_insert(&mut self, batch: InsertBatch<'_>) -> Result<Inserted> {
        let InsertBatch { jobs, now_ms, mut progress } = batch;
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone().unwrap_or_else(|| jobid::generate(now_ms))).collect();
        let queues: Vec<&str> = crate::store::distinct_queues(jobs);
        if jobs.iter().any(|j| j.unique_key.is_some() || !j.after.is_empty()) {
            return self.insert_rows(jobs, ids, &queues, now_ms);
        }
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            tx.execute(queues::postgres::ENSURE, &[&queues, &now_ms])?;
            // COPY in binary: a million rows in one stream, no statement per row.
            let copy = tx.copy_in(jobs::postgres::COPY_IN)?;
            let mut writer = BinaryCopyInWriter::new(copy, &INSERT_TYPES);
            let written = (|| -> std::result::Result<u64, postgres::Error> {
                for (n, (j, id)) in jobs.iter().zip(&ids).enumerate() {
                    let (max_retries, timeout, env) = insert_values(j);
                    let (key, slots, retry, expires) = row::flow_values(&j.flow);
                    writer.write(&[
                        id,
                        &j.command,
                        &"pending",
                        &max_retries,
                        &j.priority,
                        &j.run_at_ms,
                        &timeout,
                        &j.cwd,
                        &now_ms,
                        &now_ms,
                        &env,
                        &j.queue,
                        &key,
                        &slots,
                        &retry,
                        &expires,
                    ])?;
                    if (n + 1) % crate::store::PROGRESS_EVERY == 0 {
                        if let Some(report) = progress.as_mut() {
                            report(n + 1);
                        }
                    }
                }
                writer.finish()
            })();
            if let Err(e) = written {
                return Err(duplicate_id(&e).map_or_else(|| e.into(), Error::DuplicateId));
            }
            notify(&mut tx, channel)?;
            tx.commit().map_err(|e| duplicate_id(&e).map_or_else(|| e.into(), Error::DuplicateId))
        })?;
        Ok(Inserted { ids, skipped: Vec::new() })
    }

    fn job_due_exists(&mut self, p: &ClaimParams<'_>) -> Result<bool> {
        let st = self.prepared(claim::postgres::DUE)?;
        let queues = p.queues.map(|q| q.names());
        let none: &[String] = &[];
        let (no_text, no_int) = (None::<&str>, None::<i64>);
        let params: [&(dyn ToSql + Sync); 7] =
            [&no_text, &p.now_ms, &no_int, &queues, &none, &no_text, &p.free_slots()];
        self.with(|c, _| Ok(c.query_opt(&st, &params)?.is_some()))
    }

    fn job_claim(&mut self, p: &ClaimParams<'_>) -> Result<Option<Job>> {
        self.claim_excluding(p, Vec::new())
    }

    fn job_settle(&mut self, p: &SettleParams) -> Result<Settled> {
        let args = SettleArgs::new(p);
        let st = self.prepared(claim::postgres::SETTLE)?;
        let stored = self.with(|c, _| Ok(c.query_one(&st, &args.params())?.get::<_, Option<String>>(0)))?;
        match stored {
            Some(state) => Ok(p.settled_as(Some(&state))),
            None => self.settle_full(p),
        }
    }

    fn job_settle_and_claim(&mut self, s: &SettleParams, p: &ClaimParams<'_>) -> Result<(Settled, Option<Job>)> {
        let args = SettleArgs::new(s);
        let st = self.prepared(claim::postgres::SETTLE_AND_CLAIM)?;
        let lease_until = p.now_ms + p.lease_ms;
        let queues = p.queues.map(|q| q.names());
        let none: &[String] = &[];
        let after = p.after_queue.unwrap_or("");
        let (stored, claimed) = self.claiming(p.worker_id, Some(&s.id), p.now_ms, |c| {
            let mut params: Vec<&(dyn ToSql + Sync)> = args.params().to_vec();
            let slots = p.free_slots();
            params.extend_from_slice(&[&p.worker_id, &p.now_ms, &lease_until, &queues, &none, &after, &slots]);
            let row = c.query_one(&st, &params)?;
            Ok((row.try_get::<_, Option<String>>(job_col::COUNT + 1)?, claimed_from(&row, job_col::COUNT)?))
        })?;
        // No row: fenced, or a job others run after, which the full statement settles.
        let settled = match stored {
            Some(state) => s.settled_as(Some(&state)),
            None => self.settle_full(s)?,
        };
        let job = match claimed {
            Some((job, limit)) if limit > 0 => self.keep_or_claim_again(p, job)?,
            other => other.map(|(job, _)| job),
        };
        Ok((settled, job))
    }

    fn job_requeue(&mut self, f: &Fence<'_>, now_ms: i64) -> Result<bool> {
        let attempt = i64::from(f.attempt);
        let st = self.prepared(claim::REQUEUE.postgres)?;
        self.with(|c, channel| {
            let mut tx = c.transaction()?;
            let rows = tx.query(&st, &[&f.id, &attempt, &f.worker_id, &now_ms])?;
            if !rows.is_empty() {
                dependents_after(&mut tx, &rows, now_ms)?;
                notify(&mut tx, channel)?;
            }
            tx.commit()?;
            Ok(!rows.is_empty())
        })
    }
}
