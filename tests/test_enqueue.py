"""Enqueue in all three forms, and bad input that must change nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import Queue


def test_json_form_prints_the_id_and_stores_the_job(q: Queue) -> None:
    spec = {
        "id": "job1",
        "command": "sleep 2",
        "state": "pending",
        "attempts": 0,
        "max_retries": 3,
        "created_at": "2025-11-04T10:30:00Z",
        "updated_at": "2025-11-04T10:30:00Z",
    }
    assert q.run("enqueue", json.dumps(spec)).stdout == "job1\n"
    job = q.job("job1")
    assert (job["state"], job["attempts"], job["max_retries"], job["command"]) == (
        "pending",
        0,
        3,
        "sleep 2",
    )


def test_generated_ids_are_unique_and_sortable(q: Queue) -> None:
    ids = [q.enqueue("true") for _ in range(5)]
    assert len(set(ids)) == 5
    assert ids == sorted(ids)


def test_flag_form_file_form_and_stdin(q: Queue, tmp_path) -> None:
    out = q.run(
        "enqueue",
        "--command",
        "echo hi",
        "--id",
        "f1",
        "--priority",
        "5",
        "--max-retries",
        "1",
        "--timeout",
        "1m",
        "--delay",
        "1h",
    ).stdout
    assert out == "f1\n"
    job = q.job("f1")
    assert (job["priority"], job["max_retries"], job["timeout"]) == (5, 1, 60.0)
    assert job["run_at"] > job["created_at"]
    batch = tmp_path / "jobs.jsonl"
    batch.write_text('{"id":"b1","command":"true"}\n\n{"id":"b2","command":"true"}\n')
    assert q.run("enqueue", "--file", str(batch)).stdout == "enqueued 2 jobs\n"
    assert (
        q.run("enqueue", "--file", "-", input='[{"command":"a"},{"command":"b"}]').stdout
        == "enqueued 2 jobs\n"
    )
    single = tmp_path / "one.json"
    single.write_text('{"id":"at-file","command":"true"}')
    assert q.run("enqueue", f"@{single}").stdout == "at-file\n"
    assert (
        q.run("enqueue", "-", input='{"id":"from-stdin","command":"true"}').stdout == "from-stdin\n"
    )
    assert len(q.json("list")) == 7


def test_config_defaults_are_copied_at_enqueue(q: Queue) -> None:
    q.run("config", "set", "max_retries", "7")
    q.run("config", "set", "job-timeout", "90s")
    a = q.enqueue("true")
    q.run("config", "set", "max-retries", "1")
    assert (q.job(a)["max_retries"], q.job(a)["timeout"]) == (7, 90.0)
    assert q.job(q.enqueue("true"))["max_retries"] == 1


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ('{"command": "true"', "invalid JSON"),
        ('{"id": "x"}', "'command'"),
        ('{"command": ""}', "'command'"),
        ('{"command": "   "}', "'command'"),
        ('{"command": "true", "colour": "red"}', "unknown field 'colour'"),
        ('{"command": 5}', "'command'"),
        ('{"command": "true", "priority": "high"}', "'priority'"),
        ('{"command": "true", "max_retries": -1}', "'max_retries'"),
        ('{"command": "true", "max_retries": 1.5}', "'max_retries'"),
        ('{"command": "true", "timeout": "10"}', "'timeout'"),
        ('{"command": "true", "run_at": "tomorrow"}', "'run_at'"),
        ('{"command": "true", "state": "dead"}', "'state'"),
        ('{"command": "true", "id": ""}', "'id'"),
        ('{"command": "true", "id": "a\\nb"}', "'id'"),
        ('["true"]', "JSON object"),
    ],
)
def test_bad_input_is_one_line_exit_1_and_writes_nothing(q: Queue, spec: str, needle: str) -> None:
    r = q.run("enqueue", spec, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert q.json("list") == []


def test_duplicate_id_is_rejected_and_the_first_job_kept(q: Queue) -> None:
    q.enqueue("echo first", id="dup")
    r = q.run("enqueue", '{"id": "dup", "command": "echo second"}', check=False)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert q.job("dup")["command"] == "echo first"


def test_a_bad_line_fails_the_whole_batch(q: Queue) -> None:
    text = '{"command":"true"}\n{"command":"true"}\n{"command":"true","priority":[]}\n'
    r = q.run("enqueue", "--file", "-", input=text, check=False)
    assert r.returncode == 1 and "line 3" in r.stderr and "'priority'" in r.stderr
    q.enqueue("true", id="taken")
    r = q.run(
        "enqueue",
        "--file",
        "-",
        check=False,
        input='{"id":"new","command":"true"}\n{"id":"taken","command":"true"}\n',
    )
    assert r.returncode == 1 and "already exists" in r.stderr
    assert [j["id"] for j in q.json("list")] == ["taken"]


def test_usage_errors_exit_2(q: Queue) -> None:
    for args in (
        ["enqueue"],
        ["enqueue", "--command", "x", "--delay", "soon"],
        ["list", "--state", "bogus"],
        ["enqueue", '{"command":"x"}', "--priority", "1"],
        ["nosuchcommand"],
        ["purge"],
        ["dlq", "retry"],
    ):
        r = q.run(*args, check=False)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr


def test_unknown_job_is_exit_1(q: Queue) -> None:
    for args in (["show", "nope"], ["logs", "nope"], ["dlq", "retry", "nope"]):
        r = q.run(*args, check=False)
        assert r.returncode == 1 and "no job with id" in r.stderr, r.stderr


def test_database_is_owner_only(q: Queue) -> None:
    q.enqueue("true")
    assert stat.S_IMODE((q.home / "logs").stat().st_mode) == 0o700
    if not q.db:
        assert stat.S_IMODE((q.home / "qctl.db").stat().st_mode) == 0o600


def test_newer_schema_is_a_clear_error(q: Queue) -> None:
    q.enqueue("true", id="keep")
    q.sql("UPDATE queuectl_schema SET version = 99" if q.db else "PRAGMA user_version = 99")
    r = q.run("list", check=False)
    assert r.returncode == 1 and "schema version 99" in r.stderr and "upgrade" in r.stderr


def test_db_flag_and_env(q: Queue, tmp_path) -> None:
    other = tmp_path / "other.db"
    q.run("--db", str(other), "enqueue", '{"id":"elsewhere","command":"true"}')
    assert q.json("list") == []
    assert [j["id"] for j in q.json("--db", str(other), "list")] == ["elsewhere"]
    r = q.run("--db", str(tmp_path / "missing" / "x.db"), "list", check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_python_dash_m_is_the_same_program(q: Queue) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "queuectl", "--version"],
        capture_output=True,
        text=True,
        env=q.env,
        check=True,
    )
    assert r.stdout == q.run("--version").stdout
    assert r.stdout.startswith("queuectl ")


def test_a_large_batch_shows_progress_on_a_terminal_only(q: Queue, tmp_path) -> None:
    import pty

    from conftest import QUEUECTL

    batch = tmp_path / "big.jsonl"
    batch.write_text('{"command":"true"}\n' * 60_000)
    master, slave = pty.openpty()
    p = subprocess.Popen(
        [QUEUECTL, "enqueue", "--file", str(batch)],
        env=q.env,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert p.wait(timeout=60) == 0
    os.close(master)
    assert p.stdout is not None and p.stdout.read() == "enqueued 60000 jobs\n"
    assert b"enqueueing" in seen and b"100%" in seen
    # Not a terminal: no progress bar at all, stderr stays empty.
    r = q.run("enqueue", "--file", str(batch))
    assert r.stdout == "enqueued 60000 jobs\n" and r.stderr == ""


def test_a_bare_command_where_json_belongs_points_to_command(q: Queue) -> None:
    # Not JSON is an input error like any bad JSON (DESIGN section 5): exit 1, not 2.
    r = q.run("enqueue", "echo hi", check=False)
    assert r.returncode == 1, r.stderr
    assert r.stderr == (
        "Error: 'echo hi' is not a JSON job; to enqueue a shell command as it is, "
        "use --command 'echo hi'\n"
    )
    assert q.json("list") == []
