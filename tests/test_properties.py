"""Property-based tests: arbitrary input to the enqueue parser, the flag form and config
values gives a clear error or a safe job; never a crash, never a file outside logs/. And
every command that takes text (each flag with a value of enqueue, schedule add, config,
queue, list and dlq list, the by-id commands, the durations of purge, wait and worker stop),
given arbitrary text: exit 0, 1 or 2, an error in one line with no control character, and
a refused input leaves the queue's database exactly as it was."""

from __future__ import annotations

import contextlib
import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queuectl import InputError, QueuectlError, _core, config
from queuectl.cli import main
from queuectl.duration import parse_seconds

pytestmark = pytest.mark.store_independent

FIELDS = [
    "id",
    "command",
    "max_retries",
    "priority",
    "run_at",
    "timeout",
    "cwd",
    "state",
    "attempts",
    "created_at",
    "updated_at",
    "colour",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
hostile_ids = st.sampled_from(
    [
        "../../x",
        "a/b",
        "C:\\x",
        "..",
        ".",
        "/etc/passwd",
        "x\x00y",
        "x" * 10_000,
        "é漢字🙂",
        "'; DROP TABLE jobs; --",
        "$(touch pwned)",
        "CON",
        "nul.txt",
    ]
) | st.text(min_size=1, max_size=300)

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def store(tmp_path: Path) -> _core.Store:
    return _core.Store(str(tmp_path / "q.db"))


def enqueue(store: _core.Store, text: str, batch: bool = False) -> list[str]:
    """The ids added (enqueue_json also returns the lines skipped for their unique key)."""
    ids, _skipped = store.enqueue_json(text, batch=batch, max_retries=3, timeout_ms=0, cwd="/tmp")
    return ids


@SETTINGS
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6))
def test_any_object_is_a_job_or_an_input_error(store: _core.Store, spec: dict[str, Any]) -> None:
    try:
        (job_id,) = enqueue(store, json.dumps(spec))
    except (InputError, _core.DuplicateJobError):
        return
    job = store.get(job_id)
    assert job.command.strip() and job.state == "pending" and job.attempts == 0


@SETTINGS
@given(st.text(max_size=200))
def test_any_text_is_a_job_or_an_input_error(store: _core.Store, text: str) -> None:
    for batch in (False, True):
        with contextlib.suppress(InputError, _core.DuplicateJobError):
            enqueue(store, text, batch)


@SETTINGS
@given(hostile_ids)
def test_any_id_is_rejected_or_logs_inside_the_logs_folder(
    store: _core.Store, tmp_path: Path, job_id: str
) -> None:
    try:
        enqueue(store, json.dumps({"id": job_id, "command": "true"}))
    except (InputError, _core.DuplicateJobError) as e:
        assert "id" in str(e)
        return
    logs = tmp_path / "logs"
    path = _core.log_path(str(logs), job_id)
    assert path.parent == logs and not path.name.startswith(".")
    assert store.get(job_id).id == job_id


@SETTINGS
@given(
    st.sampled_from([*list(config.KEYS), "max_retries", "BACKOFF_BASE", "colour"]),
    st.text(max_size=30),
)
def test_config_values_are_normalized_or_rejected(key: str, value: str) -> None:
    try:
        name, stored = config.normalize(key, value)
    except InputError as e:
        assert "allowed" in str(e) or "invalid value" in str(e)
        return
    assert config.normalize(name, stored) == (name, stored), "normalizing must be stable"


