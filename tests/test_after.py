"""Jobs that run after other jobs, through the real command and real workers, on both
stores (QUEUECTL_TEST_STORE): fan-out, fan-in, chains, cascading cancels, a parent
rescued after its worker was killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import Queue


def _batch(q: Queue, tmp_path: Path, lines: list[dict[str, object]]) -> str:
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return q.run("enqueue", "--file", str(batch), timeout=300).stdout.strip()


def _finished(q: Queue, ids: list[str]) -> list[dict[str, object]]:
    by_id = {j["id"]: j for j in q.json("list")}
    return [by_id[i] for i in ids]


def test_a_pipeline_runs_in_order_and_waits_for_every_parent(q: Queue, tmp_path: Path) -> None:
    log = tmp_path / "order.txt"
    fetch = q.run("enqueue", "--id", "fetch", "--command", f"sleep 0.3; echo fetch >> {log}")
    assert fetch.stdout.strip() == "fetch"
    for name in ("clean", "resize"):
        q.run("enqueue", "--id", name, "--after", "fetch", "--command", f"echo {name} >> {log}")
    q.run(
        "enqueue",
        "--id",
        "report",
        "--after",
        "clean",
        "--after",
        "resize",
        "--command",
        f"echo report >> {log}",
    )
    report = q.job("report")
    assert (report["state"], report["waiting_on"]) == ("waiting", 2)
    assert report["after"] == [
        {"id": "clean", "state": "waiting"},
        {"id": "resize", "state": "waiting"},
    ]
    assert q.json("status")["jobs"]["waiting"] == 3
    assert [j["id"] for j in q.json("list", "--state", "waiting")] == ["clean", "resize", "report"]
    why = q.run("explain", "report").stdout
    assert "runs after 2 job(s) that have not completed: clean (waiting), resize (waiting)" in why
    q.run("worker", "start", "--burst", "--count", "2", timeout=60)
    lines = log.read_text().split()
    assert lines[0] == "fetch" and lines[-1] == "report", lines
    assert sorted(lines[1:3]) == ["clean", "resize"]
    assert {j["state"] for j in q.json("list")} == {"completed"}
    assert q.run("check").returncode == 0


def test_fan_out_one_parent_releases_a_thousand_children(q: Queue, tmp_path: Path) -> None:
    lines: list[dict[str, object]] = [{"id": "root", "command": "sleep 0.2"}]
    lines += [{"id": f"c{i}", "command": "true", "after": "root"} for i in range(1000)]
    assert _batch(q, tmp_path, lines) == "enqueued 1001 jobs"
    assert q.json("status")["jobs"]["waiting"] == 1000
    q.run("worker", "start", "--burst", "--count", "2", timeout=300)
    jobs = q.json("list")
    root = next(j for j in jobs if j["id"] == "root")
    children = [j for j in jobs if j["id"] != "root"]
    assert len(children) == 1000 and all(j["state"] == "completed" for j in children)
    # Every child started after its parent finished.
    assert all(str(j["started_at"]) >= str(root["finished_at"]) for j in children)


def test_fan_in_a_thousand_parents_release_one_child(q: Queue, tmp_path: Path) -> None:
    parents = [f"p{i}" for i in range(1000)]
    lines: list[dict[str, object]] = [{"id": p, "command": "true"} for p in parents]
    lines.append({"id": "sink", "command": "true", "after": parents})
    assert _batch(q, tmp_path, lines) == "enqueued 1001 jobs"
    assert q.job("sink")["waiting_on"] == 1000
    q.run("worker", "start", "--burst", "--count", "2", timeout=300)
    jobs = {j["id"]: j for j in q.json("list")}
    assert jobs["sink"]["state"] == "completed"
    last_parent = max(str(jobs[p]["finished_at"]) for p in parents)
    assert str(jobs["sink"]["started_at"]) >= last_parent
    assert all(jobs[p]["state"] == "completed" for p in parents)


def test_a_chain_of_a_hundred_runs_one_link_at_a_time(q: Queue, tmp_path: Path) -> None:
    log = tmp_path / "chain.txt"
    lines: list[dict[str, object]] = [{"id": "l0", "command": f"echo 0 >> {log}"}]
    lines += [
        {"id": f"l{i}", "command": f"echo {i} >> {log}", "after": f"l{i - 1}"}
        for i in range(1, 100)
    ]
    _batch(q, tmp_path, lines)
    q.run("worker", "start", "--burst", "--count", "2", timeout=120)
    assert log.read_text().split() == [str(i) for i in range(100)]


def test_a_parent_that_dies_cancels_its_chain_naming_each_cause(q: Queue, tmp_path: Path) -> None:
    _batch(
        q,
        tmp_path,
        [
            {"id": "extract", "command": "exit 3", "max_retries": 0},
            {"id": "load", "command": "true", "after": ["extract"]},
            {"id": "index", "command": "true", "after": ["load"]},
            {"id": "other", "command": "true"},
        ],
    )
    q.run("worker", "start", "--burst", timeout=60)
    extract, load, index, other = _finished(q, ["extract", "load", "index", "other"])
    assert (extract["state"], other["state"]) == ("dead", "completed")
    assert (load["state"], load["last_error"]) == (
        "cancelled",
        "cancelled: it runs after job extract, which ended dead",
    )
    assert (index["state"], index["last_error"]) == (
        "cancelled",
        "cancelled: it runs after job load, which ended cancelled",
    )
    assert (
        "before it ran (it runs after job extract, which ended dead)"
        in q.run("explain", "load").stdout
    )
    # Nothing new may run after it, and the dependents cannot be retried before it.
    r = q.run("enqueue", "--after", "extract", "--command", "true", check=False)
    assert r.returncode == 1 and r.stderr.strip().endswith(
        'after: job "extract" is dead, so a job after it would never run (retry it first)'
    )
    r = q.run("retry", "load", check=False)
    assert r.returncode == 1 and 'runs after job "extract", which is dead' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # Retried in one command, parent first: they run again, in order.
    q.sql("UPDATE jobs SET command = 'true' WHERE id = 'extract'")
    q.run("retry", "extract", "load", "index")
    assert q.state("load") == "waiting"
    q.run("worker", "start", "--burst", timeout=60)
    assert [j["state"] for j in _finished(q, ["extract", "load", "index"])] == ["completed"] * 3


def test_cancel_cascades_and_delete_refuses_a_parent_with_waiting_jobs(q: Queue) -> None:
    q.run("enqueue", "--id", "a", "--command", "true")
    q.run("enqueue", "--id", "b", "--after", "a", "--command", "true")
    q.run("enqueue", "--id", "c", "--after", "b", "--command", "true")
    r = q.run("delete", "a", check=False)
    assert r.returncode == 1 and "has jobs waiting to run after it" in r.stderr
    assert q.json("cancel", "b") == {"cancelled": ["b"], "killing": []}
    assert q.state("a") == "pending"
    c = q.job("c")
    assert (c["state"], c["last_error"]) == (
        "cancelled",
        "cancelled: it runs after job b, which ended cancelled",
    )
    q.run("delete", "a")
    assert q.run("check").returncode == 0


def test_bad_after_is_a_one_line_error_that_adds_nothing(q: Queue, tmp_path: Path) -> None:
    q.run("enqueue", "--id", "real", "--command", "true")
    batch = tmp_path / "bad.jsonl"
    batch.write_text(
        json.dumps({"id": "x", "command": "true", "after": ["y"]})
        + "\n"
        + json.dumps({"id": "y", "command": "true"})
        + "\n"
    )
    for args, says in (
        (["enqueue", "--after", "nope", "--command", "true"], 'there is no job "nope"'),
        (["enqueue", json.dumps({"command": "true", "after": [5]})], "field 'after'"),
        (["enqueue", json.dumps({"id": "s", "command": "true", "after": "s"})], "itself"),
        (["enqueue", "--file", str(batch)], "comes later in the batch"),
        (["enqueue", "--after", "real", json.dumps({"command": "true"})], "--after go with"),
    ):
        r = q.run(*args, check=False)
        assert r.returncode in (1, 2), args
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert says in r.stderr, r.stderr
    assert [j["id"] for j in q.json("list")] == ["real"]


def test_a_parent_rescued_after_its_worker_is_killed_still_releases_its_child(
    q: Queue, tmp_path: Path
) -> None:
    marker = tmp_path / "ran-once"
    # The first run hangs (its worker is killed under it); the rerun after the rescue is quick.
    q.run(
        "enqueue",
        "--id",
        "parent",
        "--command",
        f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; sleep 30",
    )
    q.run("enqueue", "--id", "child", "--after", "parent", "--command", "true")
    first = q.start_workers("--lease", "2")
    q.wait_for(marker.exists, what="the parent to start")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert (q.state("parent"), q.state("child")) == ("processing", "waiting")
    time.sleep(2.5)  # the dead worker's lease runs out
    # A new worker rescues it (a failed attempt, retried after its backoff), reruns it,
    # and the completion releases the child.
    q.start_workers("--lease", "2")
    q.wait_for(lambda: q.state("child") == "completed", timeout=60, what="the child to run")
    parent, child = _finished(q, ["parent", "child"])
    assert (parent["state"], parent["attempts"]) == ("completed", 2)
    assert child["state"] == "completed"
    assert q.run("check").returncode == 0
