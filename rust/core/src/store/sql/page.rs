//! The page query of the dashboard's job list (see `PageFilter`), in its variants: per
//! dialect, per state (or none), with or without a queue, with or without a search text.
//! ?1 limit, ?2 queue, ?3 below this seq, ?4 at or above this seq, ?5 search text ($N on
//! PostgreSQL); a filter not given is bound to NULL and written as a constant test, so
//! that it never keeps an index from being used.
//!
//! Each variant is joined at compile time by `text!` from the named parts below:
//! `SELECT <jobs> FROM <from>`, the queue test, the bounds, the search test, the order.
//! [`sqlite`] and [`postgres`] `match` the filter to its variant. Which pages read through
//! an index and which look through a window of seqs is the stores' choice.

use crate::job::JobState;
use crate::store::row::job_col;

/// The head of every variant.
const SELECT: &str = text!("SELECT ", job_col::LIST, " FROM ");

/// Every job (no state given).
const EVERY_STATE: &str = "jobs WHERE 1 = 1";

/// SQLite's parts.
mod lite {
    pub(super) const ONE_QUEUE: &str = " AND queue = ?2";
    pub(super) const ANY_QUEUE: &str = " AND CAST(?2 AS TEXT) IS NULL";
    pub(super) const BOUNDS: &str = " AND seq < ?3 AND seq >= ?4";
    /// The search: `instr`, SQLite's substring test.
    pub(super) const FOUND: &str = " AND (instr(id, ?5) > 0 OR instr(command, ?5) > 0)";
    pub(super) const ANY_TEXT: &str = " AND CAST(?5 AS TEXT) IS NULL";
    pub(super) const NEWEST_FIRST: &str = " ORDER BY seq DESC LIMIT ?1";
}

/// PostgreSQL's parts.
mod pg {
    pub(super) const ONE_QUEUE: &str = " AND queue = $2";
    pub(super) const ANY_QUEUE: &str = " AND CAST($2 AS TEXT) IS NULL";
    pub(super) const BOUNDS: &str = " AND seq < $3 AND seq >= $4";
    /// The search: `strpos`, PostgreSQL's substring test.
    pub(super) const FOUND: &str = " AND (strpos(id, $5) > 0 OR strpos(command, $5) > 0)";
    pub(super) const ANY_TEXT: &str = " AND CAST($5 AS TEXT) IS NULL";
    pub(super) const NEWEST_FIRST: &str = " ORDER BY seq DESC LIMIT $1";
}

/// The four variants of one `FROM` in the parts of dialect `$d`, by (queue given, search
/// given).
macro_rules! by_filter {
    ($d:ident, ($($from:expr),+), $queue:expr, $search:expr) => {
        match ($queue, $search) {
            (false, false) => text!(SELECT, $($from,)+ $d::ANY_QUEUE, $d::BOUNDS, $d::ANY_TEXT, $d::NEWEST_FIRST),
            (true, false) => text!(SELECT, $($from,)+ $d::ONE_QUEUE, $d::BOUNDS, $d::ANY_TEXT, $d::NEWEST_FIRST),
            (false, true) => text!(SELECT, $($from,)+ $d::ANY_QUEUE, $d::BOUNDS, $d::FOUND, $d::NEWEST_FIRST),
            (true, true) => text!(SELECT, $($from,)+ $d::ONE_QUEUE, $d::BOUNDS, $d::FOUND, $d::NEWEST_FIRST),
        }
    };
}

/// SQLite's page. Dead, cancelled and waiting jobs have partial indexes in seq order (and
/// processing jobs a small one), read through `by_state`'s `WHERE`; pending, failed and
/// completed jobs are read newest first from the table itself (`NOT INDEXED`), as every
/// job is when no state is given.
pub(crate) fn sqlite(state: Option<JobState>, queue: bool, search: bool) -> &'static str {
    use super::by_state as s;
    match state {
        None => by_filter!(lite, (EVERY_STATE), queue, search),
        Some(JobState::Pending) => by_filter!(lite, ("jobs NOT INDEXED WHERE state = 'pending'"), queue, search),
        Some(JobState::Failed) => by_filter!(lite, ("jobs NOT INDEXED WHERE state = 'failed'"), queue, search),
        Some(JobState::Completed) => by_filter!(lite, ("jobs NOT INDEXED WHERE state = 'completed'"), queue, search),
        Some(JobState::Waiting) => by_filter!(lite, ("jobs ", s::WAITING), queue, search),
        Some(JobState::Processing) => by_filter!(lite, ("jobs ", s::PROCESSING), queue, search),
        Some(JobState::Dead) => by_filter!(lite, ("jobs ", s::DEAD), queue, search),
        Some(JobState::Cancelled) => by_filter!(lite, ("jobs ", s::CANCELLED), queue, search),
    }
}

/// PostgreSQL's page: jobs_state (state, seq) holds every state in seq order.
pub(crate) fn postgres(state: Option<JobState>, queue: bool, search: bool) -> &'static str {
    match state {
        None => by_filter!(pg, (EVERY_STATE), queue, search),
        Some(JobState::Waiting) => by_filter!(pg, ("jobs WHERE state = 'waiting'"), queue, search),
        Some(JobState::Pending) => by_filter!(pg, ("jobs WHERE state = 'pending'"), queue, search),
        Some(JobState::Processing) => by_filter!(pg, ("jobs WHERE state = 'processing'"), queue, search),
        Some(JobState::Completed) => by_filter!(pg, ("jobs WHERE state = 'completed'"), queue, search),
        Some(JobState::Failed) => by_filter!(pg, ("jobs WHERE state = 'failed'"), queue, search),
        Some(JobState::Dead) => by_filter!(pg, ("jobs WHERE state = 'dead'"), queue, search),
        Some(JobState::Cancelled) => by_filter!(pg, ("jobs WHERE state = 'cancelled'"), queue, search),
    }
}

/// Every (state, queue given, search given) a page may ask for.
#[cfg(test)]
fn every_filter() -> Vec<(Option<JobState>, bool, bool)> {
    let states = std::iter::once(None).chain(JobState::ALL.into_iter().map(Some));
    states.flat_map(|s| [(s, false, false), (s, true, false), (s, false, true), (s, true, true)]).collect()
}

#[cfg(test)]
pub(super) fn texts() -> super::Texts {
    let filters = every_filter();
    super::Texts {
        shared: Vec::new(),
        sqlite: filters.iter().map(|&(s, q, t)| sqlite(s, q, t)).collect(),
        postgres: filters.iter().map(|&(s, q, t)| postgres(s, q, t)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_tests_what_was_given() {
        for (state, queue, search) in every_filter() {
            for sql in [sqlite(state, queue, search), postgres(state, queue, search)] {
                assert!(sql.starts_with(SELECT) && sql.contains(" AND seq < "), "{sql}");
                assert_eq!(sql.contains("queue = "), queue, "{sql}");
                assert_eq!(sql.contains("(id, "), search, "{sql}");
                let named = state.map(|s| format!("state = '{}'", s.as_str()));
                assert!(named.is_none_or(|n| sql.contains(&n)), "{sql}");
            }
        }
        assert_eq!(
            postgres(Some(JobState::Dead), true, false),
            text!(SELECT, "jobs WHERE state = 'dead' AND queue = $2 AND seq < $3 AND seq >= $4 AND CAST($5 AS TEXT) IS NULL ORDER BY seq DESC LIMIT $1")
        );
    }
}
