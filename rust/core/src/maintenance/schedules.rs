//! The schedule chore: every due schedule fires its occurrence (a job, or a skip). What an
//! occurrence fires is [`crate::policy::schedule_firing`]'s decision; the store's
//! compare-and-set on the schedule's next occurrence lets one firer win each occurrence.

use super::Round;
use crate::error::Result;
use crate::events::Event;
use crate::policy;
use crate::store::{Fire, ScheduleStore, Store};

/// Fires every schedule due at `now_ms`: the latest occurrence each has reached, as a job
/// whose id is derived from the schedule and the occurrence, or a skip when overlap is
/// `skip` and the previous job is unfinished. Every worker runs this with its heartbeat;
/// the store's compare-and-set lets one of them win each occurrence. Returns what this
/// caller fired: (schedule, job id or None if skipped).
pub fn fire_due(store: &mut (impl ScheduleStore + ?Sized), now_ms: i64) -> Result<Vec<(String, Option<String>)>> {
    let mut fired = Vec::new();
    for row in store.schedule_list(None, Some(now_ms))? {
        let Some((f, job)) = policy::schedule_firing(&row, now_ms)? else { continue };
        let fire = Fire {
            name: &row.name,
            expected_next_ms: row.next_fire_ms,
            occurrence_ms: f.occurrence_ms,
            next_fire_ms: f.next_fire_ms,
            job: job.as_ref(),
            now_ms,
        };
        if store.schedule_fire(&fire)? {
            fired.push((row.name, job.and_then(|j| j.id)));
        }
    }
    Ok(fired)
}

/// The chore: fires what is due and tells the observer of each occurrence it fired.
pub(super) fn chore(store: &mut dyn Store, round: &Round<'_>) -> Result<()> {
    for (schedule, job) in &fire_due(store, round.now_ms)? {
        round.observer.on_event(&Event::Fired { worker: round.worker_id, schedule, job: job.as_deref() });
    }
    Ok(())
}
