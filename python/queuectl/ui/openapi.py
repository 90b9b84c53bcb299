"""The OpenAPI 3.1 document of the dashboard's HTTP API, served at `/api/openapi.json`.

Written by hand next to the routes in server.py and kept true by tests/test_openapi.py:
every `/api/` route the app registers is documented and every documented path is
registered, and real answers of a running dashboard validate against its schemas (in
schemas.py; OpenAPI 3.1 schemas are JSON Schema 2020-12). The schemas forbid fields they
do not name, so a field added to the JSON without its line there fails that test.
"""

from __future__ import annotations

import copy
from typing import Any

from queuectl import __version__, _core
from queuectl.ui.schemas import STR, components, object_schema, ref

#: Extension key on each action (POST) operation: the dashboard registers it only
#: without --read-only.
ACTION = "x-queuectl-action"


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": STR}}}


_BAD = _json(ref("Error"), "A bad parameter or a refusal of the queue, in one line.")
_MISSING = _json(ref("Error"), "No such job.")


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": STR,
        "description": description,
    }


_JOB_ID = _path("id", "the job's id (it may hold slashes)")
_BEFORE = _query(
    "before",
    {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    "the `next` of the page before: jobs enqueued before it",
)


def _get(summary: str, ok: dict[str, Any], *params: dict[str, Any], **more: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary}
    if params:
        operation["parameters"] = list(params)
    operation["responses"] = {"200": ok, **more}
    return {"get": operation}


def _action(
    summary: str,
    ok: dict[str, Any],
    fields: dict[str, Any] | None = None,
    required: tuple[str, ...] = (),
    params: tuple[dict[str, Any], ...] = (),
    description: str = "",
    ids: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "description": (description + "\n\n" if description else "")
        + "An action: needs the X-CSRF-Token header; not served with --read-only (403). "
        "Sent with `HX-Request: true` (as the pages do) it answers a line of HTML for "
        "the page instead of this JSON.",
        ACTION: True,
        "parameters": [*params, {"$ref": "#/components/parameters/Csrf"}],
    }
    if fields is not None:
        body_schema: dict[str, Any] = {
            "type": "object",
            "properties": fields,
            "additionalProperties": True,
        }
        if required:
            body_schema["required"] = list(required)
        operation["requestBody"] = {
            "required": bool(required),
            "content": {"application/x-www-form-urlencoded": {"schema": body_schema}},
        }
    operation["responses"] = {
        "200": ok,
        "400": _BAD,
        "403": _text("The CSRF token is missing or wrong, or the dashboard is read-only."),
    }
    if ids:
        operation["responses"]["404"] = _json(
            ref("Error"), "One of the ids names no job; nothing changed."
        )
    return {"post": operation}


_IDS = {
    "ids": {
        "type": "string",
        "description": "job ids separated by spaces; all or nothing",
    }
}


def document(read_only: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the dashboard's HTTP API. With `read_only`, as a
    `queuectl ui --read-only` serves it: without the actions, which it does not register.
    Every action operation carries `x-queuectl-action: true`."""
    paths: dict[str, Any] = {
        "/api/overview": _get(
            "Counts, queues and workers for the overview", _json(ref("Overview"))
        ),
        "/api/status": _get("Jobs by state and the running workers", _json(ref("Status"))),
        "/api/throughput": _get(
            "Jobs completed and failed runs per minute",
            _json(ref("Throughput")),
            _query(
                "minutes",
                {"type": "integer", "minimum": 1, "maximum": 7 * 24 * 60, "default": 180},
                "how many minutes, up to now",
            ),
            **{"400": _BAD},
        ),
        "/api/jobs": _get(
            "A page of jobs, newest first, with filters",
            _json(ref("JobsPage")),
            _query("state", ref("JobState"), "only jobs in this state"),
            _query("queue", STR, "only jobs of this queue"),
            _query("q", STR, "only jobs whose id or command contains this text"),
            _BEFORE,
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                "most jobs on the page",
            ),
            **{"400": _BAD},
        ),
        "/api/jobs/{id}": _get(
            "One job with its dependencies and attempts",
            _json(ref("JobDetail")),
            _JOB_ID,
            **{"404": _MISSING},
        ),
        "/api/jobs/{id}/output": _get(
            "A job's output as it grows (server-sent events)",
            _text(
                "An event stream: `data:` events each holding a JSON string (the next "
                "piece of the log), `: still running` comments while nothing is written, "
                "and, once the job has ended, `event: end` with its state as a JSON string.",
                "text/event-stream",
            ),
            _JOB_ID,
            **{"404": _text("No such job.")},
        ),
        "/api/dlq": _get(
            "A page of dead jobs, newest first (50 a page)",
            _json(ref("JobsPage")),
            _BEFORE,
            **{"400": _BAD},
        ),
        "/api/queues": _get(
            "The named queues with counts by state",
            _json({"type": "array", "items": ref("Queue")}),
        ),
        "/api/schedules": _get("The schedules", _json({"type": "array", "items": ref("Schedule")})),
        "/api/workers": _get(
            "The running workers",
            _json({"type": "array", "items": ref("Worker")}),
            _query(
                "all",
                {"type": "string", "enum": ["1"]},
                "1: exited and lost workers too",
            ),
        ),
        "/api/config": _get("Every config key and its value", _json(ref("Config"))),
        "/api/openapi.json": _get(
            "This document (without the actions under --read-only)",
            _json({"type": "object"}),
        ),
    }
    actions: dict[str, Any] = {
        "/api/retry": _action(
            "Retry failed, dead or cancelled jobs",
            _json(object_schema({"retried": {"type": "integer", "minimum": 0}})),
            _IDS,
            ("ids",),
            ids=True,
            description="They go back to pending with their attempts reset.",
        ),
        "/api/retry-all-dead": _action(
            "Retry every dead job",
            _json(object_schema({"retried": {"type": "integer", "minimum": 0}})),
        ),
        "/api/cancel": _action(
            "Cancel jobs",
            _json(
                object_schema(
                    {
                        "cancelled": {"type": "array", "items": STR},
                        "killing": {
                            "type": "array",
                            "items": STR,
                            "description": "running jobs their workers were asked to kill",
                        },
                    }
                )
            ),
            _IDS,
            ("ids",),
            ids=True,
        ),
        "/api/delete": _action(
            "Delete jobs that are not running, with their history and logs",
            _json(object_schema({"deleted": {"type": "array", "items": STR}})),
            _IDS,
            ("ids",),
            ids=True,
        ),
        "/api/purge": _action(
            "Delete every job in an ended state",
            _json(object_schema({"purged": {"type": "integer", "minimum": 0}, "state": STR})),
            {
                "state": {"type": "string", "enum": list(_core.FINAL_STATES)},
                "older_than": {
                    "type": "string",
                    "description": "only jobs that reached the state at least this long "
                    "ago: seconds, or 30s, 10m, 2h, 1d",
                },
            },
            ("state",),
        ),
        "/api/queues/{name}/pause": _action(
            "Pause a queue on every host",
            _json(
                object_schema(
                    {
                        "queues": {"type": "array", "items": STR},
                        "paused": {"const": True},
                    }
                )
            ),
            params=(_path("name", "the queue"),),
        ),
        "/api/queues/{name}/resume": _action(
            "Resume a paused queue",
            _json(
                object_schema(
                    {
                        "queues": {"type": "array", "items": STR},
                        "resumed": {"const": True},
                    }
                )
            ),
            params=(_path("name", "the queue"),),
        ),
        "/api/workers/stop": _action(
            "Ask one worker, or the workers of one host, to stop",
            _json(
                object_schema(
                    {"asked": {"type": "integer", "minimum": 0, "description": "0: none"}}
                )
            ),
            {
                "worker": {"type": "string", "description": "a worker id"},
                "host": {"type": "string", "description": "a host name"},
                "force": {
                    "type": "string",
                    "enum": ["1"],
                    "description": "1: kill running jobs now (they are requeued)",
                },
            },
            description="Name a worker or a host. Without force a worker finishes its job first.",
        ),
        "/api/config/{key}": _action(
            "Set a config key",
            _json(
                {
                    "type": "object",
                    "description": "the key and its value as stored",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "additionalProperties": STR,
                }
            ),
            {"value": STR},
            ("value",),
            params=(_path("key", "a config key (hyphens or underscores)"),),
            description="Validated as `queuectl config set` does.",
        ),
    }
    if not read_only:
        paths.update(actions)
    paths["/metrics"] = _get(
        "Prometheus metrics (not under /api/)",
        _text("The metrics in Prometheus text format 0.0.4; `queuectl metrics` prints the same."),
    )
    paths["/login"] = _get(
        "Trade the token for a session cookie (not under /api/)",
        {"description": "unused"},
        _query("token", STR, "the dashboard's token"),
    )
    login = paths["/login"]["get"]
    login["security"] = []
    login["responses"] = {
        "303": {
            "description": "Right token (or no token needed): redirects to the overview, "
            "setting the HttpOnly, SameSite=Strict session cookie when a token applies.",
            "headers": {"Set-Cookie": {"schema": STR}},
        },
        "401": _text("Wrong token."),
    }
    guard = {
        "401": _text(
            "The dashboard has a token and the request carries neither it nor the session cookie."
        ),
        "403": _text(
            "The Host header is not the dashboard's address (or, for an action, see the action)."
        ),
    }
    for path, item in paths.items():
        if path == "/login":
            continue
        for operation in item.values():
            for status, response in guard.items():
                operation["responses"].setdefault(status, copy.deepcopy(response))
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "queuectl dashboard",
            "version": __version__,
            "description": "The HTTP API of `queuectl ui`. Reads answer the JSON the CLI's "
            "`--json` prints. Every request must carry the Host the dashboard was bound to "
            "(DNS rebinding guard). A dashboard bound to a loopback address without "
            "--token needs no credentials; otherwise send `Authorization: Bearer TOKEN` "
            "or the session cookie that /login sets. Every POST also needs the header "
            "X-CSRF-Token with this server's CSRF token, which each page carries as "
            '`<meta name="csrf-token" content="...">` (it changes when the dashboard '
            "restarts). Actions are all or nothing and answer 400 with a one-line error. "
            "Under --read-only no action is registered.",
        },
        "paths": paths,
        "components": {
            "schemas": components(),
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the dashboard's token (--token or $QUEUECTL_UI_TOKEN, or "
                    "the one generated and printed for a non-loopback bind)",
                },
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "queuectl_session",
                    "description": "set by /login?token=...; valid until the dashboard restarts",
                },
            },
            "parameters": {
                "Csrf": {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": True,
                    "schema": STR,
                    "description": "this server's CSRF token, from the csrf-token meta tag "
                    "of any page",
                }
            },
        },
        # {}: no credentials, for a loopback dashboard without a token.
        "security": [{"bearerToken": []}, {"sessionCookie": []}, {}],
    }
