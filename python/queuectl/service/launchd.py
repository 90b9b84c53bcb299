"""Worker services on launchd (macOS): the property list, and `launchctl` to load,
control and inspect it. A LaunchAgent (~/Library/LaunchAgents) runs at login; a
LaunchDaemon (--system, /Library/LaunchDaemons) at boot, as the installing user. The log
is a file, ~/Library/Logs/queuectl/NAME.log."""

from __future__ import annotations

import os
import plistlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from queuectl.service import tool
from queuectl.service.spec import (
    KILL_MARGIN_S,
    NOT_HOSTED,
    ServiceError,
    ServiceSpec,
    installed_file,
)


def launchd_label(name: str) -> str:
    return f"io.queuectl.{name}"


def launchd_log(name: str) -> Path:
    return Path.home() / "Library" / "Logs" / "queuectl" / f"{name}.log"


def launchd_plist(spec: ServiceSpec) -> bytes:
    """The property list of a LaunchAgent (or, with --system, a LaunchDaemon run as the
    installing user): started at load, started again after an unsuccessful exit (at most
    every 10 s), and given --stop-timeout plus a margin to stop before launchd kills it."""
    plist: dict[str, object] = {
        "Label": launchd_label(spec.name),
        "ProgramArguments": spec.worker_argv(),
        "EnvironmentVariables": spec.environment(),
        "WorkingDirectory": str(spec.home),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ExitTimeOut": int(spec.stop_timeout_s + KILL_MARGIN_S),
        "ProcessType": "Background",
        "StandardOutPath": str(launchd_log(spec.name)),
        "StandardErrorPath": str(launchd_log(spec.name)),
    }
    if spec.system and spec.user:
        plist["UserName"] = spec.user
    return plistlib.dumps(plist, sort_keys=True)


def launchd_plist_path(name: str, system: bool) -> Path:
    folder = Path("/Library/LaunchDaemons") if system else Path.home() / "Library" / "LaunchAgents"
    return folder / f"{launchd_label(name)}.plist"


def _domain(system: bool) -> str:
    """launchctl's domain: the system's, or this user's login session."""
    return "system" if system else f"gui/{os.getuid()}"  # type: ignore[attr-defined,unused-ignore]


def _target(name: str, system: bool) -> str:
    return f"{_domain(system)}/{launchd_label(name)}"


class LaunchdManager:
    """The ServiceManager of macOS: property lists and launchctl."""

    def preview(self, spec: ServiceSpec) -> str:
        return launchd_plist(spec).decode()

    def require(self) -> None:
        """launchd always runs on macOS."""

    def install(
        self, spec: ServiceSpec, *, start: bool, account: str | None, note: Callable[[str], None]
    ) -> str:
        path = launchd_plist_path(spec.name, spec.system)
        path.parent.mkdir(parents=True, exist_ok=True)
        launchd_log(spec.name).parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(launchd_plist(spec))
        if start:
            tool.run(["launchctl", "bootstrap", _domain(spec.system), str(path)])
        return str(path)

    def caveats(self, spec: ServiceSpec) -> list[str]:
        return []

    def uninstall(self, name: str, system: bool) -> None:
        path = installed_file(name, launchd_plist_path(name, system))
        tool.run(["launchctl", "bootout", _target(name, system)], check=False)
        path.unlink()

    def start(self, name: str, system: bool) -> None:
        installed_file(name, launchd_plist_path(name, system))
        tool.run(["launchctl", "kickstart", _target(name, system)])

    def stop(self, name: str, system: bool) -> None:
        installed_file(name, launchd_plist_path(name, system))
        tool.run(["launchctl", "kill", "SIGTERM", _target(name, system)])

    def restart(self, name: str, system: bool) -> None:
        installed_file(name, launchd_plist_path(name, system))
        tool.run(["launchctl", "kickstart", "-k", _target(name, system)])

    def status(self, name: str, system: bool) -> dict[str, Any]:
        path = launchd_plist_path(name, system)
        view: dict[str, Any] = {"installed": path.exists(), "file": str(path)}
        if not path.exists():
            return {**view, "enabled": None, "running": None, "pid": None, "last_exit": None}
        out = tool.run(["launchctl", "print", _target(name, system)], check=False)
        fields: dict[str, str] = {}
        for line in out.stdout.splitlines():
            key, sep, value = line.strip().partition(" = ")
            if sep:
                fields.setdefault(key, value)
        pid_text = fields.get("pid")
        last = fields.get("last exit code")
        return {
            **view,
            "enabled": out.returncode == 0,
            "running": fields.get("state") == "running",
            "pid": int(pid_text) if pid_text and pid_text.isdigit() else None,
            "last_exit": int(last) if last and last.lstrip("-").isdigit() else None,
        }

    def names(self, system: bool) -> list[str]:
        folder = launchd_plist_path("x", system).parent
        files = folder.glob("io.queuectl.*.plist")
        return [p.name[len("io.queuectl.") : -len(".plist")] for p in files]

    def logs(self, name: str, system: bool, follow: bool, echo: Callable[[str], None]) -> int:
        installed_file(name, launchd_plist_path(name, system))
        return tool.call(["tail", *(["-f"] if follow else ["-n", "200"]), str(launchd_log(name))])

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
        raise ServiceError(NOT_HOSTED)
