"""Durations as people type them: plain seconds, or a number with s, m, h or d."""

from __future__ import annotations

import math
import re

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*")


def parse_seconds(text: str) -> float:
    """`30`, `1.5`, `30s`, `10m`, `2h`, `7d` as seconds; ValueError for anything else."""
    m = _PATTERN.fullmatch(text.lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration (use seconds, or a number with s, m, h or d)")
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(value) or value > 1e12:
        raise ValueError(f"{text!r} is too long a duration")
    return value
