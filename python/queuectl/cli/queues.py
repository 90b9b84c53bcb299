"""Named queue commands: list, pause, resume, limit."""

from __future__ import annotations

import click

from queuectl import flow
from queuectl.cli import complete, render
from queuectl.cli.app import App
from queuectl.cli.params import RateText, count


@click.group(epilog="\b\nExamples:\n  queuectl queue list\n  queuectl queue limit images 2")
def queue() -> None:
    """Named queues: counts, pause and resume, limits, rates."""


@queue.command("list", epilog="\b\nExamples:\n  queuectl queue list\n  queuectl queue list --json")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def list_queues(app: App, as_json: bool) -> None:
    """Every queue that has jobs or settings: jobs by state, running, limit, rate, key
    limit, paused."""
    rows = app.queue.queues()
    if as_json:
        render.emit_json([render.queue_dict(q) for q in rows])
        return
    if not rows:
        click.echo("no queues")
        return
    states = [s for s, _ in rows[0].counts]
    render.table(
        ["QUEUE", *(s.upper() for s in states), "LIMIT", "RATE", "KEY LIMIT", "PAUSED"],
        [
            [
                q.name,
                *(str(n) for _, n in q.counts),
                str(q.limit) if q.limit else "-",
                render.rate_text(q) or "-",
                str(q.key_limit) if q.key_limit else "-",
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


@queue.command(
    "rate",
    epilog="\b\nExamples:\n  queuectl queue rate api 10/s\n  queuectl queue rate mail none",
)
@click.argument("name", metavar="Q", shell_complete=complete.queue_names)
@click.argument("rate", type=RateText(), metavar="N/PERIOD")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def rate(app: App, name: str, rate: flow.Rate, as_json: bool) -> None:
    """At most N jobs of queue Q start in any window of PERIOD (10/s, 100/1m, 5/1h; at
    most 1,000,000 per 30d), over every worker on every host; the jobs past it stay pending.
    `none` lifts the rate."""
    app.queue.set_rate(name, rate.n, rate.period_ms / 1000)
    if as_json:
        render.emit_json({"queue": name, "rate": render.rate_dict(rate.n, rate.period_ms)})
    elif rate.n:
        click.echo(f"queue {name}: at most {rate.n} start(s) in any {rate.period_text}")
    else:
        click.echo(f"queue {name}: no rate")


@queue.command(
    "key-limit",
    epilog="\b\nExamples:\n"
    "  queuectl queue key-limit deploys 1\n"
    "  queuectl queue key-limit deploys 0",
)
@click.argument("name", metavar="Q", shell_complete=complete.queue_names)
@click.argument("limit", type=count(), metavar="N")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def key_limit(app: App, name: str, limit: int, as_json: bool) -> None:
    """At most N jobs of queue Q with the same key processing at once, over every worker
    on every host; jobs without a key are not counted (0 = no limit)."""
    app.queue.set_key_limit(name, limit)
    if as_json:
        render.emit_json({"queue": name, "key_limit": limit})
    elif limit:
        click.echo(f"queue {name}: at most {limit} job(s) with one key at once")
    else:
        click.echo(f"queue {name}: no key limit")


def _said(as_json: bool, names: tuple[str, ...], what: str) -> None:
    unique = list(dict.fromkeys(names))
    if as_json:
        render.emit_json(render.switched_dict(unique, what))
    else:
        click.echo(f"{what}: {', '.join(unique)}")
