"""Schedules through the real command and real worker processes, on both stores
(QUEUECTL_TEST_STORE). The rules themselves (daylight-saving days, month ends, leap
days, a moved clock) are tested in Rust with an injected clock."""

from __future__ import annotations

import json
import re
import time

from conftest import Queue


def test_add_list_show_next_pause_resume_remove(q: Queue) -> None:
    added = q.run(
        "schedule", "add", "nightly", "--cron", "30 2 * * *", "--tz", "Europe/Berlin",
        "--command", "./backup.sh", "--queue", "ops", "--max-retries", "1",
    )  # fmt: skip
    assert re.fullmatch(
        r"schedule nightly: next at \S+T01:30:00\.000Z \(\S+T02:30:00\+01:00 Europe/Berlin\)\n",
        added.stdout,
    ), added.stdout
    spec = json.dumps({"command": "echo hi", "priority": 3})
    tick = q.json("schedule", "add", "tick", "--cron", "@every 10m", "--overlap", "allow", spec)
    assert (tick["cron"], tick["tz"], tick["overlap"], tick["fired"]) == (
        "@every 10m",
        "UTC",
        "allow",
        0,
    )
    assert tick["job"]["priority"] == 3 and tick["job"]["max_retries"] == 3  # from the config
    listed = q.json("schedule", "list")
    assert [s["name"] for s in listed] == ["nightly", "tick"]
    assert listed[0]["job"]["queue"] == "ops" and listed[0]["job"]["max_retries"] == 1
    shown = q.json("schedule", "show", "nightly")
    assert len(shown["next"]) == 5 and all(t.endswith("T01:30:00.000Z") for t in shown["next"])
    nexts = q.json("schedule", "next", "tick", "--count", "3")
    minutes = [n["at"][14:16] for n in nexts]
    assert all(m in ("00", "10", "20", "30", "40", "50") for m in minutes), nexts
    assert q.json("schedule", "pause", "tick") == {"schedule": "tick", "paused": True}
    assert q.json("schedule", "show", "tick")["paused"] is True
    table = q.run("schedule", "list").stdout
    assert re.search(r"^tick\s+@every 10m\s+UTC\s+paused", table, re.M), table
    q.run("schedule", "resume", "tick")
    assert q.json("schedule", "show", "tick")["paused"] is False
    assert q.run("schedule", "remove", "tick").stdout == "schedule tick: removed\n"
    assert [s["name"] for s in q.json("schedule", "list")] == ["nightly"]


def test_bad_schedules_are_one_line_errors_that_change_nothing(q: Queue) -> None:
    q.run("schedule", "add", "kept", "--cron", "@daily", "--command", "true")
    for args, says in (
        (["add", "x", "--cron", "* * *", "-c", "true"], "5 fields"),
        (["add", "x", "--cron", "61 * * * *", "-c", "true"], "cron"),
        (["add", "x", "--cron", "@every 0s", "-c", "true"], "@every"),
        (["add", "x", "--cron", "@daily", "--tz", "Mars/Olympus", "-c", "true"], "time-zone"),
        (["add", "bad name", "--cron", "@daily", "-c", "true"], "schedule name"),
        (["add", "kept", "--cron", "@daily", "-c", "true"], "exists"),
        (["add", "x", "--cron", "@daily", json.dumps({"command": "true", "id": "a"})], "'id'"),
        (
            ["add", "x", "--cron", "@daily", json.dumps({"command": "true", "after": "a"})],
            "'after'",
        ),
        (["add", "x", "--cron", "@daily"], "--command CMD or as JSON"),
        (["show", "nope"], "no schedule named"),
        (["pause", "nope"], "no schedule named"),
        (["remove", "nope"], "no schedule named"),
    ):
        r = q.run("schedule", *args, check=False)
        assert r.returncode in (1, 2), args
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert says in r.stderr, (args, r.stderr)
    assert [s["name"] for s in q.json("schedule", "list")] == ["kept"]
    assert q.json("list") == []


def test_three_worker_processes_enqueue_each_occurrence_once(q: Queue) -> None:
    q.run("schedule", "add", "tick", "--cron", "@every 1s", "--overlap", "allow", "-c", "true")
    workers = [q.start_workers() for _ in range(3)]
    time.sleep(6)
    for w in workers:
        w.terminate()
    fired_lines = []
    for w in workers:
        _, err = w.communicate(timeout=30)
        fired_lines += [line for line in err.splitlines() if "schedule tick fired" in line]
    jobs = sorted(j["id"] for j in q.json("list"))
    s = q.json("schedule", "show", "tick")
    # Every firing, by whichever process, enqueued a job of its own occurrence, once.
    assert len(jobs) >= 4, jobs
    assert len(fired_lines) == len(jobs) == s["fired"], (fired_lines, jobs)
    assert len(set(jobs)) == len(jobs)
    assert all(re.fullmatch(r"tick-\d{8}T\d{6}Z", j) for j in jobs), jobs


def test_overlap_skip_keeps_one_job_unfinished_and_counts_the_skips(q: Queue) -> None:
    q.run("schedule", "add", "slow", "--cron", "@every 1s", "-c", "sleep 4")
    q.start_workers("--count", "2", "--quiet")
    q.wait_for(lambda: q.json("schedule", "show", "slow")["skipped"] >= 2, timeout=20, what="skips")
    s = q.json("schedule", "show", "slow")
    unfinished = [j for j in q.json("list") if j["state"] not in ("completed", "dead", "cancelled")]
    assert s["fired"] == 1 and len(unfinished) == 1, (s, unfinished)
    assert s["last_job_state"] == "processing"
