//! Windows: `cmd.exe /C` in a hidden console of the job's own, a job object for the tree.
//!
//! Built and tested on Linux under Wine by `scripts/test_windows.sh` (docs/dev/platforms.md);
//! Wine is not Windows, and docs/dev/platforms.md says what that leaves unproven.

use std::os::windows::io::AsRawHandle;
use std::os::windows::process::CommandExt;
use std::process::{Child, Command, ExitStatus};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::JobObjects::{AssignProcessToJobObject, CreateJobObjectW, TerminateJobObject};
use windows_sys::Win32::System::Threading::{CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW};

pub(crate) use super::ThreadWaiter as Waiter;

/// The command that runs `line` with the platform shell.
///
/// `/S` makes cmd.exe take everything between the first and the last quote verbatim, so a
/// line that starts with a quoted path runs as typed; `/D` skips AutoRun commands from the
/// registry, which would run before every job. `chcp 65001` first: cmd's own commands
/// (`echo`, `type`, `dir`) write text in the console's code page, and UTF-8 is the only
/// one that carries every character of a job's text into its log.
pub fn shell(line: &str) -> Command {
    let mut c = Command::new("cmd.exe");
    c.args(["/D", "/S", "/C"]).raw_arg(format!("\"chcp 65001 >nul 2>&1 & {line}\""));
    c
}

/// Starts the job in a hidden console of its own (which is also a process group of its
/// own): a Ctrl-C at the worker's console does not reach it, a detached worker or a
/// service opens no window per job, and the code page set for the job is the job's alone.
pub fn isolate(c: &mut Command) {
    c.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
}

/// The job's process tree: a job object holding the shell and everything it starts.
/// A process started in the instant between spawn and assignment escapes the job; the
/// shell has not run its command yet at that point, so in practice nothing does.
pub struct Tree {
    job: HANDLE,
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
        Tree { job }
    }

    /// Asks the tree to end. Windows has no polite request that reaches a console program
    /// from outside its console (Ctrl-Break only reaches processes sharing the sender's
    /// console, and the job has its own), so this ends the tree at once, as `kill` does.
    pub fn terminate(&self) {
        self.kill();
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
