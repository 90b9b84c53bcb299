"""Why a job is where it is (`queuectl explain`, `Queue.explain`): what keeps it from
running (its state, its run_at, its parents not done, a paused queue, a full queue and the
jobs holding it, the queue's rate, the limit on its key, more slots than any worker
process has, no worker serving its queue), when it expires, its own retry rules, or how it
ended.

It only reads: the job, its parents, its named queue, the workers and its attempts, through
the few queue methods `Source` names (the API's `Queue` has them).
Cheap to import (the API imports it at every start): nothing beyond the extension.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from queuectl import _core, flow
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
        reasons.extend(_queue_reasons(queue, job, now))
    if runnable and job.run_at_ms <= now:
        reasons.extend(_slots_reasons(queue, job))
    if job.state in ("waiting", "pending") and job.expires_at_ms is not None:
        reasons.append(_expiry_reason(job, now))
    if tries_left is not None:
        reasons.append(f"{tries_left} tr{'y' if tries_left == 1 else 'ies'} left")
    if job.state == "failed":
        reasons.extend(_retry_policy(queue, job))
    if job.state == "processing":
        reasons.extend(_running_reasons(queue, job, now))
    if job.state == "completed":
        reasons.append(
            f"completed at {iso(job.finished_at_ms or job.updated_at_ms)} "
            f"after {job.attempts} attempt(s)"
        )
    if job.state == "dead":
        cut_short = _not_retried(job) if _tries_left(job) > 0 else None
        if cut_short:
            how = (
                f"attempt {job.attempts} failed ({job.last_error or 'no error recorded'}) "
                f"and {cut_short}, so it was not retried"
            )
        else:
            how = (
                f"all {job.attempts} attempt(s) failed (max_retries {job.max_retries}); "
                f"the last: {job.last_error or 'no error recorded'}"
            )
        reasons.append(f"{how}; `queuectl dlq retry {id}` runs it again")
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


def _queue_reasons(queue: Source, job: _core.Job, now: int) -> list[str]:
    """What the job's named queue holds it back by: a pause, a full limit, its rate, the
    limit on the job's key."""
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
    if q.rate_n == 0 and not (q.key_limit > 0 and job.key is not None):
        return reasons
    key = job.key if q.key_limit > 0 else None
    started, opens_ms, running_with_key = queue.store.flow_state(q.name, key)
    if q.rate_n > 0 and opens_ms is not None:
        rate = flow.Rate(q.rate_n, q.rate_period_ms)
        reasons.append(
            f"queue {q.name} is at its rate {rate.text} ({started} started in the last "
            f"{rate.period_text}): next start at {_core.format_time(opens_ms)} "
            f"(in {span(opens_ms - now)})"
        )
    if key is not None and running_with_key >= q.key_limit:
        reasons.append(
            f"{running_with_key} job(s) with key {key} are running, the key limit of queue "
            f"{q.name} is {q.key_limit}: it starts when one of them ends"
        )
    return reasons


def _process_slots(workers: Sequence[WorkerSeen]) -> dict[tuple[str, int], int]:
    """The slots of each worker process (host, pid) among `workers`; a process whose rows
    predate slots has as many as it has workers."""
    count: dict[tuple[str, int], int] = {}
    slots: dict[tuple[str, int], int] = {}
    for seen in workers:
        w = seen.worker
        where = (w.host, w.pid)
        count[where] = count.get(where, 0) + 1
        if w.slots is not None:
            slots[where] = w.slots
    return {where: slots.get(where, n) for where, n in count.items()}


def _slots_reasons(queue: Source, job: _core.Job) -> list[str]:
    """A job needing more slots than any live worker process serving its queue has: no
    claim takes it until one with enough starts."""
    if job.slots <= 1:
        return []
    serving = _serving(queue.live_workers(), job.queue)
    if not serving:
        return []  # the workers' reason says so
    largest = max(_process_slots(serving).values())
    if job.slots <= largest:
        return []
    return [
        f"it needs {job.slots} slots; the largest live worker process serving queue "
        f"{job.queue} has {largest}: start one with `queuectl worker start --slots "
        f"{job.slots}`"
    ]


