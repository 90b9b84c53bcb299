//! The schema: one for both stores, migrated once, a newer one refused, and a queue copied
//! between the stores.

use queuectl_core::store::{transfer, PostgresStore, SqliteStore, StoreOptions, SCHEMA_VERSION};
use queuectl_core::Error;

use super::*;

#[test]
fn schema_migrates_once_and_refuses_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    drop(SqliteStore::open(&path, &StoreOptions::default()).unwrap());
    let mut again = SqliteStore::open(&path, &StoreOptions::default()).unwrap();
    again.job_insert_many(&[job("kept", 0)], T0).unwrap();
    drop(again);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 42).unwrap();
    drop(raw);
    let err = SqliteStore::open(&path, &StoreOptions::default()).err().unwrap();
    assert_eq!(err, Error::SchemaTooNew { found: 42, supported: SCHEMA_VERSION });
}

#[test]
fn both_stores_have_one_schema() {
    let (_g, mut lite) = common::sqlite();
    let Some((_s, mut pg)) = common::postgres() else { return };
    assert_eq!(lite.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(pg.schema_version().unwrap(), SCHEMA_VERSION);
    for table in ["jobs", "attempts", "workers", "config", "queues"] {
        let columns = lite.table_columns(table).unwrap();
        assert!(!columns.is_empty(), "{table}");
        assert_eq!(columns, pg.table_columns(table).unwrap(), "{table}");
    }
}

#[test]
fn postgres_hosts_starting_at_once_migrate_once_and_a_newer_schema_is_refused() {
    let Some(schema) = common::PgSchema::create() else { return };
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = schema.url.clone();
            std::thread::spawn(move || PostgresStore::open(&url, &StoreOptions::default()).map(drop))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let mut admin = schema.admin();
    let version: i64 = admin.query_one("SELECT version FROM queuectl_schema", &[]).unwrap().get(0);
    assert_eq!(version, SCHEMA_VERSION);
    admin.execute("UPDATE queuectl_schema SET version = 42", &[]).unwrap();
    let err = PostgresStore::open(&schema.url, &StoreOptions::default()).err().unwrap();
    assert_eq!(err, Error::SchemaTooNew { found: 42, supported: SCHEMA_VERSION });
}

#[test]
fn a_sqlite_queue_copies_into_postgres_whole_or_not_at_all() {
    let Some(schema) = common::PgSchema::create() else { return };
    let (g, mut src) = common::sqlite();
    let mut dies = job("dies", 0);
    dies.max_retries = 0;
    src.job_insert_many(&[job("done", 0), job("retrying", 3), dies, job("waiting", 1)], T0).unwrap();
    src.config_set(set("max-retries", "6"), T0).unwrap();
    assert_eq!(claim(src.as_mut(), "w", T0).as_deref(), Some("retrying"));
    assert_eq!(settle(src.as_mut(), "retrying", 1, "w", T0, false), Settled::Retry { run_at_ms: T0 + 2_000 });
    assert_eq!(claim(src.as_mut(), "w", T0).as_deref(), Some("waiting"));
    assert_eq!(settle(src.as_mut(), "waiting", 1, "w", T0, true), Settled::Completed);
    assert_eq!(claim(src.as_mut(), "w", T0).as_deref(), Some("done"));
    assert_eq!(settle(src.as_mut(), "done", 1, "w", T0, true), Settled::Completed);
    assert_eq!(claim(src.as_mut(), "w", T0).as_deref(), Some("dies"));
    assert_eq!(settle(src.as_mut(), "dies", 1, "w", T0, false), Settled::Dead);
    // Flow control: a job with every field, and a queue with every setting.
    let flow = queuectl_core::job::Flow {
        key: Some("customer-1".into()),
        slots: 3,
        retry: queuectl_core::job::RetryRule {
            delays_ms: Some(vec![1_000, 60_000]),
            on: Some(vec![75]),
            not_on: Some(vec![2]),
            not_on_timeout: true,
        },
        expires_at_ms: Some(T0 + 3_600_000),
    };
    let fresh = NewJob { flow: flow.clone(), ..job("fresh", 0) };
    src.job_insert_many(&[fresh, after("child", &["fresh", "done"])], T0 + 1).unwrap();
    set_queue(src.as_mut(), "default", QueueChange::Rate { starts: 5, period_ms: 60_000 });
    set_queue(src.as_mut(), "default", QueueChange::KeyLimit(2));
    let d = queuectl_core::spec::SpecDefaults { max_retries: 1, timeout_ms: 0, cwd: "/".into(), now_ms: T0 };
    let daily = queuectl_core::schedule::new_schedule("daily", "@daily", None, "skip", r#"{"command":"x"}"#, &d);
    src.schedule_add(&daily.unwrap()).unwrap();

    let path = g.dir.path().join("q.db");
    let report = transfer::sqlite_to_postgres(&path, &schema.url, &StoreOptions::default()).unwrap();
    assert_eq!(report, transfer::CopyReport { jobs: 6, attempts: 2, config: 1, requeued: 0 });
    let mut dst = schema.open(&StoreOptions::default());
    assert_eq!(dst.job_list(None, None).unwrap(), src.job_list(None, None).unwrap());
    for id in ["done", "retrying", "dies", "waiting", "fresh", "child"] {
        assert_eq!(dst.job_attempts(id).unwrap(), src.job_attempts(id).unwrap(), "{id}");
    }
    assert_eq!(dst.job_parents("child").unwrap(), src.job_parents("child").unwrap());
    assert_eq!(dst.schedule_list(None, None).unwrap(), src.schedule_list(None, None).unwrap());
    // And back into a new SQLite file: the edges and the schedule come along.
    let back = g.dir.path().join("back.db");
    transfer::postgres_to_sqlite(&schema.url, &back, &StoreOptions::default()).unwrap();
    let mut again = queuectl_core::open_store(back.to_str().unwrap(), &StoreOptions::default()).unwrap();
    assert_eq!(again.job_parents("child").unwrap(), src.job_parents("child").unwrap());
    assert_eq!(again.schedule_list(None, None).unwrap(), src.schedule_list(None, None).unwrap());
    assert_eq!(dst.config_list().unwrap(), src.config_list().unwrap());
    assert_eq!(dst.job_count_by_state().unwrap(), src.job_count_by_state().unwrap());
    assert_eq!(dst.job_get("fresh").unwrap().flow, flow);
    assert_eq!(again.job_get("fresh").unwrap().flow, flow);
    for store in [&mut dst as &mut dyn Store, again.as_mut()] {
        let q = store.queue_list().unwrap().into_iter().find(|q| q.name == "default").unwrap();
        assert_eq!((q.rate_n, q.rate_period_ms, q.key_limit), (5, 60_000, 2), "the queue's settings come along");
    }
    // The retry keeps its priority (3) and due time: it comes before the fresh job.
    assert_eq!(claim(&mut dst, "w", T0 + 2_000).as_deref(), Some("retrying"));

    // Copying again clashes on the first id and adds nothing.
    let err = transfer::sqlite_to_postgres(&path, &schema.url, &StoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::DuplicateId(_)), "{err:?}");
    assert_eq!(dst.job_list(None, None).unwrap().len(), 6);
}
