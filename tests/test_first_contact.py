"""First contact: commands started at the same moment on a queue that does not exist yet.

A new user starts `worker start` and `enqueue` together on a home that is not there; every
command must succeed and every acknowledged job must be in the store. Each round starts 8
commands at once (three enqueues, a burst worker, status, worker list, list and the
dashboard) on a new SQLite home, or on a new empty PostgreSQL schema in the PostgreSQL
pass, while two processes keep both cores busy. QUEUECTL_FIRST_CONTACT_ROUNDS sets the
number of rounds (10 by default; the figures in docs/dev/reliability.md come from 50).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import QUEUECTL, STORE, pg_schema

ROUNDS = int(os.environ.get("QUEUECTL_FIRST_CONTACT_ROUNDS", "10"))

COMMANDS: list[list[str]] = [
    ["enqueue", "--command", "true", "--id", "a"],
    ["enqueue", '{"command": "true", "id": "b"}'],
    ["worker", "start", "--burst"],
    ["status", "--json"],
    ["worker", "list"],
    ["enqueue", "--command", "true", "--id", "c"],
    ["list", "--json"],
]


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Two processes that spin, so the commands race on busy cores as on a loaded host."""
    spin = "import time\nend = time.time() + 600\nwhile time.time() < end: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(home: Path, db: str | None) -> dict[str, str]:
    env = {**os.environ, "QUEUECTL_HOME": str(home)}
    env.pop("QUEUECTL_DB", None)
    if db:
        env["QUEUECTL_DB"] = db
    return env


def _round(home: Path, db: str | None) -> list[str]:
    """Starts the commands and the dashboard at once; the failures, one line each."""
    env = _env(home, db)
    procs = [
        subprocess.Popen(
            [QUEUECTL, *c], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for c in COMMANDS
    ]
    ui = subprocess.Popen(
        [QUEUECTL, "ui", "--bind", f"127.0.0.1:{_free_port()}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    failures = []
    for c, p in zip(COMMANDS, procs):
        _, err = p.communicate(timeout=120)
        if p.returncode != 0:
            failures.append(f"queuectl {' '.join(c)} exited {p.returncode}: {err.strip()}")
    assert ui.stderr is not None
    line = ui.stderr.readline()
    if "dashboard on http://" not in line:
        ui.kill()
        _, err = ui.communicate(timeout=30)
        failures.append(f"queuectl ui did not start: {line.strip()} {err.strip()}")
    else:
        ui.terminate()
        ui.communicate(timeout=30)
    return failures


def _job_ids(home: Path, db: str | None) -> list[str]:
    r = subprocess.run(
        [QUEUECTL, "list", "--json"],
        env=_env(home, db),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return sorted(j["id"] for j in json.loads(r.stdout))


@pytest.mark.skipif(sys.platform == "win32", reason="the race is run on POSIX here")
def test_commands_started_together_on_a_new_queue_all_succeed(
    tmp_path: Path, cpu_load: None
) -> None:
    started = time.monotonic()
    for i in range(ROUNDS):
        home = tmp_path / f"round-{i}" / "home"  # neither folder exists yet
        if STORE == "postgres":
            with pg_schema() as db:
                failures = _round(home, db)
                ids = _job_ids(home, db)
        else:
            failures = _round(home, None)
            ids = _job_ids(home, None)
        assert failures == [], f"round {i + 1} of {ROUNDS}: " + "; ".join(failures)
        assert ids == ["a", "b", "c"], f"round {i + 1}: acknowledged jobs missing: {ids}"
    print(f"{ROUNDS} rounds of 8 commands in {time.monotonic() - started:.1f} s")
