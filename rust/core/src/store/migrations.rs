//! The schema's history: one numbered file per migration and dialect under
//! `migrations/sqlite/` and `migrations/postgres/`, applied in order in one transaction
//! by the store that opens an older database. The schema version is how many have been
//! applied, the same number in both stores.
//!
//! A new migration is a new pair of files (both dialects, the same number; a dialect with
//! nothing to do runs `SELECT 1;`) and a line in [`MIGRATIONS`]. Files are never edited
//! once released: databases out there have run them.

use crate::error::{Error, Result};

/// One forward migration, in each dialect.
pub(super) struct Migration {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// The migration named `NNN_name`, both dialects' files.
macro_rules! migration {
    ($name:literal) => {
        Migration {
            sqlite: include_str!(concat!("migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("migrations/postgres/", $name, ".sql")),
        }
    };
}

/// Every migration, oldest first.
pub(super) const MIGRATIONS: &[Migration] = &[
    migration!("001_jobs_attempts_workers_config"),
    migration!("002_sqlite_partial_indexes"),
    migration!("003_job_env"),
    migration!("004_named_queues"),
    migration!("005_cancel"),
    migration!("006_unique_keys"),
    migration!("007_dependencies"),
    migration!("008_schedules"),
    migration!("009_stats"),
    migration!("010_flow_control"),
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The error for a schema this build does not know (written by a newer queuectl).
pub(super) fn check_version(current: i64) -> Result<()> {
    if current > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew { found: current, supported: SCHEMA_VERSION });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_has_both_dialects_in_numbered_files() {
        assert_eq!(SCHEMA_VERSION, 10);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            let title = format!("-- Migration {}:", i + 1);
            assert!(m.sqlite.starts_with(&title), "sqlite {i}");
            assert!(m.postgres.starts_with(&title), "postgres {i}");
        }
    }
}
