"""A hostile environment: locked, missing and full storage. Clear errors, exit 1, no damage."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from conftest import QUEUECTL, Queue


def hold_write_lock(db: Path, seconds: float) -> threading.Thread:
    """Another process's long write transaction, from another connection."""
    ready = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    t = threading.Thread(target=hold)
    t.start()
    ready.wait(10)
    return t


@pytest.mark.sqlite_only
def test_a_long_lock_is_a_clear_error_and_changes_nothing(q: Queue) -> None:
    q.enqueue("true", id="before")
    holder = hold_write_lock(q.home / "qctl.db", 4)
    q.env["QUEUECTL_BUSY_TIMEOUT"] = "1"
    started = time.monotonic()
    r = q.run("enqueue", '{"id":"during","command":"true"}', check=False)
    assert time.monotonic() - started < 3.5
    assert r.returncode == 1
    assert r.stderr.startswith("Error: the database is locked") and r.stderr.count("\n") == 1
    # Reads go on under a writer's lock (WAL).
    assert [j["id"] for j in q.json("list")] == ["before"]
    holder.join()
    assert q.run("enqueue", '{"id":"after","command":"true"}').stdout == "after\n"


@pytest.mark.sqlite_only
def test_a_worker_waits_out_a_lock_and_recovers(q: Queue) -> None:
    job = q.enqueue("true")
    q.run("status")
    holder = hold_write_lock(q.home / "qctl.db", 2)
    worker = q.start_workers()
    holder.join()
    q.wait_for(lambda: q.state(job) == "completed", timeout=40, what="the job after the lock")
    assert worker.poll() is None, "the worker must survive the lock"


def test_bad_busy_timeout_setting(q: Queue) -> None:
    q.env["QUEUECTL_BUSY_TIMEOUT"] = "soon"
    r = q.run("status", check=False)
    assert r.returncode == 1 and "QUEUECTL_BUSY_TIMEOUT" in r.stderr


@pytest.mark.sqlite_only
def test_a_full_disk_is_a_clear_error_and_the_batch_is_not_half_written(
    q: Queue, tmp_path: Path
) -> None:
    q.enqueue("true", id="kept")
    batch = tmp_path / "big.jsonl"
    batch.write_text("".join(f'{{"command":"echo {"x" * 200} {i}"}}\n' for i in range(20_000)))
    # ulimit -f 2000: no file may grow past 2 MB, as on a nearly full disk.
    r = subprocess.run(
        ["sh", "-c", 'ulimit -f 2000; exec "$0" enqueue --file "$1"', QUEUECTL, str(batch)],
        env=q.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "full" in r.stderr, r.stderr
    assert [j["id"] for j in q.json("list")] == ["kept"]
    with sqlite3.connect(q.home / "qctl.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_log_over_a_file_size_limit_is_cut_short_and_the_job_keeps_its_result(
    q: Queue,
) -> None:
    big = q.enqueue("head -c 3000000 /dev/zero; echo done")
    small = q.enqueue("echo small")
    q.run("status")
    r = subprocess.run(
        ["sh", "-c", 'ulimit -f 2000; exec "$0" worker start --burst', QUEUECTL],
        env=q.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert q.state(small) == "completed"
    j = q.job(big)
    # The log stopped at the limit; the job's own result (exit 0) stands.
    assert j["state"] == "completed" and j["attempts"] == 1, (j["last_error"], j)
    log = q.run("logs", big).stdout
    assert 1_000_000 <= len(log) <= 2_100_000 and "\ndone\n" not in log


def mount_tmpfs(mnt: Path, size: str) -> None:
    """A filesystem of its own at `mnt` (tmpfs of `size`); skips the test without root."""
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a filesystem here (needs root): {r.stderr.decode().strip()}")


@pytest.fixture
def read_only_home(tmp_path: Path) -> Iterator[tuple[Queue, Callable[[], None]]]:
    """A home on a small filesystem of its own, which the test can remount read-only."""
    mnt = tmp_path / "mnt"
    mount_tmpfs(mnt, "20m")
    queue = Queue(mnt / "home")

    def make_read_only() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)

    try:
        yield queue, make_read_only
    finally:
        queue.close()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.sqlite_only
def test_a_read_only_database_is_a_clear_error(
    read_only_home: tuple[Queue, Callable[[], None]],
) -> None:
    q, make_read_only = read_only_home
    q.enqueue("true", id="kept")
    make_read_only()
    for args in (
        ["enqueue", '{"command":"true"}'],
        ["worker", "start", "--burst"],
        ["config", "set", "max-retries", "1"],
    ):
        r = q.run(*args, check=False)
        assert r.returncode == 1, (args, r.stderr)
        assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
        assert "read-only" in r.stderr.lower(), r.stderr
        assert "Traceback" not in r.stderr
    r = q.run("list", "--json", check=False)
    assert r.returncode == 1 or "kept" in r.stdout, r.stderr


@pytest.fixture
def small_home(tmp_path: Path) -> Iterator[tuple[Queue, Path]]:
    """A home on a 16 MB filesystem of its own (tmpfs with a size), which the test fills."""
    mnt = tmp_path / "small"
    mount_tmpfs(mnt, "16m")
    queue = Queue(mnt / "home")
    try:
        yield queue, mnt
    finally:
        queue.close()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path) -> Path:
    """Takes every free byte of the filesystem at `mnt` with one file; returns it."""
    filler = mnt / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return filler


