//! Windows: `cmd.exe /C`, a new process group per job, and `taskkill /T` for the tree.
//!
//! TODO(issue 5, Windows): hold the tree in a job object instead of `taskkill`, which
//! walks parent links and can miss processes whose parent already exited. Not compiled
//! or run here: no Windows target is available on the build machine.

use std::os::windows::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};

pub use super::ThreadWaiter as Waiter;

const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
const CREATE_NO_WINDOW: u32 = 0x0800_0000;

/// The command that runs `line` with the platform shell; the line is passed verbatim,
/// since cmd.exe does its own parsing.
pub fn shell(line: &str) -> Command {
    let mut c = Command::new("cmd.exe");
    c.arg("/C").raw_arg(line);
    c
}

/// Starts the job in a new process group, so a console Ctrl-C meant for the worker does
/// not reach it.
pub fn isolate(c: &mut Command) {
    c.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
}

/// The job's process tree, by the pid of its root.
pub struct Tree {
    pid: u32,
}

impl Tree {
    /// The tree rooted at `child`.
    pub fn adopt(child: &Child) -> Tree {
        Tree { pid: child.id() }
    }

    fn taskkill(&self, force: bool) {
        let mut c = Command::new("taskkill");
        c.args(["/PID", &self.pid.to_string(), "/T"]);
        if force {
            c.arg("/F");
        }
        let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }

    /// Asks the tree to close.
    pub fn terminate(&self) {
        self.taskkill(false);
    }

    /// Ends the whole tree now.
    pub fn kill(&self) {
        self.taskkill(true);
    }
}

/// The exit code and, for a failure, why.
pub fn describe(status: &ExitStatus) -> (Option<i32>, Option<String>) {
    let code = status.code().unwrap_or(status.into_raw() as i32);
    match code {
        0 => (Some(0), None),
        9009 => (Some(code), Some("command not found (exit code 9009)".into())),
        c => (Some(c), Some(format!("exit code {c}"))),
    }
}
