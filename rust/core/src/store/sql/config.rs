//! Statements on config, the settings every worker of the queue shares.

use super::Sql;

/// The value of key ?1.
pub(crate) const GET: Sql = shared!("SELECT value FROM config WHERE key = ?1");

/// Key ?1 set to ?2 at ?3 (a copy between stores writes its rows so too).
pub(crate) const SET: Sql = shared!(
    "INSERT INTO config (key, value, updated_at_ms) VALUES (?1, ?2, ?3)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms"
);

/// Every key and value, by key.
pub(crate) const LIST: Sql = shared!("SELECT key, value FROM config ORDER BY key");

/// Every row as [`SET`] takes it (a copy between stores).
pub(crate) const ROWS: Sql = shared!("SELECT key, value, updated_at_ms FROM config");

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    super::Texts { shared: vec![GET, SET, LIST, ROWS], ..Default::default() }
}
