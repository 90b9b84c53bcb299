"""`queuectl service`: workers as a systemd (Linux), launchd (macOS) or Windows service.

The options are parsed and the answers printed here; the work is done by the service
manager of this platform (`queuectl.service.for_this_platform`), so no command here asks
which platform it runs on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from queuectl import _core, flow, service, supervisor
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


def _note(text: str) -> None:
    click.echo(f"note: {text}", err=True)


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
@click.option(
    "--slots",
    type=click.IntRange(1, flow.MAX_WORKER_SLOTS),
    help="Slots of the workers' process (default: --count; see worker start).",
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
    slots: int | None,
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
        slots=slots,
    )
    manager = service.for_this_platform(app.home)
    if print_only:
        click.echo(manager.preview(spec), nl=False)
        return
    manager.require()
    app.queue.store  # noqa: B018 - create and migrate the database before the service runs
    app.home.ensure()
    where = manager.install(spec, start=not no_start, account=account, note=_note)
    click.echo(f"installed {where}" + ("" if no_start else "; started"))
    for caveat in manager.caveats(spec):
        _note(caveat)


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
    service.for_this_platform(app.home).uninstall(name, system)
    click.echo(f"uninstalled {name}")


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
            manager = service.for_this_platform(app.home)
            act = {"start": manager.start, "stop": manager.stop, "restart": manager.restart}
            act[what](name, system)
            click.echo(f"{what}: {name}")

        return cmd

    service_group.add_command(_make(_what))


def _status(app: App, manager: service.ServiceManager, name: str, system: bool) -> dict[str, Any]:
    view = {
        "name": name,
        "scope": "system" if system else "user",
        **manager.status(name, system),
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
    s = _status(app, service.for_this_platform(app.home), name, system)
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
    manager = service.for_this_platform(app.home)
    rows = [_status(app, manager, n, system) for n in sorted(manager.names(system))]
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
    manager = service.for_this_platform(app.home)
    sys.exit(manager.logs(name, system, follow, echo=lambda line: click.echo(line, nl=False)))


@service_group.command("run", hidden=True)
@name_option
@click.option("--count", type=int, default=1)
@click.option("--queue", "queues", default=None)
@click.option("--slots", type=click.IntRange(1, flow.MAX_WORKER_SLOTS), default=None)
@click.option("--lease", type=float, default=30.0)
@click.option("--stop-timeout", type=float, default=60.0)
@click.pass_obj
def run(
    app: App,
    name: str,
    count: int,
    queues: str | None,
    slots: int | None,
    lease: float,
    stop_timeout: float,
) -> None:
    """What the Windows service manager starts: hosts the workers until the service stops."""
    service.for_this_platform(app.home).run(
        name,
        count=count,
        queues=queues.split(",") if queues else None,
        slots=slots,
        lease_s=lease,
        stop_timeout_s=stop_timeout,
        prepare=lambda: app.queue.store,  # migrated before the workers start
    )
