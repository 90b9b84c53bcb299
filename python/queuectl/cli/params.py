"""Parameter types shared by several commands."""

from __future__ import annotations

from typing import Any

import click

from queuectl import flow
from queuectl.duration import parse_seconds


class Duration(click.ParamType):  # type: ignore[type-arg]
    """Seconds, or a number with s, m, h or d."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_seconds(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


#: The largest count or limit the command line takes: the stores keep one as a signed
#: 64-bit integer (a larger number used to reach the core and fail with OverflowError).
MAX_COUNT = 2**63 - 1


def count() -> click.IntRange:
    """A whole number from 0 to MAX_COUNT."""
    return click.IntRange(min=0, max=MAX_COUNT)


class _FlowText(click.ParamType):  # type: ignore[type-arg]
    """Text read by one of queuectl.flow's readers; its ValueError is a usage error."""

    def read(self, text: str) -> Any:
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.read(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


class RateText(_FlowText):
    """N/PERIOD (10/s, 100/1m, 5/1h), or none."""

    name = "rate"

    def read(self, text: str) -> flow.Rate:
        return flow.parse_rate(text)


class ExitCodes(_FlowText):
    """Exit codes 0 to 255, comma-separated (and `timeout`, with `timeout=True`)."""

    name = "codes"

    def __init__(self, timeout: bool = False) -> None:
        self.timeout = timeout

    def read(self, text: str) -> list[int | str]:
        return flow.exit_codes(text, timeout=self.timeout)


class Delays(_FlowText):
    """Durations, comma-separated: 10s,1m,5m (as seconds)."""

    name = "delays"

    def read(self, text: str) -> list[float]:
        return flow.delay_list(text)


class Expiry(_FlowText):
    """A duration from now (30m) or an ISO-8601 time, as an ISO-8601 time ahead of now."""

    name = "expiry"

    def read(self, text: str) -> str:
        return flow.expiry(text)
