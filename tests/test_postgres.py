"""Many machines on one PostgreSQL queue: hosts, a host killed mid-run, lost connections,
logs across hosts and moving a SQLite queue over. Runs in the PostgreSQL pass only."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import QUEUECTL, Queue

pytestmark = pytest.mark.postgres_only


def query(q: Queue, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg

    assert q.db
    with psycopg.connect(q.db, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]


def drop_connections(q: Queue) -> int:
    """Ends every connection of this test's queuectl processes, as a server restart would."""
    name = q.db.rsplit("application_name=", 1)[1] if q.db else ""
    rows = query(
        q,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid != pg_backend_pid()",
        name,
    )
    return int(rows[0][0])


def host_workers(q: Queue, host: str, count: int, lease: str) -> subprocess.Popen[str]:
    """A `worker start` as if on another machine: its own host name and home folder."""
    env = {**q.env, "QUEUECTL_HOST": host, "QUEUECTL_HOME": str(q.home.parent / host)}
    p = subprocess.Popen(
        [QUEUECTL, "worker", "start", "--count", str(count), "--lease", lease, "--quiet"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    q.procs.append(p)
    return p


def test_three_hosts_run_every_job_once_and_rescue_a_killed_host(q: Queue, tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    total = 5000
    lines = "".join(
        json.dumps({"id": f"j{i:04}", "command": f"echo $QUEUECTL_JOB_ID >> {out}"}) + "\n"
        for i in range(total)
    )
    (tmp_path / "jobs.jsonl").write_text(lines)
    q.run("enqueue", "--file", str(tmp_path / "jobs.jsonl"))
    lease_s = 3
    hosts = {h: host_workers(q, h, 2, f"{lease_s}s") for h in ("host-a", "host-b", "host-c")}
    q.wait_for(
        lambda: query(q, "SELECT count(*) FROM jobs WHERE state = 'completed'")[0][0] >= 1000,
        timeout=60,
        what="a fifth of the jobs",
    )
    victim_ids = {r[0] for r in query(q, "SELECT id FROM workers WHERE host = 'host-b'")}
    assert len(victim_ids) == 2
    hosts["host-b"].send_signal(signal.SIGKILL)
    hosts["host-b"].wait()
    killed_at_ms = time.time() * 1000
    in_flight = {
        r[0]
        for r in query(
            q,
            "SELECT id FROM jobs WHERE state = 'processing' AND worker_id = ANY(%s)",
            list(victim_ids),
        )
    }
    # A busy worker holds a job nearly all the time (the job spans spawn to settle).
    assert in_flight, "the killed host held no job: nothing to rescue"
    q.wait_for(
        lambda: query(q, "SELECT count(*) FROM jobs WHERE state = 'completed'")[0][0] == total,
        timeout=120,
        what="every job to complete",
    )
    ran = out.read_text().split()
    counts: dict[str, int] = {}
    for job_id in ran:
        counts[job_id] = counts.get(job_id, 0) + 1
    assert set(counts) == {f"j{i:04}" for i in range(total)}, "a job never ran"
    twice = {j for j, n in counts.items() if n > 1}
    assert twice <= in_flight, f"ran twice without being in flight at the kill: {twice - in_flight}"
    assert max(counts.values()) <= 2
    # Every job in flight on the dead host was rescued as a failed attempt, within the lease
    # (plus a heartbeat to notice, and a second of slack for this loaded machine).
    waits = []
    for job_id in in_flight:
        first = q.job(job_id)["attempt_history"][0]
        assert "lost" in first["error"], first
        rescued_ms = _ms(first["finished_at"])
        waits.append(rescued_ms - killed_at_ms)
        assert rescued_ms - killed_at_ms <= (lease_s + 2) * 1000, (
            job_id,
            rescued_ms - killed_at_ms,
        )
    others = query(
        q, "SELECT count(*) FROM jobs WHERE attempts != 1 AND NOT id = ANY(%s)", list(in_flight)
    )
    assert others[0][0] == 0
    print(
        f"\n{total} jobs, 3 hosts x 2 workers: {len(in_flight)} in flight on the killed host, "
        f"{len(twice)} ran twice, rescue waits {[round(w / 1000, 1) for w in waits]} s "
        f"(lease {lease_s} s)"
    )
    # The survivors saw host-b go: it shows as lost, then exited.
    status = q.json("status")
    assert {w["host"] for w in status["workers"]} == {"host-a", "host-c"}


def _ms(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def test_status_lists_every_host_and_stop_can_pick_one(q: Queue) -> None:
    a = host_workers(q, "host-a", 1, "30s")
    b = host_workers(q, "host-b", 2, "30s")
    q.wait_for(lambda: len(q.json("worker", "list")) == 3, what="three workers")
    hosts = sorted(w["host"] for w in q.json("status")["workers"])
    assert hosts == ["host-a", "host-b", "host-b"]
    r = q.run("worker", "stop", "--host", "host-b", "--timeout", "20")
    assert "stopped" in r.stdout or r.stdout == "", r.stdout
    assert b.wait(timeout=20) == 0
    assert a.poll() is None, "host-a's worker must keep running"
    assert [w["host"] for w in q.json("worker", "list")] == ["host-a"]
    job = q.enqueue("echo still-here")
    q.wait_for(lambda: q.state(job) == "completed", what="host-a to run the job")
    q.run("worker", "stop", "--timeout", "20")
    assert a.wait(timeout=20) == 0


def test_a_worker_survives_losing_its_connections(q: Queue) -> None:
    ids = [q.enqueue("sleep 0.02") for _ in range(40)]
    worker = q.start_workers("--count", "2")
    q.wait_for(lambda: q.state(ids[5]) == "completed", what="the first jobs")
    assert drop_connections(q) >= 3  # two workers and the listener
    q.wait_for(
        lambda: q.json("status")["jobs"]["completed"] == len(ids), timeout=60, what="the rest"
    )
    # Idle now: drop the connections again; a new job must still be picked up promptly,
    # through a new LISTEN connection or the fallback poll.
    assert drop_connections(q) >= 1
    time.sleep(0.5)
    late = q.enqueue("true")
    q.wait_for(lambda: q.state(late) == "completed", timeout=10, what="the job after the drop")
    assert worker.poll() is None
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    assert {j["attempts"] for j in q.json("list")} == {1}


def test_logs_of_a_job_run_on_another_host(q: Queue) -> None:
    job = q.enqueue("echo from-far-away")
    env = {**q.env, "QUEUECTL_HOST": "far-host", "QUEUECTL_HOME": str(q.home.parent / "far")}
    subprocess.run(
        [QUEUECTL, "worker", "start", "--burst"], env=env, check=True, capture_output=True
    )
    r = q.run("logs", job)
    assert "from-far-away" in r.stdout
    assert "far-host" in r.stderr and "full log" in r.stderr
    # On the host that ran it, the full log file is there.
    here = subprocess.run(
        [QUEUECTL, "logs", job], env=env, check=True, capture_output=True, text=True
    )
    assert "from-far-away" in here.stdout and "$ echo from-far-away" in here.stdout


def test_an_unreachable_server_is_a_clear_error(q: Queue) -> None:
    r = q.run("--db", "postgresql://postgres@127.0.0.1:1/test", "list", check=False)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "cannot reach PostgreSQL" in r.stderr, r.stderr
    r = q.run("--db", "postgresql://127.0.0.1/test?sslmode=sometimes", "list", check=False)
    assert r.returncode == 1 and "invalid PostgreSQL URL" in r.stderr, r.stderr


def test_migrate_moves_a_sqlite_queue_and_nothing_is_lost(q: Queue, tmp_path: Path) -> None:
    local = Queue(tmp_path / "laptop")
    local.run("config", "set", "max-retries", "0")
    local.enqueue("true", id="done")
    local.enqueue("exit 4", id="dead")
    local.run("worker", "start", "--burst")
    local.enqueue("echo later", id="waiting", priority=5)
    before = local.json("list")
    assert q.db
    r = local.run("migrate", "--to", q.db)
    assert "copied 3 jobs" in r.stdout and "1 config values" in r.stdout, r.stdout
    assert q.json("list") == before
    assert q.run("config", "get", "max-retries").stdout == "0\n"
    assert [j["id"] for j in q.json("dlq", "list")] == ["dead"]
    # Twice is refused whole, and the SQLite queue is untouched.
    r = local.run("migrate", "--to", q.db, check=False)
    assert r.returncode == 1 and "nothing was copied" in r.stderr
    assert len(q.json("list")) == 3 and local.json("list") == before
    # Workers on PostgreSQL pick up where the laptop stopped.
    q.run("worker", "start", "--burst")
    assert q.state("waiting") == "completed"
    # A running worker blocks the move; a bad target is refused before anything happens.
    w = local.start_workers()
    local.wait_for(lambda: len(local.json("worker", "list")) == 1, what="the local worker")
    r = local.run("migrate", "--to", q.db, check=False)
    assert r.returncode == 1 and "stop them first" in r.stderr
    local.close()
    w.wait(timeout=10)
    r = local.run("migrate", "--to", "/tmp/not-a-url.db", check=False)
    assert r.returncode == 1 and "postgresql://" in r.stderr
    nowhere = Queue(tmp_path / "empty")
    r = nowhere.run("migrate", "--to", q.db, check=False)
    assert r.returncode == 1 and "there is no queue" in r.stderr, r.stderr
    assert not (tmp_path / "empty" / "qctl.db").exists()
