"""`queuectl migrate`: move a SQLite queue into PostgreSQL."""

from __future__ import annotations

import os

import click

from queuectl import InputError, _core
from queuectl.cli.app import App


@click.command()
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    help="The PostgreSQL database to copy into (postgresql://...).",
)
@click.pass_obj
def migrate(app: App, target: str) -> None:
    """Copy this SQLite queue's jobs, their history and config into PostgreSQL.

    One transaction: everything is copied or nothing is. Jobs keep their ids, states,
    attempts and order; the SQLite file is left as it was. Stop the workers first.
    """
    from queuectl.supervisor import live_workers

    source = app.home.db
    if "://" in source:
        raise InputError(f"the queue to copy must be a SQLite file; --db names {source!r}")
    if not target.startswith(("postgresql://", "postgres://")):
        raise InputError(f"--to must be a postgresql:// URL, got {target!r}")
    if not os.path.exists(source):
        raise InputError(f"there is no queue at {source} to copy")
    running = live_workers(app.store)
    if running:
        raise InputError(
            f"{len(running)} worker(s) still use {source}: stop them first (queuectl worker stop)"
        )
    try:
        jobs, attempts, config = _core.copy_sqlite_to_postgres(source, target)
    except _core.DuplicateJobError as e:
        raise _core.DuplicateJobError(f"{e} in the target; nothing was copied") from None
    click.echo(
        f"copied {jobs} jobs, {attempts} earlier attempts and {config} config values "
        f"from {source} to {_core.redact_location(target)}"
    )
    click.echo(f"point queuectl at it with --db or QUEUECTL_DB; {source} is unchanged")
