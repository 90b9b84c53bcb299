"""`queuectl check` and `queuectl backup`: is the queue sound, and a copy of it."""

from __future__ import annotations

import os

import click

from queuectl import InputError, _core
from queuectl.cli import render
from queuectl.cli.app import App


def _is_url(location: str) -> bool:
    return "://" in location


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def check(app: App, as_json: bool) -> int:
    """Check the queue: SQLite's integrity check, the schema version, and the queue's own
    invariants. Prints `ok` (exit 0) or one line per problem (exit 1)."""
    location = app.home.db
    if not _is_url(location) and not os.path.exists(location):
        version, problems = None, [f"there is no queue at {location}"]
    else:
        version, problems = _core.check(location)
    if as_json:
        render.emit_json({"ok": not problems, "problems": problems, "schema_version": version})
    elif problems:
        for line in problems:
            click.echo(line)
    else:
        click.echo("ok")
    return 1 if problems else 0


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_obj
def backup(app: App, path: str) -> None:
    """Write a consistent copy of the whole queue (jobs, history, config) to PATH, a new
    SQLite queue file readable by its owner only; workers may keep running. Never
    overwrites a file. Jobs running at the moment of the copy are pending in it."""
    source = app.home.db
    if not _is_url(source) and not os.path.exists(source):
        raise InputError(f"there is no queue at {source} to back up")
    if _is_url(path):
        raise InputError(f"PATH must be a file to create, got {path!r}")
    counts = _core.backup(source, path)
    click.echo(
        f"backed up {counts['jobs']} jobs, {counts['attempts']} earlier attempts and "
        f"{counts['config']} config values to {path}"
    )
    if counts["requeued"]:
        click.echo(
            f"{counts['requeued']} job(s) running at the time are pending in the copy: "
            "they run again if it is put to use"
        )
    click.echo(f"use it with --db {path}")
