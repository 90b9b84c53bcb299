"""`queuectl enqueue`: one job as JSON, many from a file, or the flag form."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from queuectl import _core
from queuectl.cli.app import App
from queuectl.cli.params import Duration

PROGRESS_MIN_JOBS = 50_000


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
    import json

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
