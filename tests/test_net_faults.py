"""Hosts under network faults: each worker process ("host") reaches PostgreSQL through a
fault-injecting TCP proxy of its own (tests/netfault.py), and the jobs write down their
own history (start, a tick every 0.1 s, end; job id, attempt, host), which a checker reads
afterwards: 0 lost, 0 stuck, never two attempts of one job running at the same instant,
duplicates no more than the jobs in flight on the faulty host, the partitioned host stops
claiming within its lease and comes back, and every worker survives a server restart.

QUEUECTL_NETFAULT_JOBS sets the jobs per scenario (CI runs the small default; the figures
in docs/dev/reliability.md come from a larger run)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import PG_SERVER, Queue
from netfault import FaultProxy

pytestmark = pytest.mark.postgres_only

JOBS = int(os.environ.get("QUEUECTL_NETFAULT_JOBS", "12"))
# Two clock reads on one machine, one by each attempt's job: allowed to disagree this much.
CLOCK_MARGIN = 0.05

RECORDER = r"""#!/bin/sh
# Usage: record.sh HISTORY TICKS. Writes start, a tick every 0.1 s, end.
rec() { echo "$1 $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT $NETFAULT_HOST $(date +%s.%N)" >> "$2"; }
rec start "$1"
i=0
while [ "$i" -lt "$2" ]; do sleep 0.1; rec tick "$1"; i=$((i + 1)); done
rec end "$1"
"""


@dataclass
class Attempt:
    job: str
    attempt: int
    host: str
    start: float
    last: float
    ended: bool = False


@dataclass
class History:
    attempts: list[Attempt] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> History:
        seen: dict[tuple[str, int, str, float], Attempt] = {}
        current: dict[tuple[str, int, str], Attempt] = {}
        for line in path.read_text().splitlines():
            kind, job, attempt, host, at = line.split()
            key = (job, int(attempt), host)
            t = float(at)
            if kind == "start":
                a = Attempt(job, int(attempt), host, t, t)
                current[key] = a
                seen[(*key, t)] = a
            else:
                a = current[key]
                a.last = max(a.last, t)
                a.ended = a.ended or kind == "end"
        return cls(list(seen.values()))

    def by_job(self) -> dict[str, list[Attempt]]:
        out: dict[str, list[Attempt]] = defaultdict(list)
        for a in self.attempts:
            out[a.job].append(a)
        for runs in out.values():
            runs.sort(key=lambda a: a.start)
        return out

    def overlaps(self) -> list[tuple[Attempt, Attempt]]:
        """Pairs of attempts of one job that ran at the same instant."""
        bad = []
        for runs in self.by_job().values():
            for i, a in enumerate(runs):
                for b in runs[i + 1 :]:
                    if b.start < a.last - CLOCK_MARGIN:
                        bad.append((a, b))
        return bad

    def duplicated(self) -> list[str]:
        return [job for job, runs in self.by_job().items() if len(runs) > 1]


class Host:
    """One worker process with its own home and its own network to the server."""

    def __init__(self, name: str, tmp: Path, db: str, proxy: FaultProxy | None) -> None:
        self.name = name
        self.proxy = proxy
        self.q = Queue(tmp / f"home-{name}", proxy.url(db) if proxy else db)
        self.q.env["NETFAULT_HOST"] = name
        self.proc: subprocess.Popen[str] | None = None

    def start(self, *args: str) -> None:
        self.proc = self.q.start_workers(*args)

    def stop(self) -> str:
        """Stops the workers (with a signal: the network may be down) and returns stderr."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.fixture
def pg_url(q: Queue) -> str:
    assert q.db
    return q.db


@pytest.fixture
def world(tmp_path: Path, q: Queue) -> Iterator[tuple[Queue, Path, Path]]:
    """The queue (reached directly), the recorder script and the history file."""
    script = tmp_path / "record.sh"
    script.write_text(RECORDER)
    script.chmod(0o755)
    history = tmp_path / "history.txt"
    history.touch()
    yield q, script, history


def upstream() -> tuple[str, int]:
    parts = urlsplit(PG_SERVER)
    return parts.hostname or "127.0.0.1", parts.port or 5432


@contextlib.contextmanager
def hosts(tmp: Path, db: str, names: list[str], faulty: bool = True) -> Iterator[list[Host]]:
    proxies = [FaultProxy(upstream()) if faulty else None for _ in names]
    made = [Host(n, tmp, db, p) for n, p in zip(names, proxies)]
    try:
        yield made
    finally:
        for h in made:
            if h.proc is not None and h.proc.poll() is None:
                h.proc.kill()
                h.proc.communicate()
            if h.proxy:
                h.proxy.close()


