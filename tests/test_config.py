"""Config keys: spellings, validation, and nothing changed on error."""

from __future__ import annotations

import pytest

from conftest import Queue


def test_defaults_and_spellings(q: Queue) -> None:
    assert q.json("config", "list") == {
        "max-retries": "3",
        "backoff-base": "2",
        "backoff-max": "3600",
        "backoff-jitter": "0",
        "job-timeout": "0",
        "log-max-bytes": "10485760",
    }
    q.run("config", "set", "backoff_base", "1.5")
    assert q.run("config", "get", "backoff-base").stdout == "1.5\n"
    assert q.run("config", "get", "BACKOFF_BASE").stdout == "1.5\n"
    q.run("config", "set", "backoff-max", "10m")
    assert q.run("config", "get", "backoff_max").stdout == "600\n"
    q.run("config", "set", "log_max_bytes", "64KiB")
    assert q.run("config", "get", "log-max-bytes").stdout == "65536\n"


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("max-retries", "-1", ">= 0"),
        ("max-retries", "three", ">= 0"),
        ("backoff-base", "0.5", ">= 1"),
        ("backoff-base", "nan", ">= 1"),
        ("backoff-max", "forever", "duration"),
        ("job-timeout", "-5", "duration"),
        ("log-max-bytes", "lots", "bytes"),
        ("log-max-bytes", "-1", "bytes"),
        ("backoff-jitter", "-1", "from 0 to 1"),
        ("backoff-jitter", "1.5", "from 0 to 1"),
        ("backoff-jitter", "nan", "from 0 to 1"),
        ("colour", "red", "allowed: max-retries, backoff-base, backoff-max, backoff-jitter, job-t"),
    ],
)
def test_bad_values_change_nothing(q: Queue, key: str, value: str, needle: str) -> None:
    before = q.json("config", "list")
    r = q.run("config", "set", key, value, check=False)
    assert r.returncode == 1 and r.stderr.startswith("Error: ") and needle in r.stderr, r.stderr
    assert q.json("config", "list") == before


def test_unknown_key_on_get(q: Queue) -> None:
    r = q.run("config", "get", "nope", check=False)
    assert r.returncode == 1 and "unknown config key" in r.stderr
