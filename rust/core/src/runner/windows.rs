//! Windows: `cmd.exe /C`, a new process group per job, and a job object for the tree.
//!
//! Not compiled or run on the build machine (no Windows target there); the release
//! workflow builds and smoke-tests it on Windows. Every call here is read against the
//! windows-sys signatures by hand.

use std::os::windows::io::AsRawHandle;
use std::os::windows::process::CommandExt;
use std::process::{Child, Command, ExitStatus};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::Console::{GenerateConsoleCtrlEvent, CTRL_BREAK_EVENT};
use windows_sys::Win32::System::JobObjects::{AssignProcessToJobObject, CreateJobObjectW, TerminateJobObject};

pub(crate) use super::ThreadWaiter as Waiter;

const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;

/// The command that runs `line` with the platform shell; the line is passed verbatim,
/// since cmd.exe does its own parsing.
pub fn shell(line: &str) -> Command {
    let mut c = Command::new("cmd.exe");
    c.arg("/C").raw_arg(line);
    c
}

/// Starts the job in a new process group, so a console Ctrl-C meant for the worker does
/// not reach it, and so Ctrl-Break can be sent to the job alone.
pub fn isolate(c: &mut Command) {
    c.creation_flags(CREATE_NEW_PROCESS_GROUP);
}

/// The job's process tree: a job object holding the shell and everything it starts.
/// A process started in the instant between spawn and assignment escapes the job; the
/// shell has not run its command yet at that point, so in practice nothing does.
pub struct Tree {
    job: HANDLE,
    pid: u32,
}

impl Tree {
    /// A job object holding `child` (and, from now on, its descendants).
    pub fn adopt(child: &Child) -> Tree {
        // SAFETY: null attributes and name are allowed; the returned handle (or null) is
        // ours to close; the child's handle is valid while `child` lives.
        let job = unsafe {
            let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
            if !job.is_null() {
                AssignProcessToJobObject(job, child.as_raw_handle() as HANDLE);
            }
            job
        };
        Tree { job, pid: child.id() }
    }

    /// Asks the tree to end: Ctrl-Break to the job's process group.
    pub fn terminate(&self) {
        // SAFETY: plain value arguments; failure (no shared console) is harmless, the
        // forced kill follows after the grace period.
        unsafe {
            GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, self.pid);
        }
    }

    /// Ends every process in the job now.
    pub fn kill(&self) {
        if !self.job.is_null() {
            // SAFETY: a job handle we created and have not closed.
            unsafe {
                TerminateJobObject(self.job, 1);
            }
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        if !self.job.is_null() {
            // SAFETY: closed once, here. Without KILL_ON_JOB_CLOSE this leaves processes
            // that outlived the shell running, as on POSIX.
            unsafe {
                CloseHandle(self.job);
            }
        }
    }
}

/// The exit code and, for a failure, why: exit code, command not found (cmd.exe's 9009),
/// or a crash (an NTSTATUS error code such as 0xC0000005, an access violation).
pub fn describe(status: &ExitStatus) -> (Option<i32>, Option<String>) {
    // Every process on Windows ends with a 32-bit code, so `code()` is always `Some`.
    let Some(code) = status.code() else {
        return (None, Some("ended without an exit code".into()));
    };
    match code {
        0 => (Some(0), None),
        9009 => (Some(code), Some("command not found (exit code 9009)".into())),
        c if (c as u32) >= 0xC000_0000 => (Some(c), Some(format!("crashed with status 0x{:08X}", c as u32))),
        c => (Some(c), Some(format!("exit code {c}"))),
    }
}
