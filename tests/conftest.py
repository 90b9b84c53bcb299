"""End-to-end helpers: the real `queuectl` command against a temporary home.

The suite runs once per store: on a SQLite file (the default), and with
QUEUECTL_TEST_STORE=postgres on a fresh schema of the PostgreSQL server QUEUECTL_TEST_PG
names (the local one by default). Tests marked `sqlite_only` check SQLite's file itself;
tests marked `store_independent` never touch a real queue; both run in the SQLite pass only.
Tests marked `postgres_only` (many hosts on one server) run in the PostgreSQL pass only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

QUEUECTL = shutil.which("queuectl", path=str(Path(sys.executable).parent)) or "queuectl"
STORE = os.environ.get("QUEUECTL_TEST_STORE", "sqlite")
PG_SERVER = os.environ.get("QUEUECTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_schemas = itertools.count()


def pg_connect() -> Any:
    import psycopg

    return psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5)


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema on the test server, dropped afterwards; yields its queuectl URL."""
    name = f"qp_{os.getpid()}_{next(_schemas)}_{time.time_ns() % 10**9}"
    with pg_connect() as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in PG_SERVER else "?"
    try:
        yield f"{PG_SERVER}{sep}options=-csearch_path%3D{name}&application_name={name}"
    finally:
        with pg_connect() as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: checks SQLite's own file; SQLite pass only")
    config.addinivalue_line("markers", "store_independent: no real queue; SQLite pass only")
    config.addinivalue_line(
        "markers", "postgres_only: many hosts on one server; PostgreSQL pass only"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if STORE == "sqlite":
        for item in items:
            if item.get_closest_marker("postgres_only"):
                item.add_marker(pytest.mark.skip(reason="runs in the PostgreSQL pass"))
        return
    if STORE != "postgres":
        raise pytest.UsageError(f"QUEUECTL_TEST_STORE must be sqlite or postgres, not {STORE!r}")
    try:
        pg_connect().close()
        down = None
    except Exception as e:
        down = f"no PostgreSQL server answers at {PG_SERVER}: {e}".splitlines()[0]
        if os.environ.get("QUEUECTL_REQUIRE_PG") == "1":
            # CI sets it: a PostgreSQL pass that skips everything would prove nothing.
            raise pytest.UsageError(f"{down} (QUEUECTL_REQUIRE_PG=1)") from None
    for item in items:
        if down:
            item.add_marker(pytest.mark.skip(reason=down))
        elif item.get_closest_marker("sqlite_only"):
            item.add_marker(pytest.mark.skip(reason="checks SQLite's own file"))
        elif item.get_closest_marker("store_independent"):
            item.add_marker(pytest.mark.skip(reason="store independent: runs in the SQLite pass"))


class Queue:
    """Runs queuectl commands with one home folder; tracks workers started, to stop them."""

    def __init__(self, home: Path, db: str | None = None) -> None:
        self.home = home
        self.db = db
        self.env = {**os.environ, "QUEUECTL_HOME": str(home)}
        self.env.pop("QUEUECTL_DB", None)
        if db:
            self.env["QUEUECTL_DB"] = db
        self.procs: list[subprocess.Popen[str]] = []

    def sql(self, statement: str) -> None:
        """Runs one statement on the queue's database, behind queuectl's back."""
        if self.db:
            import psycopg

            with psycopg.connect(self.db, autocommit=True) as conn:
                conn.execute(statement)  # type: ignore[arg-type]
        else:
            with contextlib.closing(sqlite3.connect(self.home / "qctl.db")) as conn, conn:
                conn.execute(statement)

    def run(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [QUEUECTL, *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            cwd=cwd,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"queuectl {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def enqueue(self, command: str, **fields: Any) -> str:
        return self.run("enqueue", json.dumps({"command": command, **fields})).stdout.strip()

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.json("show", job_id)
        return result

    def start_workers(self, *args: str) -> subprocess.Popen[str]:
        """A foreground `worker start` in the background of the test."""
        p = subprocess.Popen(
            [QUEUECTL, "worker", "start", *args],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.procs.append(p)
        return p

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 30, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def state(self, job_id: str) -> str:
        state: str = self.job(job_id)["state"]
        return state

    def close(self) -> None:
        subprocess.run(
            [QUEUECTL, "worker", "stop", "--force", "--timeout", "10"],
            env=self.env,
            capture_output=True,
            timeout=30,
        )
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=10)


@pytest.fixture
def q(tmp_path: Path) -> Iterator[Queue]:
    with contextlib.ExitStack() as stack:
        db = stack.enter_context(pg_schema()) if STORE == "postgres" else None
        queue = Queue(tmp_path / "home", db)
        yield queue
        queue.close()
