"""queuectl: a background job queue for shell commands.

`queuectl.Queue` (from `queuectl.api`, imported on first use) is the queue as a Python
object; the exceptions below are what its operations and the CLI raise.
"""

from __future__ import annotations

from queuectl._core import (
    DuplicateJobError,
    InputError,
    JobNotFoundError,
    JobStateError,
    QueuectlError,
    SchemaError,
    StoreError,
    __version__,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from queuectl.api import Queue

__all__ = [
    "DuplicateJobError",
    "InputError",
    "JobNotFoundError",
    "JobStateError",
    "Queue",
    "QueuectlError",
    "SchemaError",
    "StoreError",
    "__version__",
]


def __getattr__(name: str) -> object:
    # `import queuectl` stays as cheap as the extension: the API (and with it pathlib,
    # the config keys and the home resolution) loads when `queuectl.Queue` is first used.
    if name == "Queue":
        from queuectl.api import Queue

        return Queue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
