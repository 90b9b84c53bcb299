//! POSIX: `/bin/sh -c`, a process group per job, signals to the whole group.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};

/// The command that runs `line` with the platform shell.
pub fn shell(line: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(line);
    c
}

/// Puts the job in a process group of its own, so a Ctrl-C at the worker's terminal does
/// not reach it and a kill reaches all of it. `process_group` keeps std on `posix_spawn`.
pub fn isolate(c: &mut Command) {
    c.process_group(0);
}

/// The job's process tree: its process group.
pub struct Tree {
    pgid: libc::pid_t,
}

impl Tree {
    /// The tree rooted at a child started after [`isolate`].
    pub fn adopt(child: &Child) -> Tree {
        Tree {
            pgid: child.id() as libc::pid_t,
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if self.pgid > 1 {
            // SAFETY: killpg has no memory effects; a group that is gone gives ESRCH.
            unsafe {
                libc::killpg(self.pgid, sig);
            }
        }
    }

    /// Asks every process of the tree to end (SIGTERM).
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Ends every process of the tree now (SIGKILL).
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }
}

/// The exit code and, for a failure, why: exit code, command not found, or signal.
pub fn describe(status: &ExitStatus) -> (Option<i32>, Option<String>) {
    match (status.code(), status.signal()) {
        (Some(0), _) => (Some(0), None),
        (Some(127), _) => (Some(127), Some("command not found (exit code 127)".into())),
        (Some(126), _) => (
            Some(126),
            Some("command not executable (exit code 126)".into()),
        ),
        (Some(c), _) => (Some(c), Some(format!("exit code {c}"))),
        (None, Some(s)) => (
            None,
            Some(format!("killed by signal {s} ({})", signal_name(s))),
        ),
        (None, None) => (None, Some("ended without an exit code".into())),
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}
