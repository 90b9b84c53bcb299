"""retry, delete and wait by id, through the real command, on both stores."""

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
    assert f'job "{done}" is completed: only failed or dead jobs can be retried' in r.stderr
    assert (q.state(dead), q.state(failed)) == ("dead", "failed"), "nothing may change"
    r = q.run("retry", dead, "no-such-job", check=False)
    assert r.returncode == 1 and "no-such-job" in r.stderr
    assert q.json("retry", dead, failed) == {"retried": 2}
    for job_id in (dead, failed):
        job = q.job(job_id)
        assert (job["state"], job["attempts"]) == ("pending", 0)
        # Runnable now, not after the failed job's backoff.
        assert job["run_at"] <= job["updated_at"]


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
