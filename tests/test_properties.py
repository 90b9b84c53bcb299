"""Property-based tests: arbitrary input to the enqueue parser, the flag form and config
values gives a clear error or a safe job; never a crash, never a file outside logs/."""

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
