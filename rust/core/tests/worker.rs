//! Worker threads racing over one store (a SQLite file, a PostgreSQL schema): every job
//! runs exactly once. On Unix and, under Wine, on Windows.

mod common;

use std::time::Duration;

use std::sync::Arc;

use queuectl_core::clock::ManualClock;
use queuectl_core::events::{CounterSnapshot, Counters, Silent};
use queuectl_core::store::{open_store, ByIdChange, ByIdParams, ClaimParams, StopLevel, StoreOptions};
use queuectl_core::worker::{new_worker_id, Pool, WorkerConfig};
use queuectl_core::{clock, JobState, NewJob};

/// A job running `command` in `dir`, due at once, in the default queue.
fn shell_job(id: &str, command: &str, max_retries: u32, dir: &tempfile::TempDir) -> NewJob {
    NewJob {
        id: Some(id.into()),
        command: command.into(),
        max_retries,
        priority: 0,
        run_at_ms: 0,
        timeout_ms: 0,
        cwd: dir.path().display().to_string(),
        env: Vec::new(),
        queue: queuectl_core::job::DEFAULT_QUEUE.into(),
        unique_key: None,
        after: Vec::new(),
        flow: Default::default(),
    }
}

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
    let jobs: Vec<NewJob> = (0..400).map(|i| shell_job(&format!("j{i}"), &record, 0, dir)).collect();
    store.job_insert_many(&jobs, clock::now_ms()).unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let mut completed = run_pool(location, dir, 4);
    // Under Wine, about one process start in a few thousand fails (CreateProcess error 1359,
    // or cmd exiting 9009 "not found" for itself); the worker rightly records the job dead
    // with the cause, and nothing of the job ran. Those jobs are retried here, at most three
    // rounds, so the test still proves what it is for: no job ever runs twice.
    for _ in 0..3 {
        let lost: Vec<String> = store
            .job_list(Some(JobState::Dead), None)
            .unwrap()
            .into_iter()
            .filter(|j| cfg!(windows) && is_wine_start_failure(j.exit_code, j.last_error.as_deref()))
            .map(|j| j.id)
            .collect();
        if lost.is_empty() {
            break;
        }
        eprintln!("Wine failed to start {lost:?}; running them again");
        assert_eq!(store.dead_retry(&lost, clock::now_ms()).unwrap(), lost.len() as u64);
        completed += run_pool(location, dir, 1);
    }
    let unfinished: Vec<String> = store
        .job_list(None, None)
        .unwrap()
        .into_iter()
        .filter(|j| j.state != JobState::Completed)
        .map(|j| format!("{} {:?} exit {:?}: {:?}", j.id, j.state, j.exit_code, j.last_error))
        .collect();
    assert_eq!(completed, 400, "{unfinished:?}");
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

/// Runs `count` burst workers on `location` until no job is left; returns how many completed.
fn run_pool(location: &str, dir: &tempfile::TempDir, count: usize) -> u64 {
    let cfgs = (0..count)
        .map(|_| WorkerConfig {
            burst: true,
            observer: Arc::new(Silent),
            ..WorkerConfig::new(new_worker_id(), "test".into(), std::process::id(), dir.path().join("logs"))
        })
        .collect();
    let pool = Pool::start(location, &StoreOptions { durable: false, ..Default::default() }, cfgs).unwrap();
    assert!(pool.wait(Duration::from_secs(120)), "workers did not finish");
    pool.join().unwrap().completed
}

