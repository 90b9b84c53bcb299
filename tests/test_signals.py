"""Signals to foreground and detached workers, and no job process left behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from conftest import Queue


def _live(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _detached_pid(q: Queue) -> int:
    pids = {w["pid"] for w in q.json("worker", "list")}
    assert len(pids) == 1
    return pids.pop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_one_signal_to_a_foreground_worker_lets_the_job_finish(q: Queue, sig: int) -> None:
    job = q.enqueue("sleep 1")
    p = q.start_workers()
    q.wait_for(lambda: q.state(job) == "processing", what="the job to start")
    p.send_signal(sig)
    assert p.wait(timeout=20) == 0
    assert q.state(job) == "completed"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_one_signal_to_a_detached_worker_lets_the_job_finish(q: Queue, sig: int) -> None:
    job = q.enqueue("sleep 1")
    q.run("worker", "start", "--detach")
    pid = _detached_pid(q)
    q.wait_for(lambda: q.state(job) == "processing", what="the job to start")
    os.kill(pid, sig)
    q.wait_for(lambda: not _live(pid), timeout=20, what="the worker process to exit")
    assert q.state(job) == "completed"
    assert q.json("worker", "list") == []


def test_two_signals_to_a_detached_worker_kill_and_requeue(q: Queue, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    job = q.enqueue(f"sleep 60 & echo $! > {pidfile}; wait")
    q.run("worker", "start", "--detach")
    pid = _detached_pid(q)
    q.wait_for(pidfile.exists, what="the job to start its child")
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.3)
    os.kill(pid, signal.SIGTERM)
    q.wait_for(lambda: not _live(pid), timeout=20, what="the worker process to exit")
    j = q.job(job)
    assert (j["state"], j["attempts"]) == ("pending", 0)
    child = int(pidfile.read_text())
    q.wait_for(lambda: not _live(child), timeout=10, what="the job's child to be killed")


def test_stop_force_leaves_no_job_process_behind(q: Queue, tmp_path: Path) -> None:
    pidfile = tmp_path / "children"
    for i in range(2):
        q.enqueue(f"sleep 60 & echo $! >> {pidfile}; sleep 60", id=f"long{i}")
    q.run("worker", "start", "--detach", "--count", "2")
    q.wait_for(
        lambda: pidfile.exists() and len(pidfile.read_text().split()) == 2,
        what="both jobs to start",
    )
    q.run("worker", "stop", "--force", "--timeout", "20")
    for child in map(int, pidfile.read_text().split()):
        q.wait_for(lambda c=child: not _live(c), timeout=10, what=f"child {child} to die")
    assert {j["state"] for j in q.json("list")} == {"pending"}