@SETTINGS
@given(st.text(alphabet=string.printable, max_size=12))
def test_durations_parse_or_raise_value_error(text: str) -> None:
    try:
        seconds = parse_seconds(text)
    except ValueError:
        return
    assert 0 <= seconds <= 1e12


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    command=st.text(max_size=40),
    job_id=hostile_ids,
    priority=st.text(max_size=6),
    delay=st.text(alphabet=string.printable, max_size=6),
)
def test_flag_form_exits_0_1_or_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    job_id: str,
    priority: str,
    delay: str,
) -> None:
    argv = [
        "--home",
        str(tmp_path / "home"),
        "enqueue",
        "--command",
        command,
        "--id",
        job_id,
        "--priority",
        priority,
        "--delay",
        delay,
    ]
    if "\x00" in "".join(argv):
        return  # a NUL cannot be passed in a real argv
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    _out, err = capsys.readouterr()
    assert exit_info.value.code in (0, 1, 2)
    if exit_info.value.code:
        assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not isinstance(exit_info.value.__context__, QueuectlError) or exit_info.value.code == 1


# Every command that takes text from the user, every flag of it that takes a value, fed
# arbitrary text (and bytes that are not UTF-8, which a shell passes as `$'\xff'` and Python
# holds as lone surrogates): exit 0, 1 or 2, one line on stderr for an error, and a rejected
# input leaves the store exactly as it was.

argv_text = st.text(
    alphabet=st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=16
)
not_utf8 = st.sampled_from(["\udcff", "x\udc80y", "echo \udce9t\udce9"])
odd_values = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1",
        "1e999",
        "nan",
        "99999999999999999999",
        "10m",
        "0.00001",
        "2026-02-30T00:00Z",
        "0000-01-01T00:00+01:00",
        "@every 0s",
        "*/0 * * * *",
        "0 0 31 2 *",
        "Europe/Berlin",
        "../../../etc/passwd",
        "default",
        "a\nb",
        "\x1b[31mred",
        "--help",
        "@/nonexistent",
        "x" * 300,
    ]
)
values = argv_text | odd_values | not_utf8
json_text = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5).map(json.dumps)


def dump(home: Path) -> list[str]:
    """Every row of every table of the queue, as SQL: what a rejected input must not change."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(home / "qctl.db")) as conn:
        return list(conn.iterdump())


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A queue with something of everything for the commands to act on."""
    home = tmp_path / "home"
    for argv in (
        ["enqueue", "--id", "fixture-a", "--command", "true", "--queue", "images"],
        ["enqueue", "--id", "fixture-b", "--command", "false", "--after", "fixture-a"],
        ["queue", "pause", "images"],
        ["queue", "limit", "emails", "2"],
        ["config", "set", "max-retries", "5"],
        ["schedule", "add", "nightly", "--cron", "0 2 * * *", "--command", "./backup.sh"],
    ):
        with pytest.raises(SystemExit) as done:
            main(["--home", str(home), *argv])
        assert done.value.code == 0, capsys.readouterr().err
    capsys.readouterr()
    return home


def flags(draw: st.DrawFn, names: list[str]) -> list[str]:
    """Some of `names`, each with an arbitrary value."""
    chosen = draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True))
    return [part for name in chosen for part in (name, draw(values))]


ENQUEUE_FLAGS = [
    "--id",
    "--priority",
    "--max-retries",
    "--timeout",
    "--run-at",
    "--delay",
    "--env",
    "--queue",
    "--unique-key",
    "--after",
]
SCHEDULE_FLAGS = [
    "--tz",
    "--overlap",
    "--priority",
    "--max-retries",
    "--timeout",
    "--env",
    "--queue",
    "--unique-key",
]


@st.composite
def enqueue_flags(draw: st.DrawFn) -> list[str]:
    return ["enqueue", "--command", draw(values), *flags(draw, ENQUEUE_FLAGS)]


@st.composite
def enqueue_json(draw: st.DrawFn) -> list[str]:
    return ["enqueue", draw(json_text | values.filter(lambda v: v != "-"))]


@st.composite
def schedule_add(draw: st.DrawFn) -> list[str]:
    name = draw(values | st.just("nightly"))
    cron = draw(values | st.sampled_from(["@daily", "0 2 * * *", "@every 10m"]))
    job = draw(st.one_of(st.just(["--command", draw(values)]), json_text.map(lambda j: [j])))
    more = flags(draw, SCHEDULE_FLAGS) if job[0] == "--command" else []
    return ["schedule", "add", name, "--cron", cron, *job, *more]


