"""`queuectl service`: workers as a systemd (Linux), launchd (macOS) or Windows service."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from queuectl import _core, service, supervisor
from queuectl.cli import complete, render
from queuectl.cli.app import App
from queuectl.cli.params import Duration

name_option = click.option(
    "--name", default="default", show_default=True, help="Which instance (several may run)."
)
scope_option = click.option(
    "--system",
    "system",
    is_flag=True,
    help="A system service (boot, as the installing user) rather than --user (login).",
)
user_option = click.option("--user", "user_scope", is_flag=True, help="A user service (default).")


@click.group(
    "service",
    epilog="\b\nExamples:\n  queuectl service install --count 2\n  queuectl service status",
)
def service_group() -> None:
    """Run workers as a service of the operating system: systemd on Linux, launchd on
    macOS, the service manager on Windows."""


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise service.ServiceError(f"{argv[0]} is not installed here") from None
    if check and r.returncode != 0:
        why = (r.stderr or r.stdout).strip().splitlines()
        raise service.ServiceError(
            f"`{' '.join(argv)}` failed: {why[-1] if why else f'exit code {r.returncode}'}"
        )
    return r


def _systemctl(system: bool, *args: str) -> list[str]:
    return ["systemctl", *([] if system else ["--user"]), *args]


def _require_systemd() -> None:
    if not Path("/run/systemd/system").is_dir():
        raise service.ServiceError(
            "systemd is not running on this machine (no /run/systemd/system): "
            "`queuectl service install --print` shows the unit it would install"
        )


def _domain(system: bool) -> str:
    return "system" if system else f"gui/{os.getuid()}"  # type: ignore[attr-defined,unused-ignore]


def _windows_install(app: App, spec: service.ServiceSpec, account: str | None) -> list[str]:
    """Writes the service's environment into the home and creates the service."""
    import json

    state = service.windows_state_file(spec.home, spec.name)
    state.write_text(json.dumps({"env": spec.environment()}), encoding="utf-8")
    notes: list[str] = _core.winservice_install(  # type: ignore[attr-defined,unused-ignore]
        service.windows_service_name(spec.name),
        spec.command[0],
        service.windows_arguments(spec),
        f"queuectl workers ({spec.name}): runs the jobs of {spec.db}",
        account,
    )
    return notes


