"""Where a job's full log is: the file in this host's logs folder, or on the host of the
worker that ran the job last (`queuectl logs`, `Queue.log_location`).

Cheap to import (the API imports it at every start): nothing beyond the extension.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from queuectl import _core

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["LogLocation", "locate"]


class LogLocation(NamedTuple):
    """Where the full log of a job is: `path` on `host`, which is this host when `local`.
    Every host's logs folder names a job's log the same way; the database keeps the tail
    of each finished attempt wherever the file is."""

    job: _core.Job
    path: Path
    host: str
    local: bool


def locate(store: _core.Store, logs_dir: Path, id: str) -> LogLocation:
    """The job `id` of `store` and where its full log lives, `logs_dir` being this host's
    logs folder (see Queue.log_location)."""
    from queuectl.supervisor import host_name

    job = store.get(id)
    path = _core.log_path(str(logs_dir), id)
    here = host_name()
    hosts = {w.id: w.host for w in store.workers(True)}
    ran_on = hosts.get(job.worker_id or "", here)
    return LogLocation(job=job, path=path, host=ran_on, local=ran_on == here)
