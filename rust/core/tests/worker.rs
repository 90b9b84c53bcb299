//! Worker threads racing over one store (a SQLite file, a PostgreSQL schema): every job
//! runs exactly once. On Unix and, under Wine, on Windows.

mod common;

use std::time::Duration;

use std::sync::Arc;

use queuectl_core::events::Silent;
use queuectl_core::store::{open_store, StopLevel, StoreOptions};
use queuectl_core::worker::{new_worker_id, Pool, WorkerConfig};
use queuectl_core::{clock, JobState, NewJob};

#[test]
fn many_workers_run_every_job_exactly_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    race(dir.path().join("q.db").to_str().unwrap(), &dir);
}

#[test]
fn many_workers_run_every_job_exactly_once_on_postgres() {
    let Some(schema) = common::PgSchema::create() else { return };
    race(&schema.url, &tempfile::tempdir().unwrap());
}

fn race(location: &str, dir: &tempfile::TempDir) {
    // One file per job, a line per run: cmd's `>>` is not an atomic append, so runs of
    // different jobs must not share a file to be counted.
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let record = if cfg!(windows) {
        format!("echo %QUEUECTL_JOB_ID%>> \"{}\\%QUEUECTL_JOB_ID%\"", runs.display())
    } else {
        format!("echo $QUEUECTL_JOB_ID >> '{}'/$QUEUECTL_JOB_ID", runs.display())
    };
    let mut store = open_store(location, &StoreOptions::default()).unwrap();
    let jobs: Vec<NewJob> = (0..400)
        .map(|i| NewJob {
            id: Some(format!("j{i}")),
            command: record.clone(),
            max_retries: 0,
            priority: 0,
            run_at_ms: 0,
            timeout_ms: 0,
            cwd: dir.path().display().to_string(),
        })
        .collect();
    store.job_insert_many(&jobs, clock::now_ms()).unwrap();
    let cfgs = (0..4)
        .map(|_| WorkerConfig {
            burst: true,
            observer: Arc::new(Silent),
            ..WorkerConfig::new(new_worker_id(), "test".into(), std::process::id(), dir.path().join("logs"))
        })
        .collect();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let pool = Pool::start(location, &StoreOptions { durable: false, ..Default::default() }, cfgs).unwrap();
    assert!(pool.wait(Duration::from_secs(120)), "workers did not finish");
    let summary = pool.join().unwrap();
    let unfinished: Vec<String> = store
        .job_list(None, None)
        .unwrap()
        .into_iter()
        .filter(|j| j.state != JobState::Completed)
        .map(|j| format!("{} {:?} exit {:?}: {:?}", j.id, j.state, j.exit_code, j.last_error))
        .collect();
    assert_eq!(summary.completed, 400, "{unfinished:?}");
    let mut ran: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&runs).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        ran.extend(text.lines().map(|l| l.trim_end().to_string()));
    }
    ran.sort();
    let mut want: Vec<String> = (0..400).map(|i| format!("j{i}")).collect();
    want.sort();
    assert_eq!(ran, want);
    let all = store.job_list(None, None).unwrap();
    assert!(all.iter().all(|j| j.state == JobState::Completed && j.attempts == 1));
    assert!(store.worker_list(false).unwrap().is_empty(), "workers must mark themselves exited");
}

#[test]
fn a_stop_signal_ends_idle_workers_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let cfgs = vec![WorkerConfig {
        observer: Arc::new(Silent),
        ..WorkerConfig::new(new_worker_id(), "h".into(), 1, dir.path().to_path_buf())
    }];
    let pool = Pool::start(db.to_str().unwrap(), &StoreOptions::default(), cfgs).unwrap();
    assert!(!pool.wait(Duration::from_millis(200)));
    pool.request_stop(StopLevel::Graceful);
    assert!(pool.wait(Duration::from_secs(2)));
    assert_eq!(pool.join().unwrap().completed, 0);
}
