//! PostgreSQL alone: what a shared server adds (rescues skipping locked rows, lost
//! connections, notifications).

use std::time::{Duration, Instant};

use queuectl_core::store::StoreOptions;
use queuectl_core::JobState;

use super::*;

#[test]
fn postgres_a_rescue_skips_a_row_another_connection_holds() {
    // Every worker of every host rescues at each heartbeat: one that meets a row another
    // rescuer has locked must move on, not wait (its heartbeat runs inside a job's tick).
    let Some(schema) = common::PgSchema::create() else { return };
    let mut s = schema.open(&StoreOptions { busy_timeout_ms: 20_000, ..StoreOptions::default() });
    s.job_insert_many(&[job("held", 0)], T0).unwrap();
    claim(&mut s, "gone", T0);
    let mut other = schema.admin();
    let mut tx = other.transaction().unwrap();
    tx.query("SELECT 1 FROM jobs WHERE id = 'held' FOR UPDATE", &[]).unwrap();
    let t = Instant::now();
    assert!(rescue(&mut s, T0 + 60_000).is_empty());
    assert!(t.elapsed() < Duration::from_secs(5), "the rescue waited {:?} for the lock", t.elapsed());
    tx.rollback().unwrap();
    assert_eq!(rescue(&mut s, T0 + 60_000), [("held".to_string(), 1)]);
}

/// Ends every queuectl connection of one test schema, as a server restart would.
fn kill_connections(schema: &common::PgSchema) -> u64 {
    schema
        .admin()
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", &[&schema.name])
        .unwrap()
}

#[test]
fn postgres_store_reconnects_after_losing_its_connection() {
    let Some(schema) = common::PgSchema::create() else { return };
    let mut s = schema.open(&StoreOptions::default());
    s.job_insert_many(&[job("before", 0)], T0).unwrap();
    assert_eq!(kill_connections(&schema), 1);
    // The first call may fail with a clear error; the next one reconnects.
    let first = s.job_get("before");
    if let Err(e) = &first {
        assert!(e.to_string().contains("PostgreSQL"), "{e}");
    }
    assert_eq!(s.job_get("before").unwrap().state, JobState::Pending);
    s.job_insert_many(&[job("after", 0)], T0).unwrap();
    assert_eq!(s.job_list(None, None).unwrap().len(), 2);
}

#[test]
fn postgres_claim_lost_in_flight_goes_back_to_pending() {
    let Some(schema) = common::PgSchema::create() else { return };
    let mut s = schema.open(&StoreOptions::default());
    let mut later = job("j", 0);
    later.run_at_ms = T0 + 60_000;
    s.job_insert_many(&[later], T0).unwrap();
    assert_eq!(claim(&mut s, "w", T0), None);
    // Simulate a claim that committed but whose reply never arrived: the row says claimed
    // by "w", and the connection dies under the next claim.
    let mut admin = schema.admin();
    admin
        .execute(
            "UPDATE jobs SET state = 'processing', attempts = 1, runs = 1, worker_id = 'w', run_at_ms = $1,
                 lease_expires_ms = $2",
            &[&T0, &(T0 + 30_000)],
        )
        .unwrap();
    assert_eq!(kill_connections(&schema), 1);
    let err = s.job_claim(&ClaimParams {
        worker_id: "w",
        now_ms: T0,
        lease_ms: 30_000,
        queues: None,
        after_queue: None,
        max_slots: u32::MAX,
    });
    assert!(err.is_err(), "a claim on a killed connection cannot succeed");
    // The next claim by the same worker first releases what it cannot be running.
    assert_eq!(claim(&mut s, "w", T0).as_deref(), Some("j"));
    let j = s.job_get("j").unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Processing, 1));
}

#[test]
fn postgres_settle_retried_after_a_lost_connection_still_settles() {
    // Found by restarting the server under two busy workers: the retry released the very
    // job it was settling, which then ran twice.
    let Some(schema) = common::PgSchema::create() else { return };
    let mut s = schema.open(&StoreOptions::default());
    s.job_insert_many(&[job("a", 0), job("b", 0)], T0).unwrap();
    assert_eq!(claim(&mut s, "w", T0).as_deref(), Some("a"));
    let settle = succeeded("a", 1, "w", T0 + 1, "");
    let next = ClaimParams {
        worker_id: "w",
        now_ms: T0 + 1,
        lease_ms: 30_000,
        queues: None,
        after_queue: None,
        max_slots: u32::MAX,
    };
    assert_eq!(kill_connections(&schema), 1);
    assert!(s.job_settle_and_claim(&settle, &next).is_err());
    let (settled, claimed) = s.job_settle_and_claim(&settle, &next).unwrap();
    assert_eq!((settled, claimed.map(|j| j.id).as_deref()), (Settled::Completed, Some("b")));
    assert_eq!(s.job_get("a").unwrap().attempts, 1);
}

#[test]
fn postgres_notify_wakes_a_listener() {
    let Some(schema) = common::PgSchema::create() else { return };
    let mut listener = schema.open(&StoreOptions::default());
    let mut writer = schema.open(&StoreOptions::default());
    // The first wait subscribes and says "look now".
    assert!(listener.wait_for_change(Duration::from_millis(10)).unwrap());
    assert!(!listener.wait_for_change(Duration::from_millis(50)).unwrap());
    let t = Instant::now();
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        writer.job_insert_many(&[job("n", 0)], T0).unwrap();
    });
    assert!(listener.wait_for_change(Duration::from_secs(5)).unwrap());
    assert!(t.elapsed() < Duration::from_secs(2), "woke after {:?}", t.elapsed());
    handle.join().unwrap();
    // A queue in another schema of the same database does not wake this one.
    let other = common::PgSchema::create().unwrap();
    other.open(&StoreOptions::default()).job_insert_many(&[job("elsewhere", 0)], T0).unwrap();
    assert!(!listener.wait_for_change(Duration::from_millis(200)).unwrap());
}
