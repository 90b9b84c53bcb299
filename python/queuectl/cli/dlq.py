"""The dead letter queue: jobs that failed every attempt."""

from __future__ import annotations

import click

from queuectl.cli import complete, render
from queuectl.cli.app import App
from queuectl.cli.params import count


@click.group(epilog="\b\nExamples:\n  queuectl dlq list\n  queuectl dlq retry --all")
def dlq() -> None:
    """View and retry jobs in the dead letter queue."""


@dlq.command(
    "list", epilog="\b\nExamples:\n  queuectl dlq list\n  queuectl dlq list --limit 20 --json"
)
@click.option("--limit", type=count(), help="At most this many jobs.")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def dlq_list(app: App, limit: int | None, as_json: bool) -> None:
    """List dead jobs, oldest first."""
    jobs = app.queue.jobs("dead", limit)
    if as_json:
        render.emit_json([render.job_dict(j) for j in jobs])
        return
    if not jobs:
        click.echo("the DLQ is empty")
        return
    render.table(
        ["ID", "ATTEMPTS", "LAST ERROR", "COMMAND"],
        [
            [
                render.short(j.id, 28),
                str(j.attempts),
                render.short(j.last_error, 40),
                render.short(j.command, 40),
            ]
            for j in jobs
        ],
    )


@dlq.command(
    "retry", epilog="\b\nExamples:\n  queuectl dlq retry job1 job2\n  queuectl dlq retry --all"
)
@click.argument("ids", nargs=-1, metavar="ID...", shell_complete=complete.dead_job_ids)
@click.option("--all", "all_", is_flag=True, help="Retry every dead job.")
@click.pass_obj
def dlq_retry(app: App, ids: tuple[str, ...], all_: bool) -> None:
    """Put dead jobs back to pending with attempts reset to 0."""
    if bool(ids) == all_:
        raise click.UsageError("give job ids or --all")
    n = app.queue.retry_all_dead() if all_ else app.queue.retry_dead(ids)
    click.echo(f"retrying {n} jobs")
