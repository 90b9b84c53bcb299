"""Worker services: `queuectl service` on systemd (Linux), launchd (macOS) and the Windows
service manager.

What a service runs is decided here once, whatever the platform: the very executable
that installed it, by absolute path (the one-file binary, or this interpreter with
`-m queuectl`), with the home and database resolved at install time, `PATH` captured, and
the worker flags. The unit and the property list are plain text built from that; on
Windows the Rust core creates the service and hosts it (`service run`).
"""

from __future__ import annotations

import os
import plistlib
import re
import sys
from pathlib import Path
from typing import NamedTuple

from queuectl import QueuectlError
from queuectl.home import Home

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: How long systemd and launchd wait past the workers' own stop timeout before they kill.
KILL_MARGIN_S = 15


class ServiceError(QueuectlError):
    """A service cannot be installed or managed as asked."""


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ServiceError(
            f"service name {name!r}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def self_command() -> list[str]:
    """How to run this same queuectl again, by absolute path."""
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "queuectl"]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments skipped; quotes around a value dropped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ServiceError(f"cannot read the env file {path}: {e}") from None
    env: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ServiceError(f"{path}:{n}: not NAME=VALUE: {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key] = value
    return env


class ServiceSpec(NamedTuple):
    """Everything an installed service is made of."""

    name: str
    system: bool
    workers: int
    queues: tuple[str, ...] | None
    lease_s: float
    stop_timeout_s: float
    home: Path
    db: str
    command: tuple[str, ...]
    path: str
    env: tuple[tuple[str, str], ...] = ()
    env_file: Path | None = None
    user: str | None = None

    @classmethod
    def build(
        cls,
        name: str,
        home: Home,
        *,
        system: bool = False,
        count: int = 1,
        queues: tuple[str, ...] | None = None,
        lease_s: float = 30.0,
        stop_timeout_s: float = 60.0,
        env_file: Path | None = None,
        user: str | None = None,
    ) -> ServiceSpec:
        validate_name(name)
        env: tuple[tuple[str, str], ...] = ()
        if env_file is not None:
            env_file = env_file.expanduser().absolute()
            env = tuple(read_env_file(env_file).items())
        if system and user is None:
            import getpass

            user = getpass.getuser()
        return cls(
            name=name,
            system=system,
            workers=count,
            queues=queues,
            lease_s=lease_s,
            stop_timeout_s=stop_timeout_s,
            home=home.dir,
            db=home.db,
            command=tuple(self_command()),
            path=os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            env=env,
            env_file=env_file,
            user=user,
        )

    def worker_flags(self) -> list[str]:
        """--count, --lease, --stop-timeout and --queue as the service passes them on."""
        flags = ["--count", str(self.workers), "--lease", f"{self.lease_s:g}"]
        flags += ["--stop-timeout", f"{self.stop_timeout_s:g}"]
        if self.queues:
            flags += ["--queue", ",".join(self.queues)]
        return flags

    def worker_argv(self) -> list[str]:
        """The command line the service runs."""
        head = [*self.command, "--home", str(self.home), "--db", self.db]
        return [*head, "worker", "start", *self.worker_flags()]

    def environment(self) -> dict[str, str]:
        """The variables the service starts with: PATH as captured, the home, the env file."""
        return {"PATH": self.path, "QUEUECTL_HOME": str(self.home), **dict(self.env)}


# systemd


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


# launchd


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


# Windows: the executable answers the service manager itself (`service run`, hosted by
# the Rust core); what the service needs beyond its command line is kept in the home.


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


def platform_kind() -> str:
    """systemd, launchd, or windows."""
    if sys.platform == "darwin":
        return "launchd"
    if sys.platform == "win32":
        return "windows"
    return "systemd"
