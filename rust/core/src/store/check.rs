//! `queuectl check`: the store's own integrity check, the schema version, and the queue's
//! invariants. The invariant queries are written once, whole, in SQL both stores speak
//! (`$1` is the current time in milliseconds: SQLite reads it as a named parameter), and
//! each returns one problem line per row.

use super::prelude::*;

/// At most this many lines per kind of problem; a note says when there were more.
const LINES_PER_KIND: usize = 100;

/// Each query selects one text column: a problem, worded for the person who reads it, at
/// most one more than [`LINES_PER_KIND`] (`LIMIT 101`), so a note can say there were more.
const INVARIANTS: &[&str] = &[
    // A processing job needs a worker that is alive or a lease that still holds; anything
    // else is a job whose worker died, waiting for a running worker to rescue it.
    "SELECT 'job ' || j.id || ' is processing, but its worker ' || COALESCE(j.worker_id, '(none)') ||
            ' is not running and its lease has run out: a running worker will rescue it (it runs again)'
     FROM jobs j
     WHERE j.state = 'processing' AND (j.lease_expires_ms IS NULL OR j.lease_expires_ms < $1)
       AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.worker_id AND w.state <> 'exited'
                       AND w.heartbeat_ms + w.lease_ms >= $1)
     ORDER BY j.seq LIMIT 101",
    "SELECT 'job ' || id || ' has ' || attempts || ' attempts counted, more than max_retries + 1 = ' ||
            (max_retries + 1)
     FROM jobs WHERE attempts > max_retries + 1 ORDER BY seq LIMIT 101",
    "SELECT 'job ' || id || ' has ' || attempts || ' attempts counted but ran only ' || runs || ' times'
     FROM jobs WHERE attempts > runs OR attempts < 0 ORDER BY seq LIMIT 101",
    "SELECT 'job ' || id || ' has an unknown state ' || state
     FROM jobs WHERE state NOT IN ('waiting', 'pending', 'processing', 'completed', 'failed', 'dead', 'cancelled')
     ORDER BY seq LIMIT 101",
    // A waiting job counts the jobs it runs after that have not completed; the settle of
    // the last one makes it pending, and a parent that ended otherwise cancelled it.
    "SELECT 'job ' || w.id || ' is waiting for ' || w.waiting_on || ' jobs, but ' || w.n_open ||
            ' of the jobs it runs after have not completed'
     FROM (SELECT j.seq, j.id, j.waiting_on,
                  (SELECT count(*) FROM job_deps d JOIN jobs p ON p.seq = d.parent_seq
                   WHERE d.child_seq = j.seq AND p.state <> 'completed') AS n_open
           FROM jobs j WHERE j.state = 'waiting') w
     WHERE w.waiting_on <> w.n_open ORDER BY w.seq LIMIT 101",
    "SELECT 'job ' || c.id || ' is waiting, but job ' || p.id || ', which it runs after, is ' || p.state ||
            ': it can never run (cancel it, or retry ' || p.id || ')'
     FROM jobs c JOIN job_deps d ON d.child_seq = c.seq JOIN jobs p ON p.seq = d.parent_seq
     WHERE c.state = 'waiting' AND p.state IN ('dead', 'cancelled') ORDER BY c.seq LIMIT 101",
    "SELECT 'a dependency names a job that does not exist (job numbers ' || d.parent_seq || ' -> ' || d.child_seq || ')'
     FROM job_deps d WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE seq = d.parent_seq)
        OR NOT EXISTS (SELECT 1 FROM jobs WHERE seq = d.child_seq)
     ORDER BY d.child_seq LIMIT 101",
    "SELECT 'job ' || id || ' is ' || state || ' but still holds a lease for worker ' || COALESCE(worker_id, '(none)')
     FROM jobs WHERE state <> 'processing' AND lease_expires_ms IS NOT NULL ORDER BY seq LIMIT 101",
    "SELECT 'an earlier attempt (run ' || a.run || ') belongs to no job (job number ' || a.job_seq || ')'
     FROM attempts a WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.seq = a.job_seq)
     ORDER BY a.job_seq, a.run LIMIT 101",
];

/// What `check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The schema version of the database (it is migrated to this build's on open).
    pub schema_version: i64,
    /// One line per problem; empty when the queue is sound.
    pub problems: Vec<String>,
}

/// Runs every check on `store`. A check that fails to run (a corrupt page met on the way)
/// is itself a problem, and the other checks still run.
pub fn check(store: &mut dyn Store, now_ms: i64) -> CheckReport {
    let mut report = CheckReport::default();
    match store.schema_version() {
        Ok(v) => report.schema_version = v,
        Err(e) => report.problems.push(format!("cannot read the schema version: {e}")),
    }
    match store.file_integrity(LINES_PER_KIND) {
        Ok(lines) => report.problems.extend(lines.into_iter().map(|l| format!("integrity check: {l}"))),
        Err(e) => report.problems.push(format!("integrity check failed: {e}")),
    }
    for sql in INVARIANTS {
        match store.check_rows(sql, now_ms) {
            Ok(mut lines) => {
                if lines.len() > LINES_PER_KIND {
                    lines.truncate(LINES_PER_KIND);
                    lines.push(format!("(only the first {LINES_PER_KIND} problems of the kind above are listed)"));
                }
                report.problems.extend(lines);
            }
            Err(e) => report.problems.push(format!("cannot check the jobs: {e}")),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invariant_reads_one_line_more_than_it_shows() {
        let limit = format!(" LIMIT {}", LINES_PER_KIND + 1);
        for sql in INVARIANTS {
            assert!(sql.ends_with(&limit), "{sql}");
            assert!(!sql.contains('{'), "{sql}");
        }
    }
}
