//! The queue list as both stores make it: each queue's settings with its jobs counted in
//! every state.

use super::QueueRow;
use crate::job::JobState;

/// The queue rows from the settings (name, paused, limit) and (queue, state, count)
/// triples; queues with no job and no setting are left out.
pub(super) fn queue_rows(settings: Vec<(String, bool, i64)>, counts: &[(String, JobState, u64)]) -> Vec<QueueRow> {
    let mut rows: Vec<QueueRow> = settings
        .into_iter()
        .map(|(name, paused, limit)| QueueRow {
            name,
            paused,
            limit: u64::try_from(limit).unwrap_or(0),
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
    rows.retain(|r| r.paused || r.limit > 0 || r.counts.iter().any(|(_, n)| *n > 0));
    rows
}
