"""The dashboard's actions (the POSTs under `/api/`): the CLI's changes to jobs, queues,
workers and config, each all or nothing, with its one-line error. The dashboard never
enqueues or runs a command.

An action answers the page that posted it (htmx) with a one-line flash, and a program with
the JSON the CLI's `--json` prints for the same change (`queuectl.shapes`); after each,
the feed takes its snapshot again at once.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from queuectl import InputError
from queuectl.shapes import cancelled_dict, deleted_dict, retried_dict, switched_dict
from queuectl.ui.view import View

#: What an action does: the request and its form in, (its JSON, its message) out.
Run = Callable[[Request, dict[str, str]], tuple[dict[str, Any], str]]


async def form(request: Request) -> dict[str, str]:
    """The posted form's fields (htmx posts forms urlencoded; that is all the actions take)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def ids_of(request: Request, fields: dict[str, str]) -> list[str]:
    """The job named in the path, else the space-separated `ids` of the form."""
    if "id" in request.path_params:
        return [request.path_params["id"]]
    ids = [i for i in fields.get("ids", "").split() if i]
    if not ids:
        raise InputError("no job ids given")
    return ids


class Actions:
    """Each action as a `Run`; `endpoint` makes one a route's handler."""

    def __init__(self, view: View) -> None:
        self.v = view

    def endpoint(self, run: Run) -> Callable[[Request], Any]:
        """The route handler of `run`: reads the form, then runs it in a thread with the
        queue's errors answered as one line."""

        async def handler(request: Request) -> Response:
            fields = await form(request)

            def call() -> Response:
                value, message = run(request, fields)
                self.v.feed.soon()
                return self.v.answer(request, value, message)

            return await asyncio.to_thread(self.v.guarded(lambda _r: call()), request)

        return handler

    def retry(self, request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        n = self.v.queue().retry(ids_of(request, f))
        return retried_dict(n), f"retried {n} job(s): pending again"

    def retry_all(self, request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        n = self.v.queue().retry_all_dead()
        return retried_dict(n), f"retried {n} dead job(s)"

    def cancel(self, request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        r = self.v.queue().cancel(ids_of(request, f))
        text = f"cancelled {len(r.cancelled)} job(s)"
        if r.killing:
            text += f"; {len(r.killing)} running job(s) are being stopped by their workers"
        return cancelled_dict(r), text

    def delete(self, request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        deleted = self.v.queue().delete(ids_of(request, f))
        return deleted_dict(deleted), f"deleted {len(deleted)} job(s)"

    def purge(self, request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        state = f.get("state", "")
        older = f.get("older_than", "").strip()
        older_s = None
        if older:
            from queuectl.duration import parse_seconds

            try:
                older_s = parse_seconds(older)
            except ValueError as e:
                raise InputError(str(e)) from None
        ids = self.v.queue().purge(state, older_s)
        return {"purged": len(ids), "state": state}, f"purged {len(ids)} {state} job(s)"

    def pause(self, request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        name = request.path_params["name"]
        self.v.queue().pause([name])
        return switched_dict([name], "paused"), f"paused queue {name}"

    def resume(self, request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        name = request.path_params["name"]
        self.v.queue().resume([name])
        return switched_dict([name], "resumed"), f"resumed queue {name}"

    def stop(self, request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        worker = f.get("worker") or None
        host = f.get("host") or None
        if worker is None and host is None:
            raise InputError("name a worker or a host to stop")
        force = f.get("force") == "1"
        n = self.v.queue().stop_workers(force=force, wait=False, host=host, worker=worker)
        what = f"worker {worker}" if worker else f"the workers of host {host}"
        if n == 0:
            return {"asked": 0}, f"no running worker matched ({what})"
        return {"asked": n}, f"asked {n} worker(s) to stop: {what}"

    def config(self, request: Request, f: dict[str, str]) -> tuple[dict[str, Any], str]:
        key, stored = self.v.queue().config_set(request.path_params["key"], f.get("value", ""))
        return {key: stored}, f"{key} = {stored}"
