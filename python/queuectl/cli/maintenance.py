"""`queuectl check` and `queuectl backup`: is the queue sound, and a copy of it."""

from __future__ import annotations

import click

from queuectl.cli import render
from queuectl.cli.app import App


@click.command(epilog="\b\nExamples:\n  queuectl check\n  queuectl check --json")
@click.option("--json", "as_json", is_flag=True, help="Compact JSON on stdout.")
@click.pass_obj
def check(app: App, as_json: bool) -> int:
    """Check the queue: SQLite's integrity check, the schema version, and the queue's own
    invariants. Prints `ok` (exit 0) or one line per problem (exit 1)."""
    report = app.queue.check()
    if as_json:
        render.emit_json(
            {"ok": report.ok, "problems": report.problems, "schema_version": report.schema_version}
        )
    elif report.problems:
        for line in report.problems:
            click.echo(line)
    else:
        click.echo("ok")
    return 0 if report.ok else 1


@click.command(
    epilog="\b\nExamples:\n"
    "  queuectl backup qctl-backup.db\n"
    "  queuectl backup ~/backups/qctl-$(date +%F).db"
)
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_obj
def backup(app: App, path: str) -> None:
    """Write a consistent copy of the whole queue (jobs, history, config) to PATH, a new
    SQLite queue file readable by its owner only; workers may keep running. Never
    overwrites a file. Jobs running at the moment of the copy are pending in it."""
    report = app.queue.backup(path)
    click.echo(
        f"backed up {report.jobs} jobs, {report.attempts} earlier attempts and "
        f"{report.config} config values to {path}"
    )
    if report.requeued:
        click.echo(
            f"{report.requeued} job(s) running at the time are pending in the copy: "
            "they run again if it is put to use"
        )
    click.echo(f"use it with --db {path}")
