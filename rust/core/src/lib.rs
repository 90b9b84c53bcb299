//! queuectl-core: the engine of queuectl, with no Python in it.
//!
//! The store owns every state change of a job, the runner owns child processes, and the
//! worker loop ties them together: claim, run, settle. Callers (the PyO3 extension, tests)
//! resolve configuration and pass plain values in; nothing here reads the environment.

pub mod backoff;
pub mod clock;
pub mod error;
pub mod job;
pub mod jobid;
mod private_file;
pub mod runner;
pub mod spec;
pub mod store;
pub mod worker;

pub use error::{Error, Result};
pub use job::{Attempt, Job, JobState, NewJob};
pub use store::{open_store, Store, StoreOptions};
