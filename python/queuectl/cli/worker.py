"""Worker commands: start, stop, list."""

from __future__ import annotations

import click

from queuectl import _core, flow, supervisor
from queuectl.cli import complete, render
from queuectl.cli.app import App
from queuectl.cli.params import Duration


@click.group(
    epilog="\b\nExamples:\n  queuectl worker start --detach --count 2\n  queuectl worker stop"
)
def worker() -> None:
    """Run and stop workers."""


@worker.command(
    "start",
    epilog="\b\nExamples:\n"
    "  queuectl worker start --count 4\n"
    "  queuectl worker start --burst --queue images,video",
)
@click.option(
    "--count",
    "-n",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="How many workers.",
)
@click.option(
    "--slots",
    type=click.IntRange(1, flow.MAX_WORKER_SLOTS),
    help="Slots of this process: its running jobs' slots add up to at most this "
    "(default: --count).",
)
@click.option("--burst", is_flag=True, help="Exit when no job is due.")
@click.option("--detach", is_flag=True, help="Run in the background; return once they are up.")
@click.option(
    "--lease",
    type=Duration(),
    default=_core.DEFAULT_LEASE_MS / 1000,
    show_default=True,
    help="A job of a worker silent this long is returned to the queue.",
)
@click.option(
    "--queue",
    "queues",
    metavar="Q[,Q...]",
    shell_complete=complete.queue_name_lists,
    help="Take jobs only from these named queues (default: every queue).",
)
@click.option(
    "--stop-timeout",
    type=Duration(),
    default=None,
    help="After a stop signal, kill and requeue jobs still running after this long.",
)
@click.option("--quiet", "-q", is_flag=True, help="Do not log each job to stderr.")
@click.pass_obj
def start(
    app: App,
    count: int,
    slots: int | None,
    burst: bool,
    detach: bool,
    lease: float,
    queues: str | None,
    stop_timeout: float | None,
    quiet: bool,
) -> None:
    """Start COUNT workers: in the foreground (Ctrl-C stops them after their current job;
    a second Ctrl-C kills the jobs and requeues them), or with --detach in the background."""
    names = None
    if queues is not None:
        names = tuple(dict.fromkeys(n.strip() for n in queues.split(",")))
        for n in names:
            try:
                _core.validate_queue(n)
            except _core.InputError as e:
                raise click.BadParameter(str(e), param_hint="--queue") from None
    settings = supervisor.WorkerSettings(
        worker_count=count,
        slots=slots,
        burst=burst,
        lease_s=lease,
        verbose=not quiet,
        queues=names,
        stop_timeout_s=stop_timeout,
    )
    if detach:
        app.queue.store  # noqa: B018 - create and migrate the database: errors show here
        pid = supervisor.start_detached(app.home, settings)
        click.echo(f"started {count} worker(s) in process {pid}; log: {app.home.worker_log}")
        return
    # The pool opens (and creates or migrates) the database itself, waiting out a store
    # that does not answer yet for a while (a server restarting, a connection reset).
    summary = supervisor.run_foreground(app.home, settings)
    click.echo(
        f"workers stopped: {summary['completed']} completed, {summary['failed']} failed, "
        f"{summary['dead']} dead, {summary['cancelled']} cancelled, "
        f"{summary['requeued']} requeued",
        err=True,
    )


@worker.command(
    "stop",
    epilog="\b\nExamples:\n  queuectl worker stop --timeout 60\n  queuectl worker stop --force",
)
@click.option("--timeout", type=Duration(), help="Give up waiting after this long (exit 1).")
@click.option("--force", is_flag=True, help="Kill running jobs and put them back to pending.")
@click.option("--no-wait", is_flag=True, help="Return once the request is recorded.")
@click.option("--host", help="Only the workers of this host.")
@click.option("--id", "worker_id", metavar="WORKER", help="Only this worker (see worker list).")
@click.pass_obj
def stop(
    app: App,
    timeout: float | None,
    force: bool,
    no_wait: bool,
    host: str | None,
    worker_id: str | None,
) -> None:
    """Stop every running worker, on any host sharing the database."""
    n = app.queue.stop_workers(
        force=force, wait=not no_wait, timeout_s=timeout, host=host, worker=worker_id
    )
    if n == 0:
        click.echo("no workers running")
    elif no_wait:
        click.echo(f"asked {n} worker(s) to stop")
    else:
        click.echo(f"stopped {n} worker(s)")


@worker.command(
    "list", epilog="\b\nExamples:\n  queuectl worker list\n  queuectl worker list --all --json"
)
@click.option("--all", "all_", is_flag=True, help="Include exited and lost workers.")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def list_workers(app: App, all_: bool, as_json: bool) -> None:
    """Show each running worker: id, host, pid, state, current job, last heartbeat."""
    rows = app.queue.workers(include_exited=all_)
    if as_json:
        render.emit_json([render.worker_dict(w, s) for w, s in rows])
        return
    if not rows:
        click.echo("no workers running")
        return
    render.worker_rows(rows, _core.now_ms())