@service_group.command(
    "install",
    epilog="\b\nExamples:\n"
    "  queuectl service install --count 2\n"
    "  queuectl service install --name images --queue images",
)
@name_option
@scope_option
@user_option
@click.option("--count", "-n", type=click.IntRange(1, 1024), default=1, show_default=True)
@click.option(
    "--queue",
    "queues",
    metavar="Q[,Q...]",
    shell_complete=complete.queue_name_lists,
    help="Only these named queues.",
)
@click.option("--lease", type=Duration(), default=_core.DEFAULT_LEASE_MS / 1000, show_default=True)
@click.option(
    "--stop-timeout",
    type=Duration(),
    default=60.0,
    show_default=True,
    help="How long running jobs get to finish when the service stops.",
)
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), metavar="F")
@click.option("--no-start", is_flag=True, help="Install and enable, but do not start now.")
@click.option(
    "--account",
    metavar="NAME",
    help="Windows: the account the service runs as (default NT AUTHORITY\\LocalService).",
)
@click.option("--print", "print_only", is_flag=True, help="Print the unit or plist only.")
@click.pass_obj
def install(
    app: App,
    name: str,
    system: bool,
    user_scope: bool,
    count: int,
    queues: str | None,
    lease: float,
    stop_timeout: float,
    env_file: Path | None,
    no_start: bool,
    account: str | None,
    print_only: bool,
) -> None:
    """Install (and start) workers as a service that comes back after a crash and at
    boot (--system) or login (--user)."""
    if system and user_scope:
        raise click.UsageError("give --system or --user, not both")
    names = None
    if queues is not None:
        names = tuple(dict.fromkeys(n.strip() for n in queues.split(",")))
        for n in names:
            _core.validate_queue(n)
    spec = service.ServiceSpec.build(
        name,
        app.home,
        system=system,
        count=count,
        queues=names,
        lease_s=lease,
        stop_timeout_s=stop_timeout,
        env_file=env_file,
    )
    kind = service.platform_kind()
    if kind == "windows":
        argv = [spec.command[0], *service.windows_arguments(spec)]
        if print_only:
            click.echo(" ".join(argv))
            return
        app.queue.store  # noqa: B018 - create and migrate the database before the service runs
        app.home.ensure()
        for note in _windows_install(app, spec, account):
            click.echo(f"note: {note}", err=True)
        if not no_start:
            _core.winservice_start(service.windows_service_name(name), 60.0)  # type: ignore[attr-defined,unused-ignore]
        click.echo(
            f"installed service {service.windows_service_name(name)}"
            + ("" if no_start else "; started")
        )
        return
    text = service.systemd_unit(spec) if kind == "systemd" else service.launchd_plist(spec).decode()
    if print_only:
        click.echo(text, nl=False)
        return
    if kind == "systemd":
        _require_systemd()
    app.queue.store  # noqa: B018 - create and migrate the database before the service runs
    app.home.ensure()
    if kind == "systemd":
        path = service.systemd_unit_path(name, system)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        _run(_systemctl(system, "daemon-reload"))
        now = [] if no_start else ["--now"]
        _run(_systemctl(system, "enable", *now, service.unit_name(name)))
        click.echo(f"installed {path}" + ("" if no_start else "; started"))
        if not system:
            linger = _run(
                ["loginctl", "show-user", os.environ.get("USER", ""), "-p", "Linger"], check=False
            )
            if "Linger=yes" not in linger.stdout:
                click.echo(
                    "note: a user service stops when you log out; to keep it running, "
                    f"`loginctl enable-linger {os.environ.get('USER', '$USER')}`",
                    err=True,
                )
        return
    path = service.launchd_plist_path(name, system)
    path.parent.mkdir(parents=True, exist_ok=True)
    service.launchd_log(name).parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    if not no_start:
        _run(["launchctl", "bootstrap", _domain(system), str(path)])
    click.echo(f"installed {path}" + ("" if no_start else "; started"))


def _installed_path(name: str, system: bool, home: Path | None = None) -> Path:
    kind = service.platform_kind()
    if kind == "windows":
        assert home is not None
        path = service.windows_state_file(home, name)
        if not path.exists():
            raise service.ServiceError(
                f"no service named {name!r} is installed ({path} does not exist)"
            )
        return path
    path = (
        service.systemd_unit_path(name, system)
        if kind == "systemd"
        else service.launchd_plist_path(name, system)
    )
    if not path.exists():
        raise service.ServiceError(
            f"no service named {name!r} is installed ({path} does not exist)"
        )
    return path


@service_group.command(
    "uninstall",
    epilog="\b\nExamples:\n"
    "  queuectl service uninstall\n"
    "  queuectl service uninstall --name images",
)
@name_option
@scope_option
@click.pass_obj
def uninstall(app: App, name: str, system: bool) -> None:
    """Stop the service (running jobs finish, up to its stop timeout), then remove it."""
    path = _installed_path(name, system, app.home.dir)
    if service.platform_kind() == "windows":
        _core.winservice_uninstall(service.windows_service_name(name), 600.0)  # type: ignore[attr-defined,unused-ignore]
        path.unlink()
    elif service.platform_kind() == "systemd":
        _require_systemd()
        unit = service.unit_name(name)
        # Stopped and disabled before the file goes, so no loaded unit is left behind.
        _run(_systemctl(system, "disable", "--now", unit))
        path.unlink()
        _run(_systemctl(system, "daemon-reload"))
        _run(_systemctl(system, "reset-failed", unit), check=False)
    else:
        label = service.launchd_label(name)
        _run(["launchctl", "bootout", f"{_domain(system)}/{label}"], check=False)
        path.unlink()
    click.echo(f"uninstalled {name}")