/// Wine's two ways of failing to start a process, as a dead job records them.
fn is_wine_start_failure(exit_code: Option<i32>, error: Option<&str>) -> bool {
    let error = error.unwrap_or("");
    error.contains("os error 1359") || (exit_code == Some(9009) && error.contains("command not found"))
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

/// A burst worker on `db` with `clock`, counting its events; returns the counts.
fn run_burst(db: &std::path::Path, logs: &std::path::Path, clock: Arc<ManualClock>) -> CounterSnapshot {
    let counters = Arc::new(Counters::default());
    let cfg = WorkerConfig {
        burst: true,
        heartbeat_ms: 0,
        observer: counters.clone(),
        clock,
        ..WorkerConfig::new(new_worker_id(), "h".into(), 1, logs.to_path_buf())
    };
    let pool = Pool::start(db.to_str().unwrap(), &StoreOptions::default(), vec![cfg]).unwrap();
    assert!(pool.wait(Duration::from_secs(60)), "the burst worker did not finish");
    pool.join().unwrap();
    counters.snapshot()
}

#[test]
fn a_worker_writes_the_time_of_its_clock() {
    // The clock is fixed far from the real time: every time the worker writes (the claim,
    // the settle, the retry's backoff) must come from it.
    const T: i64 = 1_900_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let mut store = open_store(db.to_str().unwrap(), &StoreOptions::default()).unwrap();
    let fails = shell_job("fails", "exit 3", 1, &dir);
    store.job_insert_many(&[fails], T).unwrap();
    let clock = Arc::new(ManualClock::at(T));
    let counts = run_burst(&db, dir.path(), Arc::clone(&clock));
    assert_eq!((counts.started, counts.retried, counts.dead), (1, 1, 0));
    let j = store.job_get("fails").unwrap();
    assert_eq!((j.state, j.run_at_ms, j.finished_at_ms, j.exit_code), (JobState::Failed, T + 2_000, Some(T), Some(3)));
    let history = store.job_attempts("fails").unwrap();
    assert_eq!((history[0].started_at_ms, history[0].finished_at_ms), (Some(T), T));
    // Not due until the clock reaches the backoff: a burst worker then finds nothing.
    clock.set(T + 1_999);
    assert_eq!(run_burst(&db, dir.path(), Arc::clone(&clock)).started, 0);
    // At the backoff's end the second (last) attempt runs and the job dies.
    clock.set(T + 2_000);
    let counts = run_burst(&db, dir.path(), clock);
    assert_eq!((counts.started, counts.dead), (1, 1));
    assert_eq!(store.job_get("fails").unwrap().state, JobState::Dead);
}

#[test]
fn a_worker_rescues_a_lost_workers_job_when_its_clock_passes_the_lease() {
    const T: i64 = 1_900_000_000_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let mut store = open_store(db.to_str().unwrap(), &StoreOptions::default()).unwrap();
    let job = shell_job("orphan", "true", 3, &dir);
    store.job_insert_many(&[job], T).unwrap();
    let claim = ClaimParams {
        worker_id: "ghost",
        now_ms: T,
        lease_ms: 30_000,
        queues: None,
        after_queue: None,
        max_slots: u32::MAX,
    };
    assert!(store.job_claim(&claim).unwrap().is_some());
    // Inside the lease the job is left alone.
    let counts = run_burst(&db, dir.path(), Arc::new(ManualClock::at(T + 29_000)));
    assert_eq!((counts.rescued, counts.started), (0, 0));
    assert_eq!(store.job_get("orphan").unwrap().state, JobState::Processing);
    // Past it, the first heartbeat rescues it as a failed attempt with a backoff.
    let counts = run_burst(&db, dir.path(), Arc::new(ManualClock::at(T + 31_000)));
    assert_eq!(counts.rescued, 1);
    let j = store.job_get("orphan").unwrap();
    assert_eq!((j.state, j.run_at_ms), (JobState::Failed, T + 33_000));
    assert!(j.last_error.unwrap().contains("ghost was lost"));
}

#[test]
fn a_running_job_cancelled_is_killed_within_a_heartbeat_and_not_retried_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    cancel_while_running(dir.path().join("q.db").to_str().unwrap(), &dir);
}

#[test]
fn a_running_job_cancelled_is_killed_within_a_heartbeat_and_not_retried_on_postgres() {
    let Some(schema) = common::PgSchema::create() else { return };
    cancel_while_running(&schema.url, &tempfile::tempdir().unwrap());
}

