"""The dashboard's reads: each HTML page (overview, jobs, a job, DLQ, queues, schedules,
workers, config) with its JSON under `/api/` (the shapes of `queuectl.shapes`, which the
CLI's `--json` prints too), the OpenAPI document and `/metrics`.

The counts that take a scan of the jobs come from the feed's snapshot, never from a count
per request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from queuectl import InputError, _core
from queuectl import metrics as metrics_text
from queuectl.api import ENDED_STATES, JOB_STATES
from queuectl.shapes import (
    iso,
    job_detail_dict,
    job_dict,
    queue_dict,
    schedule_dict,
    status_dict,
    worker_dict,
)
from queuectl.ui import openapi
from queuectl.ui.view import View

#: Jobs on one page of a list.
PAGE_SIZE = 50


class Pages:
    """The GET routes of the dashboard but the event streams and the login."""

    def __init__(self, view: View) -> None:
        self.v = view

    # The overview

    def overview_data(self) -> dict[str, Any]:
        snap = self.v.feed.current()
        hosts: dict[str, dict[str, int]] = {}
        for w, state in self.v.queue().live_workers():
            hosts.setdefault(w.host, {}).setdefault(state, 0)
            hosts[w.host][state] += 1
        oldest = snap.oldest
        return {
            "jobs": snap.counts,
            "queues": [queue_dict(x) for x in snap.queues],
            "workers_by_host": hosts,
            "oldest_pending": None
            if oldest is None
            else {"id": oldest.id, "age_s": metrics_text.oldest_pending_age_s(oldest)},
            "counted_at": iso(snap.taken_ms),
        }

    def throughput(self, minutes: int) -> dict[str, Any]:
        """Jobs completed and failed per minute over the last `minutes`, oldest first."""
        now = _core.now_ms()
        first = (now // 60_000 - minutes + 1) * 60_000
        series: dict[str, list[int]] = {k: [0] * minutes for k in ("completed", "failed")}
        for minute, _queue, metric, value in self.v.queue().stats(first):
            i = (minute - first) // 60_000
            if not 0 <= i < minutes:
                continue
            if metric == "completed":
                series["completed"][i] += value
            elif metric in ("retried", "dead"):
                series["failed"][i] += value
        return {
            "minutes": [(first + i * 60_000) // 1000 for i in range(minutes)],
            **series,
        }

    def overview(self, request: Request) -> Response:
        data = self.overview_data()
        oldest = self.v.feed.current().oldest
        # A job enqueued with a delay is pending before it is due.
        due_in_ms = 0 if oldest is None else max(0, oldest.run_at_ms - _core.now_ms())
        return self.v.page(request, "overview.html", states=JOB_STATES, due_in_ms=due_in_ms, **data)

    def api_overview(self, request: Request) -> Response:
        return self.v.api(self.overview_data())

    def api_status(self, request: Request) -> Response:
        q = self.v.queue()
        return self.v.api(status_dict(self.v.feed.current().counts, q.live_workers()))

    def api_throughput(self, request: Request) -> Response:
        minutes = whole_number(request.query_params.get("minutes"), 180, "minutes", 1, 7 * 24 * 60)
        return self.v.api(self.throughput(minutes))

    # Jobs

    @staticmethod
    def page_args(request: Request) -> dict[str, Any]:
        """The filters and the cursor of a page of jobs, from the query string."""
        p = request.query_params
        state = p.get("state") or None
        return {
            "state": state,
            "queue": p.get("queue") or None,
            "search": p.get("q") or None,
            "before": whole_number(p.get("before"), None, "before", 0, 2**63 - 1),
            "limit": whole_number(p.get("limit"), PAGE_SIZE, "limit", 1, 1000),
        }

    def jobs(self, request: Request) -> Response:
        args = self.page_args(request)
        found, next_cursor = self.v.queue().jobs_page(**args)
        keep = {
            k: v
            for k, v in (("state", args["state"]), ("queue", args["queue"]), ("q", args["search"]))
            if v
        }
        older = None if next_cursor is None else "?" + urlencode({**keep, "before": next_cursor})
        return self.v.page(
            request,
            "jobs.html",
            jobs=found,
            older=older,
            states=JOB_STATES,
            queues=[x.name for x in self.v.feed.current().queues],
            filters=args,
        )

    def api_jobs(self, request: Request) -> Response:
        found, next_cursor = self.v.queue().jobs_page(**self.page_args(request))
        return self.v.api({"jobs": [job_dict(j) for j in found], "next": next_cursor})

    def job_data(self, job_id: str) -> dict[str, Any]:
        q = self.v.queue()
        return job_detail_dict(q.get(job_id), q.parents(job_id), q.attempts(job_id))

    def job(self, request: Request) -> Response:
        job_id = request.path_params["id"]
        data = self.job_data(job_id)
        q = self.v.queue()
        reasons = q.explain(job_id).reasons
        log = q.log_path(job_id)
        return self.v.page(
            request,
            "job.html",
            job=data,
            reasons=reasons,
            has_log=log.exists(),
            ended=data["state"] in ENDED_STATES,
        )

    def api_job(self, request: Request) -> Response:
        return self.v.api(self.job_data(request.path_params["id"]))

    def dlq(self, request: Request) -> Response:
        found, next_cursor = self.v.queue().jobs_page(
            state="dead", before=self.page_args(request)["before"], limit=PAGE_SIZE
        )
        older = None if next_cursor is None else "?" + urlencode({"before": next_cursor})
        dead = self.v.feed.current().counts["dead"]
        return self.v.page(request, "dlq.html", jobs=found, older=older, total=dead)

    def api_dlq(self, request: Request) -> Response:
        found, next_cursor = self.v.queue().jobs_page(
            state="dead", before=self.page_args(request)["before"], limit=PAGE_SIZE
        )
        return self.v.api({"jobs": [job_dict(j) for j in found], "next": next_cursor})

    # Queues, schedules, workers, config

    def queues(self, request: Request) -> Response:
        snap = self.v.feed.current()
        return self.v.page(
            request,
            "queues.html",
            queues=[queue_dict(x) for x in snap.queues],
            counted_at=iso(snap.taken_ms),
        )

    def api_queues(self, request: Request) -> Response:
        return self.v.api([queue_dict(x) for x in self.v.feed.current().queues])

    def schedule_rows(self) -> list[dict[str, Any]]:
        return [schedule_dict(s) for s in self.v.queue().schedules()]

    def schedules(self, request: Request) -> Response:
        return self.v.page(request, "schedules.html", schedules=self.schedule_rows())

    def api_schedules(self, request: Request) -> Response:
        return self.v.api(self.schedule_rows())

    def worker_rows(self, include_exited: bool) -> list[dict[str, Any]]:
        return [worker_dict(w, s) for w, s in self.v.queue().workers(include_exited)]

    def workers(self, request: Request) -> Response:
        show_all = request.query_params.get("all") == "1"
        return self.v.page(
            request, "workers.html", workers=self.worker_rows(show_all), show_all=show_all
        )

    def api_workers(self, request: Request) -> Response:
        return self.v.api(self.worker_rows(request.query_params.get("all") == "1"))

    def config(self, request: Request) -> Response:
        from queuectl import config as cfg

        items = self.v.queue().config().items()
        return self.v.page(
            request,
            "config.html",
            items=[(k, v, cfg.KEYS[k].help) for k, v in items],
        )

    def api_config(self, request: Request) -> Response:
        return self.v.api(dict(self.v.queue().config().items()))

    # Machine-readable

    def api_openapi(self, request: Request) -> Response:
        return self.v.api(openapi.document(read_only=self.v.settings.read_only))

    def metrics(self, request: Request) -> Response:
        snap = self.v.feed.current()
        text = metrics_text.render(
            self.v.queue(), snap.queues, metrics_text.oldest_pending_age_s(snap.oldest)
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


def whole_number(text: str | None, default: Any, name: str, low: int, high: int) -> Any:
    """A query parameter as a whole number from `low` to `high` (`default` when absent);
    InputError naming it otherwise."""
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{name} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise InputError(f"{name} must be from {low} to {high}, got {value}")
    return value
