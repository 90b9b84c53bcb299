"""Worker services on systemd (Linux): the unit file, and `systemctl` / `journalctl` to
install, control, inspect and read it. A user unit lives in ~/.config/systemd/user and
starts at login; a system unit (--system) in /etc/systemd/system, at boot."""

from __future__ import annotations

import os
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

#: Present while systemd runs as PID 1 (sd_booted(3) looks for the same folder).
RUNNING_MARK = "/run/systemd/system"


def unit_name(name: str) -> str:
    return f"queuectl-{name}.service"


def _systemd_quote(arg: str) -> str:
    """One ExecStart word: double-quoted, with systemd's specifiers and variables escaped."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def systemd_unit(spec: ServiceSpec) -> str:
    """The unit file. Type=notify: the workers say READY=1 once all are registered, so
    `start` returns when they are up. KillMode=mixed: a stop sends SIGTERM to the workers'
    process only (they finish their jobs, then kill and requeue what still runs after
    --stop-timeout); systemd kills the rest only TimeoutStopSec later."""
    env_lines = "\n".join(
        f"Environment={_systemd_quote(f'{k}={v}')}"
        for k, v in {"PATH": spec.path, "QUEUECTL_HOME": str(spec.home)}.items()
    )
    if spec.env_file is not None:
        env_lines += f"\nEnvironmentFile={spec.env_file}"
    user = f"User={spec.user}\n" if spec.system and spec.user else ""
    return f"""# Written by `queuectl service install --name {spec.name}`; remove it with
# `queuectl service uninstall --name {spec.name}`.
[Unit]
Description=queuectl workers ({spec.name})
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
ExecStart={" ".join(_systemd_quote(a) for a in spec.worker_argv())}
{env_lines}
WorkingDirectory={spec.home}
{user}Restart=on-failure
RestartSec=5
KillMode=mixed
KillSignal=SIGTERM
TimeoutStartSec=60
TimeoutStopSec={spec.stop_timeout_s + KILL_MARGIN_S:g}

[Install]
WantedBy={"multi-user.target" if spec.system else "default.target"}
"""


def systemd_unit_path(name: str, system: bool) -> Path:
    if system:
        return Path("/etc/systemd/system") / unit_name(name)
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "systemd" / "user" / unit_name(name)


def _systemctl(system: bool, *args: str) -> list[str]:
    return ["systemctl", *([] if system else ["--user"]), *args]


class SystemdManager:
    """The ServiceManager of Linux: units, systemctl and the journal."""

    def preview(self, spec: ServiceSpec) -> str:
        return systemd_unit(spec)

    def require(self) -> None:
        if not Path(RUNNING_MARK).is_dir():
            raise ServiceError(
                "systemd is not running on this machine (no /run/systemd/system): "
                "`queuectl service install --print` shows the unit it would install"
            )

    def install(
        self, spec: ServiceSpec, *, start: bool, account: str | None, note: Callable[[str], None]
    ) -> str:
        path = systemd_unit_path(spec.name, spec.system)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(systemd_unit(spec), encoding="utf-8")
        tool.run(_systemctl(spec.system, "daemon-reload"))
        now = ["--now"] if start else []
        tool.run(_systemctl(spec.system, "enable", *now, unit_name(spec.name)))
        return str(path)

    def caveats(self, spec: ServiceSpec) -> list[str]:
        """A user service stops at logout unless the user lingers."""
        if spec.system:
            return []
        user = os.environ.get("USER", "")
        linger = tool.run(["loginctl", "show-user", user, "-p", "Linger"], check=False)
        if "Linger=yes" in linger.stdout:
            return []
        return [
            "a user service stops when you log out; to keep it running, "
            f"`loginctl enable-linger {os.environ.get('USER', '$USER')}`"
        ]

    def uninstall(self, name: str, system: bool) -> None:
        path = installed_file(name, systemd_unit_path(name, system))
        self.require()
        unit = unit_name(name)
        # Stopped and disabled before the file goes, so no loaded unit is left behind.
        tool.run(_systemctl(system, "disable", "--now", unit))
        path.unlink()
        tool.run(_systemctl(system, "daemon-reload"))
        tool.run(_systemctl(system, "reset-failed", unit), check=False)

    def _control(self, what: str, name: str, system: bool) -> None:
        installed_file(name, systemd_unit_path(name, system))
        self.require()
        tool.run(_systemctl(system, what, unit_name(name)))

    def start(self, name: str, system: bool) -> None:
        self._control("start", name, system)

    def stop(self, name: str, system: bool) -> None:
        self._control("stop", name, system)

    def restart(self, name: str, system: bool) -> None:
        self._control("restart", name, system)

    def status(self, name: str, system: bool) -> dict[str, Any]:
        path = systemd_unit_path(name, system)
        view: dict[str, Any] = {"installed": path.exists(), "file": str(path)}
        if not path.exists() or not Path(RUNNING_MARK).is_dir():
            return {**view, "enabled": None, "running": None, "pid": None, "last_exit": None}
        props = tool.run(
            _systemctl(
                system,
                "show",
                unit_name(name),
                "-p",
                "UnitFileState,ActiveState,MainPID,ExecMainStatus",
            ),
            check=False,
        ).stdout
        p = dict(line.split("=", 1) for line in props.splitlines() if "=" in line)
        main_pid = int(p.get("MainPID", "0") or 0)
        return {
            **view,
            "enabled": p.get("UnitFileState") == "enabled",
            "running": p.get("ActiveState") == "active",
            "pid": main_pid or None,
            "last_exit": int(p["ExecMainStatus"]) if p.get("ExecMainStatus") else None,
        }

    def names(self, system: bool) -> list[str]:
        folder = systemd_unit_path("x", system).parent
        files = folder.glob("queuectl-*.service")
        return [p.name[len("queuectl-") : -len(".service")] for p in files]

    def logs(self, name: str, system: bool, follow: bool, echo: Callable[[str], None]) -> int:
        installed_file(name, systemd_unit_path(name, system))
        argv = ["journalctl", *([] if system else ["--user"]), "-u", unit_name(name)]
        argv += ["-f"] if follow else ["-n", "200", "--no-pager"]
        return tool.call(argv)

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
