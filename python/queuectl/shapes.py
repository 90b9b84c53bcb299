"""The JSON shapes that both `queuectl ... --json` prints and the dashboard's `/api/` serves:
a job, an attempt, a job with its history, a worker, a queue (and its rate), a schedule, the
status counts,
and what the shared actions report (retried, cancelled, deleted, queues paused or resumed).

Each shape is written here once, so that the CLI and the dashboard print the same bytes for
the same thing; the OpenAPI document (`queuectl.ui.openapi`) describes them and
tests/test_openapi.py checks the dashboard's answers against it. Times are ISO-8601 text in
UTC (`iso`), durations seconds. Shapes that only one side prints stay with it.

Cheap to import (every command that prints JSON loads it): nothing beyond the extension.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from queuectl import _core

if TYPE_CHECKING:
    from queuectl.api import CancelReport

__all__ = [
    "attempt_dict",
    "cancelled_dict",
    "deleted_dict",
    "iso",
    "job_detail_dict",
    "job_dict",
    "no_retry_on",
    "queue_dict",
    "rate_dict",
    "retried_dict",
    "schedule_dict",
    "status_dict",
    "switched_dict",
    "worker_dict",
]


def iso(ms: int | None) -> str | None:
    """A time in milliseconds since the epoch as the JSON shows it (None stays None)."""
    return None if ms is None else _core.format_time(ms)


def job_dict(job: _core.Job) -> dict[str, Any]:
    """A job (docs/reference/job-json.md): `env` gives the names only, never the values."""
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
        "key": job.key,
        "slots": job.slots,
        "retry_delays": None
        if job.retry_delays_ms is None
        else [ms / 1000 for ms in job.retry_delays_ms],
        "retry_on": job.retry_on,
        "no_retry_on": no_retry_on(job),
        "expires_at": iso(job.expires_at_ms),
    }


def no_retry_on(job: _core.Job) -> list[int | str] | None:
    """A job's `no_retry_on` as its JSON has it: the exit codes, then "timeout" if named."""
    codes: list[int | str] = list(job.no_retry_on or [])
    if job.no_retry_timeout:
        codes.append("timeout")
    return codes or None


def attempt_dict(a: _core.Attempt) -> dict[str, Any]:
    """One finished attempt of a job, with the tail of its output."""
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


def job_detail_dict(
    job: _core.Job, parents: Iterable[tuple[str, str]], attempts: Iterable[_core.Attempt]
) -> dict[str, Any]:
    """A job with the jobs it runs after (id and state) and its attempt history: `queuectl
    show --json` and `/api/jobs/{id}`."""
    d = job_dict(job)
    d["after"] = [{"id": p, "state": st} for p, st in parents]
    d["attempt_history"] = [attempt_dict(a) for a in attempts]
    return d


def worker_dict(w: _core.Worker, state: str) -> dict[str, Any]:
    """A worker with its state as shown (idle, busy, stopping, lost or exited)."""
    return {
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "state": state,
        "current_job": w.current_job,
        "queues": w.queues,
        "slots": w.slots,
        "started_at": iso(w.started_at_ms),
        "last_heartbeat": iso(w.heartbeat_ms),
    }


def queue_dict(q: _core.Queue) -> dict[str, Any]:
    """A named queue: paused or not, its limits and rate, how many of its jobs run, counts
    by state."""
    counts = dict(q.counts)
    return {
        "name": q.name,
        "paused": q.paused,
        "limit": q.limit,
        "rate": rate_dict(q.rate_n, q.rate_period_ms),
        "key_limit": q.key_limit,
        "running": counts.get("processing", 0),
        "jobs": counts,
    }


def rate_dict(n: int, period_ms: int) -> dict[str, Any] | None:
    """A queue's rate: at most `n` starts in any window of `period` seconds; None: no rate."""
    return {"n": n, "period": period_ms / 1000} if n else None


def schedule_dict(s: _core.Schedule) -> dict[str, Any]:
    """A schedule: its rule, its next and last firing, and the job it enqueues."""
    return {
        "name": s.name,
        "cron": s.cron,
        "tz": s.tz,
        "overlap": s.overlap,
        "paused": s.paused,
        "next_fire_at": None if s.paused else iso(s.next_fire_ms),
        "last_fire_at": iso(s.last_fire_ms),
        "last_job_id": s.last_job_id,
        "last_job_state": s.last_job_state,
        "fired": s.fired,
        "skipped": s.skipped,
        "job": json.loads(s.job),
        "created_at": iso(s.created_at_ms),
    }


def status_dict(
    counts: Mapping[str, int], workers: Sequence[tuple[_core.Worker, str]]
) -> dict[str, Any]:
    """Jobs counted by state and the live workers: `queuectl status --json`, `/api/status`."""
    return {"jobs": counts, "workers": [worker_dict(w, s) for w, s in workers]}


def retried_dict(n: int) -> dict[str, Any]:
    """What a retry did: how many jobs are pending again."""
    return {"retried": n}


def cancelled_dict(report: CancelReport) -> dict[str, Any]:
    """What a cancel did: the jobs cancelled, and the running ones their workers stop."""
    return {"cancelled": report.cancelled, "killing": report.killing}


def deleted_dict(ids: list[str]) -> dict[str, Any]:
    """What a delete did: the ids of the jobs removed."""
    return {"deleted": ids}


def switched_dict(names: list[str], what: str) -> dict[str, Any]:
    """Queues paused or resumed (`what`: "paused" or "resumed")."""
    return {"queues": names, what: True}
