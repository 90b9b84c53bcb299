//! queuectl-core: the engine of queuectl, with no Python in it.
//!
//! The stores do fenced reads and writes of jobs, workers and config; `config` holds the
//! config keys with their defaults and checks, `rules` what people may do to jobs; `policy` decides
//! what a settle or a rescue writes; the runner owns child processes; the worker loop ties
//! them together (claim, run, settle) and reports what it does through `events`. Callers
//! (the PyO3 extension, tests) resolve configuration and pass plain values in; nothing here
//! reads the environment.

pub mod backoff;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod job;
pub mod jobid;
pub mod maintenance;
pub mod policy;
mod private_file;
pub mod rules;
pub mod runner;
pub mod schedule;
pub mod spec;
pub mod stats;
pub mod store;
#[cfg(windows)]
pub mod winservice;
pub mod worker;

pub use error::{Error, Result};
pub use job::{Attempt, Job, JobState, NewJob, Outcome};
pub use store::{open_store, Store, StoreOptions};
