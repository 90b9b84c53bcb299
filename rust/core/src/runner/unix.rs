//! POSIX: `/bin/sh -c`, a process group per job, signals to the whole group.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use super::{SharedSink, ThreadWaiter};

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
        Tree { pgid: child.id() as libc::pid_t }
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
        (Some(126), _) => (Some(126), Some("command not executable (exit code 126)".into())),
        (Some(c), _) => (Some(c), Some(format!("exit code {c}"))),
        (None, Some(s)) => (None, Some(format!("killed by signal {s} ({})", signal_name(s)))),
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

/// Waits for the job's shell with a timeout while copying its output into the log. On
/// Linux one `poll` on a pidfd and the output pipe does both without a thread (a job of
/// `true` takes about a millisecond, so a thread per job showed); elsewhere, or on kernels
/// without pidfd_open, a waiting thread and a copying thread.
pub enum Waiter {
    #[cfg(target_os = "linux")]
    PidFd {
        child: Child,
        fd: std::os::fd::OwnedFd,
        output: Option<std::io::PipeReader>,
        sink: SharedSink,
        buf: Vec<u8>,
    },
    Thread(ThreadWaiter),
}

/// How long output is still copied after the shell exits, for what it left in the pipe.
#[cfg(target_os = "linux")]
const DRAIN: Duration = Duration::from_millis(200);

impl Waiter {
    /// Starts waiting for `child` and copying `output` into `sink`.
    pub fn new(child: Child, output: std::io::PipeReader, sink: SharedSink) -> Waiter {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::FromRawFd;
            // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
            if fd >= 0 {
                // SAFETY: the fd was just returned to us and is owned by nothing else.
                let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
                return Waiter::PidFd { child, fd, output: Some(output), sink, buf: vec![0; 64 * 1024] };
            }
        }
        Waiter::Thread(ThreadWaiter::new(child, output, sink))
    }

    /// The exit status, or `None` if the child is still running after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
        match self {
            #[cfg(target_os = "linux")]
            Waiter::PidFd { child, fd, output, sink, buf } => {
                use std::os::fd::AsRawFd;
                let until = std::time::Instant::now() + timeout;
                loop {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    let (exited, _) = poll_two(fd.as_raw_fd(), output, sink, buf, left)?;
                    if exited {
                        let status = child.wait()?;
                        // Whatever the shell wrote is in the pipe now; take what is there
                        // (and what arrives within DRAIN), not what its leftovers write later.
                        let drain_until = std::time::Instant::now() + DRAIN;
                        while output.is_some() {
                            let left = drain_until.saturating_duration_since(std::time::Instant::now());
                            let (_, got) = poll_two(-1, output, sink, buf, left.min(Duration::from_millis(1)))?;
                            if !got || left.is_zero() {
                                break;
                            }
                        }
                        return Ok(Some(status));
                    }
                    if std::time::Instant::now() >= until {
                        return Ok(None);
                    }
                }
            }
            Waiter::Thread(t) => t.wait(timeout),
        }
    }
}

/// One `poll` on the pidfd (skipped when `pidfd` is -1) and the output pipe; copies one
/// read of output into the sink. Returns (the child exited, output was copied).
#[cfg(target_os = "linux")]
fn poll_two(
    pidfd: i32,
    output: &mut Option<std::io::PipeReader>,
    sink: &SharedSink,
    buf: &mut [u8],
    timeout: Duration,
) -> std::io::Result<(bool, bool)> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let pipe_fd = output.as_ref().map_or(-1, |o| o.as_raw_fd());
    // poll ignores entries with a negative fd.
    let mut fds = [
        libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: pipe_fd, events: libc::POLLIN, revents: 0 },
    ];
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: two valid pollfds for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::Interrupted { Ok((false, false)) } else { Err(e) };
    }
    let mut copied = false;
    if fds[1].revents != 0 {
        if let Some(pipe) = output.as_mut() {
            match pipe.read(buf) {
                Ok(0) | Err(_) => *output = None,
                Ok(got) => {
                    // A log that cannot be written (full disk) must not stall the job.
                    let _ = sink.lock().unwrap_or_else(|p| p.into_inner()).write(&buf[..got]);
                    copied = true;
                }
            }
        }
    }
    Ok((fds[0].revents != 0, copied))
}
