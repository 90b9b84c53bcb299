"""Why a job is where it is (`queuectl explain`, `Queue.explain`): what keeps it from
running (its state, its run_at, its parents not done, a paused queue, a full queue and the
jobs holding it, no worker serving its queue) or how it ended.

It only reads: the job, its parents, its named queue, the workers and its attempts, through
the few queue methods `Source` names (the API's `Queue` has them).
Cheap to import (the API imports it at every start): nothing beyond the extension.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from queuectl import _core
from queuectl.text import span

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Explanation", "Source", "WorkerSeen", "explain"]


class WorkerSeen(Protocol):
    """A worker with its state as shown (what `Queue.workers` lists)."""

    @property
    def worker(self) -> _core.Worker: ...

    @property
    def state(self) -> str: ...


class Source(Protocol):
    """What an explanation reads of a queue: exactly the methods used here, which
    the API's `Queue` has."""

    @property
    def store(self) -> _core.Store: ...

    def get(self, id: str) -> _core.Job: ...

    def attempts(self, id: str) -> list[_core.Attempt]: ...

    def workers(self, include_exited: bool = False) -> Sequence[WorkerSeen]: ...

    def live_workers(self, host: str | None = None) -> Sequence[WorkerSeen]: ...


class Explanation(NamedTuple):
    """Why a job is where it is: its state and the reasons, in order (see Queue.explain)."""

    id: str
    state: str
    reasons: list[str]
    #: Due jobs a claim would take first (pending or failed jobs that are due).
    ahead: int | None
    #: When a job that is not due yet runs next (ISO-8601).
    next_try: str | None
    #: Attempts a failed job has left.
    tries_left: int | None

    @property
    def text(self) -> str:
        """One short paragraph."""
        return f"job {self.id} is {self.state}: " + "; ".join(self.reasons) + "."


# The rules this module reads: tries come from the core (`_core.tries_left`), as the
# settle that decides a retry counts them; which states a claim takes and which shown
# worker states leave a running job to be rescued are named once here.


def _claimable(state: str) -> bool:
    """Whether a claim takes a job in `state` once it is due."""
    return state in ("pending", "failed")


def _tries(job: _core.Job) -> int:
    """How many attempts the job may make in all: the first and its retries."""
    return _core.tries_left(0, job.max_retries)


def _tries_left(job: _core.Job) -> int:
    """How many attempts the job has left."""
    return _core.tries_left(job.attempts, job.max_retries)


def _gone(worker_state: str) -> bool:
    """Whether a worker in this shown state no longer runs its job (its lease runs out)."""
    return worker_state in ("lost", "exited", "unknown")


def explain(queue: Source, id: str) -> Explanation:
    """Why job `id` of `queue` is where it is (see Queue.explain)."""
    job = queue.get(id)
    now = _core.now_ms()
    iso = _core.format_time
    reasons: list[str] = []
    ahead = next_try = tries_left = None
    runnable = _claimable(job.state)
    if job.state == "waiting":
        reasons.append(_parents_reason(queue, id))
    if job.state == "failed":
        tries_left = _tries_left(job)
        reasons.append(f"attempt {job.attempts} failed ({job.last_error or 'no error recorded'})")
    if runnable and job.run_at_ms > now:
        next_try = iso(job.run_at_ms)
        what = "next try at" if job.state == "failed" else "not due until"
        reasons.append(f"{what} {next_try} (in {span(job.run_at_ms - now)})")
    elif runnable:
        ahead = queue.store.ahead(id)
        reasons.append(f"due now; {ahead} job(s) of queue {job.queue} ahead of it")
    if runnable:
        reasons.extend(_queue_reasons(queue, job))
    if tries_left is not None:
        reasons.append(f"{tries_left} tr{'y' if tries_left == 1 else 'ies'} left")
    if job.state == "processing":
        reasons.extend(_running_reasons(queue, job, now))
    if job.state == "completed":
        reasons.append(
            f"completed at {iso(job.finished_at_ms or job.updated_at_ms)} "
            f"after {job.attempts} attempt(s)"
        )
    if job.state == "dead":
        reasons.append(
            f"all {job.attempts} attempt(s) failed (max_retries {job.max_retries}); the last: "
            f"{job.last_error or 'no error recorded'}; `queuectl dlq retry {id}` runs it again"
        )
    if job.state == "cancelled":
        reasons.append(_cancelled_reason(queue, job))
    if runnable:
        reasons.append(_workers_reason(queue, job))
    return Explanation(id, job.state, reasons, ahead, next_try, tries_left)


