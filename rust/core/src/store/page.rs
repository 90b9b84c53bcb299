//! The bounds of a page of the dashboard's job list and the cursor of the next one, as
//! both stores compute them around their page query (`sql::page`).

use super::PAGE_SCAN_WINDOW;

/// The seqs a page reads: below the first, at or above the second; with `windowed`, at
/// most [`PAGE_SCAN_WINDOW`] of them.
pub(super) fn bounds(before: Option<i64>, max_seq: i64, windowed: bool) -> (i64, i64) {
    let upper = before.unwrap_or(i64::MAX).min(max_seq.saturating_add(1));
    let lower = if windowed { upper.saturating_sub(PAGE_SCAN_WINDOW).max(0) } else { 0 };
    (upper, lower)
}

/// The next page's cursor: the oldest job of a full page, else the window's lower bound
/// while older jobs may be left.
pub(super) fn next(jobs_seqs: &[i64], limit: u64, lower: i64, min_seq: i64) -> Option<i64> {
    if jobs_seqs.len() as u64 >= limit && limit > 0 {
        return jobs_seqs.last().copied();
    }
    (lower > min_seq).then_some(lower)
}
