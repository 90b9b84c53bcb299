"""`queuectl ui` over real HTTP, and `queuectl metrics`: a real dashboard process on a free
port, against the real store of each pass. The guards (Host, token, CSRF, read-only), the
`/api/` JSON against the CLI's `--json`, pages, cursors, actions, and the metrics read back
with prometheus_client's parser. The browser tests are in test_ui_browser.py."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from conftest import QUEUECTL, Queue

parser = pytest.importorskip("prometheus_client.parser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Dashboard:
    def __init__(self, proc: subprocess.Popen[str], host: str, port: int, url: str) -> None:
        self.proc, self.host, self.port, self.url = proc, host, port, url

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        data = None
        if body is not None:
            data = urlencode(body)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        text = r.read().decode()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, text

    def get(self, path: str, **headers: str) -> tuple[int, str]:
        status, _, text = self.request("GET", path, headers=headers)
        return status, text

    def api(self, path: str) -> Any:
        status, text = self.get(path)
        assert status == 200, (path, status, text)
        return json.loads(text)

    def csrf(self, **headers: str) -> str:
        status, page = self.get("/", **headers)
        assert status == 200, page
        m = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
        assert m, page[:500]
        return m.group(1)

    def post(self, path: str, body: dict[str, str], csrf: str | None) -> tuple[int, str]:
        headers = {"HX-Request": "true"}
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        status, _, text = self.request("POST", path, body, headers)
        return status, text


@contextlib.contextmanager
def dashboard(q: Queue, *args: str, bind_host: str = "127.0.0.1") -> Iterator[Dashboard]:
    port = free_port()
    proc = subprocess.Popen(
        [QUEUECTL, "ui", "--bind", f"{bind_host}:{port}", *args],
        env=q.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        lines = [line]
        while line and "dashboard" not in line:
            line = proc.stderr.readline()
            lines.append(line)
        assert "dashboard" in line, f"ui exited {proc.poll()}: {''.join(lines)}"
        url = line.split(" on ", 1)[1].strip()
        if "token" in url:  # the token line follows, for a generated token
            lines.append(proc.stderr.readline())
        host = "127.0.0.1" if bind_host in ("0.0.0.0", "::") else bind_host
        d = Dashboard(proc, host, port, url)
        d.announced = "".join(lines)  # type: ignore[attr-defined]
        yield d
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def dead_job(q: Queue, command: str = "echo oops; exit 3") -> str:
    job_id = q.enqueue(command, max_retries=0)
    q.run("worker", "start", "--burst")
    assert q.state(job_id) == "dead"
    return job_id


def test_a_foreign_host_is_refused_and_loopback_names_are_served(q: Queue) -> None:
    with dashboard(q) as d:
        for host in ("evil.example", f"evil.example:{d.port}", "127.0.0.1:1"):
            status, text = d.get("/", Host=host)
            assert status == 403, (host, text)
            assert "not this dashboard's address" in text
        for host in (f"127.0.0.1:{d.port}", f"localhost:{d.port}"):
            assert d.get("/api/status", Host=host)[0] == 200


def test_a_non_loopback_bind_needs_its_token_exchanged_once_for_a_cookie(q: Queue) -> None:
    with dashboard(q, bind_host="0.0.0.0") as d:
        token = d.url.split("token=", 1)[1]
        assert "token (generated for this run)" in d.announced  # type: ignore[attr-defined]
        for path in ("/", "/api/jobs", "/metrics", "/events"):
            status, text = d.get(path)
            assert status == 401, (path, text)
        assert d.get("/login?token=wrong-token-of-some-length")[0] == 401
        status, headers, _ = d.request("GET", "/login?" + urlencode({"token": token}))
        assert status == 303
        cookie = headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert token not in cookie
        session = cookie.split(";", 1)[0]
        assert d.get("/api/status", Cookie=session)[0] == 200
        # Scrapers send the token itself.
        assert d.get("/metrics", Authorization=f"Bearer {token}")[0] == 200
        assert d.get("/metrics", Authorization="Bearer nope")[0] == 401
        # A POST needs the CSRF token as well as the cookie.
        job_id = dead_job(q)
        status, _ = d.post("/api/retry", {"ids": job_id}, None)
        assert status == 401
        csrf = d.csrf(Cookie=session)
        status, _, text = d.request(
            "POST",
            "/api/retry",
            {"ids": job_id},
            {"Cookie": session, "X-CSRF-Token": csrf},
        )
        assert status == 200, text
        assert json.loads(text) == {"retried": 1}


def test_a_given_token_is_used_and_bad_options_are_one_line_errors(q: Queue) -> None:
    token = "a-token-of-enough-length"
    with dashboard(q, "--token", token, bind_host="0.0.0.0") as d:
        assert d.url.endswith("login?token=" + token)
        assert "generated" not in d.announced  # type: ignore[attr-defined]
    for args, message in (
        (["--bind", "127.0.0.1:99999"], "the port must be 1 to 65535"),
        (["--bind", "[::1"], "brackets"),
        (["--token", "short"], "at least 16 characters"),
    ):
        r = q.run("ui", *args, check=False, timeout=30)
        assert r.returncode == 1, r
        assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_every_action_needs_the_csrf_token_and_changes_nothing_without_it(q: Queue) -> None:
    job_id = dead_job(q)
    with dashboard(q) as d:
        for path, body in (
            ("/api/retry", {"ids": job_id}),
            ("/api/retry-all-dead", {}),
            ("/api/delete", {"ids": job_id}),
            ("/api/purge", {"state": "dead"}),
            ("/api/queues/default/pause", {}),
            ("/api/config/max-retries", {"value": "9"}),
        ):
            for wrong in (None, "forged"):
                status, text = d.post(path, body, wrong)
                assert status == 403 and "CSRF" in text, (path, status, text)
        assert q.state(job_id) == "dead"
        assert q.run("config", "get", "max-retries").stdout.strip() == "3"
        assert not q.json("queue", "list")[0]["paused"]
        status, text = d.post("/api/retry", {"ids": job_id}, d.csrf())
        assert status == 200 and "retried 1 job(s)" in text
        assert q.state(job_id) == "pending"


def test_read_only_serves_pages_and_no_action(q: Queue) -> None:
    job_id = dead_job(q)
    with dashboard(q, "--read-only") as d:
        status, page = d.get(f"/jobs/{job_id}")
        assert status == 200 and "read-only" in page
        assert "hx-post" not in page and "Retry" not in page
        status, text = d.post("/api/retry", {"ids": job_id}, d.csrf())
        assert status == 403 and "read-only" in text
        assert q.state(job_id) == "dead"


def test_strings_from_jobs_are_escaped_in_every_page(q: Queue) -> None:
    evil = "<img src=x onerror=alert(1)>"
    job_id = dead_job(q, f"echo '{evil}'; exit 1")
    with dashboard(q) as d:
        for path in ("/jobs", f"/jobs/{job_id}", "/dlq", "/"):
            status, page = d.get(path)
            assert status == 200
            assert "<img" not in page, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in d.get(f"/jobs/{job_id}")[1]
        headers = d.request("GET", "/")[1]
        assert "script-src 'self'" in headers["content-security-policy"]


def test_the_api_serves_what_the_cli_prints_as_json(q: Queue) -> None:
    job_id = dead_job(q)
    q.enqueue("true", queue="mail")
    q.run("queue", "pause", "mail")
    q.run("schedule", "add", "nightly", "--cron", "0 3 * * *", "--command", "true")
    with dashboard(q) as d:
        assert d.api(f"/api/jobs/{job_id}") == q.json("show", job_id)
        assert d.api("/api/queues") == q.json("queue", "list")
        assert d.api("/api/schedules") == q.json("schedule", "list")
        assert d.api("/api/config") == q.json("config", "list")
        assert d.api("/api/workers?all=1") == q.json("worker", "list", "--all")
        status = d.api("/api/status")
        assert status["jobs"] == q.json("status")["jobs"]
        assert [j["id"] for j in d.api("/api/dlq")["jobs"]] == [job_id]
        # Errors are one line of JSON with a status.
        status_code, text = d.get("/api/jobs/nope")
        assert status_code == 404 and "nope" in json.loads(text)["error"]
        status_code, text = d.get("/api/jobs?limit=abc")
        assert status_code == 400 and json.loads(text)["error"].startswith("limit must be")
        assert d.get("/api/jobs?state=bogus")[0] == 400


def test_job_pages_run_newest_first_and_the_cursor_reaches_every_job(q: Queue) -> None:
    lines = "\n".join(
        json.dumps({"command": f"echo {i}", "id": f"job-{i:03}", "queue": ["a", "b"][i % 2]})
        for i in range(120)
    )
    q.run("enqueue", "--file", "-", input=lines)
    with dashboard(q) as d:
        seen: list[str] = []
        cursor = None
        for _ in range(5):
            path = "/api/jobs?limit=50" + (f"&before={cursor}" if cursor else "")
            page = d.api(path)
            seen += [j["id"] for j in page["jobs"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == [f"job-{i:03}" for i in reversed(range(120))]
        only_b = d.api("/api/jobs?queue=b&limit=100")["jobs"]
        assert {j["queue"] for j in only_b} == {"b"} and len(only_b) == 60
        found = d.api("/api/jobs?q=echo%2077")["jobs"]
        assert [j["id"] for j in found] == ["job-077"]
        status, html = d.get("/jobs?limit=50")
        assert status == 200 and 'id="older"' in html and "job-119" in html


def test_actions_pause_resume_purge_set_config_and_stop_one_worker(q: Queue) -> None:
    job_id = dead_job(q)
    with dashboard(q) as d:
        csrf = d.csrf()
        assert "Purge every dead job" in d.get("/jobs?state=dead")[1]
        assert "Purge every" not in d.get("/jobs?state=pending")[1]
        assert d.post("/api/queues/default/pause", {}, csrf)[0] == 200
        assert q.json("queue", "list")[0]["paused"]
        assert d.post("/api/queues/default/resume", {}, csrf)[0] == 200
        assert not q.json("queue", "list")[0]["paused"]
        # A bad value is refused with the CLI's message and changes nothing.
        status, text = d.post("/api/config/max-retries", {"value": "-1"}, csrf)
        assert status == 400 and "max-retries" in text
        assert q.run("config", "get", "max-retries").stdout.strip() == "3"
        assert d.post("/api/config/max-retries", {"value": "5"}, csrf)[0] == 200
        assert q.run("config", "get", "max-retries").stdout.strip() == "5"
        status, text = d.post("/api/purge", {"state": "dead"}, csrf)
        assert status == 200 and "purged 1 dead job(s)" in text
        assert q.run("show", job_id, check=False).returncode == 1
        workers = q.start_workers("--count", "2")
        q.wait_for(lambda: len(q.json("worker", "list")) == 2, what="2 workers")
        first = q.json("worker", "list")[0]["id"]
        status, text = d.post("/api/workers/stop", {"worker": first}, csrf)
        assert status == 200 and "asked 1 worker(s)" in text, text
        q.wait_for(
            lambda: first not in [w["id"] for w in q.json("worker", "list")],
            what="the worker asked to stop gone",
        )
        assert len(q.json("worker", "list")) == 1
        status, text = d.post("/api/workers/stop", {}, csrf)
        assert status == 400 and "name a worker or a host" in text
        workers.terminate()


def test_metrics_parse_count_what_workers_did_and_survive_a_restart(q: Queue) -> None:
    q.enqueue("true")
    q.enqueue("true", queue="mail")
    q.enqueue("exit 1", max_retries=1)
    # The failed one is retried after its backoff (2 s): run workers until it is dead.
    deadline = time.monotonic() + 30
    while q.json("status")["jobs"]["dead"] == 0:
        assert time.monotonic() < deadline, q.json("status")
        q.run("worker", "start", "--burst")
        time.sleep(0.3)
    text = q.run("metrics").stdout
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("queuectl_jobs", queue="default", state="completed") == 1
    assert value("queuectl_jobs", queue="default", state="dead") == 1
    finished = "queuectl_jobs_finished_total"
    assert value(finished, queue="default", outcome="completed") == 1
    assert value(finished, queue="mail", outcome="completed") == 1
    assert value(finished, queue="default", outcome="dead") == 1
    assert value("queuectl_retries_total", queue="default") == 1
    assert families["queuectl_job_duration_seconds"].type == "histogram"
    assert value("queuectl_job_duration_seconds_count", queue="default") == 3
    assert value("queuectl_job_duration_seconds_bucket", queue="default", le="+Inf") == 3
    assert value("queuectl_job_wait_seconds_count", queue="mail") == 1
    assert value("queuectl_leases_expired_total") == 0
    assert "queuectl_oldest_pending_age_seconds" in families
    # Never a job id or a command in a label.
    labels = {v for (_, pairs) in samples for _, v in pairs}
    assert not labels & {"true", "exit 1"}
    assert not any(job["id"] in labels for job in q.json("list"))
    with dashboard(q) as d:
        status, served = d.get("/metrics")
        assert status == 200
        assert list(parser.text_string_to_metric_families(served))
        before = d.api("/api/throughput?minutes=5")
    assert sum(before["completed"]) == 2 and sum(before["failed"]) == 2
    with dashboard(q) as d:
        assert (
            d.api("/api/throughput?minutes=5") == before
            or sum(d.api("/api/throughput?minutes=5")["completed"]) == 2
        )  # a minute may have turned over between the two reads


def test_the_event_stream_says_changed_after_a_commit(q: Queue) -> None:
    with dashboard(q) as d:
        conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=20)
        conn.request("GET", "/events", headers={"Host": f"127.0.0.1:{d.port}"})
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("content-type", "").startswith("text/event-stream")
        time.sleep(0.5)
        q.enqueue("true")
        deadline = time.monotonic() + 15
        got = b""
        while b"event: changed" not in got and time.monotonic() < deadline:
            got += r.readline()
        conn.close()
        assert b"event: changed" in got, got


@pytest.mark.store_independent
def test_commands_other_than_ui_do_not_import_the_server() -> None:
    code = (
        "import sys\n"
        "from queuectl.cli import cli\n"
        "try:\n"
        "    cli.main(args=['status', '--json'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('starlette', 'uvicorn', 'jinja2', 'queuectl.ui.server') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        r = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"QUEUECTL_HOME": home, "PATH": "/usr/bin:/bin"},
            timeout=60,
        )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout


def test_the_announced_address_is_where_it_listens(q: Queue) -> None:
    with dashboard(q) as d:
        parts = urlsplit(d.url)
        assert (parts.hostname, parts.port) == ("127.0.0.1", d.port)


@pytest.mark.skipif(sys.platform == "win32", reason="Ctrl-C is SIGINT on POSIX only")
def test_ctrl_c_stops_the_dashboard_cleanly(q: Queue) -> None:
    # uvicorn re-raises the interrupt after its shutdown: that is the stop asked for, not
    # an error (it printed "Error: aborted" and exited 1 before).
    with dashboard(q) as d:
        assert d.get("/")[0] == 200
        d.proc.send_signal(signal.SIGINT)
        _, err = d.proc.communicate(timeout=30)
        assert d.proc.returncode == 0, err
        assert "Error" not in err, err
        assert err.strip().splitlines()[-1] == "dashboard stopped", err


def test_a_port_in_use_is_a_one_line_error(q: Queue) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = q.run("ui", "--bind", f"127.0.0.1:{port}", check=False, timeout=30)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
