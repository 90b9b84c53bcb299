"""Unique jobs through the real command, on both stores: one unfinished job per key."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import QUEUECTL, Queue


def test_a_unique_key_adds_nothing_while_its_job_is_unfinished(q: Queue) -> None:
    first = q.run("enqueue", "--unique-key", "nightly", "--command", "exit 3")
    job_id = first.stdout.strip()
    assert first.stderr == ""
    again = q.run("enqueue", "--unique-key", "nightly", "--command", "echo other")
    assert again.returncode == 0 and again.stdout.strip() == job_id
    assert again.stderr.strip() == f"not added: job {job_id} has this unique_key and is unfinished"
    # The JSON form, and a failed job (waiting for its retry) still holds the key.
    q.run("config", "set", "backoff-max", "3600")
    q.run("worker", "start", "--burst")
    assert q.state(job_id) == "failed"
    spec = json.dumps({"command": "true", "unique_key": "nightly"})
    assert q.run("enqueue", spec).stdout.strip() == job_id
    assert q.job(job_id)["unique_key"] == "nightly"
    assert len(q.json("list")) == 1
    # Ended (here cancelled), it lets the next one in.
    q.run("cancel", job_id)
    fresh = q.run("enqueue", spec)
    assert fresh.stderr == "" and fresh.stdout.strip() != job_id
    assert len(q.json("list")) == 2


def test_a_batch_skips_and_counts_lines_whose_key_is_held(q: Queue, tmp_path: Path) -> None:
    held = q.enqueue("true", unique_key="a")
    lines = [
        {"id": "one", "command": "true", "unique_key": "a"},
        {"id": "two", "command": "true", "unique_key": "b"},
        {"id": "three", "command": "true", "unique_key": "b"},
        {"id": "four", "command": "true"},
    ]
    batch = tmp_path / "jobs.jsonl"
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    r = q.run("enqueue", "--file", str(batch))
    assert r.stdout.strip() == "enqueued 2 jobs; skipped 2 whose unique_key an unfinished job has"
    assert sorted(j["id"] for j in q.json("list")) == sorted([held, "two", "four"])


def test_bad_unique_keys_are_one_line_errors_that_add_nothing(q: Queue) -> None:
    for args in (
        ["enqueue", "--unique-key", "", "--command", "true"],
        ["enqueue", json.dumps({"command": "true", "unique_key": 5})],
        ["enqueue", json.dumps({"command": "true", "unique_key": "x" * 256})],
        ["enqueue", "--unique-key", "k", json.dumps({"command": "true"})],
    ):
        r = q.run(*args, check=False)
        assert r.returncode in (1, 2), args
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "unique" in r.stderr, r.stderr
    assert q.json("list") == []


def test_twenty_processes_enqueueing_one_key_at_once_add_one_job(q: Queue) -> None:
    q.run("status")  # create and migrate the queue first, as every host would find it
    procs = [
        subprocess.Popen(
            [QUEUECTL, "enqueue", "--unique-key", "deploy", "--command", f"echo {i}"],
            env=q.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(20)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    ids = {out.strip() for out, _ in results}
    jobs = q.json("list")
    assert len(jobs) == 1, jobs
    assert ids == {jobs[0]["id"]}
    notes = [err for _, err in results if err]
    assert len(notes) == 19 and all("not added" in n for n in notes), notes
