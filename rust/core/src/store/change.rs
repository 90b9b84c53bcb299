//! A change by id (retry, DLQ retry, cancel, delete), written once for both stores: each
//! job read under its lock, checked against `crate::rules`, its parents or a waiting child
//! read as the change needs, the change's statements run, and for a cancel what the job's
//! dependents need; all of the ids or none. The stores supply the reads and writes that
//! each dialect does its own way ([`ChangeTx`]).

use super::params::{ByIdParams, Changed};
use super::refusal;
use super::sql::jobs::{self, ChangeStep};
use super::sql::{dependencies, Sql};
use super::tx::Tx;
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::rules::{self, ByIdChange};

/// How a statement of a change went: written, or refused by a unique index (a retry that
/// would make a second unfinished job with one unique key).
pub(super) enum Written {
    Done,
    UniqueViolation,
}

/// The reads and writes of a change by id, in a store's open write transaction.
pub(super) trait ChangeTx: Tx {
    /// The state of job `id` (None: no such job), its row locked until the transaction
    /// ends (PostgreSQL `FOR UPDATE`; SQLite's write transaction holds the whole file).
    fn state_locked(&mut self, id: &str) -> Result<Option<JobState>>;
    /// The jobs `id` runs after (id, state), oldest first, locked against a settle until
    /// the transaction ends (PostgreSQL `FOR SHARE OF p`): a retried job counts those not
    /// completed, and a parent completing meanwhile must see it waiting.
    fn parents_locked(&mut self, id: &str) -> Result<Vec<(String, JobState)>>;
    /// A job waiting to run after `id`, if any.
    fn waiting_child(&mut self, id: &str) -> Result<Option<String>>;
    /// Runs one statement of the change on job `id` (?1 the id, ?2 the time when it takes it).
    fn step(&mut self, step: &ChangeStep, id: &str, now_ms: i64) -> Result<Written>;
    /// Job `id`'s seq, state and whether any job runs after it (`dependencies::JOB_END`).
    fn job_end(&mut self, id: &str) -> Result<(i64, String, bool)>;
    /// Runs a statement on the dependents of the job with seq `seq` (?1 the seq, ?2 the time).
    fn dependents(&mut self, sql: Sql, seq: i64, now_ms: i64) -> Result<()>;
}

/// Applies `p.change` to every job of `p.ids` in `tx` and commits, or to none: an unknown
/// id, a state that does not allow the change or a dependency that forbids it fails the
/// whole call, naming the job. What it did to each job, in the order of `p.ids`.
pub(super) fn change_by_id(mut tx: impl ChangeTx, p: &ByIdParams<'_>) -> Result<Vec<Changed>> {
    let steps = jobs::change_steps(p.change);
    let (read_parents, read_child) = p.change.dependency_reads();
    let mut changed = Vec::with_capacity(p.ids.len());
    for id in p.ids {
        let state = tx.state_locked(id)?;
        rules::check_change(p.change, id, state)?;
        // check_change refuses a job that is not there.
        let found = state.ok_or_else(|| Error::NotFound(id.clone()))?;
        let parents = if read_parents { tx.parents_locked(id)? } else { Vec::new() };
        let child = if read_child { tx.waiting_child(id)? } else { None };
        rules::check_dependencies(p.change, id, &parents, child.as_deref())?;
        for step in &steps {
            if let Written::UniqueViolation = tx.step(step, id, p.now_ms)? {
                return Err(refusal::key_taken(id));
            }
        }
        if p.change == ByIdChange::Cancel {
            let (seq, state, has_dependents) = tx.job_end(id)?;
            if let Some(sql) = dependencies::dependents_step(&state, has_dependents) {
                tx.dependents(sql, seq, p.now_ms)?;
            }
        }
        changed.push(Changed { id: id.clone(), found });
    }
    // A deleted job makes nothing due.
    if p.change != ByIdChange::Delete {
        tx.wake()?;
    }
    tx.commit()?;
    Ok(changed)
}
