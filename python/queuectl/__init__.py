"""queuectl: a background job queue for shell commands."""

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

__all__ = [
    "DuplicateJobError",
    "InputError",
    "JobNotFoundError",
    "JobStateError",
    "QueuectlError",
    "SchemaError",
    "StoreError",
    "__version__",
]
