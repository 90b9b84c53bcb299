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
    /// The database could not be opened, read or written, for a reason that may pass
    /// (another writer, a lost connection, a server restart, a full disk): worth retrying.
    Database(String),
    /// A fault of the database that waiting will not heal: a corrupt file, a file that is
    /// not a queuectl database, a read-only database, a file deleted or
    /// replaced under a running worker. The text names the cause and the next step; a
    /// worker that meets one stops instead of retrying.
    Lasting(String),
    /// A file or process operation failed.
    Io(String),
}

/// Result with the core error.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) | Error::InvalidState(m) | Error::Database(m) | Error::Lasting(m) | Error::Io(m) => {
                f.write_str(m)
            }
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

impl Error {
    /// Whether retrying cannot help: the worker stops, and the person reading the line
    /// has to act (run `queuectl check`, restore a backup, free space, upgrade).
    pub fn is_lasting(&self) -> bool {
        matches!(self, Error::Lasting(_) | Error::SchemaTooNew { .. })
    }
}

/// What to do about a broken database file, appended to the errors that name one.
pub const BROKEN_FILE_NEXT_STEP: &str =
    "stop the workers, run `queuectl check`, and restore a backup (`queuectl backup PATH` makes one)";

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        let lasting = matches!(
            &e,
            rusqlite::Error::SqliteFailure(f, _) if matches!(
                f.code,
                ErrorCode::ReadOnly | ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt
            )
        );
        let text = describe_sqlite(&e);
        if lasting {
            Error::Lasting(text)
        } else {
            Error::Database(text)
        }
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
            // SQLITE_READONLY_DBMOVED: SQLite saw the file unlinked or renamed under it.
            ErrorCode::ReadOnly if f.extended_code == 1032 => {
                "the database file was deleted or moved while it was open: start the workers again on the file that is there now".to_string()
            }
            ErrorCode::ReadOnly => format!(
                "the database is read-only ({detail}): give this user write access to the file and its folder"
            ),
            ErrorCode::DiskFull => {
                "the disk holding the database is full: free space (`queuectl purge --completed` helps); running workers wait and go on by themselves".to_string()
            }
            ErrorCode::SystemIoFailure => {
                format!(
                    "cannot read or write the database: the disk may be full, or the file over a size limit ({detail})"
                )
            }
            ErrorCode::CannotOpen => format!("cannot open the database ({detail})"),
            ErrorCode::NotADatabase => {
                format!("the file is not a SQLite database, so not a queuectl one: check --db, or {BROKEN_FILE_NEXT_STEP}")
            }
            ErrorCode::DatabaseCorrupt => format!("the database file is corrupt: {BROKEN_FILE_NEXT_STEP}"),
            _ => format!("database error: {e}"),
        };
    }
    format!("database error: {e}")
}
