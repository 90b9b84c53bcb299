"""`queuectl ui`: the web dashboard, a Starlette app served by uvicorn. This module builds
the app (its one table of routes, its middleware and the feed's lifespan) and serves it.

The app is cut into rooms: `guards` (Host check, token and cookie, CSRF, read-only, CSP),
`feed` (the change-feed thread, the counts snapshot, the event streams), `view` (how an
answer is rendered), `pages` (the reads: HTML pages and their JSON under `/api/`),
`actions` (the POSTs) and `openapi` (the document describing `/api/`). The JSON shapes are
`queuectl.shapes`, which the CLI's `--json` prints too.

Pages are Jinja2 templates with autoescaping on, so every string from a job is text. Live
updates come from one server-sent event stream, `/events`, that says "changed" whenever
another connection commits (the store's own change feed); the page then fetches its
content again. Store calls block, so handlers are plain functions that Starlette runs in
its thread pool; each thread keeps its own store connection.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Callable
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from queuectl.ui.actions import Actions
from queuectl.ui.feed import Feed
from queuectl.ui.guards import Guard, Headers, Settings, is_loopback, is_wildcard, login_endpoint
from queuectl.ui.pages import Pages
from queuectl.ui.view import HERE, View

# `queuectl ui` starts from these three names.
__all__ = ["Settings", "build_app", "is_loopback", "serve"]


class JobIdConvertor(PathConvertor):
    """A job id in a path: any text, slashes and line breaks included. Starlette's `path`
    stops at a line break, so `/api/jobs/a%0Ab` matched no route and got Starlette's plain
    "Not Found" instead of the JSON 404 of the job routes (found by schemathesis)."""

    regex = "(?s:.*)"


register_url_convertor("job_id", JobIdConvertor())


def build_app(settings: Settings) -> Starlette:
    """The dashboard's app: every route (no action when read-only) behind the guards."""
    feed = Feed(settings.home)
    view = View(settings, feed)
    pages = Pages(view)
    g = view.guarded
    routes: list[BaseRoute] = [
        Route("/", g(pages.overview)),
        Route("/jobs", g(pages.jobs)),
        Route("/jobs/{id:job_id}", g(pages.job)),
        Route("/dlq", g(pages.dlq)),
        Route("/queues", g(pages.queues)),
        Route("/schedules", g(pages.schedules)),
        Route("/workers", g(pages.workers)),
        Route("/config", g(pages.config)),
        Route("/metrics", pages.metrics),
        Route("/events", feed.events),
        Route("/login", login_endpoint(settings)),
        Route("/api/overview", g(pages.api_overview)),
        Route("/api/status", g(pages.api_status)),
        Route("/api/throughput", g(pages.api_throughput)),
        Route("/api/jobs", g(pages.api_jobs)),
        Route("/api/jobs/{id:job_id}/output", feed.output),
        Route("/api/jobs/{id:job_id}", g(pages.api_job)),
        Route("/api/dlq", g(pages.api_dlq)),
        Route("/api/queues", g(pages.api_queues)),
        Route("/api/schedules", g(pages.api_schedules)),
        Route("/api/workers", g(pages.api_workers)),
        Route("/api/config", g(pages.api_config)),
        Route("/api/openapi.json", pages.api_openapi),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    if not settings.read_only:
        actions = Actions(view)
        post = [
            ("/api/retry", actions.retry),
            ("/api/retry-all-dead", actions.retry_all),
            ("/api/cancel", actions.cancel),
            ("/api/delete", actions.delete),
            ("/api/purge", actions.purge),
            ("/api/queues/{name}/pause", actions.pause),
            ("/api/queues/{name}/resume", actions.resume),
            ("/api/workers/stop", actions.stop),
            ("/api/config/{key}", actions.config),
        ]
        routes += [Route(p, actions.endpoint(fn), methods=["POST"]) for p, fn in post]

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

    # Bound here, not by uvicorn, which logs a failed bind and exits the process: a port
    # in use is then the CLI's one-line error (OSError), exit 1.
    host = settings.host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, settings.port))
    except OSError:
        sock.close()
        raise
    threading.Thread(target=opened, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shuts down on Ctrl-C, then raises the signal again: the stop a user asked
        # for, not an error ("Error: aborted", exit 1, before).
        print("dashboard stopped", file=sys.stderr)
