//! The errors a store gives when a write is refused for what is already stored: a name
//! taken, a name unknown, a unique key held, a worker still registered.

use crate::error::Error;

/// The error for a schedule name taken.
pub(super) fn schedule_exists(name: &str) -> Error {
    Error::InvalidState(format!("a schedule named {name:?} exists (remove it first to replace it)"))
}

/// The error for an unknown schedule name.
pub(super) fn no_schedule(name: &str) -> Error {
    Error::InvalidInput(format!("there is no schedule named {name:?} (see `queuectl schedule list`)"))
}

/// `dead_retry_all`'s error when a dead job's unique key is held by an unfinished job (the
/// stores' constraint errors name the index or the column).
pub(super) fn retry_all_error(e: Error) -> Error {
    let text = e.to_string();
    if text.contains("jobs_unique") || text.contains("jobs.unique_key") {
        return Error::InvalidState(
            "a dead job cannot run again while another unfinished job has its unique_key: \
             nothing was retried (retry the others by id)"
                .into(),
        );
    }
    e
}

/// The error for a change that would make a second unfinished job with one unique key.
pub(super) fn key_taken(id: &str) -> Error {
    Error::InvalidState(format!(
        "job {id:?} cannot run again: another unfinished job has its unique_key (wait for it, or cancel it)"
    ))
}

/// The error for a registration that is still running.
pub(super) fn already_registered(id: &str) -> Error {
    Error::InvalidState(format!("worker {id} is already registered"))
}