@st.composite
def schedule_verbs(draw: st.DrawFn) -> list[str]:
    verb = draw(st.sampled_from(["show", "next", "pause", "resume", "remove"]))
    extra = ["--count", draw(values)] if verb == "next" and draw(st.booleans()) else []
    return ["schedule", verb, draw(values | st.just("nightly")), *extra]


@st.composite
def config_commands(draw: st.DrawFn) -> list[str]:
    key = draw(values | st.sampled_from(list(config.KEYS)))
    if draw(st.booleans()):
        return ["config", "get", key]
    return ["config", "set", key, draw(values)]


@st.composite
def queue_commands(draw: st.DrawFn) -> list[str]:
    names = draw(st.lists(values | st.sampled_from(["images", "emails"]), min_size=1, max_size=3))
    verb = draw(st.sampled_from(["pause", "resume", "limit"]))
    if verb == "limit":
        return ["queue", "limit", names[0], draw(values)]
    return ["queue", verb, *names]


@st.composite
def list_filters(draw: st.DrawFn) -> list[str]:
    if draw(st.booleans()):
        return ["dlq", "list", "--limit", draw(values)]
    return ["list", *flags(draw, ["--state", "--queue", "--limit"])]


@st.composite
def by_id(draw: st.DrawFn) -> list[str]:
    verb = draw(st.sampled_from(["show", "explain", "logs", "retry", "cancel", "delete"]))
    ids = draw(st.lists(values, min_size=1, max_size=3))
    return [verb, *ids]


@st.composite
def durations(draw: st.DrawFn) -> list[str]:
    which = draw(st.sampled_from(["purge", "wait", "worker stop"]))
    if which == "purge":
        return ["purge", "--completed", "--older-than", draw(values)]
    if which == "wait":
        # An id no job has: a wait on a real unfinished job would last its --timeout.
        job_id = draw(values.filter(lambda v: not v.startswith("fixture")))
        return ["wait", job_id, "--timeout", draw(values)]
    return ["worker", "stop", "--no-wait", *flags(draw, ["--host", "--id", "--timeout"])]


CLI_INPUTS = {
    "enqueue --command and its flags": enqueue_flags(),
    "enqueue JSON": enqueue_json(),
    "schedule add": schedule_add(),
    "schedule show/next/pause/resume/remove": schedule_verbs(),
    "config get/set": config_commands(),
    "queue pause/resume/limit": queue_commands(),
    "list and dlq list filters": list_filters(),
    "show/explain/logs/retry/cancel/delete": by_id(),
    "purge, wait and worker stop durations": durations(),
}


def run_cli(home: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["--home", str(home), *argv])
    _out, err = capsys.readouterr()
    code = exit_info.value.code
    assert isinstance(code, int), code
    return code, err


def check_answer(code: int, err: str, argv: list[str]) -> None:
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code:
        assert err.startswith("Error: ") and err.endswith("\n"), (argv, err)
        line = err[:-1]
        assert not any(c < " " or "\x7f" <= c < "\xa0" for c in line), (argv, err)


@pytest.mark.parametrize("strategy", list(CLI_INPUTS.values()), ids=list(CLI_INPUTS))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_cli_input_is_accepted_or_refused_in_one_line_changing_nothing(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    strategy: st.SearchStrategy[list[str]],
    data: st.DataObject,
) -> None:
    argv = data.draw(strategy, label="argv")
    before = dump(home)
    code, err = run_cli(home, argv, capsys)
    check_answer(code, err, argv)
    if code:
        assert dump(home) == before, f"{argv} was refused ({err.strip()}) but changed the store"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200) | json_text.map(lambda j: j + "\n" + j))
def test_enqueue_file_is_all_or_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    before = dump(home)
    code, err = run_cli(home, ["enqueue", "--file", str(path)], capsys)
    check_answer(code, err, ["enqueue", "--file", text])
    if code:
        assert dump(home) == before, f"--file {text!r} was refused ({err.strip()}) but wrote"
