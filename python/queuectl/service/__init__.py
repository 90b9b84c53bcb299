"""Worker services: `queuectl service` on systemd (Linux), launchd (macOS) and the Windows
service manager, behind one interface, `ServiceManager`.

`for_this_platform()` is the one place that looks at the platform. What a service is made
of (its name, command line, environment and worker flags) is decided once in `spec`,
whatever the platform; `systemd`, `launchd` and `windows` each turn it into their
manager's terms and drive that manager. The unit and the property list are plain text,
built (and tested) on any platform; the Windows module is imported on Windows only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol

from queuectl.home import Home
from queuectl.service.launchd import (
    launchd_label,
    launchd_log,
    launchd_plist,
    launchd_plist_path,
)
from queuectl.service.spec import (
    KILL_MARGIN_S,
    NAME_RE,
    ServiceError,
    ServiceSpec,
    read_env_file,
    self_command,
    validate_name,
)
from queuectl.service.systemd import systemd_unit, systemd_unit_path, unit_name

__all__ = [
    "KILL_MARGIN_S",
    "NAME_RE",
    "ServiceError",
    "ServiceManager",
    "ServiceSpec",
    "for_this_platform",
    "launchd_label",
    "launchd_log",
    "launchd_plist",
    "launchd_plist_path",
    "read_env_file",
    "self_command",
    "systemd_unit",
    "systemd_unit_path",
    "unit_name",
    "validate_name",
]


class ServiceManager(Protocol):
    """What `queuectl service` asks of the operating system's service manager. A service is
    known by its name and scope (`system`: a system service rather than a user one). Every
    method that acts on an installed service raises ServiceError, "no service named ... is
    installed", when it is not; none of them prints."""

    def preview(self, spec: ServiceSpec) -> str:
        """What `install --print` prints: the unit, the property list, or the command line
        the service manager would start. Ends with a newline."""
        ...

    def require(self) -> None:
        """Raises ServiceError when the service manager cannot take a service here (checked
        before anything is installed, the database included)."""
        ...

    def install(
        self, spec: ServiceSpec, *, start: bool, account: str | None, note: Callable[[str], None]
    ) -> str:
        """Installs and enables the service, and starts it if `start`. `account`: the
        Windows account it runs as. What the manager reports along the way goes to `note`.
        Returns where it is installed, as `installed ...` names it (a path, or a service)."""
        ...

    def caveats(self, spec: ServiceSpec) -> list[str]:
        """What the user should know about the service just installed."""
        ...

    def uninstall(self, name: str, system: bool) -> None:
        """Stops the service (running jobs finish, up to its stop timeout), then removes it."""
        ...

    def start(self, name: str, system: bool) -> None: ...

    def stop(self, name: str, system: bool) -> None: ...

    def restart(self, name: str, system: bool) -> None: ...

    def status(self, name: str, system: bool) -> dict[str, Any]:
        """What the manager says about the service: installed, file, enabled, running, pid,
        last_exit (None where it cannot tell). Also for a service that is not installed."""
        ...

    def names(self, system: bool) -> list[str]:
        """The names of the queuectl services installed in this scope, in no order."""
        ...

    def logs(self, name: str, system: bool, follow: bool, echo: Callable[[str], None]) -> int:
        """Shows the last 200 lines of the service's log, and with `follow` what comes
        after: a log reader run on this terminal, or the log file's lines (each ending with
        its newline) given to `echo`. Returns the exit code."""
        ...

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
        """`service run`, what a service manager that starts this executable itself starts:
        hosts the workers until the service stops, calling `prepare` once the service's
        environment is in place. Where the manager runs `worker start`, a ServiceError."""
        ...


def for_this_platform(home: Home) -> ServiceManager:
    """The service manager of this machine; `home` is where Windows keeps what a service
    needs beyond its command line."""
    if sys.platform == "win32":
        from queuectl.service.windows import WindowsManager

        return WindowsManager(home)
    if sys.platform == "darwin":
        from queuectl.service.launchd import LaunchdManager

        return LaunchdManager()
    from queuectl.service.systemd import SystemdManager

    return SystemdManager()
