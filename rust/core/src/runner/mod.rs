//! Runs one attempt of a job: the platform shell in its own process group (job object on
//! Windows), its output copied through a pipe into the job's log file (capped, created with
//! the first output), a timeout that takes down the whole tree, and a tick callback
//! through which the worker heartbeats and can kill.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Stdio;
use std::process::{Child, ExitStatus};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock;
use crate::error::{Error, Result};

/// How much of the end of an attempt's output is kept in the database.
pub const TAIL_BYTES: u64 = 4096;

/// Output kept in the log per attempt when config `log-max-bytes` is unset (its default).
pub const DEFAULT_LOG_MAX_BYTES: u64 = crate::config::LOG_MAX_BYTES.default as u64;

/// One attempt to run.
#[derive(Clone)]
pub struct RunSpec<'a> {
    pub command: &'a str,
    pub cwd: &'a Path,
    /// Added to the worker's environment, in order (a later entry wins).
    pub env: Vec<(String, String)>,
    pub log_path: &'a Path,
    pub attempt: u32,
    /// 0 means no timeout.
    pub timeout_ms: u64,
    /// Between the polite signal and the forced kill.
    pub kill_grace_ms: u64,
    /// Most output bytes kept in the log per attempt, the newest; 0 keeps everything.
    pub log_max_bytes: u64,
}

/// Commands and environments may hold secrets: Debug shows their sizes and the names only.
impl std::fmt::Debug for RunSpec<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSpec")
            .field("command", &format_args!("<{} bytes>", self.command.len()))
            .field("cwd", &self.cwd)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("log_path", &self.log_path)
            .field("attempt", &self.attempt)
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

/// What the tick callback tells the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Kill the job's tree now; the attempt will not count.
    Kill,
    /// Kill the job's tree now: the job was cancelled.
    Cancel,
    /// Kill the job's tree now, the forced kill after the given grace (shorter than the
    /// usual one): the worker could not renew its lease, and the tree must be gone before
    /// the lease runs out and another worker may run the job.
    LeaseLost(Duration),
}

/// How an attempt ended, in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Exited 0.
    Succeeded,
    /// Exited otherwise, was killed by a signal, or could not start.
    Failed,
    /// Ran past its timeout and was killed.
    TimedOut,
    /// The tick callback asked for a kill: the attempt does not count.
    KilledOnRequest,
    /// Killed because the job was cancelled.
    Cancelled,
    /// Killed because the worker could not renew its lease: nothing of it is recorded.
    LeaseLost,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub end: RunEnd,
    pub exit_code: Option<i32>,
    /// Why it failed, in words; `None` on success.
    pub error: Option<String>,
    pub output_tail: String,
    pub duration_ms: u64,
}

impl RunOutcome {
    /// Whether the job succeeded (exit code 0).
    pub fn success(&self) -> bool {
        self.end == RunEnd::Succeeded
    }

    /// Whether the tick callback asked for the kill that ended it.
    pub fn killed_on_request(&self) -> bool {
        self.end == RunEnd::KilledOnRequest
    }

    /// Whether it was killed because the job was cancelled.
    pub fn cancelled(&self) -> bool {
        self.end == RunEnd::Cancelled
    }

    /// Whether it was killed because the worker could not renew its lease.
    pub fn lease_lost(&self) -> bool {
        self.end == RunEnd::LeaseLost
    }

    /// An attempt that failed before its command could run.
    pub fn not_run(error: String, duration_ms: u64) -> RunOutcome {
        RunOutcome { end: RunEnd::Failed, exit_code: None, error: Some(error), output_tail: String::new(), duration_ms }
    }
}

/// Why the runner is taking a job's tree down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillReason {
    Timeout,
    Request,
    Cancel,
    LeaseLost,
}

/// Where a kill stands: the polite signal sent, the forced kill due at `force_at`.
#[derive(Debug, Clone, Copy)]
enum Kill {
    NotYet,
    Terminated { why: KillReason, force_at: Instant },
    Forced { why: KillReason },
}

