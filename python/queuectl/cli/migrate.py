"""`queuectl migrate`: move a queue between SQLite and PostgreSQL, either way."""

from __future__ import annotations

import click

from queuectl.cli.app import App


@click.command(
    epilog="\b\nExamples:\n"
    "  queuectl migrate --to postgresql://queuectl@db.example.com/queuectl\n"
    "  queuectl --db postgresql://queuectl@db.example.com/queuectl migrate --to qctl.db"
)
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
    report = app.queue.migrate_to(target)
    click.echo(
        f"copied {report.jobs} jobs, {report.attempts} earlier attempts and {report.config} "
        f"config values from {report.source} to {report.target}"
    )
    click.echo(f"point queuectl at it with --db or QUEUECTL_DB; {report.source} is unchanged")
