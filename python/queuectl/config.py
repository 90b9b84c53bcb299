"""Settings stored in the database and shared by every worker: keys, defaults, validation.

Workers read `backoff-base`, `backoff-max` and `log-max-bytes` themselves (at start and
with every heartbeat), with the defaults the core exports; `max-retries` and
`job-timeout` are copied into each job at enqueue.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

from queuectl import InputError, _core
from queuectl.duration import parse_seconds

# The keys the core reads itself take their defaults from it.
_CORE = _core.CORE_CONFIG_DEFAULTS


def _int_at_least_0(text: str) -> str:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError("must be a whole number >= 0") from None
    if value < 0 or value > 2**31:
        raise ValueError("must be a whole number >= 0")
    return str(value)


def _number_at_least_1(text: str) -> str:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError("must be a number >= 1") from None
    if not math.isfinite(value) or value < 1:
        raise ValueError("must be a number >= 1")
    return _plain(value)


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _bytes(text: str) -> str:
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = t[-1:] if t[-1:] in ("k", "m", "g") else ""
    try:
        value = int(t[: len(t) - len(unit)]) * _SIZE_UNITS[unit]
    except ValueError:
        raise ValueError("must be a whole number of bytes >= 0, or with K, M or G") from None
    if value < 0 or value > 2**50:
        raise ValueError("must be a whole number of bytes >= 0, or with K, M or G")
    return str(value)


def _seconds(text: str) -> str:
    return _plain(parse_seconds(text))


def _plain(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


class Key(NamedTuple):
    name: str
    default: str
    help: str
    normalize: Callable[[str], str]


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("max-retries", "3", "retries after the first run (whole number >= 0)", _int_at_least_0),
        Key(
            "backoff-base",
            _CORE["backoff-base"],
            "delay = base ^ attempts seconds (number >= 1)",
            _number_at_least_1,
        ),
        Key(
            "backoff-max",
            _CORE["backoff-max"],
            "longest retry delay (seconds, or 30s/10m/2h/1d)",
            _seconds,
        ),
        Key("job-timeout", "0", "default job timeout at enqueue (seconds; 0 = none)", _seconds),
        Key(
            "log-max-bytes",
            _CORE["log-max-bytes"],
            "newest output kept per attempt (bytes, K/M/G; 0 = all)",
            _bytes,
        ),
    )
}


def canonical(key: str) -> str:
    """The stored name of `key` (hyphen and underscore spellings are the same key)."""
    name = key.strip().lower().replace("_", "-")
    if name not in KEYS:
        allowed = ", ".join(KEYS)
        raise InputError(f"unknown config key {key!r} (allowed: {allowed})")
    return name


def normalize(key: str, value: str) -> tuple[str, str]:
    """The canonical key and the value as stored; InputError naming what is allowed."""
    name = canonical(key)
    try:
        return name, KEYS[name].normalize(value)
    except ValueError as e:
        raise InputError(f"invalid value {value!r} for {name}: {e}") from None


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
