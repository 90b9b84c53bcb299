//! The runner against real `/bin/sh` processes.
#![cfg(unix)]

use std::path::Path;
use std::time::{Duration, Instant};

use queuectl_core::runner::{run, Control, RunOutcome, RunSpec, TAIL_BYTES};

fn spec<'a>(command: &'a str, cwd: &'a Path, log: &'a Path, timeout_ms: u64) -> RunSpec<'a> {
    RunSpec {
        command,
        cwd,
        env: vec![("QUEUECTL_JOB_ID", "job-7".into()), ("QUEUECTL_ATTEMPT", "2".into())],
        log_path: log,
        attempt: 2,
        timeout_ms,
        kill_grace_ms: 300,
        log_max_bytes: 0,
    }
}

fn go(command: &str, timeout_ms: u64) -> (RunOutcome, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("job.log");
    let out = run(&spec(command, dir.path(), &log, timeout_ms), Duration::from_millis(50), &mut || Control::Continue)
        .unwrap();
    // A job that printed nothing has no log file.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (out, text, dir)
}

fn alive(pid: i32) -> bool {
    // A zombie has exited; only a live process counts.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn output_goes_to_the_log_with_header_and_footer() {
    let (out, log, dir) = go("echo out; echo err >&2; echo $QUEUECTL_JOB_ID/$QUEUECTL_ATTEMPT; pwd", 0);
    assert!(out.success);
    assert_eq!(out.exit_code, Some(0));
    let cwd = dir.path().canonicalize().unwrap();
    assert_eq!(out.output_tail, format!("out\nerr\njob-7/2\n{}\n", cwd.display()));
    assert!(log.starts_with("=== attempt 2 at "), "{log}");
    assert!(log.contains("\n$ echo out;"));
    assert!(log.trim_end().ends_with('s') && log.contains("=== exit code 0 after "), "{log}");
}

#[test]
fn exit_codes_and_missing_commands_are_failures() {
    let (out, _, _d) = go("exit 42", 0);
    assert_eq!((out.success, out.exit_code, out.error.as_deref()), (false, Some(42), Some("exit code 42")));
    let (out, _, _d) = go("definitely_not_a_command_qctl", 0);
    assert_eq!(out.exit_code, Some(127));
    assert!(out.error.unwrap().contains("command not found"));
    let (out, _, _d) = go("kill -9 $$", 0);
    assert_eq!(out.exit_code, None);
    assert!(out.error.unwrap().contains("SIGKILL"));
}

#[test]
fn only_the_tail_is_kept_and_nothing_is_held_in_memory() {
    let (out, log, _d) = go("head -c 3000000 /dev/zero | tr '\\0' x; echo; echo END", 0);
    assert!(out.success);
    assert_eq!(out.output_tail.len() as u64, TAIL_BYTES);
    assert!(out.output_tail.ends_with("x\nEND\n"));
    assert!(log.len() > 3_000_000);
}

#[test]
fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("bg.pid");
    let cmd = format!("sleep 30 & echo $! > {}; sleep 30", pid_file.display());
    let started = Instant::now();
    let (out, log, _d) = go(&cmd, 500);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!out.success);
    assert_eq!(out.error.as_deref(), Some("timed out after 0.5s"));
    assert!(log.is_empty(), "a job that printed nothing gets no log file");
    let bg: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(bg) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(bg), "the background child survived the timeout");
}

#[test]
fn a_term_ignoring_job_is_killed_after_the_grace() {
    let started = Instant::now();
    let (out, _, _d) = go("trap '' TERM; sleep 30", 200);
    assert!(!out.success);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn kill_on_request_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("job.log");
    let mut ticks = 0;
    let out = run(&spec("sleep 30", dir.path(), &log, 0), Duration::from_millis(20), &mut || {
        ticks += 1;
        if ticks >= 3 {
            Control::Kill
        } else {
            Control::Continue
        }
    })
    .unwrap();
    assert!(out.killed_on_request && !out.success);
    assert!(out.duration_ms < 5_000);
}

#[test]
fn a_missing_working_directory_fails_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("job.log");
    let gone = dir.path().join("gone");
    let out = run(&spec("true", &gone, &log, 0), Duration::from_millis(50), &mut || Control::Continue).unwrap();
    assert!(!out.success);
    assert!(out.error.unwrap().contains("does not exist"));
}

#[test]
fn the_log_is_capped_keeping_the_newest_output() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("job.log");
    let mut s = spec("seq 1 400000; echo END", dir.path(), &log, 0);
    s.log_max_bytes = 100_000;
    let out = run(&s, Duration::from_millis(50), &mut || Control::Continue).unwrap();
    assert!(out.success);
    let text = std::fs::read_to_string(&log).unwrap();
    // seq writes about 2.7 MB; the log keeps between the cap and twice the cap of it.
    assert!(text.len() < 2 * 100_000 + 1_000, "log is {} bytes", text.len());
    assert!(text.len() > 100_000);
    assert!(text.contains("earlier bytes of output dropped: log-max-bytes]"));
    assert!(text.contains("\n399999\n400000\nEND\n=== exit code 0"), "the newest output is kept");
    assert!(out.output_tail.ends_with("400000\nEND\n"));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("=== attempt 2"), "the header stays first");
}

#[test]
fn output_left_behind_by_a_background_process_does_not_hold_the_attempt() {
    let started = Instant::now();
    let (out, log, _d) = go("(sleep 5; echo late) & echo early", 0);
    assert!(out.success);
    assert!(started.elapsed() < Duration::from_secs(3), "waited for the background process");
    assert!(log.contains("early\n"));
}

#[test]
fn a_silent_job_gets_no_log_until_an_attempt_prints() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("job.log");
    let silent =
        run(&spec("exit 3", dir.path(), &log, 0), Duration::from_millis(50), &mut || Control::Continue).unwrap();
    assert_eq!(silent.exit_code, Some(3));
    assert!(!log.exists());
    run(&spec("echo loud", dir.path(), &log, 0), Duration::from_millis(50), &mut || Control::Continue).unwrap();
    run(&spec("true", dir.path(), &log, 0), Duration::from_millis(50), &mut || Control::Continue).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    // Once the job has a log, silent attempts are framed there too.
    assert_eq!(text.matches("=== attempt 2 at").count(), 2, "{text}");
    assert!(text.contains("$ echo loud\nloud\n=== exit code 0 after"));
    assert!(text.trim_end().ends_with('s') && text.contains("$ true\n=== exit code 0 after"));
}
