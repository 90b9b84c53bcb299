//! SQLite alone: its connections (wake-ups, busy timeouts, `synchronous`, permissions,
//! page size) and settle+claim from many threads.

use std::time::{Duration, Instant};

use queuectl_core::store::{SqliteStore, StoreOptions};
use queuectl_core::JobState;

use super::*;

#[test]
fn a_sqlite_waiter_wakes_on_another_connections_commit() {
    let (g, mut writer) = common::sqlite();
    let mut waiter = SqliteStore::open(&g.dir.path().join("q.db"), &StoreOptions::default()).unwrap();
    // The first wait only learns the current version; nothing changed since.
    assert!(!waiter.wait_for_change(Duration::from_millis(20)).unwrap());
    assert!(!waiter.wait_for_change(Duration::from_millis(50)).unwrap());
    let t = Instant::now();
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        writer.job_insert_many(&[job("n", 0)], T0).unwrap();
    });
    assert!(waiter.wait_for_change(Duration::from_secs(5)).unwrap());
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(90) && waited < Duration::from_secs(2), "woke after {waited:?}");
    handle.join().unwrap();
    assert!(matches!(waiter.wakeups(), queuectl_core::store::Wakeups::Polled(_)));
}

#[test]
fn each_sqlite_connection_keeps_its_own_busy_timeout() {
    // Opening a second connection with a long timeout (a foreground worker pool) must not
    // change the timeout of the first (the CLI's QUEUECTL_BUSY_TIMEOUT).
    let (g, _s) = common::sqlite();
    let path = g.dir.path().join("q.db");
    let mut short =
        SqliteStore::open(&path, &StoreOptions { busy_timeout_ms: 100, ..StoreOptions::default() }).unwrap();
    let _long = SqliteStore::open(&path, &StoreOptions { busy_timeout_ms: 20_000, ..StoreOptions::default() }).unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t = Instant::now();
    let err = short.job_insert_many(&[job("blocked", 0)], T0).unwrap_err();
    let waited = t.elapsed();
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}: the other connection's timeout applied");
    holder.execute_batch("ROLLBACK").unwrap();
    short.job_insert_many(&[job("free", 0)], T0).unwrap();
}

#[test]
fn enqueue_connections_sync_every_commit_and_workers_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let durable = SqliteStore::open(&path, &StoreOptions::default()).unwrap();
    assert_eq!(durable.synchronous().unwrap(), 2, "enqueue must use synchronous=FULL");
    let worker = SqliteStore::open(&path, &StoreOptions { durable: false, ..StoreOptions::default() }).unwrap();
    assert_eq!(worker.synchronous().unwrap(), 1);
    assert_eq!(durable.integrity_check().unwrap(), "ok");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn opening_in_a_missing_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(&dir.path().join("no/such/q.db"), &StoreOptions::default()).err().unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn a_new_sqlite_queue_uses_small_pages() {
    let (g, mut s) = common::sqlite();
    s.job_insert_many(&[job("p", 0)], T0).unwrap();
    let raw = rusqlite::Connection::open(g.dir.path().join("q.db")).unwrap();
    let size: i64 = raw.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert_eq!(size, 2048);
}

#[test]
fn sqlite_settle_and_claim_from_many_threads_runs_each_job_once() {
    // Threads that meet at the write lock have their settle+claim run by the holder, in
    // its transaction: every job must still be claimed once, settled once, in order.
    let (g, mut s) = common::sqlite();
    let jobs: Vec<NewJob> = (0..2_000).map(|i| job(&format!("j{i:04}"), 0)).collect();
    s.job_insert_many(&jobs, T0).unwrap();
    let path = g.dir.path().join("q.db");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let opts = StoreOptions { durable: false, ..StoreOptions::default() };
                let mut s = SqliteStore::open(&path, &opts).unwrap();
                let worker = format!("w{t}");
                let mut done = Vec::new();
                let mut next = claim(&mut s, &worker, T0);
                while let Some(id) = next.take() {
                    let settle = succeeded(&id, 1, &worker, T0, "");
                    let c = ClaimParams {
                        worker_id: &worker,
                        now_ms: T0,
                        lease_ms: 30_000,
                        queues: None,
                        after_queue: None,
                        max_slots: u32::MAX,
                    };
                    let (settled, claimed) = s.job_settle_and_claim(&settle, &c).unwrap();
                    assert_eq!(settled, Settled::Completed, "{id}");
                    done.push(id);
                    next = claimed.map(|j| j.id);
                }
                done
            })
        })
        .collect();
    let mut all: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(all.len(), 2_000);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 2_000, "a job was settled twice");
    let listed = s.job_list(None, None).unwrap();
    assert!(listed.iter().all(|j| j.state == JobState::Completed && j.attempts == 1));
}
