//! An open write transaction of a store, as the flows written above the stores (`change`,
//! `fire`) see it: what they ask of every transaction, whatever it runs on.

use crate::error::Result;

/// A store's open write transaction. Dropped without [`Tx::commit`], it rolls back.
pub(super) trait Tx {
    /// Tells idle workers on every host that something changed, once this commits
    /// (PostgreSQL's `NOTIFY`; nothing on SQLite, whose idle workers poll `data_version`).
    fn wake(&mut self) -> Result<()>;
    /// Commits the transaction.
    fn commit(self) -> Result<()>;
}
