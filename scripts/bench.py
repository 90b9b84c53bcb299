#!/usr/bin/env python3
"""queuectl benchmark: one table of figures, each beside a baseline measured in the same run.

Run it after installing queuectl (`pip install .`, a release build), from the repository:

    python scripts/bench.py              # full size, medians of 3 runs
    python scripts/bench.py --quick      # small sizes, 1 run: keeps the script working in CI

Timings on a shared machine drift, so every figure that has a natural baseline (xargs for
spawning, `python -c 'import click'` for start-up, an empty table for scale) is measured
next to it and compared as a ratio. Where task-spooler (`tsp`) or pueue (`pueue` and
`pueued`) is installed, it runs the same end-to-end workload and gets a row of its own.

PostgreSQL rows (end to end, bulk enqueue, engine, pickup) run on a fresh schema of the
server QUEUECTL_BENCH_PG names (the local one by default) when psycopg is installed and the
server answers; otherwise the script says why they are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import select
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUEUECTL = shutil.which("queuectl", path=str(Path(sys.executable).parent)) or "queuectl"
CLK_TCK = os.sysconf("SC_CLK_TCK")


PG_SERVER = os.environ.get("QUEUECTL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_unavailable() -> str | None:
    """Why the PostgreSQL rows cannot run, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(PG_SERVER, connect_timeout=5).close()
    except Exception as e:
        return f"no PostgreSQL server answers at {PG_SERVER}: {str(e).splitlines()[0]}"
    return None