/// A job that would run a minute, with retries left, is cancelled from another
/// connection while it runs: its worker kills it at its next heartbeat (here every 100 ms)
/// and settles it cancelled, with no retry, and goes on with the next job.
fn cancel_while_running(location: &str, dir: &tempfile::TempDir) {
    let long = if cfg!(windows) { "ping -n 60 127.0.0.1 > NUL" } else { "sleep 60" };
    let job = |id: &str, command: &str| shell_job(id, command, 3, dir);
    let mut store = open_store(location, &StoreOptions::default()).unwrap();
    store.job_insert_many(&[job("long", long), job("next", "exit 0")], clock::now_ms()).unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let counters = Arc::new(Counters::default());
    let cfg = WorkerConfig {
        heartbeat_ms: 100,
        kill_grace_ms: 500,
        observer: Arc::clone(&counters) as Arc<dyn queuectl_core::events::Observer>,
        ..WorkerConfig::new(new_worker_id(), "test".into(), std::process::id(), dir.path().join("logs"))
    };
    let pool = Pool::start(location, &StoreOptions { durable: false, ..Default::default() }, vec![cfg]).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while store.job_get("long").unwrap().state != JobState::Processing {
        assert!(std::time::Instant::now() < until, "the job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let asked = std::time::Instant::now();
    let ids = ["long".to_string()];
    let change = ByIdParams { ids: &ids, change: ByIdChange::Cancel, now_ms: clock::now_ms() };
    assert_eq!(store.job_change_by_id(&change).unwrap(), 1);
    while store.job_get("long").unwrap().state == JobState::Processing {
        assert!(asked.elapsed() < Duration::from_secs(20), "the cancelled job is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = asked.elapsed();
    let j = store.job_get("long").unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Cancelled, 1));
    assert!(j.last_error.as_deref().unwrap_or("").contains("cancelled"), "{:?}", j.last_error);
    let history = store.job_attempts("long").unwrap();
    assert_eq!(history.iter().map(|a| a.outcome).collect::<Vec<_>>(), [queuectl_core::Outcome::Cancelled]);
    // A polite signal ends `sleep` at once; the forced kill would come 500 ms later.
    if !cfg!(windows) {
        assert!(took < Duration::from_secs(3), "killed {took:?} after the cancel");
    }
    while store.job_get("next").unwrap().state != JobState::Completed {
        assert!(asked.elapsed() < Duration::from_secs(30), "the next job did not run");
        std::thread::sleep(Duration::from_millis(20));
    }
    pool.request_stop(StopLevel::Graceful);
    assert!(pool.wait(Duration::from_secs(10)));
    let summary = pool.join().unwrap();
    assert_eq!((summary.cancelled, summary.completed, summary.failed), (1, 1, 0));
    assert_eq!((counters.snapshot().cancelled, counters.snapshot().started), (1, 2));
    eprintln!("cancel to settled: {took:?}");
}

#[test]
fn three_workers_fire_each_occurrence_once_as_the_clock_moves_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    schedules_fire_once(db.to_str().unwrap(), &dir);
}

#[test]
fn three_workers_fire_each_occurrence_once_as_the_clock_moves_on_postgres() {
    let Some(schema) = common::PgSchema::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    schedules_fire_once(&schema.url, &dir);
}

/// Three worker pools (as three processes on three hosts would) share a clock that the
/// test moves: a minute at a time, every occurrence is enqueued exactly once; after an
/// hour's gap, only the latest missed one; a schedule whose job still runs skips.
fn schedules_fire_once(location: &str, dir: &tempfile::TempDir) {
    use queuectl_core::schedule::{new_schedule, occurrence_id};
    use queuectl_core::spec::SpecDefaults;
    const MINUTE: i64 = 60_000;
    const T: i64 = 1_900_000_000_000 / MINUTE * MINUTE;
    let long = if cfg!(windows) { "ping -n 60 127.0.0.1 > NUL" } else { "sleep 60" };
    let clock = Arc::new(ManualClock::at(T + 1));
    let mut store = open_store(location, &StoreOptions::default()).unwrap();
    let cwd = dir.path().to_str().unwrap().to_string();
    let d = SpecDefaults { max_retries: 0, timeout_ms: 0, cwd, now_ms: T + 1 };
    for (name, overlap, command) in [("tick", "allow", "exit 0"), ("slow", "skip", long)] {
        let job = serde_json::json!({ "command": command }).to_string();
        store.schedule_add(&new_schedule(name, "@every 1m", None, overlap, &job, &d).unwrap()).unwrap();
    }
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let pools: Vec<Pool> = (0..3)
        .map(|h| {
            let cfg = WorkerConfig {
                heartbeat_ms: 10,
                // Longer than the clock's jumps: a running job's lease must not run out.
                lease_ms: 3 * 3_600_000,
                clock: Arc::clone(&clock) as Arc<dyn queuectl_core::clock::Clock>,
                observer: Arc::new(Silent),
                ..WorkerConfig::new(new_worker_id(), format!("host{h}"), std::process::id(), dir.path().join("logs"))
            };
            Pool::start(location, &StoreOptions { durable: false, ..Default::default() }, vec![cfg]).unwrap()
        })
        .collect();
    let next_fire = |store: &mut Box<dyn queuectl_core::Store>, name: &str| {
        store.schedule_list(Some(name), None).unwrap().pop().unwrap().next_fire_ms
    };
    let moved_to = |store: &mut Box<dyn queuectl_core::Store>, minute: i64| {
        clock.set(T + minute * MINUTE + 1);
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while next_fire(store, "tick") != T + (minute + 1) * MINUTE
            || next_fire(store, "slow") != T + (minute + 1) * MINUTE
        {
            assert!(std::time::Instant::now() < until, "minute {minute} was not fired");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for minute in 1..=5 {
        moved_to(&mut store, minute);
    }
    moved_to(&mut store, 65);
    let mut ticks: Vec<String> =
        store.job_list(None, None).unwrap().into_iter().map(|j| j.id).filter(|id| id.starts_with("tick-")).collect();
    ticks.sort();
    let want: Vec<String> = [1, 2, 3, 4, 5, 65].iter().map(|m| occurrence_id("tick", T + m * MINUTE)).collect();
    assert_eq!(ticks, want, "each occurrence once; of the gap, only the latest");
    let tick = store.schedule_list(Some("tick"), None).unwrap().pop().unwrap();
    assert_eq!((tick.fired, tick.skipped, tick.last_fire_ms), (6, 0, Some(T + 65 * MINUTE)));
    // The first slow job still runs: every later occurrence was skipped, and counted.
    let slow = store.schedule_list(Some("slow"), None).unwrap().pop().unwrap();
    assert_eq!((slow.fired, slow.skipped), (1, 5));
    assert_eq!(slow.last_job_id, Some(occurrence_id("slow", T + MINUTE)));
    assert_eq!(slow.last_job_state, Some(JobState::Processing));
    for pool in &pools {
        pool.request_stop(StopLevel::Force);
    }
    for pool in pools {
        assert!(pool.wait(Duration::from_secs(20)));
        pool.join().unwrap();
    }
}