def _control(name: str, system: bool, what: str, home: Path) -> None:
    _installed_path(name, system, home)
    if service.platform_kind() == "windows":
        win = service.windows_service_name(name)
        if what in ("stop", "restart"):
            _core.winservice_stop(win, 600.0)  # type: ignore[attr-defined,unused-ignore]
        if what in ("start", "restart"):
            _core.winservice_start(win, 60.0)  # type: ignore[attr-defined,unused-ignore]
    elif service.platform_kind() == "systemd":
        _require_systemd()
        _run(_systemctl(system, what, service.unit_name(name)))
    else:
        target = f"{_domain(system)}/{service.launchd_label(name)}"
        argv = {
            "start": ["launchctl", "kickstart", target],
            "stop": ["launchctl", "kill", "SIGTERM", target],
            "restart": ["launchctl", "kickstart", "-k", target],
        }[what]
        _run(argv)
    click.echo(f"{what}: {name}")


for _what in ("start", "stop", "restart"):

    def _make(what: str) -> click.Command:
        @click.command(
            what,
            help=f"{what.capitalize()} the service.",
            epilog=f"\b\nExamples:\n  queuectl service {what}\n"
            f"  queuectl service {what} --name images",
        )
        @name_option
        @scope_option
        @click.pass_obj
        def cmd(app: App, name: str, system: bool) -> None:
            _control(name, system, what, app.home.dir)

        return cmd

    service_group.add_command(_make(_what))


