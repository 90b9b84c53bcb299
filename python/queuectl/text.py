"""Values as a person reads them, for the CLI, the dashboard and the API's messages: a
duration (`span`) and a database location without its password (`shown_location`).

Cheap to import (the API imports it at every start): nothing beyond the extension.
"""

from __future__ import annotations

from queuectl import _core

__all__ = ["shown_location", "span"]


def span(ms: int) -> str:
    """A duration as a person reads it: 45s, 5m 3s, 2h 10m, 3d 4h."""
    s = max(0, round(ms / 1000))
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if s >= size:
            return f"{s // size}{unit} {s % size // subsize}{sub}"
    return f"{s // 60}m {s % 60}s" if s >= 60 else f"{s}s"


def shown_location(location: str) -> str:
    """A location as it may be shown: a URL without its password, a path as it is."""
    return _core.redact_location(location) if "://" in location else location
