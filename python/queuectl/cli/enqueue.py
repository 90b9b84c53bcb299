"""`queuectl enqueue`: one job as JSON, many from a file, or the flag form."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from queuectl import _core, flow
from queuectl.api import EnqueueReport, Queue, command_job
from queuectl.cli import complete
from queuectl.cli.app import App
from queuectl.cli.params import Delays, Duration, ExitCodes, Expiry

PROGRESS_MIN_JOBS = 50_000


def flow_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The flow-control flags of a job (DESIGN.md section 13), shared with `schedule add`
    (which takes all but --expires: an occurrence's expiry is not one fixed time)."""
    f = click.option(
        "--expires",
        type=Expiry(),
        metavar="WHEN",
        help='Cancel it ("expired") if it has not started by then: 30m from now, or ISO.',
    )(f)
    return flow_job_options(f)


def flow_job_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--key, --slots, --retry-delays, --retry-on and --no-retry-on."""
    for option in reversed(
        [
            click.option(
                "--key",
                metavar="K",
                help="Its key: the queue's key-limit caps running jobs with one key.",
            ),
            click.option(
                "--slots",
                type=click.IntRange(1, flow.MAX_JOB_SLOTS),
                help="Slots of a worker process it needs (default 1; see worker start).",
            ),
            click.option(
                "--retry-delays",
                type=Delays(),
                metavar="D[,D...]",
                help="Wait before each retry, the last repeating (10s,1m,5m).",
            ),
            click.option(
                "--retry-on",
                type=ExitCodes(),
                metavar="CODES",
                help="Retry only on these exit codes (75,111).",
            ),
            click.option(
                "--no-retry-on",
                type=ExitCodes(timeout=True),
                metavar="CODES",
                help="Dead at once on these exit codes, or timeout (2,timeout).",
            ),
        ]
    ):
        f = option(f)
    return f


def _read_input(source: str) -> str:
    """`-` is stdin, `@FILE` (for JOB) or a path (for --file) is read as UTF-8."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise click.ClickException(f"cannot read {source}: {e}") from None


def _check_flags(run_at: str | None, delay: float | None) -> None:
    """The flag-form mistakes that are usage errors (exit 2), before anything is opened."""
    if run_at is not None and delay is not None:
        raise click.UsageError("give --run-at or --delay, not both")
    if run_at is not None:
        try:
            _core.parse_time(run_at)
        except _core.InputError as e:
            raise click.BadParameter(str(e), param_hint="--run-at") from None


