//! The runner against real shells: `/bin/sh` on Unix, `cmd.exe` on Windows (run under Wine
//! by scripts/test_windows.sh). Tests that say the same thing on both platforms are written
//! once, with the job's line spelled for each shell; the rest are per platform below.

use std::path::Path;
use std::time::{Duration, Instant};

use queuectl_core::runner::{run, Control, RunOutcome, RunSpec, TAIL_BYTES};

/// The same job for each platform's shell.
fn sh(unix: &'static str, windows: &'static str) -> &'static str {
    if cfg!(windows) {
        windows
    } else {
        unix
    }
}

/// What the shell's `echo` ends a line with.
const NL: &str = if cfg!(windows) { "\r\n" } else { "\n" };

/// A job line that sleeps about `s` seconds.
fn sleep_line(s: u32) -> String {
    if cfg!(windows) {
        // cmd has no sleep; ping waits a second between its echo requests.
        format!("ping -n {} 127.0.0.1 >nul", s + 1)
    } else {
        format!("sleep {s}")
    }
}

fn spec<'a>(command: &'a str, cwd: &'a Path, log: &'a Path, timeout_ms: u64) -> RunSpec<'a> {
    RunSpec {
        command,
        cwd,
        env: vec![("QUEUECTL_JOB_ID".into(), "job-7".into()), ("QUEUECTL_ATTEMPT".into(), "2".into())],
        log_path: log,
        attempt: 2,
        timeout_ms,
        kill_grace_ms: 300,
        log_max_bytes: 0,
    }
}

fn go_in(command: &str, cwd: &Path, timeout_ms: u64) -> (RunOutcome, String) {
    let log = cwd.join("job.log");
    let out = run(&spec(command, cwd, &log, timeout_ms), Duration::from_millis(50), &mut || Control::Continue).unwrap();
    // A job that printed nothing has no log file.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (out, text)
}

fn go(command: &str, timeout_ms: u64) -> (RunOutcome, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (out, text) = go_in(command, dir.path(), timeout_ms);
    (out, text, dir)
}

/// Waits up to `limit` for `path` to exist.
fn appears(path: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    path.exists()
}

#[test]
fn output_goes_to_the_log_with_header_and_footer() {
    let (out, log, dir) = go(
        sh(
            "echo out; echo err >&2; echo $QUEUECTL_JOB_ID/$QUEUECTL_ATTEMPT; pwd",
            "echo out& echo err>&2& echo %QUEUECTL_JOB_ID%/%QUEUECTL_ATTEMPT%& cd",
        ),
        0,
    );
    assert!(out.success(), "{out:?}");
    assert_eq!(out.exit_code, Some(0));
    let cwd = if cfg!(windows) { dir.path().to_path_buf() } else { dir.path().canonicalize().unwrap() };
    assert_eq!(out.output_tail, format!("out{NL}err{NL}job-7/2{NL}{}{NL}", cwd.display()));
    assert!(log.starts_with("=== attempt 2 at "), "{log}");
    assert!(log.contains("\n$ echo out"));
    assert!(log.trim_end().ends_with('s') && log.contains("=== exit code 0 after "), "{log}");
}

#[test]
fn exit_codes_and_missing_commands_are_failures() {
    let (out, _, _d) = go("exit 42", 0);
    assert_eq!((out.success(), out.exit_code, out.error.as_deref()), (false, Some(42), Some("exit code 42")));
    let (out, _, _d) = go("definitely_not_a_command_qctl", 0);
    assert_eq!(out.exit_code, Some(if cfg!(windows) { 9009 } else { 127 }));
    assert!(out.error.unwrap().contains("command not found"));
}

#[test]
fn only_the_tail_is_kept_and_nothing_is_held_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.txt"), "x".repeat(3_000_000) + "\n").unwrap();
    let (out, log) = go_in(sh("cat big.txt; echo END", "type big.txt& echo END"), dir.path(), 0);
    assert!(out.success());
    assert_eq!(out.output_tail.len() as u64, TAIL_BYTES);
    assert!(out.output_tail.ends_with(&format!("x\nEND{NL}")));
    assert!(log.len() > 3_000_000);
}

