"""The dashboard's OpenAPI document (queuectl.ui.openapi) against the dashboard itself:
every `/api/` route the Starlette app registers is documented with its methods and every
documented path is registered, with and without --read-only; and the answers of a real
`queuectl ui` over a real queue (dead, completed, waiting and running jobs, a paused and a
limited queue, a schedule, workers, config) validate against the documented schemas,
actions included. OpenAPI 3.1 schemas are JSON Schema 2020-12: the `jsonschema` package
checks them."""

from __future__ import annotations

import http.client
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from conftest import Queue
from queuectl.home import Home
from queuectl.ui import openapi
from queuectl.ui.server import Settings, build_app
from test_ui import Dashboard, dashboard, dead_job

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

DOC_URI = "urn:queuectl:dashboard-openapi"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
format_checker = jsonschema.FormatChecker(formats=())


@format_checker.checks("date-time")
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(TIME.match(value))


def registered(read_only: bool, home: Path) -> dict[str, set[str]]:
    """The app's routes: OpenAPI path -> methods (lower case, HEAD left out)."""
    app = build_app(Settings(Home(home, str(home / "qctl.db")), "127.0.0.1", 1, None, read_only))
    found: dict[str, set[str]] = {}
    for route in app.routes:
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None)
        if methods is None:  # the static files' mount
            continue
        openapi_path = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)
        found.setdefault(openapi_path, set()).update(m.lower() for m in methods if m != "HEAD")
    return found


def documented(doc: dict[str, Any]) -> dict[str, set[str]]:
    return {path: set(item) for path, item in doc["paths"].items()}


@pytest.mark.store_independent
@pytest.mark.parametrize("read_only", [False, True], ids=["normal", "read-only"])
def test_every_api_route_is_documented_and_every_documented_path_registered(
    read_only: bool, tmp_path: Path
) -> None:
    routes = registered(read_only, tmp_path)
    doc = documented(openapi.document(read_only=read_only))
    api_routes = {p: m for p, m in routes.items() if p.startswith("/api/")}
    api_doc = {p: m for p, m in doc.items() if p.startswith("/api/")}
    assert api_doc == api_routes
    # The routes documented outside /api/ are registered too, with their methods.
    for path, methods in doc.items():
        assert routes.get(path) == methods, path
    assert {"/metrics", "/login"} <= set(doc)


@pytest.mark.store_independent
def test_read_only_leaves_out_exactly_the_actions(tmp_path: Path) -> None:
    full, ro = openapi.document(), openapi.document(read_only=True)
    actions = {
        (path, method)
        for path, item in full["paths"].items()
        for method, op in item.items()
        if op.get(openapi.ACTION)
    }
    assert actions and {m for _, m in actions} == {"post"}
    posts = {(p, m) for p, ms in registered(False, tmp_path).items() for m in ms if m == "post"}
    assert actions == posts
    assert {p for p, _ in actions}.isdisjoint(ro["paths"])
    assert set(full["paths"]) - set(ro["paths"]) == {p for p, _ in actions}
    jsonschema.Draft202012Validator.check_schema({"$defs": full["components"]["schemas"]})


