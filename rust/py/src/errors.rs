//! The exceptions of `queuectl._core`, and the one place a core error becomes one.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use queuectl_core::Error;

create_exception!(_core, QueuectlError, PyException, "Base of every error queuectl raises.");
create_exception!(_core, InputError, QueuectlError, "Input breaks the job or config contract.");
create_exception!(_core, DuplicateJobError, QueuectlError, "A job with this id already exists.");
create_exception!(_core, JobNotFoundError, QueuectlError, "No job with this id.");
create_exception!(_core, JobStateError, QueuectlError, "The job is not in a state that allows this.");
create_exception!(_core, SchemaError, QueuectlError, "The database was written by a newer queuectl.");
create_exception!(_core, StoreError, QueuectlError, "The database or a file could not be used.");

/// The one place a core error becomes a Python exception.
pub fn py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::InvalidInput(_) => InputError::new_err(msg),
        Error::DuplicateId(_) => DuplicateJobError::new_err(msg),
        Error::NotFound(_) => JobNotFoundError::new_err(msg),
        Error::InvalidState(_) => JobStateError::new_err(msg),
        Error::SchemaTooNew { .. } => SchemaError::new_err(msg),
        Error::Database(_) | Error::Lasting(_) | Error::Io(_) => StoreError::new_err(msg),
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("QueuectlError", py.get_type::<QueuectlError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("DuplicateJobError", py.get_type::<DuplicateJobError>())?;
    m.add("JobNotFoundError", py.get_type::<JobNotFoundError>())?;
    m.add("JobStateError", py.get_type::<JobStateError>())?;
    m.add("SchemaError", py.get_type::<SchemaError>())?;
    m.add("StoreError", py.get_type::<StoreError>())?;
    Ok(())
}
