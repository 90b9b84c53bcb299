//! Named queues: claims taking turns, pause, limits (also under racing connections), the
//! queue list.

use std::time::Duration;

use queuectl_core::store::{ListFilter, StoreOptions};
use queuectl_core::{Error, JobState};

use super::*;

conformance!(
    claims_take_turns_over_the_workers_queues,
    a_paused_queue_is_not_claimed_until_resumed,
    a_limit_caps_the_processing_jobs_of_a_queue,
    queue_list_counts_every_state_and_shows_settings,
);

fn claims_take_turns_over_the_workers_queues(s: &mut dyn Store) {
    s.job_insert_many(
        &[queued("a1", "a", 0), queued("b1", "b", 5), queued("a2", "a", 5), queued("a3", "a", 0), job("d1", 9)],
        T0,
    )
    .unwrap();
    assert_eq!(s.job_get("a1").unwrap().queue, "a");
    assert_eq!(s.job_get("d1").unwrap().queue, "default");
    assert!(!due(s, T0, Some(&["nothing-here"])));
    assert!(due(s, T0, Some(&["b"])));
    // Queues take turns in name order after the last job's queue, wrapping around; within
    // a queue, priority then FIFO.
    let filter = QueueFilter::new(&["a", "b"]).unwrap();
    let mut after: Option<String> = None;
    let mut order = Vec::new();
    for _ in 0..4 {
        let p = ClaimParams {
            worker_id: "w",
            now_ms: T0,
            lease_ms: 30_000,
            queues: Some(&filter),
            after_queue: after.as_deref(),
            max_slots: u32::MAX,
        };
        let Some(j) = s.job_claim(&p).unwrap() else { break };
        order.push(j.id);
        after = Some(j.queue);
    }
    assert_eq!(order, ["a2", "b1", "a1", "a3"], "a, b, then a again as b is empty");
    assert_eq!(claim_from(s, "w", T0, &["a", "b"]), None);
    assert_eq!(claim(s, "w", T0).as_deref(), Some("d1"), "no filter: every queue");
    let bad = QueueFilter::new(&["a", "no spaces"]).unwrap_err();
    assert!(matches!(bad, Error::InvalidInput(_)), "{bad:?}");
    assert!(QueueFilter::new::<&str>(&[]).is_err());
}

fn a_paused_queue_is_not_claimed_until_resumed(s: &mut dyn Store) {
    // A queue may be paused before it has any job.
    set_queue(s, "slow", QueueChange::Pause);
    s.job_insert_many(&[queued("s1", "slow", 9), job("d1", 0)], T0).unwrap();
    assert_eq!(claim(s, "w", T0).as_deref(), Some("d1"), "the paused queue's more urgent job is skipped");
    assert_eq!(claim(s, "w", T0), None);
    assert!(!due(s, T0, None));
    set_queue(s, "slow", QueueChange::Resume);
    assert!(due(s, T0, None));
    assert_eq!(claim(s, "w", T0).as_deref(), Some("s1"));
}

fn a_limit_caps_the_processing_jobs_of_a_queue(s: &mut dyn Store) {
    set_queue(s, "two", QueueChange::Limit(2));
    s.job_insert_many(&[queued("t1", "two", 0), queued("t2", "two", 0), queued("t3", "two", 0), job("d1", 0)], T0)
        .unwrap();
    assert_eq!(claim_from(s, "w1", T0, &["two"]).as_deref(), Some("t1"));
    assert_eq!(claim_from(s, "w2", T0, &["two"]).as_deref(), Some("t2"));
    assert_eq!(claim_from(s, "w3", T0, &["two"]), None, "the queue is full");
    assert_eq!(claim(s, "w3", T0).as_deref(), Some("d1"), "the full queue is skipped, not waited on");
    assert_eq!(claim(s, "w4", T0), None);
    assert!(!due(s, T0, Some(&["two"])));
    // A settle frees a slot, and a settle+claim may take it.
    let (settled, next) = s
        .job_settle_and_claim(
            &succeeded("t1", 1, "w1", T0 + 1, ""),
            &ClaimParams {
                worker_id: "w1",
                now_ms: T0 + 1,
                lease_ms: 30_000,
                queues: None,
                after_queue: None,
                max_slots: u32::MAX,
            },
        )
        .unwrap();
    assert_eq!((settled, next.map(|j| j.id).as_deref()), (Settled::Completed, Some("t3")));
    assert_eq!(claim(s, "w4", T0 + 1), None);
    // 0 lifts the limit.
    set_queue(s, "two", QueueChange::Limit(0));
    s.job_insert_many(&[queued("t4", "two", 0)], T0 + 2).unwrap();
    assert_eq!(claim(s, "w4", T0 + 2).as_deref(), Some("t4"));
}

