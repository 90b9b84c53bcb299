"""Commands on jobs named by id: cancel, retry, delete, wait, explain."""

from __future__ import annotations

import click

from queuectl.cli import complete, render
from queuectl.cli.app import App
from queuectl.cli.params import Duration


@click.command(epilog="\b\nExamples:\n  queuectl retry job1\n  queuectl retry job1 job2 --json")
@click.argument(
    "ids", nargs=-1, required=True, metavar="ID...", shell_complete=complete.retryable_job_ids
)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def retry(app: App, ids: tuple[str, ...], as_json: bool) -> None:
    """Put failed, dead or cancelled jobs back to pending, attempts reset, to run now.

    All or nothing: an unknown id, or a job in another state, changes nothing.
    """
    n = app.queue.retry(ids)
    if as_json:
        render.emit_json(render.retried_dict(n))
    else:
        click.echo(f"retrying {n} jobs")


@click.command(epilog="\b\nExamples:\n  queuectl cancel job1\n  queuectl cancel job1 job2 --json")
@click.argument(
    "ids", nargs=-1, required=True, metavar="ID...", shell_complete=complete.unfinished_job_ids
)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def cancel(app: App, ids: tuple[str, ...], as_json: bool) -> None:
    """Cancel jobs: waiting ones at once, running ones killed by their worker.

    A pending or failed job ends cancelled and never runs again. A processing job is
    killed (its whole process tree: a polite signal, then a forced kill) by its worker on
    whichever host, at the worker's next heartbeat, and ends cancelled, not retried.
    All or nothing: an unknown id, or a job that has ended, changes nothing.
    """
    report = app.queue.cancel(ids)
    if as_json:
        render.emit_json(render.cancelled_dict(report))
        return
    click.echo(f"cancelled {len(report.cancelled)} jobs")
    if report.killing:
        click.echo(
            f"{len(report.killing)} running job(s) will be killed by their workers within a "
            f"heartbeat: {', '.join(report.killing)}"
        )


@click.command(epilog="\b\nExamples:\n  queuectl delete job1\n  queuectl delete job1 job2 --json")
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=complete.job_ids)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def delete(app: App, ids: tuple[str, ...], as_json: bool) -> None:
    """Remove jobs with their history and logs (not while processing).

    All or nothing: an unknown id, or a job that is processing, changes nothing.
    """
    deleted = app.queue.delete(ids)
    if as_json:
        render.emit_json(render.deleted_dict(deleted))
    else:
        click.echo(f"deleted {len(deleted)} jobs")


@click.command(
    epilog="\b\nExamples:\n  queuectl wait job1\n  queuectl wait job1 job2 --timeout 10m --json"
)
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=complete.job_ids)
@click.option("--timeout", type=Duration(), help="Give up after this long (default: never).")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def wait(app: App, ids: tuple[str, ...], timeout: float | None, as_json: bool) -> int:
    """Wait until every job has ended (completed, dead or cancelled); exit 0 only if all
    completed.

    \b
    id=$(queuectl enqueue -c 'make build') && queuectl wait "$id" && echo built
    """
    result = app.queue.wait(ids, timeout)
    if as_json:
        render.emit_json({"jobs": result.states, "timed_out": result.timed_out})
    else:
        for job_id, state in result.states.items():
            click.echo(f"{job_id} {state}")
        if result.timed_out:
            click.echo(f"timed out after {timeout:g}s", err=True)
    return 0 if result.all_completed else 1


@click.command(epilog="\b\nExamples:\n  queuectl explain job1\n  queuectl explain job1 --json")
@click.argument("job_id", metavar="ID", shell_complete=complete.job_ids)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def explain(app: App, job_id: str, as_json: bool) -> None:
    """Say why a job is where it is: why it is not running yet, or why it ended so."""
    e = app.queue.explain(job_id)
    if as_json:
        render.emit_json(
            {
                "id": e.id,
                "state": e.state,
                "explanation": e.text,
                "reasons": e.reasons,
                "ahead": e.ahead,
                "next_try": e.next_try,
                "tries_left": e.tries_left,
            }
        )
    else:
        click.echo(e.text)
