"""The `queuectl` command: global options, error handling and exit codes.

This package is the only place that prints or chooses an exit code (`EXIT_CODES`); every
error is one line on stderr starting `Error:`.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from queuectl import QueuectlError, __version__, _core
from queuectl.cli.app import App

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Every exit code of `queuectl` and what leads to it (docs/reference/exit-codes.md).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "Success. `wait`: every job it waited for completed. `check`: no problem found.",
    EXIT_ERROR: (
        "A runtime or input error: bad job JSON, an unknown job id, a job in the wrong state,"
        " a store that cannot be opened or read, a file error, an aborted prompt. Also `wait`"
        " when a job ended other than completed (or the wait timed out), and `check` when it"
        " found a problem."
    ),
    EXIT_USAGE: (
        "A usage error: an unknown command or option, a missing argument, or a value an option"
        " does not take; the message names the `--help` to read."
    ),
    EXIT_INTERRUPTED: "Interrupted by Ctrl-C (SIGINT) before the command finished.",
}


def _version_text(app: App) -> str:
    db = app.home.db
    store = _core.redact_location(db) if "://" in db else f"sqlite {db}"
    return f"queuectl {__version__}\nSQLite {_core.sqlite_version()} (bundled)\nstore: {store}"


# Each command's module is imported only when that command runs (or help lists it), so a
# single `enqueue` pays for click and the enqueue code, not for every command.
COMMANDS = {
    "enqueue": "queuectl.cli.enqueue:enqueue",
    "worker": "queuectl.cli.worker:worker",
    "status": "queuectl.cli.jobs:status",
    "list": "queuectl.cli.jobs:list_jobs",
    "show": "queuectl.cli.jobs:show",
    "logs": "queuectl.cli.jobs:logs",
    "dlq": "queuectl.cli.dlq:dlq",
    "config": "queuectl.cli.config:config",
    "purge": "queuectl.cli.jobs:purge",
    "cancel": "queuectl.cli.control:cancel",
    "retry": "queuectl.cli.control:retry",
    "delete": "queuectl.cli.control:delete",
    "wait": "queuectl.cli.control:wait",
    "explain": "queuectl.cli.control:explain",
    "queue": "queuectl.cli.queues:queue",
    "schedule": "queuectl.cli.schedules:schedule",
    "service": "queuectl.cli.service:service_group",
    "migrate": "queuectl.cli.migrate:migrate",
    "check": "queuectl.cli.maintenance:check",
    "backup": "queuectl.cli.maintenance:backup",
    "ui": "queuectl.cli.ui:ui",
    "metrics": "queuectl.cli.ui:metrics",
    "completion": "queuectl.cli.completion:completion",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, name = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), name)
        return command


def _complete_dirs(ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
    from queuectl.cli import complete

    return complete.dirs(ctx, param, incomplete)


def _complete_files(ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
    from queuectl.cli import complete

    return complete.files(ctx, param, incomplete)


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="\b\nExamples:\n  queuectl enqueue --command 'echo hi'\n  queuectl worker start",
)
@click.option(
    "--home",
    metavar="DIR",
    shell_complete=_complete_dirs,
    help="Home folder (default: $QUEUECTL_HOME or the per-user data folder).",
)
@click.option(
    "--db",
    metavar="PATH_OR_URL",
    shell_complete=_complete_files,
    help="Database (default: $QUEUECTL_DB or <home>/qctl.db).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--version", is_flag=True, help="Show the version, SQLite's and the store in use.")
@click.pass_context
def cli(ctx: click.Context, home: str | None, db: str | None, debug: bool, version: bool) -> None:
    """A background job queue for shell commands.

    Enqueue jobs, run workers that claim them atomically, retry failures with
    exponential backoff, and inspect what ended in the dead letter queue.
    """
    ctx.obj = App.from_options(home, db)
    if version:
        click.echo(_version_text(ctx.obj))
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        raise click.UsageError("missing command", ctx)


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {_one_line(message)}", err=True)
    sys.exit(code)


def _one_line(message: str) -> str:
    """`message` with its unprintable characters escaped as Python writes them (`\\n`,
    `\\x1b`, `\\udcff`): an error quoting the user's input stays one line, and nothing in
    it reaches the terminal as a control sequence."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _complete(args: list[str]) -> None:
    """A shell asking for completions (the scripts of `queuectl completion`): click answers
    and exits; any failure exits 1 quietly, since stderr would land on the user's prompt."""
    import queuectl.cli.complete  # noqa: F401 - registers the PowerShell protocol

    try:
        cli.main(args=args, prog_name="queuectl", complete_var="_QUEUECTL_COMPLETE")
    except SystemExit:
        raise
    except BaseException:
        sys.exit(1)
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `queuectl` script and of `python -m queuectl`."""
    from queuectl._platform import prepare_process

    prepare_process()
    args = sys.argv[1:] if argv is None else argv
    if os.environ.get("_QUEUECTL_COMPLETE"):
        _complete(args)
    debug = "--debug" in args or bool(os.environ.get("QUEUECTL_DEBUG"))
    try:
        rv: Any = cli.main(args=args, prog_name="queuectl", standalone_mode=False)
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        _fail(f"{e.format_message()}{hint}", EXIT_USAGE)
    except click.ClickException as e:
        _fail(e.format_message(), e.exit_code)
    except click.Abort:
        _fail("aborted", EXIT_ERROR)
    except QueuectlError as e:
        if debug:
            import traceback

            traceback.print_exc()
        _fail(str(e), EXIT_ERROR)
    except OSError as e:
        if debug:
            import traceback

            traceback.print_exc()
        _fail(str(e), EXIT_ERROR)
    except UnicodeEncodeError as e:
        # Bytes that are not UTF-8 in an argument (`$'\xff'` in a shell) reach Python as
        # lone surrogates, which the core's text (UTF-8) cannot hold.
        if e.reason != "surrogates not allowed" or not isinstance(e.object, str):
            raise
        if debug:
            import traceback

            traceback.print_exc()
        text = e.object if len(e.object) <= 60 else e.object[:57] + "..."
        why = "an argument holds bytes that are not UTF-8"
        _fail(f"{text!r} is not UTF-8 text ({why})", EXIT_ERROR)
    except KeyboardInterrupt:
        click.echo("Error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(rv if isinstance(rv, int) else EXIT_OK)