fn queue_list_counts_every_state_and_shows_settings(s: &mut dyn Store) {
    set_queue(s, "held", QueueChange::Pause);
    set_queue(s, "capped", QueueChange::Limit(3));
    s.job_insert_many(&[queued("c1", "capped", 0), queued("c2", "capped", 0), job("d1", 0), job("d2", 0)], T0).unwrap();
    assert_eq!(claim(s, "w", T0).as_deref(), Some("c1"));
    assert_eq!(settle(s, "c1", 1, "w", T0 + 1, true), Settled::Completed);
    assert_eq!(claim(s, "w", T0 + 1).as_deref(), Some("c2"));
    let rows = s.queue_list().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["capped", "default", "held"]);
    let count = |name: &str, state: JobState| {
        let row = rows.iter().find(|r| r.name == name).unwrap();
        assert_eq!(row.counts.len(), JobState::ALL.len(), "every state, zeros included");
        row.counts.iter().find(|(s, _)| *s == state).unwrap().1
    };
    assert_eq!((count("capped", JobState::Completed), count("capped", JobState::Processing)), (1, 1));
    assert_eq!((count("default", JobState::Pending), count("default", JobState::Completed)), (2, 0));
    assert_eq!(count("held", JobState::Pending), 0);
    let held = rows.iter().find(|r| r.name == "held").unwrap();
    let capped = rows.iter().find(|r| r.name == "capped").unwrap();
    assert!(held.paused && !capped.paused);
    assert_eq!((held.limit, capped.limit), (0, 3));
    // A queue with neither jobs nor settings is left out; a bad name changes nothing.
    set_queue(s, "held", QueueChange::Resume);
    assert!(!s.queue_list().unwrap().iter().any(|r| r.name == "held"));
    let names = ["ok".to_string(), "not ok".to_string()];
    let err = s.queue_set(&QueueSetting { names: &names, change: QueueChange::Pause, now_ms: T0 }).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(!s.queue_list().unwrap().iter().any(|r| r.name == "ok"));
    let listed: Vec<String> = s
        .job_list_where(&ListFilter { queue: Some("capped"), ..Default::default() })
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, ["c1", "c2"]);
}

/// Eight connections claim from a queue limited to 2 as fast as they can, each holding
/// its job 2 ms (long beside a settle's round trip, so two held jobs overlap even on a
/// loaded machine): an in-process count of the jobs held (up after a claim returns, down
/// before the settle) never passes the limit. On PostgreSQL the claims race on snapshots
/// (without the second look under the queue's row lock this counts 4 or 5); the second
/// look is what keeps the limit.
fn limit_race(location: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut s = queuectl_core::open_store(location, &StoreOptions::default()).unwrap();
    s.queue_set(&QueueSetting { names: &["lim".to_string()], change: QueueChange::Limit(2), now_ms: T0 }).unwrap();
    let jobs: Vec<NewJob> = (0..200).map(|i| queued(&format!("j{i:03}"), "lim", 0)).collect();
    s.job_insert_many(&jobs, T0).unwrap();
    let held = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let location = location.to_string();
            let (held, peak) = (Arc::clone(&held), Arc::clone(&peak));
            std::thread::spawn(move || {
                let opts = StoreOptions { durable: false, ..StoreOptions::default() };
                let mut s = queuectl_core::open_store(&location, &opts).unwrap();
                let worker = format!("w{t}");
                let (mut done, mut idle) = (0, 0);
                while idle < 200 {
                    let Some(id) = claim(s.as_mut(), &worker, T0) else {
                        idle += 1;
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    };
                    idle = 0;
                    let now_held = held.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now_held, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                    held.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(s.job_settle(&succeeded(&id, 1, &worker, T0, "")).unwrap(), Settled::Completed);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let done: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(done, 200, "every job ran once");
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 2, "{peak} jobs of a queue limited to 2 were held at once");
    // That the race reached the limit shows the test raced. Under Wine the threads are too
    // slow to overlap reliably, so there it proves only the cap.
    if !cfg!(windows) {
        assert_eq!(peak, 2, "the limit was reached");
    }
}

#[test]
fn a_limit_holds_when_many_connections_claim_at_once_on_sqlite() {
    let (g, _s) = common::sqlite();
    limit_race(g.dir.path().join("q.db").to_str().unwrap());
}

#[test]
fn a_limit_holds_when_many_connections_claim_at_once_on_postgres() {
    let Some(schema) = common::PgSchema::create() else { return };
    limit_race(&schema.url);
}