@click.command(
    epilog="\b\nExamples:\n"
    "  queuectl enqueue --command 'echo hi'\n"
    "  queuectl enqueue --file jobs.jsonl"
)
@click.argument("job", required=False, metavar="[JSON]")
@click.option(
    "--file",
    "file_",
    metavar="F",
    shell_complete=complete.files,
    help="JSON Lines or a JSON array of jobs; - = stdin.",
)
@click.option("--command", "-c", metavar="CMD", help="Enqueue this shell command (flag form).")
@click.option("--id", "job_id", metavar="ID", help="Job id (flag form; default: generated).")
@click.option("--priority", type=int, help="Higher runs first (flag form; default 0).")
@click.option("--max-retries", type=click.IntRange(min=0), help="Retries after the first run.")
@click.option("--timeout", type=Duration(), help="Kill the job after this long (0 = none).")
@click.option("--run-at", metavar="ISO", help="Not before this ISO-8601 time (UTC if no offset).")
@click.option("--delay", type=Duration(), help="Not before this long from now (30s, 5m, ...).")
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="K=V",
    help="Add K=V to the job's environment (repeatable; shown by name only).",
)
@click.option(
    "--queue",
    "queue_name",
    metavar="Q",
    shell_complete=complete.queue_names,
    help="Its named queue (default: default).",
)
@click.option(
    "--unique-key",
    metavar="K",
    help="Add nothing while an unfinished job has this key (prints that job's id).",
)
@click.option(
    "--after",
    "after",
    multiple=True,
    metavar="ID",
    shell_complete=complete.job_ids,
    help="Run once job ID has completed (repeatable: all of them); cancelled if one never does.",
)
@flow_options
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
    env: tuple[str, ...],
    queue_name: str | None,
    unique_key: str | None,
    after: tuple[str, ...],
    key: str | None,
    slots: int | None,
    retry_delays: list[float] | None,
    retry_on: list[int] | None,
    no_retry_on: list[int | str] | None,
    expires: str | None,
) -> None:
    """Add a job: JSON (a string, @FILE, or - for stdin), --file for many, or --command.

    \b
    queuectl enqueue '{"id":"job1","command":"sleep 2"}'
    queuectl enqueue --command 'make test' --priority 5 --delay 30s
    queuectl enqueue --command 'convert a.png' --queue images
    queuectl enqueue --command './report.sh' --after fetch --after transform
    queuectl enqueue --command './deploy.sh acme' --key acme --slots 4 --expires 30m
    """
    forms = [x for x in (job, file_, command) if x is not None]
    if len(forms) != 1:
        raise click.UsageError("give exactly one of JSON, --file or --command")
    flags = (job_id, priority, max_retries, timeout, run_at, delay, queue_name, unique_key)
    flow_flags = (key, slots, retry_delays, retry_on, no_retry_on, expires)
    if command is None and (any(f is not None for f in (*flags, *flow_flags)) or env or after):
        raise click.UsageError(
            "--id, --priority, --max-retries, --timeout, --run-at, --delay, --env, --queue, "
            "--unique-key, --key, --slots, --retry-delays, --retry-on, --no-retry-on, "
            "--expires and --after go with --command (in JSON, give the fields)"
        )
    queue = app.queue
    if command is not None:
        _check_flags(run_at, delay)
        text = command_job(
            command,
            id=job_id,
            priority=priority,
            max_retries=max_retries,
            timeout_s=timeout,
            run_at=run_at,
            delay_s=delay,
            env=_env_pairs(env),
            queue=queue_name,
            unique_key=unique_key,
            after=after,
            key=key,
            slots=slots,
            retry_delays=retry_delays,
            retry_on=retry_on,
            no_retry_on=no_retry_on,
            expires=expires,
        )
        _said_one(queue.enqueue_report(text))
        return
    if file_ is None:
        assert job is not None
        text = (
            _read_input(job[1:]) if job.startswith("@") else _read_input(job) if job == "-" else job
        )
        if job != "-" and not job.startswith("@") and not text.lstrip().startswith(("{", "[")):
            # A bare command where JSON belongs: say what the user most likely meant (with
            # the command quoted to type back, when it can be shown on one line).
            hint = f" {shlex_quote(text)}" if text.isprintable() else ""
            raise click.ClickException(
                f"{text!r} is not a JSON job; to enqueue a shell command as it is, "
                f"use --command{hint}"
            )
        _said_one(queue.enqueue_report(text))
        return
    report = _enqueue_batch(queue, _read_input(file_))
    added = len(report.ids) - len(report.skipped)
    if report.skipped:
        click.echo(
            f"enqueued {added} jobs; skipped {len(report.skipped)} whose unique_key an "
            "unfinished job has"
        )
    else:
        click.echo(f"enqueued {added} jobs")


def _said_one(report: EnqueueReport) -> None:
    """The id on stdout; a note on stderr when an unfinished job had its unique key."""
    (job_id,) = report.ids
    if report.skipped:
        click.echo(f"not added: job {job_id} has this unique_key and is unfinished", err=True)
    click.echo(job_id)


def _env_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    """`--env K=V` flags as a mapping; a later K wins."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


def shlex_quote(text: str) -> str:
    """`text` quoted for a POSIX shell, as the user would type it back."""
    import shlex

    return shlex.quote(text)


def _enqueue_batch(queue: Queue, text: str) -> EnqueueReport:
    """One all-or-nothing batch, with a progress bar when it is large and stderr a terminal."""
    if not sys.stderr.isatty() or text.count("\n") < PROGRESS_MIN_JOBS:
        return queue.enqueue_report(text, batch=True)
    with click.progressbar(length=1, label="enqueueing", file=sys.stderr) as bar:
        seen = {"done": 0}

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - seen["done"])
            seen["done"] = done

        report = queue.enqueue_report(text, batch=True, progress=progress)
        bar.length = len(report.ids)
        bar.update(len(report.ids) - seen["done"])
    return report
