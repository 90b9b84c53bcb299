"""Settings stored in the database and shared by every worker: the keys, their defaults
and checks as the core decides them (`_core.CONFIG_KEYS`, `_core.config_normalize`),
and the settings of one queue with defaults for keys never set.

Workers read `backoff-base`, `backoff-max`, `backoff-jitter` and `log-max-bytes` themselves
(at start and with every heartbeat); `max-retries` and `job-timeout` are copied into each job
at enqueue.
"""

from __future__ import annotations

from typing import NamedTuple

from queuectl import _core


class Key(NamedTuple):
    name: str
    default: str
    help: str


KEYS: dict[str, Key] = {name: Key(name, default, help) for name, default, help in _core.CONFIG_KEYS}


def canonical(key: str) -> str:
    """The stored name of `key` (hyphen and underscore spellings are the same key)."""
    return _core.config_key(key)


def normalize(key: str, value: str) -> tuple[str, str]:
    """The canonical key and the value as stored; InputError naming what is allowed."""
    return _core.config_normalize(key, value)


class Config:
    """The settings of one database, with defaults for keys never set."""

    def __init__(self, stored: list[tuple[str, str]]) -> None:
        self._values = {k.name: k.default for k in KEYS.values()}
        self._values.update((k, v) for k, v in stored if k in KEYS)

    def get(self, key: str) -> str:
        return self._values[canonical(key)]

    def items(self) -> list[tuple[str, str]]:
        return list(self._values.items())

    @property
    def max_retries(self) -> int:
        return int(self._values["max-retries"])

    @property
    def job_timeout_s(self) -> float:
        return float(self._values["job-timeout"])
