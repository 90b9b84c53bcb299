//! The SQLite file itself: created owner-only, its identity watched while workers run,
//! and the busy handler that waits for other processes' write locks.

use std::os::raw::{c_int, c_void};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};

/// A file's identity on its filesystem: (device, inode) on POSIX. Windows does not let a
/// file SQLite holds open be deleted or replaced, so there only its presence is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileIdentity {
    #[cfg(unix)]
    dev_ino: (u64, u64),
}

impl FileIdentity {
    /// The identity of the file at `path` now (by `stat`, which opens nothing: see
    /// `private_file::check_writable` for why nothing may open a database beside SQLite).
    pub(super) fn of(path: &Path) -> std::io::Result<FileIdentity> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Ok(FileIdentity { dev_ino: (meta.dev(), meta.ino()) })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Ok(FileIdentity {})
        }
    }

    /// A lasting error when `path` no longer names the file with this identity: it was
    /// deleted (people do `rm qctl.db*` to start over) or replaced (a restore copied over
    /// it). Writes would go on into the unlinked file and be lost, while new jobs went to a
    /// new file that nobody works on.
    pub(super) fn check(self, path: &str) -> Result<()> {
        match FileIdentity::of(Path::new(path)) {
            Ok(now) if now == self => Ok(()),
            Ok(_) => Err(Error::Lasting(format!(
                "the database file {path} was replaced by another file while this worker had it open: \
                 start the workers again to use the new file"
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Lasting(format!(
                "the database file {path} was deleted while this worker had it open: its jobs are gone \
                 unless a backup exists; start the workers again to use a new queue"
            ))),
            // A passing failure of stat itself (a network filesystem): not a verdict.
            Err(_) => Ok(()),
        }
    }
}

/// Creates the database file owner-only before SQLite sees it; SQLite gives its `-wal` and
/// `-shm` files the same permissions.
pub(super) fn create_private(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(Error::Io(format!("the folder {} of the database does not exist", dir.display())));
        }
    }
    if path.exists() {
        // SQLite would only say "unable to open database file"; this names the reason
        // (a read-only filesystem, missing permissions).
        return crate::private_file::check_writable(path)
            .map_err(|e| Error::Io(format!("cannot write the database {}: {e}", path.display())));
    }
    crate::private_file::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(|_| ())
        .map_err(|e| Error::Io(format!("cannot create the database {}: {e}", path.display())))
}

/// Installs the busy handler on `conn` with this connection's own timeout. The timeout
/// travels in the handler's argument itself (as an address-sized integer, not a pointer to
/// anything), so nothing has to outlive the connection.
pub(super) fn install_busy_handler(conn: &Connection, timeout_ms: u64) -> Result<()> {
    let arg = std::ptr::without_provenance_mut::<c_void>(usize::try_from(timeout_ms).unwrap_or(usize::MAX));
    // SAFETY: the handle is this open connection's; the handler never dereferences `arg`.
    let rc = unsafe { rusqlite::ffi::sqlite3_busy_handler(conn.handle(), Some(busy_wait), arg) };
    if rc != rusqlite::ffi::SQLITE_OK {
        return Err(Error::Database(format!("cannot install the busy handler (SQLite code {rc})")));
    }
    Ok(())
}

/// Waits for another process's write lock in short steps (50 us for the first 10 ms, then
/// 1 ms) rather than SQLite's default schedule, whose first waits are already milliseconds.
/// Returns 0 (give up, SQLITE_BUSY) once the connection's timeout, `arg`, has passed.
unsafe extern "C" fn busy_wait(arg: *mut c_void, count: c_int) -> c_int {
    let timeout_ms = arg.addr() as u64;
    let count = u64::try_from(count).unwrap_or(0);
    if count < 200 {
        std::thread::sleep(Duration::from_micros(50));
        return 1;
    }
    if count - 200 >= timeout_ms {
        return 0;
    }
    std::thread::sleep(Duration::from_millis(1));
    1
}
