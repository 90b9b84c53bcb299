#!/usr/bin/env python3
"""Soak: many jobs through the workers while another process polls `status` ten times a
second, on the SQLite default. Prints the figures: jobs/s, the largest WAL file seen,
worker RSS at the start and the end, the file size before and after `purge --completed`,
and `queuectl check` at the end; a `backup` is taken halfway and timed.

    python scripts/soak.py                 # 1,000,000 jobs (about a quarter of an hour here)
    python scripts/soak.py --jobs 20000    # the CI size

Exits non-zero when a job is lost, left behind, or `check` finds a problem.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

QUEUECTL = shutil.which("queuectl", path=str(Path(sys.executable).parent)) or "queuectl"


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    n = args.jobs
    with tempfile.TemporaryDirectory(prefix="qctl-soak-") as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "QUEUECTL_HOME": str(home)}
        env.pop("QUEUECTL_DB", None)
        db = home / "qctl.db"
        wal = Path(f"{db}-wal")

        def run(*a: str, stdin: str | None = None) -> str:
            r = subprocess.run(
                [QUEUECTL, *a], env=env, input=stdin, capture_output=True, text=True, check=False
            )
            if r.returncode != 0:
                raise SystemExit(f"queuectl {' '.join(a)}: {r.stdout}{r.stderr}".strip())
            return r.stdout

        started = time.monotonic()
        batch = 100_000
        for first in range(0, n, batch):
            lines = "".join('{"command":"true"}\n' for _ in range(min(batch, n - first)))
            run("enqueue", "--file", "-", stdin=lines)
        print(f"enqueued {n:,} jobs in {time.monotonic() - started:.1f}s", flush=True)

        stop = threading.Event()
        polls = [0]
        largest_wal = [0]

        def poll() -> None:
            while not stop.is_set():
                t = time.monotonic()
                run("status", "--json")
                polls[0] += 1
                if wal.exists():
                    largest_wal[0] = max(largest_wal[0], wal.stat().st_size)
                stop.wait(max(0.0, 0.1 - (time.monotonic() - t)))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        workers = subprocess.Popen(
            [QUEUECTL, "worker", "start", "--count", str(args.workers), "--quiet", "--burst"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2)
        rss_start = rss_kb(workers.pid)
        rss_end = rss_start
        start = time.monotonic()
        backup_s = None
        rate_during = rate_before = 0.0
        while workers.poll() is None:
            time.sleep(0.5)
            with_rss = rss_kb(workers.pid) if workers.poll() is None else 0
            if with_rss:
                rss_end = with_rss
            if backup_s is None and time.monotonic() - start > 5:
                done = json.loads(run("status", "--json"))["jobs"]["completed"]
                if done >= n // 2:
                    t = time.monotonic()
                    run("backup", str(Path(tmp) / "half.db"))
                    backup_s = time.monotonic() - t
                    after = json.loads(run("status", "--json"))["jobs"]["completed"]
                    rate_during = (after - done) / backup_s
                    rate_before = done / (t - start)
        secs = time.monotonic() - start
        stop.set()
        poller.join()
        counts = json.loads(run("status", "--json"))["jobs"]
        size_before = db.stat().st_size
        run("purge", "--completed")
        size_after = db.stat().st_size
        check = subprocess.run(
            [QUEUECTL, "check"], env=env, capture_output=True, text=True, check=False
        )
        print(f"ran {n:,} jobs in {secs:.0f}s = {n / secs:,.0f} jobs/s, {args.workers} workers")
        print(f"status polls meanwhile: {polls[0]:,} ({polls[0] / secs:.1f}/s)")
        print(f"largest WAL seen: {largest_wal[0] / 2**20:.1f} MiB")
        print(
            f"worker process RSS: {rss_start / 1024:.1f} MiB at start, "
            f"{rss_end / 1024:.1f} MiB at the end"
        )
        print(f"database file: {size_before / 2**20:.1f} MiB before purge --completed, ", end="")
        print(f"{size_after / 2**20:.1f} MiB after")
        if backup_s is not None:
            print(
                f"backup of the queue halfway through, workers running: {backup_s:.1f}s; "
                f"workers ran {rate_during:,.0f} jobs/s during it, {rate_before:,.0f} before"
            )
        print(f"counts: {counts}; check: {check.stdout.strip()}")
        ok = counts["completed"] == n and check.returncode == 0 and workers.returncode == 0
        print("soak: ok" if ok else "soak: FAILED")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