def enqueue_jobs(
    q: Queue, script: Path, history: Path, n: int, ticks: int, prefix: str
) -> list[str]:
    lines = "".join(
        f'{{"id":"{prefix}{i}","command":"{script} {history} {ticks}","max_retries":5}}\n'
        for i in range(n)
    )
    q.run("enqueue", "--file", "-", input=lines)
    return [f"{prefix}{i}" for i in range(n)]


def wait_all_completed(q: Queue, ids: list[str], timeout: float) -> None:
    def done() -> bool:
        states = {j["id"]: j["state"] for j in q.json("list", "--limit", "100000")}
        return all(states.get(i) == "completed" for i in ids)

    q.wait_for(done, timeout=timeout, what="every job completed")


def check_history(history: History, ids: list[str]) -> None:
    assert not history.overlaps(), f"two attempts at once: {history.overlaps()}"
    finished = {a.job for a in history.attempts if a.ended}
    assert finished >= set(ids), f"never ran to the end: {set(ids) - finished}"


def test_a_partitioned_host_stops_its_jobs_before_its_lease_ends_and_comes_back(
    world: tuple[Queue, Path, Path], tmp_path: Path, pg_url: str
) -> None:
    q, script, history = world
    lease = 5.0
    # Jobs longer than the lease, so that the cut host must stop the ones it runs.
    ids = enqueue_jobs(q, script, history, max(6, JOBS // 2), 60, "p")
    with hosts(tmp_path, pg_url, ["a", "b"]) as (a, b):
        assert a.proxy
        a.start("--count", "2", "--lease", "5s")
        q.wait_for(
            lambda: any(x.host == "a" for x in History.read(history).attempts),
            what="a job on host a",
        )
        b.start("--count", "2", "--lease", "5s")
        time.sleep(1.0)
        cut = time.time()
        a.proxy.partition()
        time.sleep(2 * lease)
        healed = time.time()
        a.proxy.heal()
        wait_all_completed(q, ids, timeout=60 + JOBS * 3)
        assert a.proc and a.proc.poll() is None, "host a's worker exited"
        assert b.proc and b.proc.poll() is None, "host b's worker exited"
        # Host a is back: with host b gone, it alone runs new jobs.
        b.stop()
        more = enqueue_jobs(q, script, history, 4, 5, "after")
        wait_all_completed(q, more, timeout=60)
        h = History.read(history)
        workers = q.json("worker", "list")
        err_a = a.stop()
    check_history(h, ids + more)
    # In flight on host a when it was cut off: claimed before the cut (a job starts a
    # moment after its claim commits) and still running then.
    in_flight = {
        x.job for x in h.attempts if x.host == "a" and x.start < cut + 0.5 and x.last > cut
    }
    assert in_flight, "host a ran nothing when it was cut off"
    assert any(x.host == "a" and not x.ended for x in h.attempts), "no job of host a was stopped"
    dups = [x for x in h.attempts if x.job in h.duplicated()]
    assert len(h.duplicated()) <= len(in_flight), (dups, in_flight, cut, healed, err_a)
    # No job started on host a from one lease after the cut until the heal.
    late = [x for x in h.attempts if x.host == "a" and cut + lease < x.start < healed]
    assert not late, late
    # Its jobs in flight were stopped before their lease ran out, and left no ghost.
    for x in h.attempts:
        if x.host == "a" and x.job in in_flight and not x.ended:
            assert x.last < cut + lease, (x, cut)
    assert {x.host for x in h.attempts if x.job in more} == {"a"}
    assert len(workers) == 2 and all(w["state"] != "lost" for w in workers), workers
    stopped_by = max((x.last - cut for x in h.attempts if x.host == "a" and not x.ended), default=0)
    print(
        f"\npartition: {len(ids)} jobs, {len(in_flight)} in flight on the cut host, "
        f"{len(h.duplicated())} run twice, its last tick {stopped_by:.2f}s after the cut "
        f"(lease {lease:g}s), {len(h.attempts)} attempts in all"
    )
    stopped = [line for line in err_a.splitlines() if "lease could not be renewed" in line]
    assert len(stopped) == len({x.job for x in h.attempts if x.host == "a" and not x.ended}), err_a
    troubles = [line for line in err_a.splitlines() if "heartbeat failed" in line]
    assert len(troubles) <= 2, err_a  # one per worker thread for the whole partition
    jobs = q.json("list", "--limit", "100000")
    assert all(j["state"] == "completed" for j in jobs), [
        j for j in jobs if j["state"] != "completed"
    ]


def test_200ms_each_way_slows_but_breaks_nothing(
    world: tuple[Queue, Path, Path], tmp_path: Path, pg_url: str
) -> None:
    q, script, history = world
    ids = enqueue_jobs(q, script, history, JOBS, 5, "l")
    with hosts(tmp_path, pg_url, ["a", "b"]) as (a, b):
        for h in (a, b):
            assert h.proxy
            h.proxy.latency = 0.2
            # The default lease: a claim and a settle take a few seconds on this link.
            h.start("--count", "2")
        began = time.monotonic()
        wait_all_completed(q, ids, timeout=60 + JOBS * 4)
        took = time.monotonic() - began
        errs = a.stop() + b.stop()
    hist = History.read(history)
    print(f"\nlatency 200 ms each way: {len(ids)} jobs of 0.5 s on 4 workers in {took:.1f}s")
    check_history(hist, ids)
    dups = [x for x in hist.attempts if x.job in hist.duplicated()]
    assert not dups, "\n".join(map(str, dups)) + "\n" + errs
    assert "lease could not be renewed" not in errs, errs
    assert all(j["attempts"] == 1 for j in q.json("list")), q.json("list")


def test_connections_reset_mid_transaction(
    world: tuple[Queue, Path, Path], tmp_path: Path, pg_url: str
) -> None:
    q, script, history = world
    ids = enqueue_jobs(q, script, history, JOBS, 5, "r")
    with hosts(tmp_path, pg_url, ["a", "b"]) as (a, b):
        assert a.proxy
        a.start("--count", "2", "--lease", "5s")
        b.start("--count", "2", "--lease", "5s")
        # Host a up and running a job first: resets during its start-up only delay it.
        q.wait_for(
            lambda: any(x.host == "a" for x in History.read(history).attempts),
            what="a job on host a",
        )
        resets = 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.3)
            resets += a.proxy.reset()
        wait_all_completed(q, ids, timeout=60 + JOBS * 3)
        assert a.proc and a.proc.poll() is None, "host a's worker exited"
        err_a = a.stop()
        b.stop()
    assert resets > 10, (resets, err_a)
    hist = History.read(history)
    print(f"\nresets: {resets} connections reset, {len(hist.duplicated())} of {len(ids)} run twice")
    check_history(hist, ids)


def restart_server() -> None:
    versions = os.listdir("/etc/postgresql")
    assert len(versions) == 1, versions
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def server_answers() -> bool:
    r = subprocess.run(
        ["pg_isready", "-h", upstream()[0], "-p", str(upstream()[1])],
        capture_output=True,
        check=False,
    )
    return r.returncode == 0


@pytest.mark.skipif(
    not Path("/etc/postgresql").is_dir(), reason="no local PostgreSQL cluster to restart"
)
def test_every_worker_survives_a_server_restart(
    world: tuple[Queue, Path, Path], tmp_path: Path, pg_url: str
) -> None:
    q, script, history = world
    ids = enqueue_jobs(q, script, history, JOBS, 10, "s")
    with hosts(tmp_path, pg_url, ["a", "b"], faulty=False) as (a, b):
        a.start("--count", "2", "--lease", "5s")
        b.start("--count", "2", "--lease", "5s")
        q.wait_for(lambda: len(History.read(history).attempts) >= 2, what="jobs running")
        down = time.monotonic()
        began = time.time()
        restart_server()
        q.wait_for(server_answers, timeout=60, what="the server back")
        down_for = time.monotonic() - down
        wait_all_completed(q, ids, timeout=90 + JOBS * 3)
        for h in (a, b):
            assert h.proc and h.proc.poll() is None, f"host {h.name}'s worker exited"
        hist = History.read(history)
        errs = a.stop() + b.stop()
    print(
        f"\nserver restart: down {down_for:.1f}s, "
        f"{len(hist.duplicated())} of {len(ids)} run twice, every worker up"
    )
    check_history(hist, ids)
    # A start later than a job's length after the restart began followed a claim made
    # while or after the server was down: the workers claimed again once it was back.
    assert any(x.start > began + 1.2 for x in hist.attempts), "nothing ran after the restart"
    # A line or two per worker thread for the outage, not one per retry.
    told = ("heartbeat failed", "cannot claim a job", "store write failed")
    troubles = [ln for ln in errs.splitlines() if any(t in ln for t in told)]
    assert len(troubles) <= 8, errs
