"""Flow control as people type it and read it (DESIGN.md section 13): a queue's rate
(`10/s`, `100/1m`), exit-code lists (`75,111`, `2,timeout`), retry delays (`10s,1m,5m`)
and an expiry (`30m` from now, or an ISO-8601 time), each read into what the job JSON and
the store take, with ValueError saying what is allowed; and a rate written back as text.

The store enforces every rule; these readers only turn text into values, and check the
bounds the command line must refuse before anything is opened (a usage error).
Cheap to import (the API imports it at every start): nothing beyond the extension.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from queuectl import InputError, _core
from queuectl.duration import parse_seconds

__all__ = [
    "MAX_JOB_SLOTS",
    "MAX_RATE_N",
    "MAX_RATE_PERIOD_S",
    "MAX_WORKER_SLOTS",
    "Rate",
    "delay_list",
    "duration_text",
    "exit_codes",
    "expiry",
    "parse_rate",
    "rate",
]

#: Most starts a rate allows in one period.
MAX_RATE_N = 1_000_000
#: The longest period of a rate: 30 days (the core's MAX_RATE_PERIOD_MS).
MAX_RATE_PERIOD_S = 30 * 86_400
#: Most slots one job needs (the core's MAX_SLOTS, rust/core/src/job.rs).
MAX_JOB_SLOTS = 1024
#: Most slots one worker process has.
MAX_WORKER_SLOTS = 65_536
#: The farthest expiry given in seconds from now (as far as a job's timeout may be).
MAX_EXPIRY_S = 1e12
#: The word that clears a rate (`queue rate Q none`).
NO_RATE = "none"


class Rate(NamedTuple):
    """At most `n` starts in any window of `period_ms` (n = 0: no rate)."""

    n: int
    period_ms: int

    @property
    def period_text(self) -> str:
        """The period as a duration: 1s, 1m, 90s, 1.5s."""
        return duration_text(self.period_ms)

    @property
    def text(self) -> str:
        """As `queue rate` takes it: 10/1s, 100/1m, 5/1h, 3/90s; `none` when there is none."""
        return f"{self.n}/{self.period_text}" if self.n else NO_RATE


def duration_text(ms: int) -> str:
    """A duration as `parse_seconds` reads it back, in its largest whole unit: 1s, 1m, 90s,
    1.5s, 2h, 1d (0s for none)."""
    for unit, size_ms in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size_ms == 0:
            return f"{ms // size_ms}{unit}"
    return f"{ms / 1000:g}s"


def parse_rate(text: str) -> Rate:
    """`N/PERIOD` (`10/s`, `100/1m`, `5/1h`, `3/90s`; a bare unit is one of it) as a Rate
    that `rate` accepts; `none` is Rate(0, 0). ValueError otherwise."""
    text = text.strip()
    if text.lower() == NO_RATE:
        return Rate(0, 0)
    count, sep, period = text.partition("/")
    usage = f"a rate is N/PERIOD (10/s, 100/1m, 5/1h) or {NO_RATE}, got {text!r}"
    if not sep or not (count.strip().isdigit() and count.isascii()):
        raise ValueError(usage)
    period = period.strip()
    if period in ("s", "m", "h", "d"):
        period = "1" + period
    try:
        seconds = parse_seconds(period)
    except ValueError:
        raise ValueError(usage) from None
    if int(count) == 0:
        raise ValueError(f"a rate's N must be from 1 to {MAX_RATE_N:,} (`{NO_RATE}` lifts it)")
    return rate(int(count), seconds)


def rate(n: int, period_s: float) -> Rate:
    """At most `n` starts per `period_s` seconds as a Rate: `n` from 1 to MAX_RATE_N (0
    is no rate, whatever the period) and the period above 0 and at most MAX_RATE_PERIOD_S.
    ValueError otherwise."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_RATE_N:
        raise ValueError(f"a rate's N must be a whole number from 1 to {MAX_RATE_N:,}, got {n!r}")
    if n == 0:
        return Rate(0, 0)
    if isinstance(period_s, bool) or not isinstance(period_s, (int, float)):
        raise ValueError(f"a rate's period must be a number of seconds, got {period_s!r}")
    period_ms = round(period_s * 1000) if math.isfinite(period_s) else 0
    if not 1 <= period_ms <= MAX_RATE_PERIOD_S * 1000:
        raise ValueError(
            f"a rate's period must be above 0 and at most {MAX_RATE_PERIOD_S // 86_400}d, "
            f"got {duration_text(period_ms) if math.isfinite(period_s) else period_s}"
        )
    return Rate(n, period_ms)


def exit_codes(text: str, timeout: bool = False) -> list[int | str]:
    """`75,111` as [75, 111]: exit codes 0 to 255, and with `timeout` also the word
    `timeout` (as `no_retry_on` takes it). ValueError otherwise."""
    allowed = "exit codes 0 to 255" + (" and timeout" if timeout else "")
    items: list[int | str] = []
    for part in text.split(","):
        part = part.strip()
        if timeout and part.lower() == "timeout":
            items.append("timeout")
        elif part.isdigit() and part.isascii() and int(part) <= 255:
            items.append(int(part))
        else:
            raise ValueError(f"{part!r} is not one of {allowed} (comma-separated)")
    return list(dict.fromkeys(items))


def delay_list(text: str) -> list[float]:
    """`10s,1m,5m` as seconds [10.0, 60.0, 300.0]: each a duration >= 0. ValueError
    otherwise (the store checks how many there may be)."""
    delays = []
    for part in text.split(","):
        try:
            delays.append(parse_seconds(part.strip()))
        except ValueError as e:
            raise ValueError(f"retry delay {part.strip()!r}: {e}") from None
    return delays


def expiry(value: str | float, now_ms: int | None = None) -> str:
    """When a job expires, as the ISO-8601 `expires_at` of its JSON: `value` is a duration
    from now (seconds, or text such as `30m`) or an ISO-8601 time, and must lie ahead of
    now. ValueError otherwise."""
    now = _core.now_ms() if now_ms is None else now_ms
    if isinstance(value, bool):
        raise ValueError(f"an expiry is a duration or an ISO-8601 time, got {value!r}")
    if isinstance(value, (int, float)):
        if not (math.isfinite(value) and abs(value) <= MAX_EXPIRY_S):
            raise ValueError(f"an expiry must be a finite number of seconds, got {value!r}")
        at_ms = now + round(value * 1000)
    else:
        try:
            at_ms = now + round(parse_seconds(value.strip()) * 1000)
        except ValueError:
            try:
                at_ms = _core.parse_time(value)
            except InputError:
                raise ValueError(
                    f"{value!r} is neither a duration (30m, 2h) nor an ISO-8601 time"
                ) from None
    if at_ms <= now:
        raise ValueError(f"an expiry must lie ahead of now, got {value!r}")
    return _core.format_time(at_ms)
