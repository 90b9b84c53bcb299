"""Worker services on Windows: the Rust core creates, controls and queries the service
(`_core.winservice_*`, rust/py/src/winsvc.rs), and the executable answers the service
manager itself (`service run`, hosted by the core). What the service needs beyond its
command line (PATH, the env file) is kept in the home, with its log.

Type-checked for Windows on Linux (`mypy --platform win32`), imported only on Windows.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from queuectl import _core, supervisor
from queuectl.home import Home
from queuectl.service.spec import ServiceSpec, installed_file

# Tells mypy, when it checks the package for POSIX, that this module is not for it.
assert sys.platform == "win32"

#: How long start waits for the service to run, and stop and uninstall for it to end.
START_WAIT_S = 60.0
STOP_WAIT_S = 600.0


def windows_service_name(name: str) -> str:
    return f"queuectl-{name}"


def windows_state_file(home: Path, name: str) -> Path:
    """The service's environment (PATH, the env file) and settings, written at install."""
    return home / f"service-{name}.json"


def windows_log(home: Path, name: str) -> Path:
    return home / f"service-{name}.log"


def windows_arguments(spec: ServiceSpec) -> list[str]:
    """What the service manager passes to the executable: `service run` and its settings."""
    head = [*spec.command[1:], "--home", str(spec.home), "--db", spec.db]
    return [*head, "service", "run", "--name", spec.name, *spec.worker_flags()]


def _follow(path: Path, follow: bool, echo: Callable[[str], None]) -> None:
    """The last 200 lines of a log file, and with `follow` what is appended to it."""
    with (
        contextlib.suppress(FileNotFoundError),
        open(path, encoding="utf-8", errors="replace") as f,
    ):
        for line in f.readlines()[-200:]:
            echo(line)
        while follow:
            line = f.readline()
            if line:
                echo(line)
            else:
                time.sleep(0.5)


class WindowsManager:
    """The ServiceManager of Windows: the service control manager, through the core.
    Services are per machine, so --system changes nothing but the scope shown; the
    installed ones are those whose state file is in this home."""

    def __init__(self, home: Home) -> None:
        self.home = home

    def _state_file(self, name: str) -> Path:
        return installed_file(name, windows_state_file(self.home.dir, name))

    def preview(self, spec: ServiceSpec) -> str:
        return " ".join([spec.command[0], *windows_arguments(spec)]) + "\n"

    def require(self) -> None:
        """The service control manager always runs on Windows."""

    def install(
        self, spec: ServiceSpec, *, start: bool, account: str | None, note: Callable[[str], None]
    ) -> str:
        """Writes the service's environment into the home and creates the service."""
        state = windows_state_file(spec.home, spec.name)
        state.write_text(json.dumps({"env": spec.environment()}), encoding="utf-8")
        notes = _core.winservice_install(
            windows_service_name(spec.name),
            spec.command[0],
            windows_arguments(spec),
            f"queuectl workers ({spec.name}): runs the jobs of {spec.db}",
            account,
        )
        for text in notes:
            note(text)
        if start:
            _core.winservice_start(windows_service_name(spec.name), START_WAIT_S)
        return f"service {windows_service_name(spec.name)}"

    def caveats(self, spec: ServiceSpec) -> list[str]:
        return []

    def uninstall(self, name: str, system: bool) -> None:
        path = self._state_file(name)
        _core.winservice_uninstall(windows_service_name(name), STOP_WAIT_S)
        path.unlink()

    def start(self, name: str, system: bool) -> None:
        self._state_file(name)
        _core.winservice_start(windows_service_name(name), START_WAIT_S)

    def stop(self, name: str, system: bool) -> None:
        self._state_file(name)
        _core.winservice_stop(windows_service_name(name), STOP_WAIT_S)

    def restart(self, name: str, system: bool) -> None:
        self._state_file(name)
        _core.winservice_stop(windows_service_name(name), STOP_WAIT_S)
        _core.winservice_start(windows_service_name(name), START_WAIT_S)

    def status(self, name: str, system: bool) -> dict[str, Any]:
        path = windows_state_file(self.home.dir, name)
        view: dict[str, Any] = {"installed": path.exists(), "file": str(path), "last_exit": None}
        try:
            state, pid = _core.winservice_query(windows_service_name(name))
        except _core.QueuectlError:
            return {**view, "installed": False, "enabled": None, "running": None, "pid": None}
        return {**view, "enabled": True, "running": state == "Running", "pid": pid}

    def names(self, system: bool) -> list[str]:
        files = self.home.dir.glob("service-*.json")
        return [p.name[len("service-") : -len(".json")] for p in files]

    def logs(self, name: str, system: bool, follow: bool, echo: Callable[[str], None]) -> int:
        self._state_file(name)
        _follow(windows_log(self.home.dir, name), follow, echo)
        return 0

    def run(
        self,
        name: str,
        *,
        count: int,
        queues: list[str] | None,
        slots: int | None,
        lease_s: float,
        stop_timeout_s: float,
        prepare: Callable[[], object],
    ) -> None:
        """Hosts the workers until the service stops: the service's environment first, then
        `prepare` (the caller migrates the database there), then the core's service loop."""
        path = windows_state_file(self.home.dir, name)
        state = json.loads(path.read_text(encoding="utf-8"))
        os.environ.update(state.get("env", {}))
        prepare()
        _core.winservice_run(
            windows_service_name(name),
            self.home.db,
            str(self.home.logs_dir),
            str(windows_log(self.home.dir, name)),
            count,
            round(lease_s * 1000),
            stop_timeout_s,
            supervisor.host_name(),
            queues,
            slots,
        )
