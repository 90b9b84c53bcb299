"""Schedule commands: add, list, show, next, pause, resume, remove."""

from __future__ import annotations

import json

import click

from queuectl import _core
from queuectl.api import command_job
from queuectl.cli import complete, render
from queuectl.cli.app import App
from queuectl.cli.enqueue import _env_pairs, _read_input, flow_job_options
from queuectl.cli.params import Duration


@click.group(
    epilog="\b\nExamples:\n"
    "  queuectl schedule add nightly --cron '0 2 * * *' --command ./backup.sh\n"
    "  queuectl schedule list"
)
def schedule() -> None:
    """Jobs enqueued on a cron rule by the running workers."""


@schedule.command(
    "add",
    epilog="\b\nExamples:\n"
    "  queuectl schedule add nightly --cron '0 2 * * *' --tz Europe/Berlin --command ./backup.sh\n"
    '  queuectl schedule add poll --cron \'@every 10m\' \'{"command":"./poll.sh","queue":"io"}\'',
)
@click.argument("name")
@click.argument("job", required=False, metavar="[JSON]")
@click.option(
    "--cron", "cron", required=True, metavar="EXPR", help="5 fields, @daily, @every 10m..."
)
@click.option("--tz", metavar="ZONE", help="IANA time zone the rule is read in (default UTC).")
@click.option(
    "--overlap",
    type=click.Choice(["skip", "allow"]),
    default="skip",
    show_default=True,
    help="While the previous occurrence's job is unfinished: skip (and count) or enqueue anyway.",
)
@click.option("--command", "-c", metavar="CMD", help="The shell command each occurrence runs.")
@click.option("--priority", type=int, help="Higher runs first (default 0).")
@click.option("--max-retries", type=click.IntRange(min=0), help="Retries after the first run.")
@click.option("--timeout", type=Duration(), help="Kill the job after this long (0 = none).")
@click.option("--env", "env", multiple=True, metavar="K=V", help="Add K=V to its environment.")
@click.option(
    "--queue",
    "queue_name",
    metavar="Q",
    shell_complete=complete.queue_names,
    help="Its named queue (default: default).",
)
@click.option("--unique-key", metavar="K", help="Add nothing while an unfinished job has this key.")
@flow_job_options
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def add(
    app: App,
    name: str,
    job: str | None,
    cron: str,
    tz: str | None,
    overlap: str,
    command: str | None,
    priority: int | None,
    max_retries: int | None,
    timeout: float | None,
    env: tuple[str, ...],
    queue_name: str | None,
    unique_key: str | None,
    key: str | None,
    slots: int | None,
    retry_delays: list[float] | None,
    retry_on: list[int] | None,
    no_retry_on: list[int | str] | None,
    as_json: bool,
) -> None:
    """Add schedule NAME: the job (--command CMD with job flags, or JSON) is enqueued at
    every occurrence of --cron by the running workers, once however many run."""
    if (job is None) == (command is None):
        raise click.UsageError("give the job as --command CMD or as JSON, one of them")
    flags: tuple[object, ...] = (priority, max_retries, timeout, queue_name, unique_key)
    flags += (key, slots, retry_delays, retry_on, no_retry_on)
    if command is None:
        if any(f is not None for f in flags) or env:
            raise click.UsageError("job flags go with --command (in JSON, give the fields)")
        assert job is not None
        text = _read_input(job[1:]) if job.startswith("@") else job
    else:
        text = command_job(
            command,
            priority=priority,
            max_retries=max_retries,
            timeout_s=timeout,
            env=_env_pairs(env),
            queue=queue_name,
            unique_key=unique_key,
            key=key,
            slots=slots,
            retry_delays=retry_delays,
            retry_on=retry_on,
            no_retry_on=no_retry_on,
        )
    s = app.queue.schedule_add(name, cron, text, tz=tz, overlap=overlap)
    if as_json:
        render.emit_json(render.schedule_dict(s))
        return
    ((_, local),) = _core.schedule_times(s.cron, s.tz, s.next_fire_ms - 1, 1)
    click.echo(f"schedule {s.name}: next at {render.iso(s.next_fire_ms)} ({local} {s.tz})")


