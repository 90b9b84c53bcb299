"""cancel, retry, delete, wait and explain by id, through the real command, on both stores."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import Queue


def _dead_and_failed(q: Queue) -> tuple[str, str]:
    dead = q.enqueue("exit 3", max_retries=0)
    failed = q.enqueue("exit 4", max_retries=5)
    q.run("worker", "start", "--burst")
    assert (q.state(dead), q.state(failed)) == ("dead", "failed")
    return dead, failed


def test_retry_by_id_takes_failed_and_dead_jobs_all_or_nothing(q: Queue) -> None:
    dead, failed = _dead_and_failed(q)
    done = q.enqueue("true")
    q.run("worker", "start", "--burst")
    r = q.run("retry", dead, failed, done, check=False)
    assert r.returncode == 1
    assert f'job "{done}" is completed: only failed, dead or cancelled jobs can be retried' in (
        r.stderr
    )
    assert (q.state(dead), q.state(failed)) == ("dead", "failed"), "nothing may change"
    r = q.run("retry", dead, "no-such-job", check=False)
    assert r.returncode == 1 and "no-such-job" in r.stderr
    assert q.json("retry", dead, failed) == {"retried": 2}
    for job_id in (dead, failed):
        job = q.job(job_id)
        assert (job["state"], job["attempts"]) == ("pending", 0)
        # Runnable now, not after the failed job's backoff.
        assert job["run_at"] <= job["updated_at"]


def test_cancel_ends_waiting_jobs_at_once_all_or_nothing(q: Queue) -> None:
    dead, failed = _dead_and_failed(q)
    pending = q.enqueue("true")
    r = q.run("cancel", pending, failed, dead, check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == f'Error: job "{dead}" is dead: it has ended and cannot be cancelled'
    assert (q.state(pending), q.state(failed)) == ("pending", "failed"), "nothing may change"
    r = q.run("cancel", pending, "no-such-job", check=False)
    assert r.returncode == 1 and "no-such-job" in r.stderr and q.state(pending) == "pending"
    assert q.json("cancel", pending, failed) == {"cancelled": [pending, failed], "killing": []}
    assert [j["id"] for j in q.json("list", "--state", "cancelled")] == [failed, pending]
    assert q.json("status")["jobs"]["cancelled"] == 2
    # Never claimed again, even once the failed job's backoff has passed.
    q.run("worker", "start", "--burst")
    job = q.job(failed)
    assert (job["state"], job["attempts"], job["last_error"]) == (
        "cancelled",
        1,
        "cancelled on request",
    )
    assert "while it waited to retry after 1 failed attempt(s)" in q.run("explain", failed).stdout
    assert "before it ran" in q.run("explain", pending).stdout
    # wait counts it as ended, and not completed.
    r = q.run("wait", pending, "--timeout", "5", check=False)
    assert (r.returncode, r.stdout.strip()) == (1, f"{pending} cancelled")
    r = q.run("cancel", pending, check=False)
    assert r.returncode == 1 and "is cancelled: it has ended" in r.stderr
    # retry puts a cancelled job back; purge --cancelled removes the rest.
    assert q.json("retry", pending) == {"retried": 1}
    q.run("worker", "start", "--burst")
    assert q.state(pending) == "completed"
    assert q.run("purge", "--cancelled").stdout.strip() == "purged 1 jobs"
    r = q.run("show", failed, check=False)
    assert r.returncode == 1 and "no job" in r.stderr


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie waiting for its reaper counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_cancel_kills_a_running_jobs_process_tree_and_it_is_not_retried(
    q: Queue, tmp_path: Path
) -> None:
    # The job's shell starts a grandchild, records its pid, and waits: the kill must reach
    # the grandchild too. Retries are left, and must not be used.
    tree = f"sleep 300 & echo $! > {tmp_path}/child; touch {tmp_path}/started; wait"
    running = q.enqueue(tree, max_retries=3)
    worker = q.start_workers()
    try:
        q.wait_for(lambda: (tmp_path / "started").exists(), what="the job to start")
        child = int((tmp_path / "child").read_text())
        assert not _gone(child)
        asked = time.monotonic()
        r = q.run("cancel", running)
        assert r.stdout.splitlines() == [
            "cancelled 0 jobs",
            f"1 running job(s) will be killed by their workers within a heartbeat: {running}",
        ]
        assert "it was cancelled at" in q.run("explain", running).stdout
        q.wait_for(lambda: q.state(running) == "cancelled", timeout=15, what="the cancel")
        took = time.monotonic() - asked
        # One heartbeat (1 s) to hear of it, then SIGTERM ends the tree at once.
        assert took < 5, f"cancelled {took:.1f}s after the request"
        q.wait_for(lambda: _gone(child), timeout=5, what="the grandchild to be killed")
        job = q.job(running)
        assert (job["attempts"], job["attempt_history"][0]["outcome"]) == (1, "cancelled")
        assert job["last_error"] == "killed: cancelled on request"
        assert "while attempt 1 ran" in q.run("explain", running).stdout
        # The worker goes on with other jobs; the cancelled one never runs again.
        after = q.enqueue("true")
        q.wait_for(lambda: q.state(after) == "completed", what="the next job")
        assert (q.state(running), q.job(running)["attempts"]) == ("cancelled", 1)
    finally:
        q.run("worker", "stop")
        _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert f"job {running} was cancelled" in err
    assert "1 cancelled" in err


def test_delete_removes_jobs_their_history_and_logs_but_not_a_running_one(
    q: Queue, tmp_path: Path
) -> None:
    noisy = q.enqueue("echo out; exit 2", max_retries=0)
    q.run("worker", "start", "--burst")
    log = next((q.home / "logs").iterdir())
    pending = q.enqueue("true")
    running = q.enqueue(f"touch {tmp_path}/started; sleep 30")
    waiting = q.enqueue("true", run_at="2099-01-01T00:00:00Z")
    # Claims are FIFO: the pending job goes first, so that the worker takes the sleeper.
    assert q.run("delete", pending).stdout.strip() == "deleted 1 jobs"
    worker = q.start_workers()
    try:
        q.wait_for(lambda: (tmp_path / "started").exists(), what="the job to start")
        r = q.run("delete", noisy, running, check=False)
        assert r.returncode == 1 and "is processing" in r.stderr
        assert q.state(noisy) == "dead" and log.exists(), "nothing may change"
        assert q.json("delete", noisy, waiting, noisy) == {"deleted": [noisy, waiting]}
        assert not log.exists()
        ids = {j["id"] for j in q.json("list")}
        assert ids == {running}
        r = q.run("show", noisy, check=False)
        assert r.returncode == 1 and "no job" in r.stderr
    finally:
        q.run("worker", "stop", "--force")
        worker.wait(30)


def test_wait_returns_when_the_jobs_end_with_their_outcome(q: Queue) -> None:
    ok = q.enqueue("sleep 0.5")
    bad = q.enqueue("exit 7", max_retries=0)
    worker = q.start_workers("--count", "2")
    try:
        t = time.monotonic()
        r = q.run("wait", ok, check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"{ok} completed"
        assert time.monotonic() - t < 10
        r = q.run("wait", ok, bad, "--json", check=False)
        assert r.returncode == 1, "a job that did not complete makes wait fail"
        import json

        assert json.loads(r.stdout) == {"jobs": {ok: "completed", bad: "dead"}, "timed_out": False}
    finally:
        q.run("worker", "stop")
        worker.wait(30)


def test_wait_times_out_and_names_unknown_jobs(q: Queue) -> None:
    later = q.enqueue("true", run_at="2099-01-01T00:00:00Z")
    t = time.monotonic()
    r = q.run("wait", later, "--timeout", "0.5", check=False)
    assert r.returncode == 1
    assert r.stdout.strip() == f"{later} pending"
    assert "timed out after 0.5s" in r.stderr
    assert 0.4 < time.monotonic() - t < 10
    r = q.run("wait", "nope", check=False)
    assert r.returncode == 1 and 'no job with id "nope"' in r.stderr


def test_explain_says_why_a_job_is_where_it_is(q: Queue, tmp_path: Path) -> None:
    later = q.enqueue("true", run_at="2099-01-01T00:00:00Z")
    first = q.enqueue("true", priority=5)
    second = q.enqueue("true")
    text = q.run("explain", later).stdout
    assert "is pending: not due until 2099-01-01T00:00:00.000Z" in text
    assert "no worker is running" in text
    e = q.json("explain", second)
    assert (e["state"], e["ahead"]) == ("pending", 1), e
    assert "due now; 1 job(s) of queue default ahead of it" in e["explanation"]
    assert q.json("explain", first)["ahead"] == 0
    flaky = q.enqueue("exit 3", max_retries=2)
    dead = q.enqueue("exit 4", max_retries=0)
    q.run("delete", first, second)
    q.run("worker", "start", "--burst")
    e = q.json("explain", flaky)
    assert (e["state"], e["tries_left"]) == ("failed", 2), e
    assert "attempt 1 failed (exit code 3)" in e["explanation"] and e["next_try"]
    text = q.run("explain", dead).stdout
    assert "is dead: all 1 attempt(s) failed (max_retries 0); the last: exit code 4" in text
    assert f"queuectl dlq retry {dead}" in text
    done = q.enqueue("true")
    q.run("worker", "start", "--burst")
    assert "is completed: completed at" in q.run("explain", done).stdout
    running = q.enqueue(f"touch {tmp_path}/go; sleep 30")
    worker = q.start_workers()
    try:
        q.wait_for(lambda: (tmp_path / "go").exists(), what="the job to start")
        text = q.run("explain", running).stdout
        assert "is processing: running attempt 1 of 4 on worker w-" in text
        assert "worker(s) running" not in text
    finally:
        q.run("worker", "stop", "--force")
        worker.wait(30)
    r = q.run("explain", "nope", check=False)
    assert r.returncode == 1 and 'no job with id "nope"' in r.stderr
