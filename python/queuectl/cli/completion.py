"""`queuectl completion SHELL`: the script that makes Tab complete queuectl in a shell."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from queuectl.cli.complete import SHELLS


@click.command(
    epilog="\b\nExamples:\n"
    "  queuectl completion bash > ~/.local/share/bash-completion/completions/queuectl\n"
    "  queuectl completion fish > ~/.config/fish/completions/queuectl.fish"
)
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh, fish or powershell).

    Tab then completes commands, options, and from the queue: queue names, schedule
    names and job ids. Load it in the shell's start-up file; see the guide's Completion
    page.
    """
    root = ctx.find_root()
    prog_name = root.info_name or "queuectl"
    complete_class = get_completion_class(shell)
    assert complete_class is not None
    script = complete_class(root.command, {}, prog_name, "_QUEUECTL_COMPLETE").source()
    click.echo(script, nl=False)
