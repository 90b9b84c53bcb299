"""How jobs, attempts and workers look to a person, and as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from queuectl import _core


def iso(ms: int | None) -> str | None:
    return None if ms is None else _core.format_time(ms)


def job_dict(job: _core.Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "command": job.command,
        "state": job.state,
        "queue": job.queue,
        "attempts": job.attempts,
        "max_retries": job.max_retries,
        "priority": job.priority,
        "run_at": iso(job.run_at_ms),
        "timeout": job.timeout_ms / 1000,
        "cwd": job.cwd,
        "env": job.env_names,
        "created_at": iso(job.created_at_ms),
        "updated_at": iso(job.updated_at_ms),
        "started_at": iso(job.started_at_ms),
        "finished_at": iso(job.finished_at_ms),
        "exit_code": job.exit_code,
        "last_error": job.last_error,
        "worker_id": job.worker_id,
        "cancel_requested_at": iso(job.cancel_requested_ms),
        "unique_key": job.unique_key,
        "waiting_on": job.waiting_on,
    }


def attempt_dict(a: _core.Attempt) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "worker_id": a.worker_id,
        "started_at": iso(a.started_at_ms),
        "finished_at": iso(a.finished_at_ms),
        "exit_code": a.exit_code,
        "error": a.error,
        "outcome": a.outcome,
        "output_tail": a.output_tail,
    }


def worker_dict(w: _core.Worker, state: str) -> dict[str, Any]:
    return {
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "state": state,
        "current_job": w.current_job,
        "queues": w.queues,
        "started_at": iso(w.started_at_ms),
        "last_heartbeat": iso(w.heartbeat_ms),
    }


def queue_dict(q: _core.Queue) -> dict[str, Any]:
    counts = dict(q.counts)
    return {
        "name": q.name,
        "paused": q.paused,
        "limit": q.limit,
        "running": counts.get("processing", 0),
        "jobs": counts,
    }


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
                f"{j.attempts}/{j.max_retries + 1}",
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
        ["WORKER", "HOST", "PID", "STATE", "JOB", "HEARTBEAT"],
        [
            [w.id, w.host, str(w.pid), s, w.current_job or "-", age(w.heartbeat_ms, now_ms)]
            for w, s in workers
        ],
    )
