"""Where a job's full log is: the file in this host's logs folder, or on the host of the
worker that ran the job last (`queuectl logs`, `Queue.log_location`).

Cheap to import (the API imports it at every start): nothing beyond the extension.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from queuectl import _core

if TYPE_CHECKING:
    from pathlib import Path

    from queuectl.api import Queue

__all__ = ["LogLocation", "locate"]


class LogLocation(NamedTuple):
    """Where the full log of a job is: `path` on `host`, which is this host when `local`.
    Every host's logs folder names a job's log the same way; the database keeps the tail
    of each finished attempt wherever the file is."""

    job: _core.Job
    path: Path
    host: str
    local: bool


def locate(queue: Queue, id: str) -> LogLocation:
    """The job `id` and where its full log lives (see Queue.log_location)."""
    from queuectl.supervisor import host_name

    job = queue.get(id)
    path = queue.log_path(id)
    here = host_name()
    hosts = {w.id: w.host for w in queue.store.workers(True)}
    ran_on = hosts.get(job.worker_id or "", here)
    return LogLocation(job=job, path=path, host=ran_on, local=ran_on == here)
