"""Durations as people type them: plain seconds, or a number with s, m, h or d (the
core's reading, `_core.parse_seconds`, with ValueError for the CLI's parameter types)."""

from __future__ import annotations

from queuectl import InputError, _core


def parse_seconds(text: str) -> float:
    """`30`, `1.5`, `30s`, `10m`, `2h`, `7d` as seconds; ValueError for anything else."""
    try:
        return _core.parse_seconds(text)
    except InputError as e:
        raise ValueError(str(e)) from None
