//! Files only their owner can read: the database and job logs may hold secrets.
//!
//! On POSIX a new file gets mode 0600; on Windows a new file inherits the ACL of its
//! folder, which the per-user data folder already limits to its owner.

use std::fs::OpenOptions;

/// Open options that create a file readable and writable by its owner only.
pub fn options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// Whether this process may write `path`, asked without opening it.
///
/// Never open and close a database file beside SQLite: on POSIX, closing any descriptor of
/// a file drops every fcntl lock this process holds on it, SQLite's included. Another
/// process may then take the database for unused, checkpoint it and delete its WAL while
/// this one still writes to it, and those writes are lost. (A test that held a lock while a
/// worker started caught exactly that.)
pub fn check_writable(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL in the path"))?;
        // SAFETY: a valid NUL-terminated path; access() only reads it.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        if std::fs::metadata(path)?.permissions().readonly() {
            return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "the file is read-only"));
        }
        Ok(())
    }
}
