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
