"""Settings stored in the database, shared by every worker."""

from __future__ import annotations

import click

from queuectl import config as settings
from queuectl.cli import complete, render
from queuectl.cli.app import App


@click.group(epilog="\b\nExamples:\n  queuectl config set max-retries 5\n  queuectl config list")
def config() -> None:
    """Get and set settings (max-retries, backoff-base, backoff-max, job-timeout)."""


@config.command("get", epilog="\b\nExamples:\n  queuectl config get backoff-base")
@click.argument("key", shell_complete=complete.config_keys)
@click.pass_obj
def config_get(app: App, key: str) -> None:
    """Print the bare value of KEY."""
    click.echo(app.queue.config_get(key))


@config.command(
    "set",
    context_settings={"ignore_unknown_options": True},
    epilog="\b\nExamples:\n"
    "  queuectl config set max-retries 5\n"
    "  queuectl config set job-timeout 10m",
)
@click.argument("key", shell_complete=complete.config_keys)
@click.argument("value")
@click.pass_obj
def config_set(app: App, key: str, value: str) -> None:
    """Set KEY to VALUE; an unknown key or invalid value changes nothing."""
    name, stored = app.queue.config_set(key, value)
    click.echo(f"{name} = {stored}")


@config.command(
    "list", epilog="\b\nExamples:\n  queuectl config list\n  queuectl config list --json"
)
@click.option("--json", "as_json", is_flag=True, help="Compact JSON object on stdout.")
@click.pass_obj
def config_list(app: App, as_json: bool) -> None:
    """Every setting with its value (defaults included)."""
    items = app.queue.config().items()
    if as_json:
        render.emit_json(dict(items))
        return
    render.table(
        ["KEY", "VALUE", "MEANING"],
        [[k, v, settings.KEYS[k].help] for k, v in items],
    )