def _os_view(name: str, system: bool, home: Path) -> dict[str, Any]:
    """What the operating system says about the service."""
    kind = service.platform_kind()
    if kind == "windows":
        path = service.windows_state_file(home, name)
        view: dict[str, Any] = {"installed": path.exists(), "file": str(path), "last_exit": None}
        try:
            state, pid = _core.winservice_query(service.windows_service_name(name))  # type: ignore[attr-defined,unused-ignore]
        except _core.QueuectlError:
            return {**view, "installed": False, "enabled": None, "running": None, "pid": None}
        return {**view, "enabled": True, "running": state == "Running", "pid": pid}
    if kind == "systemd":
        path = service.systemd_unit_path(name, system)
        view = {"installed": path.exists(), "file": str(path)}
        if not path.exists() or not Path("/run/systemd/system").is_dir():
            return {**view, "enabled": None, "running": None, "pid": None, "last_exit": None}
        props = _run(
            _systemctl(
                system,
                "show",
                service.unit_name(name),
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
    path = service.launchd_plist_path(name, system)
    view = {"installed": path.exists(), "file": str(path)}
    if not path.exists():
        return {**view, "enabled": None, "running": None, "pid": None, "last_exit": None}
    out = _run(
        ["launchctl", "print", f"{_domain(system)}/{service.launchd_label(name)}"], check=False
    )
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


def _status(app: App, name: str, system: bool) -> dict[str, Any]:
    view = {
        "name": name,
        "scope": "system" if system else "user",
        **_os_view(name, system, app.home.dir),
    }
    here = supervisor.host_name()
    workers = [
        render.worker_dict(w, state)
        for w, state in app.queue.workers()
        if view.get("pid") is not None and w.pid == view["pid"] and w.host == here
    ]
    return {**view, "workers": workers}


@service_group.command(
    "status", epilog="\b\nExamples:\n  queuectl service status\n  queuectl service status --json"
)
@name_option
@scope_option
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def status(app: App, name: str, system: bool, as_json: bool) -> None:
    """What the operating system says about the service, and its workers' heartbeats."""
    s = _status(app, name, system)
    if as_json:
        render.emit_json(s)
        return
    if not s["installed"]:
        click.echo(f"service {name}: not installed")
        return
    state = {True: "running", False: "stopped", None: "unknown"}[s["running"]]
    click.echo(f"service {name} ({s['scope']}): {state}, pid {s['pid'] or '-'}, file {s['file']}")
    click.echo(f"{len(s['workers'])} worker(s) registered by it")


@service_group.command(
    "list", epilog="\b\nExamples:\n  queuectl service list\n  queuectl service list --system"
)
@scope_option
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def list_services(app: App, system: bool, as_json: bool) -> None:
    """The queuectl services installed (user ones, or with --system the system ones)."""
    kind = service.platform_kind()
    if kind == "windows":
        files = app.home.dir.glob("service-*.json")
        names = [p.name[len("service-") : -len(".json")] for p in files]
    elif kind == "systemd":
        folder = service.systemd_unit_path("x", system).parent
        files = folder.glob("queuectl-*.service")
        names = [p.name[len("queuectl-") : -len(".service")] for p in files]
    else:
        folder = service.launchd_plist_path("x", system).parent
        files = folder.glob("io.queuectl.*.plist")
        names = [p.name[len("io.queuectl.") : -len(".plist")] for p in files]
    rows = [_status(app, n, system) for n in sorted(names)]
    if as_json:
        render.emit_json(rows)
        return
    if not rows:
        click.echo("no services")
        return
    render.table(
        ["NAME", "SCOPE", "RUNNING", "PID", "WORKERS"],
        [
            [r["name"], r["scope"], str(r["running"]), str(r["pid"] or "-"), str(len(r["workers"]))]
            for r in rows
        ],
    )


@service_group.command(
    "logs",
    epilog="\b\nExamples:\n  queuectl service logs\n  queuectl service logs --follow --name images",
)
@name_option
@scope_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.pass_obj
def logs(app: App, name: str, system: bool, follow: bool) -> None:
    """The service's log: the journal on Linux, ~/Library/Logs/queuectl/NAME.log on macOS,
    HOME/service-NAME.log on Windows."""
    _installed_path(name, system, app.home.dir)
    if service.platform_kind() == "windows":
        _follow(service.windows_log(app.home.dir, name), follow)
        return
    if service.platform_kind() == "systemd":
        argv = ["journalctl", *([] if system else ["--user"]), "-u", service.unit_name(name)]
        argv += ["-f"] if follow else ["-n", "200", "--no-pager"]
    else:
        argv = ["tail", *(["-f"] if follow else ["-n", "200"]), str(service.launchd_log(name))]
    try:
        sys.exit(subprocess.call(argv))
    except FileNotFoundError:
        raise service.ServiceError(f"{argv[0]} is not installed here") from None


def _follow(path: Path, follow: bool) -> None:
    """The last 200 lines of a log file, and with `follow` what is appended to it."""
    with (
        contextlib.suppress(FileNotFoundError),
        open(path, encoding="utf-8", errors="replace") as f,
    ):
        for line in f.readlines()[-200:]:
            click.echo(line, nl=False)
        while follow:
            line = f.readline()
            if line:
                click.echo(line, nl=False)
            else:
                time.sleep(0.5)


@service_group.command("run", hidden=True)
@name_option
@click.option("--count", type=int, default=1)
@click.option("--queue", "queues", default=None)
@click.option("--lease", type=float, default=30.0)
@click.option("--stop-timeout", type=float, default=60.0)
@click.pass_obj
def run(
    app: App, name: str, count: int, queues: str | None, lease: float, stop_timeout: float
) -> None:
    """What the Windows service manager starts: hosts the workers until the service stops."""
    import json

    if service.platform_kind() != "windows":
        raise service.ServiceError("`service run` is what the Windows service manager starts")
    state = json.loads(service.windows_state_file(app.home.dir, name).read_text(encoding="utf-8"))
    os.environ.update(state.get("env", {}))
    app.queue.store  # noqa: B018 - migrated before the workers start
    _core.winservice_run(  # type: ignore[attr-defined,unused-ignore]
        service.windows_service_name(name),
        app.home.db,
        str(app.home.logs_dir),
        str(service.windows_log(app.home.dir, name)),
        count,
        round(lease * 1000),
        stop_timeout,
        supervisor.host_name(),
        queues.split(",") if queues else None,
    )
