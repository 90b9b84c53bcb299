"""End-to-end helpers: the real `queuectl` command against a temporary home."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

QUEUECTL = shutil.which("queuectl", path=str(Path(sys.executable).parent)) or "queuectl"


class Queue:
    """Runs queuectl commands with one home folder; tracks workers started, to stop them."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "QUEUECTL_HOME": str(home)}
        self.env.pop("QUEUECTL_DB", None)
        self.procs: list[subprocess.Popen[str]] = []

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
    queue = Queue(tmp_path / "home")
    yield queue
    queue.close()