#[test]
fn a_term_ignoring_job_is_killed_after_the_grace() {
    let started = Instant::now();
    let line = if cfg!(windows) { sleep_line(30) } else { "trap '' TERM; sleep 30".into() };
    let (out, _, _d) = go(&line, 200);
    assert!(!out.success());
    assert_eq!(out.error.as_deref(), Some("timed out after 0.2s"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn kill_on_request_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("job.log");
    let line = sleep_line(30);
    let mut ticks = 0;
    let out = run(&spec(&line, dir.path(), &log, 0), Duration::from_millis(20), &mut || {
        ticks += 1;
        if ticks >= 3 {
            Control::Kill
        } else {
            Control::Continue
        }
    })
    .unwrap();
    assert!(out.killed_on_request() && !out.success());
    assert!(out.duration_ms < 5_000);
}

#[test]
fn a_missing_working_directory_fails_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("job.log");
    let gone = dir.path().join("gone");
    let out = run(&spec("exit 0", &gone, &log, 0), Duration::from_millis(50), &mut || Control::Continue).unwrap();
    assert!(!out.success());
    assert!(out.error.unwrap().contains("does not exist"));
}

#[test]
fn the_log_is_capped_keeping_the_newest_output() {
    let dir = tempfile::tempdir().unwrap();
    let numbers: String = (1..=400_000).map(|i| format!("{i}\n")).collect();
    std::fs::write(dir.path().join("numbers.txt"), &numbers).unwrap();
    let log = dir.path().join("job.log");
    let mut s = spec(sh("cat numbers.txt; echo END", "type numbers.txt& echo END"), dir.path(), &log, 0);
    s.log_max_bytes = 100_000;
    let out = run(&s, Duration::from_millis(50), &mut || Control::Continue).unwrap();
    assert!(out.success());
    let text = std::fs::read_to_string(&log).unwrap();
    // The job writes about 2.7 MB; the log keeps between the cap and twice the cap of it.
    assert!(text.len() < 2 * 100_000 + 1_000, "log is {} bytes", text.len());
    assert!(text.len() > 100_000);
    assert!(text.contains("earlier bytes of output dropped: log-max-bytes]"));
    assert!(text.contains(&format!("\n399999\n400000\nEND{NL}=== exit code 0")), "the newest output is kept");
    assert!(out.output_tail.ends_with(&format!("400000\nEND{NL}")));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("=== attempt 2"), "the header stays first");
    // The "dropped" line counts the output it dropped, exactly: with what is kept after
    // it, all of the output (the line of an earlier compaction is not counted in).
    let output = format!("{numbers}END{NL}");
    let dropped_line = lines[2];
    let dropped: usize = dropped_line["[queuectl: ".len()..].trim_start().split(' ').next().unwrap().parse().unwrap();
    let kept_from = text.find(dropped_line).unwrap() + dropped_line.len() + 1;
    let kept = &text[kept_from..text.rfind("=== exit code 0").unwrap()];
    assert_eq!(dropped + kept.len(), output.len());
    assert!(output.ends_with(kept));
}

#[test]
fn output_left_behind_by_a_background_process_does_not_hold_the_attempt() {
    let started = Instant::now();
    let (out, log, _d) = go(
        sh("(sleep 5; echo late) & echo early", "start /b cmd /c \"ping -n 6 127.0.0.1 >nul & echo late\"& echo early"),
        0,
    );
    assert!(out.success());
    assert!(started.elapsed() < Duration::from_secs(3), "waited for the background process");
    assert!(log.contains(&format!("early{NL}")));
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
    run(&spec("exit 0", dir.path(), &log, 0), Duration::from_millis(50), &mut || Control::Continue).unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    // Once the job has a log, silent attempts are framed there too.
    assert_eq!(text.matches("=== attempt 2 at").count(), 2, "{text}");
    assert!(text.contains(&format!("$ echo loud\nloud{NL}=== exit code 0 after")), "{text}");
    assert!(text.trim_end().ends_with('s') && text.contains("$ exit 0\n=== exit code 0 after"));
}

