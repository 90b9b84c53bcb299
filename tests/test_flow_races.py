"""Flow control under races (DESIGN.md section 13): several worker processes claim at
once, and the jobs write their own start and end times; the rules must hold over all of
them. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import Queue
from queuectl import _core


def _record(runs: Path, sleep: float = 0.1) -> str:
    """A job command that writes its start and end (ns), its slots and its worker process
    (the shell's parent) to a file of its own."""
    f = f"{runs}/$QUEUECTL_JOB_ID"
    return (
        f'echo "s $(date +%s%N) $PPID" >> {f}; sleep {sleep}; echo "e $(date +%s%N) $PPID" >> {f}'
    )


def _runs(runs: Path) -> dict[str, tuple[int, int, str]]:
    """Each job's (start, end, worker process), checking that it ran exactly once."""
    out = {}
    for f in runs.iterdir():
        lines = [line.split() for line in f.read_text().splitlines()]
        assert [kind for kind, *_ in lines] == ["s", "e"], f"{f.name} ran more than once"
        (_, start, pid), (_, end, _) = lines
        out[f.name] = (int(start), int(end), pid)
    return out


def _peak(spans: list[tuple[int, int, int]]) -> int:
    """The most weight running at one instant, from (start, end, weight) spans."""
    edges = [(s, w) for s, _, w in spans] + [(e, -w) for _, e, w in spans]
    running = peak = 0
    for _, step in sorted(edges):  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def _completed(q: Queue, queue: str) -> int:
    rows = {r["name"]: r for r in q.json("queue", "list")}
    count: int = rows[queue]["jobs"]["completed"] if queue in rows else 0
    return count


def test_a_rate_holds_over_many_worker_processes_and_the_queue_drains_at_it(
    q: Queue, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    assert q.run("queue", "rate", "api", "5/1s").returncode == 0
    lines = [
        json.dumps({"id": f"r{i:02}", "command": _record(runs, 0.01), "queue": "api"})
        for i in range(20)
    ]
    q.run("enqueue", "--file", "-", input="\n".join(lines))
    for _ in range(3):
        q.start_workers("--count", "2", "--quiet")
    q.wait_for(lambda: _completed(q, "api") == 20, timeout=60, what="the rated queue")
    # The rule holds on the claims' clock (the started_at the store wrote)...
    claimed = sorted(_core.parse_time(q.job(f"r{i:02}")["started_at"]) for i in range(20))
    for w in zip(claimed, claimed[5:]):
        assert w[1] - w[0] >= 1000, f"6 starts within {w[1] - w[0]} ms: {claimed}"
    # ...and on the jobs' own, up to the time a start takes to spawn (on a loaded machine,
    # a few hundred ms at worst).
    own = sorted(start // 1_000_000 for start, _, _ in _runs(runs).values())
    for w in zip(own, own[5:]):
        assert w[1] - w[0] >= 1000 - 300, f"6 jobs began within {w[1] - w[0]} ms: {own}"
    # Drained at its rate, not slower: 20 starts at 5 a second take 3 s after the first
    # (each window opening is met within a few ms; 1 s of slack over the three).
    assert 3000 <= claimed[-1] - claimed[0] < 3000 + 1000, claimed


def test_a_key_limit_holds_over_many_worker_processes(q: Queue, tmp_path: Path) -> None:
    runs, free = tmp_path / "runs", tmp_path / "free"
    runs.mkdir()
    free.mkdir()
    q.run("queue", "key-limit", "deploy", "2")
    lines = [
        json.dumps(
            {"id": f"k{i:02}", "command": _record(runs), "queue": "deploy", "key": f"c{i % 3}"}
        )
        for i in range(36)
    ]
    lines += [
        json.dumps({"id": f"n{i:02}", "command": _record(free), "queue": "deploy"})
        for i in range(12)
    ]
    q.run("enqueue", "--file", "-", input="\n".join(lines))
    for _ in range(3):
        q.start_workers("--count", "3", "--quiet")
    q.wait_for(lambda: _completed(q, "deploy") == 48, timeout=120, what="the keyed queue")
    spans = _runs(runs)
    for key in range(3):
        mine = [(s, e, 1) for job, (s, e, _) in spans.items() if int(job[1:]) % 3 == key]
        assert len(mine) == 12
        assert _peak(mine) == 2, f"key c{key}: the limit must hold, and be reached"
    unkeyed = [(s, e, 1) for s, e, _ in _runs(free).values()]
    assert _peak(unkeyed) > 2, "jobs without a key are not counted"


def test_the_slots_of_a_process_are_never_exceeded(q: Queue, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    sizes = [1, 2, 3, 4, 1, 2, 1, 3, 2, 1] * 4
    lines = [
        json.dumps({"id": f"s{i:02}", "command": _record(runs, 0.15), "slots": n})
        for i, n in enumerate(sizes)
    ]
    q.run("enqueue", "--file", "-", input="\n".join(lines))
    too_big = q.enqueue("true", slots=8)
    for _ in range(3):
        q.start_workers("--count", "4", "--slots", "4", "--quiet")
    q.wait_for(lambda: _completed(q, "default") == len(sizes), timeout=120, what="the jobs")
    spans = _runs(runs)
    by_process: dict[str, list[tuple[int, int, int]]] = {}
    for job, (s, e, pid) in spans.items():
        by_process.setdefault(pid, []).append((s, e, sizes[int(job[1:])]))
    assert len(by_process) == 3, "every process ran jobs"
    peaks = {pid: _peak(spans) for pid, spans in by_process.items()}
    assert all(p <= 4 for p in peaks.values()), f"slots in use per process: {peaks}"
    assert max(peaks.values()) == 4, f"the slots were filled: {peaks}"
    # A job bigger than every live process is never claimed, and explain says why.
    assert q.state(too_big) == "pending"
    why = q.json("explain", too_big)["explanation"]
    assert "8 slots" in why and "4" in why, why


def test_retry_delays_and_exit_code_rules(q: Queue, tmp_path: Path) -> None:
    times = tmp_path / "times"
    delayed = q.run(
        "enqueue",
        "--command",
        f"date +%s%N >> {times}; exit 1",
        "--max-retries",
        "3",
        "--retry-delays",
        "1s,2s",
    ).stdout.strip()
    codes = {}
    for code in (75, 2, 3):
        codes[code] = q.run(
            "enqueue",
            "--command",
            f"exit {code}",
            "--max-retries",
            "5",
            "--retry-on",
            "75",
            "--no-retry-on",
            "2,timeout",
        ).stdout.strip()
    timed_out = q.run(
        "enqueue", "--command", "sleep 5", "--timeout", "0.3", "--no-retry-on", "timeout"
    ).stdout.strip()
    q.start_workers("--count", "2", "--quiet")
    q.wait_for(lambda: q.state(delayed) == "dead", timeout=30, what="the delayed job")
    starts = [int(line) / 1e9 for line in times.read_text().split()]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(gaps) == 3, gaps
    for gap, want in zip(gaps, [1.0, 2.0, 2.0]):  # the last delay repeats
        assert want <= gap < want + 0.8, gaps
    q.wait_for(lambda: q.state(timed_out) == "dead", timeout=30, what="the timed-out job")
    assert q.job(timed_out)["attempts"] == 1, "a timeout named in no_retry_on is not retried"
    q.wait_for(lambda: q.state(codes[2]) == "dead", what="exit 2")
    q.wait_for(lambda: q.state(codes[3]) == "dead", what="exit 3")
    assert q.job(codes[2])["attempts"] == 1, "no_retry_on: straight to dead"
    assert q.job(codes[3])["attempts"] == 1, "not in retry_on: straight to dead"
    q.wait_for(lambda: q.job(codes[75])["attempts"] >= 2, what="exit 75 to be retried")


def test_an_expired_job_is_cancelled_and_never_runs(q: Queue, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    q.run("queue", "pause", "late")
    job = q.run(
        "enqueue", "--command", f"touch {ran}", "--queue", "late", "--expires", "1s"
    ).stdout.strip()
    after = q.run("enqueue", "--command", "true", "--after", job).stdout.strip()
    keeps = q.run("enqueue", "--command", "true", "--queue", "late", "--expires", "1h")
    time.sleep(1.2)
    q.run("queue", "resume", "late")
    q.run("worker", "start", "--burst")
    shown = q.job(job)
    assert (shown["state"], shown["last_error"]) == ("cancelled", "expired")
    assert not ran.exists(), "an expired job never runs"
    assert q.state(after) == "cancelled", "what runs after it is cancelled with it"
    assert q.state(keeps.stdout.strip()) == "completed"
