//! Reading jobs: lists by state, jobs ahead, pages and their cursors.

use queuectl_core::store::PageFilter;
use queuectl_core::{Error, JobState};

use super::*;

conformance!(
    job_list_reads_every_state,
    jobs_ahead_count_what_a_claim_takes_first,
    pages_run_newest_first_and_their_cursors_reach_every_job,
);

fn job_list_reads_every_state(s: &mut dyn Store) {
    one_job_per_state(s);
    s.job_insert_many(&[after("wt", &["p"])], T0).unwrap();
    for (state, id) in [
        (JobState::Waiting, "wt"),
        (JobState::Pending, "p"),
        (JobState::Processing, "r"),
        (JobState::Completed, "c"),
        (JobState::Failed, "f"),
        (JobState::Dead, "d"),
        (JobState::Cancelled, "x"),
    ] {
        let listed: Vec<String> = s.job_list(Some(state), None).unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(listed, [id], "{state}");
        assert!(s.job_list(Some(state), Some(0)).unwrap().is_empty(), "{state}");
    }
    let counts = s.job_count_by_state().unwrap();
    assert_eq!(counts, JobState::ALL.map(|st| (st, 1)).to_vec());
    let all: Vec<String> = s.job_list(None, None).unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(all, ["c", "f", "d", "r", "p", "x", "wt"], "enqueue order");
}

fn jobs_ahead_count_what_a_claim_takes_first(s: &mut dyn Store) {
    let mut later = job("later", 9);
    later.run_at_ms = T0 + 60_000;
    s.job_insert_many(&[job("a", 0), job("b", 5), job("c", 0), later, job("d", 5)], T0).unwrap();
    let ahead = |s: &mut dyn Store, id: &str, now| s.job_ahead(id, now).unwrap();
    // Claim order at T0: b, d (priority 5), then a, c; "later" is not due yet.
    assert_eq!((ahead(s, "b", T0), ahead(s, "d", T0), ahead(s, "a", T0), ahead(s, "c", T0)), (0, 1, 2, 3));
    assert_eq!(ahead(s, "later", T0), 0, "nothing due outranks it");
    assert_eq!(ahead(s, "c", T0 + 60_000), 4, "once due, the priority-9 job is ahead too");
    assert_eq!(claim(s, "w", T0).as_deref(), Some("b"));
    assert_eq!(ahead(s, "c", T0), 2, "a claimed job is no longer ahead");
    assert!(matches!(s.job_ahead("nope", T0), Err(Error::NotFound(_))));
}

fn page_ids(s: &mut dyn Store, f: PageFilter<'_>) -> (Vec<String>, Option<i64>) {
    let page = s.job_page(&f).unwrap();
    (page.jobs.into_iter().map(|j| j.id).collect(), page.next)
}

fn pages_run_newest_first_and_their_cursors_reach_every_job(s: &mut dyn Store) {
    assert_eq!(page_ids(s, PageFilter { limit: 10, ..Default::default() }), (vec![], None));
    let jobs: Vec<NewJob> = (0..7)
        .map(|i| {
            let mut j = queued(&format!("j{i}"), if i % 2 == 0 { "even" } else { "odd" }, 0);
            j.command = format!("echo {}", if i == 3 { "needle" } else { "hay" });
            j.max_retries = 0;
            j
        })
        .collect();
    s.job_insert_many(&jobs, T0).unwrap();
    // Pages of three, newest first, each starting below the last one's oldest job.
    let (first, next) = page_ids(s, PageFilter { limit: 3, ..Default::default() });
    assert_eq!(first, ["j6", "j5", "j4"]);
    let (second, next) = page_ids(s, PageFilter { limit: 3, before: next, ..Default::default() });
    assert_eq!(second, ["j3", "j2", "j1"]);
    let (third, next) = page_ids(s, PageFilter { limit: 3, before: next, ..Default::default() });
    assert_eq!(third, ["j0"]);
    assert_eq!(next, None);
    // Filters: a queue, a state, a search in the command or the id.
    let (odd, _) = page_ids(s, PageFilter { queue: Some("odd"), limit: 10, ..Default::default() });
    assert_eq!(odd, ["j5", "j3", "j1"]);
    assert_eq!(claim(s, "w", T0).as_deref(), Some("j0"));
    settle(s, "j0", 1, "w", T0, false);
    let (dead, _) = page_ids(s, PageFilter { state: Some(JobState::Dead), limit: 10, ..Default::default() });
    assert_eq!(dead, ["j0"]);
    let (pending, _) = page_ids(
        s,
        PageFilter { state: Some(JobState::Pending), queue: Some("even"), limit: 10, ..Default::default() },
    );
    assert_eq!(pending, ["j6", "j4", "j2"]);
    let (found, next) = page_ids(s, PageFilter { search: Some("needle"), limit: 10, ..Default::default() });
    assert_eq!((found, next), (vec!["j3".to_string()], None));
    let (found, _) = page_ids(s, PageFilter { search: Some("j5"), limit: 10, ..Default::default() });
    assert_eq!(found, ["j5"]);
    // Text that means something to SQL is only text here.
    let (none, _) = page_ids(s, PageFilter { search: Some("%' OR 1=1 --"), limit: 10, ..Default::default() });
    assert!(none.is_empty());
}
