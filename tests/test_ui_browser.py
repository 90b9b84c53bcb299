"""The dashboard in a real browser: `queuectl ui` as a subprocess, Chromium driven by
Playwright. Every page loads without a console or page error (and is photographed into
the test's temporary folder: scripts/screenshots.py makes the docs' screenshots); an
action changes the store and the page; a running job's output grows in place; a job's
text stays text; the CSRF and read-only refusals hold for a browser too. (Host and token
checks over plain HTTP are another file's.)

Chromium is the system's (`QUEUECTL_CHROMIUM`, else `chromium` on PATH): Playwright's own
browser downloads are not used.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import QUEUECTL
from conftest import Queue as Cli

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright")
expect = sync_api.expect

VIEWPORT = {"width": 1280, "height": 800}
XSS = "<img src=x onerror=alert(1)>"


# The browser, the dashboard, a tab


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = os.environ.get("QUEUECTL_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        pytest.skip(
            "no Chromium: set QUEUECTL_CHROMIUM or put `chromium` on PATH "
            "(apt-get install chromium); Playwright's own download is not used"
        )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-background-networking"]
        )
        yield b
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def ui(q: Cli, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts `queuectl ui` on q's queue (flags: --read-only...); gives its address."""
    servers: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(*flags: str) -> str:
        for _ in range(3):  # another process may take the free port first
            port = _free_port()
            log = tmp_path / f"ui-{port}.log"
            with log.open("wb") as err:
                p = subprocess.Popen(
                    [QUEUECTL, "ui", "--bind", f"127.0.0.1:{port}", *flags],
                    env=q.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            servers.append((p, log))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and p.poll() is None:
                if " on http://" in log.read_text(errors="replace"):
                    return f"http://127.0.0.1:{port}"
                time.sleep(0.05)
            if p.poll() is None:
                raise AssertionError(f"queuectl ui did not start in 30 s: {log.read_text()}")
            if "address already in use" not in log.read_text().lower():
                raise AssertionError(f"queuectl ui exited {p.returncode}: {log.read_text()}")
        raise AssertionError("queuectl ui found no free port in 3 tries")

    yield start
    for p, log in servers:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
                raise AssertionError(f"queuectl ui ignored SIGTERM: {log.read_text()}") from None


class Tab:
    """One page in its own browser context, with what it logged and the dialogs it opened."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[tuple[str, str]] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("dialog", self._dialog)

    def _console(self, m: Any) -> None:
        url = m.location.get("url", "")
        if m.type == "error":
            self.errors.append(f"console error: {m.text} ({url}:{m.location.get('lineNumber')})")

    def _dialog(self, d: Any) -> None:
        self.dialogs.append((d.type, d.message))
        # hx-confirm asks with window.confirm: accept it; anything else is just recorded.
        if d.type == "confirm":
            d.accept()
        else:
            d.dismiss()

    def open(self, url: str) -> Any:
        """Goes to url and waits until its script runs: the live dot is on once the
        page's event stream is open."""
        self.page.goto(url)
        expect(self.page.locator("#live.on")).to_be_attached()
        return self.page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, ui: Callable[..., str]) -> Iterator[Tab]:
    # Needs ui only to close before the servers stop (their event streams open).
    t = Tab(browser)
    yield t
    t.close()


# Data


def run_dead(q: Cli, command: str, job_id: str) -> None:
    """A job that fails once and goes to the DLQ, run by a burst worker."""
    q.run("enqueue", "--command", command, "--max-retries", "0", "--id", job_id)
    q.run("worker", "start", "--burst", "--quiet")
    assert q.state(job_id) == "dead"


