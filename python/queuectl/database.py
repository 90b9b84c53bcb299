"""A queue's database as a whole: copied to the other kind of store (`queuectl migrate`,
`Queue.migrate_to`), backed up to a SQLite file (`Queue.backup`) and checked
(`Queue.check`), with the reports of each.

Cheap to import (the API imports it at every start): nothing beyond the extension.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

from queuectl import InputError, _core
from queuectl.text import shown_location

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BackupReport", "CheckReport", "MigrateReport", "backup", "check", "migrate"]


class MigrateReport(NamedTuple):
    """What `Queue.migrate_to` copied; `source` and `target` are safe to show (a URL's
    password is redacted)."""

    source: str
    target: str
    jobs: int
    attempts: int
    config: int


class BackupReport(NamedTuple):
    """What `Queue.backup` wrote: counts of what the copy holds, and how many jobs running
    at that moment are pending in it."""

    path: str
    jobs: int
    attempts: int
    config: int
    requeued: int


class CheckReport(NamedTuple):
    """The schema version (None when the queue could not be read) and one line per
    problem found; no problems means the queue is sound."""

    schema_version: int | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _is_url(location: str) -> bool:
    return "://" in location


def _is_postgres(location: str) -> bool:
    return _core.is_postgres_location(location)


def migrate(source: str, target: str, running_workers: Callable[[], int]) -> MigrateReport:
    """Copies the queue at `source` into `target`, the other kind of store (see
    Queue.migrate_to); `running_workers` counts the workers still using `source`, asked
    once both locations are known good (it opens the store)."""
    if _is_postgres(source):
        if _is_url(target):
            raise InputError(
                "from PostgreSQL, --to must be a SQLite file path, "
                f"got {_core.redact_location(target)!r}"
            )
    else:
        if _is_url(source):
            raise InputError(f"unsupported database URL {_core.redact_location(source)!r}")
        if not _is_postgres(target):
            raise InputError(
                f"from a SQLite file, --to must be a postgresql:// URL, got {target!r}"
            )
        if not os.path.exists(source):
            raise InputError(f"there is no queue at {source} to copy")
    running = running_workers()
    if running:
        raise InputError(
            f"{running} worker(s) still use {shown_location(source)}: "
            "stop them first (queuectl worker stop)"
        )
    try:
        if _is_postgres(source):
            jobs, attempts, config = _core.copy_postgres_to_sqlite(source, target)
        else:
            jobs, attempts, config = _core.copy_sqlite_to_postgres(source, target)
    except _core.DuplicateJobError as e:
        raise _core.DuplicateJobError(f"{e} in the target; nothing was copied") from None
    return MigrateReport(shown_location(source), shown_location(target), jobs, attempts, config)


def backup(source: str, path: str | os.PathLike[str]) -> BackupReport:
    """Writes a copy of the queue at `source` to the new SQLite file `path` (see
    Queue.backup)."""
    if not _is_url(source) and not os.path.exists(source):
        raise InputError(f"there is no queue at {source} to back up")
    target = os.fspath(path)
    if _is_url(target):
        raise InputError(f"PATH must be a file to create, got {target!r}")
    counts = _core.backup(source, target)
    return BackupReport(
        target, counts["jobs"], counts["attempts"], counts["config"], counts["requeued"]
    )


def check(location: str) -> CheckReport:
    """The checks of the queue at `location`, which is not created (see Queue.check)."""
    if not _is_url(location) and not os.path.exists(location):
        return CheckReport(None, [f"there is no queue at {location}"])
    version, problems = _core.check(location)
    return CheckReport(version, problems)