/// A timeout and a forced stop take down what the job started in the background; a job
/// that ends by itself leaves its background processes alone (as a shell would).
#[test]
fn timeout_and_kill_take_the_whole_tree_and_a_normal_exit_does_not() {
    let dir = tempfile::tempdir().unwrap();
    // The grandchild writes its marker after about 3 s, unless it was killed.
    let bg = |marker: &Path| {
        if cfg!(windows) {
            format!("start /b cmd /c \"ping -n 4 127.0.0.1 >nul & echo alive> {}\"", marker.display())
        } else {
            format!("(sleep 3; echo alive > '{}') &", marker.display())
        }
    };
    let sep = sh(" ", "& ");

    let on_timeout = dir.path().join("timeout.marker");
    let started = Instant::now();
    let (out, log) = go_in(&format!("{}{sep}{}", bg(&on_timeout), sleep_line(30)), dir.path(), 500);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.error.as_deref(), Some("timed out after 0.5s"));
    assert!(log.is_empty(), "a job that printed nothing gets no log file");

    let on_kill = dir.path().join("kill.marker");
    let line = format!("{}{sep}{}", bg(&on_kill), sleep_line(30));
    let mut ticks = 0;
    let out = run(&spec(&line, dir.path(), &dir.path().join("k.log"), 0), Duration::from_millis(50), &mut || {
        ticks += 1;
        if ticks >= 10 {
            Control::Kill
        } else {
            Control::Continue
        }
    })
    .unwrap();
    assert!(out.killed_on_request());

    let control = dir.path().join("control.marker");
    let (out, _) = go_in(&format!("{}{sep}exit 0", bg(&control)), dir.path(), 0);
    assert!(out.success());
    assert!(appears(&control, Duration::from_secs(10)), "the control grandchild never wrote its marker");
    // The others had as long as the control to write theirs.
    assert!(!on_timeout.exists(), "the background process survived the timeout");
    assert!(!on_kill.exists(), "the background process survived the forced stop");
}

#[cfg(unix)]
mod unix {
    use super::*;

    #[test]
    fn death_by_a_signal_is_a_failure() {
        let (out, _, _d) = go("kill -9 $$", 0);
        assert_eq!(out.exit_code, None);
        assert!(out.error.unwrap().contains("SIGKILL"));
    }
}

#[cfg(windows)]
mod windows {
    use super::*;

    #[test]
    fn a_crash_code_is_named() {
        let (out, _, _d) = go("exit -1073741819", 0);
        assert_eq!(out.exit_code, Some(-1073741819));
        assert_eq!(out.error.as_deref(), Some("crashed with status 0xC0000005"));
    }

    #[test]
    fn cmd_metacharacters_reach_cmd_as_typed() {
        // Quotes keep `&` literal, `^` escapes, `%NAME%` expands and a lone `%` stays: all
        // by cmd.exe, since the line is passed verbatim.
        let (out, _, _d) = go(r#"echo "a & b" ^& c^^d ^| e %QUEUECTL_JOB_ID% 100%"#, 0);
        assert!(out.success(), "{out:?}");
        assert_eq!(out.output_tail, "\"a & b\" & c^d | e job-7 100%\r\n");
    }

    #[test]
    fn text_beyond_ascii_reaches_the_log_as_utf8() {
        let (out, log, _d) = go("echo héllo wörld ✓ 日本語", 0);
        assert!(out.success(), "{out:?}");
        assert_eq!(out.output_tail, "héllo wörld ✓ 日本語\r\n");
        assert!(log.contains("$ echo héllo wörld ✓ 日本語\nhéllo wörld ✓ 日本語\r\n"), "{log}");
    }

    #[test]
    fn paths_with_spaces_as_cwd_and_as_a_quoted_program() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("with space");
        std::fs::create_dir(&cwd).unwrap();
        std::fs::write(cwd.join("say hi.cmd"), "@echo got %~1 in %CD%\r\n").unwrap();
        // A line that starts with a quote: cmd /C without /S would strip the outer quotes.
        let (out, _) = go_in(r#""say hi.cmd" "arg one""#, &cwd, 0);
        assert!(out.success(), "{out:?}");
        assert_eq!(out.output_tail, format!("got arg one in {}\r\n", cwd.display()));
    }
}
