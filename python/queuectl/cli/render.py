"""How jobs, attempts and workers look to a person (tables, short cells, ages), and the
one way the CLI prints JSON (`emit_json`).

The JSON shapes themselves are `queuectl.shapes`, shared with the dashboard's `/api/`;
they are re-exported here so that a command needs this one module to print.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from queuectl import _core, flow
from queuectl.shapes import (
    attempt_dict,
    cancelled_dict,
    deleted_dict,
    iso,
    job_detail_dict,
    job_dict,
    queue_dict,
    rate_dict,
    retried_dict,
    schedule_dict,
    status_dict,
    switched_dict,
    worker_dict,
)

__all__ = [
    "age",
    "attempt_dict",
    "cancelled_dict",
    "deleted_dict",
    "emit_json",
    "iso",
    "job_detail_dict",
    "job_dict",
    "job_rows",
    "queue_dict",
    "rate_dict",
    "rate_text",
    "retried_dict",
    "schedule_dict",
    "short",
    "status_dict",
    "switched_dict",
    "table",
    "worker_dict",
    "worker_rows",
]


def emit_json(value: Any) -> None:
    import json

    click.echo(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def short(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns, as wide as their widest cell."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    for row in [headers, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def age(ms: int, now_ms: int) -> str:
    secs = max(0, now_ms - ms) / 1000
    if secs < 60:
        return f"{secs:.1f}s ago"
    if secs < 3600:
        return f"{secs / 60:.0f}m ago"
    return f"{secs / 3600:.1f}h ago"


def rate_text(q: _core.Queue) -> str | None:
    """A queue's rate as `queue rate` takes it (10/1m), None when it has none."""
    return flow.Rate(q.rate_n, q.rate_period_ms).text if q.rate_n else None


def job_rows(jobs: list[_core.Job]) -> None:
    if not jobs:
        click.echo("no jobs")
        return
    table(
        ["ID", "STATE", "QUEUE", "ATTEMPTS", "PRIORITY", "RUN AT", "COMMAND"],
        [
            [
                short(j.id, 28),
                j.state,
                short(j.queue, 16),
                f"{j.attempts}/{_core.tries_left(0, j.max_retries)}",
                str(j.priority),
                iso(j.run_at_ms) or "",
                short(j.command, 48),
            ]
            for j in jobs
        ],
    )


def worker_rows(workers: Sequence[tuple[_core.Worker, str]], now_ms: int) -> None:
    """Workers with their displayed state, as `worker list` and `status` show them."""
    table(
        ["WORKER", "HOST", "PID", "SLOTS", "STATE", "JOB", "HEARTBEAT"],
        [
            [
                w.id,
                w.host,
                str(w.pid),
                "-" if w.slots is None else str(w.slots),
                s,
                w.current_job or "-",
                age(w.heartbeat_ms, now_ms),
            ]
            for w, s in workers
        ],
    )
