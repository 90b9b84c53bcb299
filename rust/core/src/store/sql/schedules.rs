//! Statements on schedules: add, list, the compare-and-set of a firing, pause, resume,
//! remove, and the rows a copy between stores moves. An occurrence's job is inserted by
//! `jobs::SCHEDULED_INSERT`.

use super::Sql;
use crate::store::ScheduleChange;

/// Schedules, by name, with the state of the last job each enqueued: ?1 one name (NULL:
/// all), ?2 only those not paused whose next occurrence is at or before it (NULL: any).
pub(crate) const LIST: Sql = shared!(
    "SELECT s.name, s.cron, s.tz, s.overlap, s.job, CAST(s.paused AS BIGINT), s.next_fire_ms, s.last_fire_ms,
            s.last_job_id, j.state, s.fired, s.skipped, s.created_at_ms, s.updated_at_ms
     FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id
     WHERE (CAST(?1 AS TEXT) IS NULL OR s.name = ?1)
       AND (CAST(?2 AS BIGINT) IS NULL OR (s.paused = 0 AND s.next_fire_ms <= ?2))
     ORDER BY s.name"
);

/// ?1 name, ?2 rule, ?3 zone, ?4 overlap, ?5 job, ?6 next occurrence, ?7 now; no row
/// when the name is taken.
pub(crate) const ADD: Sql = shared!(
    "INSERT INTO schedules (name, cron, tz, overlap, job, next_fire_ms, created_at_ms, updated_at_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT (name) DO NOTHING"
);

/// The compare-and-set of a firing: applies only while the schedule is still due at the
/// occurrence this firer read (?2), so one firer of each occurrence wins (on PostgreSQL the
/// row lock makes a second firer wait, then find next_fire_ms moved on). ?1 name, ?3 next
/// occurrence, ?4 the occurrence, ?5 the job enqueued (NULL: skipped), ?6 1 when fired,
/// ?7 1 when skipped, ?8 now.
pub(crate) const FIRE: Sql = shared!(
    "UPDATE schedules SET next_fire_ms = ?3, last_fire_ms = ?4, last_job_id = coalesce(?5, last_job_id),
         fired = fired + ?6, skipped = skipped + ?7, updated_at_ms = ?8
     WHERE name = ?1 AND next_fire_ms = ?2 AND paused = 0"
);

/// Pauses schedule ?1 at ?2.
pub(crate) const PAUSE: Sql = shared!("UPDATE schedules SET paused = 1, updated_at_ms = ?2 WHERE name = ?1");

/// Resumes schedule ?1 at ?2, its next occurrence ?3.
pub(crate) const RESUME: Sql =
    shared!("UPDATE schedules SET paused = 0, next_fire_ms = ?3, updated_at_ms = ?2 WHERE name = ?1");

/// Removes schedule ?1 (?2, the time, is bound as for the other changes).
pub(crate) const REMOVE: Sql = shared!("DELETE FROM schedules WHERE name = ?1 AND CAST(?2 AS BIGINT) IS NOT NULL");

/// The statement of a schedule change (?1 name, ?2 now, for a resume ?3 the next
/// occurrence), and the value of ?3 when it takes one.
pub(crate) fn change(change: ScheduleChange) -> (Sql, Option<i64>) {
    match change {
        ScheduleChange::Pause => (PAUSE, None),
        ScheduleChange::Resume { next_fire_ms } => (RESUME, Some(next_fire_ms)),
        ScheduleChange::Remove => (REMOVE, None),
    }
}

/// Every schedule as [`COPY`] takes it (a copy between stores; `row::ScheduleCopy`).
pub(crate) const ROWS: Sql = shared!(
    "SELECT name, cron, tz, overlap, job, CAST(paused AS BIGINT), next_fire_ms, last_fire_ms, last_job_id,
            fired, skipped, created_at_ms, updated_at_ms FROM schedules"
);

/// A schedule as a copy writes it (the source's wins over one of the same name): ?1 to
/// ?13 the columns of [`ROWS`].
pub(crate) const COPY: Sql = shared!(
    "INSERT INTO schedules (name, cron, tz, overlap, job, paused, next_fire_ms, last_fire_ms, last_job_id,
                            fired, skipped, created_at_ms, updated_at_ms)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
     ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, tz = excluded.tz, overlap = excluded.overlap,
         job = excluded.job, paused = excluded.paused, next_fire_ms = excluded.next_fire_ms,
         last_fire_ms = excluded.last_fire_ms, last_job_id = excluded.last_job_id, fired = excluded.fired,
         skipped = excluded.skipped, created_at_ms = excluded.created_at_ms, updated_at_ms = excluded.updated_at_ms"
);

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    super::Texts { shared: vec![LIST, ADD, FIRE, PAUSE, RESUME, REMOVE, ROWS, COPY], ..Default::default() }
}
