"""Compare two builds of queuectl: an older commit and this working tree, run alternately.

    .venv/bin/python scripts/compare_builds.py REF [--runs 5] [--jobs 20000] [--e2e 2000]

Builds both (a git worktree of REF in a temporary folder; the engine example in release
mode and the extension, in release mode, into a virtualenv of each), then runs, in turn,
old then new, RUNS times: the engine example (claim and settle of no-op jobs through the
store, 2 threads, no processes) and the end-to-end rate (2 idle workers, then `enqueue
--file` of E2E `true` jobs, each a real child process, from the enqueue to the last
completion, on a SQLite file), and with --pg URL the engine example on that PostgreSQL
server (a new schema each run). It prints every pair and the medians: on a shared, noisy
machine a change is judged by the pairs and the spread, not by one figure.

Builds are kept between runs under ~/.cache/queuectl/compare (CARGO_TARGET_DIR and
virtualenv per side, and the worktree of REF, which the old side's extension is installed
from).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "queuectl" / "compare"


def sh(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run(argv, cwd=cwd, env=env, check=True)


class Build:
    """One side: a source tree, its engine binary and its `queuectl` in a virtualenv."""

    def __init__(self, name: str, src: Path) -> None:
        self.name, self.src = name, src
        self.target = CACHE / f"target-{name}"
        self.venv = CACHE / f"venv-{name}"

    def build(self) -> None:
        env = {**os.environ, "CARGO_TARGET_DIR": str(self.target)}
        engine = ["cargo", "build", "--release", "-q", "-p", "queuectl-core", "--example", "engine"]
        sh(engine, self.src, env)
        if not (self.venv / "bin" / "python").exists():
            sh([sys.executable, "-m", "venv", str(self.venv)], self.src)
            pip = [str(self.venv / "bin" / "python"), "-m", "pip", "install", "-q"]
            sh([*pip, "maturin>=1.7,<2"], self.src)
        env = {**env, "VIRTUAL_ENV": str(self.venv), "PATH": f"{self.venv / 'bin'}:{env['PATH']}"}
        sh([str(self.venv / "bin" / "maturin"), "develop", "--release", "-q"], self.src, env)

    @property
    def engine_bin(self) -> Path:
        return self.target / "release" / "examples" / "engine"

    @property
    def queuectl(self) -> Path:
        return self.venv / "bin" / "queuectl"

    def engine(self, jobs: int, url: str | None = None) -> float:
        """The engine example's rate; on a new schema of the PostgreSQL server at `url`
        when given, dropped afterwards."""
        if url is None:
            return self._engine([str(jobs), "0"])
        import psycopg

        schema = f"qcompare_{self.name}_{os.getpid()}"
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            c.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in url else "?"
        try:
            return self._engine([str(jobs), "0", f"{url}{sep}options=-csearch_path%3D{schema}"])
        finally:
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(f"DROP SCHEMA {schema} CASCADE")

    def _engine(self, args: list[str]) -> float:
        out = subprocess.run(
            [str(self.engine_bin), *args], capture_output=True, text=True, check=True
        ).stdout
        rate: float = json.loads(out.strip().splitlines()[-1])["throughput_per_s"]
        return rate

    def end_to_end(self, n: int) -> float:
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "QUEUECTL_HOME": home}
            env.pop("QUEUECTL_DB", None)
            subprocess.run([str(self.queuectl), "status"], env=env, check=True, capture_output=True)
            workers = subprocess.Popen(
                [str(self.queuectl), "worker", "start", "--count", "2"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            db = Path(home) / "qctl.db"
            try:
                time.sleep(1.0)  # the workers register and go idle
                t0 = time.time()
                subprocess.run(
                    [str(self.queuectl), "enqueue", "--file", "-"],
                    input='{"command":"true"}\n' * n,
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    with sqlite3.connect(db) as c:
                        (done,) = c.execute(
                            "SELECT count(*) FROM jobs WHERE state = 'completed'"
                        ).fetchone()
                    if done == n:
                        break
                    time.sleep(0.01)
                with sqlite3.connect(db) as c:
                    (last_ms,) = c.execute("SELECT max(finished_at_ms) FROM jobs").fetchone()
            finally:
                workers.terminate()
                workers.wait(timeout=60)
            return n / (int(last_ms) / 1000 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref", help="the older commit (a git revision)")
    ap.add_argument("--runs", type=int, default=5, help="runs of each side (alternating)")
    ap.add_argument("--jobs", type=int, default=20_000, help="engine example jobs per run")
    ap.add_argument("--e2e", type=int, default=2_000, help="end-to-end jobs per run (0: skip)")
    ap.add_argument(
        "--pg", metavar="URL", help="also run the engine on this PostgreSQL server (new schemas)"
    )
    args = ap.parse_args()
    if not shutil.which("cargo"):
        raise SystemExit("cargo is needed to build both sides")
    CACHE.mkdir(parents=True, exist_ok=True)
    worktree = CACHE / "ref-src"
    if worktree.exists():
        sh(["git", "worktree", "remove", "--force", str(worktree)], ROOT)
    # Kept after the run: the old side's extension is installed from it (editable).
    sh(["git", "worktree", "add", "-q", "--detach", str(worktree), args.ref], ROOT)
    old, new = Build("old", worktree), Build("new", ROOT)
    for b in (old, new):
        print(f"building {b.name} ({b.src})", flush=True)
        b.build()
    figures: dict[str, dict[str, list[float]]] = {
        "engine": {"old": [], "new": []},
        "e2e": {"old": [], "new": []},
        "engine on PostgreSQL": {"old": [], "new": []},
    }
    for i in range(args.runs):
        for b in (old, new):
            figures["engine"][b.name].append(b.engine(args.jobs))
        for b in (old, new) if args.e2e else ():
            figures["e2e"][b.name].append(b.end_to_end(args.e2e))
        for b in (old, new) if args.pg else ():
            figures["engine on PostgreSQL"][b.name].append(b.engine(args.jobs, args.pg))
        e, d = figures["engine"], figures["e2e"]
        line = f"run {i + 1}: engine old {e['old'][-1]:,.0f} new {e['new'][-1]:,.0f} jobs/s"
        if args.e2e:
            line += f"; end to end old {d['old'][-1]:,.0f} new {d['new'][-1]:,.0f} jobs/s"
        if args.pg:
            p = figures["engine on PostgreSQL"]
            line += f"; engine on PostgreSQL old {p['old'][-1]:,.0f} new {p['new'][-1]:,.0f}"
        print(line, flush=True)
    for what, sides in figures.items():
        if not sides["old"]:
            continue
        o, n = statistics.median(sides["old"]), statistics.median(sides["new"])
        spread = f"old {min(sides['old']):,.0f}..{max(sides['old']):,.0f}"
        spread += f", new {min(sides['new']):,.0f}..{max(sides['new']):,.0f}"
        print(f"{what}: median old {o:,.0f}, new {n:,.0f} jobs/s ({n / o:.2f}x; {spread})")


if __name__ == "__main__":
    main()
