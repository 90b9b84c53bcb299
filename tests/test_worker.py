"""Workers end to end: real processes, real SQLite, real shell commands."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import Queue


def fast_retries(q: Queue) -> None:
    """Retries without waiting: backoff-max 0 caps every delay at 0 s."""
    q.run("config", "set", "backoff-max", "0")


def test_basic_job_completes(q: Queue, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    job = q.enqueue(f"echo hello > {out}")
    q.run("worker", "start", "--burst")
    j = q.job(job)
    assert (j["state"], j["attempts"], j["exit_code"]) == ("completed", 1, 0)
    assert out.read_text() == "hello\n"
    assert q.json("status")["jobs"] == {
        "waiting": 0,
        "pending": 0,
        "processing": 0,
        "completed": 1,
        "failed": 0,
        "dead": 0,
        "cancelled": 0,
    }


def test_job_environment_and_cwd(q: Queue, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    q.run(
        "enqueue",
        "--command",
        'echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT $PWD" > env.txt',
        "--id",
        "envjob",
        cwd=workdir,
    )
    q.run("worker", "start", "--burst")
    assert (workdir / "env.txt").read_text() == f"envjob 1 {workdir}\n"


def test_failing_job_retries_and_moves_to_dlq(q: Queue) -> None:
    fast_retries(q)
    job = q.enqueue("echo failing; exit 3", max_retries=2)
    q.run("worker", "start", "--burst")
    j = q.job(job)
    assert (j["state"], j["attempts"], j["exit_code"]) == ("dead", 3, 3)
    history = j["attempt_history"]
    assert [a["outcome"] for a in history] == ["failed", "failed", "dead"]
    assert all(a["output_tail"] == "failing\n" for a in history)
    assert [d["id"] for d in q.json("dlq", "list")] == [job]
    logs = q.run("logs", job).stdout
    assert logs.count("=== attempt") == 3 and logs.count("\nfailing\n") == 3


def test_dlq_retry_resets_attempts(q: Queue) -> None:
    fast_retries(q)
    dead = q.enqueue("exit 1", max_retries=0, id="d1")
    alive = q.enqueue("true", id="a1")
    q.run("worker", "start", "--burst")
    assert q.state(dead) == "dead"
    r = q.run("dlq", "retry", dead, alive, check=False)
    assert r.returncode == 1 and "not in the DLQ" in r.stderr
    assert q.state(dead) == "dead"
    assert q.run("dlq", "retry", dead).stdout == "retrying 1 jobs\n"
    j = q.job(dead)
    assert (j["state"], j["attempts"]) == ("pending", 0)
    q.run("worker", "start", "--burst")
    assert q.job(dead)["attempts"] == 1 and q.state(dead) == "dead"
    assert q.run("dlq", "retry", "--all").stdout == "retrying 1 jobs\n"


def test_invalid_command_fails_gracefully_and_the_worker_goes_on(q: Queue, tmp_path: Path) -> None:
    bad = q.enqueue("no_such_command_qctl --flag", max_retries=0)
    missing_dir = q.enqueue("true", max_retries=0, cwd=str(tmp_path / "gone"))
    good = q.enqueue("true")
    q.run("worker", "start", "--burst")
    assert q.state(bad) == "dead"
    assert "command not found" in q.job(bad)["last_error"]
    assert q.state(missing_dir) == "dead"
    assert "does not exist" in q.job(missing_dir)["last_error"]
    assert q.state(good) == "completed"


def test_workers_never_overlap(q: Queue, tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    n = 300
    lines = "".join(
        f'{{"id":"j{i}","command":"echo $QUEUECTL_JOB_ID >> {out}"}}\n' for i in range(n)
    )
    q.run("enqueue", "--file", "-", input=lines)
    procs = [q.start_workers("--count", "3", "--burst", "--quiet") for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    ran = out.read_text().split()
    assert sorted(ran) == sorted(f"j{i}" for i in range(n))
    jobs = q.json("list")
    assert {j["state"] for j in jobs} == {"completed"}
    assert {j["attempts"] for j in jobs} == {1}
    assert len({j["worker_id"] for j in jobs}) > 1


def test_priority_then_fifo(q: Queue, tmp_path: Path) -> None:
    out = tmp_path / "order.txt"
    for job_id, prio in [("low1", 0), ("high1", 5), ("low2", 0), ("mid", 2), ("high2", 5)]:
        q.enqueue(f"echo {job_id} >> {out}", id=job_id, priority=prio)
    q.run("worker", "start", "--burst")
    assert out.read_text().split() == ["high1", "high2", "mid", "low1", "low2"]


def test_run_at_in_the_future_waits(q: Queue) -> None:
    later = q.enqueue("true", run_at="2999-01-01T00:00:00Z")
    soon = q.run("enqueue", "--command", "true", "--delay", "1s").stdout.strip()
    q.run("worker", "start", "--burst")
    assert q.state(later) == "pending" and q.state(soon) == "pending"
    time.sleep(1.1)
    q.run("worker", "start", "--burst")
    assert q.state(later) == "pending" and q.state(soon) == "completed"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_timeout_kills_the_whole_tree(q: Queue, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    job = q.enqueue(f"sleep 60 & echo $! > {pids}; sleep 60", timeout=1, max_retries=0)
    started = time.monotonic()
    q.run("worker", "start", "--burst")
    assert time.monotonic() - started < 15
    j = q.job(job)
    assert j["state"] == "dead" and "timed out after 1s" in j["last_error"]
    child = int(pids.read_text())
    q.wait_for(lambda: not _alive(child), timeout=5, what="the background sleep to die")


def test_graceful_stop_finishes_the_running_job_only(q: Queue, tmp_path: Path) -> None:
    first = q.enqueue(f"sleep 1.5; echo done > {tmp_path / 'first'}", id="first")
    second = q.enqueue("true", id="second")
    q.run("worker", "start", "--detach")
    q.wait_for(lambda: q.state(first) == "processing", what="the first job to start")
    r = q.run("worker", "stop")
    assert r.returncode == 0 and "stopped 1 worker" in r.stdout
    assert q.state(first) == "completed"
    assert q.state(second) == "pending"
    assert q.json("worker", "list") == []
    assert q.run("worker", "stop").stdout == "no workers running\n"


def test_sigint_twice_kills_and_requeues_without_counting(q: Queue, tmp_path: Path) -> None:
    job = q.enqueue("sleep 60", id="long")
    p = q.start_workers()
    q.wait_for(lambda: q.state(job) == "processing", what="the job to start")
    p.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert q.state(job) == "processing"
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=15) == 0
    j = q.job(job)
    assert (j["state"], j["attempts"]) == ("pending", 0)


def test_sigterm_lets_the_job_finish(q: Queue) -> None:
    job = q.enqueue("sleep 1")
    p = q.start_workers()
    q.wait_for(lambda: q.state(job) == "processing", what="the job to start")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=15) == 0
    assert q.state(job) == "completed"


def test_stop_force_requeues(q: Queue) -> None:
    job = q.enqueue("sleep 60")
    q.run("worker", "start", "--detach", "--count", "2")
    assert len(q.json("worker", "list")) == 2
    q.wait_for(lambda: q.state(job) == "processing", what="the job to start")
    busy = [w for w in q.json("status")["workers"] if w["state"] == "busy"]
    assert [w["current_job"] for w in busy] == [job]
    q.run("worker", "stop", "--force", "--timeout", "20")
    j = q.job(job)
    assert (j["state"], j["attempts"]) == ("pending", 0)


def test_lost_worker_job_is_rescued_as_a_failed_attempt(q: Queue) -> None:
    fast_retries(q)
    job = q.enqueue("sleep 3; echo second-run", max_retries=2)
    victim = q.start_workers("--lease", "2s")
    q.wait_for(lambda: q.state(job) == "processing", what="the job to start")
    victim.kill()
    victim.wait()
    rescuer = q.start_workers("--lease", "2s")
    q.wait_for(lambda: q.state(job) == "completed", timeout=30, what="the rescue")
    j = q.job(job)
    assert j["attempts"] == 2
    assert "lost" in j["attempt_history"][0]["error"]
    rescuer.send_signal(signal.SIGTERM)
    assert rescuer.wait(timeout=15) == 0


def test_a_worker_paused_past_its_lease_registers_again_and_stops(q: Queue) -> None:
    """A worker frozen (SIGSTOP: a paused VM, a sleeping laptop) longer than its lease is
    declared lost and its job rescued; when it resumes it must not claim jobs under the
    registration others marked exited: it registers again, and `worker stop` reaches it."""
    fast_retries(q)
    job = q.enqueue("sleep 2", max_retries=2)
    ghost = q.start_workers("--lease", "2s")
    q.wait_for(lambda: q.state(job) == "processing", what="the job to start")
    ghost.send_signal(signal.SIGSTOP)
    try:
        rescuer = q.start_workers("--lease", "2s")

        def ghost_rows(*flags: str) -> list[dict[str, object]]:
            return [w for w in q.json("worker", "list", *flags) if w["pid"] == ghost.pid]

        q.wait_for(
            lambda: [w["state"] for w in ghost_rows("--all")] == ["exited"],
            timeout=20,
            what="the frozen worker to be declared lost",
        )
        q.wait_for(lambda: q.state(job) == "completed", timeout=20, what="the rescued job")
        # Work for whoever claims it: a resumed ghost that claimed under its exited
        # registration would run these unseen by `worker list`.
        later = [q.enqueue("sleep 0.2") for _ in range(6)]
    finally:
        ghost.send_signal(signal.SIGCONT)
    q.wait_for(
        lambda: [w["state"] for w in ghost_rows()] in (["idle"], ["busy"]),
        timeout=10,
        what="the resumed worker to register again",
    )
    q.wait_for(lambda: all(q.state(j) == "completed" for j in later), timeout=30, what="later jobs")
    q.run("worker", "stop", "--timeout", "20")
    assert ghost.wait(timeout=20) == 0
    assert rescuer.wait(timeout=20) == 0
    _, err = ghost.communicate()
    assert "was declared lost" in err and "registered again" in err, err
    j = q.job(job)
    # The first attempt was rescued; the ghost's late result for it was dropped.
    assert (j["state"], j["attempts"]) == ("completed", 2)
    assert "lost" in j["attempt_history"][0]["error"]
    assert q.json("worker", "list") == []


def test_state_and_config_survive_a_restart(q: Queue) -> None:
    q.run("config", "set", "max-retries", "5")
    done = q.enqueue("true", id="done")
    q.run("worker", "start", "--burst")
    waiting = q.enqueue("true", id="waiting")
    q.run("worker", "start", "--detach")
    q.wait_for(lambda: q.state(waiting) == "completed", what="the job to run")
    q.run("worker", "stop")
    later = q.enqueue("true", id="later")
    assert q.state(later) == "pending"
    q.run("worker", "start", "--detach")
    q.wait_for(lambda: q.state(later) == "completed", what="the restarted worker")
    q.run("worker", "stop")
    assert q.run("config", "get", "max-retries").stdout == "5\n"
    assert q.state(done) == "completed"
    assert len(q.json("worker", "list", "--all")) == 3


def test_ids_cannot_escape_the_logs_folder(q: Queue, tmp_path: Path) -> None:
    ids = ["../x", "../../escape", "a/b", "/abs", "C:\\x", "..", "."]
    for job_id in ids:
        q.enqueue("echo out", id=job_id)
    q.run("worker", "start", "--burst")
    logs = q.home / "logs"
    files = [p for p in q.home.rglob("*") if p.is_file() and p.suffix == ".log"]
    assert len(files) == len(ids) and all(p.parent == logs for p in files)
    assert not (tmp_path / "x").exists() and not (tmp_path / "escape").exists()
    for job_id in ids:
        assert "out" in q.run("logs", job_id).stdout


def test_purge(q: Queue) -> None:
    fast_retries(q)
    ok = q.enqueue("echo ok")
    dead = q.enqueue("echo bad; false", max_retries=0)
    pending = q.enqueue("true", run_at="2999-01-01T00:00:00Z")
    q.run("worker", "start", "--burst")
    assert q.run("purge", "--completed", "--older-than", "1h").stdout == "purged 0 jobs\n"
    assert q.run("purge", "--completed").stdout == "purged 1 jobs\n"
    assert q.run("show", ok, check=False).returncode == 1
    assert len(list((q.home / "logs").glob("*"))) == 1  # the dead job's log stays
    assert q.run("purge", "--dead").stdout == "purged 1 jobs\n"
    assert q.run("show", dead, check=False).returncode == 1
    assert [j["id"] for j in q.json("list")] == [pending]
    assert list((q.home / "logs").glob("*")) == []


def test_real_exponential_gaps(q: Queue) -> None:
    """The defaults: base 2, so the gaps between attempts are 2 s and then 4 s."""
    job = q.enqueue("exit 1", max_retries=2)
    p = q.start_workers("--quiet")
    q.wait_for(lambda: q.state(job) == "dead", timeout=30, what="the job to die")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=15)
    from datetime import datetime

    starts = [
        datetime.fromisoformat(a["started_at"].replace("Z", "+00:00"))
        for a in q.job(job)["attempt_history"]
    ]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
    assert 2.0 <= gaps[0] < 2.6, gaps
    assert 4.0 <= gaps[1] < 4.6, gaps


def test_ids_and_config_values_are_never_interpolated(q: Queue, tmp_path: Path) -> None:
    """A job id reaches the job only as $QUEUECTL_JOB_ID, and reaches SQL only as a bound
    parameter: hostile ids stay inert."""
    marker = tmp_path / "pwned"
    ids = [f"$(touch {marker})", f"`touch {marker}`", "'; DROP TABLE jobs; --", 'x" OR 1=1 --']
    for job_id in ids:
        q.enqueue('printf "%s\\n" "$QUEUECTL_JOB_ID"', id=job_id)
    q.run("worker", "start", "--burst")
    assert not marker.exists()
    assert sorted(j["id"] for j in q.json("list", "--state", "completed")) == sorted(ids)
    for job_id in ids:
        assert q.run("logs", job_id).stdout.splitlines()[2] == job_id
    r = q.run("config", "set", "max-retries", "1; DROP TABLE config", check=False)
    assert r.returncode == 1
    assert q.run("config", "get", "max-retries").stdout == "3\n"


def test_log_files_are_owner_only(q: Queue) -> None:
    import stat

    job = q.enqueue("echo secret")
    q.run("worker", "start", "--burst")
    (log,) = (q.home / "logs").iterdir()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "secret" in q.run("logs", job).stdout


def test_a_flood_of_output_is_capped_keeping_the_end(q: Queue) -> None:
    q.run("config", "set", "log-max-bytes", "64K")
    job = q.enqueue("seq 1 300000; head -c 100000 /dev/urandom; echo; echo END")
    q.run("worker", "start", "--burst")
    assert q.state(job) == "completed"
    (log,) = (q.home / "logs").iterdir()
    assert log.stat().st_size < 2 * 65536 + 1024
    text = log.read_bytes()
    assert b"earlier bytes of output dropped" in text
    assert text.rstrip().splitlines()[-2] == b"END"
    assert q.job(job)["attempt_history"][0]["output_tail"].endswith("END\n")


def test_a_silent_job_gets_no_log_file_and_logs_still_answers(q: Queue) -> None:
    job = q.enqueue("exit 4", max_retries=0)
    q.run("worker", "start", "--burst")
    assert list((q.home / "logs").iterdir()) == []
    r = q.run("logs", job)
    assert "printed nothing" in r.stderr
    assert r.stdout.splitlines()[-1] == "=== exit code 4"


def test_logs_follow_waits_for_output_and_stops_at_the_end(q: Queue) -> None:
    job = q.run(
        "enqueue", "--command", "sleep 0.5; echo one; sleep 0.5; echo two", "--delay", "0.5s"
    ).stdout.strip()
    q.run("worker", "start", "--detach")
    r = q.run("logs", job, "--follow", timeout=30)
    lines = r.stdout.splitlines()
    assert lines[2:4] == ["one", "two"] and lines[-1].startswith("=== exit code 0")
    assert q.state(job) == "completed"


def test_a_worker_pool_counts_what_its_workers_did(q: Queue, tmp_path: Path) -> None:
    # The counters are an observer of the workers' events (the seam metrics will read).
    from queuectl import _core

    location = q.db or str(q.home / "qctl.db")
    q.enqueue("true", id="ok")
    q.enqueue("exit 4", id="bad", max_retries=0)
    logs = tmp_path / "logs"
    logs.mkdir()
    pool = _core.WorkerPool(
        location, 2, logs_dir=str(logs), host="counting", pid=os.getpid(), burst=True, verbose=False
    )
    assert pool.wait(60)
    assert pool.join() == {"completed": 1, "failed": 0, "dead": 1, "cancelled": 0, "requeued": 0}
    counts = pool.counters()
    assert (counts["started"], counts["completed"], counts["dead"], counts["retried"]) == (
        2,
        1,
        1,
        0,
    )
    assert q.state("bad") == "dead"


def test_logs_of_a_job_that_has_not_run_says_so_once(q: Queue) -> None:
    job = q.enqueue("true")
    r = q.run("logs", job)
    assert r.stderr.strip().splitlines() == ["no output yet (job is pending)"]
    assert r.stdout == ""


def test_a_jobs_env_reaches_it_and_only_its_names_are_shown(q: Queue, tmp_path: Path) -> None:
    out = tmp_path / "seen"
    job = q.run(
        "enqueue",
        "--command",
        f'echo "$GREETING/$QUEUECTL_JOB_ID/$TOKEN" > {out}; echo printed',
        "--env",
        "GREETING=hello world",
        "--env",
        "TOKEN=s3cr3t-value",
        "--env",
        "QUEUECTL_JOB_ID=not-this",
    ).stdout.strip()
    q.run("worker", "start", "--burst")
    # queuectl's own variables win over the job's.
    assert out.read_text().strip() == f"hello world/{job}/s3cr3t-value"
    shown = q.job(job)
    assert sorted(shown["env"]) == ["GREETING", "QUEUECTL_JOB_ID", "TOKEN"]
    listed = q.run("list", "--json").stdout + q.run("show", job).stdout + q.run("logs", job).stdout
    assert "s3cr3t" not in listed
    assert "env:" in q.run("show", job).stdout
    r = q.run("enqueue", "--command", "true", "--env", "novalue", check=False)
    assert r.returncode == 2 and "is not NAME=VALUE" in r.stderr
    r = q.run("enqueue", json.dumps({"command": "true", "env": {"A": 1}}), check=False)
    assert r.returncode == 1 and "field 'env'" in r.stderr
