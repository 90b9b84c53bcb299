//! The hot path's writes inside an open write transaction, shared by a worker's own
//! claim and settle (`queue`), the rescue's settles (`admin`) and the settles and claims
//! that `combine` commits for several workers at once.

use rusqlite::{params, OptionalExtension};

use crate::error::Result;
use crate::job::{Job, Outcome};
use crate::store::row;
use crate::store::sql::{attempts, claim, dependencies, queues};
use crate::store::{ClaimParams, SettleParams, Settled};

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
pub(super) fn parents_in(tx: &rusqlite::Transaction<'_>, after: &[&str]) -> Result<(Vec<i64>, i64)> {
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

/// Records a start of `queue` at `now_ms` when it has a rate, and drops the starts that
/// can no longer fill a window (`queues::starts`).
fn start_in(tx: &rusqlite::Transaction<'_>, queue: &str, now_ms: i64) -> Result<()> {
    let n: i64 = tx.prepare_cached(queues::starts::RECORD.sqlite)?.query_row(params![queue, now_ms], |r| r.get(0))?;
    if n % queues::starts::PRUNE_EVERY == 0 {
        tx.prepare_cached(queues::starts::PRUNE.sqlite)?.execute(params![queue, n, now_ms])?;
    }
    Ok(())
}

/// Claims the next due job inside `tx` for `p.worker_id`; a start in a queue with a rate
/// is recorded (and the starts that left every window dropped).
pub(super) fn claim_in(tx: &rusqlite::Transaction<'_>, p: &ClaimParams<'_>) -> Result<Option<Job>> {
    let mut st = tx.prepare_cached(claim::sqlite::CLAIM)?;
    let queues = p.queues.map(|q| q.json());
    let after = p.after_queue.unwrap_or("");
    let mut rows = st.query(params![p.worker_id, p.now_ms, p.now_ms + p.lease_ms, queues, after, p.free_slots()])?;
    let Some(r) = rows.next()? else { return Ok(None) };
    let job = row::job_from(r, 0)?;
    let rated = r.get::<_, Option<i64>>(row::job_col::COUNT)?.is_some();
    drop(rows);
    if rated {
        start_in(tx, &job.queue, p.now_ms)?;
    }
    Ok(Some(job))
}
