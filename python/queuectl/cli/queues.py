"""Named queue commands: list, pause, resume, limit."""

from __future__ import annotations

import click

from queuectl.cli import complete, render
from queuectl.cli.app import App
from queuectl.cli.params import count


@click.group(epilog="\b\nExamples:\n  queuectl queue list\n  queuectl queue limit images 2")
def queue() -> None:
    """Named queues: counts, pause and resume, limits."""


@queue.command("list", epilog="\b\nExamples:\n  queuectl queue list\n  queuectl queue list --json")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def list_queues(app: App, as_json: bool) -> None:
    """Every queue that has jobs or settings: jobs by state, running, limit, paused."""
    rows = app.queue.queues()
    if as_json:
        render.emit_json([render.queue_dict(q) for q in rows])
        return
    if not rows:
        click.echo("no queues")
        return
    states = [s for s, _ in rows[0].counts]
    render.table(
        ["QUEUE", *(s.upper() for s in states), "LIMIT", "PAUSED"],
        [
            [
                q.name,
                *(str(n) for _, n in q.counts),
                str(q.limit) if q.limit else "-",
                "yes" if q.paused else "no",
            ]
            for q in rows
        ],
    )


@queue.command(
    "pause",
    epilog="\b\nExamples:\n  queuectl queue pause images\n  queuectl queue pause images video",
)
@click.argument(
    "names", nargs=-1, required=True, metavar="Q...", shell_complete=complete.queue_names
)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def pause(app: App, names: tuple[str, ...], as_json: bool) -> None:
    """Hold queues on every host: their jobs are not claimed; running ones finish."""
    app.queue.pause(names)
    _said(as_json, names, "paused")


@queue.command("resume", epilog="\b\nExamples:\n  queuectl queue resume images")
@click.argument(
    "names", nargs=-1, required=True, metavar="Q...", shell_complete=complete.queue_names
)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def resume(app: App, names: tuple[str, ...], as_json: bool) -> None:
    """Release paused queues."""
    app.queue.resume(names)
    _said(as_json, names, "resumed")


@queue.command(
    "limit",
    epilog="\b\nExamples:\n  queuectl queue limit images 2\n  queuectl queue limit images 0",
)
@click.argument("name", metavar="Q", shell_complete=complete.queue_names)
@click.argument("limit", type=count(), metavar="N")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def limit(app: App, name: str, limit: int, as_json: bool) -> None:
    """At most N jobs of queue Q processing at once, over every worker on every host
    (0 = no limit)."""
    app.queue.set_limit(name, limit)
    if as_json:
        render.emit_json({"queue": name, "limit": limit})
    elif limit:
        click.echo(f"queue {name}: at most {limit} job(s) at once")
    else:
        click.echo(f"queue {name}: no limit")


def _said(as_json: bool, names: tuple[str, ...], what: str) -> None:
    unique = list(dict.fromkeys(names))
    if as_json:
        render.emit_json(render.switched_dict(unique, what))
    else:
        click.echo(f"{what}: {', '.join(unique)}")
