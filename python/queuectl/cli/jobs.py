"""Job commands: status, list, show, logs, purge."""

from __future__ import annotations

import sys
import time

import click

from queuectl import _core, flow
from queuectl.api import ENDED_STATES, JOB_STATES
from queuectl.cli import complete, render
from queuectl.cli.app import App
from queuectl.cli.params import Duration, count
from queuectl.logs import Chunk, LogFollower

STATES = list(JOB_STATES)


@click.command(epilog="\b\nExamples:\n  queuectl status\n  queuectl status --json")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def status(app: App, as_json: bool) -> None:
    """Count jobs in every state and show the active workers."""
    counts = app.queue.counts()
    workers = app.queue.live_workers()
    if as_json:
        render.emit_json(render.status_dict(counts, workers))
        return
    render.table(["STATE", "JOBS"], [[state, str(n)] for state, n in counts.items()])
    click.echo()
    if not workers:
        click.echo("no active workers")
        return
    click.echo(f"{len(workers)} active worker(s)")
    render.worker_rows(workers, _core.now_ms())


@click.command(
    "list",
    epilog="\b\nExamples:\n"
    "  queuectl list --state failed\n"
    "  queuectl list --queue images --limit 20 --json",
)
@click.option("--state", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option(
    "--queue",
    metavar="Q",
    shell_complete=complete.queue_names,
    help="Only jobs of this named queue.",
)
@click.option("--limit", type=count(), help="At most this many jobs.")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def list_jobs(
    app: App, state: str | None, queue: str | None, limit: int | None, as_json: bool
) -> None:
    """List jobs, oldest first."""
    jobs = app.queue.jobs(state, limit, queue)
    if as_json:
        render.emit_json([render.job_dict(j) for j in jobs])
    else:
        render.job_rows(jobs)


@click.command(epilog="\b\nExamples:\n  queuectl show job1\n  queuectl show job1 --json")
@click.argument("job_id", metavar="ID", shell_complete=complete.job_ids)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def show(app: App, job_id: str, as_json: bool) -> None:
    """Show one job with its attempt history."""
    job = app.queue.get(job_id)
    attempts = app.queue.attempts(job_id)
    parents = app.queue.parents(job_id)
    if as_json:
        render.emit_json(render.job_detail_dict(job, parents, attempts))
        return
    fields = render.job_dict(job)
    fields["after"] = ", ".join(f"{p} ({st})" for p, st in parents) or None
    for key, value in fields.items():
        if key == "timeout" and not value:
            value = "none"
        if (key == "waiting_on" and not value) or (key == "slots" and value == 1):
            value = None
        if key == "retry_delays" and value:
            value = ", ".join(flow.duration_text(round(d * 1000)) for d in value)
        if key in ("retry_on", "no_retry_on") and value:
            value = ", ".join(str(c) for c in value)
        if key == "env":
            # Names only: the values may be secrets.
            value = ", ".join(value) if value else None
        if value is not None:
            click.echo(f"{key + ':':13} {value}")
    for a in attempts:
        click.echo()
        result = a.error or f"exit code {a.exit_code}"
        click.echo(
            f"attempt {a.attempt}: {a.outcome} ({result}) by {a.worker_id}, "
            f"{render.iso(a.started_at_ms)} to {render.iso(a.finished_at_ms)}"
        )
        for line in a.output_tail.splitlines()[-10:]:
            click.echo(f"  | {line}")


@click.command(epilog="\b\nExamples:\n  queuectl logs job1\n  queuectl logs --follow job1")
@click.argument("job_id", metavar="ID", shell_complete=complete.job_ids)
@click.option("--follow", "-f", is_flag=True, help="Keep printing output until the job ends.")
@click.pass_obj
def logs(app: App, job_id: str, follow: bool) -> None:
    """Print a job's output, attempt by attempt."""
    queue = app.queue
    job, path, ran_on, local = queue.log_location(job_id)
    finished = ENDED_STATES
    if not local:
        # The full log stays on the host that ran the job; the database has each tail.
        click.echo(
            f"(the full log is on host {ran_on!r}, as {path.name} in its logs folder)", err=True
        )
        while follow and job.state not in finished:
            time.sleep(0.2)
            job = queue.get(job_id)
        _print_tails(app, job)
        return
    # Following a job that has not printed yet: wait for its log (or its end).
    while follow and not path.exists() and job.state not in finished:
        time.sleep(0.2)
        job = queue.get(job_id)
    if not path.exists():
        attempts = queue.attempts(job_id)
        if not attempts:
            click.echo(f"no output yet (job is {job.state})", err=True)
            return
        # No file: the job printed nothing (it gets a log file with its first output).
        click.echo(f"(no log file here: {job.command!r} printed nothing)", err=True)
        _print_attempts(attempts)
        return
    # A follower, not a plain read: the worker may move the log's newest output back
    # (log-max-bytes) while it is being read.
    log = LogFollower(path)
    while True:
        if _print_chunk(log.read()):
            continue
        if not follow or queue.get(job_id).state in finished:
            if follow:
                # The job has ended: print whatever its last writes added, then stop.
                while _print_chunk(log.read()):
                    pass
            return
        time.sleep(0.2)


def _print_chunk(chunk: Chunk) -> bool:
    """Prints what a LogFollower read; returns whether there was anything."""
    if chunk.newline:
        sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.write(chunk.data)
    sys.stdout.buffer.flush()
    return bool(chunk.data)


def _print_tails(app: App, job: _core.Job) -> None:
    """Each finished attempt with the tail of its output, as the database keeps them."""
    attempts = app.queue.attempts(job.id)
    if not attempts:
        click.echo(f"no output yet (job is {job.state})", err=True)
        return
    _print_attempts(attempts)


def _print_attempts(attempts: list[_core.Attempt]) -> None:
    for a in attempts:
        click.echo(f"=== attempt {a.attempt} at {render.iso(a.started_at_ms)} by {a.worker_id}")
        if a.output_tail:
            click.echo(a.output_tail, nl=not a.output_tail.endswith("\n"))
        click.echo(f"=== {a.error or 'exit code 0'}")


@click.command(
    epilog="\b\nExamples:\n"
    "  queuectl purge --completed --older-than 7d\n"
    "  queuectl purge --dead --cancelled"
)
@click.option("--completed", is_flag=True, help="Delete completed jobs.")
@click.option("--dead", is_flag=True, help="Delete dead jobs (the DLQ).")
@click.option("--cancelled", is_flag=True, help="Delete cancelled jobs.")
@click.option("--older-than", type=Duration(), help="Only jobs finished at least this long ago.")
@click.pass_obj
def purge(app: App, completed: bool, dead: bool, cancelled: bool, older_than: float | None) -> None:
    """Delete finished jobs and their logs; prints how many."""
    if not (completed or dead or cancelled):
        raise click.UsageError("give --completed, --dead, --cancelled or several")
    ids: list[str] = []
    for state, wanted in (("completed", completed), ("dead", dead), ("cancelled", cancelled)):
        if wanted:
            ids += app.queue.purge(state, older_than)
    click.echo(f"purged {len(ids)} jobs")
