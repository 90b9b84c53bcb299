//! The one error type the core returns; the extension maps it to Python exceptions once.

use std::fmt;

/// Everything that can go wrong in the core, worded for the person who reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Input that breaks the job or config contract; the text names the field.
    InvalidInput(String),
    /// A job with this id already exists.
    DuplicateId(String),
    /// No job with this id.
    NotFound(String),
    /// The job exists but is not in a state that allows the operation.
    InvalidState(String),
    /// The database was written by a newer queuectl.
    SchemaTooNew { found: i64, supported: i64 },
    /// The database could not be opened, read or written.
    Database(String),
    /// A file or process operation failed.
    Io(String),
    /// The feature exists in the contract but not in this build.
    Unsupported(String),
}

/// Result with the core error.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m)
            | Error::InvalidState(m)
            | Error::Database(m)
            | Error::Io(m)
            | Error::Unsupported(m) => f.write_str(m),
            Error::DuplicateId(id) => write!(f, "a job with id {id:?} already exists"),
            Error::NotFound(id) => write!(f, "no job with id {id:?}"),
            Error::SchemaTooNew { found, supported } => write!(
                f,
                "the database has schema version {found}, but this queuectl knows only up to \
                 {supported}; upgrade queuectl to open it"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(describe_sqlite(&e))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// Turns a SQLite error into a sentence a user can act on.
fn describe_sqlite(e: &rusqlite::Error) -> String {
    use rusqlite::ffi::ErrorCode;
    if let rusqlite::Error::SqliteFailure(f, msg) = e {
        let detail = msg.clone().unwrap_or_default();
        return match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                format!("the database is locked by another process ({detail})")
            }
            ErrorCode::ReadOnly => format!("the database is read-only ({detail})"),
            ErrorCode::DiskFull => "the disk holding the database is full".to_string(),
            ErrorCode::SystemIoFailure => {
                format!(
                    "cannot read or write the database: the disk may be full, or the file over a size limit ({detail})"
                )
            }
            ErrorCode::CannotOpen => format!("cannot open the database ({detail})"),
            ErrorCode::NotADatabase => "the file is not a queuectl database".to_string(),
            ErrorCode::DatabaseCorrupt => "the database file is corrupt".to_string(),
            _ => format!("database error: {e}"),
        };
    }
    format!("database error: {e}")
}
