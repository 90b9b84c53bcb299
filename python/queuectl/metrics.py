"""Prometheus metrics of a queue, in the text exposition format (version 0.0.4).

`queuectl metrics` prints them once and the dashboard serves them at `/metrics`. Counters
come from the store's per-minute rollup (minute 0, the totals), so they survive restarts
of workers and of the dashboard and cost a read of a few dozen rows; gauges are read from
the jobs, queues and workers as they are now. No label ever holds a job id or a command:
the labels are queue names, outcomes, states and host names.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, NamedTuple

from queuectl import _core

if TYPE_CHECKING:
    from queuectl.api import Queue

#: The outcomes of `queuectl_jobs_finished_total`, as the rollup names them.
FINISHED = tuple(_core.FINAL_STATES)


#: The rules of `queuectl_jobs_held`, in its order.
HELD_RULES = ("rate", "key", "slots")
#: How many pending jobs (the oldest) a scrape reads to count those held by key or slots:
#: a bound on its cost however long the queue is.
HELD_SCAN = 1000


class Family(NamedTuple):
    """One metric as `# HELP` and `# TYPE` announce it, with the labels its samples carry
    (a histogram's `_bucket` samples add `le`)."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


#: Every metric `render` writes, in its order (docs/reference/metrics.md is made from it).
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "queuectl_jobs", "gauge", ("queue", "state"), "Jobs in the store, by queue and state."
        ),
        Family("queuectl_queue_paused", "gauge", ("queue",), "1 when the queue is paused."),
        Family(
            "queuectl_jobs_finished_total",
            "counter",
            ("queue", "outcome"),
            "Attempts that ended their job, by queue and outcome (completed, dead, cancelled).",
        ),
        Family(
            "queuectl_retries_total", "counter", ("queue",), "Failed attempts that were retried."
        ),
        Family(
            "queuectl_leases_expired_total",
            "counter",
            (),
            "Jobs rescued from workers whose lease ran out (lost or paused workers).",
        ),
        Family(
            "queuectl_jobs_requeued_total", "counter", (), "Running jobs put back by a forced stop."
        ),
        Family(
            "queuectl_job_duration_seconds",
            "histogram",
            ("queue",),
            "How long attempts ran, by queue.",
        ),
        Family(
            "queuectl_job_wait_seconds",
            "histogram",
            ("queue",),
            "From when a job was due to when a worker started it, by queue.",
        ),
        Family(
            "queuectl_jobs_held",
            "gauge",
            ("queue", "rule"),
            "Pending jobs a flow-control rule holds back now, by queue and rule: rate (the "
            "queue's pending jobs while it is at its rate), key (due jobs whose key is at "
            f"the queue's key limit) and slots (due jobs needing more slots than any live "
            f"worker process has); key and slots are counted among the {HELD_SCAN:,} oldest "
            "pending jobs.",
        ),
        Family("queuectl_workers", "gauge", ("host", "state"), "Workers by host and state."),
        Family(
            "queuectl_oldest_pending_age_seconds",
            "gauge",
            (),
            "Age of the oldest pending job since it became due (0 when none is pending).",
        ),
    )
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: dict[str, str]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items()) + "}"


def _number(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return repr(float(value))


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str) -> None:
        f = FAMILIES[name]
        self.lines.append(f"# HELP {f.name} {f.help}")
        self.lines.append(f"# TYPE {f.name} {f.kind}")

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")


def _bound(metric: str) -> float | None:
    """The upper bound in seconds of a bucket metric (`run_le_250` -> 0.25), None for inf."""
    tail = metric.rsplit("_le_", 1)[1]
    return None if tail == "inf" else int(tail) / 1000


def _histogram(out: _Text, name: str, kind: str, totals: dict[str, dict[str, int]]) -> None:
    out.family(name)
    for queue in sorted(q for q in totals if q):
        metrics = totals[queue]
        buckets = sorted(
            (
                (b, n)
                for m, n in metrics.items()
                if m.startswith(f"{kind}_le_")
                for b in [_bound(m)]
            ),
            key=lambda bn: float("inf") if bn[0] is None else bn[0],
        )
        if not buckets:
            continue
        running = 0
        for bound, n in buckets:
            running += n
            le = "+Inf" if bound is None else _number(bound)
            out.sample(f"{name}_bucket", {"queue": queue, "le": le}, running)
        if buckets[-1][0] is not None:  # the +Inf bucket always appears
            out.sample(f"{name}_bucket", {"queue": queue, "le": "+Inf"}, running)
        out.sample(f"{name}_sum", {"queue": queue}, metrics.get(f"{kind}_ms_sum", 0) / 1000)
        out.sample(f"{name}_count", {"queue": queue}, running)