impl Kill {
    fn reason(self) -> Option<KillReason> {
        match self {
            Kill::NotYet => None,
            Kill::Terminated { why, .. } | Kill::Forced { why } => Some(why),
        }
    }
}

fn open_log(path: &Path) -> Result<File> {
    crate::private_file::options()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(|e| Error::Io(format!("cannot open the log file {}: {e}", path.display())))
}

/// The last `TAIL_BYTES` written to `log` after offset `from`, as text.
fn read_tail(log: &mut File, from: u64) -> String {
    let end = log.seek(SeekFrom::End(0)).unwrap_or(from);
    let start = from.max(end.saturating_sub(TAIL_BYTES));
    let mut buf = vec![0; (end - start) as usize];
    if log.seek(SeekFrom::Start(start)).is_err() || log.read_exact(&mut buf).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn failure(error: String, started: Instant) -> RunOutcome {
    RunOutcome::not_run(error, started.elapsed().as_millis() as u64)
}

/// Runs one attempt to its end, calling `tick` at least every `tick_every` while it runs.
/// Errors are only those of the log file; everything that goes wrong with the job itself
/// is a failed outcome.
pub fn run(spec: &RunSpec<'_>, tick_every: Duration, tick: &mut dyn FnMut() -> Control) -> Result<RunOutcome> {
    let started = Instant::now();
    let header = format!(
        "=== attempt {} at {} in {}\n$ {}\n",
        spec.attempt,
        clock::format_iso8601(clock::now_ms()),
        spec.cwd.display(),
        spec.command
    );
    let sink = Arc::new(Mutex::new(LogSink::new(spec.log_path, header, spec.log_max_bytes)?));
    let mut outcome = if !spec.cwd.is_dir() {
        failure(format!("the working directory {} does not exist", spec.cwd.display()), started)
    } else {
        match spawn_and_wait(spec, Arc::clone(&sink), started, tick_every, tick) {
            Ok(o) => o,
            Err(e) => failure(format!("cannot start the command: {e}"), started),
        }
    };
    let result = outcome.error.clone().unwrap_or_else(|| "exit code 0".to_string());
    let footer = format!("=== {result} after {:.3}s\n", outcome.duration_ms as f64 / 1000.0);
    outcome.output_tail = sink.lock().unwrap_or_else(|p| p.into_inner()).finish(&footer);
    Ok(outcome)
}

fn spawn_and_wait(
    spec: &RunSpec<'_>,
    sink: SharedSink,
    started: Instant,
    tick_every: Duration,
    tick: &mut dyn FnMut() -> Control,
) -> std::io::Result<RunOutcome> {
    // stdout and stderr share one pipe that this process copies into the log, so that the
    // log can be capped (keeping the newest output) and a job writing gigabytes costs no
    // memory; the write ends are closed here as soon as the child has them.
    let (output, writer) = std::io::pipe()?;
    let mut cmd = platform::shell(spec.command);
    cmd.current_dir(spec.cwd).stdin(Stdio::null()).stdout(writer.try_clone()?).stderr(writer);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    platform::isolate(&mut cmd);
    let child = cmd.spawn();
    drop(cmd);
    let child = child?;
    let tree = platform::Tree::adopt(&child);
    let mut waiter = platform::Waiter::new(child, output, sink);
    let deadline = (spec.timeout_ms > 0).then(|| started + Duration::from_millis(spec.timeout_ms));
    let grace = Duration::from_millis(spec.kill_grace_ms);
    let mut kill = Kill::NotYet;
    let status = loop {
        let now = Instant::now();
        let until = match kill {
            Kill::NotYet => deadline,
            Kill::Terminated { force_at, .. } => Some(force_at),
            Kill::Forced { .. } => None,
        };
        let wait = until.map_or(tick_every, |u| tick_every.min(u.saturating_duration_since(now)));
        if let Some(status) = waiter.wait(wait)? {
            break status;
        }
        let now = Instant::now();
        kill = match kill {
            Kill::Terminated { why, force_at } if now >= force_at => {
                tree.kill();
                Kill::Forced { why }
            }
            Kill::NotYet if deadline.is_some_and(|d| now >= d) => {
                tree.terminate();
                Kill::Terminated { why: KillReason::Timeout, force_at: now + grace }
            }
            Kill::NotYet => match tick() {
                Control::Continue => Kill::NotYet,
                Control::Kill => {
                    tree.terminate();
                    Kill::Terminated { why: KillReason::Request, force_at: now + grace }
                }
                Control::Cancel => {
                    tree.terminate();
                    Kill::Terminated { why: KillReason::Cancel, force_at: now + grace }
                }
                Control::LeaseLost(grace) => {
                    tree.terminate();
                    Kill::Terminated { why: KillReason::LeaseLost, force_at: now + grace }
                }
            },
            other => other,
        };
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let (exit_code, error) = platform::describe(&status);
    let (end, error) = match kill.reason() {
        None if error.is_none() => (RunEnd::Succeeded, None),
        None => (RunEnd::Failed, error),
        Some(why) => {
            // Whatever the shell left behind in its group goes with it when we killed it.
            tree.kill();
            match why {
                KillReason::Request => (RunEnd::KilledOnRequest, Some("killed on request (stop --force)".to_string())),
                KillReason::Cancel => (RunEnd::Cancelled, Some(format!("killed: {}", crate::store::CANCELLED_ERROR))),
                KillReason::LeaseLost => {
                    (RunEnd::LeaseLost, Some("killed: the worker could not renew its lease".to_string()))
                }
                KillReason::Timeout => {
                    (RunEnd::TimedOut, Some(format!("timed out after {}s", spec.timeout_ms as f64 / 1000.0)))
                }
            }
        }
    };
    Ok(RunOutcome { end, exit_code, error, output_tail: String::new(), duration_ms })
}

/// Waits for a child with a timeout on any platform: a thread blocks in `wait` and hands
/// the status over a channel. Platforms with something cheaper (Linux: pidfd) use that.
pub(crate) struct ThreadWaiter {
    rx: mpsc::Receiver<std::io::Result<ExitStatus>>,
    pumped: mpsc::Receiver<()>,
}

impl ThreadWaiter {
    /// Waits for `child` on one thread and copies `output` into `sink` on another.
    pub(crate) fn new(mut child: Child, output: std::io::PipeReader, sink: SharedSink) -> ThreadWaiter {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let (done, pumped) = mpsc::channel();
        std::thread::spawn(move || {
            pump(output, sink);
            let _ = done.send(());
        });
        ThreadWaiter { rx, pumped }
    }

    /// The exit status, or `None` if the child is still running after `timeout`.
    pub(crate) fn wait(&mut self, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
        match self.rx.recv_timeout(timeout) {
            Ok(status) => {
                // The shell's own output is all in the pipe by now; processes it left behind
                // may hold the pipe open, so wait for the copy only briefly.
                let _ = self.pumped.recv_timeout(Duration::from_millis(200));
                status.map(Some)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(std::io::Error::other("lost track of the job process")),
        }
    }
}

/// Where a job's output goes: appended to its log file, at most `cap` bytes of it kept.
///
/// The file is created only when the job first writes something: a new file costs more
/// kernel time than starting `sh -c true` on some filesystems, and a job that prints
/// nothing needs none (its attempt is in the database all the same). Once a job has a
/// log, every later attempt writes its header and footer there too.
///
/// The file may hold up to twice the cap; past that, the newest `cap` bytes are moved to
/// the start of the attempt's output, after a line saying how much was dropped. Memory
/// stays at one copy buffer whatever the job writes.
pub(crate) struct LogSink {
    file: Option<File>,
    path: std::path::PathBuf,
    header: String,
    body_start: u64,
    body_len: u64,
    cap: u64,
    dropped: u64,
    /// Why the log could not be written (a full disk, a file size limit): from then on the
    /// output is drained and dropped, and the kept tail says so.
    failed: Option<String>,
    /// The length of the "dropped" line at the start of the body (0 before the first
    /// compaction): part of the body, not of the output.
    marker_len: u64,
}

/// The sink, shared by the runner and whatever copies the output.
pub(crate) type SharedSink = Arc<Mutex<LogSink>>;

const COPY_CHUNK: usize = 64 * 1024;

impl LogSink {
    /// A sink for one attempt; opens the log now only if the job already has one.
    fn new(path: &Path, header: String, cap: u64) -> Result<LogSink> {
        let mut sink = LogSink {
            file: None,
            path: path.to_path_buf(),
            header,
            body_start: 0,
            body_len: 0,
            cap,
            dropped: 0,
            failed: None,
            marker_len: 0,
        };
        if path.exists() {
            if let Err(e) = sink.open() {
                sink.failed = Some(e.to_string());
            }
        }
        Ok(sink)
    }

    fn open(&mut self) -> Result<&mut File> {
        if self.file.is_none() {
            let mut file = open_log(&self.path)?;
            file.write_all(self.header.as_bytes())?;
            self.body_start = file.seek(SeekFrom::End(0))?;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Appends output, compacting when the attempt's output passes twice the cap.
    pub(crate) fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.failed.is_some() {
            return Ok(());
        }
        let written = self.open().map_err(|e| std::io::Error::other(e.to_string())).and_then(|f| f.write_all(data));
        if let Err(e) = written {
            self.failed = Some(e.to_string());
            return Err(e);
        }
        self.body_len += data.len() as u64;
        if self.cap > 0 && self.body_len - self.marker_len > 2 * self.cap {
            if let Err(e) = self.compact() {
                self.failed = Some(e.to_string());
                return Err(e);
            }
        }
        Ok(())
    }

    fn compact(&mut self) -> std::io::Result<()> {
        let keep = self.cap;
        // The previous compaction's line is not output: it is not counted as dropped.
        self.dropped += self.body_len - self.marker_len - keep;
        let marker = format!("[queuectl: {:>20} earlier bytes of output dropped: log-max-bytes]\n", self.dropped);
        // A second handle without O_APPEND, whose writes go where it seeks.
        let mut rw = std::fs::OpenOptions::new().read(true).write(true).open(&self.path)?;
        let mut src = self.body_start + self.body_len - keep;
        let mut dst = self.body_start;
        rw.seek(SeekFrom::Start(dst))?;
        rw.write_all(marker.as_bytes())?;
        dst += marker.len() as u64;
        self.marker_len = marker.len() as u64;
        let mut buf = vec![0u8; COPY_CHUNK];
        let end = self.body_start + self.body_len;
        while src < end {
            let n = ((end - src) as usize).min(COPY_CHUNK);
            rw.seek(SeekFrom::Start(src))?;
            rw.read_exact(&mut buf[..n])?;
            rw.seek(SeekFrom::Start(dst))?;
            rw.write_all(&buf[..n])?;
            src += n as u64;
            dst += n as u64;
        }
        rw.set_len(dst)?;
        self.body_len = dst - self.body_start;
        Ok(())
    }

    /// Writes the footer (when the attempt has a log) and returns the output's tail. A log
    /// that could not be written does not change the attempt's outcome: the tail ends
    /// with a line saying why the log is incomplete.
    fn finish(&mut self, footer: &str) -> String {
        let body_start = self.body_start;
        let mut tail = String::new();
        if let Some(file) = self.file.as_mut() {
            tail = read_tail(file, body_start);
            if let Err(e) = file.write_all(footer.as_bytes()) {
                self.failed.get_or_insert(e.to_string());
            }
        }
        if let Some(why) = &self.failed {
            if !tail.is_empty() && !tail.ends_with('\n') {
                tail.push('\n');
            }
            tail.push_str(&format!("[queuectl: the log of this attempt is incomplete: {why}]\n"));
        }
        tail
    }
}

/// Copies everything readable from `pipe` into `sink` until end of file.
pub(crate) fn pump(mut pipe: std::io::PipeReader, sink: SharedSink) {
    let mut buf = vec![0u8; COPY_CHUNK];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                // A log that cannot be written (full disk) must not block the job: keep
                // draining the pipe so the job never stalls on a full pipe.
                let _ = sink.lock().unwrap_or_else(|p| p.into_inner()).write(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
