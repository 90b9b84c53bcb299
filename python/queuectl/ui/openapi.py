"""The OpenAPI 3.1 document of the dashboard's HTTP API, served at `/api/openapi.json`.

Written by hand next to the routes in server.py and kept true by tests/test_openapi.py:
every `/api/` route the app registers is documented and every documented path is
registered, and real answers of a running dashboard validate against the schemas here
(OpenAPI 3.1 schemas are JSON Schema 2020-12). The schemas forbid fields they do not
name, so a field added to the JSON without its line here fails that test.
"""

from __future__ import annotations

import copy
from typing import Any

from queuectl import __version__
from queuectl.api import JOB_STATES

#: Extension key on each action (POST) operation: the dashboard registers it only
#: without --read-only.
ACTION = "x-queuectl-action"

_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    """An object with exactly these properties, all present."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _counts(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "propertyNames": _ref("JobState"),
        "additionalProperties": {"type": "integer", "minimum": 0},
    }


def _schemas() -> dict[str, Any]:
    return {
        "JobState": {"type": "string", "enum": list(JOB_STATES)},
        "Job": _object(_job_properties(), "A job, as `queuectl list --json` prints it."),
        "Attempt": _object(
            {
                "attempt": {"type": "integer", "minimum": 1},
                "worker_id": {"type": ["string", "null"]},
                "started_at": _TIME_OR_NULL,
                "finished_at": _TIME,
                "exit_code": {"type": ["integer", "null"]},
                "error": {"type": ["string", "null"]},
                "outcome": {"type": "string", "enum": ["completed", "failed", "dead", "cancelled"]},
                "output_tail": {"type": "string", "description": "the end of its output"},
            },
            "One finished run of a job.",
        ),
        "JobDetail": _object(
            {
                **_job_properties(),
                "after": {
                    "type": "array",
                    "items": _object({"id": _STR, "state": _ref("JobState")}),
                    "description": "the jobs it runs after, in enqueue order",
                },
                "attempt_history": {"type": "array", "items": _ref("Attempt")},
            },
            "A job with the jobs it runs after and its finished attempts, as "
            "`queuectl show --json` prints it.",
        ),
        "JobsPage": _object(
            {
                "jobs": {"type": "array", "items": _ref("Job")},
                "next": {
                    "type": ["integer", "null"],
                    "description": "the `before` of the next (older) page; null: none left",
                },
            },
            "A page of jobs, newest first.",
        ),
        "Queue": _object(
            {
                "name": _STR,
                "paused": {"type": "boolean"},
                "limit": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "most jobs of the queue running at once, on all hosts; "
                    "0: no limit",
                },
                "running": {"type": "integer", "minimum": 0},
                "jobs": _counts("its jobs by state (states with none may be left out)"),
            },
            "A named queue, as `queuectl queue list --json` prints it.",
        ),
        "Worker": _object(
            {
                "id": _STR,
                "host": _STR,
                "pid": _INT,
                "state": {
                    "type": "string",
                    "enum": ["idle", "busy", "stopping", "lost", "exited"],
                },
                "current_job": {"type": ["string", "null"]},
                "queues": {
                    "type": ["array", "null"],
                    "items": _STR,
                    "description": "the queues it takes jobs from; null: all",
                },
                "started_at": _TIME,
                "last_heartbeat": _TIME,
            },
            "A worker, as `queuectl worker list --json` prints it.",
        ),
        "Schedule": _object(
            {
                "name": _STR,
                "cron": _STR,
                "tz": _STR,
                "overlap": {"type": "string", "enum": ["skip", "allow"]},
                "paused": {"type": "boolean"},
                "next_fire_at": {
                    **_TIME_OR_NULL,
                    "description": "null while paused",
                },
                "last_fire_at": _TIME_OR_NULL,
                "last_job_id": {"type": ["string", "null"]},
                "last_job_state": {"anyOf": [_ref("JobState"), {"type": "null"}]},
                "fired": {"type": "integer", "minimum": 0},
                "skipped": {"type": "integer", "minimum": 0},
                "job": {"type": "object", "description": "the job each occurrence enqueues"},
                "created_at": _TIME,
            },
            "A schedule, as `queuectl schedule list --json` prints it.",
        ),
        "Config": _config_schema(),
        "Overview": _object(
            {
                "jobs": _counts("jobs by state, every state present"),
                "queues": {"type": "array", "items": _ref("Queue")},
                "workers_by_host": {
                    "type": "object",
                    "description": "running workers: host -> worker state -> how many",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 1},
                    },
                },
                "oldest_pending": {
                    "anyOf": [
                        _object({"id": _STR, "age_s": {"type": "number", "minimum": 0}}),
                        {"type": "null"},
                    ]
                },
                "counted_at": {
                    **_TIME,
                    "description": "when the counts were taken (at most a few seconds ago)",
                },
            },
            "What the overview page shows.",
        ),
        "Status": _object(
            {
                "jobs": _counts("jobs by state, every state present"),
                "workers": {"type": "array", "items": _ref("Worker")},
            },
            "Jobs by state and the running workers.",
        ),
        "Throughput": _object(
            {
                "minutes": {
                    "type": "array",
                    "items": _INT,
                    "description": "the start of each minute, Unix seconds, oldest first",
                },
                "completed": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "description": "jobs completed in each minute",
                },
                "failed": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "description": "failed runs in each minute (retried or dead)",
                },
            },
            "Per-minute counts from the workers' rollup, one entry per minute.",
        ),
        "Error": _object({"error": {"type": "string", "description": "one line"}}),
    }


def _job_properties() -> dict[str, Any]:
    """The fields of a job (`render.job_dict`)."""
    return {
        "id": _STR,
        "command": _STR,
        "state": _ref("JobState"),
        "queue": _STR,
        "attempts": {"type": "integer", "minimum": 0},
        "max_retries": {"type": "integer", "minimum": 0},
        "priority": _INT,
        "run_at": _TIME,
        "timeout": {"type": "number", "description": "seconds; 0: none"},
        "cwd": _STR,
        "env": {
            "type": "array",
            "items": _STR,
            "description": "the names of the job's environment variables (never their values)",
        },
        "created_at": _TIME,
        "updated_at": _TIME,
        "started_at": _TIME_OR_NULL,
        "finished_at": _TIME_OR_NULL,
        "exit_code": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "worker_id": {"type": ["string", "null"]},
        "cancel_requested_at": _TIME_OR_NULL,
        "unique_key": {"type": ["string", "null"]},
        "waiting_on": {
            "type": "integer",
            "minimum": 0,
            "description": "how many of the jobs it runs after have not completed",
        },
    }


def _config_schema() -> dict[str, Any]:
    from queuectl.config import KEYS

    return _object(
        {
            k.name: {"type": "string", "description": f"{k.help}; default {k.default}"}
            for k in KEYS.values()
        },
        "Every config key with its value as stored (the default for keys never set), as "
        "`queuectl config list --json` prints it.",
    )


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": _STR}}}


_BAD = _json(_ref("Error"), "A bad parameter or a refusal of the queue, in one line.")
_MISSING = _json(_ref("Error"), "No such job.")


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
        "schema": _STR,
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
            _ref("Error"), "One of the ids names no job; nothing changed."
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
            "Counts, queues and workers for the overview", _json(_ref("Overview"))
        ),
        "/api/status": _get("Jobs by state and the running workers", _json(_ref("Status"))),
        "/api/throughput": _get(
            "Jobs completed and failed runs per minute",
            _json(_ref("Throughput")),
            _query(
                "minutes",
                {"type": "integer", "minimum": 1, "maximum": 7 * 24 * 60, "default": 180},
                "how many minutes, up to now",
            ),
            **{"400": _BAD},
        ),
        "/api/jobs": _get(
            "A page of jobs, newest first, with filters",
            _json(_ref("JobsPage")),
            _query("state", _ref("JobState"), "only jobs in this state"),
            _query("queue", _STR, "only jobs of this queue"),
            _query("q", _STR, "only jobs whose id or command contains this text"),
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
            _json(_ref("JobDetail")),
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
            _json(_ref("JobsPage")),
            _BEFORE,
            **{"400": _BAD},
        ),
        "/api/queues": _get(
            "The named queues with counts by state",
            _json({"type": "array", "items": _ref("Queue")}),
        ),
        "/api/schedules": _get(
            "The schedules", _json({"type": "array", "items": _ref("Schedule")})
        ),
        "/api/workers": _get(
            "The running workers",
            _json({"type": "array", "items": _ref("Worker")}),
            _query(
                "all",
                {"type": "string", "enum": ["1"]},
                "1: exited and lost workers too",
            ),
        ),
        "/api/config": _get("Every config key and its value", _json(_ref("Config"))),
        "/api/openapi.json": _get(
            "This document (without the actions under --read-only)",
            _json({"type": "object"}),
        ),
    }
    actions: dict[str, Any] = {
        "/api/retry": _action(
            "Retry failed, dead or cancelled jobs",
            _json(_object({"retried": {"type": "integer", "minimum": 0}})),
            _IDS,
            ("ids",),
            ids=True,
            description="They go back to pending with their attempts reset.",
        ),
        "/api/retry-all-dead": _action(
            "Retry every dead job",
            _json(_object({"retried": {"type": "integer", "minimum": 0}})),
        ),
        "/api/cancel": _action(
            "Cancel jobs",
            _json(
                _object(
                    {
                        "cancelled": {"type": "array", "items": _STR},
                        "killing": {
                            "type": "array",
                            "items": _STR,
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
            _json(_object({"deleted": {"type": "array", "items": _STR}})),
            _IDS,
            ("ids",),
            ids=True,
        ),
        "/api/purge": _action(
            "Delete every job in an ended state",
            _json(_object({"purged": {"type": "integer", "minimum": 0}, "state": _STR})),
            {
                "state": {"type": "string", "enum": ["completed", "dead", "cancelled"]},
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
                _object(
                    {
                        "queues": {"type": "array", "items": _STR},
                        "paused": {"const": True},
                    }
                )
            ),
            params=(_path("name", "the queue"),),
        ),
        "/api/queues/{name}/resume": _action(
            "Resume a paused queue",
            _json(
                _object(
                    {
                        "queues": {"type": "array", "items": _STR},
                        "resumed": {"const": True},
                    }
                )
            ),
            params=(_path("name", "the queue"),),
        ),
        "/api/workers/stop": _action(
            "Ask one worker, or the workers of one host, to stop",
            _json(_object({"asked": {"type": "integer", "minimum": 0, "description": "0: none"}})),
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
                    "additionalProperties": _STR,
                }
            ),
            {"value": _STR},
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
        _query("token", _STR, "the dashboard's token"),
    )
    login = paths["/login"]["get"]
    login["security"] = []
    login["responses"] = {
        "303": {
            "description": "Right token (or no token needed): redirects to the overview, "
            "setting the HttpOnly, SameSite=Strict session cookie when a token applies.",
            "headers": {"Set-Cookie": {"schema": _STR}},
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
            "schemas": _schemas(),
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
                    "schema": _STR,
                    "description": "this server's CSRF token, from the csrf-token meta tag "
                    "of any page",
                }
            },
        },
        # {}: no credentials, for a loopback dashboard without a token.
        "security": [{"bearerToken": []}, {"sessionCookie": []}, {}],
    }