def _retry_policy(queue: Source, job: _core.Job) -> list[str]:
    """A failed job's own retry rules: its delays, and the exit codes it is retried on."""
    reasons = []
    delays = job.retry_delays_ms
    if delays:
        this = delays[min(job.attempts, len(delays)) - 1] if job.attempts else delays[0]
        following = delays[min(job.attempts, len(delays) - 1)]
        jitter = float(queue.store.config_get("backoff-jitter") or 0)
        varied = f"; backoff-jitter varies each by up to {jitter:.0%}" if jitter > 0 else ""
        reasons.append(
            f"its retry_delays are {', '.join(flow.duration_text(d) for d in delays)} (the last "
            f"repeats{varied}): this wait is {flow.duration_text(this)}, the next "
            f"{flow.duration_text(following)}"
        )
    if job.retry_on:
        codes, many = _codes(job.retry_on)
        reasons.append(f"only {codes} {'are' if many else 'is'} retried (retry_on)")
    if job.no_retry_on or job.no_retry_timeout:
        codes, many = _codes(job.no_retry_on or [], job.no_retry_timeout)
        reasons.append(f"{codes} end{'' if many else 's'} it dead without a retry (no_retry_on)")
    return reasons


def _codes(codes: Sequence[int], timeout: bool = False) -> tuple[str, bool]:
    """Exit codes as a sentence names them (`exit code 2`, `exit codes 2, 3 and a
    timeout`, `a timeout`), and whether that is more than one."""
    parts = [str(c) for c in codes]
    if parts:
        parts[0] = f"exit code{'s' if len(parts) > 1 else ''} {parts[0]}"
    parts += ["a timeout"] if timeout else []
    text = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)
    return text, len(parts) > 1


def _expiry_reason(job: _core.Job, now: int) -> str:
    """When a job that has not started expires, or that its expiry has passed."""
    at_ms = job.expires_at_ms or now
    at = _core.format_time(at_ms)
    if at_ms > now:
        return f"it expires at {at} (in {span(at_ms - now)}) unless it has started by then"
    return (
        f"it expired at {at}: a running worker cancels it (last_error expired) instead of "
        "starting it"
    )


def _not_retried(job: _core.Job) -> str | None:
    """Which of the job's own exit-code rules sent its last failure straight to dead."""
    code = job.exit_code
    if code is not None and code in (job.no_retry_on or []):
        return f"exit code {code} is in its no_retry_on"
    if code is not None and job.retry_on and code not in job.retry_on:
        return f"exit code {code} is not in its retry_on ({_codes(job.retry_on)[0]})"
    if code is None and job.no_retry_timeout:
        return "its no_retry_on names timeout"
    return None


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
    if cause == "expired" and job.expires_at_ms is not None:
        how = f"when it expired at {_core.format_time(job.expires_at_ms)} before it started"
        if history:
            how = f"{how} again after {len(history)} failed attempt(s)"
        # A retry clears an expiry that has passed, so the job runs.
        return f"cancelled at {when} {how}; `queuectl retry {job.id}` runs it (with no expiry)"
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


def _serving(live: Sequence[WorkerSeen], queue_name: str) -> list[WorkerSeen]:
    """The workers among `live` that take jobs of queue `queue_name`."""
    return [w for w in live if w.worker.queues is None or queue_name in w.worker.queues]


def _workers_reason(queue: Source, job: _core.Job) -> str:
    """Whether any running worker serves the job's queue."""
    live = queue.live_workers()
    serving = _serving(live, job.queue)
    if not live:
        return "no worker is running: start one with `queuectl worker start`"
    if not serving:
        return (
            f"no running worker serves queue {job.queue} ({len(live)} serve other "
            f"queues): start one with `queuectl worker start --queue {job.queue}`"
        )
    return f"{len(serving)} worker(s) running that serve queue {job.queue}"
