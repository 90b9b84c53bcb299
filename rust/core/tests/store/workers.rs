//! Workers: registration, heartbeats, stop requests, reaping the silent ones.

use queuectl_core::store::{StopLevel, WorkerState};
use queuectl_core::{Error, JobState};

use super::*;

conformance!(
    heartbeat_renews_the_lease_and_carries_stop_requests,
    silent_workers_are_reaped,
    stop_requests_never_lower_the_level,
);

fn heartbeat_renews_the_lease_and_carries_stop_requests(s: &mut dyn Store) {
    s.worker_register(&reg("w", "host", 1, 30_000, T0)).unwrap();
    s.job_insert_many(&[job("h", 0)], T0).unwrap();
    claim(s, "w", T0);
    assert_eq!(s.worker_heartbeat("w", T0 + 20_000).unwrap().map(|b| b.stop), Some(StopLevel::None));
    assert!(rescue(s, T0 + 40_000).is_empty());
    assert_eq!(s.job_get("h").unwrap().lease_expires_ms, Some(T0 + 50_000));
    let w = &s.worker_list(false).unwrap()[0];
    assert_eq!((w.state.as_str(), w.current_job.as_deref()), ("busy", Some("h")));
    assert_eq!(s.worker_request_stop(StopLevel::Force, Some("elsewhere"), None).unwrap(), 0);
    assert_eq!(s.worker_request_stop(StopLevel::Force, None, None).unwrap(), 1);
    assert_eq!(s.worker_heartbeat("w", T0 + 21_000).unwrap().map(|b| b.stop), Some(StopLevel::Force));
    assert!(s.job_requeue(&fence("h", 1, "w"), T0 + 21_000).unwrap());
    let j = s.job_get("h").unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Pending, 0));
    s.worker_exit("w", T0 + 22_000).unwrap();
    assert!(s.worker_list(false).unwrap().is_empty());
    assert_eq!(s.worker_list(true).unwrap().len(), 1);
}

fn silent_workers_are_reaped(s: &mut dyn Store) {
    s.worker_register(&reg("gone", "host", 1, 1_000, T0)).unwrap();
    assert_eq!(s.worker_reap(T0 + 500).unwrap(), 0);
    assert_eq!(s.worker_reap(T0 + 1_500).unwrap(), 1);
    assert_eq!(s.worker_list(true).unwrap()[0].state, WorkerState::Exited);
    // It comes back (paused, then resumed): its heartbeat says it is not registered, and
    // the heartbeat leaves the exited registration as it was.
    assert_eq!(s.worker_heartbeat("gone", T0 + 2_000).unwrap(), None);
    assert!(s.worker_list(false).unwrap().is_empty());
    // Registering again brings it back, visible and reachable by a stop request.
    s.worker_register(&reg("gone", "host", 2, 1_000, T0 + 2_000)).unwrap();
    let w = &s.worker_list(false).unwrap()[0];
    assert_eq!((w.id.as_str(), w.pid, w.exited_at_ms), ("gone", 2, None));
    assert_eq!(s.worker_request_stop(StopLevel::Graceful, None, None).unwrap(), 1);
    assert_eq!(s.worker_heartbeat("gone", T0 + 2_100).unwrap().map(|b| b.stop), Some(StopLevel::Graceful));
    // A registration that is still running cannot be taken over.
    assert!(matches!(s.worker_register(&reg("gone", "host", 3, 1_000, T0 + 2_200)), Err(Error::InvalidState(_))));
    assert_eq!(s.worker_list(false).unwrap()[0].pid, 2);
}

fn stop_requests_never_lower_the_level(s: &mut dyn Store) {
    s.worker_register(&reg("a", "h1", 1, 30_000, T0)).unwrap();
    s.worker_register(&reg("b", "h2", 2, 30_000, T0)).unwrap();
    assert_eq!(s.worker_request_stop(StopLevel::Force, Some("h1"), None).unwrap(), 1);
    assert_eq!(s.worker_request_stop(StopLevel::Graceful, None, Some("nobody")).unwrap(), 0);
    assert_eq!(s.worker_request_stop(StopLevel::Graceful, None, None).unwrap(), 2);
    let levels: Vec<(String, StopLevel)> =
        s.worker_list(false).unwrap().into_iter().map(|w| (w.id, w.stop_requested)).collect();
    assert!(levels.contains(&("a".to_string(), StopLevel::Force)), "{levels:?}");
    assert!(levels.contains(&("b".to_string(), StopLevel::Graceful)), "{levels:?}");
}
