"""Job commands: enqueue, status, list, show, logs, purge."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from queuectl import _core
from queuectl.cli import render
from queuectl.cli.app import App
from queuectl.duration import parse_seconds
from queuectl.supervisor import live_workers

STATES = ["pending", "processing", "completed", "failed", "dead"]
PROGRESS_MIN_JOBS = 50_000


class Duration(click.ParamType):  # type: ignore[type-arg]
    """Seconds, or a number with s, m, h or d."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_seconds(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


def _read_input(source: str) -> str:
    """`-` is stdin, `@FILE` (for JOB) or a path (for --file) is read as UTF-8."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise click.ClickException(f"cannot read {source}: {e}") from None


def _flag_job(
    command: str,
    job_id: str | None,
    priority: int | None,
    max_retries: int | None,
    timeout: float | None,
    run_at: str | None,
    delay: float | None,
) -> str:
    spec: dict[str, Any] = {"command": command}
    if job_id is not None:
        spec["id"] = job_id
    if priority is not None:
        spec["priority"] = priority
    if max_retries is not None:
        spec["max_retries"] = max_retries
    if timeout is not None:
        spec["timeout"] = timeout
    if run_at is not None and delay is not None:
        raise click.UsageError("give --run-at or --delay, not both")
    if run_at is not None:
        try:
            _core.parse_time(run_at)
        except _core.InputError as e:
            raise click.BadParameter(str(e), param_hint="--run-at") from None
        spec["run_at"] = run_at
    if delay is not None:
        spec["run_at"] = _core.format_time(_core.now_ms() + round(delay * 1000))
    return json.dumps(spec)


@click.command()
@click.argument("job", required=False, metavar="[JSON]")
@click.option("--file", "file_", metavar="F", help="JSON Lines or a JSON array of jobs; - = stdin.")
@click.option("--command", "-c", metavar="CMD", help="Enqueue this shell command (flag form).")
@click.option("--id", "job_id", metavar="ID", help="Job id (flag form; default: generated).")
@click.option("--priority", type=int, help="Higher runs first (flag form; default 0).")
@click.option("--max-retries", type=click.IntRange(min=0), help="Retries after the first run.")
@click.option("--timeout", type=Duration(), help="Kill the job after this long (0 = none).")
@click.option("--run-at", metavar="ISO", help="Not before this ISO-8601 time (UTC if no offset).")
@click.option("--delay", type=Duration(), help="Not before this long from now (30s, 5m, ...).")
@click.pass_obj
def enqueue(
    app: App,
    job: str | None,
    file_: str | None,
    command: str | None,
    job_id: str | None,
    priority: int | None,
    max_retries: int | None,
    timeout: float | None,
    run_at: str | None,
    delay: float | None,
) -> None:
    """Add a job: JSON (a string, @FILE, or - for stdin), --file for many, or --command.

    \b
    queuectl enqueue '{"id":"job1","command":"sleep 2"}'
    queuectl enqueue --command 'make test' --priority 5 --delay 30s
    queuectl enqueue --file jobs.jsonl
    """
    forms = [x for x in (job, file_, command) if x is not None]
    if len(forms) != 1:
        raise click.UsageError("give exactly one of JSON, --file or --command")
    flags = (job_id, priority, max_retries, timeout, run_at, delay)
    if command is None and any(f is not None for f in flags):
        raise click.UsageError(
            "--id, --priority, --max-retries, --timeout, --run-at and --delay go with --command"
        )
    if command is not None:
        text = _flag_job(command, job_id, priority, max_retries, timeout, run_at, delay)
    elif file_ is not None:
        text = _read_input(file_)
    else:
        assert job is not None
        text = (
            _read_input(job[1:]) if job.startswith("@") else _read_input(job) if job == "-" else job
        )
    store = app.store
    cfg = app.config()
    defaults: dict[str, Any] = {
        "max_retries": cfg.max_retries,
        "timeout_ms": round(cfg.job_timeout_s * 1000),
        "cwd": os.getcwd(),
    }
    if file_ is None:
        (new_id,) = store.enqueue_json(text, batch=False, **defaults)
        click.echo(new_id)
        return
    ids = _enqueue_batch(store, text, defaults)
    click.echo(f"enqueued {len(ids)} jobs")


def _enqueue_batch(store: _core.Store, text: str, defaults: dict[str, Any]) -> list[str]:
    """One all-or-nothing batch, with a progress bar when it is large and stderr a terminal."""
    if not sys.stderr.isatty() or text.count("\n") < PROGRESS_MIN_JOBS:
        return store.enqueue_json(text, batch=True, **defaults)
    with click.progressbar(length=1, label="enqueueing", file=sys.stderr) as bar:
        seen = {"done": 0}

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - seen["done"])
            seen["done"] = done

        ids = store.enqueue_json(text, batch=True, progress=progress, **defaults)
        bar.length = len(ids)
        bar.update(len(ids) - seen["done"])
    return ids


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def status(app: App, as_json: bool) -> None:
    """Count jobs in every state and show the active workers."""
    counts: dict[str, int] = dict(app.store.counts())
    workers = live_workers(app.store)
    if as_json:
        render.emit_json(
            {"jobs": counts, "workers": [render.worker_dict(w, s) for w, s in workers]}
        )
        return
    render.table(["STATE", "JOBS"], [[state, str(n)] for state, n in counts.items()])
    click.echo()
    if not workers:
        click.echo("no active workers")
        return
    now = _core.now_ms()
    click.echo(f"{len(workers)} active worker(s)")
    render.table(
        ["WORKER", "HOST", "PID", "STATE", "JOB", "HEARTBEAT"],
        [
            [w.id, w.host, str(w.pid), s, w.current_job or "-", render.age(w.heartbeat_ms, now)]
            for w, s in workers
        ],
    )


@click.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(min=0), help="At most this many jobs.")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def list_jobs(app: App, state: str | None, limit: int | None, as_json: bool) -> None:
    """List jobs, oldest first."""
    jobs = app.store.jobs(state, limit)
    if as_json:
        render.emit_json([render.job_dict(j) for j in jobs])
    else:
        render.job_rows(jobs)


@click.command()
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def show(app: App, job_id: str, as_json: bool) -> None:
    """Show one job with its attempt history."""
    job = app.store.get(job_id)
    attempts = app.store.attempts(job_id)
    if as_json:
        d = render.job_dict(job)
        d["attempt_history"] = [render.attempt_dict(a) for a in attempts]
        render.emit_json(d)
        return
    for key, value in render.job_dict(job).items():
        if key == "timeout" and not value:
            value = "none"
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


@click.command()
@click.argument("job_id", metavar="ID")
@click.option("--follow", "-f", is_flag=True, help="Keep printing output until the job ends.")
@click.pass_obj
def logs(app: App, job_id: str, follow: bool) -> None:
    """Print a job's output, attempt by attempt."""
    job = app.store.get(job_id)
    path = _core.log_path(str(app.home.logs_dir), job_id)
    if not path.exists():
        attempts = app.store.attempts(job_id)
        if not attempts:
            click.echo(f"no output yet (job is {job.state})", err=True)
            return
        click.echo(
            f"(no log file at {path}; the full log is on the host that ran the job. "
            "Showing the tail kept in the database.)",
            err=True,
        )
        for a in attempts:
            click.echo(f"=== attempt {a.attempt}: {a.error or 'exit code 0'}")
            click.echo(a.output_tail, nl=not a.output_tail.endswith("\n"))
        return
    with path.open("rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                continue
            if not follow or app.store.get(job_id).state in ("completed", "dead"):
                if follow:
                    # The job has ended: print whatever its last writes added, then stop.
                    rest = f.read()
                    sys.stdout.buffer.write(rest)
                return
            time.sleep(0.2)


@click.command()
@click.option("--completed", is_flag=True, help="Delete completed jobs.")
@click.option("--dead", is_flag=True, help="Delete dead jobs (the DLQ).")
@click.option("--older-than", type=Duration(), help="Only jobs finished at least this long ago.")
@click.pass_obj
def purge(app: App, completed: bool, dead: bool, older_than: float | None) -> None:
    """Delete finished jobs and their logs; prints how many."""
    if not (completed or dead):
        raise click.UsageError("give --completed, --dead or both")
    cutoff = None if older_than is None else _core.now_ms() - round(older_than * 1000)
    ids: list[str] = []
    for state, wanted in (("completed", completed), ("dead", dead)):
        if wanted:
            ids += app.store.purge(state, cutoff)
    for job_id in ids:
        _core.log_path(str(app.home.logs_dir), job_id).unlink(missing_ok=True)
    click.echo(f"purged {len(ids)} jobs")
