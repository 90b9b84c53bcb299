#!/usr/bin/env python3
"""Attacks on queuectl's guarantees (docs/internals/guarantees.md), with real
processes and kill -9.

    python scripts/stress.py          # CI size, a couple of minutes
    python scripts/stress.py --full   # 20,000 jobs over 8 workers, 10,000 under crash chaos

1. Concurrency: 8 workers in 3 `worker start` processes; every job appends its id to one
   file. Every id exactly once, every job attempted once, nothing left behind.
2. Crash chaos: while jobs run, kill -9 a random worker process every half second and start
   a replacement. Every job completes; duplicates are bounded by the jobs in flight at the
   kills; the database passes `PRAGMA integrity_check` and `queuectl check`; a `backup`
   taken in the middle holds every job, none processing, and is `check`-clean; reports the
   longest rescue wait.
3. Kills during writes: kill -9 `enqueue --file` at random moments of large batches. A
   batch is all there or not there at all; acknowledged batches are all there.
4. A flood of output (1 GB, and random bytes): the job completes, its log is capped by
   config `log-max-bytes` keeping the end, and the worker's peak RSS stays flat.

Exits non-zero when a guarantee does not hold, and prints the figures either way.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUEUECTL = shutil.which("queuectl", path=str(Path(sys.executable).parent)) or "queuectl"
failures: list[str] = []
passed: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
    (passed if ok else failures).append(what)


class Queue:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "QUEUECTL_HOME": str(home)}
        self.env.pop("QUEUECTL_DB", None)

    def run(self, *args: str, stdin: str | None = None) -> str:
        r = subprocess.run(
            [QUEUECTL, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode != 0:
            raise SystemExit(f"queuectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def workers(self, count: int, *extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [QUEUECTL, "worker", "start", "--count", str(count), "--quiet", *extra],
            env=self.env,
            stderr=subprocess.DEVNULL,
        )

    def sql(self, query: str) -> list[tuple]:
        with sqlite3.connect(self.home / "qctl.db", timeout=60) as c:
            return c.execute(query).fetchall()

    def counts(self) -> dict[str, int]:
        return json.loads(self.run("status", "--json"))["jobs"]


def appending_jobs(n: int, out: Path, prefix: str = "j") -> str:
    return "".join(
        json.dumps({"id": f"{prefix}{i}", "command": f'echo "$QUEUECTL_JOB_ID" >> {out}'}) + "\n"
        for i in range(n)
    )


def concurrency(root: Path, n: int) -> None:
    print(f"1. concurrency: {n} jobs, 8 workers in 3 processes", flush=True)
    q = Queue(root / "concurrency")
    out = root / "concurrency.txt"
    q.run("enqueue", "--file", "-", stdin=appending_jobs(n, out))
    t = time.monotonic()
    procs = [q.workers(c, "--burst") for c in (3, 3, 2)]
    codes = [p.wait(timeout=1800) for p in procs]
    secs = time.monotonic() - t
    ran = collections.Counter(out.read_text().split())
    check(codes == [0, 0, 0], f"worker processes exited 0 ({codes})")
    check(
        len(ran) == n and set(ran.values()) == {1},
        f"every id ran exactly once ({len(ran)} ids,"
        f" {sum(v - 1 for v in ran.values())} extra runs)",
    )
    check(q.sql("SELECT DISTINCT attempts FROM jobs") == [(1,)], "attempts is 1 for every job")
    counts = q.counts()
    check(counts["completed"] == n, f"all {n} completed, none pending or processing ({counts})")
    print(f"  figures: {n} jobs in {secs:.1f}s ({n / secs:,.0f} jobs/s) by 8 workers", flush=True)


def chaos(root: Path, n: int, lease_s: float) -> None:
    print(f"2. crash chaos: {n} jobs, kill -9 a worker process every 0.5 s", flush=True)
    q = Queue(root / "chaos")
    out = root / "chaos.txt"
    q.run("config", "set", "max-retries", "20")
    q.run("config", "set", "backoff-max", "0")
    # Jobs that take a little while, so that kills land while jobs are in flight.
    text = "".join(
        json.dumps({"id": f"c{i}", "command": f'echo "$QUEUECTL_JOB_ID" >> {out}; sleep 0.02'})
        + "\n"
        for i in range(n)
    )
    q.run("enqueue", "--file", "-", stdin=text)
    lease = ["--lease", f"{lease_s}s"]
    procs = [q.workers(2, *lease) for _ in range(3)]
    kills: list[tuple[float, int]] = []  # (time, pid)
    rng = random.Random(7)
    deadline = time.monotonic() + 1800
    backup = root / "chaos-backup.db"
    backup_counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        time.sleep(0.5)
        counts = q.counts()
        if counts["completed"] + counts["dead"] == n:
            break
        if not backup.exists() and counts["completed"] >= n // 3:
            # A backup taken in the middle of the chaos: whole and `check`-clean.
            q.run("backup", str(backup))
            backup_counts = json.loads(q.run("--db", str(backup), "status", "--json"))["jobs"]
        victim = rng.randrange(len(procs))
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait()
        kills.append((time.time(), procs[victim].pid))
        procs[victim] = q.workers(2, *lease)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=120)
    counts = q.counts()
    ran = collections.Counter(out.read_text().split())
    duplicates = sum(v - 1 for v in ran.values())
    check(counts["completed"] == n, f"every job completed ({counts})")
    check(counts["processing"] == 0, "nothing left processing")
    check(len(ran) == n, f"every job ran at least once ({len(ran)} of {n})")
    # Each killed process held at most 2 jobs; each of those may run again.
    check(
        duplicates <= 2 * len(kills),
        f"duplicates {duplicates} <= jobs in flight at the {len(kills)} kills ({2 * len(kills)})",
    )
    (integrity,) = q.sql("PRAGMA integrity_check")[0]
    check(integrity == "ok", f"integrity_check: {integrity}")
    check(q.run("check") == "ok\n", "queuectl check: ok")
    check(
        sum(backup_counts.values()) == n and backup_counts.get("processing") == 0,
        f"the backup taken mid-chaos holds every job, none processing ({backup_counts})",
    )
    check(q.run("--db", str(backup), "check") == "ok\n", "queuectl check of the backup: ok")
    # Rescue wait: from the kill of a worker's process to the settle of its lost attempt.
    pid_of = dict(q.sql("SELECT id, pid FROM workers"))
    kill_at = {pid: t for t, pid in kills}
    waits = [
        finished / 1000 - kill_at[pid_of[worker]]
        for worker, finished in q.sql(
            "SELECT worker_id, finished_at_ms FROM attempts WHERE error LIKE '%lost%'"
        )
        if pid_of.get(worker) in kill_at
    ]
    longest = max(waits, default=0.0)
    check(
        longest <= lease_s + 2.5,
        f"longest rescue wait {longest:.1f}s <= lease {lease_s}s + one heartbeat and a claim",
    )
    print(
        f"  figures: {len(kills)} kills, {duplicates} duplicate runs, {len(waits)} jobs "
        f"rescued, longest rescue wait {longest:.1f}s (lease {lease_s}s)",
        flush=True,
    )


def torn_batches(root: Path, batches: int, size: int) -> None:
    print(
        f"3. kills during writes: {batches} batches of {size} jobs, enqueue killed at random",
        flush=True,
    )
    q = Queue(root / "batches")
    q.run("status")
    rng = random.Random(11)
    acknowledged, killed = [], []
    for b in range(batches):
        path = root / f"batch{b}.jsonl"
        path.write_text(
            "".join(json.dumps({"id": f"b{b}-{i}", "command": "true"}) + "\n" for i in range(size))
        )
        p = subprocess.Popen(
            [QUEUECTL, "enqueue", "--file", str(path)],
            env=q.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0, 0.6 if size <= 50_000 else 1.0))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        (acknowledged if p.wait() == 0 else killed).append(b)
    present = collections.Counter(row[0].split("-")[0] for row in q.sql("SELECT id FROM jobs"))
    torn = [b for b in range(batches) if present.get(f"b{b}", 0) not in (0, size)]
    lost = [b for b in acknowledged if present.get(f"b{b}", 0) != size]
    check(not torn, f"no half batch visible (torn: {torn})")
    check(not lost, f"every acknowledged batch complete (lost: {lost})")
    (integrity,) = q.sql("PRAGMA integrity_check")[0]
    check(integrity == "ok", f"integrity_check: {integrity}")
    print(f"  figures: {len(killed)} enqueues killed, {len(acknowledged)} acknowledged", flush=True)


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def flood(root: Path, megabytes: int) -> None:
    print(f"4. a job writes {megabytes} MB of zeros and 1 MB of random bytes", flush=True)
    q = Queue(root / "flood")
    q.run("config", "set", "log-max-bytes", "1M")
    # The worker starts idle; its resident size then is the baseline for its peak.
    p = q.workers(1)
    time.sleep(1.0)
    idle_kb = vm_kb(p.pid, "VmRSS")
    t = time.monotonic()
    command = f"head -c {megabytes}M /dev/zero; head -c 1M /dev/urandom; echo; echo END"
    job = q.run("enqueue", json.dumps({"command": command})).strip()
    while json.loads(q.run("show", job, "--json"))["state"] in ("pending", "processing"):
        time.sleep(0.05)
        if time.monotonic() - t > 600:
            break
    secs = time.monotonic() - t
    peak_kb = vm_kb(p.pid, "VmHWM")
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    state = json.loads(q.run("show", job, "--json"))["state"]
    log = next((q.home / "logs").iterdir())
    size = log.stat().st_size
    check(state == "completed", f"the job completed ({state})")
    check(size <= 2 * 2**20 + 4096, f"the log is capped: {size:,} bytes for {megabytes + 1} MB")
    check(
        b"\nEND\n=== exit code 0 after " in log.read_bytes()[-100:],
        "the log keeps the end of the output",
    )
    check(
        peak_kb - idle_kb < 20_000,
        f"worker memory stays flat: {idle_kb / 1024:.1f} MB idle, {peak_kb / 1024:.1f} MB peak",
    )
    print(
        f"  figures: {megabytes + 1} MB in {secs:.1f}s, log {size:,} bytes, worker RSS "
        f"{idle_kb / 1024:.1f} MB idle, {peak_kb / 1024:.1f} MB peak",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the full sizes of issue 3")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qctl-stress-") as tmp:
        root = Path(tmp)
        concurrency(root, 20_000 if args.full else 3_000)
        chaos(root, 10_000 if args.full else 1_500, lease_s=3.0)
        torn_batches(root, 20 if args.full else 8, 100_000 if args.full else 50_000)
        flood(root, 1024 if args.full else 200)
    print(f"stress: {len(passed)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