def chart_history(q: Cli, minutes: int = 200) -> None:
    """Per-minute counts for the hours up to now, as workers would have flushed them, so
    the overview's chart shows a working day's shape and not one bar at its right edge.
    Written before any worker of the test runs: their own counts add to this minute's."""
    now_min = int(time.time() // 60) * 60_000
    rows = []
    for i in range(minutes):
        minute = now_min - i * 60_000
        completed = round(16 + 9 * math.sin(i / 17) + 4 * math.sin(i / 5.3) + (i % 7) / 2)
        failed = max(0, round(1.5 + 1.5 * math.sin(i / 9 + 1) + (3 if i % 23 == 5 else 0)))
        rows += [f"({minute}, 'default', 'completed', {completed})"]
        rows += [f"({minute}, 'default', 'retried', {failed})"] if failed else []
    q.sql("INSERT INTO stats (minute_ms, queue, metric, value) VALUES " + ", ".join(rows))


def some_of_everything(q: Cli) -> None:
    """Completed jobs (one with output), a retried then dead one, a paused queue with a
    pending and a waiting job, two schedules; two workers left running."""
    q.run("config", "set", "backoff-base", "1")  # a retry 1 s later
    q.run("queue", "pause", "images")
    chart_history(q)
    q.run(
        "enqueue", "--id", "nightly-report", "--command",
        "echo 'fetching 1,204 rows from orders'; sleep 0.2; echo 'wrote report-2024-06-01.csv'",
    )  # fmt: skip
    for name in ("alice", "bob", "carol"):
        q.run("enqueue", "--queue", "emails", "--command", f"echo 'sent welcome mail to {name}'")
    for n in range(1, 4):
        q.run("enqueue", "--command", f"echo 'warmed cache shard {n}'")
    q.run(
        "enqueue", "--id", "sync-crm", "--max-retries", "1", "--command",
        "echo 'connecting to crm.example.com'; echo 'error: connection refused' >&2; exit 7",
    )  # fmt: skip
    q.run("enqueue", "--id", "thumbs", "--queue", "images", "--command", "./thumbnails.sh")
    q.run("enqueue", "--queue", "images", "--after", "thumbs", "--command", "./upload.sh")
    q.run("schedule", "add", "hourly-cleanup", "--cron", "@every 1h", "--command", "true")
    q.run(
        "schedule", "add", "nightly-backup", "--cron", "0 2 * * *", "--tz", "Europe/Berlin",
        "--command", "./backup.sh",
    )  # fmt: skip
    q.start_workers("--count", "2", "--quiet")
    q.wait_for(lambda: q.state("sync-crm") == "dead", what="sync-crm to die after its retry")
    settled = ("completed", "dead", "pending", "waiting")
    q.wait_for(
        lambda: all(j["state"] in settled for j in q.json("list")), what="the jobs to settle"
    )


# Tests


def test_every_page_loads_cleanly(q: Cli, ui: Callable[..., str], tab: Tab, tmp_path: Path) -> None:
    some_of_everything(q)
    time.sleep(1.2)  # a heartbeat: the workers' counts of this minute reach the chart
    base = ui()
    shots = tmp_path / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    pages = {
        "overview": "/",
        "jobs": "/jobs",
        "job": "/jobs/sync-crm",
        "dlq": "/dlq",
        "queues": "/queues",
        "schedules": "/schedules",
        "workers": "/workers",
        "config": "/config",
    }
    found: dict[str, list[str]] = {}
    for name, path in pages.items():
        tab.errors.clear()
        page = tab.open(base + path)
        expect(page.locator("#content")).not_to_be_empty()
        if name == "overview":
            expect(page.locator("#chart canvas")).to_be_visible()
        if name == "job":
            expect(page.locator("pre#output")).to_contain_text("connecting to crm.example.com")
        page.wait_for_timeout(300)  # late errors: the event stream, a refresh
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        if tab.errors:
            found[path] = list(tab.errors)
        assert page.title().endswith("· queuectl"), path
    assert found == {}, "errors in the browser console:\n" + "\n".join(
        f"{path}: {e}" for path, errors in found.items() for e in errors
    )
    assert tab.dialogs == []
    # What the pages show is the store's.
    page = tab.open(base + "/queues")
    expect(page.locator("tr", has_text="images")).to_contain_text("paused")
    page = tab.open(base + "/schedules")
    expect(page.locator("tbody tr")).to_have_count(2)
    page = tab.open(base + "/dlq")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("sync-crm")


def test_retry_a_dead_job_from_its_page(q: Cli, ui: Callable[..., str], tab: Tab) -> None:
    run_dead(q, "exit 3", "broken")
    page = tab.open(ui() + "/jobs/broken")
    expect(page.locator("h1 .state")).to_have_text("dead")
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#flash")).to_contain_text("retried 1 job(s)")
    expect(page.locator("h1 .state")).to_have_text("pending")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    assert q.state("broken") == "pending"
    assert tab.errors == []


def test_a_running_jobs_output_grows_in_place(
    q: Cli, ui: Callable[..., str], tab: Tab, tmp_path: Path
) -> None:
    # The job holds after its first line until the test has seen it, then ticks on.
    gate = shlex.quote(str(tmp_path / "go"))
    command = (
        f"echo tick 1; while [ ! -e {gate} ]; do sleep 0.05; done; "
        "for i in 2 3 4 5 6; do echo tick $i; sleep 0.5; done"
    )
    base = ui()
    q.start_workers("--count", "1", "--quiet")
    q.run("enqueue", "--id", "ticker", "--command", command)
    q.wait_for(lambda: q.state("ticker") == "processing", what="ticker to start")
    page = tab.open(base + "/jobs/ticker")
    expect(page.locator("h1 .state")).to_have_text("processing")
    out = page.locator("pre#output")
    # The log also shows the command line (`$ echo tick 1; ...`): match whole lines.
    expect(out).to_contain_text(re.compile(r"^tick 1$", re.M))
    assert "tick 2" not in out.text_content()
    page.evaluate("window.__same_page = true")
    (tmp_path / "go").touch()
    expect(out).to_contain_text(re.compile(r"^tick 2$", re.M))
    expect(out).to_contain_text(re.compile(r"^tick 4$", re.M))
    expect(out).to_contain_text(re.compile(r"^tick 6\n=== exit code 0 ", re.M))
    ticks = [line for line in out.text_content().splitlines() if line.startswith("tick")]
    assert ticks == [f"tick {i}" for i in range(1, 7)]
    # The stream's end refreshes the page's content (the output stays).
    expect(page.locator("h1 .state")).to_have_text("completed")
    assert page.evaluate("window.__same_page") is True, "the page was reloaded"
    assert tab.errors == []


def test_a_fast_jobs_page_keeps_the_newest_half_mib_of_its_output(
    q: Cli, ui: Callable[..., str], tab: Tab, tmp_path: Path
) -> None:
    # About 3 MB in 24 bursts over 3 s: the stream sends more than the page keeps.
    gate = shlex.quote(str(tmp_path / "go"))
    command = (
        f"echo start; while [ ! -e {gate} ]; do sleep 0.05; done; "
        "for i in $(seq 1 24); do seq $((i * 100000)) $((i * 100000 + 20000)); sleep 0.125; "
        "done; echo LAST"
    )
    base = ui()
    q.start_workers("--count", "1", "--quiet")
    q.run("enqueue", "--id", "fast", "--command", command)
    q.wait_for(lambda: q.state("fast") == "processing", what="fast to start")
    page = tab.open(base + "/jobs/fast")
    out = page.locator("pre#output")
    expect(out).to_contain_text(re.compile(r"^start$", re.M))
    (tmp_path / "go").touch()
    q.wait_for(lambda: q.state("fast") == "completed", what="fast to end")
    t = time.monotonic()
    expect(out).to_contain_text(re.compile(r"^LAST\n=== exit code 0 ", re.M), timeout=30_000)
    print(f"\nthe page showed the end {time.monotonic() - t:.2f} s after the job's")
    text = out.text_content()
    first = text.split("\n", 1)[0]
    assert 256 * 1024 < len(text) <= 512 * 1024, len(text)
    assert first.isdigit() and int(first) > 100_000, first[:100]  # from a line's start
    assert tab.errors == []


def test_a_jobs_markup_is_shown_as_text(q: Cli, ui: Callable[..., str], tab: Tab) -> None:
    q.run("enqueue", "--id", "xss", "--command", f"echo '{XSS}'")
    q.run("worker", "start", "--burst", "--quiet")
    assert q.state("xss") == "completed"
    base = ui()
    page = tab.open(base + "/jobs")
    expect(page.locator("td.cmd", has_text=XSS)).to_have_count(1)
    assert page.locator("img").count() == 0
    page = tab.open(base + "/jobs/xss")
    expect(page.locator("#job-command")).to_contain_text(XSS)
    expect(page.locator("pre#output")).to_contain_text(XSS)  # streamed as text
    expect(page.locator("tr.tail pre")).to_contain_text(XSS)  # the attempt's tail
    assert "&lt;img" in page.locator("#job-command").inner_html()
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator("img").count() == 0
    page.wait_for_timeout(300)
    assert [d for d in tab.dialogs if d[0] == "alert"] == []
    assert tab.errors == []


# A retry of job "doomed" posted by the page's own script, with the headers given.
POST = """async ([url, headers]) => {
    const body = new URLSearchParams({ids: "doomed"});
    const r = await fetch(url, {method: "POST", headers: headers, body: body});
    return [r.status, await r.text()];
}"""


def test_refusals_seen_from_the_browser(q: Cli, ui: Callable[..., str], tab: Tab) -> None:
    run_dead(q, "exit 3", "doomed")
    base = ui()
    page = tab.open(base + "/jobs/doomed")
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    status, text = page.evaluate(POST, [base + "/api/retry", form])
    assert (status, text) == (403, "refused: the CSRF token is missing or wrong; reload the page")
    r = page.request.post(base + "/api/retry", form={"ids": "doomed"})
    assert r.status == 403
    r = page.request.post(
        base + "/api/retry", form={"ids": "doomed"}, headers={"X-CSRF-Token": "x"}
    )
    assert r.status == 403
    assert q.state("doomed") == "dead"

    # Read-only: no button to press, and the right token changes nothing either.
    ro = ui("--read-only")
    page = tab.open(ro + "/jobs/doomed")
    expect(page.locator("header .badge")).to_have_text("read-only")
    expect(page.locator("h1 .state")).to_have_text("dead")
    expect(page.locator("#content form")).to_have_count(0)
    expect(page.get_by_role("button")).to_have_count(0)
    ro_csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    status, text = page.evaluate(POST, [ro + "/api/retry", {**form, "X-CSRF-Token": ro_csrf}])
    assert (status, text) == (403, "refused: the dashboard is read-only (--read-only)")
    assert q.state("doomed") == "dead"

    # The same request with the token, to the dashboard that may act: it does.
    page = tab.open(base + "/jobs/doomed")
    status, text = page.evaluate(POST, [base + "/api/retry", {**form, "X-CSRF-Token": csrf}])
    assert status == 200, text
    assert q.state("doomed") == "pending"
    # Chromium logs each refused fetch; nothing else may have been logged.
    refused = "Failed to load resource: the server responded with a status of 403"
    assert [e for e in tab.errors if refused not in e] == []