class Checker:
    """Validates answers against the document's response schema of (path, method, status)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        resource = referencing.Resource.from_contents(
            doc, default_specification=referencing.jsonschema.DRAFT202012
        )
        self.registry = referencing.Registry().with_resource(DOC_URI, resource)
        self.checked: set[tuple[str, str]] = set()

    def check(self, path: str, method: str, status: int, body: str) -> Any:
        responses = self.doc["paths"][path][method]["responses"]
        assert str(status) in responses, (path, method, status, body)
        pointer = "/".join(
            x.replace("~", "~0").replace("/", "~1")
            for x in ["paths", path, method, "responses", str(status), "content"]
        )
        content = responses[str(status)].get("content", {})
        self.checked.add((path, method))
        if "application/json" not in content:
            return body
        value = json.loads(body)
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"{DOC_URI}#/{pointer}/application~1json/schema"},
            registry=self.registry,
            format_checker=format_checker,
        )
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        assert not errors, f"{method.upper()} {path} {status}:\n" + "\n".join(
            f"  at {list(e.path)}: {e.message}" for e in errors
        )
        return value

    def get(self, d: Dashboard, path: str, url: str, status: int = 200) -> Any:
        got, headers, body = d.request("GET", url)
        assert got == status, (url, got, body)
        content = self.doc["paths"][path]["get"]["responses"][str(status)].get("content")
        assert content is None or headers["content-type"].split(";")[0] in content
        return self.check(path, "get", got, body)

    def post(
        self, d: Dashboard, path: str, url: str, body: dict[str, str], csrf: str, status: int = 200
    ) -> Any:
        # Without HX-Request: the JSON answer, as a script gets it.
        got, headers, text = d.request("POST", url, body, {"X-CSRF-Token": csrf})
        assert got == status, (url, got, text)
        assert headers["content-type"].startswith("application/json")
        return self.check(path, "post", got, text)


def some_of_everything(q: Queue, tmp_path: Path) -> str:
    """Dead, completed, waiting and pending jobs, one running with output; a paused queue and
    a limited one; a schedule; config set; two workers, one busy. Returns the running job."""
    dead_job(q, "echo 'fetching'; echo 'refused' >&2; exit 7")
    q.run("enqueue", "--id", "done", "--command", "echo 'wrote report.csv'")
    q.run("worker", "start", "--burst", "--quiet")
    q.run("enqueue", "--id", "thumbs", "--queue", "images", "--command", "true")
    q.run(
        "enqueue", "--id", "upload", "--queue", "images", "--after", "thumbs", "--command", "true"
    )
    q.run("enqueue", "--id", "mail", "--queue", "emails", "--env", "TO=x", "--command", "true")
    q.run("queue", "pause", "images")
    q.run("queue", "limit", "emails", "2")
    q.run("queue", "pause", "emails")  # no worker takes it: it stays pending
    q.run("schedule", "add", "nightly", "--cron", "0 2 * * *", "--tz", "Europe/Berlin",
          "--command", "./backup.sh")  # fmt: skip
    q.run("config", "set", "max-retries", "5")
    q.run("config", "set", "backoff-max", "10m")
    gate = shlex.quote(str(tmp_path / "go"))
    q.run("enqueue", "--id", "long", "--command",
          f"echo started; while [ ! -e {gate} ]; do sleep 0.05; done")  # fmt: skip
    q.start_workers("--count", "2", "--quiet")
    q.wait_for(lambda: q.state("long") == "processing", what="the long job to run")
    return "long"


def test_real_answers_validate_against_the_documented_schemas(q: Queue, tmp_path: Path) -> None:
    running = some_of_everything(q, tmp_path)
    dead = q.json("list", "--state", "dead")[0]["id"]
    with dashboard(q) as d:
        served = d.api("/api/openapi.json")
        assert served == json.loads(json.dumps(openapi.document()))
        c = Checker(served)
        overview = c.get(d, "/api/overview", "/api/overview")
        assert overview["jobs"]["processing"] == 1 and overview["workers_by_host"]
        status = c.get(d, "/api/status", "/api/status")
        assert {w["state"] for w in status["workers"]} == {"idle", "busy"}
        c.get(d, "/api/throughput", "/api/throughput?minutes=30")
        page = c.get(d, "/api/jobs", "/api/jobs?limit=3")
        assert len(page["jobs"]) == 3 and page["next"] is not None
        c.get(d, "/api/jobs", f"/api/jobs?before={page['next']}&state=waiting&queue=images")
        c.get(d, "/api/jobs", "/api/jobs?q=backup")
        c.get(d, "/api/jobs", "/api/jobs?limit=abc", 400)
        for job_id in (dead, "done", "upload", "mail", running):
            detail = c.get(d, "/api/jobs/{id}", f"/api/jobs/{job_id}")
            assert detail["id"] == job_id
        assert c.get(d, "/api/jobs/{id}", f"/api/jobs/{dead}")["attempt_history"]
        assert c.get(d, "/api/jobs/{id}", "/api/jobs/upload")["after"] == [
            {"id": "thumbs", "state": "pending"}
        ]
        c.get(d, "/api/jobs/{id}", "/api/jobs/nope", 404)
        assert "event: end" in c.get(d, "/api/jobs/{id}/output", "/api/jobs/done/output")
        c.get(d, "/api/jobs/{id}/output", "/api/jobs/nope/output", 404)
        assert len(c.get(d, "/api/dlq", "/api/dlq")["jobs"]) == 1
        queues = c.get(d, "/api/queues", "/api/queues")
        assert {x["name"]: (x["paused"], x["limit"]) for x in queues}["emails"] == (True, 2)
        assert c.get(d, "/api/schedules", "/api/schedules")[0]["tz"] == "Europe/Berlin"
        c.get(d, "/api/workers", "/api/workers")
        c.get(d, "/api/workers", "/api/workers?all=1")
        assert c.get(d, "/api/config", "/api/config")["backoff-max"] == "600"
        c.get(d, "/api/openapi.json", "/api/openapi.json")
        c.get(d, "/metrics", "/metrics")
        c.get(d, "/login", "/login?token=x", 303)  # no token needed: to the overview
        stream = http.client.HTTPConnection("127.0.0.1", d.port, timeout=20)
        stream.request("GET", f"/api/jobs/{running}/output", headers={"Host": d.url[7:-1]})
        r = stream.getresponse()
        assert r.status == 200 and r.getheader("content-type", "").startswith("text/event-stream")
        assert r.readline().startswith(b"data: ")
        stream.close()

        # The actions, each with the JSON a script gets.
        csrf = d.csrf()
        assert c.post(d, "/api/retry", "/api/retry", {"ids": dead}, csrf) == {"retried": 1}
        c.post(d, "/api/retry", "/api/retry", {"ids": "nope"}, csrf, 404)
        c.post(d, "/api/retry", "/api/retry", {}, csrf, 400)
        assert c.post(d, "/api/cancel", "/api/cancel", {"ids": f"mail {running}"}, csrf) == {
            "cancelled": ["mail"],
            "killing": [running],
        }
        q.wait_for(lambda: q.state(running) == "cancelled", what="the running job cancelled")
        c.post(d, "/api/retry-all-dead", "/api/retry-all-dead", {}, csrf)
        assert c.post(d, "/api/delete", "/api/delete", {"ids": "mail"}, csrf) == {
            "deleted": ["mail"]
        }
        purged = c.post(d, "/api/purge", "/api/purge", {"state": "completed"}, csrf)
        assert purged["state"] == "completed" and purged["purged"] >= 1
        c.post(d, "/api/purge", "/api/purge", {"state": "dead", "older_than": "1d"}, csrf)
        c.post(d, "/api/purge", "/api/purge", {"state": "pending"}, csrf, 400)
        for verb in ("pause", "resume"):
            path = f"/api/queues/{{name}}/{verb}"
            assert c.post(d, path, f"/api/queues/reports/{verb}", {}, csrf)["queues"] == ["reports"]
        set_ = c.post(d, "/api/config/{key}", "/api/config/job_timeout", {"value": "2m"}, csrf)
        assert set_ == {"job-timeout": "120"}
        c.post(d, "/api/config/{key}", "/api/config/job-timeout", {"value": "-1"}, csrf, 400)
        worker = q.json("worker", "list")[0]["id"]
        asked = c.post(d, "/api/workers/stop", "/api/workers/stop", {"worker": worker}, csrf)
        assert asked == {"asked": 1}
        c.post(d, "/api/workers/stop", "/api/workers/stop", {"host": "elsewhere"}, csrf)
        c.post(d, "/api/workers/stop", "/api/workers/stop", {}, csrf, 400)

    # Every documented operation had a real answer checked.
    operations = {(path, method) for path, item in served["paths"].items() for method in item}
    assert operations - c.checked == set()


def test_read_only_serves_its_own_document(q: Queue) -> None:
    with dashboard(q, "--read-only") as d:
        served = d.api("/api/openapi.json")
        assert served == json.loads(json.dumps(openapi.document(read_only=True)))
        assert not any(
            op.get(openapi.ACTION) for item in served["paths"].values() for op in item.values()
        )


def test_the_document_needs_the_token_like_any_api_route(q: Queue) -> None:
    token = "a-token-of-enough-length"
    with dashboard(q, "--token", token) as d:
        assert d.get("/api/openapi.json")[0] == 401
        assert d.get("/api/openapi.json", Authorization=f"Bearer {token}")[0] == 200
        assert d.get("/api/openapi.json", Host="evil.example")[0] == 403
