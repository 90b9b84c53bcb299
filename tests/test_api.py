"""The Python API (`queuectl.Queue`) on real stores, next to the real `queuectl` command:
what one writes, the other reads."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import queuectl
from conftest import Queue as Cli
from queuectl import (
    DuplicateJobError,
    InputError,
    JobNotFoundError,
    JobStateError,
    QueuectlError,
)


@pytest.fixture
def api(q: Cli) -> Iterator[queuectl.Queue]:
    """The API on the same queue as the `q` command helper."""
    with queuectl.Queue.open(home=str(q.home), db=q.db or str(q.home / "qctl.db")) as queue:
        yield queue


@pytest.mark.store_independent
def test_import_queuectl_gives_queue_lazily() -> None:
    code = (
        "import sys, queuectl\n"
        "assert 'queuectl.api' not in sys.modules\n"
        "from queuectl import Queue\n"
        "assert queuectl.Queue is Queue and Queue.__module__ == 'queuectl.api'\n"
        "assert 'Queue' in queuectl.__all__\n"
        "assert all(hasattr(queuectl, name) for name in queuectl.__all__)\n"
        "try:\n"
        "    queuectl.Nope\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout == "module 'queuectl' has no attribute 'Nope'\n"


@pytest.mark.store_independent
def test_open_resolves_like_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_HOME", str(tmp_path / "from-env"))
    monkeypatch.delenv("QUEUECTL_DB", raising=False)
    queue = queuectl.Queue.open()
    assert queue.home.dir == tmp_path / "from-env"
    assert queue.home.db == str(tmp_path / "from-env" / "qctl.db")
    queue = queuectl.Queue.open(home=str(tmp_path / "flag"), db=str(tmp_path / "x.db"))
    assert (queue.home.dir, queue.home.db) == (tmp_path / "flag", str(tmp_path / "x.db"))
    assert not (tmp_path / "flag").exists()  # nothing is opened before it is needed
    monkeypatch.setenv("QUEUECTL_BUSY_TIMEOUT", "soon")
    with pytest.raises(InputError, match="QUEUECTL_BUSY_TIMEOUT must be seconds"):
        queue.counts()


def test_enqueue_json_and_the_command_form(
    api: queuectl.Queue, q: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert api.enqueue('{"id": "j1", "command": "echo one"}') == ["j1"]
    two = api.enqueue('{"command": "a"}\n\n{"command": "b"}\n', batch=True)
    assert len(two) == 2 and two == sorted(two)
    assert api.enqueue('[{"id": "arr", "command": "c"}]', batch=True) == ["arr"]
    assert (
        api.enqueue_command(
            "echo hi", id="c1", priority=5, max_retries=1, timeout_s=60, delay_s=3600
        )
        == "c1"
    )
    later = api.enqueue_command("true", run_at="2999-01-01T00:00:00Z")
    # The command sees what the API wrote.
    job = q.job("c1")
    assert (job["command"], job["priority"], job["max_retries"], job["timeout"]) == (
        "echo hi",
        5,
        1,
        60.0,
    )
    assert job["run_at"] > job["created_at"] and job["cwd"] == str(tmp_path)
    assert q.job(later)["run_at"].startswith("2999-01-01T00:00:00")
    assert [j.id for j in api.jobs()] == [j["id"] for j in q.json("list")]
    assert api.get("j1").command == "echo one" and api.get("j1").cwd == str(tmp_path)
    assert len(api.jobs(limit=2)) == 2 and api.counts()["pending"] == 6
    assert api.counts() == q.json("status")["jobs"]


BAD_SECOND_LINE = '{"command": "x"}\n{"command": "y", "priority": []}\n'


@pytest.mark.parametrize(
    ("call", "error", "needle"),
    [
        (lambda a: a.enqueue('{"command": ""}'), InputError, "'command'"),
        (lambda a: a.enqueue('{"command": "true"'), InputError, "invalid JSON"),
        (lambda a: a.enqueue(BAD_SECOND_LINE, batch=True), InputError, "line 2"),
        (lambda a: a.enqueue_command("x", run_at="tomorrow"), InputError, "ISO-8601"),
        (lambda a: a.enqueue_command("x", run_at="2999-01-01", delay_s=1), InputError, "not both"),
        (lambda a: a.enqueue_command("x", delay_s=-1), InputError, "delay_s"),
        (lambda a: a.enqueue_command("x", timeout_s=float("nan")), InputError, "timeout_s"),
        (lambda a: a.enqueue_command("x", max_retries=-1), InputError, "'max_retries'"),
        (lambda a: a.enqueue_command("x", id="a\nb"), InputError, "'id'"),
        (lambda a: a.enqueue_command("echo again", id="taken"), DuplicateJobError, "exists"),
    ],
)
def test_bad_enqueue_raises_and_writes_nothing(
    api: queuectl.Queue,
    call: Callable[[queuectl.Queue], object],
    error: type[Exception],
    needle: str,
) -> None:
    api.enqueue_command("echo first", id="taken")
    with pytest.raises(error, match=needle):
        call(api)
    assert [(j.id, j.command) for j in api.jobs()] == [("taken", "echo first")]


def test_config_defaults_are_applied_and_validated(api: queuectl.Queue, q: Cli) -> None:
    assert api.config_set("max_retries", 7) == ("max-retries", "7")
    assert api.config_set("job-timeout", "90s") == ("job-timeout", "90")
    a = api.get(api.enqueue_command("true"))
    assert (a.max_retries, a.timeout_ms) == (7, 90_000)
    b = api.get(api.enqueue('{"command": "true", "max_retries": 2, "timeout": 5}')[0])
    assert (b.max_retries, b.timeout_ms) == (2, 5_000)
    assert q.run("config", "get", "max-retries").stdout == "7\n"
    q.run("config", "set", "max-retries", "1")
    assert api.config_get("max_retries") == "1" and api.config().max_retries == 1
    assert api.get(api.enqueue_command("true")).max_retries == 1
    with pytest.raises(InputError, match=r"invalid value '0\.5' for backoff-base: must be"):
        api.config_set("backoff-base", 0.5)
    with pytest.raises(InputError, match="unknown config key 'colour'"):
        api.config_get("colour")
    assert api.config_get("backoff_base") == "2"
    assert dict(api.config().items()) == q.json("config", "list")


def test_purge_removes_the_jobs_and_their_log_files(api: queuectl.Queue, q: Cli) -> None:
    ok = api.enqueue_command("echo ok")
    dead = api.enqueue_command("echo bad; false", max_retries=0)
    pending = api.enqueue_command("true", run_at="2999-01-01T00:00:00Z")
    q.run("worker", "start", "--burst")
    assert api.log_path(ok).is_file() and api.log_path(dead).is_file()
    assert api.log_path(ok).parent == q.home / "logs"
    assert api.purge("completed", older_than_s=3600) == []
    assert api.log_path(ok).is_file()
    assert api.purge("completed") == [ok]
    assert not api.log_path(ok).exists() and api.log_path(dead).is_file()
    with pytest.raises(JobNotFoundError):
        api.get(ok)
    assert api.purge("dead", older_than_s=0) == [dead]
    assert list((q.home / "logs").iterdir()) == []
    with pytest.raises(InputError, match="only completed, dead or cancelled"):
        api.purge("pending")
    assert [j.id for j in api.jobs()] == [pending]


def test_retry_dead_is_all_or_nothing(api: queuectl.Queue, q: Cli) -> None:
    api.config_set("max-retries", "0")
    d1 = api.enqueue_command("echo one; exit 3", id="d1")
    d2 = api.enqueue_command("exit 4", id="d2")
    ok = api.enqueue_command("true", id="ok")
    q.run("worker", "start", "--burst")
    assert [j.id for j in api.jobs("dead")] == [d1, d2]
    with pytest.raises(JobNotFoundError, match='no job with id "nope"'):
        api.retry_dead([d1, "nope"])
    with pytest.raises(JobStateError, match=r'job "ok" is not in the DLQ \(it is completed\)'):
        api.retry_dead([d1, ok])
    assert [j.id for j in api.jobs("dead")] == [d1, d2]
    [attempt] = api.attempts(d1)
    assert (attempt.exit_code, attempt.output_tail) == (3, "one\n")
    assert api.retry_dead([d1]) == 1
    assert (api.get(d1).state, api.get(d1).attempts) == ("pending", 0)
    assert api.retry_dead(d2) == 1  # one id as a plain string
    q.run("worker", "start", "--burst")
    assert api.counts()["dead"] == 2
    assert api.retry_all_dead() == 2
    assert api.jobs("dead") == [] and api.retry_all_dead() == 0


def test_stop_workers_stops_a_real_worker(api: queuectl.Queue, q: Cli) -> None:
    proc = q.start_workers("--count", "2", "--quiet")
    q.wait_for(lambda: len(api.live_workers()) == 2, what="two workers")
    job = api.enqueue_command("sleep 60")
    q.wait_for(lambda: api.get(job).state == "processing", what="the job to start")
    busy = [s.worker.current_job for s in api.workers() if s.state == "busy"]
    assert busy == [job]
    assert api.stop_workers(host="some-other-host") == 0
    # A graceful stop waits for the running job: past the timeout it says so, and stands.
    with pytest.raises(QueuectlError, match=r"still running after 0\.5s; the stop request stands"):
        api.stop_workers(wait=True, timeout_s=0.5)
    q.wait_for(lambda: len(api.live_workers()) == 1, what="the idle worker to exit")
    assert [s.state for s in api.live_workers()] == ["stopping"] and proc.poll() is None
    assert api.stop_workers(force=True, wait=True, timeout_s=20) == 1
    assert proc.wait(timeout=20) == 0
    j = api.get(job)
    assert (j.state, j.attempts) == ("pending", 0)
    assert api.live_workers() == [] and api.workers() == []
    assert [s.state for s in api.workers(include_exited=True)] == ["exited", "exited"]
    assert api.stop_workers() == 0
    # Without wait it returns once the request is recorded.
    proc = q.start_workers("--quiet")
    q.wait_for(lambda: len(api.live_workers()) == 1, what="a worker")
    q.wait_for(lambda: api.get(job).state == "processing", what="the job to start again")
    assert api.stop_workers(force=True) == 1
    assert proc.wait(timeout=20) == 0
    assert api.get(job).state == "pending"


def test_log_location_names_the_host_that_ran_the_job(api: queuectl.Queue, q: Cli) -> None:
    here = api.enqueue_command("echo here")
    q.run("worker", "start", "--burst", "--quiet")
    loc = api.log_location(here)
    assert loc.local and loc.path == api.log_path(here) and "\nhere\n" in loc.path.read_text()
    assert loc.job.state == "completed"
    there = api.enqueue_command("echo there")
    q.env["QUEUECTL_HOST"] = "elsewhere"
    q.run("worker", "start", "--burst", "--quiet")
    loc = api.log_location(there)
    assert (loc.host, loc.local, loc.job.id) == ("elsewhere", False, there)
    with pytest.raises(JobNotFoundError):
        api.log_location("nope")


def test_check_and_backup(api: queuectl.Queue, q: Cli, tmp_path: Path) -> None:
    api.enqueue_command("true", id="one")
    report = api.check()
    assert report.ok and report.problems == [] and (report.schema_version or 0) >= 1
    copy = tmp_path / "copy.db"
    backed = api.backup(copy)
    assert (backed.path, backed.jobs, backed.requeued) == (str(copy), 1, 0)
    with pytest.raises(InputError, match="already exists"):
        api.backup(copy)
    with pytest.raises(InputError, match="PATH must be a file to create"):
        api.backup("postgresql://127.0.0.1/test")
    restored = queuectl.Queue.open(home=str(tmp_path / "restored"), db=str(copy))
    assert restored.check().ok and [j.id for j in restored.jobs()] == ["one"]
    missing = queuectl.Queue.open(home=str(tmp_path / "none"))
    assert missing.check() == (None, [f"there is no queue at {tmp_path / 'none' / 'qctl.db'}"])
    with pytest.raises(InputError, match=r"there is no queue at .* to back up"):
        missing.backup(tmp_path / "x.db")
    assert not (tmp_path / "none").exists() and not (tmp_path / "x.db").exists()


def test_migrate_to_refuses_before_anything_is_copied(
    api: queuectl.Queue, q: Cli, tmp_path: Path
) -> None:
    api.enqueue_command("true", id="keep")
    if q.db:
        wrong, right = "postgresql://127.0.0.1/test", str(tmp_path / "target.db")
        needle = "from PostgreSQL, --to must be a SQLite file path, got 'postgresql://"
    else:
        # Never contacted: each refusal comes before any connection.
        wrong, right = str(tmp_path / "target.db"), "postgresql://postgres@127.0.0.1:1/none"
        needle = "from a SQLite file, --to must be a postgresql:// URL, got '"
    with pytest.raises(InputError, match=needle):
        api.migrate_to(wrong)
    proc = q.start_workers("--quiet")
    q.wait_for(lambda: len(api.live_workers()) == 1, what="a worker")
    with pytest.raises(InputError, match=r"^1 worker\(s\) still use .*: stop them first"):
        api.migrate_to(right)
    assert api.stop_workers(wait=True, timeout_s=20) == 1
    proc.wait(timeout=20)
    assert not (tmp_path / "target.db").exists()
    missing = queuectl.Queue.open(home=str(tmp_path / "none"))
    with pytest.raises(InputError, match=r"there is no queue at .* to copy"):
        missing.migrate_to("postgresql://postgres@127.0.0.1:1/none")
    assert not (tmp_path / "none").exists()
    odd = queuectl.Queue.open(home=str(tmp_path / "odd"), db="mysql://u:secret@host/db")
    with pytest.raises(InputError, match="unsupported database URL") as e:
        odd.migrate_to("postgresql://postgres@127.0.0.1:1/none")
    assert "secret" not in str(e.value)
    assert [j.id for j in api.jobs()] == ["keep"]


@pytest.mark.postgres_only
def test_migrate_to_copies_once_and_refuses_a_duplicate_id(
    api: queuectl.Queue, q: Cli, tmp_path: Path
) -> None:
    assert q.db
    laptop = queuectl.Queue.open(home=str(tmp_path / "laptop"))
    laptop.config_set("max-retries", 0)
    laptop.enqueue_command("exit 4", id="dead")
    laptop.enqueue_command("true", id="done")
    Cli(tmp_path / "laptop").run("worker", "start", "--burst", "--quiet")
    report = laptop.migrate_to(q.db)
    assert report == (laptop.home.db, q.db, 2, 1, 1)
    assert [(j.id, j.state) for j in api.jobs()] == [("dead", "dead"), ("done", "completed")]
    assert api.config_get("max-retries") == "0"
    with pytest.raises(DuplicateJobError, match="in the target; nothing was copied"):
        laptop.migrate_to(q.db)
    assert len(api.jobs()) == 2
    # Back the other way, into a SQLite queue that already has one of the ids.
    back = queuectl.Queue.open(home=str(tmp_path / "back"))
    back.enqueue_command("echo mine", id="done")
    with pytest.raises(DuplicateJobError, match="in the target; nothing was copied"):
        api.migrate_to(back.home.db)
    assert [(j.id, j.command) for j in back.jobs()] == [("done", "echo mine")]
    fresh = tmp_path / "fresh.db"
    assert api.migrate_to(str(fresh)).jobs == 2
    assert queuectl.Queue.open(home=str(tmp_path / "f"), db=str(fresh)).check().ok