def _parents_reason(queue: Source, id: str) -> str:
    """The jobs a waiting job runs after that have not completed (ten of them named)."""
    open_parents = [(p, st) for p, st in queue.store.parents(id) if st != "completed"]
    shown = ", ".join(f"{p} ({st})" for p, st in open_parents[:10])
    more = f" and {len(open_parents) - 10} more" if len(open_parents) > 10 else ""
    return (
        f"it runs after {len(open_parents)} job(s) that have not completed: "
        f"{shown}{more}; it becomes pending when the last completes, and is cancelled "
        "if one ends dead or cancelled"
    )


def _queue_reasons(queue: Source, job: _core.Job) -> list[str]:
    """What the job's named queue holds it back by: a pause, a full limit."""
    settings = {q.name: q for q in queue.store.queues()}
    q = settings.get(job.queue)
    if q is None:
        return []
    reasons = []
    if q.paused:
        reasons.append(f"queue {q.name} is paused: `queuectl queue resume {q.name}` lets it run")
    if q.limit > 0:
        holders = [j.id for j in queue.store.jobs("processing", None, q.name)]
        if len(holders) >= q.limit:
            shown = ", ".join(holders[:5]) + (", ..." if len(holders) > 5 else "")
            reasons.append(
                f"queue {q.name} is at its limit of {q.limit} running job(s), held by {shown}"
            )
    return reasons


def _running_reasons(queue: Source, job: _core.Job, now: int) -> list[str]:
    """Which worker runs the job and since when, a cancel asked of it, a worker gone."""
    iso = _core.format_time
    holder = {s.worker.id: (s.worker, s.state) for s in queue.workers(include_exited=True)}
    w, state = holder.get(job.worker_id or "", (None, "unknown"))
    where = f" on host {w.host}" if w else ""
    reasons = [
        f"running attempt {job.attempts} of {_tries(job)} on worker "
        f"{job.worker_id}{where} since {iso(job.started_at_ms or now)}"
    ]
    if job.cancel_requested_ms is not None:
        reasons.append(
            f"it was cancelled at {iso(job.cancel_requested_ms)}: its worker kills it "
            "at its next heartbeat and it ends cancelled"
        )
    if _gone(state):
        lease = job.lease_expires_ms or now
        reasons.append(
            f"its worker is {state}: a running worker rescues the job once its lease "
            f"runs out at {iso(lease)}"
        )
    return reasons


def _cancelled_reason(queue: Source, job: _core.Job) -> str:
    """When the job was cancelled, and whether it ran, waited to retry or never ran."""
    when = _core.format_time(job.finished_at_ms or job.updated_at_ms)
    history = queue.attempts(job.id)
    cause = job.last_error or ""
    if history and history[-1].outcome == "cancelled":
        how = f"while attempt {history[-1].attempt} ran ({history[-1].error})"
    elif cause.startswith("cancelled: it runs after"):
        how = f"before it ran ({cause.removeprefix('cancelled: ')})"
    elif history:
        how = f"while it waited to retry after {len(history)} failed attempt(s)"
    else:
        how = "before it ran"
    return (
        f"cancelled at {when} {how}; it runs again only if `queuectl retry {job.id}` puts it back"
    )


def _workers_reason(queue: Source, job: _core.Job) -> str:
    """Whether any running worker serves the job's queue."""
    live = queue.live_workers()
    serving = [w for w in live if w.worker.queues is None or job.queue in w.worker.queues]
    if not live:
        return "no worker is running: start one with `queuectl worker start`"
    if not serving:
        return (
            f"no running worker serves queue {job.queue} ({len(live)} serve other "
            f"queues): start one with `queuectl worker start --queue {job.queue}`"
        )
    return f"{len(serving)} worker(s) running that serve queue {job.queue}"
