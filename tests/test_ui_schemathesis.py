"""schemathesis against a real `queuectl ui`: every operation of the dashboard's OpenAPI
document (/api/openapi.json) called with data generated from its schemas, valid and not,
over a real queue of each store. No answer is a 5xx, every answer conforms to the
document (status, content type, body schema, headers), and an answer of 400 or more (and
any GET) leaves the store exactly as it was (every table, read before and after the call).

The requests carry what a browser on the dashboard's page sends: the Host it was bound to
(schemathesis sends the address it calls) and the page's CSRF token, so the actions reach
their handlers instead of stopping at the guard. With --read-only, the same actions are
each refused (403) and change nothing, and the read-only document is fuzzed the same way.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from conftest import Queue
from test_ui import Dashboard, dashboard, dead_job

schemathesis = pytest.importorskip("schemathesis")

# Examples per operation and generation mode: about 600 calls in all, ~20 s on SQLite here.
POSITIVE_EXAMPLES = 15
NEGATIVE_EXAMPLES = 10


class Store:
    """Every table of the queue, read through one connection kept open for the test."""

    def __init__(self, q: Queue) -> None:
        if q.db is not None:
            import psycopg

            self.conn: Any = psycopg.connect(q.db, autocommit=True)
            rows = self.conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            ).fetchall()
        else:
            self.conn = sqlite3.connect(q.home / "qctl.db", isolation_level=None)
            rows = self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            ).fetchall()
        self.tables = sorted(r[0] for r in rows)
        assert {"jobs", "queues", "config", "schedules"} <= set(self.tables), self.tables

    def snapshot(self) -> dict[str, list[str]]:
        return {
            table: sorted(repr(row) for row in self.conn.execute(f"SELECT * FROM {table}"))
            for table in self.tables
        }

    def close(self) -> None:
        self.conn.close()


@contextlib.contextmanager
def served(q: Queue, *args: str) -> Iterator[tuple[Dashboard, Store, dict[str, list[str]]]]:
    """A queue with something of everything, its dashboard, its tables, and the names it
    has, so that generated requests reach real jobs, queues and keys as well as random ones
    ("nope" and "colour" name nothing)."""
    real = {
        "id": [dead_job(q), "parent", "child", "nope"],
        "name": ["images", "emails", "default"],
        "key": ["max-retries", "backoff_max", "job-timeout", "colour"],
        "queue": ["images", "default"],
        "value": ["5", "10m", "1.5", "64KiB", "-1"],
    }
    q.run("enqueue", "--id", "parent", "--command", "true", "--queue", "images")
    q.run("enqueue", "--id", "child", "--command", "true", "--after", "parent")
    q.run("queue", "pause", "images")
    q.run("queue", "limit", "emails", "2")
    q.run("config", "set", "backoff-max", "10m")
    q.run("schedule", "add", "nightly", "--cron", "0 2 * * *", "--command", "./backup.sh")
    store = Store(q)
    try:
        with dashboard(q, *args) as d:
            yield d, store, real
    finally:
        store.close()


def use_real_names(case: Any, data: st.DataObject, real: dict[str, list[str]]) -> None:
    """Puts real ids and names in place of generated ones (still valid for the schema). The
    output stream of an unfinished job lasts until it ends: its ids stay generated."""
    for name in case.path_parameters or {}:
        if name in real and not case.operation.path.endswith("/output"):
            case.path_parameters[name] = data.draw(st.sampled_from(real[name]), label=name)
    if case.query and "queue" in case.query:
        case.query["queue"] = data.draw(st.sampled_from(real["queue"]), label="queue")
    if isinstance(case.body, dict) and "ids" in case.body:
        ids = data.draw(st.lists(st.sampled_from(real["id"]), min_size=1, max_size=3))
        case.body["ids"] = " ".join(ids)
    if isinstance(case.body, dict) and "value" in case.body:
        case.body["value"] = data.draw(st.sampled_from(real["value"]), label="value")


def fuzz_operation(
    operation: Any,
    d: Dashboard,
    store: Store,
    csrf: str,
    mode: Any,
    examples: int,
    real: dict[str, list[str]],
    expect_status: int | None = None,
) -> list[int]:
    """Calls `operation` with up to `examples` generated cases; returns the statuses."""
    statuses: list[int] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        case.headers = {**(case.headers or {}), "X-CSRF-Token": csrf}
        if mode.name == "POSITIVE" and data.draw(st.booleans(), label="real names"):
            use_real_names(case, data, real)
        before = store.snapshot()
        response = case.call(base_url=f"http://127.0.0.1:{d.port}", timeout=20)
        statuses.append(response.status_code)
        label = f"{case.method} {case.formatted_path} -> {response.status_code}"
        assert response.status_code < 500, f"{label}: {response.text[:500]}"
        if expect_status is not None:
            assert response.status_code == expect_status, f"{label}: {response.text[:200]}"
        if response.status_code >= 400 or case.method == "GET":
            after = store.snapshot()
            changed = [t for t in store.tables if after[t] != before[t]]
            assert not changed, f"{label} ({response.text[:200]}) changed {changed}"
        case.validate_response(response, checks=conformance_checks())

    try:
        run()
    except Unsatisfiable:
        # No invalid request exists for an operation without parameters or body.
        if mode.name != "NEGATIVE":
            raise
    return statuses


def conformance_checks() -> list[Any]:
    """No 5xx, and the answer as documented: a status the operation lists, its content type,
    its headers and its body schema. (Not schemathesis's checks that every invalid request
    is refused: the dashboard reads an empty or repeated query parameter as HTML forms send
    them, on purpose.)"""
    from schemathesis import checks

    names = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
    return [getattr(checks, name) for name in names]


def operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_answers_by_its_schema_and_a_refusal_writes_nothing(q: Queue) -> None:
    from schemathesis import GenerationMode

    with served(q) as (d, store, real):
        schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{d.port}/api/openapi.json")
        csrf = d.csrf()
        ops = operations(schema)
        assert len(ops) >= 20, [op.label for op in ops]
        answers = {}
        for op in ops:
            answers[op.label] = fuzz_operation(
                op, d, store, csrf, GenerationMode.POSITIVE, POSITIVE_EXAMPLES, real
            ) + fuzz_operation(op, d, store, csrf, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, real)
        print({label: sorted(set(statuses)) for label, statuses in answers.items()})
        # Every operation was called, and every action got past the guard at least once
        # (a 200, or a refusal by its handler): the CSRF token reached them.
        assert all(answers.values()), answers
        for op in ops:
            if op.method.upper() == "POST":
                assert set(answers[op.label]) - {403}, (op.label, answers[op.label])
        assert d.proc.poll() is None, "the dashboard exited"


def test_read_only_refuses_every_action_and_serves_its_reads(q: Queue) -> None:
    from schemathesis import GenerationMode

    with served(q, "--read-only") as (d, store, real):
        url = f"http://127.0.0.1:{d.port}/api/openapi.json"
        read_only = schemathesis.openapi.from_url(url)
        assert not any(op.method.upper() == "POST" for op in operations(read_only))
        for op in operations(read_only):
            fuzz_operation(op, d, store, "", GenerationMode.POSITIVE, 5, real)
        # The full document's actions against the read-only dashboard, with the page's
        # token: each refused by the guard, the store untouched.
        from queuectl.ui import openapi

        full = schemathesis.openapi.from_dict(openapi.document())
        csrf = d.csrf()
        actions = [op for op in operations(full) if op.method.upper() == "POST"]
        assert len(actions) >= 9
        for op in actions:
            fuzz_operation(op, d, store, csrf, GenerationMode.POSITIVE, 5, real, expect_status=403)
