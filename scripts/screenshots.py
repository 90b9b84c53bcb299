"""Makes the dashboard's screenshots in docs/screenshots/ from a real queue.

    .venv/bin/python scripts/screenshots.py [--out DIR] [--keep]

It builds a queue in a new temporary home with the real `queuectl`: completed jobs, one
that fails, is retried and ends dead, pending and waiting jobs (a dependency, a paused
queue, a delayed job), a queue with a limit and a rate, a job with every flow-control
field in a queue with a limit per key, two schedules, config values, and two
workers, one of them busy with a job that keeps writing output. Then it starts
`queuectl ui` on a free port and photographs each page (1280x800 viewport, whole page)
in Debian's Chromium driven by Playwright: $QUEUECTL_CHROMIUM, else `chromium` on PATH
(Playwright's own browser download is not used). The overview's chart shows three hours:
the per-minute counts up to now are written into the `stats` table as workers
would have flushed them; everything else is what the jobs and workers did. Workers,
their jobs and the dashboard are stopped at the end, and the home is removed (kept with
--keep).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "overview": "/",
    "jobs": "/jobs",
    "job": "/jobs/sync-crm",
    "dlq": "/dlq",
    "queues": "/queues",
    "schedules": "/schedules",
    "workers": "/workers",
    "config": "/config",
}
VIEWPORT = {"width": 1280, "height": 800}


class Demo:
    """The real `queuectl` with one temporary home."""

    def __init__(self, queuectl: str, home: Path) -> None:
        self.queuectl = queuectl
        self.home = home
        self.env = {**os.environ, "QUEUECTL_HOME": str(home)}
        self.env.pop("QUEUECTL_DB", None)
        self.procs: list[subprocess.Popen[bytes]] = []
        # The jobs' working directory, as a project's would be.
        self.cwd = home / "shop"
        self.cwd.mkdir()

    def run(self, *args: str) -> str:
        r = subprocess.run(
            [self.queuectl, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0:
            raise SystemExit(f"queuectl {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r.stdout

    def state(self, job_id: str) -> str:
        import json

        state: str = json.loads(self.run("show", job_id, "--json"))["state"]
        return state

    def start(self, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        with (log or Path(os.devnull)).open("wb") as err:
            p = subprocess.Popen(
                [self.queuectl, *args],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        """Stops the workers (killing their jobs) and every process started here."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [self.queuectl, "worker", "stop", "--force", "--timeout", "10"],
                env=self.env,
                capture_output=True,
                timeout=30,
            )
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def chart_history(db: Path, minutes: int = 180) -> None:
    """Per-minute counts for the three hours up to now (this minute too: the real runs add
    to it), in the shape of a working day."""
    now_min = int(time.time() // 60) * 60_000
    rows: list[tuple[int, str, str, int]] = []
    for i in range(minutes):
        minute = now_min - i * 60_000
        completed = round(16 + 9 * math.sin(i / 17) + 4 * math.sin(i / 5.3) + (i % 7) / 2)
        failed = max(0, round(1.5 + 1.5 * math.sin(i / 9 + 1) + (3 if i % 23 == 5 else 0)))
        rows.append((minute, "default", "completed", completed))
        if failed:
            rows.append((minute, "default", "retried", failed))
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany(
            "INSERT INTO stats (minute_ms, queue, metric, value) VALUES (?, ?, ?, ?)", rows
        )


def build_queue(q: Demo) -> None:
    q.run("config", "set", "max-retries", "5")
    q.run("config", "set", "backoff-max", "10m")
    q.run("config", "set", "job-timeout", "30m")
    q.run("config", "set", "log-max-bytes", "1M")
    chart_history(q.home / "qctl.db")
    q.run("queue", "pause", "images")
    q.run("queue", "limit", "emails", "2")
    q.run("queue", "rate", "emails", "100/1m")
    q.run("queue", "key-limit", "deploys", "1")
    q.run("queue", "pause", "deploys")
    q.run(
        "enqueue", "--id", "nightly-report", "--command",
        "echo 'fetching 1,204 rows from orders'; sleep 0.2; echo 'wrote report-2024-06-01.csv'",
    )  # fmt: skip
    for name in ("alice", "bob", "carol"):
        q.run("enqueue", "--queue", "emails", "--command", f"echo 'sent welcome mail to {name}'")
    q.run(
        "enqueue", "--id", "weekly-digest", "--queue", "emails", "--delay", "2h",
        "--command", "./send_digest.sh",
    )  # fmt: skip
    for n in range(1, 4):
        q.run("enqueue", "--priority", "5", "--command", f"echo 'warmed cache shard {n}'")
    q.run(
        "enqueue", "--id", "sync-crm", "--max-retries", "1", "--command",
        "echo 'connecting to crm.example.com'; echo 'error: connection refused' >&2; exit 7",
    )  # fmt: skip
    q.run(
        "enqueue", "--id", "deploy-acme", "--queue", "deploys", "--key", "acme", "--slots", "2",
        "--retry-delays", "30s,5m", "--no-retry-on", "2", "--expires", "2h",
        "--command", "./deploy.sh acme",
    )  # fmt: skip
    q.run("enqueue", "--id", "thumbs", "--queue", "images", "--command", "./thumbnails.sh")
    q.run("enqueue", "--queue", "images", "--after", "thumbs", "--command", "./upload.sh")
    q.run("schedule", "add", "hourly-cleanup", "--cron", "@every 1h", "--command", "./cleanup.sh")
    q.run(
        "schedule", "add", "nightly-backup", "--cron", "0 2 * * *", "--tz", "Europe/Berlin",
        "--command", "./backup.sh",
    )  # fmt: skip
    q.start("worker", "start", "--count", "2", "--quiet")
    wait_for(lambda: q.state("sync-crm") == "dead", "sync-crm to fail twice and die")
    # A long job that writes as it goes: one worker busy, the other idle.
    q.run(
        "enqueue", "--id", "import-orders", "--env", "SHOP_TOKEN=secret", "--command",
        "for i in $(seq 1 600); do echo \"imported batch $i of 600\"; sleep 1; done",
    )  # fmt: skip
    wait_for(lambda: q.state("import-orders") == "processing", "import-orders to start")
    time.sleep(2.5)  # a few lines of output; the workers' counts of this minute flushed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_ui(q: Demo, log: Path) -> str:
    for _ in range(3):  # another process may take the free port first
        port = free_port()
        p = q.start("ui", "--bind", f"127.0.0.1:{port}", log=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            if " on http://" in log.read_text(errors="replace"):
                return f"http://127.0.0.1:{port}"
            time.sleep(0.05)
        if p.poll() is None:
            raise SystemExit(f"queuectl ui did not start in 30 s: {log.read_text()}")
        if "address already in use" not in log.read_text().lower():
            raise SystemExit(f"queuectl ui exited {p.returncode}: {log.read_text()}")
    raise SystemExit("queuectl ui found no free port in 3 tries")


@contextlib.contextmanager
def chromium_browser(executable: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def photograph(browser: Any, base: str, out: Path) -> list[str]:
    """Saves each page's screenshot; returns the browser's console and page errors."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        for name, path in PAGES.items():
            page.goto(base + path)
            expect(page.locator("#live.on")).to_be_attached()  # its script has run
            expect(page.locator("#content")).not_to_be_empty()
            if name == "overview":
                expect(page.locator("#chart canvas")).to_be_visible()
            if name == "job":
                expect(page.locator("pre#output")).to_contain_text("connection refused")
            if name == "workers":
                expect(page.locator("#content")).to_contain_text("import-orders")
            page.wait_for_timeout(400)  # a refresh in flight settles
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=True)
            print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    finally:
        context.close()
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args()
    chromium = os.environ.get("QUEUECTL_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        print(
            "no Chromium: set QUEUECTL_CHROMIUM or install Debian's (apt-get install chromium)",
            file=sys.stderr,
        )
        return 2
    queuectl = shutil.which("queuectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "queuectl"
    )
    if not queuectl:
        print("no queuectl beside this Python or on PATH", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="queuectl-demo-"))
    q = Demo(queuectl, home)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        build_queue(q)
        base = start_ui(q, home / "ui.log")
        with chromium_browser(chromium) as browser:
            errors = photograph(browser, base, args.out)
    finally:
        q.stop_all()
        if args.keep:
            print(f"kept the home: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    if errors:
        print("errors in the browser:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
