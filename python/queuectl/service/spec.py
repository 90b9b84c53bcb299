"""What an installed worker service is made of, whatever the platform: its name, the
executable that installed it, the home and database, the environment, and the worker
flags, written once here for the unit, the property list and the Windows service.

The service runs the very executable that installed it, by absolute path (the one-file
binary, or this interpreter with `-m queuectl`), with the home and database resolved at
install time, `PATH` captured, and the variables of an env file.
"""

from __future__ import annotations

import os
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


#: What `service run` says where the service manager starts the workers' own command.
NOT_HOSTED = "`service run` is what the Windows service manager starts"


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ServiceError(
            f"service name {name!r}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def installed_file(name: str, path: Path) -> Path:
    """`path`, the file an installed service `name` has; ServiceError when it is missing."""
    if not path.exists():
        raise ServiceError(f"no service named {name!r} is installed ({path} does not exist)")
    return path


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
    #: Slots of the worker process (`worker start --slots`); None: as many as workers.
    slots: int | None = None

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
        slots: int | None = None,
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
            slots=slots,
        )

    def worker_flags(self) -> list[str]:
        """--count, --lease, --stop-timeout, --queue and --slots as the service passes them
        on."""
        flags = ["--count", str(self.workers), "--lease", f"{self.lease_s:g}"]
        flags += ["--stop-timeout", f"{self.stop_timeout_s:g}"]
        if self.queues:
            flags += ["--queue", ",".join(self.queues)]
        if self.slots is not None:
            flags += ["--slots", str(self.slots)]
        return flags

    def worker_argv(self) -> list[str]:
        """The command line the service runs (on systemd and launchd)."""
        head = [*self.command, "--home", str(self.home), "--db", self.db]
        return [*head, "worker", "start", *self.worker_flags()]

    def environment(self) -> dict[str, str]:
        """The variables the service starts with: PATH as captured, the home, the env file."""
        return {"PATH": self.path, "QUEUECTL_HOME": str(self.home), **dict(self.env)}
