//! The queue list as both stores make it: each queue's settings with its jobs counted in
//! every state.

use super::QueueRow;
use crate::job::JobState;

/// A queue's settings as `sql::queues::SETTINGS` reads them: name, paused, then limit,
/// rate starts, rate period and key limit.
pub(super) type Settings = (String, bool, [i64; 4]);

/// The queue rows from the settings and (queue, state, count) triples; queues with no job
/// and no setting are left out.
pub(super) fn queue_rows(settings: Vec<Settings>, counts: &[(String, JobState, u64)]) -> Vec<QueueRow> {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    let mut rows: Vec<QueueRow> = settings
        .into_iter()
        .map(|(name, paused, [limit, rate_n, rate_period_ms, key_limit])| QueueRow {
            name,
            paused,
            limit: n(limit),
            rate_n: n(rate_n),
            rate_period_ms: n(rate_period_ms),
            key_limit: n(key_limit),
            counts: JobState::ALL.iter().map(|s| (*s, 0)).collect(),
        })
        .collect();
    for (queue, state, n) in counts {
        if let Some(row) = rows.iter_mut().find(|r| &r.name == queue) {
            if let Some(c) = row.counts.iter_mut().find(|(s, _)| s == state) {
                c.1 += n;
            }
        }
    }
    rows.retain(|r| r.paused || r.limit > 0 || r.rate_n > 0 || r.key_limit > 0 || r.counts.iter().any(|(_, n)| *n > 0));
    rows
}
