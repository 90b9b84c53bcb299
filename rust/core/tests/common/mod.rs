//! Fixtures shared by the integration tests: a fresh store of each kind.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use queuectl_core::store::{PostgresStore, SqliteStore, StoreOptions};
use queuectl_core::Store;

/// Keeps a SQLite store's folder alive.
pub struct SqliteGuard {
    pub dir: tempfile::TempDir,
}

pub fn sqlite() -> (SqliteGuard, Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("q.db"), &StoreOptions::default()).unwrap();
    (SqliteGuard { dir }, Box::new(store))
}

/// The server the PostgreSQL tests use: QUEUECTL_TEST_PG, or the local one.
pub fn pg_server() -> String {
    std::env::var("QUEUECTL_TEST_PG").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into())
}

/// A schema of its own for one test, dropped with everything in it at the end.
pub struct PgSchema {
    pub name: String,
    pub url: String,
}

impl PgSchema {
    /// A fresh schema, or None (with a message on stderr) when no server answers. With
    /// QUEUECTL_REQUIRE_PG=1 (CI sets it) a missing server fails the test instead.
    pub fn create() -> Option<PgSchema> {
        static N: AtomicU32 = AtomicU32::new(0);
        let server = pg_server();
        let mut admin = match postgres::Client::connect(&server, postgres::NoTls) {
            Ok(c) => c,
            Err(e) if std::env::var("QUEUECTL_REQUIRE_PG").as_deref() == Ok("1") => {
                panic!("no PostgreSQL server answers at {server}: {e} (QUEUECTL_REQUIRE_PG=1)")
            }
            Err(e) => {
                eprintln!("SKIPPED: no PostgreSQL server answers at {server}: {e}");
                return None;
            }
        };
        let name = format!(
            "qt_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            queuectl_core::clock::now_ms()
        );
        admin.batch_execute(&format!("CREATE SCHEMA {name}")).unwrap();
        let sep = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{sep}options=-csearch_path%3D{name}&application_name={name}");
        Some(PgSchema { name, url })
    }

    pub fn open(&self, opts: &StoreOptions) -> PostgresStore {
        PostgresStore::open(&self.url, opts).unwrap()
    }

    /// A plain connection with this schema on its search path.
    pub fn admin(&self) -> postgres::Client {
        let mut c = postgres::Client::connect(&pg_server(), postgres::NoTls).unwrap();
        c.batch_execute(&format!("SET search_path = {}", self.name)).unwrap();
        c
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&pg_server(), postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

pub fn postgres() -> Option<(PgSchema, Box<dyn Store>)> {
    let schema = PgSchema::create()?;
    let store = schema.open(&StoreOptions::default());
    Some((schema, Box::new(store)))
}
