//! Statements on stats, the per-minute rollup of what workers did (minute 0 holds the
//! totals).

use super::Sql;

/// ?1 minute, ?2 queue, ?3 metric, ?4 the value to add.
pub(crate) const ADD: Sql = shared!(
    "INSERT INTO stats (minute_ms, queue, metric, value) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (minute_ms, queue, metric) DO UPDATE SET value = stats.value + excluded.value"
);

/// ?1: minutes before it are forgotten (the totals stay).
pub(crate) const FORGET: Sql = shared!("DELETE FROM stats WHERE minute_ms > 0 AND minute_ms < ?1");

/// The totals.
pub(crate) const TOTALS: Sql = shared!("SELECT minute_ms, queue, metric, value FROM stats WHERE minute_ms = 0");

/// Every minute from ?1 on, oldest first.
pub(crate) const SINCE: Sql = shared!(
    "SELECT minute_ms, queue, metric, value FROM stats WHERE minute_ms >= ?1 AND minute_ms > 0 ORDER BY minute_ms"
);

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    super::Texts { shared: vec![ADD, FORGET, TOTALS, SINCE], ..Default::default() }
}
