"""`queuectl migrate`: move a queue between SQLite and PostgreSQL, either way."""

from __future__ import annotations

import os

import click

from queuectl import InputError, _core
from queuectl.cli.app import App


def _is_postgres(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def _shown(location: str) -> str:
    return _core.redact_location(location) if "://" in location else location


@click.command()
@click.option(
    "--to",
    "target",
    required=True,
    metavar="PATH_OR_URL",
    help="Where to copy: a postgresql:// URL from a SQLite queue, a SQLite file from a "
    "PostgreSQL one.",
)
@click.pass_obj
def migrate(app: App, target: str) -> None:
    """Copy this queue's jobs, their history and config into the other kind of store.

    One transaction: everything is copied or nothing is. Jobs keep their ids, states,
    attempts and order; jobs already in the target stay, and an id in both refuses the
    copy. The source is left as it was. Stop the workers first.
    """
    from queuectl.supervisor import live_workers

    source = app.home.db
    if _is_postgres(source):
        if "://" in target:
            raise InputError(
                "from PostgreSQL, --to must be a SQLite file path, "
                f"got {_core.redact_location(target)!r}"
            )
    else:
        if "://" in source:
            raise InputError(f"unsupported database URL {_core.redact_location(source)!r}")
        if not _is_postgres(target):
            raise InputError(
                f"from a SQLite file, --to must be a postgresql:// URL, got {target!r}"
            )
        if not os.path.exists(source):
            raise InputError(f"there is no queue at {source} to copy")
    running = live_workers(app.store)
    if running:
        raise InputError(
            f"{len(running)} worker(s) still use {_shown(source)}: "
            "stop them first (queuectl worker stop)"
        )
    try:
        if _is_postgres(source):
            jobs, attempts, config = _core.copy_postgres_to_sqlite(source, target)
        else:
            jobs, attempts, config = _core.copy_sqlite_to_postgres(source, target)
    except _core.DuplicateJobError as e:
        raise _core.DuplicateJobError(f"{e} in the target; nothing was copied") from None
    shown_source = _shown(source)
    click.echo(
        f"copied {jobs} jobs, {attempts} earlier attempts and {config} config values "
        f"from {shown_source} to {_shown(target)}"
    )
    click.echo(f"point queuectl at it with --db or QUEUECTL_DB; {shown_source} is unchanged")
