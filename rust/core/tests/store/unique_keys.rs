//! Unique keys: one unfinished job per key, in batches and under racing connections.

use queuectl_core::store::{InsertBatch, Inserted, StoreOptions};
use queuectl_core::{Error, JobState};

use super::*;

conformance!(a_unique_key_admits_one_unfinished_job,);

fn a_unique_key_admits_one_unfinished_job(s: &mut dyn Store) {
    let batch =
        |s: &mut dyn Store, jobs: &[NewJob]| s.job_insert(InsertBatch { jobs, now_ms: T0, progress: None }).unwrap();
    assert_eq!(batch(s, &[keyed("a", "k")]), Inserted { ids: vec!["a".into()], skipped: vec![] });
    assert_eq!(s.job_get("a").unwrap().unique_key.as_deref(), Some("k"));
    // While "a" is unfinished (pending, processing, failed), the key adds nothing: the id
    // given back is a's, and jobs without a key or with another key are added as usual.
    let got = batch(s, &[job("plain", 0), keyed("b", "k"), keyed("c", "other"), keyed("d", "other")]);
    assert_eq!(got.ids, ["plain", "a", "c", "c"]);
    assert_eq!(got.skipped, [1, 3]);
    assert!(matches!(s.job_get("b"), Err(Error::NotFound(_))));
    assert_eq!(claim(s, "w", T0).as_deref(), Some("a"));
    assert_eq!(batch(s, &[keyed("b", "k")]).ids, ["a"]);
    assert_eq!(settle(s, "a", 1, "w", T0, false), Settled::Retry { run_at_ms: T0 + 2_000 });
    assert_eq!(batch(s, &[keyed("b", "k")]).ids, ["a"]);
    // A duplicate id is still an error, and the whole batch is not added.
    let e = s.job_insert_many(&[keyed("e", "new"), job("plain", 0)], T0).unwrap_err();
    assert_eq!(e, Error::DuplicateId("plain".into()));
    assert!(matches!(s.job_get("e"), Err(Error::NotFound(_))));
    // Once it has ended, the key is free again.
    assert_eq!(by_id(s, ByIdChange::Cancel, &["a"], T0 + 1).unwrap(), 1);
    assert_eq!(batch(s, &[keyed("b", "k")]), Inserted { ids: vec!["b".into()], skipped: vec![] });
    // The ended one cannot run again while the new one is unfinished: nothing changes.
    let e = by_id(s, ByIdChange::Retry, &["a"], T0 + 2).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("unique_key")), "{e:?}");
    assert_eq!(s.job_get("a").unwrap().state, JobState::Cancelled);
    assert_eq!(by_id(s, ByIdChange::Cancel, &["b"], T0 + 3).unwrap(), 1);
    assert_eq!(by_id(s, ByIdChange::Retry, &["a"], T0 + 4).unwrap(), 1);
    assert_eq!(s.job_get("a").unwrap().state, JobState::Pending);
    // The same for every dead job at once: an error, and none of them retried.
    let mut dies = keyed("dies", "d");
    dies.max_retries = 0;
    s.job_insert_many(&[dies], T0).unwrap();
    while let Some(id) = claim(s, "w", T0 + 5) {
        let ok = id != "dies";
        let attempt = s.job_get(&id).unwrap().attempts;
        settle(s, &id, attempt, "w", T0 + 5, ok);
    }
    assert_eq!(s.job_get("dies").unwrap().state, JobState::Dead);
    assert_eq!(batch(s, &[keyed("twin", "d")]).ids, ["twin"]);
    let e = s.dead_retry_all(T0 + 6).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("unique_key")), "{e:?}");
    assert_eq!(s.job_get("dies").unwrap().state, JobState::Dead);
}

/// Eight connections enqueue the same keys at once, each key many times: each key gets
/// exactly one job, and every connection is told its id.
fn unique_race(location: &str) {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let location = location.to_string();
            std::thread::spawn(move || {
                let mut s = queuectl_core::open_store(&location, &StoreOptions::default()).unwrap();
                (0..20)
                    .map(|k| {
                        let jobs = [keyed(&format!("t{t}k{k}"), &format!("key{k}"))];
                        s.job_insert(InsertBatch { jobs: &jobs, now_ms: T0, progress: None }).unwrap().ids.remove(0)
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let told: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut s = queuectl_core::open_store(location, &StoreOptions::default()).unwrap();
    let jobs = s.job_list(None, None).unwrap();
    assert_eq!(jobs.len(), 20, "one job per key");
    for k in 0..20 {
        let key = format!("key{k}");
        let holder = jobs.iter().find(|j| j.unique_key.as_deref() == Some(&key)).unwrap();
        assert!(told.iter().all(|ids| ids[k] == holder.id), "every enqueue of {key} names {}", holder.id);
    }
}

#[test]
fn a_unique_key_holds_when_many_connections_enqueue_at_once_on_sqlite() {
    let (g, _s) = common::sqlite();
    unique_race(g.dir.path().join("q.db").to_str().unwrap());
}

#[test]
fn a_unique_key_holds_when_many_connections_enqueue_at_once_on_postgres() {
    let Some(schema) = common::PgSchema::create() else { return };
    unique_race(&schema.url);
}
