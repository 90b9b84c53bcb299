//! Schedules: firing as a compare-and-set, skips, pause, resume, remove.

use queuectl_core::{Error, JobState};

use super::*;

conformance!(a_schedule_fires_each_occurrence_once,);

fn a_schedule_fires_each_occurrence_once(s: &mut dyn Store) {
    use queuectl_core::schedule::{new_schedule, occurrence_id};
    use queuectl_core::store::{Fire, ScheduleChange};
    let d = queuectl_core::spec::SpecDefaults { max_retries: 1, timeout_ms: 0, cwd: "/".into(), now_ms: T0 };
    let row = new_schedule("hourly", "@hourly", None, "skip", r#"{"command":"true","queue":"ops"}"#, &d).unwrap();
    s.schedule_add(&row).unwrap();
    let e = s.schedule_add(&row).unwrap_err();
    assert!(matches!(&e, Error::InvalidState(m) if m.contains("exists")), "{e:?}");
    let listed = s.schedule_list(None, None).unwrap();
    assert_eq!(listed, std::slice::from_ref(&row));
    assert!(s.schedule_list(None, Some(row.next_fire_ms - 1)).unwrap().is_empty(), "not due yet");
    assert_eq!(s.schedule_list(None, Some(row.next_fire_ms)).unwrap().len(), 1);
    assert!(s.schedule_list(Some("other"), None).unwrap().is_empty());
    // Two firers of one occurrence: the first enqueues its job, the second changes nothing.
    let occ = row.next_fire_ms;
    let mut job = queuectl_core::spec::parse_one(&row.job, &d).unwrap();
    job.id = Some(occurrence_id("hourly", occ));
    let fire = Fire {
        name: "hourly",
        expected_next_ms: occ,
        occurrence_ms: occ,
        next_fire_ms: occ + 3_600_000,
        job: Some(&job),
        now_ms: occ,
    };
    assert!(s.schedule_fire(&fire).unwrap());
    assert!(!s.schedule_fire(&fire).unwrap());
    let fired = s.job_get(&occurrence_id("hourly", occ)).unwrap();
    assert_eq!((fired.state, fired.queue.as_str(), fired.max_retries), (JobState::Pending, "ops", 1));
    let now = s.schedule_list(Some("hourly"), None).unwrap().pop().unwrap();
    assert_eq!((now.next_fire_ms, now.fired, now.skipped), (occ + 3_600_000, 1, 0));
    assert_eq!((now.last_job_id.as_deref(), now.last_job_state), (fired.id.as_str().into(), Some(JobState::Pending)));
    // A skip moves it on and counts; a paused schedule is not fired and not due.
    let skip = Fire { expected_next_ms: occ + 3_600_000, next_fire_ms: occ + 7_200_000, job: None, ..fire };
    assert!(s.schedule_fire(&skip).unwrap());
    assert_eq!(s.schedule_list(Some("hourly"), None).unwrap()[0].skipped, 1);
    s.schedule_change("hourly", ScheduleChange::Pause, T0).unwrap();
    assert!(s.schedule_list(None, Some(i64::MAX)).unwrap().is_empty());
    let late = Fire { expected_next_ms: occ + 7_200_000, next_fire_ms: occ + 10_800_000, job: None, ..fire };
    assert!(!s.schedule_fire(&late).unwrap());
    s.schedule_change("hourly", ScheduleChange::Resume { next_fire_ms: occ + 36_000_000 }, T0).unwrap();
    let resumed = s.schedule_list(Some("hourly"), None).unwrap().pop().unwrap();
    assert_eq!((resumed.paused, resumed.next_fire_ms), (false, occ + 36_000_000));
    s.schedule_change("hourly", ScheduleChange::Remove, T0).unwrap();
    assert!(s.schedule_list(None, None).unwrap().is_empty());
    let e = s.schedule_change("hourly", ScheduleChange::Pause, T0).unwrap_err();
    assert!(e.to_string().contains("no schedule named"), "{e}");
}
