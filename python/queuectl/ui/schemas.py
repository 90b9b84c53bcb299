"""The JSON Schemas of what the dashboard's `/api/` answers (the shapes of `queuectl.shapes`
and the dashboard's own: overview, pages of jobs, throughput, errors), as the components of
its OpenAPI document (`openapi.py`). The schemas forbid fields they do not name
(`object_schema`), so a field added to a shape without its line here fails
tests/test_openapi.py.
"""

from __future__ import annotations

from typing import Any

from queuectl.api import JOB_STATES

STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
TIME_OR_NULL: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}


def ref(name: str) -> dict[str, Any]:
    """A reference to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def object_schema(properties: dict[str, Any], description: str | None = None) -> dict[str, Any]:
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


def counts_schema(description: str) -> dict[str, Any]:
    """Job counts by state."""
    return {
        "type": "object",
        "description": description,
        "propertyNames": ref("JobState"),
        "additionalProperties": {"type": "integer", "minimum": 0},
    }


def components() -> dict[str, Any]:
    """Every component schema by name."""
    return {
        "JobState": {"type": "string", "enum": list(JOB_STATES)},
        "Job": object_schema(job_properties(), "A job, as `queuectl list --json` prints it."),
        "Attempt": object_schema(
            {
                "attempt": {"type": "integer", "minimum": 1},
                "worker_id": {"type": ["string", "null"]},
                "started_at": TIME_OR_NULL,
                "finished_at": TIME,
                "exit_code": {"type": ["integer", "null"]},
                "error": {"type": ["string", "null"]},
                "outcome": {"type": "string", "enum": ["completed", "failed", "dead", "cancelled"]},
                "output_tail": {"type": "string", "description": "the end of its output"},
            },
            "One finished run of a job.",
        ),
        "JobDetail": object_schema(
            {
                **job_properties(),
                "after": {
                    "type": "array",
                    "items": object_schema({"id": STR, "state": ref("JobState")}),
                    "description": "the jobs it runs after, in enqueue order",
                },
                "attempt_history": {"type": "array", "items": ref("Attempt")},
            },
            "A job with the jobs it runs after and its finished attempts, as "
            "`queuectl show --json` prints it.",
        ),
        "JobsPage": object_schema(
            {
                "jobs": {"type": "array", "items": ref("Job")},
                "next": {
                    "type": ["integer", "null"],
                    "description": "the `before` of the next (older) page; null: none left",
                },
            },
            "A page of jobs, newest first.",
        ),
        "Queue": object_schema(
            {
                "name": STR,
                "paused": {"type": "boolean"},
                "limit": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "most jobs of the queue running at once, on all hosts; "
                    "0: no limit",
                },
                "rate": {
                    "anyOf": [
                        object_schema(
                            {
                                "n": {"type": "integer", "minimum": 1},
                                "period": {"type": "number", "exclusiveMinimum": 0},
                            }
                        ),
                        {"type": "null"},
                    ],
                    "description": "at most n starts in any window of period seconds, on "
                    "all hosts; null: no rate",
                },
                "key_limit": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "most jobs with one key running at once, on all hosts; "
                    "0: no limit",
                },
                "running": {"type": "integer", "minimum": 0},
                "jobs": counts_schema("its jobs by state (states with none may be left out)"),
            },
            "A named queue, as `queuectl queue list --json` prints it.",
        ),
        "Worker": object_schema(
            {
                "id": STR,
                "host": STR,
                "pid": INT,
                "state": {
                    "type": "string",
                    "enum": ["idle", "busy", "stopping", "lost", "exited"],
                },
                "current_job": {"type": ["string", "null"]},
                "queues": {
                    "type": ["array", "null"],
                    "items": STR,
                    "description": "the queues it takes jobs from; null: all",
                },
                "slots": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "description": "slots of its process; null: written by an older version",
                },
                "started_at": TIME,
                "last_heartbeat": TIME,
            },
            "A worker, as `queuectl worker list --json` prints it.",
        ),
        "Schedule": object_schema(
            {
                "name": STR,
                "cron": STR,
                "tz": STR,
                "overlap": {"type": "string", "enum": ["skip", "allow"]},
                "paused": {"type": "boolean"},
                "next_fire_at": {
                    **TIME_OR_NULL,
                    "description": "null while paused",
                },
                "last_fire_at": TIME_OR_NULL,
                "last_job_id": {"type": ["string", "null"]},
                "last_job_state": {"anyOf": [ref("JobState"), {"type": "null"}]},
                "fired": {"type": "integer", "minimum": 0},
                "skipped": {"type": "integer", "minimum": 0},
                "job": {"type": "object", "description": "the job each occurrence enqueues"},
                "created_at": TIME,
            },
            "A schedule, as `queuectl schedule list --json` prints it.",
        ),
        "Config": config_schema(),
        "Overview": object_schema(
            {
                "jobs": counts_schema("jobs by state, every state present"),
                "queues": {"type": "array", "items": ref("Queue")},
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
                        object_schema({"id": STR, "age_s": {"type": "number", "minimum": 0}}),
                        {"type": "null"},
                    ]
                },
                "counted_at": {
                    **TIME,
                    "description": "when the counts were taken (at most a few seconds ago)",
                },
            },
            "What the overview page shows.",
        ),
        "Status": object_schema(
            {
                "jobs": counts_schema("jobs by state, every state present"),
                "workers": {"type": "array", "items": ref("Worker")},
            },
            "Jobs by state and the running workers.",
        ),
        "Throughput": object_schema(
            {
                "minutes": {
                    "type": "array",
                    "items": INT,
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
        "Error": object_schema({"error": {"type": "string", "description": "one line"}}),
    }


def job_properties() -> dict[str, Any]:
    """The fields of a job (`queuectl.shapes.job_dict`)."""
    return {
        "id": STR,
        "command": STR,
        "state": ref("JobState"),
        "queue": STR,
        "attempts": {"type": "integer", "minimum": 0},
        "max_retries": {"type": "integer", "minimum": 0},
        "priority": INT,
        "run_at": TIME,
        "timeout": {"type": "number", "description": "seconds; 0: none"},
        "cwd": STR,
        "env": {
            "type": "array",
            "items": STR,
            "description": "the names of the job's environment variables (never their values)",
        },
        "created_at": TIME,
        "updated_at": TIME,
        "started_at": TIME_OR_NULL,
        "finished_at": TIME_OR_NULL,
        "exit_code": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "worker_id": {"type": ["string", "null"]},
        "cancel_requested_at": TIME_OR_NULL,
        "unique_key": {"type": ["string", "null"]},
        "waiting_on": {
            "type": "integer",
            "minimum": 0,
            "description": "how many of the jobs it runs after have not completed",
        },
        "key": {
            "type": ["string", "null"],
            "description": "its key, counted by the queue's key limit",
        },
        "slots": {"type": "integer", "minimum": 1, "description": "slots of a worker it needs"},
        "retry_delays": {
            "type": ["array", "null"],
            "items": {"type": "number", "minimum": 0},
            "description": "seconds before each retry, the last repeating; null: backoff",
        },
        "retry_on": {
            "type": ["array", "null"],
            "items": {"type": "integer", "minimum": 0, "maximum": 255},
            "description": "the only exit codes retried; null: any",
        },
        "no_retry_on": {
            "type": ["array", "null"],
            "items": {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 255},
                    {"const": "timeout"},
                ]
            },
            "description": "exit codes (and timeout) that end it dead at once",
        },
        "expires_at": {
            **TIME_OR_NULL,
            "description": "cancelled (expired) if it has not started by then",
        },
    }


def config_schema() -> dict[str, Any]:
    """Every config key (`queuectl.config.KEYS`) with its value as stored."""
    from queuectl.config import KEYS

    return object_schema(
        {
            k.name: {"type": "string", "description": f"{k.help}; default {k.default}"}
            for k in KEYS.values()
        },
        "Every config key with its value as stored (the default for keys never set), as "
        "`queuectl config list --json` prints it.",
    )