@schedule.command(
    "list", epilog="\b\nExamples:\n  queuectl schedule list\n  queuectl schedule list --json"
)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def list_schedules(app: App, as_json: bool) -> None:
    """Every schedule: its rule, when it fires next, what it fired."""
    rows = app.queue.schedules()
    if as_json:
        render.emit_json([render.schedule_dict(s) for s in rows])
        return
    if not rows:
        click.echo("no schedules")
        return
    render.table(
        ["NAME", "CRON", "TZ", "NEXT", "OVERLAP", "FIRED", "SKIPPED", "LAST JOB"],
        [
            [
                s.name,
                s.cron,
                s.tz,
                "paused" if s.paused else str(render.iso(s.next_fire_ms)),
                s.overlap,
                str(s.fired),
                str(s.skipped),
                f"{s.last_job_id} ({s.last_job_state or 'gone'})" if s.last_job_id else "-",
            ]
            for s in rows
        ],
    )


@schedule.command(
    "show",
    epilog="\b\nExamples:\n"
    "  queuectl schedule show nightly\n"
    "  queuectl schedule show nightly --json",
)
@click.argument("name", shell_complete=complete.schedule_names)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def show(app: App, name: str, as_json: bool) -> None:
    """One schedule, its job and its next occurrences."""
    s = app.queue.schedule(name)
    upcoming = app.queue.schedule_next(name, 5)
    d = render.schedule_dict(s)
    d["next"] = [render.iso(ms) for ms, _ in upcoming]
    if as_json:
        render.emit_json(d)
        return
    for key, value in d.items():
        if key == "job":
            value = json.dumps(value)
        if key == "next":
            value = ", ".join(f"{local}" for _, local in upcoming)
        if isinstance(value, bool):
            value = "yes" if value else "no"
        if value is not None:
            click.echo(f"{key + ':':15} {value}")


@schedule.command(
    "next",
    epilog="\b\nExamples:\n"
    "  queuectl schedule next nightly\n"
    "  queuectl schedule next nightly --count 10",
)
@click.argument("name", shell_complete=complete.schedule_names)
@click.option("--count", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def next_(app: App, name: str, count: int, as_json: bool) -> None:
    """When schedule NAME fires next: UTC, and local time in its zone."""
    upcoming = app.queue.schedule_next(name, count)
    if as_json:
        render.emit_json([{"at": render.iso(ms), "local": local} for ms, local in upcoming])
        return
    for ms, local in upcoming:
        click.echo(f"{render.iso(ms)}  {local}")


def _changed(app: App, name: str, what: str, as_json: bool) -> None:
    getattr(app.queue, f"schedule_{what}")(name)
    done = {"pause": "paused", "resume": "resumed", "remove": "removed"}[what]
    if as_json:
        render.emit_json({"schedule": name, done: True})
    else:
        click.echo(f"schedule {name}: {done}")


@schedule.command("pause", epilog="\b\nExamples:\n  queuectl schedule pause nightly")
@click.argument("name", shell_complete=complete.schedule_names)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def pause(app: App, name: str, as_json: bool) -> None:
    """Fire nothing until resumed."""
    _changed(app, name, "pause", as_json)


@schedule.command("resume", epilog="\b\nExamples:\n  queuectl schedule resume nightly")
@click.argument("name", shell_complete=complete.schedule_names)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def resume(app: App, name: str, as_json: bool) -> None:
    """Fire again from the next occurrence (those missed while paused are not fired)."""
    _changed(app, name, "resume", as_json)


@schedule.command("remove", epilog="\b\nExamples:\n  queuectl schedule remove nightly")
@click.argument("name", shell_complete=complete.schedule_names)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def remove(app: App, name: str, as_json: bool) -> None:
    """Remove the schedule; the jobs it enqueued stay."""
    _changed(app, name, "remove", as_json)