_schemas = iter(range(1_000_000))


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema for one measurement; yields its queuectl URL and drops it after."""
    import psycopg

    name = f"qb_{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(PG_SERVER, autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")  # type: ignore[arg-type]
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")  # type: ignore[arg-type]


class Home:
    """A temporary queuectl home, on SQLite or (with `url`) on PostgreSQL; `run` calls
    the real command there."""

    def __init__(self, root: Path, name: str, url: str | None = None) -> None:
        self.dir = root / name
        self.url = url
        self.env = {**os.environ, "QUEUECTL_HOME": str(self.dir)}
        self.env.pop("QUEUECTL_DB", None)
        if url:
            self.env["QUEUECTL_DB"] = url

    @property
    def db(self) -> Path:
        return self.dir / "qctl.db"

    @property
    def location(self) -> str:
        return self.url or str(self.db)

    def run(self, *args: str, stdin: str | None = None) -> str:
        r = subprocess.run(
            [QUEUECTL, *args], env=self.env, input=stdin, capture_output=True, text=True
        )
        if r.returncode != 0:
            raise SystemExit(f"queuectl {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def workers(self, count: int) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [QUEUECTL, "worker", "start", "--count", str(count), "--quiet"],
            env=self.env,
            stderr=subprocess.DEVNULL,
        )
        self.wait_registered(p.pid, count)
        return p

    def wait_registered(self, pid: int, count: int) -> None:
        deadline = time.monotonic() + 30
        sql = f"SELECT count(*) FROM workers WHERE pid = {int(pid)} AND state != 'exited'"
        while time.monotonic() < deadline:
            if self.url or self.db.exists():
                try:
                    (n,) = self.query(sql)[0]
                except Exception:
                    n = 0  # not created yet
                if int(n) >= count:  # type: ignore[call-overload]
                    return
            time.sleep(0.02)
        raise SystemExit("workers did not register")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.url:
            import psycopg

            with psycopg.connect(self.url) as c:
                return c.execute(sql).fetchall()  # type: ignore[arg-type]
        with sqlite3.connect(self.db) as c:
            return c.execute(sql).fetchall()


def stop(p: subprocess.Popen[bytes]) -> None:
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)


def timed(argv: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, input=stdin, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def jsonl(n: int) -> str:
    return '{"command":"true"}\n' * n


# ---------------------------------------------------------------------------- figures


def xargs_rate(n: int) -> float:
    secs = timed(["sh", "-c", f"seq {n} | xargs -P2 -I{{}} sh -c true"])
    return n / secs


def end_to_end_rate(root: Path, n: int, run: int, url: str | None = None) -> float:
    """Idle workers, then `enqueue --file` of n `true` jobs; enqueue to last completion."""
    home = Home(root, f"e2e{run}{'pg' if url else ''}", url)
    home.run("status")
    p = home.workers(2)
    t0 = time.time()
    home.run("enqueue", "--file", "-", stdin=jsonl(n))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        (done,) = home.query("SELECT count(*) FROM jobs WHERE state = 'completed'")[0]
        if done == n:
            break
        time.sleep(0.02 if url else 0.01)
    (last_ms,) = home.query("SELECT max(finished_at_ms) FROM jobs")[0]
    stop(p)
    return n / (int(last_ms) / 1000 - t0)  # type: ignore[call-overload]


def tsp_rate(root: Path, n: int) -> float | None:
    tsp = shutil.which("tsp") or shutil.which("ts")
    if not tsp:
        return None
    env = {
        **os.environ,
        "TS_SOCKET": str(root / "tsp.socket"),
        "TS_SAVELIST": "",
        "TMPDIR": str(root),
    }
    subprocess.run([tsp, "-S", "2"], env=env, check=True, capture_output=True)
    t = time.perf_counter()
    for _ in range(n):
        subprocess.run([tsp, "-n", "true"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([tsp, "-w"], env=env, capture_output=True)
    secs = time.perf_counter() - t
    subprocess.run([tsp, "-K"], env=env, capture_output=True)
    return n / secs


def pueue_rate(root: Path, n: int) -> float | None:
    """The same jobs through pueue (2 parallel), added one call at a time as they stream in,
    on a daemon of its own (its config, state and socket in a temporary folder)."""
    pueue, pueued = shutil.which("pueue"), shutil.which("pueued")
    if not (pueue and pueued):
        return None
    base = root / "pueue"
    env = {
        **os.environ,
        "HOME": str(base),
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_DATA_HOME": str(base / "data"),
        "XDG_RUNTIME_DIR": str(base / "run"),
    }
    for d in ("config", "data", "run"):
        (base / d).mkdir(parents=True, exist_ok=True)
    daemon = subprocess.Popen(
        [pueued], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while subprocess.run([pueue, "status"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit("pueued did not start")
            time.sleep(0.1)
        subprocess.run([pueue, "parallel", "2"], env=env, check=True, capture_output=True)
        t = time.perf_counter()
        for _ in range(n):
            subprocess.run([pueue, "add", "--", "true"], env=env, check=True, capture_output=True)
        subprocess.run([pueue, "wait"], env=env, check=True, capture_output=True)
        secs = time.perf_counter() - t
    finally:
        subprocess.run([pueue, "shutdown"], env=env, capture_output=True)
        daemon.wait(timeout=30)
    return n / secs


def bulk_enqueue(root: Path, n: int, run: int) -> tuple[float, float, Home]:
    """Returns (queuectl jobs/s, sqlite3 executemany rows/s, the home)."""
    path = root / "bulk.jsonl"
    if not path.exists():
        path.write_text(jsonl(n))
    home = Home(root, f"bulk{run}")
    home.run("status")
    secs = timed([QUEUECTL, "enqueue", "--file", str(path)], env=home.env)
    base_db = root / f"baseline{run}.db"
    t = time.perf_counter()
    with sqlite3.connect(base_db) as c:
        c.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, command TEXT, state TEXT)")
        c.executemany(
            "INSERT INTO jobs VALUES (?, 'true', 'pending')", ((f"j{i}",) for i in range(n))
        )
    base = n / (time.perf_counter() - t)
    return n / secs, base, home


def enqueue_call_ms(root: Path, runs: int) -> tuple[float, float]:
    home = Home(root, "single")
    home.run("status")
    spec = '{"command":"true"}'
    q = [timed([QUEUECTL, "enqueue", spec], env=home.env) for _ in range(runs)]
    c = [timed([sys.executable, "-c", "import click"]) for _ in range(runs)]
    return statistics.median(q) * 1000, statistics.median(c) * 1000


def pickup_latency_ms(root: Path, samples: int, url: str | None = None) -> list[float]:
    """Idle workers; from the moment enqueue has committed to the moment the job's shell
    writes to a FIFO the benchmark is reading."""
    from queuectl import _core

    home = Home(root, "latency-pg" if url else "latency", url)
    home.run("status")
    p = home.workers(2)
    fifo = root / f"pickup{'-pg' if url else ''}.fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    store = _core.Store(home.location)
    spec = json.dumps({"command": f"printf x > {fifo}"})
    out = []
    for _ in range(samples):
        time.sleep(0.25)  # idle again, and between heartbeats at random phases
        store.enqueue_json(spec, batch=False, max_retries=0, timeout_ms=0, cwd=str(root))
        t = time.perf_counter()
        ready, _, _ = select.select([fd], [], [], 10)
        if not ready:
            raise SystemExit("a job was not picked up within 10 s")
        out.append((time.perf_counter() - t) * 1000)
        os.read(fd, 16)
    os.close(fd)
    stop(p)
    return out


def idle_cpu_percent(root: Path, count: int, secs: float) -> float:
    home = Home(root, "idle")
    home.run("status")
    p = home.workers(count)
    time.sleep(1)
    before = cpu_seconds(p.pid)
    time.sleep(secs)
    used = cpu_seconds(p.pid) - before
    stop(p)
    return used / secs * 100 / count


def idle_memory_mb(root: Path, count: int) -> tuple[float, float]:
    home = Home(root, "memory")
    home.run("status")
    p = home.workers(count)
    time.sleep(1)
    mine = rss_mb(p.pid)
    stop(p)
    base = subprocess.Popen([sys.executable, "-c", "import click, time; time.sleep(3)"])
    time.sleep(1.5)
    python = rss_mb(base.pid)
    base.wait()
    return mine, python


def engine(jobs: int, prefill: int, url: str | None = None) -> dict[str, float] | None:
    if not shutil.which("cargo"):
        return None
    extra = [url] if url else []
    r = subprocess.run(
        [
            "cargo",
            "run",
            "--release",
            "-q",
            "-p",
            "queuectl-core",
            "--example",
            "engine",
            "--",
            str(jobs),
            str(prefill),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def pg_bulk_enqueue(root: Path, n: int) -> tuple[float, float]:
    """Returns (queuectl jobs/s, psycopg COPY into a bare table rows/s) on PostgreSQL."""
    import psycopg

    path = root / "bulk.jsonl"
    if not path.exists():
        path.write_text(jsonl(n))
    with pg_schema() as url:
        home = Home(root, "bulk-pg", url)
        home.run("status")
        secs = timed([QUEUECTL, "enqueue", "--file", str(path)], env=home.env)
    with pg_schema() as url, psycopg.connect(url) as c:
        c.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, command TEXT, state TEXT)")
        t = time.perf_counter()
        with c.cursor().copy("COPY jobs FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((f"j{i}", "true", "pending"))
        c.commit()
        base = n / (time.perf_counter() - t)
    return n / secs, base


def command_ms(home: Home, args: list[str], runs: int) -> float:
    return statistics.median(timed([QUEUECTL, *args], env=home.env) for _ in range(runs)) * 1000


def scale(root: Path, bulk_home: Home, runs: int) -> tuple[float, float, float, float]:
    """`status` and `list --state pending --limit 100` on a table of finished jobs (the bulk
    run's, marked completed) and on an empty one."""
    with sqlite3.connect(bulk_home.db) as c:
        c.execute("UPDATE jobs SET state = 'completed', finished_at_ms = updated_at_ms")
    empty = Home(root, "empty")
    empty.run("status")
    listing = ["list", "--state", "pending", "--limit", "100"]
    return (
        command_ms(bulk_home, ["status"], runs),
        command_ms(empty, ["status"], runs),
        command_ms(bulk_home, listing, runs),
        command_ms(empty, listing, runs),
    )


# ------------------------------------------------------------------------- dashboard


class Dashboard:
    """A real `queuectl ui` on a free port of loopback, for the length of a `with`."""

    def __init__(self, home: Home) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [QUEUECTL, "ui", "--bind", f"127.0.0.1:{self.port}"],
            env=home.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if "dashboard" not in line:
            raise SystemExit(f"queuectl ui did not start: {line}")

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=15)

    def get_ms(self, path: str, part: bool = False) -> float:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if part:
            headers["HX-Request"] = "true"
        t = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        ms = (time.perf_counter() - t) * 1000
        conn.close()
        if r.status != 200:
            raise OSError(f"GET {path}: {r.status}")
        return ms

    def watch(self, stop: Any, fetched: list[float]) -> None:
        """What an open overview does: on each change event, fetch the page's content
        again; the chart's data every 5 s."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("GET", "/events", headers={"Host": f"127.0.0.1:{self.port}"})
        r = conn.getresponse()
        last_chart = 0.0
        with contextlib.suppress(OSError):  # the dashboard stops at the end of the run
            while not stop.is_set():
                line = r.readline()
                if not line:
                    break
                if line.startswith(b"event: changed"):
                    fetched.append(self.get_ms("/", part=True))
                    if time.monotonic() - last_chart > 5:
                        last_chart = time.monotonic()
                        fetched.append(self.get_ms("/api/throughput?minutes=180"))
        conn.close()


def ui_latency(home: Home, samples: int) -> dict[str, list[float]]:
    """Each page and API call of the dashboard, `samples` times, on `home`'s queue."""
    with sqlite3.connect(home.db) as c:
        # A mix like a long-lived queue's: mostly completed, some dead, some pending.
        c.execute("UPDATE jobs SET state = 'dead' WHERE seq % 100 = 0")
        c.execute("UPDATE jobs SET state = 'pending', finished_at_ms = NULL WHERE seq % 100 = 1")
        (some_id, middle) = c.execute(
            "SELECT id, seq FROM jobs WHERE seq = (SELECT max(seq) / 2 FROM jobs)"
        ).fetchone()
    paths = [
        "/",
        "/jobs",
        "/jobs?state=dead",
        "/jobs?state=pending",
        "/jobs?state=completed",
        f"/jobs?before={middle}",
        "/jobs?q=true",
        "/jobs?q=no-such-text",
        f"/jobs/{some_id}",
        "/dlq",
        "/queues",
        "/schedules",
        "/workers",
        "/config",
        "/api/overview",
        "/api/jobs",
        "/api/dlq",
        f"/api/jobs/{some_id}",
        "/api/throughput?minutes=180",
        "/metrics",
    ]
    out: dict[str, list[float]] = {}
    with Dashboard(home) as d:
        for p in paths:
            d.get_ms(p)  # warm: the first call opens the thread's connection
        for p in paths:
            out[p] = [d.get_ms(p) for _ in range(samples)]
    return out


