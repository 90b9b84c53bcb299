"""Parameter types shared by several commands."""

from __future__ import annotations

from typing import Any

import click

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