def held_counts(
    queue: Queue, queues: list[_core.Queue], live: list[_core.Worker]
) -> dict[tuple[str, str], int]:
    """Pending jobs held back now, by (queue, rule) (see `queuectl_jobs_held`), with
    `live` the running workers: one
    flow_state per rate-limited queue, the running jobs, and at most HELD_SCAN pending
    jobs."""
    held: dict[tuple[str, str], int] = defaultdict(int)
    key_limits = {q.name: q.key_limit for q in queues if q.key_limit > 0}
    for q in queues:
        if q.rate_n > 0 and queue.store.flow_state(q.name, None)[1] is not None:
            held[q.name, "rate"] = dict(q.counts).get("pending", 0)
    processes: dict[tuple[str, int], list[_core.Worker]] = defaultdict(list)
    for w in live:
        processes[w.host, w.pid].append(w)
    # A process whose rows predate slots has as many as it has workers.
    largest = max(
        (next((w.slots for w in ws if w.slots is not None), len(ws)) for ws in processes.values()),
        default=None,
    )
    running: dict[tuple[str, str], int] = defaultdict(int)
    if key_limits:
        for j in queue.store.jobs("processing", None, None):
            if j.key is not None:
                running[j.queue, j.key] += 1
    now = _core.now_ms()
    for j in queue.store.jobs("pending", HELD_SCAN, None):
        if j.run_at_ms > now:
            continue
        limit = key_limits.get(j.queue, 0)
        if limit and j.key is not None and running[j.queue, j.key] >= limit:
            held[j.queue, "key"] += 1
        if largest is not None and j.slots > largest:
            held[j.queue, "slots"] += 1
    return held


def oldest_pending_age_s(job: _core.Job | None) -> float:
    """How long the oldest pending job has been due, in seconds (0 when there is none)."""
    if job is None:
        return 0.0
    return max(0, _core.now_ms() - max(job.run_at_ms, job.created_at_ms)) / 1000


def render(
    queue: Queue,
    queues: list[_core.Queue] | None = None,
    oldest_age_s: float | None = None,
) -> str:
    """Every metric of the queue, as Prometheus reads them. `queues` and `oldest_age_s`,
    when given, are used instead of reading them (the dashboard's periodic snapshot:
    counting a million jobs by queue takes longer than a scrape should)."""
    if queues is None:
        queues = queue.queues()
    if oldest_age_s is None:
        oldest_age_s = oldest_pending_age_s(queue.oldest_pending())
    totals: dict[str, dict[str, int]] = defaultdict(dict)
    for _minute, qname, metric, value in queue.stats():
        totals[qname][metric] = value
    out = _Text()

    out.family("queuectl_jobs")
    for q in queues:
        for state, n in q.counts:
            out.sample("queuectl_jobs", {"queue": q.name, "state": state}, n)
    out.family("queuectl_queue_paused")
    for q in queues:
        out.sample("queuectl_queue_paused", {"queue": q.name}, int(q.paused))

    out.family("queuectl_jobs_finished_total")
    for qname in sorted(q for q in totals if q):
        for outcome in FINISHED:
            out.sample(
                "queuectl_jobs_finished_total",
                {"queue": qname, "outcome": outcome},
                totals[qname].get(outcome, 0),
            )
    out.family("queuectl_retries_total")
    for qname in sorted(q for q in totals if q):
        out.sample("queuectl_retries_total", {"queue": qname}, totals[qname].get("retried", 0))
    unqueued = totals.get("", {})
    out.family("queuectl_leases_expired_total")
    out.sample("queuectl_leases_expired_total", {}, unqueued.get("leases_expired", 0))
    out.family("queuectl_jobs_requeued_total")
    out.sample("queuectl_jobs_requeued_total", {}, unqueued.get("requeued", 0))

    _histogram(out, "queuectl_job_duration_seconds", "run", totals)
    _histogram(out, "queuectl_job_wait_seconds", "wait", totals)

    workers = queue.workers(include_exited=False)
    out.family("queuectl_jobs_held")
    held = held_counts(queue, queues, [w for w, _ in workers])
    for q in queues:
        for rule in HELD_RULES:
            out.sample("queuectl_jobs_held", {"queue": q.name, "rule": rule}, held[q.name, rule])

    out.family("queuectl_workers")
    by_host: dict[tuple[str, str], int] = defaultdict(int)
    for w, w_state in workers:
        by_host[(w.host, w_state)] += 1
    for (host, w_state), n in sorted(by_host.items()):
        out.sample("queuectl_workers", {"host": host, "state": w_state}, n)

    out.family("queuectl_oldest_pending_age_seconds")
    out.sample("queuectl_oldest_pending_age_seconds", {}, oldest_age_s)
    return "\n".join(out.lines) + "\n"
