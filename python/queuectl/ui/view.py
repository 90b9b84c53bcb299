"""How the dashboard answers, for the pages and the actions alike: a page rendered from its
Jinja2 templates (autoescaping on, so every string from a job is text), JSON under
`/api/`, a one-line flash for htmx, and a queue error as one of these; and the store
connection each of Starlette's threads keeps.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from queuectl import InputError, JobNotFoundError, QueuectlError, _core, flow
from queuectl.api import Queue
from queuectl.shapes import iso
from queuectl.text import shown_location, span
from queuectl.ui.feed import Feed
from queuectl.ui.guards import Settings

HERE = Path(__file__).parent


def rate_text(rate: dict[str, Any] | None) -> str:
    """A queue's rate as its JSON has it (`shapes.rate_dict`), as `queue rate` takes it."""
    return "none" if rate is None else flow.Rate(rate["n"], round(rate["period"] * 1000)).text


class View:
    """What every handler shares: the settings, the feed, the templates, a queue per thread."""

    def __init__(self, settings: Settings, feed: Feed) -> None:
        self.settings = settings
        self.feed = feed
        self.env = Environment(
            loader=FileSystemLoader(str(HERE / "templates")),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.env.filters["iso"] = iso
        self.env.filters["duration"] = span
        self.env.filters["rate"] = rate_text
        self.env.filters["seconds"] = lambda s: flow.duration_text(round(s * 1000))
        # The rules the pages show buttons by: the core's.
        self.env.globals["change_allowed"] = _core.change_allowed
        self.env.globals["final_states"] = _core.FINAL_STATES
        self.env.globals["tries_left"] = _core.tries_left
        self._local = threading.local()

    def queue(self) -> Queue:
        """This thread's queue (store calls block: handlers run in Starlette's thread pool,
        each thread with its own connection)."""
        q: Queue | None = getattr(self._local, "queue", None)
        if q is None:
            q = self._local.queue = Queue(self.settings.home)
        return q

    def page(self, request: Request, template: str, **context: Any) -> HTMLResponse:
        """A page; only its content when htmx asks for it (not on a history restore)."""
        part = request.headers.get("hx-request") == "true" and "hx-history-restore-request" not in (
            request.headers
        )
        html = self.env.get_template(template).render(
            request=request,
            part=part,
            csrf=self.settings.csrf,
            read_only=self.settings.read_only,
            path=request.url.path,
            db=shown_location(self.settings.home.db),
            **context,
        )
        return HTMLResponse(html)

    @staticmethod
    def api(value: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(value, status_code=status)

    def guarded(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Errors of the queue as a one-line answer: JSON for /api/, a page otherwise."""

        def run(request: Request) -> Response:
            try:
                return handler(request)
            except JobNotFoundError as e:
                return self.error(request, str(e), 404)
            except (InputError, QueuectlError) as e:
                return self.error(request, str(e), 400)

        return run

    @staticmethod
    def from_htmx(request: Request) -> bool:
        return request.headers.get("hx-request") == "true"

    def error(self, request: Request, message: str, status: int) -> Response:
        if request.method == "POST" and self.from_htmx(request):
            return self.flash(message, error=True, status=status)
        if request.url.path.startswith("/api/"):
            return self.api({"error": message}, status)
        response = self.page(request, "error.html", message=message)
        response.status_code = status
        return response

    def flash(self, message: str, error: bool = False, status: int = 200) -> HTMLResponse:
        html = self.env.from_string(
            '<p class="flash {{ kind }}" role="status">{{ message }}</p>'
        ).render(kind="error" if error else "ok", message=message)
        # Pages re-read their content after any action.
        return HTMLResponse(html, status_code=status, headers={"HX-Trigger": "qc-refresh"})

    def answer(self, request: Request, value: dict[str, Any], message: str) -> Response:
        """An action's result: a message for the page that posted it (htmx), else the
        JSON the CLI's --json prints."""
        return self.flash(message) if self.from_htmx(request) else self.api(value)
