//! A worker service under the Windows service manager (Wine's, on this machine): installed
//! with the core's own API, started, running jobs from a queue, stopped while a job runs
//! (the job finishes, the service reports stopped), and uninstalled.
#![cfg(windows)]

use std::time::{Duration, Instant};

use queuectl_core::store::{open_store, StoreOptions};
use queuectl_core::winservice::{self, InstallSpec, State as ServiceState};
use queuectl_core::{clock, JobState, NewJob};

fn job(id: &str, command: &str, dir: &std::path::Path) -> NewJob {
    NewJob {
        id: Some(id.into()),
        command: command.into(),
        max_retries: 0,
        priority: 0,
        run_at_ms: clock::now_ms(),
        timeout_ms: 0,
        cwd: dir.to_string_lossy().into_owned(),
        env: Vec::new(),
        queue: queuectl_core::job::DEFAULT_QUEUE.into(),
        unique_key: None,
        after: Vec::new(),
        flow: Default::default(),
    }
}

fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_hosted_service_runs_jobs_and_stops_gracefully_under_the_service_manager() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log_file = dir.path().join("service.log");
    let exe = std::env::current_exe().unwrap();
    let host = exe.parent().unwrap().parent().unwrap().join("examples").join("winsvc_host.exe");
    assert!(host.exists(), "{} is built with the tests", host.display());
    let mut store = open_store(db.to_str().unwrap(), &StoreOptions::default()).unwrap();
    let name = format!("qctltest{}", std::process::id());
    let args = ["run", &name, db.to_str().unwrap(), logs.to_str().unwrap(), log_file.to_str().unwrap(), "30", "2"];
    let notes = winservice::install(&InstallSpec {
        name: name.clone(),
        description: "queuectl test service".into(),
        executable: host,
        arguments: args.iter().map(Into::into).collect(),
        account: Some("LocalSystem".into()),
    })
    .unwrap();
    // Wine's service manager does not take this one setting; Windows does.
    assert!(notes.iter().all(|n| n.contains("non-crash failures")), "{notes:?}");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_eq!(winservice::query(&name).unwrap().0, ServiceState::Stopped, "installed, not started");
        winservice::start(&name).unwrap();
        winservice::wait_for(&name, ServiceState::Running, Duration::from_secs(60)).unwrap();
        assert_eq!(store.worker_list(false).unwrap().len(), 2, "running once both workers are registered");
        let quick: Vec<NewJob> = (0..3).map(|i| job(&format!("q{i}"), "exit 0", dir.path())).collect();
        store.job_insert_many(&quick, clock::now_ms()).unwrap();
        until("the service to run the jobs", Duration::from_secs(60), || {
            (0..3).all(|i| store.job_get(&format!("q{i}")).unwrap().state == JobState::Completed)
        });
        // Stopped while a job runs: the job finishes, then the service reports stopped.
        store.job_insert_many(&[job("long", "ping -n 4 127.0.0.1 > NUL", dir.path())], clock::now_ms()).unwrap();
        until("the long job to start", Duration::from_secs(60), || {
            store.job_get("long").unwrap().state == JobState::Processing
        });
        winservice::stop(&name).unwrap();
        winservice::wait_for(&name, ServiceState::Stopped, Duration::from_secs(60)).unwrap();
        assert_eq!(store.job_get("long").unwrap().state, JobState::Completed);
        assert!(store.worker_list(false).unwrap().is_empty(), "the workers exited");
        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
        assert!(log.contains("stopping: running jobs finish") && log.contains("completed job long"), "{log}");
    }));
    let removed = winservice::uninstall(&name, Duration::from_secs(60));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    removed.unwrap();
    assert!(winservice::query(&name).is_err(), "the service is gone");
}
