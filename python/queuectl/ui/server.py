"""`queuectl ui`: the web dashboard, a Starlette app served by uvicorn.

Pages are Jinja2 templates with autoescaping on, so every string from a job is text; the
JSON under `/api/` is what the CLI's `--json` prints. Live updates come from one
server-sent event stream, `/events`, that says "changed" whenever another connection
commits (the store's own change feed); the page then fetches its content again.

Safety: a request whose Host header is not the bound address is refused (DNS
rebinding); a bind other than loopback needs a token, exchanged once at `/login?token=`
for an HttpOnly SameSite=Strict cookie (or sent as `Authorization: Bearer`); every POST
needs the CSRF token of this server; `--read-only` serves no action at all. The
dashboard never enqueues or runs a command: its actions are the CLI's changes to jobs,
queues, workers and config.

Store calls block, so handlers are plain functions that Starlette runs in its thread
pool; each thread keeps its own store connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import secrets
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Callable, NamedTuple
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from queuectl import InputError, JobNotFoundError, QueuectlError, _core
from queuectl import metrics as metrics_text
from queuectl.api import JOB_STATES, Queue
from queuectl.cli import render
from queuectl.home import Home
from queuectl.text import shown_location, span
from queuectl.ui import openapi

HERE = Path(__file__).parent
COOKIE = "queuectl_session"
PAGE_SIZE = 50
#: How often the event stream looks at the change counter, and the least time between
#: two "changed" events it sends (seconds).
TICK_S = 0.25
MIN_GAP_S = 1.0
#: The least time between two snapshots of the counts while the queue keeps changing.
SNAPSHOT_EVERY_S = 5.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::")


class Settings:
    """What `queuectl ui` was started with."""

    def __init__(
        self, home: Home, host: str, port: int, token: str | None, read_only: bool
    ) -> None:
        self.home = home
        self.host = host
        self.port = port
        self.token = token
        self.read_only = read_only
        self.csrf = secrets.token_urlsafe(32)
        # The cookie holds a random value of this run, never the token itself: a restart
        # of the dashboard asks for the token again.
        self.session = secrets.token_urlsafe(32) if token else None

    def allowed_hosts(self) -> set[str] | None:
        """The Host headers served; None: any (a wildcard bind, guarded by its token)."""
        if is_wildcard(self.host):
            return None
        names = {self.host}
        if is_loopback(self.host):
            names |= {"localhost", "127.0.0.1", "[::1]"}
        return {f"{n}:{self.port}" for n in names} | (names if self.port == 80 else set())


class Guard:
    """ASGI middleware: Host check, token, CSRF and read-only, before any route runs."""

    OPEN_PATHS = ("/login", "/static/")

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.s = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.refuse(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refuse(self, request: Request) -> Response | None:
        allowed = self.s.allowed_hosts()
        host = request.headers.get("host", "")
        if allowed is not None and host not in allowed:
            return PlainTextResponse(
                f"refused: Host {host!r} is not this dashboard's address", status_code=403
            )
        path = request.url.path
        if self.s.session is not None and not path.startswith(self.OPEN_PATHS):
            cookie = request.cookies.get(COOKIE, "")
            bearer = request.headers.get("authorization", "")
            token_ok = bearer.startswith("Bearer ") and hmac.compare_digest(
                bearer[7:].encode(), (self.s.token or "").encode()
            )
            if not (hmac.compare_digest(cookie.encode(), self.s.session.encode()) or token_ok):
                return PlainTextResponse(
                    "refused: this dashboard needs its token; open the address `queuectl ui` "
                    "printed (it ends in /login?token=...)",
                    status_code=401,
                )
        if request.method not in ("GET", "HEAD"):
            if self.s.read_only:
                return PlainTextResponse(
                    "refused: the dashboard is read-only (--read-only)", status_code=403
                )
            sent = request.headers.get("x-csrf-token", "")
            if not hmac.compare_digest(sent.encode(), self.s.csrf.encode()):
                return PlainTextResponse(
                    "refused: the CSRF token is missing or wrong; reload the page", status_code=403
                )
        return None


class Snapshot(NamedTuple):
    """The counts that take a scan of the jobs (by state, by queue and state) and the
    oldest pending job, as of `taken_ms`."""

    counts: dict[str, int]
    queues: list[_core.Queue]
    oldest: _core.Job | None
    taken_ms: int


class Feed:
    """One thread that waits on the store's change feed for commits by other connections,
    counts them (`version`: every open page's event stream watches it), and keeps the
    Snapshot fresh: taken again after a change, at most every SNAPSHOT_EVERY_S (at once
    after an action here), so that no page waits for a count of a million jobs."""

    def __init__(self, home: Home) -> None:
        self.version = 0
        self.snapshot: Snapshot | None = None
        self._home = home
        self._stop = threading.Event()
        self._dirty = True
        self._urgent = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="queuectl-ui-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def soon(self) -> None:
        """An action changed the queue: take the snapshot again without waiting."""
        self._dirty = True
        self._urgent.set()

    def current(self) -> Snapshot:
        snap = self.snapshot
        if snap is None:
            with self._lock:  # the first request before the thread's first snapshot
                if self.snapshot is None:
                    self.snapshot = take_snapshot(Queue(self._home))
                snap = self.snapshot
        return snap

    def _run(self) -> None:
        store: _core.Store | None = None
        queue = Queue(self._home)
        last = 0.0
        while not self._stop.is_set():
            try:
                if store is None:
                    store = Queue(self._home).store
                    store.wait_for_change(0)
                if store.wait_for_change(0.25 if self._urgent.is_set() else 1.0):
                    self.version += 1
                    self._dirty = True
                due = time.monotonic() - last >= SNAPSHOT_EVERY_S or self._urgent.is_set()
                if self._dirty and due:
                    self._dirty = False
                    self._urgent.clear()
                    last = time.monotonic()
                    snap = take_snapshot(queue)
                    with self._lock:
                        self.snapshot = snap
                    self.version += 1
            except QueuectlError:
                store = None
                queue.close()
                self._stop.wait(1.0)


def take_snapshot(queue: Queue) -> Snapshot:
    return Snapshot(queue.counts(), queue.queues(), queue.oldest_pending(), _core.now_ms())


def build_app(settings: Settings) -> Starlette:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["iso"] = render.iso
    env.filters["duration"] = span
    local = threading.local()
    feed = Feed(settings.home)

    def queue() -> Queue:
        q: Queue | None = getattr(local, "queue", None)
        if q is None:
            q = local.queue = Queue(settings.home)
        return q

    def page(request: Request, template: str, **context: Any) -> HTMLResponse:
        part = request.headers.get("hx-request") == "true" and "hx-history-restore-request" not in (
            request.headers
        )
        html = env.get_template(template).render(
            request=request,
            part=part,
            csrf=settings.csrf,
            read_only=settings.read_only,
            path=request.url.path,
            db=shown_location(settings.home.db),
            **context,
        )
        return HTMLResponse(html)

    def api(value: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(value, status_code=status)

    def guarded(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Errors of the queue as a one-line answer: JSON for /api/, a page otherwise."""

        def run(request: Request) -> Response:
            try:
                return handler(request)
            except JobNotFoundError as e:
                return _error(request, str(e), 404)
            except (InputError, QueuectlError) as e:
                return _error(request, str(e), 400)

        return run

    def from_htmx(request: Request) -> bool:
        return request.headers.get("hx-request") == "true"

    def _error(request: Request, message: str, status: int) -> Response:
        if request.method == "POST" and from_htmx(request):
            return flash(message, error=True, status=status)
        if request.url.path.startswith("/api/"):
            return api({"error": message}, status)
        response = page(request, "error.html", message=message)
        response.status_code = status
        return response

    def flash(message: str, error: bool = False, status: int = 200) -> HTMLResponse:
        html = env.from_string(
            '<p class="flash {{ kind }}" role="status">{{ message }}</p>'
        ).render(kind="error" if error else "ok", message=message)
        # Pages re-read their content after any action.
        return HTMLResponse(html, status_code=status, headers={"HX-Trigger": "qc-refresh"})

    def answer(request: Request, value: dict[str, Any], message: str) -> Response:
        """An action's result: a message for the page that posted it (htmx), else the
        JSON the CLI's --json prints."""
        return flash(message) if from_htmx(request) else api(value)

    # Reads

    def overview_data() -> dict[str, Any]:
        snap = feed.current()
        hosts: dict[str, dict[str, int]] = {}
        for w, state in queue().live_workers():
            hosts.setdefault(w.host, {}).setdefault(state, 0)
            hosts[w.host][state] += 1
        oldest = snap.oldest
        return {
            "jobs": snap.counts,
            "queues": [render.queue_dict(x) for x in snap.queues],
            "workers_by_host": hosts,
            "oldest_pending": None
            if oldest is None
            else {"id": oldest.id, "age_s": metrics_text.oldest_pending_age_s(oldest)},
            "counted_at": render.iso(snap.taken_ms),
        }

    def throughput(minutes: int) -> dict[str, Any]:
        now = _core.now_ms()
        first = (now // 60_000 - minutes + 1) * 60_000
        series: dict[str, list[int]] = {k: [0] * minutes for k in ("completed", "failed")}
        for minute, _queue, metric, value in queue().stats(first):
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

    @guarded
    def overview(request: Request) -> Response:
        data = overview_data()
        oldest = feed.current().oldest
        # A job enqueued with a delay is pending before it is due.
        due_in_ms = 0 if oldest is None else max(0, oldest.run_at_ms - _core.now_ms())
        return page(request, "overview.html", states=JOB_STATES, due_in_ms=due_in_ms, **data)

    @guarded
    def api_overview(request: Request) -> Response:
        return api(overview_data())

    @guarded
    def api_status(request: Request) -> Response:
        q = queue()
        return api(
            {
                "jobs": feed.current().counts,
                "workers": [render.worker_dict(w, s) for w, s in q.live_workers()],
            }
        )

    @guarded
    def api_throughput(request: Request) -> Response:
        minutes = _int(request.query_params.get("minutes"), 180, "minutes", 1, 7 * 24 * 60)
        return api(throughput(minutes))

    def page_args(request: Request) -> dict[str, Any]:
        p = request.query_params
        state = p.get("state") or None
        return {
            "state": state,
            "queue": p.get("queue") or None,
            "search": p.get("q") or None,
            "before": _int(p.get("before"), None, "before", 0, 2**63 - 1),
            "limit": _int(p.get("limit"), PAGE_SIZE, "limit", 1, 1000),
        }

    @guarded
    def jobs(request: Request) -> Response:
        args = page_args(request)
        found, next_cursor = queue().jobs_page(**args)
        keep = {
            k: v
            for k, v in (("state", args["state"]), ("queue", args["queue"]), ("q", args["search"]))
            if v
        }
        older = None if next_cursor is None else "?" + urlencode({**keep, "before": next_cursor})
        return page(
            request,
            "jobs.html",
            jobs=found,
            older=older,
            states=JOB_STATES,
            queues=[x.name for x in feed.current().queues],
            filters=args,
        )

    @guarded
    def api_jobs(request: Request) -> Response:
        found, next_cursor = queue().jobs_page(**page_args(request))
        return api({"jobs": [render.job_dict(j) for j in found], "next": next_cursor})

    def job_data(job_id: str) -> dict[str, Any]:
        q = queue()
        job = q.get(job_id)
        d = render.job_dict(job)
        d["after"] = [{"id": p, "state": st} for p, st in q.parents(job_id)]
        d["attempt_history"] = [render.attempt_dict(a) for a in q.attempts(job_id)]
        return d

    @guarded
    def job(request: Request) -> Response:
        job_id = request.path_params["id"]
        data = job_data(job_id)
        q = queue()
        reasons = q.explain(job_id).reasons
        log = q.log_path(job_id)
        return page(
            request,
            "job.html",
            job=data,
            reasons=reasons,
            has_log=log.exists(),
            ended=data["state"] in ("completed", "dead", "cancelled"),
        )

    @guarded
    def api_job(request: Request) -> Response:
        return api(job_data(request.path_params["id"]))

    @guarded
    def dlq(request: Request) -> Response:
        found, next_cursor = queue().jobs_page(
            state="dead", before=page_args(request)["before"], limit=PAGE_SIZE
        )
        older = None if next_cursor is None else "?" + urlencode({"before": next_cursor})
        dead = feed.current().counts["dead"]
        return page(request, "dlq.html", jobs=found, older=older, total=dead)

    @guarded
    def api_dlq(request: Request) -> Response:
        found, next_cursor = queue().jobs_page(
            state="dead", before=page_args(request)["before"], limit=PAGE_SIZE
        )
        return api({"jobs": [render.job_dict(j) for j in found], "next": next_cursor})

    @guarded
    def queues_page(request: Request) -> Response:
        snap = feed.current()
        return page(
            request,
            "queues.html",
            queues=[render.queue_dict(x) for x in snap.queues],
            counted_at=render.iso(snap.taken_ms),
        )

    @guarded
    def api_queues(request: Request) -> Response:
        return api([render.queue_dict(x) for x in feed.current().queues])

    def schedule_rows() -> list[dict[str, Any]]:
        from queuectl.cli.schedules import schedule_dict

        return [schedule_dict(s) for s in queue().schedules()]

    @guarded
    def schedules(request: Request) -> Response:
        return page(request, "schedules.html", schedules=schedule_rows())

    @guarded
    def api_schedules(request: Request) -> Response:
        return api(schedule_rows())

    def worker_rows(include_exited: bool) -> list[dict[str, Any]]:
        return [render.worker_dict(w, s) for w, s in queue().workers(include_exited)]

    @guarded
    def workers(request: Request) -> Response:
        show_all = request.query_params.get("all") == "1"
        return page(request, "workers.html", workers=worker_rows(show_all), show_all=show_all)

    @guarded
    def api_workers(request: Request) -> Response:
        return api(worker_rows(request.query_params.get("all") == "1"))

    @guarded
    def config(request: Request) -> Response:
        from queuectl import config as cfg

        items = queue().config().items()
        return page(
            request,
            "config.html",
            items=[(k, v, cfg.KEYS[k].help) for k, v in items],
        )

    @guarded
    def api_config(request: Request) -> Response:
        return api(dict(queue().config().items()))

    def api_openapi(request: Request) -> Response:
        return api(openapi.document(read_only=settings.read_only))

    def metrics(request: Request) -> Response:
        snap = feed.current()
        text = metrics_text.render(
            queue(), snap.queues, metrics_text.oldest_pending_age_s(snap.oldest)
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def output(request: Request) -> Response:
        """A job's log as it grows: `data:` events of JSON strings, then `end`."""
        job_id = request.path_params["id"]
        q = Queue(settings.home)
        try:
            path = q.log_path(job_id)
            await asyncio.to_thread(q.get, job_id)
        except (InputError, JobNotFoundError) as e:
            return PlainTextResponse(str(e), status_code=404)

        async def stream() -> Any:
            offset = 0
            idle = 0.0
            while True:
                chunk = await asyncio.to_thread(_read_from, path, offset)
                if chunk:
                    offset += len(chunk)
                    text = chunk.decode("utf-8", errors="replace")
                    yield f"data: {json.dumps(text)}\n\n"
                    continue
                if await request.is_disconnected():
                    return
                # Ended (and nothing more written): say so and stop.
                job = await asyncio.to_thread(q.get, job_id)
                if job.state in ("completed", "dead", "cancelled", "failed"):
                    rest = await asyncio.to_thread(_read_from, path, offset)
                    if rest:
                        yield f"data: {json.dumps(rest.decode('utf-8', errors='replace'))}\n\n"
                    yield f"event: end\ndata: {json.dumps(job.state)}\n\n"
                    return
                idle += TICK_S
                if idle >= 15:
                    idle = 0.0
                    yield ": still running\n\n"
                await asyncio.sleep(TICK_S)

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_no_cache())

    async def events(request: Request) -> Response:
        """`changed` whenever the store changed, at most once a second."""

        async def stream() -> Any:
            seen = feed.version
            last_sent = 0.0
            quiet = 0.0
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                await asyncio.sleep(TICK_S)
                quiet += TICK_S
                now = time.monotonic()
                if feed.version != seen and now - last_sent >= MIN_GAP_S:
                    seen, last_sent, quiet = feed.version, now, 0.0
                    yield f"event: changed\ndata: {seen}\n\n"
                elif quiet >= 15:
                    quiet = 0.0
                    yield ": idle\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_no_cache())

    def login(request: Request) -> Response:
        given = request.query_params.get("token", "")
        if settings.session is None:
            return RedirectResponse("/", status_code=303)
        if not hmac.compare_digest(given.encode(), (settings.token or "").encode()):
            return PlainTextResponse("refused: wrong token", status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, settings.session, httponly=True, samesite="strict", path="/")
        return response

    # Actions: each is the CLI's, all or nothing, with its one-line error.

    async def form(request: Request) -> dict[str, str]:
        # htmx posts forms urlencoded; that is all the actions take.
        body = (await request.body()).decode("utf-8", errors="replace")
        return dict(parse_qsl(body, keep_blank_values=True))

    def action(
        run: Callable[[Request, dict[str, str]], tuple[dict[str, Any], str]],
    ) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            fields = await form(request)

            def call() -> Response:
                value, message = run(request, fields)
                feed.soon()
                return answer(request, value, message)

            return await asyncio.to_thread(guarded(lambda _r: call()), request)

        return handler

    def ids_of(request: Request, fields: dict[str, str]) -> list[str]:
        if "id" in request.path_params:
            return [request.path_params["id"]]
        ids = [i for i in fields.get("ids", "").split() if i]
        if not ids:
            raise InputError("no job ids given")
        return ids

    def do_retry(request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        n = queue().retry(ids_of(request, f))
        return {"retried": n}, f"retried {n} job(s): pending again"

    def do_retry_all(request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        n = queue().retry_all_dead()
        return {"retried": n}, f"retried {n} dead job(s)"

    def do_cancel(request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        r = queue().cancel(ids_of(request, f))
        text = f"cancelled {len(r.cancelled)} job(s)"
        if r.killing:
            text += f"; {len(r.killing)} running job(s) are being stopped by their workers"
        return {"cancelled": r.cancelled, "killing": r.killing}, text

    def do_delete(request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        deleted = queue().delete(ids_of(request, f))
        return {"deleted": deleted}, f"deleted {len(deleted)} job(s)"

    def do_purge(request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        state = f.get("state", "")
        older = f.get("older_than", "").strip()
        older_s = None
        if older:
            from queuectl.duration import parse_seconds

            try:
                older_s = parse_seconds(older)
            except ValueError as e:
                raise InputError(str(e)) from None
        ids = queue().purge(state, older_s)
        return {"purged": len(ids), "state": state}, f"purged {len(ids)} {state} job(s)"

    def do_pause(request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        name = request.path_params["name"]
        queue().pause([name])
        return {"queues": [name], "paused": True}, f"paused queue {name}"

    def do_resume(request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        name = request.path_params["name"]
        queue().resume([name])
        return {"queues": [name], "resumed": True}, f"resumed queue {name}"

    def do_stop(request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        worker = f.get("worker") or None
        host = f.get("host") or None
        if worker is None and host is None:
            raise InputError("name a worker or a host to stop")
        force = f.get("force") == "1"
        n = queue().stop_workers(force=force, wait=False, host=host, worker=worker)
        what = f"worker {worker}" if worker else f"the workers of host {host}"
        if n == 0:
            return {"asked": 0}, f"no running worker matched ({what})"
        return {"asked": n}, f"asked {n} worker(s) to stop: {what}"

    def do_config(request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        key, stored = queue().config_set(request.path_params["key"], f.get("value", ""))
        return {key: stored}, f"{key} = {stored}"

    routes = [
        Route("/", overview),
        Route("/jobs", jobs),
        Route("/jobs/{id:path}", job),
        Route("/dlq", dlq),
        Route("/queues", queues_page),
        Route("/schedules", schedules),
        Route("/workers", workers),
        Route("/config", config),
        Route("/metrics", metrics),
        Route("/events", events),
        Route("/login", login),
        Route("/api/overview", api_overview),
        Route("/api/status", api_status),
        Route("/api/throughput", api_throughput),
        Route("/api/jobs", api_jobs),
        Route("/api/jobs/{id:path}/output", output),
        Route("/api/jobs/{id:path}", api_job),
        Route("/api/dlq", api_dlq),
        Route("/api/queues", api_queues),
        Route("/api/schedules", api_schedules),
        Route("/api/workers", api_workers),
        Route("/api/config", api_config),
        Route("/api/openapi.json", api_openapi),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    if not settings.read_only:
        post = [
            ("/api/retry", do_retry),
            ("/api/retry-all-dead", do_retry_all),
            ("/api/cancel", do_cancel),
            ("/api/delete", do_delete),
            ("/api/purge", do_purge),
            ("/api/queues/{name}/pause", do_pause),
            ("/api/queues/{name}/resume", do_resume),
            ("/api/workers/stop", do_stop),
            ("/api/config/{key}", do_config),
        ]
        routes += [Route(p, action(fn), methods=["POST"]) for p, fn in post]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        feed.start()
        try:
            yield
        finally:
            feed.stop()

    return Starlette(
        routes=routes,
        middleware=[Middleware(Guard, settings=settings), Middleware(Headers)],
        lifespan=lifespan,
    )


class Headers:
    """Security headers on every answer: no framing, no sniffing, scripts only from here."""

    CSP = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", self.CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _no_cache() -> dict[str, str]:
    return {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(65536)
    except FileNotFoundError:
        return b""


def _int(text: str | None, default: Any, name: str, low: int, high: int) -> Any:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{name} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise InputError(f"{name} must be from {low} to {high}, got {value}")
    return value


def serve(settings: Settings, announce: Callable[[str], None]) -> None:
    """Serves until interrupted; once it listens, `announce` gets the address to open
    (with the token), on a thread of its own."""
    import uvicorn

    app = build_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host.strip("[]"),
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        # Named, not "auto": the one-file binary carries exactly these.
        http="h11",
        loop="asyncio",
        ws="none",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    shown_host = "127.0.0.1" if is_wildcard(settings.host) else settings.host
    if ":" in shown_host and not shown_host.startswith("["):
        shown_host = f"[{shown_host}]"
    url = f"http://{shown_host}:{settings.port}/"
    if settings.token:
        url += "login?" + urlencode({"token": settings.token})

    def opened() -> None:
        while not server.started:
            time.sleep(0.05)
        announce(url)

    threading.Thread(target=opened, daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        # uvicorn shuts down on Ctrl-C, then raises the signal again: the stop a user asked
        # for, not an error ("Error: aborted", exit 1, before).
        print("dashboard stopped", file=sys.stderr)