def wal_truncated(q: Queue) -> None:
    """Checkpoints the database and empties its WAL, so that the next write needs new
    space on the disk (a WAL keeps its size otherwise, and writes reuse it)."""
    with contextlib.closing(sqlite3.connect(q.home / "qctl.db", timeout=30)) as conn:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    assert busy == 0


@pytest.mark.sqlite_only
def test_enqueue_on_a_full_disk_is_one_line_and_writes_nothing(
    small_home: tuple[Queue, Path],
) -> None:
    q, mnt = small_home
    q.enqueue("true", id="kept")
    wal_truncated(q)
    filler = fill(mnt)
    for args in (["enqueue", '{"command":"true","id":"one"}'], ["enqueue", "--command", "true"]):
        r = q.run(*args, check=False)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
        assert "full" in r.stderr and "Traceback" not in r.stderr, r.stderr
    filler.unlink()
    assert [j["id"] for j in q.json("list")] == ["kept"]
    q.enqueue("true", id="after")
    with contextlib.closing(sqlite3.connect(q.home / "qctl.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.sqlite_only
def test_a_worker_meeting_a_full_disk_keeps_its_job_and_goes_on(
    small_home: tuple[Queue, Path],
) -> None:
    """The disk fills while a job runs: the job's end cannot be written, so the worker
    keeps it, says so once, and settles it (completed, one attempt) when space returns."""
    q, mnt = small_home
    first = q.enqueue("sleep 2; echo first", id="first", max_retries=0)
    second = q.enqueue("echo second", id="second", max_retries=0)
    worker = q.start_workers()
    q.wait_for(lambda: q.state(first) == "processing", what="the first job running")
    wal_truncated(q)
    filler = fill(mnt)
    time.sleep(4)  # the job ends meanwhile; its settle meets the full disk
    if worker.poll() is not None:
        pytest.fail(f"the worker exited on a full disk: {worker.communicate()[1]}")
    with contextlib.closing(sqlite3.connect(q.home / "qctl.db")) as conn:
        states = dict(conn.execute("SELECT id, state FROM jobs").fetchall())
    assert states == {"first": "processing", "second": "pending"}, states
    filler.unlink()
    q.wait_for(lambda: q.state(second) == "completed", timeout=30, what="the second job")
    assert worker.poll() is None
    j = q.job(first)
    assert j["state"] == "completed" and j["attempts"] == 1, j
    worker.send_signal(signal.SIGINT)
    _, err = worker.communicate(timeout=30)
    full = [line for line in err.splitlines() if "full" in line]
    # One line per kind of write that met it (the heartbeat, the settle), none per retry.
    assert 1 <= len(full) <= 2, err
    assert "the store answers again" in err, err
