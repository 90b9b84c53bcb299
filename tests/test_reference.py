"""The reference pages are what the code says, and the job JSON Schema is what the core's
enqueue parser accepts.

`scripts/gen_reference.py --check` fails when a page under docs/reference/ differs from
what the code renders now (regenerate with `scripts/gen_reference.py`). The schema test
gives the same Hypothesis-drawn objects to `jsonschema` and to the real enqueue on a SQLite
file: both must accept, or both must reject, every one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queuectl import DuplicateJobError, InputError, _core

pytestmark = pytest.mark.store_independent

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "python" / "queuectl" / "job.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_reference_pages_are_current() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_metrics_carry_the_labels_their_table_names(tmp_path: Path) -> None:
    from queuectl import metrics
    from queuectl.api import Queue

    env = {"QUEUECTL_HOME": str(tmp_path)}
    run = functools.partial(subprocess.run, env={**os.environ, **env}, check=True, timeout=120)
    queuectl = [sys.executable, "-m", "queuectl"]
    run([*queuectl, "enqueue", "--command", "true", "--queue", "a"], capture_output=True)
    run([*queuectl, "enqueue", "--command", "exit 3", "--max-retries", "0"], capture_output=True)
    # A worker that stays, so the workers' gauge has a sample too.
    worker = subprocess.Popen(
        [*queuectl, "worker", "start"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        queue = Queue.open(home=str(tmp_path))
        deadline = time.monotonic() + 60
        while True:
            text = metrics.render(queue)
            ended = 'outcome="dead"} 1' in text and 'outcome="completed"} 1' in text
            if ended and "queuectl_workers{" in text:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    seen = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert metrics.FAMILIES[name].kind == kind
            continue
        if line.startswith("#"):
            continue
        sample = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? \S+", line)
        assert sample, line
        name, labels = sample[1], sample[2] or ""
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        family = metrics.FAMILIES[name if name in metrics.FAMILIES else base]
        keys = tuple(re.findall(r'(\w+)="', labels))
        expected = family.labels + (("le",) if name.endswith("_bucket") else ())
        assert keys == expected, line
        seen.add(family.name)
    assert seen == set(metrics.FAMILIES), "a run with a completed and a dead job shows every one"


def test_the_errors_table_says_what_each_exception_says() -> None:
    import queuectl

    page = (ROOT / "docs" / "reference" / "python-api.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| \w+ \| (.*) \|$", page, re.M))
    errors = [n for n in queuectl.__all__ if n.endswith("Error")]
    assert sorted(rows) == sorted(errors)
    for name in errors:
        cls = getattr(queuectl, name)
        assert f"| `{name}` | {cls.__mro__[1].__name__} | {cls.__doc__} |" in page


def test_the_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


# Each field's edges: values on both sides of every rule of the parser.
WS = " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_WS = "\x1c\x1f\u200b\ufeff"  # whitespace to Python or to JavaScript, not to Rust's trim
CONTROL = "\x00\x01\x1f\x7f\x80\x9f"
INTS = [0, 1, -1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64]
NUMBERS = [*INTS, 0.0, -0.0, 0.5, 3.0, 1e12, 1e12 + 1, 1000000000000.0002, -1e-9, 1e300]
OTHER_TYPES = [None, True, False, "", "1", [], [1], {}, {"a": 1}]
IDS = ["a", "job1", "é漢字🙂", "a" * 200, "é" * 200, "a" * 201, "", " ", "x\n", "\n", "x\x7f"]
IDS += ["x\x85", "x\x9f", "x\xa0", "x\x00", "a\u2028", "a=b", "../x"]
TIMES = [
    "2025-11-04T10:30:00Z",
    "2025-11-04",
    "2025-11-04t10:30",
    "2025-11-04 10:30:59.5",
    "2025-11-04T10:30:60",
    "2025-11-04T10:30:61",
    "2025-11-04T24:00",
    "2025-11-04T23:60",
    "2025-11-04T10:30:00,123456+01:00",
    "2025-11-04T10:30-0530",
    "2025-11-04T10:30+24:00",
    "2025-11-04T10:30+01:60",
    "2025-11-04T10:30+1",
    "2025-11-04T10:30:00.",
    "2025-11-04T10:30.5",
    "2025-11-04Z",
    "2025-11-04T10",
    "2025-11-04T10:3",
    "2025-11-04_10:30",
    "2025-11-04\xa010:30",
    "2024-02-29",
    "2023-02-29",
    "2000-02-29",
    "1900-02-29",
    "0000-02-29",
    "2025-04-31",
    "2025-12-31",
    "2025-13-01",
    "2025-00-10",
    "2025-01-00",
    "9999-12-31T23:59:59.999Z",
    " 2025-11-04 ",
    "\n2025-11-04\n",
    "\u30002025-11-04\u2028",
    "\x1c2025-11-04",
    "2025-11-04\ufeff",
    "2025-11-04T10:30:00Zx",
    "2025-11-04 UTC",
    "\uff12\uff10\uff12\uff15-11-04",
    "25-11-04",
    "soon",
    "",
]
# Times ahead of any test run (`expires_at` must lie ahead of now), with the edges of TIMES.
FUTURE_TIMES = [t.replace("2025", "2099").replace("2024", "2096") for t in TIMES]
EDGES: dict[str, list[Any]] = {
    "id": IDS,
    "command": ["true", "echo hi", "", "   ", *WS, *NOT_WS, "a\x00b", "\x00", " x "],
    "max_retries": NUMBERS,
    "priority": NUMBERS,
    "run_at": TIMES,
    "timeout": NUMBERS,
    "cwd": ["/tmp", "relative", " ", "", "a\x00", "C:\\x"],
    "env": [
        *({"A": "1"}, {"B_2": ""}, {"é": "\n"}, {" ": " "}, {}),
        *({"": "x"}, {"A=B": "x"}, {"N\x00": "x"}, {"A": "v\x00"}, {"A": 1}, {"A": None}),
    ],
    "queue": ["default", "q-1.x_y", "a" * 64, "a" * 65, "", "é", "a b", "q\n", "q/x", "Q.Z"],
    "unique_key": [*IDS, "k" * 255, "k" * 256],
    "after": [
        *IDS,
        *([], ["a"], ["a", "a"], ["a"] * 10_000),
        *([None], [1], ["a", ""], ["a\n"], ["a"] * 10_001, 1),
    ],
    "state": ["pending", "dead", "Pending", " pending"],
    "attempts": NUMBERS,
    "created_at": TIMES,
    "updated_at": TIMES,
    "key": [*IDS, "k" * 200, "é" * 201],
    "slots": [*NUMBERS, 1024, 1025],
    "retry_delays": [
        *([0], [1.5, 60], [0.0], [1e12], [1] * 100, [-1], [1e12 + 1], [1] * 101, ["1s"]),
        *([None], [True], 5),
    ],
    "retry_on": [[0], [75, 111], [255], [256], [-1], [3.0], ["75"], [1] * 256, [1] * 257],
    "no_retry_on": [[2], ["timeout"], [2, "timeout"], ["Timeout"], [256], ["timeout"] * 257],
    "expires_at": [*FUTURE_TIMES, "2020-01-01T00:00:00Z", "soon", "", 1],
    "colour": ["red", 1],
}
wild_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from(WS + NOT_WS + CONTROL),
    max_size=12,
)
numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False)
digits = st.integers(0, 99).map(lambda n: f"{n:02d}")
times = st.builds(
    lambda ws1, y, mo, d, sep, h, mi, sec, frac, zone, ws2: (
        f"{ws1}{y:04d}-{mo}-{d}"
        + (f"{sep}{h}:{mi}{sec}{frac if sec else ''}{zone}" if sep is not None else "")
        + ws2
    ),
    st.sampled_from(["", " ", "\n", "\u3000", "\x1c", "\ufeff"]),
    st.integers(0, 9999),
    digits,
    digits,
    st.none() | st.sampled_from(["T", "t", " ", "_"]),
    digits,
    digits,
    st.sampled_from(["", ":00", ":59", ":60", ":61", ":5", ":"]),
    st.sampled_from(["", ".5", ",123456", ".", ".x"]),
    st.sampled_from(["", "Z", "z", "+01:00", "-0530", "+24:00", "+01:60", "+1", "+01:0"]),
    st.sampled_from(["", " ", "\t", "x", "\u2028"]),
)
ids = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8) | wild_text
GENERIC: dict[str, st.SearchStrategy[Any]] = {
    "id": ids,
    "command": wild_text,
    "max_retries": numbers,
    "priority": numbers,
    "run_at": times | wild_text,
    "timeout": numbers,
    "cwd": wild_text,
    "env": st.dictionaries(wild_text, wild_text | st.integers() | st.none(), max_size=3),
    "queue": st.text(alphabet="abcXYZ019._- é\n/", max_size=70) | wild_text,
    "unique_key": ids,
    "after": ids | st.lists(ids | st.none() | st.integers(), max_size=4),
    "state": wild_text,
    "attempts": numbers,
    "created_at": times,
    "updated_at": times,
    "key": ids,
    "slots": numbers,
    "retry_delays": st.lists(numbers | wild_text | st.none(), max_size=4),
    "retry_on": st.lists(st.integers(-2, 300) | numbers | wild_text, max_size=4),
    "no_retry_on": st.lists(st.integers(-2, 300) | st.just("timeout") | wild_text, max_size=4),
    "expires_at": times | wild_text,
    "colour": wild_text,
}
FIELDS = {k: st.sampled_from(EDGES[k]) | GENERIC[k] | st.sampled_from(OTHER_TYPES) for k in EDGES}
# Values each field surely accepts, to surround the field under test with.
VALID: dict[str, st.SearchStrategy[Any]] = {
    "id": st.text(alphabet="abc-_.é", min_size=1, max_size=10),
    "max_retries": st.integers(0, 10),
    "priority": st.integers(-5, 5),
    "run_at": st.just("2025-11-04T10:30:00Z"),
    "timeout": st.integers(0, 60) | st.floats(0, 60),
    "cwd": st.just("/tmp"),
    "env": st.just({"A": "1"}),
    "queue": st.sampled_from(["default", "q-1.x_y"]),
    "unique_key": st.text(alphabet="kéy ", min_size=1, max_size=5),
    "state": st.just("pending"),
    "attempts": st.just(0),
    "created_at": st.just("2025-11-04T10:30:00Z"),
    "updated_at": st.just("2025-11-04 10:30"),
    "key": st.text(alphabet="kéy ", min_size=1, max_size=5),
    "slots": st.integers(1, 1024),
    "retry_delays": st.lists(st.integers(0, 600) | st.floats(0, 600), min_size=1, max_size=3),
    "retry_on": st.lists(st.integers(0, 255), min_size=1, max_size=3),
    "no_retry_on": st.lists(st.integers(0, 255) | st.just("timeout"), min_size=1, max_size=3),
    "expires_at": st.just("2099-11-04T10:30:00Z"),
}
# One field drawn from anything, the others from values they accept: each example shows
# whether that field's value passes.
job_objects = st.builds(
    lambda others, probe, command: {**dict(others), **command, probe[0]: probe[1]},
    st.lists(
        st.sampled_from(sorted(VALID)).flatmap(lambda k: st.tuples(st.just(k), VALID[k])),
        max_size=4,
        unique_by=lambda p: p[0],
    ),
    st.sampled_from(sorted(FIELDS)).flatmap(lambda k: st.tuples(st.just(k), FIELDS[k])),
    st.sampled_from([{}, {"command": "true"}, {"command": "true"}, {"command": "true"}]),
)


@pytest.fixture
def store(tmp_path: Path) -> _core.Store:
    return _core.Store(str(tmp_path / "q.db"))


def core_accepts(store: _core.Store, text: str, obj: Any) -> bool:
    """Whether enqueue's parser takes the object: a job added, or refused by the store for
    its id (taken by an earlier example), not by the parser."""
    after = obj.get("after") if isinstance(obj, dict) else None
    named = [after] if isinstance(after, str) else after if isinstance(after, list) else []
    for target in {t for t in named if isinstance(t, str)}:
        # The store wants the jobs named in `after` to exist: add the ones that are ids.
        with contextlib.suppress(InputError, DuplicateJobError):
            store.enqueue_json(
                json.dumps({"id": target, "command": "true"}),
                batch=False,
                max_retries=0,
                timeout_ms=0,
                cwd="/tmp",
            )
    try:
        store.enqueue_json(text, batch=False, max_retries=3, timeout_ms=0, cwd="/tmp")
    except DuplicateJobError:
        return True
    except InputError as e:
        assert "there is no job" not in str(e), e
        return False
    return True


def schema_accepts(text: str) -> bool:
    # Numbers read as the parser reads them: 3.0 and 3e0 are fractions, not integers.
    return VALIDATOR.is_valid(json.loads(text, parse_float=Decimal))


def has_expired(obj: Any) -> bool:
    """The rule of `expires_at` the schema cannot state: a time it accepts that has passed."""
    if not isinstance(obj, dict) or not isinstance(obj.get("expires_at"), str):
        return False
    try:
        return _core.parse_time(obj["expires_at"]) <= _core.now_ms()
    except InputError:
        return False


def runs_after_itself(obj: Any) -> bool:
    """The one rule of a single object the schema cannot state."""
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return False
    after = obj.get("after")
    return obj["id"] == after or (isinstance(after, list) and obj["id"] in after)


@pytest.mark.parametrize("field", sorted(EDGES))
def test_schema_and_enqueue_agree_on_every_edge(store: _core.Store, field: str) -> None:
    for value in [*EDGES[field], *OTHER_TYPES]:
        for obj in ({"command": "true", field: value}, {field: value}):
            text = json.dumps(obj)
            core = core_accepts(store, text, obj)
            if has_expired(obj):
                assert not core, text
                continue
            assert schema_accepts(text) == core, f"schema and enqueue disagree on {text}"


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(job_objects | st.sampled_from([[], "x", 1, None]))
def test_schema_and_enqueue_agree(store: _core.Store, obj: Any) -> None:
    text = json.dumps(obj)
    core = core_accepts(store, text, obj)
    if runs_after_itself(obj) or has_expired(obj):
        assert not core, text
        return
    assert schema_accepts(text) == core, f"schema and enqueue disagree on {text}"


@pytest.mark.parametrize(
    "text",
    [
        '{"command": "true", "max_retries": 3.0}',
        '{"command": "true", "priority": 1e2}',
        '{"command": "true", "attempts": 0.0}',
    ],
)
def test_integers_with_a_fraction_are_refused_as_the_schema_page_says(
    store: _core.Store, text: str
) -> None:
    assert not core_accepts(store, text, json.loads(text))
    assert not schema_accepts(text)
    assert VALIDATOR.is_valid(json.loads(text)), "JSON Schema's integer takes 3.0"


def test_a_timeout_one_step_above_the_maximum_is_refused(store: _core.Store) -> None:
    text = '{"command": "true", "timeout": 1000000000000.0001}'
    assert float("1000000000000.0001") > 1e12
    assert not schema_accepts(text)
    assert not core_accepts(store, text, json.loads(text))
