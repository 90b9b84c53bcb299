"""Lasting faults stop a worker at once; `check`, `backup` and `migrate` from PostgreSQL.

The SQLite attacks damage the real file: a page overwritten, the file deleted or replaced
under running workers. Each must end the workers within seconds with one line naming the
cause and the next step, never a retry loop for the whole lease."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Queue, pg_schema

NEXT_STEP = "queuectl check"


def db_file(q: Queue) -> Path:
    return q.home / "qctl.db"


def root_page(q: Queue, name: str) -> int:
    with contextlib.closing(sqlite3.connect(db_file(q))) as conn:
        row = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    assert page_size == 2048
    return int(row[0])


def smash_page(q: Queue, page: int) -> None:
    """Overwrites one 2 KiB page of the (checkpointed) database file with garbage."""
    assert not Path(f"{db_file(q)}-wal").exists() or os.path.getsize(f"{db_file(q)}-wal") == 0
    with open(db_file(q), "r+b") as f:
        f.seek((page - 1) * 2048)
        f.write(b"\xde\xad\xbe\xef" * 512)


def finish(p: subprocess.Popen[str], within: float) -> tuple[int, str, float]:
    start = time.monotonic()
    _, err = p.communicate(timeout=within + 30)
    return p.returncode, err, time.monotonic() - start


@pytest.mark.sqlite_only
def test_a_corrupt_page_met_on_a_read_stops_the_worker_at_once(q: Queue) -> None:
    job = q.enqueue("true")
    smash_page(q, root_page(q, "jobs_due"))
    start = time.monotonic()
    r = q.run("worker", "start", "--burst", check=False, timeout=60)
    took = time.monotonic() - start
    assert r.returncode == 1, r.stderr
    assert took < 10, f"took {took:.1f}s"
    assert "corrupt" in r.stderr and NEXT_STEP in r.stderr, r.stderr
    assert "retrying" not in r.stderr and "trying again" not in r.stderr, r.stderr
    check = q.run("check", check=False)
    assert check.returncode == 1 and "corrupt" in check.stdout, check.stdout
    assert job


@pytest.mark.sqlite_only
def test_a_corrupt_page_met_on_a_write_stops_the_worker_at_once(q: Queue) -> None:
    """The attempts table is written only when a job fails: the claim works, the settle
    meets the damage, and the worker must stop instead of retrying it for its lease."""
    q.run("config", "set", "backoff-max", "0")
    q.enqueue("exit 3", id="fails", max_retries=1)
    smash_page(q, root_page(q, "attempts"))
    p = q.start_workers("--burst", "--lease", "30s")
    code, err, took = finish(p, 10)
    assert code == 1, err
    assert took < 10, f"took {took:.1f}s: {err}"
    assert "corrupt" in err and NEXT_STEP in err, err
    assert "store write failed" not in err, err


def _running_worker(q: Queue) -> subprocess.Popen[str]:
    q.enqueue("true")  # the file exists before the workers open it
    p = q.start_workers("--count", "2")
    q.wait_for(lambda: len(q.json("worker", "list")) == 2, what="two workers")
    return p


@pytest.mark.sqlite_only
def test_a_database_deleted_under_running_workers_stops_them(q: Queue) -> None:
    p = _running_worker(q)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_file(q)}{suffix}").unlink(missing_ok=True)
    code, err, took = finish(p, 10)
    assert code == 1, err
    assert took < 10, f"took {took:.1f}s"
    assert err.count("was deleted while this worker had it open") == 3, err  # 2 workers + Error


@pytest.mark.sqlite_only
def test_a_database_replaced_under_running_workers_stops_them(q: Queue, tmp_path: Path) -> None:
    other = Queue(tmp_path / "other")
    other.enqueue("true", id="from-the-other-file")
    p = _running_worker(q)
    os.replace(other.home / "qctl.db", db_file(q))
    # As a restore by hand would: the old file's WAL must not meet the new file.
    for suffix in ("-wal", "-shm"):
        Path(f"{db_file(q)}{suffix}").unlink(missing_ok=True)
    code, err, took = finish(p, 10)
    assert code == 1, err
    assert took < 10, f"took {took:.1f}s"
    assert "was replaced by another file" in err, err
    # The new file is untouched: its job waits for workers started on it.
    assert q.state("from-the-other-file") == "pending"


@pytest.mark.sqlite_only
def test_a_file_that_is_not_a_queue_is_refused_and_left_alone(q: Queue, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"not a database at all, but long enough to have a header.\n" * 100)
    r = q.run("--db", str(text), "status", check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "not a SQLite database" in r.stderr, r.stderr
    other = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(other)) as conn, conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    r = q.run("--db", str(other), "enqueue", "--command", "true", check=False)
    assert r.returncode == 1 and "not a queuectl queue" in r.stderr, r.stderr
    with contextlib.closing(sqlite3.connect(other)) as conn:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    assert tables == ["customers"]


def test_check_is_ok_on_a_sound_queue_and_names_each_broken_invariant(q: Queue) -> None:
    q.run("config", "set", "backoff-max", "0")
    q.enqueue("true", id="fine")
    q.enqueue("exit 1", id="flaky", max_retries=1)
    q.run("worker", "start", "--burst")
    r = q.run("check")
    assert r.stdout == "ok\n"
    report = q.json("check")
    assert report["ok"] is True and report["problems"] == []
    assert report["schema_version"] >= 1
    # Broken behind queuectl's back: too many attempts, a processing job nobody holds.
    q.sql("UPDATE jobs SET attempts = 7, runs = 7 WHERE id = 'flaky'")
    q.enqueue("true", id="orphan")
    q.sql(
        "UPDATE jobs SET state = 'processing', attempts = 1, runs = 1, worker_id = 'w-gone', "
        "lease_expires_ms = 1 WHERE id = 'orphan'"
    )
    r = q.run("check", check=False)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert len(lines) == 2, lines
    assert any("flaky has 7 attempts" in line for line in lines), lines
    assert any("orphan is processing" in line and "w-gone" in line for line in lines), lines
    r = q.run("check", "--json", check=False)
    report = json.loads(r.stdout)
    assert r.returncode == 1 and report["ok"] is False and len(report["problems"]) == 2


@pytest.mark.sqlite_only
def test_check_on_a_missing_queue_says_so_and_creates_nothing(q: Queue) -> None:
    r = q.run("check", check=False)
    assert r.returncode == 1 and "there is no queue" in r.stdout
    assert not db_file(q).exists()


def test_backup_while_workers_run_is_whole_private_and_never_overwrites(
    q: Queue, tmp_path: Path
) -> None:
    q.run("config", "set", "max-retries", "0")
    q.enqueue("exit 2", id="dead-one")
    q.run("worker", "start", "--burst")
    q.run("enqueue", "--file", "-", input="".join('{"command":"sleep 0.05"}\n' for _ in range(300)))
    q.enqueue("sleep 30", id="long", priority=9)
    workers = q.start_workers("--count", "2", "--quiet")
    q.wait_for(lambda: q.state("long") == "processing", what="the long job to start")
    copy = tmp_path / "snap.db"
    r = q.run("backup", str(copy))
    assert "backed up 302 jobs" in r.stdout and "1 config values" in r.stdout, r.stdout
    assert "pending in the copy" in r.stdout, r.stdout
    if os.name == "posix":
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    restored = Queue(tmp_path / "restored", None)
    restored.env["QUEUECTL_DB"] = str(copy)
    assert restored.run("check").stdout == "ok\n"
    counts = restored.json("status")["jobs"]
    assert sum(counts.values()) == 302 and counts["dead"] == 1 and counts["processing"] == 0
    long = restored.job("long")
    assert (long["state"], long["attempts"]) == ("pending", 0)
    assert restored.run("config", "get", "max-retries").stdout == "0\n"
    assert restored.json("worker", "list") == []
    # Never over an existing file, the copy included; the source goes on working.
    before = copy.read_bytes()
    r = q.run("backup", str(copy), check=False)
    assert r.returncode == 1 and "already exists" in r.stderr and r.stderr.count("\n") == 1
    assert copy.read_bytes() == before
    r = q.run("backup", str(tmp_path / "no-such-dir" / "x.db"), check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    q.run("worker", "stop", "--force", "--timeout", "20")
    workers.wait(timeout=20)


@pytest.mark.postgres_only
def test_migrate_moves_a_postgres_queue_back_to_sqlite(q: Queue, tmp_path: Path) -> None:
    q.run("config", "set", "max-retries", "1")
    q.run("config", "set", "backoff-max", "0")
    q.enqueue("true", id="done")
    q.enqueue("exit 4", id="dead")
    q.run("worker", "start", "--burst")
    q.enqueue("echo later", id="waiting", priority=5)
    q.enqueue("true", id="delayed", run_at="2999-01-01T00:00:00Z")
    before = q.json("list")
    target = tmp_path / "back" / "qctl.db"
    target.parent.mkdir()
    r = q.run("migrate", "--to", str(target))
    assert "copied 4 jobs, 2 earlier attempts and 2 config values" in r.stdout, r.stdout
    local = Queue(tmp_path / "back")
    assert local.json("list") == before
    assert local.job("dead")["attempt_history"] == q.job("dead")["attempt_history"]
    assert local.run("config", "get", "max-retries").stdout == "1\n"
    assert local.run("check").stdout == "ok\n"
    # Twice is refused whole; the file keeps exactly the first copy.
    r = q.run("migrate", "--to", str(target), check=False)
    assert r.returncode == 1 and "nothing was copied" in r.stderr, r.stderr
    assert local.json("list") == before
    local.run("worker", "start", "--burst")
    assert local.state("waiting") == "completed"
    # A running worker of the source blocks the move; so does a URL as the target.
    w = q.start_workers()
    q.wait_for(lambda: len(q.json("worker", "list")) == 1, what="the worker")
    r = q.run("migrate", "--to", str(tmp_path / "other.db"), check=False)
    assert r.returncode == 1 and "stop them first" in r.stderr
    assert not (tmp_path / "other.db").exists()
    q.close()
    w.wait(timeout=10)
    r = q.run("migrate", "--to", "postgresql://127.0.0.1/test", check=False)
    assert r.returncode == 1 and "SQLite file path" in r.stderr


@pytest.mark.postgres_only
def test_a_postgres_schema_with_someone_elses_jobs_table_is_refused(q: Queue) -> None:
    with pg_schema() as db:
        other = Queue(q.home.parent / "other", db)
        other.sql("CREATE TABLE jobs (name TEXT)")
        r = other.run("status", check=False)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert "did not create" in r.stderr, r.stderr