def engine_under_dashboard(root: Path, jobs: int, runs: int) -> tuple[float, float, int]:
    """The engine's throughput on a SQLite file, alone and with an open dashboard on the
    same file, alternating runs; (median alone, median watched, dashboard fetches)."""
    import threading

    alone: list[float] = []
    watched: list[float] = []
    fetches = 0
    for i in range(runs):
        for with_ui in (False, True) if i % 2 == 0 else (True, False):
            home = Home(root, f"engine-ui-{i}-{int(with_ui)}")
            home.run("status")  # creates the queue
            if not with_ui:
                r = engine(jobs, 0, str(home.db))
                assert r is not None
                alone.append(r["throughput_per_s"])
                continue
            with Dashboard(home) as d:
                stop = threading.Event()
                fetched: list[float] = []
                t = threading.Thread(target=d.watch, args=(stop, fetched), daemon=True)
                t.start()
                time.sleep(0.5)
                r = engine(jobs, 0, str(home.db))
                stop.set()
                assert r is not None
                watched.append(r["throughput_per_s"])
                fetches += len(fetched)
    return statistics.median(alone), statistics.median(watched), fetches


# ---------------------------------------------------------------------------- report


def pg_rows(
    root: Path,
    row: Any,
    runs: int,
    n_e2e: int,
    n_bulk: int,
    n_engine: int,
    xargs: float,
    samples: int,
) -> None:
    """The PostgreSQL rows: the same workloads on a fresh schema each."""
    why = pg_unavailable()
    if why:
        print(f"PostgreSQL rows skipped: {why}", file=sys.stderr)
        return
    rates = []
    for i in range(runs):
        with pg_schema() as url:
            rates.append(end_to_end_rate(root, n_e2e, i, url))
    e2e = statistics.median(rates)
    row(
        f"PostgreSQL: end to end, {n_e2e} true jobs, 2 workers",
        f"{e2e:,.0f} jobs/s",
        f"xargs -P2 sh -c true: {xargs:,.0f}/s",
        f"{e2e / xargs:.2f} x",
        "(no target)",
    )
    bulk = [pg_bulk_enqueue(root, n_bulk) for _ in range(runs)]
    rate, base = statistics.median(b[0] for b in bulk), statistics.median(b[1] for b in bulk)
    row(
        f"PostgreSQL: bulk enqueue --file, {n_bulk:,} jobs (COPY)",
        f"{rate:,.0f} jobs/s",
        f"psycopg COPY, bare table: {base:,.0f}/s",
        f"{rate / base:.2f} x",
        "(no target)",
    )
    engine_rates, limited_rates, flow_rates = [], [], []
    for _ in range(runs):
        with pg_schema() as url:
            eng = engine(n_engine, 0, url)
        if eng:
            engine_rates.append(eng["throughput_per_s"])
            limited_rates.append(eng["throughput_10_queues_per_s"])
            flow_rates.append(eng["throughput_flow_per_s"])
    if engine_rates:
        row(
            f"PostgreSQL: engine claim+settle, 2 threads, {n_engine:,} jobs",
            f"{statistics.median(engine_rates):,.0f} jobs/s",
            "-",
            "-",
            "(no target)",
        )
        plain, flowing = statistics.median(engine_rates), statistics.median(flow_rates)
        limited = statistics.median(limited_rates)
        row(
            "PostgreSQL: engine, 10 queues, 2 limited to 1 running",
            f"{limited:,.0f} jobs/s",
            f"one queue: {plain:,.0f} jobs/s",
            f"{limited / plain:.2f} x",
            "(no target)",
        )
        row(
            "PostgreSQL: engine, 10 queues, 2 with a rate, 2 with a limit per key",
            f"{flowing:,.0f} jobs/s",
            f"one queue: {plain:,.0f} jobs/s",
            f"{flowing / plain:.2f} x",
            ">= 0.85 x",
        )
    with pg_schema() as url:
        lat = pickup_latency_ms(root, samples, url)
    row(
        "PostgreSQL: pickup latency, idle workers (LISTEN/NOTIFY)",
        f"p50 {statistics.median(lat):.1f} ms, p95 {statistics.quantiles(lat, n=20)[-1]:.1f} ms",
        "-",
        "-",
        "p50 <= 5 ms",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one run")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    args = ap.parse_args()
    runs = 1 if args.quick else args.runs
    n_e2e = 300 if args.quick else 2000
    n_bulk = 20_000 if args.quick else 1_000_000
    n_engine = 2_000 if args.quick else 20_000
    prefill = 20_000 if args.quick else 1_000_000
    rows: list[tuple[str, str, str, str, str]] = []

    def row(what: str, value: str, baseline: str, ratio: str, target: str) -> None:
        rows.append((what, value, baseline, ratio, target))
        print(f"  measured: {what}: {value}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="qctl-bench-") as tmp:
        root = Path(tmp)
        e2e = statistics.median(end_to_end_rate(root, n_e2e, i) for i in range(runs))
        xargs = statistics.median(xargs_rate(n_e2e) for _ in range(runs))
        row(
            f"end to end, {n_e2e} true jobs, 2 workers",
            f"{e2e:,.0f} jobs/s",
            f"xargs -P2 sh -c true: {xargs:,.0f}/s",
            f"{e2e / xargs:.2f} x",
            ">= 0.9 x",
        )
        tsp = tsp_rate(root, n_e2e)
        if tsp is not None:
            row(
                f"  task-spooler, same {n_e2e} jobs, 2 slots",
                f"{tsp:,.0f} jobs/s",
                f"xargs: {xargs:,.0f}/s",
                f"{tsp / xargs:.2f} x",
                "(comparison)",
            )

        # pueue starts queued tasks a few per tick of its daemon (about 6 jobs/s here), so
        # it gets at most 200 of the jobs: its rate, not its patience, is the figure.
        n_pueue = min(n_e2e, 200)
        pq = pueue_rate(root, n_pueue)
        if pq is not None:
            row(
                f"  pueue, {n_pueue} of the same jobs, 2 parallel",
                f"{pq:,.0f} jobs/s",
                f"xargs: {xargs:,.0f}/s",
                f"{pq / xargs:.2f} x",
                "(comparison)",
            )

        bulk = [bulk_enqueue(root, n_bulk, i) for i in range(runs)]
        rate = statistics.median(b[0] for b in bulk)
        base = statistics.median(b[1] for b in bulk)
        row(
            f"bulk enqueue --file, {n_bulk:,} jobs",
            f"{rate:,.0f} jobs/s",
            f"sqlite3 executemany, bare table: {base:,.0f}/s",
            f"{rate / base:.2f} x",
            ">= 200,000 jobs/s",
        )

        q_ms, click_ms = enqueue_call_ms(root, 5 if args.quick else 15)
        row(
            "one queuectl enqueue call",
            f"{q_ms:.1f} ms",
            f"python -c 'import click': {click_ms:.1f} ms",
            f"+{q_ms - click_ms:.1f} ms",
            "<= +30 ms",
        )

        lat = pickup_latency_ms(root, 20 if args.quick else 100)
        p50 = statistics.median(lat)
        p95 = statistics.quantiles(lat, n=20)[-1]
        row(
            "pickup latency, idle workers",
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms",
            "-",
            "-",
            "p50 <= 5 ms, p95 <= 20 ms",
        )

        cpu = idle_cpu_percent(root, 4, 3 if args.quick else 10)
        row("idle CPU, 4 workers", f"{cpu:.2f} % of a core per worker", "-", "-", "<= 1 %")

        mem, python = idle_memory_mb(root, 16)
        row(
            "memory, worker start --count 16, idle",
            f"{mem:.1f} MB RSS",
            f"python + click: {python:.1f} MB",
            f"{mem / python:.2f} x",
            "<= 60 MB",
        )

        eng = engine(n_engine, prefill)
        if eng is not None:
            # Throughput as a median of runs; the prefilled table only for claim latency.
            more = [engine(n_engine, 0) for _ in range(runs - 1)]
            rates = [eng["throughput_per_s"]] + [m["throughput_per_s"] for m in more if m]
            row(
                f"engine: claim+settle, 2 threads, {n_engine:,} no-op jobs",
                f"{statistics.median(rates):,.0f} jobs/s",
                "-",
                "-",
                ">= 20,000 jobs/s",
            )
            queued = [eng["throughput_10_queues_per_s"]] + [
                m["throughput_10_queues_per_s"] for m in more if m
            ]
            row(
                "engine: the same jobs over 10 named queues, 2 limited to 1 running",
                f"{statistics.median(queued):,.0f} jobs/s",
                f"one queue: {statistics.median(rates):,.0f} jobs/s",
                f"{statistics.median(queued) / statistics.median(rates):.2f} x",
                ">= 0.85 x",
            )
            flowing = [eng["throughput_flow_per_s"]] + [
                m["throughput_flow_per_s"] for m in more if m
            ]
            row(
                "engine: 10 queues, 2 with a rate, 2 with a limit per key (flow control)",
                f"{statistics.median(flowing):,.0f} jobs/s",
                f"one queue: {statistics.median(rates):,.0f} jobs/s",
                f"{statistics.median(flowing) / statistics.median(rates):.2f} x",
                ">= 0.85 x",
            )
            per_job_us = 1e6 / statistics.median(rates)
            row(
                "per-minute rollup: counting a job's two events (metrics)",
                f"{eng['rollup_ns_per_job']:.0f} ns/job",
                f"engine: {per_job_us:.1f} us/job",
                f"{eng['rollup_ns_per_job'] / 1000 / per_job_us * 100:.1f} %",
                "<= 2 %",
            )
            row(
                "per-minute rollup: one heartbeat's flush to SQLite",
                f"{eng['rollup_flush_ms']:.2f} ms",
                "heartbeat: 1000 ms",
                f"{eng['rollup_flush_ms'] / 10:.2f} %",
                "(once a second per worker)",
            )
            row(
                f"claim latency, {prefill:,} finished jobs in the table",
                f"{eng['claim_us_full']:.0f} us",
                f"empty table: {eng['claim_us_empty']:.0f} us",
                f"{eng['claim_us_full'] / eng['claim_us_empty']:.2f} x",
                "<= 1.5 x",
            )

        pg_rows(root, row, runs, n_e2e, n_bulk, n_engine, xargs, 20 if args.quick else 100)

        status_big, status_empty, list_big, list_empty = scale(root, bulk[-1][2], runs)
        row(
            f"status, {n_bulk:,} finished jobs",
            f"{status_big:.0f} ms",
            f"empty table: {status_empty:.0f} ms",
            f"{status_big / status_empty:.2f} x",
            "< 100 ms",
        )
        row(
            f"list --state pending --limit 100, {n_bulk:,} finished",
            f"{list_big:.0f} ms",
            f"empty table: {list_empty:.0f} ms",
            f"{list_big / list_empty:.2f} x",
            "< 100 ms",
        )

        lat_ui = ui_latency(bulk[-1][2], 10 if args.quick else 40)
        every = [ms for v in lat_ui.values() for ms in v]
        worst_path, worst = max(
            ((p, statistics.quantiles(v, n=20)[-1]) for p, v in lat_ui.items()),
            key=lambda pv: pv[1],
        )
        row(
            f"dashboard: {len(lat_ui)} pages and API calls, {n_bulk:,} jobs",
            f"p95 {statistics.quantiles(every, n=20)[-1]:.1f} ms over all",
            f"slowest: {worst_path} p95 {worst:.1f} ms",
            "-",
            "p95 < 50 ms each",
        )
        for p, v in lat_ui.items():
            print(
                f"    {p}: p50 {statistics.median(v):.1f} ms, "
                f"p95 {statistics.quantiles(v, n=20)[-1]:.1f} ms",
                file=sys.stderr,
            )
        if shutil.which("cargo"):
            alone, watched, fetches = engine_under_dashboard(root, n_engine, 2 if args.quick else 5)
            row(
                f"engine on a SQLite file with an open dashboard ({fetches} refreshes)",
                f"{watched:,.0f} jobs/s",
                f"no dashboard: {alone:,.0f} jobs/s",
                f"{watched / alone:.2f} x",
                ">= 0.95 x",
            )

    cpu_name = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"\nqueuectl benchmark on {platform.system()} {platform.release()}, {os.cpu_count()} "
        f"cores ({cpu_name}), Python {platform.python_version()}; "
        f"{'quick' if args.quick else f'median of {runs} runs'}\n"
    )
    headers = ("figure", "queuectl", "baseline (same run)", "ratio", "target")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(5)]
    for r in [headers, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")


if __name__ == "__main__":
    main()
